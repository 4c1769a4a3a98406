//! [`TerminatorCodec`]: the decode state machine.
//!
//! # Complexity
//!
//! The search for a delimiter is `memchr` for a one-byte delimiter and a
//! [`memchr::memmem::Finder`] otherwise, built once per delimiter in
//! O(delimiter). A set of delimiters ([`Terminator::any_of`]) is searched by
//! one `memchr` for line endings (`\r\n` with `\n`, and any set whose
//! delimiters end in a byte found nowhere else in them), `memchr2` or
//! `memchr3` for single bytes, and otherwise by an Aho-Corasick automaton
//! with leftmost-longest matching, built once per set in O(total delimiter
//! length). Every search is linear in the bytes searched.
//!
//! The codec remembers how far it searched: only the last `longest - 1`
//! bytes, which may begin a delimiter, are looked at again when more
//! arrive, and finding them costs O(delimiters × longest²) per read. A
//! message of N bytes therefore costs O(N) however the reads split it.

use std::mem::{self, ManuallyDrop};

use aho_corasick::{AhoCorasick, MatchKind};
use bytes::{Buf, Bytes, BytesMut};
use memchr::memmem;
use tokio_util::codec::{Decoder, Encoder};

use crate::{find_prefix_at_end, Error, Frame, Terminator};

/// The default [`max_frame_length`](TerminatorCodec::max_frame_length) of
/// whole-frame mode: 8 MiB.
pub const DEFAULT_MAX_FRAME_LENGTH: usize = 8 * 1024 * 1024;

/// A [`Decoder`] and [`Encoder`] that frames input the way asynchat's
/// `handle_read` does: by a delimiter of any length, by a byte count, or not
/// at all, switchable between messages.
///
/// It comes in two modes:
///
/// * [`new`](Self::new) yields whole messages as [`Frame::Complete`],
///   buffering each up to [`max_frame_length`](Self::max_frame_length).
/// * [`streaming`](Self::streaming) yields [`Frame::Partial`] chunks as soon
///   as they cannot be part of the delimiter, then a [`Frame::Complete`] with
///   the rest of the message. It never holds more than the longest
///   delimiter's length minus one byte of a message, however long the
///   message is.
///
/// [`set_terminator`](Self::set_terminator) takes effect on the bytes already
/// buffered: read an HTTP head up to `\r\n\r\n`, then its body by
/// `Content-Length`, from the same read.
///
/// ```
/// use asynchat::{Frame, Terminator, TerminatorCodec};
/// use bytes::BytesMut;
/// use tokio_util::codec::Decoder;
///
/// let mut codec = TerminatorCodec::new("\r\n\r\n");
/// let mut buffer = BytesMut::from("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel");
///
/// let head = codec.decode(&mut buffer)?.unwrap();
/// assert_eq!(head, Frame::Complete("POST / HTTP/1.1\r\nContent-Length: 5".into()));
///
/// codec.set_terminator(5u64);
/// assert_eq!(codec.decode(&mut buffer)?, None); // "hel": three of five bytes
///
/// buffer.extend_from_slice(b"loGET");
/// assert_eq!(codec.decode(&mut buffer)?, Some(Frame::Complete("hello".into())));
/// // A completed Length leaves no terminator until the next is set.
/// assert_eq!(codec.terminator(), &Terminator::None);
/// # Ok::<(), asynchat::Error>(())
/// ```
///
/// # Note
///
/// A peer that never sends the delimiter would make a whole-frame decoder
/// buffer without end. Whole-frame mode therefore fails with
/// [`Error::FrameTooLong`] as soon as a message passes
/// [`max_frame_length`](Self::max_frame_length) (8 MiB unless set), and a
/// `Length` above it fails at once, before any of it is buffered. The codec
/// then skips the rest of that message without buffering it and carries on
/// with the next one, so a server can answer the error and go on. (A
/// `tokio_util` `Framed` ends its stream after any decode error; a
/// [`Chat`](crate::Chat) carries on.) Streaming mode needs no limit: its
/// memory does not grow with the message.
#[derive(Clone)]
pub struct TerminatorCodec {
    /// The terminator as last set: what [`terminator`](Self::terminator)
    /// reports, and what the message after an overlong one is framed by.
    /// In [`State::Unframed`] with no `count` it is `None` or the `Length`
    /// whose message completed: either way no terminator is in force, and
    /// `terminator()` says `None`. Completing a count therefore writes
    /// `count` only, not the terminator (and no drop).
    terminator: Terminator,
    /// The bytes of the counted message still to come (whole-frame mode
    /// hands them out in one go at the end), or [`NOT_COUNTED`] when no
    /// `Length` frames the message.
    ///
    /// Invariant: while a count is under way the state is
    /// [`State::Unframed`], what a completed `Length` leaves (no terminator
    /// in force), set ahead of time; completing the message then resets
    /// `count` and nothing else. So whatever reads the state tests `count`
    /// first (`decode`, `decode_general`, `decode_eof`, `terminator()`).
    ///
    /// It lives outside [`State`] so that a counted message is one word:
    /// `decode` tests it against the bytes buffered before anything else,
    /// and completing the message, or counting the next one after it,
    /// writes it and nothing of the state. As a variant of `State`, each
    /// frame of a length-prefixed protocol tested the variant first and
    /// wrote it twice, for about 8% of its time (docs/benchmarks.md, "A
    /// count in one word").
    count: u64,
    state: State,
    streaming: bool,
    max_frame_length: usize,
    /// The search of the delimiters last set. It stays while a `Length` or
    /// `None` is in force: protocols that switch from a delimiter to a count
    /// and back (HTTP, RESP) then build each delimiter's searcher once. It
    /// lives outside [`State`] so that switching terminators moves a few
    /// words, not a searcher. Before any delimiter is set it is a search
    /// for `\n` that no state uses: the first delimiter set replaces it,
    /// or, being `\n`, keeps it.
    searcher: Searcher,
    /// What ended the last [`Frame::Complete`].
    matched: Matched,
    /// The delimiter that ended the last frame, kept when its searcher was
    /// replaced before [`matched_delimiter`](Self::matched_delimiter) was
    /// asked.
    earlier_match: Bytes,
    /// The last bytes handed out before the message, that a delimiter may
    /// begin in (see [`set_terminator_after`](Self::set_terminator_after)):
    /// consulted in [`State::DelimitedAfter`], kept through a skip for the
    /// message after it, empty otherwise.
    preceding: Bytes,
}

