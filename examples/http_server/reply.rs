//! The replies: the JSON echo of a request, `100 Continue`, and the
//! refusals.

use asynchat::Chat;
use bytes::Bytes;
use tokio::net::TcpStream;

use super::{
    body::Body,
    head::{Head, Version},
};

/// The interim reply to `Expect: 100-continue`.
pub const CONTINUE: Bytes = Bytes::from_static(b"HTTP/1.1 100 Continue\r\n\r\n");

/// The statuses a request is refused with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    BadRequest,
    RequestTimeout,
    ContentTooLarge,
    HeaderFieldsTooLarge,
    InternalServerError,
    NotImplemented,
    VersionNotSupported,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::BadRequest => 400,
            Status::RequestTimeout => 408,
            Status::ContentTooLarge => 413,
            Status::HeaderFieldsTooLarge => 431,
            Status::InternalServerError => 500,
            Status::NotImplemented => 501,
            Status::VersionNotSupported => 505,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Status::BadRequest => "Bad Request",
            Status::RequestTimeout => "Request Timeout",
            Status::ContentTooLarge => "Content Too Large",
            Status::HeaderFieldsTooLarge => "Request Header Fields Too Large",
            Status::InternalServerError => "Internal Server Error",
            Status::NotImplemented => "Not Implemented",
            Status::VersionNotSupported => "HTTP Version Not Supported",
        }
    }
}

/// Queues a refusal; the caller closes the connection after it.
pub fn refuse(chat: &mut Chat<TcpStream>, status: Status) {
    let body = format!("{} {}\n", status.code(), status.reason());
    chat.push(format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        status.code(),
        status.reason(),
        body.len()
    ));
}

/// Queues the JSON echo of a request, head and object in one piece (one
/// write). `json` is a buffer reused from request to request.
pub fn respond(chat: &mut Chat<TcpStream>, head: &Head<'_, '_>, body: &Body, json: &mut String) {
    json.clear();
    json.push_str("{\"method\":");
    push_json_string(json, head.method);
    json.push_str(",\"path\":");
    push_json_string(json, head.target);
    json.push_str(",\"version\":\"");
    json.push_str(head.version.as_str());
    json.push_str("\",\"headers\":[");
    push_json_pairs(
        json,
        head.fields.iter().map(|field| (field.name, field.value)),
    );
    json.push_str("],\"trailers\":[");
    push_json_pairs(
        json,
        body.trailers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes())),
    );
    json.push_str("],\"body_length\":");
    json.push_str(itoa::Buffer::new().format(body.length));
    json.push_str(",\"sha256\":\"");
    push_hex(json, &body.sha256);
    json.push_str("\",\"stored\":");
    match &body.stored {
        Some(path) => push_json_string(json, &path.to_string_lossy()),
        None => json.push_str("null"),
    }
    json.push_str(",\"body\":");
    match body.echo.as_deref().map(std::str::from_utf8) {
        Some(Ok(text)) => push_json_string(json, text),
        _ => json.push_str("null"),
    }
    json.push_str("}\n");

    let connection = match (head.keep_alive, head.version) {
        (false, _) => "Connection: close\r\n",
        (true, Version::Http10) => "Connection: keep-alive\r\n",
        (true, Version::Http11) => "",
    };
    let mut reply = String::with_capacity(128 + json.len());
    reply.push_str(head.version.as_str());
    reply.push_str(" 200 OK\r\nContent-Type: application/json\r\nContent-Length: ");
    reply.push_str(itoa::Buffer::new().format(json.len()));
    reply.push_str("\r\n");
    reply.push_str(connection);
    reply.push_str("\r\n");
    if head.method != "HEAD" {
        reply.push_str(json);
    }
    chat.push(reply);
}

/// Appends `[name,value]` pairs, comma-separated. Field values may hold
/// bytes that are not UTF-8 (RFC 9110's obs-text): they are shown as U+FFFD.
fn push_json_pairs<'a>(json: &mut String, pairs: impl Iterator<Item = (&'a str, &'a [u8])>) {
    for (index, (name, value)) in pairs.enumerate() {
        if index > 0 {
            json.push(',');
        }
        json.push('[');
        push_json_string(json, name);
        json.push(',');
        push_json_string(json, &String::from_utf8_lossy(value));
        json.push(']');
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
                const HEX: &[u8; 16] = b"0123456789abcdef";
                json.push_str("\\u00");
                json.push(HEX[(c as usize) >> 4] as char);
                json.push(HEX[(c as usize) & 0xf] as char);
            }
            c => json.push(c),
        }
    }
    json.push('"');
}

/// Appends `bytes` in lower-case hex.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &byte in bytes {
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 0xf)] as char);
    }
}
