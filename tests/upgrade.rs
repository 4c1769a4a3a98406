//! STARTTLS over loopback TCP with a real TLS stack (rustls, a self-signed
//! certificate made by rcgen): `Chat::upgrade` writes the plaintext reply,
//! discards what the client pipelined after `STARTTLS` (CVE-2011-0411: those
//! bytes must never be read as if they had come over TLS), and the
//! conversation goes on encrypted.

mod common;

use std::sync::Arc;

use asynchat::{Chat, Error, Frame};
use bytes::Bytes;
use common::{tcp_pair, within};
use futures::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::{
    rustls::{
        self,
        crypto::ring::default_provider,
        pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
        ClientConfig, RootCertStore, ServerConfig,
    },
    TlsAcceptor, TlsConnector,
};

/// A TLS server and a client that trusts it, for `localhost`.
fn tls_pair() -> (TlsAcceptor, TlsConnector) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("a self-signed certificate");
    let certificate = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(default_provider());

    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the default versions")
        .with_no_client_auth()
        .with_single_cert(vec![certificate.clone()], key)
        .expect("the certificate and its key");
    let mut roots = RootCertStore::empty();
    roots.add(certificate).expect("a root certificate");
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (
        TlsAcceptor::from(Arc::new(server)),
        TlsConnector::from(Arc::new(client)),
    )
}

/// Reads one `\r\n`-terminated reply, byte by byte, so that nothing after
/// it (the TLS handshake) is taken from the socket.
async fn read_reply<R: AsyncRead + Unpin>(reader: &mut R) -> String {
    let mut reply = Vec::new();
    while !reply.ends_with(b"\r\n") {
        reply.push(within("a reply", reader.read_u8()).await.expect("a byte"));
    }
    String::from_utf8(reply).expect("an ASCII reply")
}

/// Answers the commands of an SMTP-like conversation until `QUIT`; returns
/// every command it saw, over plaintext and then over TLS.
async fn serve<T>(mut chat: Chat<T>, seen: &mut Vec<String>) -> Result<(), Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(frame) = chat.next().await {
        let Frame::Complete(line) = frame? else {
            panic!("a command line without its end");
        };
        let command = String::from_utf8(line.to_vec()).expect("an ASCII command");
        seen.push(command.clone());
        match command.as_str() {
            "NOOP" => chat.push("250 ok\r\n"),
            "RSET" => chat.push("250 reset\r\n"),
            "QUIT" => {
                chat.push("221 bye\r\n");
                chat.close_when_done();
            }
            _ => chat.push("500 unknown\r\n"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn starttls_discards_pipelined_plaintext() {
    let (acceptor, connector) = tls_pair();
    let (mut client, server) = tcp_pair().await;

    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut chat = Chat::new(server, "\r\n");
        chat.push("220 localhost ESMTP\r\n");
        let Some(Ok(Frame::Complete(command))) = chat.next().await else {
            panic!("no STARTTLS");
        };
        assert_eq!(command, "STARTTLS");
        seen.push("STARTTLS".to_owned());
        // What the client pipelined is visible, and is about to be dropped.
        assert_eq!(chat.buffered_input(), b"RSET\r\n");
        chat.push("220 ready\r\n");
        let chat = chat
            .upgrade(|io| acceptor.accept(io))
            .await
            .expect("the TLS handshake");
        assert!(chat.buffered_input().is_empty());
        assert_eq!(chat.terminator().delimiter(), Some(&b"\r\n"[..]));
        serve(chat, &mut seen).await.expect("the TLS conversation");
        seen
    });

    assert_eq!(read_reply(&mut client).await, "220 localhost ESMTP\r\n");
    // One write: the RSET arrives with the STARTTLS, in plaintext.
    within("the write", client.write_all(b"STARTTLS\r\nRSET\r\n"))
        .await
        .unwrap();
    assert_eq!(read_reply(&mut client).await, "220 ready\r\n");

    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = within("the TLS handshake", connector.connect(name, client))
        .await
        .expect("the TLS handshake");
    within("the write", tls.write_all(b"NOOP\r\n"))
        .await
        .unwrap();
    // The first answer over TLS is NOOP's: nothing was answered to RSET.
    assert_eq!(read_reply(&mut tls).await, "250 ok\r\n");
    within("the write", tls.write_all(b"QUIT\r\n"))
        .await
        .unwrap();
    let mut rest = String::new();
    within("the end", tls.read_to_string(&mut rest))
        .await
        .expect("a clean TLS close");
    assert_eq!(rest, "221 bye\r\n");

    let seen = within("the server", server).await.expect("the server task");
    assert_eq!(seen, ["STARTTLS", "NOOP", "QUIT"]);
}

/// A client that answers `220 ready` with plaintext instead of a TLS
/// handshake: the upgrade fails with `Error::Io`, nothing panics.
#[tokio::test]
async fn starttls_failed_handshake_is_an_io_error() {
    let (acceptor, _connector) = tls_pair();
    let (mut client, server) = tcp_pair().await;

    let server = tokio::spawn(async move {
        let mut chat = Chat::new(server, "\r\n");
        let Some(Ok(Frame::Complete(command))) = chat.next().await else {
            panic!("no STARTTLS");
        };
        assert_eq!(command, "STARTTLS");
        chat.push("220 ready\r\n");
        chat.upgrade(|io: TcpStream| acceptor.accept(io)).await
    });

    within("the write", client.write_all(b"STARTTLS\r\n"))
        .await
        .unwrap();
    assert_eq!(read_reply(&mut client).await, "220 ready\r\n");
    within(
        "the write",
        client.write_all(b"this is not a TLS handshake, it is plaintext\r\n"),
    )
    .await
    .unwrap();

    match within("the server", server).await.expect("the server task") {
        Err(Error::Io(error)) => assert_eq!(error.kind(), std::io::ErrorKind::InvalidData),
        Err(other) => panic!("expected Error::Io, got {other}"),
        Ok(_) => panic!("a plaintext line passed for a TLS handshake"),
    }
}

/// `buffered_input` lets a server refuse a pipelined STARTTLS outright
/// instead of discarding the bytes silently.
#[tokio::test]
async fn buffered_input_lets_a_server_refuse_pipelining() {
    let (mut client, server) = tcp_pair().await;
    let mut chat = Chat::new(server, "\r\n");
    within(
        "the write",
        client.write_all(b"STARTTLS\r\nMAIL FROM:<a@b>\r\n"),
    )
    .await
    .unwrap();
    let frame = within("a frame", chat.next()).await.unwrap().unwrap();
    assert_eq!(frame, Frame::Complete(Bytes::from_static(b"STARTTLS")));
    let pipelined = chat.buffered_input().to_vec();
    assert_eq!(pipelined, b"MAIL FROM:<a@b>\r\n");
    chat.push("554 no pipelining after STARTTLS\r\n");
    within("the close", chat.close()).await.unwrap();
    let mut reply = String::new();
    within("the reply", client.read_to_string(&mut reply))
        .await
        .unwrap();
    assert_eq!(reply, "554 no pipelining after STARTTLS\r\n");
}
