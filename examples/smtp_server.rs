//! An SMTP server (RFC 5321) on `Chat`: what CPython's `smtpd` did with
//! asynchat, made into a mail receiver that stores what it accepts in a
//! Maildir.
//!
//! ```text
//! cargo run --release --example smtp_server -- --port 2525 --maildir ./mail
//! swaks --server 127.0.0.1:2525 --to someone@example.org
//! curl smtp://127.0.0.1:2525 --mail-from a@example.org --mail-rcpt b@example.org -T message.eml
//! ```
//!
//! Options (each also as `--name=value`):
//!
//! * `--port N`: the port (else `$PORT`, else 2525; 0 picks a free one; the
//!   address is printed);
//! * `--maildir DIR`: where messages go (default `./Maildir`; `tmp/`, `new/`
//!   and `cur/` are made if missing); `--discard`: count messages and drop
//!   them instead, as Postfix's `smtp-sink` does, for load tests;
//! * `--max-size BYTES`: the largest message (default 10 MiB), advertised
//!   as `SIZE`;
//! * `--max-recipients N` (default 100), `--max-errors N` (default 20),
//!   `--idle-timeout SECONDS` (default 300, RFC 5321's five minutes);
//! * `--hostname NAME`: the name in the greeting and in `Received:` (default
//!   the machine's);
//! * `--cert FILE --key FILE`: PEM files for STARTTLS; without them a
//!   self-signed certificate for the host name and `localhost` is made at
//!   start with `rcgen`.
//!
//! On SIGINT or SIGTERM it prints how many messages it received and exits.
//!
//! Commands: `EHLO`, `HELO`, `MAIL FROM:<path> [SIZE=n] [BODY=7BIT|8BITMIME]`,
//! `RCPT TO:<path>`, `DATA`, `RSET`, `NOOP`, `VRFY` (252: not verified, but
//! mail will be tried), `HELP`, `QUIT` and `STARTTLS` (RFC 3207). `EHLO`
//! advertises `PIPELINING` (RFC 2920), `SIZE` (RFC 1870), `8BITMIME`
//! (RFC 6152), `STARTTLS` until TLS is on, and `ENHANCEDSTATUSCODES`
//! (RFC 2034): every reply but the greeting and the `HELO`/`EHLO` answers
//! carries an enhanced code such as `2.1.0`.
//!
//! # Framing with a `Chat`
//!
//! As in `smtpd`, the terminator follows the protocol's state:
//!
//! * Commands are whole frames, ended by `Terminator::any_of(["\r\n", "\n"])`
//!   (see "Line endings"), of at most 510 bytes before the line ending
//!   (512 octets with it, RFC 5321 4.5.3.1.4). A longer line gets
//!   `500 5.5.2 Error: line too long`: the codec's `FrameTooLong` is reported
//!   once, the codec skips the rest of the line without buffering it, and the
//!   connection goes on with the next command.
//! * After `DATA` the channel streams (`set_streaming(true)`) and ends the
//!   message at `\r\n.\r\n` set with `set_terminator_after(.., b"\r\n")`: the
//!   command's own line ending counts as the line ending before the dot, so
//!   `DATA\r\n.\r\n` is an empty message, not a wait for a second dot line
//!   (asynchat's `set_terminator(b"\r\n.\r\n")` in `smtpd` waited). The
//!   message goes to disk chunk by chunk as it arrives, dot-unstuffed on the
//!   way (RFC 5321 4.5.2): memory does not grow with the message.
//! * Then whole command frames again, on the same buffered bytes.
//!
//! A message's last line ending is part of the terminator, so the server
//! adds it back, unless `Chat::matched_delimiter` says the terminator began
//! with `DATA`'s own line ending (it is then only `.\r\n`): a message of a
//! single empty line (`\r\n.\r\n` after `DATA`, which is what Python's
//! `smtplib` sends for an empty message) is stored as `\r\n`, an empty
//! message (`.\r\n`, what curl sends for an empty file) as nothing.
//!
//! # Line endings
//!
//! RFC 5321 (2.3.8) has clients end lines with CRLF only. This server takes
//! the choice of Postfix 3.9's default (`smtpd_forbid_bare_newline =
//! normal`): a *command* may also end with a bare LF, and is handled as if
//! it had ended with CRLF (what `printf 'EHLO x\nQUIT\n' | nc` sends gets
//! its answers; where `\r\n` ends a line it wins over the `\n` in it, as
//! the earlier-starting delimiter); a CR that is not followed by LF is a
//! bad character in a command (500). A *message* only ends at `<CRLF>.<CRLF>`: `\n.\n`,
//! `\r.\r`, `\n.\r\n` and `\r\n.\n` are message text, stored as they came, so
//! a message cannot smuggle a second one past a server that reads those as
//! an end ("SMTP smuggling", 2023). Lines inside a message are CRLF lines
//! only: a dot is unstuffed after CRLF, not after a bare LF.
//!
//! # Limits
//!
//! Each is answered and the connection goes on, unless it says it closes:
//! unknown command (500), bad sequence (503), bad syntax in an address
//! (501), an unknown `MAIL`/`RCPT` parameter (555), more than
//! `--max-recipients` recipients (452), `SIZE=` over the limit (552 at
//! `MAIL`), a message over the limit (552 once its end has been read and
//! dropped; nothing is stored), `--max-errors` error replies (421, then the
//! connection closes), an idle client (421 after `--idle-timeout`, then the
//! connection closes). A message cut off by a disconnect, an error or a
//! refusal leaves no file in `tmp/`.
//!
//! # STARTTLS
//!
//! `STARTTLS` answers `220 2.0.0 Ready to start TLS` and hands the socket to
//! `tokio-rustls` through [`Chat::upgrade`], which writes the 220 first and
//! discards whatever the client sent after `STARTTLS` in plaintext: such
//! bytes are never answered (CVE-2011-0411, command injection). The server
//! then forgets the client's `EHLO` and any transaction (RFC 3207, 4.2), and
//! its `EHLO` no longer offers `STARTTLS`.
//!
//! # Maildir
//!
//! A message is written to `tmp/<unique name>`, synced, and renamed into
//! `new/` once its end is read; the name is `<seconds>.M<microseconds>P<pid>Q<n>.<host>`
//! (Maildir's own format, `n` counting this process's deliveries). The file
//! starts with `Return-Path: <sender>` (RFC 5321 4.4: the final delivery
//! records the envelope sender) and a `Received:` field naming the client,
//! the server, the queue id (the name without the host) and the date; the
//! rest is the message as sent, dot-unstuffed, ending in CRLF.

