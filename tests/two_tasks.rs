//! Two tasks over one `Chat`: the halves of `StreamExt::split` on the
//! multi-thread runtime, a reading task and a writing task, with random
//! yields and short delays, over 100,000 conversations.
//!
//! Each conversation is a server `Chat` over an in-memory duplex with a
//! small buffer (so that writes fill it and wait), split in two: the reading
//! task hands each line to the writing task, which answers it, in one piece
//! or several, through the `Sink`; on `QUIT` it answers `bye` and closes.
//! The client pipelines its requests or not, in chunks, and half-closes its
//! side or not; it checks every reply, in order, then the end of output.
//!
//! A wake-up lost between the halves hangs a conversation. A watchdog turns
//! the hang into a failure that says what each of the three tasks was
//! waiting on. `TWO_TASKS_CONVERSATIONS` and `TWO_TASKS_SEED` set the count
//! (default 100,000) and the seed of a run.

use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use asynchat::{Chat, Frame, Producer};
use bytes::Bytes;
use futures::{channel::mpsc, SinkExt, StreamExt};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, DuplexStream},
    task::yield_now,
    time::{sleep, timeout},
};

/// How long one conversation may take before the watchdog calls it a hang.
/// Thousands run at once on a shared machine; a real one takes
/// milliseconds.
const HANG: Duration = Duration::from_secs(20);

/// Conversations in flight at once.
const CONCURRENCY: usize = 256;

/// A small PRNG (xorshift64*), one per task, seeded from the conversation.
#[derive(Debug, Clone)]
struct Random(u64);

impl Random {
    fn new(seed: u64) -> Self {
        // Spread nearby seeds apart; never zero.
        Random(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn one_in(&mut self, odds: u64) -> bool {
        self.below(odds) == 0
    }

    /// Sometimes yields to the scheduler, rarely sleeps a little: the
    /// interleavings of the two halves change from run to run.
    async fn pause(&mut self) {
        if self.one_in(4) {
            yield_now().await;
        }
        if self.one_in(400) {
            sleep(Duration::from_micros(self.below(800))).await;
        }
    }
}

/// What a task is doing, as a step and a count, for the watchdog.
#[derive(Debug, Default)]
struct Doing(AtomicU64);

impl Doing {
    fn set(&self, step: u32, count: usize) {
        self.0
            .store(u64::from(step) << 32 | count as u64, Ordering::Relaxed);
    }

    fn get(&self) -> (u32, usize) {
        let value = self.0.load(Ordering::Relaxed);
        ((value >> 32) as u32, (value & 0xffff_ffff) as usize)
    }
}

/// What each task of a conversation is waiting on.
#[derive(Debug, Default)]
struct Trace {
    reader: Doing,
    writer: Doing,
    client: Doing,
}

// The steps of each task.
const STARTING: u32 = 0;
const DONE: u32 = 1;
const READER_NEXT: u32 = 2;
const READER_HANDING: u32 = 3;
const WRITER_WAITING_FOR_LINE: u32 = 2;
const WRITER_SEND: u32 = 3;
const WRITER_FEED: u32 = 4;
const WRITER_FLUSH: u32 = 5;
const WRITER_CLOSE: u32 = 6;
const CLIENT_WRITING: u32 = 2;
const CLIENT_READING: u32 = 3;
const CLIENT_READING_END: u32 = 4;

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (step, count) = self.reader.get();
        let reader = match step {
            STARTING => "not started".to_owned(),
            DONE => "done: its stream ended".to_owned(),
            READER_NEXT => format!("awaiting stream.next() for frame {count}"),
            READER_HANDING => format!("handing frame {count} to the writer"),
            _ => format!("in step {step}"),
        };
        let (step, count) = self.writer.get();
        let writer = match step {
            STARTING => "not started".to_owned(),
            DONE => "done: closed".to_owned(),
            WRITER_WAITING_FOR_LINE => format!("awaiting line {count} from the reader"),
            WRITER_SEND => format!("awaiting sink.send of reply {count}"),
            WRITER_FEED => format!("awaiting sink.feed of a piece of reply {count}"),
            WRITER_FLUSH => format!("awaiting sink.flush of reply {count}"),
            WRITER_CLOSE => "awaiting sink.close (bye sent)".to_owned(),
            _ => format!("in step {step}"),
        };
        let (step, count) = self.client.get();
        let client = match step {
            STARTING => "not started".to_owned(),
            DONE => "done".to_owned(),
            CLIENT_WRITING => format!("writing request {count}"),
            CLIENT_READING => format!("awaiting reply {count}"),
            CLIENT_READING_END => "awaiting the end of output".to_owned(),
            _ => format!("in step {step}"),
        };
        write!(
            f,
            "the reading half was {reader}; the writing half was {writer}; the client was {client}"
        )
    }
}

