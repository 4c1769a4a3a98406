//! [`Chat`]: asynchat's channel: a `Stream` of frames and a `Sink` of
//! producers over one connection.
//!
//! Input: bytes read from the IO go through the [`TerminatorCodec`], as a
//! `tokio_util` `Framed` would do, but with the read size and the buffer's
//! life under the `Chat`'s control. Output: a FIFO of [`Producer`]s whose
//! pieces go to the IO as they are, with vectored writes, never copied into
//! a write buffer (only short pieces behind a backlog of 64 are joined, see
//! [`Chat::push`]).

use std::{
    future::Future,
    io, mem,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll, Wake, Waker},
};

use bytes::{BufMut, Bytes, BytesMut};
use futures::{task::AtomicWaker, Sink, SinkExt, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::{
    codec::{Decoder, Framed, FramedParts},
    io::poll_read_buf,
};

use crate::{
    output::{Output, OutputEnd},
    Error, Frame, Producer, Terminator, TerminatorCodec,
};

/// asynchat's `ac_in_buffer_size` and `ac_out_buffer_size`, unless set: the
/// most read at once, and the size of the pieces output is cut into.
pub const DEFAULT_BUFFER_SIZE: usize = 64 * 1024;

/// The first read of an idle connection: the read size doubles from here to
/// `in_buffer_size` while reads fill it.
const INITIAL_READ_SIZE: usize = 4 * 1024;

/// An asynchat channel over any `AsyncRead + AsyncWrite`: a [`Stream`] of
/// [`Frame`]s and a [`Sink`] of [`Producer`]s.
///
/// Output is queued with [`push`](Self::push),
/// [`push_with_producer`](Self::push_with_producer) or the `Sink`, and moves
/// whenever the `Chat` is polled, through either side: one task can push a
/// reply and await the next frame, and the reply goes out meanwhile. Frames
/// already read are handed out before output moves, so the replies to a
/// pipeline of requests leave together, in one write, once the frames read
/// so far are handled (or `out_buffer_size` bytes wait).
///
/// ```
/// use asynchat::{Chat, Frame};
/// use futures::StreamExt;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), asynchat::Error> {
/// let (client, server) = tokio::io::duplex(1024);
/// let mut chat = Chat::new(server, "\r\n");
///
/// let (mut read_half, mut write_half) = tokio::io::split(client);
/// write_half.write_all(b"HELO example.org\r\nQUIT\r\n").await?;
///
/// while let Some(frame) = chat.next().await {
///     match frame? {
///         Frame::Complete(line) if line == "QUIT" => {
///             chat.push("221 bye\r\n");
///             chat.close_when_done();
///         }
///         Frame::Complete(line) => chat.push(format!("250 {}\r\n", line.len())),
///         Frame::Partial(_) => {}
///     }
/// }
/// let mut replies = String::new();
/// read_half.read_to_string(&mut replies).await?;
/// assert_eq!(replies, "250 16\r\n221 bye\r\n");
/// # Ok(())
/// # }
/// ```
///
/// # Ending
///
/// The stream ends (`None`) when the peer's input ended and every frame was
/// handed out (bytes that no terminator followed come last, as
/// [`Frame::Partial`]) and queued output has been written; or once
/// close-when-done has shut the write side down. After an IO or producer
/// error it ends too. Frames that arrive after close-when-done completed are
/// not read.
///
/// # Two tasks
///
/// A `Chat` is both a `Stream` and a `Sink`, so
/// [`StreamExt::split`](futures::StreamExt::split) gives a reading half and a
/// writing half for two tasks; each half moves the other's work when polled,
/// and wakes the other when it finished that work.
///
/// # Errors
///
/// An IO error or a producer's error ends the channel: it is handed to the
/// half that met it, queued output is dropped, the stream ends and the sink
/// refuses more with [`Error::Closed`]. A producer's error comes after what
/// was queued before that producer, and what it yielded, has been written.
pub struct Chat<T> {
    io: T,
    codec: TerminatorCodec,
    read_buffer: BytesMut,
    /// The read buffer's allocation outgrew the first read's size since it
    /// was last released. Not derivable from the buffer: its `capacity()`
    /// counts from the current start, and after a long frame is split off a
    /// large allocation can show as small as a fresh one.
    read_buffer_grown: bool,
    read_size: usize,
    in_buffer_size: usize,
    out_buffer_size: usize,
    output: Output,
    phase: Phase,
    /// A push was refused after close-when-done: the next poll says so
    /// with [`Error::Closed`].
    push_refused: bool,
    /// The tasks waiting on output; output is polled with a waker made of
    /// them, which wakes them all.
    output_wakers: Arc<OutputWakers>,
}

/// The half of the `Chat` being polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Stream,
    Sink,
}

