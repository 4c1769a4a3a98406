//! The cache of the memcached example: items in a map, a list from the most
//! to the least recently used bounding their memory, CAS unique ids,
//! expiration times and `flush_all`, with the rules of memcached's
//! `protocol.txt` and the outcomes its code gives.
//!
//! One `Mutex` guards it all. A command holds it for a lookup in the map,
//! a few links of the list, and the copy of a small value into the reply;
//! never across an `await`. The statistics live under the same lock, so
//! counting a hit costs nothing more.
//!
//! Expired items are dropped when a command comes across them, or when
//! room is needed: they are the first to go at the old end of the list.

use std::{
    collections::HashMap,
    mem::{self, size_of},
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::{Bytes, BytesMut};

use super::parse::parse_u64;

/// The longest key, in bytes (memcached's `KEY_MAX_LENGTH`).
pub const MAX_KEY_LENGTH: usize = 250;

/// The longest expiration time counted from now, 30 days in seconds; a
/// larger one is a Unix time (memcached's `REALTIME_MAXDELTA`).
pub const MAX_RELATIVE_EXPTIME: i64 = 60 * 60 * 24 * 30;

/// What an item costs beyond its key and value: its entry in the list and
/// in the map. It counts in the `bytes` statistic and against the memory
/// limit (memcached counts its 48-byte item header and the CAS the same
/// way; the allocator's and the map's spare room are not counted).
pub const ITEM_OVERHEAD: usize = size_of::<Entry>() + size_of::<(Bytes, usize)>();

/// A stored item.
#[derive(Debug, Clone)]
pub struct Item {
    pub value: Bytes,
    /// The client's flags, opaque to the server.
    pub flags: u32,
    /// The CAS unique id: a new one at every change.
    pub cas: u64,
    expires_at: Option<Instant>,
    /// When it was last stored: a delayed `flush_all` forgets the items
    /// stored before its time.
    stored_at: Instant,
}

impl Item {
    fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// When an item given `exptime` expires, as `protocol.txt` says: 0 never
/// (`None`); negative at once; up to 30 days, that many seconds from now;
/// above, at that Unix time (at once if it is past).
pub fn deadline(exptime: i64, now: Instant) -> Option<Instant> {
    let seconds = match exptime {
        0 => return None,
        ..=-1 => 0,
        1..=MAX_RELATIVE_EXPTIME => exptime as u64,
        _ => {
            let unix_now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_secs());
            (exptime as u64).saturating_sub(unix_now)
        }
    };
    // Past what an `Instant` can hold it might as well be never.
    now.checked_add(Duration::from_secs(seconds))
}

/// The storage commands, which differ in what they need to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Store, whatever is there.
    Set,
    /// Store only if the key holds nothing.
    Add,
    /// Store only if the key holds an item.
    Replace,
    /// Add the data after the item's, keeping its flags and exptime.
    Append,
    /// Add the data before the item's, keeping its flags and exptime.
    Prepend,
    /// Store only if the item's CAS unique is still this one.
    Cas(u64),
}

/// The outcome of a storage command: its reply line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    /// The condition of `add`, `replace`, `append` or `prepend` failed (or
    /// the appended item would pass the item size limit).
    NotStored,
    /// `cas`: the item changed since its CAS unique was read.
    Exists,
    /// `cas`: there is no item.
    NotFound,
    /// The item is larger than the whole memory limit.
    NoMemory,
}

/// The outcome of `incr` and `decr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delta {
    /// The new value.
    Value(u64),
    NotFound,
    /// The item's data is not a decimal number of 64 bits.
    NonNumeric,
    /// The longer number does not fit in the memory limit.
    NoMemory,
}

