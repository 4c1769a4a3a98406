//! What output costs in memory, counted by the allocator: the bytes held
//! while a peer does not read, not only the bytes queued.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicUsize, Ordering},
    task::{Context, Poll},
    time::Duration,
};

use asynchat::{Chat, Producer};
use bytes::Bytes;
use futures::{future::poll_fn, Sink};
use tokio::io::{AsyncRead, ReadBuf};

/// The system allocator, counting the bytes allocated and not yet freed.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counter only observes the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(pointer, layout)
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        HELD.fetch_add(size, Ordering::Relaxed);
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        System.realloc(pointer, layout, size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A reader whose every read comes back `read` bytes long, as a pipe's or a
/// socket's do, `remaining` bytes in all.
struct ShortReads {
    read: usize,
    remaining: usize,
}

impl AsyncRead for ShortReads {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        static XS: [u8; 64 * 1024] = [b'x'; 64 * 1024];
        let size = self.read.min(buf.remaining()).min(self.remaining);
        buf.put_slice(&XS[..size]);
        self.remaining -= size;
        Poll::Ready(Ok(()))
    }
}

/// Polls `future` until `wait` passes; it must not complete.
async fn stays_pending(future: impl Future, wait: Duration) {
    assert!(
        tokio::time::timeout(wait, future).await.is_err(),
        "it completed"
    );
}

/// Makes what is allocated once, on first use, in the runtime's timers,
/// the standard output and the like, before the count starts.
async fn warm_up() {
    stays_pending(std::future::pending::<()>(), Duration::from_millis(1)).await;
    println!("counting");
}

/// The counter is the whole process's: one test, its parts in turn, so
/// that no other test allocates while one counts.
#[tokio::test(flavor = "current_thread")]
async fn output_held_is_bounded() {
    warm_up().await;
    a_reader_producer_holds_about_two_out_buffer_sizes_however_short_its_reads().await;
    a_joined_backlog_keeps_no_large_allocation_alive().await;
}

async fn a_reader_producer_holds_about_two_out_buffer_sizes_however_short_its_reads() {
    for (out_buffer_size, read) in [
        (64 << 10, 64 << 10),
        (64 << 10, 20 << 10),
        (64 << 10, 1460),
        (64 << 10, 16),
        (1 << 20, 1460),
    ] {
        // A peer that never reads: the duplex takes 1 KiB, then the flush
        // waits with what the Chat holds.
        let (io, peer) = tokio::io::duplex(1024);
        let mut chat = Chat::new(io, "\n");
        chat.set_out_buffer_size(out_buffer_size);
        let before = HELD.load(Ordering::Relaxed);
        chat.push_with_producer(Producer::from_reader(ShortReads {
            read,
            remaining: 64 << 20,
        }));
        stays_pending(
            poll_fn(|cx| Pin::new(&mut chat).poll_flush(cx)),
            Duration::from_millis(100),
        )
        .await;
        let held = HELD.load(Ordering::Relaxed) - before;
        println!(
            "out_buffer_size {out_buffer_size}, reads of {read}: {held} bytes held ({:.2}x), {} queued",
            held as f64 / out_buffer_size as f64,
            chat.queued_output_len()
        );
        assert!(chat.queued_output_len() >= out_buffer_size);
        assert!(
            held <= 2 * out_buffer_size + (16 << 10),
            "out_buffer_size {out_buffer_size}, reads of {read}: {held} bytes held"
        );
        drop((chat, peer));
    }
}

/// A backlog of short pieces joins them, and the piece it joins onto may be
/// a few bytes cut from a large allocation: the join copies them out rather
/// than keep the allocation alive.
async fn a_joined_backlog_keeps_no_large_allocation_alive() {
    const LARGE: usize = 4 << 20;
    let (io, peer) = tokio::io::duplex(1024);
    let mut chat = Chat::new(io, "\n");
    let before = HELD.load(Ordering::Relaxed);
    // More than the peer takes: what follows waits.
    chat.push(Bytes::from_static(&[b'-'; 2048]));
    for _ in 0..62 {
        chat.push(Bytes::from_static(b"+OK\r\n"));
    }
    // The 64th piece, the only handle on the large allocation: ten bytes
    // of it. The next piece is joined onto it.
    chat.push(Bytes::from(vec![b'x'; LARGE]).slice(..10));
    chat.push(Bytes::from_static(b"+OK\r\n"));
    stays_pending(
        poll_fn(|cx| Pin::new(&mut chat).poll_flush(cx)),
        Duration::from_millis(100),
    )
    .await;
    let held = HELD.load(Ordering::Relaxed) - before;
    assert!(
        held < LARGE / 4,
        "{held} bytes held for {} queued",
        chat.queued_output_len()
    );
    drop((chat, peer));
}
