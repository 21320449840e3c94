//! `GET /metrics`: the Prometheus page every node serves, and that what it counts moves.

mod support;

use support::{server, RawClient};

async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("request sent");
    let mut page = String::new();
    stream.read_to_string(&mut page).await.expect("page read");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    page
}

/// The value of the sample line that starts with `prefix`.
fn sample(page: &str, prefix: &str) -> f64 {
    page.lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_connections_requests_and_commits() {
    let server = server().await;
    let before = scrape(server.addr()).await;
    let alice = RawClient::as_user(&server, "alice").await;
    alice.join("general").await;
    assert_eq!(alice.say("general", "hello").await["ok"], true);
    let refused = alice
        .request("message:send", serde_json::json!({ "room": "general" }))
        .await;
    assert_eq!(refused["ok"], false);
    let after = scrape(server.addr()).await;

    assert_eq!(sample(&after, "chat_connections "), 1.0, "{after}");
    let sent = r#"chat_requests_total{event="message:send",outcome="ok"} "#;
    assert!(
        sample(&after, sent) >= sample(&before, sent) + 1.0,
        "{after}"
    );
    let invalid = r#"chat_requests_total{event="message:send",outcome="invalid_payload"} "#;
    assert!(
        sample(&after, invalid) >= sample(&before, invalid) + 1.0,
        "{after}"
    );
    let commits = "chat_store_commit_seconds_count ";
    assert!(
        sample(&after, commits) >= sample(&before, commits) + 1.0,
        "{after}"
    );
    let lag = "chat_fanout_lag_seconds_count ";
    assert!(sample(&after, lag) >= sample(&before, lag) + 1.0, "{after}");
    for name in [
        "chat_rate_limited_total",
        "chat_disconnects_total",
        "chat_fanout_repaired_total",
        "chat_adapter_errors_total",
        "chat_adapter_dropped_total",
    ] {
        assert!(
            after.contains(&format!("# TYPE {name} counter")),
            "{name} in {after}"
        );
    }
}
