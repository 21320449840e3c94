//! Defences that are not about one malformed packet: the origin allowlist against pages of
//! other sites (cross-site WebSocket hijacking), and the open-file limit the binary raises
//! so that the common soft limit of 1,024 does not cap it at a thousand clients.

mod support;

use std::process::Stdio;

use chat_testkit::TestServer;
use support::{RawClient, PATIENCE};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The status line of a WebSocket upgrade to the Socket.IO endpoint, sent with `origin`.
async fn upgrade_status(server: &TestServer, origin: Option<&str>) -> String {
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    let request = format!(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: chat\r\n{origin}\
         Upgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut head = vec![0u8; 256];
    let n = tokio::time::timeout(PATIENCE, stream.read(&mut head))
        .await
        .expect("an answer in time")
        .expect("readable");
    let head = String::from_utf8_lossy(&head[..n]).into_owned();
    head.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn only_allowed_origins_may_open_a_websocket_and_clients_without_one_still_can() {
    let server = TestServer::start_with(|config| {
        config.allowed_origins = vec![
            "https://chat.example.com".to_owned(),
            "http://localhost:3000".to_owned(),
        ];
    })
    .await
    .expect("server starts");
    let refused_before = chat_server::metrics::CONNECTIONS_REFUSED.get(&["origin"]);

    let evil = upgrade_status(&server, Some("https://evil.example")).await;
    assert!(evil.starts_with("HTTP/1.1 403"), "{evil}");
    let lookalike = upgrade_status(&server, Some("https://chat.example.com.evil.example")).await;
    assert!(lookalike.starts_with("HTTP/1.1 403"), "{lookalike}");
    for allowed in ["https://chat.example.com", "http://localhost:3000"] {
        let status = upgrade_status(&server, Some(allowed)).await;
        assert!(status.starts_with("HTTP/1.1 101"), "{allowed}: {status}");
    }
    assert_eq!(
        chat_server::metrics::CONNECTIONS_REFUSED.get(&["origin"]) - refused_before,
        2
    );
    // The SDK, bots and tools send no Origin: they connect and chat as before.
    let bot = RawClient::as_user(&server, "bot").await;
    bot.join("general").await;
    assert_eq!(
        bot.say("general", "no origin, no problem").await["ok"],
        true
    );
}

#[tokio::test]
async fn without_an_allowlist_any_origin_connects() {
    let server = TestServer::start().await.expect("server starts");
    let status = upgrade_status(&server, Some("https://anywhere.example")).await;
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
}

/// The soft and hard open-file limits in `/proc/PID/limits`.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("an open-files line");
    let mut fields = line["Max open files".len()..].split_whitespace();
    (
        fields.next().unwrap_or_default().to_owned(),
        fields.next().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn the_binary_raises_its_open_file_limit_to_the_hard_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Started with a soft limit of 256 under a hard one of 4,096, as `ulimit` might leave it.
    let mut child = tokio::process::Command::new("prlimit")
        .arg("--nofile=256:4096")
        .arg(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--listen", "127.0.0.1:0", "--jwt-secret", "secret", "--db"])
        .arg(dir.path().join("chat.db"))
        .env("RUST_LOG", "chat_server=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("prlimit (util-linux) runs chat-server");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::time::timeout(PATIENCE, BufReader::new(stdout).lines().next_line())
        .await
        .expect("a line within patience")
        .expect("stdout readable")
        .expect("the server printed where it listens");
    assert!(line.starts_with("listening on"), "{line}");
    // prlimit execs the server in its own process.
    let pid = child.id().expect("running");
    assert_eq!(
        open_file_limits(pid),
        ("4096".to_owned(), "4096".to_owned())
    );
    child.kill().await.expect("killed");
}
