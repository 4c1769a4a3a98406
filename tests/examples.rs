//! The examples, started on ephemeral ports and driven over TCP.
//!
//! Each example keeps its server in a function (`serve`, `serve_with`) that
//! its `main` calls; the files are included here as modules so the tests run
//! the very code the binaries run. Every wait is bounded by a timeout.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    time::timeout,
};

// Each example brings its own copy of `examples/common/mod.rs`.
#[path = "../examples/echo.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod echo;
#[path = "../examples/http_server.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod http_server;
#[path = "../examples/redis.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod redis;

/// Runs a test body, failing it if it takes longer than 20 seconds.
async fn bounded<F: Future>(body: F) -> F::Output {
    timeout(Duration::from_secs(20), body)
        .await
        .expect("the test took too long")
}

/// Awaits one step of a test, failing if it takes longer than 5 seconds.
async fn step<F: Future>(what: &str, future: F) -> F::Output {
    match timeout(Duration::from_secs(5), future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out: {what}"),
    }
}

async fn listener() -> (TcpListener, SocketAddr) {
    // The examples' own listener: a backlog for bursts of connections.
    let listener = echo::listen(0).unwrap();
    let address = listener.local_addr().unwrap();
    (listener, address)
}

async fn connect(address: SocketAddr) -> TcpStream {
    step("connect", TcpStream::connect(address)).await.unwrap()
}

/// Reads until the peer closes; fails if it does not within 5 seconds.
async fn read_to_end(stream: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let mut rest = Vec::new();
    step("end of stream", stream.read_to_end(&mut rest))
        .await
        .unwrap();
    rest
}

// ---------------------------------------------------------------------------
// http_server

async fn start_http(limits: http_server::Limits) -> SocketAddr {
    let (listener, address) = listener().await;
    tokio::spawn(http_server::serve_with(listener, limits));
    address
}

async fn start_http_default() -> SocketAddr {
    start_http(http_server::Limits::default()).await
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response: status line, headers, and a body of `Content-Length`
/// (none for a 100 Continue or when `head_only`).
async fn read_response(reader: &mut BufReader<TcpStream>, head_only: bool) -> Response {
    step("response", async {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        assert!(line.ends_with("\r\n"), "status line {line:?}");
        let mut parts = line.trim_end().splitn(3, ' ');
        assert!(parts.next().unwrap().starts_with("HTTP/1."), "{line:?}");
        let status: u16 = parts.next().unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            let line = line
                .strip_suffix("\r\n")
                .expect("a header line ends in CRLF");
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(": ").unwrap();
            headers.push((name.to_string(), value.to_string()));
        }
        let mut response = Response {
            status,
            headers,
            body: String::new(),
        };
        if status != 100 && !head_only {
            let length: usize = response.header("Content-Length").unwrap().parse().unwrap();
            let mut body = vec![0; length];
            reader.read_exact(&mut body).await.unwrap();
            response.body = String::from_utf8(body).unwrap();
        }
        response
    })
    .await
}

/// Sends `request` on a new connection and reads one response.
async fn http_once(address: SocketAddr, request: &[u8]) -> (Response, BufReader<TcpStream>) {
    let mut stream = connect(address).await;
    stream.write_all(request).await.unwrap();
    let mut reader = BufReader::new(stream);
    let response = read_response(&mut reader, false).await;
    (response, reader)
}

#[tokio::test]
async fn http_get_echoes_the_request_as_json() {
    bounded(async {
        let address = start_http_default().await;
        let (response, _) = http_once(
            address,
            b"GET /hello?x=1 HTTP/1.1\r\nHost: example\r\nX-Quote: a \"b\"\\c\r\n\r\n",
        )
        .await;
        assert_eq!(response.status, 200);
        assert_eq!(response.header("Content-Type"), Some("application/json"));
        assert_eq!(
            response.body,
            "{\"method\":\"GET\",\"path\":\"/hello?x=1\",\"version\":\"HTTP/1.1\",\
             \"headers\":[[\"Host\",\"example\"],[\"X-Quote\",\"a \\\"b\\\"\\\\c\"]],\
             \"body_length\":0,\"body\":\"\"}\n"
        );
    })
    .await;
}

