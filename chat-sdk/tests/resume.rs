//! Many rooms per client under the server's default limits: joining and re-joining them
//! costs a constant number of requests where the server has `room:resume`, and still works
//! room by room where it does not; every room is caught up on every new connection.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use chat_sdk::chat_protocol::{ClientId, RoomId};
use chat_sdk::{ChatEvent, Client, Events};
use chat_testkit::{Relay, TestServer};
use common::transport::CountingTransport;
use common::*;

/// Waits until every room of `rooms` said it is caught up, and every message of `expected`
/// arrived (each exactly once).
async fn wait_caught_up(events: &mut Events, rooms: &[RoomId], expected: &[ClientId]) {
    let mut live: BTreeSet<RoomId> = BTreeSet::new();
    let mut arrived: HashSet<ClientId> = HashSet::new();
    tokio::time::timeout(PATIENCE, async {
        while live.len() < rooms.len() || arrived.len() < expected.len() {
            match events.recv().await.expect("event stream ended") {
                ChatEvent::CaughtUp { room, .. } => {
                    live.insert(room);
                }
                ChatEvent::Message(message) if expected.contains(&message.client_id) => {
                    assert!(
                        arrived.insert(message.client_id),
                        "{} arrived twice",
                        message.client_id
                    );
                }
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{} of {} rooms live, {} of {} messages arrived",
            live.len(),
            rooms.len(),
            arrived.len(),
            expected.len()
        )
    });
}

/// Alice, through a relay that can cut her link, in every room of `rooms`, all caught up.
async fn alice_in(
    server: &TestServer,
    rooms: &[RoomId],
) -> (Relay, Arc<CountingTransport>, Client, Events) {
    let relay = Relay::start(server.addr()).await.expect("relay starts");
    let transport = Arc::new(CountingTransport::default());
    let (alice, mut events) = builder(&relay.url(), server.token("alice"))
        .transport(transport.clone())
        .connect()
        .await
        .expect("alice connects");
    alice.join_all(rooms).await.expect("alice joins every room");
    wait_caught_up(&mut events, rooms, &[]).await;
    (relay, transport, alice, events)
}

/// Cuts alice's link (and keeps it down) while bob posts one message in each of `rooms`;
/// returns bob and his messages, all stored.
async fn bob_posts_while_alice_is_away(
    server: &TestServer,
    relay: &Relay,
    rooms: &[RoomId],
) -> (Client, Vec<ClientId>) {
    let (bob, mut bob_events) = connect(server, &server.url(), "bob").await;
    bob.join_all(rooms).await.expect("bob joins");
    relay.refuse_new(true);
    relay.reset_all();
    let mut ids = Vec::new();
    for room in rooms {
        let sent = bob
            .send(room, format!("while alice was away, in {room}"))
            .await;
        ids.push(sent.expect("queued").client_id());
    }
    wait_all_sent(&mut bob_events, &ids, &mut Vec::new()).await;
    (bob, ids)
}

/// A user in 1,000 rooms, with the server's default limits (50 requests a second, a burst
/// of 100): joining them all, and re-joining and catching up after losing the link, take one
/// `room:resume` each, not a join and a sync per room — which would be refused for
/// `rate_limited` and take 40 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_rooms_are_rejoined_and_caught_up_in_one_request() {
    const ROOMS: usize = 1_000;
    const MISSED_IN: usize = 30;
    let server = TestServer::start().await.expect("server starts");
    let rooms: Vec<RoomId> = (0..ROOMS).map(|i| room(&format!("team-{i}"))).collect();
    let (relay, transport, alice, mut alice_events) = alice_in(&server, &rooms).await;
    let wire = &transport.wire;
    // The first join answer says whether the server has room:resume.
    assert_eq!(wire.requests_of("room:join"), 1);
    assert_eq!(wire.requests_of("room:resume"), 1);
    assert!(rooms.iter().all(|room| alice.is_caught_up(room)));

    // Bob posts into 30 of the rooms while alice's link is down.
    let (bob, ids) = bob_posts_while_alice_is_away(&server, &relay, &rooms[..MISSED_IN]).await;
    let (joins, resumes, syncs) = (
        wire.requests_of("room:join"),
        wire.requests_of("room:resume"),
        wire.requests_of("message:sync"),
    );
    let connections = wire.connections.load(std::sync::atomic::Ordering::SeqCst);
    relay.refuse_new(false);
    wait_caught_up(&mut alice_events, &rooms, &ids).await;
    // Once per reconnection (one, unless a slow machine made the link look dead again).
    let reconnects = wire.connections.load(std::sync::atomic::Ordering::SeqCst) - connections;
    assert!(reconnects >= 1);
    assert_eq!(wire.requests_of("room:join"), joins, "no room:join");
    assert_eq!(
        wire.requests_of("room:resume"),
        resumes + reconnects,
        "one room:resume per reconnect"
    );
    assert_eq!(
        wire.requests_of("message:sync"),
        syncs,
        "the first pages held all that was missed"
    );
    alice.close().await;
    bob.close().await;
}

