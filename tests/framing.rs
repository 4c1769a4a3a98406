//! Framing real protocols: several delimiters (`Terminator::any_of`), a
//! delimiter that may begin before the message (`set_terminator_after`),
//! whole frames or streaming per message (`set_streaming`), and the ways into
//! and out of a `Chat` (`buffered_input`, parts, `Framed`, `upgrade`).
//!
//! The vectors of `tests/data/any_of_vectors.txt` were written by
//! `scripts/generate_any_of_vectors.py`, a plain reference of the rule run
//! over whole inputs; they are replayed here read by read, in both modes.
//! Properties then check the codec against itself (any chunking, either
//! mode, any switch) and against the same rule written in Rust.

mod common;

use std::{io, sync::Arc};

use asynchat::{Chat, ChatParts, Error, Frame, Producer, Terminator, TerminatorCodec};
use bytes::{Bytes, BytesMut};
use common::{tcp_pair, within};
use futures::{SinkExt, StreamExt};
use proptest::prelude::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, BufStream},
    net::TcpStream,
};
use tokio_util::codec::{Decoder, Framed};

// ---------------------------------------------------------------------------
// Decoding, shared by the vectors and the properties.

/// One frame and what `matched_delimiter` said right after it.
type Decoded = (Frame, Option<Bytes>);

/// What a decode made of an input, message by message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    /// Each message (its `Partial`s joined to its `Complete`) and the
    /// delimiter that ended it.
    messages: Vec<(Bytes, Option<Bytes>)>,
    /// The unterminated rest: the `Partial`s after the last `Complete`.
    left: Bytes,
}

fn longest(terminator: &Terminator) -> usize {
    terminator
        .delimiters()
        .iter()
        .map(Bytes::len)
        .max()
        .unwrap_or(0)
}

fn matched(codec: &TerminatorCodec) -> Option<Bytes> {
    codec.matched_delimiter().map(Bytes::copy_from_slice)
}

/// Feeds `reads` one by one, decoding until `None` after each and at the
/// end of input. Checks that no `Partial` is empty and that streaming mode
/// holds back at most the longest delimiter's length minus one byte.
fn decode_reads<'a>(
    codec: &mut TerminatorCodec,
    reads: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<Decoded> {
    let mut buffer = BytesMut::new();
    let mut decoded = Vec::new();
    for read in reads {
        buffer.extend_from_slice(read);
        while let Some(frame) = codec.decode(&mut buffer).expect("no limit is reached") {
            decoded.push((frame, matched(codec)));
        }
        if codec.is_streaming() {
            let held = longest(codec.terminator()).saturating_sub(1);
            assert!(
                buffer.len() <= held,
                "streaming held back {:?} under {:?}",
                &buffer[..],
                codec.terminator()
            );
        }
    }
    while let Some(frame) = codec.decode_eof(&mut buffer).expect("no limit is reached") {
        decoded.push((frame, matched(codec)));
    }
    assert!(buffer.is_empty(), "left after the end of input: {buffer:?}");
    assert!(
        decoded
            .iter()
            .all(|(frame, _)| frame.is_complete() || !frame.bytes().is_empty()),
        "an empty Partial in {decoded:?}"
    );
    decoded
}

fn regroup(decoded: &[Decoded]) -> Outcome {
    let mut messages = Vec::new();
    let mut current = Vec::new();
    for (frame, delimiter) in decoded {
        current.extend_from_slice(frame.bytes());
        if frame.is_complete() {
            messages.push((Bytes::from(std::mem::take(&mut current)), delimiter.clone()));
        }
    }
    Outcome {
        messages,
        left: current.into(),
    }
}

/// Whole frames: every message one `Complete`; a `Partial` only last, for
/// the unterminated rest.
fn assert_whole_frames(decoded: &[Decoded]) {
    let before_last = decoded.len().saturating_sub(1);
    assert!(
        decoded[..before_last]
            .iter()
            .all(|(frame, _)| frame.is_complete()),
        "whole-frame mode gave a Partial before the end: {decoded:?}"
    );
}

/// Messages joined to their delimiters, then the rest: the input again.
fn rebuild(outcome: &Outcome) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (message, delimiter) in &outcome.messages {
        bytes.extend_from_slice(message);
        bytes.extend_from_slice(delimiter.as_deref().unwrap_or_default());
    }
    bytes.extend_from_slice(&outcome.left);
    bytes
}

fn whole_codec() -> TerminatorCodec {
    TerminatorCodec::new(Terminator::None).with_max_frame_length(usize::MAX)
}

fn streaming_codec() -> TerminatorCodec {
    TerminatorCodec::streaming(Terminator::None)
}

/// The rule, as plainly as the Python reference: the delimiter that starts
/// earliest ends the message, the longest of those starting at the same
/// byte; the first message is searched after `preceding`, where a delimiter
/// may begin as long as it ends in the input.
fn rule(delimiters: &[Bytes], data: &[u8], preceding: &[u8]) -> Outcome {
    let delimiters: Vec<&[u8]> = delimiters
        .iter()
        .map(|d| &d[..])
        .filter(|d| !d.is_empty())
        .collect();
    let mut messages = Vec::new();
    let mut position = 0;
    let mut context = preceding;
    while !delimiters.is_empty() {
        let text = [context, &data[position..]].concat();
        let found = (0..text.len()).find_map(|start| {
            delimiters
                .iter()
                .filter(|d| text[start..].starts_with(d) && start + d.len() > context.len())
                .max_by_key(|d| d.len())
                .map(|d| (start, *d))
        });
        let Some((start, delimiter)) = found else {
            break;
        };
        let length = start.saturating_sub(context.len());
        // Of a delimiter begun in the preceding bytes, its part in the input.
        let in_input = &delimiter[context.len().saturating_sub(start)..];
        messages.push((
            Bytes::copy_from_slice(&data[position..position + length]),
            Some(Bytes::copy_from_slice(in_input)),
        ));
        position += start + delimiter.len() - context.len();
        context = &[];
    }
    Outcome {
        messages,
        left: Bytes::copy_from_slice(&data[position..]),
    }
}

// ---------------------------------------------------------------------------
// The vectors.

