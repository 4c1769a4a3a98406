//! [`TerminatorCodec`]: the decode state machine.
//!
//! The search for a delimiter is `memchr` for a one-byte delimiter and a
//! [`memchr::memmem::Finder`] built once per delimiter otherwise: both are
//! linear in the bytes searched. The codec remembers how far it searched, so
//! a message of N bytes costs O(N) however the reads split it.

use std::mem;

use bytes::{Buf, Bytes, BytesMut};
use memchr::memmem;
use tokio_util::codec::{Decoder, Encoder};

use crate::{find_prefix_at_end, Error, Frame, Terminator};

/// The default [`max_frame_length`](TerminatorCodec::max_frame_length) of
/// whole-frame mode: 8 MiB.
pub const DEFAULT_MAX_FRAME_LENGTH: usize = 8 * 1024 * 1024;

/// A [`Decoder`] and [`Encoder`] that frames input the way asynchat's
/// `handle_read` does: by a delimiter of any length, by a byte count, or not
/// at all, switchable between messages.
///
/// It comes in two modes:
///
/// * [`new`](Self::new) yields whole messages as [`Frame::Complete`],
///   buffering each up to [`max_frame_length`](Self::max_frame_length).
/// * [`streaming`](Self::streaming) yields [`Frame::Partial`] chunks as soon
///   as they cannot be part of the delimiter, then a [`Frame::Complete`] with
///   the rest of the message. It never holds more than `delimiter.len() - 1`
///   bytes of a message, however long the message is.
///
/// [`set_terminator`](Self::set_terminator) takes effect on the bytes already
/// buffered: read an HTTP head up to `\r\n\r\n`, then its body by
/// `Content-Length`, from the same read.
///
/// ```
/// use asynchat::{Frame, Terminator, TerminatorCodec};
/// use bytes::BytesMut;
/// use tokio_util::codec::Decoder;
///
/// let mut codec = TerminatorCodec::new("\r\n\r\n");
/// let mut buffer = BytesMut::from("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel");
///
/// let head = codec.decode(&mut buffer)?.unwrap();
/// assert_eq!(head, Frame::Complete("POST / HTTP/1.1\r\nContent-Length: 5".into()));
///
/// codec.set_terminator(5u64);
/// assert_eq!(codec.decode(&mut buffer)?, None); // "hel": three of five bytes
///
/// buffer.extend_from_slice(b"loGET");
/// assert_eq!(codec.decode(&mut buffer)?, Some(Frame::Complete("hello".into())));
/// // A completed Length leaves no terminator until the next is set.
/// assert_eq!(codec.terminator(), &Terminator::None);
/// # Ok::<(), asynchat::Error>(())
/// ```
///
/// # Note
///
/// A peer that never sends the delimiter would make a whole-frame decoder
/// buffer without end. Whole-frame mode therefore fails with
/// [`Error::FrameTooLong`] as soon as a message passes
/// [`max_frame_length`](Self::max_frame_length) (8 MiB unless set), and a
/// `Length` above it fails at once, before any of it is buffered. The codec
/// then skips the rest of that message without buffering it and carries on
/// with the next one, so a server can answer the error and go on. (A
/// `tokio_util` `Framed` ends its stream after any decode error; a
/// [`Chat`](crate::Chat) carries on.) Streaming mode needs no limit: its
/// memory does not grow with the message.
#[derive(Debug, Clone)]
pub struct TerminatorCodec {
    terminator: Terminator,
    state: State,
    streaming: bool,
    max_frame_length: usize,
    /// The search of the delimiter last set. It stays while a `Length` or
    /// `None` is in force: protocols that switch from a delimiter to a count
    /// and back (HTTP, RESP) then build each delimiter's searcher once. It
    /// lives outside [`State`] so that switching terminators moves a few
    /// words, not a `memmem::Finder`. Before any delimiter is set it is a
    /// placeholder, `Byte(b'\n')`, never consulted.
    searcher: Searcher,
}