/// The tasks waiting for output to move: the one polling the `Stream` and the
/// one polling the `Sink`, two tasks once the `Chat` is split.
///
/// The IO's write readiness and a pending producer keep only the waker they
/// were last polled with. Polled with a task's own waker, the half that
/// polled last would take the wake-up from the other: a writing task would
/// sleep on a flush the reading task completed. Output is therefore polled
/// with a waker that wakes both.
#[derive(Debug, Default)]
struct OutputWakers {
    stream: AtomicWaker,
    sink: AtomicWaker,
}

impl OutputWakers {
    fn slot(&self, side: Side) -> &AtomicWaker {
        match side {
            Side::Stream => &self.stream,
            Side::Sink => &self.sink,
        }
    }
}

impl Wake for OutputWakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.stream.wake();
        self.sink.wake();
    }
}

/// The life of the connection, as far as the `Chat` is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading frames.
    Reading,
    /// The peer's input ended; the codec's last frames are being handed out.
    InputEnded,
    /// The stream ended: everything was handed out, the write side was shut
    /// down by close-when-done, or an error ended the channel.
    Finished,
}

impl<T> Chat<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    /// A channel over `io` whose input is framed by `terminator` in
    /// whole-frame mode ([`TerminatorCodec::new`]).
    ///
    /// ```
    /// use asynchat::Chat;
    ///
    /// # async fn example() -> std::io::Result<()> {
    /// let stream = tokio::net::TcpStream::connect("127.0.0.1:25").await?;
    /// let chat = Chat::new(stream, "\r\n");
    /// # let _ = chat;
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(io: T, terminator: impl Into<Terminator>) -> Self {
        Self::with_codec(io, TerminatorCodec::new(terminator))
    }

    /// A channel over `io` that decodes with `codec`: a streaming codec, or
    /// one with another limit.
    ///
    /// ```
    /// use asynchat::{Chat, TerminatorCodec};
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// let chat = Chat::with_codec(io, TerminatorCodec::streaming(b"\n"));
    /// assert!(chat.codec().is_streaming());
    /// ```
    pub fn with_codec(io: T, codec: TerminatorCodec) -> Self {
        Self::assemble(ChatParts::new(io, codec))
    }
}

impl<T> Chat<T> {
    /// Queues bytes for output, after everything queued before: asynchat's
    /// `push`. They go out in pieces of at most
    /// [`out_buffer_size`](Self::out_buffer_size), up to 64 pieces a write.
    /// `Bytes`, `Vec<u8>` and `String` are not copied; `&str` and `&[u8]`
    /// are, into an allocation of their own: for constant bytes pushed often
    /// (a reply's `\r\n`), `Bytes::from_static` costs neither. One
    /// exception bounds a backlog: once 64 pieces wait, a piece under
    /// 4 KiB is copied onto the end of the last one (while that stays under
    /// 4 KiB), so that replies of a few bytes queued for a peer that does
    /// not read cost about their bytes, not a queue slot and an allocation
    /// each; they then leave kilobytes a slice.
    ///
    /// `push` never waits, and reading goes on while output waits on the
    /// peer (a split `Chat` reads in one task while the other writes): a
    /// server that pushes a reply per request to a peer that sends and
    /// never reads holds every reply. To bound that memory, send through
    /// the `Sink` (`chat.feed(..).await`, which waits while
    /// `out_buffer_size` bytes, or a producer not yet drawn to its end, are
    /// queued), or check
    /// [`queued_output_len`](Self::queued_output_len) and flush before
    /// reading on.
    ///
    /// After [`close_when_done`](Self::close_when_done) the output is
    /// refused and the next poll of the `Chat` returns [`Error::Closed`];
    /// while the last output waits, no more frames are handed out.
    ///
    /// ```
    /// use asynchat::Chat;
    /// use bytes::Bytes;
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// let mut chat = Chat::new(io, "\n");
    /// chat.push("text ");
    /// chat.push(b"bytes ");
    /// chat.push(Bytes::from_static(b"shared\n"));
    /// ```
    pub fn push(&mut self, data: impl Into<Producer>) {
        self.push_with_producer(data.into());
    }