#[tokio::test]
async fn http_post_with_a_body() {
    bounded(async {
        let address = start_http_default().await;
        let (response, _) = http_once(
            address,
            b"POST /form HTTP/1.1\r\nContent-Length: 15\r\n\r\nline one\nline 2",
        )
        .await;
        assert_eq!(response.status, 200);
        assert!(
            response.body.contains("\"method\":\"POST\""),
            "{}",
            response.body
        );
        assert!(
            response
                .body
                .ends_with("\"body_length\":15,\"body\":\"line one\\nline 2\"}\n"),
            "{}",
            response.body
        );
    })
    .await;
}

#[tokio::test]
async fn http_body_that_is_not_utf8_is_null() {
    bounded(async {
        let address = start_http_default().await;
        let mut request = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n".to_vec();
        request.extend_from_slice(&[0xff, 0xfe, 0x00]);
        let (response, _) = http_once(address, &request).await;
        assert!(
            response
                .body
                .ends_with("\"body_length\":3,\"body\":null}\n"),
            "{}",
            response.body
        );
    })
    .await;
}

#[tokio::test]
async fn http_post_with_content_length_zero_completes_and_keeps_the_connection() {
    bounded(async {
        let address = start_http_default().await;
        let (response, mut reader) = http_once(
            address,
            b"POST /empty HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
        assert_eq!(response.status, 200);
        assert!(response.body.contains("\"body_length\":0,\"body\":\"\""));
        // The connection is still good: Length(0) left nothing half read.
        reader
            .get_mut()
            .write_all(b"GET /next HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let response = read_response(&mut reader, false).await;
        assert!(response.body.contains("\"path\":\"/next\""));
    })
    .await;
}

#[tokio::test]
async fn http_two_keep_alive_requests_on_one_connection() {
    bounded(async {
        let address = start_http_default().await;
        let (first, mut reader) = http_once(address, b"GET /one HTTP/1.1\r\nHost: h\r\n\r\n").await;
        assert_eq!(first.status, 200);
        assert_eq!(first.header("Connection"), None);
        reader
            .get_mut()
            .write_all(b"POST /two HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc")
            .await
            .unwrap();
        let second = read_response(&mut reader, false).await;
        assert!(second.body.contains("\"path\":\"/two\""));
        assert!(second.body.contains("\"body\":\"abc\""));
    })
    .await;
}

#[tokio::test]
async fn http_pipelined_requests_are_answered_in_order() {
    bounded(async {
        let address = start_http_default().await;
        let (first, mut reader) = http_once(
            address,
            b"GET /1 HTTP/1.1\r\n\r\n\
              POST /2 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
              POST /3 HTTP/1.1\r\nContent-Length: 0\r\n\r\n\
              GET /4 HTTP/1.1\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(first.body.contains("\"path\":\"/1\""));
        let second = read_response(&mut reader, false).await;
        assert!(second.body.contains("\"path\":\"/2\"") && second.body.contains("\"hello\""));
        let third = read_response(&mut reader, false).await;
        assert!(third.body.contains("\"path\":\"/3\""));
        let fourth = read_response(&mut reader, false).await;
        assert!(fourth.body.contains("\"path\":\"/4\""));
        assert_eq!(fourth.header("Connection"), Some("close"));
        assert!(read_to_end(&mut reader).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn http_connection_close_is_honoured() {
    bounded(async {
        let address = start_http_default().await;
        let (response, mut reader) =
            http_once(address, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
        assert_eq!(response.status, 200);
        assert_eq!(response.header("Connection"), Some("close"));
        assert!(read_to_end(&mut reader).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn http_1_0_closes_unless_keep_alive() {
    bounded(async {
        let address = start_http_default().await;
        let (response, mut reader) = http_once(address, b"GET / HTTP/1.0\r\n\r\n").await;
        assert_eq!(response.status, 200);
        assert!(response.body.contains("\"version\":\"HTTP/1.0\""));
        assert!(read_to_end(&mut reader).await.is_empty());

        let (response, mut reader) = http_once(
            address,
            b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        )
        .await;
        assert_eq!(response.header("Connection"), Some("keep-alive"));
        reader
            .get_mut()
            .write_all(b"GET /b HTTP/1.0\r\n\r\n")
            .await
            .unwrap();
        let response = read_response(&mut reader, false).await;
        assert!(response.body.contains("\"path\":\"/b\""));
        assert!(read_to_end(&mut reader).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn http_head_has_no_body() {
    bounded(async {
        let address = start_http_default().await;
        let mut stream = connect(address).await;
        stream
            .write_all(b"HEAD / HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut reader = BufReader::new(stream);
        let head = read_response(&mut reader, true).await;
        assert_eq!(head.status, 200);
        let next = read_response(&mut reader, false).await;
        assert!(next.body.contains("\"path\":\"/after\""));
    })
    .await;
}

#[tokio::test]
async fn http_expect_100_continue() {
    bounded(async {
        let address = start_http_default().await;
        let mut stream = connect(address).await;
        stream
            .write_all(b"PUT /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
            .await
            .unwrap();
        let mut reader = BufReader::new(stream);
        assert_eq!(read_response(&mut reader, false).await.status, 100);
        reader.get_mut().write_all(b"data").await.unwrap();
        let response = read_response(&mut reader, false).await;
        assert_eq!(response.status, 200);
        assert!(response.body.contains("\"body\":\"data\""));
    })
    .await;
}

/// Asserts a refusal: the status, `Connection: close`, then the end.
async fn assert_refused(address: SocketAddr, request: &[u8], status: u16) {
    let (response, mut reader) = http_once(address, request).await;
    assert_eq!(
        response.status,
        status,
        "for {:?}",
        String::from_utf8_lossy(request)
    );
    assert_eq!(response.header("Connection"), Some("close"));
    read_to_end(&mut reader).await;
}

#[tokio::test]
async fn http_malformed_requests_get_400() {
    bounded(async {
        let address = start_http_default().await;
        for request in [
            &b"GARBAGE\r\n\r\n"[..],
            b"GET /\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / FTP/1.1\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
            b"GET / HTTP/1.1\r\nSpace before : colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"GET / HTTP/1.1\r\nBad: \xff\r\n\r\n",
        ] {
            assert_refused(address, request, 400).await;
        }
        assert_refused(address, b"GET / HTTP/2.0\r\n\r\n", 505).await;
        assert_refused(
            address,
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            501,
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn http_oversized_head_gets_431() {
    bounded(async {
        let address = start_http_default().await;
        let mut request = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        request.extend(std::iter::repeat(b'a').take(10_000));
        request.extend_from_slice(b"\r\n\r\n");
        assert_refused(address, &request, 431).await;
    })
    .await;
}

#[tokio::test]
async fn http_head_that_never_ends_gets_431_without_waiting_for_its_end() {
    bounded(async {
        let limits = http_server::Limits {
            max_head: 1024,
            ..Default::default()
        };
        let address = start_http(limits).await;
        let mut stream = connect(address).await;
        // A little over the limit, and then nothing: the server must not
        // wait for a blank line that never comes, nor buffer past its limit.
        stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        stream.write_all(&[b'x'; 1100]).await.unwrap();
        let mut reader = BufReader::new(stream);
        let response = read_response(&mut reader, false).await;
        assert_eq!(response.status, 431);
        // More junk is drained, not an error; the connection then ends.
        let _ = reader.get_mut().write_all(&[b'x'; 100_000]).await;
        read_to_end(&mut reader).await;
    })
    .await;
}

#[tokio::test]
async fn http_oversized_body_gets_413_before_the_body_is_sent() {
    bounded(async {
        let address = start_http_default().await;
        // Only the head is sent: the answer must not wait for the body.
        assert_refused(
            address,
            b"POST /upload HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n",
            413,
        )
        .await;
        // And a client that sends the body anyway gets the 413 too, not a reset.
        let mut request = b"POST /upload HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n".to_vec();
        request.extend(std::iter::repeat(b'b').take(1_048_577));
        let mut stream = connect(address).await;
        let (read_half, mut write_half) = stream.split();
        let writer = async move {
            let _ = write_half.write_all(&request).await;
        };
        let reader = async move {
            let mut reader = BufReader::new(read_half);
            let mut status_line = String::new();
            reader.read_line(&mut status_line).await.unwrap();
            status_line
        };
        let ((), status_line) =
            step("413 with a body", futures::future::join(writer, reader)).await;
        assert!(status_line.starts_with("HTTP/1.1 413 "), "{status_line:?}");
    })
    .await;
}

#[tokio::test]
async fn http_bodies_longer_than_the_head_limit() {
    bounded(async {
        let address = start_http_default().await;
        // 1 MiB, the default body limit: far over the head limit of 8 KiB.
        let body = "0123456789abcdef".repeat(1 << 16);
        let mut request = format!(
            "POST /big HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body.as_bytes());
        request.extend_from_slice(b"GET /next HTTP/1.1\r\n\r\n");
        let mut stream = connect(address).await;
        let (read_half, mut write_half) = stream.split();
        let writer = async move { write_half.write_all(&request).await.unwrap() };
        let reader = async move {
            let mut reader = BufReader::new(read_half);
            let mut texts = Vec::new();
            for _ in 0..2 {
                let mut line = String::new();
                let mut length = 0;
                loop {
                    line.clear();
                    reader.read_line(&mut line).await.unwrap();
                    if let Some(value) = line.strip_prefix("Content-Length: ") {
                        length = value.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut text = vec![0; length];
                reader.read_exact(&mut text).await.unwrap();
                texts.push(String::from_utf8(text).unwrap());
            }
            texts
        };
        let ((), texts) = step("a 1 MiB body", futures::future::join(writer, reader)).await;
        assert!(texts[0].contains(&format!("\"body_length\":{},", body.len())));
        assert!(texts[0].ends_with(&format!("\"body\":\"{body}\"}}\n")));
        // After the body the head limit is back: the next head is read as one.
        assert!(texts[1].contains("\"path\":\"/next\""));
        assert_refused(
            address,
            format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "y".repeat(9000)).as_bytes(),
            431,
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn http_body_at_the_limit_is_accepted() {
    bounded(async {
        let limits = http_server::Limits {
            max_body: 10,
            ..Default::default()
        };
        let address = start_http(limits).await;
        let (response, _) = http_once(
            address,
            b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789",
        )
        .await;
        assert_eq!(response.status, 200);
        assert_refused(
            address,
            b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n",
            413,
        )
        .await;
    })
    .await;
}

// ---------------------------------------------------------------------------
// echo

async fn start_echo(delimiter: &str) -> SocketAddr {
    let (listener, address) = listener().await;
    let delimiter = echo::unescape(delimiter).unwrap();
    tokio::spawn(echo::serve(listener, delimiter));
    address
}

async fn read_exactly(stream: &mut (impl AsyncReadExt + Unpin), length: usize) -> Vec<u8> {
    let mut buffer = vec![0; length];
    step("read", stream.read_exact(&mut buffer)).await.unwrap();
    buffer
}

#[tokio::test]
async fn echo_lines_with_newline() {
    bounded(async {
        let address = start_echo("\\n").await;
        let mut stream = connect(address).await;
        stream.write_all(b"hello\nworld\n\n").await.unwrap();
        assert_eq!(read_exactly(&mut stream, 13).await, b"hello\nworld\n\n");
        // The end of input without a delimiter: the rest comes back as it is.
        stream.write_all(b"tail").await.unwrap();
        stream.shutdown().await.unwrap();
        assert_eq!(read_to_end(&mut stream).await, b"tail");
    })
    .await;
}

#[tokio::test]
async fn echo_lines_with_crlf_split_across_writes() {
    bounded(async {
        let address = start_echo("\\r\\n").await;
        let mut stream = connect(address).await;
        stream.write_all(b"one\r").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        stream.write_all(b"\ntw").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        stream.write_all(b"o\nstill two\r\n").await.unwrap();
        assert_eq!(
            read_exactly(&mut stream, 20).await,
            b"one\r\ntwo\nstill two\r\n"
        );
    })
    .await;
}

#[tokio::test]
async fn echo_multi_byte_delimiter() {
    bounded(async {
        let address = start_echo("<END>").await;
        let mut stream = connect(address).await;
        stream.write_all(b"a<EN").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        stream.write_all(b"D>b<E<END>").await.unwrap();
        assert_eq!(read_exactly(&mut stream, 14).await, b"a<END>b<E<END>");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_many_connections_at_once() {
    bounded(async {
        let address = start_echo("\\n").await;
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

/// Sends `request` and expects exactly `reply` back.
async fn exchange(stream: &mut TcpStream, request: &[u8], reply: &[u8]) {
    stream.write_all(request).await.unwrap();
    let got = read_exactly(stream, reply.len()).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(reply),
        "for {:?}",
        String::from_utf8_lossy(&request[..request.len().min(200)])
    );
}

/// Sends `request`, expects `reply` and then the end of the connection.
async fn exchange_and_close(address: SocketAddr, request: &[u8], reply: &str) {
    let mut stream = connect(address).await;
    let _ = stream.write_all(request).await;
    let got = read_to_end(&mut stream).await;
    assert_eq!(
        String::from_utf8_lossy(&got),
        reply,
        "for {:?}",
        String::from_utf8_lossy(request)
    );
}

#[tokio::test]
async fn redis_ping_and_echo() {
    bounded(async {
        let mut stream = connect(start_redis().await).await;
        exchange(&mut stream, &resp(&[b"PING"]), b"+PONG\r\n").await;
        exchange(&mut stream, &resp(&[b"ping", b"hi"]), b"$2\r\nhi\r\n").await;
        exchange(&mut stream, &resp(&[b"ECHO", b""]), b"$0\r\n\r\n").await;
        exchange(
            &mut stream,
            &resp(&[b"echo", b"with\r\ncrlf"]),
            b"$10\r\nwith\r\ncrlf\r\n",
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn redis_set_and_get() {
    bounded(async {
        let mut stream = connect(start_redis().await).await;
        exchange(&mut stream, &resp(&[b"GET", b"k"]), b"$-1\r\n").await;
        exchange(&mut stream, &resp(&[b"SET", b"k", b"v1"]), b"+OK\r\n").await;
        exchange(&mut stream, &resp(&[b"GET", b"k"]), b"$2\r\nv1\r\n").await;
        exchange(&mut stream, &resp(&[b"set", b"k", b"\x00\xff"]), b"+OK\r\n").await;
        exchange(&mut stream, &resp(&[b"get", b"k"]), b"$2\r\n\x00\xff\r\n").await;
        // NX and XX.
        exchange(&mut stream, &resp(&[b"SET", b"k", b"x", b"NX"]), b"$-1\r\n").await;
        exchange(
            &mut stream,
            &resp(&[b"SET", b"new", b"x", b"XX"]),
            b"$-1\r\n",
        )
        .await;
        exchange(
            &mut stream,
            &resp(&[b"SET", b"new", b"y", b"nx"]),
            b"+OK\r\n",
        )
        .await;
        exchange(
            &mut stream,
            &resp(&[b"SET", b"new", b"z", b"xx"]),
            b"+OK\r\n",
        )
        .await;
        exchange(&mut stream, &resp(&[b"GET", b"new"]), b"$1\r\nz\r\n").await;
        exchange(
            &mut stream,
            &resp(&[b"SET", b"k", b"x", b"NX", b"XX"]),
            b"-ERR syntax error\r\n",
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
        exchange(
            &mut stream,
            &resp(&[b"SET", b"t", b"v", b"PX", b"100"]),
            b"+OK\r\n",
        )
        .await;
        exchange(
            &mut stream,
            &resp(&[b"SET", b"e", b"v", b"EX", b"100"]),
            b"+OK\r\n",
        )
        .await;
        exchange(&mut stream, &resp(&[b"GET", b"t"]), b"$1\r\nv\r\n").await;
        exchange(&mut stream, &resp(&[b"DBSIZE"]), b":2\r\n").await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        exchange(&mut stream, &resp(&[b"GET", b"t"]), b"$-1\r\n").await;
        exchange(&mut stream, &resp(&[b"EXISTS", b"t", b"e"]), b":1\r\n").await;
        exchange(&mut stream, &resp(&[b"DBSIZE"]), b":1\r\n").await;
        // SET without KEEPTTL drops the time to live; with it, keeps it.
        exchange(
            &mut stream,
            &resp(&[b"SET", b"t", b"v", b"px", b"100"]),
            b"+OK\r\n",
        )
        .await;
        exchange(
            &mut stream,
            &resp(&[b"SET", b"t", b"w", b"KEEPTTL"]),
            b"+OK\r\n",
        )
        .await;
        exchange(&mut stream, &resp(&[b"SET", b"e", b"w"]), b"+OK\r\n").await;
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
        exchange(&mut stream, &resp(&[b"INCR", b"n"]), b":1\r\n").await;
        exchange(&mut stream, &resp(&[b"INCR", b"n"]), b":2\r\n").await;
        exchange(&mut stream, &resp(&[b"DECR", b"n"]), b":1\r\n").await;
        exchange(&mut stream, &resp(&[b"INCRBY", b"n", b"-11"]), b":-10\r\n").await;
        exchange(&mut stream, &resp(&[b"GET", b"n"]), b"$3\r\n-10\r\n").await;
        exchange(&mut stream, &resp(&[b"SET", b"s", b"abc"]), b"+OK\r\n").await;
        exchange(
            &mut stream,
            &resp(&[b"INCR", b"s"]),
            b"-ERR value is not an integer or out of range\r\n",
        )
        .await;
        exchange(
            &mut stream,
            &resp(&[b"SET", b"max", b"9223372036854775807"]),
            b"+OK\r\n",
        )
        .await;
        exchange(
            &mut stream,
            &resp(&[b"INCR", b"max"]),
            b"-ERR increment or decrement would overflow\r\n",
        )
        .await;
        exchange(&mut stream, &resp(&[b"DBSIZE"]), b":3\r\n").await;
        exchange(
            &mut stream,
            &resp(&[b"EXISTS", b"n", b"n", b"nope"]),
            b":2\r\n",
        )
        .await;
        exchange(
            &mut stream,
            &resp(&[b"DEL", b"n", b"nope", b"n"]),
            b":1\r\n",
        )
        .await;
        exchange(&mut stream, &resp(&[b"EXISTS", b"n"]), b":0\r\n").await;
        exchange(&mut stream, &resp(&[b"DBSIZE"]), b":2\r\n").await;
        exchange(&mut stream, &resp(&[b"FLUSHALL"]), b"+OK\r\n").await;
        exchange(&mut stream, &resp(&[b"DBSIZE"]), b":0\r\n").await;
        exchange(&mut stream, &resp(&[b"GET", b"s"]), b"$-1\r\n").await;
    })
    .await;
}

#[tokio::test]
async fn redis_inline_commands() {
    bounded(async {
        let mut stream = connect(start_redis().await).await;
        exchange(&mut stream, b"PING\r\n", b"+PONG\r\n").await;
        exchange(&mut stream, b"set  greeting \t hello\r\n", b"+OK\r\n").await;
        exchange(&mut stream, b"GET greeting\r\n", b"$5\r\nhello\r\n").await;
        // Empty lines are ignored, as are `*0` and `*-1`.
        exchange(
            &mut stream,
            b"\r\n  \r\n*0\r\n*-1\r\nPING\r\n",
            b"+PONG\r\n",
        )
        .await;
        // An inline line split over several writes.
        stream.write_all(b"EC").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        stream.write_all(b"HO split").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        exchange(&mut stream, b"\r\n", b"$5\r\nsplit\r\n").await;
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
        stream.set_nodelay(true).unwrap();
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
            &resp(&[b"x\r\ny"]),
            b"-ERR unknown command 'x\\x0d\\x0ay', with args beginning with: \r\n",
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
        exchange(&mut stream, &resp(&[b"COMMAND", b"DOCS"]), b"*0\r\n").await;
        exchange(&mut stream, &resp(&[b"COMMAND"]), b"*0\r\n").await;
        exchange(
            &mut stream,
            &resp(&[b"CONFIG", b"GET", b"save"]),
            b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n",
        )
        .await;
        exchange(
            &mut stream,
            &resp(&[b"config", b"get", b"appendonly"]),
            b"*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n",
        )
        .await;
        exchange(
            &mut stream,
            &resp(&[b"CONFIG", b"GET", b"maxmemory"]),
            b"*0\r\n",
        )
        .await;
        exchange(&mut stream, &resp(&[b"SELECT", b"0"]), b"+OK\r\n").await;
        exchange(
            &mut stream,
            &resp(&[b"SELECT", b"1"]),
            b"-ERR DB index is out of range\r\n",
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
