//! Properties of `TerminatorCodec` over random inputs, delimiters, read
//! splits and terminator schedules, checked against a plain model of the
//! framing rules and against itself (one read vs many, whole vs streaming).

use asynchat::{Frame, Terminator, TerminatorCodec};
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

/// Input from a small alphabet, so that delimiters made of it occur often
/// and overlap with themselves.
fn input() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(&b"ab\r\n"[..]), 0..300)
}

fn delimiter() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(&b"ab\r\n"[..]), 1..=4)
}

/// Where the reads end, as fractions of the input: sorted and clamped later.
fn splits() -> impl Strategy<Value = Vec<prop::sample::Index>> {
    prop::collection::vec(any::<prop::sample::Index>(), 0..40)
}

/// A terminator schedule mixing delimiters, counts (0 included: it ends an
/// empty message at once) and, rarely, `None`.
fn terminator() -> impl Strategy<Value = Terminator> {
    prop_oneof![
        6 => delimiter().prop_map(Terminator::from),
        4 => (0u64..40).prop_map(Terminator::Length),
        1 => Just(Terminator::None),
    ]
}

fn schedule() -> impl Strategy<Value = Vec<Terminator>> {
    prop::collection::vec(terminator(), 0..12)
}

/// Cuts `data` at the given points (any order, duplicates give empty reads).
fn cut(data: &[u8], points: &[prop::sample::Index]) -> Vec<Bytes> {
    let mut points: Vec<usize> = points.iter().map(|i| i.index(data.len() + 1)).collect();
    points.sort_unstable();
    let mut reads = Vec::new();
    let mut start = 0;
    for point in points.into_iter().chain([data.len()]) {
        reads.push(Bytes::copy_from_slice(&data[start..point]));
        start = point;
    }
    reads
}

/// Feeds the reads one by one, decoding until `None` after each and at EOF;
/// applies the next scheduled terminator after each `Complete`. Checks that
/// streaming mode holds back no more than a possible start of the delimiter.
fn run(mut codec: TerminatorCodec, reads: &[Bytes], schedule: &[Terminator]) -> Vec<Frame> {
    let mut schedule = schedule.iter();
    let mut frames = Vec::new();
    let mut buffer = BytesMut::new();
    let mut take = |frame: Frame, codec: &mut TerminatorCodec| {
        if frame.is_complete() {
            if let Some(next) = schedule.next() {
                codec.set_terminator(next.clone());
            }
        }
        frames.push(frame);
    };
    for read in reads {
        buffer.extend_from_slice(read);
        while let Some(frame) = codec.decode(&mut buffer).unwrap() {
            take(frame, &mut codec);
        }
        if codec.is_streaming() {
            let held = codec.terminator().delimiter().map_or(0, |d| d.len() - 1);
            assert!(
                buffer.len() <= held,
                "held {} under {:?}",
                buffer.len(),
                codec.terminator()
            );
        }
    }
    while let Some(frame) = codec.decode_eof(&mut buffer).unwrap() {
        take(frame, &mut codec);
    }
    assert!(buffer.is_empty());
    frames
}

/// Messages (Partials joined to their Complete) and the unterminated rest.
fn regroup(frames: &[Frame]) -> (Vec<Bytes>, Bytes) {
    let mut messages = Vec::new();
    let mut current = Vec::new();
    for frame in frames {
        current.extend_from_slice(frame.bytes());
        if frame.is_complete() {
            messages.push(Bytes::from(std::mem::take(&mut current)));
        }
    }
    (messages, current.into())
}

/// The framing rules, written as plainly as possible: a delimiter ends the
/// message at its first occurrence; a count takes that many bytes and then
/// leaves no terminator unless the schedule gives one; `None` takes the rest.
fn model(data: &[u8], initial: &Terminator, schedule: &[Terminator]) -> (Vec<Bytes>, Bytes) {
    let mut terminator = initial.clone();
    let mut schedule = schedule.iter();
    let mut messages = Vec::new();
    let mut rest = data;
    loop {
        let (message, after) = match &terminator {
            Terminator::Delimiter(d) => match rest.windows(d.len()).position(|w| w == &d[..]) {
                Some(i) => (&rest[..i], &rest[i + d.len()..]),
                None => break,
            },
            Terminator::Length(n) if *n as usize <= rest.len() => {
                let n = *n as usize;
                (&rest[..n], &rest[n..])
            }
            // This model knows single delimiters and counts; sets have
            // their own in tests/framing.rs.
            _ => break,
        };
        messages.push(Bytes::copy_from_slice(message));
        rest = after;
        match schedule.next() {
            Some(next) => terminator = next.clone(),
            None if matches!(terminator, Terminator::Length(_)) => terminator = Terminator::None,
            None => {}
        }
    }
    (messages, Bytes::copy_from_slice(rest))
}

fn whole(terminator: &Terminator) -> TerminatorCodec {
    TerminatorCodec::new(terminator.clone()).with_max_frame_length(usize::MAX)
}

