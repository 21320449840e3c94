//! The persistent outbox: order, exactly-once across resends and restarts, one flusher at a
//! time, classification of errors, bounds, retry and discard, and the state transitions of a
//! message across a fault (snapshot).

mod common;

use std::sync::Arc;
use std::time::Duration;

use chat_sdk::chat_protocol::{ClientId, ErrorCode};
use chat_sdk::{
    ChatEvent, Client, ConnectError, Events, FailureReason, MessageState, Milestone, Outbox,
    OutboxError, OutboxOperation, SendError, StoreError, WaitError,
};
use chat_testkit::{Relay, TestServer};
use common::transport::CountingTransport;
use common::*;

#[tokio::test]
async fn client_restart_on_the_same_outbox_file_resumes_with_the_same_client_ids() {
    let server = TestServer::start().await.expect("server starts");
    let relay = Relay::start(server.addr()).await.expect("relay starts");
    let store = server.temp_path("alice.db");
    let general = room("general");
    let (bob, mut bob_events) = connect(&server, &server.url(), "bob").await;
    bob.join(&general).await.expect("bob joins");
    // Alice is a member before going offline.
    {
        let (alice, _events) = builder(&relay.url(), server.token("alice"))
            .store_path(&store)
            .connect()
            .await
            .expect("alice connects");
        alice.join(&general).await.expect("alice joins");
        alice.close().await;
    }

    relay.refuse_new(true);
    let bodies: Vec<String> = (0..20).map(|i| format!("offline {i}")).collect();
    let queued: Vec<ClientId> = {
        let (alice, _events) = builder(&relay.url(), server.token("alice"))
            .store_path(&store)
            .start()
            .expect("alice starts offline");
        let mut ids = Vec::new();
        for body in &bodies {
            let sent = alice.send(&general, body.clone()).await;
            ids.push(sent.expect("queued offline").client_id());
        }
        // The process "dies": dropped without flushing anything.
        drop(alice);
        ids
    };

    let (alice, mut alice_events) = builder(&relay.url(), server.token("alice"))
        .store_path(&store)
        .start()
        .expect("alice restarts");
    let pending: Vec<ClientId> = alice
        .outbox()
        .list()
        .expect("outbox")
        .iter()
        .filter(|m| m.state.is_pending())
        .map(|m| m.client_id)
        .collect();
    assert_eq!(
        pending, queued,
        "the reopened outbox lost or reordered messages"
    );

    relay.refuse_new(false);
    let got = collect_messages(&mut bob_events, &general, bodies.len()).await;
    assert_exactly_once_in_order(&got, &bodies, 1);
    assert_eq!(got.iter().map(|m| m.client_id).collect::<Vec<_>>(), queued);
    wait_until(&mut alice_events, || all_acked(&alice)).await;
    assert_exactly_once_in_order(&stored(&bob, &general).await, &bodies, 1);
}

#[tokio::test]
async fn concurrent_flush_triggers_send_nothing_twice_or_out_of_order() {
    let server = TestServer::start().await.expect("server starts");
    let transport = Arc::new(CountingTransport::default());
    let wire = transport.wire.clone();
    let (alice, mut alice_events) = builder(&server.url(), server.token("alice"))
        .transport(transport)
        .connect()
        .await
        .expect("alice connects");
    let general = room("general");
    alice.join(&general).await.expect("join");

    let bodies: Vec<String> = (0..150).map(|i| format!("m{i}")).collect();
    let mut ids = Vec::new();
    let hammer = {
        let alice = alice.clone();
        tokio::spawn(async move {
            let mut triggers = Vec::new();
            for _ in 0..32 {
                let alice = alice.clone();
                triggers.push(tokio::spawn(async move {
                    for _ in 0..200 {
                        alice.flush();
                        tokio::task::yield_now().await;
                    }
                }));
            }
            for t in triggers {
                t.await.expect("trigger task");
            }
        })
    };
    for body in &bodies {
        ids.push(
            alice
                .send(&general, body.clone())
                .await
                .expect("queued")
                .client_id(),
        );
        tokio::task::yield_now().await;
    }
    hammer.await.expect("hammer");
    let got = collect_messages(&mut alice_events, &general, bodies.len()).await;
    assert_exactly_once_in_order(&got, &bodies, 1);
    wait_until(&mut alice_events, || all_acked(&alice)).await;

    let wire_order = wire.sends.lock().expect("lock").clone();
    let want: Vec<String> = ids.iter().map(ClientId::to_string).collect();
    assert_eq!(
        wire_order, want,
        "a message went on the wire twice or out of order"
    );
}

