//! The output stage of a [`Chat`](crate::Chat): the producer FIFO, the
//! pieces drawn from it, and the vectored writes that carry them to the IO
//! as they are, never copied into a write buffer. Only short pieces are
//! ever copied: behind a backlog of [`MAX_WRITE_PIECES`] they are joined
//! into pieces of up to [`COALESCE_BELOW`] bytes, and on an IO without
//! vectored writes those in a row are joined before each write.
//!
//! A piece is a `Bytes`: what a byte producer holds, or what a lazy
//! producer (iterator, stream, reader) yielded. Lazy producers are drawn
//! only while less than `out_buffer_size` bytes of pieces wait, so a long
//! one costs about that much memory however long it is. One write carries
//! up to [`MAX_WRITE_PIECES`] pieces, whatever their size.

use std::{
    collections::VecDeque,
    io::{self, IoSlice},
    pin::Pin,
    task::{ready, Context, Poll},
};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::AsyncWrite;

use crate::{Error, Producer};

/// The most pieces one vectored write carries: what a `writev` of a queue
/// of large `Bytes` takes at once, and few enough to live on the stack.
const MAX_WRITE_PIECES: usize = 64;

/// Up to this many queued pieces, a vectored write prepares this many
/// slices rather than `MAX_WRITE_PIECES`: a reply of a few pieces should
/// not pay for 64.
const FEW_WRITE_PIECES: usize = 4;

/// Pieces shorter than this are short enough to copy: behind a backlog they
/// are joined into pieces of up to this size, and on an IO without vectored
/// writes those that wait in a row are copied into one, so they leave in
/// one segment.
pub(crate) const COALESCE_BELOW: usize = 4 * 1024;

/// Whether more output can come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum OutputEnd {
    /// Output is accepted and written.
    #[default]
    Open,
    /// Close-when-done shut the write side down.
    Closed,
    /// An error ended the channel: flushing is an error from now on.
    Failed,
}

/// The producer FIFO and the pieces drawn from it.
#[derive(Debug, Default)]
pub(crate) struct Output {
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
    end: OutputEnd,
    /// A producer's error, handed out once what came before it is written.
    producer_error: Option<io::Error>,
    /// Bytes were written since the IO was last flushed.
    unflushed: bool,
}

impl Output {
    /// Nothing to write, flush or report: polling output would do nothing.
    #[inline]
    pub(crate) fn is_idle(&self) -> bool {
        self.fifo.is_empty()
            && self.pieces.is_empty()
            && !self.unflushed
            && self.end == OutputEnd::Open
            && self.producer_error.is_none()
    }

    /// Close-when-done was asked for, or the output ended.
    #[inline]
    pub(crate) fn is_closing(&self) -> bool {
        self.end != OutputEnd::Open || self.fifo.back().is_some_and(Producer::is_close)
    }

    pub(crate) fn end(&self) -> OutputEnd {
        self.end
    }

    /// Bytes may have been written to the IO and not flushed by someone
    /// else (the `Chat` or `Framed` these parts came from): the next flush
    /// must reach the IO.
    pub(crate) fn assume_unflushed(&mut self) {
        self.unflushed = true;
    }

    /// The output bytes held and not written yet.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Whether a producer waits to be drawn to its end (the close marker
    /// aside). An iterator, a stream or a reader may hold any number of
    /// bytes that `queued_bytes` cannot count.
    pub(crate) fn has_producer_waiting(&self) -> bool {
        self.fifo
            .front()
            .is_some_and(|producer| !producer.is_close())
    }

    #[inline]
    pub(crate) fn enqueue(&mut self, producer: Producer) {
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
        self.push_piece(piece);
    }

    /// Puts a piece behind those waiting. Up to [`MAX_WRITE_PIECES`] wait
    /// as they are, all of them one write's worth. Past that the peer
    /// reads slower than output comes, and a short piece is copied onto
    /// the end of the last one while the two stay under
    /// [`COALESCE_BELOW`]: a waiting piece costs a queue slot and the
    /// allocation it came in, many times the bytes of a reply of a few
    /// bytes, and a client that pipelines requests without reading would
    /// cost the server that much. The copy is of short pieces only, and
    /// one write then carries kilobytes a slice, not a few bytes.
    #[inline]
    fn push_piece(&mut self, piece: Bytes) {
        let backlog = self.pieces.len() >= MAX_WRITE_PIECES;
        match self.pieces.back_mut() {
            Some(last)
                if backlog
                    && piece.len() < COALESCE_BELOW
                    && last.len() + piece.len() <= COALESCE_BELOW =>
            {
                // The last piece's own allocation is reused only when it is
                // small: a piece cut from a large one (a reader's buffer)
                // would keep all of it alive.
                let mut joined = match std::mem::take(last).try_into_mut() {
                    Ok(joined) if joined.capacity() <= COALESCE_BELOW => joined,
                    Ok(joined) => copied(&joined),
                    Err(shared) => copied(&shared),
                };
                joined.extend_from_slice(&piece);
                *last = joined.freeze();
            }
            _ => self.pieces.push_back(piece),
        }
    }