impl std::fmt::Debug for TerminatorCodec {
    /// The terminator, the state of the message, the mode and the limit;
    /// not the searcher's tables.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminatorCodec")
            .field("terminator", self.terminator())
            .field("state", &self.state)
            .field("count", &(self.count != NOT_COUNTED).then_some(self.count))
            .field("streaming", &self.streaming)
            .field("max_frame_length", &self.max_frame_length)
            .field(
                "matched_delimiter",
                &self.matched_delimiter().map(Bytes::copy_from_slice),
            )
            .finish()
    }
}

/// [`TerminatorCodec`]'s `count` when no count frames the message: more
/// than any buffer's length (a `BytesMut` holds at most `isize::MAX`
/// bytes), so `decode`'s one test, `count <= buffer.len()`, is false with
/// nothing counted, and "is a count under way?" needs no test of its own.
const NOT_COUNTED: u64 = u64::MAX;

/// The longest count the codec keeps: a `Length` of `u64::MAX` is counted
/// as one byte fewer, since `u64::MAX` is [`NOT_COUNTED`]. No input
/// reaches either, and `terminator()` still reads `Length(u64::MAX)`: the
/// `terminator` field keeps the value as set.
const LONGEST_COUNT: u64 = NOT_COUNTED - 1;

/// Where the decoder is within the current message, unless a count frames
/// it (see [`TerminatorCodec`]'s `count`).
///
/// Plain numbers only: switching terminators per message, as RESP and
/// length-prefixed protocols do, rewrites a few words and drops nothing.
/// The two plain states come first, and the three that hold more (the
/// `preceding` bytes, a skip) after them: telling them apart, which every
/// switch does, is then one comparison.
#[derive(Debug, Clone, Copy)]
enum State {
    /// No terminator in force: every byte is data. Also the state while
    /// `count` is set: a completed `Length` leaves no terminator, so the
    /// state says so ahead of time. First: the switch from one count to
    /// the next then finds it with its first comparison (as compiled
    /// today; see docs/benchmarks.md, "A count in one word").
    Unframed,
    /// Looking for a delimiter from the start of the buffer.
    ///
    /// `next_index` is where the next search starts. No delimiter starts
    /// before it, so those bytes are never searched again. For example,
    /// with delimiter `\r\n`, if decode was called with `abc\r` it searched
    /// all four bytes and found nothing; `next_index` is then 3, because
    /// the `\r` may begin the delimiter. When `\ndef` arrives, the search
    /// looks only at `\r\ndef`.
    Delimited { next_index: usize },
    /// A delimiter may begin in the codec's `preceding` bytes, handed out
    /// just before the message (see
    /// [`set_terminator_after`](TerminatorCodec::set_terminator_after)), and
    /// end in the first bytes of the message. Decided as soon as enough
    /// bytes are here (fewer than the longest delimiter); then the message
    /// is empty, or the search goes on as [`State::Delimited`].
    DelimitedAfter,
    /// Whole-frame mode only: the message passed the limit, the error was
    /// returned, and its bytes are dropped up to and including the
    /// delimiter. The next message is framed by the codec's terminator
    /// (after its `preceding` bytes).
    SkippingDelimited,
    /// Whole-frame mode only: a `Length` above the limit; its `remaining`
    /// bytes are dropped as they arrive. The next message is framed by
    /// `None`, as after any `Length`, unless a terminator was set since the
    /// error (`terminator_set`): then by the codec's terminator, which
    /// until then reads the `Length`.
    SkippingCounted {
        remaining: u64,
        terminator_set: bool,
    },
}

/// What ended the last `Frame::Complete`. Plain numbers: a frame records
/// it in one store, with nothing to drop.
#[derive(Debug, Clone, Copy)]
enum Matched {
    /// A count, or nothing was decoded yet.
    Nothing,
    /// The searcher's delimiter of this index.
    Delimiter(usize),
    /// The last `in_input` bytes of the searcher's delimiter `index`: it
    /// began in the bytes before the message.
    Partly { index: usize, in_input: usize },
    /// A delimiter of an earlier searcher: the codec's `earlier_match`.
    Earlier,
}

/// Whether a delimiter begins in the bytes before the message and ends in
/// its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Boundary {
    /// One does: the searcher's delimiter `index`, `in_input` of its bytes
    /// at the start of the buffer. The message is empty.
    Ends { in_input: usize, index: usize },
    /// None can: the message is searched as any other.
    NoDelimiter,
    /// It depends on bytes not read yet.
    Undecided,
}

/// What a search of the buffer found. Positions count from the start of
/// the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Search {
    /// A delimiter ends the message: the searcher's delimiter `index`, at
    /// `start`. No other delimiter can start before it or, starting there,
    /// be longer, whatever bytes come next.
    Found { start: usize, index: usize },
    /// Nothing ends the message yet: the bytes before `resume` cannot begin
    /// a delimiter; those from `resume` on may, once more bytes arrive.
    NotYet { resume: usize },
}

