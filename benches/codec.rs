//! `TerminatorCodec` against what a user would pick instead (tokio-util's
//! `LinesCodec`, `AnyDelimiterCodec` and `LengthDelimitedCodec`) and against
//! its floor: the bare search and `split_to().freeze()` that any decoder of
//! the same frames must do (a `memchr`, `memmem::Finder` or `aho_corasick`
//! scan, or for counts the splits alone).
//!
//! One criterion group per row of the targets table, each with its floor;
//! then rows for what memchr's benchmarks call pathological inputs: a flood
//! of the delimiter's first byte, reads of one byte, and a delimiter that
//! overlaps itself. In each group the contenders decode the same input, fed
//! the way a `Framed` feeds them:
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
//! Before criterion's groups, the rows held to a target (the length
//! prefix and short lines against their floor, the length prefix against
//! `LengthDelimitedCodec`, mixed endings against our `\n`) also run in
//! paired rounds: ours and the other back to back, round after round, so
//! that load coming and going on a shared machine hits both alike.
//!
//! `scripts/bench-table.sh` turns the results into the ratio tables.

mod common;

use std::hint::black_box;
use std::time::Duration;

use aho_corasick::{AhoCorasick, MatchKind};
use asynchat::{Frame, Terminator, TerminatorCodec};
use bytes::{Buf, Bytes, BytesMut};
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, Criterion, Throughput};
use memchr::memmem;
use tokio_util::codec::{AnyDelimiterCodec, Decoder, LengthDelimitedCodec, LinesCodec};

/// The read size every group feeds its input in, unless it says otherwise.
const READ: usize = 64 * 1024;

/// The short-line rows: 1 MiB of 64-byte lines.
const LINES: u64 = 16 * 1024;
const LINE_LENGTH: u64 = 64;

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

/// A bare search, built once: what a floor decoder calls.
trait BareSearch {
    /// The first match in `haystack`: where it starts, and its length.
    fn find(&self, haystack: &[u8]) -> Option<(usize, usize)>;

    /// How many bytes at the end of a read may begin a match that the next
    /// read completes: the longest match's length minus one.
    fn held_back(&self) -> usize;
}

/// One byte, found by `memchr`: the floor of the line rows (a `\r\n`
/// decoder may search for the `\n` and look at the byte before it).
struct Byte(u8);

impl BareSearch for Byte {
    #[inline]
    fn find(&self, haystack: &[u8]) -> Option<(usize, usize)> {
        memchr::memchr(self.0, haystack).map(|offset| (offset, 1))
    }

    fn held_back(&self) -> usize {
        0
    }
}

/// Lines ending `\n` or `\r\n`, the rule of `any_of(["\r\n", "\n"])`:
/// `memchr` finds the `\n`, and a `\r` just before it belongs to the ending.
struct LenientLines;

impl BareSearch for LenientLines {
    #[inline]
    fn find(&self, haystack: &[u8]) -> Option<(usize, usize)> {
        memchr::memchr(b'\n', haystack).map(|offset| {
            // Without a branch: with endings mixed at random, a branch on
            // the `\r` is mispredicted every other line.
            let carriage_return = usize::from(offset > 0 && haystack[offset - 1] == b'\r');
            (offset - carriage_return, 1 + carriage_return)
        })
    }

    fn held_back(&self) -> usize {
        1
    }
}

impl BareSearch for memmem::Finder<'static> {
    #[inline]
    fn find(&self, haystack: &[u8]) -> Option<(usize, usize)> {
        memmem::Finder::find(self, haystack).map(|offset| (offset, self.needle().len()))
    }

    fn held_back(&self) -> usize {
        self.needle().len() - 1
    }
}

/// A set of delimiters, leftmost-longest (the rule of `Terminator::any_of`).
impl BareSearch for AhoCorasick {
    #[inline]
    fn find(&self, haystack: &[u8]) -> Option<(usize, usize)> {
        AhoCorasick::find(self, haystack).map(|found| (found.start(), found.len()))
    }

    fn held_back(&self) -> usize {
        self.max_pattern_len() - 1
    }
}

/// A floor decoder: one bare search and one `split_to().freeze()` per frame,
/// nothing else. The search resumes where the last one stopped (less the
/// bytes that may begin a match), so no byte is searched twice.
struct Scan<S> {
    search: S,
    next_index: usize,
}