    /// Drops everything queued (asynchat's `discard_buffers`); output stays
    /// open.
    pub(crate) fn clear(&mut self) {
        self.fifo.clear();
        self.pieces.clear();
        self.queued_bytes = 0;
        self.piece_bytes = 0;
        self.producer_error = None;
    }

    /// An error ended the channel: everything queued is dropped and more is
    /// refused.
    pub(crate) fn fail(&mut self) {
        self.clear();
        self.end = OutputEnd::Failed;
    }

    /// Writes queued output until it is all written and flushed (and, past
    /// a close marker, the write side shut down), or the IO or a producer
    /// is pending.
    pub(crate) fn poll_write_all<T: AsyncWrite>(
        &mut self,
        mut io: Pin<&mut T>,
        cx: &mut Context<'_>,
        out_buffer_size: usize,
    ) -> Poll<Result<(), Error>> {
        loop {
            match self.end {
                OutputEnd::Open => {}
                OutputEnd::Closed => return Poll::Ready(Ok(())),
                OutputEnd::Failed => return Poll::Ready(Err(Error::Closed)),
            }
            self.fill(cx, out_buffer_size);
            if !self.pieces.is_empty() {
                let written = ready!(self.poll_write_pieces(io.as_mut(), cx, out_buffer_size))?;
                if written == 0 {
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()));
                }
                self.advance(written);
                self.unflushed = true;
                continue;
            }
            // Nothing left to write for now: let it reach the peer.
            ready!(io.as_mut().poll_flush(cx))?;
            self.unflushed = false;
            if let Some(error) = self.producer_error.take() {
                return Poll::Ready(Err(Error::Producer(error)));
            }
            match self.fifo.front() {
                None => return Poll::Ready(Ok(())),
                Some(producer) if producer.is_close() => {
                    ready!(io.as_mut().poll_shutdown(cx))?;
                    self.clear();
                    self.end = OutputEnd::Closed;
                    return Poll::Ready(Ok(()));
                }
                // A producer is pending; it woke us when it has more.
                Some(_) => return Poll::Pending,
            }
        }
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
                    // A byte producer was counted in `queued_bytes` when it
                    // was queued; what a lazy one yields is counted now.
                    if known_before == 0 {
                        self.queued_bytes += piece.len();
                    }
                    self.piece_bytes += piece.len();
                    self.push_piece(piece);
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

    /// One write of the pieces as they are, cut into slices of at most
    /// `piece_size` bytes: vectored, up to [`MAX_WRITE_PIECES`] slices, when
    /// the IO supports it; otherwise the first slice, short pieces joined
    /// first.
    fn poll_write_pieces<T: AsyncWrite>(
        &mut self,
        io: Pin<&mut T>,
        cx: &mut Context<'_>,
        piece_size: usize,
    ) -> Poll<io::Result<usize>> {
        if !io.is_write_vectored() {
            self.coalesce_front();
            let piece = &self.pieces[0];
            return io.poll_write(cx, &piece[..piece.len().min(piece_size)]);
        }
        // The slices a write needs, counted only as far as telling few
        // from many: a large piece is cut into several.
        let slices_needed: usize = self
            .pieces
            .iter()
            .take(FEW_WRITE_PIECES + 1)
            .map(|piece| piece.len().div_ceil(piece_size))
            .sum();
        if slices_needed <= FEW_WRITE_PIECES {
            poll_write_vectored::<_, FEW_WRITE_PIECES>(io, cx, &self.pieces, piece_size)
        } else {
            poll_write_vectored::<_, MAX_WRITE_PIECES>(io, cx, &self.pieces, piece_size)
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
    /// Copies at most `MAX_WRITE_PIECES` pieces of under
    /// [`COALESCE_BELOW`] bytes each.
    fn coalesce_front(&mut self) {
        let joinable = self
            .pieces
            .iter()
            .take(MAX_WRITE_PIECES)
            .take_while(|piece| piece.len() < COALESCE_BELOW)
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

/// One vectored write of up to `N` slices of at most `piece_size` bytes,
/// cut from the pieces in order. The slices live on the stack.
fn poll_write_vectored<T: AsyncWrite, const N: usize>(
    io: Pin<&mut T>,
    cx: &mut Context<'_>,
    pieces: &VecDeque<Bytes>,
    piece_size: usize,
) -> Poll<io::Result<usize>> {
    let mut slices = [IoSlice::new(&[]); N];
    let mut count = 0;
    let cut = pieces.iter().flat_map(|piece| piece.chunks(piece_size));
    for (slice, chunk) in slices.iter_mut().zip(cut) {
        *slice = IoSlice::new(chunk);
        count += 1;
    }
    io.poll_write_vectored(cx, &slices[..count])
}

/// `bytes` in an allocation of their own, with room for short pieces to join
/// them up to [`COALESCE_BELOW`].
fn copied(bytes: &[u8]) -> BytesMut {
    let mut joined = BytesMut::with_capacity(COALESCE_BELOW);
    joined.extend_from_slice(bytes);
    joined
}
