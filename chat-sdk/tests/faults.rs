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
    ids.extend(send_all(&alice, &general, &bodies[..FAULT_AFTER]).await);
    // Fault while the rest is being sent: wait until the first ones are stored.
    let mut alice_seen = Vec::new();
    wait_all_sent(&mut alice_events, &ids[..FAULT_AFTER / 2], &mut alice_seen).await;
    ids.extend(send_all(&alice, &general, &bodies[FAULT_AFTER..]).await);
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
    ids.push(
        alice
            .send(&general, "sentinel")
            .await
            .expect("queued")
            .client_id(),
    );
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
        .list()
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

/// Two senders and two receivers in one room through ten mixed faults of every kind: each
/// receiver gets every message once, in seq order, and each sender's messages keep their
/// order; the server stored each once.
#[tokio::test]
async fn mixed_faults_with_two_senders_and_two_receivers_lose_nothing() {
    let mut server = TestServer::start().await.expect("server starts");
    let relay = Relay::start(server.addr()).await.expect("relay starts");
    let url = relay.url();
    let general = room("general");
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for user in ["alice", "carol"] {
        let (client, events) = connect(&server, &url, user).await;
        client.join(&general).await.expect("join");
        senders.push((client, events));
    }
    for user in ["bob", "dave"] {
        let (client, events) = connect(&server, &url, user).await;
        client.join(&general).await.expect("join");
        receivers.push((client, events));
    }
    const ROUNDS: usize = 10;
    const PER_ROUND: usize = 15;
    let mut sent: Vec<Vec<ClientId>> = vec![Vec::new(); senders.len()];
    for round in 0..ROUNDS {
        for (s, (client, _)) in senders.iter().enumerate() {
            for i in 0..PER_ROUND {
                let id = client
                    .send(&general, format!("s{s} r{round} m{i}"))
                    .await
                    .expect("queued")
                    .client_id();
                sent[s].push(id);
            }
        }
        // Let part of the round go out, then break something.
        let (_, events) = &mut senders[0];
        let mut seen = Vec::new();
        let start = round * PER_ROUND;
        wait_all_sent(events, &sent[0][start..start + PER_ROUND / 3], &mut seen).await;
        match round % 4 {
            0 => server.kick_all(),
            1 => {
                relay.reset_all();
            }
            2 => {
                relay.blackhole_all();
            }
            _ => server.restart().await.expect("restart"),
        }
    }
    let total = ROUNDS * PER_ROUND * senders.len();
    for (client, events) in &mut receivers {
        let got = collect_messages(events, &general, total).await;
        for (i, message) in got.iter().enumerate() {
            assert_eq!(message.seq, i as u64 + 1, "seq order broken at {i}");
        }
        for (s, ids) in sent.iter().enumerate() {
            let mine: Vec<ClientId> = got
                .iter()
                .filter(|m| m.body.as_str().starts_with(&format!("s{s} ")))
                .map(|m| m.client_id)
                .collect();
            assert_eq!(
                &mine, ids,
                "sender {s}'s messages lost, doubled or reordered"
            );
        }
        let stored = stored(client, &general).await;
        assert_eq!(
            stored.len(),
            total,
            "the server stored a message twice or not at all"
        );
        while let Some(event) = events.try_recv() {
            assert!(
                !matches!(event, ChatEvent::Message(_)),
                "extra message: {event:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_blackholed_link_is_noticed_within_the_health_timeout_not_the_ack_timeout() {
    let server = TestServer::start().await.expect("server starts");
    let relay = Relay::start(server.addr()).await.expect("relay starts");
    let (client, _events) = probing(&server, &relay, "alice").await;
    let state = client.connection_state();
    assert!(relay.blackhole_all() > 0, "nothing to blackhole");
    wait_reconnected(state).await;
    client.close().await;
}

#[tokio::test]
async fn a_silent_link_is_noticed_while_a_receipt_waits_for_its_ack() {
    let server = TestServer::start().await.expect("server starts");
    let relay = Relay::start(server.addr()).await.expect("relay starts");
    let general = room("general");
    let (alice, _alice_events) = connect(&server, &server.url(), "alice").await;
    alice.join(&general).await.expect("alice joins");
    let (bob, mut bob_events) = probing(&server, &relay, "bob").await;
    bob.join(&general).await.expect("bob joins");
    let state = bob.connection_state();
    alice
        .send(&general, "hello")
        .await
        .expect("queued")
        .client_id();
    collect_messages(&mut bob_events, &general, 1).await;
    // Bob's `receipt:delivered` for it goes out 25 ms after the hand-off, into the
    // blackhole: his session waits on its ack (120 s) while the watchdog probes.
    assert!(relay.blackhole_all() > 0, "nothing to blackhole");
    wait_reconnected(state).await;
    bob.close().await;
}

/// `user` connected through `relay`, probing after 200 ms of silence with a 300 ms probe
/// timeout. The ack timeout and the server's heartbeat (45 s) are both far beyond PATIENCE:
/// only the probe's own timeout can notice a silent link in time.
async fn probing(
    server: &TestServer,
    relay: &Relay,
    user: &str,
) -> (chat_sdk::Client, chat_sdk::Events) {
    builder(&relay.url(), server.token(user))
        .ack_timeout(std::time::Duration::from_secs(120))
        .health_interval(std::time::Duration::from_millis(200))
        .health_timeout(std::time::Duration::from_millis(300))
        .connect()
        .await
        .expect("client connects")
}

/// A token-refresh hook that fails is asked again after a backoff delay: a running client
/// whose hook fails once (an identity provider's blip) still reconnects and sends.
#[tokio::test]
async fn a_refresh_hook_that_fails_once_is_retried_not_fatal() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let mut server = TestServer::start().await.expect("server starts");
    let general = room("general");
    let calls = Arc::new(AtomicUsize::new(0));
    let hook_calls = calls.clone();
    let (alice, mut events) = builder(&server.url(), server.token("alice"))
        .token_refresh(move || {
            let call = hook_calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if call == 0 {
                    return Err("the identity provider is down".to_owned());
                }
                let user =
                    chat_sdk::chat_protocol::UserId::new("alice").map_err(|e| e.to_string())?;
                chat_server::mint_token("rotated", &user, std::time::Duration::from_secs(3600))
                    .map_err(|e| e.to_string())
            }
        })
        .connect()
        .await
        .expect("alice connects");
    alice.join(&general).await.expect("join");
    server.stop().await.expect("stops");
    server.rotate_secret("rotated");
    let id = alice
        .send(&general, "after a failed refresh")
        .await
        .expect("queued")
        .client_id();
    server.resume().await.expect("resumes");
    let got = collect_messages(&mut events, &general, 1).await;
    assert_eq!(got[0].client_id, id);
    assert!(
        calls.load(Ordering::SeqCst) >= 2,
        "the hook was asked again"
    );
    alice.close().await;
}

/// Under a tight per-user request rate, a reconnect's joins and syncs are refused with
/// `rate_limited` for a while: each is retried after the server's `retry_after_ms`, so every
/// room catches up on the new connection instead of staying silent until the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_under_the_rate_limit_catches_up_every_room() {
    const ROOMS: usize = 4;
    let server = TestServer::start_with(|config| {
        // A burst of 8 requests per user: a reconnect in 4 rooms makes 12.
        config.rates.other_per_sec = 4;
    })
    .await
    .expect("server starts");
    let relay = Relay::start(server.addr()).await.expect("relay starts");
    let rooms: Vec<_> = (0..ROOMS).map(|i| room(&format!("r{i}"))).collect();
    let (alice, mut alice_events) = builder(&relay.url(), server.token("alice"))
        .connect()
        .await
        .expect("alice connects");
    let (bob, mut bob_events) = connect(&server, &server.url(), "bob").await;
    for room in &rooms {
        alice
            .join(room)
            .await
            .expect("alice joins, waiting out the limit");
        bob.join(room)
            .await
            .expect("bob joins, waiting out the limit");
    }
    relay.refuse_new(true);
    relay.reset_all();
    let mut ids = Vec::new();
    for room in &rooms {
        let sent = bob
            .send(room, format!("while alice was away in {room}"))
            .await;
        ids.push(sent.expect("queued").client_id());
    }
    wait_all_sent(&mut bob_events, &ids, &mut Vec::new()).await;
    relay.refuse_new(false);
    let mut caught_up = std::collections::HashSet::new();
    tokio::time::timeout(PATIENCE, async {
        while caught_up.len() < ROOMS {
            match alice_events.recv().await.expect("event stream ended") {
                ChatEvent::Message(message) if ids.contains(&message.client_id) => {
                    caught_up.insert(message.room);
                }
                _ => {}
            }
        }
    })
    .await
    .expect("every room caught up after the reconnect");
    alice.close().await;
    bob.close().await;
}

