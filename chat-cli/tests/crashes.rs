//! Real crashes, not graceful stops: the `chat` binary and its server run as processes and
//! are killed with SIGKILL (`Child::kill`), or the server's database fills up as a full disk
//! would. After each, everything that was queued is stored exactly once, in order.

mod common;

use common::{json_lines, Server};

/// Bodies of the room's stored messages, oldest first (every page).
fn history(server: &Server, user: &str, room: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    let mut after = 0;
    loop {
        let output = server
            .cmd(user)
            .args([
                "history",
                room,
                "--after",
                &after.to_string(),
                "--limit",
                "500",
                "--json",
            ])
            .assert()
            .success();
        let page = json_lines(&output.get_output().stdout);
        if page.is_empty() {
            return bodies;
        }
        for message in &page {
            bodies.push(message["body"].as_str().expect("a body").to_owned());
            after = message["seq"].as_u64().expect("a seq");
        }
    }
}

/// The outbox of `user` holds nothing that is not acknowledged.
fn nothing_unsent(server: &Server, user: &str) -> bool {
    let listed = server
        .cmd(user)
        .args(["outbox", "list", "--json"])
        .assert()
        .success();
    json_lines(&listed.get_output().stdout).iter().all(|row| {
        ["sent", "delivered", "read"].contains(&row["state"]["state"].as_str().unwrap_or(""))
    })
}

