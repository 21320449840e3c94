//! Real faults in the middle of a stream of messages: server-side kick, TCP reset and
//! blackhole through a relay, a server restart on the same database. In every case each
//! message must be stored exactly once and in order, and each receiver (the sender itself
//! included) must get each exactly once, in order.

mod common;

use chat_sdk::chat_protocol::ClientId;
use chat_sdk::ChatEvent;
use chat_testkit::{Relay, TestServer};
use common::*;

#[derive(Clone, Copy, Debug)]
enum Fault {
    Kick,
    Reset,
    Blackhole,
    Restart,
}

const MESSAGES: usize = 60;
const FAULT_AFTER: usize = 20;

async fn scenario(fault: Fault) {
    let mut server = TestServer::start().await.expect("server starts");
    let relay = Relay::start(server.addr()).await.expect("relay starts");
    let url = relay.url();
    let (alice, mut alice_events) = connect(&server, &url, "alice").await;
    let (bob, mut bob_events) = connect(&server, &url, "bob").await;
    let general = room("general");
    alice.join(&general).await.expect("alice joins");
    bob.join(&general).await.expect("bob joins");

    let bodies: Vec<String> = (0..MESSAGES).map(|i| format!("message {i}")).collect();
    let mut ids: Vec<ClientId> = Vec::new();
    for body in &bodies[..FAULT_AFTER] {
        ids.push(alice.send(&general, body.clone()).expect("queued"));
    }
    // Fault while the rest is being sent: wait until the first ones are stored.
    let mut alice_seen = Vec::new();
    wait_all_sent(&mut alice_events, &ids[..FAULT_AFTER / 2], &mut alice_seen).await;
    for body in &bodies[FAULT_AFTER..] {
        ids.push(alice.send(&general, body.clone()).expect("queued"));
    }
    match fault {
        Fault::Kick => server.kick_all(),
        Fault::Reset => {
            assert!(relay.reset_all() > 0, "nothing to reset");
        }
        Fault::Blackhole => {
            assert!(relay.blackhole_all() > 0, "nothing to blackhole");
        }
        Fault::Restart => server.restart().await.expect("server restarts"),
    }
    // A sentinel sent last: when it arrives, anything else would already be there.
    ids.push(alice.send(&general, "sentinel").expect("queued"));
    let mut expected = bodies.clone();
    expected.push("sentinel".to_owned());

    let got_bob = collect_messages(&mut bob_events, &general, MESSAGES + 1).await;
    assert_exactly_once_in_order(&got_bob, &expected, 1);
    let got_alice = collect_more(&mut alice_events, &general, MESSAGES + 1, alice_seen).await;
    assert_exactly_once_in_order(&got_alice, &expected, 1);
    assert!(got_alice.iter().zip(&ids).all(|(m, id)| m.client_id == *id));

    let stored = stored(&bob, &general).await;
    assert_exactly_once_in_order(&stored, &expected, 1);
    // Nothing left to send, nothing failed.
    wait_until(&mut alice_events, || all_acked(&alice)).await;
    let attempts: u32 = alice
        .outbox()
        .expect("outbox")
        .iter()
        .map(|m| m.attempts)
        .sum();
    println!(
        "{fault:?}: {attempts} send attempts for {} messages",
        ids.len()
    );
    // Nothing more arrives on either side.
    while let Some(event) = bob_events.try_recv() {
        assert!(
            !matches!(event, ChatEvent::Message(_)),
            "extra message: {event:?}"
        );
    }
    alice.close().await;
    bob.close().await;
}

#[tokio::test]
async fn server_side_kick_loses_and_duplicates_nothing() {
    scenario(Fault::Kick).await;
}

#[tokio::test]
async fn tcp_reset_loses_and_duplicates_nothing() {
    scenario(Fault::Reset).await;
}

#[tokio::test]
async fn blackholed_link_is_noticed_and_loses_nothing() {
    scenario(Fault::Blackhole).await;
}

#[tokio::test]
async fn server_restart_on_the_same_database_loses_nothing() {
    scenario(Fault::Restart).await;
}
