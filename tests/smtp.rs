//! examples/smtp_server.rs driven over loopback TCP: the commands and their
//! replies, messages stored in a Maildir byte for byte, the limits,
//! STARTTLS with a rustls client, and the dot line split at every byte.
//!
//! The example is included as a module, so these tests run the very code
//! the binary runs. Every wait is bounded by a timeout.

use std::{
    io,
    net::SocketAddr,
    path::PathBuf,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{ready, Context, Poll},
    time::{Duration, UNIX_EPOCH},
};

use bytes::Bytes;
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
    time::timeout,
};
use tokio_rustls::{
    rustls::{self, pki_types::ServerName, ClientConfig, RootCertStore},
    TlsConnector,
};

#[path = "../examples/smtp_server.rs"]
#[allow(dead_code)]
mod smtp_server;

mod common;
use common::step;

use smtp_server::{Config, DotUnstuffer, Server, Store};

// ---------------------------------------------------------------------------
// A Maildir of its own for each test.

/// A directory under the system's temporary one, removed when dropped.
struct Maildir {
    path: PathBuf,
}

impl Maildir {
    fn new() -> Maildir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "asynchat-smtp-test-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        Maildir { path }
    }

    /// The names of the files in `new/` or `tmp/`, sorted.
    fn names(&self, directory: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path.join(directory))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// The messages delivered to `new/`, whole, in the order of delivery.
    fn delivered(&self) -> Vec<Vec<u8>> {
        let mut names = self.names("new");
        // The Q part counts deliveries: sort by it, not by the text.
        names.sort_by_key(|name| {
            let sequence = name.split('Q').nth(1).unwrap().split('.').next().unwrap();
            sequence.parse::<u64>().unwrap()
        });
        names
            .iter()
            .map(|name| std::fs::read(self.path.join("new").join(name)).unwrap())
            .collect()
    }

    /// The bodies delivered: each message without its trace fields.
    fn bodies(&self) -> Vec<Vec<u8>> {
        self.delivered()
            .iter()
            .map(|message| body(message).to_vec())
            .collect()
    }

    fn tmp_is_empty(&self) -> bool {
        self.names("tmp").is_empty()
    }

    /// Waits (a bounded step) until the message under way has its file in
    /// `tmp/`: a delivery creates it when it first writes.
    async fn wait_for_tmp_file(&self) {
        step("a file in tmp/", async {
            while self.names("tmp").len() != 1 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
}

/// The start of a message longer than a delivery gathers before its first
/// write (64 KiB): 80 KiB of lines.
fn long_part() -> Vec<u8> {
    format!("{}\r\n", "x".repeat(78)).repeat(1024).into_bytes()
}

impl Drop for Maildir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A stored message without the `Return-Path:` line and the `Received:`
/// field (its first line and the continuation lines after it).
fn body(message: &[u8]) -> &[u8] {
    assert!(
        message.starts_with(b"Return-Path: <"),
        "{:?}",
        String::from_utf8_lossy(message)
    );
    let mut rest = &message[message.iter().position(|&b| b == b'\n').unwrap() + 1..];
    assert!(rest.starts_with(b"Received: from "));
    loop {
        let line_end = rest.windows(2).position(|pair| pair == b"\r\n").unwrap() + 2;
        rest = &rest[line_end..];
        if !rest.starts_with(b"\t") {
            return rest;
        }
    }
}

// ---------------------------------------------------------------------------
// The server and a client.

struct Running {
    address: SocketAddr,
    server: Arc<Server>,
    maildir: Maildir,
}

/// The configuration of most tests: a Maildir, the host `mx.test`.
fn config(maildir: &Maildir) -> Config {
    Config {
        hostname: "mx.test".to_string(),
        store: Store::Maildir(maildir.path.clone()),
        ..Config::default()
    }
}

/// A server with the configuration of most tests but for what `configure`
/// changes, and the listener it is to accept from, not yet accepting: the
/// test serves the connections, or [`start_with`] does.
async fn server_and_listener(
    configure: impl FnOnce(&mut Config),
) -> (Maildir, Arc<Server>, TcpListener, SocketAddr) {
    let maildir = Maildir::new();
    let mut config = config(&maildir);
    configure(&mut config);
    let server = Arc::new(Server::new(config).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    (maildir, server, listener, address)
}

async fn start_with(configure: impl FnOnce(&mut Config)) -> Running {
    let (maildir, server, listener, address) = server_and_listener(configure).await;
    tokio::spawn(smtp_server::serve(listener, server.clone()));
    Running {
        address,
        server,
        maildir,
    }
}

async fn start() -> Running {
    start_with(|_| {}).await
}

/// One reply: its code and its lines' texts (after `250-` or `250 `).
#[derive(Debug)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        self.lines.join("\n")
    }
}

struct Client<S> {
    stream: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    fn new(stream: S) -> Self {
        Client {
            stream: BufReader::new(stream),
        }
    }

    async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        let stream = self.stream.get_mut();
        step("write", stream.write_all(bytes.as_ref()))
            .await
            .unwrap();
        step("flush", stream.flush()).await.unwrap();
    }

    /// Reads one reply, all its lines.
    async fn reply(&mut self) -> Reply {
        step("a reply", async {
            let mut lines = Vec::new();
            loop {
                let mut line = Vec::new();
                self.stream.read_until(b'\n', &mut line).await.unwrap();
                let line = String::from_utf8(line).unwrap();
                let line = line
                    .strip_suffix("\r\n")
                    .unwrap_or_else(|| panic!("a reply line ends in CRLF: {line:?}"));
                assert!(line.len() >= 4, "reply line {line:?}");
                let code: u16 = line[..3].parse().unwrap();
                lines.push(line[4..].to_string());
                match &line[3..4] {
                    "-" => continue,
                    " " => return Reply { code, lines },
                    other => panic!("reply line {line:?}: {other:?} after the code"),
                }
            }
        })
        .await
    }

    /// Sends a command line and reads its reply, which must have `code`.
    async fn command(&mut self, line: &str, code: u16) -> Reply {
        self.send(format!("{line}\r\n")).await;
        let reply = self.reply().await;
        assert_eq!(reply.code, code, "{line:?} got {reply:?}");
        reply
    }

    /// Sends each command line in turn and reads its reply, which must have
    /// the code beside it.
    async fn commands(&mut self, commands: &[(&str, u16)]) {
        for (line, code) in commands {
            self.command(line, *code).await;
        }
    }

    /// Reads `count` replies: their codes.
    async fn codes(&mut self, count: usize) -> Vec<u16> {
        let mut codes = Vec::with_capacity(count);
        for _ in 0..count {
            codes.push(self.reply().await.code);
        }
        codes
    }

    /// Whether the server closed the connection: nothing more to read.
    async fn is_closed(&mut self) -> bool {
        let mut rest = Vec::new();
        step(
            "the end of the connection",
            self.stream.read_to_end(&mut rest),
        )
        .await
        .is_ok()
            && rest.is_empty()
    }

    /// MAIL, RCPT and DATA, then `data` as it goes on the wire (its end
    /// included): the reply to the message.
    async fn deliver(&mut self, data: &[u8]) -> Reply {
        self.command("MAIL FROM:<sender@example.org>", 250).await;
        self.command("RCPT TO:<someone@example.com>", 250).await;
        self.command("DATA", 354).await;
        self.send(data).await;
        self.reply().await
    }

    /// [`deliver`](Self::deliver), and asserts the message was accepted.
    async fn deliver_accepted(&mut self, data: &[u8]) -> Reply {
        let reply = self.deliver(data).await;
        assert_eq!(reply.code, 250, "{reply:?}");
        reply
    }
}