/// A delimiter's search, built once: `memchr` for one byte, a `memmem`
/// finder for more, and for a set of delimiters one of the scans of
/// [`SetScan`].
///
/// The finder is boxed: inline it is close to 300 bytes, which would make
/// every codec (and every `Chat`) that large to move.
#[derive(Debug, Clone)]
enum Searcher {
    Byte(u8),
    Bytes(Box<memmem::Finder<'static>>),
    Set(Box<DelimiterSet>),
}

/// A set of delimiters and its search.
#[derive(Debug, Clone)]
struct DelimiterSet {
    /// Longest first (in the given order among equals): at a byte where
    /// several start, the first that matches is the one that wins.
    delimiters: Vec<Bytes>,
    scan: SetScan,
}

/// How a set finds its earliest delimiter.
#[derive(Debug, Clone)]
enum SetScan {
    /// Every delimiter ends with this byte and holds it nowhere else, as
    /// `\r\n` and `\n` do: `memchr` finds where matches may end, and the
    /// first place where a delimiter ends holds the earliest one, since no
    /// delimiter spans this byte without ending there. What it finds is
    /// final at once, and it runs at `memchr` speed.
    LastByte(u8),
    /// `\r\n` and `\n`, the lenient line ending, the commonest set: a
    /// [`LastByte`](SetScan::LastByte) search with its compare reduced to
    /// a look at the byte before each `\n`.
    LineEndings,
    /// Two or three delimiters of one byte each: `memchr2` or `memchr3`
    /// finds the first, and it is final at once.
    SingleBytes(Vec<u8>),
    /// Any other set: an Aho-Corasick automaton with leftmost-longest
    /// matching, which is exactly the rule (earliest start, then longest).
    /// It runs at `memmem` speed or better on text, and stays linear on a
    /// flood of a delimiter's first byte, where a scan for first bytes
    /// followed by compares (tried, and measured in the benchmarks'
    /// `mib_any_of3` and `flood_cr_any_of3` rows) ran 6 to 350 times
    /// slower.
    Automaton(AhoCorasick),
}

impl Searcher {
    fn new(delimiters: &[Bytes]) -> Self {
        match delimiters {
            [delimiter] => match &delimiter[..] {
                [byte] => Searcher::Byte(*byte),
                bytes => Searcher::Bytes(Box::new(memmem::Finder::new(bytes).into_owned())),
            },
            _ => {
                let mut sorted = delimiters.to_vec();
                sorted.sort_by_key(|delimiter| std::cmp::Reverse(delimiter.len()));
                let last = sorted[0][sorted[0].len() - 1];
                let ends_each_only = sorted
                    .iter()
                    .all(|delimiter| memchr::memchr(last, delimiter) == Some(delimiter.len() - 1));
                let single_bytes = sorted.len() <= 3 && sorted.iter().all(|d| d.len() == 1);
                let scan = if sorted == [&b"\r\n"[..], &b"\n"[..]] {
                    SetScan::LineEndings
                } else if ends_each_only {
                    SetScan::LastByte(last)
                } else if single_bytes {
                    SetScan::SingleBytes(sorted.iter().map(|delimiter| delimiter[0]).collect())
                } else {
                    SetScan::Automaton(
                        AhoCorasick::builder()
                            .match_kind(MatchKind::LeftmostLongest)
                            .build(&sorted)
                            .expect("a few short delimiters fit any automaton"),
                    )
                };
                Searcher::Set(Box::new(DelimiterSet {
                    delimiters: sorted,
                    scan,
                }))
            }
        }
    }

    /// Whether this searcher searches for exactly `delimiters`.
    fn searches_for(&self, delimiters: &[Bytes]) -> bool {
        match self {
            Searcher::Set(set) => {
                set.delimiters.len() == delimiters.len()
                    && delimiters
                        .iter()
                        .all(|delimiter| set.delimiters.contains(delimiter))
            }
            _ => delimiters.len() == 1 && self.delimiter(0) == &delimiters[0][..],
        }
    }

    /// Every delimiter, by index.
    fn delimiters(&self) -> impl Iterator<Item = &[u8]> + Clone {
        (0..).map_while(move |index| match self {
            Searcher::Set(set) => set.delimiters.get(index).map(|delimiter| &delimiter[..]),
            _ => (index == 0).then(|| self.delimiter(0)),
        })
    }

    /// Whether this searcher searches for `delimiter` alone.
    #[inline]
    fn is_only(&self, delimiter: &[u8]) -> bool {
        match self {
            Searcher::Byte(byte) => delimiter == [*byte],
            Searcher::Bytes(finder) => finder.needle() == delimiter,
            Searcher::Set(_) => false,
        }
    }

    /// The delimiter of this index (0 for a single delimiter).
    #[inline]
    fn delimiter(&self, index: usize) -> &[u8] {
        match self {
            Searcher::Byte(byte) => std::slice::from_ref(byte),
            Searcher::Bytes(finder) => finder.needle(),
            Searcher::Set(set) => &set.delimiters[index],
        }
    }

    fn longest(&self) -> usize {
        self.delimiter(0).len()
    }

    /// The earliest delimiter that ends within `haystack` (longest at a
    /// tie): its offset and index. A longer one that would begin at or
    /// before it and end past the haystack is not seen: see
    /// [`TerminatorCodec::search`].
    fn find(&self, haystack: &[u8]) -> Option<(usize, usize)> {
        match self {
            Searcher::Byte(byte) => memchr::memchr(*byte, haystack).map(|offset| (offset, 0)),
            Searcher::Bytes(finder) => finder.find(haystack).map(|offset| (offset, 0)),
            Searcher::Set(set) => set.find(haystack),
        }
    }

    /// How many bytes at the end of `haystack` may begin a delimiter: the
    /// bytes to hold back, at most the longest delimiter's length minus one.
    fn held_back(&self, haystack: &[u8]) -> usize {
        match self {
            Searcher::Set(set) => set
                .delimiters
                .iter()
                .map(|delimiter| find_prefix_at_end(haystack, delimiter))
                .max()
                .unwrap_or(0),
            _ => find_prefix_at_end(haystack, self.delimiter(0)),
        }
    }
}

/// [`SetScan::LineEndings`]' search: where the first line ends, and
/// whether by `\r\n` (index 0, the longer) or `\n` (index 1).
#[inline(always)]
fn find_line_ending(haystack: &[u8]) -> Option<(usize, usize)> {
    let end = memchr::memchr(b'\n', haystack)?;
    // Without a branch: where `\r\n` and `\n` come in no order, a branch
    // on the `\r` is mispredicted half the time.
    let after_cr = usize::from(end > 0 && haystack[end.saturating_sub(1)] == b'\r');
    Some((end - after_cr, 1 - after_cr))
}

impl DelimiterSet {
    /// Whether a delimiter found is final at once: no longer one can start
    /// at or before it and end in bytes not read yet.
    #[inline]
    fn finds_final(&self) -> bool {
        matches!(
            self.scan,
            SetScan::LineEndings | SetScan::LastByte(_) | SetScan::SingleBytes(_)
        )
    }

    #[inline]
    fn find(&self, haystack: &[u8]) -> Option<(usize, usize)> {
        match &self.scan {
            SetScan::LineEndings => find_line_ending(haystack),
            SetScan::LastByte(last) => self.find_by_last_byte(*last, haystack),
            SetScan::SingleBytes(bytes) => {
                let start = match bytes[..] {
                    [a, b] => memchr::memchr2(a, b, haystack),
                    [a, b, c] => memchr::memchr3(a, b, c, haystack),
                    _ => unreachable!("two or three single bytes"),
                }?;
                let index = bytes.iter().position(|&byte| byte == haystack[start])?;
                Some((start, index))
            }
            SetScan::Automaton(automaton) => automaton
                .find(haystack)
                .map(|found| (found.start(), found.pattern().as_usize())),
        }
    }

