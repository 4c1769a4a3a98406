//! A memcached server on `Chat`: the text protocol of memcached 1.6, enough
//! for libmemcached's tools, pymemcache and `memcaslap`.
//!
//! ```text
//! cargo run --release --example memcached -- --port 11211 [--threads N] [--memory-limit MiB] [--max-item-size BYTES]
//! printf 'set greeting 0 0 5\r\nhello\r\nget greeting\r\n' | nc -q 1 127.0.0.1 11211
//! ```
//!
//! The port is `--port` (or the first argument), else `$PORT`, else 11211
//! (0 picks a free one; the address is printed). `--threads N` runs it on N
//! threads (default 1: tokio's current-thread runtime; with more, a
//! multi-threaded one). `--memory-limit` bounds the items' memory (64 MiB
//! unless set; memcached's `-m`), `--max-item-size` the length of a value
//! (1 MiB unless set; memcached's `-I`, which also counts the key and an
//! item header: memcached takes a value of at most 1 MiB less 59 bytes and
//! the key's length, this server takes 1 MiB).
//!
//! Commands: `get`, `gets`, `gat`, `gats` (any number of keys), `set`,
//! `add`, `replace`, `append`, `prepend`, `cas` (with flags, exptime and
//! `noreply`), `delete`, `incr`, `decr`, `touch`, `flush_all [delay]`,
//! `version`, `verbosity`, `stats` and `quit`, with the replies and errors
//! of memcached 1.6.18, byte for byte. Meta commands (`mg`, `ms`, ...),
//! `stats` with an argument and the administrative commands (`slabs`,
//! `lru_crawler`, `watch`, `shutdown`, ...) get `ERROR`.
//!
//! Where it answers otherwise, on purpose: flags above 2^32 - 1, and an
//! exptime or a length outside 32 signed bits, get `CLIENT_ERROR bad command
//! line format` (memcached keeps their low 32 bits: an exptime of 2^32 + 1
//! would be 1 second); a `get` with an overlong key does not drop the
//! replies to the commands before it in the same read (memcached's does).
//! `scripts/memcached-clients.sh` sends the same commands to both servers
//! and compares the replies byte for byte.
//!
//! # Framing with a `Chat`
//!
//! memcached's protocol is a line, then, for the storage commands, a data
//! block of the length the line gives:
//!
//! - A command line ends at `\r\n` or at `\n` (memcached accepts both):
//!   `Terminator::any_of(["\r\n", "\n"])`, in whole-frame mode, at most
//!   2048 bytes. A longer line gets `CLIENT_ERROR bad command line format`
//!   (what memcached answers for a line with an overlong key, the usual way
//!   to get there) as soon as it passes the limit, and the codec skips the
//!   rest of it without buffering it: the connection goes on. (memcached
//!   reads a line of any length that arrives in one read, and closes the
//!   connection when 2048 bytes without a newline are waiting, unless they
//!   begin a `get`. A `get` line is limited to 2048 bytes here, too.)
//! - A data block is `Terminator::Length(bytes + 2)`: the data and its
//!   `\r\n`, whose two bytes are checked (`CLIENT_ERROR bad data chunk`
//!   otherwise). The codec's limit is set to `--max-item-size` + 2 for it,
//!   so a longer block fails at once with `FrameTooLong`, before any of it
//!   is read, and is skipped as it arrives, never buffered: the client gets
//!   `SERVER_ERROR object too large for cache` and the connection goes on.
//!
//! # Pipelining
//!
//! A connection's frames are handled one after the other, in one poll of
//! the `Chat`, and the replies gather in one buffer; they are pushed to the
//! `Chat` when it has no whole frame left and would wait for the socket, so
//! the replies to the commands of one read leave in one write. Values of
//! 16 KiB or more go out as the stored `Bytes`, not copied. Once 64 KiB of
//! replies wait, the connection writes them out before it reads on: a
//! client that pipelines without reading stalls instead of growing the
//! server's memory.
//!
//! # The cache
//!
//! A map behind one `Mutex`, with a least-recently-used list that evicts to
//! keep the items under `--memory-limit`, CAS unique ids from one counter
//! (as memcached's, so the same commands give the same ids), and exptimes
//! as `protocol.txt` says them (see `examples/memcached/store.rs`). Values
//! are copied out of the read buffer when stored: a frame is a view of the
//! read buffer, whose allocation may be twice the value's length, and a
//! cache bounded by memory must own what it counts.

