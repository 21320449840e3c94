//! The happy path against the real server: send, receive, statuses, read, presence, history.

mod common;

use chat_sdk::chat_protocol::{ClientId, RoomId, Seq};
use chat_sdk::{ChatEvent, MessageState, Milestone};
use chat_testkit::TestServer;
use common::*;

#[tokio::test]
async fn a_message_is_received_once_and_its_status_moves_to_read() {
    let server = TestServer::start().await.expect("server starts");
    let url = server.url();
    let (alice, mut alice_events) = connect(&server, &url, "alice").await;
    let (bob, mut bob_events) = connect(&server, &url, "bob").await;
    let general = room("general");
    alice.join(&general).await.expect("alice joins");
    bob.join(&general).await.expect("bob joins");

    let id = alice
        .send(&general, "hello bob")
        .await
        .expect("queued")
        .client_id();
    let got = collect_messages(&mut bob_events, &general, 1).await;
    assert_eq!(got[0].body.as_str(), "hello bob");
    assert_eq!(got[0].client_id, id);
    assert_eq!(got[0].seq, 1);

    let delivered = wait_for(&mut alice_events, |e| match e {
        ChatEvent::Status {
            client_id,
            state: MessageState::Delivered { seq, .. },
            ..
        } if *client_id == id => Some(*seq),
        _ => None,
    })
    .await;
    assert_eq!(delivered, 1);

    assert!(matches!(
        alice
            .outbox()
            .handle(id)
            .expect("store")
            .expect("listed")
            .wait_for(Milestone::Delivered, PATIENCE)
            .await,
        Ok(MessageState::Delivered { seq: 1, .. })
    ));
    let reader = tokio::spawn({
        let alice = alice.clone();
        async move {
            alice
                .outbox()
                .handle(id)
                .expect("store")
                .expect("listed")
                .wait_for(Milestone::Read, PATIENCE)
                .await
        }
    });
    bob.mark_read(&general).await.expect("read");
    assert!(matches!(
        reader.await.expect("task"),
        Ok(MessageState::Read { .. })
    ));
    wait_for(&mut alice_events, |e| match e {
        ChatEvent::Status {
            client_id,
            state: MessageState::Read { .. },
            ..
        } if *client_id == id => Some(()),
        _ => None,
    })
    .await;

    let presence = alice
        .presence(&[chat_sdk::chat_protocol::UserId::new("bob").expect("id")])
        .await
        .expect("presence");
    assert!(presence[0].online);
    let history = alice.history(&general, 0, 10).await.expect("history");
    assert_eq!(history.messages.len(), 1);
}

#[tokio::test]
async fn connect_fails_over_to_the_next_url() {
    let server = TestServer::start().await.expect("server starts");
    // A port nothing listens on: bind one, note it, close it.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let (client, _events) = builder(&format!("http://{dead}"), server.token("alice"))
        .fallback_url(server.url())
        .connect()
        .await
        .expect("the second URL answers");
    client.close().await;
}

#[tokio::test]
async fn delivered_status_is_recovered_from_join_watermarks_after_a_restart() {
    let server = TestServer::start().await.expect("server starts");
    let store = server.temp_path("alice.db");
    let general = room("general");
    let (bob, mut bob_events) = connect(&server, &server.url(), "bob").await;
    bob.join(&general).await.expect("bob joins");
    let id = {
        let (alice, mut events) = builder(&server.url(), server.token("alice"))
            .store_path(&store)
            .connect()
            .await
            .expect("alice connects");
        alice.join(&general).await.expect("alice joins");
        let id = alice
            .send(&general, "read me later")
            .await
            .expect("queued")
            .client_id();
        wait_until(&mut events, || all_acked(&alice)).await;
        alice.close().await;
        id
    };
    // While Alice is away, Bob receives and reads it.
    collect_messages(&mut bob_events, &general, 1).await;
    bob.mark_read(&general).await.expect("bob reads");

    // Alice comes back: the join answer's watermarks alone move her message to Read.
    let (alice, mut events) = builder(&server.url(), server.token("alice"))
        .store_path(&store)
        .connect()
        .await
        .expect("alice reconnects");
    alice.join(&general).await.expect("alice re-joins");
    wait_until(&mut events, || {
        matches!(
            alice.outbox().get(id).expect("store").map(|m| m.state),
            Some(MessageState::Read { .. })
        )
    })
    .await;
}

#[tokio::test]
async fn join_since_replays_from_the_asked_seq() {
    let server = TestServer::start().await.expect("server starts");
    let (alice, mut events) = connect(&server, &server.url(), "alice").await;
    let general = room("general");
    alice.join(&general).await.expect("join");
    let bodies: Vec<String> = (0..5).map(|i| format!("m{i}")).collect();
    for body in &bodies {
        alice
            .send(&general, body.clone())
            .await
            .expect("queued")
            .client_id();
    }
    let first = collect_messages(&mut events, &general, 5).await;
    assert_exactly_once_in_order(&first, &bodies, 1);
    alice.join_since(&general, 2).await.expect("replay");
    let replay = collect_messages(&mut events, &general, 3).await;
    assert_exactly_once_in_order(&replay, &bodies[2..], 3);
    assert_eq!(alice.received_seq(&general), Some(5));
}

