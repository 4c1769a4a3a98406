//! Integration tests of [`Chat`] and [`Producer`], over real
//! loopback TCP.
//!
//! The first part replays every socket scenario of CPython's
//! `Lib/test/test_asynchat.py`: an echo server that collects what it is sent
//! up to `QUIT\n`, then sends it back 1, 2 or 3 bytes at a time and closes;
//! the client is a `Chat` that collects messages as asynchat's `echo_client`
//! does. The rest covers what asynchat leaves implicit: producer order,
//! the `Sink`, backpressure, bounded memory, the buffer sizes, write
//! coalescing, errors and two tasks.
//!
//! Every wait is bounded by [`within`]; the few places that check that
//! something does *not* happen use a short [`stays_pending`] timeout.

use std::{
    future::Future,
    io::{self, IoSlice},
    mem,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use asynchat::{Chat, Error, Frame, Producer, Terminator, TerminatorCodec};
use bytes::Bytes;
use futures::{
    channel::{
        mpsc::{self, UnboundedReceiver},
        oneshot,
    },
    future::poll_fn,
    FutureExt, Sink, SinkExt, Stream, StreamExt,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
    time::timeout,
};

mod common;
use common::{reset, tcp_pair, within};

/// How long something that must not happen is given to happen.
const NOT_HAPPENING: Duration = Duration::from_millis(300);

/// What ends the echo server's collection, as in test_asynchat.py.
const SERVER_QUIT: &[u8] = b"QUIT\n";

/// Asserts that `future` does not complete within [`NOT_HAPPENING`].
async fn stays_pending<F: Future + Unpin>(what: &str, future: &mut F) {
    assert!(
        timeout(NOT_HAPPENING, future).await.is_err(),
        "{what} completed, but should have stayed pending"
    );
}

/// Reads everything `io` yields until its end, in a task of its own.
fn read_to_end<R: AsyncRead + Unpin + Send + 'static>(mut io: R) -> JoinHandle<Vec<u8>> {
    tokio::spawn(async move {
        let mut received = Vec::new();
        within("the peer to read to the end", io.read_to_end(&mut received))
            .await
            .unwrap();
        received
    })
}

/// A client socket whose peer reads everything to the end, in a task of
/// its own.
async fn client_to_a_reader() -> (TcpStream, JoinHandle<Vec<u8>>) {
    let (client, server) = tcp_pair().await;
    (client, read_to_end(server))
}

/// A connected pair whose server side has sent `input` and shut its write
/// side down: (client, server). Callers keep the server side as `_server`,
/// not `_`: dropped, it would close the connection before the test is done.
async fn tcp_pair_after_input(input: &[u8]) -> (TcpStream, TcpStream) {
    let (client, mut server) = tcp_pair().await;
    within("the input", server.write_all(input)).await.unwrap();
    server.shutdown().await.unwrap();
    (client, server)
}

/// Hands each frame of `stream`, the reading half of a split `Chat`, to the
/// receiver, from a task of its own; the task fails at an error or when the
/// receiver is gone before the stream ends.
fn forward_frames<S>(mut stream: S) -> (UnboundedReceiver<Frame>, JoinHandle<()>)
where
    S: Stream<Item = Result<Frame, Error>> + Unpin + Send + 'static,
{
    let (frames, frames_out) = mpsc::unbounded();
    let reader = tokio::spawn(async move {
        while let Some(frame) = stream.next().await {
            frames.unbounded_send(frame.unwrap()).unwrap();
        }
    });
    (frames_out, reader)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

fn without(haystack: &[u8], needle: &[u8]) -> Vec<u8> {
    let mut rest = haystack;
    let mut kept = Vec::new();
    while !rest.is_empty() {
        if rest.starts_with(needle) {
            rest = &rest[needle.len()..];
        } else {
            kept.push(rest[0]);
            rest = &rest[1..];
        }
    }
    kept
}

// ---------------------------------------------------------------------------
// test_asynchat.py's echo server and client

/// test_asynchat.py's `echo_server`: its address, and the task that returns
/// what it collected (`QUIT\n` removed).
struct EchoServer {
    addr: SocketAddr,
    task: JoinHandle<Vec<u8>>,
}

impl EchoServer {
    /// Collects bytes one at a time until `QUIT\n` (or the end), removes
    /// `QUIT\n`, waits for `resend` if given, then sends everything back
    /// `chunk_size` bytes at a time and closes.
    async fn start(chunk_size: usize, resend: Option<oneshot::Receiver<()>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            conn.set_nodelay(true).unwrap();
            let mut collected = Vec::new();
            let mut byte = [0u8];
            while !contains(&collected, SERVER_QUIT) {
                match conn.read(&mut byte).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => collected.push(byte[0]),
                }
            }
            let collected = without(&collected, SERVER_QUIT);
            if let Some(resend) = resend {
                let _ = resend.await;
            }
            // As in test_asynchat.py, sending may fail once the client closed.
            for chunk in collected.chunks(chunk_size) {
                if conn.write_all(chunk).await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            collected
        });
        EchoServer { addr, task }
    }

    async fn collected(self) -> Vec<u8> {
        within("the echo server to finish", self.task)
            .await
            .unwrap()
    }
}

/// A `Chat` client of `addr`, whole-frame or streaming.
async fn connect(addr: SocketAddr, terminator: Terminator, streaming: bool) -> Chat<TcpStream> {
    let io = within("connect", TcpStream::connect(addr)).await.unwrap();
    let codec = if streaming {
        TerminatorCodec::streaming(terminator)
    } else {
        TerminatorCodec::new(terminator)
    };
    Chat::with_codec(io, codec)
}

/// What test_asynchat.py's `echo_client` ends up with: `contents`, the
/// messages whose terminator was found, and `buffer`, the data collected
/// since the last one.
#[derive(Debug, Default, PartialEq)]
struct Collected {
    contents: Vec<Vec<u8>>,
    buffer: Vec<u8>,
}

/// Reads frames until the stream ends, collecting them as `echo_client`'s
/// `collect_incoming_data` and `found_terminator` do.
async fn collect<T>(chat: &mut Chat<T>) -> Collected
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    within("the chat's stream to end", async {
        let mut collected = Collected::default();
        while let Some(frame) = chat.next().await {
            match frame.expect("no error from the chat") {
                Frame::Partial(data) => collected.buffer.extend_from_slice(&data),
                Frame::Complete(data) => {
                    collected.buffer.extend_from_slice(&data);
                    let message = mem::take(&mut collected.buffer);
                    collected.contents.push(message);
                }
            }
        }
        collected
    })
    .await
}

fn messages(messages: &[&[u8]]) -> Vec<Vec<u8>> {
    messages.iter().map(|message| message.to_vec()).collect()
}

/// test_asynchat.py's `line_terminator_check`.
async fn line_terminator_check(terminator: &[u8], chunk_size: usize, streaming: bool) {
    let server = EchoServer::start(chunk_size, None).await;
    let mut chat = connect(server.addr, terminator.into(), streaming).await;
    chat.push(&b"hello "[..]);
    chat.push([&b"world"[..], terminator].concat());
    chat.push([&b"I'm not dead yet!"[..], terminator].concat());
    chat.push(SERVER_QUIT);
    let collected = collect(&mut chat).await;
    server.collected().await;
    assert_eq!(
        collected.contents,
        messages(&[b"hello world", b"I'm not dead yet!"]),
        "terminator {terminator:?}, echoed {chunk_size} at a time, streaming {streaming}"
    );
    assert_eq!(collected.buffer, b"");
}

