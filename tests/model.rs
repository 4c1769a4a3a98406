//! `TerminatorCodec` against a model of its documented rules (API.md and the
//! doc comments of `src/codec.rs`), over random sequences of operations:
//! reads of any size, `set_terminator` between a delimiter, a set of them,
//! a `Length` and `None` in the middle of a message, `set_terminator_after`
//! with preceding bytes, `set_streaming` and `set_max_frame_length` at any
//! time, and `decode_eof` followed by more input. After every operation and
//! every decode the codec and the model must agree on the frame or error,
//! `matched_delimiter()`, `terminator()` and the bytes left in the buffer.
//!
//! The codec is fast because it is clever: it resumes a search where the
//! last one stopped, takes fast paths for single delimiters and counts, and
//! keeps a delimiter's searcher across switches. The model is none of that.
//! It searches the whole buffer from its start at every decode, position by
//! position, with plain slice compares, so that its answer follows from the
//! rules alone; where the two differ, the codec's cleverness is suspect.
//!
//! The sequences come from a seeded generator and are the same on every
//! run. `ASYNCHAT_MODEL_SEQUENCES` runs more of them (or fewer), and
//! `ASYNCHAT_MODEL_SEED` sets the first seed, which replays a failure.

use std::{cell::RefCell, cmp::Reverse, fmt, panic};

use asynchat::{Error, Frame, Terminator, TerminatorCodec, DEFAULT_MAX_FRAME_LENGTH};
use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

/// Sequences run by default: about six seconds of a debug build on two
/// cores. 25 of them catch the bug of `decode_eof` deciding a
/// `set_terminator_after` boundary on an empty buffer.
const DEFAULT_SEQUENCES: u64 = 20_000;

/// Operations in a sequence, not counting its decodes. Enough to switch
/// terminators and modes several times within a message.
const OPERATIONS: usize = 40;

/// More frames than one decode loop can hand out: each frame but a few
/// takes at least one byte, and a sequence reads at most a few hundred.
/// A loop that goes on past it never returns `None`, and would hang a
/// `Framed`.
const MOST_FRAMES_PER_LOOP: usize = 1_000;

// ---------------------------------------------------------------------------
// Sequences.

/// A small seeded generator (xorshift64): the same seed gives the same
/// sequence on every machine, without a dependency.
struct Random(u64);