    /// Queues a producer for output, after everything queued before:
    /// asynchat's `push_with_producer`.
    ///
    /// ```
    /// use asynchat::{Chat, Producer};
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// let mut chat = Chat::new(io, "\n");
    /// chat.push_with_producer(Producer::from_reader(&b"file contents\n"[..]));
    /// chat.push_with_producer(Producer::close());
    /// ```
    pub fn push_with_producer(&mut self, producer: Producer) {
        if self.try_enqueue(producer).is_err() {
            self.push_refused = true;
        }
    }

    fn try_enqueue(&mut self, producer: Producer) -> Result<(), Error> {
        if self.output.is_closing() {
            return Err(Error::Closed);
        }
        self.output.enqueue(producer);
        Ok(())
    }

    /// Closes the channel once everything queued so far is written:
    /// asynchat's `close_when_done`. The write side is then shut down and
    /// the stream ends. Calling it again does nothing.
    ///
    /// ```
    /// use asynchat::Chat;
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// let mut chat = Chat::new(io, "\n");
    /// chat.push("bye\n");
    /// chat.close_when_done();
    /// assert!(chat.is_closing());
    /// ```
    pub fn close_when_done(&mut self) {
        if !self.output.is_closing() {
            self.output.enqueue(Producer::close());
        }
    }

    /// Whether close-when-done was asked for (or ran to its end).
    ///
    /// ```
    /// use asynchat::Chat;
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// assert!(!Chat::new(io, "\n").is_closing());
    /// ```
    pub fn is_closing(&self) -> bool {
        self.output.is_closing()
    }

    /// Sets what ends the next message; it applies to the bytes already
    /// read: see [`TerminatorCodec::set_terminator`].
    ///
    /// ```
    /// use asynchat::{Chat, Terminator};
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// let mut chat = Chat::new(io, "\r\n\r\n");
    /// chat.set_terminator(Terminator::Length(12));
    /// assert_eq!(chat.terminator(), &Terminator::Length(12));
    /// ```
    pub fn set_terminator(&mut self, terminator: impl Into<Terminator>) {
        self.codec.set_terminator(terminator);
    }

