//! The fuzz harness of `Chat`: a `Chat` over an in-memory IO, driven by two
//! tasks and by operations the fuzzer chooses, checked against a model.
//!
//! # The IO
//!
//! [`MemoryIo`] plays the peer and the network. Its reads and writes are cut
//! to sizes the fuzzer chose (cycled); at the fuzzer's steps it returns
//! `Pending` and keeps the waker, as a socket does, until an operation
//! makes it ready again (`ReadReady`, `WriteReady`, more bytes sent, a
//! reset). The peer's bytes arrive when the fuzzer says (`PeerSends`), and
//! its end of input once all are sent (`PeerFinishes`). It fails with a
//! reset (`ResetRead`, `WriteFault`) or with writes of zero bytes where the
//! fuzzer says. An upgrade replaces it with a second one, with input of its
//! own.
//!
//! # The tasks
//!
//! A reading task polls the `Chat`'s `Stream`; a writing task its `Sink`
//! (`poll_ready` and `start_send`, `poll_flush`, `poll_close`). Each has a
//! waker of its own that records that it was woken. Between polls the
//! fuzzer's operations run on the `Chat`: pushes of every kind of producer
//! (bytes, `with_buffer_size`, `from_iter`, `from_stream` and `from_reader`
//! that go `Pending` and fail where told), `set_terminator`,
//! `set_terminator_after`, `Terminator::any_of`, `set_streaming`,
//! `discard_buffers`, `close_when_done`, `upgrade`, `into_parts` and
//! `from_parts`, `into_framed` and `From<Framed>`, buffer sizes.
//!
//! At the end the peer sends everything and closes, the network stops
//! pausing and the producers run freely; then, as an executor would, only
//! woken tasks are polled. A task left waiting that nobody woke is a lost
//! wake-up; polls that go on without progress are a loop.
//!
//! # The model
//!
//! * Input: every frame is the model's next piece of the peer's bytes: the
//!   message ends where the terminator as last set (searched as preceded by
//!   the `set_terminator_after` bytes) first matches, the earliest start and
//!   the longest at a tie, or after its `Length`; a `Partial` never reaches
//!   past that end, and comes in whole-frame mode only for bytes no
//!   terminator followed at the end of input. After every poll the `Chat`'s
//!   unread bytes are exactly the peer's bytes read and not yet handed out,
//!   its terminator and matched delimiter those of the model.
//! * Output: the bytes written are the pushed output in order, never more:
//!   after every poll a prefix of it; all of it when a flush, a close or an
//!   upgrade completes or the stream ends; up to the failing producer,
//!   included, when a producer fails; nothing after a shutdown.
//! * The end: the stream ends when the close marker was reached (the IO was
//!   shut down), after an error, or when the peer's input ended, every byte
//!   was handed out and all output was written; never before, and never
//!   later than the end of the run.

use std::{
    collections::VecDeque,
    fmt,
    future::Future,
    io::{self, IoSlice},
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
    task::{Context, Poll, Wake, Waker},
};

use asynchat::{Chat, Error, Frame, Producer, Terminator, TerminatorCodec};
use bytes::{Buf, Bytes};
use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::ALPHABET;

/// Delimiters real protocols use, picked by one byte.
const COMMON_DELIMITERS: [&[u8]; 4] = [b"\r\n", b"\n", b"\r\n.\r\n", b"\r\n\r\n"];

/// The most operations a case runs: a bound on the work of one input.
const MAX_OPERATIONS: usize = 2_000;

/// The most input bytes a peer sends: enough for many messages, small
/// enough that the model's plain search stays cheap.
const MAX_INPUT: usize = 2_048;

/// The most IO calls within one poll that move no byte: past it the `Chat`
/// is looping.
const MAX_IDLE_CALLS_IN_A_POLL: usize = 1_000;

/// The most polls in a row without progress at the end of a run: past it a
/// task is woken again and again for nothing.
const MAX_POLLS_WITHOUT_PROGRESS: usize = 64;

// ---------------------------------------------------------------------------
// The case: what the fuzzer's bytes say.
// ---------------------------------------------------------------------------

/// One step of the network's script for reads or writes, cycled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The call moves at most this many bytes (at least 1).
    Size(usize),
    /// The call returns `Pending` and the direction stays blocked until an
    /// operation makes it ready.
    Pending,
}

/// How writes fail once the fuzzer says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFault {
    /// `ConnectionReset` from every write-side call.
    Reset,
    /// Writes accept zero bytes: the `Chat` must fail with `WriteZero`.
    Zero,
}

/// One step of a lazy producer's script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerStep {
    /// A piece of this many bytes (0: an empty piece, which is skipped).
    Piece(usize),
    /// `Pending` until the producers are released.
    Pending,
    /// An error: the `Chat` ends with `Error::Producer`.
    Fail,
}

/// A producer to build when its operation runs; its bytes are made then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProducerSpec {
    /// `push` of bytes, through one of the conversions (by `conversion`
    /// mod 5: `Bytes`, `Vec<u8>`, `&[u8]`, `String`, `&str`).
    Bytes { length: usize, conversion: u8 },
    /// `Producer::with_buffer_size`.
    WithBufferSize { length: usize, piece_size: usize },
    /// `Producer::from_iter` of pieces of these lengths.
    Iter { pieces: Vec<usize> },
    /// `Producer::from_stream`.
    Stream { steps: Vec<ProducerStep> },
    /// `Producer::from_reader`.
    Reader { steps: Vec<ProducerStep> },
    /// `Producer::close()`.
    Close,
}

/// What the fuzzer does between polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// The peer sends this many more bytes of its input.
    PeerSends(usize),
    /// The peer sends the rest of its input and shuts its write side.
    PeerFinishes,
    /// Reads are ready again after a `Pending` step.
    ReadReady,
    /// Writes are ready again after a `Pending` step.
    WriteReady,
    /// Pending producers may go on.
    ReleaseProducers,
    /// The connection is reset: reads fail.
    ResetRead,
    /// Writes fail from now on.
    WriteFault(WriteFault),
    /// The reading task awaits the next frame (or, waiting already, is
    /// polled without having been woken).
    ReaderNext,
    /// The writing task flushes.
    WriterFlush,
    /// The writing task closes (`Sink::poll_close`).
    WriterClose,
    /// The writing task sends a producer (`poll_ready`, `start_send`,
    /// `poll_flush`).
    WriterSend(ProducerSpec),
    /// `push` or `push_with_producer`.
    Push(ProducerSpec),
    /// `set_terminator`.
    SetTerminator(Terminator),
    /// `set_terminator_after`.
    SetTerminatorAfter(Terminator, Vec<u8>),
    /// `set_streaming`.
    SetStreaming(bool),
    /// `discard_buffers`.
    DiscardBuffers,
    /// `close_when_done`.
    CloseWhenDone,
    /// `upgrade` to a second IO whose peer sends `input`; the handshake
    /// fails when `fails`.
    Upgrade { fails: bool, input: Vec<u8> },
    /// `into_parts` and `from_parts` (with these buffer sizes when not 0),
    /// or `into_framed` and `Chat::from`.
    Parts {
        through_framed: bool,
        in_buffer_size: usize,
        out_buffer_size: usize,
    },
    /// Polls the woken tasks once, as an executor would.
    RunWoken { writer_first: bool },
    /// `set_in_buffer_size`, `set_out_buffer_size` (0: unchanged).
    BufferSizes {
        in_buffer_size: usize,
        out_buffer_size: usize,
    },
}

/// One fuzz case of the `chat` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatCase {
    /// Whether the IO supports vectored writes.
    pub vectored: bool,
    /// Whether the codec starts in streaming mode.
    pub streaming: bool,
    /// The script of reads, cycled (empty: reads of any size).
    pub read_steps: Vec<Step>,
    /// The script of writes, flushes and shutdowns, cycled.
    pub write_steps: Vec<Step>,
    /// The bytes the peer sends.
    pub input: Vec<u8>,
    /// The terminator the `Chat` starts with.
    pub terminator: Terminator,
    /// What happens, in order.
    pub ops: Vec<Op>,
}

/// Takes bytes off the front of the fuzzer's data; 0 once it runs out.
struct Data<'a> {
    bytes: &'a [u8],
    /// Map input and delimiters onto [`ALPHABET`], so that they match often.
    alphabet: bool,
}

