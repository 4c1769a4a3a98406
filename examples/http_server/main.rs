//! An HTTP/1.1 server on `Chat` that echoes each request back as JSON, with
//! every body streamed: its length and SHA-256 are computed as it arrives
//! and, with `--store DIR`, it is written to a file as it arrives. Memory
//! does not grow with the body.
//!
//! ```text
//! cargo run --release --example http_server -- [PORT] [--store DIR] [--max-body BYTES]
//! curl -s http://127.0.0.1:8080/hello?x=1
//! curl -s --data 'some body' http://127.0.0.1:8080/form
//! curl -s -T big.iso http://127.0.0.1:8080/upload       # by Content-Length
//! curl -s -T - http://127.0.0.1:8080/upload < big.iso  # chunked
//! ```
//!
//! The port is the first argument, else `$PORT`, else 8080 (0 picks a free
//! one; the address is printed). `--store DIR` writes each body to a file of
//! its own in DIR (created if missing); `--max-body` sets the longest body,
//! in bytes or with a suffix `K`, `M`, `G` (KiB, MiB, GiB; default 1 GiB).
//!
//! # Framing with a `Chat`
//!
//! Each connection is one `Chat` whose terminator follows the protocol:
//!
//! 1. The head, in whole frames of at most 8 KiB, up to the first empty
//!    line: `Terminator::any_of(["\r\n\r\n", "\n\r\n", "\n\n"])`.
//! 2. A body by `Content-Length`: `Terminator::Length(n)`, streamed
//!    (`Chat::set_streaming(true)`): its pieces come out as they arrive and
//!    are never gathered whole. `Content-Length: 0` (or none) is no body.
//! 3. A chunked body: a small state machine (`chunked.rs`) switching
//!    between a size line (by `any_of(["\r\n", "\n"])`, whole, at most
//!    4 KiB), its data (by `Length(size)`, streamed), the line ending after
//!    the data, and trailer lines until an empty one (8 KiB in all).
//! 4. Whole frames and the head's terminator again for the next request:
//!    keep-alive and pipelining read on from the bytes already buffered.
//!
//! The head is parsed by `httparse`. RFC 9112 (2.2) lets a recipient take a
//! bare LF for a line ending, so a head ends at the first empty line
//! whatever ends its lines: its last field line ends in CRLF or LF, and so
//! does the empty line, which gives four endings, `\r\n\r\n`, `\r\n\n`,
//! `\n\r\n` and `\n\n`. The three delimiters cover them: the codec ends a
//! frame at the delimiter that starts earliest, so `\r\n\n` ends at its
//! `\n\n` (the frame keeps the `\r`) and `\r\n\r\n` at itself, not at the
//! `\n\r\n` a byte later. None of them can occur inside a head, since each
//! holds an empty line. `httparse` gets the frame followed by the delimiter
//! that ended it (`Chat::matched_delimiter`): the head exactly as it came.
//! A bare CR is refused (400). Empty lines before a request line are
//! skipped, as RFC 9112 (2.2) asks, up to 8 KiB of them.
//!
//! # What is answered
//!
//! A good request gets a JSON object (written by hand):
//!
//! ```text
//! {"method":"POST","path":"/form","version":"HTTP/1.1",
//!  "headers":[["Host","127.0.0.1:8080"],["Content-Length","9"]],"trailers":[],
//!  "body_length":9,
//!  "sha256":"5f483264496cf1440c6ef569cc4fb9785d3bed896efdadfc998e9cb1badcec81",
//!  "stored":null,"body":"some body"}
//! ```
//!
//! `trailers` are the trailer fields of a chunked body; `body` is the body
//! when it is UTF-8 and at most 1 MiB ([`Config::max_echo`]), else `null`;
//! `stored` is the path of its file with `--store`, else `null`. HEAD gets
//! the same head without the object. Keep-alive is HTTP/1.1's default
//! unless `Connection: close`, HTTP/1.0's only with `Connection:
//! keep-alive`. `Expect: 100-continue` gets `100 Continue` before a body is
//! read, from HTTP/1.1 requests only (RFC 9110, 10.1.1).
//!
//! Bad input is answered, then the connection closed (RFC 9112):
//!
//! * 400: a malformed request line or field; no `Host` in HTTP/1.1, or
//!   two; a bad or overflowing `Content-Length`, or several that differ;
//!   both `Content-Length` and `Transfer-Encoding`; `Transfer-Encoding` in
//!   HTTP/1.0, or with `chunked` not once and last; a bad or overflowing
//!   chunk size, anything but a line ending after a chunk's data (refused
//!   at its first byte); a malformed trailer field; a body cut short by the
//!   end of the connection; more than 8 KiB of empty lines before a request.
//!   A request line is checked as it comes: bytes that cannot begin one (a
//!   TLS ClientHello) get their 400 at once, not at the idle timeout.
//! * 408: a body that stops coming for [`Config::idle_timeout`].
//! * 413: a body longer than `--max-body`, as soon as its length or the
//!   chunk that passes the limit is announced: the rest is not read.
//! * 431: a head over 8 KiB or with more than 100 field lines; trailers over
//!   8 KiB or 100 lines.
//! * 500: a body that could not be stored.
//! * 501: a transfer coding other than `chunked` (`gzip, chunked` too).
//! * 505: a well-formed version other than HTTP/1.0 and 1.1.