/// A connection with the greeting read.
async fn connect(address: SocketAddr) -> Client<TcpStream> {
    let stream = step("connect", TcpStream::connect(address)).await.unwrap();
    let mut client = Client::new(stream);
    let greeting = client.reply().await;
    assert_eq!(greeting.code, 220, "{greeting:?}");
    client
}

/// A connection after `EHLO client.example`.
async fn connect_ehlo(address: SocketAddr) -> Client<TcpStream> {
    let mut client = connect(address).await;
    client.command("EHLO client.example", 250).await;
    client
}

// ---------------------------------------------------------------------------
// The conversation.

#[tokio::test]
async fn greeting_and_ehlo_advertise_the_extensions() {
    let running = start_with(|config| {
        config.max_size = 123_456;
        config.tls = Some(tls().0);
    })
    .await;
    let stream = TcpStream::connect(running.address).await.unwrap();
    let mut client = Client::new(stream);
    let greeting = client.reply().await;
    assert_eq!(
        (greeting.code, greeting.text()),
        (220, "mx.test ESMTP asynchat".to_string())
    );

    let ehlo = client.command("EHLO client.example", 250).await;
    assert_eq!(
        ehlo.lines,
        [
            "mx.test",
            "PIPELINING",
            "SIZE 123456",
            "8BITMIME",
            "STARTTLS",
            "ENHANCEDSTATUSCODES"
        ]
    );
    let helo = client.command("HELO client.example", 250).await;
    assert_eq!(helo.lines, ["mx.test"]);
    client.command("QUIT", 221).await;
    assert!(client.is_closed().await);
}

#[tokio::test]
async fn without_a_certificate_starttls_is_neither_offered_nor_accepted() {
    let running = start().await;
    let mut client = connect(running.address).await;
    let ehlo = client.command("EHLO client.example", 250).await;
    assert!(
        !ehlo.lines.iter().any(|line| line == "STARTTLS"),
        "{ehlo:?}"
    );
    client.command("STARTTLS", 502).await;
    client.command("NOOP", 250).await;
}

#[tokio::test]
async fn commands_are_case_insensitive_and_simple_ones_answer() {
    let running = start().await;
    let mut client = connect(running.address).await;
    client.command("ehlo client.example", 250).await;
    client.command("noop", 250).await;
    client.command("NOOP with an argument", 250).await;
    let vrfy = client.command("VRFY someone", 252).await;
    assert!(vrfy.text().starts_with("2.0.0 "), "{vrfy:?}");
    client.command("VRFY", 501).await;
    client.command("EXPN list", 502).await;
    let help = client.command("HELP", 214).await;
    assert!(help.text().contains("STARTTLS"), "{help:?}");
    client.command("RSET", 250).await;
    client.command("RSET now", 501).await;
    client.command("quit", 221).await;
    assert!(client.is_closed().await);
}