#[tokio::test]
async fn messages_not_taken_before_a_restart_are_handed_over_again() {
    let (server, store, general, alice, mut alice_events) = alice_and_bobs_outbox().await;
    let bodies: Vec<String> = (0..5).map(|i| format!("m{i}")).collect();
    {
        let (bob, mut bob_events) = bob_on(&server, &store).await;
        bob.join(&general).await.expect("bob joins");
        for body in &bodies {
            alice
                .send(&general, body.clone())
                .await
                .expect("queued")
                .client_id();
        }
        // All five reach Bob's stream (his receipt says so); he takes only two.
        wait_until(&mut alice_events, || bob.received_seq(&general) == Some(5)).await;
        let taken = collect_messages(&mut bob_events, &general, 2).await;
        assert_exactly_once_in_order(&taken, &bodies[..2], 1);
        bob.close().await;
    }
    let (bob, mut bob_events) = bob_on(&server, &store).await;
    let again = collect_messages(&mut bob_events, &general, 3).await;
    assert_exactly_once_in_order(&again, &bodies[2..], 3);
    bob.close().await;
}

#[tokio::test]
async fn messages_taken_in_a_batch_are_not_handed_over_again_after_a_restart() {
    let (server, store, general, alice, mut alice_events) = alice_and_bobs_outbox().await;
    let bodies: Vec<String> = (0..6).map(|i| format!("m{i}")).collect();
    {
        let (bob, mut bob_events) = bob_on(&server, &store).await;
        bob.join(&general).await.expect("bob joins");
        for body in &bodies[..5] {
            alice
                .send(&general, body.clone())
                .await
                .expect("queued")
                .client_id();
        }
        wait_until(&mut alice_events, || bob.received_seq(&general) == Some(5)).await;
        // Every message is waiting in the stream: take them in as few calls as it allows.
        let mut taken = Vec::new();
        let mut batch = Vec::new();
        while taken.len() < 5 {
            assert!(
                bob_events.recv_many(&mut batch, 100).await > 0,
                "stream ended"
            );
            taken.extend(batch.drain(..).filter_map(|event| match event {
                ChatEvent::Message(m) if m.room == general => Some(m),
                _ => None,
            }));
        }
        assert_exactly_once_in_order(&taken, &bodies[..5], 1);
        bob.close().await;
    }
    alice
        .send(&general, bodies[5].clone())
        .await
        .expect("queued")
        .client_id();
    let (bob, mut bob_events) = bob_on(&server, &store).await;
    let next = collect_messages(&mut bob_events, &general, 1).await;
    assert_exactly_once_in_order(&next, &bodies[5..], 6);
    bob.close().await;
}

/// The application may go on taking events from the stream of a client it closed (or
/// dropped): those messages' positions are kept too, so a restart does not hand them over
/// again.
#[tokio::test]
async fn messages_taken_after_close_are_not_handed_over_again_after_a_restart() {
    let (server, store, general, alice, mut alice_events) = alice_and_bobs_outbox().await;
    let bodies: Vec<String> = (0..5).map(|i| format!("m{i}")).collect();
    {
        let (bob, mut bob_events) = bob_on(&server, &store).await;
        bob.join(&general).await.expect("bob joins");
        send_all(&alice, &general, &bodies[..4]).await;
        wait_until(&mut alice_events, || bob.received_seq(&general) == Some(4)).await;
        bob.close().await;
        drop(bob);
        // Taken after the close, and after the client is gone.
        let taken = collect_messages(&mut bob_events, &general, 4).await;
        assert_exactly_once_in_order(&taken, &bodies[..4], 1);
    }
    send_all(&alice, &general, &bodies[4..]).await;
    let (bob, mut bob_events) = bob_on(&server, &store).await;
    let next = collect_messages(&mut bob_events, &general, 1).await;
    assert_exactly_once_in_order(&next, &bodies[4..], 5);
    bob.close().await;
}

/// A server, the path of Bob's outbox file, and Alice in `general`, for the restart tests.
async fn alice_and_bobs_outbox() -> (
    TestServer,
    std::path::PathBuf,
    RoomId,
    chat_sdk::Client,
    chat_sdk::Events,
) {
    let server = TestServer::start().await.expect("server starts");
    let store = server.temp_path("bob.db");
    let general = room("general");
    let (alice, alice_events) = connect(&server, &server.url(), "alice").await;
    alice.join(&general).await.expect("alice joins");
    (server, store, general, alice, alice_events)
}

