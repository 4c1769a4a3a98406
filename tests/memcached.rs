//! The memcached example, started on an ephemeral port and driven over TCP:
//! every command, every error and limit, and a data block split at every
//! byte. The replies to commands within memcached's own limits are the ones
//! memcached 1.6.18 gives (scripts/memcached-clients.sh checks the same
//! commands against a real one); a comment says where this server answers
//! otherwise, and where its limits differ from memcached's.
//!
//! The example file is included as a module, so the tests run the very code
//! the binary runs. Every wait is bounded by a timeout.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    time::sleep,
};

#[path = "../examples/memcached.rs"]
#[allow(dead_code)]
mod memcached;

mod common;
use common::{bounded, connect, exchange, exchange_all, read_exactly, read_to_end, show, step};

use memcached::{store::ITEM_OVERHEAD, Config, Server};

async fn start_with(config: Config, threads: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(memcached::serve_with(
        listener,
        Arc::new(Server::new(config, threads)),
    ));
    address
}

async fn start() -> SocketAddr {
    start_with(Config::default(), 1).await
}

/// Checks that nothing came before the reply to `version`: commands with
/// `noreply` answered nothing, and no stray line was sent.
async fn nothing_pending(stream: &mut TcpStream) {
    let version = format!("VERSION {}\r\n", memcached::VERSION);
    exchange(stream, b"version\r\n", version.as_bytes()).await;
}

/// Reads until the reply ends with `END\r\n`.
async fn read_until_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut reply = Vec::new();
    step("END", async {
        while !reply.ends_with(b"END\r\n") {
            let mut chunk = [0; 4096];
            let read = stream.read(&mut chunk).await.unwrap();
            assert!(read > 0, "closed before END: {}", show(&reply));
            reply.extend_from_slice(&chunk[..read]);
        }
    })
    .await;
    reply
}

/// Sends each of `lines`, with `after` it (a line ending, perhaps a data
/// block), and expects `reply` to each.
async fn each_answered(stream: &mut TcpStream, lines: &[&[u8]], after: &[u8], reply: &[u8]) {
    for line in lines {
        exchange(stream, &[line, after].concat(), reply).await;
    }
}

async fn stats(stream: &mut TcpStream) -> HashMap<String, String> {
    stream.write_all(b"stats\r\n").await.unwrap();
    let reply = String::from_utf8(read_until_end(stream).await).unwrap();
    reply
        .lines()
        .filter_map(|line| line.strip_prefix("STAT "))
        .map(|stat| {
            let (name, value) = stat.split_once(' ').unwrap();
            (name.to_string(), value.to_string())
        })
        .collect()
}

