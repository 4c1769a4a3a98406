//! Adversarial input: what a hostile or broken peer can send, each with its
//! documented outcome. Memory is asserted through the codec's limits and
//! the length and capacity of the read buffer, never through timings.
//!
//! * a flood of a delimiter's prefix (`\r\r\r…` for `\r\n`): whole-frame mode
//!   fails with `FrameTooLong` at the limit and holds no more than the limit
//!   plus one read; streaming mode holds back one byte;
//! * one byte per read (slowloris) through a `Chat` over TCP: lines echo
//!   intact, and a line that never ends fails at the limit, not at its end;
//! * `Length(u64::MAX)` in streaming mode streams with an empty buffer;
//! * a frame exactly at the limit passes and one byte over fails, whether it
//!   arrives in one read or one byte per read;
//! * a `Length` above the limit fails at once, before any of it arrives;
//! * a peer that sends requests and never reads the replies: a handler that
//!   queues its replies through the `Sink` (`feed`) keeps its output queue
//!   within `out_buffer_size` and stops reading, instead of queueing without
//!   end.
//!
//! (The HTTP example's never-ending head and the RESP example's huge bulk
//! lengths are tested with those examples.)

use std::time::Duration;

use asynchat::{
    Chat, Error, Frame, Producer, Terminator, TerminatorCodec, DEFAULT_MAX_FRAME_LENGTH,
};
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream},
};
use tokio_util::codec::Decoder;

mod common;
use common::within;

/// What came out of one `decode` loop: the frames, and whether an error
/// (which must be `FrameTooLong`) came first.
#[derive(Debug, Default)]
struct Decoded {
    frames: Vec<Frame>,
    too_long: usize,
}

/// Decodes until the codec asks for more, as `Framed` does, counting
/// `FrameTooLong` errors (a `Chat` carries on after them).
fn decode_all(codec: &mut TerminatorCodec, buffer: &mut BytesMut) -> Decoded {
    let mut decoded = Decoded::default();
    loop {
        match codec.decode(buffer) {
            Ok(Some(frame)) => decoded.frames.push(frame),
            Ok(None) => return decoded,
            Err(Error::FrameTooLong { limit }) => {
                assert_eq!(limit, codec.max_frame_length());
                decoded.too_long += 1;
            }
            Err(error) => panic!("unexpected error: {error}"),
        }
    }
}

fn complete(bytes: &[u8]) -> Frame {
    Frame::Complete(Bytes::copy_from_slice(bytes))
}

// ---------------------------------------------------------------------------
// A flood of the delimiter's first byte.

/// 10 MiB of `\r` for `\r\n`, in reads of 4 KiB, against a 64 KiB limit: the
/// error comes at the first read that takes the message past the limit (the
/// last `\r` might begin the delimiter, so it is not counted yet), once; the
/// buffer never holds more than the limit plus one read, and its capacity
/// does not grow with the flood. Then the flood's delimiter comes, and the
/// next line decodes.
#[test]
fn a_flood_of_cr_fails_at_the_limit_in_whole_mode() {
    const LIMIT: usize = 64 * 1024;
    const READ: usize = 4096;
    const FLOOD: usize = 10 * 1024 * 1024;
    let mut codec = TerminatorCodec::new("\r\n").with_max_frame_length(LIMIT);
    let mut buffer = BytesMut::new();
    let read = [b'\r'; READ];
    let mut sent = 0;
    let mut failed_at = None;
    let mut largest_capacity = 0;
    while sent < FLOOD {
        buffer.extend_from_slice(&read);
        sent += READ;
        assert!(
            buffer.len() <= LIMIT + 1 + READ,
            "{} bytes buffered",
            buffer.len()
        );
        largest_capacity = largest_capacity.max(buffer.capacity());
        let decoded = decode_all(&mut codec, &mut buffer);
        assert!(decoded.frames.is_empty());
        if decoded.too_long > 0 {
            assert_eq!(decoded.too_long, 1);
            assert!(failed_at.is_none(), "the error came twice");
            failed_at = Some(sent);
        }
        // Held: at most the limit plus the `\r` that may begin `\r\n`.
        assert!(buffer.len() <= LIMIT + 1, "{} bytes held", buffer.len());
    }
    // The first read after which more than LIMIT bytes are known to be
    // data: LIMIT + 1 of them, and the `\r` that may begin the delimiter.
    assert_eq!(failed_at, Some((LIMIT + 2).div_ceil(READ) * READ));
    assert!(
        largest_capacity <= 4 * (LIMIT + READ),
        "capacity grew to {largest_capacity}"
    );
    // While it skips, the codec holds only a possible start of `\r\n`.
    assert!(buffer.len() <= 1);

    buffer.extend_from_slice(b"\nnext\r\n");
    let decoded = decode_all(&mut codec, &mut buffer);
    assert_eq!(
        decoded.too_long, 0,
        "the error is returned once per message"
    );
    assert_eq!(decoded.frames, [complete(b"next")]);
    assert!(buffer.is_empty());
}