/// A server without `room:resume` (as the Node.js backends users run): the client learns it
/// from the first join answer and re-joins room by room, catching every room up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_extension_rooms_are_rejoined_one_by_one() {
    const ROOMS: usize = 20;
    let server = TestServer::start_with(|config| config.resume_extension = false)
        .await
        .expect("server starts");
    let rooms: Vec<RoomId> = (0..ROOMS).map(|i| room(&format!("r{i}"))).collect();
    let (relay, transport, alice, mut alice_events) = alice_in(&server, &rooms).await;
    let wire = &transport.wire;
    assert_eq!(wire.requests_of("room:join"), ROOMS);
    assert_eq!(
        wire.requests_of("room:resume"),
        0,
        "never asked of this server"
    );

    let (bob, ids) = bob_posts_while_alice_is_away(&server, &relay, &rooms).await;
    let connections = wire.connections.load(std::sync::atomic::Ordering::SeqCst);
    relay.refuse_new(false);
    wait_caught_up(&mut alice_events, &rooms, &ids).await;
    let reconnects = wire.connections.load(std::sync::atomic::Ordering::SeqCst) - connections;
    assert!(reconnects >= 1);
    assert_eq!(wire.requests_of("room:join"), ROOMS + ROOMS * reconnects);
    assert_eq!(wire.requests_of("room:resume"), 0);
    alice.close().await;
    bob.close().await;
}

/// More missed in a room than a resume's first page: the rest comes with `message:sync`,
/// in order and once each, before the room says it is caught up.
#[tokio::test]
async fn a_room_that_missed_more_than_a_page_is_synced_to_the_end() {
    const MISSED: usize = 620;
    let server = TestServer::start_with(|config| config.rates.send_per_sec = 10_000)
        .await
        .expect("server starts");
    let relay = Relay::start(server.addr()).await.expect("relay starts");
    let busy = room("busy");
    let quiet = room("quiet");
    let both = [busy.clone(), quiet.clone()];
    let (alice, mut alice_events) = builder(&relay.url(), server.token("alice"))
        .connect()
        .await
        .expect("alice connects");
    alice.join_all(&both).await.expect("alice joins");
    wait_caught_up(&mut alice_events, &both, &[]).await;
    let (bob, mut bob_events) = connect(&server, &server.url(), "bob").await;
    bob.join(&busy).await.expect("bob joins");
    relay.refuse_new(true);
    relay.reset_all();
    let bodies: Vec<String> = (0..MISSED).map(|i| format!("m{i}")).collect();
    let ids = send_all(&bob, &busy, &bodies).await;
    wait_all_sent(&mut bob_events, &ids, &mut Vec::new()).await;
    relay.refuse_new(false);
    let mut received = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        loop {
            match alice_events.recv().await.expect("event stream ended") {
                ChatEvent::Message(message) if message.room == busy => received.push(message),
                ChatEvent::CaughtUp { room, last_seq } if room == busy => {
                    assert_eq!(last_seq as usize, MISSED, "caught up only at the end");
                    break;
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the busy room catches up");
    assert_exactly_once_in_order(&received, &bodies, 1);
    alice.close().await;
    bob.close().await;
}

/// The server is replaced, on the same address, by one without `room:resume` (a rollback,
/// or another kind of server): the client's first `room:resume` goes unanswered, it asks a
/// join answer again on the next connection, and goes on room by room — the rooms come
/// back live instead of the client resuming into silence for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_loses_the_extension_is_learnt_again() {
    let mut server = TestServer::start().await.expect("server starts");
    let rooms: Vec<RoomId> = (0..3).map(|i| room(&format!("r{i}"))).collect();
    let transport = Arc::new(CountingTransport::default());
    let (alice, mut alice_events) = builder(&server.url(), server.token("alice"))
        .transport(transport.clone())
        .ack_timeout(std::time::Duration::from_millis(800))
        .connect()
        .await
        .expect("alice connects");
    alice.join_all(&rooms).await.expect("alice joins");
    wait_caught_up(&mut alice_events, &rooms, &[]).await;
    assert_eq!(transport.wire.requests_of("room:resume"), 1);
    server.stop().await.expect("stops");
    server.reconfigure(|config| config.resume_extension = false);
    server
        .resume()
        .await
        .expect("comes back without the extension");
    wait_caught_up(&mut alice_events, &rooms, &[]).await;
    assert!(
        transport.wire.requests_of("room:join") > 1,
        "the rooms were joined one by one"
    );
    alice.close().await;
}