fn streaming(terminator: &Terminator) -> TerminatorCodec {
    TerminatorCodec::streaming(terminator.clone())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// One delimiter: however the reads split the input, both modes give the
    /// frames of a one-shot decode, and the messages joined by the delimiter
    /// (plus the leftover) give back the input.
    #[test]
    fn delimiter_split_anywhere(data in input(), delimiter in delimiter(), points in splits()) {
        let terminator = Terminator::from(delimiter.clone());
        let reads = cut(&data, &points);
        let one_read = [Bytes::from(data.clone())];

        let whole_once = run(whole(&terminator), &one_read, &[]);
        let whole_split = run(whole(&terminator), &reads, &[]);
        prop_assert_eq!(&whole_split, &whole_once);
        // Whole mode: only Completes, then at most the one Partial leftover.
        let completes = whole_once.iter().take_while(|f| f.is_complete()).count();
        prop_assert!(whole_once.len() - completes <= 1);

        let streamed = run(streaming(&terminator), &reads, &[]);
        let streamed_once = run(streaming(&terminator), &one_read, &[]);
        prop_assert_eq!(regroup(&streamed), regroup(&whole_once));
        prop_assert_eq!(regroup(&streamed_once), regroup(&whole_once));
        prop_assert!(streamed.iter().all(|f| f.is_complete() || !f.bytes().is_empty()),
            "streaming never yields an empty Partial");

        let (messages, left) = regroup(&whole_once);
        prop_assert_eq!((messages.clone(), left.clone()), model(&data, &terminator, &[]));
        let mut joined = Vec::new();
        for message in &messages {
            joined.extend_from_slice(message);
            joined.extend_from_slice(&delimiter);
        }
        joined.extend_from_slice(&left);
        prop_assert_eq!(joined, data);
    }

    /// A schedule of delimiters, counts and `None`, switched after each
    /// message: both modes and every split agree with the model.
    #[test]
    fn schedules_split_anywhere(
        data in input(),
        initial in terminator(),
        schedule in schedule(),
        points in splits(),
    ) {
        let expected = model(&data, &initial, &schedule);
        let reads = cut(&data, &points);
        let one_read = [Bytes::from(data.clone())];

        let whole_once = run(whole(&initial), &one_read, &schedule);
        prop_assert_eq!(regroup(&whole_once), expected.clone());
        let whole_split = run(whole(&initial), &reads, &schedule);
        prop_assert_eq!(regroup(&whole_split), expected.clone());
        // Whole mode yields each message as one Complete: no Partial before
        // the last Complete.
        let last = whole_split.iter().rposition(Frame::is_complete).map_or(0, |i| i + 1);
        prop_assert!(whole_split[..last].iter().all(Frame::is_complete));

        let streamed = run(streaming(&initial), &reads, &schedule);
        prop_assert_eq!(regroup(&streamed), expected);
    }

    /// Byte-by-byte reads: the worst split, for every mode.
    #[test]
    fn byte_by_byte(data in input(), initial in terminator(), schedule in schedule()) {
        let expected = model(&data, &initial, &schedule);
        let reads: Vec<Bytes> = data.iter().map(|&b| Bytes::copy_from_slice(&[b])).collect();
        prop_assert_eq!(regroup(&run(whole(&initial), &reads, &schedule)), expected.clone());
        prop_assert_eq!(regroup(&run(streaming(&initial), &reads, &schedule)), expected);
    }

    /// A limit that no message reaches changes nothing; a limit some message
    /// passes drops exactly the overlong messages (one error each) in
    /// whole mode and leaves streaming mode alone.
    #[test]
    fn limit_drops_only_overlong_messages(
        data in input(),
        delimiter in delimiter(),
        points in splits(),
        limit in 0usize..20,
    ) {
        let terminator = Terminator::from(delimiter.clone());
        let reads = cut(&data, &points);
        let (messages, left) = model(&data, &terminator, &[]);

        let held = terminator.delimiter().unwrap().len() - 1;
        let mut codec = TerminatorCodec::new(terminator.clone()).with_max_frame_length(limit);
        let mut buffer = BytesMut::new();
        let mut got = Vec::new();
        let mut errors = 0;
        let mut eof = false;
        let mut reads = reads.iter();
        loop {
            let result = if eof { codec.decode_eof(&mut buffer) } else { codec.decode(&mut buffer) };
            match result {
                Ok(Some(frame)) => got.push(frame),
                Err(asynchat::Error::FrameTooLong { limit: l }) => {
                    prop_assert_eq!(l, limit);
                    errors += 1;
                }
                Err(other) => panic!("unexpected error {other}"),
                Ok(None) if eof => break,
                Ok(None) => {
                    // Whole mode never holds more than the limit plus a
                    // possible start of the delimiter.
                    prop_assert!(buffer.len() <= limit + held, "held {}", buffer.len());
                    match reads.next() {
                        Some(read) => buffer.extend_from_slice(read),
                        None => eof = true,
                    }
                }
            }
        }
        let kept: Vec<Bytes> = messages.iter().filter(|m| m.len() <= limit).cloned().collect();
        let overlong = messages.len() - kept.len();
        let completes: Vec<Bytes> =
            got.iter().filter(|f| f.is_complete()).map(|f| f.bytes().clone()).collect();
        prop_assert_eq!(completes, kept);
        // The unterminated rest comes out as a Partial, unless more than
        // the limit of it is known not to begin the delimiter: then it is
        // one more error and is dropped.
        let partial: Vec<u8> =
            got.iter().filter(|f| !f.is_complete()).flat_map(|f| f.bytes().to_vec()).collect();
        if left.len() - asynchat::find_prefix_at_end(&left, &delimiter) > limit {
            prop_assert_eq!(errors, overlong + 1);
            prop_assert!(partial.is_empty());
        } else {
            prop_assert_eq!(errors, overlong);
            prop_assert_eq!(Bytes::from(partial), left.clone());
        }

        // Streaming mode ignores the limit.
        let streamed = run(TerminatorCodec::streaming(terminator.clone()).with_max_frame_length(limit),
            &cut(&data, &points), &[]);
        prop_assert_eq!(regroup(&streamed), (messages, left));
    }
}