    /// [`SetScan::LastByte`]'s search.
    #[inline]
    fn find_by_last_byte(&self, last: u8, haystack: &[u8]) -> Option<(usize, usize)> {
        let mut from = 0;
        while let Some(offset) = memchr::memchr(last, &haystack[from..]) {
            let end = from + offset;
            for (index, delimiter) in self.delimiters.iter().enumerate() {
                // The bytes before the last, compared one by one: they are
                // few, and a call to `memcmp` per line would cost more.
                let before_last = &delimiter[..delimiter.len() - 1];
                if let Some(start) = end.checked_sub(before_last.len()) {
                    let candidate = &haystack[start..end];
                    if candidate
                        .iter()
                        .zip(before_last)
                        .all(|(byte, expected)| byte == expected)
                    {
                        return Some((start, index));
                    }
                }
            }
            from = end + 1;
        }
        None
    }
}

impl TerminatorCodec {
    /// A whole-frame codec: each message comes out as one
    /// [`Frame::Complete`], buffered up to [`DEFAULT_MAX_FRAME_LENGTH`].
    ///
    /// ```
    /// use asynchat::{Frame, TerminatorCodec};
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = TerminatorCodec::new("\r\n");
    /// let mut buffer = BytesMut::from("EHLO a\r\nQUIT\r\n");
    /// assert_eq!(codec.decode(&mut buffer)?, Some(Frame::Complete("EHLO a".into())));
    /// assert_eq!(codec.decode(&mut buffer)?, Some(Frame::Complete("QUIT".into())));
    /// assert_eq!(codec.decode(&mut buffer)?, None);
    /// # Ok::<(), asynchat::Error>(())
    /// ```
    pub fn new(terminator: impl Into<Terminator>) -> Self {
        Self::with_mode(terminator.into(), false)
    }

    /// A streaming codec: [`Frame::Partial`] chunks as soon as they cannot
    /// be part of the delimiter, then [`Frame::Complete`] with the rest of
    /// the message (possibly empty). Its memory does not grow with the
    /// message: it holds back at most the longest delimiter's length minus
    /// one byte.
    ///
    /// ```
    /// use asynchat::{Frame, TerminatorCodec};
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = TerminatorCodec::streaming(b"\r\n.\r\n");
    /// let mut buffer = BytesMut::from("Subject: hi\r\n\r\nbody\r\n");
    /// // "\r\n" might begin "\r\n.\r\n": it is held back.
    /// assert_eq!(codec.decode(&mut buffer)?, Some(Frame::Partial("Subject: hi\r\n\r\nbody".into())));
    /// buffer.extend_from_slice(b".\r\n");
    /// assert_eq!(codec.decode(&mut buffer)?, Some(Frame::Complete("".into())));
    /// # Ok::<(), asynchat::Error>(())
    /// ```
    pub fn streaming(terminator: impl Into<Terminator>) -> Self {
        Self::with_mode(terminator.into(), true)
    }

    fn with_mode(terminator: Terminator, streaming: bool) -> Self {
        let mut codec = TerminatorCodec {
            terminator: Terminator::None,
            count: NOT_COUNTED,
            state: State::Unframed,
            streaming,
            max_frame_length: DEFAULT_MAX_FRAME_LENGTH,
            searcher: Searcher::Byte(b'\n'),
            matched: Matched::Nothing,
            earlier_match: Bytes::new(),
            preceding: Bytes::new(),
        };
        codec.set_terminator(terminator);
        codec
    }

    /// Sets the longest message whole-frame mode buffers; longer ones fail
    /// with [`Error::FrameTooLong`]. Streaming mode has no use for a limit
    /// and ignores it.
    ///
    /// ```
    /// use asynchat::{Error, TerminatorCodec};
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = TerminatorCodec::new("\n").with_max_frame_length(4);
    /// let mut buffer = BytesMut::from("12345\nok\n");
    /// assert!(matches!(codec.decode(&mut buffer), Err(Error::FrameTooLong { limit: 4 })));
    /// // The overlong message is skipped; the next one decodes normally.
    /// assert_eq!(codec.decode(&mut buffer)?.unwrap().into_bytes(), "ok");
    /// # Ok::<(), asynchat::Error>(())
    /// ```
    pub fn with_max_frame_length(mut self, max_frame_length: usize) -> Self {
        self.max_frame_length = max_frame_length;
        self
    }

    /// Sets the longest message whole-frame mode buffers, in place: for a
    /// protocol whose parts have different limits, such as an HTTP head of
    /// 8 KiB and its body of 1 MiB. It applies to the message under way.
    ///
    /// ```
    /// use asynchat::TerminatorCodec;
    ///
    /// let mut codec = TerminatorCodec::new("\r\n\r\n").with_max_frame_length(8 * 1024);
    /// codec.set_terminator(100_000u64);
    /// codec.set_max_frame_length(1 << 20);
    /// assert_eq!(codec.max_frame_length(), 1 << 20);
    /// ```
    pub fn set_max_frame_length(&mut self, max_frame_length: usize) {
        self.max_frame_length = max_frame_length;
    }

    /// The longest message whole-frame mode buffers.
    ///
    /// ```
    /// use asynchat::{TerminatorCodec, DEFAULT_MAX_FRAME_LENGTH};
    ///
    /// assert_eq!(TerminatorCodec::new("\n").max_frame_length(), DEFAULT_MAX_FRAME_LENGTH);
    /// ```
    pub fn max_frame_length(&self) -> usize {
        self.max_frame_length
    }

    /// Whether the codec hands out [`Frame::Partial`] chunks (streaming) or
    /// whole messages: as made by [`streaming`](Self::streaming) or
    /// [`new`](Self::new), or as last set by
    /// [`set_streaming`](Self::set_streaming).
    ///
    /// ```
    /// use asynchat::TerminatorCodec;
    ///
    /// assert!(TerminatorCodec::streaming("\n").is_streaming());
    /// assert!(!TerminatorCodec::new("\n").is_streaming());
    /// ```
    pub fn is_streaming(&self) -> bool {
        self.streaming
    }