#[tokio::test]
async fn line_terminator_of_one_byte() {
    for chunk_size in 1..=3 {
        for streaming in [false, true] {
            line_terminator_check(b"\n", chunk_size, streaming).await;
        }
    }
}

#[tokio::test]
async fn line_terminator_of_two_bytes() {
    for chunk_size in 1..=3 {
        for streaming in [false, true] {
            line_terminator_check(b"\r\n", chunk_size, streaming).await;
        }
    }
}

#[tokio::test]
async fn line_terminator_of_three_bytes() {
    for chunk_size in 1..=3 {
        for streaming in [false, true] {
            line_terminator_check(b"qqq", chunk_size, streaming).await;
        }
    }
}

/// test_asynchat.py's `numeric_terminator_check`: the first message is the
/// first `length` bytes; then no terminator is left (asynchat sets it to 0,
/// "no terminator"), so the rest is collected without ending a message.
async fn numeric_terminator_check(length: u64) {
    let data: &[u8] = b"hello world, I'm not dead yet!\n";
    for streaming in [false, true] {
        let server = EchoServer::start(1, None).await;
        let mut chat = connect(server.addr, length.into(), streaming).await;
        chat.push(data);
        chat.push(SERVER_QUIT);
        let collected = collect(&mut chat).await;
        server.collected().await;
        let length = length as usize;
        assert_eq!(collected.contents, vec![data[..length].to_vec()]);
        assert_eq!(collected.buffer, &data[length..]);
        assert_eq!(chat.terminator(), &Terminator::None);
    }
}

#[tokio::test]
async fn numeric_terminator_of_one() {
    numeric_terminator_check(1).await;
}

#[tokio::test]
async fn numeric_terminator_of_six() {
    numeric_terminator_check(6).await;
}

#[tokio::test]
async fn none_terminator_makes_everything_data() {
    let data: &[u8] = b"hello world, I'm not dead yet!\n";
    for streaming in [false, true] {
        let server = EchoServer::start(1, None).await;
        let mut chat = connect(server.addr, Terminator::None, streaming).await;
        chat.push(data);
        chat.push(SERVER_QUIT);
        let collected = collect(&mut chat).await;
        server.collected().await;
        assert_eq!(collected.contents, Vec::<Vec<u8>>::new());
        assert_eq!(collected.buffer, data);
    }
}

#[tokio::test]
async fn simple_producer_with_buffer_size_8() {
    let data: &[u8] = b"hello world\nI'm not dead yet!\n";
    let server = EchoServer::start(1, None).await;
    let mut chat = connect(server.addr, "\n".into(), false).await;
    chat.push_with_producer(Producer::with_buffer_size([data, SERVER_QUIT].concat(), 8));
    let collected = collect(&mut chat).await;
    assert_eq!(server.collected().await, data);
    assert_eq!(
        collected.contents,
        messages(&[b"hello world", b"I'm not dead yet!"])
    );
}

#[tokio::test]
async fn bytes_pushed_as_a_producer() {
    let data: &[u8] = b"hello world\nI'm not dead yet!\n";
    let server = EchoServer::start(1, None).await;
    let mut chat = connect(server.addr, "\n".into(), false).await;
    chat.push_with_producer(Producer::from([data, SERVER_QUIT].concat()));
    let collected = collect(&mut chat).await;
    server.collected().await;
    assert_eq!(
        collected.contents,
        messages(&[b"hello world", b"I'm not dead yet!"])
    );
}

#[tokio::test]
async fn empty_line() {
    for streaming in [false, true] {
        let server = EchoServer::start(1, None).await;
        let mut chat = connect(server.addr, "\n".into(), streaming).await;
        chat.push(&b"hello world\n\nI'm not dead yet!\n"[..]);
        chat.push(SERVER_QUIT);
        let collected = collect(&mut chat).await;
        server.collected().await;
        assert_eq!(
            collected.contents,
            messages(&[b"hello world", b"", b"I'm not dead yet!"])
        );
    }
}

/// test_asynchat.py's `test_close_when_done`: everything pushed before
/// close-when-done reaches the server, then the client's stream ends without
/// a frame (the server only echoes after that).
#[tokio::test]
async fn close_when_done() {
    let data: &[u8] = b"hello world\nI'm not dead yet!\n";
    let (resend, resend_signal) = oneshot::channel();
    let server = EchoServer::start(1, Some(resend_signal)).await;
    let mut chat = connect(server.addr, "\n".into(), false).await;
    chat.push(data);
    chat.push(SERVER_QUIT);
    chat.close_when_done();
    assert!(chat.is_closing());
    let collected = collect(&mut chat).await;
    resend.send(()).unwrap();
    assert_eq!(collected, Collected::default());
    assert_eq!(server.collected().await, data);
    // The stream stays ended.
    assert!(within("next", chat.next()).await.is_none());
}

/// The server sees everything pushed before close-when-done, then the end of
/// its input.
#[tokio::test]
async fn close_when_done_shuts_the_write_side_down() {
    let (client, received) = client_to_a_reader().await;
    let mut chat = Chat::new(client, "\n");
    chat.push("one\n");
    chat.push("two\n");
    chat.close_when_done();
    chat.close_when_done(); // a second call changes nothing
    assert!(within("the stream to end", chat.next()).await.is_none());
    assert_eq!(within("the peer", received).await.unwrap(), b"one\ntwo\n");
}

/// test_asynchat.py's `test_push`, with the byte types a `Chat` takes.
#[tokio::test]
async fn push_takes_every_byte_type() {
    let server = EchoServer::start(2, None).await;
    let mut chat = connect(server.addr, "\n".into(), false).await;
    let data: &[u8] = b"bytes\n";
    chat.push(Bytes::from_static(data));
    chat.push(data.to_vec());
    chat.push(data);
    chat.push(b"bytes\n");
    chat.push("bytes\n");
    chat.push(String::from("bytes\n"));
    chat.push(bytes::BytesMut::from(data));
    chat.push(SERVER_QUIT);
    let collected = collect(&mut chat).await;
    server.collected().await;
    assert_eq!(collected.contents, vec![b"bytes".to_vec(); 7]);
}

// ---------------------------------------------------------------------------
// Producers