/// One case of `tests/data/any_of_vectors.txt`.
#[derive(Debug)]
struct Case {
    name: String,
    /// As given to `any_of`: repeats and empty delimiters included.
    delimiters: Vec<Bytes>,
    /// For `set_terminator_after`; empty for a plain terminator.
    preceding: Bytes,
    input: Bytes,
    /// Read sizes, one list per recorded split.
    splits: Vec<Vec<usize>>,
    expected: Outcome,
}

fn parse_bytes(token: &str) -> Bytes {
    let hex = token
        .strip_prefix('x')
        .expect("a byte string starts with x");
    assert!(hex.len() % 2 == 0, "odd hex: {hex:?}");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
        .collect::<Vec<u8>>()
        .into()
}

/// The fields after `key` on the next line, which must start with `key`.
fn fields<'a>(lines: &mut impl Iterator<Item = &'a str>, key: &str) -> Vec<&'a str> {
    let line = lines.next().unwrap_or_else(|| panic!("missing {key}"));
    let mut words = line.split(' ').filter(|word| !word.is_empty());
    assert_eq!(words.next(), Some(key), "line {line:?}");
    words.collect()
}

fn one_field<'a>(lines: &mut impl Iterator<Item = &'a str>, key: &str) -> &'a str {
    match fields(lines, key)[..] {
        [field] => field,
        ref other => panic!("{key}: one field expected, got {other:?}"),
    }
}

fn load() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/any_of_vectors.txt");
    let text = std::fs::read_to_string(path).expect("tests/data/any_of_vectors.txt");
    let mut lines = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .peekable();
    let mut cases = Vec::new();
    let mut counted = None;
    while let Some(line) = lines.next() {
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "case" => {
                let name = rest.to_owned();
                let delimiters = fields(&mut lines, "set")
                    .into_iter()
                    .map(parse_bytes)
                    .collect();
                let preceding = parse_bytes(one_field(&mut lines, "after"));
                let input = parse_bytes(one_field(&mut lines, "input"));
                let mut splits = Vec::new();
                while lines.peek().is_some_and(|line| line.starts_with("reads")) {
                    let sizes: Vec<usize> = fields(&mut lines, "reads")
                        .into_iter()
                        .map(|size| size.parse().expect("a read size"))
                        .collect();
                    assert_eq!(sizes.iter().sum::<usize>(), input.len(), "{name}");
                    splits.push(sizes);
                }
                let messages: Vec<Bytes> = fields(&mut lines, "msgs")
                    .into_iter()
                    .map(parse_bytes)
                    .collect();
                let matched: Vec<Bytes> = fields(&mut lines, "matched")
                    .into_iter()
                    .map(parse_bytes)
                    .collect();
                assert_eq!(messages.len(), matched.len(), "{name}");
                let left = parse_bytes(one_field(&mut lines, "left"));
                assert_eq!(lines.next(), Some("end"), "{name}");
                let messages = messages.into_iter().zip(matched.into_iter().map(Some));
                cases.push(Case {
                    name,
                    delimiters,
                    preceding,
                    input,
                    splits,
                    expected: Outcome {
                        messages: messages.collect(),
                        left,
                    },
                });
            }
            "count" => counted = Some(rest.parse::<usize>().expect("a count")),
            _ => panic!("unexpected line {line:?}"),
        }
    }
    assert_eq!(
        counted,
        Some(cases.len()),
        "the file is truncated or its count line is missing"
    );
    cases
}

/// The codec of a case in one mode: the set from the start, or through
/// `set_terminator_after` when the case has preceding bytes.
fn case_codec(case: &Case, streaming: bool) -> TerminatorCodec {
    let terminator = Terminator::any_of(case.delimiters.iter().cloned());
    if case.preceding.is_empty() {
        let codec = if streaming {
            TerminatorCodec::streaming(terminator)
        } else {
            TerminatorCodec::new(terminator)
        };
        return codec.with_max_frame_length(usize::MAX);
    }
    let mut codec = if streaming {
        streaming_codec()
    } else {
        whole_codec()
    };
    codec.set_terminator_after(terminator, case.preceding.clone());
    codec
}

/// The input cut by read sizes; the sizes add up to its length.
fn cut_sizes<'a>(input: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut reads = Vec::new();
    let mut start = 0;
    for &size in sizes {
        reads.push(&input[start..start + size]);
        start += size;
    }
    reads
}

#[test]
fn any_of_matches_the_reference() {
    let cases = load();
    let mut messages = 0;
    for case in &cases {
        let input = &case.input[..];
        // The Rust rule the properties rely on says what the Python one says.
        assert_eq!(
            rule(&case.delimiters, input, &case.preceding),
            case.expected,
            "{}: the Rust rule",
            case.name
        );
        let mut splits: Vec<Vec<&[u8]>> = case
            .splits
            .iter()
            .map(|sizes| cut_sizes(input, sizes))
            .collect();
        splits.push(input.chunks(1).collect());
        splits.push(vec![input]);
        for reads in &splits {
            let mut codec = case_codec(case, false);
            let whole = decode_reads(&mut codec, reads.iter().copied());
            // With no delimiter left, every byte is a Partial in both modes.
            if !codec.terminator().delimiters().is_empty() {
                assert_whole_frames(&whole);
            }
            assert_eq!(
                regroup(&whole),
                case.expected,
                "{}: whole frames, reads {:?}",
                case.name,
                reads
            );
            let streamed = decode_reads(&mut case_codec(case, true), reads.iter().copied());
            assert_eq!(
                regroup(&streamed),
                case.expected,
                "{}: streaming, reads {:?}",
                case.name,
                reads
            );
        }
        if case.preceding.is_empty() {
            // No preceding bytes at all is a plain set_terminator.
            let mut codec = whole_codec();
            codec.set_terminator_after(
                Terminator::any_of(case.delimiters.iter().cloned()),
                Bytes::new(),
            );
            assert_eq!(
                regroup(&decode_reads(&mut codec, [input])),
                case.expected,
                "{}: set_terminator_after with nothing before",
                case.name
            );
        }
        messages += case.expected.messages.len();
    }
    assert!(cases.len() > 4000, "only {} cases", cases.len());
    assert!(messages > 25_000, "only {messages} messages in the vectors");
    for name in ["cr_or_crlf_cr_at_end", "smtp_data_empty", "after_0999"] {
        assert!(
            cases.iter().any(|case| case.name == name),
            "case {name} missing"
        );
    }
}

// ---------------------------------------------------------------------------
// Properties.

