//! The line echo server of `examples/echo.rs`, written with tokio-util's
//! `Framed<TcpStream, LinesCodec>` instead of a `Chat`: the yardstick of the
//! memory comparison in `scripts/load.sh`.
//!
//! ```text
//! cargo run --release --example lines_echo -- [PORT]
//! ```
//!
//! The port is the first argument, else `$PORT`, else 7778 (0 picks a free
//! one; the address is printed). Every line (ended by `\n`) goes back with
//! its `\n`. It is written as `echo.rs` is, for a fair comparison: the same
//! runtime, one task per connection, `TCP_NODELAY`, the same line limit
//! (8 MiB, the `Chat`'s default `max_frame_length`). A line over it ends
//! the connection: `Framed` ends its stream after any decode error.

use std::{io, time::Duration};

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LinesCodec};

/// The port when neither the command line nor `$PORT` gives one.
const DEFAULT_PORT: u16 = 7778;

/// The longest line, as the `Chat`'s default limit.
const MAX_LINE: usize = 8 * 1024 * 1024;

async fn echo(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut lines = Framed::new(stream, LinesCodec::new_with_max_length(MAX_LINE));
    while let Some(Ok(line)) = lines.next().await {
        if lines.send(line).await.is_err() {
            break;
        }
    }
}

#[tokio::main]
async fn main() -> io::Result<()> {
    let port = match std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
    {
        Some(port) => port.parse().unwrap_or_else(|_| {
            eprintln!("lines_echo: bad port {port:?}\nusage: lines_echo [PORT]");
            std::process::exit(2);
        }),
        None => DEFAULT_PORT,
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("lines_echo listening on {}", listener.local_addr()?);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(echo(stream));
            }
            Err(error) => {
                // Out of descriptors, say: wait a little and carry on.
                eprintln!("accept: {error}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