/// One conversation's script, from its seed.
#[derive(Debug, Clone)]
struct Script {
    requests: Vec<String>,
    /// The client writes every request before reading a reply.
    pipelined: bool,
    /// The client shuts its write side after `QUIT`.
    half_closes: bool,
    buffer: usize,
}

impl Script {
    fn new(random: &mut Random) -> Self {
        let count = random.below(4) as usize;
        let requests = (0..count)
            .map(|_| {
                let length = random.below(40) as usize;
                (0..length)
                    .map(|_| char::from(b'a' + random.below(26) as u8))
                    .collect()
            })
            .collect();
        Script {
            requests,
            pipelined: random.one_in(2),
            half_closes: random.one_in(2),
            buffer: 8 + random.below(120) as usize,
        }
    }
}

fn reply_to(line: &[u8]) -> String {
    format!("{} {}\n", line.len(), String::from_utf8_lossy(line))
}

/// The server's reading half: every frame goes to the writing half.
async fn reading_half(
    mut stream: futures::stream::SplitStream<Chat<DuplexStream>>,
    lines: mpsc::UnboundedSender<Bytes>,
    mut random: Random,
    trace: Arc<Trace>,
) {
    let mut count = 0;
    loop {
        trace.reader.set(READER_NEXT, count);
        let Some(frame) = stream.next().await else {
            break;
        };
        match frame.expect("a frame") {
            Frame::Complete(line) => {
                trace.reader.set(READER_HANDING, count);
                random.pause().await;
                // The writer is gone once it closed: nothing more to answer.
                let _ = lines.unbounded_send(line);
            }
            Frame::Partial(rest) => panic!("a Partial {rest:?} from whole lines"),
        }
        count += 1;
    }
    trace.reader.set(DONE, count);
}

/// The server's writing half: answers each line, in one piece or several,
/// through the `Sink`; `QUIT` gets `bye` and a close.
async fn writing_half(
    mut sink: futures::stream::SplitSink<Chat<DuplexStream>, Producer>,
    mut lines: mpsc::UnboundedReceiver<Bytes>,
    mut random: Random,
    trace: Arc<Trace>,
) {
    let mut count = 0;
    loop {
        trace.writer.set(WRITER_WAITING_FOR_LINE, count);
        let line = lines.next().await.expect("QUIT before the end of input");
        random.pause().await;
        if line == "QUIT" {
            trace.writer.set(WRITER_SEND, count);
            sink.send("bye\n".into()).await.expect("send bye");
            random.pause().await;
            trace.writer.set(WRITER_CLOSE, count);
            sink.close().await.expect("close");
            break;
        }
        let reply = reply_to(&line);
        match random.below(4) {
            0 => {
                trace.writer.set(WRITER_SEND, count);
                sink.send(reply.into()).await.expect("send");
            }
            1 => {
                let (head, tail) = reply.split_at(random.below(reply.len() as u64) as usize);
                trace.writer.set(WRITER_FEED, count);
                sink.feed(Producer::from(head)).await.expect("feed");
                random.pause().await;
                sink.feed(Producer::from(tail)).await.expect("feed");
                trace.writer.set(WRITER_FLUSH, count);
                sink.flush().await.expect("flush");
            }
            2 => {
                let pieces: Vec<Bytes> = reply
                    .as_bytes()
                    .chunks(1 + random.below(5) as usize)
                    .map(Bytes::copy_from_slice)
                    .collect();
                trace.writer.set(WRITER_SEND, count);
                sink.send(Producer::from_iter(pieces)).await.expect("send");
            }
            _ => {
                let piece_size = 1 + random.below(7) as usize;
                trace.writer.set(WRITER_SEND, count);
                sink.send(Producer::with_buffer_size(reply, piece_size))
                    .await
                    .expect("send");
            }
        }
        count += 1;
    }
    trace.writer.set(DONE, count);
}

