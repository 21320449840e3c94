//! Several messages per request (`message:send_batch`) without weakening order: the
//! messages queued while a request is out (or while offline) go together, and a refusal, a
//! lost link or a server stop in the middle of a batch still leaves every room holding each
//! message once, in the order queued. Without the extension, one message per request.

mod common;

use chat_sdk::chat_protocol::ErrorCode;
use chat_sdk::{ChatEvent, FailureReason, MessageState};
use chat_testkit::TestServer;
use common::transport::connect_counted;
use common::*;

fn bodies(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix} {i}")).collect()
}

/// Every message in the outbox is acknowledged or failed: nothing left to send.
fn settled(client: &chat_sdk::Client) -> bool {
    client
        .outbox()
        .list()
        .expect("outbox")
        .iter()
        .all(|m| m.state.seq().is_some() || matches!(m.state, MessageState::Failed { .. }))
}

/// Queues `sent` to `room` while the server is down, brings it back, and checks that every
/// message is acknowledged and stored once, in order.
async fn queue_offline_then_deliver(
    server: &mut TestServer,
    client: &chat_sdk::Client,
    events: &mut chat_sdk::Events,
    room: &chat_sdk::chat_protocol::RoomId,
    sent: &[String],
) {
    server.stop().await.expect("stops");
    send_all(client, room, sent).await;
    server.resume().await.expect("resumes");
    wait_until(events, || all_acked(client)).await;
    assert_exactly_once_in_order(&stored(client, room).await, sent, 1);
}

#[tokio::test]
async fn messages_queued_offline_go_out_in_a_few_requests_once_each_in_order() {
    let mut server = TestServer::start().await.expect("server starts");
    let general = room("general");
    let (alice, mut events, wire) = connect_counted(&server, "alice", &general).await;
    let sent = bodies("offline", 250);
    queue_offline_then_deliver(&mut server, &alice, &mut events, &general, &sent).await;
    assert_eq!(
        (
            wire.requests_of("message:send_batch"),
            wire.requests_of("message:send")
        ),
        (3, 0),
        "250 messages in batches of at most 100"
    );
}

#[tokio::test]
async fn a_rate_limit_refusal_in_the_middle_of_a_batch_keeps_the_order() {
    // A burst of 40 sends: a batch of 60 is cut after 40.
    let mut server = TestServer::start_with(|config| config.rates.send_per_sec = 20)
        .await
        .expect("server starts");
    let general = room("general");
    let (alice, mut events, wire) = connect_counted(&server, "alice", &general).await;
    let sent = bodies("limited", 60);
    queue_offline_then_deliver(&mut server, &alice, &mut events, &general, &sent).await;
    let on_the_wire = wire.sends.lock().expect("lock").len();
    assert!(
        on_the_wire > sent.len(),
        "the refused part of the batch went again ({on_the_wire} on the wire)"
    );
    assert!(wire.requests_of("message:send_batch") >= 2);
}

#[tokio::test]
async fn a_message_refused_for_good_fails_alone_and_the_rest_of_its_batch_is_stored() {
    let mut server = TestServer::start().await.expect("server starts");
    let general = room("general");
    let (alice, mut events, wire) = connect_counted(&server, "alice", &general).await;
    server.stop().await.expect("stops");
    let before = bodies("before", 5);
    send_all(&alice, &general, &before).await;
    let refused = alice
        .send(&room("not-joined"), "to a room alice is not in")
        .await
        .expect("queued")
        .client_id();
    let after = bodies("after", 5);
    send_all(&alice, &general, &after).await;
    server.resume().await.expect("resumes");
    wait_until(&mut events, || settled(&alice)).await;
    let state = alice.outbox().get(refused).expect("store").expect("kept");
    assert!(
        matches!(
            state.state,
            MessageState::Failed {
                reason: FailureReason::Rejected {
                    code: ErrorCode::Forbidden,
                    ..
                }
            }
        ),
        "{:?}",
        state.state
    );
    let all: Vec<String> = before.into_iter().chain(after).collect();
    assert_exactly_once_in_order(&stored(&alice, &general).await, &all, 1);
    assert_eq!(
        wire.requests_of("message:send_batch"),
        1,
        "one batch carried all 11"
    );
}

#[tokio::test]
async fn a_batch_whose_ack_is_lost_is_sent_again_and_stored_once() {
    let server = TestServer::start().await.expect("server starts");
    let general = room("general");
    let (alice, mut events, wire) = connect_counted(&server, "alice", &general).await;
    // The link dies after the server stored a request and before its answer arrives: the
    // first request, then (its messages sent again together) the batch that follows it.
    wire.swallow_acks
        .store(2, std::sync::atomic::Ordering::SeqCst);
    let sent = bodies("lost ack", 40);
    send_all(&alice, &general, &sent).await;
    wait_until(&mut events, || all_acked(&alice)).await;
    assert_exactly_once_in_order(&stored(&alice, &general).await, &sent, 1);
    let counts = wire.counts();
    assert!(
        counts.values().any(|&n| n > 1),
        "some messages went on the wire twice: {counts:?}"
    );
    assert!(wire.requests_of("message:send_batch") >= 1);
    // Each message is announced `Sent` with the seq it was stored at, the resent ones too.
    let listed = alice.outbox().list().expect("outbox");
    let seqs: Vec<u64> = listed.iter().filter_map(|m| m.state.seq()).collect();
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_server_stopped_and_restarted_under_batches_loses_and_doubles_nothing() {
    let mut server = TestServer::start().await.expect("server starts");
    let general = room("general");
    let (alice, mut events, wire) = connect_counted(&server, "alice", &general).await;
    let (bob, mut bob_events) = connect(&server, &server.url(), "bob").await;
    bob.join(&general).await.expect("join");
    let mut sent = Vec::new();
    for round in 0..5 {
        let part = bodies(&format!("round {round}"), 60);
        let ids = send_all(&alice, &general, &part).await;
        sent.extend(part);
        // Part of the round is stored; the rest is queued or on the wire when the server goes.
        let mut seen = Vec::new();
        wait_all_sent(&mut events, &ids[..10], &mut seen).await;
        server.restart().await.expect("restarts");
    }
    wait_until(&mut events, || all_acked(&alice)).await;
    assert_exactly_once_in_order(&stored(&alice, &general).await, &sent, 1);
    let got = collect_messages(&mut bob_events, &general, sent.len()).await;
    assert_exactly_once_in_order(&got, &sent, 1);
    assert!(wire.requests_of("message:send_batch") >= 5);
    while let Some(event) = bob_events.try_recv() {
        assert!(
            !matches!(event, ChatEvent::Message(_)),
            "bob got a message twice: {event:?}"
        );
    }
}

#[tokio::test]
async fn without_the_extension_every_message_goes_alone() {
    let mut server = TestServer::start_with(|config| config.send_batch_extension = false)
        .await
        .expect("server starts");
    let general = room("general");
    let (alice, mut events, wire) = connect_counted(&server, "alice", &general).await;
    let sent = bodies("alone", 30);
    queue_offline_then_deliver(&mut server, &alice, &mut events, &general, &sent).await;
    assert_eq!(wire.requests_of("message:send_batch"), 0);
    assert_eq!(wire.requests_of("message:send"), 30);
}
