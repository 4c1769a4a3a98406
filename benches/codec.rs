//! `TerminatorCodec` against what a user would pick instead: tokio-util's
//! `LinesCodec`, `AnyDelimiterCodec` and `LengthDelimitedCodec`, and a bare
//! `memchr::memmem::Finder` scan.
//!
//! One criterion group per row of the targets table (issue 6); in each group
//! the contenders decode the same input, fed the way a `Framed` feeds them:
//! slices of 64 KiB appended to a `BytesMut`, each followed by `decode` until
//! it returns `None`. Every frame is consumed the way a caller would: its
//! length is read and summed, and both the count of frames and the sum of
//! their lengths are checked (and go through `black_box`), so no contender
//! can skip work. (Passing each frame itself to `black_box` instead forces
//! it through a stack slot; an item wider than two words, such as `Frame`,
//! then pays a store-to-load forwarding stall per frame that no real caller
//! pays: about 10 ns, half the cost of a 64-byte line.)
//!
//! The clock is the bench thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not
//! the wall clock: these benches are single-threaded and never wait, so the
//! two agree on an idle machine, but on a shared one the CPU time does not
//! count the time other processes hold the core. `ASYNCHAT_BENCH_CLOCK=wall`
//! selects the wall clock.
//!
//! `scripts/bench-table.sh` turns the results into the ratio table.

mod common;

use std::hint::black_box;
use std::time::Duration;

use asynchat::{Frame, TerminatorCodec};
use bytes::{Buf, Bytes, BytesMut};
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use memchr::memmem;
use tokio_util::codec::{AnyDelimiterCodec, Decoder, LengthDelimitedCodec, LinesCodec};

/// The read size every group feeds its input in, unless it says otherwise.
const READ: usize = 64 * 1024;

/// The clock the benches are timed by: the bench thread's CPU time, or the
/// wall clock. Values are nanoseconds either way.
#[derive(Clone, Copy)]
enum Clock {
    ThreadCpu,
    Wall,
}

impl Clock {
    fn from_env() -> Self {
        match std::env::var("ASYNCHAT_BENCH_CLOCK").as_deref() {
            Ok("wall") => Clock::Wall,
            _ if thread_cpu_nanos().is_some() => Clock::ThreadCpu,
            _ => Clock::Wall,
        }
    }

    fn now(self) -> u64 {
        match self {
            Clock::ThreadCpu => thread_cpu_nanos().expect("checked in from_env"),
            Clock::Wall => {
                static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
                START
                    .get_or_init(std::time::Instant::now)
                    .elapsed()
                    .as_nanos() as u64
            }
        }
    }
}

/// The CPU time of the calling thread, in nanoseconds.
fn thread_cpu_nanos() -> Option<u64> {
    common::cpu_time(common::THREAD_CPU).map(|time| time.as_nanos() as u64)
}

impl Measurement for Clock {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        self.now()
    }
    fn end(&self, start: u64) -> u64 {
        self.now() - start
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds, as the wall clock's: its formatter fits.
        static WALL: WallTime = WallTime;
        WALL.formatter()
    }
}

type Group<'a> = BenchmarkGroup<'a, Clock>;

/// What a decoder's items weigh: the bytes a frame carries.
trait Weigh {
    fn weight(&self) -> usize;
}

impl Weigh for Bytes {
    fn weight(&self) -> usize {
        self.len()
    }
}

impl Weigh for BytesMut {
    fn weight(&self) -> usize {
        self.len()
    }
}

impl Weigh for String {
    fn weight(&self) -> usize {
        self.len()
    }
}

impl Weigh for Frame {
    fn weight(&self) -> usize {
        self.bytes().len()
    }
}

/// How many frames came out, and how many bytes they carried.
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
struct Tally {
    frames: u64,
    bytes: u64,
}

impl Tally {
    #[inline(always)]
    fn add(&mut self, frame: &impl Weigh) {
        self.frames += 1;
        self.bytes += frame.weight() as u64;
    }
}