/// Bytes from a small alphabet, so that delimiters made of it occur often,
/// overlap, and are prefixes of each other.
fn byte() -> impl Strategy<Value = u8> {
    prop::sample::select(&b"ab\r\n"[..])
}

fn input() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(byte(), 0..200)
}

fn delimiter() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(byte(), 1..=5).prop_map(Bytes::from)
}

/// One to four delimiters, repeats and prefixes of each other included.
fn delimiter_set() -> impl Strategy<Value = Vec<Bytes>> {
    prop::collection::vec(delimiter(), 1..=4)
}

/// Where the reads end, as fractions of the input: sorted and clamped later.
fn splits() -> impl Strategy<Value = Vec<prop::sample::Index>> {
    prop::collection::vec(any::<prop::sample::Index>(), 0..40)
}

/// Cuts `data` at the given points (any order; duplicates give empty reads).
fn cut<'a>(data: &'a [u8], points: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = points.iter().map(|i| i.index(data.len() + 1)).collect();
    points.sort_unstable();
    let mut reads = Vec::new();
    let mut start = 0;
    for point in points.into_iter().chain([data.len()]) {
        reads.push(&data[start..point]);
        start = point;
    }
    reads
}

fn codec_for(terminator: &Terminator, streaming: bool) -> TerminatorCodec {
    let mut codec = if streaming {
        streaming_codec()
    } else {
        whole_codec()
    };
    codec.set_terminator(terminator.clone());
    codec
}