use std::{
    fmt::Write as _,
    io::{self, Write as _},
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use asynchat::{Chat, Error, Frame, Terminator, TerminatorCodec};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use memchr::memmem;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite},
    net::TcpListener,
    time::timeout,
};
use tokio_rustls::{
    rustls::{
        self,
        pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    },
    TlsAcceptor,
};

mod common;
use common::listen;

/// The port when neither the command line nor `$PORT` gives one.
pub const DEFAULT_PORT: u16 = 2525;

/// The longest command line, its CRLF included (RFC 5321 4.5.3.1.4).
pub const MAX_COMMAND_LINE: usize = 512;

/// The bytes that end a message: a line holding only a dot.
const END_OF_DATA: &[u8] = b"\r\n.\r\n";

/// Replies queued past this many bytes are written out before the next
/// command is read: a client that pipelines without reading stalls instead
/// of growing the server's memory (`Chat::push` never waits).
const FLUSH_AT: usize = 64 * 1024;

/// What the server accepts and where messages go.
#[derive(Clone)]
pub struct Config {
    /// The server's name: in the greeting, the `EHLO` reply and `Received:`.
    pub hostname: String,
    /// Where accepted messages go.
    pub store: Store,
    /// The largest message in bytes, dot-unstuffed: advertised as `SIZE`.
    pub max_size: u64,
    /// The most recipients of one message: past it, 452. RFC 5321
    /// (4.5.3.1.8) asks for at least 100.
    pub max_recipients: usize,
    /// After this many error replies on a connection, 421 and close: a client
    /// that only sends garbage is not answered forever.
    pub max_errors: u32,
    /// How long the server waits for the next command or the next piece
    /// of a message.
    pub idle_timeout: Duration,
    /// The certificate for `STARTTLS`; without one, `STARTTLS` is neither
    /// offered nor accepted.
    pub tls: Option<TlsAcceptor>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hostname: "localhost".to_string(),
            store: Store::Discard,
            max_size: 10 * 1024 * 1024,
            max_recipients: 100,
            max_errors: 20,
            idle_timeout: Duration::from_secs(300),
            tls: None,
        }
    }
}

/// Where accepted messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    /// Into this Maildir's `new/`, by way of its `tmp/`.
    Maildir(PathBuf),
    /// Nowhere: counted, then dropped.
    Discard,
}

/// What every connection shares: the configuration and the counters.
pub struct Server {
    /// What it accepts and where messages go.
    pub config: Config,
    /// Messages accepted (stored or discarded) since start.
    pub messages: AtomicU64,
    /// Their bytes, dot-unstuffed, without the trace fields.
    pub bytes: AtomicU64,
    /// The terminator of commands, made once: every `DATA` switches back to it.
    commands: Terminator,
}

impl Server {
    /// A server with `config`; a Maildir's directories are made if missing.
    pub fn new(config: Config) -> io::Result<Server> {
        if let Store::Maildir(maildir) = &config.store {
            for directory in ["tmp", "new", "cur"] {
                std::fs::create_dir_all(maildir.join(directory))?;
            }
        }
        Ok(Server {
            config,
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            commands: Terminator::any_of(["\r\n", "\n"]),
        })
    }

    /// The codec of command lines: whole frames, 512 octets at the most
    /// with the line ending.
    fn command_codec(&self) -> TerminatorCodec {
        TerminatorCodec::new(self.commands.clone()).with_max_frame_length(MAX_COMMAND_LINE - 2)
    }
}

/// Serves `listener` forever, one task per connection.
pub async fn serve(listener: TcpListener, server: Arc<Server>) -> io::Result<()> {
    loop {
        let stream = common::accept(&listener).await;
        let server = server.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let client = stream.peer_addr().ok().map(|address| address.ip());
            if let Err(error) = handle_connection(stream, client, &server).await {
                if !matches!(&error, Error::Io(e) if e.kind() == io::ErrorKind::ConnectionReset) {
                    eprintln!("connection: {error}");
                }
            }
        });
    }
}

/// Runs one SMTP conversation over `io`, from the greeting to the close.
/// `client` is the peer's address, for the `Received:` field.
pub async fn handle_connection<T>(
    io: T,
    client: Option<IpAddr>,
    server: &Server,
) -> Result<(), Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    let config = &server.config;
    let mut chat = Chat::with_codec(io, server.command_codec());
    chat.push(format!("220 {} ESMTP asynchat\r\n", config.hostname));
    let mut conversation = Conversation::new(client);
    match converse(&mut chat, &mut conversation, server).await? {
        Ending::Close => close(chat).await,
        Ending::Disconnected => Ok(()),
        Ending::StartTls => {
            let Some(acceptor) = config.tls.clone() else {
                return close(chat).await;
            };
            let pipelined = chat.buffered_input().len();
            if pipelined > 0 {
                // Never read as if it had come over TLS.
                eprintln!("STARTTLS: {pipelined} plaintext bytes sent after it discarded");
            }
            let upgrade = chat.upgrade(|io| acceptor.accept(io));
            let mut chat = match timeout(config.idle_timeout, upgrade).await {
                Ok(upgraded) => upgraded?,
                Err(_) => return Ok(()), // no handshake: nobody to answer
            };
            conversation.start_tls();
            match converse(&mut chat, &mut conversation, server).await? {
                // Under TLS, STARTTLS is refused, so it cannot end a conversation.
                Ending::Close | Ending::StartTls => close(chat).await,
                Ending::Disconnected => Ok(()),
            }
        }
    }
}