#[tokio::test]
async fn an_ack_lost_after_the_commit_is_resent_and_stored_once() {
    let server = TestServer::start().await.expect("server starts");
    let transport = Arc::new(CountingTransport::default());
    let wire = transport.wire.clone();
    let (alice, mut events) = builder(&server.url(), server.token("alice"))
        .transport(transport)
        .connect()
        .await
        .expect("alice connects");
    let general = room("general");
    alice.join(&general).await.expect("join");
    wire.swallow_acks
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let id = alice
        .send(&general, "once")
        .await
        .expect("queued")
        .client_id();
    let got = collect_messages(&mut events, &general, 1).await;
    assert_eq!(got[0].client_id, id);
    wait_until(&mut events, || all_acked(&alice)).await;
    assert_eq!(wire.counts()[&id.to_string()], 2, "expected one resend");
    let stored = stored(&alice, &general).await;
    assert_eq!(stored.len(), 1, "the resend was stored again");
}

#[tokio::test]
async fn rate_limited_during_a_post_reconnect_flush_is_waited_out_not_failed() {
    let server = TestServer::start_with(|config| config.rates.send_per_sec = 10)
        .await
        .expect("server starts");
    let relay = Relay::start(server.addr()).await.expect("relay starts");
    let (alice, mut events) = connect(&server, &relay.url(), "alice").await;
    let general = room("general");
    alice.join(&general).await.expect("join");
    relay.refuse_new(true);
    relay.reset_all();
    // Wait for the client to notice it is offline before queueing.
    let mut state = alice.connection_state();
    tokio::time::timeout(
        PATIENCE,
        state.wait_for(|s| *s != chat_sdk::ConnectionState::Connected),
    )
    .await
    .expect("noticed the reset")
    .expect("state");
    let bodies: Vec<String> = (0..40).map(|i| format!("burst {i}")).collect();
    for body in &bodies {
        alice
            .send(&general, body.clone())
            .await
            .expect("queued")
            .client_id();
    }
    relay.refuse_new(false);
    let mut requeued = 0;
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while got.len() < bodies.len() {
            match events.recv().await.expect("events") {
                ChatEvent::Message(m) => got.push(m),
                ChatEvent::Status {
                    state: MessageState::Queued,
                    ..
                } => requeued += 1,
                ChatEvent::Status {
                    state: MessageState::Failed { reason },
                    ..
                } => {
                    panic!("a rate-limited message failed: {reason}")
                }
                _ => {}
            }
        }
    })
    .await
    .expect("all messages arrive");
    assert_exactly_once_in_order(&got, &bodies, 1);
    assert!(
        requeued > 0,
        "the server never rate-limited: the test proves nothing"
    );
}

#[tokio::test]
async fn a_full_outbox_is_a_clear_error() {
    let (client, _events) = Client::builder("http://127.0.0.1:9", "token")
        .in_memory()
        .outbox_capacity(3)
        .start()
        .expect("starts offline");
    let general = room("general");
    for i in 0..3 {
        client
            .send(&general, format!("m{i}"))
            .await
            .expect("fits")
            .client_id();
    }
    match client.send(&general, "one too many").await {
        Err(SendError::OutboxFull { capacity: 3 }) => {}
        other => panic!("expected OutboxFull, got {other:?}"),
    }
    assert!(matches!(
        client.send(&general, "  ").await,
        Err(SendError::Invalid(_))
    ));
    let first = client.outbox().list().expect("outbox")[0].client_id;
    match client
        .outbox()
        .handle(first)
        .expect("store")
        .expect("listed")
        .wait_for(Milestone::Sent, Duration::from_millis(50))
        .await
    {
        Err(WaitError::Timeout { last }) => assert!(last.is_pending()),
        other => panic!("expected a timeout while offline, got {other:?}"),
    }
    client.close().await;
}

