//! A Redis-protocol (RESP2) server on `Chat`: enough of Redis for
//! `redis-cli` and `redis-benchmark`.
//!
//! ```text
//! cargo run --release --example redis -- [PORT] [--threads N] [--max-bulk BYTES]
//! redis-cli -p 6379 set greeting hello
//! redis-benchmark -p 6379 -q -t set,get -n 100000 -P 16 -c 50
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
//! `GET`, `STRLEN`, `DEL key...`, `EXISTS key...`, `INCR`, `DECR`, `INCRBY`, `DECRBY`,
//! `DBSIZE`, `FLUSHALL`, `SELECT 0`, `QUIT`, and of `COMMAND` and
//! `CONFIG GET` what the clients ask for at start (an empty array; `save`
//! and `appendonly` as a server that saves nothing).
//!
//! # Framing with a `Chat`
//!
//! The channel switches terminators as RESP goes: a line by `\r\n` (`*3`,
//! `$5`, or an inline command such as `PING` typed in telnet), then a bulk
//! string by its count, `Terminator::Length(n + 2)` (its `\r\n` included),
//! then `\r\n` again. The codec is in streaming mode, so nothing is buffered
//! past the limits set here: a line may be at most 64 KiB, a bulk string at
//! most `--max-bulk`, and a bulk length over that is refused before any of it
//! is read. When a line or a bulk string is whole in one read (nearly always)
//! it comes out as one `Frame::Complete`, a slice of the read buffer: the
//! arguments of a command are `Bytes` that were never copied.
//!
//! Malformed input (a bad `*` or `$` length, a negative or garbage one, a
//! missing `$`, a line over the limit) gets `-ERR Protocol error: ...` and
//! the connection is closed once the reply is sent, as Redis does; an unknown
//! command or a wrong argument gets `-ERR ...` and the connection goes on.
//!
//! # Pipelining
//!
//! A connection's frames are handled synchronously, one after another, in
//! one poll of the `Chat`; the replies are written into one `BytesMut` and
//! pushed only when the `Chat` has no whole frame left and would wait for
//! the socket (one `Bytes`, one write for a whole pipeline). Large values go
//! out as the stored `Bytes`, not copied. Once 64 KiB of output is queued
//! the connection writes it out before reading on: a client that pipelines
//! without reading stalls instead of growing the server's memory.
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

    fn error(&mut self, message: &str) {
        self.put(b"-");
        self.put(message.as_bytes());
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
    ProtocolError(String),
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
struct Session<'a> {
    db: &'a Db,
    config: Config,
    state: State,
    args: Vec<Bytes>,
    assembler: Assembler,
    replies: Replies,
    /// The `Chat` holds a full output buffer: write it out before reading on.
    draining: bool,
}

/// The delimiter of RESP lines. Static: setting it costs no reference count.
const CRLF: Terminator = Terminator::Delimiter(Bytes::from_static(b"\r\n"));

