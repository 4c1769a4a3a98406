//! [`Chat`]: asynchat's channel: a `Stream` of frames and a `Sink` of
//! producers over one connection.
//!
//! Input: bytes read from the IO go through the [`TerminatorCodec`], as a
//! `tokio_util` `Framed` would do, but with the read size and the buffer's
//! life under the `Chat`'s control. Output: a FIFO of [`Producer`]s whose
//! pieces go to the IO as they are, with vectored writes, never copied into
//! a write buffer.

use std::{
    collections::VecDeque,
    io::{self, IoSlice},
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll, Wake, Waker},
};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{task::AtomicWaker, Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::{codec::Decoder, io::poll_read_buf};

use crate::{Error, Frame, Producer, Terminator, TerminatorCodec};

/// asynchat's `ac_in_buffer_size` and `ac_out_buffer_size`: the most read or
/// written at once, unless set.
pub const DEFAULT_BUFFER_SIZE: usize = 64 * 1024;

/// The first read of an idle connection: the read size doubles from here to
/// `in_buffer_size` while reads fill it.
const INITIAL_READ_SIZE: usize = 4 * 1024;

/// The most pieces one vectored write carries.
const MAX_WRITE_PIECES: usize = 64;

/// Up to this many queued pieces, a vectored write prepares this many
/// slices rather than `MAX_WRITE_PIECES`.
const FEW_WRITE_PIECES: usize = 4;

/// On an IO without vectored writes, pieces shorter than this that wait in a
/// row are copied into one, so they leave in one segment.
const COALESCE_BELOW: usize = 4 * 1024;

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
    /// An error to hand out at the next poll: a push refused after close.
    deferred_error: Option<Error>,
    /// The tasks waiting on output, and the waker output is polled with,
    /// which wakes them all.
    output_wakers: Arc<OutputWakers>,
    output_waker: Waker,
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

/// The producer FIFO and the pieces drawn from it.
#[derive(Debug, Default)]
struct Output {
    /// Producers not yet exhausted, the front one being drawn from.
    fifo: VecDeque<Producer>,
    /// Pieces drawn from the producers, waiting for the IO.
    pieces: VecDeque<Bytes>,
    /// Bytes in `pieces` plus those of byte producers still in `fifo`: what
    /// backpressure is measured by.
    queued_bytes: usize,
    /// Bytes in `pieces` alone: drawing stops once it reaches
    /// `out_buffer_size`, which bounds the memory a long producer costs.
    piece_bytes: usize,
    /// No more output: close-when-done shut the write side down, or an
    /// error ended the channel.
    closed: bool,
    /// An error ended the channel: flushing is an error from now on.
    failed: bool,
    /// A producer's error, handed out once what came before it is written.
    producer_error: Option<io::Error>,
    /// Bytes were written since the IO was last flushed.
    unflushed: bool,
}

impl Output {
    /// Nothing to write, flush or report: polling output would do nothing.
    #[inline]
    fn is_idle(&self) -> bool {
        self.fifo.is_empty()
            && self.pieces.is_empty()
            && !self.unflushed
            && !self.closed
            && self.producer_error.is_none()
    }

    #[inline]
    fn is_closing(&self) -> bool {
        self.closed || self.fifo.back().is_some_and(Producer::is_close)
    }

    #[inline]
    fn enqueue(&mut self, producer: Producer) {
        if !self.fifo.is_empty() {
            return self.enqueue_producer(producer);
        }
        // Every producer before it is drawn: bytes join the pieces at once,
        // the common case of a reply, without a trip through the FIFO.
        // Holding them there costs nothing more: they are in memory anyway.
        match producer.into_piece() {
            Ok(piece) => self.enqueue_piece(piece),
            Err(producer) => self.enqueue_producer(producer),
        }
    }

    fn enqueue_producer(&mut self, producer: Producer) {
        self.queued_bytes += producer.known_length();
        self.fifo.push_back(producer);
    }

    #[inline]
    fn enqueue_piece(&mut self, piece: Bytes) {
        if piece.is_empty() {
            return;
        }
        self.queued_bytes += piece.len();
        self.piece_bytes += piece.len();
        self.pieces.push_back(piece);
    }

    fn clear(&mut self) {
        self.fifo.clear();
        self.pieces.clear();
        self.queued_bytes = 0;
        self.piece_bytes = 0;
        self.producer_error = None;
    }

    /// Draws pieces from the front producers until `out_buffer_size` bytes
    /// wait, a producer is pending or a producer failed.
    fn fill(&mut self, cx: &mut Context<'_>, out_buffer_size: usize) {
        while self.producer_error.is_none() && self.piece_bytes < out_buffer_size {
            let Some(producer) = self.fifo.front_mut() else {
                break;
            };
            if producer.is_close() {
                break;
            }
            let known_before = producer.known_length();
            match producer.poll_piece(cx, out_buffer_size) {
                Poll::Ready(Some(Ok(piece))) => {
                    if known_before == 0 {
                        self.queued_bytes += piece.len();
                    }
                    self.piece_bytes += piece.len();
                    self.pieces.push_back(piece);
                }
                // Kept until the pieces drawn before it are written: the
                // peer gets everything up to the failure, in order.
                Poll::Ready(Some(Err(error))) => self.producer_error = Some(error),
                Poll::Ready(None) => {
                    self.fifo.pop_front();
                }
                Poll::Pending => break,
            }
        }
    }

    /// Forgets the first `written` bytes of `pieces`.
    #[inline]
    fn advance(&mut self, mut written: usize) {
        self.queued_bytes -= written;
        self.piece_bytes -= written;
        while written > 0 {
            let piece = self.pieces.front_mut().expect("written bytes were queued");
            if written < piece.len() {
                piece.advance(written);
                return;
            }
            written -= piece.len();
            self.pieces.pop_front();
        }
    }

    /// On an IO without vectored writes, joins the short pieces at the front
    /// into one, so that `push(line); push("\n")` is one segment, not two.
    fn coalesce_front(&mut self, out_buffer_size: usize) {
        let joinable = self
            .pieces
            .iter()
            .scan(0usize, |total, piece| {
                *total += piece.len();
                (piece.len() < COALESCE_BELOW && *total <= out_buffer_size).then_some(())
            })
            .count();
        if joinable < 2 {
            return;
        }
        let mut joined = BytesMut::new();
        for piece in self.pieces.drain(..joinable) {
            joined.put(piece);
        }
        self.pieces.push_front(joined.freeze());
    }
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
        let output_wakers = Arc::new(OutputWakers::default());
        Chat {
            io,
            codec,
            read_buffer: BytesMut::new(),
            read_buffer_grown: false,
            read_size: INITIAL_READ_SIZE,
            in_buffer_size: DEFAULT_BUFFER_SIZE,
            out_buffer_size: DEFAULT_BUFFER_SIZE,
            output: Output::default(),
            phase: Phase::Reading,
            deferred_error: None,
            output_wakers: Arc::clone(&output_wakers),
            output_waker: Waker::from(output_wakers),
        }
    }
}