/// Two clients in `general`: alice with her outbox in the file `store`, and bob.
struct AliceAndBob {
    alice: Client,
    alice_events: Events,
    /// Bob stays connected while this is held: bind it (`bob: _bob`) when destructuring.
    bob: Client,
    bob_events: Events,
}

async fn alice_and_bob_in_general(server: &TestServer, store: &std::path::Path) -> AliceAndBob {
    let general = room("general");
    let (bob, bob_events) = connect(server, &server.url(), "bob").await;
    bob.join(&general).await.expect("bob joins");
    let (alice, alice_events) = builder(&server.url(), server.token("alice"))
        .store_path(store)
        .connect()
        .await
        .expect("alice connects");
    alice.join(&general).await.expect("alice joins");
    AliceAndBob {
        alice,
        alice_events,
        bob,
        bob_events,
    }
}

/// A new server, with alice's outbox in a file beside its database.
async fn alice_and_bob_on_a_new_server() -> (TestServer, AliceAndBob) {
    let server = TestServer::start().await.expect("server starts");
    let clients = alice_and_bob_in_general(&server, &server.temp_path("alice.db")).await;
    (server, clients)
}

/// Removes the write-ahead log beside `database`, as a careless cleanup script might while
/// the client runs: the disk can then no longer confirm a write.
fn remove_write_ahead_log(database: &std::path::Path) {
    let mut log = database.as_os_str().to_owned();
    log.push("-wal");
    std::fs::remove_file(&log).expect("the store keeps a write-ahead log beside it");
}

/// A write the disk cannot confirm (here: the log file SQLite would recover from is gone
/// from the directory) is reported as such, and the message is still delivered, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_the_disk_does_not_confirm_is_reported_and_still_delivered_once() {
    let server = TestServer::start().await.expect("server starts");
    let general = room("general");
    let store = server.temp_path("alice.db");
    let AliceAndBob {
        alice,
        mut alice_events,
        mut bob_events,
        bob: _bob,
        ..
    } = alice_and_bob_in_general(&server, &store).await;

    let confirmed = alice
        .send_blocking(&general, "on disk")
        .expect("queued and synced")
        .client_id();
    remove_write_ahead_log(&store);
    let unconfirmed = match alice.send_blocking(&general, "not confirmed") {
        Err(SendError::NotDurable { message, .. }) => message.client_id(),
        other => panic!("expected NotDurable, got {other:?}"),
    };
    assert_ne!(confirmed, unconfirmed);

    let bodies = vec!["on disk".to_owned(), "not confirmed".to_owned()];
    let got = collect_messages(&mut bob_events, &general, bodies.len()).await;
    assert_exactly_once_in_order(&got, &bodies, 1);
    assert_eq!(got[1].client_id, unconfirmed);
    wait_until(&mut alice_events, || all_acked(&alice)).await;
    alice.close().await;
}

/// `send` waits for the disk on the blocking pool instead of the calling thread; mixed
/// with `send_blocking`, messages still go out in the order they were queued, and a write the disk
/// cannot confirm is reported the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_keeps_the_queue_order_and_reports_an_unconfirmed_write() {
    let server = TestServer::start().await.expect("server starts");
    let general = room("general");
    let store = server.temp_path("alice.db");
    let AliceAndBob {
        alice,
        mut bob_events,
        bob: _bob,
        ..
    } = alice_and_bob_in_general(&server, &store).await;
    let mut bodies: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    for (i, body) in bodies.iter().enumerate() {
        let queued = if i % 2 == 0 {
            alice.send(&general, body.clone()).await
        } else {
            alice.send_blocking(&general, body.clone())
        };
        queued.expect("queued and synced");
    }
    remove_write_ahead_log(&store);
    match alice.send(&general, "not confirmed").await {
        Err(SendError::NotDurable { .. }) => {}
        other => panic!("expected NotDurable, got {other:?}"),
    }
    bodies.push("not confirmed".to_owned());
    let got = collect_messages(&mut bob_events, &general, bodies.len()).await;
    assert_exactly_once_in_order(&got, &bodies, 1);
    alice.close().await;
}