/// One read: `piece` copied to the end of `buffer`, as a socket read would.
///
/// The copy goes in strokes of 2 KiB. For larger copies glibc's `memcpy`
/// takes its `rep movsb` path, which on this AMD machine runs at half speed
/// when the destination is a few bytes past the source modulo 4 KiB (4 KiB
/// aliasing): where the allocator happened to put the input would then
/// halve a whole row's throughput, for every contender alike.
#[inline(always)]
fn read_into(buffer: &mut BytesMut, piece: &[u8]) {
    buffer.reserve(piece.len());
    for stroke in piece.chunks(2048) {
        buffer.extend_from_slice(stroke);
    }
}

/// Feeds `input` to `decoder` in reads of `read` bytes, decoding until `None`
/// after each, then at the end of input.
fn feed<D>(decoder: &mut D, input: &[u8], read: usize) -> Tally
where
    D: Decoder,
    D::Item: Weigh,
    D::Error: std::fmt::Debug,
{
    let mut buffer = BytesMut::new();
    let mut tally = Tally::default();
    for piece in input.chunks(read) {
        read_into(&mut buffer, piece);
        while let Some(frame) = decoder.decode(&mut buffer).unwrap() {
            tally.add(&frame);
        }
    }
    while let Some(frame) = decoder.decode_eof(&mut buffer).unwrap() {
        tally.add(&frame);
    }
    black_box(tally)
}

/// `count` lines of `length` bytes each, `ending` included: printable text
/// that varies from line to line.
fn lines(count: usize, length: usize, ending: &[u8]) -> Vec<u8> {
    let body = length - ending.len();
    let mut input = Vec::with_capacity(count * length);
    for line in 0..count {
        input.extend((0..body).map(|i| b'a' + ((line + i) % 26) as u8));
        input.extend_from_slice(ending);
    }
    input
}

/// The floor the issue sets for a line decoder: one `memchr` and one
/// `split_to().freeze()` per frame, nothing else.
struct SplitFloor {
    next_index: usize,
}

impl Decoder for SplitFloor {
    type Item = Bytes;
    type Error = std::io::Error;

    #[inline]
    fn decode(&mut self, buffer: &mut BytesMut) -> Result<Option<Bytes>, Self::Error> {
        match memchr::memchr(b'\n', &buffer[self.next_index..]) {
            Some(offset) => {
                let end = self.next_index + offset;
                self.next_index = 0;
                let frame = buffer.split_to(end).freeze();
                buffer.advance(1);
                Ok(Some(frame))
            }
            None => {
                self.next_index = buffer.len();
                Ok(None)
            }
        }
    }
}

/// The bare scan the 1 MiB rows are held to: a `memmem::Finder` built once,
/// resuming where it stopped, splitting each message off as any decoder must.
struct FinderScan {
    finder: memmem::Finder<'static>,
    next_index: usize,
}

impl FinderScan {
    fn new(delimiter: &[u8]) -> Self {
        FinderScan {
            finder: memmem::Finder::new(delimiter).into_owned(),
            next_index: 0,
        }
    }
}

impl Decoder for FinderScan {
    type Item = Bytes;
    type Error = std::io::Error;

    #[inline]
    fn decode(&mut self, buffer: &mut BytesMut) -> Result<Option<Bytes>, Self::Error> {
        let delimiter = self.finder.needle().len();
        match self.finder.find(&buffer[self.next_index..]) {
            Some(offset) => {
                let end = self.next_index + offset;
                self.next_index = 0;
                let frame = buffer.split_to(end).freeze();
                buffer.advance(delimiter);
                Ok(Some(frame))
            }
            None => {
                self.next_index = buffer.len().saturating_sub(delimiter - 1);
                Ok(None)
            }
        }
    }
}

fn configure(group: &mut Group<'_>) {
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(40);
}

