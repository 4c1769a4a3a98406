//! Conformance with CPython's `asynchat`: every case of `tests/data/vectors.txt`
//! (written by `scripts/generate_vectors.py`, which ran the real module) is
//! replayed through the codec in both modes, read by read.

use asynchat::{find_prefix_at_end, Frame, Terminator, TerminatorCodec};
use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

/// One case: what asynchat was given and what it made of it.
#[derive(Debug)]
struct Case {
    name: String,
    initial: Terminator,
    /// Set after the first, second, ... message; nothing once it runs out.
    schedule: Vec<Terminator>,
    reads: Vec<Bytes>,
    /// What asynchat's `found_terminator` ended, in order.
    messages: Vec<Bytes>,
    /// The unterminated rest: collected data plus `ac_in_buffer`.
    left: Bytes,
}

/// A `find_prefix_at_end` call and asynchat's answer.
struct PrefixCase {
    haystack: Bytes,
    needle: Bytes,
    expected: usize,
}

struct Vectors {
    cases: Vec<Case>,
    prefix_cases: Vec<PrefixCase>,
}

fn parse_hex(text: &str) -> Bytes {
    assert!(text.len() % 2 == 0, "odd hex: {text:?}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect::<Vec<u8>>()
        .into()
}

fn parse_bytes(token: &str) -> Bytes {
    parse_hex(
        token
            .strip_prefix('x')
            .expect("a byte string starts with x"),
    )
}

fn parse_terminator(token: &str) -> Terminator {
    if token == "none" {
        Terminator::None
    } else if let Some(count) = token.strip_prefix('n') {
        Terminator::Length(count.parse().expect("a count"))
    } else if let Some(hex) = token.strip_prefix('d') {
        let delimiter = parse_hex(hex);
        assert!(!delimiter.is_empty(), "empty delimiter in the vectors");
        Terminator::Delimiter(delimiter)
    } else {
        panic!("bad terminator {token:?}")
    }
}

/// The fields after `key` on the next line, which must start with `key`.
fn fields<'a>(lines: &mut impl Iterator<Item = &'a str>, key: &str) -> Vec<&'a str> {
    let line = lines.next().unwrap_or_else(|| panic!("missing {key}"));
    let mut words = line.split(' ');
    assert_eq!(words.next(), Some(key), "line {line:?}");
    words.collect()
}

fn load() -> Vectors {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vectors.txt");
    let text = std::fs::read_to_string(path).expect("tests/data/vectors.txt");
    let mut lines = text.lines().filter(|line| !line.starts_with('#'));
    let mut vectors = Vectors {
        cases: Vec::new(),
        prefix_cases: Vec::new(),
    };
    let mut counted = None;
    while let Some(line) = lines.next() {
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "case" => {
                let name = rest.to_owned();
                let [initial] = fields(&mut lines, "init")[..] else {
                    panic!("{name}: one initial terminator")
                };
                let initial = parse_terminator(initial);
                let schedule = fields(&mut lines, "sched")
                    .into_iter()
                    .map(parse_terminator)
                    .collect();
                let reads = fields(&mut lines, "reads")
                    .into_iter()
                    .map(parse_bytes)
                    .collect();
                let messages = fields(&mut lines, "msgs")
                    .into_iter()
                    .map(parse_bytes)
                    .collect();
                let [left] = fields(&mut lines, "left")[..] else {
                    panic!("{name}: one leftover")
                };
                let left = parse_bytes(left);
                assert_eq!(lines.next(), Some("end"), "{name}");
                vectors.cases.push(Case {
                    name,
                    initial,
                    schedule,
                    reads,
                    messages,
                    left,
                });
            }
            "prefix" => {
                let [haystack, needle, expected] = rest.split(' ').collect::<Vec<_>>()[..] else {
                    panic!("bad prefix line {line:?}")
                };
                vectors.prefix_cases.push(PrefixCase {
                    haystack: parse_bytes(haystack),
                    needle: parse_bytes(needle),
                    expected: expected.parse().expect("a count"),
                });
            }
            "count" => {
                let (cases, prefixes) = rest.split_once(' ').expect("two counts");
                counted = Some((cases.parse().unwrap(), prefixes.parse().unwrap()));
            }
            _ => panic!("unexpected line {line:?}"),
        }
    }
    assert_eq!(
        counted,
        Some((vectors.cases.len(), vectors.prefix_cases.len())),
        "the file is truncated or its count line is missing"
    );
    vectors
}