/// Synchronous code may hold the client on threads of its own: `send_blocking` works there (the
/// client's tasks run on the runtime it was started on). Starting a client needs a runtime,
/// and without one the error says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_works_from_a_thread_outside_the_runtime() {
    let general = room("general");
    let (_server, mut clients) = alice_and_bob_on_a_new_server().await;
    let (alice, bob_events) = (clients.alice.clone(), &mut clients.bob_events);
    let sender = alice.clone();
    let to = general.clone();
    let id = std::thread::spawn(move || sender.send_blocking(&to, "from a plain thread"))
        .join()
        .expect("the thread did not panic")
        .expect("queued")
        .client_id();
    let got = collect_messages(bob_events, &general, 1).await;
    assert_eq!(got[0].client_id, id);
    alice.close().await;

    let outside = std::thread::spawn(|| {
        Client::builder("http://127.0.0.1:9", "token")
            .in_memory()
            .start()
            .map(|_| ())
    })
    .join()
    .expect("the thread did not panic");
    assert!(
        matches!(outside, Err(ConnectError::Config(ref why)) if why.contains("tokio runtime")),
        "{outside:?}"
    );
}

/// An application that runs the client inside a `LocalSet` on a multi-threaded runtime (as
/// `#[tokio::main]` with `!Send` futures does) can send: waiting for the disk must not need
/// anything the `LocalSet` forbids.
#[test]
fn sending_from_a_local_set_on_a_multi_threaded_runtime_works() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let general = room("general");
        let (_server, mut clients) = alice_and_bob_on_a_new_server().await;
        let alice = clients.alice.clone();
        let sent = tokio::task::spawn_local(async move {
            let id = alice
                .send(&general, "from a local set")
                .await
                .expect("queued")
                .client_id();
            let second = alice
                .send(&general, "and once more")
                .await
                .expect("queued")
                .client_id();
            (alice, [id, second])
        });
        let (alice, ids) = sent.await.expect("the local task ran");
        let got = collect_messages(&mut clients.bob_events, &room("general"), 2).await;
        assert_eq!([got[0].client_id, got[1].client_id], ids);
        alice.close().await;
    });
}

#[cfg(unix)]
/// The store may be reached through a symbolic link: the log that `send` syncs is the one
/// SQLite writes, next to the real file, not a stale file next to the link.
#[tokio::test]
async fn a_store_reached_through_a_symbolic_link_syncs_the_real_log() {
    let server = TestServer::start().await.expect("server starts");
    let general = room("general");
    let real = server.temp_path("real.db");
    let link = server.temp_path("link.db");
    std::fs::write(&real, b"").expect("an empty database file");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let AliceAndBob {
        alice,
        mut bob_events,
        bob: _bob,
        ..
    } = alice_and_bob_in_general(&server, &link).await;
    let id = alice
        .send(&general, "through a link")
        .await
        .expect("synced")
        .client_id();
    remove_write_ahead_log(&real);
    match alice.send(&general, "log gone").await {
        Err(SendError::NotDurable { .. }) => {}
        other => panic!("the real log was not the one synced: {other:?}"),
    }
    let got = collect_messages(&mut bob_events, &general, 2).await;
    assert_eq!(got[0].client_id, id);
    alice.close().await;
}

#[tokio::test]
async fn a_message_past_its_time_to_live_fails_as_expired() {
    let (client, mut events) = Client::builder("http://127.0.0.1:9", "token")
        .in_memory()
        .ttl(Duration::from_millis(100))
        .start()
        .expect("starts offline");
    let id = client
        .send(&room("general"), "too late")
        .await
        .expect("queued")
        .client_id();
    wait_for(&mut events, |e| match e {
        ChatEvent::Status {
            client_id,
            state:
                MessageState::Failed {
                    reason: FailureReason::Expired,
                },
            ..
        } if *client_id == id => Some(()),
        _ => None,
    })
    .await;
    let message = client
        .outbox()
        .get(id)
        .expect("store")
        .expect("still listed");
    assert!(matches!(message.state, MessageState::Failed { .. }));
    client.close().await;
}

