//! Unit tests of `TerminatorCodec`, `Terminator`, `Frame`, `Error` and
//! `find_prefix_at_end`: one test per rule of the API.

use std::io;

use asynchat::{
    find_prefix_at_end, Error, Frame, Terminator, TerminatorCodec, DEFAULT_MAX_FRAME_LENGTH,
};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio_util::codec::{Decoder, Encoder, FramedRead};

fn complete(bytes: &'static [u8]) -> Option<Frame> {
    Some(Frame::Complete(Bytes::from_static(bytes)))
}

fn partial(bytes: &'static [u8]) -> Option<Frame> {
    Some(Frame::Partial(Bytes::from_static(bytes)))
}

/// Decodes until `None`, panicking on an error.
fn drain(codec: &mut TerminatorCodec, buffer: &mut BytesMut) -> Vec<Frame> {
    std::iter::from_fn(|| codec.decode(buffer).unwrap()).collect()
}

/// Calls `decode_eof` until `None`, panicking on an error.
fn drain_eof(codec: &mut TerminatorCodec, buffer: &mut BytesMut) -> Vec<Frame> {
    std::iter::from_fn(|| codec.decode_eof(buffer).unwrap()).collect()
}

/// The messages of a streaming codec's frames, and the unterminated rest.
fn regroup(frames: &[Frame]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut messages = Vec::new();
    let mut current = Vec::new();
    for frame in frames {
        current.extend_from_slice(frame.bytes());
        if frame.is_complete() {
            messages.push(std::mem::take(&mut current));
        }
    }
    (messages, current)
}

fn is_too_long<T: std::fmt::Debug>(result: Result<T, Error>, limit: usize) -> bool {
    match result {
        Err(Error::FrameTooLong { limit: l }) => l == limit,
        other => panic!("expected FrameTooLong {{ limit: {limit} }}, got {other:?}"),
    }
}

// ---------------------------------------------------------------- Length(0)

#[test]
fn length_zero_completes_at_once_with_an_empty_frame() {
    for mut codec in [TerminatorCodec::new(0u64), TerminatorCodec::streaming(0u64)] {
        // Even with nothing buffered.
        let mut buffer = BytesMut::new();
        assert_eq!(codec.decode(&mut buffer).unwrap(), complete(b""));
        assert_eq!(codec.terminator(), &Terminator::None);
        // And without consuming anything buffered.
        codec.set_terminator(0u64);
        let mut buffer = BytesMut::from("next");
        assert_eq!(codec.decode(&mut buffer).unwrap(), complete(b""));
        assert_eq!(&buffer[..], b"next");
    }
}

