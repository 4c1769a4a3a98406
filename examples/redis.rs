//! A Redis-protocol (RESP2) server on `Chat`: enough of Redis for
//! `redis-cli` and `redis-benchmark`.
//!
//! ```text
//! cargo run --release --example redis -- [PORT] [--threads N] [--max-bulk BYTES]
//! redis-cli -p 6379 set greeting hello
//! redis-benchmark -p 6379 -q -t ping,set,get,incr,mset -n 100000 -P 16 -c 50
//! printf 'SET q "hello world"\nGET q\n' | nc -q 1 127.0.0.1 6379
//! ```
//!
//! The port is the first argument, else `$PORT`, else 6379 (0 picks a free
//! one; the address is printed). `--threads N` runs it on N threads
//! (default 1, like Redis: tokio's current-thread runtime; with more, a
//! multi-threaded one, the store being shared behind locks), `--max-bulk`
//! sets the longest bulk string accepted (default 512 MiB, as Redis's
//! `proto-max-bulk-len`).
//!
//! Commands: `PING [msg]`, `ECHO msg`, `SET key value [NX|XX] [EX s|PX ms|KEEPTTL]`,
//! `GET`, `MSET key value...`, `MGET key...`, `STRLEN`, `DEL key...`,
//! `EXISTS key...`, `INCR`, `DECR`, `INCRBY`, `DECRBY`, `DBSIZE`,
//! `FLUSHALL`, `FLUSHDB`, `SELECT 0`, `QUIT`, and of `COMMAND` and
//! `CONFIG GET` what the clients ask for at start (an empty array; `save`
//! and `appendonly` as a server that saves nothing). That is what
//! `redis-benchmark -t ping,set,get,incr,mset` runs; its other default tests
//! (lists, sets, hashes, sorted sets, streams) get `-ERR unknown command`,
//! which stops it. Any other command gets redis-server 7's reply, byte for
//! byte: `-ERR unknown command 'foo', with args beginning with: 'a' 'b' `.
//! Values are strings only; there is no persistence, no `AUTH`, no pub/sub,
//! no transactions, and `MSET` sets its keys one at a time (with
//! `--threads` above 1, another connection may see some set before the
//! others).
//!
//! # Inline commands
//!
//! A line that does not start with `*` is an inline command, as typed into
//! `nc` or `telnet`: it ends in `\n` or `\r\n`, and its arguments are split
//! as redis-server splits them (its `sdssplitargs`): by spaces and tabs;
//! in double quotes with the escapes `\n`, `\r`, `\t`, `\b`, `\a`, `\\`, `\"`
//! and `\xHH`; in single quotes with `\'` only. A quote that is not closed,
//! or a closing quote followed by anything but a space, gets
//! `-ERR Protocol error: unbalanced quotes in request` and the connection
//! is closed, as redis-server does. The line is read as a C string, as
//! `sdssplitargs` reads it: it ends at a NUL byte (redis-server itself
//! waits for more input on one).
//!
//! # Framing with a `Chat`
//!
//! The channel switches terminators as RESP goes: a line by `\n` (`*3`,
//! `$5`, or an inline command such as `PING` typed in telnet), then a bulk
//! string by its count, `Terminator::Length(n + 2)` (its `\r\n` included),
//! then `\n` again. Lines end in `\n`, as redis-server finds them: the
//! `\r` before it is required after a `*` or `$` header and optional after
//! an inline command. One delimiter for every line keeps the codec's
//! searcher and makes the search a `memchr`.
//!
//! The codec is in streaming mode, so nothing is buffered past the limits
//! set here: a line may be at most 64 KiB, a bulk string at most
//! `--max-bulk`, and a bulk length over that is refused before any of it is
//! read. When a line or a bulk string is whole in one read (nearly always)
//! it comes out as one `Frame::Complete`, a slice of the read buffer: the
//! arguments of a RESP command are `Bytes` that were never copied (those of
//! an inline command are, as quotes and escapes rewrite them).
//!
//! # Batches: whole commands in one frame
//!
//! A frame and a switch of terminator per header and per argument cost
//! more than the command itself (a `SET` is seven frames and six switches:
//! about 2,400 of its 4,300 instructions). So when the `*` line of a
//! command comes, the bytes already read behind it are looked at
//! (`Chat::buffered_input`): if they hold the rest of the command, and
//! perhaps whole commands after it, all of them are taken as one frame,
//! `Terminator::Length` of their total, and run one after the other, the
//! arguments being slices of that frame. A pipeline of sixteen `SET`s
//! from one read is then two frames. Only plain RESP goes into a batch:
//! counts of digits alone (no sign, no leading zero), lines ending in
//! `\r\n` within the line limit, values shorter than 16 KiB; the first
//! command that is not so, or not whole yet, ends the batch and comes
//! through the frames of lines and bulk strings, which answer it as below.
//!
//! Malformed input (a bad `*` or `$` length, a negative or garbage one, a
//! missing `$`, a line over the limit, unbalanced quotes) gets
//! `-ERR Protocol error: ...` and the connection is closed once the reply
//! is sent, as Redis does; an unknown command or a wrong argument gets
//! `-ERR ...` and the connection goes on.
//!
//! # Pipelining
//!
//! A connection's frames are handled synchronously, one after another, in
//! one poll of the `Chat`; the replies are written into one `BytesMut` and
//! pushed only when the `Chat` has no whole frame left and would wait for
//! the socket (one `Bytes`, one write for a whole pipeline: with
//! `redis-benchmark -P 16`, one `read` and one `writev` per sixteen
//! commands, as redis-server makes). Large values go out as the stored
//! `Bytes`, not copied. Once 64 KiB of replies gather, even in the middle
//! of a batch, the connection writes them out before running or reading
//! on: a client that pipelines without reading stalls instead of growing
//! the server's memory.
//!
//! # Performance
//!
//! On one thread, against redis-server 7.0 on its one thread
//! (`redis-benchmark -t set,get -n 1000000 -P 16 -c 50`,
//! `scripts/race.sh`): a `SET` costs 1,500 instructions here and 4,600
//! in redis-server (callgrind, user space), a `GET` 1,300 against 3,400;
//! both make the same system calls. Throughput and latency depend on the
//! machine: `scripts/race.sh` measures them side by side.
//!
//! # The store
//!
//! A map from key to value in 16 shards, each behind a `std::sync::Mutex`;
//! expiry is checked on access (and by `DBSIZE`). Values shorter than 16 KiB
//! are copied into an allocation of their own when stored: a slice of the
//! read buffer would keep the whole buffer alive for as long as the key.