#[tokio::test]
async fn a_forbidden_message_fails_and_can_be_retried_or_discarded() {
    let server = TestServer::start().await.expect("server starts");
    let (alice, mut events) = connect(&server, &server.url(), "alice").await;
    let general = room("general");
    let first = alice
        .send(&general, "before joining")
        .await
        .expect("queued")
        .client_id();
    let second = alice
        .send(&general, "also before joining")
        .await
        .expect("queued")
        .client_id();
    for id in [first, second] {
        let code = wait_for(&mut events, |e| match e {
            ChatEvent::Status {
                client_id,
                state:
                    MessageState::Failed {
                        reason: FailureReason::Rejected { code, .. },
                    },
                ..
            } if *client_id == id => Some(*code),
            _ => None,
        })
        .await;
        assert_eq!(code, ErrorCode::Forbidden);
    }
    alice.join(&general).await.expect("join");
    alice.outbox().retry(first).await.expect("retry");
    alice.outbox().discard(second).await.expect("discard");
    let got = collect_messages(&mut events, &general, 1).await;
    assert_eq!(got[0].client_id, first);
    assert!(alice.outbox().get(second).expect("store").is_none());
    assert!(alice.outbox().retry(second).await.is_err());
    wait_until(&mut events, || all_acked(&alice)).await;
    assert_eq!(stored(&alice, &general).await.len(), 1);
}