/// A temporary file with `contents`, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> Self {
        let path =
            std::env::temp_dir().join(format!("asynchat-chat-test-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Bytes, an iterator, a stream whose items come late, a file, a pipe and
/// bytes again leave in queue order: a pending producer holds back those
/// behind it.
#[tokio::test]
async fn producers_come_out_in_queue_order() {
    let (client, mut server) = tcp_pair().await;
    let file = TempFile::new("order", b"5\n");
    let (stream_items, stream) = mpsc::unbounded::<io::Result<Bytes>>();
    let (mut pipe_in, pipe_out) = tokio::io::duplex(64);
    let (first_three_seen, first_three) = oneshot::channel::<()>();

    // The stream's item only comes once the peer has seen everything before
    // it, and nothing after it.
    let feeder = tokio::spawn(async move {
        first_three.await.unwrap();
        stream_items.unbounded_send(Ok(Bytes::from("4"))).unwrap();
        stream_items.unbounded_send(Ok(Bytes::new())).unwrap(); // skipped
        stream_items.unbounded_send(Ok(Bytes::from("\n"))).unwrap();
    });
    let piper = tokio::spawn(async move {
        pipe_in.write_all(b"6").await.unwrap();
        tokio::task::yield_now().await;
        pipe_in.write_all(b"\n").await.unwrap();
    });
    let peer = tokio::spawn(async move {
        let mut received = Vec::new();
        let mut buffer = [0u8; 64];
        while received.len() < 6 {
            let read = server.read(&mut buffer).await.unwrap();
            assert_ne!(read, 0, "end of input after {received:?}");
            received.extend_from_slice(&buffer[..read]);
        }
        assert_eq!(
            received, b"1\n2\n3\n",
            "nothing may pass the pending stream"
        );
        first_three_seen.send(()).unwrap();
        server.read_to_end(&mut received).await.unwrap();
        received
    });

    let mut chat = Chat::new(client, "\n");
    chat.push("1\n");
    chat.push_with_producer(Producer::from_iter(["2\n", "", "3\n"]));
    chat.push_with_producer(Producer::from_stream(stream));
    let file = tokio::fs::File::open(&file.0).await.unwrap();
    chat.push_with_producer(Producer::from_reader(file));
    chat.push_with_producer(Producer::from_reader(pipe_out));
    chat.push(b"7\n".to_vec());
    within("close", chat.close()).await.unwrap();

    assert_eq!(
        within("the peer", peer).await.unwrap(),
        b"1\n2\n3\n4\n5\n6\n7\n"
    );
    within("the feeder", feeder).await.unwrap();
    within("the piper", piper).await.unwrap();
}

/// An iterator producer is drawn lazily, as output drains: asynchat's
/// `more()`.
#[tokio::test]
async fn iterator_producers_are_drawn_lazily() {
    let (client, received) = client_to_a_reader().await;
    let drawn = Arc::new(Mutex::new(0usize));
    let counter = Arc::clone(&drawn);
    let pieces = (0..1000).map(move |i| {
        *counter.lock().unwrap() += 1;
        Bytes::from(format!("{i}\n"))
    });
    let mut chat = Chat::new(client, "\n");
    chat.push_with_producer(Producer::from_iter(pieces));
    assert_eq!(*drawn.lock().unwrap(), 0, "drawn before any output moved");
    within("close", chat.close()).await.unwrap();
    let expected: String = (0..1000).map(|i| format!("{i}\n")).collect();
    assert_eq!(
        within("the peer", received).await.unwrap(),
        expected.as_bytes()
    );
}

// ---------------------------------------------------------------------------
// One task, the Sink, two tasks

/// `chat.push(reply); chat.next().await` sends the reply while it waits: the
/// peer only sends its next line once it has the reply.
#[tokio::test]
async fn one_task_holds_a_conversation() {
    let (client, server) = tcp_pair().await;
    let peer = tokio::spawn(async move {
        let mut client = BufReader::new(client);
        for i in 0..3 {
            client
                .write_all(format!("line {i}\n").as_bytes())
                .await
                .unwrap();
            let mut reply = String::new();
            client.read_line(&mut reply).await.unwrap();
            assert_eq!(reply, format!("echo: line {i}\n"));
        }
        client.get_mut().shutdown().await.unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        rest
    });
    let mut chat = Chat::new(server, "\n");
    let mut lines = 0;
    while let Some(frame) = within("the next line", chat.next()).await {
        let Frame::Complete(line) = frame.unwrap() else {
            panic!("a partial line");
        };
        lines += 1;
        chat.push("echo: ");
        chat.push(line);
        chat.push("\n");
    }
    assert_eq!(lines, 3);
    drop(chat);
    assert_eq!(within("the peer", peer).await.unwrap(), b"");
}

#[tokio::test]
async fn sink_send_feed_flush_and_close() {
    let (client, received) = client_to_a_reader().await;
    let mut chat = Chat::new(client, "\n");
    within("send", chat.send(Producer::from("one\n")))
        .await
        .unwrap();
    within("send", chat.send(Bytes::from("two\n").into()))
        .await
        .unwrap();
    within("feed", chat.feed("three\n".into())).await.unwrap();
    within("feed", chat.feed(Producer::with_buffer_size("four\n", 2)))
        .await
        .unwrap();
    within("flush", chat.flush()).await.unwrap();
    assert_eq!(chat.queued_output_len(), 0);
    let mut more =
        futures::stream::iter(["five\n", "six\n"].map(|s| Ok::<_, Error>(Producer::from(s))));
    within("send_all", chat.send_all(&mut more)).await.unwrap();
    within("feed", chat.feed("seven\n".into())).await.unwrap();
    // close() is close-when-done: what was fed goes out first.
    within("close", chat.close()).await.unwrap();
    assert!(chat.is_closing());
    assert!(within("next", chat.next()).await.is_none());
    assert_eq!(
        within("the peer", received).await.unwrap(),
        b"one\ntwo\nthree\nfour\nfive\nsix\nseven\n"
    );
}

/// `Producer::close()` sent through the Sink is close-when-done too.
#[tokio::test]
async fn sink_close_marker() {
    let (client, received) = client_to_a_reader().await;
    let mut chat = Chat::new(client, "\n");
    chat.feed("bye\n".into()).await.unwrap();
    within("send", chat.send(Producer::close())).await.unwrap();
    assert!(matches!(
        within("send", chat.send("late\n".into())).await,
        Err(Error::Closed)
    ));
    assert_eq!(within("the peer", received).await.unwrap(), b"bye\n");
}

/// Against a peer that does not read, `poll_ready` stays pending once
/// `out_buffer_size` bytes are queued, and so does a flush of lots of data;
/// both complete once the peer reads.
#[tokio::test]
async fn sink_backpressure_waits_for_a_slow_reader() {
    const LOTS: usize = 64 << 20; // more than the loopback socket buffers hold
    let (client, server) = tcp_pair().await;
    let mut chat = Chat::new(client, "\n");

    // Room for it: queued at once, nothing written yet.
    within("feed", chat.feed(Bytes::from(vec![b'x'; LOTS]).into()))
        .await
        .unwrap();
    assert_eq!(chat.queued_output_len(), LOTS);
    // No room for more until the peer reads: poll_ready is pending.
    let mut feed = chat.feed("y".into());
    stays_pending(
        "a feed while LOTS wait for a peer that does not read",
        &mut feed,
    )
    .await;
    drop(feed);
    let mut send = chat.send("z".into());
    stays_pending("a send while the peer does not read", &mut send).await;

    let received = read_to_end(server);
    within("the send, once the peer reads", send).await.unwrap();
    assert_eq!(chat.queued_output_len(), 0);
    within("close", chat.close()).await.unwrap();
    let received = within("the peer", received).await.unwrap();
    assert_eq!(received.len(), LOTS + 1);
    assert_eq!(received.last(), Some(&b'z'));
}

/// An iterator, a stream or a reader fills the `Sink` as `out_buffer_size`
/// bytes would: its bytes are not known before they are drawn. Against a
/// peer that does not read, the feed after one stays pending; everything
/// arrives in order once the peer reads.
#[tokio::test]
async fn sink_backpressure_counts_a_lazy_producer_as_full() {
    const PIECE: usize = 64 << 10;
    const PIECES: usize = 256; // 16 MiB: more than the socket buffers hold
    let (client, server) = tcp_pair().await;
    let mut chat = Chat::new(client, "\n");
    let pieces = (0..PIECES).map(|i| Bytes::from(vec![b'a' + (i % 26) as u8; PIECE]));
    within("the first feed", chat.feed(Producer::from_iter(pieces)))
        .await
        .unwrap();
    let mut feed = chat.feed(Producer::from_iter([Bytes::from_static(b"after\n")]));
    stays_pending(
        "a feed behind a lazy producer the peer does not read",
        &mut feed,
    )
    .await;
    drop(feed);
    assert!(chat.queued_output_len() <= 2 * chat.out_buffer_size());

    let received = read_to_end(server);
    let after = Producer::from_iter([Bytes::from_static(b"after\n")]);
    within("the feed, once the peer reads", chat.feed(after))
        .await
        .unwrap();
    within("close", chat.close()).await.unwrap();
    let received = within("the peer", received).await.unwrap();
    assert_eq!(received.len(), PIECES * PIECE + 6);
    for (i, piece) in received.chunks(PIECE).take(PIECES).enumerate() {
        assert!(piece.iter().all(|&byte| byte == b'a' + (i % 26) as u8));
    }
    assert!(received.ends_with(b"after\n"));
}

/// A reader of `remaining` bytes of `x` that allocates none of them.
struct Generate {
    remaining: u64,
}

impl AsyncRead for Generate {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        static XS: [u8; 64 * 1024] = [b'x'; 64 * 1024];
        let size = buf.remaining().min(XS.len()).min(self.remaining as usize);
        buf.put_slice(&XS[..size]);
        self.remaining -= size as u64;
        Poll::Ready(Ok(()))
    }
}

/// A 256 MiB reader producer sent to a slow reader: the `Chat` never holds
/// more than about two `out_buffer_size` of it.
#[tokio::test]
async fn a_long_reader_producer_costs_bounded_memory() {
    const TOTAL: u64 = 256 << 20;
    let (client, mut server) = tcp_pair().await;
    let peer = tokio::spawn(async move {
        let mut buffer = vec![0u8; 16 * 1024];
        let mut total = 0u64;
        loop {
            let read = server.read(&mut buffer).await.unwrap();
            if read == 0 {
                return total;
            }
            assert!(buffer[..read] == vec![b'x'; read][..], "not all x");
            total += read as u64;
            tokio::task::yield_now().await; // a slow reader
        }
    });
    let mut chat = Chat::new(client, "\n");
    chat.set_out_buffer_size(64 * 1024);
    chat.push_with_producer(Producer::from_reader(Generate { remaining: TOTAL }));
    let mut most_held = 0;
    let mut polls = 0;
    within(
        "the transfer",
        poll_fn(|cx| {
            let result = Pin::new(&mut chat).poll_close(cx);
            polls += 1;
            most_held = most_held.max(chat.queued_output_len());
            result
        }),
    )
    .await
    .unwrap();
    assert_eq!(within("the peer", peer).await.unwrap(), TOTAL);
    assert!(polls > 1, "the transfer was under way across polls");
    assert!(most_held > 0);
    assert!(
        most_held <= 2 * chat.out_buffer_size(),
        "held {most_held} bytes of output"
    );
}

/// `futures::StreamExt::split` of a `Chat`: one task reads frames, another
/// sends the replies.
#[tokio::test]
async fn two_tasks_through_split() {
    let (client, server) = tcp_pair().await;
    let peer = tokio::spawn(async move {
        let mut client = BufReader::new(client);
        let mut replies = Vec::new();
        for i in 0..3 {
            client.write_all(format!("{i}\n").as_bytes()).await.unwrap();
            let mut reply = String::new();
            client.read_line(&mut reply).await.unwrap();
            replies.push(reply);
        }
        client.write_all(b"QUIT\n").await.unwrap();
        let mut rest = String::new();
        client.read_to_string(&mut rest).await.unwrap();
        replies.push(rest);
        replies
    });
    let (mut sink, mut stream) = Chat::new(server, "\n").split();
    let (lines, mut to_answer) = mpsc::unbounded();
    let reader = tokio::spawn(async move {
        while let Some(frame) = stream.next().await {
            let _ = lines.unbounded_send(frame.unwrap().into_bytes());
        }
    });
    let writer = tokio::spawn(async move {
        while let Some(line) = to_answer.next().await {
            if line == "QUIT" {
                sink.send("bye\n".into()).await.unwrap();
                sink.close().await.unwrap();
                return;
            }
            sink.send(format!("got {}\n", line.len()).into())
                .await
                .unwrap();
        }
    });
    assert_eq!(
        within("the peer", peer).await.unwrap(),
        ["got 1\n", "got 1\n", "got 1\n", "bye\n"]
    );
    within("the writer", writer).await.unwrap();
    within("the reader", reader).await.unwrap();
}

/// Split halves share the IO, whose write readiness wakes only the task that
/// polled it last. Here the reading task polls the output after the writing
/// task blocked on a full socket; the writing task must still learn that its
/// flush completed.
#[tokio::test]
async fn split_writer_is_woken_when_the_reader_moved_its_output() {
    const LOTS: usize = 64 << 20;
    let (client, mut server) = tcp_pair().await;
    let (mut sink, stream) = Chat::new(client, "\n").split();
    let (mut frames_out, reader) = forward_frames(stream);
    let (sent, mut sent_out) = oneshot::channel();
    let writer = tokio::spawn(async move {
        sink.send(Bytes::from(vec![b'x'; LOTS]).into())
            .await
            .unwrap();
        sent.send(()).unwrap();
        sink.send("done\n".into()).await.unwrap();
        sink.close().await.unwrap();
    });
    // The writer blocks on the full socket.
    stays_pending(
        "the writer's send to a peer that does not read",
        &mut sent_out,
    )
    .await;
    // The reader wakes for a frame and polls the output after the writer.
    server.write_all(b"ping\n").await.unwrap();
    let frame = within("ping", frames_out.next()).await;
    assert_eq!(frame, Some(Frame::Complete("ping".into())));
    // Now the peer reads; the writer must be woken to send "done".
    let received = read_to_end(server);
    within("the writer's send", sent_out).await.unwrap();
    within("the writer", writer).await.unwrap();
    let received = within("the peer", received).await.unwrap();
    assert_eq!(received.len(), LOTS + 5);
    assert!(received.ends_with(b"xdone\n"));
    drop(frames_out);
    within("the reader", reader).await.unwrap();
}

/// Once the writing half's close-when-done shut the write side down, the
/// reading half's stream ends, though the peer neither sends nor closes.
#[tokio::test]
async fn split_reader_ends_when_the_writer_closes() {
    let (client, mut server) = tcp_pair().await;
    let (mut sink, stream) = Chat::new(client, "\n").split();
    let (mut frames_out, reader) = forward_frames(stream);
    server.write_all(b"hello\n").await.unwrap();
    assert_eq!(
        within("hello", frames_out.next()).await,
        Some(Frame::Complete("hello".into()))
    );
    // The reader now waits for input; the writer closes.
    within("send", sink.send("bye\n".into())).await.unwrap();
    within("close", sink.close()).await.unwrap();
    within("the reader's stream to end", reader).await.unwrap();
    assert_eq!(within("no more frames", frames_out.next()).await, None);
    let mut received = Vec::new();
    within("the end of output", server.read_to_end(&mut received))
        .await
        .unwrap();
    assert_eq!(received, b"bye\n");
}

fn assert_send<T: Send>() {}
fn assert_unpin<T: Unpin>() {}

#[test]
fn chat_is_send_and_unpin_and_producer_is_send() {
    assert_send::<Chat<TcpStream>>();
    assert_unpin::<Chat<TcpStream>>();
    assert_send::<Chat<tokio::io::DuplexStream>>();
    assert_unpin::<Chat<tokio::io::DuplexStream>>();
    assert_send::<Producer>();
    assert_send::<Frame>();
    assert_send::<Error>();
}

// ---------------------------------------------------------------------------
// discard_buffers, set_terminator

/// A count that completed leaves no terminator in force, as in asynchat,
/// and a discard does not bring the count back: what follows comes out
/// unframed.
#[tokio::test]
async fn a_completed_count_leaves_no_terminator_through_a_discard() {
    let (client, mut server) = tcp_pair().await;
    let mut chat = Chat::new(client, 3u64);
    server.write_all(b"abc").await.unwrap();
    assert_next_frame(&mut chat, Frame::Complete("abc".into())).await;
    assert_eq!(chat.terminator(), &Terminator::None);
    chat.discard_buffers();
    assert_eq!(chat.terminator(), &Terminator::None);
    server.write_all(b"defg").await.unwrap();
    assert_next_frame(&mut chat, Frame::Partial("defg".into())).await;
    chat.set_terminator(2u64);
    assert_eq!(chat.terminator(), &Terminator::Length(2));
    server.write_all(b"hi").await.unwrap();
    assert_next_frame(&mut chat, Frame::Complete("hi".into())).await;
    assert_eq!(chat.terminator(), &Terminator::None);
}

/// `discard_buffers` drops the queued output and the message under way.
#[tokio::test]
async fn discard_buffers_empties_the_fifo_and_the_partial_input() {
    let (client, mut server) = tcp_pair().await;
    let mut chat = Chat::with_codec(client, TerminatorCodec::streaming(b"\r\n"));

    chat.push("never sent\n");
    chat.push_with_producer(Producer::from_iter(["nor this\n"]));
    chat.close_when_done();
    chat.discard_buffers();
    assert_eq!(chat.queued_output_len(), 0);
    assert!(!chat.is_closing(), "the close marker went with the FIFO");

    // "abc" comes out, "\r" is held back as a possible start of "\r\n".
    server.write_all(b"abc\r").await.unwrap();
    assert_next_frame(&mut chat, Frame::Partial("abc".into())).await;
    chat.discard_buffers();
    // Without the "\r", "\n" does not end the message.
    server.write_all(b"\nline\r\n").await.unwrap();
    let mut message = Vec::new();
    loop {
        match within("the line", chat.next()).await.unwrap().unwrap() {
            Frame::Partial(data) => message.extend_from_slice(&data),
            Frame::Complete(data) => {
                message.extend_from_slice(&data);
                break;
            }
        }
    }
    assert_eq!(message, b"\nline");

    chat.push("sent\n");
    chat.close_when_done();
    assert!(within("the end", chat.next()).await.is_none());
    let mut received = Vec::new();
    within("the peer", server.read_to_end(&mut received))
        .await
        .unwrap();
    assert_eq!(received, b"sent\n");
}

/// In whole-frame mode, the partial message is in the read buffer.
#[tokio::test]
async fn discard_buffers_drops_a_buffered_partial_message() {
    let (mut peer, io) = tokio::io::duplex(1024);
    let mut chat = Chat::new(io, "\n");
    peer.write_all(b"partial mess").await.unwrap();
    // One poll reads what is there: no frame yet.
    assert!(futures::poll!(chat.next()).is_pending());
    chat.discard_buffers();
    peer.write_all(b"age\nnext\n").await.unwrap();
    assert_next_frame(&mut chat, Frame::Complete("age".into())).await;
    assert_next_frame(&mut chat, Frame::Complete("next".into())).await;
}

/// An HTTP head and its `Content-Length` body, with the next request, in one
/// write: the terminator set between frames applies to the bytes already
/// read.
#[tokio::test]
async fn set_terminator_between_frames_applies_to_buffered_bytes() {
    for streaming in [false, true] {
        let (client, _server) = tcp_pair_after_input(
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n",
        )
        .await;
        let mut chat = connect_stream(client, "\r\n\r\n".into(), streaming);

        let head = next_message(&mut chat).await;
        assert_eq!(
            head.as_deref(),
            Some(&b"POST / HTTP/1.1\r\nContent-Length: 5"[..])
        );
        chat.set_terminator(5u64);
        assert_eq!(
            next_message(&mut chat).await.as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(chat.terminator(), &Terminator::None);
        chat.set_terminator("\r\n\r\n");
        assert_eq!(
            next_message(&mut chat).await.as_deref(),
            Some(&b"GET / HTTP/1.1"[..])
        );
        assert_eq!(next_message(&mut chat).await, None);
    }
}

fn connect_stream(io: TcpStream, terminator: Terminator, streaming: bool) -> Chat<TcpStream> {
    let codec = if streaming {
        TerminatorCodec::streaming(terminator)
    } else {
        TerminatorCodec::new(terminator)
    };
    Chat::with_codec(io, codec)
}

/// The next whole message (its `Partial`s and `Complete` joined), or `None`
/// at the end.
async fn next_message<T>(chat: &mut Chat<T>) -> Option<Vec<u8>>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut message = Vec::new();
    loop {
        match within("a message", chat.next()).await? {
            Ok(Frame::Partial(data)) => message.extend_from_slice(&data),
            Ok(Frame::Complete(data)) => {
                message.extend_from_slice(&data);
                return Some(message);
            }
            Err(error) => panic!("{error}"),
        }
    }
}

/// Asserts that the next item of `chat` is the frame `expected`.
async fn assert_next_frame<T>(chat: &mut Chat<T>, expected: Frame)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let what = format!("{expected:?}");
    let frame = within(&what, chat.next()).await;
    assert_eq!(frame.map(Result::unwrap), Some(expected));
}