use std::{
    collections::HashMap,
    future::poll_fn,
    hash::{BuildHasher, Hasher},
    io,
    ops::Range,
    sync::{Arc, Mutex, MutexGuard},
    task::{ready, Context, Poll},
    time::{Duration, Instant},
};

use asynchat::{Chat, Error, Frame, Terminator, TerminatorCodec};
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::{
    net::{TcpListener, TcpStream},
    time::timeout,
};

mod common;
use common::listen;

/// The port when neither the command line nor `$PORT` gives one.
pub const DEFAULT_PORT: u16 = 6379;

/// The limits of the protocol.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// The longest bulk string (Redis's `proto-max-bulk-len`, 512 MiB).
    pub max_bulk: u64,
    /// The longest line: an inline command, or a `*` or `$` header
    /// (Redis's `PROTO_INLINE_MAX_SIZE`, 64 KiB).
    pub max_line: usize,
    /// The most arguments of one command (Redis's 1024 * 1024).
    pub max_args: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_bulk: 512 * 1024 * 1024,
            max_line: 64 * 1024,
            max_args: 1024 * 1024,
        }
    }
}

/// Values at least this long are stored as the frame's `Bytes` and sent
/// as their own piece; shorter ones are copied.
const BIG_VALUE: usize = 16 * 1024;

/// Replies gathered past this many bytes are handed to the `Chat` at once.
const FLUSH_AT: usize = 64 * 1024;

/// Serves `listener` forever with the default [`Config`] and an empty store.
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    serve_with(listener, Config::default(), Arc::new(Db::new())).await
}

/// Serves `listener` forever, one task per connection, all sharing `db`.
pub async fn serve_with(listener: TcpListener, config: Config, db: Arc<Db>) -> io::Result<()> {
    loop {
        let stream = common::accept(&listener).await;
        let db = db.clone();
        tokio::spawn(async move {
            if let Err(error) = handle_connection(stream, config, &db).await {
                if !matches!(&error, Error::Io(e) if e.kind() == io::ErrorKind::ConnectionReset) {
                    eprintln!("connection: {error}");
                }
            }
        });
    }
}

// ---------------------------------------------------------------------------
// The store.

/// The key space: shards of a map, expiry checked on access.
pub struct Db {
    shards: Box<[Mutex<Map>]>,
    hasher: FoldedHash,
}

type Map = HashMap<Bytes, Entry, FoldedHash>;

struct Entry {
    value: Bytes,
    expires_at: Option<Instant>,
}

impl Entry {
    fn is_expired(&self, now: &mut Option<Instant>) -> bool {
        match self.expires_at {
            None => false,
            Some(at) => at <= *now.get_or_insert_with(Instant::now),
        }
    }
}

const SHARDS: usize = 16;

impl Default for Db {
    fn default() -> Self {
        Self::new()
    }
}

impl Db {
    /// An empty store.
    pub fn new() -> Self {
        Db {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: FoldedHash::default(),
        }
    }

    /// The shard of `key`, locked: picked by middle bits of the key's hash
    /// (a map indexes by the low bits and tags by the top seven).
    fn shard(&self, key: &[u8]) -> MutexGuard<'_, Map> {
        let hash = self.hasher.hash_one(key);
        lock(&self.shards[(hash >> 32) as usize % SHARDS])
    }

    /// The live entry of `key`, if any: one lookup. An expired entry is
    /// left for the caller to overwrite or remove.
    fn live<'m>(map: &'m Map, key: &[u8]) -> Option<&'m Entry> {
        map.get(key).filter(|entry| !entry.is_expired(&mut None))
    }

    /// The number of live keys; expired ones are dropped on the way.
    pub fn len(&self) -> usize {
        let mut now = None;
        self.shards
            .iter()
            .map(|shard| {
                let mut map = lock(shard);
                map.retain(|_, entry| !entry.is_expired(&mut now));
                map.len()
            })
            .sum()
    }

    /// Whether there are no live keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn clear(&self) {
        for shard in self.shards.iter() {
            lock(shard).clear();
        }
    }
}

/// A keyed hash for the maps, several times cheaper than std's SipHash on
/// short keys: the folded multiply of foldhash and wyhash, 16 bytes a step,
/// with keys drawn at random per process (from std's `RandomState`), so
/// colliding keys cannot be computed offline. It is not a cryptographic
/// MAC: a server facing hostile clients may prefer SipHash's guarantees.
#[derive(Clone, Copy)]
struct FoldedHash {
    keys: [u64; 2],
}

impl Default for FoldedHash {
    fn default() -> Self {
        let random = std::collections::hash_map::RandomState::new();
        FoldedHash {
            keys: [random.hash_one(1u8) | 1, random.hash_one(2u8) | 1],
        }
    }
}

impl BuildHasher for FoldedHash {
    type Hasher = FoldedHasher;

    fn build_hasher(&self) -> FoldedHasher {
        FoldedHasher {
            state: self.keys[0],
            key: self.keys[1],
        }
    }
}

struct FoldedHasher {
    state: u64,
    key: u64,
}

#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

impl Hasher for FoldedHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let word = |at: usize| {
            let mut eight = [0u8; 8];
            let end = bytes.len().min(at + 8);
            if at < end {
                eight[..end - at].copy_from_slice(&bytes[at..end]);
            }
            u64::from_le_bytes(eight)
        };
        let mut at = 0;
        loop {
            let (a, b) = (word(at), word(at + 8));
            self.state = folded_multiply(a ^ self.state, b ^ self.key);
            at += 16;
            if at >= bytes.len() {
                break;
            }
        }
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.state = folded_multiply(n as u64 ^ self.state, self.key.rotate_left(32));
    }

    #[inline]
    fn finish(&self) -> u64 {
        folded_multiply(self.state, self.key)
    }
}

/// A poisoned shard is still a consistent map: each command changes it in
/// one step.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A value to keep: copied unless long (see [`BIG_VALUE`]).
fn owned(value: &Bytes) -> Bytes {
    if value.len() < BIG_VALUE {
        Bytes::copy_from_slice(value)
    } else {
        value.clone()
    }
}

// ---------------------------------------------------------------------------
// Replies.

/// The replies of a batch: small ones written into `buffer`, large values
/// kept as their own `Bytes` in order in `pieces`.
#[derive(Default)]
struct Replies {
    pieces: Vec<Bytes>,
    buffer: BytesMut,
    length: usize,
}

impl Replies {
    fn is_empty(&self) -> bool {
        self.length == 0
    }

    fn put(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
        self.length += bytes.len();
    }

    fn simple(&mut self, text: &[u8]) {
        self.put(text);
    }