    /// Switches between whole frames and streaming, from the next decode
    /// on. It applies to the message under way and to the bytes already
    /// buffered: a server reads its commands whole and bounded, streams a
    /// body, then reads commands whole again, on one connection.
    ///
    /// Switching to whole frames in the middle of a message, the rest of it
    /// comes as one [`Frame::Complete`] (the `Partial`s handed out stay
    /// handed out), and [`max_frame_length`](Self::max_frame_length) counts
    /// from the switch. A message being skipped for its length stays
    /// skipped. Costs nothing: the state of the message does not change.
    ///
    /// ```
    /// use asynchat::{Frame, TerminatorCodec};
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = TerminatorCodec::new("\r\n").with_max_frame_length(512);
    /// let mut buffer = BytesMut::from("PUT 11\r\nhello");
    /// assert_eq!(codec.decode(&mut buffer)?, Some(Frame::Complete("PUT 11".into())));
    ///
    /// codec.set_terminator(11u64);
    /// codec.set_streaming(true); // a body may be longer than any limit
    /// assert_eq!(codec.decode(&mut buffer)?, Some(Frame::Partial("hello".into())));
    /// buffer.extend_from_slice(b" worldQUIT\r\n");
    /// assert_eq!(codec.decode(&mut buffer)?, Some(Frame::Complete(" world".into())));
    ///
    /// codec.set_terminator("\r\n");
    /// codec.set_streaming(false);
    /// assert_eq!(codec.decode(&mut buffer)?, Some(Frame::Complete("QUIT".into())));
    /// # Ok::<(), asynchat::Error>(())
    /// ```
    pub fn set_streaming(&mut self, streaming: bool) {
        self.streaming = streaming;
    }

    /// The terminator as last set. A `Length` reads as set while its message
    /// is under way (it does not count down) and as [`Terminator::None`] once
    /// its message completed.
    ///
    /// ```
    /// use asynchat::{Terminator, TerminatorCodec};
    ///
    /// let codec = TerminatorCodec::new(12u64);
    /// assert_eq!(codec.terminator(), &Terminator::Length(12));
    /// ```
    pub fn terminator(&self) -> &Terminator {
        match self.state {
            State::Unframed if self.count == NOT_COUNTED => &Terminator::None,
            _ => &self.terminator,
        }
    }

    /// The delimiter that ended the last [`Frame::Complete`], or `None` when
    /// no delimiter did (it ended by a `Length`, or nothing was decoded
    /// yet). With [`Terminator::any_of`], this tells which one it was.
    ///
    /// After [`set_terminator_after`](Self::set_terminator_after), a
    /// delimiter that began in the preceding bytes is reported as the part
    /// of it that was in the input: `.\r\n` when `DATA\r\n.\r\n` ended
    /// an empty block, so that it can be told from `DATA\r\n\r\n.\r\n`,
    /// a block of one empty line, which ends with the whole `\r\n.\r\n`.
    /// Costs nothing: the codec records an index per frame.
    ///
    /// ```
    /// use asynchat::{Terminator, TerminatorCodec};
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = TerminatorCodec::new(Terminator::any_of(["\r\n", "\n"]));
    /// let mut buffer = BytesMut::from("typed by hand\nsent by a program\r\n");
    /// codec.decode(&mut buffer)?;
    /// assert_eq!(codec.matched_delimiter(), Some(&b"\n"[..]));
    /// codec.decode(&mut buffer)?;
    /// assert_eq!(codec.matched_delimiter(), Some(&b"\r\n"[..]));
    /// # Ok::<(), asynchat::Error>(())
    /// ```
    pub fn matched_delimiter(&self) -> Option<&[u8]> {
        match &self.matched {
            Matched::Nothing => None,
            Matched::Delimiter(index) => Some(self.searcher.delimiter(*index)),
            &Matched::Partly { index, in_input } => {
                let delimiter = self.searcher.delimiter(index);
                Some(&delimiter[delimiter.len() - in_input..])
            }
            Matched::Earlier => Some(&self.earlier_match),
        }
    }

    /// Sets what ends the next message. It applies to the bytes already
    /// buffered and not yet handed out, from the start of the current
    /// message. After [`Error::FrameTooLong`] the overlong message is still
    /// being skipped: the new terminator applies once it is over, so a
    /// server can set the next terminator as soon as it sees the error.
    ///
    /// A delimiter's searcher is built once and kept while a `Length` or
    /// `None` is in force: switching between a delimiter and counts
    /// allocates nothing. Setting another delimiter builds its searcher,
    /// which allocates, in O(total delimiter length). The conversion of a
    /// `&str` or `&[u8]` copies it: keep a [`Terminator`] (or `Bytes`) for
    /// a delimiter set often.
    ///
    /// ```
    /// use asynchat::{Frame, TerminatorCodec};
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = TerminatorCodec::new("\r\n");
    /// let mut buffer = BytesMut::from("$3\r\nfoo\r\n");
    /// assert_eq!(codec.decode(&mut buffer)?, Some(Frame::Complete("$3".into())));
    /// codec.set_terminator(3u64 + 2);
    /// assert_eq!(codec.decode(&mut buffer)?, Some(Frame::Complete("foo\r\n".into())));
    /// codec.set_terminator("\r\n");
    /// # Ok::<(), asynchat::Error>(())
    /// ```
    #[inline(always)]
    pub fn set_terminator(&mut self, terminator: impl Into<Terminator>) {
        // The common switch of RESP and length-prefixed protocols, in a few
        // stores, inlined into the caller: out of line, the call itself
        // cost as much as the split of a frame. The new terminator is either
        // taken apart (a count) or handed on, never dropped here: a drop
        // tested its variant again, through memory, on every switch, for
        // 4% of the time of a length-prefixed message.
        let terminator = ManuallyDrop::new(terminator.into());
        let Terminator::Length(length) = *terminator else {
            return self.set_other_terminator(ManuallyDrop::into_inner(terminator));
        };
        match self.state {
            // No terminator, or a count done or under way: already the
            // state of a count.
            State::Unframed => {}
            // The searcher stays, for the switch back; only the state
            // changes.
            State::Delimited { .. } => self.state = State::Unframed,
            // `DelimitedAfter` has `preceding` bytes to clear, and a skip
            // puts the count off until it ends.
            _ => return self.set_other_terminator(ManuallyDrop::into_inner(terminator)),
        }
        self.count = length.min(LONGEST_COUNT);
        // A count after a count has nothing to drop.
        match &mut self.terminator {
            Terminator::Length(set) => *set = length,
            set => *set = Terminator::Length(length),
        }
    }

    /// Every terminator but a `Length` set in a plain state.
    fn set_other_terminator(&mut self, terminator: Terminator) {
        match terminator {
            // The switch back to the delimiter in force before a count.
            Terminator::Delimiter(delimiter)
                if self.is_plain() && self.searcher.is_only(&delimiter) =>
            {
                self.state = State::Delimited { next_index: 0 };
                self.count = NOT_COUNTED;
                self.terminator = Terminator::Delimiter(delimiter);
            }
            terminator => self.set_terminator_after(terminator, []),
        }
    }