use std::{
    future::poll_fn,
    io, mem,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    task::{ready, Context, Poll},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use asynchat::{Chat, Error, Frame, Terminator, TerminatorCodec};
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::{
    net::{TcpListener, TcpStream},
    time::timeout,
};

mod common;
pub use common::listen;

#[path = "memcached/parse.rs"]
mod parse;
#[path = "memcached/store.rs"]
pub mod store;

use parse::{parse_i32, parse_u32, parse_u64, Words};
use store::{Delta, Item, Mode, Outcome, Store, MAX_KEY_LENGTH};

/// The port when neither the command line nor `$PORT` gives one.
pub const DEFAULT_PORT: u16 = 11211;

/// What `version` answers: the memcached whose replies these are, and
/// what this is.
pub const VERSION: &str = "1.6.18-asynchat";

/// The limits of the server.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// The longest value, in bytes (`--max-item-size`).
    pub max_item_size: usize,
    /// The most memory the items take, in bytes, as the `bytes` statistic
    /// counts it (`--memory-limit`, in MiB on the command line).
    pub memory_limit: usize,
    /// The longest command line, its line ending excluded (memcached's
    /// 2048).
    pub max_line: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_item_size: 1024 * 1024,
            memory_limit: 64 * 1024 * 1024,
            max_line: 2048,
        }
    }
}

/// Values at least this long are sent as the stored `Bytes`; shorter ones
/// are copied into the reply.
const BIG_VALUE: usize = 16 * 1024;

/// Replies gathered past this many bytes are handed to the `Chat` at once.
const FLUSH_AT: usize = 64 * 1024;

/// The server: the cache and what `stats` tells beyond it.
pub struct Server {
    store: Store,
    config: Config,
    threads: usize,
    started: Instant,
    current_connections: AtomicU64,
    total_connections: AtomicU64,
}

impl Server {
    /// A server with an empty cache, whose `stats` says it runs on
    /// `threads` threads.
    pub fn new(config: Config, threads: usize) -> Self {
        Server {
            store: Store::new(config.memory_limit, config.max_item_size),
            config,
            threads,
            started: Instant::now(),
            current_connections: AtomicU64::new(0),
            total_connections: AtomicU64::new(0),
        }
    }

    /// The cache.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Serves `listener` forever with the default [`Config`].
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    serve_with(listener, Arc::new(Server::new(Config::default(), 1))).await
}

