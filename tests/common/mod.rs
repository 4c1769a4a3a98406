//! Helpers shared by the integration tests over TCP: the bound of every
//! wait, a connected loopback pair, a reset.
//!
//! A directory module, so cargo does not build it as a test of its own;
//! each test file includes it with `mod common;`.

// Each test file uses only part of it.
#![allow(dead_code)]

use std::{future::Future, time::Duration};

use tokio::{
    net::{TcpListener, TcpStream},
    time::timeout,
};

/// The bound of every wait that should succeed.
pub const WAIT: Duration = Duration::from_secs(30);

/// Runs `future` to completion, failing the test if it takes longer than
/// [`WAIT`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Awaits one step of a test, failing if it takes longer than 10 seconds:
/// shorter than [`WAIT`], for the steps of a conversation.
pub async fn step<F: Future>(what: &str, future: F) -> F::Output {
    match timeout(Duration::from_secs(10), future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out: {what}"),
    }
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
