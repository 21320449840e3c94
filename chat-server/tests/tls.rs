//! TLS termination: Socket.IO over WSS with a self-signed certificate, refused handshakes
//! that leave the server serving, unusable certificate and key files, the handshake timeout,
//! graceful shutdown and restart, and the binary's `--tls-cert` / `--tls-key` flags.

mod support;

use std::process::Stdio;
use std::time::Duration;

use chat_server::{Server, ServerConfig, ServerError, TlsConfig, TlsError};
use chat_testkit::{TestCert, TestServer};
use rustls::pki_types::ServerName;
use serde_json::json;
use support::{client_config, RawClient, PATIENCE};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

async fn tls_server() -> TestServer {
    TestServer::start_tls().await.expect("TLS server starts")
}

/// Opens a TLS connection to `addr`, trusting `ca_pem`, for the server name `127.0.0.1`.
async fn tls_connect(
    addr: std::net::SocketAddr,
    ca_pem: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    tls_connect_as(addr, ca_pem, "127.0.0.1").await
}

/// Opens a TLS connection to `addr`, trusting `ca_pem`, expecting a certificate for `name`.
async fn tls_connect_as(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned()).expect("valid name");
    TlsConnector::from(client_config(ca_pem))
        .connect(name, tcp)
        .await
}

/// Sends one keep-alive `GET /health` on `stream` and returns the response head and body.
async fn get_health(stream: &mut TlsStream<TcpStream>) -> String {
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("request written");
    let mut response = Vec::new();
    let mut buffer = [0u8; 1024];
    while !response.ends_with(b"ok") {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buffer))
            .await
            .expect("response within patience")
            .expect("response read");
        assert!(n > 0, "connection closed mid-response");
        response.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8_lossy(&response).into_owned()
}

/// Waits until the peer closes `stream` (end of file or an error, not a timeout).
async fn until_closed(stream: &mut (impl AsyncReadExt + Unpin)) {
    let mut buffer = [0u8; 64];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut buffer))
            .await
            .expect("the connection stayed open")
        {
            Ok(0) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

#[tokio::test]
async fn a_client_trusting_the_certificate_speaks_socketio_over_wss() {
    let server = tls_server().await;
    assert_eq!(server.url(), format!("https://{}", server.addr()));
    let ca = server.ca_pem().expect("a TLS server has a CA");
    let token = server.token("alice");
    let mut alice = RawClient::connect_tls(server.addr(), ca, json!({ "token": token }))
        .await
        .expect("alice connects over wss");
    alice.join("general").await;
    let ack = alice.say("general", "over tls").await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(alice.next_event("message:new").await["body"], "over tls");

    // The certificate names `localhost` too, and no other host.
    let mut by_name = tls_connect_as(server.addr(), ca, "localhost")
        .await
        .expect("valid for localhost");
    assert!(get_health(&mut by_name).await.starts_with("HTTP/1.1 200"));
    tls_connect_as(server.addr(), ca, "example.com")
        .await
        .expect_err("not valid for another name");
}

#[tokio::test]
async fn an_untrusting_client_fails_the_handshake_and_others_are_still_served() {
    let server = tls_server().await;
    let auth = json!({ "token": server.token("mallory") });

    let other = TestCert::generate().expect("another certificate");
    let refused = RawClient::connect_tls(server.addr(), other.cert_pem(), auth.clone())
        .await
        .err()
        .expect("a client trusting another certificate is refused");
    assert!(
        refused.0.contains("certificate"),
        "the error is about the certificate: {refused:?}"
    );
    // Plain WebSocket to the TLS port, and bytes that are not TLS at all.
    RawClient::connect(server.addr(), auth)
        .await
        .err()
        .expect("plain ws:// to a TLS port fails");
    let mut garbage = TcpStream::connect(server.addr()).await.expect("tcp");
    garbage
        .write_all(b"this is not a TLS ClientHello\r\n\r\n")
        .await
        .expect("written");
    until_closed(&mut garbage).await;

    let mut alice = RawClient::as_user(&server, "alice").await;
    alice.join("general").await;
    assert_eq!(alice.say("general", "still here").await["ok"], true);
    assert_eq!(alice.next_event("message:new").await["body"], "still here");
}

/// A TLS configuration for `cert` (its own key unless `key` says otherwise) and the start
/// error it gives.
async fn start_error(tls: TlsConfig) -> (ServerError, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ServerConfig::new(dir.path().join("server.db"), "secret");
    config.tls = Some(tls);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let error = Server::start(listener, config)
        .await
        .expect_err("the server refuses to start");
    (error, dir)
}

#[tokio::test]
async fn a_missing_key_file_fails_start_with_an_error_naming_it() {
    let cert = TestCert::generate().expect("certificate");
    let missing = cert.key_path().with_file_name("no-such-key.pem");
    let (error, dir) = start_error(TlsConfig::new(cert.cert_path(), &missing)).await;
    assert!(
        matches!(&error, ServerError::Tls(TlsError::PrivateKey { path, .. }) if path == &missing),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&missing.display().to_string()) && message.contains("No such file"),
        "names the file and the reason: {message}"
    );
    assert!(
        !dir.path().join("server.db").exists(),
        "TLS is checked before the database is created"
    );
}