    /// As [`set_terminator`](Self::set_terminator), with the message
    /// searched as if preceded by `preceding`: see
    /// [`TerminatorCodec::set_terminator_after`]. For SMTP's `DATA`, whose
    /// block may be empty.
    ///
    /// ```
    /// use asynchat::{Chat, Frame};
    /// use futures::StreamExt;
    /// use tokio::io::AsyncWriteExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), asynchat::Error> {
    /// let (mut client, server) = tokio::io::duplex(64);
    /// client.write_all(b"DATA\r\n.\r\n").await?; // an empty message
    /// let mut chat = Chat::new(server, "\r\n");
    /// assert_eq!(chat.next().await.unwrap()?, Frame::Complete("DATA".into()));
    /// chat.set_terminator_after("\r\n.\r\n", b"\r\n");
    /// assert_eq!(chat.next().await.unwrap()?, Frame::Complete("".into()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_terminator_after(
        &mut self,
        terminator: impl Into<Terminator>,
        preceding: impl AsRef<[u8]>,
    ) {
        self.codec.set_terminator_after(terminator, preceding);
    }

    /// Switches between whole frames and streaming for the message under
    /// way and the bytes already read: see
    /// [`TerminatorCodec::set_streaming`]. Replacing the whole codec through
    /// [`codec_mut`](Self::codec_mut) works too, but loses the state of the
    /// message under way.
    ///
    /// ```
    /// use asynchat::Chat;
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// let mut chat = Chat::new(io, "\r\n");
    /// chat.set_streaming(true);
    /// assert!(chat.codec().is_streaming());
    /// ```
    pub fn set_streaming(&mut self, streaming: bool) {
        self.codec.set_streaming(streaming);
    }

    /// The delimiter that ended the last [`Frame::Complete`]: see
    /// [`TerminatorCodec::matched_delimiter`].
    ///
    /// ```
    /// use asynchat::{Chat, Terminator};
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// let chat = Chat::new(io, Terminator::any_of(["\r\n", "\n"]));
    /// assert_eq!(chat.matched_delimiter(), None);
    /// ```
    pub fn matched_delimiter(&self) -> Option<&[u8]> {
        self.codec.matched_delimiter()
    }

    /// The terminator as last set: see [`TerminatorCodec::terminator`].
    ///
    /// ```
    /// use asynchat::{Chat, Terminator};
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// assert_eq!(Chat::new(io, "\n").terminator(), &Terminator::from("\n"));
    /// ```
    pub fn terminator(&self) -> &Terminator {
        self.codec.terminator()
    }

    /// Empties the read buffer (and with it the message under way) and the
    /// producer FIFO, close marker included: asynchat's `discard_buffers`.
    /// The terminator stays; its search starts afresh.
    ///
    /// ```
    /// use asynchat::Chat;
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// let mut chat = Chat::new(io, "\n");
    /// chat.push("never sent\n");
    /// chat.discard_buffers();
    /// ```
    pub fn discard_buffers(&mut self) {
        self.read_buffer.clear();
        self.codec.forget_message();
        self.output.clear();
    }

    /// The most read at once: asynchat's `ac_in_buffer_size` (default 64 KiB).
    ///
    /// ```
    /// use asynchat::Chat;
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// assert_eq!(Chat::new(io, "\n").in_buffer_size(), 65536);
    /// ```
    pub fn in_buffer_size(&self) -> usize {
        self.in_buffer_size
    }

    /// Sets the most read at once (at least 1). Reads start small and grow
    /// to this size only while they come back full.
    ///
    /// ```
    /// use asynchat::Chat;
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// let mut chat = Chat::new(io, "\n");
    /// chat.set_in_buffer_size(4096);
    /// assert_eq!(chat.in_buffer_size(), 4096);
    /// ```
    pub fn set_in_buffer_size(&mut self, size: usize) {
        self.in_buffer_size = size.max(1);
        self.read_size = self.read_size.min(self.in_buffer_size);
    }

    /// The size of the pieces output is cut into, and how far a lazy
    /// producer (iterator, stream, reader) is drawn ahead: asynchat's
    /// `ac_out_buffer_size` (default 64 KiB). One vectored write carries up
    /// to 64 pieces; asynchat also capped each `send()` at this size, a cap
    /// that bought nothing but system calls and is dropped.
    ///
    /// ```
    /// use asynchat::Chat;
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// assert_eq!(Chat::new(io, "\n").out_buffer_size(), 65536);
    /// ```
    pub fn out_buffer_size(&self) -> usize {
        self.out_buffer_size
    }

    /// Sets the size of the pieces output is cut into and the read-ahead of
    /// lazy producers (at least 1).
    ///
    /// ```
    /// use asynchat::Chat;
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// let mut chat = Chat::new(io, "\n");
    /// chat.set_out_buffer_size(512);
    /// assert_eq!(chat.out_buffer_size(), 512);
    /// ```
    pub fn set_out_buffer_size(&mut self, size: usize) {
        self.out_buffer_size = size.max(1);
    }

    /// The output bytes the `Chat` holds and has not written yet: those of
    /// byte producers in the FIFO, and the pieces already drawn from
    /// iterators, streams and readers. What the latter have not yielded yet
    /// is not counted: the `Chat` does not hold it. A long reader therefore
    /// shows at most about two [`out_buffer_size`](Self::out_buffer_size)
    /// here, however long it is. This is what [`Sink::poll_ready`] weighs
    /// for backpressure, beside whether such a producer still waits.
    ///
    /// ```
    /// use asynchat::Chat;
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// let mut chat = Chat::new(io, "\n");
    /// chat.push("hello\n");
    /// assert_eq!(chat.queued_output_len(), 6);
    /// ```
    pub fn queued_output_len(&self) -> usize {
        self.output.queued_bytes()
    }

    /// The codec.
    ///
    /// ```
    /// use asynchat::Chat;
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// assert!(!Chat::new(io, "\n").codec().is_streaming());
    /// ```
    pub fn codec(&self) -> &TerminatorCodec {
        &self.codec
    }

    /// The codec, to change: its limit, its mode, its terminator. Replacing
    /// it (`*chat.codec_mut() = TerminatorCodec::streaming(..)`) works and
    /// applies to the bytes already read, from the start of the buffer; the
    /// state of the message under way goes with the old codec.
    ///
    /// ```
    /// use asynchat::Chat;
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// let mut chat = Chat::new(io, "\n");
    /// chat.codec_mut().set_terminator(5u64);
    /// ```
    pub fn codec_mut(&mut self) -> &mut TerminatorCodec {
        &mut self.codec
    }

    /// The IO.
    ///
    /// ```
    /// use asynchat::Chat;
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// let chat = Chat::new(io, "\n");
    /// let _io: &tokio::io::DuplexStream = chat.get_ref();
    /// ```
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The IO, to change. Reading or writing it directly bypasses the
    /// `Chat`'s buffers.
    ///
    /// ```
    /// use asynchat::Chat;
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// let mut chat = Chat::new(io, "\n");
    /// let _io: &mut tokio::io::DuplexStream = chat.get_mut();
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// The bytes read from the IO and not yet handed out as frames: what
    /// [`upgrade`](Self::upgrade) would discard, and what
    /// [`into_parts`](Self::into_parts) hands over. Does not copy.
    ///
    /// ```
    /// use asynchat::Chat;
    /// use futures::StreamExt;
    /// use tokio::io::AsyncWriteExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), asynchat::Error> {
    /// let (mut client, server) = tokio::io::duplex(64);
    /// client.write_all(b"STARTTLS\r\nRSET\r\n").await?;
    /// let mut chat = Chat::new(server, "\r\n");
    /// chat.next().await.unwrap()?; // STARTTLS
    /// assert_eq!(chat.buffered_input(), b"RSET\r\n");
    /// # Ok(())
    /// # }
    /// ```
    pub fn buffered_input(&self) -> &[u8] {
        &self.read_buffer
    }

    /// Takes the `Chat` apart: the IO, the codec with its state (the
    /// terminator, the mode, the message under way), the bytes read and not
    /// yet handed out, and the buffer sizes.
    /// [`from_parts`](Self::from_parts) puts them back together.
    ///
    /// **Output not yet written is dropped**: flush first
    /// ([`SinkExt::flush`](futures::SinkExt::flush)) to send it. Moves the
    /// buffers, copies nothing.
    ///
    /// ```
    /// use asynchat::{Chat, ChatParts};
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// let ChatParts { io, codec, read_buffer, .. } = Chat::new(io, "\n").into_parts();
    /// assert!(read_buffer.is_empty());
    /// let chat = Chat::from_parts(ChatParts::new(io, codec));
    /// # let _ = chat;
    /// ```
    pub fn into_parts(self) -> ChatParts<T> {
        ChatParts {
            io: self.io,
            codec: self.codec,
            read_buffer: self.read_buffer,
            in_buffer_size: self.in_buffer_size,
            out_buffer_size: self.out_buffer_size,
        }
    }

    /// A `Chat` from its parts, as [`into_parts`](Self::into_parts) gave
    /// them or as built by [`ChatParts::new`]. The bytes of `read_buffer`
    /// are decoded before anything more is read. Allocates the shared
    /// wakers (one small allocation); moves the buffers.
    ///
    /// ```
    /// use asynchat::{Chat, ChatParts, Frame, TerminatorCodec};
    /// use bytes::BytesMut;
    /// use futures::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), asynchat::Error> {
    /// let (io, _peer) = tokio::io::duplex(64);
    /// let mut parts = ChatParts::new(io, TerminatorCodec::new("\n"));
    /// parts.read_buffer = BytesMut::from("read elsewhere\n");
    /// let mut chat = Chat::from_parts(parts);
    /// assert_eq!(chat.next().await.unwrap()?, Frame::Complete("read elsewhere".into()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_parts(parts: ChatParts<T>) -> Self {
        let mut chat = Self::assemble(parts);
        // What the `Chat` these parts came from wrote may not be flushed.
        chat.output.assume_unflushed();
        chat
    }

    fn assemble(parts: ChatParts<T>) -> Self {
        let in_buffer_size = parts.in_buffer_size.max(1);
        let mut codec = parts.codec;
        // The read buffer may not be the one the codec last searched.
        codec.search_again();
        Chat {
            io: parts.io,
            codec,
            read_buffer_grown: parts.read_buffer.capacity() > INITIAL_READ_SIZE,
            read_buffer: parts.read_buffer,
            read_size: INITIAL_READ_SIZE.min(in_buffer_size),
            in_buffer_size,
            out_buffer_size: parts.out_buffer_size.max(1),
            output: Output::default(),
            phase: Phase::Reading,
            push_refused: false,
            output_wakers: Arc::default(),
        }
    }

    /// A `Framed` over the same IO, codec and unread bytes, for code
    /// written against tokio-util. **Output not yet written is dropped**:
    /// flush first ([`SinkExt::flush`](futures::SinkExt::flush)). The
    /// `Framed` keeps its own default buffer sizes. Moves the buffers.
    ///
    /// ```
    /// use asynchat::{Chat, TerminatorCodec};
    /// use tokio_util::codec::Framed;
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// let framed: Framed<_, TerminatorCodec> = Chat::new(io, "\n").into_framed();
    /// let chat = Chat::from(framed); // and back
    /// # let _ = chat;
    /// ```
    pub fn into_framed(self) -> Framed<T, TerminatorCodec> {
        let mut parts = FramedParts::new::<Bytes>(self.io, self.codec);
        parts.read_buf = self.read_buffer;
        Framed::from_parts(parts)
    }
}

