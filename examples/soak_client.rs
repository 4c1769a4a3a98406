//! The client of `scripts/soak.sh`: thousands of concurrent connections to
//! the SMTP, HTTP and memcached examples at once, for a set time, mixing
//! valid conversations, whose every result is checked, with hostile ones.
//!
//! ```text
//! cargo run --release --example soak_client -- certificate DIR
//! cargo run --release --example soak_client -- --smtp ADDRESS --http ADDRESS \
//!     --memcached ADDRESS --maildir DIR --certificate FILE [--clients 2000] [--seconds 600]
//! ```
//!
//! `certificate DIR` writes `DIR/certificate.pem` and `DIR/key.pem`, a
//! self-signed certificate for `localhost`, for the SMTP server's STARTTLS
//! and this client's trust.
//!
//! The run: `--clients` slots, a third for each server, each opening one
//! conversation after the other until `--seconds` have passed; then every
//! conversation in flight ends, and the messages the SMTP server stored in
//! `--maildir` are checked against those it accepted. Within a conversation the
//! client thinks between commands (`$SOAK_THINK_MS`, mean 1500 ms), so that
//! the connections stay open and the load stays modest.
//!
//! Valid conversations, whose every reply is checked:
//!
//! * SMTP: a message with dot lines, stored byte for byte (checked in the
//!   Maildir at the end); pipelined; after STARTTLS; one byte every 100 ms.
//! * HTTP: keep-alive requests, bodies by `Content-Length` and chunked, each
//!   echo's length and SHA-256 equal to what was sent; pipelined; one byte
//!   every 100 ms.
//! * memcached: `set`, `get`, `append`, `gets`, `cas`, `incr`, `delete`,
//!   each value read back; pipelined; one byte every 100 ms.
//!
//! Hostile conversations, whose outcome is recorded (one that never comes, a
//! hang, is a failure): a reset in the middle of a message; a half-close in
//! the middle of a message; an overlong line; garbage; an abandoned TLS
//! handshake (after STARTTLS for SMTP, a ClientHello to the plaintext port
//! for the others); a client that sends without ever reading, then resets.
//!
//! Output: a line per server (`server NAME valid_ok=.. valid_failed=..
//! hostile=.. hostile_failed=..`), a line per case and outcome, and the
//! first failures. Exits with 1 if a valid conversation or a stored message was
//! wrong, or a hostile conversation hung.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    io,
    net::SocketAddr,
    ops::Range,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    net::TcpStream,
    time::{sleep, timeout},
};
use tokio_rustls::{
    rustls::{
        self,
        pki_types::{pem::PemObject, CertificateDer, ServerName},
    },
    TlsConnector,
};

/// The bound of one read, write or connect of a conversation.
const STEP: Duration = Duration::from_secs(30);

/// The bound of a whole conversation: the slowest, one byte every 100 ms, take
/// about 10 s.
const CONVERSATION: Duration = Duration::from_secs(150);

/// The pause between the bytes of a slow client.
const SLOW: Duration = Duration::from_millis(100);

/// How long a client that never reads keeps writing, and then waits.
const NEVER_READING: Duration = Duration::from_secs(3);

/// The HTTP example's idle timeout: how long it waits for the rest of a
/// head.
const HTTP_IDLE: Duration = Duration::from_secs(30);

/// The failures printed in full, per case.
const FAILURES_SHOWN: usize = 3;

// ---------------------------------------------------------------------------
// What is run and what came of it.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Protocol {
    Smtp,
    Http,
    Memcached,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp",
            Protocol::Http => "http",
            Protocol::Memcached => "memcached",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Case {
    Valid,
    Pipelined,
    StartTls,
    Slow,
    ResetMidMessage,
    HalfClose,
    OverlongLine,
    Garbage,
    AbandonedTls,
    NeverReads,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Valid => "valid",
            Case::Pipelined => "pipelined",
            Case::StartTls => "starttls",
            Case::Slow => "one-byte-every-100ms",
            Case::ResetMidMessage => "reset-mid-message",
            Case::HalfClose => "half-close-mid-message",
            Case::OverlongLine => "overlong-line",
            Case::Garbage => "garbage",
            Case::AbandonedTls => "abandoned-tls-handshake",
            Case::NeverReads => "never-reads",
        }
    }

    /// Whether its results must all be right (else an outcome is recorded).
    fn is_valid(self) -> bool {
        matches!(
            self,
            Case::Valid | Case::Pipelined | Case::StartTls | Case::Slow
        )
    }

    /// A case for the next conversation, in these proportions: valid conversations
    /// about two thirds, slow ones rare (each holds its slot for seconds).
    fn pick(protocol: Protocol, random: &mut Random) -> Case {
        match random.below(100) {
            0..=39 => Case::Valid,
            40..=54 => Case::Pipelined,
            55..=64 if protocol == Protocol::Smtp => Case::StartTls,
            55..=64 => Case::Valid,
            65..=66 => Case::Slow,
            67..=72 => Case::ResetMidMessage,
            73..=78 => Case::HalfClose,
            79..=84 => Case::OverlongLine,
            85..=90 => Case::Garbage,
            91..=95 => Case::AbandonedTls,
            _ => Case::NeverReads,
        }
    }
}

/// What one conversation came to: for a valid one, `Ok` or what was wrong; for
/// a hostile one, what the server did, or (`Err`) a failure.
type Outcome = Result<&'static str, String>;

#[derive(Debug, Default)]
struct Tally {
    outcomes: BTreeMap<&'static str, u64>,
    failed: u64,
    failures: Vec<String>,
}

#[derive(Default)]
struct Results {
    tallies: Mutex<BTreeMap<(Protocol, Case), Tally>>,
    /// Messages the SMTP server accepted: token to what must be stored.
    accepted: Mutex<HashMap<String, Vec<u8>>>,
    /// Tokens of messages cut off by a reset or a half-close: must not be.
    cut_off: Mutex<Vec<String>>,
}