async fn read_reply(io: &mut DuplexStream, index: usize, expected: &str, trace: &Trace) {
    trace.client.set(CLIENT_READING, index);
    let mut got = vec![0; expected.len()];
    io.read_exact(&mut got).await.expect("a reply");
    assert_eq!(String::from_utf8_lossy(&got), expected, "reply {index}");
}

/// The client: its requests, in chunks, pipelined or not; every reply
/// checked; then the end of output.
async fn client(mut io: DuplexStream, script: Script, mut random: Random, trace: Arc<Trace>) {
    let mut requests: Vec<String> = script.requests.iter().map(|r| format!("{r}\n")).collect();
    requests.push("QUIT\n".to_owned());
    let mut replies: Vec<String> = script
        .requests
        .iter()
        .map(|r| reply_to(r.as_bytes()))
        .collect();
    replies.push("bye\n".to_owned());

    let mut next_reply = 0;
    for (index, request) in requests.iter().enumerate() {
        trace.client.set(CLIENT_WRITING, index);
        // Now and then in two writes, so that a line arrives in pieces.
        let split = if random.one_in(4) {
            random.below(request.len() as u64) as usize
        } else {
            0
        };
        for chunk in [&request[..split], &request[split..]] {
            if !chunk.is_empty() {
                io.write_all(chunk.as_bytes()).await.expect("a request");
                random.pause().await;
            }
        }
        if !script.pipelined {
            read_reply(&mut io, next_reply, &replies[next_reply], &trace).await;
            next_reply += 1;
        }
    }
    if script.half_closes {
        io.shutdown().await.expect("half-close");
    }
    while next_reply < replies.len() {
        read_reply(&mut io, next_reply, &replies[next_reply], &trace).await;
        next_reply += 1;
    }
    trace.client.set(CLIENT_READING_END, 0);
    let mut after = Vec::new();
    io.read_to_end(&mut after).await.expect("the end of output");
    assert!(after.is_empty(), "{after:?} after bye");
    trace.client.set(DONE, 0);
}

/// One conversation, under the watchdog.
async fn conversation(number: u64, seed: u64) {
    let mut random = Random::new(seed ^ number);
    let script = Script::new(&mut random);
    let (client_io, server_io) = tokio::io::duplex(script.buffer);
    let (sink, stream) = Chat::new(server_io, "\n").split();
    let (lines, lines_out) = mpsc::unbounded();
    let trace = Arc::new(Trace::default());
    let reader = tokio::spawn(reading_half(
        stream,
        lines,
        Random::new(random.next()),
        Arc::clone(&trace),
    ));
    let writer = tokio::spawn(writing_half(
        sink,
        lines_out,
        Random::new(random.next()),
        Arc::clone(&trace),
    ));
    let client = client(
        client_io,
        script.clone(),
        Random::new(random.next()),
        Arc::clone(&trace),
    );
    let all = async {
        client.await;
        reader.await.expect("the reading half");
        writer.await.expect("the writing half");
    };
    if timeout(HANG, all).await.is_err() {
        panic!(
            "conversation {number} (TWO_TASKS_SEED={seed}, {script:?}) hung for {HANG:?}: {trace}"
        );
    }
}

fn setting(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value}: not a number")),
        Err(_) => default,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_halves_over_many_conversations() {
    let count = setting("TWO_TASKS_CONVERSATIONS", 100_000);
    let seed = setting("TWO_TASKS_SEED", 0x5eed);
    let started = Instant::now();
    futures::stream::iter(0..count)
        .for_each_concurrent(CONCURRENCY, |number| async move {
            // Each conversation on a task of its own: its client then runs
            // on either thread too.
            let handle = tokio::spawn(conversation(number, seed));
            if let Err(error) = handle.await {
                std::panic::resume_unwind(error.into_panic());
            }
        })
        .await;
    eprintln!(
        "{count} conversations in {:.1} s (TWO_TASKS_SEED={seed})",
        started.elapsed().as_secs_f64()
    );
}

/// The watchdog's message names each half and what it awaited.
#[test]
fn the_watchdog_says_what_each_half_awaited() {
    let trace = Trace::default();
    trace.reader.set(READER_NEXT, 3);
    trace.writer.set(WRITER_FLUSH, 2);
    trace.client.set(CLIENT_READING, 2);
    assert_eq!(
        trace.to_string(),
        "the reading half was awaiting stream.next() for frame 3; \
         the writing half was awaiting sink.flush of reply 2; \
         the client was awaiting reply 2"
    );
}