/// Why a conversation stopped.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// QUIT, too many errors, a timeout: send what is queued, then close.
    Close,
    /// The client's input ended.
    Disconnected,
    /// STARTTLS was accepted: the 220 is queued, the handshake comes next.
    StartTls,
}

/// What the server knows of its client: RFC 5321's order of commands
/// (4.1.4) is kept here.
struct Conversation {
    client: Option<IpAddr>,
    /// The `HELO`/`EHLO` argument; none until one is given, and again after
    /// STARTTLS.
    greeting: Option<Greeting>,
    /// The transaction under way: from `MAIL` to the end of the message.
    transaction: Option<Transaction>,
    tls: bool,
    /// Error replies so far (4xx and 5xx): at `max_errors`, the connection
    /// closes.
    errors: u32,
}

struct Greeting {
    name: String,
    extended: bool,
}

struct Transaction {
    sender: String,
    recipients: Vec<String>,
}

/// What a command asks of the connection after its reply.
enum Next {
    Continue,
    /// `DATA` was accepted: read the message.
    Data,
    StartTls,
    Quit,
}

impl Conversation {
    fn new(client: Option<IpAddr>) -> Conversation {
        Conversation {
            client,
            greeting: None,
            transaction: None,
            tls: false,
            errors: 0,
        }
    }

    /// RFC 3207, 4.2: after the handshake, the server forgets what the
    /// client said before it.
    fn start_tls(&mut self) {
        self.greeting = None;
        self.transaction = None;
        self.tls = true;
    }