impl Results {
    fn record(&self, protocol: Protocol, case: Case, outcome: Outcome) {
        let mut tallies = self.tallies.lock().unwrap();
        let tally = tallies.entry((protocol, case)).or_default();
        match outcome {
            Ok(what) => *tally.outcomes.entry(what).or_default() += 1,
            Err(failure) => {
                tally.failed += 1;
                if tally.failures.len() < FAILURES_SHOWN {
                    tally.failures.push(failure);
                }
            }
        }
    }
}

/// A small PRNG (xorshift64*), one per slot.
struct Random(u64);

impl Random {
    fn new(seed: u64) -> Self {
        Random(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    /// A length in `lengths` (not empty).
    fn length(&mut self, lengths: Range<usize>) -> usize {
        lengths.start + self.below((lengths.end - lengths.start) as u64) as usize
    }

    /// Random bytes, of a length in `lengths`.
    fn bytes(&mut self, lengths: Range<usize>) -> Vec<u8> {
        let length = self.length(lengths);
        (0..length).map(|_| self.next() as u8).collect()
    }

    /// Random lower-case letters, as many as a length in `lengths`.
    fn text(&mut self, lengths: Range<usize>) -> String {
        let length = self.length(lengths);
        (0..length)
            .map(|_| char::from(b'a' + self.below(26) as u8))
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Connections.

/// Where the servers are, and how to talk TLS to the SMTP one.
struct Setup {
    smtp: SocketAddr,
    http: SocketAddr,
    memcached: SocketAddr,
    tls: TlsConnector,
    /// The first bytes a TLS client sends: a ClientHello.
    client_hello: Vec<u8>,
    /// The mean pause between the commands of a conversation.
    think: Duration,
    results: Results,
}

impl Setup {
    async fn think(&self, random: &mut Random) {
        let millis = self.think.as_millis() as u64;
        if millis > 0 {
            sleep(Duration::from_millis(random.below(2 * millis))).await;
        }
    }
}

async fn step<T>(
    what: &str,
    future: impl std::future::Future<Output = io::Result<T>>,
) -> Result<T, String> {
    match timeout(STEP, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("{what}: {error}")),
        Err(_) => Err(format!("{what}: no answer in {STEP:?}")),
    }
}

async fn connect(address: SocketAddr) -> Result<TcpStream, String> {
    let stream = step("connect", TcpStream::connect(address)).await?;
    stream
        .set_nodelay(true)
        .map_err(|error| error.to_string())?;
    Ok(stream)
}

/// Resets the connection: linger 0, then close, sends RST instead of FIN.
fn reset(stream: TcpStream) {
    // A zero linger does not block on drop (a non-zero one would: hence
    // the deprecation); it is how a client sends a reset.
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// A conversation's connection: buffered reads, writes as they are.
struct Line<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Line<S> {
    fn new(io: S) -> Self {
        Line {
            io: BufReader::new(io),
        }
    }

    async fn send(&mut self, bytes: impl AsRef<[u8]>) -> Result<(), String> {
        step("write", self.io.write_all(bytes.as_ref())).await
    }

    /// Sends `bytes` one at a time, [`SLOW`] apart.
    async fn send_slowly(&mut self, bytes: impl AsRef<[u8]>) -> Result<(), String> {
        for byte in bytes.as_ref() {
            self.send([*byte]).await?;
            sleep(SLOW).await;
        }
        Ok(())
    }

    /// One line, its line ending removed.
    async fn line(&mut self) -> Result<String, String> {
        let mut line = Vec::new();
        let read = step("read a line", self.io.read_until(b'\n', &mut line)).await?;
        if read == 0 {
            return Err("the server closed the connection".to_owned());
        }
        while line
            .last()
            .is_some_and(|byte| *byte == b'\n' || *byte == b'\r')
        {
            line.pop();
        }
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    async fn exactly(&mut self, length: usize) -> Result<Vec<u8>, String> {
        let mut bytes = vec![0; length];
        step("read", self.io.read_exact(&mut bytes)).await?;
        Ok(bytes)
    }

    /// Reads until the server closes; `Err` if it does not within [`STEP`].
    async fn read_to_end(&mut self) -> Result<Vec<u8>, String> {
        let mut rest = Vec::new();
        step("read to the end", self.io.read_to_end(&mut rest)).await?;
        Ok(rest)
    }

    async fn expect(&mut self, prefix: &str, after: &str) -> Result<String, String> {
        let line = self.line().await?;
        if line.starts_with(prefix) {
            Ok(line)
        } else {
            Err(format!("after {after}: {line:?}, not {prefix}..."))
        }
    }

    async fn expect_end(&mut self, after: &str) -> Result<(), String> {
        let rest = self.read_to_end().await?;
        if rest.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "after {after}: {:?} before the end",
                String::from_utf8_lossy(&rest)
            ))
        }
    }

    async fn shutdown(&mut self) -> Result<(), String> {
        step("shutdown", self.io.get_mut().shutdown()).await
    }
}

impl Line<TcpStream> {
    fn reset(self) {
        reset(self.io.into_inner());
    }
}

/// Writes `request` over and over without reading a reply, for at most
/// [`NEVER_READING`], waits as long again, and resets. The outcome: whether
/// the server stopped reading (its replies filled the connection) or went
/// on taking requests in.
async fn never_read(mut stream: TcpStream, request: &[u8]) -> Outcome {
    let batch = request.repeat((64 << 10) / request.len() + 1);
    let started = Instant::now();
    let outcome = loop {
        if started.elapsed() >= NEVER_READING {
            break Ok("still reading after 3 s, reset");
        }
        match timeout(Duration::from_secs(1), stream.write_all(&batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break Ok("closed the connection, reset"),
            // No progress for a second: the server no longer reads.
            Err(_) => break Ok("stopped reading (backpressure), reset"),
        }
    };
    sleep(NEVER_READING).await;
    reset(stream);
    outcome
}

// ---------------------------------------------------------------------------
// SMTP.

/// A multi-line reply's last line (`250-...` lines before it).
async fn smtp_reply<S: AsyncRead + AsyncWrite + Unpin>(
    line: &mut Line<S>,
    code: &str,
    after: &str,
) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    loop {
        let text = line.line().await?;
        let done = text.as_bytes().get(3) != Some(&b'-');
        if !text.starts_with(code) {
            return Err(format!("after {after}: {text:?}, not {code}"));
        }
        lines.push(text);
        if done {
            return Ok(lines);
        }
    }
}

/// A message of a few lines, some starting with a dot, with `token` in its
/// `Message-ID`: the text as stored (CRLF lines), and as sent (dots
/// doubled, `.` line added).
fn smtp_message(token: &str, random: &mut Random) -> (Vec<u8>, Vec<u8>) {
    let mut text = format!("Message-ID: <{token}@soak.example>\r\nSubject: soak\r\n\r\n");
    for _ in 0..random.below(12) {
        let dot = if random.below(4) == 0 { "." } else { "" };
        let _ = write!(text, "{dot}{}\r\n", random.text(0..70));
    }
    let mut sent = String::new();
    for line in text.split_inclusive("\r\n") {
        if line.starts_with('.') {
            sent.push('.');
        }
        sent.push_str(line);
    }
    sent.push_str(".\r\n");
    (text.into_bytes(), sent.into_bytes())
}

async fn smtp_transaction<S: AsyncRead + AsyncWrite + Unpin>(
    line: &mut Line<S>,
    setup: &Setup,
    token: &str,
    random: &mut Random,
) -> Result<(), String> {
    let (text, sent) = smtp_message(token, random);
    line.send("MAIL FROM:<soak@client.example>\r\n").await?;
    smtp_reply(line, "250", "MAIL").await?;
    setup.think(random).await;
    line.send(format!("RCPT TO:<{token}@soak.example>\r\n"))
        .await?;
    smtp_reply(line, "250", "RCPT").await?;
    line.send("DATA\r\n").await?;
    smtp_reply(line, "354", "DATA").await?;
    setup.think(random).await;
    line.send(&sent).await?;
    smtp_reply(line, "250", "the message").await?;
    setup
        .results
        .accepted
        .lock()
        .unwrap()
        .insert(token.to_owned(), text);
    Ok(())
}

async fn smtp_conversation(
    setup: &Setup,
    case: Case,
    token: String,
    random: &mut Random,
) -> Outcome {
    let stream = connect(setup.smtp).await?;
    let mut line = Line::new(stream);
    smtp_reply(&mut line, "220", "connecting").await?;
    match case {
        Case::Slow => {
            let (text, sent) = smtp_short_message(&token);
            let commands = format!(
                "EHLO slow.example\r\nMAIL FROM:<slow@client.example>\r\nRCPT TO:<{token}@soak.example>\r\nDATA\r\n"
            );
            line.send_slowly(&commands).await?;
            for expected in ["250", "250", "250", "354"] {
                smtp_reply(&mut line, expected, "a slow command").await?;
            }
            line.send_slowly(&sent).await?;
            smtp_reply(&mut line, "250", "a slow message").await?;
            setup
                .results
                .accepted
                .lock()
                .unwrap()
                .insert(token.clone(), text);
            line.send_slowly("QUIT\r\n").await?;
            smtp_reply(&mut line, "221", "QUIT").await?;
            line.expect_end("QUIT").await?;
            return Ok("ok");
        }
        Case::Garbage => {
            let mut garbage = random.bytes(1..4097);
            garbage.extend_from_slice(b"\r\n");
            line.send(&garbage).await?;
            let reply = line.line().await;
            line.reset();
            return match reply {
                Ok(text) if text.starts_with('5') || text.starts_with('4') => {
                    Ok("answered with an error")
                }
                Ok(text) => Err(format!("garbage answered {text:?}")),
                Err(_) => Ok("closed"),
            };
        }
        _ => {}
    }
    line.send("EHLO soak.example\r\n").await?;
    let capabilities = smtp_reply(&mut line, "250", "EHLO").await?;
    setup.think(random).await;
    match case {
        Case::Valid => {
            smtp_transaction(&mut line, setup, &token, random).await?;
            line.send("QUIT\r\n").await?;
            smtp_reply(&mut line, "221", "QUIT").await?;
            line.expect_end("QUIT").await?;
            Ok("ok")
        }
        Case::Pipelined => {
            let (text, sent) = smtp_message(&token, random);
            line.send(format!(
                "MAIL FROM:<soak@client.example>\r\nRCPT TO:<{token}@soak.example>\r\nDATA\r\n"
            ))
            .await?;
            for expected in ["250", "250", "354"] {
                smtp_reply(&mut line, expected, "pipelined commands").await?;
            }
            let mut rest = sent;
            rest.extend_from_slice(b"QUIT\r\n");
            line.send(&rest).await?;
            smtp_reply(&mut line, "250", "the message").await?;
            setup
                .results
                .accepted
                .lock()
                .unwrap()
                .insert(token.clone(), text);
            smtp_reply(&mut line, "221", "QUIT").await?;
            line.expect_end("QUIT").await?;
            Ok("ok")
        }
        Case::StartTls => {
            if !capabilities.iter().any(|text| text.ends_with("STARTTLS")) {
                return Err(format!("no STARTTLS in {capabilities:?}"));
            }
            line.send("STARTTLS\r\n").await?;
            smtp_reply(&mut line, "220", "STARTTLS").await?;
            if !line.io.buffer().is_empty() {
                return Err("bytes after the 220 to STARTTLS".to_owned());
            }
            let name = ServerName::try_from("localhost").expect("a DNS name");
            let tls = step(
                "the TLS handshake",
                setup.tls.connect(name, line.io.into_inner()),
            )
            .await?;
            let mut line = Line::new(tls);
            line.send("EHLO soak.example\r\n").await?;
            let capabilities = smtp_reply(&mut line, "250", "EHLO under TLS").await?;
            if capabilities.iter().any(|text| text.ends_with("STARTTLS")) {
                return Err("STARTTLS offered under TLS".to_owned());
            }
            smtp_transaction(&mut line, setup, &token, random).await?;
            line.send("QUIT\r\n").await?;
            smtp_reply(&mut line, "221", "QUIT").await?;
            // A TLS peer may close without close_notify; the end counts.
            let _ = line.read_to_end().await;
            Ok("ok")
        }
        Case::ResetMidMessage | Case::HalfClose => {
            let (_, sent) = smtp_message(&token, random);
            line.send(format!(
                "MAIL FROM:<soak@client.example>\r\nRCPT TO:<{token}@soak.example>\r\nDATA\r\n"
            ))
            .await?;
            for expected in ["250", "250", "354"] {
                smtp_reply(&mut line, expected, "pipelined commands").await?;
            }
            // Cut before the end of the message: never the whole `.` line.
            let cut = random.below(sent.len() as u64 - 3) as usize;
            line.send(&sent[..cut]).await?;
            setup.results.cut_off.lock().unwrap().push(token);
            if case == Case::ResetMidMessage {
                line.reset();
                return Ok("reset");
            }
            line.shutdown().await?;
            let rest = line.read_to_end().await?;
            if rest.is_empty() {
                Ok("closed, nothing stored")
            } else {
                Err(format!(
                    "a half-closed message answered {:?}",
                    String::from_utf8_lossy(&rest)
                ))
            }
        }
        Case::OverlongLine => {
            let long = format!("NOOP {}\r\n", random.text(1000..5000));
            line.send(long).await?;
            smtp_reply(&mut line, "500", "an overlong line").await?;
            line.send("NOOP\r\n").await?;
            smtp_reply(&mut line, "250", "NOOP after an overlong line").await?;
            line.send("QUIT\r\n").await?;
            smtp_reply(&mut line, "221", "QUIT").await?;
            line.expect_end("QUIT").await?;
            Ok("500 line too long, the conversation went on")
        }
        Case::AbandonedTls => {
            line.send("STARTTLS\r\n").await?;
            smtp_reply(&mut line, "220", "STARTTLS").await?;
            let hello = &setup.client_hello;
            let part = random.below(hello.len() as u64) as usize;
            line.send(&hello[..part]).await?;
            setup.think(random).await;
            if random.below(2) == 0 {
                line.reset();
                Ok("half a ClientHello, reset")
            } else {
                drop(line);
                Ok("half a ClientHello, closed")
            }
        }
        Case::NeverReads => never_read(line.io.into_inner(), b"NOOP\r\n").await,
        Case::Slow | Case::Garbage => unreachable!("handled above"),
    }
}

/// A message short enough to send one byte at a time.
fn smtp_short_message(token: &str) -> (Vec<u8>, Vec<u8>) {
    let text = format!("Message-ID: <{token}@soak.example>\r\n\r\n.hi\r\n");
    let sent = format!("Message-ID: <{token}@soak.example>\r\n\r\n..hi\r\n.\r\n");
    (text.into_bytes(), sent.into_bytes())
}

/// Every accepted message is in the Maildir, byte for byte after the
/// server's trace fields, once; no cut-off one is.
fn check_maildir(maildir: &Path, results: &Results) -> Result<usize, String> {
    let accepted = results.accepted.lock().unwrap();
    let cut_off = results.cut_off.lock().unwrap();
    let mut found: HashMap<String, usize> = HashMap::new();
    let mut problems = Vec::new();
    for folder in ["new", "cur"] {
        let entries = match std::fs::read_dir(maildir.join(folder)) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(format!("{}: {error}", maildir.display())),
        };
        for entry in entries {
            let path = entry.map_err(|error| error.to_string())?.path();
            let stored =
                std::fs::read(&path).map_err(|error| format!("{}: {error}", path.display()))?;
            let Some(token) = message_token(&stored) else {
                continue;
            };
            *found.entry(token.clone()).or_default() += 1;
            match accepted.get(&token) {
                Some(text) if stored.ends_with(text) => {}
                Some(_) => problems.push(format!("{} differs from what was sent", path.display())),
                None => problems.push(format!("{} was stored but never accepted", path.display())),
            }
        }
    }
    for token in accepted.keys() {
        match found.get(token) {
            Some(1) => {}
            Some(count) => problems.push(format!("message {token} stored {count} times")),
            None => problems.push(format!("message {token} accepted but not stored")),
        }
    }
    for token in cut_off.iter() {
        if found.contains_key(token) {
            problems.push(format!("message {token} was cut off but stored"));
        }
    }
    if problems.is_empty() {
        Ok(accepted.len())
    } else {
        let shown = problems.len().min(10);
        Err(format!(
            "{} problems: {}",
            problems.len(),
            problems[..shown].join("; ")
        ))
    }
}

fn message_token(stored: &[u8]) -> Option<String> {
    let marker = b"Message-ID: <";
    let start = stored
        .windows(marker.len())
        .position(|window| window == marker)?
        + marker.len();
    let length = stored[start..].iter().position(|byte| *byte == b'@')?;
    Some(String::from_utf8_lossy(&stored[start..start + length]).into_owned())
}

// ---------------------------------------------------------------------------
// HTTP.

/// A response: its status, whether the server will close, and its body.
struct Response {
    status: u16,
    closes: bool,
    body: Vec<u8>,
}

async fn http_response<S: AsyncRead + AsyncWrite + Unpin>(
    line: &mut Line<S>,
) -> Result<Response, String> {
    let mut head = Vec::new();
    loop {
        let read = step("read a head", line.io.read_until(b'\n', &mut head)).await?;
        if read == 0 {
            return Err("the server closed the connection before a response".to_owned());
        }
        if head.ends_with(b"\r\n\r\n") {
            break;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        other => return Err(format!("a bad response head ({other:?}): {head:?}")),
    }
    let status = response.code.unwrap_or(0);
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .map(|header| String::from_utf8_lossy(header.value).into_owned())
    };
    let length: usize = header("Content-Length")
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| format!("no Content-Length in {head:?}"))?;
    let closes = header("Connection").is_some_and(|value| value.eq_ignore_ascii_case("close"));
    let body = line.exactly(length).await?;
    Ok(Response {
        status,
        closes,
        body,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut text, byte| {
        let _ = write!(text, "{byte:02x}");
        text
    })
}

/// A request, and the echo's length and digest it must get back.
struct Request {
    bytes: Vec<u8>,
    body_length: usize,
    sha256: String,
    closes: bool,
}

fn http_request(slot: usize, random: &mut Random, closes: bool) -> Request {
    let connection = if closes { "Connection: close\r\n" } else { "" };
    let lengths = match random.below(4) {
        0 => 0..1,
        1 => 0..200,
        2 => 0..16 << 10,
        _ => 0..64 << 10,
    };
    let body = random.bytes(lengths);
    let mut bytes = Vec::new();
    if body.is_empty() {
        bytes.extend_from_slice(
            format!(
                "GET /soak/{slot}?n={} HTTP/1.1\r\nHost: soak\r\n{connection}\r\n",
                random.below(1000)
            )
            .as_bytes(),
        );
    } else if random.below(2) == 0 {
        bytes.extend_from_slice(
            format!(
                "POST /soak/{slot} HTTP/1.1\r\nHost: soak\r\nContent-Length: {}\r\n{connection}\r\n",
                body.len()
            )
            .as_bytes(),
        );
        bytes.extend_from_slice(&body);
    } else {
        bytes.extend_from_slice(
            format!(
                "POST /soak/{slot} HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n{connection}\r\n"
            )
            .as_bytes(),
        );
        let mut rest = &body[..];
        while !rest.is_empty() {
            let size = (1 + random.below(8192) as usize).min(rest.len());
            bytes.extend_from_slice(format!("{size:x}\r\n").as_bytes());
            bytes.extend_from_slice(&rest[..size]);
            bytes.extend_from_slice(b"\r\n");
            rest = &rest[size..];
        }
        bytes.extend_from_slice(b"0\r\n\r\n");
    }
    Request {
        bytes,
        body_length: body.len(),
        sha256: hex(&Sha256::digest(&body)),
        closes,
    }
}

fn check_echo(request: &Request, response: &Response) -> Result<(), String> {
    if response.status != 200 {
        return Err(format!("status {}", response.status));
    }
    let json = String::from_utf8_lossy(&response.body);
    let length = format!("\"body_length\":{},", request.body_length);
    let digest = format!("\"sha256\":\"{}\"", request.sha256);
    if !json.contains(&length) || !json.contains(&digest) {
        return Err(format!(
            "the echo of a {}-byte body is not {length} {digest}",
            request.body_length
        ));
    }
    if response.closes != request.closes {
        return Err(format!(
            "Connection: close {} for a request asking {}",
            response.closes, request.closes
        ));
    }
    Ok(())
}

/// The status of the one response a hostile request gets, and the end.
async fn http_refusal(line: &mut Line<TcpStream>, expected: &[u16]) -> Outcome {
    match http_response(line).await {
        Ok(response) if expected.contains(&response.status) => {
            line.expect_end("a refusal").await?;
            Ok(match response.status {
                400 => "400, closed",
                408 => "408, closed",
                431 => "431, closed",
                501 => "501, closed",
                505 => "505, closed",
                _ => "refused, closed",
            })
        }
        Ok(response) => Err(format!(
            "status {}, not one of {expected:?}",
            response.status
        )),
        Err(error) if error.contains("closed") => Ok("closed without a response"),
        Err(error) => Err(error),
    }
}

async fn http_conversation(setup: &Setup, case: Case, slot: usize, random: &mut Random) -> Outcome {
    let stream = connect(setup.http).await?;
    let mut line = Line::new(stream);
    match case {
        Case::Valid => {
            let count = 1 + random.below(4);
            for index in 0..count {
                let request = http_request(slot, random, index + 1 == count);
                line.send(&request.bytes).await?;
                let response = http_response(&mut line).await?;
                check_echo(&request, &response)?;
                setup.think(random).await;
            }
            line.expect_end("Connection: close").await?;
            Ok("ok")
        }
        Case::Pipelined => {
            let requests: Vec<Request> = (0..3)
                .map(|index| http_request(slot, random, index == 2))
                .collect();
            let all: Vec<u8> = requests
                .iter()
                .flat_map(|request| request.bytes.clone())
                .collect();
            line.send(&all).await?;
            for request in &requests {
                let response = http_response(&mut line).await?;
                check_echo(request, &response)?;
            }
            line.expect_end("Connection: close").await?;
            Ok("ok")
        }
        Case::Slow => {
            let request = Request {
                bytes: format!(
                    "GET /slow/{slot} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n"
                )
                .into_bytes(),
                body_length: 0,
                sha256: hex(&Sha256::digest(b"")),
                closes: true,
            };
            line.send_slowly(&request.bytes).await?;
            let response = http_response(&mut line).await?;
            check_echo(&request, &response)?;
            line.expect_end("Connection: close").await?;
            Ok("ok")
        }
        Case::ResetMidMessage => {
            let head = "POST /upload HTTP/1.1\r\nHost: soak\r\nContent-Length: 100000\r\n\r\n";
            line.send(head).await?;
            line.send(random.bytes(0..50_000)).await?;
            line.reset();
            Ok("reset")
        }
        Case::HalfClose => {
            let head = "POST /upload HTTP/1.1\r\nHost: soak\r\nContent-Length: 1000\r\n\r\n";
            line.send(head).await?;
            line.send(random.bytes(0..1000)).await?;
            line.shutdown().await?;
            http_refusal(&mut line, &[400]).await
        }
        Case::OverlongLine => {
            let long = format!(
                "GET / HTTP/1.1\r\nHost: soak\r\nX-Long: {}\r\n\r\n",
                random.text(9000..17000)
            );
            line.send(long).await?;
            http_refusal(&mut line, &[431]).await
        }
        Case::Garbage => {
            let mut garbage = random.bytes(1..4097);
            garbage.extend_from_slice(b"\r\n\r\n");
            line.send(&garbage).await?;
            http_refusal(&mut line, &[400, 431, 501, 505]).await
        }
        Case::AbandonedTls => {
            // No empty line ends a ClientHello: the server may wait for the
            // rest of the head until its idle timeout (30 s), so this waits
            // longer than a step.
            line.send(&setup.client_hello).await?;
            let started = Instant::now();
            let mut answer = Vec::new();
            match timeout(HTTP_IDLE + STEP, line.io.read_to_end(&mut answer)).await {
                Err(_) => Err(format!(
                    "no answer to a ClientHello in {:?}",
                    HTTP_IDLE + STEP
                )),
                Ok(_) if answer.starts_with(b"HTTP/1.1 400 ") => Ok("400, closed"),
                Ok(_) if !answer.is_empty() => Err(format!(
                    "a ClientHello answered {:?}",
                    String::from_utf8_lossy(&answer[..answer.len().min(80)])
                )),
                Ok(_) if started.elapsed() < Duration::from_secs(1) => Ok("closed at once"),
                Ok(_) => Ok("closed without a response after the idle timeout"),
            }
        }
        Case::NeverReads => {
            never_read(
                line.io.into_inner(),
                b"GET /never-read HTTP/1.1\r\nHost: soak\r\n\r\n",
            )
            .await
        }
        Case::StartTls => unreachable!("SMTP only"),
    }
}

// ---------------------------------------------------------------------------
// memcached.

async fn memcached_value(
    line: &mut Line<TcpStream>,
    key: &str,
    value: &[u8],
    with_cas: bool,
) -> Result<u64, String> {
    let header = line.line().await?;
    let fields: Vec<&str> = header.split(' ').collect();
    let expected_fields = if with_cas { 5 } else { 4 };
    if fields.len() != expected_fields
        || fields[0] != "VALUE"
        || fields[1] != key
        || fields[3] != value.len().to_string()
    {
        return Err(format!("{header:?} for {key} of {} bytes", value.len()));
    }
    let data = line.exactly(value.len() + 2).await?;
    if &data[..value.len()] != value || &data[value.len()..] != b"\r\n" {
        return Err(format!("the value of {key} differs from what was set"));
    }
    Ok(if with_cas {
        fields[4]
            .parse()
            .map_err(|_| format!("a bad cas in {header:?}"))?
    } else {
        0
    })
}

async fn memcached_conversation(
    setup: &Setup,
    case: Case,
    slot: usize,
    random: &mut Random,
) -> Outcome {
    let stream = connect(setup.memcached).await?;
    let mut line = Line::new(stream);
    let key = format!("soak:{slot}");
    match case {
        Case::Valid => {
            let lengths = match random.below(8) {
                0 => 0..100_000,
                _ => 0..4096,
            };
            let value = random.bytes(lengths);
            let mut command = format!("set {key} 0 0 {}\r\n", value.len()).into_bytes();
            command.extend_from_slice(&value);
            command.extend_from_slice(b"\r\n");
            line.send(&command).await?;
            line.expect("STORED", "set").await?;
            setup.think(random).await;
            line.send(format!("get {key}\r\n")).await?;
            memcached_value(&mut line, &key, &value, false).await?;
            line.expect("END", "get").await?;
            line.send(format!("append {key} 0 0 2\r\nxy\r\n")).await?;
            line.expect("STORED", "append").await?;
            let mut appended = value.clone();
            appended.extend_from_slice(b"xy");
            line.send(format!("gets {key}\r\n")).await?;
            let cas = memcached_value(&mut line, &key, &appended, true).await?;
            line.expect("END", "gets").await?;
            setup.think(random).await;
            line.send(format!("cas {key} 0 0 1 {cas}\r\nz\r\n")).await?;
            line.expect("STORED", "cas").await?;
            line.send(format!("cas {key} 0 0 1 {cas}\r\nw\r\n")).await?;
            line.expect("EXISTS", "a second cas of the same unique")
                .await?;
            let counter = format!("{key}:n");
            line.send(format!("set {counter} 0 0 2\r\n10\r\nincr {counter} 5\r\n"))
                .await?;
            line.expect("STORED", "set a counter").await?;
            line.expect("15", "incr").await?;
            line.send(format!("delete {key}\r\ndelete {counter}\r\nget {key}\r\n"))
                .await?;
            line.expect("DELETED", "delete").await?;
            line.expect("DELETED", "delete").await?;
            line.expect("END", "get after delete").await?;
            line.send("quit\r\n").await?;
            line.expect_end("quit").await?;
            Ok("ok")
        }
        Case::Pipelined => {
            let first = random.bytes(0..2048);
            let second = random.bytes(0..2048);
            let mut commands = Vec::new();
            for (suffix, value) in [("a", &first), ("b", &second)] {
                commands.extend_from_slice(
                    format!("set {key}:{suffix} 0 0 {}\r\n", value.len()).as_bytes(),
                );
                commands.extend_from_slice(value);
                commands.extend_from_slice(b"\r\n");
            }
            commands.extend_from_slice(
                format!("get {key}:a {key}:b\r\ndelete {key}:a\r\ndelete {key}:b\r\nquit\r\n")
                    .as_bytes(),
            );
            line.send(&commands).await?;
            line.expect("STORED", "set").await?;
            line.expect("STORED", "set").await?;
            memcached_value(&mut line, &format!("{key}:a"), &first, false).await?;
            memcached_value(&mut line, &format!("{key}:b"), &second, false).await?;
            line.expect("END", "get").await?;
            line.expect("DELETED", "delete").await?;
            line.expect("DELETED", "delete").await?;
            line.expect_end("quit").await?;
            Ok("ok")
        }
        Case::Slow => {
            line.send_slowly(format!("version\r\nget {key}:slow\r\n"))
                .await?;
            line.expect("VERSION", "version").await?;
            line.expect("END", "get of a missing key").await?;
            Ok("ok")
        }
        Case::ResetMidMessage => {
            line.send(format!("set {key}:cut 0 0 10000\r\n")).await?;
            line.send(random.bytes(0..9_000)).await?;
            line.reset();
            Ok("reset")
        }
        Case::HalfClose => {
            line.send(format!("set {key}:cut 0 0 1000\r\n")).await?;
            line.send(random.bytes(0..900)).await?;
            line.shutdown().await?;
            let rest = line.read_to_end().await?;
            if rest.is_empty() {
                Ok("closed, nothing stored")
            } else {
                Err(format!(
                    "a half-closed set answered {:?}",
                    String::from_utf8_lossy(&rest)
                ))
            }
        }
        Case::OverlongLine => {
            line.send(format!("get {}\r\nversion\r\n", random.text(3000..8000)))
                .await?;
            line.expect("CLIENT_ERROR bad command line format", "an overlong line")
                .await?;
            line.expect("VERSION", "version after an overlong line")
                .await?;
            Ok("CLIENT_ERROR, the conversation went on")
        }
        Case::Garbage => {
            // No line ending in it, so that no length it might hold starts a
            // data block: then one line, which memcached calls an error.
            let garbage: Vec<u8> = random
                .bytes(1..1501)
                .into_iter()
                .map(|byte| {
                    if byte == b'\n' || byte == b'\r' {
                        b' '
                    } else {
                        byte
                    }
                })
                .collect();
            line.send(&garbage).await?;
            line.send("\r\nversion\r\n").await?;
            let reply = line.line().await?;
            line.expect("VERSION", "version after garbage").await?;
            if reply.contains("ERROR") {
                Ok("an error, the conversation went on")
            } else {
                Err(format!("garbage answered {reply:?}"))
            }
        }
        Case::AbandonedTls => {
            line.send(&setup.client_hello).await?;
            match timeout(STEP, line.line()).await {
                Ok(Ok(reply)) if reply.contains("ERROR") => {
                    line.reset();
                    Ok("an error line")
                }
                Ok(Ok(reply)) => Err(format!("a ClientHello answered {reply:?}")),
                Ok(Err(_)) => Ok("closed"),
                Err(_) => Err("no answer to a ClientHello".to_owned()),
            }
        }
        Case::NeverReads => {
            let big = vec![b'v'; 64 << 10];
            let mut set = format!("set soak:big 0 0 {}\r\n", big.len()).into_bytes();
            set.extend_from_slice(&big);
            set.extend_from_slice(b"\r\n");
            line.send(&set).await?;
            line.expect("STORED", "set").await?;
            never_read(line.io.into_inner(), b"get soak:big\r\n").await
        }
        Case::StartTls => unreachable!("SMTP only"),
    }
}

// ---------------------------------------------------------------------------
// The run.

/// One slot: conversations one after the other until `deadline`.
async fn slot(setup: Arc<Setup>, number: usize, deadline: Instant) {
    let mut random = Random::new(number as u64 + 1);
    let protocol = [Protocol::Smtp, Protocol::Http, Protocol::Memcached][number % 3];
    // Spread the first connections over a few seconds.
    sleep(Duration::from_millis(random.below(3000))).await;
    let mut conversations = 0;
    while Instant::now() < deadline {
        let case = Case::pick(protocol, &mut random);
        let token = format!("s{number}x{conversations}");
        let mut conversation_random = Random::new(random.next());
        let run = async {
            match protocol {
                Protocol::Smtp => {
                    smtp_conversation(&setup, case, token, &mut conversation_random).await
                }
                Protocol::Http => {
                    http_conversation(&setup, case, number, &mut conversation_random).await
                }
                Protocol::Memcached => {
                    memcached_conversation(&setup, case, number, &mut conversation_random).await
                }
            }
        };
        let outcome = match timeout(CONVERSATION, run).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("the conversation took over {CONVERSATION:?}")),
        };
        let outcome = outcome
            .map_err(|failure| format!("slot {number}, conversation {conversations}: {failure}"));
        setup.results.record(protocol, case, outcome);
        conversations += 1;
        sleep(Duration::from_millis(random.below(200))).await;
    }
}