#[tokio::test]
async fn a_message_is_stored_in_new_with_trace_fields() {
    let running = start().await;
    let mut client = connect_ehlo(running.address).await;
    let reply = client
        .deliver_accepted(b"Subject: hello\r\n\r\nSome text.\r\n.\r\n")
        .await;
    let queue_id = reply
        .text()
        .strip_prefix("2.0.0 Ok: queued as ")
        .unwrap()
        .to_string();

    let names = running.maildir.names("new");
    assert_eq!(names, [format!("{queue_id}.mx.test")]);
    // <seconds>.M<microseconds>P<pid>Q<n>
    let fields: Vec<&str> = queue_id.split(['.', 'M', 'P', 'Q']).collect();
    assert_eq!(fields.len(), 5, "{queue_id}");
    assert!(fields.iter().enumerate().all(|(index, field)| index == 1
        || (!field.is_empty() && field.bytes().all(|b| b.is_ascii_digit()))));
    assert_eq!(fields[3], std::process::id().to_string());
    assert!(running.maildir.tmp_is_empty());

    let message = String::from_utf8(running.maildir.delivered().remove(0)).unwrap();
    let expected_start = format!(
        "Return-Path: <sender@example.org>\r\n\
         Received: from client.example ([127.0.0.1])\r\n\
         \tby mx.test with ESMTP id {queue_id}\r\n\
         \tfor <someone@example.com>; "
    );
    assert!(message.starts_with(&expected_start), "{message:?}");
    assert!(
        message.ends_with(" +0000\r\nSubject: hello\r\n\r\nSome text.\r\n"),
        "{message:?}"
    );
    assert_eq!(running.server.messages.load(Ordering::Relaxed), 1);
    client.command("QUIT", 221).await;
}

#[tokio::test]
async fn several_messages_on_one_connection() {
    let running = start().await;
    let mut client = connect_ehlo(running.address).await;
    for index in 0..3 {
        client
            .deliver_accepted(format!("message {index}\r\n.\r\n").as_bytes())
            .await;
    }
    assert_eq!(
        running.maildir.bodies(),
        [&b"message 0\r\n"[..], b"message 1\r\n", b"message 2\r\n"]
    );
}

#[tokio::test]
async fn an_empty_message() {
    let running = start().await;
    let mut client = connect_ehlo(running.address).await;
    // What curl sends for an empty file: the dot line at once.
    client.deliver_accepted(b".\r\n").await;
    // What Python's smtplib sends for an empty message: one empty line.
    client.deliver_accepted(b"\r\n.\r\n").await;
    client.command("NOOP", 250).await;
    assert_eq!(running.maildir.bodies(), [&b""[..], b"\r\n"]);
}

#[tokio::test]
async fn lines_that_start_with_dots_are_unstuffed() {
    let running = start().await;
    let mut client = connect_ehlo(running.address).await;
    client
        .deliver_accepted(b"..leading dot\r\n...\r\n..\r\nmiddle . dot\r\n.. two\r\n.\r\n")
        .await;
    assert_eq!(
        running.maildir.bodies(),
        [b".leading dot\r\n..\r\n.\r\nmiddle . dot\r\n. two\r\n"]
    );
}

