//! The SDK against a backend that shares no code with ours: `examples/node-server`, written
//! from docs/protocol.md alone on the official socket.io@4 and better-sqlite3. It exists so
//! that what the SDK promises (nothing lost, doubled or reordered; statuses reaching sent,
//! delivered and read; catch-up after a reconnect) is shown to rest on the protocol and not
//! on anything particular to chat-server. The server runs as a Node child process on a
//! temporary SQLite file, is reached through chat-testkit's relay where connections must
//! break, and is SIGKILLed and restarted on the same file. Needs Node.js 20; the server's
//! dependencies are installed from `examples/node-server/package-lock.json` when missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Once};
use std::time::Duration;

use chat_sdk::chat_protocol::{ClientId, Message, RoomId, UserId};
use chat_sdk::{ChatEvent, Client, ClientBuilder, Events, MessageState};
use chat_testkit::Relay;
use common::transport::CountingTransport;
use common::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

const SECRET: &str = "node-backend-test-secret";

fn server_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/node-server")
}

/// Installs the server's dependencies once per test binary, if missing.
fn ensure_node_modules() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let dir = server_dir();
        let installed = dir.join("node_modules/socket.io").exists()
            && dir
                .join("node_modules/better-sqlite3/build/Release/better_sqlite3.node")
                .exists();
        if installed {
            return;
        }
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm (Node.js 20 or newer) must be installed for the Node backend test");
        assert!(status.success(), "npm ci failed in {}", dir.display());
    });
}

/// The Node server as a child process; SIGKILLed when dropped.
struct NodeServer {
    child: Child,
    /// Kept open: the server's stdout stays a live pipe.
    _stdout: BufReader<ChildStdout>,
    url: String,
    port: u16,
    db: PathBuf,
    /// Flags beyond the port, secret and database, kept for a restart.
    flags: Vec<String>,
}