/// At the end of input, bytes no terminator followed come out as a
/// `Partial`, then the stream ends.
#[tokio::test]
async fn unterminated_input_at_the_end_is_a_partial() {
    let (client, _server) = tcp_pair_after_input(b"line\nunterminated").await;
    let mut chat = Chat::new(client, "\n");
    assert_next_frame(&mut chat, Frame::Complete("line".into())).await;
    assert_next_frame(&mut chat, Frame::Partial("unterminated".into())).await;
    assert!(within("the end", chat.next()).await.is_none());
    assert!(within("the end", chat.next()).await.is_none());
}

/// The peer sends its requests and ends its output at once: the replies
/// pushed for the last requests still go out before the stream ends.
#[tokio::test]
async fn replies_still_go_out_after_the_peer_ended_its_input() {
    let (client, mut server) = tcp_pair_after_input(b"a\nb\nc\n").await;
    let mut chat = Chat::new(client, "\n");
    while let Some(frame) = within("a request", chat.next()).await {
        chat.push(frame.unwrap().into_bytes().to_ascii_uppercase());
        chat.push("\n");
    }
    assert_eq!(chat.queued_output_len(), 0);
    drop(chat);
    let mut replies = Vec::new();
    within("the replies", server.read_to_end(&mut replies))
        .await
        .unwrap();
    assert_eq!(replies, b"A\nB\nC\n");
}