/// The statistics counted since the start, named as memcached's `stats`
/// names them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    /// Keys asked for by `get` and `gets`.
    pub cmd_get: u64,
    /// Data blocks received by storage commands.
    pub cmd_set: u64,
    pub cmd_flush: u64,
    /// Keys asked for by `touch`, `gat` and `gats`.
    pub cmd_touch: u64,
    pub get_hits: u64,
    pub get_misses: u64,
    /// Misses of `get` and `gets` on an item that had expired.
    pub get_expired: u64,
    pub delete_misses: u64,
    pub delete_hits: u64,
    pub incr_misses: u64,
    pub incr_hits: u64,
    pub decr_misses: u64,
    pub decr_hits: u64,
    pub cas_misses: u64,
    pub cas_hits: u64,
    pub cas_badval: u64,
    pub touch_hits: u64,
    pub touch_misses: u64,
    /// Storage commands refused for a data block over the item size limit.
    pub store_too_large: u64,
    /// Storage commands refused for an item larger than the memory limit.
    pub store_no_memory: u64,
    /// Items stored since the start.
    pub total_items: u64,
    /// Items that had not expired, dropped to make room.
    pub evictions: u64,
    /// Expired items dropped to make room.
    pub reclaimed: u64,
}

/// What `stats` shows of the cache.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub counters: Counters,
    pub curr_items: u64,
    /// The memory the items take, as counted against the limit: key, value
    /// and [`ITEM_OVERHEAD`] each.
    pub bytes: u64,
    pub limit_maxbytes: u64,
}

/// The cache, shared by every connection.
pub struct Store {
    cache: Mutex<Cache>,
    max_item_size: usize,
}

impl Store {
    /// An empty cache holding at most `memory_limit` bytes of items
    /// (counted as [`Stats::bytes`] counts them), each value at most
    /// `max_item_size` bytes.
    pub fn new(memory_limit: usize, max_item_size: usize) -> Self {
        Store {
            cache: Mutex::new(Cache {
                index: HashMap::new(),
                entries: Vec::new(),
                free: Vec::new(),
                newest: NONE,
                oldest: NONE,
                bytes: 0,
                memory_limit,
                last_cas: 0,
                flush_at: None,
                counters: Counters::default(),
            }),
            max_item_size,
        }
    }

    /// The longest value accepted, in bytes.
    pub fn max_item_size(&self) -> usize {
        self.max_item_size
    }