    /// Whether the message is framed plainly: by a delimiter searched from
    /// the buffer's start, a count, or nothing. Not skipping an overlong
    /// message, and with no `preceding` bytes, which only the other states
    /// hold: a switch from here rewrites the state and the terminator and
    /// nothing else.
    #[inline(always)]
    fn is_plain(&self) -> bool {
        matches!(self.state, State::Delimited { .. } | State::Unframed)
    }

    #[inline]
    fn is_skipping(&self) -> bool {
        matches!(
            self.state,
            State::SkippingDelimited | State::SkippingCounted { .. }
        )
    }

    /// As [`set_terminator`](Self::set_terminator), but the search treats
    /// the message as preceded by `preceding`: bytes already handed out,
    /// such as the line ending of the command before it. A delimiter that
    /// begins with them can then end the message at its very start.
    ///
    /// This is the SMTP `DATA` block (and the NNTP article, the POP3
    /// multi-line reply): it ends at a line holding only `.`, the first
    /// line included. After `DATA\r\n`, `.\r\n` is an empty message, which
    /// asynchat's `set_terminator(b"\r\n.\r\n")` waits on forever.
    ///
    /// The preceding bytes are never part of a frame, and a delimiter must
    /// end inside the message (at least one byte of it after `preceding`),
    /// so only the last `longest delimiter - 1` bytes of `preceding` can
    /// matter: a longer `preceding` is cut to those. For a `Length` or
    /// `None` it is ignored. A delimiter begun in `preceding` is reported by
    /// [`matched_delimiter`](Self::matched_delimiter) as its part in the
    /// input. Costs what `set_terminator` costs, and a copy of those few
    /// bytes of `preceding`, kept until the first bytes of the message
    /// decide.
    ///
    /// ```
    /// use asynchat::{Frame, TerminatorCodec};
    /// use bytes::BytesMut;
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec = TerminatorCodec::new("\r\n");
    /// let mut buffer = BytesMut::from("DATA\r\n.\r\nQUIT\r\n");
    /// assert_eq!(codec.decode(&mut buffer)?, Some(Frame::Complete("DATA".into())));
    ///
    /// codec.set_terminator_after("\r\n.\r\n", b"\r\n");
    /// assert_eq!(codec.decode(&mut buffer)?, Some(Frame::Complete("".into()))); // an empty message
    /// assert_eq!(codec.matched_delimiter(), Some(&b".\r\n"[..])); // begun before it
    ///
    /// codec.set_terminator("\r\n");
    /// assert_eq!(codec.decode(&mut buffer)?, Some(Frame::Complete("QUIT".into())));
    /// # Ok::<(), asynchat::Error>(())
    /// ```
    pub fn set_terminator_after(
        &mut self,
        terminator: impl Into<Terminator>,
        preceding: impl AsRef<[u8]>,
    ) {
        let terminator = terminator.into().normalized();
        let preceding = preceding.as_ref();
        if let State::SkippingCounted { terminator_set, .. } = &mut self.state {
            *terminator_set = true;
        }
        if self.is_skipping() {
            self.preceding = Bytes::copy_from_slice(preceding);
            self.terminator = terminator;
        } else {
            self.begin_message(terminator, preceding);
        }
    }

    /// Starts the next message under `terminator`, from the start of the
    /// buffer, after `preceding`.
    fn begin_message(&mut self, terminator: Terminator, preceding: &[u8]) {
        if !self.preceding.is_empty() {
            self.preceding = Bytes::new();
        }
        self.count = NOT_COUNTED;
        self.state = match &terminator {
            Terminator::Length(length) => {
                self.count = (*length).min(LONGEST_COUNT);
                State::Unframed
            }
            Terminator::None => State::Unframed,
            _ => {
                let delimiters = terminator.delimiters();
                if !self.searcher.searches_for(delimiters) {
                    self.replace_searcher(delimiters);
                }
                // Only the bytes a delimiter could begin in matter.
                let useful = self.searcher.longest() - 1;
                match preceding.len().min(useful) {
                    0 => State::Delimited { next_index: 0 },
                    kept => {
                        self.preceding =
                            Bytes::copy_from_slice(&preceding[preceding.len() - kept..]);
                        State::DelimitedAfter
                    }
                }
            }
        };
        self.terminator = terminator;
    }

    #[cold]
    fn replace_searcher(&mut self, delimiters: &[Bytes]) {
        if let Some(delimiter) = self.matched_delimiter() {
            if !matches!(self.matched, Matched::Earlier) {
                self.earlier_match = Bytes::copy_from_slice(delimiter);
                self.matched = Matched::Earlier;
            }
        }
        self.searcher = Searcher::new(delimiters);
    }

    /// Forgets the message under way, as after `discard_buffers`: the
    /// terminator's search starts afresh. An overlong message being skipped
    /// is still skipped: the rest of its bytes are on their way.
    pub(crate) fn forget_message(&mut self) {
        if !self.is_skipping() {
            self.begin_message(self.terminator().clone(), &[]);
        }
    }

    /// Searches the buffer from its start again: it is not the buffer the
    /// last search saw (`Chat::from_parts`), so where that search stopped
    /// means nothing in it. Costs one search of the bytes buffered.
    pub(crate) fn search_again(&mut self) {
        if let State::Delimited { next_index } = &mut self.state {
            *next_index = 0;
        }
    }

    /// Forgets the message under way and any overlong one being skipped:
    /// the input it belonged to is gone (an upgrade replaced the IO).
    pub(crate) fn forget_input(&mut self) {
        let terminator = match self.state {
            State::SkippingCounted {
                terminator_set: false,
                ..
            } => Terminator::None,
            _ => self.terminator().clone(),
        };
        self.begin_message(terminator, &[]);
    }

    /// Whether `decode` would find nothing without looking: the buffer is
    /// empty and the next frame needs bytes (a delimiter's search, or none).
    /// A counted message may complete, or fail its limit, on no bytes.
    pub(crate) fn needs_input(&self, buffer: &BytesMut) -> bool {
        buffer.is_empty() && self.count == NOT_COUNTED
    }

    fn too_long(&self) -> Error {
        Error::FrameTooLong {
            limit: self.max_frame_length,
        }
    }