struct Options {
    smtp: SocketAddr,
    http: SocketAddr,
    memcached: SocketAddr,
    maildir: PathBuf,
    certificate: PathBuf,
    clients: usize,
    seconds: u64,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut values: HashMap<&str, &str> = HashMap::new();
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
        values.insert(flag.as_str(), value.as_str());
    }
    let get = |flag: &str| {
        values
            .get(flag)
            .copied()
            .ok_or_else(|| format!("{flag} is missing"))
    };
    let address = |flag: &str| -> Result<SocketAddr, String> {
        get(flag)?
            .parse()
            .map_err(|_| format!("{flag}: not an address"))
    };
    Ok(Options {
        smtp: address("--smtp")?,
        http: address("--http")?,
        memcached: address("--memcached")?,
        maildir: PathBuf::from(get("--maildir")?),
        certificate: PathBuf::from(get("--certificate")?),
        clients: values.get("--clients").map_or(Ok(2000), |value| {
            value
                .parse()
                .map_err(|_| "--clients: not a number".to_owned())
        })?,
        seconds: values.get("--seconds").map_or(Ok(600), |value| {
            value
                .parse()
                .map_err(|_| "--seconds: not a number".to_owned())
        })?,
    })
}

/// `certificate DIR`: a self-signed certificate for `localhost`, in PEM.
fn write_certificate(directory: &Path) -> Result<(), String> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .map_err(|error| error.to_string())?;
    std::fs::create_dir_all(directory).map_err(|error| error.to_string())?;
    std::fs::write(directory.join("certificate.pem"), certified.cert.pem())
        .map_err(|error| error.to_string())?;
    std::fs::write(
        directory.join("key.pem"),
        certified.signing_key.serialize_pem(),
    )
    .map_err(|error| error.to_string())?;
    Ok(())
}