/// Rows 1 and 2: 64-byte lines ending `ending`, 1 MiB of them.
fn short_lines(c: &mut Criterion<Clock>, name: &str, ending: &'static str) {
    const COUNT: u64 = 16 * 1024;
    const LENGTH: u64 = 64;
    let input = lines(COUNT as usize, LENGTH as usize, ending.as_bytes());
    // Frames without their ending; `LinesCodec` drops a `\r` before the
    // `\n` too, the others split on `\n` alone and keep it.
    let lines_of = |dropped: u64| Tally {
        frames: COUNT,
        bytes: COUNT * (LENGTH - dropped),
    };
    let ours = lines_of(ending.len() as u64);
    let by_newline = lines_of(1);
    let mut group = c.benchmark_group(name);
    configure(&mut group);
    group.throughput(Throughput::Elements(COUNT));
    group.bench_function("ours", |b| {
        b.iter(|| {
            let mut codec = TerminatorCodec::new(ending);
            assert_eq!(feed(&mut codec, &input, READ), ours);
        })
    });
    group.bench_function("LinesCodec", |b| {
        b.iter(|| {
            let mut codec = LinesCodec::new();
            assert_eq!(feed(&mut codec, &input, READ), ours);
        })
    });
    group.bench_function("AnyDelimiterCodec", |b| {
        b.iter(|| {
            let mut codec = AnyDelimiterCodec::new(b"\n".to_vec(), Vec::new());
            assert_eq!(feed(&mut codec, &input, READ), by_newline);
        })
    });
    // For reference: the floor the issue sets, one search and one
    // `split_to().freeze()` per frame.
    group.bench_function("floor", |b| {
        b.iter(|| {
            let mut codec = SplitFloor { next_index: 0 };
            assert_eq!(feed(&mut codec, &input, READ), by_newline);
        })
    });
    group.finish();
}

fn lines_crlf(c: &mut Criterion<Clock>) {
    short_lines(c, "lines64_crlf", "\r\n");
}

fn lines_lf(c: &mut Criterion<Clock>) {
    short_lines(c, "lines64_lf", "\n");
}

/// `count` messages of `length` bytes each, `\r\n\r\n` included: header-like
/// text with `\r\n` every 64 bytes, so the search meets near misses.
fn messages(count: usize, length: usize) -> Vec<u8> {
    let body = length - 4;
    let mut input = Vec::with_capacity(count * length);
    for message in 0..count {
        input.extend((0..body).map(|i| match i % 64 {
            62 => b'\r',
            63 => b'\n',
            _ => b'a' + ((message + i) % 26) as u8,
        }));
        input.extend_from_slice(b"\r\n\r\n");
    }
    input
}

/// Streams `input` through a streaming codec in reads of `read` bytes.
fn feed_streaming(codec: &mut TerminatorCodec, input: &[u8], read: usize) -> Tally {
    let mut buffer = BytesMut::new();
    let mut tally = Tally::default();
    for piece in input.chunks(read) {
        read_into(&mut buffer, piece);
        while let Some(frame) = codec.decode(&mut buffer).unwrap() {
            // Messages are counted; every chunk's bytes are.
            tally.bytes += frame.bytes().len() as u64;
            tally.frames += u64::from(frame.is_complete());
        }
    }
    black_box(tally)
}

/// Row 3: 1 MiB messages ending `\r\n\r\n`, against the bare scan.
fn mib_messages(c: &mut Criterion<Clock>) {
    const COUNT: u64 = 16;
    const LENGTH: u64 = 1 << 20;
    let input = messages(COUNT as usize, LENGTH as usize);
    let expected = Tally {
        frames: COUNT,
        bytes: COUNT * (LENGTH - 4),
    };
    let mut group = c.benchmark_group("mib_crlfcrlf");
    configure(&mut group);
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("whole", |b| {
        b.iter(|| {
            let mut codec =
                TerminatorCodec::new("\r\n\r\n").with_max_frame_length(2 * LENGTH as usize);
            assert_eq!(feed(&mut codec, &input, READ), expected);
        })
    });
    group.bench_function("streaming", |b| {
        b.iter(|| {
            let mut codec = TerminatorCodec::streaming("\r\n\r\n");
            assert_eq!(feed_streaming(&mut codec, &input, READ), expected);
        })
    });
    group.bench_function("memmem_scan", |b| {
        b.iter(|| {
            let mut scan = FinderScan::new(b"\r\n\r\n");
            assert_eq!(feed(&mut scan, &input, READ), expected);
        })
    });
    // For reference only: the search alone over the input in place, with no
    // reads into a buffer. No target refers to it.
    group.bench_function("memmem_in_place", |b| {
        let finder = memmem::Finder::new(b"\r\n\r\n");
        b.iter(|| assert_eq!(finder.find_iter(black_box(&input)).count() as u64, COUNT))
    });
    group.finish();
}

