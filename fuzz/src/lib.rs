//! The fuzz harness of `asynchat`'s `TerminatorCodec`, shared by the fuzz
//! targets: how a fuzzer's bytes become a case (a terminator schedule, read
//! splits, a frame limit and the input), a plain model of the framing rules,
//! and a driver that feeds a codec read by read and checks its memory bound
//! after every `decode`.
//!
//! The harness plays the part of an asynchat handler: it starts with the
//! first terminator of the schedule and, after every `Complete`, sets the
//! next one (cycling), as `found_terminator` would. After `FrameTooLong` it
//! either sets nothing, so that the codec goes on after the skip of the
//! overlong message with the same delimiter (or `None` after a `Length`), or,
//! as a protocol that answers the error and goes back to its commands, sets
//! the next one at once, which applies after the skip (the case's flags
//! choose). To keep `Length(0)` schedules finite, after `cap` messages the
//! terminator becomes `None` for good.
//!
//! The [`chat`] module is the harness of the `chat` target: a `Chat` over
//! an in-memory IO, two tasks and operations between polls, against a
//! model.

pub mod chat;

use asynchat::{find_prefix_at_end, Error, Frame, Terminator, TerminatorCodec};
use bytes::BytesMut;
use tokio_util::codec::Decoder;

/// `Length` values far beyond any input: the codec must neither allocate
/// them nor overflow on them.
const LARGE_LENGTHS: [u64; 8] = [
    0,
    1,
    u16::MAX as u64,
    u32::MAX as u64,
    1 << 40,
    usize::MAX as u64,
    u64::MAX - 1,
    u64::MAX,
];

/// A small alphabet, so that delimiters made of it occur often, overlap with
/// themselves and begin in one read and end in the next.
const ALPHABET: &[u8; 4] = b"\r\n.a";

/// One fuzz case.
#[derive(Debug, Clone)]
pub struct Case {
    /// The terminators set in turn, after each `Complete`; never empty.
    pub schedule: Vec<Terminator>,
    /// The sizes of the reads, cycled over the input; a 0 is a `decode`
    /// with no new bytes.
    pub read_sizes: Vec<usize>,
    /// A small `max_frame_length` for the `limit` target: 0..=64.
    pub limit: usize,
    /// Whether the handler sets the next terminator right after a
    /// `FrameTooLong` (else it sets nothing).
    pub set_after_error: bool,
    /// The bytes the peer sends.
    pub input: Vec<u8>,
}

/// Takes bytes off the front of the fuzzer's data; 0 once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&first, rest)) => {
                self.0 = rest;
                first
            }
            None => 0,
        }
    }
}

impl Case {
    /// The layout: `flags limit n_terminators terminator* n_reads read* input`.
    ///
    /// * `flags` bit 0: map the input and the delimiters onto `\r \n . a`;
    ///   bit 1: the handler sets the next terminator right after an error.
    /// * a terminator is a tag byte (mod 8): 0 `None`; 1 to 4 a delimiter of
    ///   that many following bytes; 5 `Length` of the next byte; 6 `Length`
    ///   of a large value picked by the next byte; 7 `Length(0)`.
    /// * a read is a byte: its size (0..=255).
    pub fn parse(data: &[u8]) -> Case {
        let mut data = Bytes(data);
        let flags = data.byte();
        let alphabet = flags & 1 == 1;
        let set_after_error = flags & 2 == 2;
        let map = |byte: u8| {
            if alphabet {
                ALPHABET[usize::from(byte % 4)]
            } else {
                byte
            }
        };
        let limit = usize::from(data.byte() % 65);
        let terminators = usize::from(data.byte() % 8) + 1;
        let mut schedule = Vec::with_capacity(terminators);
        for _ in 0..terminators {
            let tag = data.byte() % 8;
            schedule.push(match tag {
                0 => Terminator::None,
                1..=4 => {
                    let delimiter: Vec<u8> = (0..tag).map(|_| map(data.byte())).collect();
                    Terminator::from(delimiter)
                }
                5 => Terminator::Length(u64::from(data.byte())),
                6 => Terminator::Length(
                    LARGE_LENGTHS[usize::from(data.byte()) % LARGE_LENGTHS.len()],
                ),
                _ => Terminator::Length(0),
            });
        }
        let reads = usize::from(data.byte() % 16);
        let mut read_sizes: Vec<usize> = (0..reads).map(|_| usize::from(data.byte())).collect();
        if read_sizes.iter().all(|&size| size == 0) {
            // No progress otherwise; an empty list is one read of everything.
            read_sizes.retain(|_| false);
        }
        let input = data.0.iter().map(|&byte| map(byte)).collect();
        Case {
            schedule,
            read_sizes,
            limit,
            set_after_error,
            input,
        }
    }