/// Where the decoder is within the current message.
#[derive(Debug, Clone)]
enum State {
    /// Looking for the delimiter from the start of the buffer.
    ///
    /// `next_index` is where the next search starts. No occurrence of the
    /// delimiter starts before it, so those bytes are never searched again.
    /// For example, with delimiter `\r\n`, if decode was called with
    /// `abc\r` it searched all four bytes and found nothing; `next_index`
    /// is then 3, one delimiter length minus one before the end, because the
    /// `\r` may begin the delimiter. When `\ndef` arrives, the search looks
    /// only at `\r\ndef`.
    Delimited { next_index: usize },
    /// Whole-frame mode only: the message passed the limit, the error was
    /// returned, and its bytes are dropped up to and including the delimiter.
    /// `then` is the terminator of the next message: the same delimiter,
    /// unless one was set since the error.
    SkippingDelimited { then: Terminator },
    /// Framing by a count: `remaining` bytes of the message are still to be
    /// handed out (whole-frame mode hands them out in one go at the end).
    Counted { remaining: u64 },
    /// Whole-frame mode only: a `Length` above the limit; its `remaining`
    /// bytes are dropped as they arrive. `then` is the terminator of the
    /// next message: `None`, as after any `Length`, unless one was set since
    /// the error.
    SkippingCounted { remaining: u64, then: Terminator },
    /// No terminator: every byte is data.
    Unframed,
}

/// A delimiter's search, built once: `memchr` for one byte, a `memmem`
/// finder for more.
///
/// The finder is boxed: inline it is close to 300 bytes, which would make
/// every codec (and every `Chat`) that large to move.
#[derive(Debug, Clone)]
enum Searcher {
    Byte(u8),
    Bytes(Box<memmem::Finder<'static>>),
}

impl Searcher {
    fn new(delimiter: &[u8]) -> Self {
        match delimiter {
            [byte] => Searcher::Byte(*byte),
            _ => Searcher::Bytes(Box::new(memmem::Finder::new(delimiter).into_owned())),
        }
    }

    fn delimiter(&self) -> &[u8] {
        match self {
            Searcher::Byte(byte) => std::slice::from_ref(byte),
            Searcher::Bytes(finder) => finder.needle(),
        }
    }

    #[inline]
    fn find(&self, haystack: &[u8]) -> Option<usize> {
        match self {
            Searcher::Byte(byte) => memchr::memchr(*byte, haystack),
            Searcher::Bytes(finder) => finder.find(haystack),
        }
    }

    /// Where to resume after searching all of `searched_length` bytes in
    /// vain: the last `delimiter.len() - 1` bytes may begin the delimiter.
    #[inline]
    fn resume_index(&self, searched_length: usize) -> usize {
        searched_length.saturating_sub(self.delimiter().len() - 1)
    }
}

impl TerminatorCodec {
    /// A whole-frame codec: each message comes out as one
    /// [`Frame::Complete`], buffered up to [`DEFAULT_MAX_FRAME_LENGTH`].
    ///
    /// ```
    /// use asynchat::{Frame, TerminatorCodec};
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = TerminatorCodec::new("\r\n");
    /// let mut buffer = BytesMut::from("EHLO a\r\nQUIT\r\n");
    /// assert_eq!(codec.decode(&mut buffer)?, Some(Frame::Complete("EHLO a".into())));
    /// assert_eq!(codec.decode(&mut buffer)?, Some(Frame::Complete("QUIT".into())));
    /// assert_eq!(codec.decode(&mut buffer)?, None);
    /// # Ok::<(), asynchat::Error>(())
    /// ```
    pub fn new(terminator: impl Into<Terminator>) -> Self {
        Self::with_mode(terminator.into(), false)
    }

    /// A streaming codec: [`Frame::Partial`] chunks as soon as they cannot
    /// be part of the delimiter, then [`Frame::Complete`] with the rest of
    /// the message (possibly empty). Its memory does not grow with the
    /// message: it holds back at most `delimiter.len() - 1` bytes.
    ///
    /// ```
    /// use asynchat::{Frame, TerminatorCodec};
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = TerminatorCodec::streaming(b"\r\n.\r\n");
    /// let mut buffer = BytesMut::from("Subject: hi\r\n\r\nbody\r\n");
    /// // "\r\n" might begin "\r\n.\r\n": it is held back.
    /// assert_eq!(codec.decode(&mut buffer)?, Some(Frame::Partial("Subject: hi\r\n\r\nbody".into())));
    /// buffer.extend_from_slice(b".\r\n");
    /// assert_eq!(codec.decode(&mut buffer)?, Some(Frame::Complete("".into())));
    /// # Ok::<(), asynchat::Error>(())
    /// ```
    pub fn streaming(terminator: impl Into<Terminator>) -> Self {
        Self::with_mode(terminator.into(), true)
    }

