//! The server `examples/http_server` races in `scripts/race.sh`: a minimal
//! hyper 1.x HTTP/1.1 server that gives a request the same answer, the JSON
//! echo of its head with the length and SHA-256 of its body.
//!
//! ```text
//! cargo run --release --example hyper_contender -- [PORT]
//! curl -s http://127.0.0.1:8081/hello?x=1
//! wrk -t1 -c50 -d5s --latency http://127.0.0.1:8081/
//! ```
//!
//! The port is the first argument, else `$PORT`, else 8081 (0 picks a free
//! one; the address is printed).
//!
//! Set up as `http_server` is, so that the race measures the servers and
//! not their settings: tokio's multi-threaded runtime, one task per
//! connection, `TCP_NODELAY`, keep-alive, the body read as it arrives
//! (hashed, and kept for the echo while at most 1 MiB), and the same bytes
//! on the wire for a small GET: `Content-Type` and `Content-Length` in
//! title case (`title_case_headers`) and no `Date` field
//! (`auto_date_header(false)`; `http_server` sends none).
//!
//! What differs from `http_server`'s echo: field names come in lower case,
//! as hyper's `HeaderMap` keeps them, and the fields of one name together;
//! there is no `--store`, no limit but hyper's own (a head of at most
//! about 400 KiB and 100 fields, no limit on a body), and malformed
//! requests get hyper's answers.

use std::io;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    body::Incoming, header, server::conn::http1, service::service_fn, HeaderMap, Request, Response,
    Version,
};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};

mod common;
use common::listen;

/// The port when neither the command line nor `$PORT` gives one.
const DEFAULT_PORT: u16 = 8081;

/// The longest body echoed in the reply, as in `http_server`.
const MAX_ECHO: usize = 1 << 20;

/// The JSON echo of `request`.
async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (head, mut body) = request.into_parts();
    let mut sha256 = Sha256::new();
    let mut length = 0u64;
    let mut echo = Some(Vec::new());
    let mut trailers = HeaderMap::new();
    while let Some(frame) = body.frame().await {
        match frame?.into_data() {
            Ok(data) => {
                sha256.update(&data);
                length += data.len() as u64;
                echo = echo.filter(|echo| echo.len() + data.len() <= MAX_ECHO);
                if let Some(echo) = &mut echo {
                    echo.extend_from_slice(&data);
                }
            }
            Err(frame) => {
                if let Ok(more) = frame.into_trailers() {
                    trailers.extend(more);
                }
            }
        }
    }

    let mut json = String::with_capacity(256);
    json.push_str("{\"method\":");
    push_json_string(&mut json, head.method.as_str());
    json.push_str(",\"path\":");
    push_json_string(&mut json, &head.uri.to_string());
    json.push_str(",\"version\":\"");
    json.push_str(match head.version {
        Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    });
    json.push_str("\",\"headers\":[");
    push_json_pairs(&mut json, &head.headers);
    json.push_str("],\"trailers\":[");
    push_json_pairs(&mut json, &trailers);
    json.push_str("],\"body_length\":");
    json.push_str(itoa::Buffer::new().format(length));
    json.push_str(",\"sha256\":\"");
    for byte in sha256.finalize() {
        json.push_str(&format!("{byte:02x}"));
    }
    json.push_str("\",\"stored\":null,\"body\":");
    match echo.as_deref().map(std::str::from_utf8) {
        Some(Ok(text)) => push_json_string(&mut json, text),
        _ => json.push_str("null"),
    }
    json.push_str("}\n");

    let mut response = Response::new(Full::new(Bytes::from(json)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// Appends `[name,value]` pairs, comma-separated; values that are not
/// UTF-8 are shown with U+FFFD, as `http_server` shows them.
fn push_json_pairs(json: &mut String, fields: &HeaderMap) {
    for (index, (name, value)) in fields.iter().enumerate() {
        if index > 0 {
            json.push(',');
        }
        json.push('[');
        push_json_string(json, name.as_str());
        json.push(',');
        push_json_string(json, &String::from_utf8_lossy(value.as_bytes()));
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
                json.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => json.push(c),
        }
    }
    json.push('"');
}

fn parse_port() -> Result<u16, String> {
    let mut args = std::env::args().skip(1);
    let port = args
        .next()
        .map(|arg| common::parse_port(&arg))
        .transpose()?;
    if let Some(arg) = args.next() {
        return Err(format!("unexpected argument {arg:?}"));
    }
    common::port_or_env(port, DEFAULT_PORT)
}

#[tokio::main]
async fn main() -> io::Result<()> {
    let port = parse_port().unwrap_or_else(|message| {
        eprintln!("hyper_contender: {message}\nusage: hyper_contender [PORT]");
        std::process::exit(2);
    });
    let listener = listen(port)?;
    println!(
        "hyper_contender listening on http://{}/",
        listener.local_addr()?
    );
    let mut http = http1::Builder::new();
    http.title_case_headers(true).auto_date_header(false);
    loop {
        let stream = common::accept(&listener).await;
        let _ = stream.set_nodelay(true);
        let http = http.clone();
        tokio::spawn(async move {
            let connection = http.serve_connection(TokioIo::new(stream), service_fn(answer));
            if let Err(error) = connection.await {
                eprintln!("connection: {error}");
            }
        });
    }
}