    /// The input cut into reads by `read_sizes` (one read when there are none).
    pub fn reads(&self) -> Vec<&[u8]> {
        if self.read_sizes.is_empty() {
            return vec![&self.input];
        }
        let mut reads = Vec::new();
        let mut rest = &self.input[..];
        for &size in self.read_sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (read, after) = rest.split_at(size.min(rest.len()));
            reads.push(read);
            rest = after;
        }
        reads
    }

    /// After this many messages the terminator becomes `None` for good.
    pub fn cap(&self) -> usize {
        self.input.len() + self.schedule.len() + 1
    }

    /// The terminator for the message after `handled` messages.
    fn terminator(&self, handled: usize) -> Terminator {
        if handled >= self.cap() {
            Terminator::None
        } else {
            self.schedule[handled % self.schedule.len()].clone()
        }
    }
}

/// What the handler sees, partial frames joined into their message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message and the delimiter that ended it (empty for a `Length`).
    Complete {
        /// The message: its `Partial`s and its `Complete`, joined.
        message: Vec<u8>,
        /// The delimiter that ended it, or nothing for a `Length`.
        delimiter: Vec<u8>,
    },
    /// `Error::FrameTooLong`.
    TooLong,
}

/// Everything decoded from one input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// The messages and errors, in order.
    pub events: Vec<Event>,
    /// The bytes that came out as `Partial` after the last message: the
    /// unterminated rest.
    pub trailing: Vec<u8>,
}

impl Outcome {
    /// The input again, when nothing was skipped: messages, delimiters and
    /// the unterminated rest, in order.
    pub fn reassemble(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for event in &self.events {
            match event {
                Event::Complete { message, delimiter } => {
                    bytes.extend_from_slice(message);
                    bytes.extend_from_slice(delimiter);
                }
                Event::TooLong => panic!("bytes were skipped"),
            }
        }
        bytes.extend_from_slice(&self.trailing);
        bytes
    }
}

/// The framing rules, on the whole input at once: what any split of the
/// input into reads must give in whole-frame mode with `limit`, and in
/// streaming mode when `limit` is `usize::MAX`.
pub fn model(case: &Case, limit: usize) -> Outcome {
    let input = &case.input[..];
    let mut outcome = Outcome::default();
    let mut position = 0;
    // Messages handled: completed, and overlong when the handler sets the
    // next terminator after an error.
    let mut handled = 0;
    let mut terminator = case.terminator(0);
    loop {
        let rest = &input[position..];
        match &terminator {
            Terminator::Delimiter(delimiter) => {
                let found = rest
                    .windows(delimiter.len())
                    .position(|window| window == &delimiter[..]);
                match found {
                    Some(end) if end > limit => {
                        // Skipped through its delimiter; the terminator
                        // stays, unless the handler sets the next.
                        outcome.events.push(Event::TooLong);
                        position += end + delimiter.len();
                        if case.set_after_error {
                            handled += 1;
                            terminator = case.terminator(handled);
                        }
                    }
                    Some(end) => {
                        outcome.events.push(Event::Complete {
                            message: rest[..end].to_vec(),
                            delimiter: delimiter.to_vec(),
                        });
                        position += end + delimiter.len();
                        handled += 1;
                        terminator = case.terminator(handled);
                    }
                    None => {
                        // The last bytes that may begin the delimiter may
                        // not be the message's: the codec cannot yet tell
                        // whether they take it past the limit.
                        if rest.len() - find_prefix_at_end(rest, delimiter) > limit {
                            outcome.events.push(Event::TooLong);
                        } else {
                            outcome.trailing = rest.to_vec();
                        }
                        return outcome;
                    }
                }
            }
            &Terminator::Length(length) => {
                let fits = length <= rest.len() as u64;
                if length > limit as u64 {
                    outcome.events.push(Event::TooLong);
                    if !fits {
                        return outcome;
                    }
                    // Skipped; a completed `Length` leaves no terminator,
                    // unless the handler set the next during the skip.
                    position += length as usize;
                    terminator = if case.set_after_error {
                        handled += 1;
                        case.terminator(handled)
                    } else {
                        Terminator::None
                    };
                } else if fits {
                    let end = length as usize;
                    outcome.events.push(Event::Complete {
                        message: rest[..end].to_vec(),
                        delimiter: Vec::new(),
                    });
                    position += end;
                    handled += 1;
                    terminator = case.terminator(handled);
                } else {
                    outcome.trailing = rest.to_vec();
                    return outcome;
                }
            }
            Terminator::None => {
                outcome.trailing = rest.to_vec();
                return outcome;
            }
            // Sets of delimiters are the `chat` target's to model.
            other => unreachable!("a case holds no {other:?}"),
        }
    }
}