/// Serves `listener` forever, one task per connection, all sharing
/// `server`.
pub async fn serve_with(listener: TcpListener, server: Arc<Server>) -> io::Result<()> {
    loop {
        let stream = common::accept(&listener).await;
        let server = server.clone();
        tokio::spawn(async move {
            server.current_connections.fetch_add(1, Ordering::Relaxed);
            server.total_connections.fetch_add(1, Ordering::Relaxed);
            let result = handle_connection(stream, &server).await;
            server.current_connections.fetch_sub(1, Ordering::Relaxed);
            if let Err(error) = result {
                if !matches!(&error, Error::Io(e) if e.kind() == io::ErrorKind::ConnectionReset) {
                    eprintln!("connection: {error}");
                }
            }
        });
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

    fn line(&mut self, text: &[u8]) {
        self.put(text);
        self.put(b"\r\n");
    }

    fn number(&mut self, value: u64) {
        self.put(itoa::Buffer::new().format(value).as_bytes());
    }

    /// `VALUE <key> <flags> <bytes> [<cas unique>]`, then the data.
    fn value(&mut self, key: &[u8], item: &Item, with_cas: bool) {
        self.put(b"VALUE ");
        self.put(key);
        self.put(b" ");
        self.number(u64::from(item.flags));
        self.put(b" ");
        self.number(item.value.len() as u64);
        if with_cas {
            self.put(b" ");
            self.number(item.cas);
        }
        self.put(b"\r\n");
        if item.value.len() < BIG_VALUE {
            self.put(&item.value);
        } else {
            if !self.buffer.is_empty() {
                self.pieces.push(self.buffer.split().freeze());
            }
            self.pieces.push(item.value.clone());
            self.length += item.value.len();
        }
        self.put(b"\r\n");
    }

    /// `STAT <name> <value>`.
    fn stat(&mut self, name: &str, value: impl std::fmt::Display) {
        self.line(format!("STAT {name} {value}").as_bytes());
    }

    /// Pushes everything gathered to `chat`, in order, leaving the buffer's
    /// spare room for the next batch.
    fn push_to(&mut self, chat: &mut Chat<TcpStream>) {
        if !self.buffer.is_empty() {
            self.pieces.push(self.buffer.split().freeze());
        }
        self.length = 0;
        for piece in self.pieces.drain(..) {
            chat.push(piece);
        }
    }
}

// ---------------------------------------------------------------------------
// A connection.

/// What the next frame is.
enum Expect {
    /// A command line.
    Line,
    /// The data block of a storage command.
    Block(Storage),
}

/// A storage command whose line was read, awaiting its data block.
struct Storage {
    mode: Mode,
    /// A slice of the command line, copied when the item is stored.
    key: Bytes,
    flags: u32,
    exptime: i64,
    length: usize,
    noreply: bool,
}

/// Why a connection ends.
enum End {
    /// The client closed its side: the replies owed still go out.
    InputEnded,
    /// `quit`, or a line that looks like an HTTP request (memcached drops
    /// those connections): the replies owed go out, then the connection is
    /// closed.
    Close,
}

/// The protocol state of one connection: everything but the `Chat`.
struct Connection<'a> {
    server: &'a Server,
    /// `\r\n` or `\n`, built once.
    lines: Terminator,
    expect: Expect,
    replies: Replies,
    /// The `Chat` holds a full output buffer: write it out before reading on.
    draining: bool,
}

