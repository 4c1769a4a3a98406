//! The `http_request_handler` of asynchat's documentation, made real: an
//! HTTP/1.1 server that echoes each request back as JSON.
//!
//! ```text
//! cargo run --release --example http_server -- [PORT]
//! curl -s http://127.0.0.1:8080/hello?x=1
//! curl -s --data 'some body' http://127.0.0.1:8080/form
//! ```
//!
//! The port is the first argument, else `$PORT`, else 8080 (0 picks a free
//! one; the address is printed).
//!
//! As in the reference, each connection is one channel whose terminator is
//! first the blank line that ends the head (`\r\n\r\n`); when a request has a
//! `Content-Length`, the terminator becomes that count
//! ([`Terminator::Length`]), so the body comes out as one frame
//! (`Content-Length: 0` gives an empty one at once); then it is `\r\n\r\n`
//! again for the next request on the connection (keep-alive: HTTP/1.1 unless
//! `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`).
//!
//! Errors are answered, then the connection is closed with close-when-done:
//!
//! * 400 for a malformed request line, header or `Content-Length`;
//! * 413 for a body over [`Limits::max_body`], before any of it is read;
//! * 431 for a head over [`Limits::max_head`]: the codec's
//!   `max_frame_length`, so a head that never ends costs no more memory
//!   than that;
//! * 501 for a `Transfer-Encoding` (chunked bodies are not implemented),
//!   505 for an HTTP version other than 1.0 and 1.1.
//!
//! The answer to a good request is a JSON object (written by hand):
//!
//! ```text
//! {"method":"POST","path":"/form","version":"HTTP/1.1",
//!  "headers":[["Host","127.0.0.1:8080"],["Content-Length","9"]],
//!  "body_length":9,"body":"some body"}
//! ```
//!
//! `body` is `null` when the body is not UTF-8.

use std::{fmt::Write as _, io, time::Duration};

use asynchat::{Chat, Error, Frame, Terminator, TerminatorCodec};
use bytes::Bytes;
use futures::StreamExt;
use tokio::{
    net::{TcpListener, TcpStream},
    time::timeout,
};

#[path = "../common/mod.rs"]
mod common;
use common::listen;

/// The port when neither the command line nor `$PORT` gives one.
pub const DEFAULT_PORT: u16 = 8080;

/// What one request may cost the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The longest head (request line and headers, without the blank line):
    /// longer gets 431.
    pub max_head: usize,
    /// The longest body: a longer `Content-Length` gets 413.
    pub max_body: u64,
    /// How long a connection may take to send the next head or body.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 8 * 1024,
            max_body: 1024 * 1024,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves `listener` forever with the default [`Limits`].
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    serve_with(listener, Limits::default()).await
}

/// Serves `listener` forever, one task per connection.
pub async fn serve_with(listener: TcpListener, limits: Limits) -> io::Result<()> {
    loop {
        let stream = common::accept(&listener).await;
        tokio::spawn(async move {
            if let Err(error) = handle_connection(stream, limits).await {
                eprintln!("connection: {error}");
            }
        });
    }
}

/// A request head, parsed.
#[derive(Debug)]
struct Request<'a> {
    method: &'a str,
    target: &'a str,
    version: Version,
    headers: Vec<(&'a str, &'a str)>,
    content_length: Option<u64>,
    keep_alive: bool,
    expect_continue: bool,
    has_transfer_encoding: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    Http10,
    Http11,
}

impl Version {
    fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// Why a head was refused: the status to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    BadRequest,
    VersionNotSupported,
}