/// A CAS unique from a `VALUE <key> <flags> <bytes> <cas>` line.
fn cas_of(reply: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(reply);
    let line = text.lines().next().unwrap();
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------------
// Storage and retrieval.

#[tokio::test]
async fn set_and_get_many_keys() {
    bounded(async {
        let mut stream = connect(start().await).await;
        exchange_all(
            &mut stream,
            &[
                (b"set a 5 0 3\r\none\r\n", b"STORED\r\n"),
                (b"set b 0 0 0\r\n\r\n", b"STORED\r\n"),
                (
                    b"get a missing b a\r\n",
                    b"VALUE a 5 3\r\none\r\nVALUE b 0 0\r\n\r\nVALUE a 5 3\r\none\r\nEND\r\n",
                ),
                // Runs of spaces separate words; leading and trailing ones are
                // ignored.
                (b"  get   a  \r\n", b"VALUE a 5 3\r\none\r\nEND\r\n"),
                (b"get nothing\r\n", b"END\r\n"),
                // Data may hold any byte, line endings included.
                (
                    b"set binary 4294967295 0 6\r\n\r\n\0\n\r\xff\r\n",
                    b"STORED\r\n",
                ),
                (
                    b"get binary\r\n",
                    b"VALUE binary 4294967295 6\r\n\r\n\0\n\r\xff\r\nEND\r\n",
                ),
            ],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn lines_may_end_in_a_bare_newline() {
    bounded(async {
        let mut stream = connect(start().await).await;
        // The data block still ends in \r\n, as memcached wants.
        exchange_all(
            &mut stream,
            &[
                (
                    b"set a 0 0 2\nhi\r\nget a\n",
                    b"STORED\r\nVALUE a 0 2\r\nhi\r\nEND\r\n",
                ),
                (b"delete a\ndelete a\n", b"DELETED\r\nNOT_FOUND\r\n"),
                // A block that ends in a bare \n is a bad chunk, as in memcached:
                // `hi\ng` is read for the block, `et a` as a command.
                (
                    b"set a 0 0 2\nhi\nget a\n",
                    b"CLIENT_ERROR bad data chunk\r\nERROR\r\n",
                ),
            ],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn gets_and_cas() {
    bounded(async {
        let mut stream = connect(start().await).await;
        // CAS uniques come from one counter, from 1, as in memcached.
        exchange_all(
            &mut stream,
            &[
                (b"set k 0 0 1\r\na\r\n", b"STORED\r\n"),
                (b"gets k\r\n", b"VALUE k 0 1 1\r\na\r\nEND\r\n"),
                (b"cas k 7 0 1 2\r\nb\r\n", b"EXISTS\r\n"),
                (b"cas k 7 0 1 1\r\nb\r\n", b"STORED\r\n"),
                (b"gets k\r\n", b"VALUE k 7 1 2\r\nb\r\nEND\r\n"),
                // The unique is spent: the same cas again finds a newer item.
                (b"cas k 0 0 1 1\r\nc\r\n", b"EXISTS\r\n"),
                (b"cas nothing 0 0 1 2\r\nc\r\n", b"NOT_FOUND\r\n"),
                (
                    b"cas k 0 0 1 x\r\nc\r\n",
                    b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
                ),
                (b"cas k 0 0 1\r\n", b"ERROR\r\n"),
                // Every change makes a new unique: touch does not.
                (b"append k 0 0 1\r\nd\r\n", b"STORED\r\n"),
            ],
        )
        .await;
        stream.write_all(b"gets k\r\n").await.unwrap();
        let after_append = cas_of(&read_until_end(&mut stream).await);
        exchange(&mut stream, b"touch k 100\r\n", b"TOUCHED\r\n").await;
        stream.write_all(b"gets k\r\n").await.unwrap();
        assert_eq!(cas_of(&read_until_end(&mut stream).await), after_append);
    })
    .await;
}

#[tokio::test]
async fn add_replace_append_prepend() {
    bounded(async {
        let mut stream = connect(start().await).await;
        exchange_all(
            &mut stream,
            &[
                (b"replace k 0 0 1\r\na\r\n", b"NOT_STORED\r\n"),
                (b"append k 0 0 1\r\na\r\n", b"NOT_STORED\r\n"),
                (b"prepend k 0 0 1\r\na\r\n", b"NOT_STORED\r\n"),
                (b"add k 3 0 1\r\nb\r\n", b"STORED\r\n"),
                (b"add k 0 0 1\r\nc\r\n", b"NOT_STORED\r\n"),
                // append and prepend keep the flags and the exptime of the item.
                (b"append k 9 -1 2\r\ncd\r\n", b"STORED\r\n"),
                (b"prepend k 9 -1 1\r\na\r\n", b"STORED\r\n"),
                (b"get k\r\n", b"VALUE k 3 4\r\nabcd\r\nEND\r\n"),
                (b"replace k 1 0 1\r\nz\r\n", b"STORED\r\n"),
                (b"get k\r\n", b"VALUE k 1 1\r\nz\r\nEND\r\n"),
            ],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn noreply_suppresses_every_reply() {
    bounded(async {
        let mut stream = connect(start().await).await;
        stream
            .write_all(
                b"set a 0 0 1 noreply\r\n1\r\n\
                  add a 0 0 1 noreply\r\n2\r\n\
                  replace a 0 0 2 noreply\r\n10\r\n\
                  append a 0 0 1 noreply\r\n0\r\n\
                  prepend a 0 0 1 noreply\r\n1\r\n\
                  cas a 0 0 1 99 noreply\r\nx\r\n\
                  incr a 5 noreply\r\n\
                  decr nothing 1 noreply\r\n\
                  touch a 0 noreply\r\n\
                  set b 0 0 1 noreply\r\nxyz\r\n\
                  delete nothing noreply\r\n\
                  delete nothing 0 noreply\r\n\
                  incr a x noreply\r\n\
                  verbosity 1 noreply\r\n\
                  get a\r\n",
            )
            .await
            .unwrap();
        // `xyz` is a bad chunk (its error unsaid), then `\r\n` an empty line.
        let reply = b"ERROR\r\nVALUE a 0 4\r\n1105\r\nEND\r\n";
        assert_eq!(
            show(&read_exactly(&mut stream, reply.len()).await),
            show(reply)
        );
        exchange(&mut stream, b"flush_all noreply\r\nget a\r\n", b"END\r\n").await;
        nothing_pending(&mut stream).await;
        // A wrong number of words is answered even with noreply: memcached
        // checks it before it looks for noreply.
        exchange(&mut stream, b"set a 0 0 1 noreply extra\r\n", b"ERROR\r\n").await;
        // A word other than noreply in its place is ignored.
        exchange(&mut stream, b"set a 0 0 1 junk\r\nx\r\n", b"STORED\r\n").await;
    })
    .await;
}

#[tokio::test]
async fn delete() {
    bounded(async {
        let mut stream = connect(start().await).await;
        exchange_all(
            &mut stream,
            &[
                (b"set a 0 0 1\r\nx\r\n", b"STORED\r\n"),
                (b"delete a\r\n", b"DELETED\r\n"),
                (b"delete a\r\n", b"NOT_FOUND\r\n"),
                (b"get a\r\n", b"END\r\n"),
                // The hold time of old clients, 0, is taken.
                (b"set a 0 0 1\r\nx\r\n", b"STORED\r\n"),
                (b"delete a 0\r\n", b"DELETED\r\n"),
            ],
        )
        .await;
        let usage = b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n";
        exchange_all(
            &mut stream,
            &[
                (b"delete a 10\r\n", usage),
                (b"delete a x noreply\r\n", b""),
                (b"delete a 0 x\r\n", usage),
                (b"delete\r\n", b"ERROR\r\n"),
                (b"delete a 0 noreply x\r\n", b"ERROR\r\n"),
            ],
        )
        .await;
        nothing_pending(&mut stream).await;
    })
    .await;
}

#[tokio::test]
async fn incr_and_decr() {
    bounded(async {
        let mut stream = connect(start().await).await;
        exchange_all(
            &mut stream,
            &[
                (b"incr n 1\r\n", b"NOT_FOUND\r\n"),
                (b"decr n 1\r\n", b"NOT_FOUND\r\n"),
                (b"set n 3 0 3\r\n100\r\n", b"STORED\r\n"),
                (b"incr n 23\r\n", b"123\r\n"),
                // A shorter number keeps the length, padded with spaces, as
                // memcached stores it; the reply has no padding.
                (b"decr n 24\r\n", b"99\r\n"),
                (b"get n\r\n", b"VALUE n 3 3\r\n99 \r\nEND\r\n"),
                (b"decr n 1000\r\n", b"0\r\n"),
                (b"get n\r\n", b"VALUE n 3 3\r\n0  \r\nEND\r\n"),
                // A longer number makes a longer item, with the same flags.
                (
                    b"incr n 18446744073709551615\r\n",
                    b"18446744073709551615\r\n",
                ),
                (b"incr n 2\r\n", b"1\r\n"), // wraps at 2^64
                (
                    b"get n\r\n",
                    b"VALUE n 3 20\r\n1                   \r\nEND\r\n",
                ),
                // Numbers as C's strtoull reads them: blanks and a sign.
                (b"set n 0 0 4\r\n  7 \r\n", b"STORED\r\n"),
                (b"incr n +3\r\n", b"10\r\n"),
                (b"incr n -0\r\n", b"10\r\n"),
            ],
        )
        .await;
        let bad_delta = b"CLIENT_ERROR invalid numeric delta argument\r\n";
        exchange_all(
            &mut stream,
            &[
                (b"incr n -1\r\n", bad_delta),
                (b"incr n 1x\r\n", bad_delta),
                (b"incr n 18446744073709551616\r\n", bad_delta),
            ],
        )
        .await;
        let non_numeric = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
        for value in [&b"abc"[..], b"12abc", b"", b"18446744073709551616", b"-5"] {
            let mut set = format!("set n 0 0 {}\r\n", value.len()).into_bytes();
            set.extend_from_slice(value);
            set.extend_from_slice(b"\r\n");
            exchange(&mut stream, &set, b"STORED\r\n").await;
            exchange(&mut stream, b"incr n 1\r\n", non_numeric).await;
        }
        exchange(&mut stream, b"incr n\r\n", b"ERROR\r\n").await;
        exchange(&mut stream, b"incr n 1 noreply x\r\n", b"ERROR\r\n").await;
    })
    .await;
}

// ---------------------------------------------------------------------------
// Expiration.

#[tokio::test]
async fn exptimes_relative_absolute_and_negative() {
    bounded(async {
        let mut stream = connect(start().await).await;
        // Negative: expired at once. A Unix time in the past: the same.
        exchange(
            &mut stream,
            b"set a 0 -1 1\r\nx\r\nget a\r\n",
            b"STORED\r\nEND\r\n",
        )
        .await;
        let past = format!("set a 0 {} 1\r\nx\r\nget a\r\n", unix_now() - 10);
        exchange(&mut stream, past.as_bytes(), b"STORED\r\nEND\r\n").await;
        // Past 30 days is a Unix time: this one is in the future.
        let future = format!("set a 0 {} 1\r\nx\r\nget a\r\n", unix_now() + 100);
        exchange(
            &mut stream,
            future.as_bytes(),
            b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
        )
        .await;
        // 30 days exactly is still counted from now.
        exchange_all(
            &mut stream,
            &[
                (
                    b"set b 0 2592000 1\r\ny\r\nget b\r\n",
                    b"STORED\r\nVALUE b 0 1\r\ny\r\nEND\r\n",
                ),
                // An expired key is free for add.
                (
                    b"set c 0 -1 1\r\nx\r\nadd c 0 0 1\r\nz\r\nget c\r\n",
                    b"STORED\r\nSTORED\r\nVALUE c 0 1\r\nz\r\nEND\r\n",
                ),
                (
                    b"set a 0 x 1\r\n",
                    b"CLIENT_ERROR bad command line format\r\n",
                ),
                // memcached would keep the low 32 bits of 2^32 + 1, that is 1
                // second; this server refuses the number.
                (
                    b"set a 0 4294967297 1\r\n",
                    b"CLIENT_ERROR bad command line format\r\n",
                ),
                // Relative: there for a second, then gone.
                (
                    b"set soon 0 1 1\r\nx\r\nget soon\r\n",
                    b"STORED\r\nVALUE soon 0 1\r\nx\r\nEND\r\n",
                ),
                (b"set later 0 100 1\r\ny\r\n", b"STORED\r\n"),
            ],
        )
        .await;
        sleep(Duration::from_millis(1100)).await;
        exchange(
            &mut stream,
            b"get soon later\r\n",
            b"VALUE later 0 1\r\ny\r\nEND\r\n",
        )
        .await;
        let stats = stats(&mut stream).await;
        assert!(stats["get_expired"].parse::<u64>().unwrap() >= 1);
    })
    .await;
}

#[tokio::test]
async fn touch_gat_and_gats() {
    bounded(async {
        let mut stream = connect(start().await).await;
        exchange_all(
            &mut stream,
            &[
                (b"touch a 10\r\n", b"NOT_FOUND\r\n"),
                (b"set a 2 0 1\r\nx\r\n", b"STORED\r\n"),
                (b"touch a 10\r\n", b"TOUCHED\r\n"),
                (
                    b"touch a x\r\n",
                    b"CLIENT_ERROR invalid exptime argument\r\n",
                ),
                (b"touch a\r\n", b"ERROR\r\n"),
                (b"gat 100 a b\r\n", b"VALUE a 2 1\r\nx\r\nEND\r\n"),
                (b"gats 100 a\r\n", b"VALUE a 2 1 1\r\nx\r\nEND\r\n"),
                (b"gat 10\r\n", b"END\r\n"),
                (b"gat x a\r\n", b"CLIENT_ERROR invalid exptime argument\r\n"),
                (b"gat\r\n", b"ERROR\r\n"),
                // The item is returned with its new exptime, then gone: as memcached.
                (
                    b"gat -1 a\r\nget a\r\n",
                    b"VALUE a 2 1\r\nx\r\nEND\r\nEND\r\n",
                ),
                (
                    b"set b 0 0 1\r\ny\r\ntouch b -1\r\nget b\r\n",
                    b"STORED\r\nTOUCHED\r\nEND\r\n",
                ),
            ],
        )
        .await;
        let stats = stats(&mut stream).await;
        assert_eq!(stats["cmd_touch"], "7");
        assert_eq!(stats["touch_hits"], "5");
        assert_eq!(stats["touch_misses"], "2");
    })
    .await;
}

#[tokio::test]
async fn flush_all_now_and_later() {
    bounded(async {
        let mut stream = connect(start().await).await;
        exchange_all(
            &mut stream,
            &[
                (
                    b"set a 0 0 1\r\nx\r\nset b 0 0 1\r\ny\r\n",
                    b"STORED\r\nSTORED\r\n",
                ),
                (b"flush_all\r\nget a b\r\n", b"OK\r\nEND\r\n"),
                (
                    b"set a 0 0 1\r\nx\r\nflush_all 0\r\nget a\r\n",
                    b"STORED\r\nOK\r\nEND\r\n",
                ),
                (
                    b"flush_all x\r\n",
                    b"CLIENT_ERROR invalid exptime argument\r\n",
                ),
                (b"flush_all 1 2 3\r\n", b"ERROR\r\n"),
                (b"flush_all -1\r\n", b"OK\r\n"),
                // In a second: what was stored before then goes, what comes after stays.
                (b"set a 0 0 1\r\nx\r\n", b"STORED\r\n"),
                (
                    b"flush_all 1\r\nget a\r\n",
                    b"OK\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
                ),
                (b"set b 0 0 1\r\ny\r\n", b"STORED\r\n"),
            ],
        )
        .await;
        sleep(Duration::from_millis(1100)).await;
        exchange_all(
            &mut stream,
            &[
                (b"set c 0 0 1\r\nz\r\n", b"STORED\r\n"),
                (b"get a b c\r\n", b"VALUE c 0 1\r\nz\r\nEND\r\n"),
                // A later flush_all replaces a pending one.
                (b"flush_all 1 noreply\r\nflush_all 100\r\n", b"OK\r\n"),
            ],
        )
        .await;
        sleep(Duration::from_millis(1100)).await;
        exchange(&mut stream, b"get c\r\n", b"VALUE c 0 1\r\nz\r\nEND\r\n").await;
    })
    .await;
}

// ---------------------------------------------------------------------------
// Errors and the other commands.

#[tokio::test]
async fn unknown_commands_and_wrong_word_counts_get_error() {
    bounded(async {
        let mut stream = connect(start().await).await;
        each_answered(
            &mut stream,
            &[
                b"bogus",
                b"",
                b"   ",
                b"x",
                b"SET a 0 0 1",
                b"GET a",
                b"get",
                b"get\ta",
                b"set a 0 0",
                b"set a 0 0 1 noreply extra",
                b"incr",
                b"verbosity",
                b"verbosity 1 2 3",
                b"flush_all 1 2 3",
                b"stats bogus",
                b"GET / HTTP/1.1 extra",
            ],
            b"\r\n",
            b"ERROR\r\n",
        )
        .await;
        // Not implemented here: memcached answers these otherwise.
        each_answered(
            &mut stream,
            &[
                b"mg a v",
                b"ms a 1",
                b"stats settings",
                b"shutdown",
                b"slabs automove 1",
            ],
            b"\r\n",
            b"ERROR\r\n",
        )
        .await;
        // A NUL ends the line, as memcached's strlen ends it.
        exchange(&mut stream, b"get a\0 b c\r\n", b"END\r\n").await;
        nothing_pending(&mut stream).await;
    })
    .await;
}

#[tokio::test]
async fn version_verbosity_and_stats() {
    bounded(async {
        let address = start().await;
        let mut stream = connect(address).await;
        let version = format!("VERSION {}\r\n", memcached::VERSION);
        exchange(&mut stream, b"version\r\n", version.as_bytes()).await;
        exchange(&mut stream, b"version extra words\r\n", version.as_bytes()).await;
        exchange(&mut stream, b"verbosity 1\r\n", b"OK\r\n").await;
        exchange(
            &mut stream,
            b"verbosity x\r\n",
            b"CLIENT_ERROR bad command line format\r\n",
        )
        .await;

        let mut second = connect(address).await;
        nothing_pending(&mut second).await;
        exchange_all(
            &mut stream,
            &[
                (
                    b"set a 0 0 2\r\nhi\r\nset b 0 0 1\r\nx\r\n",
                    b"STORED\r\nSTORED\r\n",
                ),
                (
                    b"get a b c\r\n",
                    b"VALUE a 0 2\r\nhi\r\nVALUE b 0 1\r\nx\r\nEND\r\n",
                ),
                (b"delete b\r\n", b"DELETED\r\n"),
            ],
        )
        .await;
        let stats = stats(&mut stream).await;
        assert_eq!(stats["pid"], std::process::id().to_string());
        assert!(stats["uptime"].parse::<u64>().is_ok());
        assert_eq!(stats["version"], memcached::VERSION);
        assert_eq!(stats["curr_connections"], "2");
        assert_eq!(stats["cmd_get"], "3");
        assert_eq!(stats["get_hits"], "2");
        assert_eq!(stats["get_misses"], "1");
        assert_eq!(stats["cmd_set"], "2");
        assert_eq!(stats["delete_hits"], "1");
        assert_eq!(stats["curr_items"], "1");
        assert_eq!(stats["total_items"], "2");
        assert_eq!(stats["bytes"], (1 + 2 + ITEM_OVERHEAD).to_string());
        assert_eq!(stats["limit_maxbytes"], (64 << 20).to_string());
        assert_eq!(stats["threads"], "1");
    })
    .await;
}

#[tokio::test]
async fn storage_line_errors() {
    bounded(async {
        let mut stream = connect(start().await).await;
        // No data block is read after a refused line: memcached reads the
        // block as a command, and so does this server.
        each_answered(
            &mut stream,
            &[
                b"set a x 0 1",
                b"set a -1 0 1",
                b"set a 0 x 1",
                b"set a 0 0 x",
                b"set a 0 0 -1",
                b"set a 0 0 2147483646",
                b"set a 0 0 1x",
            ],
            b"\r\nx\r\n",
            b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
        )
        .await;
        // Flags are 32 bits: memcached would keep the low 32 bits of a larger
        // number; this server refuses it.
        exchange(
            &mut stream,
            b"set a 4294967296 0 1\r\n",
            b"CLIENT_ERROR bad command line format\r\n",
        )
        .await;
        exchange(&mut stream, b"set a 0 0 1 noreply\r\nxy\r\n", b"ERROR\r\n").await;
        nothing_pending(&mut stream).await;
    })
    .await;
}

#[tokio::test]
async fn keys_up_to_250_bytes() {
    bounded(async {
        let mut stream = connect(start().await).await;
        let key = "k".repeat(250);
        let long = "k".repeat(251);
        let set = format!("set {key} 0 0 1\r\nx\r\n");
        exchange(&mut stream, set.as_bytes(), b"STORED\r\n").await;
        let get = format!("get {key}\r\n");
        let value = format!("VALUE {key} 0 1\r\nx\r\nEND\r\n");
        exchange(&mut stream, get.as_bytes(), value.as_bytes()).await;
        let bad = b"CLIENT_ERROR bad command line format\r\n";
        // One overlong key refuses the whole get.
        exchange(&mut stream, format!("get {key} {long}\r\n").as_bytes(), bad).await;
        exchange(&mut stream, format!("gat 0 {long}\r\n").as_bytes(), bad).await;
        exchange(&mut stream, format!("delete {long}\r\n").as_bytes(), bad).await;
        exchange(&mut stream, format!("incr {long} 1\r\n").as_bytes(), bad).await;
        exchange(&mut stream, format!("touch {long} 1\r\n").as_bytes(), bad).await;
        let mut refused_set = bad.to_vec();
        refused_set.extend_from_slice(b"ERROR\r\n");
        exchange(
            &mut stream,
            format!("set {long} 0 0 1\r\nx\r\n").as_bytes(),
            &refused_set,
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_bad_data_chunk_is_refused_and_the_item_kept() {
    bounded(async {
        let mut stream = connect(start().await).await;
        exchange_all(
            &mut stream,
            &[
                (b"set a 0 0 1\r\nx\r\n", b"STORED\r\n"),
                // Three bytes are read for one byte and \r\n: `xyz`, which does not
                // end in \r\n. The \r\n after it is an empty line.
                (
                    b"set a 0 0 1\r\nxyz\r\nget a\r\n",
                    b"CLIENT_ERROR bad data chunk\r\nERROR\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
                ),
                (b"set a 0 0 2\r\nab\rX", b"CLIENT_ERROR bad data chunk\r\n"),
            ],
        )
        .await;
        let stats = stats(&mut stream).await;
        assert_eq!(stats["cmd_set"], "3");
    })
    .await;
}

// ---------------------------------------------------------------------------
// Limits.

// memcached's limit of 1 MiB counts the key and an item header too: it
// refuses this value, and takes one of 1 MiB less 59 bytes and the key.
#[tokio::test]
async fn items_up_to_the_size_limit() {
    bounded(async {
        let mut stream = connect(start().await).await;
        let value: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
        let mut set = b"set big 1 0 1048576\r\n".to_vec();
        set.extend_from_slice(&value);
        set.extend_from_slice(b"\r\n");
        exchange(&mut stream, &set, b"STORED\r\n").await;
        let mut reply = b"VALUE big 1 1048576\r\n".to_vec();
        reply.extend_from_slice(&value);
        reply.extend_from_slice(b"\r\nEND\r\n");
        exchange_all(
            &mut stream,
            &[
                (b"get big\r\n", &reply),
                // Appending past the limit is not stored; the item stays.
                (b"append big 0 0 1\r\nx\r\n", b"NOT_STORED\r\n"),
                (
                    b"incr big 1\r\n",
                    b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
                ),
            ],
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_block_over_the_limit_is_refused_skipped_and_the_connection_goes_on() {
    bounded(async {
        let config = Config {
            max_item_size: 1024,
            ..Config::default()
        };
        let mut stream = connect(start_with(config, 1).await).await;
        exchange(&mut stream, b"set a 0 0 1024\r\n", b"").await;
        stream.write_all(&[b'a'; 1024]).await.unwrap();
        exchange(&mut stream, b"\r\n", b"STORED\r\n").await;

        // The reply comes before the block does: the codec refuses the
        // length at once and skips the block as it arrives.
        exchange(
            &mut stream,
            b"set a 0 0 1025\r\n",
            b"SERVER_ERROR object too large for cache\r\n",
        )
        .await;
        // 4 MiB of data that would look like commands if they were read as
        // lines: none of it is.
        let block = b"get a\r\n".repeat(4 << 20 >> 3);
        let mut skipped = format!("set b 0 0 {}\r\n", block.len()).into_bytes();
        skipped.extend_from_slice(&block);
        skipped.extend_from_slice(b"\r\n");
        let (mut reader, mut writer) = stream.into_split();
        let send = tokio::spawn(async move {
            writer.write_all(&[b'x'; 1025]).await.unwrap();
            writer.write_all(b"\r\n").await.unwrap();
            writer.write_all(&skipped).await.unwrap();
            writer.write_all(b"get a b\r\n").await.unwrap();
            writer
        });
        // A set refused for its size forgets the key's old item, as in
        // memcached: nobody reads the value it meant to replace.
        let expected = b"SERVER_ERROR object too large for cache\r\nEND\r\n";
        let mut got = vec![0; expected.len()];
        step("replies", reader.read_exact(&mut got)).await.unwrap();
        assert_eq!(show(&got), show(expected));
        let writer = step("writes", send).await.unwrap();
        let mut stream = reader.reunite(writer).unwrap();

        // Other storage commands keep the item.
        exchange(&mut stream, b"set a 0 0 1\r\nx\r\n", b"STORED\r\n").await;
        exchange(
            &mut stream,
            b"append a 0 0 2000\r\n",
            b"SERVER_ERROR object too large for cache\r\n",
        )
        .await;
        stream.write_all(&[b'y'; 2002]).await.unwrap();
        exchange(&mut stream, b"get a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n").await;
        // With noreply the error is unsaid; the set still forgets the item.
        exchange(&mut stream, b"set a 0 0 5000 noreply\r\n", b"").await;
        stream.write_all(&[b'z'; 5002]).await.unwrap();
        exchange(&mut stream, b"get a\r\n", b"END\r\n").await;
        let stats = stats(&mut stream).await;
        assert_eq!(stats["store_too_large"], "4");
    })
    .await;
}

/// `get` and keys of 250 bytes making a line of exactly `length` bytes.
fn get_line(length: usize) -> Vec<u8> {
    let mut line = b"get".to_vec();
    while line.len() < length {
        let key_length = (length - line.len() - 1).min(250);
        line.push(b' ');
        line.extend(std::iter::repeat(b'k').take(key_length));
    }
    assert_eq!(line.len(), length);
    line
}

// memcached reads a longer line that arrives in one read (this get would
// get END), and closes the connection when 2048 bytes without a newline are
// waiting, unless they begin a get.
#[tokio::test]
async fn lines_up_to_2048_bytes() {
    bounded(async {
        let mut stream = connect(start().await).await;
        let mut line = get_line(2048);
        line.extend_from_slice(b"\r\n");
        exchange(&mut stream, &line, b"END\r\n").await;
        // Its \r waits for the \n: a line at the limit with a split line
        // ending is still a line.
        stream.write_all(&get_line(2048)).await.unwrap();
        tokio::task::yield_now().await;
        stream.write_all(b"\r").await.unwrap();
        tokio::task::yield_now().await;
        exchange(&mut stream, b"\n", b"END\r\n").await;
        let mut line = get_line(2048);
        line.push(b'\n');
        exchange(&mut stream, &line, b"END\r\n").await;

        // One byte more: refused, skipped, and the next line is read.
        let mut line = get_line(2049);
        line.extend_from_slice(b"\r\nget a\r\n");
        exchange(
            &mut stream,
            &line,
            b"CLIENT_ERROR bad command line format\r\nEND\r\n",
        )
        .await;
        // A line that never ends is refused as soon as it passes the limit,
        // not when (if ever) it ends.
        exchange(
            &mut stream,
            &[b'x'; 3000],
            b"CLIENT_ERROR bad command line format\r\n",
        )
        .await;
        exchange(&mut stream, &[b'x'; 100_000], b"").await;
        exchange(&mut stream, b"\nget a\r\n", b"END\r\n").await;
    })
    .await;
}

#[tokio::test]
async fn least_recently_used_items_go_first() {
    bounded(async {
        // Room for three items of a 1-byte key and a 10-byte value.
        let item = 1 + 10 + ITEM_OVERHEAD;
        let config = Config {
            memory_limit: 3 * item + item / 2,
            max_item_size: 4 * item,
            ..Config::default()
        };
        let mut stream = connect(start_with(config, 1).await).await;
        for key in ["a", "b", "c"] {
            let set = format!("set {key} 0 0 10\r\n0123456789\r\n");
            exchange(&mut stream, set.as_bytes(), b"STORED\r\n").await;
        }
        // `a` is used, so `b` is now the least recently used.
        exchange(
            &mut stream,
            b"get a\r\n",
            b"VALUE a 0 10\r\n0123456789\r\nEND\r\n",
        )
        .await;
        exchange(
            &mut stream,
            b"set d 0 0 10\r\n0123456789\r\n",
            b"STORED\r\n",
        )
        .await;
        stream.write_all(b"get a b c d\r\n").await.unwrap();
        let reply = String::from_utf8(read_until_end(&mut stream).await).unwrap();
        let keys: Vec<&str> = reply
            .lines()
            .filter_map(|line| line.strip_prefix("VALUE "))
            .map(|line| line.split(' ').next().unwrap())
            .collect();
        assert_eq!(keys, ["a", "c", "d"]);
        // A larger item makes room for itself: several go.
        let big = "x".repeat(2 * item);
        let set = format!("set e 0 0 {}\r\n{big}\r\n", big.len());
        exchange(&mut stream, set.as_bytes(), b"STORED\r\n").await;
        let stats = stats(&mut stream).await;
        assert_eq!(stats["evictions"], "4");
        assert_eq!(stats["curr_items"], "1");
        assert!(stats["bytes"].parse::<usize>().unwrap() <= 3 * item + item / 2);
        // One larger than all the memory is refused.
        let huge = "x".repeat(4 * item);
        let set = format!("set f 0 0 {}\r\n{huge}\r\n", huge.len());
        exchange(
            &mut stream,
            set.as_bytes(),
            b"SERVER_ERROR out of memory storing object\r\n",
        )
        .await;
    })
    .await;
}

// ---------------------------------------------------------------------------
// Framing across reads, pipelining, the end of a connection.

#[tokio::test]
async fn a_command_and_its_data_split_at_every_byte() {
    bounded(async {
        let address = start().await;
        let request: &[u8] = b"set k 3 0 5\r\nhe\r\no\r\nappend k 0 0 1\nX\r\nget k\nincr n 1\r\n";
        let reply: &[u8] = b"STORED\r\nSTORED\r\nVALUE k 3 6\r\nhe\r\noX\r\nEND\r\nNOT_FOUND\r\n";
        for split in 1..request.len() {
            let mut stream = connect(address).await;
            stream.write_all(&request[..split]).await.unwrap();
            // On this one-thread runtime the server reads the first part
            // before the second is sent.
            tokio::task::yield_now().await;
            stream.write_all(&request[split..]).await.unwrap();
            let got = read_exactly(&mut stream, reply.len()).await;
            assert_eq!(show(&got), show(reply), "split at {split}");
        }
        // And every byte on its own.
        let mut stream = connect(address).await;
        for byte in request {
            stream.write_all(&[*byte]).await.unwrap();
            tokio::task::yield_now().await;
        }
        let got = read_exactly(&mut stream, reply.len()).await;
        assert_eq!(show(&got), show(reply));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_replies_leave_in_one_write() {
    bounded(async {
        let mut stream = connect(start_with(Config::default(), 2).await).await;
        let mut request = Vec::new();
        let mut reply = Vec::new();
        // Fewer than the 4 KiB of the server's first read, so that the
        // request arrives in one read.
        for i in 0..40 {
            request.extend_from_slice(format!("set key{i} {i} 0 2\r\nv{}\r\n", i % 10).as_bytes());
            request.extend_from_slice(format!("get key{i}\r\nincr key{i} 1\r\n").as_bytes());
            reply.extend_from_slice(b"STORED\r\n");
            reply.extend_from_slice(
                format!("VALUE key{i} {i} 2\r\nv{}\r\nEND\r\n", i % 10).as_bytes(),
            );
            reply.extend_from_slice(
                b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
            );
        }
        stream.write_all(&request).await.unwrap();
        // Everything was answered in one write, so the first read, however
        // soon it comes, gets all of it.
        let mut first = vec![0; reply.len() + 1];
        let read = step("a reply", stream.read(&mut first)).await.unwrap();
        assert_eq!(show(&first[..read]), show(&reply));
    })
    .await;
}

#[tokio::test]
async fn a_pipeline_that_outgrows_64_kib_of_replies() {
    bounded(async {
        let mut stream = connect(start().await).await;
        let value = vec![b'v'; 1000];
        let mut set = b"set k 0 0 1000\r\n".to_vec();
        set.extend_from_slice(&value);
        set.extend_from_slice(b"\r\n");
        exchange(&mut stream, &set, b"STORED\r\n").await;
        let request = b"get k\r\n".repeat(1000);
        let mut one = b"VALUE k 0 1000\r\n".to_vec();
        one.extend_from_slice(&value);
        one.extend_from_slice(b"\r\nEND\r\n");
        let reply = one.repeat(1000);
        let (mut reader, mut writer) = stream.into_split();
        let send = tokio::spawn(async move { writer.write_all(&request).await.unwrap() });
        let mut got = vec![0; reply.len()];
        step("replies", reader.read_exact(&mut got)).await.unwrap();
        assert!(got == reply, "1000 replies of 1 KB, in order");
        step("writes", send).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn quit_closes_after_the_replies() {
    bounded(async {
        let mut stream = connect(start().await).await;
        stream
            .write_all(b"set a 0 0 1\r\nx\r\nget a\r\nquit\r\nget a\r\n")
            .await
            .unwrap();
        let got = read_to_end(&mut stream).await;
        assert_eq!(show(&got), show(b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n"));
    })
    .await;
}

#[tokio::test]
async fn an_http_request_is_dropped() {
    bounded(async {
        let address = start().await;
        let mut stream = connect(address).await;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_to_end(&mut stream).await, b"");
        // A command memcached sorts by its first letter is answered.
        let mut stream = connect(address).await;
        exchange(&mut stream, b"get / HTTP/1.1\r\n", b"END\r\n").await;
    })
    .await;
}

#[tokio::test]
async fn the_end_of_input_still_gets_the_replies() {
    bounded(async {
        let mut stream = connect(start().await).await;
        stream
            .write_all(b"set a 0 0 1\r\nx\r\nget a\r\nset b 0 0 10\r\nabc")
            .await
            .unwrap();
        stream.shutdown().await.unwrap();
        let got = read_to_end(&mut stream).await;
        assert_eq!(show(&got), show(b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_on_several_threads_share_the_cache() {
    bounded(async {
        let address = start_with(Config::default(), 2).await;
        let mut stream = connect(address).await;
        exchange(&mut stream, b"set n 0 0 1\r\n0\r\n", b"STORED\r\n").await;
        let clients: Vec<_> = (0..8)
            .map(|_| {
                tokio::spawn(async move {
                    let mut stream = connect(address).await;
                    stream
                        .write_all(&b"incr n 1\r\n".repeat(250))
                        .await
                        .unwrap();
                    stream.write_all(b"quit\r\n").await.unwrap();
                    let replies = read_to_end(&mut stream).await;
                    assert_eq!(replies.iter().filter(|&&byte| byte == b'\n').count(), 250);
                })
            })
            .collect();
        for client in clients {
            step("a client", client).await.unwrap();
        }
        exchange(&mut stream, b"get n\r\n", b"VALUE n 0 4\r\n2000\r\nEND\r\n").await;
    })
    .await;
}
