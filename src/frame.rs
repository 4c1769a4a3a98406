//! [`Frame`]: what the decoder yields.

use bytes::Bytes;

/// A piece of input, as the decoder hands it out.
///
/// A message is the concatenation of its `Partial`s and its `Complete`: what
/// asynchat passes to `collect_incoming_data` before calling
/// `found_terminator`. In whole-frame mode a message comes out as a single
/// `Complete`; `Partial` is then only seen for [`Terminator::None`] and for
/// the bytes left unterminated at the end of input.
///
/// [`Terminator::None`]: crate::Terminator::None
///
/// ```
/// use asynchat::Frame;
/// use bytes::Bytes;
///
/// let frame = Frame::Complete(Bytes::from_static(b"HELO example.org"));
/// assert!(frame.is_complete());
/// assert_eq!(frame.bytes(), &b"HELO example.org"[..]);
/// assert_eq!(frame.into_bytes(), Bytes::from_static(b"HELO example.org"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Frame {
    /// Data of the current message; its terminator has not been seen yet.
    Partial(Bytes),
    /// The terminator was found: the rest of the message, terminator excluded.
    Complete(Bytes),
}

impl Frame {
    /// Whether the terminator was found: this is the end of a message.
    ///
    /// ```
    /// use asynchat::Frame;
    /// use bytes::Bytes;
    ///
    /// assert!(!Frame::Partial(Bytes::new()).is_complete());
    /// ```
    pub fn is_complete(&self) -> bool {
        matches!(self, Frame::Complete(_))
    }

    /// The bytes carried, whichever the variant.
    ///
    /// ```
    /// use asynchat::Frame;
    /// use bytes::Bytes;
    ///
    /// assert_eq!(Frame::Partial(Bytes::from_static(b"ab")).bytes(), &b"ab"[..]);
    /// ```
    pub fn bytes(&self) -> &Bytes {
        match self {
            Frame::Partial(bytes) | Frame::Complete(bytes) => bytes,
        }
    }

    /// The bytes carried, whichever the variant. Does not copy.
    ///
    /// ```
    /// use asynchat::Frame;
    /// use bytes::Bytes;
    ///
    /// assert_eq!(Frame::Complete(Bytes::from_static(b"ab")).into_bytes(), "ab");
    /// ```
    pub fn into_bytes(self) -> Bytes {
        match self {
            Frame::Partial(bytes) | Frame::Complete(bytes) => bytes,
        }
    }
}
