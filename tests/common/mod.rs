//! Helpers shared by the integration tests over TCP: the bounds of every
//! wait, a connected loopback pair, a reset, and the reads and exchanges of
//! the tests that drive an example's server.
//!
//! A directory module, so cargo does not build it as a test of its own;
//! each test file includes it with `mod common;`.

// Each test file uses only part of it.
#![allow(dead_code)]

use std::{future::Future, net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    time::timeout,
};

/// The bound of every wait that should succeed.
pub const WAIT: Duration = Duration::from_secs(30);

/// The bound of one step of a conversation: shorter than [`WAIT`].
pub const STEP: Duration = Duration::from_secs(10);

/// The bound of a whole test that drives a server: longer than [`WAIT`],
/// for the tests that send megabytes through a debug build.
pub const TEST: Duration = Duration::from_secs(60);

/// Runs `future` to completion, failing the test with `failure` if it takes
/// longer than `limit`.
async fn bounded_by<F: Future>(limit: Duration, failure: &str, future: F) -> F::Output {
    match timeout(limit, future).await {
        Ok(output) => output,
        Err(_) => panic!("{failure}"),
    }
}

/// Runs `future` to completion, failing the test if it takes longer than
/// [`WAIT`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    bounded_by(WAIT, &format!("timed out waiting for {what}"), future).await
}

/// Awaits one step of a test, failing if it takes longer than [`STEP`].
pub async fn step<F: Future>(what: &str, future: F) -> F::Output {
    bounded_by(STEP, &format!("timed out: {what}"), future).await
}

/// Runs a test body, failing it if it takes longer than [`TEST`].
pub async fn bounded<F: Future>(body: F) -> F::Output {
    bounded_by(TEST, "the test took too long", body).await
}

/// A connected pair of loopback sockets: (client, server).
pub async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (client, accepted) = within("a loopback connection", async {
        tokio::join!(TcpStream::connect(address), listener.accept())
    })
    .await;
    (client.unwrap(), accepted.unwrap().0)
}

/// Resets the connection: linger 0, then close, sends RST instead of FIN.
pub fn reset(stream: TcpStream) {
    // Deprecated because a non-zero linger blocks the thread on drop; a zero
    // linger does not block: it is how a test sends a reset.
    #[allow(deprecated)]
    stream.set_linger(Some(Duration::ZERO)).unwrap();
    drop(stream);
}

/// A connection to a server under test, without Nagle's delay: each write
/// goes out at once, so the server sees the pieces a test cuts.
pub async fn connect(address: SocketAddr) -> TcpStream {
    let stream = step("connect", TcpStream::connect(address)).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Reads until the peer closes; fails if it does not within [`STEP`].
pub async fn read_to_end(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut rest = Vec::new();
    step("end of stream", stream.read_to_end(&mut rest))
        .await
        .unwrap();
    rest
}

/// Reads exactly `length` bytes; fails if they do not come within [`STEP`].
pub async fn read_exactly(stream: &mut (impl AsyncRead + Unpin), length: usize) -> Vec<u8> {
    let mut buffer = vec![0; length];
    step("a reply", stream.read_exact(&mut buffer))
        .await
        .unwrap();
    buffer
}

/// Bytes as a failure message shows them: ASCII, every other byte escaped,
/// so two different replies never look alike.
pub fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// Sends `request` and expects exactly `reply` back.
pub async fn exchange(stream: &mut TcpStream, request: &[u8], reply: &[u8]) {
    stream.write_all(request).await.unwrap();
    let got = read_exactly(stream, reply.len()).await;
    // A request may be megabytes: its start names it.
    assert_eq!(
        show(&got),
        show(reply),
        "for {}",
        show(&request[..request.len().min(200)])
    );
}

/// Sends each request in turn and expects exactly the reply beside it.
pub async fn exchange_all(stream: &mut TcpStream, exchanges: &[(&[u8], &[u8])]) {
    for (request, reply) in exchanges {
        exchange(stream, request, reply).await;
    }
}
