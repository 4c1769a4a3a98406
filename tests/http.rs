//! examples/http_server, started on ephemeral ports and driven over TCP.
//!
//! The example keeps its server in a function (`serve`, `serve_with`) that
//! its `main` calls; its files are included here as a module so the tests
//! run the very code the binary runs. Every wait is bounded by a timeout.

use std::{future::Future, net::SocketAddr, path::PathBuf, time::Duration};

use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{tcp::OwnedReadHalf, TcpListener, TcpStream},
    time::timeout,
};

#[path = "../examples/http_server/main.rs"]
#[allow(dead_code)]
mod http_server;

mod common;
use common::{bounded, connect, read_to_end, step};

use http_server::Config;

/// The server with the default configuration but for what `configure`
/// changes in it.
async fn start_with(configure: impl FnOnce(&mut Config)) -> SocketAddr {
    let mut config = Config::default();
    configure(&mut config);
    let listener: TcpListener = http_server::listen(0).unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(http_server::serve_with(listener, config));
    address
}

async fn start() -> SocketAddr {
    start_with(|_| {}).await
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

    /// The value of a string member of the JSON echo, unescaped only as far
    /// as the tests need (no escapes).
    fn json_string(&self, key: &str) -> Option<&str> {
        let start = self.body.find(&format!("\"{key}\":\""))? + key.len() + 4;
        let length = self.body[start..].find('"')?;
        Some(&self.body[start..start + length])
    }
}