    /// An error reply. A `\r` or `\n` in the message becomes a space, as
    /// redis-server makes it: the message may quote what the client sent.
    fn error(&mut self, message: impl AsRef<[u8]>) {
        self.put(b"-");
        let start = self.buffer.len();
        self.put(message.as_ref());
        for byte in &mut self.buffer[start..] {
            if matches!(*byte, b'\r' | b'\n') {
                *byte = b' ';
            }
        }
        self.put(b"\r\n");
    }

    fn number(&mut self, prefix: u8, value: i64) {
        let mut digits = [0u8; 20];
        let text = format_i64(value, &mut digits);
        self.put(&[prefix]);
        self.put(text);
        self.put(b"\r\n");
    }

    fn integer(&mut self, value: i64) {
        self.number(b':', value);
    }

    fn nil(&mut self) {
        self.put(b"$-1\r\n");
    }

    /// The header of an array of `length` replies, which follow it.
    fn array(&mut self, length: usize) {
        self.number(b'*', length as i64);
    }

    fn bulk(&mut self, value: &[u8]) {
        self.number(b'$', value.len() as i64);
        self.put(value);
        self.put(b"\r\n");
    }

    /// A bulk string of a stored value: large values are not copied.
    fn bulk_bytes(&mut self, value: &Bytes) {
        if value.len() < BIG_VALUE {
            return self.bulk(value);
        }
        self.number(b'$', value.len() as i64);
        if !self.buffer.is_empty() {
            self.pieces.push(self.buffer.split().freeze());
        }
        self.pieces.push(value.clone());
        self.length += value.len();
        self.put(b"\r\n");
    }

    /// Pushes everything gathered to `chat`, in order.
    fn push_to(&mut self, chat: &mut Chat<TcpStream>) {
        for piece in self.take() {
            chat.push(piece);
        }
    }

    /// Everything gathered, in order, leaving the buffer's spare room for
    /// the next batch.
    fn take(&mut self) -> impl Iterator<Item = Bytes> + '_ {
        if !self.buffer.is_empty() {
            self.pieces.push(self.buffer.split().freeze());
        }
        self.length = 0;
        self.pieces.drain(..)
    }
}