/// A long frame that arrived in short reads grows the read buffer without
/// growing the reads; the grown buffer is released all the same once the
/// input pauses.
#[tokio::test]
async fn a_buffer_grown_by_a_long_frame_is_released_when_idle() {
    // Lines of many lengths: a grown allocation is left anywhere from
    // nearly empty to nearly full once its line is split off. A line of
    // 4,095 bytes leaves 4 KiB of an 8 KiB allocation, as much as a fresh
    // buffer shows.
    let lengths = (12..18).flat_map(|power| [(1 << power) - 1, (1 << power) + 1_000]);
    for length in lengths {
        // The pipe hands over at most 1 KiB a read: the reads never come
        // back full, so the read size stays at its first 4 KiB.
        let (client, mut peer) = tokio::io::duplex(1024);
        let mut chat = Chat::new(client, "\n");
        let line = [vec![b'x'; length], b"\n".to_vec()].concat();
        let writer = tokio::spawn(async move {
            peer.write_all(&line).await.unwrap();
            peer
        });
        let frame = within("the long line", chat.next()).await.unwrap();
        assert_eq!(frame.unwrap().bytes().len(), length);
        let _peer = within("the writer", writer).await.unwrap();
        assert!(
            futures::poll!(chat.next()).is_pending(),
            "nothing more came"
        );
        // The allocation's full size, bytes split off its front included.
        let allocation = Vec::from(chat.into_parts().read_buffer).capacity();
        assert!(
            allocation <= 4096,
            "idle after a line of {length} bytes with {allocation} bytes of read buffer"
        );
    }
}

