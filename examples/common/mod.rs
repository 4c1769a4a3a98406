//! What the example servers share: the port from the command line or the
//! environment, the listener, the accept loop and the lingering close.
//!
//! A directory module, so cargo does not build it as an example of its own;
//! each example (and `tests/examples.rs`, through them) includes it with
//! `mod common;`.

// Each example uses only part of it.
#![allow(dead_code)]

use std::{io, time::Duration};

use tokio::{
    io::AsyncReadExt,
    net::{TcpListener, TcpStream},
    time::timeout,
};

/// A port given on the command line.
pub fn parse_port(arg: &str) -> Result<u16, String> {
    arg.parse().map_err(|_| format!("bad port {arg:?}"))
}

/// The port given on the command line, else `$PORT`, else `default`.
pub fn port_or_env(port: Option<u16>, default: u16) -> Result<u16, String> {
    match port {
        Some(port) => Ok(port),
        None => match std::env::var("PORT") {
            Ok(value) => value.parse().map_err(|_| format!("bad PORT {value:?}")),
            Err(_) => Ok(default),
        },
    }
}

/// A listener on 127.0.0.1:`port` (0: a free port) with a backlog of 4096
/// (capped by the kernel's `somaxconn`): tokio's `bind` asks for 128 (as
/// std does), and a burst of connections past the backlog waits a second for a
/// SYN retransmission.
pub fn listen(port: u16) -> io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))?;
    socket.listen(4096)
}

/// The next connection on `listener`. A failed accept (out of descriptors,
/// or a connection reset before it was accepted) is reported, and after a
/// little wait the listener is tried again rather than given up on.
pub async fn accept(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => return stream,
            Err(error) => {
                eprintln!("accept: {error}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Reads and drops what the peer still sends, for 2 seconds and 16 MiB at
/// the most, before the socket is dropped: closing a socket with unread
/// input makes the kernel reset the connection, and the reset can destroy
/// the last answer before the peer reads it (the "lingering close" of HTTP
/// servers).
pub async fn drain(mut stream: TcpStream) {
    let mut sink = [0; 4096];
    let mut drained = 0;
    let _ = timeout(Duration::from_secs(2), async {
        while drained < 16 << 20 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(read) => drained += read,
            }
        }
    })
    .await;
}
