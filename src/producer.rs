//! [`Producer`]: a source of output for the [`Chat`](crate::Chat)'s FIFO.

use std::{
    fmt, io,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{BufMut, Bytes, BytesMut};
use futures::Stream;
use tokio::io::AsyncRead;
use tokio_util::io::poll_read_buf;

use crate::output::COALESCE_BELOW;

/// Output queued on a [`Chat`](crate::Chat): asynchat's producers.
///
/// The `Chat` drains its producers in order, one at a time, drawing the next
/// piece of the one in front only when less than `out_buffer_size` bytes
/// wait to be written; so a producer as long as a file costs the `Chat` at
/// most about two `out_buffer_size` of memory.
///
/// ```
/// use asynchat::Producer;
/// use bytes::Bytes;
///
/// let greeting = Producer::from("220 ready\r\n");           // copied
/// let body = Producer::from(Bytes::from(vec![b'x'; 1 << 20])); // not copied
/// let lines = Producer::from_iter((0..3).map(|i| Bytes::from(format!("{i}\r\n"))));
/// let slow = Producer::with_buffer_size("one piece of 4 bytes at a time", 4);
/// let bye = Producer::close();
/// # let _ = (greeting, body, lines, slow, bye);
/// ```
pub struct Producer {
    source: Source,
}

enum Source {
    /// Bytes handed out in pieces of `piece_size`, or of the `Chat`'s
    /// `out_buffer_size` when `None`.
    Bytes {
        data: Bytes,
        piece_size: Option<usize>,
    },
    Iter(Box<dyn Iterator<Item = Bytes> + Send>),
    Stream(Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>),
    Reader {
        reader: Pin<Box<dyn AsyncRead + Send>>,
        buffer: BytesMut,
        /// How the reader ended (`Ok` at its end), met while gathering a
        /// piece: reported once that piece is drawn.
        ended: Option<io::Result<()>>,
    },
    Close,
}

impl Producer {
    /// Bytes drawn in pieces of at most `buffer_size` (0 counts as 1):
    /// asynchat's `simple_producer(data, buffer_size)`. The pieces bound what
    /// the `Chat` draws at a time, not the writes: short pieces waiting in a
    /// row still leave in one write, as all short pieces do (asynchat sent
    /// one piece per write).
    ///
    /// ```
    /// use asynchat::Producer;
    ///
    /// let producer = Producer::with_buffer_size(b"hello world\n".to_vec(), 8);
    /// # let _ = producer;
    /// ```
    pub fn with_buffer_size(data: impl Into<Bytes>, buffer_size: usize) -> Self {
        Producer {
            source: Source::Bytes {
                data: data.into(),
                piece_size: Some(buffer_size.max(1)),
            },
        }
    }

    /// The pieces of an iterator, drawn lazily as output drains: asynchat's
    /// producer with a `more()` method. Empty pieces are skipped; the
    /// producer is exhausted when the iterator ends. Boxes the iterator:
    /// one allocation; its pieces are written as they are, not copied.
    ///
    /// ```
    /// use asynchat::Producer;
    /// use bytes::Bytes;
    ///
    /// let countdown = Producer::from_iter((1..=3).rev().map(|n| Bytes::from(format!("{n}\n"))));
    /// # let _ = countdown;
    /// ```
    #[allow(clippy::should_implement_trait)] // lazy, unlike FromIterator
    pub fn from_iter<I>(pieces: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Bytes> + 'static,
        I::IntoIter: Send + 'static,
    {
        Producer {
            source: Source::Iter(Box::new(pieces.into_iter().map(Into::into))),
        }
    }

    /// The pieces of an async stream, in order. An error from the stream
    /// ends the [`Chat`](crate::Chat) with [`Error::Producer`](crate::Error::Producer).
    /// Boxes the stream: one allocation; its pieces are written as they
    /// are, not copied.
    ///
    /// ```
    /// use asynchat::Producer;
    /// use bytes::Bytes;
    ///
    /// let pieces = futures::stream::iter(vec![Ok(Bytes::from("a")), Ok(Bytes::from("b"))]);
    /// let producer = Producer::from_stream(pieces);
    /// # let _ = producer;
    /// ```
    pub fn from_stream<S>(stream: S) -> Self
    where
        S: Stream<Item = io::Result<Bytes>> + Send + 'static,
    {
        Producer {
            source: Source::Stream(Box::pin(stream)),
        }
    }

    /// Everything a reader yields until its end (a file, a pipe), read in
    /// pieces of at most the `Chat`'s `out_buffer_size`. A read error ends
    /// the [`Chat`](crate::Chat) with [`Error::Producer`](crate::Error::Producer).
    /// Boxes the reader (one allocation) and reads into buffers of
    /// `out_buffer_size`, each piece in the room the last one left; short
    /// reads that come at once make one piece of at least 4 KiB. About two
    /// `out_buffer_size` are held however long it is and however short its
    /// reads, and no byte is copied but by the reader.
    ///
    /// ```
    /// use asynchat::Producer;
    ///
    /// let producer = Producer::from_reader(&b"contents of a file"[..]);
    /// # let _ = producer;
    /// ```
    pub fn from_reader<R>(reader: R) -> Self
    where
        R: AsyncRead + Send + 'static,
    {
        Producer {
            source: Source::Reader {
                reader: Box::pin(reader),
                buffer: BytesMut::new(),
                ended: None,
            },
        }
    }

    /// The close-when-done marker: once everything queued before it is
    /// written and flushed, the `Chat` shuts down its write side and its
    /// stream ends. Asynchat pushes `None` for this.
    ///
    /// ```
    /// use asynchat::Producer;
    ///
    /// assert!(Producer::close().is_close());
    /// ```
    pub fn close() -> Self {
        Producer {
            source: Source::Close,
        }
    }

    /// Whether this is the [`close`](Self::close) marker.
    ///
    /// ```
    /// use asynchat::Producer;
    ///
    /// assert!(!Producer::from("data").is_close());
    /// ```
    pub fn is_close(&self) -> bool {
        matches!(self.source, Source::Close)
    }

    /// The bytes this producer still holds, when they are known in advance
    /// (bytes, not iterators, streams or readers).
    pub(crate) fn known_length(&self) -> usize {
        match &self.source {
            Source::Bytes { data, .. } => data.len(),
            _ => 0,
        }
    }

    /// The bytes of a plain bytes producer, which are a piece already: the
    /// `Chat` queues them as they are, without drawing. Any other producer
    /// comes back as it was.
    #[inline]
    pub(crate) fn into_piece(self) -> Result<Bytes, Producer> {
        match self.source {
            Source::Bytes {
                data,
                piece_size: None,
            } => Ok(data),
            source => Err(Producer { source }),
        }
    }

    /// Draws the next piece, of at most `out_buffer_size` bytes where the
    /// producer decides the size. `Ready(None)`: exhausted (the close marker
    /// is never drawn from; the `Chat` handles it).
    pub(crate) fn poll_piece(
        &mut self,
        cx: &mut Context<'_>,
        out_buffer_size: usize,
    ) -> Poll<Option<io::Result<Bytes>>> {
        match &mut self.source {
            Source::Bytes { data, piece_size } => {
                if data.is_empty() {
                    return Poll::Ready(None);
                }
                let size = piece_size.unwrap_or(out_buffer_size).min(data.len());
                Poll::Ready(Some(Ok(data.split_to(size))))
            }
            Source::Iter(pieces) => Poll::Ready(pieces.find(|piece| !piece.is_empty()).map(Ok)),
            Source::Stream(stream) => loop {
                match stream.as_mut().poll_next(cx) {
                    Poll::Ready(Some(Ok(piece))) if piece.is_empty() => continue,
                    other => return other,
                }
            },
            Source::Reader {
                reader,
                buffer,
                ended,
            } => {
                // Once the reader has ended, only that is left to report.
                if ended.is_none() {
                    // A piece shares the allocation it was read into, so the
                    // next read goes on in the rest of it: short reads then
                    // fill one allocation instead of each holding one of
                    // their own. A new one, or the old one reclaimed once its
                    // pieces are written, only when little room is left.
                    if buffer.capacity() < (out_buffer_size / 4).max(1) {
                        buffer.reserve(out_buffer_size);
                    }
                    // Short reads (a pipe, a socket) that come at once are
                    // gathered into a piece long enough not to be copied to
                    // join a backlog: one copy would hold the bytes twice, in
                    // the backlog and in the allocation the other pieces keep
                    // alive.
                    let long_enough = out_buffer_size.min(COALESCE_BELOW);
                    while buffer.len() < long_enough && buffer.len() < buffer.capacity() {
                        let room = out_buffer_size - buffer.len();
                        match poll_read_buf(reader.as_mut(), cx, &mut (&mut *buffer).limit(room)) {
                            Poll::Ready(Ok(read)) if read > 0 => {}
                            Poll::Ready(end) => {
                                *ended = Some(end.map(drop));
                                break;
                            }
                            Poll::Pending => break,
                        }
                    }
                }
                // The bytes gathered go out before how the reader ended.
                if buffer.is_empty() {
                    return match ended.take() {
                        None => Poll::Pending,
                        Some(Ok(())) => Poll::Ready(None),
                        Some(Err(error)) => Poll::Ready(Some(Err(error))),
                    };
                }
                Poll::Ready(Some(Ok(buffer.split().freeze())))
            }
            Source::Close => Poll::Ready(None),
        }
    }
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.source {
            Source::Bytes { data, .. } => return f.debug_tuple("Producer").field(data).finish(),
            Source::Iter(_) => "iterator",
            Source::Stream(_) => "stream",
            Source::Reader { .. } => "reader",
            Source::Close => "close",
        };
        f.debug_tuple("Producer")
            .field(&format_args!("{kind}"))
            .finish()
    }
}

impl From<Bytes> for Producer {
    /// Bytes written in pieces of the `Chat`'s `out_buffer_size`. Does not copy.
    fn from(data: Bytes) -> Self {
        Producer {
            source: Source::Bytes {
                data,
                piece_size: None,
            },
        }
    }
}

impl From<BytesMut> for Producer {
    /// Bytes written in pieces of the `Chat`'s `out_buffer_size`. Does not copy.
    fn from(data: BytesMut) -> Self {
        data.freeze().into()
    }
}

impl From<Vec<u8>> for Producer {
    /// Bytes written in pieces of the `Chat`'s `out_buffer_size`. Does not copy.
    fn from(data: Vec<u8>) -> Self {
        Bytes::from(data).into()
    }
}

impl From<String> for Producer {
    /// The string's bytes, in pieces of the `Chat`'s `out_buffer_size`. Does not copy.
    fn from(data: String) -> Self {
        Bytes::from(data).into()
    }
}

impl From<&[u8]> for Producer {
    /// Bytes written in pieces of the `Chat`'s `out_buffer_size`. Copies them.
    fn from(data: &[u8]) -> Self {
        Bytes::copy_from_slice(data).into()
    }
}

impl<const N: usize> From<&[u8; N]> for Producer {
    /// Bytes written in pieces of the `Chat`'s `out_buffer_size`. Copies them.
    fn from(data: &[u8; N]) -> Self {
        data.as_slice().into()
    }
}

impl From<&str> for Producer {
    /// The string's bytes, in pieces of the `Chat`'s `out_buffer_size`. Copies them.
    fn from(data: &str) -> Self {
        data.as_bytes().into()
    }
}