impl<T> Chat<T> {
    /// Queues bytes for output, after everything queued before: asynchat's
    /// `push`. They are written at most
    /// [`out_buffer_size`](Self::out_buffer_size) at a time. `Bytes`, `Vec<u8>` and
    /// `String` are not copied; `&str` and `&[u8]` are, into an allocation
    /// of their own: for constant bytes pushed often (a reply's `\r\n`),
    /// `Bytes::from_static` costs neither.
    ///
    /// After [`close_when_done`](Self::close_when_done) the output is
    /// refused and the next poll of the `Chat` returns [`Error::Closed`].
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
        if let Err(error) = self.try_enqueue(producer) {
            self.deferred_error = Some(error);
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
        self.codec.restart();
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

    /// The most written at once and the size of the pieces bytes are cut
    /// into: asynchat's `ac_out_buffer_size` (default 64 KiB).
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

    /// Sets the most written at once (at least 1).
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
    /// for backpressure.
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
        self.output.queued_bytes
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

    /// The codec, to change.
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

    /// The IO, and the bytes read but not yet handed out. Queued output is
    /// dropped.
    ///
    /// ```
    /// use asynchat::Chat;
    ///
    /// let (io, _peer) = tokio::io::duplex(64);
    /// let (_io, unread) = Chat::new(io, "\n").into_parts();
    /// assert!(unread.is_empty());
    /// ```
    pub fn into_parts(self) -> (T, BytesMut) {
        (self.io, self.read_buffer)
    }
}

impl<T> Chat<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
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
        let was_closed = self.output.closed;
        let waker = self.output_waker.clone();
        let result = self.poll_output(&mut Context::from_waker(&waker));
        if let Poll::Ready(Err(_)) = result {
            self.end();
        }
        if self.output.closed && !was_closed {
            // A reading half ends its stream; a writing half learns of it.
            let other = match side {
                Side::Stream => Side::Sink,
                Side::Sink => Side::Stream,
            };
            self.output_wakers.slot(other).wake();
        }
        result
    }

    /// Writes queued output until it is all written and flushed (and, past
    /// a close marker, the write side shut down), or the IO or a producer
    /// is pending.
    fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            if self.output.failed {
                return Poll::Ready(Err(Error::Closed));
            }
            if self.output.closed {
                return Poll::Ready(Ok(()));
            }
            self.output.fill(cx, self.out_buffer_size);
            if !self.output.pieces.is_empty() {
                let written = ready!(self.poll_write_pieces(cx))?;
                if written == 0 {
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()));
                }
                self.output.advance(written);
                self.output.unflushed = true;
                continue;
            }
            // Nothing left to write for now: let it reach the peer.
            ready!(Pin::new(&mut self.io).poll_flush(cx))?;
            self.output.unflushed = false;
            if let Some(error) = self.output.producer_error.take() {
                return Poll::Ready(Err(Error::Producer(error)));
            }
            match self.output.fifo.front() {
                None => return Poll::Ready(Ok(())),
                Some(producer) if producer.is_close() => {
                    ready!(Pin::new(&mut self.io).poll_shutdown(cx))?;
                    self.output.clear();
                    self.output.closed = true;
                    return Poll::Ready(Ok(()));
                }
                // A producer is pending; it woke us when it has more.
                Some(_) => return Poll::Pending,
            }
        }
    }

    /// One write of at most `out_buffer_size` bytes, vectored when the IO
    /// supports it, of the pieces as they are.
    fn poll_write_pieces(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let limit = self.out_buffer_size;
        let io = Pin::new(&mut self.io);
        if !io.is_write_vectored() {
            self.output.coalesce_front(limit);
            let piece = &self.output.pieces[0];
            return io.poll_write(cx, &piece[..piece.len().min(limit)]);
        }
        // The slices live on the stack and are filled in full each time: a
        // reply of a few pieces should not pay for 64.
        if self.output.pieces.len() <= FEW_WRITE_PIECES {
            poll_write_vectored::<_, FEW_WRITE_PIECES>(io, cx, &self.output.pieces, limit)
        } else {
            poll_write_vectored::<_, MAX_WRITE_PIECES>(io, cx, &self.output.pieces, limit)
        }
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
    /// `decoded`: the buffer as it is was decoded already and held no frame,
    /// so the first step is a read, not a second search of the same bytes.
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
        mut decoded: bool,
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
            if !decoded {
                if let Some(frame) = self.codec.decode(&mut self.read_buffer).transpose() {
                    return Poll::Ready(Some(frame));
                }
            }
            decoded = false;
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
        if !self.output.closed {
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
        self.output.clear();
        self.output.closed = true;
        self.output.failed = true;
    }
}

