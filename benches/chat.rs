//! `Chat` over loopback TCP against what a user would write instead with
//! tokio and tokio-util: `tokio::io::copy`, `Framed<_, BytesCodec>` and a
//! `Framed<_, LinesCodec>` echo server.
//!
//! One criterion group per row of the targets table, contenders
//! side by side, each against the same peer on a thread of its own with
//! blocking calls: for the bulk rows a drain reading 1 MiB at a time, for
//! the echo row the client. The bulk rows' sender runs on a one-thread
//! runtime (one thread per core with the drain); the echo servers on a
//! runtime with two workers, as a server would. Only the transfer itself is
//! timed: connecting and accepting are not.
//!
//! Each row is measured twice: by the wall clock (groups `reader_tcp`,
//! `push_tcp`, `echo_tcp`: the bytes/s and round trips/s of the targets),
//! and by the CPU time of the whole process, both ends and the kernel's
//! work in their system calls included (the same groups, suffixed `_cpu`:
//! bytes and round trips per CPU-second). On a machine shared with other
//! work the wall clock swings with the load; the CPU time much less.
//!
//! `scripts/bench-table.sh` turns the results into the ratio table.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use asynchat::{Chat, Frame, Producer};
use bytes::Bytes;
use criterion::{criterion_group, Criterion, SamplingMode, Throughput};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_util::codec::{BytesCodec, Framed, LinesCodec};

/// Bytes moved per iteration of the bulk rows (the target's 1 GiB, in
/// pieces criterion can repeat: a run moves several GiB per contender).
const BULK: u64 = 128 << 20;

/// The size of the `Bytes` pushed in the push row.
const PIECE: usize = 64 * 1024;

/// What the bulk and echo rows are timed by.
#[derive(Clone, Copy)]
enum Clock {
    Wall,
    ProcessCpu,
}

impl Clock {
    const BOTH: [(Clock, &'static str); 2] = [(Clock::Wall, ""), (Clock::ProcessCpu, "_cpu")];

    fn now(self) -> Duration {
        match self {
            Clock::Wall => {
                static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
                START.get_or_init(Instant::now).elapsed()
            }
            Clock::ProcessCpu => process_cpu_time(),
        }
    }
}

/// The CPU time of the whole process, all threads, user and system;
/// elsewhere than on Linux the `_cpu` groups measure the wall clock too.
fn process_cpu_time() -> Duration {
    common::cpu_time(common::PROCESS_CPU).unwrap_or_else(|| Clock::Wall.now())
}

/// The runtime of the bulk rows: one thread, which writes and waits for the
/// socket itself. With the drain's thread that makes one thread per core;
/// a second worker only woke to find nothing, and moved the numbers by 2x
/// from one sample to the next.
fn bulk_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A connected pair over loopback: (the bench's end, the peer's end).
async fn connect(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let address = listener.local_addr().unwrap();
    let (ours, theirs) = tokio::join!(TcpStream::connect(address), listener.accept());
    (ours.unwrap(), theirs.unwrap().0)
}

/// The peer of the bulk rows: a thread of its own that reads with blocking
/// calls and a 1 MiB buffer until end of input, and returns how many bytes
/// came. Off the runtime, it cannot share a worker with the sender, which
/// made the wall clock swing by 2x from one connection to the next.
fn drain(stream: TcpStream) -> std::thread::JoinHandle<u64> {
    let mut stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    std::thread::spawn(move || {
        let mut buffer = vec![0; 1 << 20];
        let mut total = 0;
        loop {
            match std::io::Read::read(&mut stream, &mut buffer).unwrap() {
                0 => return total,
                read => total += read as u64,
            }
        }
    })
}

/// The source of the reader row: `BULK` bytes from memory, no IO.
fn source() -> impl AsyncRead + Send + Unpin + 'static {
    tokio::io::repeat(b'x').take(BULK)
}

/// Times `iterations` transfers of `BULK` bytes by `send` over fresh
/// connections; connecting is not timed, the drain's end is.
fn time_bulk<F, Fut>(
    runtime: &Runtime,
    listener: &TcpListener,
    clock: Clock,
    iterations: u64,
    send: F,
) -> Duration
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    runtime.block_on(async {
        let mut elapsed = Duration::ZERO;
        for _ in 0..iterations {
            let (ours, theirs) = connect(listener).await;
            let drained = drain(theirs);
            let start = clock.now();
            send(ours).await;
            assert_eq!(drained.join().unwrap(), BULK);
            elapsed += clock.now() - start;
        }
        elapsed
    })
}

/// Row 6, ours: the reader's bytes through a `Chat`, then close-when-done
/// (everything queued is written, then the write side shut down).
async fn reader_ours(stream: TcpStream) {
    let mut chat = Chat::new(stream, "\n");
    chat.push_with_producer(Producer::from_reader(source()));
    chat.close().await.unwrap();
}

