//! [`Terminator`]: what ends a message, and the conversions that build one.

use bytes::Bytes;

/// What ends the current message: asynchat's terminator.
///
/// Build one from the value asynchat would take: a string or byte string
/// gives [`Delimiter`](Terminator::Delimiter), an integer gives
/// [`Length`](Terminator::Length), `None` gives [`None`](Terminator::None).
///
/// ```
/// use asynchat::Terminator;
/// use bytes::Bytes;
///
/// assert_eq!(Terminator::from("\r\n"), Terminator::Delimiter(Bytes::from_static(b"\r\n")));
/// assert_eq!(Terminator::from(b"\r\n.\r\n"), Terminator::Delimiter(Bytes::from_static(b"\r\n.\r\n")));
/// assert_eq!(Terminator::from(42u64), Terminator::Length(42));
/// assert_eq!(Terminator::from(None::<&str>), Terminator::None);
/// // An empty delimiter can never be found: it means "no terminator", as in asynchat.
/// assert_eq!(Terminator::from(""), Terminator::None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Terminator {
    /// The message ends at the first occurrence of these bytes, which are
    /// not part of it. Never empty: the conversions turn an empty delimiter
    /// into [`Terminator::None`].
    Delimiter(Bytes),
    /// The message is exactly this many bytes. When it completes the
    /// terminator becomes [`Terminator::None`], as in asynchat, until the
    /// next one is set. Unlike asynchat, `Length(0)` completes at once with
    /// an empty message.
    Length(u64),
    /// No terminator: every byte is data and no message ever ends.
    #[default]
    None,
}

impl Terminator {
    /// The delimiter bytes, if this terminator is a delimiter.
    ///
    /// ```
    /// use asynchat::Terminator;
    ///
    /// assert_eq!(Terminator::from("\n").delimiter(), Some(&b"\n"[..]));
    /// assert_eq!(Terminator::Length(3).delimiter(), None);
    /// ```
    pub fn delimiter(&self) -> Option<&[u8]> {
        match self {
            Terminator::Delimiter(bytes) => Some(bytes),
            _ => None,
        }
    }
}

impl From<Bytes> for Terminator {
    /// A delimiter, or `None` when `bytes` is empty. Does not copy.
    fn from(bytes: Bytes) -> Self {
        if bytes.is_empty() {
            Terminator::None
        } else {
            Terminator::Delimiter(bytes)
        }
    }
}

impl From<&[u8]> for Terminator {
    /// A delimiter (copied), or `None` when empty.
    fn from(bytes: &[u8]) -> Self {
        Bytes::copy_from_slice(bytes).into()
    }
}

impl<const N: usize> From<&[u8; N]> for Terminator {
    /// A delimiter (copied), or `None` when empty.
    fn from(bytes: &[u8; N]) -> Self {
        bytes.as_slice().into()
    }
}

impl From<&str> for Terminator {
    /// A delimiter of the string's UTF-8 bytes (copied), or `None` when empty.
    fn from(text: &str) -> Self {
        text.as_bytes().into()
    }
}

impl From<String> for Terminator {
    /// A delimiter of the string's bytes (not copied), or `None` when empty.
    fn from(text: String) -> Self {
        Bytes::from(text).into()
    }
}

impl From<Vec<u8>> for Terminator {
    /// A delimiter of these bytes (not copied), or `None` when empty.
    fn from(bytes: Vec<u8>) -> Self {
        Bytes::from(bytes).into()
    }
}

impl From<u64> for Terminator {
    /// A byte count: [`Terminator::Length`].
    fn from(length: u64) -> Self {
        Terminator::Length(length)
    }
}

impl From<usize> for Terminator {
    /// A byte count: [`Terminator::Length`].
    fn from(length: usize) -> Self {
        Terminator::Length(length as u64)
    }
}

impl<T: Into<Terminator>> From<Option<T>> for Terminator {
    /// `None` gives [`Terminator::None`]; `Some(t)` converts `t`.
    fn from(terminator: Option<T>) -> Self {
        terminator.map_or(Terminator::None, Into::into)
    }
}

/// The length of the longest suffix of `haystack` that is a proper prefix of
/// `needle`: how many bytes at the end of a read might be the start of the
/// delimiter, and so must be held back until the next read tells.
///
/// The same as asynchat's `find_prefix_at_end`. It returns at most
/// `needle.len() - 1` and costs at most that many comparisons of at most
/// that many bytes.
///
/// ```
/// use asynchat::find_prefix_at_end;
///
/// assert_eq!(find_prefix_at_end(b"qwerty\r", b"\r\n"), 1);
/// assert_eq!(find_prefix_at_end(b"qwertydkjf", b"\r\n"), 0);
/// assert_eq!(find_prefix_at_end(b"abc\r\n.", b"\r\n.\r\n"), 3);
/// assert_eq!(find_prefix_at_end(b"", b"\r\n"), 0);
/// ```
pub fn find_prefix_at_end(haystack: &[u8], needle: &[u8]) -> usize {
    let longest = needle.len().saturating_sub(1).min(haystack.len());
    (1..=longest)
        .rev()
        .find(|&length| haystack.ends_with(&needle[..length]))
        .unwrap_or(0)
}
