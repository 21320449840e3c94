//! End-to-end: the real `chat` binary against a real `chat serve`.

mod common;

use std::process::Stdio;

use common::{json_lines, Lines, Server};

#[test]
fn token_prints_only_the_token() {
    let output = assert_cmd::Command::new(common::bin())
        .args(["token", "alice", "--ttl", "1h", "--jwt-secret", "s"])
        .env_remove("CHAT_JWT_SECRET")
        .assert()
        .success()
        .get_output()
        .clone();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(text.lines().count(), 1);
    assert_eq!(text.trim().split('.').count(), 3, "a JWT: {text}");
}

#[test]
fn send_json_then_history_json_parse_back() {
    let server = Server::start();
    let output = server
        .cmd("alice")
        .args(["send", "general", "hello, json", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let statuses = json_lines(&output.stdout);
    assert_eq!(
        statuses.first().map(|s| s["state"].clone()),
        Some("queued".into())
    );
    let last = statuses.last().expect("a status");
    assert_eq!(last["state"], "sent");
    assert_eq!(last["room"], "general");
    assert_eq!(last["seq"], 1);

    let output = server
        .cmd("alice")
        .args(["history", "general", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let messages = json_lines(&output.stdout);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["body"], "hello, json");
    assert_eq!(messages[0]["sender"], "alice");
    assert_eq!(messages[0]["client_id"], last["client_id"]);
}

#[test]
fn send_dash_sends_each_stdin_line_in_order() {
    let server = Server::start();
    server
        .cmd("alice")
        .args(["send", "general", "-"])
        .write_stdin("one\n\ntwo\nthree\n")
        .assert()
        .success();
    let output = server
        .cmd("alice")
        .args(["history", "general"])
        .assert()
        .success()
        .get_output()
        .clone();
    let text = String::from_utf8_lossy(&output.stdout);
    let bodies: Vec<&str> = text.lines().filter_map(|l| l.split(": ").nth(1)).collect();
    assert_eq!(bodies, ["one", "two", "three"], "{text}");
}

#[test]
fn send_waits_until_the_other_member_reads() {
    let server = Server::start();
    server
        .cmd("bob")
        .args(["read", "general"])
        .assert()
        .success();
    let mut alice = server
        .chat("alice")
        .args(["send", "general", "read me", "--wait", "read", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn send");
    let mut lines = Lines::new(alice.stdout.take().expect("stdout"));
    lines.wait_for("sent", |l| l.contains(r#""state":"sent""#));
    server
        .cmd("bob")
        .args(["read", "general"])
        .assert()
        .success()
        .stdout("general: read up to #1 (1 newly read)\n");
    lines.wait_for("read", |l| l.contains(r#""state":"read""#));
    assert!(alice.wait().expect("send exits").success());
}

#[test]
fn listen_prints_backlog_then_live_messages_as_json() {
    let server = Server::start();
    server
        .cmd("alice")
        .args(["send", "general", "before"])
        .assert()
        .success();
    server
        .cmd("bob")
        .args(["read", "general"])
        .assert()
        .success();
    let mut bob = server
        .chat("bob")
        .args(["listen", "general", "--since", "0", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn listen");
    let mut lines = Lines::new(bob.stdout.take().expect("stdout"));
    let first = lines.wait_for("the backlog", |l| l.contains("before"));
    server
        .cmd("alice")
        .args(["send", "general", "live"])
        .assert()
        .success();
    let live = lines.wait_for("the live message", |l| {
        l.contains(r#""type":"message""#) && l.contains("live")
    });
    let _ = bob.kill();
    let _ = bob.wait();
    let first: serde_json::Value = serde_json::from_str(&first).expect("json");
    let live: serde_json::Value = serde_json::from_str(&live).expect("json");
    assert_eq!(
        (first["type"].as_str(), first["seq"].as_u64()),
        (Some("message"), Some(1))
    );
    assert_eq!(
        (live["sender"].as_str(), live["seq"].as_u64()),
        (Some("alice"), Some(2))
    );
}

#[test]
fn a_message_sent_while_the_server_is_down_arrives_after_it_returns() {
    let mut server = Server::start();
    server
        .cmd("bob")
        .args(["read", "general"])
        .assert()
        .success();
    server.stop();

    // Down: queued, kept, exit 1.
    let output = server
        .cmd("alice")
        .args(["send", "general", "offline hello", "--timeout", "1s"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("kept in the outbox"), "{stderr}");
    let output = server
        .cmd("alice")
        .args(["outbox", "list", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let outbox = json_lines(&output.stdout);
    assert_eq!(outbox.len(), 1);
    assert_eq!(
        (
            outbox[0]["body"].as_str(),
            outbox[0]["state"]["state"].as_str()
        ),
        (Some("offline hello"), Some("queued"))
    );

    // Back: a flush sends it, and bob sees it.
    server.resume();
    server
        .cmd("alice")
        .args(["outbox", "flush"])
        .assert()
        .success();
    let output = server
        .cmd("bob")
        .args(["history", "general", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let messages = json_lines(&output.stdout);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["body"], "offline hello");

    // A send that waits long enough goes out by itself when the server returns.
    server.stop();
    let mut alice = server
        .chat("alice")
        .args(["send", "general", "patient", "--timeout", "30s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn send");
    let mut lines = Lines::new(alice.stdout.take().expect("stdout"));
    lines.wait_for("queued", |l| l.starts_with("queued"));
    server.resume();
    lines.wait_for("sent", |l| l.starts_with("sent") && l.ends_with("#2"));
    assert!(alice.wait().expect("send exits").success());
}

#[test]
fn bad_input_gets_one_line_and_the_right_exit_code() {
    let mut server = Server::start();
    let one_line = |output: &std::process::Output| {
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
        assert!(output.stdout.is_empty());
        stderr
    };
    // Usage: exit 2.
    let out = server
        .cmd("alice")
        .args(["send", "no spaces", "hi"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(one_line(&out).contains("room id"));
    let out = server
        .cmd("alice")
        .args(["send", "general", "   "])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(one_line(&out).contains("empty"));
    let out = server
        .cmd("alice")
        .args(["history", "general"])
        .env_remove("CHAT_TOKEN")
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(one_line(&out).contains("no token"));
    let out = server
        .cmd("alice")
        .args(["history", "general"])
        .env("CHAT_URL", "ftp://x")
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(one_line(&out).contains("URL"));

    let wrong = chat_server::mint_token(
        "not-the-secret",
        &chat_protocol::UserId::new("alice").expect("user"),
        std::time::Duration::from_secs(60),
    )
    .expect("token");
    for args in [&["history", "general"][..], &["chat", "general"][..]] {
        let out = server
            .cmd("alice")
            .args(args)
            .env("CHAT_TOKEN", &wrong)
            .write_stdin("")
            .assert()
            .code(2)
            .get_output()
            .clone();
        assert!(one_line(&out).contains("refused the token"), "{args:?}");
    }

    // Ran, but failed: exit 1.
    let out = server
        .cmd("alice")
        .args(["history", "nowhere"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(one_line(&out).contains("not a member"));
    let out = server
        .cmd("alice")
        .args(["outbox", "retry", "0b5e6f9e-3c1a-4f7e-9a55-0c3c3b1c2d4e"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(one_line(&out).contains("no message"));

    // The server down: a connection error, exit 2.
    server.stop();
    let out = server
        .cmd("alice")
        .args(["history", "general"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(one_line(&out).contains("cannot reach the server"));
}

#[test]
fn a_config_file_supplies_what_flags_and_environment_do_not() {
    let server = Server::start();
    let config = server.dir.path().join("chat.toml");
    std::fs::write(
        &config,
        format!(
            "url = \"{}\"\ntoken = \"{}\"\n",
            server.url(),
            server.token("carol")
        ),
    )
    .expect("write config");
    server
        .cmd("alice")
        .env_remove("CHAT_URL")
        .env_remove("CHAT_TOKEN")
        .env_remove("CHAT_STORE")
        .env("CHAT_CONFIG", &config)
        .args(["send", "general", "from the config"])
        .assert()
        .success();
    let output = server
        .cmd("carol")
        .args(["history", "general", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert_eq!(json_lines(&output.stdout)[0]["sender"], "carol");
    // With no store configured, the outbox lives in the data directory, named after the user.
    assert!(server.dir.path().join("data/chat/carol.db").exists());
}

#[test]
fn presence_json_reports_online_and_never_seen_users() {
    let server = Server::start();
    let output = server
        .cmd("alice")
        .args(["presence", "alice", "carol", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let presence = json_lines(&output.stdout);
    assert_eq!(presence.len(), 2);
    assert_eq!(
        (
            presence[0]["user"].as_str(),
            presence[0]["online"].as_bool()
        ),
        (Some("alice"), Some(true))
    );
    assert_eq!(
        presence[1],
        serde_json::json!({"user": "carol", "online": false, "last_seen": null})
    );
    let output = server
        .cmd("alice")
        .args(["presence", "carol"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "carol is offline, never seen\n"
    );
}

/// `chat send - --json` says each message is queued as soon as it is durable, line by line
/// into a pipe: killed mid-run, its output names only messages that are in the outbox, and
/// the command had not queued everything yet.
#[test]
fn a_killed_send_dash_has_printed_each_message_it_queued() {
    let server = Server::start();
    server
        .cmd("alice")
        .args(["send", "general", "first"])
        .assert()
        .success();
    let lines_in: String = (0..5000).map(|i| format!("line {i}\n")).collect();
    let (mut child, mut lines) = server.send_dash("alice", "general", &lines_in);
    let mut printed = Vec::new();
    while printed.len() < 20 {
        let line = lines.wait_for("a queued line", |l| l.contains(r#""state":"queued""#));
        let value: serde_json::Value = serde_json::from_str(&line).expect("json");
        printed.push(value["client_id"].as_str().expect("id").to_owned());
    }
    let _ = child.kill();
    let _ = child.wait();
    let listed = server
        .cmd("alice")
        .args(["outbox", "list", "--json"])
        .assert()
        .success();
    let in_outbox: std::collections::HashSet<String> = json_lines(&listed.get_output().stdout)
        .iter()
        .filter_map(|row| row["client_id"].as_str().map(str::to_owned))
        .collect();
    for id in &printed {
        assert!(
            in_outbox.contains(id),
            "{id} was printed as queued but is not in the outbox"
        );
    }
    assert!(
        in_outbox.len() < 5001,
        "every line was queued before the first was printed"
    );
}

/// `chat listen` of 1,000 rooms with the server's default limits: every room is joined
/// and caught up (a `caught_up` line each) in one go, not refused for `rate_limited`.
#[test]
fn listen_of_a_thousand_rooms_works_under_the_default_limits() {
    const ROOMS: usize = 1_000;
    let server = Server::start();
    let rooms: Vec<String> = (0..ROOMS).map(|i| format!("team-{i}")).collect();
    let mut bob = server
        .chat("bob")
        .arg("listen")
        .args(&rooms)
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn listen");
    let mut lines = Lines::new(bob.stdout.take().expect("stdout"));
    let mut live = std::collections::BTreeSet::new();
    while live.len() < ROOMS {
        let line = lines.wait_for("caught_up lines", |l| l.contains(r#""type":"caught_up""#));
        let value: serde_json::Value = serde_json::from_str(&line).expect("json");
        live.insert(value["room"].as_str().expect("a room").to_owned());
    }
    server
        .cmd("alice")
        .args(["send", "team-999", "hello, last room"])
        .assert()
        .success();
    let message = lines.wait_for("the live message", |l| l.contains("hello, last room"));
    let _ = bob.kill();
    let _ = bob.wait();
    let message: serde_json::Value = serde_json::from_str(&message).expect("json");
    assert_eq!(message["room"], "team-999");
}