/// Reads one response: status line, headers, and a body of `Content-Length`
/// (none for a 100 Continue or when `head_only`).
async fn read_response(reader: &mut (impl AsyncBufRead + Unpin), head_only: bool) -> Response {
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

/// Sends `request` on a new connection; the connection, to read from.
async fn send(address: SocketAddr, request: &[u8]) -> BufReader<TcpStream> {
    let mut stream = connect(address).await;
    stream.write_all(request).await.unwrap();
    BufReader::new(stream)
}

/// Sends `request` on a new connection and reads one response.
async fn http_once(address: SocketAddr, request: &[u8]) -> (Response, BufReader<TcpStream>) {
    let mut reader = send(address, request).await;
    let response = read_response(&mut reader, false).await;
    (response, reader)
}

/// Sends `request` on the connection `reader` reads and reads one response.
async fn send_and_read(reader: &mut BufReader<TcpStream>, request: &[u8]) -> Response {
    reader.get_mut().write_all(request).await.unwrap();
    read_response(reader, false).await
}

/// Reads `count` responses, none to a HEAD.
async fn read_responses(mut reader: impl AsyncBufRead + Unpin, count: usize) -> Vec<Response> {
    let mut responses = Vec::with_capacity(count);
    for _ in 0..count {
        responses.push(read_response(&mut reader, false).await);
    }
    responses
}

/// Writes `request` on a new connection while `read` reads what comes back,
/// both within one [`step`] named `what`: for replies that are more than the
/// socket buffers hold, which the server writes while the request is still
/// coming. What the write returned and what `read` returned.
async fn write_while_reading<T, F: Future<Output = T>>(
    address: SocketAddr,
    request: &[u8],
    what: &str,
    read: impl FnOnce(BufReader<OwnedReadHalf>) -> F,
) -> (std::io::Result<()>, T) {
    // The write half lives to the end: dropped, it would end the request.
    let (read_half, mut write_half) = connect(address).await.into_split();
    let writer = write_half.write_all(request);
    step(
        what,
        futures::future::join(writer, read(BufReader::new(read_half))),
    )
    .await
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

/// Asserts the refusal of each of `cases` with `status`, each sent between
/// `before` and `after` on a connection of its own.
async fn assert_each_refused(
    address: SocketAddr,
    before: &[u8],
    cases: &[&[u8]],
    after: &[u8],
    status: u16,
) {
    for case in cases {
        assert_refused(address, &[before, case, after].concat(), status).await;
    }
}

/// The end of the JSON echo of a body (no store): its length, digest and,
/// when `echoed`, the body itself (plain text here, nothing to escape but
/// line feeds).
fn tail(body: &[u8], echoed: bool) -> String {
    let echo = if echoed {
        let text = std::str::from_utf8(body).unwrap();
        assert!(!text.contains(['"', '\\', '\r']));
        format!("\"{}\"", text.replace('\n', "\\n"))
    } else {
        "null".to_string()
    };
    format!(
        "\"body_length\":{},\"sha256\":\"{:x}\",\"stored\":null,\"body\":{echo}}}\n",
        body.len(),
        Sha256::digest(body)
    )
}

/// Asserts a 200 echoing `path` whose body is `body`.
#[track_caller]
fn assert_echo(response: &Response, path: &str, body: &[u8], echoed: bool) {
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.json_string("path"),
        Some(path),
        "{}",
        response.body
    );
    assert!(
        response.body.ends_with(&tail(body, echoed)),
        "{}\nexpected the end {}",
        response.body,
        tail(body, echoed)
    );
}

/// A request, `method_and_path`, with `body` framed by its Content-Length.
fn with_content_length(method_and_path: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "{method_and_path} HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// A request, `method_and_path`, with `body` in chunks of `size` bytes,
/// sizes in hex, CRLF lines.
fn with_chunks(method_and_path: &str, body: &[u8], size: usize) -> Vec<u8> {
    let mut request =
        format!("{method_and_path} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    for chunk in body.chunks(size) {
        request.extend(format!("{:x}\r\n", chunk.len()).into_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    request
}

/// The head of a chunked request to `/`.
const CHUNKED_HEAD: &[u8] = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";

// ---------------------------------------------------------------------------
// Requests and replies

#[tokio::test]
async fn get_echoes_the_request_as_json() {
    bounded(async {
        let address = start().await;
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
             \"trailers\":[],\"body_length\":0,\
             \"sha256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\",\
             \"stored\":null,\"body\":\"\"}\n"
        );
    })
    .await;
}

#[tokio::test]
async fn post_with_a_content_length_body() {
    bounded(async {
        let address = start().await;
        let (response, _) = http_once(
            address,
            b"POST /form HTTP/1.1\r\nHost: h\r\nContent-Length: 15\r\n\r\nline one\nline 2",
        )
        .await;
        assert_echo(&response, "/form", b"line one\nline 2", true);
        assert!(response.body.contains("\"method\":\"POST\""));
    })
    .await;
}

#[tokio::test]
async fn body_that_is_not_utf8_is_null_but_digested() {
    bounded(async {
        let address = start().await;
        let body = [0xff, 0xfe, 0x00];
        let (response, _) = http_once(address, &with_content_length("POST /", &body)).await;
        assert_echo(&response, "/", &body, false);
    })
    .await;
}

#[tokio::test]
async fn field_values_that_are_not_utf8_are_accepted() {
    bounded(async {
        // RFC 9110's obs-text: legal in a field value, shown as U+FFFD.
        let address = start().await;
        let (response, _) =
            http_once(address, b"GET / HTTP/1.1\r\nHost: h\r\nX: a\xffb\r\n\r\n").await;
        assert_eq!(response.status, 200);
        assert!(
            response.body.contains("[\"X\",\"a\u{fffd}b\"]"),
            "{}",
            response.body
        );
    })
    .await;
}

#[tokio::test]
async fn content_length_zero_completes_and_keeps_the_connection() {
    bounded(async {
        let address = start().await;
        let (response, mut reader) = http_once(
            address,
            b"POST /empty HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
        assert_echo(&response, "/empty", b"", true);
        // Length(0) left nothing half read.
        let response = send_and_read(&mut reader, NEXT_REQUEST).await;
        assert_echo(&response, "/next", b"", true);
    })
    .await;
}

#[tokio::test]
async fn two_keep_alive_requests_on_one_connection() {
    bounded(async {
        let address = start().await;
        let (first, mut reader) = http_once(address, b"GET /one HTTP/1.1\r\nHost: h\r\n\r\n").await;
        assert_eq!(first.status, 200);
        assert_eq!(first.header("Connection"), None);
        let second = send_and_read(&mut reader, &with_content_length("POST /two", b"abc")).await;
        assert_echo(&second, "/two", b"abc", true);
    })
    .await;
}

#[tokio::test]
async fn connection_close_is_honoured() {
    bounded(async {
        let address = start().await;
        let (response, mut reader) = http_once(
            address,
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\n\r\n",
        )
        .await;
        assert_eq!(response.status, 200);
        assert_eq!(response.header("Connection"), Some("close"));
        assert!(read_to_end(&mut reader).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn http_1_0_closes_unless_keep_alive_and_needs_no_host() {
    bounded(async {
        let address = start().await;
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
        let response = send_and_read(&mut reader, b"GET /b HTTP/1.0\r\n\r\n").await;
        assert_eq!(response.json_string("path"), Some("/b"));
        assert!(read_to_end(&mut reader).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn head_has_no_body() {
    bounded(async {
        let address = start().await;
        let mut reader = send(
            address,
            b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\nGET /after HTTP/1.1\r\nHost: h\r\n\r\n",
        )
        .await;
        let head = read_response(&mut reader, true).await;
        assert_eq!(head.status, 200);
        // The length of the object a GET would have had, and no object:
        // the next response follows at once.
        let length: usize = head.header("Content-Length").unwrap().parse().unwrap();
        assert!(length > 0);
        let next = read_response(&mut reader, false).await;
        assert_eq!(next.json_string("path"), Some("/after"));
    })
    .await;
}

#[tokio::test]
async fn expect_100_continue_for_both_body_kinds() {
    bounded(async {
        let address = start().await;
        let (response, mut reader) = http_once(
            address,
            b"PUT /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
        )
        .await;
        assert_eq!(response.status, 100);
        let response = send_and_read(&mut reader, b"data").await;
        assert_echo(&response, "/up", b"data", true);

        let response = send_and_read(
            &mut reader,
            b"PUT /chunks HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\n\
              Transfer-Encoding: chunked\r\n\r\n",
        )
        .await;
        assert_eq!(response.status, 100);
        let response = send_and_read(&mut reader, b"4\r\ndata\r\n0\r\n\r\n").await;
        assert_echo(&response, "/chunks", b"data", true);
    })
    .await;
}

#[tokio::test]
async fn no_100_continue_for_http_1_0_nor_for_a_refused_body() {
    bounded(async {
        let address = start_with(|config| config.max_body = 10).await;
        let (response, _) = http_once(
            address,
            b"PUT /up HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\ndata",
        )
        .await;
        assert_echo(&response, "/up", b"data", true);
        assert_refused(
            address,
            b"PUT /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n",
            413,
        )
        .await;
    })
    .await;
}

// ---------------------------------------------------------------------------
// Heads: line endings, empty lines, limits

#[tokio::test]
async fn bare_lf_and_mixed_line_endings() {
    bounded(async {
        let address = start().await;
        for head in [
            &b"GET /a HTTP/1.1\nHost: h\nX: v\n\n"[..],
            b"GET /a HTTP/1.1\r\nHost: h\r\nX: v\n\n",
            b"GET /a HTTP/1.1\nHost: h\nX: v\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: h\r\nX: v\r\n\n",
            b"GET /a HTTP/1.1\nHost: h\r\nX: v\n\r\n",
            b"GET /a HTTP/1.1\n\n",
        ] {
            // A request after it on the same connection: the head ended
            // exactly at its empty line.
            let mut request = head.to_vec();
            if !head.windows(4).any(|w| w == b"Host") {
                request = b"GET /a HTTP/1.0\n\n".to_vec();
            }
            request
                .extend_from_slice(b"GET /next HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
            let (first, mut reader) = http_once(address, &request).await;
            let shown = String::from_utf8_lossy(head);
            assert_eq!(first.status, 200, "for {shown:?}");
            assert_eq!(first.json_string("path"), Some("/a"), "for {shown:?}");
            if request.starts_with(b"GET /a HTTP/1.1") {
                assert!(
                    first.body.contains("[\"Host\",\"h\"],[\"X\",\"v\"]]"),
                    "for {shown:?}: {}",
                    first.body
                );
            } else {
                // HTTP/1.0 keeps the connection only when asked to.
                continue;
            }
            let next = read_response(&mut reader, false).await;
            assert_eq!(next.json_string("path"), Some("/next"), "for {shown:?}");
            assert!(read_to_end(&mut reader).await.is_empty());
        }
    })
    .await;
}

#[tokio::test]
async fn leading_empty_lines_are_skipped() {
    bounded(async {
        let address = start().await;
        for prefix in [
            &b"\r\n"[..],
            b"\r\n\r\n",
            b"\n\n\n",
            b"\r\n\n\r\n",
            b"\n\r\n\r\n\n",
        ] {
            let mut request = prefix.to_vec();
            request.extend_from_slice(b"GET /after-empty-lines HTTP/1.1\r\nHost: h\r\n\r\n");
            let (response, _) = http_once(address, &request).await;
            assert_eq!(
                response.json_string("path"),
                Some("/after-empty-lines"),
                "after {prefix:?}"
            );
        }
        // Not without end: past the head's limit they are refused.
        let mut request = b"\r\n".repeat(5000);
        request.extend_from_slice(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_refused(address, &request, 400).await;
        // A bare CR is not an empty line.
        assert_refused(address, b"\r\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400).await;
    })
    .await;
}

#[tokio::test]
async fn malformed_requests_get_400() {
    bounded(async {
        let address = start().await;
        let requests: &[&[u8]] = &[
            b"GARBAGE\r\n\r\n",
            b"GET /\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\nHost: h\r\n\r\n",
            b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / FTP/1.1\r\nHost: h\r\n\r\n",
            b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nNo colon here\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nSpace before : colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
            // Host: none in HTTP/1.1, or two.
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n",
        ];
        assert_each_refused(address, b"", requests, b"", 400).await;
        assert_refused(address, b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505).await;
        assert_refused(address, b"GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505).await;
    })
    .await;
}

#[tokio::test]
async fn what_cannot_begin_a_request_gets_400_as_it_comes() {
    bounded(async {
        // The default idle timeout, 30 s: the 400 must come long before it.
        let address = start().await;
        let beginnings: &[&[u8]] = &[
            // The first bytes of a TLS ClientHello, sent to a plain port.
            &[
                0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
            ],
            b"G(T / HTTP/1.1",
            b"GET / HTTP/1.1 extra\r\n",
        ];
        for &beginning in beginnings {
            let mut stream = connect(address).await;
            stream.write_all(beginning).await.unwrap();
            let mut reader = BufReader::new(stream);
            let response = timeout(Duration::from_secs(5), read_response(&mut reader, false))
                .await
                .unwrap_or_else(|_| panic!("no answer to {beginning:?} before the idle timeout"));
            assert_eq!(response.status, 400, "{beginning:?}");
        }
        // Sent a byte at a time, another version is not refused on the way
        // (`HTTP/2` is no version yet): it gets its 505 when the head ends.
        let mut stream = connect(address).await;
        for byte in b"GET / HTTP/2.0\r\nHost: h\r\n\r\n" {
            stream.write_all(&[*byte]).await.unwrap();
            tokio::task::yield_now().await;
        }
        let response = read_response(&mut BufReader::new(stream), false).await;
        assert_eq!(response.status, 505);
    })
    .await;
}

#[tokio::test]
async fn oversized_head_and_too_many_fields_get_431() {
    bounded(async {
        let address = start().await;
        let mut request = b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: ".to_vec();
        request.extend(std::iter::repeat(b'a').take(10_000));
        request.extend_from_slice(b"\r\n\r\n");
        assert_refused(address, &request, 431).await;

        let mut request = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 0..100 {
            request.extend(format!("X-{i}: v\r\n").into_bytes());
        }
        request.extend_from_slice(b"\r\n");
        assert_refused(address, &request, 431).await;
    })
    .await;
}

#[tokio::test]
async fn head_that_never_ends_gets_431_without_waiting_for_its_end() {
    bounded(async {
        let address = start_with(|config| config.max_head = 1024).await;
        let mut stream = connect(address).await;
        // A little over the limit, and then nothing: the server must not
        // wait for an empty line that never comes, nor buffer past its limit.
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
async fn a_connection_quiet_between_requests_is_closed() {
    bounded(async {
        let address = start_with(|config| config.idle_timeout = Duration::from_millis(200)).await;
        let (response, mut reader) = http_once(address, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").await;
        assert_eq!(response.status, 200);
        assert!(read_to_end(&mut reader).await.is_empty());
    })
    .await;
}

// ---------------------------------------------------------------------------
// Bodies by Content-Length

#[tokio::test]
async fn content_length_rules() {
    bounded(async {
        let address = start().await;
        for fields in [
            &b"Content-Length: 3\r\nContent-Length: 3\r\n"[..],
            b"Content-Length: 3, 3\r\n",
            b"Content-Length:  3 \r\n",
        ] {
            let mut request = b"POST /same HTTP/1.1\r\nHost: h\r\n".to_vec();
            request.extend_from_slice(fields);
            request.extend_from_slice(b"\r\nabc");
            let (response, _) = http_once(address, &request).await;
            assert_echo(&response, "/same", b"abc", true);
        }
        let refused: &[&[u8]] = &[
            b"Content-Length: 1\r\nContent-Length: 2\r\n",
            b"Content-Length: 1, 2\r\n",
            b"Content-Length: 1,\r\n",
            b"Content-Length: abc\r\n",
            b"Content-Length: -1\r\n",
            b"Content-Length: +5\r\n",
            b"Content-Length: 0x5\r\n",
            b"Content-Length: \r\n",
            b"Content-Length: 18446744073709551616\r\n",
            b"Content-Length: 99999999999999999999999\r\n",
        ];
        let head = b"POST / HTTP/1.1\r\nHost: h\r\n";
        assert_each_refused(address, head, refused, b"\r\nab", 400).await;
    })
    .await;
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_before_it_is_sent() {
    bounded(async {
        let address = start_with(|config| config.max_body = 1 << 20).await;
        // Only the head is sent: the answer must not wait for the body.
        assert_refused(
            address,
            b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 1048577\r\n\r\n",
            413,
        )
        .await;
        // A length no u64 body limit could take.
        assert_refused(
            address,
            b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551615\r\n\r\n",
            413,
        )
        .await;
        // And a client that sends the body anyway gets the 413 too, not a
        // reset; the write may fail once the server has answered.
        let request = with_content_length("POST /upload", &[b'b'; 1_048_577]);
        let (_, status_line) = write_while_reading(
            address,
            &request,
            "413 with a body",
            |mut reader| async move {
                let mut status_line = String::new();
                reader.read_line(&mut status_line).await.unwrap();
                status_line
            },
        )
        .await;
        assert!(status_line.starts_with("HTTP/1.1 413 "), "{status_line:?}");
    })
    .await;
}

#[tokio::test]
async fn a_body_at_the_limit_is_accepted() {
    bounded(async {
        let address = start_with(|config| config.max_body = 10).await;
        let (response, _) = http_once(
            address,
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789",
        )
        .await;
        assert_echo(&response, "/", b"0123456789", true);
        let (response, _) = http_once(
            address,
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
              4\r\n0123\r\n6\r\n456789\r\n0\r\n\r\n",
        )
        .await;
        assert_echo(&response, "/", b"0123456789", true);
    })
    .await;
}

#[tokio::test]
async fn a_body_cut_short_by_the_end_of_the_connection_gets_400() {
    bounded(async {
        let address = start().await;
        for request in [
            &b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nhello"[..],
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX: 1\r\n",
        ] {
            let mut reader = send(address, request).await;
            // The client is done sending; it still reads the answer.
            reader.get_mut().shutdown().await.unwrap();
            let response = read_response(&mut reader, false).await;
            assert_eq!(
                response.status,
                400,
                "for {:?}",
                String::from_utf8_lossy(request)
            );
            read_to_end(&mut reader).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_body_that_stops_coming_gets_408() {
    bounded(async {
        let address = start_with(|config| config.idle_timeout = Duration::from_millis(200)).await;
        let (response, mut reader) = http_once(
            address,
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nhello",
        )
        .await;
        assert_eq!(response.status, 408);
        read_to_end(&mut reader).await;
    })
    .await;
}

#[tokio::test]
async fn large_bodies_are_streamed_and_digested() {
    bounded(async {
        let address = start().await;
        // 8 MiB: over the codec's whole-frame default, far over the echo.
        let body: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
        let request = [
            with_content_length("PUT /counted", &body),
            with_chunks("PUT /chunked", &body, 1 << 20),
            NEXT_REQUEST.to_vec(),
        ]
        .concat();
        let (written, responses) =
            write_while_reading(address, &request, "two 8 MiB bodies", |reader| {
                read_responses(reader, 3)
            })
            .await;
        written.unwrap();
        assert_echo(&responses[0], "/counted", &body, false);
        assert_echo(&responses[1], "/chunked", &body, false);
        assert_eq!(responses[2].json_string("path"), Some("/next"));
    })
    .await;
}

#[tokio::test]
async fn bodies_up_to_max_echo_are_echoed() {
    bounded(async {
        let address = start_with(|config| config.max_echo = 10).await;
        for body in [&b"0123456789"[..], b"0123456789a"] {
            let echoed = body.len() <= 10;
            let request = with_content_length("POST /counted", body);
            let (response, _) = http_once(address, &request).await;
            assert_echo(&response, "/counted", body, echoed);
            // In small chunks: gathered from several pieces, then dropped.
            let request = with_chunks("POST /chunked", body, 3);
            let (response, _) = http_once(address, &request).await;
            assert_echo(&response, "/chunked", body, echoed);
        }
    })
    .await;
}

#[tokio::test]
async fn store_writes_each_body_to_a_file() {
    bounded(async {
        let directory: PathBuf = std::env::temp_dir().join(format!(
            "http_server-store-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&directory).unwrap();
        let address = start_with(|config| config.store = Some(directory.clone())).await;
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let mut paths = Vec::new();
        for request in [
            with_content_length("PUT /counted", &body),
            with_chunks("PUT /chunked", &body, 70_000),
        ] {
            // The server reads a whole body before it answers: no need to
            // read while writing.
            let (response, _) = http_once(address, &request).await;
            assert_eq!(response.status, 200);
            let path = PathBuf::from(response.json_string("stored").expect("a stored path"));
            assert_eq!(path.parent(), Some(directory.as_path()));
            assert!(std::fs::read(&path).unwrap() == body, "{path:?}");
            assert!(response.body.contains(&format!(
                "\"body_length\":{},\"sha256\":\"{:x}\"",
                body.len(),
                Sha256::digest(&body)
            )));
            paths.push(path);
        }
        assert_ne!(paths[0], paths[1]);
        // No body, no file.
        let (response, _) = http_once(address, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").await;
        assert!(response.body.contains("\"stored\":null"));
        assert_eq!(std::fs::read_dir(&directory).unwrap().count(), 2);
        std::fs::remove_dir_all(&directory).unwrap();
    })
    .await;
}

// ---------------------------------------------------------------------------
// Chunked bodies

/// A chunked upload with every kind of line: CRLF and bare LF, extensions,
/// upper- and lower-case hex, a size of two digits, trailers. Its body.
const CHUNKED_REQUEST: &[u8] =
    b"POST /chunks HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
    5;name=value;quoted=\"a;b\"\r\nhello\r\n\
    1A\r\n, a chunk of 26 bytes here\r\n\
    3 ; spaced\nabc\n\
    c\r\n  twelve  !!\r\n\
    0;last\r\nX-Checksum: 42\r\nX-Other:two words \n\r\n";
const CHUNKED_BODY: &[u8] = b"hello, a chunk of 26 bytes hereabc  twelve  !!";
const CHUNKED_TRAILERS: &str = "\"trailers\":[[\"X-Checksum\",\"42\"],[\"X-Other\",\"two words\"]]";

/// A request after [`CHUNKED_REQUEST`] on the same connection.
const NEXT_REQUEST: &[u8] = b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n";

#[track_caller]
fn assert_chunked_echo(response: &Response) {
    assert_echo(response, "/chunks", CHUNKED_BODY, true);
    assert!(
        response.body.contains(CHUNKED_TRAILERS),
        "{}",
        response.body
    );
}

#[tokio::test]
async fn chunked_body_with_extensions_and_trailers() {
    bounded(async {
        let address = start().await;
        let request = [CHUNKED_REQUEST, NEXT_REQUEST].concat();
        let (response, mut reader) = http_once(address, &request).await;
        assert_chunked_echo(&response);
        let next = read_response(&mut reader, false).await;
        assert_echo(&next, "/next", b"", true);
    })
    .await;
}

#[tokio::test]
async fn chunked_body_cut_at_every_byte_boundary() {
    bounded(async {
        let address = start().await;
        let request = [CHUNKED_REQUEST, NEXT_REQUEST].concat();
        let body_start = CHUNKED_REQUEST
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .unwrap();
        // Two writes, the server reading between them: every cut of the
        // size lines, the data, the line endings and the trailers.
        for cut in body_start..request.len() {
            let mut reader = send(address, &request[..cut]).await;
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            let response = send_and_read(&mut reader, &request[cut..]).await;
            assert_eq!(response.status, 200, "cut at {cut}: {response:?}");
            assert_chunked_echo(&response);
            let next = read_response(&mut reader, false).await;
            assert_eq!(next.json_string("path"), Some("/next"), "cut at {cut}");
        }
    })
    .await;
}

#[tokio::test]
async fn chunked_body_one_byte_at_a_time() {
    bounded(async {
        let address = start().await;
        let mut stream = connect(address).await;
        let request = [CHUNKED_REQUEST, NEXT_REQUEST].concat();
        for byte in &request {
            stream.write_all(&[*byte]).await.unwrap();
            tokio::task::yield_now().await;
        }
        let mut reader = BufReader::new(stream);
        assert_chunked_echo(&read_response(&mut reader, false).await);
        let next = read_response(&mut reader, false).await;
        assert_eq!(next.json_string("path"), Some("/next"));
    })
    .await;
}

#[tokio::test]
async fn pipelined_requests_mixing_both_body_kinds() {
    bounded(async {
        let address = start().await;
        let request = [
            &b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"[..],
            b"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
            CHUNKED_REQUEST,
            b"POST /4 HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
            b"POST /5 HTTP/1.1\nHost: h\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n",
            b"POST /6 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST /7 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz",
            b"GET /8 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        ]
        .concat();
        let (first, mut reader) = http_once(address, &request).await;
        assert_echo(&first, "/1", b"", true);
        let second = read_response(&mut reader, false).await;
        assert_echo(&second, "/2", b"hello", true);
        assert_chunked_echo(&read_response(&mut reader, false).await);
        for (path, body) in [
            ("/4", &b""[..]),
            ("/5", b"abc"),
            ("/6", b""),
            ("/7", b"xyz"),
        ] {
            assert_echo(&read_response(&mut reader, false).await, path, body, true);
        }
        let last = read_response(&mut reader, false).await;
        assert_echo(&last, "/8", b"", true);
        assert_eq!(last.header("Connection"), Some("close"));
        assert!(read_to_end(&mut reader).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_thousand_pipelined_requests_read_while_written() {
    bounded(async {
        let address = start().await;
        let request: Vec<u8> = (0..1000)
            .flat_map(|i| match i % 3 {
                0 => format!("GET /{i} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes(),
                1 => with_content_length(&format!("POST /{i}"), b"abc"),
                _ => with_chunks(&format!("POST /{i}"), b"abc", 3),
            })
            .collect();
        // Far more replies than the socket buffers hold: the server writes
        // them out as it goes, in order.
        let (written, responses) =
            write_while_reading(address, &request, "1000 replies", |reader| {
                read_responses(reader, 1000)
            })
            .await;
        written.unwrap();
        let paths: Vec<&str> = responses
            .iter()
            .map(|response| response.json_string("path").expect("a path"))
            .collect();
        let expected: Vec<String> = (0..1000).map(|i| format!("/{i}")).collect();
        assert_eq!(paths, expected);
    })
    .await;
}

#[tokio::test]
async fn transfer_encoding_rules() {
    bounded(async {
        let address = start().await;
        let (response, _) = http_once(
            address,
            b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        )
        .await;
        assert_echo(&response, "/c", b"ok", true);
        let head = b"POST / HTTP/1.1\r\nHost: h\r\n";
        let body = b"\r\n2\r\nok\r\n0\r\n\r\n";
        let faulty: &[&[u8]] = &[
            // Both framings: refused whichever comes first.
            b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
            b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n",
            // chunked not once, or not last.
            b"Transfer-Encoding: chunked, chunked\r\n",
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            b"Transfer-Encoding: \r\n",
            b"Transfer-Encoding: ,\r\n",
        ];
        assert_each_refused(address, head, faulty, body, 400).await;
        // Codings this server does not decode.
        let not_decoded: &[&[u8]] = &[
            b"Transfer-Encoding: gzip\r\n",
            b"Transfer-Encoding: gzip, chunked\r\n",
            b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            b"Transfer-Encoding: chunked, gzip\r\n",
            b"Transfer-Encoding: identity\r\n",
        ];
        assert_each_refused(address, head, not_decoded, body, 501).await;
        // HTTP/1.0 has no transfer codings: its framing is faulty.
        assert_refused(
            address,
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            400,
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn bad_chunks_get_400_and_close() {
    bounded(async {
        let address = start().await;
        let long_extension = format!("5;{}\r\nhello\r\n0\r\n\r\n", "x".repeat(5000));
        let chunks: &[&[u8]] = &[
            b"xyz\r\nabc\r\n0\r\n\r\n",
            b"\r\n0\r\n\r\n",
            b";ext\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"5\rX\r\nhello\r\n0\r\n\r\n",
            // More hex digits than a u64 holds, and than a chunk size may have.
            b"10000000000000000\r\nhello\r\n0\r\n\r\n",
            b"00000000000000005\r\nhello\r\n0\r\n\r\n",
            // The data longer than its size: no line ending after it.
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"5\r\nhello0\r\n\r\n",
            // ... and refused at its first byte, not at a line ending that
            // never comes.
            b"5\r\nhelloXYZ",
            // A malformed trailer field.
            b"0\r\nNo colon\r\n\r\n",
            b"0\r\nX: 1\r\n folded\r\n\r\n",
            long_extension.as_bytes(),
        ];
        assert_each_refused(address, CHUNKED_HEAD, chunks, b"", 400).await;
    })
    .await;
}

#[tokio::test]
async fn chunks_over_the_limit_get_413_as_soon_as_announced() {
    bounded(async {
        let address = start_with(|config| config.max_body = 10).await;
        let chunks: &[&[u8]] = &[
            // Only the size line is sent: the answer must not wait for data.
            b"b\r\n",
            b"6\r\nhello \r\n5\r\n",
            // The largest size httparse reads: no overflow in the sum.
            b"6\r\nhello \r\nffffffffffffffff\r\n",
        ];
        assert_each_refused(address, CHUNKED_HEAD, chunks, b"", 413).await;
    })
    .await;
}

#[tokio::test]
async fn trailers_are_bounded() {
    bounded(async {
        let address = start_with(|config| config.max_head = 1024).await;
        let head = [CHUNKED_HEAD, b"0\r\n"].concat();
        // Over the section's limit in one line, in many lines, and in a
        // line that never ends.
        let one_long = format!("X: {}\r\n\r\n", "a".repeat(1100));
        let many: String = (0..80)
            .map(|i| format!("X-{i:02}: 123456\r\n"))
            .chain(["\r\n".to_string()])
            .collect();
        let never_ends = [b'x'; 1100];
        let trailers: &[&[u8]] = &[one_long.as_bytes(), many.as_bytes(), &never_ends];
        assert_each_refused(address, &head, trailers, b"", 431).await;
        // More fields than a head may have, within the byte limit.
        let address = start().await;
        let too_many = format!("{}\r\n", "X: 1\r\n".repeat(101));
        assert_refused(address, &[&head, too_many.as_bytes()].concat(), 431).await;
    })
    .await;
}