/// A token about to expire is refreshed before it is offered, not only after the server
/// refused it: the hook is asked at connect, and the client connects at the first attempt.
#[tokio::test]
async fn a_token_about_to_expire_is_refreshed_before_connecting() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let server = TestServer::start().await.expect("server starts");
    let relay = Relay::start(server.addr()).await.expect("relay starts");
    let calls = Arc::new(AtomicUsize::new(0));
    let hook_calls = calls.clone();
    let fresh = server.token("alice");
    let expiring = server.token_with_ttl("alice", std::time::Duration::from_secs(5));
    let (alice, _events) = builder(&relay.url(), expiring)
        .token_refresh(move || {
            hook_calls.fetch_add(1, Ordering::SeqCst);
            let fresh = fresh.clone();
            async move { Ok(fresh) }
        })
        .connect()
        .await
        .expect("alice connects");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "refreshed ahead of its exp"
    );
    assert_eq!(
        relay.attempts(),
        1,
        "no attempt was wasted on the old token"
    );
    alice.close().await;
}

/// A receiver too slow to read: its socket stops being read (the relay holds it) while a
/// flood comes, so the server's buffer for it fills and the server drops the socket rather
/// than skip a message. When the reader resumes it sees the close, reconnects and catches
/// up: every message once, in order. (Its health check is set too slow to act first: the
/// reconnect is the server's doing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_too_slow_to_read_is_dropped_and_resumes_with_nothing_lost() {
    const MESSAGES: usize = 4_000;
    let server = TestServer::start_with(|config| {
        config.rates.send_per_sec = 100_000;
        config.limits.socket_buffer_packets = 16;
    })
    .await
    .expect("server starts");
    let relay = Relay::start(server.addr()).await.expect("relay starts");
    let general = room("general");
    let (alice, mut alice_events) = connect(&server, &server.url(), "alice").await;
    alice.join(&general).await.expect("alice joins");
    let (bob, mut bob_events) = builder(&relay.url(), server.token("bob"))
        .health_interval(std::time::Duration::from_secs(120))
        .ack_timeout(std::time::Duration::from_secs(120))
        .connect()
        .await
        .expect("bob connects");
    bob.join(&general).await.expect("bob joins");
    relay.blackhole_all();
    let body = "y".repeat(3_900);
    let bodies: Vec<String> = (0..MESSAGES).map(|i| format!("{i} {body}")).collect();
    let ids = send_all(&alice, &general, &bodies).await;
    wait_all_sent(&mut alice_events, &ids, &mut Vec::new()).await;
    relay.forward_all();
    let got = collect_messages(&mut bob_events, &general, MESSAGES).await;
    assert_exactly_once_in_order(&got, &bodies, 1);
    assert_eq!(
        relay.accepted(),
        2,
        "bob reconnected once: the server dropped his socket"
    );
    alice.close().await;
    bob.close().await;
}