#[tokio::test]
async fn unusable_certificate_or_key_files_fail_start_with_clear_errors() {
    let cert = TestCert::generate().expect("certificate");
    let other = TestCert::generate().expect("another certificate");

    // A key file where the certificate should be: it holds no certificate.
    let (error, _dir) = start_error(TlsConfig::new(cert.key_path(), cert.key_path())).await;
    assert!(
        matches!(&error, ServerError::Tls(TlsError::Certificate { path, .. }) if path == cert.key_path()),
        "{error:?}"
    );
    assert!(error.to_string().contains("no CERTIFICATE"), "{error}");

    // A certificate where the key should be.
    let (error, _dir) = start_error(TlsConfig::new(cert.cert_path(), cert.cert_path())).await;
    assert!(
        matches!(&error, ServerError::Tls(TlsError::PrivateKey { .. })),
        "{error:?}"
    );
    assert!(error.to_string().contains("no PRIVATE KEY"), "{error}");

    // Someone else's key.
    let (error, _dir) = start_error(TlsConfig::new(cert.cert_path(), other.key_path())).await;
    assert!(
        matches!(&error, ServerError::Tls(TlsError::Rejected { .. })),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_client_silent_during_the_handshake_is_dropped_after_the_timeout() {
    let server = TestServer::start_tls_with(|config| {
        if let Some(tls) = config.tls.as_mut() {
            tls.handshake_timeout = Duration::from_millis(200);
        }
    })
    .await
    .expect("TLS server starts");
    let mut silent = TcpStream::connect(server.addr()).await.expect("tcp");
    until_closed(&mut silent).await;
    // And the server goes on serving.
    let mut alice = RawClient::as_user(&server, "alice").await;
    alice.join("general").await;
    assert_eq!(alice.say("general", "hi").await["ok"], true);
    assert_eq!(alice.next_event("message:new").await["body"], "hi");
}

#[tokio::test]
async fn shutdown_closes_tls_connections_and_a_restart_serves_tls_again() {
    let mut server = tls_server().await;
    let ca = server.ca_pem().expect("CA").to_owned();
    let mut idle = tls_connect(server.addr(), &ca).await.expect("TLS connects");
    let response = get_health(&mut idle).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let mut alice = RawClient::as_user(&server, "alice").await;
    alice.join("general").await;

    // Graceful: the idle keep-alive connection is closed at once, well within the 5 s the
    // server would wait before giving up on open connections.
    tokio::time::timeout(Duration::from_secs(4), server.stop())
        .await
        .expect("shutdown does not wait out the grace period")
        .expect("stops");
    until_closed(&mut idle).await;
    alice.closed().await;

    server.resume().await.expect("resumes");
    let mut again = tls_connect(server.addr(), &ca)
        .await
        .expect("the same certificate after the restart");
    assert!(get_health(&mut again).await.starts_with("HTTP/1.1 200"));
    let mut alice = RawClient::as_user(&server, "alice").await;
    alice.join("general").await;
    assert_eq!(alice.say("general", "back").await["ok"], true);
    assert_eq!(alice.next_event("message:new").await["body"], "back");
}

/// Runs `command` to its end, which must come within [`PATIENCE`].
async fn finished(command: &mut tokio::process::Command) -> std::process::Output {
    tokio::time::timeout(PATIENCE, command.output())
        .await
        .expect("chat-server exits within patience")
        .expect("chat-server runs")
}

fn chat_server_binary() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-server"));
    command
        .env_remove("CHAT_JWT_SECRET")
        .env("RUST_LOG", "chat_server=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn the_binary_serves_tls_with_its_flags_and_prints_an_https_url() {
    let cert = TestCert::generate().expect("certificate");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = chat_server_binary()
        .args(["--listen", "127.0.0.1:0", "--jwt-secret", "secret", "--db"])
        .arg(dir.path().join("chat.db"))
        .arg("--tls-cert")
        .arg(cert.cert_path())
        .arg("--tls-key")
        .arg(cert.key_path())
        .spawn()
        .expect("chat-server runs");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .expect("a line within patience")
        .expect("stdout readable")
        .expect("the server printed a line");
    let addr = line
        .strip_prefix("listening on https://")
        .unwrap_or_else(|| panic!("not an https line: {line:?}"));
    let addr: std::net::SocketAddr = addr.parse().expect("an address");
    let mut stream = tls_connect(addr, cert.cert_pem())
        .await
        .expect("TLS connects");
    assert!(get_health(&mut stream).await.starts_with("HTTP/1.1 200"));
    child.kill().await.expect("killed");
}

#[tokio::test]
async fn the_binary_wants_both_tls_flags_and_names_a_bad_file() {
    let cert = TestCert::generate().expect("certificate");
    let dir = tempfile::tempdir().expect("temp dir");
    let only_cert = finished(
        chat_server_binary()
            .args(["--listen", "127.0.0.1:0", "--jwt-secret", "secret", "--db"])
            .arg(dir.path().join("chat.db"))
            .arg("--tls-cert")
            .arg(cert.cert_path()),
    )
    .await;
    let stderr = String::from_utf8_lossy(&only_cert.stderr);
    assert_eq!(only_cert.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--tls-key"), "{stderr}");

    let missing = dir.path().join("missing-key.pem");
    let bad_key = finished(
        chat_server_binary()
            .args(["--listen", "127.0.0.1:0", "--jwt-secret", "secret", "--db"])
            .arg(dir.path().join("chat.db"))
            .arg("--tls-cert")
            .arg(cert.cert_path())
            .arg("--tls-key")
            .arg(&missing),
    )
    .await;
    let stderr = String::from_utf8_lossy(&bad_key.stderr);
    assert_eq!(bad_key.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&missing.display().to_string()) && stderr.contains("private key"),
        "{stderr}"
    );
    assert!(bad_key.stdout.is_empty(), "nothing announced");
}
