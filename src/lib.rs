//! Python's `asynchat` for tokio.
//!
//! TODO quick start
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod codec;
mod error;
mod frame;
mod terminator;

pub use codec::{TerminatorCodec, DEFAULT_MAX_FRAME_LENGTH};
pub use error::Error;
pub use frame::Frame;
pub use terminator::{find_prefix_at_end, Terminator};