    /// Queues a one-line reply; an error reply counts towards `max_errors`.
    fn reply<T>(&mut self, chat: &mut Chat<T>, code: u16, text: &str)
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        if code >= 400 {
            self.errors += 1;
        }
        chat.push(format!("{code} {text}\r\n"));
    }

    /// Handles one command line (its line ending removed).
    fn command<T>(&mut self, line: &[u8], chat: &mut Chat<T>, server: &Server) -> Next
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        if line.iter().any(|&byte| byte == b'\r' || byte == 0) {
            self.reply(chat, 500, "5.5.2 Error: bad character in command");
            return Next::Continue;
        }
        let (verb, argument) = match line.iter().position(|&byte| byte == b' ') {
            Some(space) => (&line[..space], trim_spaces(&line[space + 1..])),
            None => (line, &b""[..]),
        };
        let is = |name: &str| verb.eq_ignore_ascii_case(name.as_bytes());
        if is("EHLO") || is("HELO") {
            self.hello(argument, is("EHLO"), chat, server);
        } else if is("MAIL") {
            self.mail(argument, chat, server);
        } else if is("RCPT") {
            self.recipient(argument, chat, server);
        } else if is("DATA") {
            return self.data(argument, chat);
        } else if is("RSET") {
            if argument.is_empty() {
                self.transaction = None;
                self.reply(chat, 250, "2.0.0 Ok");
            } else {
                self.reply(chat, 501, "5.5.4 Syntax: RSET");
            }
        } else if is("NOOP") {
            self.reply(chat, 250, "2.0.0 Ok");
        } else if is("VRFY") {
            if argument.is_empty() {
                self.reply(chat, 501, "5.5.4 Syntax: VRFY address");
            } else {
                self.reply(
                    chat,
                    252,
                    "2.0.0 Cannot VRFY user, but will accept message and attempt delivery",
                );
            }
        } else if is("EXPN") {
            self.reply(chat, 502, "5.5.1 Error: command not implemented");
        } else if is("HELP") {
            self.reply(
                chat,
                214,
                "2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT STARTTLS",
            );
        } else if is("QUIT") {
            if argument.is_empty() {
                self.reply(chat, 221, "2.0.0 Bye");
                return Next::Quit;
            }
            self.reply(chat, 501, "5.5.4 Syntax: QUIT");
        } else if is("STARTTLS") {
            return self.start_tls_command(argument, chat, server);
        } else if verb.is_empty() {
            self.reply(chat, 500, "5.5.2 Error: bad syntax");
        } else {
            self.reply(chat, 500, "5.5.2 Error: command not recognized");
        }
        Next::Continue
    }

    fn hello<T>(&mut self, argument: &[u8], extended: bool, chat: &mut Chat<T>, server: &Server)
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        // A domain or an address literal; any printable word is taken, as
        // most servers do, since it only goes into `Received:`.
        if argument.is_empty() || !argument.iter().all(|byte| byte.is_ascii_graphic()) {
            let syntax = if extended {
                "5.5.4 Syntax: EHLO hostname"
            } else {
                "5.5.4 Syntax: HELO hostname"
            };
            return self.reply(chat, 501, syntax);
        }
        // Like RSET, HELO and EHLO end any transaction (RFC 5321 4.1.4).
        self.transaction = None;
        self.greeting = Some(Greeting {
            name: String::from_utf8_lossy(argument).into_owned(),
            extended,
        });
        let config = &server.config;
        if !extended {
            return self.reply(chat, 250, &config.hostname);
        }
        let mut reply = String::with_capacity(128);
        let _ = write!(
            reply,
            "250-{}\r\n250-PIPELINING\r\n250-SIZE {}\r\n250-8BITMIME\r\n",
            config.hostname, config.max_size
        );
        if config.tls.is_some() && !self.tls {
            reply.push_str("250-STARTTLS\r\n");
        }
        reply.push_str("250 ENHANCEDSTATUSCODES\r\n");
        chat.push(reply);
    }

    fn mail<T>(&mut self, argument: &[u8], chat: &mut Chat<T>, server: &Server)
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let Some(greeting) = &self.greeting else {
            return self.reply(chat, 503, "5.5.1 Error: send HELO/EHLO first");
        };
        if self.transaction.is_some() {
            return self.reply(chat, 503, "5.5.1 Error: nested MAIL command");
        }
        let Some(path) = strip_prefix_ignore_case(argument, b"FROM:") else {
            return self.reply(chat, 501, "5.5.4 Syntax: MAIL FROM:<address>");
        };
        let Some((sender, parameters)) = parse_path(trim_spaces(path)) else {
            return self.reply(chat, 501, "5.1.7 Bad sender address syntax");
        };
        let extended = greeting.extended;
        for parameter in parameters {
            // Parameters are an ESMTP extension: not after HELO (RFC 5321 4.1.2).
            let (keyword, value) = split_parameter(parameter);
            if extended && keyword.eq_ignore_ascii_case(b"SIZE") {
                match value.and_then(parse_decimal) {
                    Some(size) if size <= server.config.max_size => {}
                    Some(_) => {
                        return self.reply(
                            chat,
                            552,
                            "5.3.4 Message size exceeds fixed maximum message size",
                        );
                    }
                    None => return self.reply(chat, 501, "5.5.4 Bad SIZE parameter"),
                }
            } else if extended && keyword.eq_ignore_ascii_case(b"BODY") {
                let value = value.unwrap_or_default();
                if !value.eq_ignore_ascii_case(b"7BIT") && !value.eq_ignore_ascii_case(b"8BITMIME")
                {
                    return self.reply(chat, 501, "5.5.4 Bad BODY parameter");
                }
            } else {
                return self.reply(chat, 555, "5.5.4 Unsupported option");
            }
        }
        self.transaction = Some(Transaction {
            sender,
            recipients: Vec::new(),
        });
        self.reply(chat, 250, "2.1.0 Ok");
    }

    fn recipient<T>(&mut self, argument: &[u8], chat: &mut Chat<T>, server: &Server)
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let Some(transaction) = &self.transaction else {
            return self.reply(chat, 503, "5.5.1 Error: need MAIL command");
        };
        let Some(path) = strip_prefix_ignore_case(argument, b"TO:") else {
            return self.reply(chat, 501, "5.5.4 Syntax: RCPT TO:<address>");
        };
        let Some((recipient, mut parameters)) = parse_path(trim_spaces(path)) else {
            return self.reply(chat, 501, "5.1.3 Bad recipient address syntax");
        };
        if recipient.is_empty() {
            return self.reply(chat, 501, "5.1.3 Bad recipient address syntax");
        }
        if parameters.next().is_some() {
            return self.reply(chat, 555, "5.5.4 Unsupported option");
        }
        if transaction.recipients.len() >= server.config.max_recipients {
            return self.reply(chat, 452, "4.5.3 Error: too many recipients");
        }
        if let Some(transaction) = &mut self.transaction {
            transaction.recipients.push(recipient);
        }
        self.reply(chat, 250, "2.1.5 Ok");
    }

    fn data<T>(&mut self, argument: &[u8], chat: &mut Chat<T>) -> Next
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        if !argument.is_empty() {
            self.reply(chat, 501, "5.5.4 Syntax: DATA");
            return Next::Continue;
        }
        match &self.transaction {
            None => self.reply(chat, 503, "5.5.1 Error: need MAIL command"),
            Some(transaction) if transaction.recipients.is_empty() => {
                self.reply(chat, 503, "5.5.1 Error: need RCPT command");
            }
            // The 354 comes once the message has somewhere to go.
            Some(_) => return Next::Data,
        }
        Next::Continue
    }

    fn start_tls_command<T>(&mut self, argument: &[u8], chat: &mut Chat<T>, server: &Server) -> Next
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        if server.config.tls.is_none() {
            self.reply(chat, 502, "5.5.1 Error: command not implemented");
        } else if self.tls {
            self.reply(chat, 503, "5.5.1 Error: TLS already active");
        } else if !argument.is_empty() {
            self.reply(chat, 501, "5.5.4 Syntax: STARTTLS");
        } else {
            self.reply(chat, 220, "2.0.0 Ready to start TLS");
            return Next::StartTls;
        }
        Next::Continue
    }

    /// The trace fields that open a stored message: `Return-Path:`, which
    /// the final delivery adds (RFC 5321 4.4), and `Received:`.
    fn trace_fields(&self, server: &Server, id: &MessageId, transaction: &Transaction) -> String {
        // The protocol names of RFC 3848.
        let (helo, protocol) = match &self.greeting {
            Some(greeting) => {
                let protocol = match (greeting.extended, self.tls) {
                    (true, true) => "ESMTPS",
                    (true, false) => "ESMTP",
                    (false, true) => "SMTPS",
                    (false, false) => "SMTP",
                };
                (greeting.name.as_str(), protocol)
            }
            None => ("unknown", "SMTP"),
        };
        let client = match self.client {
            Some(address) => format!("[{address}]"),
            None => "unknown".to_string(),
        };
        let mut field = format!(
            "Return-Path: <{}>\r\nReceived: from {helo} ({client})\r\n\tby {} with {protocol} id {}",
            transaction.sender,
            server.config.hostname,
            id.queue_id()
        );
        // One recipient is named; several are not, so as not to tell each
        // of them who else got the message.
        if let [recipient] = &transaction.recipients[..] {
            let _ = write!(field, "\r\n\tfor <{recipient}>");
        }
        let _ = write!(field, "; {}\r\n", rfc5322_date(id.time));
        field
    }
}
/// Runs commands until the conversation ends or asks for STARTTLS.
async fn converse<T>(
    chat: &mut Chat<T>,
    conversation: &mut Conversation,
    server: &Server,
) -> Result<Ending, Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    let config = &server.config;
    loop {
        let next = match timeout(config.idle_timeout, chat.next()).await {
            Err(_) => {
                let text = format!("4.4.2 {} Error: timeout exceeded", config.hostname);
                conversation.reply(chat, 421, &text);
                return Ok(Ending::Close);
            }
            Ok(None) => return Ok(Ending::Disconnected),
            Ok(Some(Ok(Frame::Complete(line)))) => conversation.command(&line, chat, server),
            // The input ended in the middle of a line.
            Ok(Some(Ok(Frame::Partial(_)))) => return Ok(Ending::Disconnected),
            Ok(Some(Err(Error::FrameTooLong { .. }))) => {
                // Answered now; the codec skips the rest of the line by itself.
                conversation.reply(chat, 500, "5.5.2 Error: line too long");
                Next::Continue
            }
            Ok(Some(Err(error))) => return Err(error),
        };
        match next {
            Next::Continue => {}
            Next::Data => {
                if let Some(ending) = receive_message(chat, conversation, server).await? {
                    return Ok(ending);
                }
            }
            Next::StartTls => return Ok(Ending::StartTls),
            Next::Quit => return Ok(Ending::Close),
        }
        if conversation.errors >= config.max_errors {
            let text = format!("4.7.0 {} Error: too many errors", config.hostname);
            conversation.reply(chat, 421, &text);
            return Ok(Ending::Close);
        }
        if chat.queued_output_len() >= FLUSH_AT {
            match timeout(config.idle_timeout, SinkExt::flush(chat)).await {
                Ok(result) => result?,
                Err(_) => return Ok(Ending::Disconnected),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The message.

/// Where the message being received goes.
enum Sink {
    /// Boxed: a file and its buffer beside variants of no data.
    Maildir(Box<Delivery>),
    Discard,
    /// Over the size limit: the rest is read and dropped, then 552.
    TooLarge,
    /// Writing failed: the rest is read and dropped, then 451.
    Failed,
}

impl Sink {
    async fn write(&mut self, piece: &[u8]) {
        let Sink::Maildir(delivery) = self else {
            return;
        };
        delivery.pending.extend_from_slice(piece);
        if delivery.pending.len() < WRITE_SIZE {
            return;
        }
        // `Failed` while the delivery is in the blocking pool, and after
        // if the write failed: dropping the delivery removes its file.
        if let Sink::Maildir(delivery) = std::mem::replace(self, Sink::Failed) {
            let write_out = |delivery: &mut Delivery| delivery.write_pending().map(drop);
            match delivery.in_blocking_pool(write_out).await {
                Ok(delivery) => *self = Sink::Maildir(delivery),
                Err(error) => eprintln!("maildir: {error}"),
            }
        }
    }
}

/// Reads the message that follows an accepted `DATA`, stores it, and
/// queues the reply. `Some(ending)` when the conversation ends on the way.
async fn receive_message<T>(
    chat: &mut Chat<T>,
    conversation: &mut Conversation,
    server: &Server,
) -> Result<Option<Ending>, Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    let config = &server.config;
    let Some(transaction) = conversation.transaction.take() else {
        return Ok(None);
    };
    let id = MessageId::next();
    let mut sink = match &config.store {
        Store::Discard => Sink::Discard,
        Store::Maildir(maildir) => {
            let trace = conversation.trace_fields(server, &id, &transaction);
            let name = id.file_name(&config.hostname);
            Sink::Maildir(Box::new(Delivery::new(maildir, &name, trace.as_bytes())))
        }
    };
    conversation.reply(chat, 354, "End data with <CR><LF>.<CR><LF>");

    // The message streams; `DATA`'s own CRLF counts as the line ending
    // before a first-line dot, so `.\r\n` at once is an empty message.
    chat.set_streaming(true);
    chat.set_terminator_after(END_OF_DATA, Bytes::from_static(b"\r\n"));
    let mut unstuffer = DotUnstuffer::new();
    let mut pieces = Vec::new();
    let mut size: u64 = 0;
    loop {
        let (chunk, complete) = match timeout(config.idle_timeout, chat.next()).await {
            Err(_) => {
                let text = format!("4.4.2 {} Error: timeout exceeded", config.hostname);
                conversation.reply(chat, 421, &text);
                return Ok(Some(Ending::Close)); // the sink's drop removes tmp/'s file
            }
            Ok(None) => return Ok(Some(Ending::Disconnected)),
            Ok(Some(Ok(Frame::Partial(chunk)))) => (chunk, false),
            Ok(Some(Ok(Frame::Complete(chunk)))) => (chunk, true),
            Ok(Some(Err(error))) => return Err(error),
        };
        unstuffer.unstuff(chunk, &mut pieces);
        // The last line's CRLF was the start of the terminator, unless the
        // terminator began with DATA's own CRLF: an empty message.
        if complete && chat.matched_delimiter() == Some(END_OF_DATA) {
            pieces.push(Bytes::from_static(b"\r\n"));
        }
        for piece in pieces.drain(..) {
            size += piece.len() as u64;
            if size > config.max_size && !matches!(sink, Sink::TooLarge | Sink::Failed) {
                // Nothing more is written, and what was is removed now.
                sink = Sink::TooLarge;
            }
            sink.write(&piece).await;
        }
        if complete {
            break;
        }
    }
    chat.set_streaming(false);
    chat.set_terminator(server.commands.clone());

    let stored = match sink {
        Sink::TooLarge => {
            conversation.reply(chat, 552, "5.3.4 Error: message file too big");
            return Ok(None);
        }
        Sink::Failed => Err(()),
        Sink::Discard => Ok(()),
        Sink::Maildir(delivery) => delivery.commit().await.map_err(|error| {
            eprintln!("maildir: {error}");
        }),
    };
    match stored {
        Ok(()) => {
            server.messages.fetch_add(1, Ordering::Relaxed);
            server.bytes.fetch_add(size, Ordering::Relaxed);
            let text = format!("2.0.0 Ok: queued as {}", id.queue_id());
            conversation.reply(chat, 250, &text);
        }
        Err(()) => conversation.reply(chat, 451, "4.3.0 Error: queue file write error"),
    }
    Ok(None)
}

/// Where the unstuffer is within a line of message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinePosition {
    /// At the start of a line: a dot here was doubled by the client.
    Start,
    /// Just after a CR: an LF next ends the line.
    AfterCr,
    /// Anywhere else in a line.
    Within,
}

/// RFC 5321 4.5.2's transparency, undone on a message that comes in
/// chunks: the first dot of a line that starts with one is removed.
///
/// A line may start in one chunk and its dot come in the next (the chunk
/// ended with `\r\n`, or with `\r` and the next starts `\n.`), so the
/// position within the line carries over from chunk to chunk. Lines are
/// CRLF lines: a dot after a bare LF is text.
///
/// The pieces handed out are slices of the chunk (`Bytes::slice`, no copy);
/// the chunk is searched for `\r\n.` with `memchr::memmem`, O(chunk).
///
/// ```text
/// "..a\r\n" + ".b\r\n..c"  ->  ".a\r\n" + "b\r\n.c"
/// ```
#[derive(Debug)]
pub struct DotUnstuffer {
    position: LinePosition,
}

impl Default for DotUnstuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl DotUnstuffer {
    /// An unstuffer at the start of a message: the start of a line.
    pub fn new() -> Self {
        DotUnstuffer {
            position: LinePosition::Start,
        }
    }

    /// Appends to `pieces` the next `chunk` of the message, unstuffed.
    pub fn unstuff(&mut self, chunk: Bytes, pieces: &mut Vec<Bytes>) {
        if chunk.is_empty() {
            return;
        }
        // The first byte not yet handed out.
        let mut start = 0;
        match self.position {
            LinePosition::Start if chunk[0] == b'.' => start = 1,
            LinePosition::AfterCr if chunk.starts_with(b"\n.") => {
                pieces.push(chunk.slice(..1));
                start = 2;
            }
            _ => {}
        }
        let searched = start;
        for found in memmem::find_iter(&chunk[searched..], b"\r\n.") {
            let dot = searched + found + 2;
            pieces.push(chunk.slice(start..dot));
            start = dot + 1;
        }
        if start < chunk.len() {
            pieces.push(chunk.slice(start..));
        }
        self.position = match chunk[..] {
            [.., b'\r'] => LinePosition::AfterCr,
            [.., b'\r', b'\n'] => LinePosition::Start,
            [b'\n'] if self.position == LinePosition::AfterCr => LinePosition::Start,
            _ => LinePosition::Within,
        };
    }
}

/// A message being written into a Maildir: `tmp/` until it is whole, then
/// `new/`. Dropped before [`commit`](Self::commit), it removes its file.
///
/// The text gathers in `pending`, which grows with the message and goes to
/// the file in the blocking pool each time it reaches [`WRITE_SIZE`]: a
/// message of a few lines costs a few hundred bytes while the client sends
/// it, not a fixed buffer, and is created, written, synced and renamed by
/// one task in the blocking pool at its end. (A file that cannot be
/// created is then answered 451 after the message rather than before.)
struct Delivery {
    /// Created at the first write-out.
    file: Option<std::fs::File>,
    pending: Vec<u8>,
    paths: TmpFile,
}

/// How much of a message gathers before it is written out: unstuffed
/// pieces can be a few bytes each, and meet here.
const WRITE_SIZE: usize = 64 * 1024;

/// A file in `tmp/` and its name in `new/`: removed when dropped, unless
/// it was moved there.
struct TmpFile {
    tmp_path: PathBuf,
    new_path: PathBuf,
    committed: bool,
}

impl Delivery {
    /// A message for `tmp/name` (which must not exist) whose first bytes
    /// are `header`.
    fn new(maildir: &Path, name: &str, header: &[u8]) -> Delivery {
        Delivery {
            file: None,
            pending: header.to_vec(),
            paths: TmpFile {
                tmp_path: maildir.join("tmp").join(name),
                new_path: maildir.join("new").join(name),
                committed: false,
            },
        }
    }

    /// Writes out, syncs (the 250 promises the message survives a crash)
    /// and renames into `new/`, which delivers it at once and whole: one
    /// task in the blocking pool.
    async fn commit(self: Box<Self>) -> io::Result<()> {
        self.in_blocking_pool(|delivery| {
            delivery.write_pending()?.sync_data()?;
            delivery.paths.move_to_new()
        })
        .await
        .map(drop)
    }

    /// Runs `work` on the delivery in the blocking pool and takes the
    /// delivery back, dropped here if the work failed: its buffers are
    /// freed by the runtime's thread, which allocated them. (Freed by the
    /// pool's threads, they went through those threads' malloc caches, and
    /// the heap crept up.)
    async fn in_blocking_pool(
        mut self: Box<Self>,
        work: impl FnOnce(&mut Delivery) -> io::Result<()> + Send + 'static,
    ) -> io::Result<Box<Self>> {
        let (result, delivery) = tokio::task::spawn_blocking(move || (work(&mut self), self))
            .await
            .map_err(io::Error::other)?;
        result.map(|()| delivery)
    }

    /// In the blocking pool: what gathered goes to the file, created at
    /// the first write-out, which is returned.
    fn write_pending(&mut self) -> io::Result<&std::fs::File> {
        let file = match self.file.take() {
            Some(file) => file,
            None => TmpFile::create(&self.paths.tmp_path)?,
        };
        let file = self.file.insert(file);
        file.write_all(&self.pending)?;
        self.pending.clear();
        Ok(file)
    }
}

impl TmpFile {
    /// Creates the file in `tmp/`: a new one, never one that exists.
    fn create(tmp_path: &Path) -> io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp_path)
    }

    /// Renames the file into `new/`: delivered, it is no longer removed.
    fn move_to_new(&mut self) -> io::Result<()> {
        std::fs::rename(&self.tmp_path, &self.new_path)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

/// This process's deliveries so far: the `Q` part of a Maildir name.
static DELIVERIES: AtomicU64 = AtomicU64::new(0);

/// A message's identity: its queue id and Maildir name, and its date.
struct MessageId {
    time: SystemTime,
    sequence: u64,
}

impl MessageId {
    fn next() -> MessageId {
        MessageId {
            time: SystemTime::now(),
            sequence: DELIVERIES.fetch_add(1, Ordering::Relaxed) + 1,
        }
    }

    /// `<seconds>.M<microseconds>P<pid>Q<sequence>`: unique on this host.
    fn queue_id(&self) -> String {
        let since_epoch = self.time.duration_since(UNIX_EPOCH).unwrap_or_default();
        format!(
            "{}.M{}P{}Q{}",
            since_epoch.as_secs(),
            since_epoch.subsec_micros(),
            std::process::id(),
            self.sequence
        )
    }

    /// The Maildir name: the queue id and the host, with the `/` and `:`
    /// a file name cannot hold (or Maildir reserves) written as `\057` and
    /// `\072`, as the Maildir specification says.
    fn file_name(&self, hostname: &str) -> String {
        let host = hostname.replace('/', "\\057").replace(':', "\\072");
        format!("{}.{host}", self.queue_id())
    }
}

/// `time` as RFC 5322 writes a date, in UTC: `Thu, 1 Jan 1970 00:00:00 +0000`.
pub fn rfc5322_date(time: SystemTime) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let days = seconds / 86_400;
    let of_day = seconds % 86_400;
    // Howard Hinnant's civil_from_days: the proleptic Gregorian date of a
    // day count, in eras of 400 years (146097 days) starting on 1 March.
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    format!(
        "{}, {day} {} {year} {:02}:{:02}:{:02} +0000",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[month as usize - 1],
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

// ---------------------------------------------------------------------------
// Addresses and parameters (RFC 5321 4.1.2).

/// `bytes` without the spaces and tabs at either end.
fn trim_spaces(bytes: &[u8]) -> &[u8] {
    let is_space = |byte: &u8| *byte == b' ' || *byte == b'\t';
    let start = bytes
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |end| end + 1);
    &bytes[start..end]
}

fn strip_prefix_ignore_case<'a>(bytes: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = bytes.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &bytes[prefix.len()..])
}