impl<T> From<Framed<T, TerminatorCodec>> for Chat<T> {
    /// A `Chat` over a `Framed`'s IO and codec. The bytes it read and did
    /// not decode are decoded first; the bytes it buffered and did not
    /// write are queued as output, ahead of anything pushed. Nothing is
    /// lost or copied.
    fn from(framed: Framed<T, TerminatorCodec>) -> Self {
        let parts = framed.into_parts();
        let mut chat = Chat::from_parts(ChatParts {
            read_buffer: parts.read_buf,
            ..ChatParts::new(parts.io, parts.codec)
        });
        chat.push(parts.write_buf.freeze());
        chat
    }
}

/// A [`Chat`] taken apart by [`Chat::into_parts`], to be put back by
/// [`Chat::from_parts`]: as tokio-util's `FramedParts` is to a `Framed`.
///
/// ```
/// use asynchat::{ChatParts, TerminatorCodec, DEFAULT_BUFFER_SIZE};
///
/// let (io, _peer) = tokio::io::duplex(64);
/// let mut parts = ChatParts::new(io, TerminatorCodec::new("\r\n"));
/// assert!(parts.read_buffer.is_empty());
/// assert_eq!(parts.in_buffer_size, DEFAULT_BUFFER_SIZE);
/// // The struct is `#[non_exhaustive]`: change fields after `new`.
/// parts.in_buffer_size = 4096;
/// ```
///
/// The codec's state (where its search stopped) refers to `read_buffer`;
/// [`Chat::from_parts`] searches whatever buffer it is given from its
/// start.
#[derive(Debug)]
#[non_exhaustive]
pub struct ChatParts<T> {
    /// The IO.
    pub io: T,
    /// The codec, with its terminator, mode, limit and the state of the
    /// message under way.
    pub codec: TerminatorCodec,
    /// Bytes read from the IO and not yet decoded.
    pub read_buffer: BytesMut,
    /// The most read at once: see [`Chat::in_buffer_size`].
    pub in_buffer_size: usize,
    /// The output piece size: see [`Chat::out_buffer_size`].
    pub out_buffer_size: usize,
}

