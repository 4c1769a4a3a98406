//! Python's `asynchat` for tokio: frame a protocol by a terminator string, a
//! byte count, or both in turn, and queue output as a FIFO of producers.
//!
//! TODO quick start
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod chat;
mod codec;
mod error;
mod frame;
mod producer;
mod terminator;

pub use chat::{Chat, DEFAULT_BUFFER_SIZE};
pub use codec::{TerminatorCodec, DEFAULT_MAX_FRAME_LENGTH};
pub use error::Error;
pub use frame::Frame;
pub use producer::Producer;
pub use terminator::{find_prefix_at_end, Terminator};