/// A reverse or forward path: `<mailbox>`, `<>` (the null path, given as
/// an empty mailbox) or `<@relay,@relay:mailbox>` (the source route is
/// accepted and ignored, RFC 5321 4.1.2 and appendix C), then the
/// parameters after it, separated by spaces.
fn parse_path(text: &[u8]) -> Option<(String, impl Iterator<Item = &[u8]>)> {
    let text = text.strip_prefix(b"<")?;
    let end = closing_bracket(text)?;
    let (inner, rest) = (&text[..end], &text[end + 1..]);
    if !rest.is_empty() && rest[0] != b' ' {
        return None;
    }
    let mailbox = match inner {
        [b'@', ..] => {
            let colon = inner.iter().position(|&byte| byte == b':')?;
            let route = &inner[..colon];
            let hops_are_domains = route
                .split(|&byte| byte == b',')
                .all(|hop| hop.strip_prefix(b"@").is_some_and(is_domain));
            if !hops_are_domains {
                return None;
            }
            &inner[colon + 1..]
        }
        _ => inner,
    };
    let valid =
        mailbox.is_empty() || is_mailbox(mailbox) || mailbox.eq_ignore_ascii_case(b"postmaster");
    if !valid {
        return None;
    }
    let mailbox = String::from_utf8(mailbox.to_vec()).ok()?;
    let parameters = rest
        .split(|&byte| byte == b' ')
        .filter(|parameter| !parameter.is_empty());
    Some((mailbox, parameters))
}