/// What the codec made of a case: every frame in order, read by read.
fn replay(case: &Case, mut codec: TerminatorCodec) -> Vec<Frame> {
    let streaming = codec.is_streaming();
    let mut schedule = case.schedule.iter();
    let mut frames = Vec::new();
    let mut buffer = BytesMut::new();
    let mut on_frame = |frame: Frame, codec: &mut TerminatorCodec| {
        if frame.is_complete() {
            if let Some(next) = schedule.next() {
                codec.set_terminator(next.clone());
            }
        }
        frames.push(frame);
    };
    for read in &case.reads {
        buffer.extend_from_slice(read);
        while let Some(frame) = codec.decode(&mut buffer).expect("no error") {
            on_frame(frame, &mut codec);
        }
        if streaming {
            // Streaming holds back only a possible start of the delimiter.
            let held = codec.terminator().delimiter().map_or(0, |d| d.len() - 1);
            assert!(
                buffer.len() <= held,
                "{}: streaming held {} bytes under {:?}",
                case.name,
                buffer.len(),
                codec.terminator()
            );
        }
    }
    while let Some(frame) = codec.decode_eof(&mut buffer).expect("no error") {
        on_frame(frame, &mut codec);
    }
    assert!(buffer.is_empty(), "{}: bytes left after EOF", case.name);
    frames
}

fn concat(parts: &[Bytes]) -> Bytes {
    parts.concat().into()
}

/// Whole frames: each message is one `Complete`; the only `Partial`s are
/// the unterminated rest, after the last `Complete`.
fn check_whole(case: &Case) {
    let codec = TerminatorCodec::new(case.initial.clone()).with_max_frame_length(usize::MAX);
    let frames = replay(case, codec);
    let last_complete = frames.iter().rposition(Frame::is_complete);
    let tail = last_complete.map_or(0, |i| i + 1);
    let messages: Vec<Bytes> = frames[..tail]
        .iter()
        .map(|frame| match frame {
            Frame::Complete(bytes) => bytes.clone(),
            Frame::Partial(bytes) => panic!(
                "{}: whole mode gave Partial({bytes:?}) mid-stream",
                case.name
            ),
        })
        .collect();
    let left: Vec<Bytes> = frames[tail..].iter().map(|f| f.bytes().clone()).collect();
    assert_eq!(
        messages, case.messages,
        "{}: whole-mode messages",
        case.name
    );
    assert_eq!(
        concat(&left),
        case.left,
        "{}: whole-mode leftover",
        case.name
    );
}

/// Streaming: `Partial`s and their `Complete` regroup into the messages.
fn check_streaming(case: &Case) {
    let frames = replay(case, TerminatorCodec::streaming(case.initial.clone()));
    let mut messages = Vec::new();
    let mut current = Vec::new();
    for frame in frames {
        let complete = frame.is_complete();
        current.push(frame.into_bytes());
        if complete {
            messages.push(concat(&current));
            current.clear();
        }
    }
    assert_eq!(messages, case.messages, "{}: streaming messages", case.name);
    assert_eq!(
        concat(&current),
        case.left,
        "{}: streaming leftover",
        case.name
    );
}

#[test]
fn codec_matches_asynchat() {
    let vectors = load();
    let mut replayed = 0;
    let mut messages = 0;
    for case in &vectors.cases {
        check_whole(case);
        check_streaming(case);
        replayed += 1;
        messages += case.messages.len();
    }
    assert!(replayed > 3000, "only {replayed} cases replayed");
    assert!(messages > 5000, "only {messages} messages in the vectors");
    // The hand-picked cases come first and have names that say what they stress.
    assert!(vectors.cases.iter().any(|case| case.name == "aab_overlap"));
    assert!(vectors
        .cases
        .iter()
        .any(|case| case.name == "http_head_body_next_head_bytewise"));
}

#[test]
fn find_prefix_at_end_matches_asynchat() {
    let vectors = load();
    assert!(vectors.prefix_cases.len() > 500);
    for case in &vectors.prefix_cases {
        assert_eq!(
            find_prefix_at_end(&case.haystack, &case.needle),
            case.expected,
            "find_prefix_at_end({:?}, {:?})",
            case.haystack,
            case.needle
        );
    }
}