/// With nothing buffered, a counted terminator is still decoded before the
/// `Chat` waits for input: `Length(0)` completes at once, and a length over
/// the limit fails at once.
#[tokio::test]
async fn a_counted_terminator_is_decoded_on_an_empty_buffer() {
    let (client, mut server) = tcp_pair().await;
    server.write_all(b"head\n").await.unwrap();
    let codec = TerminatorCodec::new("\n").with_max_frame_length(8);
    let mut chat = Chat::with_codec(client, codec);
    assert_next_frame(&mut chat, Frame::Complete("head".into())).await;
    chat.set_terminator(0u64);
    assert_eq!(
        within("the empty body", chat.next())
            .await
            .unwrap()
            .unwrap(),
        Frame::Complete(Bytes::new())
    );
    chat.set_terminator(9u64);
    assert!(matches!(
        within("the error", chat.next()).await,
        Some(Err(Error::FrameTooLong { limit: 8 }))
    ));
    drop(server);
}

/// A message over the codec's limit is an error, and the `Chat` carries on
/// with the next message.
#[tokio::test]
async fn the_chat_carries_on_after_a_frame_too_long() {
    let (client, _server) = tcp_pair_after_input(b"a line far too long\nok\n").await;
    let codec = TerminatorCodec::new("\n").with_max_frame_length(8);
    let mut chat = Chat::with_codec(client, codec);
    assert!(matches!(
        within("the error", chat.next()).await,
        Some(Err(Error::FrameTooLong { limit: 8 }))
    ));
    assert_next_frame(&mut chat, Frame::Complete("ok".into())).await;
    assert!(within("the end", chat.next()).await.is_none());
}

// ---------------------------------------------------------------------------
// Errors

/// A producer stream's error ends the `Chat` with `Error::Producer`, after
/// what was queued before it; nothing queued after it is written.
#[tokio::test]
async fn a_failing_producer_stream_ends_the_chat() {
    let (client, received) = client_to_a_reader().await;
    let mut chat = Chat::new(client, "\n");
    chat.push("before\n");
    chat.push_with_producer(Producer::from_stream(futures::stream::iter([
        Ok(Bytes::from("one\n")),
        Err(io::Error::other("the producer broke")),
        Ok(Bytes::from("never\n")),
    ])));
    chat.push("after\n");
    match within("the error", chat.next()).await {
        Some(Err(Error::Producer(error))) => assert_eq!(error.to_string(), "the producer broke"),
        other => panic!("expected a producer error, got {other:?}"),
    }
    assert!(within("the end", chat.next()).await.is_none());
    drop(chat);
    assert_eq!(
        within("the peer", received).await.unwrap(),
        b"before\none\n"
    );
}

/// A reader producer's read error, seen through the Sink.
#[tokio::test]
async fn a_failing_producer_reader_fails_the_sink() {
    struct Failing;
    impl AsyncRead for Failing {
        fn poll_read(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            _buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::ErrorKind::InvalidData.into()))
        }
    }
    let (client, received) = client_to_a_reader().await;
    let mut chat = Chat::new(client, "\n");
    chat.push("before\n");
    match within("the send", chat.send(Producer::from_reader(Failing))).await {
        Err(Error::Producer(error)) => assert_eq!(error.kind(), io::ErrorKind::InvalidData),
        other => panic!("expected a producer error, got {other:?}"),
    }
    // The Chat is over: no more output, and the stream ends.
    assert!(matches!(
        within("send", chat.send("after\n".into())).await,
        Err(Error::Closed)
    ));
    assert!(within("the end", chat.next()).await.is_none());
    drop(chat);
    assert_eq!(within("the peer", received).await.unwrap(), b"before\n");
}

/// A reader whose short reads are gathered into one piece, and whose end
/// or error comes while they are: the bytes go out first, then the end (the
/// next producer follows) or the error, once.
#[tokio::test]
async fn a_reader_that_ends_while_its_short_reads_are_gathered() {
    /// `reads` reads of 10 bytes, then `end`.
    struct TenAtATime {
        reads: u8,
        end: Option<io::Error>,
    }
    impl AsyncRead for TenAtATime {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.reads == 0 {
                return Poll::Ready(self.end.take().map_or(Ok(()), Err));
            }
            self.reads -= 1;
            buf.put_slice(&[b'0' + self.reads; 10]);
            Poll::Ready(Ok(()))
        }
    }
    let ten_times = |digit: u8| vec![digit; 10];
    let expected: Vec<u8> = [ten_times(b'2'), ten_times(b'1'), ten_times(b'0')].concat();

    let (client, received) = client_to_a_reader().await;
    let mut chat = Chat::new(client, "\n");
    let reader = TenAtATime {
        reads: 3,
        end: None,
    };
    chat.push_with_producer(Producer::from_reader(reader));
    chat.push("after\n");
    within("close", chat.close()).await.unwrap();
    drop(chat);
    let mut all = expected.clone();
    all.extend_from_slice(b"after\n");
    assert_eq!(within("the peer", received).await.unwrap(), all);

    let (client, received) = client_to_a_reader().await;
    let mut chat = Chat::new(client, "\n");
    let reader = TenAtATime {
        reads: 3,
        end: Some(io::ErrorKind::InvalidData.into()),
    };
    match within("the send", chat.send(Producer::from_reader(reader))).await {
        Err(Error::Producer(error)) => assert_eq!(error.kind(), io::ErrorKind::InvalidData),
        other => panic!("expected a producer error, got {other:?}"),
    }
    assert!(within("the end", chat.next()).await.is_none());
    drop(chat);
    assert_eq!(within("the peer", received).await.unwrap(), expected);
}

/// The peer resets the connection while the `Chat` reads.
#[tokio::test]
async fn peer_reset_while_reading_is_an_io_error() {
    let (client, server) = tcp_pair().await;
    let mut chat = Chat::new(client, "\n");
    reset(server);
    match within("the error", chat.next()).await {
        Some(Err(Error::Io(error))) => {
            assert_eq!(error.kind(), io::ErrorKind::ConnectionReset)
        }
        other => panic!("expected an IO error, got {other:?}"),
    }
    assert!(within("the end", chat.next()).await.is_none());
}

/// The peer resets the connection while the `Chat` writes.
#[tokio::test]
async fn peer_reset_while_writing_is_an_io_error() {
    let (client, server) = tcp_pair().await;
    let mut chat = Chat::new(client, "\n");
    reset(server);
    let error = within("a write error", async {
        loop {
            if let Err(error) = chat.send(Bytes::from(vec![0u8; 64 * 1024]).into()).await {
                return error;
            }
        }
    })
    .await;
    match error {
        Error::Io(error) => assert!(
            matches!(
                error.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ),
            "{error:?}"
        ),
        other => panic!("expected an IO error, got {other:?}"),
    }
    // The stream side ends too, with no panic.
    while let Some(frame) = within("the end", chat.next()).await {
        assert!(frame.is_err());
    }
}