/// Bob's client on the outbox file `store`.
async fn bob_on(
    server: &TestServer,
    store: &std::path::Path,
) -> (chat_sdk::Client, chat_sdk::Events) {
    builder(&server.url(), server.token("bob"))
        .store_path(store)
        .connect()
        .await
        .expect("bob connects")
}

/// A room whose other member stays away while many messages are sent: the sender follows
/// only `receipt_tracking` of them in memory, and still every one becomes delivered, then
/// read, when the member comes back — the rest are followed through the outbox file.
#[tokio::test]
async fn receipts_reach_messages_past_the_in_memory_tracking_limit() {
    const SENT: usize = 12;
    let server = TestServer::start_with(|config| config.rates.send_per_sec = 10_000)
        .await
        .expect("server starts");
    let general = room("general");
    let (bob, bob_events) = connect(&server, &server.url(), "bob").await;
    bob.join(&general).await.expect("bob joins");
    bob.close().await;
    drop(bob_events);
    let (alice, mut alice_events) = builder(&server.url(), server.token("alice"))
        .receipt_tracking(3)
        .connect()
        .await
        .expect("alice connects");
    alice.join(&general).await.expect("alice joins");
    let bodies: Vec<String> = (0..SENT).map(|i| format!("m{i}")).collect();
    let ids = send_all(&alice, &general, &bodies).await;
    wait_all_sent(&mut alice_events, &ids, &mut Vec::new()).await;

    let (bob, mut bob_events) = connect(&server, &server.url(), "bob").await;
    bob.join(&general).await.expect("bob comes back");
    collect_messages(&mut bob_events, &general, SENT).await;
    bob.mark_read(&general).await.expect("read");
    wait_states(&mut alice_events, &ids, |state| {
        matches!(state, MessageState::Read { .. })
    })
    .await;
    for id in &ids {
        let message = alice.outbox().get(*id).expect("store").expect("listed");
        assert!(
            matches!(message.state, MessageState::Read { .. }),
            "{message:?}"
        );
    }
    alice.close().await;
    bob.close().await;
}

/// One user on three devices at once, each sending while the others do, beside another
/// user: every device gets every message of the room exactly once and in the same (`seq`)
/// order — its own, its sibling devices', and the other user's — and a device's message is
/// delivered only once the *other user* received it, not when a sibling device did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_on_three_devices_gets_everything_once_in_order() {
    const EACH: usize = 5;
    let server = TestServer::start_with(|config| config.rates.send_per_sec = 10_000)
        .await
        .expect("server starts");
    let general = room("general");
    let mut devices = Vec::new();
    for name in ["laptop", "phone", "tablet"] {
        let (client, events) = builder(&server.url(), server.token("alice"))
            .device(name)
            .connect()
            .await
            .expect("a device connects");
        client.join(&general).await.expect("joins");
        devices.push((name, client, events));
    }
    let (bob, _bob_events) = connect(&server, &server.url(), "bob").await;
    bob.join(&general).await.expect("bob joins");
    bob.close().await;
    // Each device sends its messages at the same time as the others.
    let sends = devices.iter().map(|(name, client, _)| {
        let bodies: Vec<String> = (0..EACH).map(|i| format!("{name} {i}")).collect();
        let client = client.clone();
        let general = general.clone();
        async move { send_all(&client, &general, &bodies).await }
    });
    let ids: Vec<ClientId> = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .flatten()
        .collect();
    let mut orders = Vec::new();
    for (_, _, events) in &mut devices {
        let got = collect_messages(events, &general, 3 * EACH).await;
        let seqs: Vec<Seq> = got.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=(3 * EACH) as Seq).collect::<Vec<_>>());
        let mut unique: Vec<ClientId> = got.iter().map(|m| m.client_id).collect();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 3 * EACH, "each message once");
        orders.push(got.iter().map(|m| m.client_id).collect::<Vec<_>>());
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "the same order on every device"
    );
    // Bob is away: his siblings' receipts do not make a message delivered.
    for (_, client, _) in &devices {
        for message in client.outbox().list().expect("list") {
            assert!(
                !matches!(
                    message.state,
                    MessageState::Delivered { .. } | MessageState::Read { .. }
                ),
                "{:?} before bob received anything",
                message.state
            );
        }
    }
    let (bob, mut bob_again) = connect(&server, &server.url(), "bob").await;
    bob.join(&general).await.expect("bob is back");
    collect_messages(&mut bob_again, &general, 3 * EACH).await;
    for (_, client, events) in &mut devices {
        let own = outbox_ids(client);
        wait_states(events, &own, |state| {
            matches!(
                state,
                MessageState::Delivered { .. } | MessageState::Read { .. }
            )
        })
        .await;
        client.close().await;
    }
    assert_eq!(ids.len(), 3 * EACH);
    bob.close().await;
}