/// The states one message goes through when its first ack is lost.
#[tokio::test]
async fn state_transitions_across_a_lost_ack() {
    let server = TestServer::start().await.expect("server starts");
    let transport = Arc::new(CountingTransport::default());
    let wire = transport.wire.clone();
    let (alice, mut alice_events) = builder(&server.url(), server.token("alice"))
        .transport(transport)
        .connect()
        .await
        .expect("alice connects");
    let (bob, mut bob_events) = connect(&server, &server.url(), "bob").await;
    let general = room("general");
    alice.join(&general).await.expect("alice joins");
    bob.join(&general).await.expect("bob joins");

    wire.swallow_acks
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let id = alice
        .send(&general, "through a fault")
        .await
        .expect("queued")
        .client_id();
    let mut states = Vec::new();
    let mut read_requested = false;
    tokio::time::timeout(PATIENCE, async {
        loop {
            match alice_events.recv().await.expect("events") {
                ChatEvent::Queued(m) if m.client_id == id => {
                    states.push(serde_json::json!({"state": "queued (local echo)"}))
                }
                ChatEvent::Status {
                    client_id, state, ..
                } if client_id == id => {
                    let done = matches!(state, MessageState::Read { .. });
                    let delivered = matches!(state, MessageState::Delivered { .. });
                    let mut value = serde_json::to_value(&state).expect("serializes");
                    if value.get("id").is_some() {
                        value["id"] = "<server id>".into();
                    }
                    states.push(value);
                    if delivered && !read_requested {
                        read_requested = true;
                        // Bob takes the message from his stream, then reads it.
                        collect_messages(&mut bob_events, &general, 1).await;
                        bob.mark_read(&general).await.expect("bob reads");
                    }
                    if done {
                        return;
                    }
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the message reached Read");
    assert_eq!(
        wire.connections.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the lost ack should have cost exactly one reconnect"
    );
    insta::assert_json_snapshot!(states);
}

/// The handle `send` returns follows its message: its watch starts from the current state
/// and sees every milestone up to read; once pruned, the message is gone for the handle too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_handle_follows_its_message_until_read_and_pruned() {
    let (_server, mut clients) = alice_and_bob_on_a_new_server().await;
    let general = room("general");
    let message = clients
        .alice
        .send(&general, "follow me")
        .await
        .expect("queued");
    assert_eq!(message.room(), &general);
    let sent = message
        .wait_for(Milestone::Sent, PATIENCE)
        .await
        .expect("sent");
    assert!(matches!(
        sent,
        MessageState::Sent { .. } | MessageState::Delivered { .. } | MessageState::Read { .. }
    ));
    let mut watch = message.watch().expect("watch");
    let got = collect_messages(&mut clients.bob_events, &general, 1).await;
    assert_eq!(got[0].client_id, message.client_id());
    clients.bob.mark_read(&general).await.expect("bob reads");
    let read = message
        .wait_for(Milestone::Read, PATIENCE)
        .await
        .expect("read");
    assert!(
        matches!(read, MessageState::Read { seq: 1, .. }),
        "{read:?}"
    );
    // The watch got there too, and ends there: read is final.
    tokio::time::timeout(PATIENCE, async {
        while !matches!(*watch.borrow_and_update(), Some(MessageState::Read { .. })) {
            if watch.changed().await.is_err() {
                break;
            }
        }
    })
    .await
    .expect("the watch saw read");
    assert!(matches!(*watch.borrow(), Some(MessageState::Read { .. })));

    assert_eq!(
        clients
            .alice
            .outbox()
            .prune_acknowledged()
            .await
            .expect("pruned"),
        1
    );
    assert_eq!(message.state().expect("store"), None);
    assert!(matches!(
        message.wait_for(Milestone::Read, PATIENCE).await,
        Err(WaitError::NotFound(id)) if id == message.client_id()
    ));
    clients.alice.close().await;
}

/// One outbox file serves one running client: a second one is refused with an error naming
/// the holder; a tool opening the file meanwhile can list it but not repair it; once the
/// client stops, the tool owns the file and may repair it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_file_in_use_is_refused_to_a_second_client_and_read_only_to_tools() {
    let server = TestServer::start().await.expect("server starts");
    let store = server.temp_path("alice.db");
    let general = room("general");
    let (alice, _events) = builder(&server.url(), server.token("alice"))
        .store_path(&store)
        .start()
        .expect("alice starts");
    // Not joined and offline-first: the message is refused as `forbidden` once connected.
    let refused = alice.send(&general, "not a member").await.expect("queued");
    let failed = refused.wait_for(Milestone::Sent, PATIENCE).await;
    assert!(matches!(failed, Err(WaitError::Failed(_))), "{failed:?}");

    match builder(&server.url(), server.token("alice"))
        .store_path(&store)
        .start()
    {
        Err(ConnectError::Store(StoreError::InUse { path, holder })) => {
            assert_eq!(path, store);
            assert_eq!(holder, Some(std::process::id()));
        }
        other => panic!("expected InUse, got {:?}", other.map(|_| ())),
    }

    let tool = Outbox::open(&store).expect("opens beside the client");
    assert!(tool.is_read_only());
    let listed = tool.list().expect("lists");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].client_id, refused.client_id());
    match tool.retry(refused.client_id()).await {
        Err(OutboxError::ReadOnly { operation, .. }) => {
            assert_eq!(operation, OutboxOperation::Retry)
        }
        other => panic!("expected ReadOnly, got {other:?}"),
    }
    assert!(matches!(
        tool.discard(refused.client_id()).await,
        Err(OutboxError::ReadOnly { .. })
    ));
    drop(tool);

    alice.close().await;
    // A closed client changes its file no more: another owner may have it now.
    assert!(matches!(
        alice.send(&general, "after close").await,
        Err(SendError::Store(StoreError::Closed))
    ));
    let tool = Outbox::open(&store).expect("owns the file now");
    assert!(!tool.is_read_only());
    tool.discard(refused.client_id()).await.expect("discarded");
    assert!(tool.list().expect("lists").is_empty());
}

/// Repairs that do not fit the message's state say which state it is in, as a value.
#[tokio::test]
async fn a_repair_of_a_message_in_the_wrong_state_names_its_state() {
    let server = TestServer::start().await.expect("server starts");
    let relay = Relay::start(server.addr()).await.expect("relay starts");
    let (alice, _events) = builder(&relay.url(), server.token("alice"))
        .ack_timeout(Duration::from_secs(60))
        .health_interval(Duration::from_secs(60))
        .connect()
        .await
        .expect("alice connects");
    let general = room("general");
    alice.join(&general).await.expect("alice joins");
    // The link goes silent: the message is handed over and its ack never comes.
    relay.blackhole_all();
    let message = alice.send(&general, "in flight").await.expect("queued");
    let mut watch = message.watch().expect("watch");
    tokio::time::timeout(
        PATIENCE,
        watch.wait_for(|s| matches!(s, Some(MessageState::Sending { .. }))),
    )
    .await
    .expect("timed out")
    .expect("sending");
    match message.discard().await {
        Err(OutboxError::WrongState {
            state: MessageState::Sending { attempt: 1 },
            operation: OutboxOperation::Discard,
            ..
        }) => {}
        other => panic!("expected WrongState(Sending), got {other:?}"),
    }
    match message.retry().await {
        Err(OutboxError::WrongState {
            operation: OutboxOperation::Retry,
            ..
        }) => {}
        other => panic!("expected WrongState, got {other:?}"),
    }
    assert!(
        message.state().expect("store").is_some(),
        "still in the outbox"
    );
    alice.close().await;
}

/// A client that only sends, restarted on a store that knows many rooms, re-joins and
/// catches up none of them: its message goes out after a handful of requests, since
/// membership on the server is durable. The same store without `send_only` re-joins all
/// (room by room: the server has no `room:resume`, so each room costs its own requests).
#[tokio::test]
async fn a_send_only_client_does_not_rejoin_every_room_it_knows() {
    const ROOMS: usize = 12;
    let server = TestServer::start_with(|config| config.resume_extension = false)
        .await
        .expect("server starts");
    let store = server.temp_path("bot.db");
    let rooms: Vec<_> = (0..ROOMS).map(|i| room(&format!("r{i}"))).collect();
    {
        let (bot, _events) = builder(&server.url(), server.token("bot"))
            .store_path(&store)
            .connect()
            .await
            .expect("bot connects");
        for room in &rooms {
            bot.join(room).await.expect("joins");
        }
        bot.close().await;
    }
    // Sending only, at most the room of its message is joined (if the message is queued
    // before the connection's first step); otherwise every room.
    for (send_only, joins) in [(true, 0..=1), (false, ROOMS..=ROOMS)] {
        let transport = Arc::new(CountingTransport::default());
        let mut starting = builder(&server.url(), server.token("bot"))
            .store_path(&store)
            .transport(transport.clone());
        if send_only {
            starting = starting.send_only();
        }
        let (bot, _events) = starting.connect().await.expect("bot reconnects");
        let message = bot.send(&rooms[7], "alert").await.expect("queued");
        message
            .wait_for(Milestone::Sent, PATIENCE)
            .await
            .expect("stored without a re-join");
        bot.close().await;
        let wire = &transport.wire;
        let (made, synced) = (
            wire.requests_of("room:join"),
            wire.requests_of("message:sync"),
        );
        assert!(joins.contains(&made), "send_only {send_only}: {made} joins");
        assert!(
            joins.contains(&synced),
            "send_only {send_only}: {synced} syncs"
        );
    }
}

/// Time-to-live covers the whole queue: a message queued behind one that is on the wire
/// waiting for its ack (which never expires: it may be stored) expires on time anyway.
#[tokio::test]
async fn a_message_behind_one_in_flight_still_expires_on_time() {
    let server = TestServer::start().await.expect("server starts");
    let relay = Relay::start(server.addr()).await.expect("relay starts");
    let general = room("general");
    let (alice, _events) = builder(&relay.url(), server.token("alice"))
        .ack_timeout(Duration::from_secs(60))
        .health_interval(Duration::from_secs(60))
        .ttl(Duration::from_millis(300))
        .connect()
        .await
        .expect("alice connects");
    alice.join(&general).await.expect("joins");
    relay.blackhole_all();
    let in_flight = alice.send(&general, "in flight").await.expect("queued");
    let mut state = in_flight.watch().expect("watch");
    tokio::time::timeout(
        PATIENCE,
        state.wait_for(|s| matches!(s, Some(MessageState::Sending { .. }))),
    )
    .await
    .expect("timed out")
    .expect("sending");
    let behind = alice.send(&general, "behind it").await.expect("queued");
    match behind.wait_for(Milestone::Sent, PATIENCE).await {
        Err(WaitError::Failed(FailureReason::Expired)) => {}
        other => panic!("expected it to expire, got {other:?}"),
    }
    assert!(matches!(
        in_flight.state().expect("store"),
        Some(MessageState::Sending { .. })
    ));
    alice.close().await;
}

/// A send-only client whose join was asked for offline (and so never reached the server)
/// joins that room when it connects, before its message goes out: it is not refused as a
/// non-member.
#[tokio::test]
async fn a_send_only_client_joins_the_room_of_a_message_queued_offline() {
    let server = TestServer::start().await.expect("server starts");
    let relay = Relay::start(server.addr()).await.expect("relay starts");
    let store = server.temp_path("bot.db");
    let general = room("general");
    relay.refuse_new(true);
    let id = {
        let (bot, _events) = builder(&relay.url(), server.token("bot"))
            .store_path(&store)
            .send_only()
            .start()
            .expect("starts offline");
        assert!(bot.join(&general).await.is_err(), "offline: the join waits");
        let queued = bot.send(&general, "from offline").await.expect("queued");
        bot.close().await;
        queued.client_id()
    };
    relay.refuse_new(false);
    let (bot, _events) = builder(&relay.url(), server.token("bot"))
        .store_path(&store)
        .send_only()
        .connect()
        .await
        .expect("connects");
    let message = bot.outbox().handle(id).expect("store").expect("kept");
    let state = message.wait_for(Milestone::Sent, PATIENCE).await;
    assert!(
        matches!(
            state,
            Ok(MessageState::Sent { .. }
                | MessageState::Delivered { .. }
                | MessageState::Read { .. })
        ),
        "{state:?}"
    );
    bot.close().await;
}

/// The outbox's disk fills up (here a size cap, which SQLite meets as a full disk): `send`
/// fails with `StoreError::Full` and queues nothing, and every message queued before is
/// still sent, once each and in order, when the client starts again with room on the disk.
#[tokio::test]
async fn a_full_outbox_disk_refuses_the_send_and_keeps_what_was_queued() {
    let server = TestServer::start_with(|config| config.rates.send_per_sec = 10_000)
        .await
        .expect("server starts");
    let relay = Relay::start(server.addr()).await.expect("relay starts");
    let store = server.temp_path("alice.db");
    let general = room("general");
    let (alice, _events) = builder(&relay.url(), server.token("alice"))
        .store_path(&store)
        .outbox_max_bytes(256 * 1024)
        .connect()
        .await
        .expect("alice connects");
    alice.join(&general).await.expect("alice joins");
    relay.refuse_new(true);
    relay.reset_all();
    let body = "x".repeat(3_000);
    let mut queued = 0;
    let refused = loop {
        match alice.send(&general, format!("{queued} {body}")).await {
            Ok(_) => queued += 1,
            Err(err) => break err,
        }
        assert!(queued < 1_000, "the cap was never reached");
    };
    assert!(
        matches!(refused, SendError::Store(StoreError::Full(_))),
        "{refused:?}"
    );
    assert!(queued > 10, "{queued} queued before the disk was full");
    alice.close().await;
    relay.refuse_new(false);

    let (alice, mut events) = builder(&server.url(), server.token("alice"))
        .store_path(&store)
        .connect()
        .await
        .expect("alice starts again with room on the disk");
    let ids = outbox_ids(&alice);
    assert_eq!(ids.len(), queued, "nothing queued was lost");
    wait_all_sent(&mut events, &ids, &mut Vec::new()).await;
    let stored = stored(&alice, &general).await;
    let bodies: Vec<String> = (0..queued).map(|i| format!("{i} {body}")).collect();
    assert_exactly_once_in_order(&stored, &bodies, 1);
    alice.close().await;
}