    fn with_mode(terminator: Terminator, streaming: bool) -> Self {
        let mut codec = TerminatorCodec {
            terminator: Terminator::None,
            state: State::Unframed,
            streaming,
            max_frame_length: DEFAULT_MAX_FRAME_LENGTH,
            searcher: Searcher::Byte(b'\n'),
        };
        codec.set_terminator(terminator);
        codec
    }

    /// Sets the longest message whole-frame mode buffers; longer ones fail
    /// with [`Error::FrameTooLong`]. Streaming mode has no use for a limit
    /// and ignores it.
    ///
    /// ```
    /// use asynchat::{Error, TerminatorCodec};
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = TerminatorCodec::new("\n").with_max_frame_length(4);
    /// let mut buffer = BytesMut::from("12345\nok\n");
    /// assert!(matches!(codec.decode(&mut buffer), Err(Error::FrameTooLong { limit: 4 })));
    /// // The overlong message is skipped; the next one decodes normally.
    /// assert_eq!(codec.decode(&mut buffer)?.unwrap().into_bytes(), "ok");
    /// # Ok::<(), asynchat::Error>(())
    /// ```
    pub fn with_max_frame_length(mut self, max_frame_length: usize) -> Self {
        self.max_frame_length = max_frame_length;
        self
    }

    /// Sets the longest message whole-frame mode buffers, in place: for a
    /// protocol whose parts have different limits, such as an HTTP head of
    /// 8 KiB and its body of 1 MiB. It applies to the message under way.
    ///
    /// ```
    /// use asynchat::TerminatorCodec;
    ///
    /// let mut codec = TerminatorCodec::new("\r\n\r\n").with_max_frame_length(8 * 1024);
    /// codec.set_terminator(100_000u64);
    /// codec.set_max_frame_length(1 << 20);
    /// assert_eq!(codec.max_frame_length(), 1 << 20);
    /// ```
    pub fn set_max_frame_length(&mut self, max_frame_length: usize) {
        self.max_frame_length = max_frame_length;
    }

    /// The longest message whole-frame mode buffers.
    ///
    /// ```
    /// use asynchat::{TerminatorCodec, DEFAULT_MAX_FRAME_LENGTH};
    ///
    /// assert_eq!(TerminatorCodec::new("\n").max_frame_length(), DEFAULT_MAX_FRAME_LENGTH);
    /// ```
    pub fn max_frame_length(&self) -> usize {
        self.max_frame_length
    }

    /// Whether this codec was made by [`streaming`](Self::streaming).
    ///
    /// ```
    /// use asynchat::TerminatorCodec;
    ///
    /// assert!(TerminatorCodec::streaming("\n").is_streaming());
    /// assert!(!TerminatorCodec::new("\n").is_streaming());
    /// ```
    pub fn is_streaming(&self) -> bool {
        self.streaming
    }

    /// The terminator as last set. A `Length` reads as set while its message
    /// is under way (it does not count down) and as [`Terminator::None`] once
    /// its message completed.
    ///
    /// ```
    /// use asynchat::{Terminator, TerminatorCodec};
    ///
    /// let codec = TerminatorCodec::new(12u64);
    /// assert_eq!(codec.terminator(), &Terminator::Length(12));
    /// ```
    pub fn terminator(&self) -> &Terminator {
        &self.terminator
    }

    /// Sets what ends the next message. It applies to the bytes already
    /// buffered and not yet handed out, from the start of the current
    /// message. After [`Error::FrameTooLong`] the overlong message is still
    /// being skipped: the new terminator applies once it is over, so a
    /// server can set the next terminator as soon as it sees the error.
    /// Building a delimiter's searcher costs an allocation, except when the
    /// delimiter is the one set before the current `Length` or `None`.
    ///
    /// ```
    /// use asynchat::{Frame, TerminatorCodec};
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = TerminatorCodec::new("\r\n");
    /// let mut buffer = BytesMut::from("$3\r\nfoo\r\n");
    /// assert_eq!(codec.decode(&mut buffer)?, Some(Frame::Complete("$3".into())));
    /// codec.set_terminator(3u64 + 2);
    /// assert_eq!(codec.decode(&mut buffer)?, Some(Frame::Complete("foo\r\n".into())));
    /// codec.set_terminator("\r\n");
    /// # Ok::<(), asynchat::Error>(())
    /// ```
    pub fn set_terminator(&mut self, terminator: impl Into<Terminator>) {
        // A delimiter built directly can be empty, which would end a message
        // at every byte, forever: it means no terminator, as it does when
        // converted.
        let terminator = match terminator.into() {
            Terminator::Delimiter(delimiter) if delimiter.is_empty() => Terminator::None,
            terminator => terminator,
        };
        match &mut self.state {
            State::SkippingDelimited { then, .. } | State::SkippingCounted { then, .. } => {
                *then = terminator.clone();
                self.terminator = terminator;
            }
            _ => self.start(terminator),
        }
    }