/// The most bytes `codec` may hold once `decode` asked for more: in
/// streaming mode a possible start of the delimiter; in whole-frame mode the
/// limit plus a possible start of any delimiter of the case (during a skip
/// the terminator reads as the one set for after it).
fn held_bound(case: &Case, codec: &TerminatorCodec) -> usize {
    if codec.is_streaming() {
        return codec.terminator().delimiter().map_or(0, |d| d.len() - 1);
    }
    let longest = case
        .schedule
        .iter()
        .filter_map(Terminator::delimiter)
        .map(|d| d.len() - 1)
        .max()
        .unwrap_or(0);
    codec.max_frame_length().saturating_add(longest)
}

/// Feeds `reads` to `codec` one by one as a `Framed` would (decode until
/// `None` after each read, `decode_eof` until `None` at the end), playing the
/// handler's part of the schedule, and checks after each `None` or error
/// that the buffer holds no more than the codec's bound. Panics on any other
/// error and on an empty `Partial`.
pub fn drive(case: &Case, mut codec: TerminatorCodec, reads: &[&[u8]]) -> Outcome {
    let mut outcome = Outcome::default();
    let mut pending = Vec::new();
    let mut handled = 0;
    let mut in_force = codec.terminator().clone();
    let mut buffer = BytesMut::new();
    let mut take = |result: Result<Option<Frame>, Error>,
                    codec: &mut TerminatorCodec,
                    buffer: &BytesMut|
     -> bool {
        let frame = match result {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                assert!(
                    buffer.len() <= held_bound(case, codec),
                    "held {} bytes",
                    buffer.len()
                );
                return false;
            }
            Err(Error::FrameTooLong { limit }) => {
                assert_eq!(limit, codec.max_frame_length());
                assert!(!codec.is_streaming(), "streaming mode has no limit");
                assert!(pending.is_empty(), "an error after partial frames");
                outcome.events.push(Event::TooLong);
                if case.set_after_error {
                    // Applies after the skip of the overlong message.
                    handled += 1;
                    in_force = case.terminator(handled);
                    codec.set_terminator(in_force.clone());
                }
                return true;
            }
            Err(error) => panic!("unexpected error {error:?}"),
        };
        match frame {
            Frame::Partial(bytes) => {
                assert!(!bytes.is_empty(), "an empty Partial");
                pending.extend_from_slice(&bytes);
            }
            Frame::Complete(bytes) => {
                pending.extend_from_slice(&bytes);
                let delimiter = match &in_force {
                    Terminator::Delimiter(delimiter) => delimiter.to_vec(),
                    Terminator::Length(_) => {
                        assert_eq!(codec.terminator(), &Terminator::None);
                        Vec::new()
                    }
                    Terminator::None => panic!("a Complete with no terminator"),
                    other => unreachable!("a case holds no {other:?}"),
                };
                outcome.events.push(Event::Complete {
                    message: std::mem::take(&mut pending),
                    delimiter,
                });
                handled += 1;
                in_force = case.terminator(handled);
                codec.set_terminator(in_force.clone());
            }
        }
        true
    };
    for read in reads {
        buffer.extend_from_slice(read);
        while take(codec.decode(&mut buffer), &mut codec, &buffer) {}
    }
    while take(codec.decode_eof(&mut buffer), &mut codec, &buffer) {}
    assert!(buffer.is_empty(), "{} bytes left at the end", buffer.len());
    outcome.trailing = pending;
    outcome
}