impl Data<'_> {
    fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&first, rest)) => {
                self.bytes = rest;
                first
            }
            None => 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// `length` bytes of protocol text: mapped onto the alphabet unless the
    /// case says raw.
    fn text(&mut self, length: usize) -> Vec<u8> {
        (0..length)
            .map(|_| {
                let byte = self.byte();
                if self.alphabet {
                    ALPHABET[usize::from(byte % 4)]
                } else {
                    byte
                }
            })
            .collect()
    }

    /// A script of steps; one of only `Pending` steps, which would never
    /// move a byte, is taken as none (any size, no pause).
    fn steps(&mut self) -> Vec<Step> {
        let count = usize::from(self.byte() % 8);
        let mut steps: Vec<Step> = (0..count)
            .map(|_| match self.byte() {
                0 => Step::Pending,
                size => Step::Size(usize::from(size)),
            })
            .collect();
        if steps.iter().all(|step| *step == Step::Pending) {
            steps.clear();
        }
        steps
    }

    /// A terminator, by a tag byte (mod 8): 0 `None`; 1 to 3 a delimiter of
    /// that many bytes; 4 `Length` of the next byte; 5 `Length(0)`; 6 a set
    /// of 2 to 4 delimiters of 1 to 3 bytes, through `any_of` or built
    /// directly (empty ones and repeats included) by the next byte's low
    /// bit; 7 a common delimiter.
    fn terminator(&mut self) -> Terminator {
        match self.byte() % 8 {
            0 => Terminator::None,
            tag @ 1..=3 => Terminator::from(self.text(usize::from(tag))),
            4 => Terminator::Length(u64::from(self.byte())),
            5 => Terminator::Length(0),
            6 => {
                let how = self.byte();
                let count = usize::from(how >> 1) % 3 + 2;
                let delimiters: Vec<Bytes> = (0..count)
                    .map(|_| {
                        let length = usize::from(self.byte() % 4);
                        Bytes::from(self.text(length))
                    })
                    .collect();
                if how & 1 == 0 {
                    Terminator::any_of(delimiters)
                } else {
                    Terminator::AnyOf(delimiters.into())
                }
            }
            _ => {
                let common = COMMON_DELIMITERS[usize::from(self.byte()) % COMMON_DELIMITERS.len()];
                Terminator::from(common)
            }
        }
    }

    fn producer_steps(&mut self) -> Vec<ProducerStep> {
        let count = usize::from(self.byte() % 8);
        (0..count)
            .map(|_| match self.byte() {
                0 => ProducerStep::Pending,
                1 => ProducerStep::Fail,
                byte => ProducerStep::Piece(usize::from(byte % 40)),
            })
            .collect()
    }

    /// A producer, by a kind byte (mod 6).
    fn producer(&mut self) -> ProducerSpec {
        match self.byte() % 6 {
            0 => ProducerSpec::Bytes {
                length: usize::from(self.byte()),
                conversion: self.byte(),
            },
            1 => ProducerSpec::WithBufferSize {
                length: usize::from(self.byte()),
                piece_size: usize::from(self.byte() % 16),
            },
            2 => {
                let count = usize::from(self.byte() % 8);
                ProducerSpec::Iter {
                    pieces: (0..count).map(|_| usize::from(self.byte() % 40)).collect(),
                }
            }
            3 => ProducerSpec::Stream {
                steps: self.producer_steps(),
            },
            4 => ProducerSpec::Reader {
                steps: self.producer_steps(),
            },
            _ => ProducerSpec::Close,
        }
    }

    /// An operation, by a tag byte (mod 21).
    fn op(&mut self) -> Op {
        match self.byte() % 21 {
            0 => Op::PeerSends(usize::from(self.byte())),
            1 => Op::PeerFinishes,
            2 => Op::ReadReady,
            3 => Op::WriteReady,
            4 => Op::ReleaseProducers,
            5 => Op::ResetRead,
            6 => Op::WriteFault(if self.byte() & 1 == 0 {
                WriteFault::Reset
            } else {
                WriteFault::Zero
            }),
            7 => Op::ReaderNext,
            8 => Op::WriterFlush,
            9 => Op::WriterClose,
            10 => Op::WriterSend(self.producer()),
            11 => Op::Push(self.producer()),
            12 => Op::SetTerminator(self.terminator()),
            13 => {
                let terminator = self.terminator();
                let length = usize::from(self.byte() % 5);
                Op::SetTerminatorAfter(terminator, self.text(length))
            }
            14 => Op::SetStreaming(self.byte() & 1 == 1),
            15 => Op::DiscardBuffers,
            16 => Op::CloseWhenDone,
            17 => {
                let fails = self.byte() == 0xff;
                let length = usize::from(self.byte());
                Op::Upgrade {
                    fails,
                    input: self.text(length),
                }
            }
            18 => Op::Parts {
                through_framed: self.byte() & 1 == 1,
                in_buffer_size: usize::from(self.byte()),
                out_buffer_size: usize::from(self.byte()),
            },
            19 => Op::RunWoken {
                writer_first: self.byte() & 1 == 1,
            },
            _ => Op::BufferSizes {
                in_buffer_size: usize::from(self.byte()),
                out_buffer_size: usize::from(self.byte()),
            },
        }
    }
}

impl ChatCase {
    /// The layout: `flags read_steps write_steps input_length(2, little
    /// endian) input terminator op*`.
    ///
    /// * `flags` bit 0: vectored writes; bit 1: a streaming codec; bit 2:
    ///   raw bytes (else input and delimiters are mapped onto `\r \n . a`).
    /// * steps: a count byte (mod 8), then a byte each: 0 `Pending`, else
    ///   the size.
    /// * the input length is taken mod [`MAX_INPUT`] + 1.
    /// * see `Data::terminator`, `Data::producer` and `Data::op` for the
    ///   rest.
    pub fn parse(data: &[u8]) -> ChatCase {
        let flags = data.first().copied().unwrap_or(0);
        let mut data = Data {
            bytes: data.get(1..).unwrap_or(&[]),
            alphabet: flags & 4 == 0,
        };
        let read_steps = data.steps();
        let write_steps = data.steps();
        let length = usize::from(u16::from_le_bytes([data.byte(), data.byte()])) % (MAX_INPUT + 1);
        let input = data.text(length);
        let terminator = data.terminator();
        let mut ops = Vec::new();
        while !data.is_empty() && ops.len() < MAX_OPERATIONS {
            ops.push(data.op());
        }
        ChatCase {
            vectored: flags & 1 == 1,
            streaming: flags & 2 == 2,
            read_steps,
            write_steps,
            input,
            terminator,
            ops,
        }
    }

    /// The bytes that parse into this case (for building seeds): the
    /// inverse of [`parse`](Self::parse) for cases whose text is already
    /// raw bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![u8::from(self.vectored) | u8::from(self.streaming) << 1 | 4];
        for steps in [&self.read_steps, &self.write_steps] {
            out.push(steps.len() as u8);
            for step in steps {
                out.push(match step {
                    Step::Pending => 0,
                    Step::Size(size) => *size as u8,
                });
            }
        }
        out.extend_from_slice(&(self.input.len() as u16).to_le_bytes());
        out.extend_from_slice(&self.input);
        encode_terminator(&self.terminator, &mut out);
        for op in &self.ops {
            encode_op(op, &mut out);
        }
        out
    }
}

fn encode_terminator(terminator: &Terminator, out: &mut Vec<u8>) {
    match terminator {
        Terminator::Length(0) => out.push(5),
        Terminator::Length(length) => out.extend_from_slice(&[4, *length as u8]),
        Terminator::Delimiter(delimiter) if delimiter.len() <= 3 => {
            out.push(delimiter.len() as u8);
            out.extend_from_slice(delimiter);
        }
        Terminator::Delimiter(delimiter) => {
            let index = COMMON_DELIMITERS
                .iter()
                .position(|common| common == delimiter)
                .expect("a delimiter of more than 3 bytes must be a common one");
            out.extend_from_slice(&[7, index as u8]);
        }
        terminator if !terminator.delimiters().is_empty() => {
            let delimiters = terminator.delimiters();
            out.extend_from_slice(&[6, ((delimiters.len() - 2) as u8) << 1]);
            for delimiter in delimiters {
                out.push(delimiter.len() as u8);
                out.extend_from_slice(delimiter);
            }
        }
        _ => out.push(0),
    }
}

fn encode_producer_steps(steps: &[ProducerStep], out: &mut Vec<u8>) {
    out.push(steps.len() as u8);
    for step in steps {
        out.push(match step {
            ProducerStep::Pending => 0,
            ProducerStep::Fail => 1,
            // 40 and 80 are 0 mod 40; a byte of 2..=39 is itself.
            ProducerStep::Piece(0) => 40,
            ProducerStep::Piece(length) => *length as u8,
        });
    }
}

fn encode_producer(spec: &ProducerSpec, out: &mut Vec<u8>) {
    match spec {
        ProducerSpec::Bytes { length, conversion } => {
            out.extend_from_slice(&[0, *length as u8, *conversion])
        }
        ProducerSpec::WithBufferSize { length, piece_size } => {
            out.extend_from_slice(&[1, *length as u8, *piece_size as u8])
        }
        ProducerSpec::Iter { pieces } => {
            out.extend_from_slice(&[2, pieces.len() as u8]);
            out.extend(pieces.iter().map(|&length| length as u8));
        }
        ProducerSpec::Stream { steps } => {
            out.push(3);
            encode_producer_steps(steps, out);
        }
        ProducerSpec::Reader { steps } => {
            out.push(4);
            encode_producer_steps(steps, out);
        }
        ProducerSpec::Close => out.push(5),
    }
}

fn encode_op(op: &Op, out: &mut Vec<u8>) {
    match op {
        Op::PeerSends(count) => out.extend_from_slice(&[0, *count as u8]),
        Op::PeerFinishes => out.push(1),
        Op::ReadReady => out.push(2),
        Op::WriteReady => out.push(3),
        Op::ReleaseProducers => out.push(4),
        Op::ResetRead => out.push(5),
        Op::WriteFault(fault) => out.extend_from_slice(&[6, u8::from(*fault == WriteFault::Zero)]),
        Op::ReaderNext => out.push(7),
        Op::WriterFlush => out.push(8),
        Op::WriterClose => out.push(9),
        Op::WriterSend(spec) => {
            out.push(10);
            encode_producer(spec, out);
        }
        Op::Push(spec) => {
            out.push(11);
            encode_producer(spec, out);
        }
        Op::SetTerminator(terminator) => {
            out.push(12);
            encode_terminator(terminator, out);
        }
        Op::SetTerminatorAfter(terminator, preceding) => {
            out.push(13);
            encode_terminator(terminator, out);
            out.push(preceding.len() as u8);
            out.extend_from_slice(preceding);
        }
        Op::SetStreaming(streaming) => out.extend_from_slice(&[14, u8::from(*streaming)]),
        Op::DiscardBuffers => out.push(15),
        Op::CloseWhenDone => out.push(16),
        Op::Upgrade { fails, input } => {
            out.extend_from_slice(&[17, if *fails { 0xff } else { 0 }, input.len() as u8]);
            out.extend_from_slice(input);
        }
        Op::Parts {
            through_framed,
            in_buffer_size,
            out_buffer_size,
        } => out.extend_from_slice(&[
            18,
            u8::from(*through_framed),
            *in_buffer_size as u8,
            *out_buffer_size as u8,
        ]),
        Op::RunWoken { writer_first } => out.extend_from_slice(&[19, u8::from(*writer_first)]),
        Op::BufferSizes {
            in_buffer_size,
            out_buffer_size,
        } => out.extend_from_slice(&[20, *in_buffer_size as u8, *out_buffer_size as u8]),
    }
}