/// The default limit applies when none is set: 8 MiB.
#[test]
fn a_flood_of_cr_fails_at_the_default_limit() {
    let mut codec = TerminatorCodec::new("\r\n");
    assert_eq!(codec.max_frame_length(), DEFAULT_MAX_FRAME_LENGTH);
    assert_eq!(DEFAULT_MAX_FRAME_LENGTH, 8 * 1024 * 1024);
    let mut buffer = BytesMut::new();
    let read = vec![b'\r'; 64 * 1024];
    let mut sent = 0;
    loop {
        buffer.extend_from_slice(&read);
        sent += read.len();
        let decoded = decode_all(&mut codec, &mut buffer);
        if decoded.too_long == 1 {
            break;
        }
        assert!(sent <= DEFAULT_MAX_FRAME_LENGTH, "no error past the limit");
    }
    assert_eq!(sent, DEFAULT_MAX_FRAME_LENGTH + read.len());
    assert!(buffer.len() <= 1);
}

/// Streaming mode needs no limit: it hands the `\r`s out as they come and
/// holds back only the last one, which may begin `\r\n`.
#[test]
fn a_flood_of_cr_streams_holding_one_byte() {
    const READ: usize = 4096;
    const FLOOD: usize = 10 * 1024 * 1024;
    let mut codec = TerminatorCodec::streaming("\r\n");
    let mut buffer = BytesMut::new();
    let read = [b'\r'; READ];
    let mut handed_out = 0;
    for _ in 0..FLOOD / READ {
        buffer.extend_from_slice(&read);
        let decoded = decode_all(&mut codec, &mut buffer);
        for frame in decoded.frames {
            let Frame::Partial(bytes) = frame else {
                panic!("a Complete in a flood of \\r");
            };
            assert!(bytes.iter().all(|&b| b == b'\r'));
            handed_out += bytes.len();
        }
        assert_eq!(buffer.len(), 1, "streaming mode holds one byte");
        assert!(
            buffer.capacity() <= 2 * READ,
            "capacity {}",
            buffer.capacity()
        );
    }
    assert_eq!(handed_out, FLOOD - 1);
    buffer.extend_from_slice(b"\n");
    assert_eq!(decode_all(&mut codec, &mut buffer).frames, [complete(b"")]);
    assert!(buffer.is_empty());
}

/// The same through a `Chat` over an in-memory pipe: the error comes once,
/// the `Chat` carries on, and the line after the flood is served.
#[tokio::test]
async fn a_flood_of_cr_through_a_chat() {
    const LIMIT: usize = 16 * 1024;
    let (client, server) = tokio::io::duplex(64 * 1024);
    let codec = TerminatorCodec::new("\r\n").with_max_frame_length(LIMIT);
    let mut chat = Chat::with_codec(server, codec);
    let writer = tokio::spawn(async move {
        let mut client = client;
        let flood = vec![b'\r'; 1024 * 1024];
        client.write_all(&flood).await?;
        client.write_all(b"\nok\r\n").await?;
        client.shutdown().await?;
        std::io::Result::Ok(client)
    });
    let mut errors = 0;
    let mut frames = Vec::new();
    within("the chat to end", async {
        while let Some(frame) = chat.next().await {
            match frame {
                Ok(frame) => frames.push(frame),
                Err(Error::FrameTooLong { limit: LIMIT }) => errors += 1,
                Err(error) => panic!("unexpected error: {error}"),
            }
        }
    })
    .await;
    within("the writer", writer).await.unwrap().unwrap();
    assert_eq!(errors, 1);
    assert_eq!(frames, [complete(b"ok")]);
}

// ---------------------------------------------------------------------------
// Slowloris: one byte per read, through a Chat over TCP.