fn tls_client(certificate: &Path) -> Result<(TlsConnector, Vec<u8>), String> {
    let mut roots = rustls::RootCertStore::empty();
    for loaded in CertificateDer::pem_file_iter(certificate)
        .map_err(|error| format!("{}: {error}", certificate.display()))?
    {
        roots
            .add(loaded.map_err(|error| error.to_string())?)
            .map_err(|error| error.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let config = Arc::new(config);
    // A ClientHello as a real client sends it, for the abandoned handshakes.
    let name = ServerName::try_from("localhost").expect("a DNS name");
    let mut connection = rustls::ClientConnection::new(Arc::clone(&config), name)
        .map_err(|error| error.to_string())?;
    let mut client_hello = Vec::new();
    connection
        .write_tls(&mut client_hello)
        .map_err(|error| error.to_string())?;
    Ok((TlsConnector::from(config), client_hello))
}

fn report(results: &Results) -> bool {
    let tallies = results.tallies.lock().unwrap();
    let mut passed = true;
    for protocol in [Protocol::Smtp, Protocol::Http, Protocol::Memcached] {
        let (mut valid_ok, mut valid_failed, mut hostile, mut hostile_failed) = (0, 0, 0, 0);
        for ((of, case), tally) in tallies.iter() {
            if *of != protocol {
                continue;
            }
            let ok: u64 = tally.outcomes.values().sum();
            if case.is_valid() {
                valid_ok += ok;
                valid_failed += tally.failed;
            } else {
                hostile += ok + tally.failed;
                hostile_failed += tally.failed;
            }
        }
        passed &= valid_failed == 0 && hostile_failed == 0 && valid_ok > 0;
        println!(
            "server {} valid_ok={valid_ok} valid_failed={valid_failed} hostile={hostile} hostile_failed={hostile_failed}",
            protocol.name()
        );
    }
    for ((protocol, case), tally) in tallies.iter() {
        let outcomes: Vec<String> = tally
            .outcomes
            .iter()
            .map(|(what, count)| format!("{count} {what}"))
            .collect();
        println!(
            "case {} {}: {}{}",
            protocol.name(),
            case.name(),
            outcomes.join(", "),
            if tally.failed > 0 {
                format!(", {} FAILED", tally.failed)
            } else {
                String::new()
            }
        );
        for failure in &tally.failures {
            println!("failure {} {}: {failure}", protocol.name(), case.name());
        }
    }
    passed
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("certificate") {
        let directory = args
            .get(1)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        if let Err(error) = write_certificate(&directory) {
            eprintln!("soak_client: {error}");
            std::process::exit(2);
        }
        return;
    }
    let options = parse_args(&args).unwrap_or_else(|message| {
        eprintln!("soak_client: {message}\nusage: soak_client --smtp ADDRESS --http ADDRESS --memcached ADDRESS --maildir DIR --certificate FILE [--clients N] [--seconds S]");
        std::process::exit(2);
    });
    let (tls, client_hello) = tls_client(&options.certificate).unwrap_or_else(|message| {
        eprintln!("soak_client: {message}");
        std::process::exit(2);
    });
    let think = std::env::var("SOAK_THINK_MS")
        .ok()
        .and_then(|value| value.parse().ok())
        .map_or(Duration::from_millis(1500), Duration::from_millis);
    let setup = Arc::new(Setup {
        smtp: options.smtp,
        http: options.http,
        memcached: options.memcached,
        tls,
        client_hello,
        think,
        results: Results::default(),
    });
    let started = Instant::now();
    let deadline = started + Duration::from_secs(options.seconds);
    let slots: Vec<_> = (0..options.clients)
        .map(|number| tokio::spawn(slot(Arc::clone(&setup), number, deadline)))
        .collect();
    for handle in slots {
        if let Err(error) = handle.await {
            eprintln!("soak_client: a slot failed: {error}");
            std::process::exit(1);
        }
    }
    println!("finished in {:.0} s", started.elapsed().as_secs_f64());
    let mut passed = report(&setup.results);
    match check_maildir(&options.maildir, &setup.results) {
        Ok(count) => println!(
            "maildir ok: {count} accepted messages stored byte for byte, none cut off stored"
        ),
        Err(problems) => {
            println!("maildir FAILED: {problems}");
            passed = false;
        }
    }
    std::process::exit(if passed { 0 } else { 1 });
}