/// One vectored write of at most `limit` bytes of the first `N` pieces.
fn poll_write_vectored<T: AsyncWrite, const N: usize>(
    io: Pin<&mut T>,
    cx: &mut Context<'_>,
    pieces: &VecDeque<Bytes>,
    limit: usize,
) -> Poll<io::Result<usize>> {
    let mut slices = [IoSlice::new(&[]); N];
    let mut count = 0;
    let mut total = 0;
    for piece in pieces.iter().take(N) {
        if total == limit {
            break;
        }
        let take = piece.len().min(limit - total);
        slices[count] = IoSlice::new(&piece[..take]);
        count += 1;
        total += take;
    }
    io.poll_write_vectored(cx, &slices[..count])
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
        if let Some(error) = this.deferred_error.take() {
            return Poll::Ready(Some(Err(error)));
        }
        if this.phase == Phase::Finished {
            return Poll::Ready(None);
        }
        // Frames already read come before output: the replies to a pipeline
        // of requests then leave together, in one write, once the buffer
        // runs dry (or output fills `out_buffer_size`), not one write each.
        // An empty buffer awaiting a delimiter is not searched: between
        // requests that is the common case.
        let decoded = this.phase == Phase::Reading
            && this.output.queued_bytes < this.out_buffer_size
            && !this.output.is_closing();
        if decoded && !this.codec.needs_input(&this.read_buffer) {
            if let Some(frame) = this.codec.decode(&mut this.read_buffer).transpose() {
                return Poll::Ready(Some(frame));
            }
        }
        match this.poll_send(cx, Side::Stream) {
            Poll::Ready(Err(error)) => return this.fail(error),
            Poll::Ready(Ok(())) if this.output.closed => {
                this.phase = Phase::Finished;
                return Poll::Ready(None);
            }
            _ => {}
        }
        match this.poll_frame(cx, decoded) {
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

    /// Ready while less than `out_buffer_size` bytes are queued; otherwise
    /// writes until everything queued is out.
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if let Some(error) = this.deferred_error.take() {
            return Poll::Ready(Err(error));
        }
        if this.output.queued_bytes >= this.out_buffer_size {
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
        if let Some(error) = this.deferred_error.take() {
            return Poll::Ready(Err(error));
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
            .field("queued_output", &self.output.queued_bytes)
            .field("phase", &self.phase)
            .finish()
    }
}