/// Serves the requests of one connection until it closes or fails.
async fn handle_connection(stream: TcpStream, limits: Limits) -> Result<(), Error> {
    let _ = stream.set_nodelay(true);
    let codec = TerminatorCodec::new("\r\n\r\n").with_max_frame_length(limits.max_head);
    let mut chat = Chat::with_codec(stream, codec);
    loop {
        // The head: everything up to the blank line.
        let head = match timeout(limits.idle_timeout, chat.next()).await {
            Err(_) | Ok(None) => return Ok(()),
            Ok(Some(Ok(Frame::Complete(head)))) => head,
            // The peer closed in the middle of a head: nobody to answer.
            Ok(Some(Ok(Frame::Partial(_)))) => return Ok(()),
            Ok(Some(Err(Error::FrameTooLong { .. }))) => {
                return refuse(chat, 431, "Request Header Fields Too Large").await;
            }
            Ok(Some(Err(error))) => return Err(error),
        };
        let request = match parse_head(&head) {
            Ok(request) => request,
            Err(Refusal::BadRequest) => return refuse(chat, 400, "Bad Request").await,
            Err(Refusal::VersionNotSupported) => {
                return refuse(chat, 505, "HTTP Version Not Supported").await;
            }
        };
        if request.has_transfer_encoding {
            return refuse(chat, 501, "Not Implemented").await;
        }
        // The body: by its count, like the reference's set_terminator(int(clen)).
        let body = match request.content_length {
            None => Bytes::new(),
            Some(length) if length > limits.max_body => {
                // Answered before any of the body is read.
                return refuse(chat, 413, "Content Too Large").await;
            }
            Some(length) => {
                if request.expect_continue && length > 0 {
                    chat.push("HTTP/1.1 100 Continue\r\n\r\n");
                }
                // The codec's limit applies to a Length too: the body's is
                // not the head's.
                set_max_frame_length(&mut chat, limits.max_body as usize);
                // Length(0) completes at once with an empty frame.
                chat.set_terminator(Terminator::Length(length));
                let body = match timeout(limits.idle_timeout, chat.next()).await {
                    Ok(Some(Ok(Frame::Complete(body)))) => body,
                    // Closed, or too slow, before the whole body came.
                    Err(_) | Ok(None) | Ok(Some(Ok(Frame::Partial(_)))) => return Ok(()),
                    Ok(Some(Err(error))) => return Err(error),
                };
                set_max_frame_length(&mut chat, limits.max_head);
                body
            }
        };
        chat.set_terminator("\r\n\r\n");
        let keep_alive = request.keep_alive;
        respond(&mut chat, &request, &body);
        if !keep_alive {
            chat.close_when_done();
            return finish(chat).await;
        }
    }
}

/// Sets the longest frame the channel's codec buffers: the head and the
/// body have limits of their own.
fn set_max_frame_length(chat: &mut Chat<TcpStream>, max_frame_length: usize) {
    chat.codec_mut().set_max_frame_length(max_frame_length);
}

/// Parses a request line and its headers. Leading empty lines are skipped,
/// as RFC 9112 asks of a server.
fn parse_head(head: &[u8]) -> Result<Request<'_>, Refusal> {
    let mut head = head;
    while let Some(rest) = head.strip_prefix(b"\r\n") {
        head = rest;
    }
    let head = std::str::from_utf8(head).map_err(|_| Refusal::BadRequest)?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().ok_or(Refusal::BadRequest)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::BadRequest);
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(Refusal::BadRequest);
    }
    if target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Refusal::BadRequest);
    }
    let version = match version {
        "HTTP/1.1" => Version::Http11,
        "HTTP/1.0" => Version::Http10,
        _ if is_http_version(version) => return Err(Refusal::VersionNotSupported),
        _ => return Err(Refusal::BadRequest),
    };

    let mut request = Request {
        method,
        target,
        version,
        headers: Vec::new(),
        content_length: None,
        keep_alive: version == Version::Http11,
        expect_continue: false,
        has_transfer_encoding: false,
    };
    for line in lines {
        // No whitespace before the colon, no obsolete line folding, no bare CR or LF.
        let (name, value) = line.split_once(':').ok_or(Refusal::BadRequest)?;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(Refusal::BadRequest);
        }
        let value = value.trim_matches(|c| c == ' ' || c == '\t');
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(Refusal::BadRequest);
        }
        if name.eq_ignore_ascii_case("content-length") {
            let length = parse_content_length(value).ok_or(Refusal::BadRequest)?;
            // Repeated, they must agree (RFC 9110, 8.6).
            if request.content_length.is_some_and(|seen| seen != length) {
                return Err(Refusal::BadRequest);
            }
            request.content_length = Some(length);
        } else if name.eq_ignore_ascii_case("connection") {
            for option in value.split(',').map(str::trim) {
                if option.eq_ignore_ascii_case("close") {
                    request.keep_alive = false;
                } else if option.eq_ignore_ascii_case("keep-alive") && version == Version::Http10 {
                    request.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            request.expect_continue = value.eq_ignore_ascii_case("100-continue");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            request.has_transfer_encoding = true;
        }
        request.headers.push((name, value));
    }
    Ok(request)
}