impl NodeServer {
    /// Starts the server on `db`, on `port` (0: any free one), with `flags`.
    async fn start(db: &Path, port: u16, flags: Vec<String>) -> Self {
        ensure_node_modules();
        let mut child = Command::new("node")
            .arg("server.mjs")
            .args(["--port", &port.to_string(), "--secret", SECRET])
            .arg("--db")
            .arg(db)
            .args(&flags)
            .current_dir(server_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node (Node.js 20 or newer) must be installed for the Node backend test");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        tokio::time::timeout(PATIENCE, stdout.read_line(&mut line))
            .await
            .expect("the Node server did not say where it listens in time")
            .expect("read the Node server's stdout");
        let ready: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the Node server printed {line:?}: {e}"));
        let url = ready["url"].as_str().expect("url").to_owned();
        let port = ready["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .expect("port");
        Self {
            child,
            _stdout: stdout,
            url,
            port,
            db: db.to_owned(),
            flags,
        }
    }

    /// A server on a new database in a new temporary directory (removed when dropped).
    async fn start_fresh(flags: &[&str]) -> (tempfile::TempDir, Self) {
        let dir = tempfile::tempdir().expect("temp dir");
        let flags = flags.iter().map(|f| f.to_string()).collect();
        let server = Self::start(&dir.path().join("chat.db"), 0, flags).await;
        (dir, server)
    }

    fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// SIGKILLs the server and waits until it is gone: nothing is flushed or closed.
    async fn kill(&mut self) {
        // An error only says it is gone already.
        let _ = self.child.start_kill();
        self.child.wait().await.expect("reap the Node server");
    }

    /// Starts a new server on the same database file and port.
    async fn restart(&mut self) {
        self.kill().await;
        let db = self.db.clone();
        let flags = std::mem::take(&mut self.flags);
        *self = Self::start(&db, self.port, flags).await;
    }
}

fn token(user: &str) -> String {
    chat_server::mint_token(
        SECRET,
        &UserId::new(user).expect("valid user id"),
        Duration::from_secs(3600),
    )
    .expect("mints")
}

async fn connect_to(url: &str, user: &str) -> (Client, Events) {
    builder(url, token(user))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{user} connects: {e}"))
}

/// Alice, connected with `alice`, and bob, connected to `bob_url`, both members of
/// `general`.
async fn alice_and_bob(alice: ClientBuilder, bob_url: &str) -> (Client, Events, Client, Events) {
    let general = room("general");
    let (alice, alice_events) = alice.connect().await.expect("alice connects");
    let (bob, bob_events) = connect_to(bob_url, "bob").await;
    alice.join(&general).await.expect("alice joins");
    let joined = bob.join(&general).await.expect("bob joins");
    assert_eq!(joined.members.len(), 2, "{joined:?}");
    (alice, alice_events, bob, bob_events)
}

/// Alice sends `sent`; bob receives each once, in order, and alice sees them reach
/// delivered (from bob's `receipt:delivered`), then read once bob marks the room read.
async fn send_until_read(
    (alice, alice_events, bob, bob_events): &mut (&Client, &mut Events, &Client, &mut Events),
    general: &RoomId,
    sent: &[String],
) {
    let ids = send_all(alice, general, sent).await;
    let got = collect_messages(bob_events, general, sent.len()).await;
    assert_exactly_once_in_order(&got, sent, 1);
    assert!(got.iter().zip(&ids).all(|(m, id)| m.client_id == *id));
    let mut alice_seen = Vec::new();
    wait_outbox(alice, alice_events, &mut alice_seen, is_delivered).await;
    bob.mark_read(general).await.expect("bob reads");
    wait_outbox(alice, alice_events, &mut alice_seen, |state| {
        matches!(state, MessageState::Read { .. })
    })
    .await;
}

fn is_delivered(state: &MessageState) -> bool {
    matches!(
        state,
        MessageState::Delivered { .. } | MessageState::Read { .. }
    )
}

/// Waits, re-checking after each event, until every message in `client`'s outbox is in a
/// state `reached` accepts; messages arriving meanwhile are appended to `seen`.
async fn wait_outbox(
    client: &Client,
    events: &mut Events,
    seen: &mut Vec<Message>,
    reached: impl Fn(&MessageState) -> bool,
) {
    let done = || {
        client
            .outbox()
            .list()
            .expect("outbox readable")
            .iter()
            .all(|m| reached(&m.state))
    };
    tokio::time::timeout(PATIENCE, async {
        while !done() {
            if let ChatEvent::Message(m) = events.recv().await.expect("event stream ended") {
                seen.push(m);
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the outbox did not reach the state: {:?}",
            client.outbox().list()
        )
    });
}

fn bodies(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix} {i}")).collect()
}

/// The server stored exactly `expected`, in order, as `reader` reads it back; and nothing
/// more waits in `reader`'s stream (no late duplicate).
async fn assert_stored_once(
    reader: &Client,
    events: &mut Events,
    room: &RoomId,
    expected: &[String],
) {
    let stored = stored(reader, room).await;
    assert_exactly_once_in_order(&stored, expected, 1);
    while let Some(event) = events.try_recv() {
        if let ChatEvent::Message(m) = event {
            assert!(&m.room != room, "extra message: {m:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_received_once_in_order_and_reach_delivered_and_read() {
    let (_dir, server) = NodeServer::start_fresh(&[]).await;
    let (alice, mut alice_events, bob, mut bob_events) =
        alice_and_bob(builder(&server.url, token("alice")), &server.url).await;
    let general = room("general");

    let sent = bodies("hello", 25);
    let mut pair = (&alice, &mut alice_events, &bob, &mut bob_events);
    send_until_read(&mut pair, &general, &sent).await;

    // Typing reaches the other member; presence and history answer.
    bob.typing(&general).await;
    let typer = wait_for(&mut alice_events, |e| match e {
        ChatEvent::Typing(update) if update.typing => Some(update.user.clone()),
        _ => None,
    })
    .await;
    assert_eq!(typer.as_str(), "bob");
    let presence = alice
        .presence(&[UserId::new("bob").expect("id")])
        .await
        .expect("presence");
    assert!(presence[0].online, "{presence:?}");
    assert_stored_once(&bob, &mut bob_events, &general, &sent).await;
    alice.close().await;
    bob.close().await;
}

/// Acks lost after the server's commit make the SDK resend: the Node server's `client_id`
/// dedup must answer the original, so nothing is stored twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_after_a_lost_ack_is_stored_once() {
    let (_dir, server) = NodeServer::start_fresh(&[]).await;
    let transport = Arc::new(CountingTransport::default());
    let wire = transport.wire.clone();
    let alice = builder(&server.url, token("alice")).transport(transport);
    let (alice, mut alice_events, bob, mut bob_events) = alice_and_bob(alice, &server.url).await;
    let general = room("general");

    wire.swallow_acks
        .store(3, std::sync::atomic::Ordering::SeqCst);
    let sent = bodies("resent", 10);
    let ids = send_all(&alice, &general, &sent).await;
    let got = collect_messages(&mut bob_events, &general, sent.len()).await;
    assert_exactly_once_in_order(&got, &sent, 1);
    wait_until(&mut alice_events, || all_acked(&alice)).await;
    let resent = wire.counts().values().filter(|&&n| n > 1).count();
    assert!(
        resent >= 1,
        "no message was sent twice: {:?}",
        wire.counts()
    );
    assert!(got.iter().zip(&ids).all(|(m, id)| m.client_id == *id));
    assert_stored_once(&bob, &mut bob_events, &general, &sent).await;
    alice.close().await;
    bob.close().await;
}

/// Both clients reach the server through a relay whose connections are reset in the middle
/// of a stream of messages, several times; then the receiver is kept off while the sender
/// goes on, and catches up when it is let back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_lose_double_and_reorder_nothing_and_receivers_catch_up() {
    let (_dir, server) = NodeServer::start_fresh(&[]).await;
    let relay = Relay::start(server.addr()).await.expect("relay starts");
    let (alice, mut alice_events, bob, mut bob_events) =
        alice_and_bob(builder(&relay.url(), token("alice")), &relay.url()).await;
    let general = room("general");

    const ROUNDS: usize = 4;
    const PER_ROUND: usize = 20;
    let mut expected = Vec::new();
    let mut ids = Vec::new();
    let mut alice_seen = Vec::new();
    for round in 0..ROUNDS {
        let round_bodies = bodies(&format!("round {round}"), PER_ROUND);
        let round_ids = send_all(&alice, &general, &round_bodies).await;
        // Reset while the round is being sent: once its first few are stored.
        wait_all_sent(
            &mut alice_events,
            &round_ids[..PER_ROUND / 4],
            &mut alice_seen,
        )
        .await;
        let state = alice.connection_state();
        assert!(relay.reset_all() > 0, "nothing to reset");
        wait_reconnected(state).await;
        expected.extend(round_bodies);
        ids.extend(round_ids);
    }

    // Every round stored before what follows is sent by another client.
    wait_outbox(&alice, &mut alice_events, &mut alice_seen, |s| {
        s.seq().is_some()
    })
    .await;
    // Bob (and alice's first client) is cut off, new connections refused, while alice sends
    // on from a second client that reaches the server directly.
    relay.refuse_new(true);
    let bob_state = bob.connection_state();
    assert!(relay.reset_all() > 0, "nothing to reset");
    let (alice_direct, mut direct_events) = connect_to(&server.url, "alice").await;
    alice_direct
        .join(&general)
        .await
        .expect("alice joins again");
    let missed = bodies("while bob was away", 15);
    let missed_ids = send_all(&alice_direct, &general, &missed).await;
    let mut direct_seen = Vec::new();
    wait_all_sent(&mut direct_events, &missed_ids, &mut direct_seen).await;
    relay.refuse_new(false);
    wait_reconnected(bob_state).await;
    expected.extend(missed);

    let total = expected.len();
    let got_bob = collect_messages(&mut bob_events, &general, total).await;
    assert_exactly_once_in_order(&got_bob, &expected, 1);
    let got_alice = collect_more(&mut alice_events, &general, total, alice_seen).await;
    assert_exactly_once_in_order(&got_alice, &expected, 1);
    assert!(got_alice.iter().zip(&ids).all(|(m, id)| m.client_id == *id));
    assert_stored_once(&bob, &mut bob_events, &general, &expected).await;
    // Every message of alice reaches delivered: bob's receipts after his catch-up count.
    wait_outbox(&alice, &mut alice_events, &mut Vec::new(), is_delivered).await;
    wait_outbox(
        &alice_direct,
        &mut direct_events,
        &mut direct_seen,
        is_delivered,
    )
    .await;
    for client in [alice, alice_direct, bob] {
        client.close().await;
    }
}

/// The Node server is SIGKILLed mid-stream; what is sent while it is down waits in the
/// outbox and is stored, once and in order, after it restarts on the same database file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_and_restarted_server_loses_nothing_sent_while_it_was_down() {
    let (_dir, mut server) = NodeServer::start_fresh(&[]).await;
    let (alice, mut alice_events, bob, mut bob_events) =
        alice_and_bob(builder(&server.url, token("alice")), &server.url).await;
    let general = room("general");

    let before = bodies("before", 20);
    let before_ids = send_all(&alice, &general, &before).await;
    let mut alice_seen = Vec::new();
    wait_all_sent(&mut alice_events, &before_ids[..5], &mut alice_seen).await;
    let alice_state = alice.connection_state();
    let bob_state = bob.connection_state();
    server.kill().await;
    // Sent while nothing listens: the outbox keeps them.
    let during = bodies("while down", 15);
    let during_ids = send_all(&alice, &general, &during).await;
    server.restart().await;
    wait_reconnected(alice_state).await;
    wait_reconnected(bob_state).await;

    let expected: Vec<String> = before.into_iter().chain(during).collect();
    let ids: Vec<ClientId> = before_ids.into_iter().chain(during_ids).collect();
    let got_bob = collect_messages(&mut bob_events, &general, expected.len()).await;
    assert_exactly_once_in_order(&got_bob, &expected, 1);
    let got_alice = collect_more(&mut alice_events, &general, expected.len(), alice_seen).await;
    assert_exactly_once_in_order(&got_alice, &expected, 1);
    assert!(got_alice.iter().zip(&ids).all(|(m, id)| m.client_id == *id));
    assert_stored_once(&bob, &mut bob_events, &general, &expected).await;
    wait_outbox(&alice, &mut alice_events, &mut Vec::new(), is_delivered).await;
    alice.close().await;
    bob.close().await;
}

/// A server whose join answers carry no `watermarks` (as the protocol allows: an addition of
/// chat-server): statuses still reach delivered and read, from `receipt:update` alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_watermarks_in_join_answers_statuses_move_on_receipt_updates() {
    let (_dir, server) = NodeServer::start_fresh(&["--no-watermarks"]).await;
    let (alice, mut alice_events, bob, mut bob_events) =
        alice_and_bob(builder(&server.url, token("alice")), &server.url).await;
    let general = room("general");
    let sent = bodies("no watermarks", 10);
    let mut pair = (&alice, &mut alice_events, &bob, &mut bob_events);
    send_until_read(&mut pair, &general, &sent).await;
    alice.close().await;
    bob.close().await;
}