// ---------------------------------------------------------------------------
// The in-memory IO.
// ---------------------------------------------------------------------------

/// The state of one [`MemoryIo`], shared with the harness, which plays the
/// peer and the network through it and reads what the `Chat` wrote.
#[derive(Debug)]
struct IoState {
    name: &'static str,
    /// Everything the peer will send.
    input: Vec<u8>,
    /// How much of it the peer has sent.
    sent: usize,
    /// How much of it the `Chat` has read.
    read: usize,
    /// The peer shut its write side: once all is sent and read, reads
    /// return 0.
    peer_closed: bool,
    /// The `Chat` read the end of input.
    end_of_input_read: bool,
    read_steps: Vec<Step>,
    next_read_step: usize,
    /// A `Pending` step blocked reads until `ReadReady`.
    read_blocked: bool,
    /// The task a read returned `Pending` to (a socket keeps the last).
    read_waker: Option<Waker>,
    read_reset: bool,
    written: Vec<u8>,
    /// `written.len()` at the last completed flush.
    flushed: usize,
    shut_down: bool,
    write_steps: Vec<Step>,
    next_write_step: usize,
    write_blocked: bool,
    write_waker: Option<Waker>,
    write_fault: Option<WriteFault>,
    vectored: bool,
    /// Whether `Pending` steps apply; off for the end of the run.
    pauses: bool,
    /// IO calls of the current poll that moved no byte.
    idle_calls: usize,
}

impl IoState {
    fn new(name: &'static str, input: Vec<u8>, case: &ChatCase) -> Self {
        IoState {
            name,
            input,
            sent: 0,
            read: 0,
            peer_closed: false,
            end_of_input_read: false,
            read_steps: case.read_steps.clone(),
            next_read_step: 0,
            read_blocked: false,
            read_waker: None,
            read_reset: false,
            written: Vec::new(),
            flushed: 0,
            shut_down: false,
            write_steps: case.write_steps.clone(),
            next_write_step: 0,
            write_blocked: false,
            write_waker: None,
            write_fault: None,
            vectored: case.vectored,
            pauses: true,
            idle_calls: 0,
        }
    }

    /// A call that moved no byte; too many in one poll is a loop.
    fn idle_call(&mut self, what: &str) {
        self.idle_calls += 1;
        assert!(
            self.idle_calls <= MAX_IDLE_CALLS_IN_A_POLL,
            "{}: {} calls in one poll without moving a byte (the last: {what}): a poll loop",
            self.name,
            self.idle_calls
        );
    }

    fn next_step(steps: &[Step], next: &mut usize, pauses: bool) -> Step {
        for _ in 0..steps.len() {
            let step = steps[*next % steps.len()];
            *next += 1;
            if pauses || step != Step::Pending {
                return step;
            }
        }
        Step::Size(usize::MAX)
    }

    fn read_step(&mut self) -> Step {
        Self::next_step(&self.read_steps, &mut self.next_read_step, self.pauses)
    }

    fn write_step(&mut self) -> Step {
        Self::next_step(&self.write_steps, &mut self.next_write_step, self.pauses)
    }

    fn wake_reader(&mut self) {
        if let Some(waker) = self.read_waker.take() {
            waker.wake();
        }
    }

    fn wake_writer(&mut self) {
        if let Some(waker) = self.write_waker.take() {
            waker.wake();
        }
    }

    fn send(&mut self, count: usize) {
        let before = self.sent;
        self.sent = self.sent.saturating_add(count).min(self.input.len());
        if self.sent > before {
            self.wake_reader();
        }
    }

    fn finish_input(&mut self) {
        self.sent = self.input.len();
        self.peer_closed = true;
        self.wake_reader();
    }

    /// The start of a write-side call: the faults, the blocked state and the
    /// script. `Ok(size)`: the call may move this many bytes.
    fn write_side(&mut self, cx: &mut Context<'_>, what: &str) -> Poll<io::Result<usize>> {
        assert!(
            !self.shut_down,
            "{}: {what} after the write side was shut down",
            self.name
        );
        match self.write_fault {
            Some(WriteFault::Reset) => {
                self.idle_call(what);
                return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
            }
            Some(WriteFault::Zero) => {
                self.idle_call(what);
                return Poll::Ready(Ok(0));
            }
            None => {}
        }
        if !self.write_blocked {
            match self.write_step() {
                Step::Size(size) => return Poll::Ready(Ok(size)),
                Step::Pending => self.write_blocked = true,
            }
        }
        self.idle_call(what);
        self.write_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn write(&mut self, cx: &mut Context<'_>, slices: &[&[u8]]) -> Poll<io::Result<usize>> {
        let total: usize = slices.iter().map(|slice| slice.len()).sum();
        assert!(total > 0, "{}: a write of no bytes", self.name);
        let size = match self.write_side(cx, "a write") {
            Poll::Ready(Ok(size)) => size,
            other => return other,
        };
        let mut left = size;
        for slice in slices {
            let taken = left.min(slice.len());
            self.written.extend_from_slice(&slice[..taken]);
            left -= taken;
            if left == 0 {
                break;
            }
        }
        self.idle_calls = 0;
        Poll::Ready(Ok(size - left))
    }
}

/// The `Chat`'s IO: see [`IoState`].
#[derive(Debug)]
struct MemoryIo {
    state: Arc<Mutex<IoState>>,
}

impl MemoryIo {
    fn state(&self) -> MutexGuard<'_, IoState> {
        self.state.lock().expect("a panic poisoned the IO")
    }
}

