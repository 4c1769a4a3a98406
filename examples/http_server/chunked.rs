//! A chunked body (RFC 9112, 7.1): the terminator switching this crate
//! exists for.
//!
//! ```text
//! 5;name=value\r\n      a size line, by a line terminator, whole
//! hello\r\n             its data, by Length(5), streamed; then a line ending
//! 0\r\n                 the last chunk
//! X-Checksum: 1\r\n     trailer fields, a line at a time
//! \r\n                  the empty line that ends the body
//! ```
//!
//! As in hyper's decoder, the state is named after what comes next; here a
//! state reads a whole line or a whole count, not a byte, since the codec
//! finds line endings and counts bytes. Lines may end in CRLF or a bare LF,
//! as in the head.

use std::sync::OnceLock;

use asynchat::{Chat, Error, Frame, Terminator};
use bytes::Bytes;
use tokio::net::TcpStream;

use super::{
    body::{read_streamed, BodySink},
    next_frame,
    reply::Status,
    Config, Read, Stop,
};

/// The longest size line. Its extensions are ignored, so no client needs
/// more; a size line that never ends costs no more than this.
const MAX_SIZE_LINE: usize = 4 * 1024;

/// The most trailer fields: 431 past it, as for a head.
const MAX_TRAILERS: usize = 100;

/// Where a chunked body is: named after what comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    /// A size line: hex digits, perhaps extensions, a line ending.
    Size,
    /// `size` bytes of data (never 0: a size of 0 is the last chunk).
    Data { size: u64 },
    /// The line ending after a chunk's data, with nothing before it.
    DataEnd,
    /// A trailer field line, or the empty line that ends the body.
    Trailer,
    /// The body is over; the next head follows.
    Done,
}

/// What ends a line: CRLF, or a bare LF.
fn line_terminator() -> &'static Terminator {
    static LINES: OnceLock<Terminator> = OnceLock::new();
    LINES.get_or_init(|| Terminator::any_of(["\r\n", "\n"]))
}

/// Reads a chunked body into `sink` and returns its trailer fields. The
/// caller switches back to the head's terminator.
pub async fn read(
    chat: &mut Chat<TcpStream>,
    config: &Config,
    sink: &mut BodySink,
) -> Result<Vec<(String, String)>, Stop> {
    let mut body = ChunkedBody {
        config,
        received: 0,
        line: Vec::new(),
        trailers: Vec::new(),
    };
    chat.set_streaming(false);
    chat.set_terminator(line_terminator().clone());
    chat.codec_mut().set_max_frame_length(MAX_SIZE_LINE);
    let mut state = Chunked::Size;
    loop {
        state = match state {
            Chunked::Size => body.size(chat).await?,
            Chunked::Data { size } => body.data(chat, size, sink).await?,
            Chunked::DataEnd => body.data_end(chat).await?,
            Chunked::Trailer => body.trailer(chat).await?,
            Chunked::Done => return parse_trailers(&body.trailers),
        };
    }
}

/// The state a chunked body carries from chunk to chunk.
struct ChunkedBody<'a> {
    config: &'a Config,
    /// The data announced so far, bounded by `max_body`.
    received: u64,
    /// A size line and its CRLF, for `httparse`.
    line: Vec<u8>,
    /// The trailer section as it came, line endings included, bounded by
    /// `max_head`.
    trailers: Vec<u8>,
}