/// `value` in decimal, in `buffer`.
fn format_i64(value: i64, buffer: &mut [u8; 20]) -> &[u8] {
    let mut n = value.unsigned_abs();
    let mut start = buffer.len();
    loop {
        start -= 1;
        buffer[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if value < 0 {
        start -= 1;
        buffer[start] = b'-';
    }
    &buffer[start..]
}

/// Redis's `string2ll`: an optional `-`, then digits without a leading zero
/// (unless the number is 0), fitting an `i64`; nothing else.
fn parse_i64(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    match digits {
        [] => return None,
        [b'0'] => return (!negative).then_some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    let mut value: i64 = 0;
    for &byte in digits {
        if !byte.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(byte - b'0');
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(digit)?
        } else {
            value.checked_add(digit)?
        };
    }
    Some(value)
}

// ---------------------------------------------------------------------------
// The connection.

/// Where the parser is within a command.
enum State {
    /// Expecting a `*` header or an inline command.
    Command,
    /// Expecting a `$` header; `remaining` arguments to go.
    BulkHeader { remaining: u64 },
    /// Expecting the bulk string itself, `length` bytes and `\r\n`.
    Bulk { remaining: u64, length: usize },
    /// Expecting the [`Batch`] found in the read buffer, `length` bytes.
    Batch { length: usize },
}

/// What a command asks of the connection after its reply.
#[derive(PartialEq, Eq)]
enum After {
    Continue,
    Close,
}

/// Why a connection's frame loop stopped.
enum End {
    /// The peer's input ended.
    InputEnded,
    /// QUIT: close once the replies are sent.
    Quit,
    /// Malformed input: answer `-ERR Protocol error: ...`, then close.
    ProtocolError(Vec<u8>),
}

/// A message of a line or a bulk string, put together from the pieces a
/// streaming codec hands out when it spans reads. Usually it does not: the
/// frame is `Complete` at once and passes through without a copy.
#[derive(Default)]
struct Assembler {
    pending: BytesMut,
}

impl Assembler {
    fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The first byte of the message under way, if any of it came yet.
    fn first_byte(&self) -> Option<u8> {
        self.pending.first().copied()
    }

    /// `Some(message)` when the frame completes it; `Err` past `limit`.
    fn feed(&mut self, frame: Frame, limit: u64) -> Result<Option<Bytes>, ()> {
        let (data, complete) = match frame {
            Frame::Complete(data) => (data, true),
            Frame::Partial(data) => (data, false),
        };
        if complete && self.pending.is_empty() {
            return if data.len() as u64 > limit {
                Err(())
            } else {
                Ok(Some(data))
            };
        }
        if (self.pending.len() + data.len()) as u64 > limit {
            return Err(());
        }
        self.pending.extend_from_slice(&data);
        Ok(complete.then(|| self.pending.split().freeze()))
    }
}

/// The protocol state of one connection: everything but the `Chat`.
struct Connection<'a> {
    db: &'a Db,
    config: Config,
    state: State,
    args: Vec<Bytes>,
    assembler: Assembler,
    batch: Batch,
    replies: Replies,
    /// The `Chat` holds a full output buffer: write it out before reading on.
    draining: bool,
}

/// The delimiter of lines: `\n`, where redis-server ends them too (it
/// searches for `\n`; the `\r` before it is checked by the parser). Static:
/// setting it costs no reference count.
const LINE: Terminator = Terminator::Delimiter(Bytes::from_static(b"\n"));

impl Connection<'_> {
    /// Runs the connection's frames until its input ends, it quits, or it
    /// breaks the protocol.
    ///
    /// Frames are handled synchronously, one after the other, within one
    /// poll; the replies gather in `replies` and are pushed to the `Chat`
    /// only when it has no whole frame left (it would wait for the socket),
    /// so a pipeline's replies leave in one write.
    fn poll_run(
        &mut self,
        chat: &mut Chat<TcpStream>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<End, Error>> {
        loop {
            if self.draining {
                // A client that pipelines without reading stalls here
                // instead of growing the server's memory.
                ready!(chat.poll_flush_unpin(cx))?;
                self.draining = false;
            }
            if self.batch.is_under_way() {
                // The rest of a batch cut short by a full output buffer.
                if let Err(end) = self.run_batch() {
                    return Poll::Ready(Ok(end));
                }
                self.flush_if_full(chat);
                continue;
            }
            match chat.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Err(end) = self.on_frame(frame, chat) {
                        return Poll::Ready(Ok(end));
                    }
                    self.flush_if_full(chat);
                }
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(error)),
                Poll::Ready(None) => return Poll::Ready(Ok(End::InputEnded)),
                Poll::Pending if self.replies.is_empty() => return Poll::Pending,
                // Polled again, the Chat writes them, then waits for input.
                Poll::Pending => self.replies.push_to(chat),
            }
        }
    }

    /// Past [`FLUSH_AT`] bytes of replies, hands them to the `Chat` and
    /// has them written out before anything more is read.
    fn flush_if_full(&mut self, chat: &mut Chat<TcpStream>) {
        if self.replies.length >= FLUSH_AT {
            self.replies.push_to(chat);
            self.draining = chat.queued_output_len() >= FLUSH_AT;
        }
    }

    /// Handles one frame: a line or a bulk string, and when it completes a
    /// command, the command; or a batch of whole commands.
    fn on_frame(&mut self, frame: Frame, chat: &mut Chat<TcpStream>) -> Result<(), End> {
        let limit = match self.state {
            State::Bulk { length, .. } => length as u64 + 2,
            State::Batch { length } => length as u64,
            _ => self.config.max_line as u64,
        };
        let message = match frame {
            // The usual case: a whole message from one read, not copied.
            Frame::Complete(data) if self.assembler.is_empty() && data.len() as u64 <= limit => {
                data
            }
            frame => {
                let first_byte = match &frame {
                    Frame::Complete(data) | Frame::Partial(data) => {
                        self.assembler.first_byte().or(data.first().copied())
                    }
                };
                match self.assembler.feed(frame, limit) {
                    Ok(Some(message)) => message,
                    Ok(None) => return Ok(()),
                    // Only a line can pass its limit: a bulk string has its count.
                    Err(()) => {
                        let error = match (&self.state, first_byte) {
                            (State::Command, Some(b'*')) => "too big mbulk count string",
                            (State::Command, _) => "too big inline request",
                            _ => "too big bulk count string",
                        };
                        return Err(End::ProtocolError(error.into()));
                    }
                }
            }
        };

        match self.state {
            State::Command => {
                if let Some(header) = message.strip_prefix(b"*") {
                    match header.strip_suffix(b"\r").and_then(parse_i64) {
                        Some(count) if count <= 0 => {} // Redis ignores `*0` and `*-1`
                        Some(count) if count as u64 <= self.config.max_args => {
                            let length =
                                self.batch
                                    .find(chat.buffered_input(), count as u64, &self.config);
                            if length > 0 {
                                chat.set_terminator(Terminator::Length(length as u64));
                                self.state = State::Batch { length };
                                return Ok(());
                            }
                            self.args.reserve(count.min(1024) as usize);
                            self.state = State::BulkHeader {
                                remaining: count as u64,
                            };
                        }
                        _ => return Err(End::ProtocolError("invalid multibulk length".into())),
                    }
                    return Ok(());
                }
                // An inline command, its `\r` optional.
                let line = message.strip_suffix(b"\r").unwrap_or(&message);
                if split_arguments(line, &mut self.args).is_err() {
                    return Err(End::ProtocolError("unbalanced quotes in request".into()));
                }
                if self.args.is_empty() {
                    return Ok(());
                }
            }
            State::BulkHeader { remaining } => {
                let Some(header) = message.strip_prefix(b"$") else {
                    // An empty line is the `\n` that ended it.
                    let got = message.first().copied().unwrap_or(b'\n');
                    let mut error = b"expected '$', got '".to_vec();
                    error.extend_from_slice(&[got, b'\'']);
                    return Err(End::ProtocolError(error));
                };
                match header.strip_suffix(b"\r").and_then(parse_i64) {
                    Some(length) if length >= 0 && length as u64 <= self.config.max_bulk => {
                        chat.set_terminator(Terminator::Length(length as u64 + 2));
                        self.state = State::Bulk {
                            remaining,
                            length: length as usize,
                        };
                    }
                    _ => return Err(End::ProtocolError("invalid bulk length".into())),
                }
                return Ok(());
            }
            State::Bulk { remaining, length } => {
                if &message[length..] != b"\r\n" {
                    return Err(End::ProtocolError("expected CRLF after bulk string".into()));
                }
                let mut argument = message;
                argument.truncate(length); // no reference count touched
                self.args.push(argument);
                chat.set_terminator(LINE);
                if remaining > 1 {
                    self.state = State::BulkHeader {
                        remaining: remaining - 1,
                    };
                    return Ok(());
                }
                self.state = State::Command;
            }
            State::Batch { .. } => {
                chat.set_terminator(LINE);
                self.state = State::Command;
                self.batch.commands = message;
                return self.run_batch();
            }
        }

        let after = execute(&self.args, self.db, &mut self.replies);
        self.args.clear();
        match after {
            After::Continue => Ok(()),
            After::Close => Err(End::Quit),
        }
    }

    /// Runs the commands of the batch, in order, until it is done or the
    /// replies reach [`FLUSH_AT`] bytes: the rest waits for them to be
    /// written.
    fn run_batch(&mut self) -> Result<(), End> {
        let batch = &mut self.batch;
        while let Some(&end) = batch.ends.get(batch.next) {
            let start = match batch.next {
                0 => 0,
                next => batch.ends[next - 1],
            };
            batch.next += 1;
            let arguments = batch.arguments[start..end].iter();
            self.args
                .extend(arguments.map(|range| batch.commands.slice(range.clone())));
            let after = execute(&self.args, self.db, &mut self.replies);
            self.args.clear();
            if after == After::Close {
                return Err(End::Quit);
            }
            if self.replies.length >= FLUSH_AT {
                return Ok(());
            }
        }
        batch.clear();
        Ok(())
    }
}

/// A `*` or `$` line at the start of `input` as clients write them:
/// `prefix`, a count of at most 18 digits without a leading zero, `\r\n`,
/// within `max_line` bytes before the `\n`. Returns its length, `\r\n`
/// included, and the count. Any other line (a sign, a leading zero, a
/// bare `\n`, a line over the limit) is left to the frames of lines, which
/// answer it as the protocol says; 18 digits cannot overflow.
fn header_line(input: &[u8], prefix: u8, max_line: usize) -> Option<(usize, u64)> {
    if input.first() != Some(&prefix) {
        return None;
    }
    let mut end = 1;
    let mut count = 0u64;
    while let Some(&digit @ b'0'..=b'9') = input.get(end) {
        count = count * 10 + u64::from(digit - b'0');
        end += 1;
        if end > 19 {
            return None;
        }
    }
    let digits = end - 1;
    if digits == 0 || (digits > 1 && input[1] == b'0') || end + 1 > max_line {
        return None;
    }
    if input.get(end..end + 2)? != b"\r\n" {
        return None;
    }
    Some((end + 2, count))
}