/// Where the `>` that closes a path is: not one inside a quoted local part.
fn closing_bracket(text: &[u8]) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (index, &byte) in text.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && byte == b'\\' {
            escaped = true;
        } else if byte == b'"' {
            quoted = !quoted;
        } else if byte == b'>' && !quoted {
            return Some(index);
        }
    }
    None
}

/// `local-part@domain`: a dot-string or quoted string, and a domain or an
/// address literal.
fn is_mailbox(mailbox: &[u8]) -> bool {
    let Some(at) = mailbox.iter().rposition(|&byte| byte == b'@') else {
        return false;
    };
    let (local, domain) = (&mailbox[..at], &mailbox[at + 1..]);
    (is_dot_string(local) || is_quoted_string(local))
        && (is_domain(domain) || is_address_literal(domain))
}

/// RFC 5322's `atext`: what an atom of a local part is made of.
fn is_atext(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&byte)
}

fn is_dot_string(text: &[u8]) -> bool {
    !text.is_empty()
        && text
            .split(|&byte| byte == b'.')
            .all(|atom| !atom.is_empty() && atom.iter().all(|&byte| is_atext(byte)))
}

/// `"..."`: printable ASCII, with `"` and `\` escaped by a `\`.
fn is_quoted_string(text: &[u8]) -> bool {
    let Some(inner) = text
        .strip_prefix(b"\"")
        .and_then(|rest| rest.strip_suffix(b"\""))
    else {
        return false;
    };
    let mut escaped = false;
    for &byte in inner {
        let printable = (b' '..=b'~').contains(&byte);
        if escaped {
            if !printable {
                return false;
            }
            escaped = false;
        } else if byte == b'\\' {
            escaped = true;
        } else if byte == b'"' || !printable {
            return false;
        }
    }
    !escaped
}