impl<S: BareSearch> Scan<S> {
    fn new(search: S) -> Self {
        Scan {
            search,
            next_index: 0,
        }
    }
}

/// The bare scan the 1 MiB rows are held to: a `memmem::Finder` built once.
fn finder_scan(delimiter: &[u8]) -> Scan<memmem::Finder<'static>> {
    Scan::new(memmem::Finder::new(delimiter).into_owned())
}

/// A bare Aho-Corasick scan of `delimiters`, leftmost-longest.
fn automaton_scan(delimiters: &[&str]) -> Scan<AhoCorasick> {
    Scan::new(
        AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(delimiters)
            .unwrap(),
    )
}

impl<S: BareSearch> Decoder for Scan<S> {
    type Item = Bytes;
    type Error = std::io::Error;

    #[inline]
    fn decode(&mut self, buffer: &mut BytesMut) -> Result<Option<Bytes>, Self::Error> {
        match self.search.find(&buffer[self.next_index..]) {
            Some((offset, length)) => {
                let end = self.next_index + offset;
                self.next_index = 0;
                let frame = buffer.split_to(end).freeze();
                buffer.advance(length);
                Ok(Some(frame))
            }
            None => {
                self.next_index = buffer.len().saturating_sub(self.search.held_back());
                Ok(None)
            }
        }
    }
}