impl<T> ChatParts<T> {
    /// Parts with an empty read buffer and the default buffer sizes.
    /// Allocates nothing.
    ///
    /// ```
    /// use asynchat::{Chat, ChatParts, TerminatorCodec};
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// let chat = Chat::from_parts(ChatParts::new(io, TerminatorCodec::streaming("\n")));
    /// assert!(chat.codec().is_streaming());
    /// ```
    pub fn new(io: T, codec: TerminatorCodec) -> Self {
        ChatParts {
            io,
            codec,
            read_buffer: BytesMut::new(),
            in_buffer_size: DEFAULT_BUFFER_SIZE,
            out_buffer_size: DEFAULT_BUFFER_SIZE,
        }
    }
}

impl<T> Chat<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    /// Replaces the IO with what `upgrade` makes of it, for STARTTLS: the
    /// IO handed to a TLS acceptor or connector, the same conversation
    /// going on over what it returns.
    ///
    /// 1. All queued output is written and flushed first: the `220 ready
    ///    to start TLS` goes out in plaintext. Lazy producers are drawn to
    ///    their end, so one that never ends makes the upgrade wait for
    ///    ever: bound it with a timeout, or `discard_buffers` first.
    /// 2. **Every byte read and not yet handed out is discarded**: plaintext
    ///    that a peer, or an attacker, pipelined after `STARTTLS` must
    ///    never be read as if it came over TLS (CVE-2011-0411).
    ///    [`buffered_input`](Self::buffered_input) shows it beforehand, to
    ///    log or to refuse. The message under way starts afresh.
    /// 3. The IO goes to `upgrade`; the returned `Chat` keeps the
    ///    terminator, the mode, the limit and the buffer sizes.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after close-when-done or an error ended the
    /// channel; the write's error if flushing fails; [`Error::Io`] with the
    /// error `upgrade` returned (the IO is then gone with it).
    ///
    /// ```no_run
    /// use asynchat::Chat;
    ///
    /// # async fn example(
    /// #     chat: Chat<tokio::net::TcpStream>,
    /// #     acceptor: tokio_rustls::TlsAcceptor,
    /// # ) -> Result<(), asynchat::Error> {
    /// let mut chat = chat;
    /// chat.push("220 2.0.0 ready to start TLS\r\n");
    /// if !chat.buffered_input().is_empty() {
    ///     eprintln!("discarding {} bytes pipelined after STARTTLS", chat.buffered_input().len());
    /// }
    /// let chat = chat.upgrade(|io| acceptor.accept(io)).await?;
    /// # let _ = chat;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn upgrade<U, F, Fut>(mut self, upgrade: F) -> Result<Chat<U>, Error>
    where
        F: FnOnce(T) -> Fut,
        Fut: Future<Output = io::Result<U>>,
    {
        if self.output.is_closing() {
            return Err(Error::Closed);
        }
        self.flush().await?;
        let parts = self.into_parts();
        let mut codec = parts.codec;
        codec.forget_input();
        let io = upgrade(parts.io).await?;
        Ok(Chat::from_parts(ChatParts {
            in_buffer_size: parts.in_buffer_size,
            out_buffer_size: parts.out_buffer_size,
            ..ChatParts::new(io, codec)
        }))
    }

    /// Moves queued output for the task polling `side`: see
    /// [`poll_output`](Self::poll_output). An error ends the channel; the
    /// end of output, by close or error, wakes the other half.
    fn poll_send(&mut self, cx: &mut Context<'_>, side: Side) -> Poll<Result<(), Error>> {
        self.output_wakers.slot(side).register(cx.waker());
        if self.output.is_idle() {
            // The common case of a reader with nothing queued: skip the
            // waker clone and the flush.
            return Poll::Ready(Ok(()));
        }
        let was_open = self.output.end() == OutputEnd::Open;
        let waker = Waker::from(Arc::clone(&self.output_wakers));
        let result = self.output.poll_write_all(
            Pin::new(&mut self.io),
            &mut Context::from_waker(&waker),
            self.out_buffer_size,
        );
        if let Poll::Ready(Err(_)) = result {
            self.end();
        }
        if was_open && self.output.end() != OutputEnd::Open {
            // A reading half ends its stream; a writing half learns of it.
            let other = match side {
                Side::Stream => Side::Sink,
                Side::Sink => Side::Stream,
            };
            self.output_wakers.slot(other).wake();
        }
        result
    }

    /// Reads once, at most the current read size, which doubles up to
    /// `in_buffer_size` while reads come back full.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let size = self.read_size;
        self.read_buffer.reserve(size);
        // The buffer is only ever allocated here, and an allocation past the
        // first read's size shows in `capacity()` right after it is made.
        self.read_buffer_grown |= self.read_buffer.capacity() > INITIAL_READ_SIZE;
        let mut limited = (&mut self.read_buffer).limit(size);
        let read = ready!(poll_read_buf(Pin::new(&mut self.io), cx, &mut limited))?;
        if read == size {
            self.read_size = (size * 2).min(self.in_buffer_size);
        }
        Poll::Ready(Ok(read))
    }

    /// The next frame, reading as needed.
    ///
    /// `searched_already`: the buffer as it is was decoded already and held no frame,
    /// so the first step is a read, not a second search of the same bytes.
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
        mut searched_already: bool,
    ) -> Poll<Option<Result<Frame, Error>>> {
        loop {
            match self.phase {
                Phase::Reading => {}
                Phase::InputEnded => {
                    return match self.codec.decode_eof(&mut self.read_buffer) {
                        Ok(None) => {
                            // Replies to the last requests still go out.
                            ready!(self.poll_send(cx, Side::Stream))?;
                            self.phase = Phase::Finished;
                            Poll::Ready(None)
                        }
                        other => Poll::Ready(other.transpose()),
                    };
                }
                Phase::Finished => return Poll::Ready(None),
            }
            if !searched_already {
                if let Some(frame) = self.codec.decode(&mut self.read_buffer).transpose() {
                    return Poll::Ready(Some(frame));
                }
            }
            searched_already = false;
            match self.poll_read(cx) {
                Poll::Ready(Ok(0)) => self.phase = Phase::InputEnded,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
                Poll::Pending => {
                    self.shrink_idle_read_buffer();
                    return Poll::Pending;
                }
            }
        }
    }

    /// Waiting with nothing buffered: a read buffer of the first read's
    /// size is kept, so that the next request costs no allocation; a larger
    /// one, grown by a burst or a long frame, is released, and reads start
    /// small again.
    fn shrink_idle_read_buffer(&mut self) {
        if self.read_buffer.is_empty() && self.read_buffer_grown {
            self.read_buffer = BytesMut::new();
            self.read_buffer_grown = false;
            self.read_size = INITIAL_READ_SIZE.min(self.in_buffer_size);
        }
    }

    /// Hands out, through the stream, an error that ends the channel.
    fn fail<I>(&mut self, error: Error) -> Poll<Option<Result<I, Error>>> {
        if self.output.end() == OutputEnd::Open {
            // A writing half waiting on output learns that it is over.
            self.output_wakers.sink.wake();
        }
        self.end();
        Poll::Ready(Some(Err(error)))
    }

    /// An error ended the channel: no more input, queued output dropped,
    /// more refused.
    fn end(&mut self) {
        self.phase = Phase::Finished;
        self.output.fail();
    }
}