/// Output queued after close-when-done is refused, never dropped silently:
/// `push` reports `Error::Closed` at the next poll, `start_send` at once.
#[tokio::test]
async fn output_after_close_when_done_is_an_error() {
    let (client, received) = client_to_a_reader().await;
    let mut chat = Chat::new(client, "\n");
    chat.push("last\n");
    chat.close_when_done();
    chat.push("too late\n");
    assert!(matches!(
        within("next", chat.next()).await,
        Some(Err(Error::Closed))
    ));
    assert!(matches!(
        within("send", chat.send("too late\n".into())).await,
        Err(Error::Closed)
    ));
    let mut sink = Pin::new(&mut chat);
    assert!(matches!(
        sink.as_mut().start_send("too late\n".into()),
        Err(Error::Closed)
    ));
    // The close itself goes on.
    assert!(within("the end", chat.next()).await.is_none());
    // After the close completed, too.
    chat.push("much too late\n");
    assert!(matches!(
        within("next", chat.next()).await,
        Some(Err(Error::Closed))
    ));
    assert!(within("the end", chat.next()).await.is_none());
    assert!(matches!(
        within("send", chat.send("much too late\n".into())).await,
        Err(Error::Closed)
    ));
    assert_eq!(within("the peer", received).await.unwrap(), b"last\n");
}

// ---------------------------------------------------------------------------
// Buffer sizes and writes, seen through a recording IO

/// One call to `poll_write` or `poll_write_vectored` that wrote something.
#[derive(Debug, Clone, PartialEq)]
struct WriteCall {
    vectored: bool,
    /// The lengths of the slices offered.
    slices: Vec<usize>,
    written: usize,
}

#[derive(Debug, Default)]
struct Log {
    writes: Vec<WriteCall>,
    /// The room offered to each `poll_read`.
    read_offers: Vec<usize>,
}

/// An IO that records every read and write the `Chat` asks of it, with or
/// without vectored writes.
struct Recording<T> {
    inner: T,
    vectored: bool,
    log: Arc<Mutex<Log>>,
}

impl<T> Recording<T> {
    fn new(inner: T, vectored: bool) -> (Self, Arc<Mutex<Log>>) {
        let log = Arc::new(Mutex::new(Log::default()));
        let io = Recording {
            inner,
            vectored,
            log: Arc::clone(&log),
        };
        (io, log)
    }