/// Row 6, the contender: `tokio::io::copy`, then shut down.
async fn reader_io_copy(mut stream: TcpStream) {
    let copied = tokio::io::copy(&mut source(), &mut stream).await.unwrap();
    assert_eq!(copied, BULK);
    stream.shutdown().await.unwrap();
}

/// Row 7, ours: `BULK` bytes of `piece` pushed on a `Chat`, then
/// close-when-done.
async fn push_ours(stream: TcpStream, piece: Bytes, out_buffer_size: usize) {
    let mut chat = Chat::new(stream, "\n");
    chat.set_out_buffer_size(out_buffer_size);
    for _ in 0..BULK as usize / piece.len() {
        chat.push(piece.clone());
    }
    chat.close().await.unwrap();
}

/// Row 7, the contender: the same pieces by `send` on a
/// `Framed<_, BytesCodec>`, then closed.
async fn push_framed(stream: TcpStream, piece: Bytes) {
    let mut framed = Framed::new(stream, BytesCodec::new());
    for _ in 0..BULK as usize / piece.len() {
        framed.send(piece.clone()).await.unwrap();
    }
    SinkExt::<Bytes>::close(&mut framed).await.unwrap();
}

fn bulk_group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Bytes(BULK));
    group
}

/// Row 6: a reader's bytes to the socket: `Producer::from_reader` through a
/// `Chat`, against `tokio::io::copy`.
fn from_reader(c: &mut Criterion) {
    for (clock, suffix) in Clock::BOTH {
        from_reader_by(c, clock, suffix);
    }
}

fn from_reader_by(c: &mut Criterion, clock: Clock, suffix: &str) {
    let runtime = bulk_runtime();
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let mut group = bulk_group(c, &format!("reader_tcp{suffix}"));
    group.bench_function("ours", |b| {
        b.iter_custom(|iterations| time_bulk(&runtime, &listener, clock, iterations, reader_ours))
    });
    group.bench_function("tokio_io_copy", |b| {
        b.iter_custom(|iterations| {
            time_bulk(&runtime, &listener, clock, iterations, reader_io_copy)
        })
    });
    group.finish();
}

/// Row 7: 64 KiB `Bytes` to the socket: pushed on a `Chat` (no copy into a
/// write buffer), against `send` on a `Framed<_, BytesCodec>` (copied into
/// its write buffer).
fn push_bytes(c: &mut Criterion) {
    for (clock, suffix) in Clock::BOTH {
        push_bytes_by(c, clock, suffix);
    }
}

fn push_bytes_by(c: &mut Criterion, clock: Clock, suffix: &str) {
    let runtime = bulk_runtime();
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let piece = Bytes::from(vec![b'x'; PIECE]);
    let mut group = bulk_group(c, &format!("push_tcp{suffix}"));
    // `ours` with asynchat's default `out_buffer_size` of 64 KiB, the most
    // written at once; `ours_out1m` (for reference, no target) with 1 MiB:
    // one vectored write then carries 16 of the pieces.
    for (name, out_buffer_size) in [("ours", 64 << 10), ("ours_out1m", 1 << 20)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                time_bulk(&runtime, &listener, clock, iterations, |stream| {
                    push_ours(stream, piece.clone(), out_buffer_size)
                })
            })
        });
    }
    group.bench_function("Framed_BytesCodec", |b| {
        b.iter_custom(|iterations| {
            time_bulk(&runtime, &listener, clock, iterations, |stream| {
                push_framed(stream, piece.clone())
            })
        })
    });
    group.finish();
}

/// The request of the echo row, newline included.
const REQUEST: &[u8] = b"PING the quick brown fox jumps over the lazy dog\n";

/// The echo row's client: a thread of its own (the bench's) with blocking
/// calls, off the runtime, so that the server's task has the runtime to
/// itself whichever server it is.
struct EchoClient {
    stream: std::io::BufReader<std::net::TcpStream>,
    reply: Vec<u8>,
}

impl EchoClient {
    fn new(stream: TcpStream) -> Self {
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream.set_nodelay(true).unwrap();
        EchoClient {
            stream: std::io::BufReader::new(stream),
            reply: Vec::new(),
        }
    }

    /// Times `iterations` round trips: write a line, read the reply line.
    fn time_round_trips(&mut self, clock: Clock, iterations: u64) -> Duration {
        use std::io::{BufRead, Write};
        let start = clock.now();
        for _ in 0..iterations {
            self.stream.get_mut().write_all(REQUEST).unwrap();
            self.reply.clear();
            self.stream.read_until(b'\n', &mut self.reply).unwrap();
            assert_eq!(&self.reply[..], REQUEST);
        }
        black_box(&self.reply);
        clock.now() - start
    }
}