/// The first fuzz target: streaming, whole-frame (no limit) and one-shot
/// decoding agree with the model, and every byte comes out exactly once.
pub fn check_agreement(data: &[u8]) {
    let case = Case::parse(data);
    let expected = model(&case, usize::MAX);
    assert_eq!(expected.reassemble(), case.input, "the model loses bytes");
    let first = case.terminator(0);
    let reads = case.reads();

    let one_shot = drive(
        &case,
        TerminatorCodec::new(first.clone()).with_max_frame_length(usize::MAX),
        &[&case.input],
    );
    assert_eq!(one_shot, expected, "one-shot whole-frame decoding");

    let whole = drive(
        &case,
        TerminatorCodec::new(first.clone()).with_max_frame_length(usize::MAX),
        &reads,
    );
    assert_eq!(whole, expected, "whole-frame decoding over {reads:?}");

    let streaming = drive(&case, TerminatorCodec::streaming(first), &reads);
    assert_eq!(streaming, expected, "streaming decoding over {reads:?}");
    assert_eq!(streaming.reassemble(), case.input);
}

/// The second fuzz target: whole-frame mode with a small limit returns
/// `FrameTooLong` once per overlong message, skips it, and decodes the next
/// messages intact, however the input is split; memory stays within the
/// limit plus a delimiter's length.
pub fn check_limit(data: &[u8]) {
    let case = Case::parse(data);
    let expected = model(&case, case.limit);
    let first = case.terminator(0);
    let codec = || TerminatorCodec::new(first.clone()).with_max_frame_length(case.limit);

    let one_shot = drive(&case, codec(), &[&case.input]);
    assert_eq!(
        one_shot, expected,
        "one-shot decoding, limit {}",
        case.limit
    );

    let reads = case.reads();
    let split = drive(&case, codec(), &reads);
    assert_eq!(
        split, expected,
        "decoding over {reads:?}, limit {}",
        case.limit
    );

    // Every message within the limit came out whole.
    for event in &split.events {
        if let Event::Complete { message, .. } = event {
            assert!(message.len() <= case.limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_data() {
        check_agreement(&[]);
        check_limit(&[]);
    }

    #[test]
    fn crlf_lines() {
        // flags 0, limit 4, one terminator: "\r\n"; reads of 3; input.
        let mut data = vec![0, 4, 0, 2, b'\r', b'\n', 1, 3];
        data.extend_from_slice(b"ab\r\nabcdef\r\nxy\r\nz");
        check_agreement(&data);
        check_limit(&data);
        let case = Case::parse(&data);
        let outcome = model(&case, case.limit);
        assert_eq!(outcome.events.len(), 3);
        assert_eq!(outcome.events[1], Event::TooLong);
        assert_eq!(outcome.trailing, b"z");
    }

    #[test]
    fn unterminated_rest_over_the_limit_by_what_may_begin_the_delimiter() {
        // flags 0, limit 4, one terminator: "\r\n"; one read.
        let header = [0, 4, 0, 2, b'\r', b'\n', 0];
        let case = |input: &[u8]| Case::parse(&[&header[..], input].concat());
        // Nothing of "abcde" can begin "\r\n": five bytes, past the limit.
        assert_eq!(model(&case(b"abcde"), 4).events, [Event::TooLong]);
        // "abcd\r" may be "abcd" and the start of "\r\n": not yet.
        let outcome = model(&case(b"abcd\r"), 4);
        assert_eq!(outcome.events, []);
        assert_eq!(outcome.trailing, b"abcd\r");
        check_limit(&[&header[..], b"abcde"].concat());
        check_limit(&[&header[..], b"abcd\r"].concat());
    }

    #[test]
    fn resp_bulk_over_the_limit_then_commands() {
        // flags 2 (set the next terminator after an error), limit 4;
        // schedule "\r\n", Length(8), "\r\n"; one read.
        let mut data = vec![2, 4, 2, 2, b'\r', b'\n', 5, 8, 2, b'\r', b'\n', 0];
        data.extend_from_slice(b"$6\r\nfoobar\r\nPING\r\n");
        let case = Case::parse(&data);
        assert!(case.set_after_error);
        let outcome = model(&case, case.limit);
        assert_eq!(outcome.events.len(), 3, "{outcome:?}");
        assert_eq!(outcome.events[1], Event::TooLong);
        assert_eq!(
            outcome.events[2],
            Event::Complete {
                message: b"PING".to_vec(),
                delimiter: b"\r\n".to_vec()
            }
        );
        check_limit(&data);
        check_agreement(&data);
    }
}