/// Labels of letters, digits and inner hyphens, joined by dots.
fn is_domain(domain: &[u8]) -> bool {
    !domain.is_empty()
        && domain.len() <= 255
        && domain.split(|&byte| byte == b'.').all(|label| {
            matches!((label.first(), label.last()), (Some(first), Some(last))
                if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric())
                && label
                    .iter()
                    .all(|&byte| byte.is_ascii_alphanumeric() || byte == b'-')
        })
}

/// `[...]`: an IPv4 or tagged address, checked only for its characters.
fn is_address_literal(domain: &[u8]) -> bool {
    match domain {
        [b'[', inner @ .., b']'] => {
            !inner.is_empty()
                && inner
                    .iter()
                    .all(|&byte| byte.is_ascii_graphic() && !b"[\\]".contains(&byte))
        }
        _ => false,
    }
}

/// `KEYWORD=value` or `KEYWORD`.
fn split_parameter(parameter: &[u8]) -> (&[u8], Option<&[u8]>) {
    match parameter.iter().position(|&byte| byte == b'=') {
        Some(equals) => (&parameter[..equals], Some(&parameter[equals + 1..])),
        None => (parameter, None),
    }
}

/// Decimal digits only; a number too large for a `u64` reads as
/// `u64::MAX`, which is over any limit.
fn parse_decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0u64, |value, &digit| {
        value
            .saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'))
    }))
}

// ---------------------------------------------------------------------------
// TLS.

