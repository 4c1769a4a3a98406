//! A line echo server: every line that arrives goes back with the line
//! ending it came with.
//!
//! ```text
//! cargo run --release --example echo -- [PORT] [--delimiter D] [--max-line BYTES]
//! nc 127.0.0.1 7777
//! ```
//!
//! The port is the first argument, else `$PORT`, else 7777 (0 picks a free
//! one; the address is printed).
//!
//! Lines end in `\n` or `\r\n` (`Terminator::any_of(["\r\n", "\n"])`), so
//! `nc`, which sends `\n`, and `telnet`, which sends `\r\n`, both work.
//! `--delimiter D` sets one delimiter instead, of any length; it
//! understands the escapes `\n`, `\r`, `\t` and `\\`.
//!
//! A line longer than `--max-line` bytes (default 8 MiB, the codec's
//! `DEFAULT_MAX_FRAME_LENGTH`) is not echoed: the client gets
//! `ERR line longer than N bytes` instead, ended as its last line was
//! (before any, with the first delimiter: `\r\n` by default), and the
//! connection goes on with the next line. The codec skips the rest of the
//! long line without buffering it. At the end of input, bytes that no
//! delimiter followed come back as they are, or as that error line if
//! they are over the limit: nothing vanishes without a word.
//!
//! Each connection is one `Chat`: for each complete line, push the line and
//! the delimiter that ended it (both `Bytes`, not copied; they leave in one
//! write). It is kept lean on purpose: it serves the many-connections load
//! test (`scripts/load.sh`).

use std::io;

use asynchat::{Chat, Error, Frame, Terminator, TerminatorCodec, DEFAULT_MAX_FRAME_LENGTH};
use bytes::Bytes;
use futures::StreamExt;
use tokio::net::{TcpListener, TcpStream};

mod common;
/// The listener of the examples (its backlog serves bursts of connections).
pub use common::listen;

/// The port when neither the command line nor `$PORT` gives one.
pub const DEFAULT_PORT: u16 = 7777;

/// What ends a line and how long one may be.
#[derive(Debug, Clone)]
pub struct Config {
    /// A `Delimiter` or a set of them (`AnyOf`); not a count, not `None`.
    pub terminator: Terminator,
    /// The longest line echoed, its delimiter excluded.
    pub max_line: usize,
}

impl Default for Config {
    /// Lines ended by `\n` or `\r\n`, up to 8 MiB.
    fn default() -> Self {
        Config {
            terminator: Terminator::any_of(["\r\n", "\n"]),
            max_line: DEFAULT_MAX_FRAME_LENGTH,
        }
    }
}

/// Accepts connections on `listener` forever, one task per connection, each
/// echoing lines as `config` says.
pub async fn serve(listener: TcpListener, config: Config) -> io::Result<()> {
    assert!(
        !config.terminator.delimiters().is_empty(),
        "lines end at a delimiter"
    );
    loop {
        // A failed accept is reported and retried rather than fatal.
        let stream = common::accept(&listener).await;
        tokio::spawn(echo(stream, config.clone()));
    }
}

/// Echoes each line of one connection until it ends.
pub async fn echo(stream: TcpStream, config: Config) {
    // One reply per request: there is no later data to coalesce it with.
    let _ = stream.set_nodelay(true);
    let codec =
        TerminatorCodec::new(config.terminator.clone()).with_max_frame_length(config.max_line);
    let mut chat = Chat::with_codec(stream, codec);
    let delimiters = config.terminator.delimiters();
    // The ending of the client's last line: an error line ends with it too.
    let mut line_ending = delimiters[0].clone();
    while let Some(frame) = chat.next().await {
        match frame {
            Ok(Frame::Complete(line)) => {
                // The terminator's own `Bytes`, not a copy of the match.
                if let Some(matched) = chat.matched_delimiter() {
                    if let Some(delimiter) = delimiters.iter().find(|d| d[..] == *matched) {
                        line_ending = delimiter.clone();
                    }
                }
                chat.push(line);
                chat.push(line_ending.clone());
            }
            // The end of input without a delimiter: give it back as it is.
            // The codec hands out up to a delimiter's length past the limit
            // here (those bytes might have begun one), so it is checked.
            Ok(Frame::Partial(rest)) if rest.len() <= config.max_line => chat.push(rest),
            Ok(Frame::Partial(_)) => line_too_long(&mut chat, config.max_line, &line_ending),
            // The codec skips the rest of the line; the next one is echoed.
            Err(Error::FrameTooLong { limit }) => line_too_long(&mut chat, limit, &line_ending),
            Err(_) => break,
        }
    }
}

/// Tells the client that its line was not echoed.
fn line_too_long(chat: &mut Chat<TcpStream>, limit: usize, line_ending: &Bytes) {
    chat.push(format!("ERR line longer than {limit} bytes"));
    chat.push(line_ending.clone());
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

/// `[PORT] [--delimiter D | --delimiter=D] [--max-line N | --max-line=N]`,
/// port falling back to `$PORT`.
fn parse_args() -> Result<(u16, Config), String> {
    let mut port = None;
    let mut config = Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value.into())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline_value
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--delimiter" | "-d" => config.terminator = unescape(&value("--delimiter")?)?.into(),
            "--max-line" => {
                let text = value("--max-line")?;
                config.max_line = text
                    .parse()
                    .map_err(|_| format!("bad --max-line {text:?}"))?;
            }
            _ if port.is_none() && !arg.starts_with('-') => {
                port = Some(common::parse_port(&arg)?);
            }
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    let port = common::port_or_env(port, DEFAULT_PORT)?;
    Ok((port, config))
}

#[allow(dead_code)] // the integration tests include this file as a module
#[tokio::main]
async fn main() -> io::Result<()> {
    let (port, config) = parse_args().unwrap_or_else(|message| {
        eprintln!("echo: {message}\nusage: echo [PORT] [--delimiter '\\r\\n'] [--max-line BYTES]");
        std::process::exit(2);
    });
    let listener = listen(port)?;
    let endings: Vec<String> = (config.terminator.delimiters().iter())
        .map(|delimiter| format!("{:?}", String::from_utf8_lossy(delimiter)))
        .collect();
    println!(
        "echo listening on {} (lines end in {})",
        listener.local_addr()?,
        endings.join(" or ")
    );
    serve(listener, config).await
}