/// Whole commands that a read brought after a `*` line, taken from the
/// `Chat` as one frame (`Terminator::Length` of them all) and run one
/// after another: a pipeline costs two frames, not one for each header
/// and each argument. Only commands buffered whole, well-formed and within
/// the limits, with arguments shorter than [`BIG_VALUE`], are taken; the
/// first one that is not ends the batch and goes through the frames of
/// lines and bulk strings, which give its errors.
#[derive(Default)]
struct Batch {
    /// The frame: the rest of the command whose `*` line came, and the
    /// whole commands after it. Empty while no batch is under way.
    commands: Bytes,
    /// Every argument of every command, as a range of `commands`.
    arguments: Vec<Range<usize>>,
    /// Per command, the end of its arguments in `arguments`.
    ends: Vec<usize>,
    /// The next command to run, an index into `ends`.
    next: usize,
}

impl Batch {
    fn is_under_way(&self) -> bool {
        !self.commands.is_empty()
    }

    /// Finds the batch at the start of `input`: the `count` arguments of
    /// the command whose `*` line was just read, then as many whole
    /// commands as follow. Returns its length, 0 if the first command is
    /// not whole in `input`.
    ///
    /// Each byte is looked at once: the scan stops at the first command
    /// that is not whole.
    fn find(&mut self, input: &[u8], count: u64, config: &Config) -> usize {
        self.clear();
        let mut length = 0;
        let mut first = Some(count);
        loop {
            let (header, count) = match first.take() {
                Some(count) => (0, count),
                None => match header_line(&input[length..], b'*', config.max_line) {
                    Some((header, count)) if count > 0 && count <= config.max_args => {
                        (header, count)
                    }
                    _ => break,
                },
            };
            let found = self.arguments.len();
            match self.find_arguments(input, length + header, count, config) {
                Some(end) => {
                    length = end;
                    self.ends.push(self.arguments.len());
                }
                None => {
                    self.arguments.truncate(found);
                    break;
                }
            }
        }
        length
    }

    /// The `count` arguments from `at` in `input`, each a `$` line, its
    /// bytes and `\r\n`, pushed to `arguments`. Returns where the last one
    /// ends.
    fn find_arguments(
        &mut self,
        input: &[u8],
        mut at: usize,
        count: u64,
        config: &Config,
    ) -> Option<usize> {
        for _ in 0..count {
            let (header, length) = header_line(&input[at..], b'$', config.max_line)?;
            if length > config.max_bulk || length >= BIG_VALUE as u64 {
                return None;
            }
            let start = at + header;
            let end = start + length as usize;
            if input.get(end..end + 2)? != b"\r\n" {
                return None;
            }
            self.arguments.push(start..end);
            at = end + 2;
        }
        Some(at)
    }

    fn clear(&mut self) {
        self.commands = Bytes::new();
        self.arguments.clear();
        self.ends.clear();
        self.next = 0;
    }
}

async fn handle_connection(stream: TcpStream, config: Config, db: &Db) -> Result<(), Error> {
    let _ = stream.set_nodelay(true);
    let mut chat = Chat::with_codec(stream, TerminatorCodec::streaming(LINE));
    let mut connection = Connection {
        db,
        config,
        state: State::Command,
        args: Vec::new(),
        assembler: Assembler::default(),
        batch: Batch::default(),
        replies: Replies::default(),
        draining: false,
    };
    let end = poll_fn(|cx| connection.poll_run(&mut chat, cx)).await?;
    let replies = connection.replies;
    match end {
        End::InputEnded => {
            // The replies to the last commands still go out.
            if !replies.is_empty() {
                let mut replies = replies;
                replies.push_to(&mut chat);
                chat.flush().await?;
            }
            Ok(())
        }
        End::Quit => close(chat, replies).await,
        End::ProtocolError(message) => protocol_error(chat, replies, &message).await,
    }
}

/// Answers a protocol error and closes the connection once it is sent.
async fn protocol_error(
    chat: Chat<TcpStream>,
    mut replies: Replies,
    message: &[u8],
) -> Result<(), Error> {
    replies.error([&b"ERR Protocol error: "[..], message].concat());
    close(chat, replies).await
}

/// Sends the replies gathered, closes the connection, and drains what the
/// peer still sends for a moment before dropping the socket: closing with
/// unread input makes the kernel reset the connection, and the reset can
/// destroy the last reply before the client reads it.
async fn close(mut chat: Chat<TcpStream>, mut replies: Replies) -> Result<(), Error> {
    for piece in replies.take() {
        chat.push(piece);
    }
    chat.close_when_done();
    match timeout(Duration::from_secs(10), chat.flush()).await {
        Ok(result) => result?,
        Err(_) => return Ok(()), // the peer does not read: give up on it
    }
    common::drain(chat.into_parts().io).await;
    Ok(())
}

// ---------------------------------------------------------------------------
// Inline commands.

/// The quotes a quoted argument is in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quotes {
    Double,
    Single,
}

/// A quote left open, or a closing quote followed by something other
/// than a space.
struct UnbalancedQuotes;