impl ChunkedBody<'_> {
    /// A size line: the next chunk, or the last.
    async fn size(&mut self, chat: &mut Chat<TcpStream>) -> Result<Chunked, Stop> {
        let line = self.line(chat, Status::BadRequest).await?;
        // httparse reads an empty size as 0 (`\r\n`, `;ext\r\n`): the last
        // chunk, which it is not.
        if !line.first().is_some_and(u8::is_ascii_hexdigit) {
            return Err(Stop::Refuse(Status::BadRequest));
        }
        // httparse wants the CRLF, whichever line ending came.
        self.line.clear();
        self.line.extend_from_slice(&line);
        self.line.extend_from_slice(b"\r\n");
        // More than 16 hex digits, which could overflow, is an error too.
        let size = match httparse::parse_chunk_size(&self.line) {
            Ok(httparse::Status::Complete((length, size))) if length == self.line.len() => size,
            _ => return Err(Stop::Refuse(Status::BadRequest)),
        };
        if size == 0 {
            chat.codec_mut().set_max_frame_length(self.config.max_head);
            return Ok(Chunked::Trailer);
        }
        // Refused as soon as announced: none of the chunk is read.
        self.received = self
            .received
            .checked_add(size)
            .filter(|&received| received <= self.config.max_body)
            .ok_or(Stop::Refuse(Status::ContentTooLarge))?;
        Ok(Chunked::Data { size })
    }

    /// A chunk's data, streamed into `sink`.
    async fn data(
        &mut self,
        chat: &mut Chat<TcpStream>,
        size: u64,
        sink: &mut BodySink,
    ) -> Result<Chunked, Stop> {
        chat.set_terminator(Terminator::Length(size));
        chat.set_streaming(true);
        read_streamed(chat, self.config, sink).await?;
        chat.set_streaming(false);
        // The line terminator was in force before the count: switching back
        // reuses its searcher. Nothing may come before the line ending: a
        // limit of 0 refuses the first byte of data longer than its size,
        // without waiting for a line ending that may never come.
        chat.set_terminator(line_terminator().clone());
        chat.codec_mut().set_max_frame_length(0);
        Ok(Chunked::DataEnd)
    }

    /// The line ending after a chunk's data.
    async fn data_end(&mut self, chat: &mut Chat<TcpStream>) -> Result<Chunked, Stop> {
        let line = self.line(chat, Status::BadRequest).await?;
        if !line.is_empty() {
            return Err(Stop::Refuse(Status::BadRequest));
        }
        chat.codec_mut().set_max_frame_length(MAX_SIZE_LINE);
        Ok(Chunked::Size)
    }

    /// A trailer field line, kept for `httparse`, or the empty line.
    async fn trailer(&mut self, chat: &mut Chat<TcpStream>) -> Result<Chunked, Stop> {
        let line = self.line(chat, Status::HeaderFieldsTooLarge).await?;
        self.trailers.extend_from_slice(&line);
        self.trailers
            .extend_from_slice(chat.matched_delimiter().unwrap_or(b"\r\n"));
        if line.is_empty() {
            return Ok(Chunked::Done);
        }
        // The codec's limit is what is left of the section's: a trailer
        // line that never ends is refused there, not buffered.
        let left = self.config.max_head.saturating_sub(self.trailers.len());
        if left == 0 {
            return Err(Stop::Refuse(Status::HeaderFieldsTooLarge));
        }
        chat.codec_mut().set_max_frame_length(left);
        Ok(Chunked::Trailer)
    }

    /// The next line, whole, without its line ending. A line over the
    /// codec's limit is answered with `too_long`.
    async fn line(&mut self, chat: &mut Chat<TcpStream>, too_long: Status) -> Result<Bytes, Stop> {
        match next_frame(chat, self.config.idle_timeout).await {
            Ok(Read::Frame(Frame::Complete(line))) => Ok(line),
            // The peer closed in the middle of the body.
            Ok(Read::Frame(Frame::Partial(_)) | Read::End) => Err(Stop::Refuse(Status::BadRequest)),
            Ok(Read::Idle) => Err(Stop::Refuse(Status::RequestTimeout)),
            Err(Error::FrameTooLong { .. }) => Err(Stop::Refuse(too_long)),
            Err(error) => Err(Stop::Failed(error)),
        }
    }
}

/// The trailer section, parsed by `httparse`: the fields, with their
/// values as text (lossy where they are not UTF-8).
fn parse_trailers(section: &[u8]) -> Result<Vec<(String, String)>, Stop> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILERS];
    match httparse::parse_headers(section, &mut fields) {
        Ok(httparse::Status::Complete((length, fields))) if length == section.len() => Ok(fields
            .iter()
            .map(|field| {
                let value = String::from_utf8_lossy(field.value).into_owned();
                (field.name.to_string(), value)
            })
            .collect()),
        Err(httparse::Error::TooManyHeaders) => Err(Stop::Refuse(Status::HeaderFieldsTooLarge)),
        _ => Err(Stop::Refuse(Status::BadRequest)),
    }
}