/// A codec in whole-frame mode with a limit, fed read by read: every
/// frame and the number of `FrameTooLong` errors. Checks between reads
/// that it never holds more than the limit plus the longest delimiter
/// minus one byte.
fn decode_with_limit(
    terminator: &Terminator,
    limit: usize,
    reads: &[&[u8]],
) -> (Vec<Decoded>, usize) {
    let held = longest(terminator).saturating_sub(1);
    let mut codec = TerminatorCodec::new(terminator.clone()).with_max_frame_length(limit);
    let mut buffer = BytesMut::new();
    let mut decoded = Vec::new();
    let mut errors = 0;
    let mut reads = reads.iter();
    let mut at_end = false;
    loop {
        let result = if at_end {
            codec.decode_eof(&mut buffer)
        } else {
            codec.decode(&mut buffer)
        };
        match result {
            Ok(Some(frame)) => decoded.push((frame, matched(&codec))),
            Err(Error::FrameTooLong { limit: reported }) => {
                assert_eq!(reported, limit);
                errors += 1;
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(None) if at_end => break,
            Ok(None) => {
                // Never more than the limit plus a possible start of a delimiter.
                assert!(
                    buffer.len() <= limit + held,
                    "whole-frame mode held {} bytes, limit {limit}",
                    buffer.len()
                );
                match reads.next() {
                    Some(read) => buffer.extend_from_slice(read),
                    None => at_end = true,
                }
            }
        }
    }
    (decoded, errors)
}

/// What the switches of `switching_mid_stream` should give: each terminator
/// frames the input from where the codec stood when it was set (`from`,
/// the first byte not handed out), up to where the next was set; a message
/// under way at a switch keeps the bytes already handed out.
fn expected_with_switches(data: &[u8], switches: &[(usize, Terminator)]) -> Outcome {
    let mut messages = Vec::new();
    let mut current = Vec::new();
    let mut left = Bytes::new();
    for (i, (from, terminator)) in switches.iter().enumerate() {
        let until = switches.get(i + 1).map(|(next, _)| *next);
        let framed = rule(terminator.delimiters(), &data[*from..], b"");
        let mut position = *from;
        for (message, delimiter) in framed.messages {
            let delimiter_start = position + message.len();
            let end = delimiter_start + delimiter.as_ref().map_or(0, Bytes::len);
            if let Some(until) = until.filter(|&until| end > until) {
                // Under way at the switch: nothing of its delimiter may
                // have been handed out as data.
                assert!(
                    until <= delimiter_start,
                    "bytes of a delimiter handed out as data: {until} > {delimiter_start}"
                );
                break;
            }
            current.extend_from_slice(&message);
            messages.push((Bytes::from(std::mem::take(&mut current)), delimiter));
            position = end;
        }
        match until {
            Some(until) => current.extend_from_slice(&data[position..until]),
            None => {
                current.extend_from_slice(&framed.left);
                left = Bytes::from(std::mem::take(&mut current));
            }
        }
    }
    Outcome { messages, left }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// However the reads split the input, whole-frame mode gives the same
    /// frames as one read, streaming gives the same messages as whole
    /// frames, both follow the rule, and every byte comes out once:
    /// messages, their delimiters and the rest give back the input.
    #[test]
    fn any_chunking_same_frames(
        delimiters in delimiter_set(),
        data in input(),
        points in splits(),
    ) {
        let terminator = Terminator::any_of(delimiters.clone());
        let reads = cut(&data, &points);
        let bytewise: Vec<&[u8]> = data.chunks(1).collect();

        let whole_once = decode_reads(&mut codec_for(&terminator, false), [&data[..]]);
        assert_whole_frames(&whole_once);
        let whole_split = decode_reads(&mut codec_for(&terminator, false), reads.iter().copied());
        prop_assert_eq!(&whole_split, &whole_once);
        let whole_bytewise =
            decode_reads(&mut codec_for(&terminator, false), bytewise.iter().copied());
        prop_assert_eq!(&whole_bytewise, &whole_once);

        let expected = regroup(&whole_once);
        prop_assert_eq!(&expected, &rule(&delimiters, &data, b""));
        for reads in [vec![&data[..]], reads, bytewise] {
            let streamed = decode_reads(&mut codec_for(&terminator, true), reads);
            prop_assert_eq!(&regroup(&streamed), &expected);
        }
        prop_assert_eq!(rebuild(&expected), data);
    }

    /// `set_terminator_after`: the first message is searched after the
    /// preceding bytes, whatever the split and the mode; a `preceding`
    /// longer than every delimiter counts only by its last bytes.
    #[test]
    fn preceding_bytes_any_chunking(
        delimiters in delimiter_set(),
        preceding in prop::collection::vec(byte(), 0..8),
        data in input(),
        points in splits(),
    ) {
        let terminator = Terminator::any_of(delimiters.clone());
        let expected = rule(&delimiters, &data, &preceding);
        let useful = longest(&terminator) - 1;
        let tail = &preceding[preceding.len().saturating_sub(useful)..];
        prop_assert_eq!(&rule(&delimiters, &data, tail), &expected);
        for streaming in [false, true] {
            for after in [&preceding[..], tail] {
                let mut codec = codec_for(&Terminator::None, streaming);
                codec.set_terminator_after(terminator.clone(), Bytes::copy_from_slice(after));
                let decoded = decode_reads(&mut codec, cut(&data, &points));
                if !streaming {
                    assert_whole_frames(&decoded);
                }
                prop_assert_eq!(&regroup(&decoded), &expected, "streaming {}", streaming);
            }
        }
    }

    /// A set of one delimiter, however it is written, is that delimiter:
    /// the same frames and the same `matched_delimiter` in both modes.
    #[test]
    fn any_of_one_is_the_delimiter(
        delimiter in delimiter(),
        data in input(),
        points in splits(),
    ) {
        let single = Terminator::Delimiter(delimiter.clone());
        prop_assert_eq!(Terminator::any_of([delimiter.clone()]), single.clone());
        let repeated = [delimiter.clone(), Bytes::new(), delimiter.clone()];
        prop_assert_eq!(Terminator::any_of(repeated), single.clone());
        // A set built directly, with a repeat, is cleaned the same way.
        let built: Arc<[Bytes]> = vec![delimiter.clone(), delimiter.clone()].into();
        let reads = cut(&data, &points);
        for streaming in [false, true] {
            let expected = decode_reads(&mut codec_for(&single, streaming), reads.iter().copied());
            let sets = [Terminator::any_of([delimiter.clone()]), Terminator::AnyOf(built.clone())];
            for terminator in sets {
                let mut codec = codec_for(&terminator, streaming);
                let decoded = decode_reads(&mut codec, reads.iter().copied());
                prop_assert_eq!(&decoded, &expected, "streaming {}", streaming);
            }
        }
    }

    /// Whole-frame mode with a limit, for sets: every overlong message is
    /// one `FrameTooLong` and is skipped; the others come out whole, with
    /// their delimiters; the buffer never holds more than the limit plus
    /// the longest delimiter minus one.
    #[test]
    fn limits_skip_and_continue(
        delimiters in delimiter_set(),
        data in input(),
        points in splits(),
        limit in 0usize..20,
    ) {
        let terminator = Terminator::any_of(delimiters.clone());
        let expected = rule(&delimiters, &data, b"");
        let held = longest(&terminator) - 1;
        let (decoded, errors) = decode_with_limit(&terminator, limit, &cut(&data, &points));

        let kept: Vec<_> =
            expected.messages.iter().filter(|(m, _)| m.len() <= limit).cloned().collect();
        let overlong = expected.messages.len() - kept.len();
        let completes: Vec<_> = decoded
            .iter()
            .filter(|(frame, _)| frame.is_complete())
            .map(|(frame, delimiter)| (frame.bytes().clone(), delimiter.clone()))
            .collect();
        prop_assert_eq!(completes, kept);
        let partial: Vec<u8> = decoded
            .iter()
            .filter(|(frame, _)| !frame.is_complete())
            .flat_map(|(frame, _)| frame.bytes().to_vec())
            .collect();
        // The unterminated rest: within the limit it comes out; past the
        // limit plus a possible delimiter start it is one more error; in
        // between it depends on how much of it the codec saw before the end.
        let rest_failed = errors == overlong + 1 && partial.is_empty();
        let rest_out = errors == overlong && partial == expected.left;
        let report = format!("errors {errors}, overlong {overlong}, partial {partial:?}");
        if expected.left.len() <= limit {
            prop_assert!(rest_out, "{}", report);
        } else if expected.left.len() > limit + held {
            prop_assert!(rest_failed, "{}", report);
        } else {
            prop_assert!(rest_out || rest_failed, "{}", report);
        }
    }

    /// Switching mode (`set_streaming`) and terminator between reads, and
    /// the terminator right after a `Complete` with more messages buffered:
    /// each terminator frames the bytes not yet handed out, buffered or
    /// not; messages switched to whole frames come out as one `Complete`
    /// for the rest; streaming never holds back too much.
    #[test]
    fn switching_mid_stream(
        first in delimiter_set(),
        second in delimiter_set(),
        data in input(),
        points in splits(),
        start_streaming in any::<bool>(),
        between_reads in prop::collection::vec((any::<bool>(), any::<bool>()), 41),
        after_complete in prop::collection::vec(any::<bool>(), 0..40),
    ) {
        let terminators = [Terminator::any_of(first), Terminator::any_of(second)];
        let mut current = 0;
        let mut codec = codec_for(&terminators[0], start_streaming);
        let mut switches = vec![(0, terminators[0].clone())];
        let mut after_complete = after_complete.into_iter();
        let mut decoded = Vec::new();
        let mut buffer = BytesMut::new();
        let mut fed = 0;
        let reads = cut(&data, &points);
        for (read, &(toggle_mode, switch_terminator)) in reads.iter().zip(&between_reads) {
            buffer.extend_from_slice(read);
            fed += read.len();
            while let Some(frame) = codec.decode(&mut buffer).unwrap() {
                prop_assert!(codec.is_streaming() || frame.is_complete(),
                    "whole-frame mode gave {:?} before the end", frame);
                let complete = frame.is_complete();
                decoded.push((frame, matched(&codec)));
                if complete && after_complete.next() == Some(true) {
                    current = 1 - current;
                    codec.set_terminator(terminators[current].clone());
                    switches.push((fed - buffer.len(), terminators[current].clone()));
                }
            }
            if codec.is_streaming() {
                prop_assert!(buffer.len() < longest(codec.terminator()).max(1));
            }
            if toggle_mode {
                codec.set_streaming(!codec.is_streaming());
            }
            if switch_terminator {
                current = 1 - current;
                codec.set_terminator(terminators[current].clone());
                switches.push((fed - buffer.len(), terminators[current].clone()));
            }
        }
        while let Some(frame) = codec.decode_eof(&mut buffer).unwrap() {
            decoded.push((frame, matched(&codec)));
        }
        prop_assert!(buffer.is_empty());
        prop_assert_eq!(regroup(&decoded), expected_with_switches(&data, &switches));
    }
}

// ---------------------------------------------------------------------------
// Bad and borderline input.

fn decode_all(codec: &mut TerminatorCodec, input: &[u8]) -> Vec<Decoded> {
    decode_reads(codec, [input])
}

fn complete(message: &'static str, delimiter: &'static str) -> Decoded {
    (
        Frame::Complete(message.into()),
        Some(Bytes::from_static(delimiter.as_bytes())),
    )
}

#[test]
fn empty_any_of_is_no_terminator() {
    assert_eq!(Terminator::any_of(Vec::<&str>::new()), Terminator::None);
    assert_eq!(Terminator::any_of(["", ""]), Terminator::None);
    assert_eq!(Terminator::any_of(["", "\n"]), Terminator::from("\n"));
    // A set built directly with nothing in it frames nothing either.
    let mut codec = TerminatorCodec::new(Terminator::AnyOf(Arc::from(Vec::new())));
    assert_eq!(
        decode_all(&mut codec, b"a\r\nb"),
        vec![(Frame::Partial("a\r\nb".into()), None)]
    );
}

#[test]
fn repeated_delimiters_count_once() {
    let set = Terminator::any_of(["\n", "\r\n", "\n", "\r\n"]);
    assert_eq!(set.delimiters(), &["\n", "\r\n"]);
    assert_eq!(Terminator::any_of(["\n", "\n"]), Terminator::from("\n"));
    let built = Terminator::AnyOf(Arc::from(vec![
        Bytes::from_static(b"\n"),
        Bytes::from_static(b"\n"),
        Bytes::from_static(b"\r\n"),
    ]));
    for terminator in [set, built] {
        let mut codec = TerminatorCodec::new(terminator);
        assert_eq!(
            decode_all(&mut codec, b"a\nb\r\nc"),
            vec![
                complete("a", "\n"),
                complete("b", "\r\n"),
                (
                    Frame::Partial("c".into()),
                    Some(Bytes::from_static(b"\r\n"))
                ),
            ]
        );
    }
}

/// `\r` and `\r\n`: the longer wins where both start, so a `\r` waits for
/// the next byte; at the end of input nothing can follow and `\r` ends the
/// message.
#[test]
fn delimiter_that_is_a_prefix_of_another() {
    let mut codec = TerminatorCodec::new(Terminator::any_of(["\r", "\r\n"]));
    let mut buffer = BytesMut::from("a\r");
    assert_eq!(codec.decode(&mut buffer).unwrap(), None);
    buffer.extend_from_slice(b"\nb\r");
    assert_eq!(
        codec.decode(&mut buffer).unwrap(),
        Some(Frame::Complete("a".into()))
    );
    assert_eq!(codec.matched_delimiter(), Some(&b"\r\n"[..]));
    assert_eq!(codec.decode(&mut buffer).unwrap(), None);
    buffer.extend_from_slice(b"c\r");
    assert_eq!(
        codec.decode(&mut buffer).unwrap(),
        Some(Frame::Complete("b".into()))
    );
    assert_eq!(codec.matched_delimiter(), Some(&b"\r"[..]));
    assert_eq!(codec.decode(&mut buffer).unwrap(), None);
    assert_eq!(
        codec.decode_eof(&mut buffer).unwrap(),
        Some(Frame::Complete("c".into()))
    );
    assert_eq!(codec.matched_delimiter(), Some(&b"\r"[..]));
    assert_eq!(codec.decode_eof(&mut buffer).unwrap(), None);
}

/// Only the last `longest - 1` bytes of `preceding` can begin a delimiter
/// that ends in the message: a longer `preceding` is as good as its tail.
#[test]
fn preceding_longer_than_the_delimiter() {
    for preceding in [&b"\r\n"[..], b"DATA\r\n", b"xxxxxxxxxxxxxxxxxxxx\r\n"] {
        let mut codec = TerminatorCodec::new("\r\n");
        codec.set_terminator_after("\r\n.\r\n", Bytes::copy_from_slice(preceding));
        assert_eq!(
            decode_all(&mut codec, b".\r\nQUIT\r\n"),
            vec![
                complete("", ".\r\n"),
                (
                    Frame::Partial("QUIT\r\n".into()),
                    Some(Bytes::from_static(b".\r\n"))
                ),
            ],
            "preceding {preceding:?}"
        );
    }
    // Preceding bytes that hold a whole delimiter end no message: it must
    // end in the input.
    let mut codec = TerminatorCodec::new("\n");
    codec.set_terminator_after("\n", Bytes::from_static(b"\n\n"));
    assert_eq!(decode_all(&mut codec, b"x\n"), vec![complete("x", "\n")]);
}

/// An end of input before any byte of the message decides nothing: a
/// reader may go on after it (`Framed` calls `decode_eof` at each read of 0
/// bytes), and a delimiter begun in the preceding bytes still ends the
/// message at its start.
#[test]
fn an_end_before_the_message_keeps_its_preceding_bytes() {
    let mut codec = TerminatorCodec::new("\r\n");
    let mut buffer = BytesMut::from("DATA\r\n");
    assert_eq!(
        codec.decode(&mut buffer).unwrap(),
        Some(Frame::Complete("DATA".into()))
    );
    codec.set_terminator_after("\r\n.\r\n", b"\r\n");
    assert_eq!(codec.decode_eof(&mut buffer).unwrap(), None);
    assert_eq!(codec.decode_eof(&mut buffer).unwrap(), None);
    buffer.extend_from_slice(b".\r\nQUIT\r\n");
    assert_eq!(
        codec.decode(&mut buffer).unwrap(),
        Some(Frame::Complete("".into()))
    );
    assert_eq!(codec.matched_delimiter(), Some(&b".\r\n"[..]));
    assert_eq!(buffer, "QUIT\r\n");
}

/// A terminator set before the first bytes of a message begun after
/// preceding bytes replaces them too: a later delimiter is searched in the
/// input alone, whichever way the switches went, and after a skip too.
#[test]
fn a_switch_before_the_message_forgets_its_preceding_bytes() {
    for middle in [
        Terminator::Length(2),
        Terminator::from("X"),
        Terminator::None,
    ] {
        let mut codec = TerminatorCodec::new("\r\n").with_max_frame_length(8);
        codec.set_terminator_after("\r\n.\r\n", Bytes::from_static(b"\r\n"));
        codec.set_terminator(middle.clone());
        codec.set_terminator("\r\n.\r\n");
        let mut buffer = BytesMut::from(".\r\nab\r\n.\r\nxxxxxxxxxx");
        assert_eq!(
            codec.decode(&mut buffer).unwrap(),
            Some(Frame::Complete(".\r\nab".into())),
            "after {middle:?}"
        );
        // Overlong before its end is here: skipped up to the delimiter.
        assert!(matches!(
            codec.decode(&mut buffer),
            Err(Error::FrameTooLong { limit: 8 })
        ));
        buffer.extend_from_slice(b"\r\n.\r\n.\r\ncd\r\n.\r\n");
        assert_eq!(
            codec.decode(&mut buffer).unwrap(),
            Some(Frame::Complete(".\r\ncd".into())),
            "after {middle:?} and a skip"
        );
    }
}

#[test]
fn matched_delimiter_only_after_a_delimiter() {
    let mut codec = TerminatorCodec::new(Terminator::any_of(["\r\n", "\n"]));
    assert_eq!(codec.matched_delimiter(), None);
    let mut buffer = BytesMut::from("GET\n3\r\nabc");
    codec.decode(&mut buffer).unwrap();
    assert_eq!(codec.matched_delimiter(), Some(&b"\n"[..]));
    codec.decode(&mut buffer).unwrap();
    assert_eq!(codec.matched_delimiter(), Some(&b"\r\n"[..]));
    // Setting another terminator ends no frame: the answer stays.
    codec.set_terminator("X");
    assert_eq!(codec.matched_delimiter(), Some(&b"\r\n"[..]));
    codec.set_terminator(3u64);
    assert_eq!(
        codec.decode(&mut buffer).unwrap(),
        Some(Frame::Complete("abc".into()))
    );
    assert_eq!(codec.matched_delimiter(), None);
}

/// Streaming, then whole frames for the rest of the same message: one
/// `Complete`, and the limit counts from the switch.
#[test]
fn whole_frames_from_the_middle_of_a_message() {
    let mut codec =
        TerminatorCodec::streaming(Terminator::any_of(["\r\n", "\n"])).with_max_frame_length(4);
    let mut buffer = BytesMut::from("0123456789\r");
    assert_eq!(
        codec.decode(&mut buffer).unwrap(),
        Some(Frame::Partial("0123456789".into()))
    );
    codec.set_streaming(false);
    assert_eq!(codec.decode(&mut buffer).unwrap(), None);
    buffer.extend_from_slice(b"ab\r\n");
    // "\rab": three bytes since the switch, within the limit of four.
    assert_eq!(
        codec.decode(&mut buffer).unwrap(),
        Some(Frame::Complete("\rab".into()))
    );
    buffer.extend_from_slice(b"too long\nok\n");
    assert!(matches!(
        codec.decode(&mut buffer),
        Err(Error::FrameTooLong { limit: 4 })
    ));
    assert_eq!(
        codec.decode(&mut buffer).unwrap(),
        Some(Frame::Complete("ok".into()))
    );
    assert_eq!(codec.matched_delimiter(), Some(&b"\n"[..]));
}

/// Whole frames, then streaming: the bytes already buffered come out at
/// once, as far as they cannot begin a delimiter.
#[test]
fn streaming_from_the_middle_of_a_message() {
    let mut codec = TerminatorCodec::new("\r\n.\r\n");
    let mut buffer = BytesMut::from("body line\r\n.");
    assert_eq!(codec.decode(&mut buffer).unwrap(), None);
    codec.set_streaming(true);
    assert!(codec.is_streaming());
    assert_eq!(
        codec.decode(&mut buffer).unwrap(),
        Some(Frame::Partial("body line".into()))
    );
    buffer.extend_from_slice(b"\r\nnext");
    assert_eq!(
        codec.decode(&mut buffer).unwrap(),
        Some(Frame::Complete("".into()))
    );
}

// ---------------------------------------------------------------------------
// Chat over loopback TCP: buffered input, parts, Framed, upgrades.

async fn next_frame<T>(chat: &mut Chat<T>) -> Frame
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    within("a frame", chat.next())
        .await
        .expect("a frame, not the end")
        .expect("no error")
}