#[tokio::test]
async fn bare_lf_or_cr_never_end_a_message() {
    let running = start().await;
    let mut client = connect_ehlo(running.address).await;
    // Each of these ends the message on some server somewhere; a second
    // message hidden behind it must stay text of the first.
    let smuggled = b"MAIL FROM:<smuggler@example.org>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n";
    // Each end between a line of text and the smuggled commands.
    let text_with = |ends: [&[u8]; 5]| -> Vec<u8> {
        ends.iter()
            .flat_map(|end| [&b"text"[..], end, smuggled].concat())
            .collect()
    };
    let mut data = text_with([b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n.\rx"]);
    data.extend_from_slice(b"\r\n.\r\n");
    client.deliver_accepted(&data).await;
    client.command("NOOP", 250).await;

    // Stored as sent, but for the dots after CRLF, which were stuffed.
    let mut expected = text_with([b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n\n", b"\r\n\rx"]);
    expected.extend_from_slice(b"\r\n");
    assert_eq!(running.maildir.bodies(), [expected]);
}

#[tokio::test]
async fn commands_may_end_in_a_bare_lf_but_data_ends_only_at_crlf_dot_crlf() {
    let running = start().await;
    let mut client = connect(running.address).await;
    client
        .send("EHLO client.example\nMAIL FROM:<a@example.org>\n")
        .await;
    assert_eq!(client.codes(2).await, [250, 250]);
    client.send("RCPT TO:<b@example.com>\nDATA\n").await;
    assert_eq!(client.codes(2).await, [250, 354]);
    client.send("one\n.\ntwo\r\n.\r\nQUIT\n").await;
    assert_eq!(client.codes(2).await, [250, 221]);
    assert!(client.is_closed().await);
    assert_eq!(running.maildir.bodies(), [b"one\n.\ntwo\r\n"]);
}

#[tokio::test]
async fn a_cr_inside_a_command_is_refused() {
    let running = start().await;
    let mut client = connect(running.address).await;
    client.send("EHLO client.example\rNOOP\r\n").await;
    assert_eq!(client.reply().await.code, 500);
    client.command("NOOP", 250).await;
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order_in_one_write() {
    let running = start().await;
    let mut client = connect_ehlo(running.address).await;
    client
        .send(
            "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n\
             RCPT TO:<nobody>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n",
        )
        .await;
    // The five replies leave in one write, so one read takes them all.
    let mut first_read = vec![0; 4096];
    let stream = client.stream.get_mut();
    let read = step("the replies", stream.read(&mut first_read))
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&first_read[..read]),
        "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n501 5.1.3 Bad recipient address syntax\r\n\
         250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
    );
    client
        .send("pipelined\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n")
        .await;
    assert_eq!(client.codes(4).await, [250, 250, 250, 221]);
    assert!(client.is_closed().await);
    // Two recipients, so `Received:` names neither.
    let message = String::from_utf8(running.maildir.delivered().remove(0)).unwrap();
    assert!(!message.contains("\tfor <"), "{message:?}");
    assert!(message.ends_with("\r\npipelined\r\n"), "{message:?}");
}

#[tokio::test]
async fn a_message_sent_before_the_354_is_read_as_the_message() {
    // A client may not do this (RFC 2920: DATA ends a pipeline), but the
    // switch to the message's terminator covers bytes already read.
    let running = start().await;
    let mut client = connect(running.address).await;
    client
        .send(
            "EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n\
             DATA\r\n..early\r\n.\r\nQUIT\r\n",
        )
        .await;
    assert_eq!(client.codes(6).await, [250, 250, 250, 354, 250, 221]);
    assert_eq!(running.maildir.bodies(), [b".early\r\n"]);
}

// ---------------------------------------------------------------------------
// The dot line split at every byte.

/// A TCP stream whose reads stop at byte `cut` of the input: the server
/// reads the bytes before it and the bytes after it separately.
struct SplitReads {
    stream: TcpStream,
    cut: usize,
    read: usize,
}

impl AsyncRead for SplitReads {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let room = if this.read < this.cut {
            (this.cut - this.read).min(buf.remaining())
        } else {
            buf.remaining()
        };
        let mut scratch = vec![0; room];
        let mut limited = ReadBuf::new(&mut scratch);
        ready!(Pin::new(&mut this.stream).poll_read(cx, &mut limited))?;
        this.read += limited.filled().len();
        buf.put_slice(limited.filled());
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for SplitReads {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        pieces: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, pieces)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Accepts one connection and serves it, as `serve` would; the handle
/// ends with the connection.
async fn serve_one<T>(
    listener: &TcpListener,
    server: Arc<Server>,
    wrap: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> JoinHandle<Result<(), asynchat::Error>>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (stream, peer) = step("accept", listener.accept()).await.unwrap();
    tokio::spawn(async move {
        smtp_server::handle_connection(wrap(stream), Some(peer.ip()), &server).await
    })
}

#[tokio::test]
async fn the_dot_lines_split_at_every_byte() {
    let (maildir, server, listener, address) = server_and_listener(|_| {}).await;
    let envelope = "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n";
    // An empty message, then one with stuffed dots, all in one write.
    let input = format!(
        "EHLO client.example\r\n{envelope}.\r\n{envelope}..one\r\n...\r\ntwo\r\n..\r\n.\r\nQUIT\r\n"
    );
    for cut in 0..=input.len() {
        let client = TcpStream::connect(address);
        let (client, handle) = tokio::join!(
            client,
            serve_one(&listener, server.clone(), move |stream| SplitReads {
                stream,
                cut,
                read: 0,
            })
        );
        let mut client = Client::new(client.unwrap());
        client.send(&input).await;
        assert_eq!(
            client.codes(10).await,
            [220, 250, 250, 250, 354, 250, 250, 250, 354, 250],
            "cut at {cut}"
        );
        assert_eq!(client.reply().await.code, 221, "cut at {cut}");
        assert!(client.is_closed().await, "cut at {cut}");
        // The server waits for the client's close before it lets go.
        drop(client);
        step("the end of the conversation", handle)
            .await
            .unwrap()
            .unwrap();
    }
    let bodies = maildir.bodies();
    assert_eq!(bodies.len(), 2 * (input.len() + 1));
    for pair in bodies.chunks(2) {
        assert_eq!(pair, [&b""[..], b".one\r\n..\r\ntwo\r\n.\r\n"]);
    }
    assert!(maildir.tmp_is_empty());
}

/// Every way to cut `text` into two or three chunks gives what it gives
/// whole, and so does one byte at a time.
#[test]
fn unstuffing_does_not_depend_on_the_chunks() {
    let text = b"..a\r\n.\r\rb\r\n..\r\n\r\n.c\r\n.\n.d\r\r\n.e\n\r\n..";
    let whole = unstuff(&[text]);
    assert_eq!(whole, b".a\r\n\r\rb\r\n.\r\n\r\nc\r\n\n.d\r\r\ne\n\r\n.");
    for first in 0..=text.len() {
        for second in first..=text.len() {
            let chunks = [&text[..first], &text[first..second], &text[second..]];
            assert_eq!(unstuff(&chunks), whole, "cut at {first} and {second}");
        }
    }
    let bytes: Vec<&[u8]> = text.chunks(1).collect();
    assert_eq!(unstuff(&bytes), whole);
}

fn unstuff(chunks: &[&[u8]]) -> Vec<u8> {
    let mut unstuffer = DotUnstuffer::new();
    let mut pieces = Vec::new();
    for chunk in chunks {
        unstuffer.unstuff(Bytes::copy_from_slice(chunk), &mut pieces);
    }
    pieces.concat()
}

#[test]
fn dates_as_rfc_5322_writes_them() {
    let at = |seconds| smtp_server::rfc5322_date(UNIX_EPOCH + Duration::from_secs(seconds));
    assert_eq!(at(0), "Thu, 1 Jan 1970 00:00:00 +0000");
    assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    assert_eq!(at(1_709_251_199), "Thu, 29 Feb 2024 23:59:59 +0000");
    assert_eq!(at(4_102_444_800), "Fri, 1 Jan 2100 00:00:00 +0000");
}

// ---------------------------------------------------------------------------
// Limits and bad input.

#[tokio::test]
async fn a_command_line_over_512_bytes_gets_500_and_the_connection_goes_on() {
    let running = start().await;
    let mut client = connect_ehlo(running.address).await;
    // 510 bytes and CRLF: 512 octets, the most RFC 5321 asks for.
    let longest = format!("NOOP {}", "x".repeat(505));
    client.command(&longest, 250).await;
    let too_long = format!("NOOP {}", "x".repeat(506));
    let reply = client.command(&too_long, 500).await;
    assert_eq!(reply.text(), "5.5.2 Error: line too long");
    // A much longer line: one reply, the rest of it skipped.
    client
        .send(format!(
            "MAIL FROM:<{}@example.org>\r\nNOOP\r\n",
            "y".repeat(100_000)
        ))
        .await;
    assert_eq!(client.codes(2).await, [500, 250]);
    client.command("MAIL FROM:<a@example.org>", 250).await;
}

#[tokio::test]
async fn unknown_commands_get_500() {
    let running = start().await;
    let mut client = connect_ehlo(running.address).await;
    client
        .commands(&[
            ("BDAT 10 LAST", 500),
            ("GET / HTTP/1.1", 500),
            ("", 500),
            ("QUITTING", 500),
            ("NOOP", 250),
        ])
        .await;
}

#[tokio::test]
async fn commands_out_of_sequence_get_503() {
    let running = start().await;
    let mut client = connect(running.address).await;
    client
        .commands(&[
            ("MAIL FROM:<a@example.org>", 503),
            ("RCPT TO:<b@example.com>", 503),
            ("DATA", 503),
            ("EHLO client.example", 250),
            ("RCPT TO:<b@example.com>", 503),
            ("DATA", 503),
            ("MAIL FROM:<a@example.org>", 250),
            ("MAIL FROM:<a@example.org>", 503),
            ("DATA", 503),
            // RSET ends the transaction, and so does EHLO.
            ("RSET", 250),
            ("RCPT TO:<b@example.com>", 503),
            ("MAIL FROM:<a@example.org>", 250),
            ("EHLO client.example", 250),
            ("RCPT TO:<b@example.com>", 503),
        ])
        .await;
}

#[tokio::test]
async fn addresses_and_parameters() {
    let running = start_with(|config| {
        config.max_size = 1000;
        config.max_errors = 100;
    })
    .await;
    let mut client = connect_ehlo(running.address).await;
    client
        .commands(&[
            ("MAIL FROM:a@example.org", 501),
            ("MAIL FROM:<a@@example.org>", 501),
            ("MAIL FROM:<a b@example.org>", 501),
            ("MAIL FROM:<a@example.org", 501),
            ("MAIL FROM:<a@-example.org>", 501),
            ("MAIL FROM:<a..b@example.org>", 501),
            ("MAIL FROM:<a@example.org>x", 501),
            ("MAIL FROM:", 501),
            ("MAIL TO:<a@example.org>", 501),
            ("MAIL FROM:<é@example.org>", 501),
            ("MAIL FROM:<a@example.org> FOO=1", 555),
            ("MAIL FROM:<a@example.org> SIZE=abc", 501),
            ("MAIL FROM:<a@example.org> BODY=9BIT", 501),
            ("MAIL FROM:<a@example.org> SIZE=1001", 552),
            (
                "MAIL FROM:<a@example.org> SIZE=99999999999999999999999",
                552,
            ),
            ("MAIL FROM:<a@example.org> SIZE=1000 BODY=8BITMIME", 250),
            ("RCPT TO:<>", 501),
            ("RCPT TO:b@example.com", 501),
            ("RCPT TO:<b@example.com> NOTIFY=NEVER", 555),
            ("RCPT TO:<\"b c\"@example.com>", 250),
            ("RCPT TO:<\"b>c\"@example.com>", 250),
            ("RCPT TO:<@relay.example,@other.example:d@example.com>", 250),
            ("RCPT TO:<Postmaster>", 250),
            ("RCPT TO:<e@[192.0.2.1]>", 250),
            ("RCPT TO: <f@example.com>", 250),
            ("RSET", 250),
            ("MAIL FROM:<>", 250),
            ("RCPT TO:<g@example.com>", 250),
        ])
        .await;
    let reply = client.command("DATA", 354).await;
    assert!(reply.text().contains("<CR><LF>.<CR><LF>"));
    client.send(".\r\n").await;
    assert_eq!(client.reply().await.code, 250);
    client.command("HELO client.example", 250).await;
    // After HELO, no ESMTP parameters.
    client
        .command("MAIL FROM:<a@example.org> SIZE=10", 555)
        .await;
    client.command("EHLO", 501).await;
    client.command("HELO two words", 501).await;

    let message = String::from_utf8(running.maildir.delivered().remove(0)).unwrap();
    assert!(message.starts_with("Return-Path: <>\r\n"), "{message:?}");
}

#[tokio::test]
async fn past_100_recipients_452() {
    let running = start().await;
    let mut client = connect_ehlo(running.address).await;
    let mut pipeline = String::from("MAIL FROM:<a@example.org>\r\n");
    for index in 0..101 {
        pipeline.push_str(&format!("RCPT TO:<r{index}@example.com>\r\n"));
    }
    client.send(pipeline).await;
    assert_eq!(client.reply().await.code, 250);
    for index in 0..100 {
        assert_eq!(client.reply().await.code, 250, "recipient {index}");
    }
    let reply = client.reply().await;
    assert_eq!(
        (reply.code, reply.text().as_str()),
        (452, "4.5.3 Error: too many recipients")
    );
    client.command("DATA", 354).await;
    client.send("to a hundred\r\n.\r\n").await;
    assert_eq!(client.reply().await.code, 250);
    assert_eq!(running.maildir.bodies(), [b"to a hundred\r\n"]);
}

#[tokio::test]
async fn a_message_over_the_size_limit_gets_552_after_its_end_and_is_not_stored() {
    let running = start_with(|config| config.max_size = 1000).await;
    let mut client = connect_ehlo(running.address).await;
    // 1000 bytes exactly, dot-unstuffed and with its last CRLF, is fine.
    let fits = format!("..{}\r\n", "a".repeat(997));
    client
        .deliver_accepted(format!("{fits}.\r\n").as_bytes())
        .await;

    client.command("MAIL FROM:<a@example.org>", 250).await;
    client.command("RCPT TO:<b@example.com>", 250).await;
    client.command("DATA", 354).await;
    client.send("line\r\n".repeat(100_000)).await;
    client.send(".\r\n").await;
    let reply = client.reply().await;
    assert_eq!(reply.code, 552, "{reply:?}");
    assert!(running.maildir.tmp_is_empty());
    // The connection goes on.
    client.deliver_accepted(b"small\r\n.\r\n").await;
    assert_eq!(
        running.maildir.bodies(),
        [
            format!(".{}\r\n", "a".repeat(997)).into_bytes(),
            b"small\r\n".to_vec()
        ]
    );
}

#[tokio::test]
async fn too_many_errors_get_421_and_a_close() {
    let running = start_with(|config| config.max_errors = 3).await;
    let mut client = connect(running.address).await;
    client.command("EHLO client.example", 250).await;
    client.command("FOO", 500).await;
    client.command("RCPT TO:<a@example.org>", 503).await;
    client.send("MAIL FROM:nobody\r\nNOOP\r\n").await;
    assert_eq!(client.reply().await.code, 501);
    let reply = client.reply().await;
    assert_eq!(
        (reply.code, reply.text().as_str()),
        (421, "4.7.0 mx.test Error: too many errors")
    );
    assert!(client.is_closed().await);
}

#[tokio::test]
async fn garbage_is_answered_never_panics() {
    let running = start_with(|config| config.max_errors = 1000).await;
    let mut client = connect_ehlo(running.address).await;
    // A deterministic mess: every byte value, NULs, CRs, invalid UTF-8.
    let mut state: u32 = 12345;
    let mut garbage = Vec::new();
    for _ in 0..200 {
        for _ in 0..(state % 40) {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let byte = (state >> 16) as u8;
            if byte != b'\n' {
                garbage.push(byte);
            }
        }
        garbage.extend_from_slice(b"\r\n");
    }
    for prefix in ["MAIL FROM:<", "RCPT TO:<", "EHLO ", "MAIL FROM:<a@b> SIZE="] {
        garbage.extend_from_slice(prefix.as_bytes());
        garbage.extend_from_slice(&[0xff, 0xfe, b'>', 0, b'"', b'\\']);
        garbage.extend_from_slice(b"\r\n");
    }
    client.send(&garbage).await;
    client.send("NOOP final\r\n").await;
    let mut replies = 0;
    loop {
        let reply = client.reply().await;
        replies += 1;
        if reply.text() == "2.0.0 Ok" && reply.code == 250 && replies > 200 {
            break;
        }
    }
    assert!(replies >= 204, "{replies} replies");
}

#[tokio::test]
async fn an_idle_client_gets_421() {
    let running = start_with(|config| config.idle_timeout = Duration::from_millis(300)).await;
    let mut client = connect(running.address).await;
    let reply = client.reply().await;
    assert_eq!(
        (reply.code, reply.text().as_str()),
        (421, "4.4.2 mx.test Error: timeout exceeded")
    );
    assert!(client.is_closed().await);
}

#[tokio::test]
async fn a_client_idle_in_the_middle_of_a_message_gets_421_and_nothing_is_left() {
    let running = start_with(|config| config.idle_timeout = Duration::from_millis(300)).await;
    let mut client = connect_ehlo(running.address).await;
    client.command("MAIL FROM:<a@example.org>", 250).await;
    client.command("RCPT TO:<b@example.com>", 250).await;
    client.command("DATA", 354).await;
    // More than a delivery gathers before writing: its file is in tmp/.
    client.send(long_part()).await;
    running.maildir.wait_for_tmp_file().await;
    let reply = client.reply().await;
    assert_eq!(reply.code, 421, "{reply:?}");
    assert!(client.is_closed().await);
    assert!(running.maildir.tmp_is_empty());
    assert!(running.maildir.names("new").is_empty());
}

#[tokio::test]
async fn a_client_gone_in_the_middle_of_a_message_leaves_nothing() {
    let (maildir, server, listener, address) = server_and_listener(|_| {}).await;
    let (client, handle) = tokio::join!(
        TcpStream::connect(address),
        serve_one(&listener, server, |stream| stream)
    );
    let mut client = Client::new(client.unwrap());
    assert_eq!(client.reply().await.code, 220);
    client.command("EHLO client.example", 250).await;
    client.command("MAIL FROM:<a@example.org>", 250).await;
    client.command("RCPT TO:<b@example.com>", 250).await;
    client.command("DATA", 354).await;
    client.send(long_part()).await;
    maildir.wait_for_tmp_file().await;
    drop(client);
    step("the end of the conversation", handle)
        .await
        .unwrap()
        .unwrap();
    assert!(maildir.tmp_is_empty());
    assert!(maildir.names("new").is_empty());
}

#[tokio::test]
async fn discard_counts_and_stores_nothing() {
    let running = start_with(|config| config.store = Store::Discard).await;
    let mut client = connect_ehlo(running.address).await;
    for _ in 0..3 {
        client.deliver_accepted(b"..twelve\r\n.\r\n").await;
    }
    assert_eq!(running.server.messages.load(Ordering::Relaxed), 3);
    // ".twelve\r\n": 9 bytes each, dot-unstuffed.
    assert_eq!(running.server.bytes.load(Ordering::Relaxed), 27);
    assert!(!running.maildir.path.exists());
}

#[tokio::test]
async fn a_large_message_byte_for_byte() {
    let running = start_with(|config| config.max_size = 16 << 20).await;
    let mut client = connect_ehlo(running.address).await;
    // 4 MiB of lines, one in seven starting with a dot.
    let mut text = Vec::new();
    let mut line = 0u64;
    while text.len() < 4 << 20 {
        if line % 7 == 0 {
            text.push(b'.');
        }
        text.extend_from_slice(
            format!("line {line} {}\r\n", "z".repeat((line % 97) as usize)).as_bytes(),
        );
        line += 1;
    }
    let mut wire = Vec::new();
    for line in text.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            wire.push(b'.');
        }
        wire.extend_from_slice(line);
    }
    wire.extend_from_slice(b".\r\n");
    client.deliver_accepted(&wire).await;
    let bodies = running.maildir.bodies();
    assert_eq!(bodies.len(), 1);
    assert!(
        bodies[0] == text,
        "the stored message differs from the one sent"
    );
}

// ---------------------------------------------------------------------------
// STARTTLS.

/// The server's acceptor and a client that trusts its certificate.
fn tls() -> (tokio_rustls::TlsAcceptor, TlsConnector) {
    let (certificate, key) = smtp_server::self_signed(&["mx.test".to_string()]).unwrap();
    let acceptor = smtp_server::tls_acceptor(vec![certificate.clone()], key).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(certificate).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (acceptor, TlsConnector::from(Arc::new(client)))
}

/// The TLS handshake over the client's connection, after the 220 to
/// STARTTLS; nothing may wait unread in plaintext.
async fn handshake(
    client: Client<TcpStream>,
    connector: &TlsConnector,
) -> Client<tokio_rustls::client::TlsStream<TcpStream>> {
    assert!(
        client.stream.buffer().is_empty(),
        "plaintext after the 220: {:?}",
        String::from_utf8_lossy(client.stream.buffer())
    );
    let stream = client.stream.into_inner();
    let name = ServerName::try_from("mx.test").unwrap();
    let tls = step("the TLS handshake", connector.connect(name, stream))
        .await
        .unwrap();
    Client::new(tls)
}

/// A server that offers STARTTLS, and a client's side of TLS that trusts it.
async fn start_with_tls() -> (Running, TlsConnector) {
    let (acceptor, connector) = tls();
    let running = start_with(|config| config.tls = Some(acceptor)).await;
    (running, connector)
}

#[tokio::test]
async fn starttls_forgets_what_came_before_and_is_offered_no_more() {
    let (running, connector) = start_with_tls().await;
    let mut client = connect_ehlo(running.address).await;
    client.command("MAIL FROM:<before@example.org>", 250).await;
    client.command("STARTTLS now", 501).await;
    let reply = client.command("STARTTLS", 220).await;
    assert_eq!(reply.text(), "2.0.0 Ready to start TLS");
    let mut client = handshake(client, &connector).await;

    // No greeting again, and what was said before is forgotten.
    client.command("MAIL FROM:<a@example.org>", 503).await;
    let ehlo = client.command("EHLO client.example", 250).await;
    assert!(
        !ehlo.lines.iter().any(|line| line == "STARTTLS"),
        "{ehlo:?}"
    );
    assert!(
        ehlo.lines.iter().any(|line| line == "PIPELINING"),
        "{ehlo:?}"
    );
    client.command("STARTTLS", 503).await;
    client.deliver_accepted(b"over TLS\r\n.\r\n").await;
    client.command("QUIT", 221).await;
    assert!(client.is_closed().await);

    let message = String::from_utf8(running.maildir.delivered().remove(0)).unwrap();
    assert!(
        message.starts_with("Return-Path: <sender@example.org>\r\n"),
        "{message:?}"
    );
    assert!(
        message.contains("\r\n\tby mx.test with ESMTPS id "),
        "{message:?}"
    );
    assert!(message.ends_with("\r\nover TLS\r\n"), "{message:?}");
}

#[tokio::test]
async fn plaintext_pipelined_after_starttls_is_never_answered() {
    let (running, connector) = start_with_tls().await;
    let mut client = connect_ehlo(running.address).await;
    // An attacker in the middle appends commands to the client's STARTTLS.
    client
        .send("STARTTLS\r\nMAIL FROM:<attacker@example.org>\r\nRCPT TO:<victim@example.com>\r\n")
        .await;
    let reply = client.reply().await;
    assert_eq!(reply.code, 220, "{reply:?}");
    let mut client = handshake(client, &connector).await;
    // The first reply over TLS answers the first command sent over TLS.
    let ehlo = client.command("EHLO client.example", 250).await;
    assert_eq!(ehlo.lines[0], "mx.test");
    // No transaction was started by the injected MAIL.
    client.command("RCPT TO:<b@example.com>", 503).await;
    client.command("MAIL FROM:<a@example.org>", 250).await;
}

#[tokio::test]
async fn a_failed_handshake_ends_only_its_connection() {
    let (running, _) = start_with_tls().await;
    let mut client = connect_ehlo(running.address).await;
    client.command("STARTTLS", 220).await;
    client.send("this is not a TLS client hello\r\n").await;
    // The server ends the connection (perhaps with a TLS alert first).
    let mut rest = Vec::new();
    let _ = step(
        "the end of the connection",
        client.stream.read_to_end(&mut rest),
    )
    .await;
    let mut other = connect_ehlo(running.address).await;
    other.command("NOOP", 250).await;
}

#[tokio::test]
async fn received_names_the_protocol_of_rfc_3848() {
    let (running, connector) = start_with_tls().await;
    let mut client = connect(running.address).await;
    client.command("HELO client.example", 250).await;
    client.deliver(b"plain\r\n.\r\n").await;
    client.command("STARTTLS", 220).await;
    let mut client = handshake(client, &connector).await;
    client.command("HELO client.example", 250).await;
    client.deliver(b"over TLS\r\n.\r\n").await;
    let messages: Vec<String> = running
        .maildir
        .delivered()
        .into_iter()
        .map(|message| String::from_utf8(message).unwrap())
        .collect();
    assert!(messages[0].contains(" with SMTP id "), "{messages:?}");
    assert!(messages[1].contains(" with SMTPS id "), "{messages:?}");
}

/// A client that pipelines commands and never reads: once 64 KiB of
/// replies wait, the server reads no more, so its memory stays bounded and
/// the client's writes stall; when the client reads, every reply comes.
#[tokio::test]
async fn a_client_that_never_reads_is_not_buffered_without_end() {
    const COMMANDS: usize = 100_000;
    let server = Arc::new(Server::new(Config::default()).unwrap());
    let (client, server_side) = tokio::io::duplex(4096);
    let serving = {
        let server = Arc::clone(&server);
        tokio::spawn(
            async move { smtp_server::handle_connection(server_side, None, &server).await },
        )
    };
    let (mut replies, mut commands) = tokio::io::split(client);
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let written = Arc::clone(&written);
        tokio::spawn(async move {
            for _ in 0..COMMANDS / 1000 {
                commands.write_all(&b"NOOP\r\n".repeat(1000)).await.unwrap();
                written.fetch_add(6000, Ordering::Relaxed);
            }
            commands.write_all(b"QUIT\r\n").await.unwrap();
        })
    };
    // Not reading: the writer must stall long before it is done.
    let stalled = timeout(Duration::from_secs(2), async {
        while written.load(Ordering::Relaxed) < COMMANDS * 6 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        stalled.is_err(),
        "every command was read without a reply read"
    );
    assert!(written.load(Ordering::Relaxed) <= 256 * 1024, "{written:?}");
    // Reading now: every reply, then the goodbye.
    let mut all = Vec::new();
    step("every reply", replies.read_to_end(&mut all))
        .await
        .unwrap();
    step("the writer", writer).await.unwrap();
    step("the server", serving).await.unwrap().unwrap();
    let noops = all.windows(4).filter(|window| window == b"250 ").count();
    assert_eq!(noops, COMMANDS);
    let last = String::from_utf8_lossy(&all)
        .lines()
        .last()
        .unwrap()
        .to_string();
    assert!(last.starts_with("221 "), "{last}");
}