impl AsyncRead for MemoryIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut state = self.state();
        let state = &mut *state;
        assert!(
            buf.remaining() > 0,
            "{}: a read into a full buffer, which reads as the end of input",
            state.name
        );
        if state.read_reset {
            state.idle_call("a read after a reset");
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        let available = state.sent - state.read;
        if available == 0 && state.peer_closed {
            state.idle_call("a read at the end of input");
            state.end_of_input_read = true;
            return Poll::Ready(Ok(()));
        }
        if available > 0 && !state.read_blocked {
            match state.read_step() {
                Step::Size(size) => {
                    let count = size.min(available).min(buf.remaining());
                    buf.put_slice(&state.input[state.read..state.read + count]);
                    state.read += count;
                    state.idle_calls = 0;
                    return Poll::Ready(Ok(()));
                }
                Step::Pending => state.read_blocked = true,
            }
        }
        state.idle_call("a pending read");
        state.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for MemoryIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.state().write(cx, &[buf])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut state = self.state();
        if !state.vectored {
            // As tokio's default: the first non-empty slice.
            let first = bufs
                .iter()
                .find(|buf| !buf.is_empty())
                .map_or(&[][..], |buf| &buf[..]);
            return state.write(cx, &[first]);
        }
        let slices: Vec<&[u8]> = bufs.iter().map(|buf| &buf[..]).collect();
        state.write(cx, &slices)
    }

    fn is_write_vectored(&self) -> bool {
        self.state().vectored
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.state();
        match state.write_side(cx, "a flush") {
            Poll::Ready(Ok(_)) => {
                state.flushed = state.written.len();
                state.idle_call("a flush");
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.state();
        match state.write_side(cx, "a shutdown") {
            Poll::Ready(Ok(_)) => {
                state.flushed = state.written.len();
                state.shut_down = true;
                state.idle_calls = 0;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    }
}

// ---------------------------------------------------------------------------
// Producers that go Pending and fail on the fuzzer's word.
// ---------------------------------------------------------------------------

/// Holds a lazy producer at its `Pending` steps until the harness releases
/// the producers, and keeps the waker to wake then.
#[derive(Debug, Default)]
struct Gate {
    /// One `Pending` step may pass.
    open: bool,
    /// Every `Pending` step passes: the end of the run.
    always_open: bool,
    waker: Option<Waker>,
}

type SharedGate = Arc<Mutex<Gate>>;

/// Whether a `Pending` step passes now; if not, the waker is kept.
fn pass(gate: &SharedGate, cx: &mut Context<'_>) -> bool {
    let mut gate = gate.lock().expect("a panic poisoned a gate");
    if gate.always_open || gate.open {
        gate.open = false;
        true
    } else {
        gate.waker = Some(cx.waker().clone());
        false
    }
}

/// A scripted step with its bytes.
#[derive(Debug)]
enum Scripted {
    Piece(Bytes),
    Pending,
    Fail,
}

fn producer_failure() -> io::Error {
    io::Error::other("the producer's source failed")
}

/// `Producer::from_stream`'s stream.
struct ScriptedStream {
    steps: VecDeque<Scripted>,
    gate: SharedGate,
}

impl Stream for ScriptedStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match self.steps.pop_front() {
                None => return Poll::Ready(None),
                Some(Scripted::Piece(piece)) => return Poll::Ready(Some(Ok(piece))),
                Some(Scripted::Fail) => return Poll::Ready(Some(Err(producer_failure()))),
                Some(Scripted::Pending) => {
                    if !pass(&self.gate, cx) {
                        self.steps.push_front(Scripted::Pending);
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

/// `Producer::from_reader`'s reader: a piece may be read in several reads.
struct ScriptedReader {
    steps: VecDeque<Scripted>,
    gate: SharedGate,
}

impl AsyncRead for ScriptedReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            match self.steps.front_mut() {
                None => return Poll::Ready(Ok(())),
                Some(Scripted::Piece(piece)) if piece.is_empty() => {
                    self.steps.pop_front();
                }
                Some(Scripted::Piece(piece)) => {
                    let count = piece.len().min(buf.remaining());
                    assert!(count > 0, "a producer's reader read into a full buffer");
                    buf.put_slice(&piece[..count]);
                    piece.advance(count);
                    if piece.is_empty() {
                        self.steps.pop_front();
                    }
                    return Poll::Ready(Ok(()));
                }
                Some(Scripted::Fail) => {
                    self.steps.pop_front();
                    return Poll::Ready(Err(producer_failure()));
                }
                Some(Scripted::Pending) => {
                    if !pass(&self.gate, cx) {
                        return Poll::Pending;
                    }
                    self.steps.pop_front();
                }
            }
        }
    }
}

/// A producer and what it will write.
struct Planned {
    producer: Producer,
    pushed: Pushed,
}

/// What a producer will write, for the model.
#[derive(Debug)]
struct Pushed {
    /// Its bytes, up to its failure.
    bytes: Vec<u8>,
    fails: bool,
    is_close: bool,
}

// ---------------------------------------------------------------------------
// The model.
// ---------------------------------------------------------------------------

/// Where the current message ends in the peer's whole input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MessageEnd {
    /// A delimiter: the message is `input[..start]` from where it began,
    /// the delimiter's bytes in the input run to `end`.
    Delimited {
        start: usize,
        end: usize,
        index: usize,
    },
    /// A count: the message ends at this offset (perhaps past the input).
    Counted(u64),
    /// No terminator ends it within the input.
    Never,
}

/// The framing rules, on the whole input of the current IO.
#[derive(Debug)]
struct InputModel {
    /// The terminator as last set (`None` once a `Length` completed).
    terminator: Terminator,
    /// Its delimiters, cleaned as `any_of` cleans them.
    delimiters: Vec<Vec<u8>>,
    /// The `set_terminator_after` bytes the current message is searched as
    /// preceded by.
    preceding: Vec<u8>,
    /// Where the search of the current message starts: where the message
    /// began or, after a terminator set mid-message, where it was set.
    search_from: usize,
    /// Bytes handed out (and delimiters consumed) so far.
    position: usize,
    /// What ended the last `Complete`.
    matched: Option<Vec<u8>>,
    /// The end of the current message, once computed.
    end: Option<MessageEnd>,
}

/// The delimiters of a terminator, cleaned: empty ones and repeats dropped.
fn clean_delimiters(terminator: &Terminator) -> Vec<Vec<u8>> {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    for delimiter in terminator.delimiters() {
        if !delimiter.is_empty() && !kept.iter().any(|k| k[..] == delimiter[..]) {
            kept.push(delimiter.to_vec());
        }
    }
    kept
}

/// The terminator as the codec reports it once set.
fn normalized(terminator: &Terminator) -> Terminator {
    match terminator {
        Terminator::Length(length) => Terminator::Length(*length),
        _ => Terminator::any_of(clean_delimiters(terminator)),
    }
}

/// The earliest delimiter (the longest at a tie) in `preceding + rest` that
/// ends within `rest`: the message's length in `rest`, the end of the
/// delimiter in `rest`, and the delimiter's index. A plain search, the
/// model of the codec's searchers.
fn find_delimiter(
    delimiters: &[Vec<u8>],
    preceding: &[u8],
    rest: &[u8],
) -> Option<(usize, usize, usize)> {
    let whole: Vec<u8> = preceding.iter().chain(rest).copied().collect();
    for start in 0..whole.len() {
        let best = delimiters
            .iter()
            .enumerate()
            .filter(|(_, delimiter)| {
                whole[start..].starts_with(delimiter) && start + delimiter.len() > preceding.len()
            })
            .max_by_key(|(_, delimiter)| delimiter.len());
        if let Some((index, delimiter)) = best {
            let message = start.saturating_sub(preceding.len());
            let end = start + delimiter.len() - preceding.len();
            return Some((message, end, index));
        }
    }
    None
}

impl InputModel {
    fn new(terminator: &Terminator) -> Self {
        let mut model = InputModel {
            terminator: Terminator::None,
            delimiters: Vec::new(),
            preceding: Vec::new(),
            search_from: 0,
            position: 0,
            matched: None,
            end: None,
        };
        model.set(terminator, &[]);
        model
    }

    fn set(&mut self, terminator: &Terminator, preceding: &[u8]) {
        self.terminator = normalized(terminator);
        self.delimiters = clean_delimiters(&self.terminator);
        self.preceding = preceding.to_vec();
        self.search_from = self.position;
        self.end = None;
    }

    /// The message under way starts afresh at `position`: after a discard,
    /// or on a new IO.
    fn restart(&mut self, position: usize) {
        let terminator = self.terminator.clone();
        self.position = position;
        self.set(&terminator, &[]);
    }

    fn end(&mut self, input: &[u8]) -> MessageEnd {
        if let Some(end) = self.end {
            return end;
        }
        let end = match self.terminator {
            Terminator::Length(length) => MessageEnd::Counted(self.search_from as u64 + length),
            _ if self.delimiters.is_empty() => MessageEnd::Never,
            _ => match find_delimiter(
                &self.delimiters,
                &self.preceding,
                &input[self.search_from..],
            ) {
                Some((message, end, index)) => MessageEnd::Delimited {
                    start: self.search_from + message,
                    end: self.search_from + end,
                    index,
                },
                None => MessageEnd::Never,
            },
        };
        self.end = Some(end);
        end
    }

    /// Whether at the end of input nothing is left to hand out: no byte,
    /// and no `Length` that completes on none.
    fn nothing_left(&mut self, input: &[u8]) -> bool {
        if self.position < input.len() {
            return false;
        }
        !matches!(self.end(input), MessageEnd::Counted(end) if end <= input.len() as u64)
    }
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The peer's input ended and everything was handed out and written.
    EndOfInput,
    /// Close-when-done shut the write side down.
    Closed,
    /// An IO or producer error ended the channel.
    Failed,
    /// An upgrade failed: the `Chat` is gone.
    Gone,
}

/// What the pushed output must come to on the current IO.
#[derive(Debug, Default)]
struct OutputModel {
    /// Everything that must be written, in order: what was written before
    /// the queue was last dropped, then every accepted push.
    expected: Vec<u8>,
    /// `expected.len()` when close-when-done was asked for.
    close_at: Option<usize>,
    /// `expected.len()` after the first failing producer: nothing after it
    /// is written.
    failure_at: Option<usize>,
    /// A push was refused after close-when-done: the next poll says so.
    refused: bool,
    /// `written.len()` when the `Chat` was taken apart with bytes written
    /// and not flushed: the rebuilt `Chat` does not know of them, and
    /// flushes only once it writes more.
    unflushed_at_parts: Option<usize>,
}

impl OutputModel {
    fn push(&mut self, planned: &Pushed) {
        if self.close_at.is_some() {
            self.refused = true;
            return;
        }
        if planned.is_close {
            self.close_at = Some(self.expected.len());
            return;
        }
        if self.failure_at.is_some() {
            return;
        }
        self.expected.extend_from_slice(&planned.bytes);
        if planned.fails {
            self.failure_at = Some(self.expected.len());
        }
    }

    fn close(&mut self) {
        if self.close_at.is_none() {
            self.close_at = Some(self.expected.len());
        }
    }

    /// The queue was dropped: what was written stays written.
    fn drop_queue(&mut self, written: &[u8]) {
        self.expected = written.to_vec();
        self.close_at = None;
        self.failure_at = None;
    }
}

// ---------------------------------------------------------------------------
// The tasks and the harness.
// ---------------------------------------------------------------------------

/// A task's waker: it records that it was woken.
#[derive(Debug, Default)]
struct WokenFlag(AtomicBool);

impl Wake for WokenFlag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

struct TaskWaker {
    flag: Arc<WokenFlag>,
    waker: Waker,
}

impl TaskWaker {
    fn new() -> Self {
        let flag = Arc::new(WokenFlag::default());
        TaskWaker {
            waker: Waker::from(Arc::clone(&flag)),
            flag,
        }
    }

    fn is_woken(&self) -> bool {
        self.flag.0.load(Ordering::SeqCst)
    }

    fn take_woken(&self) -> bool {
        self.flag.0.swap(false, Ordering::SeqCst)
    }

    fn wake(&self) {
        self.flag.0.store(true, Ordering::SeqCst);
    }
}

/// What the writing task is doing.
enum WriterOp {
    Flush,
    Close,
    /// Sending: the producer until `start_send` took it, then the flush.
    Send(Option<Planned>),
}

impl fmt::Debug for WriterOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriterOp::Flush => f.write_str("a flush"),
            WriterOp::Close => f.write_str("a close"),
            WriterOp::Send(Some(_)) => f.write_str("a send, waiting for poll_ready"),
            WriterOp::Send(None) => f.write_str("a send, flushing"),
        }
    }
}

/// Which task met a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Half {
    Reader,
    Writer,
    Upgrade,
}

struct Harness<'a> {
    case: &'a ChatCase,
    chat: Option<Chat<MemoryIo>>,
    io: Arc<Mutex<IoState>>,
    input: InputModel,
    output: OutputModel,
    /// The codec's mode as last set.
    streaming: bool,
    reader: TaskWaker,
    reader_waiting: bool,
    writer: TaskWaker,
    writer_op: Option<WriterOp>,
    gates: Vec<SharedGate>,
    /// The next output byte's value: output bytes count up, so that a byte
    /// lost, repeated or reordered shows.
    output_counter: u8,
    ending: Option<Ending>,
    /// The stream returned `None`.
    stream_ended: bool,
    /// The operations run so far, for the failure message.
    done: usize,
    /// Read, written, frames: what progress is measured by.
    frames: usize,
}

