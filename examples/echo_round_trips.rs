//! One client doing line echo round trips against a `Chat` server or a
//! `Framed<_, LinesCodec>` server in the same process: the echo row of the
//! benchmarks (`benches/chat.rs`), as a program to profile.
//!
//! ```text
//! cargo run --release --example echo_round_trips -- chat|framed [ROUND_TRIPS]
//! ```
//!
//! The server runs on a tokio runtime with two workers; the client is a
//! thread of its own with blocking calls, as in the bench. It prints the
//! mean time of a round trip. `scripts/echo-instructions.sh` runs it under
//! callgrind for the instructions a round trip costs, a figure that does not
//! move with the machine's load.

use std::io::{BufRead, BufReader, Write};
use std::time::Instant;

use asynchat::{Chat, Frame};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LinesCodec};

/// The request, newline included (the bench's).
const REQUEST: &[u8] = b"PING the quick brown fox jumps over the lazy dog\n";

async fn chat_server(stream: TcpStream) {
    let mut chat = Chat::new(stream, "\n");
    while let Some(frame) = chat.next().await {
        if let Frame::Complete(line) = frame.expect("a line") {
            chat.push(line);
            chat.push(Bytes::from_static(b"\n"));
        }
    }
}

async fn framed_server(stream: TcpStream) {
    let mut framed = Framed::new(stream, LinesCodec::new());
    while let Some(line) = framed.next().await {
        framed.send(line.expect("a line")).await.expect("a reply");
    }
}

fn main() {
    let usage = "usage: echo_round_trips chat|framed [ROUND_TRIPS]";
    let mut arguments = std::env::args().skip(1);
    let server = arguments.next().expect(usage);
    let round_trips: u32 = arguments.next().map_or(20_000, |n| n.parse().expect(usage));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let listener = runtime
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("a port");
    let address = listener.local_addr().expect("an address");
    let client = std::net::TcpStream::connect(address).expect("a connection");
    client.set_nodelay(true).expect("TCP_NODELAY");
    let (stream, _) = runtime.block_on(listener.accept()).expect("the connection");
    let server = match server.as_str() {
        "chat" => runtime.spawn(chat_server(stream)),
        "framed" => runtime.spawn(framed_server(stream)),
        _ => panic!("{usage}"),
    };

    let mut client = BufReader::new(client);
    let mut reply = Vec::new();
    let start = Instant::now();
    for _ in 0..round_trips {
        client.get_mut().write_all(REQUEST).expect("a request");
        reply.clear();
        client.read_until(b'\n', &mut reply).expect("a reply");
        assert_eq!(reply, REQUEST);
    }
    let elapsed = start.elapsed();
    drop(client);
    runtime.block_on(server).expect("the server");
    println!(
        "{round_trips} round trips, {:?} each",
        elapsed / round_trips
    );
}