impl Random {
    /// A generator for `seed`, scrambled so that neighbouring seeds start
    /// far apart (xorshift must not start at 0).
    fn new(seed: u64) -> Self {
        Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number of the sequence.
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..bound`.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    /// Heads or tails.
    fn coin(&mut self) -> bool {
        self.below(2) == 0
    }

    /// Up to `most` bytes from `alphabet`.
    fn bytes(&mut self, alphabet: &[u8], most: u64) -> Bytes {
        let length = self.below(most + 1);
        (0..length)
            .map(|_| alphabet[self.below(alphabet.len() as u64) as usize])
            .collect()
    }
}

/// Inputs and delimiters are drawn from a few bytes, so that delimiters
/// occur often, overlap with themselves and are prefixes of each other.
/// Each sequence takes one of these.
const ALPHABETS: [&[u8]; 2] = [b"ab\r\n.", b"a\r\n"];

/// The longest delimiter drawn; a read is up to three times as long.
const LONGEST_DELIMITER: u64 = 4;

/// One step of a sequence, done to the codec and to the model alike.
#[derive(Debug, Clone)]
enum Operation {
    /// These bytes arrive and are appended to the buffer.
    Read(Bytes),
    /// `set_terminator`, in the middle of a message or not.
    SetTerminator(Terminator),
    /// `set_terminator_after`, with the bytes the message is preceded by.
    SetTerminatorAfter(Terminator, Bytes),
    /// `set_streaming`: whole frames or streaming from the next decode on.
    SetStreaming(bool),
    /// `set_max_frame_length`: small, so that messages pass it often.
    SetMaxFrameLength(usize),
    /// `decode` until it returns `None`, an error counting as an item.
    Decode,
    /// `decode_eof` until it returns `None`; more reads may follow, as
    /// they do after a `Framed`'s read of 0 bytes.
    DecodeEof,
}

impl fmt::Display for Operation {
    /// As the call it stands for, for the report of a failure.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::Read(bytes) => write!(f, "buffer.extend_from_slice({bytes:?});"),
            Operation::SetTerminator(terminator) => {
                write!(f, "codec.set_terminator({terminator:?});")
            }
            Operation::SetTerminatorAfter(terminator, preceding) => {
                write!(
                    f,
                    "codec.set_terminator_after({terminator:?}, {preceding:?});"
                )
            }
            Operation::SetStreaming(streaming) => write!(f, "codec.set_streaming({streaming});"),
            Operation::SetMaxFrameLength(length) => {
                write!(f, "codec.set_max_frame_length({length});")
            }
            Operation::Decode => f.write_str("codec.decode(&mut buffer) until None"),
            Operation::DecodeEof => f.write_str("codec.decode_eof(&mut buffer) until None"),
        }
    }
}

/// A codec's first terminator and mode, and what is done to it.
#[derive(Debug)]
struct Sequence {
    terminator: Terminator,
    streaming: bool,
    operations: Vec<Operation>,
}

impl Sequence {
    /// The sequence of `seed`. Operations come in the proportions of the
    /// reviewer's fuzzer this test grew from: half of them reads, and a
    /// decode after half of the others.
    fn new(seed: u64) -> Self {
        let mut random = Random::new(seed);
        let alphabet = ALPHABETS[random.below(ALPHABETS.len() as u64) as usize];
        let terminator = random_terminator(&mut random, alphabet);
        let streaming = random.coin();
        let mut operations = Vec::new();
        for _ in 0..OPERATIONS {
            let operation = match random.below(20) {
                0..=9 => Operation::Read(random.bytes(alphabet, 3 * LONGEST_DELIMITER)),
                10 | 11 => Operation::SetTerminator(random_terminator(&mut random, alphabet)),
                12 => Operation::SetTerminatorAfter(
                    random_terminator(&mut random, alphabet),
                    random.bytes(alphabet, LONGEST_DELIMITER + 1),
                ),
                13 | 14 => Operation::SetStreaming(random.coin()),
                15 | 16 => Operation::SetMaxFrameLength(random.below(8) as usize),
                17 | 18 => Operation::Decode,
                _ => Operation::DecodeEof,
            };
            let decodes = matches!(operation, Operation::Decode | Operation::DecodeEof);
            operations.push(operation);
            if !decodes && random.coin() {
                operations.push(Operation::Decode);
            }
        }
        Sequence {
            terminator,
            streaming,
            operations,
        }
    }
}

/// Any terminator: mostly single delimiters, some counts (0 included) and
/// `None`, the two line-ending sets, and random sets, which may hold empty
/// delimiters, repeats and prefixes of each other. A quarter of the random
/// sets are built as `AnyOf` directly, not through `any_of`, so that the
/// codec has to clean them.
fn random_terminator(random: &mut Random, alphabet: &[u8]) -> Terminator {
    match random.below(10) {
        0 => Terminator::Length(random.below(7)),
        1 => Terminator::None,
        2..=4 => {
            let delimiter = random.bytes(alphabet, LONGEST_DELIMITER);
            match delimiter.is_empty() {
                true => Terminator::from("\n"),
                false => Terminator::from(delimiter),
            }
        }
        5 => Terminator::any_of(["\r\n", "\n"]),
        6 => Terminator::any_of(["\r", "\r\n"]),
        _ => {
            let count = 2 + random.below(3);
            let delimiters: Vec<Bytes> = (0..count)
                .map(|_| random.bytes(alphabet, LONGEST_DELIMITER))
                .collect();
            match random.below(4) {
                0 => Terminator::AnyOf(delimiters.into()),
                _ => Terminator::any_of(delimiters),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// What is compared.

/// What one decode gave.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// A frame handed out.
    Frame(Frame),
    /// `Error::FrameTooLong`, with the limit it reports.
    TooLong { limit: usize },
    /// Any other error: the model never gives one.
    OtherError(String),
    /// The codec panicked, where and with what message: the model never
    /// does.
    Panicked(String),
}

/// Everything the caller of a codec can see after an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    /// What the decode gave, if the operation was one.
    outcome: Option<Outcome>,
    matched_delimiter: Option<Bytes>,
    terminator: Terminator,
    /// The bytes read and not handed out.
    buffered: Bytes,
}

/// The codec under test and its buffer, as a `Framed` holds them.
struct CodecUnderTest {
    codec: TerminatorCodec,
    buffer: BytesMut,
}

impl CodecUnderTest {
    /// A codec made as a user makes one, and an empty buffer.
    fn new(terminator: Terminator, streaming: bool) -> Self {
        let codec = match streaming {
            true => TerminatorCodec::streaming(terminator),
            false => TerminatorCodec::new(terminator),
        };
        CodecUnderTest {
            codec,
            buffer: BytesMut::new(),
        }
    }

    /// Does an operation other than a decode.
    fn apply(&mut self, operation: &Operation) {
        match operation.clone() {
            Operation::Read(bytes) => self.buffer.extend_from_slice(&bytes),
            Operation::SetTerminator(terminator) => self.codec.set_terminator(terminator),
            Operation::SetTerminatorAfter(terminator, preceding) => {
                self.codec.set_terminator_after(terminator, preceding)
            }
            Operation::SetStreaming(streaming) => self.codec.set_streaming(streaming),
            Operation::SetMaxFrameLength(length) => self.codec.set_max_frame_length(length),
            Operation::Decode | Operation::DecodeEof => unreachable!("decodes are stepped"),
        }
    }

    /// One `decode`, or `decode_eof` at the end of input; `None` when it
    /// gave nothing.
    fn decode(&mut self, at_end: bool) -> Option<Outcome> {
        let Self { codec, buffer } = self;
        let result = panic::catch_unwind(panic::AssertUnwindSafe(|| match at_end {
            true => codec.decode_eof(buffer),
            false => codec.decode(buffer),
        }));
        match result {
            Ok(Ok(frame)) => frame.map(Outcome::Frame),
            Ok(Err(Error::FrameTooLong { limit })) => Some(Outcome::TooLong { limit }),
            Ok(Err(error)) => Some(Outcome::OtherError(error.to_string())),
            Err(_) => Some(Outcome::Panicked(last_panic())),
        }
    }

    /// What the caller sees now, after `outcome`.
    fn observe(&self, outcome: Option<Outcome>) -> Observed {
        Observed {
            outcome,
            matched_delimiter: self.codec.matched_delimiter().map(Bytes::copy_from_slice),
            terminator: self.codec.terminator().clone(),
            buffered: Bytes::copy_from_slice(&self.buffer),
        }
    }
}

// ---------------------------------------------------------------------------
// The model.

/// Where the model is within the current message: the codec's states,
/// holding what they need as plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Message {
    /// Ended by a delimiter of the terminator. `preceding` holds the last
    /// bytes handed out before the message (`set_terminator_after`), in
    /// which a delimiter may begin and end in the message's first bytes;
    /// it is emptied as soon as those bytes decide whether one does.
    Delimited { preceding: Vec<u8> },
    /// `remaining` bytes of the message are still to be handed out.
    Counted { remaining: u64 },
    /// No terminator: every byte is data.
    Unframed,
    /// Whole-frame mode, past the limit: the rest of the message is dropped
    /// through the first of `delimiters`, those in force when it failed.
    SkippingDelimited { delimiters: Vec<Bytes> },
    /// Whole-frame mode, a `Length` above the limit: `remaining` bytes are
    /// dropped. Then the next message is framed by `None`, or by the
    /// terminator if one was set since (`terminator_set`).
    SkippingCounted {
        remaining: u64,
        terminator_set: bool,
    },
}

/// The codec's rules, written as plainly as possible, with its own buffer.
#[derive(Debug)]
struct Model {
    /// The terminator as last set, cleaned as the codec cleans it.
    terminator: Terminator,
    message: Message,
    streaming: bool,
    max_frame_length: usize,
    /// The delimiter (or its part in the input) that ended the last
    /// `Complete`; `None` after a count.
    matched_delimiter: Option<Bytes>,
    /// The preceding bytes of a `set_terminator_after` made while an
    /// overlong message is skipped: they precede the message after it.
    preceding_after_skip: Vec<u8>,
    buffer: Vec<u8>,
}

/// What a search of the whole buffer found, under the rule of the
/// earliest start, then the longest delimiter.
enum Search {
    /// `delimiter` ends the message at `start`, whatever bytes come next.
    Found { start: usize, delimiter: Bytes },
    /// No delimiter ends the message yet; the bytes from `resume` on may
    /// begin one.
    NotYet { resume: usize },
}

/// Whether a delimiter begins in the preceding bytes and ends in the first
/// bytes of the message.
enum Boundary {
    /// One does; these are its bytes in the input. The message is empty.
    Ends(Bytes),
    /// None can: the message is searched as any other.
    NoDelimiter,
    /// It depends on bytes not read yet.
    Undecided,
}

/// Searches `buffer` from its start for the delimiter that starts earliest,
/// the longest of those that start there. Unless `at_end`, a position where
/// a delimiter might still match once more bytes come stops the search: the
/// message may end there, or not.
fn search(delimiters: &[Bytes], buffer: &[u8], at_end: bool) -> Search {
    for start in 0..buffer.len() {
        let rest = &buffer[start..];
        let may_match_later = delimiters
            .iter()
            .any(|delimiter| rest.len() < delimiter.len() && delimiter.starts_with(rest));
        if may_match_later && !at_end {
            return Search::NotYet { resume: start };
        }
        let longest = delimiters
            .iter()
            .filter(|delimiter| rest.starts_with(delimiter))
            .max_by_key(|delimiter| delimiter.len());
        if let Some(delimiter) = longest {
            return Search::Found {
                start,
                delimiter: delimiter.clone(),
            };
        }
    }
    Search::NotYet {
        resume: buffer.len(),
    }
}

/// Whether a delimiter begins in `preceding` and ends in `buffer`: the
/// earliest start in `preceding` wins, then the longest delimiter, as in
/// [`search`].
fn boundary(delimiters: &[Bytes], preceding: &[u8], buffer: &[u8], at_end: bool) -> Boundary {
    let mut longest_first = delimiters.to_vec();
    longest_first.sort_by_key(|delimiter| Reverse(delimiter.len()));
    for start in 0..preceding.len() {
        let before = &preceding[start..];
        let mut undecided = false;
        for delimiter in &longest_first {
            if delimiter.len() <= before.len() || !delimiter.starts_with(before) {
                continue;
            }
            let in_input = &delimiter[before.len()..];
            if buffer.starts_with(in_input) {
                // A longer one, starting at the same byte, may match yet.
                return match undecided {
                    true => Boundary::Undecided,
                    false => Boundary::Ends(Bytes::copy_from_slice(in_input)),
                };
            }
            undecided |= !at_end && buffer.len() < in_input.len() && in_input.starts_with(buffer);
        }
        if undecided {
            return Boundary::Undecided;
        }
    }
    Boundary::NoDelimiter
}

/// A terminator as the codec works with it: an empty delimiter is `None`,
/// and a set is cleaned by `any_of`.
fn cleaned(terminator: Terminator) -> Terminator {
    match terminator {
        Terminator::AnyOf(set) => Terminator::any_of(set.iter().cloned().collect::<Vec<_>>()),
        Terminator::Delimiter(delimiter) if delimiter.is_empty() => Terminator::None,
        terminator => terminator,
    }
}

impl Model {
    /// The model of `TerminatorCodec::new` or `streaming`: the terminator
    /// is set as by `set_terminator`, from no terminator.
    fn new(terminator: Terminator, streaming: bool) -> Self {
        let mut model = Model {
            terminator: Terminator::None,
            message: Message::Unframed,
            streaming,
            max_frame_length: DEFAULT_MAX_FRAME_LENGTH,
            matched_delimiter: None,
            preceding_after_skip: Vec::new(),
            buffer: Vec::new(),
        };
        model.set_terminator_after(terminator, &[]);
        model
    }

    /// Does an operation other than a decode. `set_terminator` is
    /// `set_terminator_after` with nothing before.
    fn apply(&mut self, operation: &Operation) {
        match operation.clone() {
            Operation::Read(bytes) => self.buffer.extend_from_slice(&bytes),
            Operation::SetTerminator(terminator) => self.set_terminator_after(terminator, &[]),
            Operation::SetTerminatorAfter(terminator, preceding) => {
                self.set_terminator_after(terminator, &preceding)
            }
            Operation::SetStreaming(streaming) => self.streaming = streaming,
            Operation::SetMaxFrameLength(length) => self.max_frame_length = length,
            Operation::Decode | Operation::DecodeEof => unreachable!("decodes are stepped"),
        }
    }

    /// What the caller sees now, after `outcome`. A count reads as set
    /// until its message completes; then the terminator reads `None`.
    fn observe(&self, outcome: Option<Outcome>) -> Observed {
        let terminator = match self.message {
            Message::Unframed => Terminator::None,
            _ => self.terminator.clone(),
        };
        Observed {
            outcome,
            matched_delimiter: self.matched_delimiter.clone(),
            terminator,
            buffered: Bytes::copy_from_slice(&self.buffer),
        }
    }

    /// The delimiters of the terminator as last set (none for a count).
    fn delimiters(&self) -> Vec<Bytes> {
        self.terminator.delimiters().to_vec()
    }

    /// The next message is framed by `terminator`, after `preceding`; while
    /// an overlong message is skipped, the one after it.
    fn set_terminator_after(&mut self, terminator: Terminator, preceding: &[u8]) {
        let terminator = cleaned(terminator);
        match &mut self.message {
            Message::SkippingDelimited { .. } | Message::SkippingCounted { .. } => {
                if let Message::SkippingCounted { terminator_set, .. } = &mut self.message {
                    *terminator_set = true;
                }
                self.terminator = terminator;
                self.preceding_after_skip = preceding.to_vec();
            }
            _ => self.begin_message(terminator, preceding),
        }
    }

    /// Starts a message framed by `terminator`. Only the last `longest - 1`
    /// bytes of `preceding` can begin a delimiter that ends in the message.
    fn begin_message(&mut self, terminator: Terminator, preceding: &[u8]) {
        self.preceding_after_skip.clear();
        self.terminator = terminator;
        self.message = match self.terminator {
            Terminator::Length(length) => Message::Counted { remaining: length },
            Terminator::None => Message::Unframed,
            _ => {
                let longest = self.delimiters().iter().map(Bytes::len).max().unwrap_or(0);
                let kept = preceding.len().min(longest - 1);
                Message::Delimited {
                    preceding: preceding[preceding.len() - kept..].to_vec(),
                }
            }
        };
    }

    /// Takes `length` bytes off the front of the buffer.
    fn take(&mut self, length: usize) -> Bytes {
        self.buffer.drain(..length).collect()
    }

    /// One `decode`, or the part of `decode_eof` that decodes, with nothing
    /// left undecided when `at_end`.
    fn decode(&mut self, at_end: bool) -> Option<Outcome> {
        loop {
            match self.message.clone() {
                Message::Delimited { preceding } if !preceding.is_empty() => {
                    // An end before any byte of the message decides
                    // nothing: more input may follow it.
                    if at_end && self.buffer.is_empty() {
                        return None;
                    }
                    match boundary(&self.delimiters(), &preceding, &self.buffer, at_end) {
                        Boundary::Undecided => return None,
                        Boundary::Ends(in_input) => {
                            self.take(in_input.len());
                            self.message = Message::Delimited { preceding: vec![] };
                            self.matched_delimiter = Some(in_input);
                            return Some(Outcome::Frame(Frame::Complete(Bytes::new())));
                        }
                        Boundary::NoDelimiter => {
                            self.message = Message::Delimited { preceding: vec![] }
                        }
                    }
                }
                Message::Delimited { .. } => {
                    return match search(&self.delimiters(), &self.buffer, at_end) {
                        Search::Found { start, delimiter }
                            if self.streaming || start <= self.max_frame_length =>
                        {
                            let message = self.take(start);
                            self.take(delimiter.len());
                            self.matched_delimiter = Some(delimiter);
                            Some(Outcome::Frame(Frame::Complete(message)))
                        }
                        // Past the limit, and all of it is here: dropped.
                        Search::Found { start, delimiter } => {
                            self.take(start + delimiter.len());
                            Some(self.too_long())
                        }
                        // The unterminated rest is `decode_eof`'s.
                        Search::NotYet { .. } if at_end => None,
                        Search::NotYet { resume: 0 } if self.streaming => None,
                        Search::NotYet { resume } if self.streaming => {
                            Some(Outcome::Frame(Frame::Partial(self.take(resume))))
                        }
                        Search::NotYet { resume } if resume <= self.max_frame_length => None,
                        Search::NotYet { resume } => {
                            self.take(resume);
                            self.message = Message::SkippingDelimited {
                                delimiters: self.delimiters(),
                            };
                            Some(self.too_long())
                        }
                    };
                }
                Message::Counted { remaining } => {
                    if !self.streaming && remaining > self.max_frame_length as u64 {
                        self.message = Message::SkippingCounted {
                            remaining,
                            terminator_set: false,
                        };
                        return Some(self.too_long());
                    }
                    let available = self.buffer.len() as u64;
                    if available >= remaining {
                        let message = self.take(remaining as usize);
                        // As in asynchat, no terminator until the next is set.
                        self.message = Message::Unframed;
                        self.matched_delimiter = None;
                        return Some(Outcome::Frame(Frame::Complete(message)));
                    }
                    if !self.streaming || available == 0 {
                        return None;
                    }
                    self.message = Message::Counted {
                        remaining: remaining - available,
                    };
                    let part = self.take(self.buffer.len());
                    return Some(Outcome::Frame(Frame::Partial(part)));
                }
                Message::Unframed => {
                    if self.buffer.is_empty() {
                        return None;
                    }
                    let part = self.take(self.buffer.len());
                    return Some(Outcome::Frame(Frame::Partial(part)));
                }
                Message::SkippingDelimited { delimiters } => {
                    match search(&delimiters, &self.buffer, at_end) {
                        Search::Found { start, delimiter } => {
                            // The overlong message is over: on to the next.
                            self.take(start + delimiter.len());
                            let preceding = std::mem::take(&mut self.preceding_after_skip);
                            self.begin_message(self.terminator.clone(), &preceding);
                        }
                        Search::NotYet { resume } => {
                            self.take(resume);
                            return None;
                        }
                    }
                }
                Message::SkippingCounted {
                    remaining,
                    terminator_set,
                } => {
                    let dropped = remaining.min(self.buffer.len() as u64);
                    self.take(dropped as usize);
                    if remaining > dropped {
                        self.message = Message::SkippingCounted {
                            remaining: remaining - dropped,
                            terminator_set,
                        };
                        return None;
                    }
                    let next = match terminator_set {
                        true => self.terminator.clone(),
                        false => Terminator::None,
                    };
                    let preceding = std::mem::take(&mut self.preceding_after_skip);
                    self.begin_message(next, &preceding);
                }
            }
        }
    }

    /// At the end of input, what no terminator followed comes out as one
    /// `Partial`, except the rest of a message being skipped, which is
    /// dropped.
    fn decode_eof(&mut self) -> Option<Outcome> {
        if let Some(outcome) = self.decode(true) {
            return Some(outcome);
        }
        if self.buffer.is_empty() {
            return None;
        }
        match &mut self.message {
            Message::SkippingDelimited { .. } | Message::SkippingCounted { .. } => {
                self.buffer.clear();
                return None;
            }
            // What is handed out counts toward the message.
            Message::Counted { remaining } => *remaining -= self.buffer.len() as u64,
            _ => {}
        }
        let part = self.take(self.buffer.len());
        Some(Outcome::Frame(Frame::Partial(part)))
    }

    /// The error of a message past the limit.
    fn too_long(&self) -> Outcome {
        Outcome::TooLong {
            limit: self.max_frame_length,
        }
    }
}

// ---------------------------------------------------------------------------
// Running a sequence.

/// Runs the sequence of `seed` on the codec and the model, comparing what
/// the caller sees after each step. On the first difference, the steps so
/// far (each decode with its outcome) and what each side saw.
fn check(seed: u64) -> Result<(), String> {
    let sequence = Sequence::new(seed);
    let mut codec = CodecUnderTest::new(sequence.terminator.clone(), sequence.streaming);
    let mut model = Model::new(sequence.terminator.clone(), sequence.streaming);
    let constructor = match sequence.streaming {
        true => "streaming",
        false => "new",
    };
    let mut steps = vec![format!(
        "let mut codec = TerminatorCodec::{constructor}({:?});",
        sequence.terminator
    )];
    let compare = |codec: Observed, model: Observed, steps: &[String]| match codec == model {
        true => Ok(()),
        false => Err(format!(
            "the codec saw   {codec:?}\nthe model saw   {model:?}\nafter the steps\n    {}",
            steps.join("\n    ")
        )),
    };
    compare(codec.observe(None), model.observe(None), &steps)?;
    for operation in &sequence.operations {
        let at_end = match operation {
            Operation::Decode => false,
            Operation::DecodeEof => true,
            _ => {
                steps.push(operation.to_string());
                codec.apply(operation);
                model.apply(operation);
                compare(codec.observe(None), model.observe(None), &steps)?;
                continue;
            }
        };
        let call = match at_end {
            true => "decode_eof",
            false => "decode",
        };
        let mut returned_none = false;
        for _ in 0..MOST_FRAMES_PER_LOOP {
            let outcome = codec.decode(at_end);
            let expected = match at_end {
                true => model.decode_eof(),
                false => model.decode(false),
            };
            steps.push(format!("codec.{call}(&mut buffer) -> {outcome:?}"));
            returned_none = outcome.is_none() && expected.is_none();
            compare(codec.observe(outcome), model.observe(expected), &steps)?;
            if returned_none {
                break;
            }
        }
        if !returned_none {
            return Err(format!(
                "{call} gave {MOST_FRAMES_PER_LOOP} items without a None after the steps\n    {}",
                steps.join("\n    ")
            ));
        }
    }
    Ok(())
}

thread_local! {
    /// Where the last panic on this thread happened and its message,
    /// recorded by the test's panic hook instead of printed.
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The place and message of the last panic on this thread.
fn last_panic() -> String {
    LAST_PANIC.with(|last| last.borrow().clone())
}

/// A number from the environment, or `default` when it is not set.
fn from_environment(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
        Err(_) => default,
    }
}

/// Every sequence agrees with the model. All of them run; the failure
/// reported is the shortest, the easiest to read, with how to replay it.
#[test]
fn codec_agrees_with_the_model() {
    let sequences = from_environment("ASYNCHAT_MODEL_SEQUENCES", DEFAULT_SEQUENCES);
    let first = from_environment("ASYNCHAT_MODEL_SEED", 1);
    // A panic, in the codec or in the model, is caught and reported with
    // its sequence; printed as well, once per sequence, it would bury the
    // report.
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|info| {
        LAST_PANIC.with(|last| *last.borrow_mut() = info.to_string());
    }));
    let mut failures = 0;
    let mut shortest: Option<(u64, String)> = None;
    for seed in first..first + sequences {
        let checked = panic::catch_unwind(|| check(seed))
            .unwrap_or_else(|_| Err(format!("the model or the test {}", last_panic())));
        if let Err(report) = checked {
            failures += 1;
            match &shortest {
                Some((_, known)) if known.len() <= report.len() => {}
                _ => shortest = Some((seed, report)),
            }
        }
    }
    panic::set_hook(hook);
    if let Some((seed, report)) = shortest {
        panic!(
            "{failures} of {sequences} sequences differ from the model; the shortest, \
             seed {seed}:\n{report}\n\
             replay it with ASYNCHAT_MODEL_SEED={seed} ASYNCHAT_MODEL_SEQUENCES=1 \
             cargo test --test model"
        );
    }
}