impl<'a> Harness<'a> {
    fn new(case: &'a ChatCase) -> Self {
        let io = Arc::new(Mutex::new(IoState::new(
            "first IO",
            case.input.clone(),
            case,
        )));
        let codec = if case.streaming {
            TerminatorCodec::streaming(case.terminator.clone())
        } else {
            TerminatorCodec::new(case.terminator.clone())
        };
        let chat = Chat::with_codec(
            MemoryIo {
                state: Arc::clone(&io),
            },
            codec,
        );
        Harness {
            case,
            chat: Some(chat),
            io,
            input: InputModel::new(&case.terminator),
            output: OutputModel::default(),
            streaming: case.streaming,
            reader: TaskWaker::new(),
            reader_waiting: false,
            writer: TaskWaker::new(),
            writer_op: None,
            gates: Vec::new(),
            output_counter: 0,
            ending: None,
            stream_ended: false,
            done: 0,
            frames: 0,
        }
    }

    fn io(&self) -> MutexGuard<'_, IoState> {
        self.io.lock().expect("a panic poisoned the IO")
    }

    /// Fails the run, saying where.
    #[track_caller]
    fn fail(&self, message: impl fmt::Display) -> ! {
        let start = self.done.saturating_sub(30);
        let recent: Vec<String> = self.case.ops[start..self.done.min(self.case.ops.len())]
            .iter()
            .enumerate()
            .map(|(offset, op)| format!("  {}: {op:?}", start + offset))
            .collect();
        panic!(
            "{message}\nafter operation {} of {}; the last ones:\n{}\nio: {:?}\nmodel: {:?}\noutput: {:?}\ncase: terminator {:?}, streaming {}, reads {:?}, writes {:?}, vectored {}",
            self.done,
            self.case.ops.len(),
            recent.join("\n"),
            self.io(),
            self.input,
            self.output,
            self.case.terminator,
            self.case.streaming,
            self.case.read_steps,
            self.case.write_steps,
            self.case.vectored,
        )
    }

    fn next_output(&mut self, length: usize) -> Vec<u8> {
        (0..length)
            .map(|_| {
                // Printable ASCII, so that the `String` conversions hold it.
                let byte = b' ' + self.output_counter % 95;
                self.output_counter = self.output_counter.wrapping_add(1);
                byte
            })
            .collect()
    }

    fn scripted(&mut self, steps: &[ProducerStep]) -> (VecDeque<Scripted>, Vec<u8>, bool) {
        let mut scripted = VecDeque::new();
        let mut bytes = Vec::new();
        for step in steps {
            match *step {
                ProducerStep::Piece(length) => {
                    let piece = self.next_output(length);
                    bytes.extend_from_slice(&piece);
                    scripted.push_back(Scripted::Piece(Bytes::from(piece)));
                }
                ProducerStep::Pending => scripted.push_back(Scripted::Pending),
                ProducerStep::Fail => {
                    scripted.push_back(Scripted::Fail);
                    return (scripted, bytes, true);
                }
            }
        }
        (scripted, bytes, false)
    }

    fn new_gate(&mut self) -> SharedGate {
        let gate = SharedGate::default();
        self.gates.push(Arc::clone(&gate));
        gate
    }

    fn plan(&mut self, spec: &ProducerSpec) -> Planned {
        let (producer, bytes, fails) = match spec {
            ProducerSpec::Bytes { length, conversion } => {
                let bytes = self.next_output(*length);
                let producer = match conversion % 5 {
                    0 => Producer::from(Bytes::from(bytes.clone())),
                    1 => Producer::from(bytes.clone()),
                    2 => Producer::from(&bytes[..]),
                    3 => Producer::from(String::from_utf8(bytes.clone()).expect("ASCII")),
                    _ => Producer::from(std::str::from_utf8(&bytes).expect("ASCII")),
                };
                (producer, bytes, false)
            }
            ProducerSpec::WithBufferSize { length, piece_size } => {
                let bytes = self.next_output(*length);
                (
                    Producer::with_buffer_size(bytes.clone(), *piece_size),
                    bytes,
                    false,
                )
            }
            ProducerSpec::Iter { pieces } => {
                let pieces: Vec<Vec<u8>> = pieces.iter().map(|&l| self.next_output(l)).collect();
                let bytes = pieces.concat();
                (Producer::from_iter(pieces), bytes, false)
            }
            ProducerSpec::Stream { steps } => {
                let (steps, bytes, fails) = self.scripted(steps);
                let gate = self.new_gate();
                (
                    Producer::from_stream(ScriptedStream { steps, gate }),
                    bytes,
                    fails,
                )
            }
            ProducerSpec::Reader { steps } => {
                let (steps, bytes, fails) = self.scripted(steps);
                let gate = self.new_gate();
                (
                    Producer::from_reader(ScriptedReader { steps, gate }),
                    bytes,
                    fails,
                )
            }
            ProducerSpec::Close => (Producer::close(), Vec::new(), false),
        };
        Planned {
            pushed: Pushed {
                is_close: producer.is_close(),
                bytes,
                fails,
            },
            producer,
        }
    }

    fn chat(&mut self) -> &mut Chat<MemoryIo> {
        self.chat.as_mut().expect("the Chat is here")
    }

    /// The peer's bytes, the bytes read and written, and frames: what a poll
    /// that made progress changed.
    fn progress(&self) -> (usize, usize, usize, bool) {
        let io = self.io();
        (io.read, io.written.len(), self.frames, io.shut_down)
    }

    // -- Checks after every poll and operation -----------------------------

    fn check_state(&mut self) {
        let io = self.io();
        let written = &io.written;
        if written.len() > self.output.expected.len()
            || written[..] != self.output.expected[..written.len()]
        {
            let at = written
                .iter()
                .zip(&self.output.expected)
                .position(|(a, b)| a != b)
                .unwrap_or(written.len().min(self.output.expected.len()));
            drop(io);
            self.fail(format!(
                "the bytes written are not the pushed output: they differ at byte {at}"
            ));
        }
        let unread = io.input[self.input.position.min(io.read)..io.read].to_vec();
        let position_ok = self.input.position <= io.read;
        drop(io);
        let Some(chat) = &self.chat else { return };
        if !position_ok {
            self.fail("frames handed out bytes the Chat had not read");
        }
        if chat.buffered_input() != &unread[..] {
            self.fail(format!(
                "buffered_input() is {:?}, the bytes read and not handed out are {:?}",
                Bytes::copy_from_slice(chat.buffered_input()),
                Bytes::from(unread)
            ));
        }
        if chat.terminator() != &self.input.terminator {
            self.fail(format!(
                "the terminator is {:?}, the model's {:?}",
                chat.terminator(),
                self.input.terminator
            ));
        }
        if chat.matched_delimiter() != self.input.matched.as_deref() {
            self.fail(format!(
                "matched_delimiter() is {:?}, the model's {:?}",
                chat.matched_delimiter().map(Bytes::copy_from_slice),
                self.input.matched.clone().map(Bytes::from)
            ));
        }
    }

    /// All of the output must be written and flushed, up to the close
    /// marker (then shut down) or, with none, all of it.
    fn check_all_written(&self, when: &str) {
        let io = self.io();
        let expected = match self.output.close_at {
            Some(close_at) => &self.output.expected[..close_at],
            None => &self.output.expected[..],
        };
        let flushed = io.flushed == io.written.len()
            || self.output.unflushed_at_parts == Some(io.written.len());
        let complete = io.written == expected && flushed;
        let shut = io.shut_down == self.output.close_at.is_some();
        let (written, flushed, shut_down) = (io.written.len(), io.flushed, io.shut_down);
        drop(io);
        if !complete || !shut {
            self.fail(format!(
                "{when}: {written} bytes written ({flushed} flushed, shut down: {shut_down}), {} expected (close marker at {:?})",
                expected.len(),
                self.output.close_at
            ));
        }
    }

    fn check_frame(&mut self, frame: Frame) {
        self.frames += 1;
        let io = self.io();
        let input = io.input.clone();
        let end_of_input = io.end_of_input_read;
        let shut_down = io.shut_down;
        drop(io);
        if shut_down {
            self.fail(format!(
                "a frame after the write side was shut down: {frame:?}"
            ));
        }
        if self.ending.is_some() {
            self.fail(format!(
                "a frame after the end ({:?}): {frame:?}",
                self.ending
            ));
        }
        let position = self.input.position;
        let end = self.input.end(&input);
        let expect = |what: &str, length: usize| -> &[u8] {
            if position + length > input.len() {
                self.fail(format!(
                    "{what} of {length} bytes at {position}: past the input"
                ));
            }
            &input[position..position + length]
        };
        match frame {
            Frame::Partial(bytes) => {
                if bytes.is_empty() {
                    self.fail("an empty Partial");
                }
                if bytes[..] != *expect("a Partial", bytes.len()) {
                    self.fail(format!("a Partial {bytes:?} that is not the next input"));
                }
                let after = position + bytes.len();
                let allowed = match end {
                    MessageEnd::Delimited { start, .. } => after <= start,
                    MessageEnd::Counted(end) => after as u64 <= end,
                    MessageEnd::Never => true,
                };
                if !allowed {
                    self.fail(format!(
                        "a Partial {bytes:?} past the end of its message ({end:?})"
                    ));
                }
                let framed = !matches!(self.input.terminator, Terminator::None);
                if !self.streaming && framed && !(end_of_input && after == input.len()) {
                    self.fail(format!(
                        "a Partial {bytes:?} in whole-frame mode before the end of input"
                    ));
                }
                self.input.position = after;
            }
            Frame::Complete(bytes) => match end {
                MessageEnd::Delimited { start, end, .. } => {
                    if bytes.len() != start - position.min(start)
                        || bytes[..] != *expect("a Complete", bytes.len())
                    {
                        self.fail(format!(
                            "Complete({bytes:?}): the message is {:?}",
                            Bytes::copy_from_slice(&input[position.min(start)..start])
                        ));
                    }
                    self.input.position = end;
                    // What of the delimiter was in the input: all of it, or
                    // its end when it began in the preceding bytes.
                    self.input.matched = Some(input[start..end].to_vec());
                    let terminator = self.input.terminator.clone();
                    self.input.set(&terminator, &[]);
                }
                MessageEnd::Counted(end) => {
                    if end > input.len() as u64 || bytes.len() as u64 != end - position as u64 {
                        self.fail(format!(
                            "Complete({bytes:?}): the counted message ends at {end}"
                        ));
                    }
                    if bytes[..] != *expect("a Complete", bytes.len()) {
                        self.fail(format!("Complete({bytes:?}) is not the next input"));
                    }
                    self.input.position = end as usize;
                    self.input.matched = None;
                    self.input.set(&Terminator::None, &[]);
                }
                MessageEnd::Never => self.fail(format!(
                    "Complete({bytes:?}), but no terminator ends the message"
                )),
            },
        }
    }

    fn check_error(&mut self, error: Error, half: Half) {
        match error {
            Error::Closed => {
                if self.output.refused {
                    self.output.refused = false;
                } else if self.ending.is_none() {
                    self.fail(format!(
                        "{half:?}: Error::Closed, but no push was refused and the channel did not end"
                    ));
                }
            }
            Error::Io(error) => {
                if self.ended_output() {
                    self.fail(format!(
                        "{half:?}: an error after the output ended: {error}"
                    ));
                }
                let io = self.io();
                let expected = match error.kind() {
                    io::ErrorKind::ConnectionReset => {
                        io.read_reset || io.write_fault == Some(WriteFault::Reset)
                    }
                    io::ErrorKind::WriteZero => io.write_fault == Some(WriteFault::Zero),
                    _ => false,
                };
                drop(io);
                if !expected {
                    self.fail(format!("{half:?}: an IO error nobody caused: {error}"));
                }
                self.ending.get_or_insert(Ending::Failed);
            }
            Error::Producer(error) => {
                if self.ended_output() {
                    self.fail(format!(
                        "{half:?}: an error after the output ended: producer {error}"
                    ));
                }
                let Some(failure_at) = self.output.failure_at else {
                    self.fail(format!(
                        "{half:?}: a producer error, but none fails: {error}"
                    ));
                };
                let io = self.io();
                let complete = io.written[..] == self.output.expected[..failure_at]
                    && io.flushed == io.written.len();
                let written = io.written.len();
                drop(io);
                if !complete {
                    self.fail(format!(
                        "{half:?}: the producer's error came after {written} bytes, not all {failure_at} before it"
                    ));
                }
                self.ending.get_or_insert(Ending::Failed);
            }
            Error::FrameTooLong { limit } => self.fail(format!(
                "{half:?}: FrameTooLong (limit {limit}) on short input"
            )),
            other => self.fail(format!("{half:?}: an unknown error {other}")),
        }
    }

    /// Whether output can no longer fail: it was shut down, or an error
    /// ended the channel. (After the end of input it is still open.)
    fn ended_output(&self) -> bool {
        matches!(
            self.ending,
            Some(Ending::Closed | Ending::Failed | Ending::Gone)
        )
    }

    fn check_stream_end(&mut self) {
        if self.ending.is_some() {
            return;
        }
        if self.output.refused {
            self.fail("the stream ended before the refused push was reported");
        }
        let io = self.io();
        let shut_down = io.shut_down;
        let end_of_input = io.end_of_input_read;
        let input = io.input.clone();
        drop(io);
        if shut_down {
            self.check_all_written("the stream ended after a close");
            self.ending = Some(Ending::Closed);
            return;
        }
        if !end_of_input {
            self.fail("the stream ended before the input did");
        }
        if !self.input.nothing_left(&input) {
            let end = self.input.end(&input);
            self.fail(format!(
                "the stream ended with input left to hand out (at {} of {}, {end:?})",
                self.input.position,
                input.len(),
            ));
        }
        if self.output.failure_at.is_some() {
            self.fail("the stream ended without the producer's error");
        }
        self.check_all_written("the stream ended at the end of input");
        self.ending = Some(Ending::EndOfInput);
    }

    // -- The tasks ---------------------------------------------------------

    fn poll_reader(&mut self) {
        self.reader.take_woken();
        self.io().idle_calls = 0;
        let waker = self.reader.waker.clone();
        let poll = Pin::new(self.chat()).poll_next(&mut Context::from_waker(&waker));
        match poll {
            Poll::Pending => {}
            Poll::Ready(Some(Ok(frame))) => {
                self.reader_waiting = false;
                self.check_frame(frame);
            }
            Poll::Ready(Some(Err(error))) => {
                self.reader_waiting = false;
                self.check_error(error, Half::Reader);
            }
            Poll::Ready(None) => {
                self.reader_waiting = false;
                self.stream_ended = true;
                self.check_stream_end();
            }
        }
        self.note_shutdown();
        self.check_state();
    }

    fn poll_writer(&mut self) {
        self.writer.take_woken();
        self.io().idle_calls = 0;
        let Some(mut op) = self.writer_op.take() else {
            return;
        };
        let waker = self.writer.waker.clone();
        let mut cx = Context::from_waker(&waker);
        // `Ok(false)`: `start_send` refused the producer, as the model
        // expected; nothing to check.
        let result = match &mut op {
            WriterOp::Flush => Pin::new(self.chat()).poll_flush(&mut cx).map_ok(|()| true),
            WriterOp::Close => {
                // `poll_close` asks for close-when-done at every poll: after
                // a discard dropped the marker, it is queued again.
                if self.ending.is_none() {
                    self.output.close();
                }
                Pin::new(self.chat()).poll_close(&mut cx).map_ok(|()| true)
            }
            WriterOp::Send(planned) => self.poll_send(planned, &mut cx),
        };
        match result {
            Poll::Pending => self.writer_op = Some(op),
            Poll::Ready(Ok(false)) => {}
            Poll::Ready(Ok(true)) if self.ending.is_some() => {}
            Poll::Ready(Ok(true)) => match op {
                WriterOp::Close => self.check_all_written("a close completed"),
                _ => {
                    if self.output.failure_at.is_some() {
                        self.fail("a flush completed past a failing producer");
                    }
                    self.check_all_written("a flush completed");
                }
            },
            Poll::Ready(Err(error)) => self.check_error(error, Half::Writer),
        }
        self.note_shutdown();
        self.check_state();
    }

    /// Once the write side is shut down, the close is complete: the run
    /// ends (the stream's next poll must say so).
    fn note_shutdown(&mut self) {
        if self.ending.is_none() && self.io().shut_down {
            self.check_all_written("the write side was shut down");
            self.ending = Some(Ending::Closed);
        }
    }

    /// `SinkExt::send` by hand: `poll_ready`, `start_send`, `poll_flush`.
    /// `Ok(false)`: `start_send` refused the producer, as the model
    /// expected.
    fn poll_send(
        &mut self,
        planned: &mut Option<Planned>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<bool, Error>> {
        if planned.is_some() {
            match Pin::new(self.chat()).poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Ready(Ok(())) => {}
            }
            let Planned { producer, pushed } = planned.take().expect("a producer to send");
            // After the end of input the output is still open.
            let refused = self.output.close_at.is_some()
                || matches!(self.ending, Some(Ending::Closed | Ending::Failed));
            match (Pin::new(self.chat()).start_send(producer), refused) {
                (Ok(()), false) => self.output.push(&pushed),
                (Err(Error::Closed), true) => return Poll::Ready(Ok(false)),
                (result, _) => self.fail(format!(
                    "start_send gave {result:?}; the model says refused: {refused}"
                )),
            }
        }
        Pin::new(self.chat()).poll_flush(cx).map_ok(|()| true)
    }

    /// Polls the woken tasks once each.
    fn run_woken(&mut self, writer_first: bool) -> bool {
        let mut polled = false;
        for writer in [writer_first, !writer_first] {
            if self.chat.is_none() {
                break;
            }
            if writer && self.writer_op.is_some() && self.writer.is_woken() {
                self.poll_writer();
                polled = true;
            } else if !writer && self.reader_waiting && self.reader.is_woken() {
                self.poll_reader();
                polled = true;
            }
        }
        polled
    }

    /// The tasks give up what they were doing: their futures are dropped,
    /// as before `into_parts` or `upgrade`.
    fn cancel_tasks(&mut self) {
        self.reader_waiting = false;
        self.writer_op = None;
    }

    // -- The operations ----------------------------------------------------

    fn run(&mut self, op: &Op) {
        match op {
            Op::PeerSends(count) => self.io().send(*count),
            Op::PeerFinishes => self.io().finish_input(),
            Op::ReadReady => {
                let mut io = self.io();
                io.read_blocked = false;
                io.wake_reader();
            }
            Op::WriteReady => {
                let mut io = self.io();
                io.write_blocked = false;
                io.wake_writer();
            }
            Op::ReleaseProducers => self.release_producers(false),
            Op::ResetRead => {
                // A reset makes a socket ready both ways.
                let mut io = self.io();
                io.read_reset = true;
                io.wake_reader();
                io.wake_writer();
            }
            Op::WriteFault(fault) => {
                let mut io = self.io();
                io.write_fault.get_or_insert(*fault);
                io.wake_writer();
            }
            Op::ReaderNext => {
                self.reader_waiting = true;
                self.poll_reader();
            }
            Op::WriterFlush | Op::WriterClose | Op::WriterSend(_) => {
                if self.writer_op.is_none() {
                    self.writer_op = Some(match op {
                        Op::WriterFlush => WriterOp::Flush,
                        Op::WriterClose => {
                            if self.ending.is_none() {
                                self.output.close();
                            }
                            WriterOp::Close
                        }
                        Op::WriterSend(spec) => WriterOp::Send(Some(self.plan(spec))),
                        _ => unreachable!("a writer operation"),
                    });
                }
                self.poll_writer();
            }
            Op::Push(spec) => {
                let planned = self.plan(spec);
                self.output.push(&planned.pushed);
                self.chat().push_with_producer(planned.producer);
            }
            Op::SetTerminator(terminator) => {
                self.chat().set_terminator(terminator.clone());
                self.input.set(terminator, &[]);
            }
            Op::SetTerminatorAfter(terminator, preceding) => {
                self.chat()
                    .set_terminator_after(terminator.clone(), preceding);
                // A `Length` or `None` ignores the preceding bytes.
                let preceding = if terminator.delimiters().is_empty() {
                    &[][..]
                } else {
                    &preceding[..]
                };
                self.input.set(terminator, preceding);
            }
            Op::SetStreaming(streaming) => {
                self.chat().set_streaming(*streaming);
                self.streaming = *streaming;
            }
            Op::DiscardBuffers => {
                self.chat().discard_buffers();
                let io = self.io();
                let (read, written) = (io.read, io.written.clone());
                drop(io);
                self.input.restart(read);
                self.output.drop_queue(&written);
            }
            Op::CloseWhenDone => {
                self.chat().close_when_done();
                self.output.close();
            }
            Op::Upgrade { fails, input } => self.upgrade(*fails, input),
            Op::Parts {
                through_framed,
                in_buffer_size,
                out_buffer_size,
            } => {
                self.cancel_tasks();
                let chat = self.chat.take().expect("the Chat is here");
                let chat = if *through_framed {
                    Chat::from(chat.into_framed())
                } else {
                    let mut parts = chat.into_parts();
                    if *in_buffer_size > 0 {
                        parts.in_buffer_size = *in_buffer_size;
                    }
                    if *out_buffer_size > 0 {
                        parts.out_buffer_size = *out_buffer_size;
                    }
                    Chat::from_parts(parts)
                };
                self.chat = Some(chat);
                let io = self.io();
                let (written, flushed) = (io.written.clone(), io.flushed);
                drop(io);
                self.output.drop_queue(&written);
                self.output.refused = false;
                if flushed < written.len() {
                    self.output.unflushed_at_parts = Some(written.len());
                }
            }
            Op::RunWoken { writer_first } => {
                self.run_woken(*writer_first);
            }
            Op::BufferSizes {
                in_buffer_size,
                out_buffer_size,
            } => {
                let chat = self.chat();
                if *in_buffer_size > 0 {
                    chat.set_in_buffer_size(*in_buffer_size);
                }
                if *out_buffer_size > 0 {
                    chat.set_out_buffer_size(*out_buffer_size);
                }
            }
        }
        self.check_state();
    }

    fn release_producers(&mut self, for_good: bool) {
        for gate in &self.gates {
            let mut gate = gate.lock().expect("a panic poisoned a gate");
            gate.open = true;
            gate.always_open |= for_good;
            if let Some(waker) = gate.waker.take() {
                waker.wake();
            }
        }
    }

    /// Lets everything blocked go on: the network and the producers.
    fn release_all(&mut self) {
        let mut io = self.io();
        io.read_blocked = false;
        io.write_blocked = false;
        io.wake_reader();
        io.wake_writer();
        drop(io);
        self.release_producers(false);
    }

    fn upgrade(&mut self, fails: bool, input: &[u8]) {
        self.cancel_tasks();
        let chat = self.chat.take().expect("the Chat is here");
        let second = Arc::new(Mutex::new(IoState::new(
            "second IO",
            input.to_vec(),
            self.case,
        )));
        let io = MemoryIo {
            state: Arc::clone(&second),
        };
        let mut upgrading = Box::pin(chat.upgrade(move |_first| async move {
            if fails {
                Err(io::Error::other("the handshake failed"))
            } else {
                Ok(io)
            }
        }));
        let task = TaskWaker::new();
        let mut polls_without_progress = 0;
        let result = loop {
            task.take_woken();
            self.io().idle_calls = 0;
            let before = self.progress();
            if let Poll::Ready(result) = upgrading
                .as_mut()
                .poll(&mut Context::from_waker(&task.waker))
            {
                break result;
            }
            self.check_state();
            if self.progress() == before {
                polls_without_progress += 1;
                if polls_without_progress > MAX_POLLS_WITHOUT_PROGRESS {
                    self.fail("the upgrade is polled again and again without progress");
                }
            } else {
                polls_without_progress = 0;
            }
            if !task.is_woken() {
                // What a real network and producers would do in time.
                self.release_all();
            }
            if !task.is_woken() {
                self.fail(format!(
                    "lost wake-up: the upgrade waits and nothing will wake it (write waker kept: {})",
                    self.io().write_waker.is_some()
                ));
            }
        };
        drop(upgrading);
        match result {
            Ok(chat) => {
                if fails {
                    self.fail("the upgrade succeeded though the handshake failed");
                }
                if self.output.close_at.is_some() || self.output.failure_at.is_some() {
                    self.fail("the upgrade succeeded past a close marker or a failing producer");
                }
                self.check_all_written("the upgrade completed");
                self.chat = Some(chat);
                self.io = second;
                self.input.restart(0);
                self.output = OutputModel::default();
            }
            Err(Error::Closed) => {
                // Its flush reports a push refused earlier, as any poll does.
                if self.output.close_at.is_none() && !self.output.refused {
                    self.fail("the upgrade was refused, but no close was asked for");
                }
                self.ending = Some(Ending::Gone);
            }
            Err(Error::Io(error)) if error.kind() == io::ErrorKind::Other => {
                if !fails {
                    self.fail(format!("the upgrade failed: {error}"));
                }
                self.check_all_written("the handshake began");
                self.ending = Some(Ending::Gone);
            }
            Err(error) => {
                self.check_error(error, Half::Upgrade);
                self.ending = Some(Ending::Gone);
            }
        }
        self.check_state();
    }

    /// The end of the run: the peer sends everything and closes, the
    /// network and the producers stop pausing; only woken tasks are polled
    /// until the stream has ended and the writer is done.
    fn finish(&mut self) {
        if self.chat.is_none() {
            return;
        }
        {
            let mut io = self.io();
            io.pauses = false;
            io.finish_input();
        }
        self.release_all();
        self.release_producers(true);
        // The reading task reads on to the end, as a server's loop does.
        let mut polls_without_progress = 0;
        loop {
            if !self.stream_ended && !self.reader_waiting {
                self.reader_waiting = true;
                self.reader.wake();
            }
            if self.stream_ended && self.writer_op.is_none() {
                break;
            }
            let runnable = (self.reader_waiting && self.reader.is_woken())
                || (self.writer_op.is_some() && self.writer.is_woken());
            if !runnable {
                let io = self.io();
                let (read_waker, write_waker) = (io.read_waker.is_some(), io.write_waker.is_some());
                drop(io);
                self.fail(format!(
                    "lost wake-up: nothing will wake the tasks; reader {}, writer {}; the IO keeps a read waker: {read_waker}, a write waker: {write_waker}",
                    if self.reader_waiting { "waiting for a frame" } else { "done" },
                    match &self.writer_op {
                        Some(op) => format!("waiting on {op:?}"),
                        None => "idle".to_owned(),
                    },
                ));
            }
            let before = self.progress();
            self.run_woken(false);
            if self.progress() == before {
                polls_without_progress += 1;
                if polls_without_progress > MAX_POLLS_WITHOUT_PROGRESS {
                    self.fail(format!(
                        "{polls_without_progress} polls without progress at the end of the run (reader waiting: {}, writer: {:?})",
                        self.reader_waiting, self.writer_op
                    ));
                }
            } else {
                polls_without_progress = 0;
            }
        }
        if self.ending.is_none() {
            self.fail("the run ended without the stream's end");
        }
    }
}

