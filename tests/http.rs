//! examples/http_server.rs, started on ephemeral ports and driven over TCP.
//!
//! The example keeps its server in a function (`serve`, `serve_with`) that
//! its `main` calls; the file is included here as a module so the tests run
//! the very code the binary runs. Every wait is bounded by a timeout.

use std::{future::Future, net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    time::timeout,
};

#[path = "../examples/http_server/main.rs"]
#[allow(dead_code)]
mod http_server;

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
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
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