impl<T> Stream for Chat<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    type Item = Result<Frame, Error>;

    /// The next frame. Frames already read are handed out first; before
    /// reading, and before waiting for input, queued output is moved.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if mem::take(&mut this.push_refused) {
            return Poll::Ready(Some(Err(Error::Closed)));
        }
        if this.phase == Phase::Finished {
            return Poll::Ready(None);
        }
        // Frames already read come before output: the replies to a pipeline
        // of requests then leave together, in one write, once the buffer
        // runs dry (or output fills `out_buffer_size`), not one write each.
        // An empty buffer awaiting a delimiter is not searched: between
        // requests that is the common case.
        let searched_already = this.phase == Phase::Reading
            && this.output.queued_bytes() < this.out_buffer_size
            && !this.output.is_closing();
        if searched_already && !this.codec.needs_input(&this.read_buffer) {
            if let Some(frame) = this.codec.decode(&mut this.read_buffer).transpose() {
                return Poll::Ready(Some(frame));
            }
        }
        match this.poll_send(cx, Side::Stream) {
            Poll::Ready(Err(error)) => return this.fail(error),
            Poll::Ready(Ok(())) if this.output.end() != OutputEnd::Open => {
                this.phase = Phase::Finished;
                return Poll::Ready(None);
            }
            // A closing `Chat` hands out no frame whose reply it would have
            // to refuse while its last output waits on the peer.
            Poll::Pending if this.output.is_closing() => return Poll::Pending,
            _ => {}
        }
        match this.poll_frame(cx, searched_already) {
            Poll::Ready(Some(Err(error @ (Error::Io(_) | Error::Producer(_))))) => this.fail(error),
            other => other,
        }
    }
}