/// `Content-Length`: digits only, and not so many that they overflow.
fn parse_content_length(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// `HTTP/d.d`: well formed, though perhaps not a version served here.
fn is_http_version(version: &str) -> bool {
    matches!(version.as_bytes(), [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
        if major.is_ascii_digit() && minor.is_ascii_digit())
}

/// The characters of an HTTP token (RFC 9110, 5.6.2).
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Queues the JSON echo of a request.
fn respond(chat: &mut Chat<TcpStream>, request: &Request<'_>, body: &Bytes) {
    let mut json = String::with_capacity(256 + body.len());
    json.push_str("{\"method\":");
    push_json_string(&mut json, request.method);
    json.push_str(",\"path\":");
    push_json_string(&mut json, request.target);
    json.push_str(",\"version\":");
    push_json_string(&mut json, request.version.as_str());
    json.push_str(",\"headers\":[");
    for (index, (name, value)) in request.headers.iter().enumerate() {
        if index > 0 {
            json.push(',');
        }
        json.push('[');
        push_json_string(&mut json, name);
        json.push(',');
        push_json_string(&mut json, value);
        json.push(']');
    }
    let _ = write!(json, "],\"body_length\":{},\"body\":", body.len());
    match std::str::from_utf8(body) {
        Ok(text) => push_json_string(&mut json, text),
        Err(_) => json.push_str("null"),
    }
    json.push_str("}\n");

    let connection = match (request.keep_alive, request.version) {
        (false, _) => "Connection: close\r\n",
        (true, Version::Http10) => "Connection: keep-alive\r\n",
        (true, Version::Http11) => "",
    };
    let head = format!(
        "{} 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{connection}\r\n",
        request.version.as_str(),
        json.len(),
    );
    chat.push(head);
    if request.method != "HEAD" {
        chat.push(json);
    }
}

/// Appends `text` as a JSON string literal.
fn push_json_string(json: &mut String, text: &str) {
    json.push('"');
    for c in text.chars() {
        match c {
            '"' => json.push_str("\\\""),
            '\\' => json.push_str("\\\\"),
            '\n' => json.push_str("\\n"),
            '\r' => json.push_str("\\r"),
            '\t' => json.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(json, "\\u{:04x}", c as u32);
            }
            c => json.push(c),
        }
    }
    json.push('"');
}

/// Answers an error status, then closes the connection once it is sent.
async fn refuse(mut chat: Chat<TcpStream>, status: u16, reason: &str) -> Result<(), Error> {
    let body = format!("{status} {reason}\n");
    chat.push(format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    chat.close_when_done();
    finish(chat).await
}

/// Runs a closing channel to its end, then drains what the peer still sends
/// for a moment before the socket is dropped: closing a socket with unread
/// input makes the kernel reset the connection, and the reset can destroy
/// the answer before the peer reads it (the "lingering close" of HTTP
/// servers).
async fn finish(mut chat: Chat<TcpStream>) -> Result<(), Error> {
    let ended = timeout(Duration::from_secs(10), async {
        while let Some(frame) = chat.next().await {
            if let Err(error @ (Error::Io(_) | Error::Producer(_))) = frame {
                return Err(error);
            }
        }
        Ok(())
    })
    .await;
    match ended {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(error),
        Err(_) => return Ok(()), // the peer does not read: give up on it
    }
    let stream = chat.into_parts().io;
    common::drain(stream).await;
    Ok(())
}

/// The port: the first argument, else `$PORT`, else [`DEFAULT_PORT`].
fn port_from_args() -> Result<u16, String> {
    let port = std::env::args().nth(1).map(|arg| common::parse_port(&arg));
    common::port_or_env(port.transpose()?, DEFAULT_PORT)
}

#[allow(dead_code)] // the integration tests include this file as a module
#[tokio::main]
async fn main() -> io::Result<()> {
    let port = port_from_args().unwrap_or_else(|message| {
        eprintln!("http_server: {message}\nusage: http_server [PORT]");
        std::process::exit(2);
    });
    let listener = listen(port)?;
    println!(
        "http_server listening on http://{}/",
        listener.local_addr()?
    );
    serve(listener).await
}