/// An SMTP-like conversation on one `Chat`: lenient command lines, a DATA
/// block found after the command's line ending (empty, then streamed), and
/// lines again.
#[tokio::test]
async fn chat_set_streaming_and_set_terminator_after() {
    let lines = Terminator::any_of(["\r\n", "\n"]);
    let (mut client, server) = tcp_pair().await;
    let mut chat = Chat::new(server, lines.clone());
    within(
        "the write",
        client.write_all(b"DATA\r\n.\r\nDATA\n.\r\nbody"),
    )
    .await
    .unwrap();
    assert_eq!(next_frame(&mut chat).await, Frame::Complete("DATA".into()));
    let ending = Bytes::copy_from_slice(chat.codec().matched_delimiter().unwrap());
    chat.set_terminator_after("\r\n.\r\n", ending);
    assert_eq!(next_frame(&mut chat).await, Frame::Complete("".into()));

    chat.set_terminator(lines.clone());
    assert_eq!(next_frame(&mut chat).await, Frame::Complete("DATA".into()));
    // "\n" cannot begin "\r\n.\r\n": ".\r\n" here is data.
    let ending = Bytes::copy_from_slice(chat.codec().matched_delimiter().unwrap());
    chat.set_terminator_after("\r\n.\r\n", ending);
    chat.set_streaming(true);
    assert!(chat.codec().is_streaming());
    let mut block = Vec::new();
    while block.len() < b".\r\nbody".len() {
        let frame = next_frame(&mut chat).await;
        assert!(!frame.is_complete(), "the block has no end yet: {frame:?}");
        block.extend_from_slice(frame.bytes());
    }
    assert_eq!(block, b".\r\nbody");
    within("the write", client.write_all(b"\r\n.\r\nQUIT\n"))
        .await
        .unwrap();
    assert_eq!(next_frame(&mut chat).await, Frame::Complete("".into()));

    chat.set_streaming(false);
    chat.set_terminator(lines);
    assert_eq!(next_frame(&mut chat).await, Frame::Complete("QUIT".into()));
}