/// Splits an inline command into `arguments` as redis-server's
/// `sdssplitargs` does: arguments are separated by white space; one in
/// double quotes may hold spaces and the escapes `\n`, `\r`, `\t`, `\b`,
/// `\a`, `\xHH` (two hex digits) and `\` before any other byte (itself);
/// one in single quotes, `\'` only. A quote may start in the middle of an
/// argument (`a"b c"` is `ab c`) but a closing quote must end it.
///
/// `sdssplitargs` reads a C string, so a NUL byte ends the line.
fn split_arguments(line: &[u8], arguments: &mut Vec<Bytes>) -> Result<(), UnbalancedQuotes> {
    // C's isspace: what separates arguments and may follow a closing quote.
    let is_space = |byte: u8| matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let line = line.split(|&byte| byte == 0).next().unwrap_or_default();
    let mut at = 0;
    loop {
        while line.get(at).is_some_and(|&byte| is_space(byte)) {
            at += 1;
        }
        if at >= line.len() {
            return Ok(());
        }
        let mut argument = Vec::new();
        let mut quotes = None;
        loop {
            let byte = line.get(at).copied();
            let next = line.get(at + 1).copied();
            at += 1;
            match (quotes, byte) {
                (Some(_), None) => return Err(UnbalancedQuotes),
                (Some(Quotes::Double), Some(b'\\')) => {
                    let hex_digit = |index: usize| {
                        line.get(index)
                            .and_then(|&digit| char::from(digit).to_digit(16))
                    };
                    match (next, hex_digit(at + 1), hex_digit(at + 2)) {
                        (Some(b'x'), Some(high), Some(low)) => {
                            argument.push((high * 16 + low) as u8);
                            at += 3;
                        }
                        (Some(escaped), _, _) => {
                            argument.push(match escaped {
                                b'n' => b'\n',
                                b'r' => b'\r',
                                b't' => b'\t',
                                b'b' => 0x08,
                                b'a' => 0x07,
                                other => other,
                            });
                            at += 1;
                        }
                        // A `\` at the very end: the quote is left open.
                        (None, _, _) => return Err(UnbalancedQuotes),
                    }
                }
                (Some(Quotes::Single), Some(b'\\')) if next == Some(b'\'') => {
                    argument.push(b'\'');
                    at += 1;
                }
                (Some(Quotes::Double), Some(b'"')) | (Some(Quotes::Single), Some(b'\'')) => {
                    if next.is_some_and(|byte| !is_space(byte)) {
                        return Err(UnbalancedQuotes);
                    }
                    break;
                }
                (Some(_), Some(byte)) => argument.push(byte),
                (None, None) => break,
                // Unquoted, `\v` and `\f` belong to the argument: they only
                // separate arguments when skipped before one.
                (None, Some(b' ' | b'\t' | b'\n' | b'\r')) => break,
                (None, Some(b'"')) => quotes = Some(Quotes::Double),
                (None, Some(b'\'')) => quotes = Some(Quotes::Single),
                (None, Some(byte)) => argument.push(byte),
            }
        }
        arguments.push(argument.into());
    }
}

// ---------------------------------------------------------------------------
// Commands.

/// The command name in upper case, or `None` if too long to be one.
fn command_name(name: &[u8], buffer: &mut [u8; 16]) -> Option<usize> {
    let buffer = buffer.get_mut(..name.len())?;
    buffer.copy_from_slice(name);
    buffer.make_ascii_uppercase();
    Some(name.len())
}

fn execute(args: &[Bytes], db: &Db, replies: &mut Replies) -> After {
    let mut upper = [0u8; 16];
    let name = match command_name(&args[0], &mut upper) {
        Some(length) => &upper[..length],
        None => &[][..],
    };
    let arity_ok = match name {
        b"GET" | b"STRLEN" | b"INCR" | b"DECR" | b"ECHO" | b"SELECT" => args.len() == 2,
        b"SET" => args.len() >= 3,
        b"INCRBY" | b"DECRBY" => args.len() == 3,
        b"DEL" | b"EXISTS" | b"CONFIG" | b"MGET" => args.len() >= 2,
        b"MSET" => args.len() >= 3 && args.len() % 2 == 1,
        b"PING" => args.len() <= 2,
        b"DBSIZE" => args.len() == 1,
        _ => true,
    };
    if !arity_ok {
        let name = String::from_utf8_lossy(name).to_lowercase();
        replies.error(format!(
            "ERR wrong number of arguments for '{name}' command"
        ));
        return After::Continue;
    }
    match name {
        b"GET" => {
            let map = db.shard(&args[1]);
            match Db::live(&map, &args[1]) {
                Some(entry) => replies.bulk_bytes(&entry.value),
                None => replies.nil(),
            }
        }
        b"SET" => set(args, db, replies),
        b"MSET" => {
            for pair in args[1..].chunks_exact(2) {
                store(&pair[0], &pair[1], db);
            }
            replies.simple(b"+OK\r\n");
        }
        b"MGET" => {
            replies.array(args.len() - 1);
            for key in &args[1..] {
                let map = db.shard(key);
                match Db::live(&map, key) {
                    Some(entry) => replies.bulk_bytes(&entry.value),
                    None => replies.nil(),
                }
            }
        }
        b"STRLEN" => {
            let map = db.shard(&args[1]);
            let length = Db::live(&map, &args[1]).map_or(0, |entry| entry.value.len());
            replies.integer(length as i64);
        }
        b"DEL" | b"EXISTS" => {
            let delete = name == b"DEL";
            let mut count = 0;
            for key in &args[1..] {
                let mut map = db.shard(key);
                let live = if delete {
                    map.remove(&key[..])
                        .is_some_and(|entry| !entry.is_expired(&mut None))
                } else {
                    Db::live(&map, key).is_some()
                };
                count += i64::from(live);
            }
            replies.integer(count);
        }
        b"INCR" => incr_by(&args[1], 1, db, replies),
        b"DECR" => incr_by(&args[1], -1, db, replies),
        b"INCRBY" | b"DECRBY" => match parse_i64(&args[2]) {
            Some(by) if name == b"INCRBY" => incr_by(&args[1], by, db, replies),
            Some(by) if by != i64::MIN => incr_by(&args[1], -by, db, replies),
            _ => replies.error("ERR value is not an integer or out of range"),
        },
        b"PING" => match args.get(1) {
            Some(message) => replies.bulk(message),
            None => replies.simple(b"+PONG\r\n"),
        },
        b"ECHO" => replies.bulk(&args[1]),
        b"DBSIZE" => replies.integer(db.len() as i64),
        b"FLUSHALL" | b"FLUSHDB" => {
            db.clear();
            replies.simple(b"+OK\r\n");
        }
        b"SELECT" => match parse_i64(&args[1]) {
            Some(0) => replies.simple(b"+OK\r\n"),
            Some(_) => replies.error("ERR DB index is out of range"),
            None => replies.error("ERR value is not an integer or out of range"),
        },
        // What redis-cli asks at start (COMMAND DOCS): nothing to tell.
        b"COMMAND" => replies.simple(b"*0\r\n"),
        b"CONFIG" => config(args, replies),
        b"QUIT" => {
            replies.simple(b"+OK\r\n");
            return After::Close;
        }
        _ => unknown_command(args, replies),
    }
    After::Continue
}

/// redis-server 7's reply to a command it does not know, byte for byte:
/// the name, then the arguments quoted, each followed by a space, as many
/// as begin within 128 bytes, and neither cut past 128 bytes nor past a
/// NUL (redis-server formats them with C's `%.128s`).
fn unknown_command(args: &[Bytes], replies: &mut Replies) {
    let mut message = b"ERR unknown command '".to_vec();
    message.extend_from_slice(c_string(&args[0], 128));
    message.extend_from_slice(b"', with args beginning with: ");
    let mut shown = Vec::new();
    for arg in &args[1..] {
        if shown.len() >= 128 {
            break;
        }
        let room = 128 - shown.len();
        shown.push(b'\'');
        shown.extend_from_slice(c_string(arg, room));
        shown.extend_from_slice(b"' ");
    }
    message.extend_from_slice(&shown);
    replies.error(message);
}