/// `chat send -` killed while its messages are on the wire: some are `Sending` (sent, ack not
/// yet in). `chat outbox flush` on the same outbox file sends the rest, and the room holds
/// every queued line exactly once, in order: the one that was on the wire was not stored
/// twice, and none was skipped.
#[test]
fn a_client_killed_mid_send_delivers_every_queued_message_once_after_a_restart() {
    const LINES: usize = 400;
    let server = Server::start();
    let lines_in: String = (0..LINES).map(|i| format!("line {i}\n")).collect();
    let (mut child, mut lines) = server.send_dash("alice", "general", &lines_in);
    let mut sent = 0;
    while sent < 30 {
        lines.wait_for("a sent line", |l| l.contains(r#""state":"sent""#));
        sent += 1;
    }
    let _ = child.kill();
    let _ = child.wait();
    server
        .cmd("alice")
        .args(["outbox", "flush", "--timeout", "20s"])
        .assert()
        .success();
    assert!(nothing_unsent(&server, "alice"));
    let stored = history(&server, "alice", "general");
    let expected: Vec<String> = (0..stored.len()).map(|i| format!("line {i}")).collect();
    assert_eq!(stored, expected, "once each, in order, none skipped");
    assert!(
        stored.len() > 30,
        "what was queued at the kill went out too"
    );
}

/// The server SIGKILLed while `chat send -` streams lines to it, and started again on the same
/// database: the command reconnects, sends what was left (in `message:send_batch` requests
/// once a join answer has announced them) and exits 0; the room holds every line exactly
/// once, in order — the batch on the wire at the kill was neither lost nor stored twice.
#[test]
fn a_server_killed_under_a_stream_of_sends_stores_every_line_once_in_order() {
    use std::io::Write;
    const LINES: usize = 600;
    let mut server = Server::start_with(&["--send-rate", "5000"]);
    let lines_in: String = (0..LINES).map(|i| format!("line {i}\n")).collect();
    let mut child = server
        .chat("alice")
        .args(["send", "general", "-", "--json", "--timeout", "60s"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn send -");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(lines_in.as_bytes()).expect("write stdin");
    drop(stdin);
    let mut lines = common::Lines::new(child.stdout.take().expect("stdout"));
    for _ in 0..30 {
        lines.wait_for("a sent line", |l| l.contains(r#""state":"sent""#));
    }
    server.stop();
    server.resume();
    let (ended, end) = std::sync::mpsc::channel();
    std::thread::spawn(move || ended.send(child.wait()));
    let status = end
        .recv_timeout(std::time::Duration::from_secs(90))
        .expect("chat send ends")
        .expect("wait");
    assert!(status.success(), "chat send ended with {status}");
    assert!(nothing_unsent(&server, "alice"));
    let stored = history(&server, "alice", "general");
    let expected: Vec<String> = (0..LINES).map(|i| format!("line {i}")).collect();
    assert_eq!(stored, expected, "once each, in order, none skipped");
}

/// The server's database fills up (`--max-db-mib 1`, SQLite's SQLITE_FULL as on a full disk)
/// under a stream of messages: the sender's command ends with exit 1 and messages left
/// queued — not failed, not lost. The server is then SIGKILLed and started again with room
/// on the disk; a flush stores the rest, and the room holds every line exactly once, in
/// order.
#[test]
fn a_server_whose_disk_fills_answers_internal_and_loses_nothing_acked() {
    const LINES: usize = 450;
    let mut server = Server::start_with(&["--max-db-mib", "1"]);
    let body = "x".repeat(3_000);
    let lines_in: String = (0..LINES).map(|i| format!("{i} {body}\n")).collect();
    let output = server
        .cmd("alice")
        .args(["send", "general", "-", "--json", "--timeout", "5s"])
        .write_stdin(lines_in)
        .assert()
        .code(1);
    let statuses = json_lines(&output.get_output().stdout);
    let acked = statuses.iter().filter(|s| s["state"] == "sent").count();
    assert!(
        acked > 0 && acked < LINES,
        "{acked} of {LINES} stored before the disk filled"
    );
    assert!(
        statuses.iter().all(|s| s["state"] != "failed"),
        "a full disk fails no message"
    );
    server.stop();
    server.resume_with(&[]);
    // At the server's default 20 sends a second.
    server
        .cmd("alice")
        .args(["outbox", "flush", "--timeout", "60s"])
        .assert()
        .success();
    let stored = history(&server, "alice", "general");
    assert_eq!(stored.len(), LINES, "every line, once");
    for (i, stored) in stored.iter().enumerate() {
        assert!(
            stored.starts_with(&format!("{i} ")),
            "line {i} in its place"
        );
    }
}

/// `chat outbox retry` SIGKILLed at whatever point it has reached, again and again: the
/// message is always still there, failed or queued, never gone or doubled (the retry is
/// one commit); once the server accepts it, a flush stores it exactly once.
#[test]
fn a_retry_killed_at_any_point_leaves_the_message_failed_or_queued_never_lost() {
    let mut server = Server::start_with(&["--max-body-chars", "10"]);
    server
        .cmd("alice")
        .args(["send", "general", "longer than ten characters"])
        .assert()
        .code(1);
    let rows = |server: &Server| {
        let listed = server
            .cmd("alice")
            .args(["outbox", "list", "--json"])
            .assert()
            .success();
        json_lines(&listed.get_output().stdout)
    };
    let listed = rows(&server);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["state"]["state"], "failed", "{:?}", listed[0]);
    let id = listed[0]["client_id"].as_str().expect("id").to_owned();
    let mut interrupted_after = 0;
    for i in 0..20 {
        let mut retry = server
            .chat("alice")
            .args(["outbox", "retry", &id])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn retry");
        // Kill it at a different point of its run each time: before, during or after.
        std::thread::sleep(std::time::Duration::from_millis(i));
        let _ = retry.kill();
        let _ = retry.wait();
        let listed = rows(&server);
        assert_eq!(listed.len(), 1, "one row, whatever the kill interrupted");
        match listed[0]["state"]["state"].as_str().unwrap_or("") {
            "failed" => {}
            "queued" => {
                interrupted_after += 1;
                // Refused again by the server (too long): failed, for the next round.
                server
                    .cmd("alice")
                    .args(["outbox", "flush", "--timeout", "5s"])
                    .assert()
                    .code(1);
            }
            other => panic!("{other}"),
        }
    }
    assert!(
        interrupted_after > 0,
        "no retry ever got to commit before the kill"
    );
    server.stop();
    server.resume_with(&[]);
    if rows(&server)[0]["state"]["state"] == "failed" {
        server
            .cmd("alice")
            .args(["outbox", "retry", &id])
            .assert()
            .success();
    }
    server
        .cmd("alice")
        .args(["outbox", "flush", "--timeout", "20s"])
        .assert()
        .success();
    assert_eq!(
        history(&server, "alice", "general"),
        ["longer than ten characters"]
    );
}
