//! [`Terminator`]: what ends a message, and the conversions that build one.

use std::sync::Arc;

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
///
/// Several delimiters at once, for a lenient line protocol, come from
/// [`Terminator::any_of`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
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
    /// The message ends at the first of several delimiters: the one that
    /// starts earliest, and of those that start at the same byte the
    /// longest (`\r\n` over `\r`). Built by [`Terminator::any_of`], which
    /// keeps at least two distinct, non-empty delimiters, in the order
    /// given; the codec treats a set built directly the same way (empty
    /// delimiters and repeats dropped, one left means that `Delimiter`).
    /// The `Arc` makes a clone cost a reference count, not a copy.
    AnyOf(Arc<[Bytes]>),
    /// No terminator: every byte is data and no message ever ends.
    #[default]
    None,
}

impl Terminator {
    /// Several delimiters: the message ends at the one that starts
    /// earliest, and of those that start at the same byte, at the longest.
    ///
    /// Each item converts as a [`Terminator`] does (`&str`, `&[u8]`,
    /// `Bytes`, ...); counts and `None` add no delimiter. Empty delimiters
    /// and repeats are dropped (a repeat cannot change what matches); one delimiter left gives [`Terminator::Delimiter`],
    /// none gives [`Terminator::None`]. A delimiter that is a prefix of
    /// another is kept: `any_of(["\r", "\r\n"])` ends a message at `\r`,
    /// or at `\r\n` when the `\n` follows, so the codec waits for the byte
    /// after a `\r` before it decides.
    ///
    /// # Complexity
    ///
    /// Building the set converts each item as [`Terminator::from`] does
    /// (`&str` and `&[u8]` are copied, `Bytes` are not), drops repeats in
    /// O(delimiters²) compares, and allocates one slice. The codec builds its searcher once per set, in
    /// O(total length of the delimiters), and a search is linear in the
    /// bytes searched: one `memchr` for line endings, an Aho-Corasick
    /// automaton for other multi-byte sets (see
    /// [`TerminatorCodec`](crate::TerminatorCodec)).
    ///
    /// ```
    /// use asynchat::Terminator;
    ///
    /// let lines = Terminator::any_of(["\r\n", "\n"]);
    /// assert_eq!(lines.delimiters().len(), 2);
    /// assert_eq!(Terminator::any_of(["\n", "", "\n"]), Terminator::from("\n"));
    /// assert_eq!(Terminator::any_of(Vec::<&str>::new()), Terminator::None);
    /// ```
    pub fn any_of<I>(delimiters: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Terminator>,
    {
        let mut kept: Vec<Bytes> = Vec::new();
        for terminator in delimiters {
            for delimiter in terminator.into().delimiters() {
                if !delimiter.is_empty() && !kept.contains(delimiter) {
                    kept.push(delimiter.clone());
                }
            }
        }
        match kept.len() {
            0 => Terminator::None,
            1 => Terminator::Delimiter(kept.pop().expect("one delimiter")),
            _ => Terminator::AnyOf(kept.into()),
        }
    }

    /// The terminator the codec works with: an empty delimiter means none,
    /// and a set is cleaned as [`any_of`](Self::any_of) cleans it. Costs
    /// nothing for a terminator that needs no cleaning.
    pub(crate) fn normalized(self) -> Self {
        match self {
            Terminator::Delimiter(delimiter) if delimiter.is_empty() => Terminator::None,
            Terminator::AnyOf(set)
                if set.len() < 2
                    || set.iter().enumerate().any(|(index, delimiter)| {
                        delimiter.is_empty() || set[..index].contains(delimiter)
                    }) =>
            {
                Terminator::any_of(set.iter().cloned().map(Terminator::from))
            }
            terminator => terminator,
        }
    }

    /// Every delimiter this terminator ends a message at: one for
    /// [`Delimiter`](Self::Delimiter), the set for [`AnyOf`](Self::AnyOf),
    /// none for a count or no terminator. Does not copy.
    ///
    /// ```
    /// use asynchat::Terminator;
    ///
    /// assert_eq!(Terminator::from("\n").delimiters(), &["\n"]);
    /// assert!(Terminator::Length(3).delimiters().is_empty());
    /// ```
    pub fn delimiters(&self) -> &[Bytes] {
        match self {
            Terminator::Delimiter(delimiter) => std::slice::from_ref(delimiter),
            Terminator::AnyOf(set) => set,
            Terminator::Length(_) | Terminator::None => &[],
        }
    }

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
