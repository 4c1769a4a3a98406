//! Faults: what happens to a `Chat` when the connection or a producer fails
//! under it. Each ends with a clear `Error` or a clean end of stream, never
//! a panic or a hang: every wait is bounded by [`within`], every spawned task
//! is joined within it, and each test ends by checking that no task of its
//! runtime is left alive.
//!
//! * the peer resets the connection during a long producer: `Error::Io`;
//! * the peer closes mid-frame: the frames, the partial one as
//!   `Frame::Partial`, then the end of the stream;
//! * a producer's stream or reader fails: `Error::Producer`, after the bytes
//!   drawn before the failure went out;
//! * the peer shuts its read side: the `Chat` still reads; its writes end in
//!   `Error::Io` when the peer goes, or it ends cleanly;
//! * the `Chat` is dropped with output queued: no panic, the peer sees EOF;
//! * the input ends (a read of 0 bytes) at every point of a conversation,
//!   with reads of every size and pending reads and writes in between: the
//!   frames, a `Partial` of the rest, a clean end.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use asynchat::{Chat, Error, Frame, Producer, TerminatorCodec};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpStream,
    runtime::Handle,
    sync::oneshot,
};

mod common;
use common::{reset, tcp_pair, within};

/// Every task spawned by the test has ended.
fn assert_no_task_left() {
    assert_eq!(
        Handle::current().metrics().num_alive_tasks(),
        0,
        "a task is still alive"
    );
}

/// Runs `chat` to the end of its stream, collecting what it yields.
async fn run_to_end<T>(mut chat: Chat<T>) -> Vec<Result<Frame, Error>>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut items = Vec::new();
    while let Some(item) = chat.next().await {
        items.push(item);
    }
    // The stream stays ended.
    assert!(chat.next().await.is_none());
    items
}

fn is_io(item: &Result<Frame, Error>) -> bool {
    matches!(item, Err(Error::Io(_)))
}

// ---------------------------------------------------------------------------
// The peer resets during a long producer.

/// A 64 GiB producer (never in memory: drawn `out_buffer_size` at a time)
/// is being written when the peer resets: the stream yields `Error::Io`
/// and ends.
#[tokio::test]
async fn the_peer_resets_during_a_long_producer() {
    let (mut client, server) = tcp_pair().await;
    let server = tokio::spawn(async move {
        let mut chat = Chat::new(server, "\r\n");
        chat.push_with_producer(Producer::from_reader(tokio::io::repeat(b'x').take(1 << 36)));
        run_to_end(chat).await
    });
    let mut start = vec![0; 1 << 20];
    within("the first MiB", client.read_exact(&mut start))
        .await
        .unwrap();
    assert!(start.iter().all(|&byte| byte == b'x'));
    reset(client);
    let items = within("the server", server).await.unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(is_io(&items[0]), "{items:?}");
    assert_no_task_left();
}

/// The same through the `Sink`: `flush` fails with `Error::Io`.
#[tokio::test]
async fn the_peer_resets_during_a_long_producer_sent_through_the_sink() {
    let (mut client, server) = tcp_pair().await;
    let server = tokio::spawn(async move {
        let mut chat = Chat::new(server, "\r\n");
        let body = Producer::from_reader(tokio::io::repeat(b'y').take(1 << 36));
        chat.send(body).await
    });
    let mut start = vec![0; 1 << 20];
    within("the first MiB", client.read_exact(&mut start))
        .await
        .unwrap();
    reset(client);
    let result = within("the server", server).await.unwrap();
    assert!(matches!(result, Err(Error::Io(_))), "{result:?}");
    assert_no_task_left();
}

// ---------------------------------------------------------------------------
// The peer closes mid-frame.

/// Whole-frame mode: the complete line, then the unterminated rest as one
/// `Partial`, then the end; the reply to the complete line still goes out.
#[tokio::test]
async fn the_peer_closes_mid_frame() {
    let (mut client, server) = tcp_pair().await;
    let server = tokio::spawn(async move {
        let mut chat = Chat::new(server, "\r\n");
        let mut items = Vec::new();
        while let Some(item) = chat.next().await {
            if let Ok(Frame::Complete(line)) = &item {
                chat.push(line.clone());
                chat.push("\r\n");
            }
            items.push(item);
        }
        items
    });
    client.write_all(b"one\r\ntwo, never end").await.unwrap();
    client.shutdown().await.unwrap();
    let mut replies = Vec::new();
    within("the replies", client.read_to_end(&mut replies))
        .await
        .unwrap();
    assert_eq!(replies, b"one\r\n");
    let items: Vec<Frame> = within("the server", server)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        items,
        [
            Frame::Complete(Bytes::from_static(b"one")),
            Frame::Partial(Bytes::from_static(b"two, never end")),
        ]
    );
    assert_no_task_left();
}

