//! The official Socket.IO JavaScript client, written against docs/protocol.md alone, speaks
//! to the server: handshake and refusal, join, send, live event, idempotent resend, error
//! ack, sync, receipts and presence (`interop/client.mjs`), over plain WebSocket and over
//! TLS with a self-signed certificate it is given as CA. Needs Node.js; the script's one
//! dependency is installed from `interop/package-lock.json` when missing.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

use chat_protocol::UserId;
use chat_testkit::TestServer;

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../interop")
}

/// Installs the script's dependency once, even with both tests running at the same time.
fn ensure_node_modules() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let dir = interop_dir();
        if dir.join("node_modules/socket.io-client").exists() {
            return;
        }
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm (Node.js 18 or newer) must be installed for the interop test");
        assert!(status.success(), "npm ci failed in {}", dir.display());
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_javascript_client_speaks_the_protocol() {
    let server = TestServer::start().await.expect("server starts");
    run_client(&server, 9).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_javascript_client_speaks_the_protocol_over_tls() {
    let server = TestServer::start_tls().await.expect("TLS server starts");
    assert!(server.url().starts_with("https://"), "{}", server.url());
    // One more check than in plain: the certificate is refused without the CA.
    run_client(&server, 10).await;
}

/// Runs `interop/client.mjs` against `server` (with its CA when it serves TLS) and expects
/// `checks` passed checks.
async fn run_client(server: &TestServer, checks: usize) {
    ensure_node_modules();
    let token = server.token("node-user");
    let bad_token = chat_server::mint_token(
        "not-the-secret",
        &UserId::new("node-user").expect("valid"),
        Duration::from_secs(60),
    )
    .expect("mints");
    let url = server.url();
    let ca = server.ca_pem_path().map(PathBuf::from);
    let dir = interop_dir();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("client.mjs")
            .arg(url)
            .arg(token)
            .arg(bad_token)
            .args(ca)
            .current_dir(dir)
            .output()
    })
    .await
    .expect("joined")
    .expect("node (Node.js 18 or newer) must be installed for the interop test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let failed: Vec<&str> = stdout
        .lines()
        .filter(|line| {
            let check: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            check["ok"] != true
        })
        .collect();
    assert!(
        failed.is_empty(),
        "failed checks:\n{}\n{stderr}",
        failed.join("\n")
    );
    assert_eq!(
        stdout.lines().count(),
        checks,
        "every check ran:\n{stdout}\n{stderr}"
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
}
