//! Where a body goes as it arrives: into its SHA-256, into its file with
//! `--store`, and into a copy for the echo while it is short. Nothing here
//! holds more than [`Config::max_echo`](super::Config::max_echo) bytes of a
//! body, however long it is.

use std::{
    mem,
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
};

use asynchat::{Chat, Frame, Terminator};
use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use tokio::{fs::File, io::AsyncWriteExt, net::TcpStream};

use super::{head::Framing, next_frame, reply::Status, Config, Read, Stop};

/// A body, once read: what the reply reports.
#[derive(Debug)]
pub struct Body {
    pub length: u64,
    pub sha256: [u8; 32],
    /// The file it was written to, with `--store`.
    pub stored: Option<PathBuf>,
    /// The body itself, when it is at most `max_echo` bytes.
    pub echo: Option<Bytes>,
    /// The trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
}

impl Body {
    /// No body at all: nothing stored.
    pub fn empty() -> Self {
        Body {
            length: 0,
            sha256: Sha256::digest(b"").into(),
            stored: None,
            echo: Some(Bytes::new()),
            trailers: Vec::new(),
        }
    }
}

/// Takes the pieces of one body as they arrive.
pub struct BodySink {
    length: u64,
    digest: Sha256,
    file: Option<(PathBuf, File)>,
    echo: Echo,
    max_echo: usize,
}

/// The copy of a body kept for the echo.
enum Echo {
    Nothing,
    /// One piece: the common case of a body that came in one read, kept
    /// as the frame's `Bytes`, not copied.
    One(Bytes),
    /// Several pieces, copied together.
    Gathered(BytesMut),
    /// Longer than `max_echo`: not kept.
    TooLong,
}

impl Echo {
    fn add(&mut self, piece: Bytes, max_echo: usize) {
        *self = match mem::replace(self, Echo::TooLong) {
            Echo::Nothing if piece.len() <= max_echo => Echo::One(piece),
            Echo::One(first) if first.len() + piece.len() <= max_echo => {
                let mut gathered = BytesMut::with_capacity(first.len() + piece.len());
                gathered.extend_from_slice(&first);
                gathered.extend_from_slice(&piece);
                Echo::Gathered(gathered)
            }
            Echo::Gathered(mut gathered) if gathered.len() + piece.len() <= max_echo => {
                gathered.extend_from_slice(&piece);
                Echo::Gathered(gathered)
            }
            _ => Echo::TooLong,
        }
    }

    fn into_bytes(self) -> Option<Bytes> {
        match self {
            Echo::Nothing => Some(Bytes::new()),
            Echo::One(bytes) => Some(bytes),
            Echo::Gathered(bytes) => Some(bytes.freeze()),
            Echo::TooLong => None,
        }
    }
}

/// Numbers the stored bodies of this process.
static NEXT_BODY: AtomicU64 = AtomicU64::new(1);

impl BodySink {
    /// A sink for a body framed by `framing`; with `--store`, its file is
    /// created, named `<process id>-<number>.body`.
    pub async fn open(config: &Config, framing: Framing) -> Result<Self, Stop> {
        let file = match &config.store {
            None => None,
            Some(directory) => {
                let number = NEXT_BODY.fetch_add(1, Ordering::Relaxed);
                let path = directory.join(format!("{}-{number}.body", std::process::id()));
                let file = tokio::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .await
                    .map_err(|error| store_failed(&path, error))?;
                Some((path, file))
            }
        };
        // A body known to be too long for the echo is never gathered.
        let echo = match framing {
            Framing::Length(length) if length > config.max_echo as u64 => Echo::TooLong,
            _ => Echo::Nothing,
        };
        Ok(BodySink {
            length: 0,
            digest: Sha256::new(),
            file,
            echo,
            max_echo: config.max_echo,
        })
    }

    /// Takes the next piece: digests it, writes it to the file (waiting for
    /// the disk: a client faster than it is slowed down, not buffered), and
    /// keeps it for the echo if the body is still short.
    pub async fn take(&mut self, piece: Bytes) -> Result<(), Stop> {
        if piece.is_empty() {
            return Ok(());
        }
        self.length += piece.len() as u64;
        self.digest.update(&piece);
        if let Some((path, file)) = &mut self.file {
            file.write_all(&piece)
                .await
                .map_err(|error| store_failed(path, error))?;
        }
        self.echo.add(piece, self.max_echo);
        Ok(())
    }

    /// The body, once its last piece was taken: the file flushed, the
    /// digest finished.
    pub async fn finish(self, trailers: Vec<(String, String)>) -> Result<Body, Stop> {
        let stored = match self.file {
            None => None,
            Some((path, mut file)) => {
                // tokio writes a file in the background: this waits for
                // the last write and reports its error.
                file.flush()
                    .await
                    .map_err(|error| store_failed(&path, error))?;
                Some(path)
            }
        };
        Ok(Body {
            length: self.length,
            sha256: self.digest.finalize().into(),
            stored,
            echo: self.echo.into_bytes(),
            trailers,
        })
    }
}

fn store_failed(path: &std::path::Path, error: std::io::Error) -> Stop {
    eprintln!("store {}: {error}", path.display());
    Stop::Refuse(Status::InternalServerError)
}

/// Reads a body of `length` bytes into `sink`, streamed: each piece as it
/// arrives, at most one read (`in_buffer_size`) at a time.
pub async fn read_counted(
    chat: &mut Chat<TcpStream>,
    config: &Config,
    length: u64,
    sink: &mut BodySink,
) -> Result<(), Stop> {
    chat.set_terminator(Terminator::Length(length));
    chat.set_streaming(true);
    read_streamed(chat, config, sink).await
}

/// Hands every frame of the message under way to `sink`, up to its
/// `Frame::Complete`. The peer closing first cuts the body short (400);
/// one that stops sending gets 408.
pub async fn read_streamed(
    chat: &mut Chat<TcpStream>,
    config: &Config,
    sink: &mut BodySink,
) -> Result<(), Stop> {
    loop {
        match next_frame(chat, config.idle_timeout).await {
            Ok(Read::Frame(Frame::Partial(piece))) => sink.take(piece).await?,
            Ok(Read::Frame(Frame::Complete(piece))) => return sink.take(piece).await,
            Ok(Read::End) => return Err(Stop::Refuse(Status::BadRequest)),
            Ok(Read::Idle) => return Err(Stop::Refuse(Status::RequestTimeout)),
            Err(error) => return Err(Stop::Failed(error)),
        }
    }
}