impl Session<'_> {
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
            match chat.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Err(end) = self.on_frame(frame, chat) {
                        return Poll::Ready(Ok(end));
                    }
                    if self.replies.length >= FLUSH_AT {
                        self.replies.push_to(chat);
                        self.draining = chat.queued_output_len() >= FLUSH_AT;
                    }
                }
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(error)),
                Poll::Ready(None) => return Poll::Ready(Ok(End::InputEnded)),
                Poll::Pending if self.replies.is_empty() => return Poll::Pending,
                // Polled again, the Chat writes them, then waits for input.
                Poll::Pending => self.replies.push_to(chat),
            }
        }
    }

    /// Handles one frame: a line or a bulk string, and when it completes a
    /// command, the command.
    fn on_frame(&mut self, frame: Frame, chat: &mut Chat<TcpStream>) -> Result<(), End> {
        let limit = match self.state {
            State::Bulk { length, .. } => length as u64 + 2,
            _ => self.config.max_line as u64,
        };
        let message = match frame {
            // The usual case: a whole message from one read, not copied.
            Frame::Complete(data) if self.assembler.is_empty() && data.len() as u64 <= limit => {
                data
            }
            frame => match self.assembler.feed(frame, limit) {
                Ok(Some(message)) => message,
                Ok(None) => return Ok(()),
                // Only a line can pass its limit: a bulk string has its count.
                Err(()) => {
                    return Err(End::ProtocolError(match self.state {
                        State::Command => "too big inline request".into(),
                        _ => "too big mbulk count string".into(),
                    }))
                }
            },
        };

        match self.state {
            State::Command => {
                if let Some(count) = message.strip_prefix(b"*") {
                    match parse_i64(count) {
                        Some(count) if count <= 0 => {} // Redis ignores `*0` and `*-1`
                        Some(count) if count as u64 <= self.config.max_args => {
                            self.args.reserve(count.min(1024) as usize);
                            self.state = State::BulkHeader {
                                remaining: count as u64,
                            };
                        }
                        _ => return Err(End::ProtocolError("invalid multibulk length".into())),
                    }
                    return Ok(());
                }
                // An inline command: words split by spaces.
                self.args.extend(
                    message
                        .split(|&b| b == b' ' || b == b'\t')
                        .filter(|word| !word.is_empty())
                        .map(|word| message.slice_ref(word)),
                );
                if self.args.is_empty() {
                    return Ok(());
                }
            }
            State::BulkHeader { remaining } => {
                let Some(length) = message.strip_prefix(b"$") else {
                    let got = message.first().map_or(String::new(), |&b| printable(&[b]));
                    return Err(End::ProtocolError(format!("expected '$', got '{got}'")));
                };
                match parse_i64(length) {
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
                chat.set_terminator(CRLF);
                if remaining > 1 {
                    self.state = State::BulkHeader {
                        remaining: remaining - 1,
                    };
                    return Ok(());
                }
                self.state = State::Command;
            }
        }

        let after = execute(&self.args, self.db, &mut self.replies);
        self.args.clear();
        match after {
            After::Continue => Ok(()),
            After::Close => Err(End::Quit),
        }
    }
}

async fn handle_connection(stream: TcpStream, config: Config, db: &Db) -> Result<(), Error> {
    let _ = stream.set_nodelay(true);
    let mut chat = Chat::with_codec(stream, TerminatorCodec::streaming(CRLF));
    let mut session = Session {
        db,
        config,
        state: State::Command,
        args: Vec::new(),
        assembler: Assembler::default(),
        replies: Replies::default(),
        draining: false,
    };
    let end = poll_fn(|cx| session.poll_run(&mut chat, cx)).await?;
    let replies = session.replies;
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
    message: &str,
) -> Result<(), Error> {
    replies.error(&format!("ERR Protocol error: {message}"));
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
    let (stream, _) = chat.into_parts();
    common::drain(stream).await;
    Ok(())
}

/// Non-printable bytes as `\xNN`, as Redis shows them in errors; at most 128.
fn printable(bytes: &[u8]) -> String {
    let mut text = String::new();
    for &byte in bytes.iter().take(128) {
        if byte.is_ascii_graphic() || byte == b' ' {
            text.push(byte as char);
        } else {
            text.push_str(&format!("\\x{byte:02x}"));
        }
    }
    text
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
        b"DEL" | b"EXISTS" | b"CONFIG" => args.len() >= 2,
        b"PING" => args.len() <= 2,
        b"DBSIZE" => args.len() == 1,
        _ => true,
    };
    if !arity_ok {
        let name = String::from_utf8_lossy(&args[0]).to_lowercase();
        replies.error(&format!(
            "ERR wrong number of arguments for '{}' command",
            printable(name.as_bytes())
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
        _ => {
            let mut message = format!(
                "ERR unknown command '{}', with args beginning with: ",
                printable(&args[0])
            );
            for arg in &args[1..] {
                message.push_str(&format!("'{}' ", printable(arg)));
            }
            replies.error(&message);
        }
    }
    After::Continue
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
        return replies.error(&format!(
            "ERR unknown subcommand '{}'. Try CONFIG HELP.",
            printable(&args[1])
        ));
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