/// Terminator and mode changed while a frame is awaited apply to the bytes
/// already read, with nothing more from the peer.
#[tokio::test]
async fn chat_decodes_buffered_bytes_again_after_a_switch() {
    let (mut client, server) = tcp_pair().await;
    let mut chat = Chat::new(server, "\r\n");
    within("the write", client.write_all(b"one\ntwo"))
        .await
        .unwrap();
    within("the bytes", chat.get_ref().readable())
        .await
        .unwrap();
    // One poll reads them, finds no "\r\n" and waits for more.
    assert!(futures::poll!(chat.next()).is_pending());
    assert_eq!(chat.buffered_input(), b"one\ntwo");
    chat.set_terminator(Terminator::any_of(["\r\n", "\n"]));
    assert_eq!(next_frame(&mut chat).await, Frame::Complete("one".into()));
    assert!(futures::poll!(chat.next()).is_pending());
    chat.set_streaming(true);
    assert_eq!(next_frame(&mut chat).await, Frame::Partial("two".into()));
}

#[tokio::test]
async fn buffered_input_shows_what_was_read_and_not_handed_out() {
    let (mut client, server) = tcp_pair().await;
    let mut chat = Chat::new(server, "\r\n");
    assert!(chat.buffered_input().is_empty());
    within("the write", client.write_all(b"one\r\ntwo\r\nthr"))
        .await
        .unwrap();
    assert_eq!(next_frame(&mut chat).await, Frame::Complete("one".into()));
    assert_eq!(chat.buffered_input(), b"two\r\nthr");
    assert_eq!(next_frame(&mut chat).await, Frame::Complete("two".into()));
    assert_eq!(chat.buffered_input(), b"thr");
}

