//! [`Error`]: everything that can go wrong, in one enum.

use std::{fmt, io};

/// An error from the codec or the [`Chat`](crate::Chat).
///
/// ```
/// use asynchat::Error;
///
/// let error = Error::FrameTooLong { limit: 1024 };
/// assert_eq!(error.to_string(), "message longer than the limit of 1024 bytes");
/// let error: Error = std::io::Error::from(std::io::ErrorKind::ConnectionReset).into();
/// assert!(matches!(error, Error::Io(_)));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// In whole-frame mode, a message (or a [`Length`](crate::Terminator::Length))
    /// passed the codec's `max_frame_length`. The codec skips the rest of
    /// that message and then goes on with the next one.
    FrameTooLong {
        /// The codec's `max_frame_length`.
        limit: usize,
    },
    /// The connection failed: reset by the peer, broken pipe, and so on.
    Io(io::Error),
    /// A [`Producer`](crate::Producer) failed while its output was being
    /// drawn; the [`Chat`](crate::Chat) ends with this error.
    Producer(io::Error),
    /// The channel is closing or closed: output queued after
    /// `close_when_done` was refused, or an error (an IO or producer error,
    /// handed out once) ended the channel and a later `flush`, `close` or
    /// `upgrade` found it over.
    Closed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::FrameTooLong { limit } => {
                write!(f, "message longer than the limit of {limit} bytes")
            }
            Error::Io(error) => write!(f, "connection failed: {error}"),
            Error::Producer(error) => write!(f, "producer failed: {error}"),
            Error::Closed => f.write_str("output refused: the channel is closed or closing"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(error) | Error::Producer(error) => Some(error),
            Error::FrameTooLong { .. } | Error::Closed => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(error: io::Error) -> Self {
        Error::Io(error)
    }
}