/// A line server over `Chat`: echoes each line; answers `-ERR too long` to
/// an overlong one and carries on. Returns the number of lines echoed.
async fn line_server(stream: TcpStream, limit: usize) -> Result<usize, Error> {
    stream.set_nodelay(true)?;
    let codec = TerminatorCodec::new("\r\n").with_max_frame_length(limit);
    let mut chat = Chat::with_codec(stream, codec);
    let mut lines = 0;
    while let Some(frame) = chat.next().await {
        match frame {
            Ok(Frame::Complete(line)) => {
                lines += 1;
                chat.push(line);
                chat.push("\r\n");
            }
            Ok(Frame::Partial(_)) => {}
            Err(Error::FrameTooLong { .. }) => chat.push("-ERR too long\r\n"),
            Err(error) => return Err(error),
        }
    }
    Ok(lines)
}

/// Writes `bytes` one byte per write, with a pause between writes so that
/// each arrives in a read of its own.
async fn dribble(stream: &mut TcpStream, bytes: &[u8]) {
    for byte in bytes {
        stream.write_all(std::slice::from_ref(byte)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn read_exactly(stream: &mut TcpStream, length: usize) -> Vec<u8> {
    let mut reply = vec![0; length];
    within("a reply", stream.read_exact(&mut reply))
        .await
        .unwrap();
    reply
}

/// One byte per read: lines echo intact, a line exactly at the limit
/// passes, one byte over is refused, and a line that never ends is refused
/// as soon as it passes the limit (the server does not wait for its end,
/// nor buffer it), after which the connection carries on.
#[tokio::test]
async fn slowloris_one_byte_per_read() {
    const LIMIT: usize = 64;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        line_server(stream, LIMIT).await
    });
    let client = async {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.set_nodelay(true).unwrap();

        dribble(&mut stream, b"PING\r\n").await;
        assert_eq!(read_exactly(&mut stream, 6).await, b"PING\r\n");

        let at_limit = [b'x'; LIMIT];
        dribble(&mut stream, &at_limit).await;
        dribble(&mut stream, b"\r\n").await;
        let echo = read_exactly(&mut stream, LIMIT + 2).await;
        assert_eq!(&echo[..LIMIT], &at_limit[..]);

        let over = [b'y'; LIMIT + 1];
        dribble(&mut stream, &over).await;
        dribble(&mut stream, b"\r\n").await;
        assert_eq!(read_exactly(&mut stream, 15).await, b"-ERR too long\r\n");

        // A line that never ends: LIMIT + 1 bytes and a `\r` that might
        // begin the delimiter are not enough to tell...
        dribble(&mut stream, &[b'z'; LIMIT + 1]).await;
        dribble(&mut stream, b"\r").await;
        // ...one more byte is: the answer comes with no delimiter sent.
        dribble(&mut stream, b"z").await;
        assert_eq!(read_exactly(&mut stream, 15).await, b"-ERR too long\r\n");
        // The skip goes on, byte by byte, without an answer...
        dribble(&mut stream, &[b'z'; 200]).await;
        // ...until the line ends; then the next line is served.
        dribble(&mut stream, b"\r\nPONG\r\n").await;
        assert_eq!(read_exactly(&mut stream, 6).await, b"PONG\r\n");

        stream.shutdown().await.unwrap();
        let mut rest = Vec::new();
        within("the end", stream.read_to_end(&mut rest))
            .await
            .unwrap();
        assert!(rest.is_empty(), "unexpected {rest:?}");
    };
    within("the client", client).await;
    let lines = within("the server", server).await.unwrap().unwrap();
    assert_eq!(lines, 3);
}

// ---------------------------------------------------------------------------
// Length(u64::MAX).

/// In streaming mode a `Length` as large as `u64::MAX` is just a long
/// message: every read comes out at once as a `Partial`, the buffer is
/// empty after each, and the count goes down without overflow.
#[test]
fn length_u64_max_streams_with_an_empty_buffer() {
    const READ: usize = 64 * 1024;
    const TOTAL: usize = 256 * 1024 * 1024;
    let mut codec = TerminatorCodec::streaming(u64::MAX);
    let mut buffer = BytesMut::with_capacity(READ);
    let read = vec![0xA5; READ];
    let mut handed_out = 0;
    for _ in 0..TOTAL / READ {
        buffer.extend_from_slice(&read);
        let decoded = decode_all(&mut codec, &mut buffer);
        assert_eq!(decoded.frames.len(), 1);
        let frame = &decoded.frames[0];
        assert!(!frame.is_complete());
        handed_out += frame.bytes().len();
        assert!(buffer.is_empty());
        assert!(
            buffer.capacity() <= 2 * READ,
            "capacity {}",
            buffer.capacity()
        );
    }
    assert_eq!(handed_out, TOTAL);
    // It reads as set: a Length does not count down in `terminator()`.
    assert_eq!(codec.terminator(), &Terminator::Length(u64::MAX));
    // The end of input with nothing buffered: nothing more.
    assert_eq!(codec.decode_eof(&mut buffer).unwrap(), None);
}

/// Through a `Chat` over TCP: 32 MiB of a message announced as `u64::MAX`
/// bytes arrive as `Partial`s, none larger than the `Chat`'s read size.
#[tokio::test]
async fn length_u64_max_through_a_streaming_chat() {
    const TOTAL: usize = 32 * 1024 * 1024;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let writer = tokio::spawn(async move {
        let mut stream = TcpStream::connect(address).await?;
        let chunk = vec![7u8; 1024 * 1024];
        for _ in 0..TOTAL / chunk.len() {
            stream.write_all(&chunk).await?;
        }
        stream.shutdown().await?;
        std::io::Result::Ok(())
    });
    let (stream, _) = within("accept", listener.accept()).await.unwrap();
    let mut chat = Chat::with_codec(stream, TerminatorCodec::streaming(u64::MAX));
    let mut received = 0;
    let mut largest = 0;
    within("the stream", async {
        while let Some(frame) = chat.next().await {
            let Frame::Partial(bytes) = frame.unwrap() else {
                panic!("u64::MAX bytes cannot complete");
            };
            received += bytes.len();
            largest = largest.max(bytes.len());
        }
    })
    .await;
    within("the writer", writer).await.unwrap().unwrap();
    assert_eq!(received, TOTAL);
    assert!(
        largest <= chat.in_buffer_size(),
        "a frame of {largest} bytes"
    );
}

// ---------------------------------------------------------------------------
// At the limit, and one byte over.

/// Feeds `input` in reads of `read_size`, checking after each decode loop
/// that the buffer holds no more than the limit plus a possible start of the
/// delimiter.
fn feed(codec: &mut TerminatorCodec, input: &[u8], read_size: usize) -> Decoded {
    let held = codec
        .max_frame_length()
        .saturating_add(codec.terminator().delimiter().map_or(0, |d| d.len() - 1));
    let mut all = Decoded::default();
    let mut buffer = BytesMut::new();
    for read in input.chunks(read_size) {
        buffer.extend_from_slice(read);
        let decoded = decode_all(codec, &mut buffer);
        all.frames.extend(decoded.frames);
        all.too_long += decoded.too_long;
        assert!(buffer.len() <= held, "{} bytes held", buffer.len());
    }
    all
}

/// Both modes of arrival: all in one read, and one byte per read.
const ARRIVALS: [usize; 2] = [usize::MAX, 1];

/// The limit of the delimited frames below.
const LIMIT: usize = 32;

/// Feeds `length` bytes of `m`, then `after`, each ended by the delimiter,
/// to a codec limited to [`LIMIT`]: once for each delimiter and each of the
/// [`ARRIVALS`]. What each decoded, after the name of its case.
fn feed_each_arrival(length: usize) -> Vec<(String, Decoded)> {
    let mut cases = Vec::new();
    for delimiter in ["\n", "\r\n", "\r\n\r\n"] {
        for read_size in ARRIVALS {
            let delimiter_bytes = delimiter.as_bytes();
            let message = vec![b'm'; length];
            let input = [&message, delimiter_bytes, b"after", delimiter_bytes].concat();
            let mut codec = TerminatorCodec::new(delimiter).with_max_frame_length(LIMIT);
            let decoded = feed(&mut codec, &input, read_size);
            cases.push((format!("{delimiter:?} by {read_size}"), decoded));
        }
    }
    cases
}

#[test]
fn a_delimited_frame_exactly_at_the_limit_passes() {
    for (case, decoded) in feed_each_arrival(LIMIT) {
        assert_eq!(decoded.too_long, 0, "{case}");
        let message = complete(&[b'm'; LIMIT]);
        assert_eq!(decoded.frames, [message, complete(b"after")], "{case}");
    }
}

#[test]
fn a_delimited_frame_one_byte_over_the_limit_fails_and_decoding_resumes() {
    for (case, decoded) in feed_each_arrival(LIMIT + 1) {
        assert_eq!(decoded.too_long, 1, "{case}");
        assert_eq!(decoded.frames, [complete(b"after")], "{case}");
    }
}

/// A frame at the limit whose delimiter arrives byte by byte: the bytes of a
/// partial delimiter held at the end are not counted against the limit.
#[test]
fn a_frame_at_the_limit_with_a_long_delimiter_arriving_byte_by_byte() {
    let limit = 8;
    let mut codec = TerminatorCodec::new("\r\n.\r\n").with_max_frame_length(limit);
    let mut buffer = BytesMut::from(&b"12345678"[..]);
    for byte in b"\r\n.\r" {
        assert!(decode_all(&mut codec, &mut buffer).frames.is_empty());
        buffer.extend_from_slice(&[*byte]);
    }
    let decoded = decode_all(&mut codec, &mut buffer);
    assert_eq!(decoded.too_long, 0);
    assert_eq!(buffer.len(), limit + 4);
    buffer.extend_from_slice(b"\n");
    assert_eq!(
        decode_all(&mut codec, &mut buffer).frames,
        [complete(b"12345678")]
    );
}

#[test]
fn a_length_frame_exactly_at_the_limit_passes() {
    for read_size in ARRIVALS {
        let limit = 32;
        let mut codec = TerminatorCodec::new(limit as u64).with_max_frame_length(limit);
        let decoded = feed(&mut codec, &[b'n'; 32], read_size);
        assert_eq!(decoded.too_long, 0);
        assert_eq!(decoded.frames, [complete(&[b'n'; 32])]);
    }
}

#[test]
fn a_length_frame_one_byte_over_the_limit_fails_and_its_bytes_are_skipped() {
    for read_size in ARRIVALS {
        let limit = 32;
        let mut codec = TerminatorCodec::new(limit as u64 + 1).with_max_frame_length(limit);
        let decoded = feed(&mut codec, &[b'n'; 33], read_size);
        assert_eq!(decoded.too_long, 1);
        assert!(decoded.frames.is_empty(), "{:?}", decoded.frames);
        // The skipped count ended: no terminator until the next is set.
        assert_eq!(codec.terminator(), &Terminator::None);
    }
}

// ---------------------------------------------------------------------------
// A Length above the limit fails at once.

/// Before a byte of it arrives: a peer cannot make the codec wait for, or
/// reserve, a count it will not buffer.
#[test]
fn a_length_above_the_limit_fails_at_once() {
    for length in [1025, 1 << 40, u64::MAX] {
        let mut codec = TerminatorCodec::new(length).with_max_frame_length(1024);
        let mut buffer = BytesMut::new();
        assert!(matches!(
            codec.decode(&mut buffer),
            Err(Error::FrameTooLong { limit: 1024 })
        ));
        assert_eq!(buffer.capacity(), 0, "nothing was reserved");
        // Its bytes are then dropped as they come, never held.
        let mut to_drop = length.min(64 * 512) as usize;
        while to_drop > 0 {
            let read = to_drop.min(512);
            buffer.extend_from_slice(&[0; 512][..read]);
            to_drop -= read;
            assert_eq!(codec.decode(&mut buffer).unwrap(), None);
            assert!(buffer.is_empty());
        }
    }
}

/// The same in the middle of a protocol: a header announces a body larger
/// than the limit; setting the count fails at the next decode, with the
/// body's first bytes already buffered.
#[test]
fn a_length_above_the_default_limit_fails_at_once_mid_stream() {
    let mut codec = TerminatorCodec::new("\r\n");
    let mut buffer = BytesMut::from(&b"$1099511627776\r\nxxxx"[..]);
    let header = codec.decode(&mut buffer).unwrap().unwrap();
    let length: u64 = std::str::from_utf8(&header.bytes()[1..])
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(length, 1 << 40);
    codec.set_terminator(length + 2);
    assert!(matches!(
        codec.decode(&mut buffer),
        Err(Error::FrameTooLong {
            limit: DEFAULT_MAX_FRAME_LENGTH
        })
    ));
    assert_eq!(codec.decode(&mut buffer).unwrap(), None);
    assert!(buffer.is_empty(), "the body's bytes are dropped, not held");
}

/// A codec limited to 8 bytes, as a RESP-like server holds it once it has
/// refused the bulk length `$16` at the start of `input`: the count set
/// for the body failed, and the server went back to commands by `\r\n`.
/// The codec, and the buffer with the rest of `input`.
fn after_a_refused_length(input: &[u8]) -> (TerminatorCodec, BytesMut) {
    let mut codec = TerminatorCodec::new("\r\n").with_max_frame_length(8);
    let mut buffer = BytesMut::from(input);
    assert_eq!(codec.decode(&mut buffer).unwrap(), Some(complete(b"$16")));
    codec.set_terminator(16u64 + 2);
    assert!(matches!(
        codec.decode(&mut buffer),
        Err(Error::FrameTooLong { limit: 8 })
    ));
    // The server answers the error and goes back to commands.
    codec.set_terminator("\r\n");
    (codec, buffer)
}

/// A RESP-like server answers a bulk length above the limit with an error
/// and goes back to reading commands by `\r\n` at once: right after the
/// error is the only moment it can (it is told nothing when the skip ends).
/// The terminator set during the skip applies after it, so the body's bytes
/// are skipped, not decoded as commands.
#[test]
fn after_a_skipped_length_the_next_delimiter_applies_after_the_skip() {
    let (mut codec, mut buffer) = after_a_refused_length(b"$16\r\n0123456789abcdef\r\nPING\r\n");
    let decoded = decode_all(&mut codec, &mut buffer);
    assert_eq!(decoded.frames, [complete(b"PING")]);
}

/// The same with the body arriving after the error, one byte per read.
#[test]
fn after_a_skipped_length_arriving_byte_by_byte_the_next_delimiter_applies() {
    let (mut codec, mut buffer) = after_a_refused_length(b"$16\r\n");
    let mut frames = Vec::new();
    for byte in b"0123456789abcdef\r\nPING\r\n" {
        buffer.extend_from_slice(&[*byte]);
        let decoded = decode_all(&mut codec, &mut buffer);
        assert_eq!(decoded.too_long, 0);
        frames.extend(decoded.frames);
        assert!(buffer.len() <= 8 + 1);
    }
    assert_eq!(frames, [complete(b"PING")]);
}

// ---------------------------------------------------------------------------
// A peer that never reads its replies.

/// The peer pipelines 200,000 requests without reading a reply, over
/// sockets with small kernel buffers. The server queues each reply with
/// `feed`, which waits while `out_buffer_size` bytes are queued: its queue
/// never holds more than that plus one reply, and it stops reading while it
/// cannot write (a `push` per request would have queued all 1.2 MB). When
/// the peer reads at last, every reply arrives, in order.
#[tokio::test]
async fn a_peer_that_never_reads_meets_backpressure() {
    const REQUESTS: usize = 200_000;
    const OUT: usize = 1024;
    let listener = TcpSocket::new_v4().unwrap();
    listener.set_send_buffer_size(4096).unwrap();
    listener.set_recv_buffer_size(4096).unwrap();
    listener.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = listener.listen(16).unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut chat = Chat::new(stream, "\r\n");
        chat.set_out_buffer_size(OUT);
        let mut served = 0;
        let mut most_queued = 0;
        while let Some(frame) = chat.next().await {
            let Frame::Complete(line) = frame? else {
                panic!("a partial request");
            };
            assert_eq!(line, "PING");
            chat.feed(Producer::from("PONG\r\n")).await?;
            most_queued = most_queued.max(chat.queued_output_len());
            served += 1;
        }
        Ok::<_, Error>((served, most_queued))
    });

    let client = TcpSocket::new_v4().unwrap();
    client.set_recv_buffer_size(4096).unwrap();
    client.set_send_buffer_size(4096).unwrap();
    let stream = within("connect", client.connect(address)).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let requests = "PING\r\n".repeat(REQUESTS);
    let writing = tokio::spawn(async move {
        writer.write_all(requests.as_bytes()).await?;
        writer.shutdown().await
    });
    // Not reading yet: the server must be stuck on its writes, not reading
    // and queueing, so the requests (far more than the kernel's buffers
    // hold) cannot all be written. Whenever this is checked, it holds.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !writing.is_finished(),
        "the server read every request while its replies waited"
    );
    let mut replies = Vec::new();
    within("the replies", reader.read_to_end(&mut replies))
        .await
        .unwrap();
    within("the writer", writing).await.unwrap().unwrap();
    let (served, most_queued) = within("the server", server).await.unwrap().unwrap();
    assert_eq!(served, REQUESTS);
    assert_eq!(replies.len(), REQUESTS * 6);
    assert!(replies.chunks(6).all(|reply| reply == b"PONG\r\n"));
    assert!(most_queued <= OUT + 6, "{most_queued} bytes queued");
}
