//! Helpers shared by the integration tests: clients against a real in-process server and
//! waiting on events with a generous timeout as the only failure guard.
#![allow(dead_code)]

pub mod transport;

use std::collections::HashMap;
use std::time::Duration;

use chat_sdk::chat_protocol::{ClientId, Message, RoomId, Seq};
use chat_sdk::{
    ChatEvent, Client, ClientBuilder, ConnectionState, Events, MessageState, RetryPolicy,
};
use chat_testkit::TestServer;
use tokio::sync::watch;

/// The failure guard for every wait: long enough never to fire on a healthy run.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn room(name: &str) -> RoomId {
    RoomId::new(name).expect("valid room id")
}

/// A builder with test-friendly timings: fast retries, short ack and health timeouts.
pub fn builder(url: &str, token: String) -> ClientBuilder {
    Client::builder(url, token)
        .in_memory()
        .retry_policy(RetryPolicy {
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(300),
            ..RetryPolicy::default()
        })
        .ack_timeout(Duration::from_millis(2500))
        .connect_timeout(Duration::from_secs(3))
        .health_interval(Duration::from_millis(500))
}

pub async fn connect(server: &TestServer, url: &str, user: &str) -> (Client, Events) {
    builder(url, server.token(user))
        .connect()
        .await
        .expect("client connects")
}

/// Waits for the first event matching `pick`, returning what it extracted.
pub async fn wait_for<T>(events: &mut Events, mut pick: impl FnMut(&ChatEvent) -> Option<T>) -> T {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let event = events.recv().await.expect("event stream ended");
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    })
    .await
    .expect("timed out waiting for an event")
}

/// Sends each body in turn and returns the messages' ids, in order.
pub async fn send_all(client: &Client, room: &RoomId, bodies: &[String]) -> Vec<ClientId> {
    let mut ids = Vec::with_capacity(bodies.len());
    for body in bodies {
        let message = client.send(room, body.clone()).await.expect("queued");
        ids.push(message.client_id());
    }
    ids
}

/// Waits until `client` is connected.
pub async fn wait_connected(client: &Client) {
    assert!(
        client.wait_connected(PATIENCE).await,
        "client did not connect in time"
    );
}

/// Waits, on a watch taken before the fault, until the connection was lost and is back.
/// The state only publishes changes, so any change seen after subscribing while connected
/// means the link went down.
pub async fn wait_reconnected(mut state: watch::Receiver<ConnectionState>) {
    tokio::time::timeout(PATIENCE, async {
        state.changed().await.expect("state channel open");
        state
            .wait_for(|s| *s == ConnectionState::Connected)
            .await
            .expect("state channel open");
    })
    .await
    .expect("the connection did not drop and come back");
}

/// Collects `Message` events until `count` messages of `room` arrived; other events are
/// kept in the returned log too.
pub async fn collect_messages(events: &mut Events, room: &RoomId, count: usize) -> Vec<Message> {
    collect_more(events, room, count, Vec::new()).await
}

/// Like [`collect_messages`], starting from messages already seen.
pub async fn collect_more(
    events: &mut Events,
    room: &RoomId,
    count: usize,
    seen: Vec<Message>,
) -> Vec<Message> {
    let mut got: Vec<Message> = seen.into_iter().filter(|m| &m.room == room).collect();
    tokio::time::timeout(PATIENCE, async {
        while got.len() < count {
            match events.recv().await.expect("event stream ended") {
                ChatEvent::Message(m) if &m.room == room => got.push(m),
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out: {} of {count} messages arrived", got.len()));
    got
}

/// Waits until every id in `ids` reached at least `Sent`, returning each one's seq.
/// Messages seen meanwhile are appended to `seen`.
pub async fn wait_all_sent(
    events: &mut Events,
    ids: &[ClientId],
    seen: &mut Vec<Message>,
) -> HashMap<ClientId, Seq> {
    let mut seqs = HashMap::new();
    tokio::time::timeout(PATIENCE, async {
        while seqs.len() < ids.len() {
            match events.recv().await.expect("event stream ended") {
                ChatEvent::Status {
                    client_id, state, ..
                } => {
                    if let Some(seq) = state.seq() {
                        if ids.contains(&client_id) {
                            seqs.insert(client_id, seq);
                        }
                    }
                }
                ChatEvent::Message(m) => seen.push(m),
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out: {} of {} messages sent", seqs.len(), ids.len()));
    seqs
}

/// Asserts the messages are exactly `bodies`, in order, with seqs 1, 2, 3, … from `first`.
pub fn assert_exactly_once_in_order(messages: &[Message], bodies: &[String], first: Seq) {
    let got: Vec<&str> = messages.iter().map(|m| m.body.as_str()).collect();
    let want: Vec<&str> = bodies.iter().map(String::as_str).collect();
    assert_eq!(got, want, "bodies differ from what was sent");
    for (i, message) in messages.iter().enumerate() {
        assert_eq!(message.seq, first + i as Seq, "seqs are not contiguous");
    }
}

/// Reads the whole room from the server with `history`, to check what was stored (once the
/// client is connected: everything may have arrived before it reconnected from a fault).
pub async fn stored(client: &Client, room: &RoomId) -> Vec<Message> {
    wait_connected(client).await;
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = client.history(room, after, 500).await.expect("history");
        let more = page.has_more;
        if let Some(last) = page.messages.last() {
            after = last.seq;
        }
        all.extend(page.messages);
        if !more {
            return all;
        }
    }
}

pub fn is_final(state: &MessageState) -> bool {
    !state.is_pending()
}

/// Waits until `condition` holds, re-checking it after each event (events are consumed).
pub async fn wait_until(events: &mut Events, mut condition: impl FnMut() -> bool) {
    tokio::time::timeout(PATIENCE, async {
        while !condition() {
            events.recv().await.expect("event stream ended");
        }
    })
    .await
    .expect("timed out waiting for a condition");
}

/// True when every message in the outbox was acknowledged by the server.
pub fn all_acked(client: &Client) -> bool {
    client
        .outbox()
        .list()
        .expect("outbox readable")
        .iter()
        .all(|m| m.state.seq().is_some())
}

/// The ids of every message in `client`'s outbox, in queue order.
pub fn outbox_ids(client: &Client) -> Vec<ClientId> {
    client
        .outbox()
        .list()
        .expect("outbox list")
        .iter()
        .map(|m| m.client_id)
        .collect()
}

/// Waits until each message of `ids` was announced in a state `reached` accepts.
pub async fn wait_states(
    events: &mut Events,
    ids: &[ClientId],
    reached: impl Fn(&MessageState) -> bool,
) {
    let mut seen = std::collections::HashSet::new();
    tokio::time::timeout(PATIENCE, async {
        while seen.len() < ids.len() {
            if let ChatEvent::Status {
                client_id, state, ..
            } = events.recv().await.expect("event stream ended")
            {
                if ids.contains(&client_id) && reached(&state) {
                    seen.insert(client_id);
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} of {} messages reached the state", seen.len(), ids.len()));
}