impl Connection<'_> {
    /// Runs the connection's frames until its input ends or it closes.
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
                Poll::Ready(Some(Ok(Frame::Complete(message)))) => {
                    if let Some(end) = self.on_message(message, chat) {
                        return Poll::Ready(Ok(end));
                    }
                    if self.replies.length >= FLUSH_AT {
                        self.replies.push_to(chat);
                        self.draining = chat.queued_output_len() >= FLUSH_AT;
                    }
                }
                // The input ended in the middle of a message: memcached
                // drops it too.
                Poll::Ready(Some(Ok(Frame::Partial(_)))) => {}
                Poll::Ready(Some(Err(Error::FrameTooLong { .. }))) => self.on_too_long(chat),
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(error)),
                Poll::Ready(None) => return Poll::Ready(Ok(End::InputEnded)),
                Poll::Pending if self.replies.is_empty() => return Poll::Pending,
                // Polled again, the Chat writes them, then waits for input.
                Poll::Pending => self.replies.push_to(chat),
            }
        }
    }

    /// Handles a line or a data block.
    fn on_message(&mut self, message: Bytes, chat: &mut Chat<TcpStream>) -> Option<End> {
        match mem::replace(&mut self.expect, Expect::Line) {
            Expect::Line => self.on_line(&message, chat),
            Expect::Block(storage) => {
                self.expect_line(chat);
                self.on_block(storage, &message);
                None
            }
        }
    }

    /// The codec refused a message for its length, and skips it.
    fn on_too_long(&mut self, chat: &mut Chat<TcpStream>) {
        match mem::replace(&mut self.expect, Expect::Line) {
            Expect::Line => self.replies.line(b"CLIENT_ERROR bad command line format"),
            Expect::Block(storage) => {
                // The codec skips the block; lines come after it.
                self.expect_line(chat);
                self.server
                    .store
                    .refuse_too_large(storage.mode, &storage.key);
                self.reply(storage.noreply, b"SERVER_ERROR object too large for cache");
            }
        }
    }

    /// The next message is a command line.
    fn expect_line(&mut self, chat: &mut Chat<TcpStream>) {
        chat.codec_mut()
            .set_max_frame_length(self.server.config.max_line);
        chat.set_terminator(self.lines.clone());
    }

    /// The next message is the data block of `storage`: its bytes and
    /// `\r\n`. One longer than the largest item fails at once.
    fn expect_block(&mut self, storage: Storage, chat: &mut Chat<TcpStream>) {
        chat.codec_mut()
            .set_max_frame_length(self.server.config.max_item_size + 2);
        chat.set_terminator(Terminator::Length(storage.length as u64 + 2));
        self.expect = Expect::Block(storage);
    }

    /// A reply line, unless the command said `noreply`.
    fn reply(&mut self, noreply: bool, line: &[u8]) {
        if !noreply {
            self.replies.line(line);
        }
    }

    /// A command line: memcached's dispatch, with its checks of the number
    /// of words (`ERROR` when wrong, even with `noreply`).
    fn on_line(&mut self, line: &Bytes, chat: &mut Chat<TcpStream>) -> Option<End> {
        let words = Words::new(line);
        let count = words.len();
        let command = words.get(0);
        if command.len() < 2 {
            self.replies.line(b"ERROR");
            return None;
        }
        match command {
            b"get" | b"gets" | b"gat" | b"gats" if count >= 2 => self.retrieve(&words),
            b"set" | b"add" | b"replace" | b"append" | b"prepend" if matches!(count, 5 | 6) => {
                self.storage(&words, line, chat)
            }
            b"cas" if matches!(count, 6 | 7) => self.storage(&words, line, chat),
            b"incr" | b"decr" if matches!(count, 3 | 4) => self.add_delta(&words),
            b"delete" if (2..=4).contains(&count) => self.delete(&words),
            b"touch" if matches!(count, 3 | 4) => self.touch(&words),
            b"flush_all" if count <= 3 => self.flush_all(&words),
            b"verbosity" if matches!(count, 2 | 3) => {
                let noreply = words.noreply();
                match parse_u64(words.get(1)) {
                    Some(_) => self.reply(noreply, b"OK"),
                    None => self.reply(noreply, b"CLIENT_ERROR bad command line format"),
                }
            }
            b"version" => self.replies.line(format!("VERSION {VERSION}").as_bytes()),
            b"stats" if count == 1 => self.stats(),
            b"quit" => return Some(End::Close),
            _ if looks_like_http(&words) => return Some(End::Close),
            _ => self.replies.line(b"ERROR"),
        }
        None
    }

    /// `get <key>*`, `gets <key>*`, `gat <exptime> <key>*`, `gats <exptime> <key>*`.
    fn retrieve(&mut self, words: &Words<'_>) {
        let command = words.get(0);
        let with_cas = command.ends_with(b"s");
        let (touch, first_key) = if command.starts_with(b"gat") {
            match parse_i32(words.get(1)) {
                Some(exptime) => (Some(i64::from(exptime)), 2),
                None => return self.replies.line(b"CLIENT_ERROR invalid exptime argument"),
            }
        } else {
            (None, 1)
        };
        let keys = words.rest(first_key);
        // memcached refuses the whole command for one overlong key, and
        // drops the replies it gathered for the keys before it.
        if keys.clone().any(|key| key.len() > MAX_KEY_LENGTH) {
            return self.replies.line(b"CLIENT_ERROR bad command line format");
        }
        let replies = &mut self.replies;
        self.server.store.get(keys, touch, |key, item| {
            replies.value(key, item, with_cas);
        });
        self.replies.line(b"END");
    }

    /// `set|add|replace|append|prepend <key> <flags> <exptime> <bytes> [noreply]`,
    /// `cas <key> <flags> <exptime> <bytes> <cas unique> [noreply]`: the
    /// line; the data block comes next.
    fn storage(&mut self, words: &Words<'_>, line: &Bytes, chat: &mut Chat<TcpStream>) {
        let noreply = words.noreply();
        let key = words.get(1);
        if key.len() > MAX_KEY_LENGTH {
            return self.reply(noreply, b"CLIENT_ERROR bad command line format");
        }
        let numbers = (
            parse_u32(words.get(2)),
            parse_i32(words.get(3)),
            parse_i32(words.get(4)),
        );
        let (Some(flags), Some(exptime), Some(length)) = numbers else {
            return self.reply(noreply, b"CLIENT_ERROR bad command line format");
        };
        let mode = match words.get(0) {
            b"set" => Mode::Set,
            b"add" => Mode::Add,
            b"replace" => Mode::Replace,
            b"append" => Mode::Append,
            b"prepend" => Mode::Prepend,
            _ => match parse_u64(words.get(5)) {
                Some(unique) => Mode::Cas(unique),
                None => return self.reply(noreply, b"CLIENT_ERROR bad command line format"),
            },
        };
        // memcached adds 2 to a signed 32-bit length.
        if !(0..=i32::MAX - 2).contains(&length) {
            return self.reply(noreply, b"CLIENT_ERROR bad command line format");
        }
        let storage = Storage {
            mode,
            key: line.slice_ref(key),
            flags,
            exptime: i64::from(exptime),
            length: length as usize,
            noreply,
        };
        self.expect_block(storage, chat);
    }

    /// The data block of `storage`: its bytes and `\r\n`.
    fn on_block(&mut self, storage: Storage, block: &[u8]) {
        let store = &self.server.store;
        let Some(data) = block.strip_suffix(b"\r\n") else {
            store.count_bad_block();
            return self.reply(storage.noreply, b"CLIENT_ERROR bad data chunk");
        };
        let value = Bytes::copy_from_slice(data);
        let stored = store.store(
            storage.mode,
            &storage.key,
            storage.flags,
            storage.exptime,
            value,
        );
        let line: &[u8] = match stored {
            Outcome::Stored => b"STORED",
            Outcome::NotStored => b"NOT_STORED",
            Outcome::Exists => b"EXISTS",
            Outcome::NotFound => b"NOT_FOUND",
            Outcome::NoMemory => b"SERVER_ERROR out of memory storing object",
        };
        self.reply(storage.noreply, line);
    }

    /// `incr|decr <key> <value> [noreply]`.
    fn add_delta(&mut self, words: &Words<'_>) {
        let noreply = words.noreply();
        let key = words.get(1);
        if key.len() > MAX_KEY_LENGTH {
            return self.reply(noreply, b"CLIENT_ERROR bad command line format");
        }
        let Some(delta) = parse_u64(words.get(2)) else {
            return self.reply(noreply, b"CLIENT_ERROR invalid numeric delta argument");
        };
        let increment = words.get(0) == b"incr";
        match self.server.store.add_delta(key, increment, delta) {
            Delta::Value(value) => {
                let mut digits = itoa::Buffer::new();
                self.reply(noreply, digits.format(value).as_bytes());
            }
            Delta::NotFound => self.reply(noreply, b"NOT_FOUND"),
            Delta::NonNumeric => self.reply(
                noreply,
                b"CLIENT_ERROR cannot increment or decrement non-numeric value",
            ),
            Delta::NoMemory => self.reply(noreply, b"SERVER_ERROR out of memory"),
        }
    }

    /// `delete <key> [noreply]`; memcached also takes the `0` that clients
    /// of old sent as a hold time: `delete <key> 0 [noreply]`.
    fn delete(&mut self, words: &Words<'_>) {
        let count = words.len();
        let noreply = count > 2 && words.noreply();
        if count > 2 {
            let hold_is_zero = words.get(2) == b"0";
            let valid = (count == 3 && (hold_is_zero || noreply))
                || (count == 4 && hold_is_zero && noreply);
            if !valid {
                return self.reply(
                    noreply,
                    b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]",
                );
            }
        }
        let key = words.get(1);
        if key.len() > MAX_KEY_LENGTH {
            return self.reply(noreply, b"CLIENT_ERROR bad command line format");
        }
        match self.server.store.delete(key) {
            true => self.reply(noreply, b"DELETED"),
            false => self.reply(noreply, b"NOT_FOUND"),
        }
    }

    /// `touch <key> <exptime> [noreply]`.
    fn touch(&mut self, words: &Words<'_>) {
        let noreply = words.noreply();
        let key = words.get(1);
        if key.len() > MAX_KEY_LENGTH {
            return self.reply(noreply, b"CLIENT_ERROR bad command line format");
        }
        let Some(exptime) = parse_i32(words.get(2)) else {
            return self.reply(noreply, b"CLIENT_ERROR invalid exptime argument");
        };
        match self.server.store.touch(key, i64::from(exptime)) {
            true => self.reply(noreply, b"TOUCHED"),
            false => self.reply(noreply, b"NOT_FOUND"),
        }
    }

    /// `flush_all [delay] [noreply]`.
    fn flush_all(&mut self, words: &Words<'_>) {
        let noreply = words.noreply();
        let delay = if words.len() == if noreply { 2 } else { 1 } {
            0
        } else {
            match parse_i32(words.get(1)) {
                Some(delay) => i64::from(delay),
                None => return self.reply(noreply, b"CLIENT_ERROR invalid exptime argument"),
            }
        };
        self.server.store.flush_all(delay);
        self.reply(noreply, b"OK");
    }

    /// `stats`: memcached's general-purpose statistics that mean something
    /// here, in memcached's order.
    fn stats(&mut self) {
        let server = self.server;
        let stats = server.store.stats();
        let counters = stats.counters;
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let replies = &mut self.replies;
        replies.stat("pid", std::process::id());
        replies.stat("uptime", server.started.elapsed().as_secs());
        replies.stat("time", unix_now);
        replies.stat("version", VERSION);
        replies.stat("pointer_size", usize::BITS);
        let current = server.current_connections.load(Ordering::Relaxed);
        replies.stat("curr_connections", current);
        let total = server.total_connections.load(Ordering::Relaxed);
        replies.stat("total_connections", total);
        replies.stat("cmd_get", counters.cmd_get);
        replies.stat("cmd_set", counters.cmd_set);
        replies.stat("cmd_flush", counters.cmd_flush);
        replies.stat("cmd_touch", counters.cmd_touch);
        replies.stat("get_hits", counters.get_hits);
        replies.stat("get_misses", counters.get_misses);
        replies.stat("get_expired", counters.get_expired);
        replies.stat("delete_misses", counters.delete_misses);
        replies.stat("delete_hits", counters.delete_hits);
        replies.stat("incr_misses", counters.incr_misses);
        replies.stat("incr_hits", counters.incr_hits);
        replies.stat("decr_misses", counters.decr_misses);
        replies.stat("decr_hits", counters.decr_hits);
        replies.stat("cas_misses", counters.cas_misses);
        replies.stat("cas_hits", counters.cas_hits);
        replies.stat("cas_badval", counters.cas_badval);
        replies.stat("touch_hits", counters.touch_hits);
        replies.stat("touch_misses", counters.touch_misses);
        replies.stat("store_too_large", counters.store_too_large);
        replies.stat("store_no_memory", counters.store_no_memory);
        replies.stat("limit_maxbytes", stats.limit_maxbytes);
        replies.stat("threads", server.threads);
        replies.stat("bytes", stats.bytes);
        replies.stat("curr_items", stats.curr_items);
        replies.stat("total_items", counters.total_items);
        replies.stat("evictions", counters.evictions);
        replies.stat("reclaimed", counters.reclaimed);
        replies.line(b"END");
    }
}