use std::{
    future::poll_fn,
    io,
    mem::MaybeUninit,
    path::PathBuf,
    sync::{Arc, OnceLock},
    task::Poll,
    time::Duration,
};

use asynchat::{Chat, Error, Frame, Producer, Terminator, TerminatorCodec};
use futures::{SinkExt, StreamExt};
use tokio::{
    net::{TcpListener, TcpStream},
    time::timeout,
};

mod body;
mod chunked;
#[path = "../common/mod.rs"]
mod common;
mod head;
mod reply;

pub use common::listen;

use body::Body;
use head::{Framing, Head};
use reply::Status;

/// The port when neither the command line nor `$PORT` gives one.
pub const DEFAULT_PORT: u16 = 8080;

/// Replies queued past this many bytes are written out before the next
/// request is read: a client that pipelines without reading stalls instead
/// of growing the server's memory.
const FLUSH_AT: usize = 64 * 1024;

/// What one request may cost the server, and where bodies go.
#[derive(Debug, Clone)]
pub struct Config {
    /// The longest head (request line and fields, without the empty line
    /// that ends it): 431 past it. It also bounds the empty lines skipped
    /// before a request line and the trailer section of a chunked body.
    pub max_head: usize,
    /// The longest body: 413 past it.
    pub max_body: u64,
    /// The longest body echoed in the reply; longer ones are reported by
    /// their length and digest only. The echo is the one copy of a body
    /// the server holds, so this bounds it.
    pub max_echo: usize,
    /// How long a connection may wait for its next head or the next piece
    /// of a body.
    pub idle_timeout: Duration,
    /// The directory each body is written to, in a file of its own.
    pub store: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_head: 8 * 1024,
            max_body: 1 << 30,
            max_echo: 1 << 20,
            idle_timeout: Duration::from_secs(30),
            store: None,
        }
    }
}

/// Serves `listener` forever with the default [`Config`].
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    serve_with(listener, Config::default()).await
}

/// Serves `listener` forever, one task per connection.
pub async fn serve_with(listener: TcpListener, config: Config) -> io::Result<()> {
    let config = Arc::new(config);
    loop {
        let stream = common::accept(&listener).await;
        let config = Arc::clone(&config);
        tokio::spawn(async move {
            if let Err(error) = handle_connection(stream, &config).await {
                eprintln!("connection: {error}");
            }
        });
    }
}

/// Why the requests of a connection stop.
#[derive(Debug)]
enum Stop {
    /// Bad input: answer this status, then close.
    Refuse(Status),
    /// The peer closed, or went quiet between requests: nobody to answer.
    Gone,
    /// The connection failed.
    Failed(Error),
}

/// What waiting for the next frame gave.
enum Read {
    Frame(Frame),
    /// The peer closed (after the bytes no terminator followed, if any).
    End,
    /// Nothing came for the idle timeout.
    Idle,
}

/// The next frame, waiting at most `idle_timeout`. Polling the `Chat` also
/// sends what is queued: a reply, or a `100 Continue`.
async fn next_frame(chat: &mut Chat<TcpStream>, idle_timeout: Duration) -> Result<Read, Error> {
    match timeout(idle_timeout, chat.next()).await {
        Err(_) => Ok(Read::Idle),
        Ok(None) => Ok(Read::End),
        Ok(Some(frame)) => frame.map(Read::Frame),
    }
}