/// The `chat` fuzz target: see the module's documentation.
pub fn check_chat(data: &[u8]) {
    run_case(&ChatCase::parse(data));
}

/// What a run came to, for the seeds' tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Frames handed out.
    pub frames: usize,
    /// Bytes written to the last IO.
    pub written: usize,
    /// How the stream ended: "end of input", "closed", "failed", or "gone"
    /// (a failed upgrade).
    pub ending: &'static str,
    /// The run went on over a second IO.
    pub upgraded: bool,
}

/// Runs one case and checks it against the model; panics on any
/// disagreement, loop or lost wake-up.
pub fn run_case(case: &ChatCase) -> Summary {
    let mut harness = Harness::new(case);
    harness.check_state();
    for (index, op) in case.ops.iter().enumerate() {
        if harness.ending.is_some() {
            break;
        }
        harness.done = index + 1;
        harness.run(op);
    }
    harness.finish();
    let io = harness.io();
    Summary {
        frames: harness.frames,
        written: io.written.len(),
        ending: match harness.ending {
            Some(Ending::EndOfInput) => "end of input",
            Some(Ending::Closed) => "closed",
            Some(Ending::Failed) => "failed",
            Some(Ending::Gone) | None => "gone",
        },
        upgraded: io.name == "second IO",
    }
}