    /// The cache, locked, with a delayed `flush_all` done if its time came.
    fn lock(&self, now: Instant) -> MutexGuard<'_, Cache> {
        // A poisoned cache is still consistent: every change to it is made
        // of steps that cannot panic half-way.
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.flush_at.is_some_and(|at| at <= now) {
            cache.flush_stored_before();
        }
        cache
    }

    /// `get`, `gets` (`touch` is `None`) and `gat`, `gats` (`touch` is the
    /// new exptime): calls `found` with each item there, in the order of
    /// `keys`, its key as stored. A key asked for twice is found twice.
    pub fn get<'k>(
        &self,
        keys: impl Iterator<Item = &'k [u8]>,
        touch: Option<i64>,
        mut found: impl FnMut(&[u8], &Item),
    ) {
        let now = Instant::now();
        let mut guard = self.lock(now);
        let cache = &mut *guard;
        let expires_at = touch.map(|exptime| deadline(exptime, now));
        for key in keys {
            let lookup = cache.find(key, now);
            let counters = &mut cache.counters;
            match (lookup, expires_at) {
                (Lookup::Hit(at), touch) => {
                    match touch {
                        Some(expires_at) => {
                            counters.cmd_touch += 1;
                            counters.touch_hits += 1;
                            cache.entries[at].item.expires_at = expires_at;
                        }
                        None => {
                            counters.cmd_get += 1;
                            counters.get_hits += 1;
                        }
                    }
                    cache.bump(at);
                    let entry = &cache.entries[at];
                    found(&entry.key, &entry.item);
                }
                (_, Some(_)) => {
                    counters.cmd_touch += 1;
                    counters.touch_misses += 1;
                }
                (lookup, None) => {
                    counters.cmd_get += 1;
                    counters.get_misses += 1;
                    if lookup == Lookup::Expired {
                        counters.get_expired += 1;
                    }
                }
            }
        }
    }

    /// A storage command's data block, whole and checked: stores `value`
    /// under `key` as `mode` says.
    pub fn store(&self, mode: Mode, key: &[u8], flags: u32, exptime: i64, value: Bytes) -> Outcome {
        let now = Instant::now();
        let mut guard = self.lock(now);
        let cache = &mut *guard;
        cache.counters.cmd_set += 1;
        let old = match cache.find(key, now) {
            Lookup::Hit(at) => Some(at),
            Lookup::Miss | Lookup::Expired => None,
        };
        let Some(at) = old else {
            return match mode {
                Mode::Set | Mode::Add => {
                    let item = Item::new(value, flags, deadline(exptime, now), now);
                    cache.insert(Bytes::copy_from_slice(key), item, now)
                }
                Mode::Replace | Mode::Append | Mode::Prepend => Outcome::NotStored,
                Mode::Cas(_) => {
                    cache.counters.cas_misses += 1;
                    Outcome::NotFound
                }
            };
        };
        let old = &cache.entries[at].item;
        let item = match mode {
            Mode::Add => {
                // An add that finds the key still counts as a use of it.
                cache.bump(at);
                return Outcome::NotStored;
            }
            Mode::Cas(unique) if unique != old.cas => {
                cache.counters.cas_badval += 1;
                return Outcome::Exists;
            }
            Mode::Append | Mode::Prepend => {
                if old.value.len() + value.len() > self.max_item_size {
                    return Outcome::NotStored;
                }
                let mut joined = BytesMut::with_capacity(old.value.len() + value.len());
                let (first, second) = match mode {
                    Mode::Append => (&old.value, &value),
                    _ => (&value, &old.value),
                };
                joined.extend_from_slice(first);
                joined.extend_from_slice(second);
                Item::new(joined.freeze(), old.flags, old.expires_at, now)
            }
            Mode::Set | Mode::Replace | Mode::Cas(_) => {
                if let Mode::Cas(_) = mode {
                    cache.counters.cas_hits += 1;
                }
                Item::new(value, flags, deadline(exptime, now), now)
            }
        };
        let (key, _) = cache.remove(at);
        cache.insert(key, item, now)
    }

    /// A `set` refused for its size: the key's old item goes too, as in
    /// memcached, so that a reader never gets the value the writer meant
    /// to replace.
    pub fn refuse_too_large(&self, mode: Mode, key: &[u8]) {
        let now = Instant::now();
        let mut guard = self.lock(now);
        let cache = &mut *guard;
        cache.counters.store_too_large += 1;
        if mode == Mode::Set {
            if let Lookup::Hit(at) = cache.find(key, now) {
                cache.remove(at);
            }
        }
    }

    /// Counts a data block that did not end in `\r\n`.
    pub fn count_bad_block(&self) {
        let now = Instant::now();
        self.lock(now).counters.cmd_set += 1;
    }

    /// `delete`: whether there was an item.
    pub fn delete(&self, key: &[u8]) -> bool {
        let now = Instant::now();
        let mut guard = self.lock(now);
        let cache = &mut *guard;
        match cache.find(key, now) {
            Lookup::Hit(at) => {
                cache.counters.delete_hits += 1;
                cache.remove(at);
                true
            }
            Lookup::Miss | Lookup::Expired => {
                cache.counters.delete_misses += 1;
                false
            }
        }
    }

    /// `incr` (`increment`) or `decr` by `delta`: an increment wraps at
    /// 2^64, a decrement stops at 0. As in memcached, a number that gets
    /// shorter keeps the item's length, padded with spaces (`100` less 1 is
    /// stored as `"99 "`), and the reply has no padding.
    pub fn add_delta(&self, key: &[u8], increment: bool, delta: u64) -> Delta {
        let now = Instant::now();
        let mut guard = self.lock(now);
        let cache = &mut *guard;
        let at = match cache.find(key, now) {
            Lookup::Hit(at) => at,
            Lookup::Miss | Lookup::Expired => {
                match increment {
                    true => cache.counters.incr_misses += 1,
                    false => cache.counters.decr_misses += 1,
                }
                return Delta::NotFound;
            }
        };
        let old = &cache.entries[at].item;
        let Some(number) = Some(&old.value)
            .filter(|value| !value.is_empty())
            .and_then(|value| parse_u64(value))
        else {
            return Delta::NonNumeric;
        };
        let number = match increment {
            true => number.wrapping_add(delta),
            false => number.saturating_sub(delta),
        };
        match increment {
            true => cache.counters.incr_hits += 1,
            false => cache.counters.decr_hits += 1,
        }
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(number).as_bytes();
        let old_length = old.value.len();
        if digits.len() <= old_length {
            // In place, as memcached does: same length, so same memory.
            let mut value = BytesMut::with_capacity(old_length);
            value.extend_from_slice(digits);
            value.resize(old_length, b' ');
            let cas = cache.next_cas();
            let item = &mut cache.entries[at].item;
            item.value = value.freeze();
            item.cas = cas;
            cache.bump(at);
            return Delta::Value(number);
        }
        let item = Item::new(
            Bytes::copy_from_slice(digits),
            old.flags,
            old.expires_at,
            now,
        );
        let (key, _) = cache.remove(at);
        match cache.insert(key, item, now) {
            Outcome::Stored => Delta::Value(number),
            _ => Delta::NoMemory,
        }
    }

    /// `touch`: sets the exptime of the key's item; whether there was one.
    pub fn touch(&self, key: &[u8], exptime: i64) -> bool {
        let now = Instant::now();
        let mut guard = self.lock(now);
        let cache = &mut *guard;
        cache.counters.cmd_touch += 1;
        match cache.find(key, now) {
            Lookup::Hit(at) => {
                cache.counters.touch_hits += 1;
                cache.entries[at].item.expires_at = deadline(exptime, now);
                cache.bump(at);
                true
            }
            Lookup::Miss | Lookup::Expired => {
                cache.counters.touch_misses += 1;
                false
            }
        }
    }

    /// `flush_all [delay]`: every item is forgotten now (`delay` 0 or
    /// negative), or, at the time `delay` gives (read as an exptime), every
    /// item stored before that time. A later `flush_all` replaces a
    /// pending one.
    pub fn flush_all(&self, delay: i64) {
        let now = Instant::now();
        let mut guard = self.lock(now);
        let cache = &mut *guard;
        cache.counters.cmd_flush += 1;
        match (delay > 0).then(|| deadline(delay, now)).flatten() {
            Some(at) if at > now => cache.flush_at = Some(at),
            _ => {
                cache.clear();
                // memcached marks the flush with a CAS unique of its own;
                // taking one here keeps the CAS uniques of both servers
                // equal over the same commands.
                cache.next_cas();
            }
        }
    }

    /// The statistics and the state of the cache.
    pub fn stats(&self) -> Stats {
        let now = Instant::now();
        let cache = self.lock(now);
        Stats {
            counters: cache.counters,
            curr_items: cache.index.len() as u64,
            bytes: cache.bytes as u64,
            limit_maxbytes: cache.memory_limit as u64,
        }
    }
}