/// A TLS acceptor that presents `certificates` (the server's first) signed
/// with `key`: TLS 1.2 and 1.3, `ring`'s algorithms.
pub fn tls_acceptor(
    certificates: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsAcceptor, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certificates, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A self-signed certificate for `names`, made now with `rcgen`, and its key.
pub fn self_signed(
    names: &[String],
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), rcgen::Error> {
    let certified = rcgen::generate_simple_self_signed(names.to_vec())?;
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    Ok((certified.cert.der().clone(), key.into()))
}

/// The certificate chain and the key in two PEM files.
fn load_pem(
    certificate_file: &Path,
    key_file: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let read =
        |path: &Path| std::fs::read(path).map_err(|error| format!("{}: {error}", path.display()));
    let certificates = CertificateDer::pem_slice_iter(&read(certificate_file)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("{}: {error}", certificate_file.display()))?;
    if certificates.is_empty() {
        return Err(format!("{}: no certificate", certificate_file.display()));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(key_file)?)
        .map_err(|error| format!("{}: {error}", key_file.display()))?;
    Ok((certificates, key))
}

// ---------------------------------------------------------------------------
// The end of a connection.

/// Sends everything queued, shuts the write side down, then reads and drops
/// what the client still sends for a moment: closing a socket with unread
/// input makes the kernel reset the connection, and the reset can destroy
/// the last reply before the client reads it.
async fn close<T>(mut chat: Chat<T>) -> Result<(), Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    match timeout(Duration::from_secs(10), SinkExt::close(&mut chat)).await {
        Ok(closed) => closed?,
        Err(_) => return Ok(()), // the client does not read: give up on it
    }
    let mut io = chat.into_parts().io;
    let mut sink = [0; 4096];
    let mut drained = 0;
    let _ = timeout(Duration::from_secs(2), async {
        while drained < 16 << 20 {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(read) => drained += read,
            }
        }
    })
    .await;
    Ok(())
}

// ---------------------------------------------------------------------------
// The command line.

const USAGE: &str = "usage: smtp_server [--port N] [--maildir DIR | --discard] [--max-size BYTES]
       [--max-recipients N] [--max-errors N] [--idle-timeout SECONDS]
       [--hostname NAME] [--cert FILE --key FILE]";

struct Options {
    port: u16,
    config: Config,
    certificate_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
}

fn parse_args() -> Result<Options, String> {
    let mut port = None;
    let mut config = Config {
        hostname: machine_hostname(),
        store: Store::Maildir(PathBuf::from("Maildir")),
        ..Config::default()
    };
    let mut certificate_file = None;
    let mut key_file = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value.into())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline_value
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{flag} needs a value"))
        };
        fn number<N: std::str::FromStr>(flag: &str, text: String) -> Result<N, String> {
            text.parse().map_err(|_| format!("bad {flag} {text:?}"))
        }
        match flag.as_str() {
            "--port" => port = Some(common::parse_port(&value()?)?),
            "--maildir" => config.store = Store::Maildir(PathBuf::from(value()?)),
            "--discard" => config.store = Store::Discard,
            "--max-size" => config.max_size = number(&flag, value()?)?,
            "--max-recipients" => config.max_recipients = number(&flag, value()?)?,
            "--max-errors" => config.max_errors = number(&flag, value()?)?,
            "--idle-timeout" => {
                config.idle_timeout = Duration::from_secs(number(&flag, value()?)?);
            }
            "--hostname" => config.hostname = value()?,
            "--cert" => certificate_file = Some(PathBuf::from(value()?)),
            "--key" => key_file = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    if certificate_file.is_some() != key_file.is_some() {
        return Err("--cert and --key go together".to_string());
    }
    if config.hostname.is_empty() || !config.hostname.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("bad --hostname {:?}", config.hostname));
    }
    Ok(Options {
        port: common::port_or_env(port, DEFAULT_PORT)?,
        config,
        certificate_file,
        key_file,
    })
}

/// The machine's name, as the kernel has it; `localhost` if unknown.
fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "localhost".to_string())
}

/// Resolves when the process is asked to stop (SIGINT, or SIGTERM on Unix).
async fn stop_requested() -> io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await
}

#[allow(dead_code)] // the integration tests include this file as a module
fn main() -> io::Result<()> {
    let mut options = parse_args().unwrap_or_else(|message| {
        eprintln!("smtp_server: {message}\n{USAGE}");
        std::process::exit(2);
    });
    let (certificates, key) = match (&options.certificate_file, &options.key_file) {
        (Some(certificate_file), Some(key_file)) => load_pem(certificate_file, key_file),
        _ => {
            let names = vec![options.config.hostname.clone(), "localhost".to_string()];
            self_signed(&names)
                .map(|(certificate, key)| (vec![certificate], key))
                .map_err(|error| format!("certificate: {error}"))
        }
    }
    .unwrap_or_else(|message| {
        eprintln!("smtp_server: {message}");
        std::process::exit(2);
    });
    let acceptor = tls_acceptor(certificates, key).map_err(io::Error::other)?;
    options.config.tls = Some(acceptor);

    // One thread, as smtp-sink and smtpd's processes: files are written by
    // tokio's blocking pool meanwhile. Its threads stay once started, and
    // are at most 32 (syncs beyond wait their turn): a thread's start
    // leaves its own allocations wherever the heap then ends, so threads
    // that came and went all along a load (ended after 10 s idle, tokio's
    // default), or kept coming while a slow disk held more syncs (up to
    // 74 under a loaded machine), crept the heap up with them.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(32)
        .thread_keep_alive(Duration::from_secs(3600))
        .build()?;
    runtime.block_on(async {
        let server = Arc::new(Server::new(options.config)?);
        let listener = listen(options.port)?;
        let store = match &server.config.store {
            Store::Maildir(maildir) => format!("Maildir {}", maildir.display()),
            Store::Discard => "discarding messages".to_string(),
        };
        println!(
            "smtp_server listening on {} ({store})",
            listener.local_addr()?
        );
        tokio::select! {
            served = serve(listener, server.clone()) => served?,
            stopped = stop_requested() => stopped?,
        }
        println!(
            "smtp_server: received {} messages, {} bytes",
            server.messages.load(Ordering::Relaxed),
            server.bytes.load(Ordering::Relaxed)
        );
        Ok(())
    })
}