/// The seed corpus of the `chat` target, `fuzz/corpus/chat/<name>`: a
/// conversation of each protocol shape the examples serve, and each
/// producer, fault and operation at least once.
pub fn seeds() -> Vec<(&'static str, ChatCase)> {
    use Op::*;
    use ProducerSpec as P;
    use ProducerStep as S;
    let crlf = || Terminator::from("\r\n");
    let base = |input: &[u8], terminator: Terminator, ops: Vec<Op>| ChatCase {
        vectored: true,
        streaming: false,
        read_steps: Vec::new(),
        write_steps: Vec::new(),
        input: input.to_vec(),
        terminator,
        ops,
    };
    let mut seeds = Vec::new();

    let mut smtp = base(
        b"EHLO a\r\nDATA\r\n.\r\nDATA\r\nline\r\n..dot\r\n.\r\nQUIT\r\n",
        crlf(),
        vec![
            PeerSends(10),
            ReaderNext,
            Push(P::Bytes {
                length: 20,
                conversion: 3,
            }),
            PeerSends(255),
            ReaderNext,
            SetStreaming(true),
            SetTerminatorAfter(Terminator::from("\r\n.\r\n"), b"\r\n".to_vec()),
            ReaderNext,
            SetStreaming(false),
            SetTerminator(crlf()),
            ReaderNext,
            SetStreaming(true),
            SetTerminatorAfter(Terminator::from("\r\n.\r\n"), b"\r\n".to_vec()),
            ReaderNext,
            ReaderNext,
            ReaderNext,
            SetStreaming(false),
            SetTerminator(crlf()),
            ReaderNext,
            Push(P::Bytes {
                length: 9,
                conversion: 0,
            }),
            CloseWhenDone,
            ReaderNext,
        ],
    );
    smtp.read_steps = vec![Step::Size(3), Step::Size(1), Step::Size(7)];
    seeds.push(("smtp_data_blocks", smtp));

    let mut http = base(
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n",
        Terminator::from("\r\n\r\n"),
        vec![
            PeerFinishes,
            ReaderNext,
            SetTerminator(Terminator::Length(5)),
            ReaderNext,
            WriterSend(P::Reader {
                steps: vec![S::Piece(30), S::Pending, S::Piece(10)],
            }),
            ReleaseProducers,
            RunWoken { writer_first: true },
            SetTerminator(Terminator::from("\r\n\r\n")),
            ReaderNext,
            WriterClose,
            WriteReady,
            RunWoken {
                writer_first: false,
            },
        ],
    );
    http.write_steps = vec![Step::Size(4), Step::Pending];
    seeds.push(("http_head_body_close", http));

    let mut lines = base(
        b"one\r\ntwo\nthree\r\rfour\r\n",
        Terminator::any_of(["\r\n", "\n", "\r"]),
        vec![
            PeerSends(1),
            ReaderNext,
            PeerSends(6),
            RunWoken {
                writer_first: false,
            },
            ReaderNext,
            ReadReady,
            PeerFinishes,
            RunWoken {
                writer_first: false,
            },
            ReaderNext,
            ReaderNext,
            ReaderNext,
        ],
    );
    lines.read_steps = vec![Step::Size(1), Step::Pending];
    lines.streaming = true;
    seeds.push(("any_of_lines_byte_reads", lines));

    let producers = base(
        b"get a\r\nget b\r\n",
        crlf(),
        vec![
            Push(P::Bytes {
                length: 3,
                conversion: 2,
            }),
            Push(P::WithBufferSize {
                length: 50,
                piece_size: 7,
            }),
            Push(P::Iter {
                pieces: vec![0, 5, 0, 12],
            }),
            Push(P::Stream {
                steps: vec![S::Piece(4), S::Pending, S::Piece(0), S::Piece(9)],
            }),
            Push(P::Reader {
                steps: vec![S::Pending, S::Piece(39)],
            }),
            BufferSizes {
                in_buffer_size: 2,
                out_buffer_size: 5,
            },
            WriterFlush,
            ReleaseProducers,
            RunWoken { writer_first: true },
            ReleaseProducers,
            ReaderNext,
            PeerFinishes,
            RunWoken {
                writer_first: false,
            },
        ],
    );
    seeds.push(("every_producer", producers));

    let mut failing = base(
        b"x\n",
        Terminator::from("\n"),
        vec![
            Push(P::Bytes {
                length: 10,
                conversion: 1,
            }),
            Push(P::Stream {
                steps: vec![S::Piece(6), S::Fail, S::Piece(3)],
            }),
            Push(P::Bytes {
                length: 4,
                conversion: 4,
            }),
            ReaderNext,
            WriterFlush,
        ],
    );
    failing.vectored = false;
    failing.write_steps = vec![Step::Size(3)];
    seeds.push(("producer_fails", failing));

    let mut starttls = base(
        b"EHLO a\r\nSTARTTLS\r\nMAIL FROM:<evil>\r\n",
        crlf(),
        vec![
            PeerFinishes,
            ReaderNext,
            ReaderNext,
            Push(P::Bytes {
                length: 30,
                conversion: 0,
            }),
            Upgrade {
                fails: false,
                input: b"EHLO b\r\nQUIT\r\n".to_vec(),
            },
            ReaderNext,
            PeerSends(3),
            ReaderNext,
            Push(P::Close),
        ],
    );
    starttls.write_steps = vec![Step::Pending, Step::Size(8)];
    seeds.push(("starttls_upgrade", starttls));

    let parts = base(
        b"$3\r\nfoo\r\n$2\r\nhi\r\n",
        crlf(),
        vec![
            PeerSends(9),
            ReaderNext,
            SetTerminator(Terminator::Length(5)),
            Parts {
                through_framed: false,
                in_buffer_size: 3,
                out_buffer_size: 2,
            },
            ReaderNext,
            SetTerminator(crlf()),
            Push(P::Bytes {
                length: 6,
                conversion: 0,
            }),
            Parts {
                through_framed: true,
                in_buffer_size: 0,
                out_buffer_size: 0,
            },
            PeerFinishes,
            ReaderNext,
            DiscardBuffers,
            ReaderNext,
        ],
    );
    seeds.push(("parts_and_framed", parts));

    let mut faults = base(
        b"ping\nping\nping\n",
        Terminator::from("\n"),
        vec![
            ReaderNext,
            PeerSends(5),
            RunWoken {
                writer_first: false,
            },
            Push(P::Bytes {
                length: 100,
                conversion: 0,
            }),
            WriterFlush,
            WriteFault(crate::chat::WriteFault::Zero),
            RunWoken { writer_first: true },
            ResetRead,
            ReaderNext,
        ],
    );
    faults.write_steps = vec![Step::Size(9), Step::Pending];
    seeds.push(("write_zero_and_reset", faults));

    let closing = base(
        b"a\nb\nc\n",
        Terminator::from("\n"),
        vec![
            PeerFinishes,
            ReaderNext,
            Push(P::Bytes {
                length: 5,
                conversion: 0,
            }),
            CloseWhenDone,
            Push(P::Bytes {
                length: 5,
                conversion: 0,
            }),
            WriterSend(P::Bytes {
                length: 2,
                conversion: 0,
            }),
            ReaderNext,
            ReaderNext,
        ],
    );
    seeds.push(("push_after_close", closing));

    let counted = base(
        b"abcdefgh",
        Terminator::Length(0),
        vec![
            ReaderNext,
            SetTerminator(Terminator::Length(3)),
            SetStreaming(true),
            PeerSends(2),
            ReaderNext,
            SetStreaming(false),
            PeerFinishes,
            ReaderNext,
            SetTerminator(Terminator::Length(200)),
            ReaderNext,
            SetTerminator(Terminator::Length(0)),
            ReaderNext,
        ],
    );
    seeds.push(("lengths_and_end_of_input", counted));

    seeds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_back_and_pass() {
        for (name, case) in seeds() {
            let parsed = ChatCase::parse(&case.encode());
            assert_eq!(parsed, case, "{name} does not parse back");
            let summary = run_case(&case);
            eprintln!("{name}: {summary:?}");
            if name != "producer_fails" {
                assert!(summary.frames > 0, "{name}: {summary:?}");
            }
        }
    }

    /// The seed files hold the seeds as encoded now; `CHAT_WRITE_SEEDS=1`
    /// writes them.
    #[test]
    fn seed_files_are_current() {
        let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/chat");
        for (name, case) in seeds() {
            let path = format!("{directory}/{name}");
            if std::env::var_os("CHAT_WRITE_SEEDS").is_some() {
                std::fs::write(&path, case.encode()).unwrap();
            }
            let file = std::fs::read(&path).unwrap_or_default();
            assert_eq!(
                file,
                case.encode(),
                "{path} is not the seed {name}: CHAT_WRITE_SEEDS=1 writes it"
            );
        }
    }

    /// The committed corpus, crash inputs kept as regressions included.
    #[test]
    fn corpus_passes() {
        let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/chat");
        let mut count = 0;
        for entry in std::fs::read_dir(directory).expect("the chat corpus") {
            let path = entry.unwrap().path();
            check_chat(&std::fs::read(&path).unwrap());
            count += 1;
        }
        assert!(count >= seeds().len(), "{count} inputs in {directory}");
    }

    /// `CHAT_REPLAY=<file>`: prints a fuzz input's case and runs it.
    #[test]
    fn replay() {
        let Some(path) = std::env::var_os("CHAT_REPLAY") else {
            return;
        };
        let case = ChatCase::parse(&std::fs::read(path).unwrap());
        eprintln!("{case:#?}");
        eprintln!("{:?}", run_case(&case));
    }

    #[test]
    fn empty_and_short_data() {
        for length in 0..64 {
            check_chat(&vec![0x5a; length]);
        }
    }

    /// Random inputs, for a quick look without libFuzzer.
    #[test]
    fn random_inputs() {
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let runs: usize = std::env::var("CHAT_RANDOM_RUNS")
            .ok()
            .and_then(|runs| runs.parse().ok())
            .unwrap_or(2_000);
        for run in 0..runs {
            let length = (next() % 600) as usize;
            let data: Vec<u8> = (0..length).map(|_| next() as u8).collect();
            let result = std::panic::catch_unwind(|| check_chat(&data));
            if result.is_err() {
                panic!("run {run} failed on {data:?}");
            }
        }
    }
}