/// Row 4: 256-byte messages behind a 4-byte big-endian length header, 1 MiB
/// of them.
fn length_prefixed(c: &mut Criterion<Clock>) {
    const COUNT: u64 = 4 * 1024;
    const BODY: u64 = 256;
    let mut input = Vec::with_capacity((COUNT * (BODY + 4)) as usize);
    for message in 0..COUNT {
        input.extend_from_slice(&(BODY as u32).to_be_bytes());
        input.extend((0..BODY).map(|i| (message + i) as u8));
    }
    let expected = Tally {
        frames: COUNT,
        bytes: COUNT * BODY,
    };
    let mut group = c.benchmark_group("length_prefixed256");
    configure(&mut group);
    group.throughput(Throughput::Elements(COUNT));
    group.bench_function("ours", |b| {
        b.iter(|| {
            let mut codec = TerminatorCodec::new(4u64);
            let mut buffer = BytesMut::new();
            let mut tally = Tally::default();
            let mut in_header = true;
            for piece in input.chunks(READ) {
                read_into(&mut buffer, piece);
                // A header sets the body's Length; a body sets the next header's.
                while let Some(frame) = codec.decode(&mut buffer).unwrap() {
                    if in_header {
                        let header: [u8; 4] = frame.bytes()[..].try_into().unwrap();
                        codec.set_terminator(u64::from(u32::from_be_bytes(header)));
                    } else {
                        tally.add(&frame);
                        codec.set_terminator(4u64);
                    }
                    in_header = !in_header;
                }
            }
            assert_eq!(black_box(tally), expected);
        })
    });
    group.bench_function("LengthDelimitedCodec", |b| {
        b.iter(|| {
            let mut codec = LengthDelimitedCodec::new();
            assert_eq!(feed(&mut codec, &input, READ), expected);
        })
    });
    // For reference: the floor of framing by `Length(4)` then `Length(n)`,
    // two `split_to().freeze()` per message and nothing else.
    group.bench_function("floor", |b| {
        b.iter(|| {
            let mut buffer = BytesMut::new();
            let mut tally = Tally::default();
            let mut wanted = 4;
            let mut in_header = true;
            for piece in input.chunks(READ) {
                read_into(&mut buffer, piece);
                while buffer.len() >= wanted {
                    let frame = buffer.split_to(wanted).freeze();
                    if in_header {
                        let header: [u8; 4] = frame[..].try_into().unwrap();
                        wanted = u32::from_be_bytes(header) as usize;
                    } else {
                        tally.add(&frame);
                        wanted = 4;
                    }
                    in_header = !in_header;
                }
            }
            assert_eq!(black_box(tally), expected);
        })
    });
    group.finish();
}

/// Row 5: one 16 MiB message in 1 KiB reads and in one read, both modes.
fn one_big_message(c: &mut Criterion<Clock>) {
    const LENGTH: usize = 16 << 20;
    let input = messages(1, LENGTH);
    let expected = Tally {
        frames: 1,
        bytes: LENGTH as u64 - 4,
    };
    let mut group = c.benchmark_group("big16mib");
    configure(&mut group);
    group.sample_size(20);
    group.throughput(Throughput::Bytes(input.len() as u64));
    for (read, read_name) in [(1024, "1k_reads"), (LENGTH, "one_read")] {
        group.bench_function(format!("whole_{read_name}"), |b| {
            b.iter(|| {
                let mut codec = TerminatorCodec::new("\r\n\r\n").with_max_frame_length(LENGTH);
                assert_eq!(feed(&mut codec, &input, read), expected);
            })
        });
        group.bench_function(format!("streaming_{read_name}"), |b| {
            b.iter(|| {
                let mut codec = TerminatorCodec::streaming("\r\n\r\n");
                assert_eq!(feed_streaming(&mut codec, &input, read), expected);
            })
        });
    }
    group.finish();
}

criterion_group!(
    name = benches;
    config = Criterion::default().with_measurement(Clock::from_env());
    targets =
    lines_crlf,
    lines_lf,
    mib_messages,
    length_prefixed,
    one_big_message,
);
criterion_main!(benches);