/// 64-byte lines ending `ending`, 1 MiB of them.
fn short_lines(c: &mut Criterion<Clock>, name: &str, ending: &'static str) {
    const COUNT: u64 = LINES;
    const LENGTH: u64 = LINE_LENGTH;
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
    // The floor: one `memchr` and one `split_to().freeze()` per frame.
    group.bench_function("floor", |b| {
        b.iter(|| {
            let mut codec = Scan::new(Byte(b'\n'));
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

/// The lenient line terminator: `\r\n` or `\n`, whichever ends the line.
fn lenient() -> Terminator {
    Terminator::any_of(["\r\n", "\n"])
}

/// `count` lines of `length` bytes each, ending `\r\n` or `\n` in an order
/// no branch predictor learns (a fixed xorshift sequence, so every run
/// decodes the same bytes), and how many end `\r\n`.
fn mixed_lines(count: usize, length: usize) -> (Vec<u8>, u64) {
    let mut state: u32 = 0x9e37_79b9;
    let mut input = Vec::with_capacity(count * length);
    let mut crlf = 0;
    for line in 0..count {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let ending: &[u8] = if state & 1 == 1 { b"\r\n" } else { b"\n" };
        crlf += u64::from(ending.len() == 2);
        let body = length - ending.len();
        input.extend((0..body).map(|i| b'a' + ((line + i) % 26) as u8));
        input.extend_from_slice(ending);
    }
    (input, crlf)
}

/// 64-byte lines ending `\r\n` or `\n` at random, 1 MiB of them, framed by
/// `any_of(["\r\n", "\n"])`: against `LinesCodec` (which accepts both),
/// against our single `\n` on the same bytes (which keeps the `\r`), and
/// against the floor, one `memchr` for the `\n` and a look at the byte
/// before it. A bare Aho-Corasick scan of the pair, for reference: what the
/// automaton would cost on short lines.
fn lines_mixed(c: &mut Criterion<Clock>) {
    const COUNT: u64 = LINES;
    const LENGTH: u64 = LINE_LENGTH;
    let (input, crlf) = mixed_lines(COUNT as usize, LENGTH as usize);
    let without_ending = Tally {
        frames: COUNT,
        bytes: COUNT * (LENGTH - 1) - crlf,
    };
    let by_newline = Tally {
        frames: COUNT,
        bytes: COUNT * (LENGTH - 1),
    };
    let mut group = c.benchmark_group("lines64_mixed");
    group.throughput(Throughput::Elements(COUNT));
    group.bench_function("ours", |b| {
        b.iter(|| {
            let mut codec = TerminatorCodec::new(lenient());
            assert_eq!(feed(&mut codec, &input, READ), without_ending);
        })
    });
    group.bench_function("ours_newline", |b| {
        b.iter(|| {
            let mut codec = TerminatorCodec::new("\n");
            assert_eq!(feed(&mut codec, &input, READ), by_newline);
        })
    });
    group.bench_function("LinesCodec", |b| {
        b.iter(|| {
            let mut codec = LinesCodec::new();
            assert_eq!(feed(&mut codec, &input, READ), without_ending);
        })
    });
    group.bench_function("floor", |b| {
        b.iter(|| {
            let mut scan = Scan::new(LenientLines);
            assert_eq!(feed(&mut scan, &input, READ), without_ending);
        })
    });
    group.bench_function("aho_corasick_scan", |b| {
        b.iter(|| {
            let mut scan = automaton_scan(&["\r\n", "\n"]);
            assert_eq!(feed(&mut scan, &input, READ), without_ending);
        })
    });
    group.finish();
}

/// `count` messages of `length` bytes each, `ending` included: header-like
/// text with `\r\n` every 64 bytes, so the search meets near misses.
fn messages(count: usize, length: usize, ending: &[u8]) -> Vec<u8> {
    let body = length - ending.len();
    let mut input = Vec::with_capacity(count * length);
    for message in 0..count {
        input.extend((0..body).map(|i| match i % 64 {
            62 => b'\r',
            63 => b'\n',
            _ => b'a' + ((message + i) % 26) as u8,
        }));
        input.extend_from_slice(ending);
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

/// 1 MiB messages ending `\r\n\r\n`, against the bare scan.
fn mib_messages(c: &mut Criterion<Clock>) {
    const COUNT: u64 = 16;
    const LENGTH: u64 = 1 << 20;
    let input = messages(COUNT as usize, LENGTH as usize, b"\r\n\r\n");
    let expected = Tally {
        frames: COUNT,
        bytes: COUNT * (LENGTH - 4),
    };
    let mut group = c.benchmark_group("mib_crlfcrlf");
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
            let mut scan = finder_scan(b"\r\n\r\n");
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

/// Three ends of a multi-line block (SMTP's and POP3's dot, a custom `END`,
/// a dot between bare newlines): two first bytes, `\r` and `\n`, which the
/// codec finds with `memchr2`, comparing the delimiters at each.
const SET3: [&str; 3] = ["\r\n.\r\n", "\r\nEND\r\n", "\n.\n"];

/// The same and two ends of input a terminal sends (`^D`, `^Z`): four first
/// bytes, more than `memchr3` takes, so the codec searches with its
/// Aho-Corasick automaton.
const SET5: [&str; 5] = ["\r\n.\r\n", "\r\nEND\r\n", "\n.\n", "\x04", "\x1a"];

/// 1 MiB messages of `\r\n`-separated text ending `\r\n.\r\n`, framed by a
/// set of delimiters: [`SET3`] (group `mib_any_of3`) and [`SET5`]
/// (`mib_any_of5`). The floor is a bare `memmem` scan for `\r\n.\r\n`
/// alone; a bare Aho-Corasick scan of the same set (leftmost-longest, the
/// rule of `any_of`) tells whether the codec's first-byte scan beats the
/// automaton.
fn mib_delimiter_sets(c: &mut Criterion<Clock>) {
    const COUNT: u64 = 16;
    const LENGTH: u64 = 1 << 20;
    let input = messages(COUNT as usize, LENGTH as usize, b"\r\n.\r\n");
    let expected = Tally {
        frames: COUNT,
        bytes: COUNT * (LENGTH - 5),
    };
    for (name, set) in [("mib_any_of3", &SET3[..]), ("mib_any_of5", &SET5[..])] {
        let terminator = Terminator::any_of(set.iter().copied());
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function("whole", |b| {
            b.iter(|| {
                let mut codec = TerminatorCodec::new(terminator.clone())
                    .with_max_frame_length(2 * LENGTH as usize);
                assert_eq!(feed(&mut codec, &input, READ), expected);
            })
        });
        group.bench_function("streaming", |b| {
            b.iter(|| {
                let mut codec = TerminatorCodec::streaming(terminator.clone());
                assert_eq!(feed_streaming(&mut codec, &input, READ), expected);
            })
        });
        group.bench_function("memmem_scan", |b| {
            b.iter(|| {
                let mut scan = finder_scan(b"\r\n.\r\n");
                assert_eq!(feed(&mut scan, &input, READ), expected);
            })
        });
        group.bench_function("aho_corasick_scan", |b| {
            b.iter(|| {
                let mut scan = automaton_scan(set);
                assert_eq!(feed(&mut scan, &input, READ), expected);
            })
        });
        group.finish();
    }
}

/// The length-prefixed row's messages: 4096 bodies of 256 bytes, each
/// behind a 4-byte big-endian length header, and what framing them yields.
fn length_prefixed_input() -> (Vec<u8>, Tally) {
    const COUNT: u64 = 4 * 1024;
    const BODY: u64 = 256;
    let mut input = Vec::with_capacity((COUNT * (BODY + 4)) as usize);
    for message in 0..COUNT {
        input.extend_from_slice(&(BODY as u32).to_be_bytes());
        input.extend((0..BODY).map(|i| (message + i) as u8));
    }
    let bodies = Tally {
        frames: COUNT,
        bytes: COUNT * BODY,
    };
    (input, bodies)
}

/// Ours on length-prefixed messages: a header sets the body's `Length`, a
/// body sets the next header's.
fn length_prefixed_ours(input: &[u8]) -> Tally {
    let mut codec = TerminatorCodec::new(4u64);
    let mut buffer = BytesMut::new();
    let mut tally = Tally::default();
    let mut in_header = true;
    for piece in input.chunks(READ) {
        read_into(&mut buffer, piece);
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
    black_box(tally)
}

/// The floor of framing by `Length(4)` then `Length(n)`: two
/// `split_to().freeze()` per message and nothing else.
fn length_prefixed_floor(input: &[u8]) -> Tally {
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
    black_box(tally)
}

/// 256-byte messages behind a 4-byte big-endian length header, 1 MiB
/// of them.
fn length_prefixed(c: &mut Criterion<Clock>) {
    let (input, bodies) = length_prefixed_input();
    let mut group = c.benchmark_group("length_prefixed256");
    group.throughput(Throughput::Elements(bodies.frames));
    group.bench_function("ours", |b| {
        b.iter(|| assert_eq!(length_prefixed_ours(&input), bodies))
    });
    group.bench_function("LengthDelimitedCodec", |b| {
        b.iter(|| {
            let mut codec = LengthDelimitedCodec::new();
            assert_eq!(feed(&mut codec, &input, READ), bodies);
        })
    });
    group.bench_function("floor", |b| {
        b.iter(|| assert_eq!(length_prefixed_floor(&input), bodies))
    });
    group.finish();
}

/// One 16 MiB message in 1 KiB reads and in one read, both modes.
fn one_big_message(c: &mut Criterion<Clock>) {
    const LENGTH: usize = 16 << 20;
    let input = messages(1, LENGTH, b"\r\n\r\n");
    let expected = Tally {
        frames: 1,
        bytes: LENGTH as u64 - 4,
    };
    let mut group = c.benchmark_group("big16mib");
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
        // The floor: the bare scan in the same reads.
        group.bench_function(format!("floor_{read_name}"), |b| {
            b.iter(|| {
                let mut scan = finder_scan(b"\r\n\r\n");
                assert_eq!(feed(&mut scan, &input, read), expected);
            })
        });
    }
    group.finish();
}

/// `count` messages of `length` bytes: `fill` repeated, then `ending`.
fn flood(count: usize, length: usize, fill: u8, ending: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(count * length);
    for _ in 0..count {
        input.resize(input.len() + length - ending.len(), fill);
        input.extend_from_slice(ending);
    }
    input
}

/// A flood of the delimiter's first byte: 64 KiB messages of `\r` but for
/// their ending, 1 MiB of them, where every byte may begin a delimiter.
/// Groups `flood_cr_crlf` (`\r\n`: against the `memchr` floor, and a bare
/// `memmem` scan, the codec's own search, for reference), `flood_cr_lenient`
/// (`any_of(["\r\n", "\n"])`) and `flood_cr_any_of3` ([`SET3`], the
/// messages ending `\r\n.\r\n`).
fn flood_cr(c: &mut Criterion<Clock>) {
    const COUNT: u64 = 16;
    const LENGTH: u64 = 64 * 1024;
    let lines = flood(COUNT as usize, LENGTH as usize, b'\r', b"\r\n");
    let without = |ending: u64| Tally {
        frames: COUNT,
        bytes: COUNT * (LENGTH - ending),
    };

    let mut group = c.benchmark_group("flood_cr_crlf");
    group.throughput(Throughput::Bytes(lines.len() as u64));
    group.bench_function("whole", |b| {
        b.iter(|| {
            let mut codec = TerminatorCodec::new("\r\n");
            assert_eq!(feed(&mut codec, &lines, READ), without(2));
        })
    });
    group.bench_function("streaming", |b| {
        b.iter(|| {
            let mut codec = TerminatorCodec::streaming("\r\n");
            assert_eq!(feed_streaming(&mut codec, &lines, READ), without(2));
        })
    });
    group.bench_function("LinesCodec", |b| {
        b.iter(|| {
            let mut codec = LinesCodec::new();
            assert_eq!(feed(&mut codec, &lines, READ), without(2));
        })
    });
    group.bench_function("floor", |b| {
        b.iter(|| {
            let mut scan = Scan::new(Byte(b'\n'));
            assert_eq!(feed(&mut scan, &lines, READ), without(1));
        })
    });
    group.bench_function("memmem_scan", |b| {
        b.iter(|| {
            let mut scan = finder_scan(b"\r\n");
            assert_eq!(feed(&mut scan, &lines, READ), without(2));
        })
    });
    group.finish();

    let mut group = c.benchmark_group("flood_cr_lenient");
    group.throughput(Throughput::Bytes(lines.len() as u64));
    group.bench_function("whole", |b| {
        b.iter(|| {
            let mut codec = TerminatorCodec::new(lenient());
            assert_eq!(feed(&mut codec, &lines, READ), without(2));
        })
    });
    group.bench_function("streaming", |b| {
        b.iter(|| {
            let mut codec = TerminatorCodec::streaming(lenient());
            assert_eq!(feed_streaming(&mut codec, &lines, READ), without(2));
        })
    });
    group.bench_function("LinesCodec", |b| {
        b.iter(|| {
            let mut codec = LinesCodec::new();
            assert_eq!(feed(&mut codec, &lines, READ), without(2));
        })
    });
    group.bench_function("floor", |b| {
        b.iter(|| {
            let mut scan = Scan::new(LenientLines);
            assert_eq!(feed(&mut scan, &lines, READ), without(2));
        })
    });
    group.finish();

    let blocks = flood(COUNT as usize, LENGTH as usize, b'\r', b"\r\n.\r\n");
    let terminator = Terminator::any_of(SET3);
    let mut group = c.benchmark_group("flood_cr_any_of3");
    group.throughput(Throughput::Bytes(blocks.len() as u64));
    group.bench_function("whole", |b| {
        b.iter(|| {
            let mut codec = TerminatorCodec::new(terminator.clone());
            assert_eq!(feed(&mut codec, &blocks, READ), without(5));
        })
    });
    group.bench_function("streaming", |b| {
        b.iter(|| {
            let mut codec = TerminatorCodec::streaming(terminator.clone());
            assert_eq!(feed_streaming(&mut codec, &blocks, READ), without(5));
        })
    });
    group.bench_function("memmem_scan", |b| {
        b.iter(|| {
            let mut scan = finder_scan(b"\r\n.\r\n");
            assert_eq!(feed(&mut scan, &blocks, READ), without(5));
        })
    });
    group.bench_function("aho_corasick_scan", |b| {
        b.iter(|| {
            let mut scan = automaton_scan(&SET3);
            assert_eq!(feed(&mut scan, &blocks, READ), without(5));
        })
    });
    group.finish();
}

/// Reads of one byte, each followed by `decode` until `None`, as a slow
/// peer or a byte-at-a-time test delivers them: 64 KiB of input, so each
/// row costs 64 Ki calls. Groups `byte_reads_crlf` (64-byte lines ending
/// `\r\n`), `byte_reads_lenient` (the mixed lines of `lines64_mixed` by
/// `any_of(["\r\n", "\n"])`) and `byte_reads_any_of3` (1 KiB blocks ending
/// `\r\n.\r\n` by [`SET3`]).
fn one_byte_reads(c: &mut Criterion<Clock>) {
    const LINES: u64 = 1024;
    const LENGTH: u64 = 64;
    let input = lines(LINES as usize, LENGTH as usize, b"\r\n");
    let without = |ending: u64| Tally {
        frames: LINES,
        bytes: LINES * (LENGTH - ending),
    };
    let mut group = c.benchmark_group("byte_reads_crlf");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("whole", |b| {
        b.iter(|| {
            let mut codec = TerminatorCodec::new("\r\n");
            assert_eq!(feed(&mut codec, &input, 1), without(2));
        })
    });
    group.bench_function("streaming", |b| {
        b.iter(|| {
            let mut codec = TerminatorCodec::streaming("\r\n");
            assert_eq!(feed_streaming(&mut codec, &input, 1), without(2));
        })
    });
    group.bench_function("LinesCodec", |b| {
        b.iter(|| {
            let mut codec = LinesCodec::new();
            assert_eq!(feed(&mut codec, &input, 1), without(2));
        })
    });
    group.bench_function("floor", |b| {
        b.iter(|| {
            let mut scan = Scan::new(Byte(b'\n'));
            assert_eq!(feed(&mut scan, &input, 1), without(1));
        })
    });
    group.finish();

    let (input, crlf) = mixed_lines(LINES as usize, LENGTH as usize);
    let without_ending = Tally {
        frames: LINES,
        bytes: LINES * (LENGTH - 1) - crlf,
    };
    let mut group = c.benchmark_group("byte_reads_lenient");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("whole", |b| {
        b.iter(|| {
            let mut codec = TerminatorCodec::new(lenient());
            assert_eq!(feed(&mut codec, &input, 1), without_ending);
        })
    });
    group.bench_function("streaming", |b| {
        b.iter(|| {
            let mut codec = TerminatorCodec::streaming(lenient());
            assert_eq!(feed_streaming(&mut codec, &input, 1), without_ending);
        })
    });
    group.bench_function("LinesCodec", |b| {
        b.iter(|| {
            let mut codec = LinesCodec::new();
            assert_eq!(feed(&mut codec, &input, 1), without_ending);
        })
    });
    group.bench_function("floor", |b| {
        b.iter(|| {
            let mut scan = Scan::new(LenientLines);
            assert_eq!(feed(&mut scan, &input, 1), without_ending);
        })
    });
    group.finish();

    const BLOCKS: u64 = 64;
    const BLOCK: u64 = 1024;
    let input = messages(BLOCKS as usize, BLOCK as usize, b"\r\n.\r\n");
    let expected = Tally {
        frames: BLOCKS,
        bytes: BLOCKS * (BLOCK - 5),
    };
    let terminator = Terminator::any_of(SET3);
    let mut group = c.benchmark_group("byte_reads_any_of3");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("whole", |b| {
        b.iter(|| {
            let mut codec = TerminatorCodec::new(terminator.clone());
            assert_eq!(feed(&mut codec, &input, 1), expected);
        })
    });
    group.bench_function("streaming", |b| {
        b.iter(|| {
            let mut codec = TerminatorCodec::streaming(terminator.clone());
            assert_eq!(feed_streaming(&mut codec, &input, 1), expected);
        })
    });
    group.bench_function("memmem_scan", |b| {
        b.iter(|| {
            let mut scan = finder_scan(b"\r\n.\r\n");
            assert_eq!(feed(&mut scan, &input, 1), expected);
        })
    });
    group.finish();
}

/// A delimiter that overlaps itself: `abab` in 1 MiB of `ababab…`, where a
/// match begins at every other byte and the codec must take every second
/// one (each frame is empty). Reads of 64 KiB less one byte, so each read
/// ends inside a delimiter and the held-back prefix (`a`, `ab` or `aba`)
/// changes from read to read.
fn overlapping_delimiter(c: &mut Criterion<Clock>) {
    const COUNT: u64 = 256 * 1024;
    let input = b"abab".repeat(COUNT as usize);
    let expected = Tally {
        frames: COUNT,
        bytes: 0,
    };
    let read = READ - 1;
    let mut group = c.benchmark_group("overlap_abab");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("whole", |b| {
        b.iter(|| {
            let mut codec = TerminatorCodec::new("abab");
            assert_eq!(feed(&mut codec, &input, read), expected);
        })
    });
    group.bench_function("streaming", |b| {
        b.iter(|| {
            let mut codec = TerminatorCodec::streaming("abab");
            assert_eq!(feed_streaming(&mut codec, &input, read), expected);
        })
    });
    group.bench_function("memmem_scan", |b| {
        b.iter(|| {
            let mut scan = finder_scan(b"abab");
            assert_eq!(feed(&mut scan, &input, read), expected);
        })
    });
    group.finish();
}

criterion_group!(
    name = benches;
    // Set here rather than per group, so that `--warm-up-time` and
    // `--measurement-time` on the command line override them.
    config = Criterion::default()
        .with_measurement(Clock::from_env())
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(40);
    targets =
    lines_crlf,
    lines_lf,
    lines_mixed,
    mib_messages,
    mib_delimiter_sets,
    length_prefixed,
    one_big_message,
    flood_cr,
    one_byte_reads,
    overlapping_delimiter,
);
/// The rows held to a floor or a contender, in paired rounds before
/// criterion's groups (see `common::paired_ratios`). Each half of a round
/// decodes the row's input as many times as take about 40 ms of the bench
/// clock.
fn paired(filter: Option<&str>) {
    let Some(rounds) = common::paired_rounds() else {
        return;
    };
    let clock = Clock::from_env();
    let row = |group: &str,
               (ours_name, ours): (&str, &dyn Fn()),
               (their_name, theirs): (&str, &dyn Fn())| {
        if common::selected(filter, group) {
            let iterations = iterations_in(clock, Duration::from_millis(40), ours);
            let ratios = common::paired_ratios(
                rounds,
                || time(clock, iterations, ours),
                || time(clock, iterations, theirs),
            );
            common::report(group, ours_name, their_name, ratios);
        }
    };

    let (input, bodies) = length_prefixed_input();
    let ours = || assert_eq!(length_prefixed_ours(&input), bodies);
    let floor = || assert_eq!(length_prefixed_floor(&input), bodies);
    let contender = || {
        let mut codec = LengthDelimitedCodec::new();
        assert_eq!(feed(&mut codec, &input, READ), bodies);
    };
    row(
        "paired_length_prefixed256",
        ("ours", &ours),
        ("floor", &floor),
    );
    row(
        "paired_length_prefixed256",
        ("ours", &ours),
        ("LengthDelimitedCodec", &contender),
    );

    for (group, ending) in [("paired_lines64_crlf", "\r\n"), ("paired_lines64_lf", "\n")] {
        let input = lines(LINES as usize, LINE_LENGTH as usize, ending.as_bytes());
        let lines_of = |dropped: u64| Tally {
            frames: LINES,
            bytes: LINES * (LINE_LENGTH - dropped),
        };
        let ours = || {
            let mut codec = TerminatorCodec::new(ending);
            assert_eq!(
                feed(&mut codec, &input, READ),
                lines_of(ending.len() as u64)
            );
        };
        let floor = || {
            let mut scan = Scan::new(Byte(b'\n'));
            assert_eq!(feed(&mut scan, &input, READ), lines_of(1));
        };
        row(group, ("ours", &ours), ("floor", &floor));
    }

    let (input, crlf) = mixed_lines(LINES as usize, LINE_LENGTH as usize);
    let ours = || {
        let mut codec = TerminatorCodec::new(lenient());
        assert_eq!(
            feed(&mut codec, &input, READ).bytes,
            LINES * (LINE_LENGTH - 1) - crlf
        );
    };
    let newline = || {
        let mut codec = TerminatorCodec::new("\n");
        assert_eq!(
            feed(&mut codec, &input, READ).bytes,
            LINES * (LINE_LENGTH - 1)
        );
    };
    row(
        "paired_lines64_mixed",
        ("ours", &ours),
        ("ours_newline", &newline),
    );
}

/// How many runs of `body` take about `wanted` of `clock`'s time.
fn iterations_in(clock: Clock, wanted: Duration, body: &dyn Fn()) -> u32 {
    body();
    let once = time(clock, 1, body).max(Duration::from_micros(1));
    (wanted.as_nanos() / once.as_nanos()).clamp(1, 100_000) as u32
}

/// `clock`'s time for `iterations` runs of `body`.
fn time(clock: Clock, iterations: u32, body: &dyn Fn()) -> Duration {
    let start = clock.now();
    for _ in 0..iterations {
        body();
    }
    Duration::from_nanos(clock.now() - start)
}

fn main() {
    // First, in a fresh process, as benches/chat.rs does.
    if let Some(filter) = common::paired_filter() {
        paired(filter.as_deref());
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