    /// Starts the next message under `terminator`, from the start of the
    /// buffer.
    #[inline]
    fn start(&mut self, terminator: Terminator) {
        self.state = match &terminator {
            Terminator::Delimiter(delimiter) => {
                if self.searcher.delimiter() != &delimiter[..] {
                    self.searcher = Searcher::new(delimiter);
                }
                State::Delimited { next_index: 0 }
            }
            Terminator::Length(length) => State::Counted { remaining: *length },
            Terminator::None => State::Unframed,
        };
        self.terminator = terminator;
    }

    /// Forgets the message under way, as after `discard_buffers`: the
    /// terminator's search starts afresh. An overlong message being skipped
    /// is still skipped: the rest of its bytes are on their way.
    pub(crate) fn restart(&mut self) {
        if !matches!(
            self.state,
            State::SkippingDelimited { .. } | State::SkippingCounted { .. }
        ) {
            self.start(self.terminator.clone());
        }
    }

    /// Whether `decode` would find nothing without looking: the buffer is
    /// empty and the next frame needs bytes (a delimiter's search, or none).
    /// A counted message may complete, or fail its limit, on no bytes.
    pub(crate) fn needs_input(&self, buffer: &BytesMut) -> bool {
        buffer.is_empty()
            && matches!(
                self.state,
                State::Delimited { .. } | State::SkippingDelimited { .. } | State::Unframed
            )
    }

    fn too_long(&self) -> Error {
        Error::FrameTooLong {
            limit: self.max_frame_length,
        }
    }
}

impl Decoder for TerminatorCodec {
    type Item = Frame;
    type Error = Error;

    /// The hot path, inlined into the caller: when the delimiter is found
    /// within the limit, a frame costs one search and one
    /// `split_to().freeze()`, nothing else. The other cases are out of line.
    #[inline(always)]
    fn decode(&mut self, buffer: &mut BytesMut) -> Result<Option<Frame>, Error> {
        match &mut self.state {
            State::Delimited { next_index } => {
                let found = self.searcher.find(&buffer[*next_index..]);
                if let Some(offset) = found {
                    let end = *next_index + offset;
                    if end <= self.max_frame_length || self.streaming {
                        // Found: the message is everything before the delimiter.
                        *next_index = 0;
                        let message = buffer.split_to(end).freeze();
                        buffer.advance(self.searcher.delimiter().len());
                        return Ok(Some(Frame::Complete(message)));
                    }
                }
                self.delimiter_not_found_or_too_long(buffer, found)
            }
            // All of a counted message is here, within the limit.
            &mut State::Counted { remaining }
                if remaining <= buffer.len() as u64
                    && (remaining <= self.max_frame_length as u64 || self.streaming) =>
            {
                // `remaining <= buffer.len()`, so it fits in a usize.
                let message = buffer.split_to(remaining as usize).freeze();
                // As in asynchat: no terminator until the next is set.
                self.state = State::Unframed;
                self.terminator = Terminator::None;
                Ok(Some(Frame::Complete(message)))
            }
            _ => self.decode_other(buffer),
        }
    }