    /// The counted message is all here: hand it out whole. As in asynchat,
    /// no terminator is in force until the next is set.
    #[inline(always)]
    fn complete_counted(&mut self, buffer: &mut BytesMut, length: usize) -> Frame {
        let message = buffer.split_to(length).freeze();
        // The state is `Unframed` already (see `count`).
        self.count = NOT_COUNTED;
        // Stored unconditionally: a test first (after a count it is
        // `Nothing` already) measured no faster.
        self.matched = Matched::Nothing;
        Frame::Complete(message)
    }

    /// The delimiter `index`, `length` bytes long, ends the message at
    /// `start`: hand it out.
    #[inline(always)]
    fn complete_delimited(
        &mut self,
        buffer: &mut BytesMut,
        start: usize,
        index: usize,
        length: usize,
    ) -> Frame {
        // Stored only when it changes: most searches start at the buffer's
        // start, and the state then says so already. Stores, more than
        // instructions, bound this path (4% of a 64-byte line's time, in
        // paired rounds). `matched` is stored every time: a test of it
        // would be mispredicted on lines whose endings vary.
        if !matches!(self.state, State::Delimited { next_index: 0 }) {
            self.state = State::Delimited { next_index: 0 };
        }
        self.matched = Matched::Delimiter(index);
        // A split before the delimiter, then an advance past it: one split
        // through the delimiter and a `truncate` of the frame ran fewer
        // instructions but 1.5 times slower (the frame, stored by
        // `split_to` and reloaded whole, stalled on store forwarding).
        let message = buffer.split_to(start).freeze();
        buffer.advance(length);
        Frame::Complete(message)
    }
}

impl Decoder for TerminatorCodec {
    type Item = Frame;
    type Error = Error;

    /// The hot path, inlined into the caller: when a single delimiter is
    /// found within the limit, or a counted message is all here, a frame
    /// costs one search and one `split_to().freeze()`, nothing else. Every
    /// other case is out of line.
    #[inline(always)]
    fn decode(&mut self, buffer: &mut BytesMut) -> Result<Option<Frame>, Error> {
        // A counted message all here, tested first and alone: with no
        // count, `NOT_COUNTED` is more than any buffer holds.
        let remaining = self.count;
        if remaining <= buffer.len() as u64
            && (remaining <= self.max_frame_length as u64 || self.streaming)
        {
            // `remaining <= buffer.len()`, so it fits in a usize.
            return Ok(Some(self.complete_counted(buffer, remaining as usize)));
        }
        let State::Delimited { next_index } = self.state else {
            return self.decode_general(buffer, false);
        };
        // Within the buffer even if the caller passed another one than the
        // last: a decoder must not panic on its input.
        let next_index = next_index.min(buffer.len());
        let haystack = &buffer[next_index..];
        // Searches whose finds are final at once: a single delimiter, and
        // sets found by their last byte (line endings among them). Each
        // gives the delimiter's offset, index and length.
        let found = match &self.searcher {
            Searcher::Byte(byte) => memchr::memchr(*byte, haystack).map(|at| (at, 0, 1)),
            Searcher::Bytes(finder) => finder
                .find(haystack)
                .map(|at| (at, 0, finder.needle().len())),
            Searcher::Set(set) => match &set.scan {
                SetScan::LineEndings => {
                    find_line_ending(haystack).map(|(at, index)| (at, index, 2 - index))
                }
                SetScan::LastByte(last) => set
                    .find_by_last_byte(*last, haystack)
                    .map(|(at, index)| (at, index, set.delimiters[index].len())),
                _ => return self.decode_general(buffer, false),
            },
        };
        let search = match found {
            Some((offset, index, length)) => {
                let start = next_index + offset;
                if start <= self.max_frame_length || self.streaming {
                    return Ok(Some(self.complete_delimited(buffer, start, index, length)));
                }
                Search::Found { start, index }
            }
            // Not found: only a possible start at the end needs a look.
            None => Search::NotYet {
                resume: buffer.len() - self.searcher.held_back(haystack),
            },
        };
        self.decide(buffer, search)
    }

    /// At the end of input the bytes that no terminator followed come out as
    /// one [`Frame::Partial`] instead of vanishing as in asynchat; the rest
    /// of a message being skipped for its length is dropped. A delimiter
    /// that could still have grown into a longer one of its set (`\r` of
    /// `\r` and `\r\n`) ends its message here.
    fn decode_eof(&mut self, buffer: &mut BytesMut) -> Result<Option<Frame>, Error> {
        if let Some(frame) = self.decode_general(buffer, true)? {
            return Ok(Some(frame));
        }
        if buffer.is_empty() {
            return Ok(None);
        }
        if self.count != NOT_COUNTED {
            // What is handed out counts toward the message, should more
            // input come after all (a reader may go on after an end).
            self.count -= buffer.len() as u64;
        } else {
            match &mut self.state {
                State::SkippingDelimited | State::SkippingCounted { .. } => {
                    buffer.clear();
                    return Ok(None);
                }
                State::Delimited { next_index } => *next_index = 0,
                State::DelimitedAfter | State::Unframed => {}
            }
        }
        Ok(Some(Frame::Partial(buffer.split().freeze())))
    }
}

impl TerminatorCodec {
    /// Where a search of the buffer from `from` stands: see [`Search`].
    /// `at_end`: no more bytes will come, so nothing is left undecided.
    ///
    /// A delimiter of a set that ends in the buffer is only final when no
    /// longer one could still begin at or before it: with `\r` and `\r\n`,
    /// a buffer ending in `\r` waits for the next byte.
    fn search(&self, buffer: &[u8], from: usize, at_end: bool) -> Search {
        let haystack = &buffer[from..];
        let pending = || buffer.len() - self.searcher.held_back(haystack);
        match self.searcher.find(haystack) {
            Some((offset, index)) => {
                let start = from + offset;
                // A delimiter that may still end past the buffer starts
                // within the last `longest - 1` bytes.
                if at_end
                    || start + self.searcher.longest() <= buffer.len()
                    || matches!(&self.searcher, Searcher::Set(set) if set.finds_final())
                {
                    return Search::Found { start, index };
                }
                match pending() {
                    resume if start < resume => Search::Found { start, index },
                    resume => Search::NotYet { resume },
                }
            }
            None if at_end => Search::NotYet {
                resume: buffer.len(),
            },
            None => Search::NotYet { resume: pending() },
        }
    }