/// Streaming mode, the peer gone altogether (closed, not half-closed): the
/// partial message comes out in `Partial`s, all of it, then the end.
#[tokio::test]
async fn the_peer_closes_mid_frame_streaming() {
    let (mut client, server) = tcp_pair().await;
    let server = tokio::spawn(async move {
        run_to_end(Chat::with_codec(
            server,
            TerminatorCodec::streaming("\r\n.\r\n"),
        ))
        .await
    });
    let mut input = b"HELO\r\n.\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'b', 300_000));
    input.extend_from_slice(b"\r\n.\r");
    client.write_all(&input).await.unwrap();
    drop(client);
    let items = within("the server", server).await.unwrap();
    let mut frames = items.into_iter().map(Result::unwrap);
    assert_eq!(
        frames.next(),
        Some(Frame::Complete(Bytes::from_static(b"HELO")))
    );
    let mut rest = Vec::new();
    for frame in frames {
        let Frame::Partial(bytes) = frame else {
            panic!("a second Complete");
        };
        rest.extend_from_slice(&bytes);
    }
    assert_eq!(rest, &input[9..]);
    assert_no_task_left();
}

// ---------------------------------------------------------------------------
// A producer fails.

/// The stream fails after two pieces: the bytes queued before it and its
/// pieces go out, in order; then `Error::Producer` with the stream's error;
/// what was queued after it never goes out; the stream ends.
#[tokio::test]
async fn a_producer_stream_fails() {
    let (mut client, server) = tcp_pair().await;
    let server = tokio::spawn(async move {
        let mut chat = Chat::new(server, "\r\n");
        chat.push("hello\r\n");
        chat.push_with_producer(Producer::from_stream(futures::stream::iter([
            Ok(Bytes::from_static(b"first ")),
            Ok(Bytes::from_static(b"second\r\n")),
            Err(io::Error::other("disk failed")),
            Ok(Bytes::from_static(b"after the error\r\n")),
        ])));
        chat.push("never\r\n");
        run_to_end(chat).await
    });
    let items = within("the server", server).await.unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    match &items[0] {
        Err(Error::Producer(error)) => assert_eq!(error.to_string(), "disk failed"),
        other => panic!("expected Error::Producer, got {other:?}"),
    }
    let mut received = Vec::new();
    within("EOF", client.read_to_end(&mut received))
        .await
        .unwrap();
    assert_eq!(received, b"hello\r\nfirst second\r\n");
    assert_no_task_left();
}

/// A reader that yields `good` bytes, then fails.
struct FailingReader {
    good: usize,
}

impl AsyncRead for FailingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.good == 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated file",
            )));
        }
        let n = self.good.min(buf.remaining()).min(1000);
        buf.put_slice(&vec![b'r'; n]);
        self.good -= n;
        Poll::Ready(Ok(()))
    }
}

/// A reader producer (a file, say) that fails part way: `Error::Producer`,
/// after its good bytes; the `Chat` stays usable for nothing else.
#[tokio::test]
async fn a_producer_reader_fails() {
    let (mut client, server) = tcp_pair().await;
    let server = tokio::spawn(async move {
        let mut chat = Chat::new(server, "\r\n");
        chat.push_with_producer(Producer::from_reader(FailingReader { good: 100_000 }));
        let flushed = chat.flush().await;
        (flushed, run_to_end(chat).await)
    });
    let (flushed, items) = within("the server", server).await.unwrap();
    match flushed {
        Err(Error::Producer(error)) => assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof),
        other => panic!("expected Error::Producer, got {other:?}"),
    }
    // The error was handed out once, through the Sink; the stream then
    // ends, or hands out nothing but an end.
    assert!(items.iter().all(Result::is_err), "{items:?}");
    let mut received = Vec::new();
    within("EOF", client.read_to_end(&mut received))
        .await
        .unwrap();
    assert_eq!(received.len(), 100_000);
    assert_no_task_left();
}

// ---------------------------------------------------------------------------
// The peer shuts its read side.