    /// At the end of input the bytes that no terminator followed come out as
    /// one [`Frame::Partial`] instead of vanishing as in asynchat; the rest
    /// of a message being skipped for its length is dropped.
    fn decode_eof(&mut self, buffer: &mut BytesMut) -> Result<Option<Frame>, Error> {
        if let Some(frame) = self.decode(buffer)? {
            return Ok(Some(frame));
        }
        match &mut self.state {
            _ if buffer.is_empty() => return Ok(None),
            State::SkippingDelimited { .. } | State::SkippingCounted { .. } => {
                buffer.clear();
                return Ok(None);
            }
            State::Delimited { next_index, .. } => *next_index = 0,
            State::Counted { remaining } if self.streaming => *remaining -= buffer.len() as u64,
            State::Counted { .. } | State::Unframed => {}
        }
        Ok(Some(Frame::Partial(buffer.split().freeze())))
    }
}

impl TerminatorCodec {
    /// The rest of a delimiter search: `found` is where `decode` found the
    /// delimiter, past the limit, or `None`.
    #[inline(never)]
    fn delimiter_not_found_or_too_long(
        &mut self,
        buffer: &mut BytesMut,
        found: Option<usize>,
    ) -> Result<Option<Frame>, Error> {
        let State::Delimited { next_index } = &mut self.state else {
            unreachable!("called in the Delimited state");
        };
        let searcher = &self.searcher;
        let Some(offset) = found else {
            if self.streaming {
                // Hand out what cannot begin the delimiter.
                let held = find_prefix_at_end(buffer, searcher.delimiter());
                let ready = buffer.len() - held;
                *next_index = searcher.resume_index(held);
                if ready == 0 {
                    return Ok(None);
                }
                return Ok(Some(Frame::Partial(buffer.split_to(ready).freeze())));
            }
            *next_index = searcher.resume_index(buffer.len());
            // The message is at least `next_index` bytes long.
            if *next_index <= self.max_frame_length {
                return Ok(None);
            }
            buffer.advance(*next_index);
            self.state = State::SkippingDelimited {
                then: self.terminator.clone(),
            };
            return Err(self.too_long());
        };
        // Whole-frame mode, past the limit: all of it is here already, so
        // drop it; no skip needed.
        let end = *next_index + offset;
        *next_index = 0;
        buffer.advance(end + searcher.delimiter().len());
        Err(self.too_long())
    }

    /// Every state but `Delimited`.
    #[inline(never)]
    fn decode_other(&mut self, buffer: &mut BytesMut) -> Result<Option<Frame>, Error> {
        loop {
            match &mut self.state {
                // The search of a delimiter is `decode`'s own, inlined.
                State::Delimited { .. } => return self.decode(buffer),
                State::SkippingDelimited { then } => match self.searcher.find(buffer) {
                    Some(offset) => {
                        // The overlong message ended: carry on with the next.
                        buffer.advance(offset + self.searcher.delimiter().len());
                        let then = mem::take(then);
                        self.start(then);
                    }
                    None => {
                        let held = self.searcher.delimiter().len() - 1;
                        buffer.advance(buffer.len().saturating_sub(held));
                        return Ok(None);
                    }
                },
                State::Counted { remaining } => {
                    if !self.streaming && *remaining > self.max_frame_length as u64 {
                        self.state = State::SkippingCounted {
                            remaining: *remaining,
                            then: Terminator::None,
                        };
                        return Err(self.too_long());
                    }
                    let available = buffer.len() as u64;
                    if available >= *remaining {
                        // `remaining <= available`, so it fits in a usize.
                        let message = buffer.split_to(*remaining as usize).freeze();
                        // As in asynchat: no terminator until the next is set.
                        self.start(Terminator::None);
                        return Ok(Some(Frame::Complete(message)));
                    }
                    if !self.streaming || available == 0 {
                        return Ok(None);
                    }
                    *remaining -= available;
                    return Ok(Some(Frame::Partial(buffer.split().freeze())));
                }
                State::SkippingCounted { remaining, then } => {
                    let dropped = (*remaining).min(buffer.len() as u64);
                    buffer.advance(dropped as usize);
                    *remaining -= dropped;
                    if *remaining > 0 {
                        return Ok(None);
                    }
                    let then = mem::take(then);
                    self.start(then);
                }
                State::Unframed => {
                    if buffer.is_empty() {
                        return Ok(None);
                    }
                    return Ok(Some(Frame::Partial(buffer.split().freeze())));
                }
            }
        }
    }
}

impl Encoder<Bytes> for TerminatorCodec {
    type Error = Error;

    /// Appends the bytes verbatim: the caller writes any terminator.
    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), Error> {
        dst.extend_from_slice(&item);
        Ok(())
    }
}

impl Encoder<&[u8]> for TerminatorCodec {
    type Error = Error;

    /// Appends the bytes verbatim: the caller writes any terminator.
    fn encode(&mut self, item: &[u8], dst: &mut BytesMut) -> Result<(), Error> {
        dst.extend_from_slice(item);
        Ok(())
    }
}

impl Encoder<&str> for TerminatorCodec {
    type Error = Error;

    /// Appends the string's bytes verbatim: the caller writes any terminator.
    fn encode(&mut self, item: &str, dst: &mut BytesMut) -> Result<(), Error> {
        dst.extend_from_slice(item.as_bytes());
        Ok(())
    }
}