/// memcached drops, without a reply, a connection whose unknown command
/// line ends in `HTTP/...`: someone pointed a browser at it. Only the
/// commands its dispatch does not sort by their first letter get there.
fn looks_like_http(words: &Words<'_>) -> bool {
    let command = words.get(0);
    let sorted_by_first_letter =
        matches!(command[0], b'g' | b's' | b'a' | b'c' | b'i' | b'd' | b't')
            || (command.len() == 2 && command[0] == b'm');
    !sorted_by_first_letter && words.last().starts_with(b"HTTP/")
}

async fn handle_connection(stream: TcpStream, server: &Server) -> Result<(), Error> {
    let _ = stream.set_nodelay(true);
    let lines = Terminator::any_of(["\r\n", "\n"]);
    let codec = TerminatorCodec::new(lines.clone()).with_max_frame_length(server.config.max_line);
    let mut chat = Chat::with_codec(stream, codec);
    let mut connection = Connection {
        server,
        lines,
        expect: Expect::Line,
        replies: Replies::default(),
        draining: false,
    };
    let end = poll_fn(|cx| connection.poll_run(&mut chat, cx)).await?;
    let mut replies = connection.replies;
    match end {
        End::InputEnded => {
            // The replies to the last commands still go out.
            if !replies.is_empty() {
                replies.push_to(&mut chat);
                chat.flush().await?;
            }
            Ok(())
        }
        End::Close => close(chat, replies).await,
    }
}