/// Shuts the read side of a tokio `TcpStream` (`shutdown(Read)` exists only
/// on the std form).
fn shut_read_side(stream: TcpStream) -> TcpStream {
    let std = stream.into_std().unwrap();
    std.shutdown(std::net::Shutdown::Read).unwrap();
    TcpStream::from_std(std).unwrap()
}

/// The client shuts its read side and keeps sending requests; the server
/// answers each and pushes 64 MiB the client will never read. The `Chat`
/// still reads every request while its writes wait; when the client goes,
/// it ends with `Error::Io` (or, should the kernel have swallowed all the
/// output, a clean end): no hang.
#[tokio::test]
async fn the_peer_shuts_its_read_side_while_the_chat_writes() {
    let (client, server) = tcp_pair().await;
    let (three_pings, pinged) = oneshot::channel();
    let server = tokio::spawn(async move {
        let mut chat = Chat::new(server, "\r\n");
        let mut three_pings = Some(three_pings);
        let mut pings = 0;
        let mut error = None;
        while let Some(item) = chat.next().await {
            match item {
                Ok(Frame::Complete(line)) if line == "BIG" => {
                    chat.push(Bytes::from(vec![0; 64 << 20]));
                }
                Ok(Frame::Complete(line)) if line == "PING" => {
                    pings += 1;
                    chat.push("PONG\r\n");
                    if pings == 3 {
                        three_pings.take().unwrap().send(()).unwrap();
                    }
                }
                Ok(frame) => panic!("unexpected {frame:?}"),
                Err(e) => {
                    assert!(error.is_none(), "a second error");
                    error = Some(e);
                }
            }
        }
        (pings, error)
    });
    let mut client = shut_read_side(client);
    client
        .write_all(b"BIG\r\nPING\r\nPING\r\nPING\r\n")
        .await
        .unwrap();
    within("three pings", pinged).await.unwrap();
    drop(client);
    let (pings, error) = within("the server", server).await.unwrap();
    assert_eq!(pings, 3);
    assert!(matches!(error, None | Some(Error::Io(_))), "{error:?}");
    assert_no_task_left();
}

/// The client shuts its read side, asks for a short reply and to close:
/// the reply fits in the kernel's buffers, the `Chat` closes and its stream
/// ends cleanly.
#[tokio::test]
async fn the_peer_shuts_its_read_side_and_the_chat_closes_cleanly() {
    let (client, server) = tcp_pair().await;
    let server = tokio::spawn(async move {
        let mut chat = Chat::new(server, "\r\n");
        let mut items = Vec::new();
        while let Some(item) = chat.next().await {
            match &item {
                Ok(Frame::Complete(line)) if line == "QUIT" => {
                    chat.push("bye\r\n");
                    chat.close_when_done();
                }
                Ok(Frame::Complete(_)) => chat.push("PONG\r\n"),
                _ => {}
            }
            items.push(item);
        }
        items
    });
    let mut client = shut_read_side(client);
    client.write_all(b"PING\r\nQUIT\r\n").await.unwrap();
    let items = within("the server", server).await.unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(items.iter().all(Result::is_ok), "{items:?}");
    drop(client);
    assert_no_task_left();
}

// ---------------------------------------------------------------------------
// The Chat dropped with output queued.

/// 32 MiB queued, one poll (which writes what the socket takes), then the
/// `Chat` is dropped: no panic; the peer gets a prefix of the output, then
/// EOF.
#[tokio::test]
async fn the_chat_dropped_with_output_queued() {
    let (mut client, server) = tcp_pair().await;
    let mut chat = Chat::new(server, "\r\n");
    chat.push(Bytes::from(vec![b'q'; 32 << 20]));
    chat.push("tail\r\n");
    chat.push_with_producer(Producer::from_reader(tokio::io::repeat(b'q').take(1 << 30)));
    assert!(futures::poll!(chat.next()).is_pending());
    drop(chat);
    let mut received = Vec::new();
    within("EOF", client.read_to_end(&mut received))
        .await
        .unwrap();
    assert!(!received.is_empty() && received.len() < 32 << 20);
    assert!(received.iter().all(|&byte| byte == b'q'));
    assert_no_task_left();
}

/// Dropped before any poll, with a close queued too: nothing was sent, the
/// peer sees EOF at once.
#[tokio::test]
async fn the_chat_dropped_before_any_poll() {
    let (mut client, server) = tcp_pair().await;
    let mut chat = Chat::new(server, "\r\n");
    chat.push("never sent\r\n");
    chat.close_when_done();
    drop(chat);
    let mut received = Vec::new();
    within("EOF", client.read_to_end(&mut received))
        .await
        .unwrap();
    assert!(received.is_empty());
    assert_no_task_left();
}

