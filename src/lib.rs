//! Python's `asynchat` for tokio: frame a protocol by a terminator string, a
//! byte count, or both in turn, and queue output as a FIFO of producers.
//!
//! # Quick start
//!
//! A [`Chat`] reads an HTTP-like head up to `\r\n\r\n`, then its body by
//! length, and answers; output moves while it waits for the next frame.
//!
//! ```
//! use asynchat::{Chat, Frame, Terminator};
//! use futures::StreamExt;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), asynchat::Error> {
//! let (mut client, server) = tokio::io::duplex(4096);
//! client.write_all(b"PUT /note\r\nLength: 5\r\n\r\nhello").await?;
//!
//! let mut chat = Chat::new(server, "\r\n\r\n");
//! let Some(Ok(Frame::Complete(head))) = chat.next().await else { panic!() };
//! // A length from the peer: parsed strictly and bounded before it is used.
//! let length: Option<u64> = std::str::from_utf8(&head).ok()
//!     .and_then(|head| head.rsplit(' ').next()?.parse().ok())
//!     .filter(|&length| length <= chat.codec().max_frame_length() as u64);
//! let Some(length) = length else { panic!("a bad length") };
//! chat.set_terminator(Terminator::Length(length)); // applies to bytes already read
//! let Some(Ok(Frame::Complete(body))) = chat.next().await else { panic!() };
//! chat.push(format!("stored {} bytes\r\n", body.len()));
//! chat.close_when_done();
//! assert!(chat.next().await.is_none()); // reply sent, write side shut down
//!
//! let mut reply = String::new();
//! client.read_to_string(&mut reply).await?;
//! assert_eq!(reply, "stored 5 bytes\r\n");
//! # Ok(())
//! # }
//! ```
//!
//! # The pieces
//!
//! Bytes flow one way through the modules:
//!
//! * [`Terminator`]: what ends a message: a delimiter, several
//!   ([`Terminator::any_of`]), a byte count, or nothing.
//! * [`TerminatorCodec`]: a `tokio_util` [`Decoder`](tokio_util::codec::Decoder)
//!   that splits input into [`Frame`]s, whole or streamed, and an
//!   [`Encoder`](tokio_util::codec::Encoder) that writes bytes verbatim. Use
//!   it with `Framed` or on its own.
//! * [`Chat`]: asynchat's channel: a `Stream` of frames read from any
//!   `AsyncRead + AsyncWrite`, and a `Sink` of [`Producer`]s, the output
//!   FIFO, written without copying. It comes apart into [`ChatParts`], or
//!   a `Framed`, and back without losing a byte, and
//!   [`upgrade`](Chat::upgrade)s in place for STARTTLS.
//! * [`Error`]: what can go wrong, in one enum.
//!
//! # Differences from asynchat
//!
//! * `Length(0)` ends a message at once with an empty body; asynchat reads
//!   0 as "no terminator", which hangs on `Content-Length: 0`.
//! * At the end of input, bytes no terminator followed come out as
//!   [`Frame::Partial`] instead of vanishing.
//! * Whole-frame mode has a limit ([`DEFAULT_MAX_FRAME_LENGTH`]); asynchat
//!   buffers without end.
//! * Whole frames or streaming is chosen per message
//!   ([`Chat::set_streaming`]): commands bounded, bodies streamed.
//! * SMTP's `DATA` block, ended by a line holding only `.`, is framed by
//!   [`Chat::set_terminator_after`]`("\r\n.\r\n", b"\r\n")`, which ends an
//!   empty block at once; asynchat's `set_terminator(b"\r\n.\r\n")` waits
//!   on it for ever.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod chat;
mod codec;
mod error;
mod frame;
mod output;
mod producer;
mod terminator;

pub use chat::{Chat, ChatParts, DEFAULT_BUFFER_SIZE};
pub use codec::{TerminatorCodec, DEFAULT_MAX_FRAME_LENGTH};
pub use error::Error;
pub use frame::Frame;
pub use producer::Producer;
pub use terminator::{find_prefix_at_end, Terminator};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