/// The next frame of a head: as [`next_frame`], and after each read that
/// does not end it, what came is checked as the start of a request
/// ([`head::may_begin_a_request`]): a 400 as soon as it cannot be one.
async fn next_head_frame(
    chat: &mut Chat<TcpStream>,
    idle_timeout: Duration,
) -> Result<Result<Read, Error>, Stop> {
    let next = poll_fn(|context| match chat.poll_next_unpin(context) {
        Poll::Pending if !head::may_begin_a_request(chat.buffered_input()) => {
            Poll::Ready(Err(Stop::Refuse(Status::BadRequest)))
        }
        Poll::Pending => Poll::Pending,
        Poll::Ready(None) => Poll::Ready(Ok(Ok(Read::End))),
        Poll::Ready(Some(frame)) => Poll::Ready(Ok(frame.map(Read::Frame))),
    });
    match timeout(idle_timeout, next).await {
        Err(_) => Ok(Ok(Read::Idle)),
        Ok(read) => read,
    }
}

/// What ends a head: its empty line, after a CRLF or a bare LF. See the
/// module documentation for why these three.
fn head_terminator() -> &'static Terminator {
    static HEAD: OnceLock<Terminator> = OnceLock::new();
    HEAD.get_or_init(|| Terminator::any_of(["\r\n\r\n", "\n\r\n", "\n\n"]))
}

/// Serves the requests of one connection until it closes or fails.
async fn handle_connection(stream: TcpStream, config: &Config) -> Result<(), Error> {
    let _ = stream.set_nodelay(true);
    let codec =
        TerminatorCodec::new(head_terminator().clone()).with_max_frame_length(config.max_head);
    let mut chat = Chat::with_codec(stream, codec);
    match serve_requests(&mut chat, config).await {
        Ok(()) => finish(chat).await,
        Err(Stop::Refuse(status)) => {
            reply::refuse(&mut chat, status);
            finish(chat).await
        }
        // What is still queued goes out, if the peer still reads it.
        Err(Stop::Gone) => finish(chat).await.or(Ok(())),
        Err(Stop::Failed(error)) => Err(error),
    }
}

/// Reads and answers requests until one asks to close (`Ok`) or the
/// connection must stop.
async fn serve_requests(chat: &mut Chat<TcpStream>, config: &Config) -> Result<(), Stop> {
    // Reused from request to request: the head's bytes, the JSON.
    let mut head_bytes = Vec::new();
    let mut json = String::new();
    loop {
        read_head(chat, config, &mut head_bytes).await?;
        let mut fields = [MaybeUninit::uninit(); head::MAX_FIELDS];
        let head = Head::parse(&head_bytes, &mut fields).map_err(Stop::Refuse)?;
        let body = read_body(chat, config, &head).await?;
        reply::respond(chat, &head, &body, &mut json);
        if !head.keep_alive {
            return Ok(());
        }
        if chat.queued_output_len() >= FLUSH_AT {
            match timeout(config.idle_timeout, SinkExt::<Producer>::flush(chat)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(Stop::Failed(error)),
                Err(_) => return Err(Stop::Gone),
            }
        }
    }
}

/// Reads the next head into `head`: the frame and the delimiter that ended
/// it, as they came. Empty lines before it are skipped, up to
/// [`Config::max_head`] bytes of them.
async fn read_head(
    chat: &mut Chat<TcpStream>,
    config: &Config,
    head: &mut Vec<u8>,
) -> Result<(), Stop> {
    let mut skipped = 0;
    loop {
        match next_head_frame(chat, config.idle_timeout).await? {
            Ok(Read::Frame(Frame::Complete(frame))) => {
                let delimiter = chat.matched_delimiter().unwrap_or_default();
                if is_empty_lines(frame.iter().chain(delimiter)) {
                    skipped += frame.len() + delimiter.len();
                    if skipped > config.max_head {
                        return Err(Stop::Refuse(Status::BadRequest));
                    }
                    continue;
                }
                head.clear();
                head.extend_from_slice(&frame);
                head.extend_from_slice(delimiter);
                return Ok(());
            }
            // Closed between requests or in the middle of a head, or quiet
            // for too long: nobody to answer.
            Ok(Read::Frame(Frame::Partial(_)) | Read::End | Read::Idle) => return Err(Stop::Gone),
            Err(Error::FrameTooLong { .. }) => {
                return Err(Stop::Refuse(Status::HeaderFieldsTooLarge))
            }
            Err(error) => return Err(Stop::Failed(error)),
        }
    }
}