    /// Whether a delimiter begins in `preceding` and ends in the first
    /// bytes of `buffer`. The earliest start wins, then the longest, as in
    /// the buffer.
    fn search_boundary(&self, preceding: &[u8], buffer: &[u8], at_end: bool) -> Boundary {
        for start in 0..preceding.len() {
            let before = &preceding[start..];
            let mut undecided = false;
            for (index, delimiter) in self.searcher.delimiters().enumerate() {
                if delimiter.len() <= before.len() || !delimiter.starts_with(before) {
                    continue;
                }
                let in_input = &delimiter[before.len()..];
                if buffer.starts_with(in_input) {
                    // A longer one, starting at the same byte, may match yet.
                    return if undecided {
                        Boundary::Undecided
                    } else {
                        Boundary::Ends {
                            in_input: in_input.len(),
                            index,
                        }
                    };
                }
                undecided |=
                    !at_end && buffer.len() < in_input.len() && in_input.starts_with(buffer);
            }
            if undecided {
                return Boundary::Undecided;
            }
        }
        Boundary::NoDelimiter
    }

    /// Acts on a search of the current delimited message.
    #[inline(never)]
    fn decide(&mut self, buffer: &mut BytesMut, search: Search) -> Result<Option<Frame>, Error> {
        match search {
            Search::Found { start, index } if start <= self.max_frame_length || self.streaming => {
                let length = self.searcher.delimiter(index).len();
                Ok(Some(self.complete_delimited(buffer, start, index, length)))
            }
            // Whole-frame mode, past the limit, and all of it is here
            // already: drop it; no skip needed.
            Search::Found { start, index } => {
                buffer.advance(start + self.searcher.delimiter(index).len());
                self.state = State::Delimited { next_index: 0 };
                Err(self.too_long())
            }
            // Streaming: hand out what cannot begin a delimiter.
            Search::NotYet { resume } if self.streaming => {
                self.state = State::Delimited { next_index: 0 };
                if resume == 0 {
                    return Ok(None);
                }
                Ok(Some(Frame::Partial(buffer.split_to(resume).freeze())))
            }
            // The message is at least `resume` bytes long.
            Search::NotYet { resume } if resume <= self.max_frame_length => {
                self.state = State::Delimited { next_index: resume };
                Ok(None)
            }
            Search::NotYet { resume } => {
                buffer.advance(resume);
                self.state = State::SkippingDelimited;
                Err(self.too_long())
            }
        }
    }

    /// Every case but the hot path's, and the end of input.
    #[inline(never)]
    fn decode_general(
        &mut self,
        buffer: &mut BytesMut,
        at_end: bool,
    ) -> Result<Option<Frame>, Error> {
        loop {
            debug_assert!(self.count == NOT_COUNTED || matches!(self.state, State::Unframed));
            // A count, set before the call or by the end of a skip below,
            // comes before the state, which is `Unframed` meanwhile.
            if self.count != NOT_COUNTED {
                return self.decode_counted(buffer);
            }
            match &mut self.state {
                State::DelimitedAfter => {
                    // An end before any byte of the message decides nothing:
                    // a reader may go on after it (`Framed` calls
                    // `decode_eof` at each read of 0 bytes).
                    if at_end && buffer.is_empty() {
                        return Ok(None);
                    }
                    let boundary = self.search_boundary(&self.preceding, buffer, at_end);
                    if boundary != Boundary::Undecided {
                        self.preceding = Bytes::new();
                    }
                    match boundary {
                        // The message is empty: the delimiter began before it.
                        Boundary::Ends { in_input, index } => {
                            buffer.advance(in_input);
                            self.state = State::Delimited { next_index: 0 };
                            self.matched = Matched::Partly { index, in_input };
                            return Ok(Some(Frame::Complete(Bytes::new())));
                        }
                        // An ordinary message: search it as such.
                        Boundary::NoDelimiter => self.state = State::Delimited { next_index: 0 },
                        // Fewer bytes than the longest delimiter: wait.
                        Boundary::Undecided => return Ok(None),
                    }
                }
                &mut State::Delimited { next_index } => {
                    let next_index = next_index.min(buffer.len());
                    return match self.search(buffer, next_index, at_end) {
                        // The unterminated rest, even past the limit, is
                        // `decode_eof`'s to hand out.
                        Search::NotYet { .. } if at_end => Ok(None),
                        search => self.decide(buffer, search),
                    };
                }
                State::SkippingDelimited => match self.search(buffer, 0, at_end) {
                    Search::Found { start, index } => {
                        // The overlong message ended: carry on with the next.
                        buffer.advance(start + self.searcher.delimiter(index).len());
                        let preceding = mem::take(&mut self.preceding);
                        self.begin_message(self.terminator.clone(), &preceding);
                    }
                    Search::NotYet { resume } => {
                        buffer.advance(resume);
                        return Ok(None);
                    }
                },
                State::SkippingCounted {
                    remaining,
                    terminator_set,
                } => {
                    let dropped = (*remaining).min(buffer.len() as u64);
                    buffer.advance(dropped as usize);
                    *remaining -= dropped;
                    if *remaining > 0 {
                        return Ok(None);
                    }
                    let next = match terminator_set {
                        true => self.terminator.clone(),
                        false => Terminator::None,
                    };
                    let preceding = mem::take(&mut self.preceding);
                    self.begin_message(next, &preceding);
                }
                State::Unframed => {
                    if buffer.is_empty() {
                        return Ok(None);
                    }
                    return Ok(Some(Frame::Partial(buffer.split().freeze())));
                }
            }
        }
    }
}

impl TerminatorCodec {
    /// A counted message, `count` bytes still to come: whole once they are
    /// all here, in chunks as they come when streaming, and past the limit
    /// an error, then a skip.
    fn decode_counted(&mut self, buffer: &mut BytesMut) -> Result<Option<Frame>, Error> {
        let remaining = self.count;
        if !self.streaming && remaining > self.max_frame_length as u64 {
            self.count = NOT_COUNTED;
            self.state = State::SkippingCounted {
                remaining,
                terminator_set: false,
            };
            return Err(self.too_long());
        }
        let available = buffer.len() as u64;
        if available >= remaining {
            // `remaining <= available`, so it fits in a usize.
            return Ok(Some(self.complete_counted(buffer, remaining as usize)));
        }
        if !self.streaming || available == 0 {
            return Ok(None);
        }
        self.count -= available;
        Ok(Some(Frame::Partial(buffer.split().freeze())))
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for TerminatorCodec {
    type Error = Error;

    /// Appends the bytes verbatim: the caller writes any terminator. Copies
    /// them into `dst`, as every `Framed` encoder does; a
    /// [`Chat`](crate::Chat) writes `Bytes` without this copy.
    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), Error> {
        dst.extend_from_slice(item.as_ref());
        Ok(())
    }
}