impl<T> Sink<Producer> for Chat<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    type Error = Error;

    /// Ready while less than `out_buffer_size` bytes are queued and no
    /// producer queued before waits to be drawn to its end; otherwise
    /// writes until everything queued is out. An iterator, a stream or a
    /// reader may hold any number of bytes, and they are not known before
    /// they are drawn: one queued fills the `Sink` as `out_buffer_size`
    /// bytes would. So a stream producer fed by the task that feeds the
    /// `Sink` is to be queued with [`push_with_producer`](Chat::push_with_producer):
    /// the next `feed` would wait for that stream's end.
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if mem::take(&mut this.push_refused) {
            return Poll::Ready(Err(Error::Closed));
        }
        if this.output.queued_bytes() >= this.out_buffer_size || this.output.has_producer_waiting()
        {
            ready!(this.poll_send(cx, Side::Sink))?;
        }
        Poll::Ready(Ok(()))
    }

    /// Queues the producer; [`Error::Closed`] after close-when-done or an
    /// error.
    fn start_send(self: Pin<&mut Self>, producer: Producer) -> Result<(), Error> {
        self.get_mut().try_enqueue(producer)
    }

    /// Writes everything queued, up to and including a close marker.
    /// [`Error::Closed`] once an error ended the channel.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if mem::take(&mut this.push_refused) {
            return Poll::Ready(Err(Error::Closed));
        }
        this.poll_send(cx, Side::Sink)
    }

    /// Close-when-done: everything queued, then the write side shut down.
    /// [`Error::Closed`] once an error ended the channel.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        this.close_when_done();
        this.poll_send(cx, Side::Sink)
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Chat<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chat")
            .field("io", &self.io)
            .field("codec", &self.codec)
            .field("buffered_input", &self.read_buffer.len())
            .field("queued_output", &self.output.queued_bytes())
            .field("phase", &self.phase)
            .finish()
    }
}