    fn record(&self, vectored: bool, slices: Vec<usize>, result: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(written)) = result {
            self.log.lock().unwrap().writes.push(WriteCall {
                vectored,
                slices,
                written: *written,
            });
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Recording<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.log.lock().unwrap().read_offers.push(buf.remaining());
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Recording<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.record(false, vec![buf.len()], &result);
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let slices = bufs.iter().map(|buf| buf.len()).collect();
        let result = if self.vectored {
            Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
        } else {
            // What AsyncWrite's default does: the first non-empty slice.
            let first = bufs.iter().find(|buf| !buf.is_empty());
            Pin::new(&mut self.inner).poll_write(cx, first.map_or(&[][..], |buf| &buf[..]))
        };
        self.record(true, slices, &result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.vectored
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// `push(line); push("\n")` is one write call, with and without vectored
/// writes, and so are several short pushes of different kinds.
#[tokio::test]
async fn small_pushes_in_a_row_leave_in_one_write() {
    for vectored in [true, false] {
        let (client, received) = client_to_a_reader().await;
        let (io, log) = Recording::new(client, vectored);
        let mut chat = Chat::new(io, "\n");
        chat.push("line");
        chat.push("\n");
        within("flush", chat.flush()).await.unwrap();
        {
            let log = log.lock().unwrap();
            assert_eq!(log.writes.len(), 1, "vectored {vectored}: {:?}", log.writes);
            let write = &log.writes[0];
            assert_eq!(write.vectored, vectored);
            assert_eq!(write.written, 5);
            if vectored {
                assert_eq!(write.slices, [4, 1], "the pieces as they are");
            }
        }

        // A simple producer's pieces are what is drawn at a time; short
        // ones in a row still make one write.
        log.lock().unwrap().writes.clear();
        chat.push_with_producer(Producer::with_buffer_size("hello world\n", 8));
        within("flush", chat.flush()).await.unwrap();
        {
            let log = log.lock().unwrap();
            assert_eq!(log.writes.len(), 1, "vectored {vectored}: {:?}", log.writes);
            assert_eq!(log.writes[0].written, 12);
            if vectored {
                assert_eq!(log.writes[0].slices, [8, 4]);
            }
        }

        log.lock().unwrap().writes.clear();
        chat.push(Bytes::from_static(b"250 "));
        chat.push(b"ok".to_vec());
        chat.push_with_producer(Producer::from_iter(["\r", "\n"]));
        within("flush", chat.flush()).await.unwrap();
        {
            let log = log.lock().unwrap();
            assert_eq!(log.writes.len(), 1, "vectored {vectored}: {:?}", log.writes);
            assert_eq!(log.writes[0].written, 8);
        }
        within("close", chat.close()).await.unwrap();
        assert_eq!(
            within("the peer", received).await.unwrap(),
            b"line\nhello world\n250 ok\r\n"
        );
    }
}

/// Replies of a few bytes queued faster than the peer reads (a client that
/// pipelines without reading) wait joined into pieces of kilobytes past the
/// first 64: they leave in a few writes, every byte once and in order,
/// where pieces of 14 bytes would take one write per 64 of them.
#[tokio::test]
async fn a_backlog_of_short_replies_leaves_in_a_few_writes() {
    for vectored in [true, false] {
        let (client, received) = client_to_a_reader().await;
        let (io, log) = Recording::new(client, vectored);
        let mut chat = Chat::new(io, "\n");
        let mut expected = Vec::new();
        for i in 0..20_000 {
            let reply = format!("250 {i:05} Ok\r\n");
            expected.extend_from_slice(reply.as_bytes());
            match i % 3 {
                0 => chat.push(reply),
                1 => chat.push(Bytes::copy_from_slice(reply.as_bytes())),
                _ => chat.push_with_producer(Producer::from_iter([Bytes::from(reply)])),
            }
        }
        within("close", chat.close()).await.unwrap();
        assert_eq!(within("the peer", received).await.unwrap(), expected);
        let log = log.lock().unwrap();
        let written: usize = log.writes.iter().map(|write| write.written).sum();
        assert_eq!(written, expected.len());
        // 20,000 replies of 14 bytes, 64 pieces a write, would be 313 writes.
        assert!(
            log.writes.len() <= 40,
            "vectored {vectored}: {} writes",
            log.writes.len()
        );
    }
}

/// No write carries more than `out_buffer_size` bytes, whatever the
/// producer, and no read asks for more than `in_buffer_size`.
#[tokio::test]
async fn writes_and_reads_respect_the_buffer_sizes() {
    for vectored in [true, false] {
        let (client, received) = client_to_a_reader().await;
        let (io, log) = Recording::new(client, vectored);
        let mut chat = Chat::new(io, "\n");
        chat.set_out_buffer_size(5);
        assert_eq!(chat.out_buffer_size(), 5);
        let mut expected = Vec::new();
        for (i, producer) in [
            Producer::from("twelve bytes"),
            Producer::with_buffer_size("with buffer size 2", 2),
            Producer::from_reader(&b"a reader of twenty-six b.."[..]),
            Producer::from_iter(["an iterator's piece longer than 5"]),
            Producer::from_stream(futures::stream::iter([Ok(Bytes::from("a stream"))])),
        ]
        .into_iter()
        .enumerate()
        {
            chat.push_with_producer(producer);
            expected.extend_from_slice(
                [
                    &b"twelve bytes"[..],
                    b"with buffer size 2",
                    b"a reader of twenty-six b..",
                    b"an iterator's piece longer than 5",
                    b"a stream",
                ][i],
            );
        }
        within("close", chat.close()).await.unwrap();
        assert_eq!(within("the peer", received).await.unwrap(), expected);
        let log = log.lock().unwrap();
        // Output is cut into pieces of `out_buffer_size`; a vectored write
        // carries several of them.
        for write in &log.writes {
            assert!(write.slices.iter().all(|&slice| slice <= 5), "{write:?}");
            assert!(write.slices.len() <= 64, "{write:?}");
            assert_eq!(write.vectored, vectored);
        }
        if vectored {
            assert!(log.writes.iter().any(|write| write.slices.len() > 1));
        }
        let written: usize = log.writes.iter().map(|write| write.written).sum();
        assert_eq!(written, expected.len());
    }
}

/// With `set_in_buffer_size(3)` and a streaming `None` codec, no read asks
/// for more than 3 bytes and every `Partial` has at most 3.
#[tokio::test]
async fn reads_respect_in_buffer_size() {
    let data: Vec<u8> = (0..200u8).collect();
    let (client, mut server) = tcp_pair().await;
    server.write_all(&data).await.unwrap();
    server.shutdown().await.unwrap();
    let (io, log) = Recording::new(client, true);
    let mut chat = Chat::with_codec(io, TerminatorCodec::streaming(Terminator::None));
    chat.set_in_buffer_size(3);
    assert_eq!(chat.in_buffer_size(), 3);
    let mut received = Vec::new();
    while let Some(frame) = within("a frame", chat.next()).await {
        let Frame::Partial(piece) = frame.unwrap() else {
            panic!("no terminator, no Complete");
        };
        assert!(!piece.is_empty() && piece.len() <= 3, "{piece:?}");
        received.extend_from_slice(&piece);
    }
    assert_eq!(received, data);
    let log = log.lock().unwrap();
    assert!(
        log.read_offers.iter().all(|&offer| offer <= 3),
        "{:?}",
        log.read_offers
    );
}

/// Reads grow from small to `in_buffer_size` and no further.
#[tokio::test]
async fn reads_grow_up_to_in_buffer_size() {
    let (client, mut server) = tcp_pair().await;
    let writer = tokio::spawn(async move {
        server.write_all(&vec![b'x'; 4 << 20]).await.unwrap();
        server.shutdown().await.unwrap();
    });
    let (io, log) = Recording::new(client, true);
    let mut chat = Chat::new(io, Terminator::None);
    chat.set_in_buffer_size(100_000);
    let mut total = 0;
    while let Some(frame) = within("a frame", chat.next()).await {
        total += frame.unwrap().bytes().len();
    }
    assert_eq!(total, 4 << 20);
    within("the writer", writer).await.unwrap();
    let log = log.lock().unwrap();
    let largest = log.read_offers.iter().copied().max().unwrap();
    assert!(largest <= 100_000, "{largest}");
    assert!(log.read_offers[0] < 100_000, "the first read is small");
}

/// While the input pauses, a `Chat` keeps a read buffer of the first read's
/// size at most: after a burst grew the reads, the grown buffer is released
/// and the next request is read small again.
#[tokio::test]
async fn an_idle_chat_keeps_only_a_small_read_buffer() {
    const LINES: usize = 1024;
    let (client, mut server) = tcp_pair().await;
    let (io, log) = Recording::new(client, true);
    let mut chat = Chat::new(io, "\n");
    let burst: Vec<u8> = [[b'x'; 1023].as_slice(), b"\n"].concat().repeat(LINES);
    let writer = tokio::spawn(async move {
        server.write_all(&burst).await.unwrap();
        server
    });
    for _ in 0..LINES {
        let frame = within("a line of the burst", chat.next()).await.unwrap();
        assert_eq!(frame.unwrap().bytes().len(), 1023);
    }
    let mut server = within("the writer", writer).await.unwrap();
    assert!(
        futures::poll!(chat.next()).is_pending(),
        "nothing more came"
    );
    let burst_reads = {
        let log = log.lock().unwrap();
        let largest = log.read_offers.iter().copied().max().unwrap();
        assert!(largest > 4096, "the burst grew the reads to {largest}");
        log.read_offers.len()
    };

    server.write_all(b"small\n").await.unwrap();
    let frame = within("the small request", chat.next()).await.unwrap();
    assert_eq!(frame.unwrap(), Frame::Complete("small".into()));
    assert!(
        futures::poll!(chat.next()).is_pending(),
        "nothing more came"
    );
    let after_pause = log.lock().unwrap().read_offers[burst_reads];
    assert!(after_pause <= 4096, "read {after_pause} after the pause");
    let buffer = chat.into_parts().read_buffer;
    assert!(buffer.is_empty());
    // The allocation's full size, bytes split off its front included.
    let allocation = Vec::from(buffer).capacity();
    assert!(
        allocation <= 4096,
        "idle with {allocation} bytes of read buffer"
    );
}

/// One large `Bytes` is cut into `out_buffer_size` pieces that leave
/// together: the first write offers up to 64 of them, not four.
#[tokio::test]
async fn a_large_piece_leaves_in_few_writes() {
    let (client, received) = client_to_a_reader().await;
    let (io, log) = Recording::new(client, true);
    let mut chat = Chat::new(io, "\n");
    chat.push(Bytes::from(vec![b'x'; 4 << 20]));
    within("close", chat.close()).await.unwrap();
    assert_eq!(within("the peer", received).await.unwrap().len(), 4 << 20);
    let log = log.lock().unwrap();
    assert_eq!(log.writes[0].slices.len(), 64, "{:?}", log.writes[0]);
    assert!(log.writes[0].slices.iter().all(|&slice| slice == 64 * 1024));
}

/// Once close-when-done is asked for, frames still buffered are not handed
/// out while the last output waits on the peer: their replies would be
/// refused, and the goodbye lost with the `Chat`.
#[tokio::test]
async fn a_closing_chat_hands_out_no_more_frames() {
    let (mut client, server) = tokio::io::duplex(64);
    client.write_all(b"QUIT\r\nNOOP\r\n").await.unwrap();
    let mut chat = Chat::new(server, "\r\n");
    assert_next_frame(&mut chat, Frame::Complete("QUIT".into())).await;
    chat.push(vec![b'.'; 1000]);
    chat.push("221 bye\r\n");
    chat.close_when_done();
    // The peer reads only now; the stream ends without handing out NOOP.
    let received = read_to_end(client);
    assert!(within("the end", chat.next()).await.is_none());
    let received = within("the peer", received).await.unwrap();
    assert!(received.ends_with(b"221 bye\r\n"));
}

/// Parts put back with another read buffer (a STARTTLS done by hand: the
/// plaintext dropped) are searched from the start of that buffer.
#[tokio::test]
async fn parts_with_another_read_buffer_are_searched_from_its_start() {
    let (mut client, server) = tokio::io::duplex(1024);
    client.write_all(b"STARTTLS\r\n0123456789").await.unwrap();
    let mut chat = Chat::new(server, "\r\n");
    assert_next_frame(&mut chat, Frame::Complete("STARTTLS".into())).await;
    // One more poll searches the unterminated rest, then waits.
    assert!(chat.next().now_or_never().is_none());
    assert_eq!(chat.buffered_input(), b"0123456789");
    let parts = chat.into_parts();
    let mut chat = Chat::from_parts(asynchat::ChatParts::new(parts.io, parts.codec));
    client.write_all(b"a\r\nbcdefghij\r\n").await.unwrap();
    assert_next_frame(&mut chat, Frame::Complete("a".into())).await;
    assert_next_frame(&mut chat, Frame::Complete("bcdefghij".into())).await;
}