/// What C's `printf("%.*s", limit, bytes)` prints: up to the first NUL,
/// at most `limit` bytes.
fn c_string(bytes: &[u8], limit: usize) -> &[u8] {
    let bytes = bytes.split(|&byte| byte == 0).next().unwrap_or_default();
    &bytes[..bytes.len().min(limit)]
}

/// `SET key value [NX|XX] [EX seconds|PX milliseconds|KEEPTTL]`.
fn set(args: &[Bytes], db: &Db, replies: &mut Replies) {
    let (mut nx, mut xx, mut keep_ttl) = (false, false, false);
    let mut ttl: Option<Duration> = None;
    let mut options = args[3..].iter();
    while let Some(option) = options.next() {
        let mut upper = [0u8; 16];
        let option = match command_name(option, &mut upper) {
            Some(length) => &upper[..length],
            None => &[][..],
        };
        match option {
            b"NX" if !xx => nx = true,
            b"XX" if !nx => xx = true,
            b"KEEPTTL" if ttl.is_none() => keep_ttl = true,
            b"EX" | b"PX" if ttl.is_none() && !keep_ttl => {
                let Some(amount) = options.next() else {
                    return replies.error("ERR syntax error");
                };
                let duration = match parse_i64(amount) {
                    Some(amount) if amount > 0 && option == b"EX" => {
                        Duration::from_secs(amount as u64)
                    }
                    Some(amount) if amount > 0 => Duration::from_millis(amount as u64),
                    Some(_) => return replies.error("ERR invalid expire time in 'set' command"),
                    None => return replies.error("ERR value is not an integer or out of range"),
                };
                ttl = Some(duration);
            }
            _ => return replies.error("ERR syntax error"),
        }
    }
    let expires_at = match ttl {
        Some(ttl) => match Instant::now().checked_add(ttl) {
            Some(at) => Some(at),
            None => return replies.error("ERR invalid expire time in 'set' command"),
        },
        None => None,
    };
    let (key, value) = (&args[1], &args[2]);
    let mut map = db.shard(key);
    // One lookup: an expired entry is overwritten in place as if absent.
    match map.get_mut(&key[..]) {
        Some(entry) => {
            let live = !entry.is_expired(&mut None);
            if (nx && live) || (xx && !live) {
                return replies.nil();
            }
            entry.value = owned(value);
            if !(keep_ttl && live) {
                entry.expires_at = expires_at;
            }
        }
        None if xx => return replies.nil(),
        None => {
            let entry = Entry {
                value: owned(value),
                expires_at,
            };
            map.insert(Bytes::copy_from_slice(key), entry);
        }
    }
    replies.simple(b"+OK\r\n");
}

/// One pair of `MSET`: the value replaces any, without a time to live.
fn store(key: &Bytes, value: &Bytes, db: &Db) {
    let mut map = db.shard(key);
    match map.get_mut(&key[..]) {
        Some(entry) => {
            entry.value = owned(value);
            entry.expires_at = None;
        }
        None => {
            let entry = Entry {
                value: owned(value),
                expires_at: None,
            };
            map.insert(Bytes::copy_from_slice(key), entry);
        }
    }
}

/// `INCR`, `DECR`, `INCRBY`, `DECRBY`: the value as an `i64`, moved by `by`.
/// The key keeps its time to live, as in Redis.
fn incr_by(key: &Bytes, by: i64, db: &Db, replies: &mut Replies) {
    let mut map = db.shard(key);
    let mut digits = [0u8; 20];
    match map.get_mut(&key[..]) {
        // One lookup: an expired entry counts as 0 and loses its expiry.
        Some(entry) => {
            let live = !entry.is_expired(&mut None);
            let current = if live {
                match parse_i64(&entry.value) {
                    Some(value) => value,
                    None => return replies.error("ERR value is not an integer or out of range"),
                }
            } else {
                0
            };
            let Some(next) = current.checked_add(by) else {
                return replies.error("ERR increment or decrement would overflow");
            };
            entry.value = Bytes::copy_from_slice(format_i64(next, &mut digits));
            if !live {
                entry.expires_at = None;
            }
            replies.integer(next);
        }
        None => {
            let entry = Entry {
                value: Bytes::copy_from_slice(format_i64(by, &mut digits)),
                expires_at: None,
            };
            map.insert(Bytes::copy_from_slice(key), entry);
            replies.integer(by);
        }
    }
}

/// `CONFIG GET parameter`: what redis-benchmark and redis-cli look at.
fn config(args: &[Bytes], replies: &mut Replies) {
    if !args[1].eq_ignore_ascii_case(b"GET") {
        let mut message = b"ERR unknown subcommand '".to_vec();
        message.extend_from_slice(c_string(&args[1], 128));
        message.extend_from_slice(b"'. Try CONFIG HELP.");
        return replies.error(message);
    }
    let [_, _, parameter] = args else {
        return replies.error("ERR wrong number of arguments for 'config|get' command");
    };
    if parameter.eq_ignore_ascii_case(b"save") {
        replies.simple(b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    } else if parameter.eq_ignore_ascii_case(b"appendonly") {
        replies.simple(b"*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
    } else {
        replies.simple(b"*0\r\n");
    }
}

// ---------------------------------------------------------------------------
// The command line.

struct Options {
    port: u16,
    threads: usize,
    config: Config,
}

fn parse_args() -> Result<Options, String> {
    let mut port = None;
    let mut threads = 1;
    let mut config = Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value.into())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline_value
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--threads" => {
                let text = value("--threads")?;
                let n: usize = text
                    .parse()
                    .map_err(|_| format!("bad --threads {text:?}"))?;
                threads = n.max(1);
            }
            "--max-bulk" => {
                let text = value("--max-bulk")?;
                config.max_bulk = text
                    .parse()
                    .map_err(|_| format!("bad --max-bulk {text:?}"))?;
            }
            _ if port.is_none() && !arg.starts_with('-') => {
                port = Some(common::parse_port(&arg)?);
            }
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    let port = common::port_or_env(port, DEFAULT_PORT)?;
    Ok(Options {
        port,
        threads,
        config,
    })
}

