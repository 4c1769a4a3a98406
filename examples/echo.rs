//! A line echo server: every line that arrives goes back, delimiter included.
//!
//! ```text
//! cargo run --release --example echo -- [PORT] [--delimiter '\r\n']
//! ```
//!
//! The port is the first argument, else `$PORT`, else 7777 (0 picks a free
//! one; the address is printed). The delimiter understands the escapes `\n`,
//! `\r`, `\t` and `\\`, and defaults to `\n`. Talk to it with
//! `nc 127.0.0.1 7777`.
//!
//! Each connection is one `Chat` framed by the delimiter: for each complete
//! line, push the line and the delimiter (both `Bytes`, not copied; they
//! leave in one write). It is kept lean on purpose: it serves the
//! many-connections load test and the round-trip benchmark.

use std::io;

use asynchat::{Chat, Error, Frame};
use bytes::Bytes;
use futures::StreamExt;
use tokio::net::{TcpListener, TcpStream};

mod common;
/// The listener of the examples (its backlog serves bursts of connections).
pub use common::listen;

/// The port when neither the command line nor `$PORT` gives one.
pub const DEFAULT_PORT: u16 = 7777;

/// Accepts connections on `listener` forever, one task per connection, each
/// echoing lines ended by `delimiter`.
pub async fn serve(listener: TcpListener, delimiter: Bytes) -> io::Result<()> {
    assert!(!delimiter.is_empty(), "the delimiter must not be empty");
    loop {
        // A failed accept is reported and retried rather than fatal.
        let stream = common::accept(&listener).await;
        tokio::spawn(echo(stream, delimiter.clone()));
    }
}

/// Echoes each line of one connection until it ends.
pub async fn echo(stream: TcpStream, delimiter: Bytes) {
    // One reply per request: there is no later data to coalesce it with.
    let _ = stream.set_nodelay(true);
    let mut chat = Chat::new(stream, delimiter.clone());
    while let Some(frame) = chat.next().await {
        match frame {
            Ok(Frame::Complete(line)) => {
                chat.push(line);
                chat.push(delimiter.clone());
            }
            // The end of input without a delimiter: give it back as it is.
            Ok(Frame::Partial(rest)) => chat.push(rest),
            // A line over the codec's limit is skipped; the next one is echoed.
            Err(Error::FrameTooLong { .. }) => {}
            Err(_) => break,
        }
    }
}

/// Interprets `\n`, `\r`, `\t` and `\\` in a delimiter given on the command line.
pub fn unescape(text: &str) -> Result<Bytes, String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buffer = [0; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            continue;
        }
        bytes.push(match chars.next() {
            Some('n') => b'\n',
            Some('r') => b'\r',
            Some('t') => b'\t',
            Some('\\') => b'\\',
            Some(other) => return Err(format!("unknown escape \\{other}")),
            None => return Err("a lone \\ at the end".into()),
        });
    }
    if bytes.is_empty() {
        return Err("the delimiter must not be empty".into());
    }
    Ok(bytes.into())
}

/// `[PORT] [--delimiter D | --delimiter=D]`, port falling back to `$PORT`.
fn parse_args() -> Result<(u16, Bytes), String> {
    let mut port = None;
    let mut delimiter = Bytes::from_static(b"\n");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if let Some(value) = arg.strip_prefix("--delimiter=") {
            delimiter = unescape(value)?;
        } else if arg == "--delimiter" || arg == "-d" {
            let value = args.next().ok_or("--delimiter needs a value")?;
            delimiter = unescape(&value)?;
        } else if port.is_none() && !arg.starts_with('-') {
            port = Some(common::parse_port(&arg)?);
        } else {
            return Err(format!("unexpected argument {arg:?}"));
        }
    }
    let port = common::port_or_env(port, DEFAULT_PORT)?;
    Ok((port, delimiter))
}

#[allow(dead_code)] // the integration tests include this file as a module
#[tokio::main]
async fn main() -> io::Result<()> {
    let (port, delimiter) = parse_args().unwrap_or_else(|message| {
        eprintln!("echo: {message}\nusage: echo [PORT] [--delimiter '\\r\\n']");
        std::process::exit(2);
    });
    let listener = listen(port)?;
    println!(
        "echo listening on {} (delimiter {:?})",
        listener.local_addr()?,
        String::from_utf8_lossy(&delimiter)
    );
    serve(listener, delimiter).await
}