/// Whether `bytes` are only empty lines, each ended by CRLF or LF: what a
/// client may send before a request line (RFC 9112, 2.2).
fn is_empty_lines<'a>(bytes: impl IntoIterator<Item = &'a u8>) -> bool {
    let mut after_cr = false;
    for &byte in bytes {
        match byte {
            b'\r' if !after_cr => after_cr = true,
            b'\n' => after_cr = false,
            _ => return false,
        }
    }
    !after_cr
}

/// Reads the body the head announces, streaming it through a
/// [`body::BodySink`], and leaves the `Chat` ready for the next head.
async fn read_body(
    chat: &mut Chat<TcpStream>,
    config: &Config,
    head: &Head<'_, '_>,
) -> Result<Body, Stop> {
    match head.framing {
        Framing::Empty | Framing::Length(0) => return Ok(Body::empty()),
        // Known before any of the body is read: none of it is.
        Framing::Length(length) if length > config.max_body => {
            return Err(Stop::Refuse(Status::ContentTooLarge))
        }
        Framing::Length(_) | Framing::Chunked => {}
    }
    if head.expect_continue {
        chat.push(reply::CONTINUE);
    }
    let mut sink = body::BodySink::open(config, head.framing).await?;
    let trailers = match head.framing {
        Framing::Length(length) => {
            body::read_counted(chat, config, length, &mut sink).await?;
            Vec::new()
        }
        _ => chunked::read(chat, config, &mut sink).await?,
    };
    // The next head: whole frames under the head's limit again.
    chat.set_streaming(false);
    chat.set_terminator(head_terminator().clone());
    chat.codec_mut().set_max_frame_length(config.max_head);
    sink.finish(trailers).await
}

/// Closes the connection once everything queued is sent, then drains what
/// the peer still sends for a moment before the socket is dropped: closing
/// a socket with unread input makes the kernel reset the connection, and
/// the reset can destroy the answer before the peer reads it (the
/// "lingering close" of HTTP servers). What is left of a refused body is
/// not decoded: the `Chat` is no longer read.
async fn finish(mut chat: Chat<TcpStream>) -> Result<(), Error> {
    match timeout(
        Duration::from_secs(10),
        SinkExt::<Producer>::close(&mut chat),
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(error),
        Err(_) => return Ok(()), // the peer does not read: give up on it
    }
    common::drain(chat.into_parts().io).await;
    Ok(())
}

/// The command line: the port, the store, the body limit.
struct Options {
    port: u16,
    config: Config,
}

fn parse_args() -> Result<Options, String> {
    let mut config = Config::default();
    let mut port = None;
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
            "--store" => config.store = Some(PathBuf::from(value("--store")?)),
            "--max-body" => {
                let text = value("--max-body")?;
                config.max_body = parse_size(&text).ok_or(format!("bad --max-body {text:?}"))?;
            }
            _ if port.is_none() && !arg.starts_with('-') => {
                port = Some(common::parse_port(&arg)?);
            }
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    let port = common::port_or_env(port, DEFAULT_PORT)?;
    Ok(Options { port, config })
}

/// A size in bytes: digits, and a suffix `K`, `M` or `G` for KiB, MiB, GiB.
fn parse_size(text: &str) -> Option<u64> {
    let (digits, unit) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 1 << 10),
        b'M' | b'm' => (&text[..text.len() - 1], 1 << 20),
        b'G' | b'g' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

#[allow(dead_code)] // the integration tests include this file as a module
#[tokio::main]
async fn main() -> io::Result<()> {
    let options = parse_args().unwrap_or_else(|message| {
        eprintln!(
            "http_server: {message}\nusage: http_server [PORT] [--store DIR] [--max-body BYTES]"
        );
        std::process::exit(2);
    });
    if let Some(store) = &options.config.store {
        std::fs::create_dir_all(store)?;
    }
    let listener = listen(options.port)?;
    println!(
        "http_server listening on http://{}/",
        listener.local_addr()?
    );
    serve_with(listener, options.config).await
}