#[allow(dead_code)] // the integration tests include this file as a module
fn main() -> io::Result<()> {
    let options = parse_args().unwrap_or_else(|message| {
        eprintln!("redis: {message}\nusage: redis [PORT] [--threads N] [--max-bulk BYTES]");
        std::process::exit(2);
    });
    // One thread, as Redis: tokio's current-thread scheduler. More: a pool.
    let mut runtime = match options.threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        threads => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
    };
    runtime.enable_all().build()?.block_on(async {
        let listener = listen(options.port)?;
        println!("redis listening on {}", listener.local_addr()?);
        serve_with(listener, options.config, Arc::new(Db::new())).await
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
        time::timeout,
    };

    use super::*;

    /// A command in RESP.
    fn resp(args: &[&[u8]]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// What follows the `*` line of `args`: what `Batch::find` is given.
    fn after_count_line(args: &[&[u8]]) -> Vec<u8> {
        let command = resp(args);
        let line_end = command.iter().position(|&byte| byte == b'\n').unwrap();
        command[line_end + 1..].to_vec()
    }

    /// The arguments of each command of the batch found in `input`.
    fn found<'a>(input: &'a [u8], count: u64, config: &Config) -> (usize, Vec<Vec<&'a [u8]>>) {
        let mut batch = Batch::default();
        let length = batch.find(input, count, config);
        let mut start = 0;
        let commands = batch
            .ends
            .iter()
            .map(|&end| {
                let arguments = batch.arguments[start..end].iter();
                start = end;
                arguments.map(|range| &input[range.clone()]).collect()
            })
            .collect();
        (length, commands)
    }

    #[test]
    fn a_batch_is_the_whole_commands_buffered() {
        let config = Config::default();
        let mut input = after_count_line(&[b"SET", b"key", b"value"]);
        let first = input.len();
        input.extend(resp(&[b"GET", b"key"]));
        input.extend(resp(&[b"ECHO", b""]));
        let whole = input.len();
        input.extend(&resp(&[b"GET", b"key"])[..10]); // cut short
        let (length, commands) = found(&input, 3, &config);
        assert_eq!(length, whole);
        assert_eq!(
            commands,
            [
                vec![&b"SET"[..], b"key", b"value"],
                vec![&b"GET"[..], b"key"],
                vec![&b"ECHO"[..], b""],
            ]
        );
        // The first command cut short: no batch.
        assert_eq!(found(&input[..first - 1], 3, &config), (0, vec![]));
    }

    #[test]
    fn what_is_not_plain_resp_is_left_to_the_frames() {
        let config = Config {
            max_bulk: 100,
            max_line: 8,
            ..Config::default()
        };
        let ping = after_count_line(&[b"PING"]);
        // A first command like this gives no batch; after a whole command,
        // it ends the batch before it.
        let cases: &[&[u8]] = &[
            b"$-1\r\n",
            b"$04\r\nPING\r\n",
            b"$ 4\r\nPING\r\n",
            b"$+4\r\nPING\r\n",
            b"$\r\n",
            b"$4\nPING\r\n",
            b"$4\r\nPINGxx\r\n",
            b"$4\r\nPING\n",
            b"PING\r\n",
            b"$101\r\n",                 // over max_bulk
            b"$0000001\r\n",             // a line over max_line
            b"$1234567890123456789\r\n", // 19 digits
        ];
        for case in cases {
            assert_eq!(found(case, 1, &config), (0, vec![]), "{case:?}");
            for next in [&b"*1\r\n"[..], b"*01\r\n", b"*0\r\n", b"*-1\r\n"] {
                let mut input = ping.clone();
                input.extend_from_slice(next);
                input.extend_from_slice(case);
                assert_eq!(
                    found(&input, 1, &config),
                    (ping.len(), vec![vec![&b"PING"[..]]])
                );
            }
        }
        // A value of BIG_VALUE bytes or more keeps its own frame (and its
        // own allocation when stored).
        let big = vec![b'v'; BIG_VALUE];
        let input = after_count_line(&[b"SET", b"key", &big]);
        assert_eq!(found(&input, 3, &Config::default()).0, 0);
        let input = after_count_line(&[b"SET", b"key", &big[1..]]);
        assert_eq!(found(&input, 3, &Config::default()).0, input.len());
    }

    async fn start() -> TcpStream {
        let listener = listen(0).unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(serve(listener));
        TcpStream::connect(address).await.unwrap()
    }

    async fn read_exactly(stream: &mut TcpStream, length: usize) -> Vec<u8> {
        let mut reply = vec![0; length];
        timeout(Duration::from_secs(5), stream.read_exact(&mut reply))
            .await
            .expect("the replies did not come")
            .unwrap();
        reply
    }

    #[tokio::test]
    async fn a_batch_whose_replies_fill_the_output_goes_on_after_they_are_written() {
        let mut stream = start().await;
        let value = vec![b'v'; 10_000];
        let mut request = resp(&[b"SET", b"key", &value]);
        // 100 replies of 10 KB: the batch stops every 64 KiB of them.
        for _ in 0..100 {
            request.extend(resp(&[b"GET", b"key"]));
        }
        request.extend(resp(&[b"PING"]));
        stream.write_all(&request).await.unwrap();
        let mut one = b"$10000\r\n".to_vec();
        one.extend_from_slice(&value);
        one.extend_from_slice(b"\r\n");
        let mut expected = b"+OK\r\n".to_vec();
        for _ in 0..100 {
            expected.extend_from_slice(&one);
        }
        expected.extend_from_slice(b"+PONG\r\n");
        let reply = read_exactly(&mut stream, expected.len()).await;
        assert!(reply == expected, "the replies differ");
    }

    #[tokio::test]
    async fn batches_and_frames_alternate_in_one_pipeline() {
        let mut stream = start().await;
        let big = vec![b'b'; BIG_VALUE];
        let mut request = resp(&[b"SET", b"a", b"1"]);
        request.extend(resp(&[b"INCR", b"a"]));
        request.extend(b"INCR a\r\n"); // inline
        request.extend(resp(&[b"SET", b"big", &big])); // frames of its own
        request.extend(b"*0\r\n"); // ignored
        request.extend(resp(&[b"GET", b"a"]));
        request.extend(resp(&[b"STRLEN", b"big"]));
        request.extend(resp(&[b"QUIT"]));
        request.extend(resp(&[b"PING"])); // never run
        stream.write_all(&request).await.unwrap();
        let expected = b"+OK\r\n:2\r\n:3\r\n+OK\r\n$1\r\n3\r\n:16384\r\n+OK\r\n";
        assert_eq!(read_exactly(&mut stream, expected.len()).await, expected);
        let mut rest = Vec::new();
        timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
            .await
            .expect("the connection was not closed")
            .unwrap();
        assert_eq!(rest, b"");
    }
}