impl Item {
    /// An item not stored yet: its CAS unique comes when it is.
    fn new(value: Bytes, flags: u32, expires_at: Option<Instant>, now: Instant) -> Self {
        Item {
            value,
            flags,
            cas: 0,
            expires_at,
            stored_at: now,
        }
    }
}

/// No entry: the end of the list.
const NONE: usize = usize::MAX;

/// The map and the list. The list is doubly linked through indexes into
/// `entries`, from `newest` (the most recently used) to `oldest` (the first
/// to go when room is needed); a removed entry's slot waits in `free` for
/// the next item.
struct Cache {
    index: HashMap<Bytes, usize>,
    entries: Vec<Entry>,
    free: Vec<usize>,
    newest: usize,
    oldest: usize,
    /// What the items take, counted as [`Stats::bytes`] counts it.
    bytes: usize,
    memory_limit: usize,
    /// The last CAS unique handed out; the first is 1.
    last_cas: u64,
    /// The time of a delayed `flush_all`.
    flush_at: Option<Instant>,
    counters: Counters,
}

/// An item in the list. A free slot keeps an empty key and value.
struct Entry {
    key: Bytes,
    item: Item,
    newer: usize,
    older: usize,
}

/// What the map holds for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    /// A live item, at this index.
    Hit(usize),
    Miss,
    /// An item that had expired; it is gone now.
    Expired,
}