#[test]
fn content_length_zero_ends_the_body_at_once() {
    for mut codec in [
        TerminatorCodec::new("\r\n\r\n"),
        TerminatorCodec::streaming("\r\n\r\n"),
    ] {
        let mut buffer =
            BytesMut::from("POST /a HTTP/1.1\r\nContent-Length: 0\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
        assert_eq!(
            codec.decode(&mut buffer).unwrap(),
            complete(b"POST /a HTTP/1.1\r\nContent-Length: 0")
        );
        codec.set_terminator(0u64);
        assert_eq!(codec.decode(&mut buffer).unwrap(), complete(b""));
        codec.set_terminator("\r\n\r\n");
        assert_eq!(
            codec.decode(&mut buffer).unwrap(),
            complete(b"GET /b HTTP/1.1")
        );
        assert_eq!(codec.decode(&mut buffer).unwrap(), None);
    }
}

// ------------------------------------------------------------------ Length

#[test]
fn a_completed_length_leaves_no_terminator() {
    for mut codec in [TerminatorCodec::new(3u64), TerminatorCodec::streaming(3u64)] {
        let mut buffer = BytesMut::from("abcdef");
        assert_eq!(codec.terminator(), &Terminator::Length(3));
        assert_eq!(codec.decode(&mut buffer).unwrap(), complete(b"abc"));
        assert_eq!(codec.terminator(), &Terminator::None);
        // As in asynchat: what follows is data of an unterminated message
        // until the next terminator is set.
        assert_eq!(codec.decode(&mut buffer).unwrap(), partial(b"def"));
        assert_eq!(codec.decode(&mut buffer).unwrap(), None);
    }
}

#[test]
fn terminator_does_not_count_down() {
    let mut codec = TerminatorCodec::streaming(10u64);
    let mut buffer = BytesMut::from("abcd");
    assert_eq!(codec.decode(&mut buffer).unwrap(), partial(b"abcd"));
    assert_eq!(codec.terminator(), &Terminator::Length(10));
    buffer.extend_from_slice(b"efghij!");
    assert_eq!(codec.decode(&mut buffer).unwrap(), complete(b"efghij"));
    assert_eq!(codec.terminator(), &Terminator::None);

    let mut codec = TerminatorCodec::new(10u64);
    let mut buffer = BytesMut::from("abcd");
    assert_eq!(codec.decode(&mut buffer).unwrap(), None);
    assert_eq!(codec.terminator(), &Terminator::Length(10));
    buffer.extend_from_slice(b"efghij!");
    assert_eq!(codec.decode(&mut buffer).unwrap(), complete(b"abcdefghij"));
    assert_eq!(&buffer[..], b"!");
}

#[test]
fn length_across_many_reads() {
    let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    for streaming in [false, true] {
        let mut codec = if streaming {
            TerminatorCodec::streaming(1000u64)
        } else {
            TerminatorCodec::new(1000u64)
        };
        let mut buffer = BytesMut::new();
        let mut frames = Vec::new();
        for read in data.chunks(7) {
            buffer.extend_from_slice(read);
            frames.extend(drain(&mut codec, &mut buffer));
            if streaming {
                assert!(buffer.is_empty(), "streaming Length holds nothing back");
            }
        }
        let (messages, left) = regroup(&frames);
        assert_eq!(messages, vec![data.clone()]);
        assert!(left.is_empty());
        assert_eq!(
            frames.len(),
            if streaming { 1000usize.div_ceil(7) } else { 1 }
        );
    }
}

#[test]
fn length_u64_max_streams_without_growing_the_buffer() {
    let mut codec = TerminatorCodec::streaming(u64::MAX);
    let mut buffer = BytesMut::new();
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..64 {
        buffer.extend_from_slice(&chunk);
        let frame = codec.decode(&mut buffer).unwrap().unwrap();
        assert_eq!(frame, Frame::Partial(Bytes::from(chunk.clone())));
        assert!(buffer.is_empty());
        assert_eq!(codec.decode(&mut buffer).unwrap(), None);
        assert_eq!(codec.terminator(), &Terminator::Length(u64::MAX));
    }
    assert_eq!(codec.decode_eof(&mut buffer).unwrap(), None);
}

// -------------------------------------------------------------------- None

#[test]
fn none_yields_partials_in_both_modes() {
    for mut codec in [
        TerminatorCodec::new(None::<&str>),
        TerminatorCodec::streaming(Terminator::None),
    ] {
        let mut buffer = BytesMut::new();
        assert_eq!(codec.decode(&mut buffer).unwrap(), None);
        buffer.extend_from_slice(b"ab\r\ncd");
        assert_eq!(codec.decode(&mut buffer).unwrap(), partial(b"ab\r\ncd"));
        assert_eq!(codec.decode(&mut buffer).unwrap(), None);
        buffer.extend_from_slice(b"\n");
        assert_eq!(codec.decode(&mut buffer).unwrap(), partial(b"\n"));
        assert_eq!(codec.decode_eof(&mut buffer).unwrap(), None);
        assert_eq!(codec.terminator(), &Terminator::None);
    }
}

/// An empty delimiter built directly, not through a conversion, means no
/// terminator too: it must not end a message at every byte, forever.
#[test]
fn an_empty_delimiter_built_directly_means_none() {
    for mut codec in [
        TerminatorCodec::new(Terminator::Delimiter(Bytes::new())),
        TerminatorCodec::streaming(Terminator::Delimiter(Bytes::new())),
    ] {
        assert_eq!(codec.terminator(), &Terminator::None);
        let mut buffer = BytesMut::from(&b"abc"[..]);
        assert_eq!(codec.decode(&mut buffer).unwrap(), partial(b"abc"));
        assert_eq!(codec.decode(&mut buffer).unwrap(), None);
        codec.set_terminator(Terminator::Delimiter(Bytes::new()));
        assert_eq!(codec.terminator(), &Terminator::None);
    }
}

// --------------------------------------------------------------------- EOF

#[test]
fn eof_yields_the_unterminated_rest_whole_delimiter() {
    let mut codec = TerminatorCodec::new("\r\n");
    let mut buffer = BytesMut::from("one\r\ntwo\r");
    assert_eq!(
        drain(&mut codec, &mut buffer),
        vec![complete(b"one").unwrap()]
    );
    assert_eq!(
        drain_eof(&mut codec, &mut buffer),
        vec![partial(b"two\r").unwrap()]
    );
    assert!(buffer.is_empty());
    assert_eq!(codec.decode_eof(&mut buffer).unwrap(), None);
}

#[test]
fn eof_yields_the_unterminated_rest_streaming_delimiter() {
    let mut codec = TerminatorCodec::streaming("\r\n.\r\n");
    let mut buffer = BytesMut::from("body\r\n.");
    // "\r\n." might begin the delimiter: held back until EOF tells.
    assert_eq!(
        drain(&mut codec, &mut buffer),
        vec![partial(b"body").unwrap()]
    );
    assert_eq!(&buffer[..], b"\r\n.");
    assert_eq!(
        drain_eof(&mut codec, &mut buffer),
        vec![partial(b"\r\n.").unwrap()]
    );
    assert!(buffer.is_empty());
}

#[test]
fn eof_yields_the_unterminated_rest_of_a_length() {
    let mut codec = TerminatorCodec::new(10u64);
    let mut buffer = BytesMut::from("abc");
    assert_eq!(codec.decode(&mut buffer).unwrap(), None);
    assert_eq!(
        drain_eof(&mut codec, &mut buffer),
        vec![partial(b"abc").unwrap()]
    );

    let mut codec = TerminatorCodec::streaming(10u64);
    let mut buffer = BytesMut::from("abc");
    assert_eq!(
        drain_eof(&mut codec, &mut buffer),
        vec![partial(b"abc").unwrap()]
    );
    assert!(buffer.is_empty());
}

#[test]
fn eof_on_an_empty_buffer_yields_nothing() {
    for terminator in [
        Terminator::from("\n"),
        Terminator::Length(4),
        Terminator::None,
    ] {
        for mut codec in [
            TerminatorCodec::new(terminator.clone()),
            TerminatorCodec::streaming(terminator.clone()),
        ] {
            assert_eq!(codec.decode_eof(&mut BytesMut::new()).unwrap(), None);
        }
    }
}

#[tokio::test]
async fn framed_read_hands_out_the_rest_at_eof() {
    let input: &[u8] = b"EHLO a\r\nQUIT\r\nhalf";
    let frames: Vec<Frame> = FramedRead::new(input, TerminatorCodec::new("\r\n"))
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(
        frames,
        vec![
            complete(b"EHLO a").unwrap(),
            complete(b"QUIT").unwrap(),
            partial(b"half").unwrap()
        ]
    );
}

// ---------------------------------------------------------- set_terminator

#[test]
fn set_terminator_takes_effect_on_buffered_bytes() {
    // Before any search.
    let mut codec = TerminatorCodec::new("\r\n");
    let mut buffer = BytesMut::from("a;b\r\n");
    codec.set_terminator(";");
    assert_eq!(codec.decode(&mut buffer).unwrap(), complete(b"a"));
    assert_eq!(codec.decode(&mut buffer).unwrap(), None);

    // After a search for the old delimiter went past the new one.
    let mut codec = TerminatorCodec::new("\r\n");
    let mut buffer = BytesMut::from("ab;cd;ef");
    assert_eq!(codec.decode(&mut buffer).unwrap(), None);
    codec.set_terminator(";");
    assert_eq!(codec.decode(&mut buffer).unwrap(), complete(b"ab"));
    codec.set_terminator(2u64);
    assert_eq!(codec.decode(&mut buffer).unwrap(), complete(b"cd"));
    codec.set_terminator(b"!");
    assert_eq!(codec.decode(&mut buffer).unwrap(), None);
    assert_eq!(
        &buffer[..],
        b";ef",
        "nothing consumed while waiting for a delimiter"
    );
    codec.set_terminator(b"ef");
    assert_eq!(codec.decode(&mut buffer).unwrap(), complete(b";"));

    // In streaming mode, over the bytes held back for the old delimiter.
    let mut codec = TerminatorCodec::streaming("\r\n");
    let mut buffer = BytesMut::from("ab;c\r");
    assert_eq!(codec.decode(&mut buffer).unwrap(), partial(b"ab;c"));
    codec.set_terminator(";");
    buffer.extend_from_slice(b"x;y");
    assert_eq!(codec.decode(&mut buffer).unwrap(), complete(b"\rx"));
    assert_eq!(codec.decode(&mut buffer).unwrap(), partial(b"y"));
}

#[test]
fn head_then_body_then_next_head_from_one_read() {
    let mut codec = TerminatorCodec::new("\r\n\r\n");
    let mut buffer =
        BytesMut::from("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n");
    assert_eq!(
        codec.decode(&mut buffer).unwrap(),
        complete(b"POST / HTTP/1.1\r\nContent-Length: 5")
    );
    codec.set_terminator(5u64);
    assert_eq!(codec.decode(&mut buffer).unwrap(), complete(b"hello"));
    codec.set_terminator("\r\n\r\n");
    assert_eq!(
        codec.decode(&mut buffer).unwrap(),
        complete(b"GET / HTTP/1.1")
    );
    assert!(buffer.is_empty());
}

// ----------------------------------------------------------- FrameTooLong

/// Feeds `input` in reads of `read_size`, then EOF; collects frames and errors.
fn feed(codec: &mut TerminatorCodec, input: &[u8], read_size: usize) -> (Vec<Frame>, usize, usize) {
    let mut buffer = BytesMut::new();
    let mut frames = Vec::new();
    let mut errors = 0;
    let mut most_held = 0;
    let mut step = |codec: &mut TerminatorCodec, buffer: &mut BytesMut, eof: bool| loop {
        let result = if eof {
            codec.decode_eof(buffer)
        } else {
            codec.decode(buffer)
        };
        match result {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => break,
            Err(Error::FrameTooLong { .. }) => errors += 1,
            Err(other) => panic!("{other}"),
        }
    };
    for read in input.chunks(read_size.max(1)) {
        buffer.extend_from_slice(read);
        step(codec, &mut buffer, false);
        most_held = most_held.max(buffer.len());
    }
    step(codec, &mut buffer, true);
    (frames, errors, most_held)
}

#[test]
fn a_frame_at_the_limit_passes_and_one_byte_over_fails() {
    for read_size in [1, 2, 3, 1000] {
        for delimiter in ["\n", "\r\n", "\r\n.\r\n"] {
            let at_limit = format!("{}{delimiter}", "x".repeat(8));
            let over = format!("{}{delimiter}", "x".repeat(9));
            let next = format!("ok{delimiter}");

            let mut codec = TerminatorCodec::new(delimiter).with_max_frame_length(8);
            let (frames, errors, _) = feed(
                &mut codec,
                format!("{at_limit}{next}").as_bytes(),
                read_size,
            );
            assert_eq!(errors, 0, "{delimiter:?} by {read_size}");
            assert_eq!(
                frames,
                vec![complete(b"xxxxxxxx").unwrap(), complete(b"ok").unwrap()]
            );

            let mut codec = TerminatorCodec::new(delimiter).with_max_frame_length(8);
            let (frames, errors, held) =
                feed(&mut codec, format!("{over}{next}").as_bytes(), read_size);
            assert_eq!(
                errors, 1,
                "{delimiter:?} by {read_size}: one error per message"
            );
            assert_eq!(
                frames,
                vec![complete(b"ok").unwrap()],
                "{delimiter:?} by {read_size}"
            );
            if read_size < 1000 {
                assert!(held <= 8 + delimiter.len() - 1 + read_size, "held {held}");
            }
        }
    }
}

#[test]
fn a_length_at_the_limit_passes_and_one_over_fails_at_once() {
    let mut codec = TerminatorCodec::new(8u64).with_max_frame_length(8);
    let (frames, errors, _) = feed(&mut codec, b"xxxxxxxx", 1);
    assert_eq!((frames, errors), (vec![complete(b"xxxxxxxx").unwrap()], 0));

    // Fails before any byte arrives, and its bytes are skipped as they come.
    let mut codec = TerminatorCodec::new(9u64).with_max_frame_length(8);
    assert!(is_too_long(codec.decode(&mut BytesMut::new()), 8));
    assert_eq!(codec.terminator(), &Terminator::Length(9));
    let mut buffer = BytesMut::new();
    for _ in 0..9 {
        buffer.extend_from_slice(b"x");
        assert_eq!(
            codec.decode(&mut buffer).unwrap(),
            None,
            "the error is returned once"
        );
        assert!(buffer.is_empty(), "skipped bytes are not buffered");
    }
    // The Length is over: no terminator until the next is set, as after any Length.
    assert_eq!(codec.terminator(), &Terminator::None);
    buffer.extend_from_slice(b"after");
    assert_eq!(codec.decode(&mut buffer).unwrap(), partial(b"after"));
}

#[test]
fn a_terminator_set_after_a_too_long_length_applies_once_the_skip_is_over() {
    // An HTTP server answers 413 and sets the next head's terminator at once;
    // the body still arrives and must not be read as the next head.
    let mut codec = TerminatorCodec::new(30u64).with_max_frame_length(16);
    let mut buffer = BytesMut::from("0123");
    assert!(is_too_long(codec.decode(&mut buffer), 16));
    codec.set_terminator("\r\n\r\n");
    assert_eq!(codec.terminator(), &Terminator::from("\r\n\r\n"));
    assert_eq!(codec.decode(&mut buffer).unwrap(), None);
    buffer.extend_from_slice(b"456789abcdefghijklmnopqrstGET / HTTP/1.1\r\n\r\n");
    assert_eq!(
        codec.decode(&mut buffer).unwrap(),
        complete(b"GET / HTTP/1.1")
    );
}

#[test]
fn a_terminator_set_while_an_overlong_message_is_skipped_applies_after_it() {
    let mut codec = TerminatorCodec::new("\n").with_max_frame_length(4);
    let mut buffer = BytesMut::from("0123456");
    assert!(is_too_long(codec.decode(&mut buffer), 4));
    codec.set_terminator(3u64);
    buffer.extend_from_slice(b"78\nabcdef");
    assert_eq!(codec.decode(&mut buffer).unwrap(), complete(b"abc"));
    assert_eq!(codec.decode(&mut buffer).unwrap(), partial(b"def"));
}

#[test]
fn a_length_over_the_limit_skips_its_bytes_in_one_read() {
    let mut codec = TerminatorCodec::new(5u64).with_max_frame_length(4);
    let mut buffer = BytesMut::from("12345rest");
    assert!(is_too_long(codec.decode(&mut buffer), 4));
    assert_eq!(codec.decode(&mut buffer).unwrap(), partial(b"rest"));
    assert!(buffer.is_empty());
}

#[test]
fn a_huge_length_is_refused_before_buffering() {
    let mut codec = TerminatorCodec::new(u64::MAX);
    let mut buffer = BytesMut::from("abc");
    assert!(is_too_long(
        codec.decode(&mut buffer),
        DEFAULT_MAX_FRAME_LENGTH
    ));
    assert_eq!(codec.decode(&mut buffer).unwrap(), None);
    assert!(buffer.is_empty());
    // EOF in the middle of a skip drops the rest and ends quietly.
    buffer.extend_from_slice(b"more");
    assert_eq!(codec.decode_eof(&mut buffer).unwrap(), None);
    assert!(buffer.is_empty());
}

#[test]
fn an_overlong_message_is_skipped_without_buffering_it() {
    let mut codec = TerminatorCodec::new("\r\n").with_max_frame_length(16);
    let mut buffer = BytesMut::new();
    let mut errors = 0;
    let read = [b'z'; 1000];
    for _ in 0..1000 {
        buffer.extend_from_slice(&read);
        loop {
            match codec.decode(&mut buffer) {
                Ok(None) => break,
                Ok(Some(frame)) => panic!("unexpected {frame:?}"),
                Err(Error::FrameTooLong { limit: 16 }) => errors += 1,
                Err(other) => panic!("{other}"),
            }
        }
        assert!(buffer.len() <= 1, "buffer grew to {}", buffer.len());
    }
    assert_eq!(errors, 1);
    buffer.extend_from_slice(b"zz\r");
    assert_eq!(codec.decode(&mut buffer).unwrap(), None);
    buffer.extend_from_slice(b"\nnext\r\n");
    assert_eq!(codec.decode(&mut buffer).unwrap(), complete(b"next"));
    assert_eq!(codec.decode(&mut buffer).unwrap(), None);
}

#[test]
fn an_overlong_message_with_a_self_overlapping_delimiter_ends_at_the_first_occurrence() {
    // While skipping, the last bytes of a read may begin "aab": "xa|ab" ends it.
    let mut codec = TerminatorCodec::new("aab").with_max_frame_length(3);
    let (frames, errors, _) = feed(&mut codec, b"xxxxxaaaabok1aab", 1);
    assert_eq!(errors, 1);
    assert_eq!(frames, vec![complete(b"ok1").unwrap()]);
}

#[test]
fn the_error_is_returned_once_per_overlong_message() {
    let input = b"long one\nok\nanother long\nfine\nlong at eof";
    for read_size in [1, 4, input.len()] {
        let mut codec = TerminatorCodec::new("\n").with_max_frame_length(4);
        let (frames, errors, _) = feed(&mut codec, input, read_size);
        assert_eq!(errors, 3, "by {read_size}");
        assert_eq!(
            frames,
            vec![complete(b"ok").unwrap(), complete(b"fine").unwrap()]
        );
    }
}

#[test]
fn set_terminator_during_a_skip_waits_for_the_overlong_message_to_end() {
    let mut codec = TerminatorCodec::new("\n").with_max_frame_length(2);
    let mut buffer = BytesMut::from("abcd");
    assert!(is_too_long(codec.decode(&mut buffer), 2));
    codec.set_terminator(";");
    buffer.extend_from_slice(b"e;");
    assert_eq!(codec.decode(&mut buffer).unwrap(), None, "still skipping");
    buffer.extend_from_slice(b"f\ng;");
    assert_eq!(codec.decode(&mut buffer).unwrap(), complete(b"g"));
}

#[test]
fn streaming_mode_ignores_the_limit() {
    let mut codec = TerminatorCodec::streaming("\n").with_max_frame_length(4);
    let (frames, errors, held) = feed(&mut codec, b"a message much longer than four\nok\n", 3);
    assert_eq!(errors, 0);
    assert_eq!(
        regroup(&frames),
        (
            vec![b"a message much longer than four".to_vec(), b"ok".to_vec()],
            vec![]
        )
    );
    assert!(held <= 3);

    let mut codec = TerminatorCodec::streaming(100u64).with_max_frame_length(4);
    let (frames, errors, _) = feed(&mut codec, &[b'y'; 100], 7);
    assert_eq!(errors, 0);
    assert_eq!(regroup(&frames), (vec![vec![b'y'; 100]], vec![]));
}

#[test]
fn a_flood_of_cr_hits_the_limit_in_whole_mode() {
    let mut codec = TerminatorCodec::new("\r\n").with_max_frame_length(1024);
    let mut flood = vec![b'\r'; 100_000];
    flood.extend_from_slice(b"\nafter\r\n");
    let (frames, errors, held) = feed(&mut codec, &flood, 100);
    assert_eq!(errors, 1);
    assert_eq!(frames, vec![complete(b"after").unwrap()]);
    assert!(held <= 1024 + 1 + 100, "held {held}");
}

#[test]
fn a_flood_of_cr_streams_holding_one_byte() {
    let mut codec = TerminatorCodec::streaming("\r\n");
    let mut buffer = BytesMut::new();
    let mut frames = Vec::new();
    for _ in 0..1000 {
        buffer.extend_from_slice(&[b'\r'; 100]);
        frames.extend(drain(&mut codec, &mut buffer));
        assert_eq!(&buffer[..], b"\r");
    }
    buffer.extend_from_slice(b"\n");
    frames.extend(drain(&mut codec, &mut buffer));
    let (messages, left) = regroup(&frames);
    assert_eq!(messages, vec![vec![b'\r'; 99_999]]);
    assert!(left.is_empty());
    assert!(buffer.is_empty());
}

#[test]
fn max_frame_length_accessors() {
    assert_eq!(DEFAULT_MAX_FRAME_LENGTH, 8 * 1024 * 1024);
    assert_eq!(
        TerminatorCodec::new("\n").max_frame_length(),
        DEFAULT_MAX_FRAME_LENGTH
    );
    assert_eq!(
        TerminatorCodec::new("\n")
            .with_max_frame_length(7)
            .max_frame_length(),
        7
    );
    assert!(TerminatorCodec::streaming("\n").is_streaming());
    assert!(!TerminatorCodec::new("\n").is_streaming());
}

// ------------------------------------------------------------------ Encoder

#[test]
fn encoders_write_verbatim() {
    let mut codec = TerminatorCodec::new("\r\n");
    let mut out = BytesMut::from("<");
    codec
        .encode(Bytes::from_static(b"bytes\r\n"), &mut out)
        .unwrap();
    codec.encode(&b"slice\xff"[..], &mut out).unwrap();
    codec.encode("str", &mut out).unwrap();
    codec.encode("", &mut out).unwrap();
    assert_eq!(&out[..], b"<bytes\r\nslice\xffstr");
}

// -------------------------------------------------------------------- Error

#[test]
fn error_display_and_source() {
    use std::error::Error as _;

    let error = Error::FrameTooLong { limit: 1024 };
    assert_eq!(
        error.to_string(),
        "message longer than the limit of 1024 bytes"
    );
    assert!(error.source().is_none());

    let error = Error::from(io::Error::new(
        io::ErrorKind::ConnectionReset,
        "reset by peer",
    ));
    assert!(matches!(&error, Error::Io(e) if e.kind() == io::ErrorKind::ConnectionReset));
    assert_eq!(error.to_string(), "connection failed: reset by peer");
    assert_eq!(error.source().unwrap().to_string(), "reset by peer");

    let error = Error::Producer(io::Error::other("disk gone"));
    assert_eq!(error.to_string(), "producer failed: disk gone");
    assert!(error.source().is_some());

    assert_eq!(
        Error::Closed.to_string(),
        "output refused: the channel is closed or closing"
    );
    assert!(Error::Closed.source().is_none());

    fn is_std_error<E: std::error::Error + Send + Sync + 'static>() {}
    is_std_error::<Error>();
}

// --------------------------------------------------------------- Terminator

#[test]
fn terminator_conversions() {
    let crlf = Terminator::Delimiter(Bytes::from_static(b"\r\n"));
    assert_eq!(Terminator::from("\r\n"), crlf);
    assert_eq!(Terminator::from(String::from("\r\n")), crlf);
    assert_eq!(Terminator::from(&b"\r\n"[..]), crlf);
    assert_eq!(Terminator::from(b"\r\n"), crlf);
    assert_eq!(Terminator::from(b"\r\n".to_vec()), crlf);
    assert_eq!(Terminator::from(Bytes::from_static(b"\r\n")), crlf);
    assert_eq!(Terminator::from(Some("\r\n")), crlf);
    assert_eq!(Terminator::from(Some(42u64)), Terminator::Length(42));
    assert_eq!(Terminator::from(42u64), Terminator::Length(42));
    assert_eq!(Terminator::from(42usize), Terminator::Length(42));
    assert_eq!(Terminator::from(0u64), Terminator::Length(0));
    assert_eq!(Terminator::from(None::<&str>), Terminator::None);
    assert_eq!(Terminator::from(None::<u64>), Terminator::None);
    assert_eq!(Terminator::default(), Terminator::None);
}

#[test]
fn an_empty_delimiter_is_no_terminator() {
    assert_eq!(Terminator::from(""), Terminator::None);
    assert_eq!(Terminator::from(String::new()), Terminator::None);
    assert_eq!(Terminator::from(&b""[..]), Terminator::None);
    assert_eq!(Terminator::from(b""), Terminator::None);
    assert_eq!(Terminator::from(Vec::new()), Terminator::None);
    assert_eq!(Terminator::from(Bytes::new()), Terminator::None);
    assert_eq!(Terminator::from(Some("")), Terminator::None);

    for mut codec in [TerminatorCodec::new(""), TerminatorCodec::streaming(b"")] {
        assert_eq!(codec.terminator(), &Terminator::None);
        let mut buffer = BytesMut::from("abc");
        assert_eq!(codec.decode(&mut buffer).unwrap(), partial(b"abc"));
    }
}

#[test]
fn terminator_delimiter_accessor() {
    assert_eq!(Terminator::from("\n").delimiter(), Some(&b"\n"[..]));
    assert_eq!(Terminator::Length(3).delimiter(), None);
    assert_eq!(Terminator::None.delimiter(), None);
}

#[test]
fn codecs_take_every_terminator_type() {
    assert_eq!(
        TerminatorCodec::new("\r\n").terminator(),
        &Terminator::from("\r\n")
    );
    assert_eq!(
        TerminatorCodec::new(b"\r\n").terminator(),
        &Terminator::from("\r\n")
    );
    assert_eq!(
        TerminatorCodec::new(42u64).terminator(),
        &Terminator::Length(42)
    );
    assert_eq!(
        TerminatorCodec::streaming(Bytes::from_static(b";")).terminator(),
        &Terminator::from(";")
    );
    let mut codec = TerminatorCodec::new(Terminator::None);
    codec.set_terminator(String::from("!"));
    assert_eq!(codec.terminator(), &Terminator::from("!"));
}

// -------------------------------------------------------------------- Frame

#[test]
fn frame_accessors() {
    let frame = Frame::Complete(Bytes::from_static(b"ab"));
    assert!(frame.is_complete());
    assert_eq!(frame.bytes(), &Bytes::from_static(b"ab"));
    assert_eq!(frame.into_bytes(), "ab");
    let frame = Frame::Partial(Bytes::from_static(b"cd"));
    assert!(!frame.is_complete());
    assert_eq!(frame.into_bytes(), "cd");
}

// ------------------------------------------------------ find_prefix_at_end

#[test]
fn find_prefix_at_end_as_in_cpython_test_asynchat() {
    // test_asynchat.TestHelperFunctions.test_find_prefix_at_end
    assert_eq!(find_prefix_at_end(b"qwerty\r", b"\r\n"), 1);
    assert_eq!(find_prefix_at_end(b"qwertydkjf", b"\r\n"), 0);
}

#[test]
fn find_prefix_at_end_edges() {
    assert_eq!(find_prefix_at_end(b"", b"\r\n"), 0);
    assert_eq!(find_prefix_at_end(b"abc", b""), 0);
    assert_eq!(
        find_prefix_at_end(b"\r\n", b"\r\n"),
        1 - 1,
        "a whole needle is not a proper prefix"
    );
    assert_eq!(find_prefix_at_end(b"x", b"x"), 0);
    assert_eq!(find_prefix_at_end(b"abc\r\n.", b"\r\n.\r\n"), 3);
    assert_eq!(find_prefix_at_end(b"\r\n.\r", b"\r\n.\r\n"), 4);
    assert_eq!(find_prefix_at_end(b"aaaa", b"aab"), 2);
    assert_eq!(find_prefix_at_end(b"aba", b"abab"), 3);
    assert_eq!(find_prefix_at_end(b"ab", b"abab"), 2);
    assert_eq!(find_prefix_at_end(b"a", b"aaaa"), 1);
    assert_eq!(find_prefix_at_end(b"aaaaaa", b"aaaa"), 3);
}

/// A decoder handed another buffer than the one it last searched does not
/// panic (a `Delimited` search resumes within the buffer it is given).
#[test]
fn another_buffer_never_panics() {
    let mut codec = TerminatorCodec::new("\r\n");
    assert_eq!(
        codec.decode(&mut BytesMut::from("0123456789")).unwrap(),
        None
    );
    let mut buffer = BytesMut::from("ab");
    assert_eq!(codec.decode(&mut buffer).unwrap(), None);
    buffer.extend_from_slice(b"\r\n");
    assert_eq!(
        codec.decode(&mut buffer).unwrap(),
        Some(Frame::Complete("ab".into()))
    );
}

/// What `decode_eof` hands out of a counted message counts toward it, in
/// both modes, should a reader go on after an end of input.
#[test]
fn a_count_goes_on_after_an_end_of_input() {
    for mut codec in [TerminatorCodec::new(5u64), TerminatorCodec::streaming(5u64)] {
        let mut buffer = BytesMut::from("abc");
        assert_eq!(
            codec.decode_eof(&mut buffer).unwrap(),
            Some(Frame::Partial("abc".into()))
        );
        buffer.extend_from_slice(b"defgh");
        assert_eq!(
            codec.decode(&mut buffer).unwrap(),
            Some(Frame::Complete("de".into()))
        );
        assert_eq!(codec.terminator(), &Terminator::None);
    }
}