/// A `Chat` in its own task, aborted while it writes: the task ends, the
/// peer sees the end of the connection.
#[tokio::test]
async fn a_chat_task_aborted_while_writing() {
    let (mut client, server) = tcp_pair().await;
    let task = tokio::spawn(async move {
        let mut chat = Chat::new(server, "\r\n");
        chat.push_with_producer(Producer::from_reader(tokio::io::repeat(b'a').take(1 << 36)));
        run_to_end(chat).await
    });
    let mut start = [0; 1024];
    within("output", client.read_exact(&mut start))
        .await
        .unwrap();
    task.abort();
    let joined = within("the aborted task", task).await;
    assert!(joined.unwrap_err().is_cancelled());
    // Drain what was sent; the connection then ends.
    let mut sink = Vec::new();
    within("EOF", client.read_to_end(&mut sink)).await.unwrap();
    assert_no_task_left();
}

// ---------------------------------------------------------------------------
// The input ends at every point of a conversation.

/// An in-memory connection whose input is `input` and then EOF: reads of at
/// most `read_size` bytes, writes of at most `write_size`, and when
/// `pending` every other read and write first returns `Pending` (waking at
/// once), as a socket would.
struct Scripted {
    input: Bytes,
    read_size: usize,
    write_size: usize,
    pending: bool,
    read_turn: bool,
    write_turn: bool,
    output: Vec<u8>,
    shut_down: bool,
}

impl Scripted {
    fn new(input: Bytes, read_size: usize, write_size: usize, pending: bool) -> Self {
        Scripted {
            input,
            read_size,
            write_size,
            pending,
            read_turn: false,
            write_turn: false,
            output: Vec::new(),
            shut_down: false,
        }
    }
}

/// Returns `Pending` (and wakes at once) every other call when asked to.
fn take_turn(pending: bool, turn: &mut bool, cx: &mut Context<'_>) -> bool {
    if !pending {
        return false;
    }
    *turn = !*turn;
    if *turn {
        cx.waker().wake_by_ref();
    }
    *turn
}

impl AsyncRead for Scripted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if take_turn(this.pending, &mut this.read_turn, cx) {
            return Poll::Pending;
        }
        // Past the end, every read is a read of 0 bytes.
        let n = this.read_size.min(buf.remaining()).min(this.input.len());
        buf.put_slice(&this.input.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        assert!(!this.shut_down, "a write after shutdown");
        if take_turn(this.pending, &mut this.write_turn, cx) {
            return Poll::Pending;
        }
        let n = this.write_size.min(buf.len());
        this.output.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().shut_down = true;
        Poll::Ready(Ok(()))
    }
}

/// One message of the conversation: where it starts, where its body ends,
/// where its terminator ends, and the reply it gets.
struct Span {
    start: usize,
    end: usize,
    after: usize,
    reply: &'static [u8],
}

/// An HTTP-like conversation: heads ended by `\r\n\r\n`, bodies by
/// `Content-Length` (0 included, and a body made of delimiter bytes), and a
/// `QUIT` that closes when done; with its messages' spans.
fn conversation() -> (Bytes, Vec<Span>) {
    // (message, terminator length: a delimiter's or 0 for a body, reply)
    let messages: [(&[u8], usize, &[u8]); 9] = [
        (b"GET /a HTTP/1.1\r\nHost: x", 4, b"200 /a\r\n"),
        (b"POST /b HTTP/1.1\r\nContent-Length: 5", 4, b""),
        (b"hello", 0, b"200 body of 5\r\n"),
        (b"POST /c HTTP/1.1\r\nContent-Length: 0", 4, b""),
        (b"", 0, b"200 body of 0\r\n"),
        (b"POST /d HTTP/1.1\r\nContent-Length: 3", 4, b""),
        (b"\r\n\r", 0, b"200 body of 3\r\n"),
        (b"GET /e HTTP/1.1", 4, b"200 /e\r\n"),
        (b"QUIT", 4, b"bye\r\n"),
    ];
    let mut input = Vec::new();
    let mut spans = Vec::new();
    for (message, terminator, reply) in messages {
        let start = input.len();
        input.extend_from_slice(message);
        let end = input.len();
        input.extend_from_slice(&b"\r\n\r\n"[..terminator]);
        spans.push(Span {
            start,
            end,
            after: input.len(),
            reply,
        });
    }
    (Bytes::from(input), spans)
}