fn cost(key: &[u8], value: &[u8]) -> usize {
    key.len() + value.len() + ITEM_OVERHEAD
}

impl Cache {
    fn next_cas(&mut self) -> u64 {
        self.last_cas += 1;
        self.last_cas
    }

    /// The key's item, unless it expired (an expired one is removed).
    fn find(&mut self, key: &[u8], now: Instant) -> Lookup {
        let Some(&at) = self.index.get(key) else {
            return Lookup::Miss;
        };
        if self.entries[at].item.is_expired(now) {
            self.remove(at);
            return Lookup::Expired;
        }
        Lookup::Hit(at)
    }

    /// Makes the entry at `at` the most recently used.
    fn bump(&mut self, at: usize) {
        if self.newest != at {
            self.unlink(at);
            self.link_newest(at);
        }
    }

    fn unlink(&mut self, at: usize) {
        let Entry { newer, older, .. } = self.entries[at];
        match newer {
            NONE => self.newest = older,
            newer => self.entries[newer].older = older,
        }
        match older {
            NONE => self.oldest = newer,
            older => self.entries[older].newer = newer,
        }
    }

    fn link_newest(&mut self, at: usize) {
        let entry = &mut self.entries[at];
        entry.newer = NONE;
        entry.older = self.newest;
        match self.newest {
            NONE => self.oldest = at,
            newest => self.entries[newest].newer = at,
        }
        self.newest = at;
    }

    /// Removes the entry at `at`: its key and item.
    fn remove(&mut self, at: usize) -> (Bytes, Item) {
        self.unlink(at);
        let entry = &mut self.entries[at];
        let key = mem::take(&mut entry.key);
        let item = Item {
            value: mem::take(&mut entry.item.value),
            ..entry.item
        };
        self.index.remove(&key);
        self.bytes -= cost(&key, &item.value);
        self.free.push(at);
        (key, item)
    }

    /// Stores `item` (with a new CAS unique) under `key`, which holds
    /// nothing, after making room: the least recently used items go until
    /// it fits. `NoMemory` if it is larger than the whole limit.
    fn insert(&mut self, key: Bytes, mut item: Item, now: Instant) -> Outcome {
        let needed = cost(&key, &item.value);
        if needed > self.memory_limit {
            self.counters.store_no_memory += 1;
            return Outcome::NoMemory;
        }
        while self.bytes + needed > self.memory_limit {
            let oldest = self.oldest;
            let (_, evicted) = self.remove(oldest);
            match evicted.is_expired(now) {
                true => self.counters.reclaimed += 1,
                false => self.counters.evictions += 1,
            }
        }
        item.cas = self.next_cas();
        self.bytes += needed;
        self.counters.total_items += 1;
        let entry = Entry {
            key: key.clone(),
            item,
            newer: NONE,
            older: NONE,
        };
        let at = match self.free.pop() {
            Some(at) => {
                self.entries[at] = entry;
                at
            }
            None => {
                self.entries.push(entry);
                self.entries.len() - 1
            }
        };
        self.index.insert(key, at);
        self.link_newest(at);
        Outcome::Stored
    }

    fn clear(&mut self) {
        self.index.clear();
        self.entries.clear();
        self.free.clear();
        self.newest = NONE;
        self.oldest = NONE;
        self.bytes = 0;
        self.flush_at = None;
    }

    /// A delayed `flush_all` whose time came: the items stored before it
    /// go, those stored since stay.
    fn flush_stored_before(&mut self) {
        let Some(at) = self.flush_at.take() else {
            return;
        };
        let mut next = self.oldest;
        while next != NONE {
            let entry = next;
            next = self.entries[entry].newer;
            if self.entries[entry].item.stored_at <= at {
                self.remove(entry);
            }
        }
    }
}
