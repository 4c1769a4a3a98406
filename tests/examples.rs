//! The examples, started on ephemeral ports and driven over TCP.
//!
//! Each example keeps its server in a function (`serve`, `serve_with`) that
//! its `main` calls; the files are included here as modules so the tests run
//! the very code the binaries run. Every wait is bounded by a timeout.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

// Each example brings its own copy of `examples/common/mod.rs`.
#[path = "../examples/echo.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod echo;
#[path = "../examples/redis.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod redis;

mod common;
use common::{bounded, connect, exchange, read_exactly, read_to_end, show, step};

async fn listener() -> (TcpListener, SocketAddr) {
    // The examples' own listener: a backlog for bursts of connections.
    let listener = echo::listen(0).unwrap();
    let address = listener.local_addr().unwrap();
    (listener, address)
}

// ---------------------------------------------------------------------------
// echo

async fn start_echo_with(config: echo::Config) -> SocketAddr {
    let (listener, address) = listener().await;
    tokio::spawn(echo::serve(listener, config));
    address
}

/// The echo server as it starts with no flags: lines end in `\n` or `\r\n`.
async fn start_echo() -> SocketAddr {
    start_echo_with(echo::Config::default()).await
}

/// The echo server with `--delimiter DELIMITER`.
async fn start_echo_delimited(delimiter: &str) -> SocketAddr {
    start_echo_with(echo::Config {
        terminator: echo::unescape(delimiter).unwrap().into(),
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn echo_lines_end_in_newline_or_crlf() {
    bounded(async {
        let mut stream = connect(start_echo().await).await;
        // As `nc` and `telnet` send them: each goes back with its own ending
        // (a `\r` not before a `\n` is part of the line).
        let lines = b"hello\nworld\r\n\n\r\nbare\rcr\nlast\r\r\n";
        stream.write_all(lines).await.unwrap();
        assert_eq!(read_exactly(&mut stream, lines.len()).await, lines);
        // The end of input without a delimiter: the rest comes back as it is.
        stream.write_all(b"tail\r").await.unwrap();
        stream.shutdown().await.unwrap();
        assert_eq!(read_to_end(&mut stream).await, b"tail\r");
    })
    .await;
}

#[tokio::test]
async fn echo_lines_split_across_writes() {
    bounded(async {
        let mut stream = connect(start_echo().await).await;
        stream.write_all(b"one\r").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        stream.write_all(b"\ntw").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        stream.write_all(b"o\nthree\r\n").await.unwrap();
        assert_eq!(
            read_exactly(&mut stream, 16).await,
            b"one\r\ntwo\nthree\r\n"
        );
    })
    .await;
}

#[tokio::test]
async fn echo_one_delimiter_set_on_the_command_line() {
    bounded(async {
        let address = start_echo_delimited("<END>").await;
        let mut stream = connect(address).await;
        stream.write_all(b"a\n<EN").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        stream.write_all(b"D>b<E<END>").await.unwrap();
        assert_eq!(read_exactly(&mut stream, 15).await, b"a\n<END>b<E<END>");
    })
    .await;
}

/// The error line of a line over 16 bytes, ended by `ending`.
fn too_long(ending: &str) -> String {
    format!("ERR line longer than 16 bytes{ending}")
}

#[tokio::test]
async fn echo_an_overlong_line_gets_an_error_and_the_connection_goes_on() {
    bounded(async {
        let address = start_echo_with(echo::Config {
            max_line: 16,
            ..Default::default()
        })
        .await;
        let mut stream = connect(address).await;
        let long = "x".repeat(40);
        // The error line ends as the client's last line did; before any,
        // with the first delimiter, `\r\n`.
        let request = format!("{long}\nshort\n{long}\r\nexactly sixteen!\r\n{long}\n");
        let reply = format!(
            "{}short\n{}exactly sixteen!\r\n{}",
            too_long("\r\n"),
            too_long("\n"),
            too_long("\r\n"),
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        assert_eq!(
            String::from_utf8(read_exactly(&mut stream, reply.len()).await).unwrap(),
            reply
        );
        // A long line split across writes, then the next one.
        stream.write_all(long.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        stream.write_all(b"xx\nagain\n").await.unwrap();
        let reply = format!("{}again\n", too_long("\r\n"));
        assert_eq!(
            read_exactly(&mut stream, reply.len()).await,
            reply.as_bytes()
        );
    })
    .await;
}

#[tokio::test]
async fn echo_an_overlong_tail_at_the_end_of_input_gets_an_error() {
    bounded(async {
        let address = start_echo_with(echo::Config {
            max_line: 16,
            ..Default::default()
        })
        .await;
        let sixteen = "x".repeat(16);
        let cases = [
            (sixteen.clone(), sixteen.clone()),
            // The `\r` might have begun a `\r\n`: the codec holds it until
            // the end of input, then hands out 17 bytes.
            (format!("{sixteen}\r"), too_long("\n")),
            (format!("{sixteen}x"), too_long("\n")),
            ("x".repeat(100), too_long("\n")),
        ];
        for (tail, reply) in cases {
            let mut stream = connect(address).await;
            stream
                .write_all(format!("a\n{tail}").as_bytes())
                .await
                .unwrap();
            stream.shutdown().await.unwrap();
            assert_eq!(
                String::from_utf8(read_to_end(&mut stream).await).unwrap(),
                format!("a\n{reply}"),
                "for the tail {tail:?}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_many_connections_at_once() {
    bounded(async {
        let address = start_echo().await;
        let clients = (0..200).map(|i| {
            tokio::spawn(async move {
                let mut stream = connect(address).await;
                let lines: Vec<u8> = (0..20)
                    .flat_map(|j| format!("client {i} line {j}\n").into_bytes())
                    .collect();
                stream.write_all(&lines).await.unwrap();
                assert_eq!(read_exactly(&mut stream, lines.len()).await, lines);
            })
        });
        for client in clients.collect::<Vec<_>>() {
            client.await.unwrap();
        }
    })
    .await;
}

#[test]
fn echo_unescape() {
    assert_eq!(
        echo::unescape("\\r\\n").unwrap(),
        Bytes::from_static(b"\r\n")
    );
    assert_eq!(
        echo::unescape("\\t|\\\\").unwrap(),
        Bytes::from_static(b"\t|\\")
    );
    assert!(echo::unescape("").is_err());
    assert!(echo::unescape("\\x").is_err());
    assert!(echo::unescape("a\\").is_err());
}

// ---------------------------------------------------------------------------
// redis

async fn start_redis_with(config: redis::Config) -> SocketAddr {
    let (listener, address) = listener().await;
    tokio::spawn(redis::serve_with(
        listener,
        config,
        Arc::new(redis::Db::new()),
    ));
    address
}

async fn start_redis() -> SocketAddr {
    start_redis_with(redis::Config::default()).await
}

/// A command in RESP.
fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Sends each command in turn and expects exactly the reply beside it.
async fn exchange_commands(stream: &mut TcpStream, exchanges: &[(&[&[u8]], &[u8])]) {
    for (command, reply) in exchanges {
        exchange(stream, &resp(command), reply).await;
    }
}

/// Sends `request`, expects `reply` and then the end of the connection.
async fn exchange_and_close(address: SocketAddr, request: &[u8], reply: &str) {
    let mut stream = connect(address).await;
    let _ = stream.write_all(request).await;
    let got = read_to_end(&mut stream).await;
    assert_eq!(show(&got), show(reply.as_bytes()), "for {}", show(request));
}

#[tokio::test]
async fn redis_ping_and_echo() {
    bounded(async {
        let mut stream = connect(start_redis().await).await;
        exchange_commands(
            &mut stream,
            &[
                (&[b"PING"], b"+PONG\r\n"),
                (&[b"ping", b"hi"], b"$2\r\nhi\r\n"),
                (&[b"ECHO", b""], b"$0\r\n\r\n"),
                (&[b"echo", b"with\r\ncrlf"], b"$10\r\nwith\r\ncrlf\r\n"),
            ],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn redis_set_and_get() {
    bounded(async {
        let mut stream = connect(start_redis().await).await;
        exchange_commands(
            &mut stream,
            &[
                (&[b"GET", b"k"], b"$-1\r\n"),
                (&[b"SET", b"k", b"v1"], b"+OK\r\n"),
                (&[b"GET", b"k"], b"$2\r\nv1\r\n"),
                (&[b"set", b"k", b"\x00\xff"], b"+OK\r\n"),
                (&[b"get", b"k"], b"$2\r\n\x00\xff\r\n"),
                // NX and XX.
                (&[b"SET", b"k", b"x", b"NX"], b"$-1\r\n"),
                (&[b"SET", b"new", b"x", b"XX"], b"$-1\r\n"),
                (&[b"SET", b"new", b"y", b"nx"], b"+OK\r\n"),
                (&[b"SET", b"new", b"z", b"xx"], b"+OK\r\n"),
                (&[b"GET", b"new"], b"$1\r\nz\r\n"),
                (
                    &[b"SET", b"k", b"x", b"NX", b"XX"],
                    b"-ERR syntax error\r\n",
                ),
            ],
        )
        .await;
        // A second connection sees the same store.
        let mut other = connect(stream.peer_addr().unwrap()).await;
        exchange(&mut other, &resp(&[b"GET", b"new"]), b"$1\r\nz\r\n").await;
    })
    .await;
}

#[tokio::test]
async fn redis_expiry() {
    bounded(async {
        let mut stream = connect(start_redis().await).await;
        exchange_commands(
            &mut stream,
            &[
                (&[b"SET", b"t", b"v", b"PX", b"100"], b"+OK\r\n"),
                (&[b"SET", b"e", b"v", b"EX", b"100"], b"+OK\r\n"),
                (&[b"GET", b"t"], b"$1\r\nv\r\n"),
                (&[b"DBSIZE"], b":2\r\n"),
            ],
        )
        .await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        exchange_commands(
            &mut stream,
            &[
                (&[b"GET", b"t"], b"$-1\r\n"),
                (&[b"EXISTS", b"t", b"e"], b":1\r\n"),
                (&[b"DBSIZE"], b":1\r\n"),
                // SET without KEEPTTL drops the time to live; with it, keeps it.
                (&[b"SET", b"t", b"v", b"px", b"100"], b"+OK\r\n"),
                (&[b"SET", b"t", b"w", b"KEEPTTL"], b"+OK\r\n"),
                (&[b"SET", b"e", b"w"], b"+OK\r\n"),
            ],
        )
        .await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        exchange(&mut stream, &resp(&[b"GET", b"t"]), b"$-1\r\n").await;
        exchange(&mut stream, &resp(&[b"GET", b"e"]), b"$1\r\nw\r\n").await;
        for bad in [&b"0"[..], b"-5"] {
            exchange(
                &mut stream,
                &resp(&[b"SET", b"k", b"v", b"EX", bad]),
                b"-ERR invalid expire time in 'set' command\r\n",
            )
            .await;
        }
        exchange(
            &mut stream,
            &resp(&[b"SET", b"k", b"v", b"PX", b"soon"]),
            b"-ERR value is not an integer or out of range\r\n",
        )
        .await;
        exchange(
            &mut stream,
            &resp(&[b"SET", b"k", b"v", b"EX"]),
            b"-ERR syntax error\r\n",
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn redis_del_exists_incr_dbsize_flushall() {
    bounded(async {
        let mut stream = connect(start_redis().await).await;
        exchange_commands(
            &mut stream,
            &[
                (&[b"INCR", b"n"], b":1\r\n"),
                (&[b"INCR", b"n"], b":2\r\n"),
                (&[b"DECR", b"n"], b":1\r\n"),
                (&[b"INCRBY", b"n", b"-11"], b":-10\r\n"),
                (&[b"GET", b"n"], b"$3\r\n-10\r\n"),
                (&[b"SET", b"s", b"abc"], b"+OK\r\n"),
                (
                    &[b"INCR", b"s"],
                    b"-ERR value is not an integer or out of range\r\n",
                ),
                (&[b"SET", b"max", b"9223372036854775807"], b"+OK\r\n"),
                (
                    &[b"INCR", b"max"],
                    b"-ERR increment or decrement would overflow\r\n",
                ),
                (&[b"DBSIZE"], b":3\r\n"),
                (&[b"EXISTS", b"n", b"n", b"nope"], b":2\r\n"),
                (&[b"DEL", b"n", b"nope", b"n"], b":1\r\n"),
                (&[b"EXISTS", b"n"], b":0\r\n"),
                (&[b"DBSIZE"], b":2\r\n"),
                (&[b"FLUSHALL"], b"+OK\r\n"),
                (&[b"DBSIZE"], b":0\r\n"),
                (&[b"GET", b"s"], b"$-1\r\n"),
            ],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn redis_mset_and_mget() {
    bounded(async {
        let mut stream = connect(start_redis().await).await;
        exchange_commands(
            &mut stream,
            &[
                (&[b"SET", b"a", b"old", b"PX", b"100"], b"+OK\r\n"),
                (&[b"MSET", b"a", b"1", b"b", b"2"], b"+OK\r\n"),
                (
                    &[b"MGET", b"a", b"nope", b"b"],
                    b"*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n",
                ),
            ],
        )
        .await;
        // MSET drops the time to live, as SET does.
        tokio::time::sleep(Duration::from_millis(150)).await;
        exchange(&mut stream, &resp(&[b"GET", b"a"]), b"$1\r\n1\r\n").await;
        for odd in [&[&b"MSET"[..], b"a"][..], &[b"MSET", b"a", b"1", b"b"]] {
            exchange(
                &mut stream,
                &resp(odd),
                b"-ERR wrong number of arguments for 'mset' command\r\n",
            )
            .await;
        }
        exchange(
            &mut stream,
            &resp(&[b"MGET"]),
            b"-ERR wrong number of arguments for 'mget' command\r\n",
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn redis_inline_commands() {
    bounded(async {
        let mut stream = connect(start_redis().await).await;
        exchange(&mut stream, b"PING\r\n", b"+PONG\r\n").await;
        // As `nc` sends them: `\n` alone ends a line.
        exchange(&mut stream, b"PING\n", b"+PONG\r\n").await;
        exchange(&mut stream, b"set  greeting \t hello\n", b"+OK\r\n").await;
        exchange(&mut stream, b"GET greeting\r\n", b"$5\r\nhello\r\n").await;
        // Empty lines are ignored, as are `*0` and `*-1`.
        exchange(
            &mut stream,
            b"\r\n  \r\n\n*0\r\n*-1\r\nPING\r\n",
            b"+PONG\r\n",
        )
        .await;
        // Only the one `\r` before the `\n` is the line's end.
        exchange(&mut stream, b"ECHO a\r\r\n", b"$1\r\na\r\n").await;
        // An inline line split over several writes.
        stream.write_all(b"EC").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        stream.write_all(b"HO split").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        exchange(&mut stream, b"\r\n", b"$5\r\nsplit\r\n").await;
    })
    .await;
}

/// Inline lines and the argument redis-server 7.0 makes of each (checked
/// against it with `ECHO`).
const INLINE_ARGUMENTS: &[(&[u8], &[u8])] = &[
    (b"ECHO \"hello world\"", b"hello world"),
    (b"ECHO 'hello world'", b"hello world"),
    (
        b"ECHO \"\\n\\r\\t\\b\\a\\\\\\\"\\q\"",
        b"\n\r\t\x08\x07\\\"q",
    ),
    (b"ECHO \"\\x41\\xaB\\x4g\\X41\"", b"A\xabx4gX41"),
    (b"ECHO 'it\\'s \\n \"quoted\"'", b"it's \\n \"quoted\""),
    (b"ECHO a\"b c\"", b"ab c"),
    (b"ECHO \"\"", b""),
    (b"ECHO ''", b""),
    (b"ECHO \"a\"\x0b", b"a"),
    (b"\x0b ECHO a\x0bb", b"a\x0bb"),
    (b"ECHO \xe9", b"\xe9"),
    // Read as a C string, as `sdssplitargs` reads it: a NUL ends the line.
    // (redis-server never gets there: its search for the `\n` stops at
    // the NUL, and it waits.)
    (b"ECHO a\x00 b", b"a"),
];

#[tokio::test]
async fn redis_inline_arguments_are_split_as_redis_server_splits_them() {
    bounded(async {
        let mut stream = connect(start_redis().await).await;
        for (line, argument) in INLINE_ARGUMENTS {
            let mut request = line.to_vec();
            request.push(b'\n');
            let mut reply = format!("${}\r\n", argument.len()).into_bytes();
            reply.extend_from_slice(argument);
            reply.extend_from_slice(b"\r\n");
            exchange(&mut stream, &request, &reply).await;
        }
        exchange(
            &mut stream,
            b"SET q \"hello world\"\nGET q\n",
            b"+OK\r\n$11\r\nhello world\r\n",
        )
        .await;
        exchange(
            &mut stream,
            b"ECHO \"a\" 'b'\n",
            b"-ERR wrong number of arguments for 'echo' command\r\n",
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn redis_unbalanced_quotes_get_err_and_close() {
    bounded(async {
        let address = start_redis().await;
        for line in [
            &b"GET \"abc\n"[..],
            b"GET 'abc\n",
            b"GET \"abc\"x\n",
            b"GET ''x\n",
            b"GET \"\\\"\n",
            b"GET 'a\\'\n",
            b"ECHO a\"b c\"d\r\n",
        ] {
            let mut request = line.to_vec();
            request.extend_from_slice(b"PING\r\n"); // not read
            exchange_and_close(
                address,
                &request,
                "-ERR Protocol error: unbalanced quotes in request\r\n",
            )
            .await;
        }
    })
    .await;
}

#[tokio::test]
async fn redis_pipelining_1000_commands_in_one_write() {
    bounded(async {
        let mut stream = connect(start_redis().await).await;
        let mut request = Vec::new();
        let mut reply = Vec::new();
        for i in 1..=1000 {
            if i % 2 == 0 {
                request.extend(resp(&[b"INCR", b"counter"]));
                reply.extend(format!(":{}\r\n", i / 2).into_bytes());
            } else {
                let key = format!("key:{i}");
                request.extend(resp(&[b"SET", key.as_bytes(), key.as_bytes()]));
                reply.extend(b"+OK\r\n");
            }
        }
        exchange(&mut stream, &request, &reply).await;
        exchange(&mut stream, &resp(&[b"DBSIZE"]), b":501\r\n").await;
    })
    .await;
}

#[tokio::test]
async fn redis_pipeline_split_byte_by_byte() {
    bounded(async {
        let mut stream = connect(start_redis().await).await;
        let mut request = resp(&[b"SET", b"key", b"value"]);
        request.extend(resp(&[b"GET", b"key"]));
        request.extend(b"PING\r\n");
        for byte in &request {
            stream.write_all(&[*byte]).await.unwrap();
            tokio::task::yield_now().await;
        }
        let expected = b"+OK\r\n$5\r\nvalue\r\n+PONG\r\n";
        assert_eq!(read_exactly(&mut stream, expected.len()).await, expected);
    })
    .await;
}

#[tokio::test]
async fn redis_one_mebibyte_value() {
    bounded(async {
        let mut stream = connect(start_redis().await).await;
        let value: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
        exchange(&mut stream, &resp(&[b"SET", b"big", &value]), b"+OK\r\n").await;
        let mut reply = b"$1048576\r\n".to_vec();
        reply.extend_from_slice(&value);
        reply.extend_from_slice(b"\r\n");
        exchange(&mut stream, &resp(&[b"GET", b"big"]), &reply).await;
        // Twice in one pipeline, then something small: all in order.
        let mut request = resp(&[b"GET", b"big"]);
        request.extend(resp(&[b"GET", b"big"]));
        request.extend(resp(&[b"PING"]));
        let mut replies = reply.clone();
        replies.extend_from_slice(&reply);
        replies.extend_from_slice(b"+PONG\r\n");
        exchange(&mut stream, &request, &replies).await;
    })
    .await;
}

#[tokio::test]
async fn redis_a_client_that_reads_late_gets_every_reply() {
    bounded(async {
        let mut stream = connect(start_redis().await).await;
        let value = vec![b'v'; 100_000];
        exchange(&mut stream, &resp(&[b"SET", b"big", &value]), b"+OK\r\n").await;
        // 200 GETs: 20 MB of replies, far more than the socket buffers hold.
        // The server stalls on its output, then carries on as it drains.
        let mut request = Vec::new();
        for _ in 0..200 {
            request.extend(resp(&[b"GET", b"big"]));
        }
        request.extend(resp(&[b"PING"]));
        let (mut read_half, mut write_half) = stream.split();
        let writer = async move { write_half.write_all(&request).await.unwrap() };
        let reader = async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut reply = Vec::new();
            let expected_length = 200 * (b"$100000\r\n".len() + 100_002) + b"+PONG\r\n".len();
            while reply.len() < expected_length {
                let mut chunk = vec![0; 1 << 16];
                let read = read_half.read(&mut chunk).await.unwrap();
                assert!(read > 0, "closed after {} bytes", reply.len());
                reply.extend_from_slice(&chunk[..read]);
            }
            reply
        };
        let ((), reply) = step("20 MB of replies", futures::future::join(writer, reader)).await;
        let mut one = b"$100000\r\n".to_vec();
        one.extend_from_slice(&value);
        one.extend_from_slice(b"\r\n");
        for i in 0..200 {
            assert!(
                reply[i * one.len()..(i + 1) * one.len()] == one[..],
                "reply {i}"
            );
        }
        assert!(reply.ends_with(b"+PONG\r\n"));
    })
    .await;
}

#[tokio::test]
async fn redis_unknown_commands_and_wrong_arity_keep_the_connection() {
    bounded(async {
        let mut stream = connect(start_redis().await).await;
        exchange(
            &mut stream,
            &resp(&[b"FOO", b"bar"]),
            b"-ERR unknown command 'FOO', with args beginning with: 'bar' \r\n",
        )
        .await;
        exchange(
            &mut stream,
            b"nope\r\n",
            b"-ERR unknown command 'nope', with args beginning with: \r\n",
        )
        .await;
        exchange(
            &mut stream,
            &resp(&[b"GET"]),
            b"-ERR wrong number of arguments for 'get' command\r\n",
        )
        .await;
        exchange(
            &mut stream,
            b"foo a b\n",
            b"-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n",
        )
        .await;
        // As redis-server 7 shows them: `\r` and `\n` as spaces, other
        // bytes as they are, up to a NUL, ...
        exchange(
            &mut stream,
            &resp(&[b"x\r\ny", b"a\x01\xff", b"b\x00c"]),
            b"-ERR unknown command 'x  y', with args beginning with: 'a\x01\xff' 'b' \r\n",
        )
        .await;
        // ... the name cut at 128 bytes, and the arguments that begin
        // within 128 bytes, cut there.
        let name = [b'n'; 200];
        let (first, second) = ([b'a'; 100], [b'b'; 50]);
        let mut expected = b"-ERR unknown command '".to_vec();
        expected.extend_from_slice(&name[..128]);
        expected.extend_from_slice(b"', with args beginning with: '");
        expected.extend_from_slice(&first);
        expected.extend_from_slice(b"' '");
        expected.extend_from_slice(&second[..25]);
        expected.extend_from_slice(b"' \r\n");
        exchange(
            &mut stream,
            &resp(&[&name, &first, &second, b"unseen"]),
            &expected,
        )
        .await;
        exchange(
            &mut stream,
            &resp(&[b""]),
            b"-ERR unknown command '', with args beginning with: \r\n",
        )
        .await;
        exchange(
            &mut stream,
            b"config foo\r\nconfig \"a\\nb\"\n",
            b"-ERR unknown subcommand 'foo'. Try CONFIG HELP.\r\n\
              -ERR unknown subcommand 'a b'. Try CONFIG HELP.\r\n",
        )
        .await;
        exchange(&mut stream, &resp(&[b"PING"]), b"+PONG\r\n").await;
    })
    .await;
}

#[tokio::test]
async fn redis_what_the_clients_ask_at_start() {
    bounded(async {
        let mut stream = connect(start_redis().await).await;
        exchange_commands(
            &mut stream,
            &[
                (&[b"COMMAND", b"DOCS"], b"*0\r\n"),
                (&[b"COMMAND"], b"*0\r\n"),
                (
                    &[b"CONFIG", b"GET", b"save"],
                    b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n",
                ),
                (
                    &[b"config", b"get", b"appendonly"],
                    b"*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n",
                ),
                (&[b"CONFIG", b"GET", b"maxmemory"], b"*0\r\n"),
                (&[b"SELECT", b"0"], b"+OK\r\n"),
                (&[b"SELECT", b"1"], b"-ERR DB index is out of range\r\n"),
            ],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn redis_quit_closes_after_its_reply() {
    bounded(async {
        let address = start_redis().await;
        let mut request = resp(&[b"PING"]);
        request.extend(resp(&[b"QUIT"]));
        request.extend(resp(&[b"PING"]));
        exchange_and_close(address, &request, "+PONG\r\n+OK\r\n").await;
    })
    .await;
}

#[tokio::test]
async fn redis_malformed_input_gets_err_and_close() {
    bounded(async {
        let address = start_redis().await;
        let cases: &[(&[u8], &str)] = &[
            (b"*abc\r\n", "invalid multibulk length"),
            (b"*1x\r\n", "invalid multibulk length"),
            (b"*01\r\n", "invalid multibulk length"),
            (b"*99999999999999999999\r\n", "invalid multibulk length"),
            (b"*2000000\r\n", "invalid multibulk length"),
            (b"*1\r\n$-1\r\n", "invalid bulk length"),
            (b"*1\r\n$-5\r\n", "invalid bulk length"),
            (b"*1\r\n$abc\r\n", "invalid bulk length"),
            (b"*1\r\n$\r\n", "invalid bulk length"),
            (b"*1\r\n$ 4\r\n", "invalid bulk length"),
            (b"*1\r\n$1099511627776\r\n", "invalid bulk length"),
            (b"*1\r\nPING\r\n", "expected '$', got 'P'"),
            (b"*1\r\n\r\n", "expected '$', got ' '"),
            // RESP's lines end in `\r\n`; only inline commands may do without.
            (b"*1\n$4\r\nPING\r\n", "invalid multibulk length"),
            (b"*1\r\n$4\nPING\r\n", "invalid bulk length"),
            (b"*1\r\n$4\r\nPINGxx\r\n", "expected CRLF after bulk string"),
        ];
        for (request, error) in cases {
            // A command before the bad one is answered first.
            let mut bytes = resp(&[b"PING"]);
            bytes.extend_from_slice(request);
            exchange_and_close(
                address,
                &bytes,
                &format!("+PONG\r\n-ERR Protocol error: {error}\r\n"),
            )
            .await;
        }
    })
    .await;
}

#[tokio::test]
async fn redis_bulk_of_2_pow_40_is_refused_even_with_data_following() {
    bounded(async {
        let address = start_redis().await;
        let mut stream = connect(address).await;
        stream
            .write_all(b"*2\r\n$3\r\nSET\r\n$1099511627776\r\n")
            .await
            .unwrap();
        // The client goes on sending what it claims is the value.
        let _ = stream.write_all(&[b'v'; 200_000]).await;
        let got = read_to_end(&mut stream).await;
        assert_eq!(got, b"-ERR Protocol error: invalid bulk length\r\n");
    })
    .await;
}

#[tokio::test]
async fn redis_limits_are_configurable() {
    bounded(async {
        let address = start_redis_with(redis::Config {
            max_bulk: 10,
            max_line: 32,
            ..Default::default()
        })
        .await;
        let mut stream = connect(address).await;
        exchange(
            &mut stream,
            &resp(&[b"ECHO", b"0123456789"]),
            b"$10\r\n0123456789\r\n",
        )
        .await;
        exchange_and_close(
            address,
            &resp(&[b"ECHO", b"01234567890"]),
            "-ERR Protocol error: invalid bulk length\r\n",
        )
        .await;
        let long_line = format!("ECHO {}\r\n", "x".repeat(40));
        exchange_and_close(
            address,
            long_line.as_bytes(),
            "-ERR Protocol error: too big inline request\r\n",
        )
        .await;
        exchange_and_close(
            address,
            format!("*{}\r\n", "1".repeat(40)).as_bytes(),
            "-ERR Protocol error: too big mbulk count string\r\n",
        )
        .await;
        exchange_and_close(
            address,
            format!("*1\r\n${}\r\n", "1".repeat(40)).as_bytes(),
            "-ERR Protocol error: too big bulk count string\r\n",
        )
        .await;
        // A line that never ends is refused at the limit, not buffered.
        let mut stream = connect(address).await;
        stream.write_all(&[b'x'; 33]).await.unwrap();
        let got = read_to_end(&mut stream).await;
        assert_eq!(got, b"-ERR Protocol error: too big inline request\r\n");
    })
    .await;
}

#[tokio::test]
async fn redis_end_of_input_still_gets_the_replies() {
    bounded(async {
        let address = start_redis().await;
        let mut stream = connect(address).await;
        let mut request = resp(&[b"SET", b"a", b"1"]);
        request.extend(resp(&[b"INCR", b"a"]));
        request.extend(b"*1\r\n$4\r\nPI"); // cut short: ignored
        stream.write_all(&request).await.unwrap();
        stream.shutdown().await.unwrap();
        assert_eq!(read_to_end(&mut stream).await, b"+OK\r\n:2\r\n");
    })
    .await;
}