/// Sends the replies gathered, closes the connection, and drains what the
/// peer still sends for a moment before dropping the socket: closing with
/// unread input makes the kernel reset the connection, and the reset can
/// destroy the last reply before the client reads it.
async fn close(mut chat: Chat<TcpStream>, mut replies: Replies) -> Result<(), Error> {
    replies.push_to(&mut chat);
    chat.close_when_done();
    match timeout(Duration::from_secs(10), chat.flush()).await {
        Ok(result) => result?,
        Err(_) => return Ok(()), // the peer does not read: give up on it
    }
    common::drain(chat.into_parts().io).await;
    Ok(())
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
        let mut value = |name: &str| -> Result<usize, String> {
            let text: String = inline_value
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{name} needs a value"))?;
            text.parse().map_err(|_| format!("bad {name} {text:?}"))
        };
        match flag.as_str() {
            "--port" => {
                let port_number = value("--port")?;
                port = Some(u16::try_from(port_number).map_err(|_| "bad --port".to_string())?);
            }
            "--threads" => threads = value("--threads")?.max(1),
            "--memory-limit" => {
                let mebibytes = value("--memory-limit")?;
                config.memory_limit = mebibytes
                    .checked_mul(1024 * 1024)
                    .filter(|&bytes| bytes > 0)
                    .ok_or("bad --memory-limit")?;
            }
            "--max-item-size" => {
                config.max_item_size = value("--max-item-size")?;
                // memcached's bounds for -I: 1 KiB to 1 GiB.
                if !(1024..=1 << 30).contains(&config.max_item_size) {
                    return Err("--max-item-size is 1024 to 1073741824 bytes".into());
                }
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
        eprintln!(
            "memcached: {message}\nusage: memcached [--port PORT] [--threads N] \
             [--memory-limit MiB] [--max-item-size BYTES]"
        );
        std::process::exit(2);
    });
    // One thread: tokio's current-thread scheduler. More: a pool.
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
        println!("memcached listening on {}", listener.local_addr()?);
        let server = Server::new(options.config, options.threads);
        serve_with(listener, Arc::new(server)).await
    })
}