/// The server's side of the conversation.
async fn serve<T>(mut chat: Chat<T>) -> (Vec<Frame>, T)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut frames = Vec::new();
    let mut in_body = false;
    while let Some(frame) = chat.next().await {
        let frame = frame.expect("no error in a well-formed conversation");
        if let Frame::Complete(message) = &frame {
            if in_body {
                chat.push(format!("200 body of {}\r\n", message.len()));
                chat.set_terminator("\r\n\r\n");
                in_body = false;
            } else if message == "QUIT" {
                chat.push("bye\r\n");
                chat.close_when_done();
            } else if let Some(length) = content_length(message) {
                chat.set_terminator(length);
                in_body = true;
            } else {
                let path = message.split(|&b| b == b' ').nth(1).unwrap();
                chat.push(format!("200 {}\r\n", String::from_utf8_lossy(path)));
            }
        }
        frames.push(frame);
    }
    (frames, chat.into_parts().io)
}

fn content_length(head: &[u8]) -> Option<u64> {
    let head = std::str::from_utf8(head).ok()?;
    let value = head
        .lines()
        .find_map(|line| line.strip_prefix("Content-Length: "))?;
    value.parse().ok()
}

/// For every k, the input ends after k bytes: the messages wholly within
/// them come out as `Complete` and get their replies, the rest comes out as
/// one `Partial`, and the stream ends; with reads of 1, 3 and 4096 bytes,
/// writes of 1 and 4096 bytes, with and without pending turns.
#[tokio::test]
async fn the_input_ends_at_every_point_of_a_conversation() {
    let (input, spans) = conversation();
    let mut runs = 0;
    for k in 0..=input.len() {
        // What the input's first k bytes must give.
        let done = spans.iter().take_while(|span| span.after <= k).count();
        let mut expected: Vec<Frame> = spans[..done]
            .iter()
            .map(|span| Frame::Complete(input.slice(span.start..span.end)))
            .collect();
        let rest_start = spans.get(done).map_or(k, |span| span.start);
        if rest_start < k {
            expected.push(Frame::Partial(input.slice(rest_start..k)));
        }
        let replies: Vec<u8> = spans[..done]
            .iter()
            .flat_map(|span| span.reply.iter().copied())
            .collect();
        let closed = done == spans.len();

        for read_size in [1, 3, 4096] {
            for write_size in [1, 4096] {
                for pending in [false, true] {
                    let io = Scripted::new(input.slice(..k), read_size, write_size, pending);
                    let (frames, io) =
                        within("the conversation", serve(Chat::new(io, "\r\n\r\n"))).await;
                    let case =
                        format!("k={k} read={read_size} write={write_size} pending={pending}");
                    assert_eq!(frames, expected, "{case}");
                    assert_eq!(io.output, replies, "{case}");
                    assert_eq!(io.shut_down, closed, "{case}");
                    runs += 1;
                }
            }
        }
    }
    assert_eq!(runs, (input.len() + 1) * 12);
    assert_no_task_left();
}

/// The same over TCP, for a few cut points: the client sends k bytes and
/// half-closes; the server task ends cleanly and is joined.
#[tokio::test]
async fn the_input_ends_mid_conversation_over_tcp() {
    let (input, spans) = conversation();
    for k in [
        0,
        1,
        spans[1].after - 1,
        spans[2].end - 2,
        spans[6].after,
        input.len() - 1,
    ] {
        let (mut client, server) = tcp_pair().await;
        let server = tokio::spawn(serve(Chat::new(server, "\r\n\r\n")));
        client.write_all(&input[..k]).await.unwrap();
        client.shutdown().await.unwrap();
        // The server hands its connection back: join it, then drop that.
        let (frames, _) = within("the server", server).await.unwrap();
        let mut replies = Vec::new();
        within("the replies", client.read_to_end(&mut replies))
            .await
            .unwrap();
        let done = spans.iter().take_while(|span| span.after <= k).count();
        let completes = frames.iter().filter(|frame| frame.is_complete()).count();
        assert_eq!(completes, done, "k={k}");
        let expected: Vec<u8> = spans[..done]
            .iter()
            .flat_map(|s| s.reply.iter().copied())
            .collect();
        assert_eq!(replies, expected, "k={k}");
    }
    assert_no_task_left();
}