/// Into parts and back: the bytes read but not handed out, the codec's
/// state in the middle of a message and the buffer sizes all survive.
#[tokio::test]
async fn parts_keep_every_byte_and_the_codec_state() {
    let (mut client, server) = tcp_pair().await;
    let mut chat = Chat::with_codec(server, TerminatorCodec::streaming(10u64));
    chat.set_in_buffer_size(1000);
    chat.set_out_buffer_size(2000);
    within("the write", client.write_all(b"0123"))
        .await
        .unwrap();
    assert_eq!(next_frame(&mut chat).await, Frame::Partial("0123".into()));

    // Six bytes of the count are still to come.
    let parts: ChatParts<TcpStream> = chat.into_parts();
    assert_eq!(parts.codec.terminator(), &Terminator::Length(10));
    assert!(parts.codec.is_streaming());
    assert!(parts.read_buffer.is_empty());
    assert_eq!((parts.in_buffer_size, parts.out_buffer_size), (1000, 2000));
    let mut chat = Chat::from_parts(parts);
    assert_eq!(
        (chat.in_buffer_size(), chat.out_buffer_size()),
        (1000, 2000)
    );

    within("the write", client.write_all(b"456789line\r\nrest"))
        .await
        .unwrap();
    assert_eq!(
        next_frame(&mut chat).await,
        Frame::Complete("456789".into())
    );
    assert_eq!(chat.buffered_input(), b"line\r\nrest");

    let mut parts = chat.into_parts();
    assert_eq!(&parts.read_buffer[..], b"line\r\nrest");
    // A completed count leaves no terminator: the next is set on the parts.
    assert_eq!(parts.codec.terminator(), &Terminator::None);
    parts.codec.set_terminator("\r\n");
    parts.codec.set_streaming(false);
    let mut chat = Chat::from_parts(parts);
    // Decoded from the buffer carried over, before any new read.
    assert_eq!(next_frame(&mut chat).await, Frame::Complete("line".into()));
    client.shutdown().await.unwrap();
    assert_eq!(next_frame(&mut chat).await, Frame::Partial("rest".into()));
    assert!(within("the end", chat.next()).await.is_none());
}

#[tokio::test]
async fn chat_parts_new_has_the_defaults() {
    let (mut client, server) = tcp_pair().await;
    let parts = ChatParts::new(server, TerminatorCodec::new("\n"));
    assert!(parts.read_buffer.is_empty());
    assert_eq!(parts.in_buffer_size, asynchat::DEFAULT_BUFFER_SIZE);
    assert_eq!(parts.out_buffer_size, asynchat::DEFAULT_BUFFER_SIZE);
    let mut chat = Chat::from_parts(parts);
    within("the write", client.write_all(b"hi\n"))
        .await
        .unwrap();
    assert_eq!(next_frame(&mut chat).await, Frame::Complete("hi".into()));
}

/// Output queued and not written is dropped by `into_parts`, as documented;
/// flushing first sends it.
#[tokio::test]
async fn into_parts_drops_unwritten_output_flush_sends_it() {
    let (mut client, server) = tcp_pair().await;
    let mut chat = Chat::new(server, "\n");
    chat.push("flushed\n");
    within("the flush", chat.flush()).await.unwrap();
    chat.push("dropped\n");
    let parts = chat.into_parts();
    drop(parts.io);
    let mut received = String::new();
    within("the end", client.read_to_string(&mut received))
        .await
        .unwrap();
    assert_eq!(received, "flushed\n");
}

/// A `Framed` becomes a `Chat` and back without losing a byte either way:
/// read buffer, codec, and the `Framed`'s unwritten output.
#[tokio::test]
async fn framed_round_trip_keeps_every_byte() {
    let (mut client, server) = tcp_pair().await;
    within(
        "the write",
        client.write_all(b"one\r\ntwo\r\nthree\r\nfour"),
    )
    .await
    .unwrap();
    let codec =
        TerminatorCodec::new(Terminator::any_of(["\r\n", "\n"])).with_max_frame_length(1234);
    let mut framed = Framed::new(server, codec);
    let first = within("a frame", framed.next()).await.unwrap().unwrap();
    assert_eq!(first, Frame::Complete("one".into()));
    assert_eq!(&framed.read_buffer()[..], b"two\r\nthree\r\nfour");
    // Written into the Framed's buffer, not yet to the socket.
    within("the feed", framed.feed("from framed\r\n"))
        .await
        .unwrap();

    let mut chat = Chat::from(framed);
    assert_eq!(chat.codec().max_frame_length(), 1234);
    assert_eq!(chat.buffered_input(), b"two\r\nthree\r\nfour");
    assert_eq!(next_frame(&mut chat).await, Frame::Complete("two".into()));
    assert_eq!(chat.codec().matched_delimiter(), Some(&b"\r\n"[..]));
    chat.push("from chat\r\n");
    within("the flush", chat.flush()).await.unwrap();

    let mut framed: Framed<TcpStream, TerminatorCodec> = chat.into_framed();
    assert_eq!(&framed.read_buffer()[..], b"three\r\nfour");
    assert_eq!(framed.codec().max_frame_length(), 1234);
    let third = within("a frame", framed.next()).await.unwrap().unwrap();
    assert_eq!(third, Frame::Complete("three".into()));
    within("the send", framed.send("from framed again\r\n"))
        .await
        .unwrap();
    client.shutdown().await.unwrap();
    let rest = within("a frame", framed.next()).await.unwrap().unwrap();
    assert_eq!(rest, Frame::Partial("four".into()));
    drop(framed);

    let mut received = String::new();
    within("the replies", client.read_to_string(&mut received))
        .await
        .unwrap();
    assert_eq!(
        received,
        "from framed\r\nfrom chat\r\nfrom framed again\r\n"
    );
}