/// Row 8, ours: a `Chat` line echo server.
async fn echo_ours(stream: TcpStream) {
    let mut chat = Chat::new(stream, "\n");
    while let Some(frame) = chat.next().await {
        if let Frame::Complete(line) = frame.unwrap() {
            chat.push(line);
            chat.push(Bytes::from_static(b"\n"));
        }
    }
}

/// Row 8, the contender: a `Framed<_, LinesCodec>` line echo server.
async fn echo_framed(stream: TcpStream) {
    let mut framed = Framed::new(stream, LinesCodec::new());
    while let Some(line) = framed.next().await {
        framed.send(line.unwrap()).await.unwrap();
    }
}

/// Row 8: line echo round trips over loopback, one client: a `Chat` server
/// against a `Framed<_, LinesCodec>` server.
fn echo(c: &mut Criterion) {
    for (clock, suffix) in Clock::BOTH {
        echo_by(c, clock, suffix);
    }
}

fn echo_by(c: &mut Criterion, clock: Clock, suffix: &str) {
    let runtime = runtime();
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let mut group = c.benchmark_group(format!("echo_tcp{suffix}"));
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(30)
        .throughput(Throughput::Elements(1));

    let (client, server) = runtime.block_on(connect(&listener));
    let mut client = EchoClient::new(client);
    let chat_server = runtime.spawn(echo_ours(server));
    group.bench_function("ours", |b| {
        b.iter_custom(|iterations| client.time_round_trips(clock, iterations))
    });
    drop(client);
    runtime.block_on(chat_server).unwrap();

    let (client, server) = runtime.block_on(connect(&listener));
    let mut client = EchoClient::new(client);
    let framed_server = runtime.spawn(echo_framed(server));
    group.bench_function("Framed_LinesCodec", |b| {
        b.iter_custom(|iterations| client.time_round_trips(clock, iterations))
    });
    drop(client);
    runtime.block_on(framed_server).unwrap();
    group.finish();
}

/// The TCP rows in paired rounds (see `common::paired_ratios`), each round
/// a whole transfer or 2,000 round trips by the wall clock.
fn paired(filter: Option<&str>) {
    let Some(rounds) = common::paired_rounds() else {
        return;
    };
    let selected = |group: &str| common::selected(filter, group);
    let bulk_runtime = bulk_runtime();
    let listener = bulk_runtime
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let bulk = |send: &dyn Fn(TcpStream) -> futures::future::BoxFuture<'static, ()>| {
        time_bulk(&bulk_runtime, &listener, Clock::Wall, 1, send)
    };
    if selected("paired_reader_tcp") {
        let ratios = common::paired_ratios(
            rounds,
            || bulk(&|s| Box::pin(reader_ours(s))),
            || bulk(&|s| Box::pin(reader_io_copy(s))),
        );
        common::report("paired_reader_tcp", "ours", "tokio_io_copy", ratios);
    }
    if selected("paired_push_tcp") {
        let piece = Bytes::from(vec![b'x'; PIECE]);
        let ours = || bulk(&|s| Box::pin(push_ours(s, piece.clone(), 64 << 10)));
        let theirs = || bulk(&|s| Box::pin(push_framed(s, piece.clone())));
        common::report(
            "paired_push_tcp",
            "ours",
            "Framed_BytesCodec",
            common::paired_ratios(rounds, ours, theirs),
        );
    }
    if selected("paired_echo_tcp") {
        const ROUND_TRIPS: u64 = 2_000;
        // A listener of the servers' runtime: the bulk rows' one is only
        // driven while that runtime runs.
        let servers = runtime();
        let listener = servers.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let (client, stream) = servers.block_on(connect(&listener));
        servers.spawn(echo_ours(stream));
        let mut ours = EchoClient::new(client);
        let (client, stream) = servers.block_on(connect(&listener));
        servers.spawn(echo_framed(stream));
        let mut theirs = EchoClient::new(client);
        let ratios = common::paired_ratios(
            rounds,
            || ours.time_round_trips(Clock::Wall, ROUND_TRIPS),
            || theirs.time_round_trips(Clock::Wall, ROUND_TRIPS),
        );
        common::report("paired_echo_tcp", "ours", "Framed_LinesCodec", ratios);
    }
}

criterion_group!(benches, from_reader, push_bytes, echo);

fn main() {
    // First, in a fresh process: after criterion's groups `Framed`'s push
    // was seen running at half its speed, in paired rounds too, where on
    // its own it keeps its speed for hundreds of rounds. Only under
    // `cargo bench` (which passes `--bench`), not `--list` or `cargo test`.
    if let Some(filter) = common::paired_filter() {
        paired(filter.as_deref());
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
