//! The client of `scripts/load.sh`: many concurrent connections to a line
//! echo server, each doing a few round trips and then idling.
//!
//! ```text
//! cargo run --release --example load_client -- ADDRESS CONNECTIONS [ROUNDS]
//! ```
//!
//! 1. Opens CONNECTIONS connections to ADDRESS (at most 256 connecting at
//!    once, so the listen backlog is not what is measured) and does ROUNDS
//!    (default 3) round trips on each: a line goes out, the same line must
//!    come back.
//! 2. Prints `ready` on stdout, and holds every connection open and idle
//!    until its standard input ends: the time to measure the server.
//! 3. Does one more round trip on every connection (none may have been
//!    dropped while idle), closes them, and prints a summary.
//!
//! Exits with 1 if any connection was refused, dropped, timed out or
//! answered wrongly. Every wait is bounded (30 s per operation).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::Semaphore,
    time::timeout,
};

/// The bound of one connect, write or read.
const WAIT: Duration = Duration::from_secs(30);

/// How many connections may be connecting at once.
const CONNECTING: usize = 256;

enum Failure {
    Refused(std::io::Error),
    Dropped(std::io::Error),
    Wrong,
    TimedOut(&'static str),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(error) => write!(f, "refused: {error}"),
            Failure::Dropped(error) => write!(f, "dropped: {error}"),
            Failure::Wrong => f.write_str("answered wrongly"),
            Failure::TimedOut(what) => write!(f, "timed out: {what}"),
        }
    }
}

async fn bounded<T>(
    what: &'static str,
    future: impl std::future::Future<Output = std::io::Result<T>>,
    failure: fn(std::io::Error) -> Failure,
) -> Result<T, Failure> {
    match timeout(WAIT, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(failure(error)),
        Err(_) => Err(Failure::TimedOut(what)),
    }
}

/// One line out, the same line back.
async fn round_trip(stream: &mut TcpStream, id: usize, round: usize) -> Result<(), Failure> {
    let line = format!("connection {id} round {round}: the quick brown fox\n");
    bounded("write", stream.write_all(line.as_bytes()), Failure::Dropped).await?;
    let mut echo = vec![0; line.len()];
    bounded("read", stream.read_exact(&mut echo), Failure::Dropped).await?;
    if echo == line.as_bytes() {
        Ok(())
    } else {
        Err(Failure::Wrong)
    }
}

async fn open(
    address: SocketAddr,
    id: usize,
    rounds: usize,
    connecting: Arc<Semaphore>,
) -> Result<TcpStream, Failure> {
    let mut stream = {
        let _permit = connecting.acquire().await.expect("never closed");
        bounded("connect", TcpStream::connect(address), Failure::Refused).await?
    };
    stream.set_nodelay(true).map_err(Failure::Dropped)?;
    for round in 0..rounds {
        round_trip(&mut stream, id, round).await?;
    }
    Ok(stream)
}

fn tally(results: &[Result<(), Failure>]) -> (usize, Vec<String>) {
    let ok = results.iter().filter(|result| result.is_ok()).count();
    let mut failures: Vec<String> = results
        .iter()
        .filter_map(|result| result.as_ref().err().map(ToString::to_string))
        .collect();
    failures.sort();
    failures.dedup();
    (ok, failures)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: load_client ADDRESS CONNECTIONS [ROUNDS]";
    let address: SocketAddr = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{usage}"));
    let connections: usize = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{usage}"));
    let rounds: usize = args.next().map_or(3, |n| n.parse().expect(usage));

    // 1. Connect and do the round trips.
    let connecting = Arc::new(Semaphore::new(CONNECTING));
    let tasks: Vec<_> = (0..connections)
        .map(|id| tokio::spawn(open(address, id, rounds, connecting.clone())))
        .collect();
    let mut streams = Vec::with_capacity(connections);
    let mut opened = Vec::with_capacity(connections);
    for task in tasks {
        match task.await.expect("a client task panicked") {
            Ok(stream) => {
                streams.push(stream);
                opened.push(Ok(()));
            }
            Err(failure) => opened.push(Err(failure)),
        }
    }
    let (ok, failures) = tally(&opened);
    eprintln!(
        "load_client: {ok} of {connections} connections did {rounds} round trips; failures: {failures:?}"
    );

    // 2. Idle until told to go on.
    println!("ready");
    let mut stdin = tokio::io::stdin();
    let mut sink = Vec::new();
    let _ = stdin.read_to_end(&mut sink).await;

    // 3. One more round trip on each: none was dropped while idle.
    let tasks: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(id, mut stream)| {
            tokio::spawn(async move { round_trip(&mut stream, id, rounds).await })
        })
        .collect();
    let mut after_idle = Vec::with_capacity(tasks.len());
    for task in tasks {
        after_idle.push(task.await.expect("a client task panicked"));
    }
    let (still_ok, late_failures) = tally(&after_idle);
    eprintln!(
        "load_client: {still_ok} of {} idle connections answered again; failures: {late_failures:?}",
        after_idle.len()
    );
    println!("connections {connections} ok {ok} still_ok {still_ok}");
    if ok != connections || still_ok != connections {
        std::process::exit(1);
    }
}