/// `upgrade` writes what was queued before handing the IO over, drops the
/// bytes read and not handed out, and keeps terminator, mode, limit and
/// buffer sizes.
#[tokio::test]
async fn upgrade_keeps_the_settings_and_drops_unread_input() {
    let (mut client, server) = tcp_pair().await;
    let mut chat = Chat::with_codec(
        server,
        TerminatorCodec::streaming(Terminator::any_of(["\r\n", "\n"])).with_max_frame_length(77),
    );
    chat.set_in_buffer_size(3000);
    chat.set_out_buffer_size(5000);
    within("the write", client.write_all(b"UPGRADE\r\npipelined\r\n"))
        .await
        .unwrap();
    assert_eq!(
        next_frame(&mut chat).await,
        Frame::Complete("UPGRADE".into())
    );
    assert_eq!(chat.buffered_input(), b"pipelined\r\n");
    chat.push("ready\r\n");

    let mut upgraded: Chat<BufStream<TcpStream>> = within(
        "the upgrade",
        chat.upgrade(|io| async move { Ok(BufStream::new(io)) }),
    )
    .await
    .expect("the upgrade");
    assert!(upgraded.buffered_input().is_empty());
    assert_eq!(upgraded.terminator(), &Terminator::any_of(["\r\n", "\n"]));
    assert!(upgraded.codec().is_streaming());
    assert_eq!(upgraded.codec().max_frame_length(), 77);
    assert_eq!(upgraded.in_buffer_size(), 3000);
    assert_eq!(upgraded.out_buffer_size(), 5000);

    let mut reply = [0; 7];
    within("the reply", client.read_exact(&mut reply))
        .await
        .unwrap();
    assert_eq!(&reply, b"ready\r\n");
    within("the write", client.write_all(b"after\n"))
        .await
        .unwrap();
    // "pipelined" never comes out: the first frame is what came after.
    assert_eq!(
        next_frame(&mut upgraded).await,
        Frame::Complete("after".into())
    );
    assert_eq!(upgraded.codec().matched_delimiter(), Some(&b"\n"[..]));
    upgraded.push("done\n");
    upgraded.close_when_done();
    assert!(within("the end", upgraded.next()).await.is_none());
    let mut rest = String::new();
    within("the rest", client.read_to_string(&mut rest))
        .await
        .unwrap();
    assert_eq!(rest, "done\n");
}

/// A failing upgrade (a TLS handshake refused, say) is an `Error::Io`
/// carrying the closure's error; nothing panics.
#[tokio::test]
async fn upgrade_closure_error_is_io() {
    let (_client, server) = tcp_pair().await;
    let chat = Chat::new(server, "\r\n");
    let result = within(
        "the upgrade",
        chat.upgrade(|_io| async {
            Err::<TcpStream, _>(io::Error::new(
                io::ErrorKind::InvalidData,
                "handshake refused",
            ))
        }),
    )
    .await;
    match result {
        Err(Error::Io(error)) => {
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
            assert_eq!(error.to_string(), "handshake refused");
        }
        Err(other) => panic!("expected Error::Io, got {other}"),
        Ok(_) => panic!("the upgrade should have failed"),
    }
}

/// After close-when-done there is nothing left to upgrade.
#[tokio::test]
async fn upgrade_after_close_when_done_is_closed() {
    let (_client, server) = tcp_pair().await;
    let mut chat = Chat::new(server, "\r\n");
    chat.push("221 bye\r\n");
    chat.close_when_done();
    let result = within("the upgrade", chat.upgrade(|io| async move { Ok(io) })).await;
    assert!(
        matches!(result, Err(Error::Closed)),
        "expected Error::Closed, got {:?}",
        result.map(|_| ())
    );
}

/// A producer still running when the upgrade starts is drawn to its end
/// and written in plaintext before the IO is handed over: the upgrade waits
/// for it, as documented (one that never ends would make it wait for ever).
#[tokio::test]
async fn upgrade_with_a_producer_still_running() {
    let (mut client, server) = tcp_pair().await;
    let mut chat = Chat::new(server, "\n");
    let (sender, receiver) = futures::channel::mpsc::unbounded::<io::Result<Bytes>>();
    chat.push("first\n");
    chat.push_with_producer(Producer::from_stream(receiver));
    chat.push("last\n");
    sender.unbounded_send(Ok("piece 1\n".into())).unwrap();
    let upgrade = tokio::spawn(chat.upgrade(|mut io: TcpStream| async move {
        // Written by the new layer: it must come after all the old output.
        io.write_all(b"upgraded\n").await?;
        Ok(io)
    }));

    let mut received = vec![0; b"first\npiece 1\n".len()];
    within("the output so far", client.read_exact(&mut received))
        .await
        .unwrap();
    assert_eq!(received, b"first\npiece 1\n");
    // The producer has not ended: the upgrade cannot have happened.
    assert!(!upgrade.is_finished());
    sender.unbounded_send(Ok("piece 2\n".into())).unwrap();
    drop(sender);

    let upgraded = within("the upgrade", upgrade)
        .await
        .expect("the upgrade task")
        .expect("the upgrade");
    assert_eq!(upgraded.queued_output_len(), 0);
    drop(upgraded);
    let mut rest = String::new();
    within("the rest", client.read_to_string(&mut rest))
        .await
        .unwrap();
    assert_eq!(rest, "piece 2\nlast\nupgraded\n");
}
