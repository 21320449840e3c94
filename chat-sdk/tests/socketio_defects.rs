//! One test per measured defect of rust_socketio 0.6 (each named above its test), each
//! showing that the SDK survives it against the real server. Every case runs on the
//! rust_socketio transport (`SocketIoTransport`), where the defect lives, and on the default
//! WebSocket transport, which must not have it either: see the `on_socketio` and
//! `on_websocket` modules at the end.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chat_sdk::chat_protocol::UserId;
use chat_sdk::transport::{SocketIoTransport, Transport, WebSocketTransport};
use chat_sdk::{ClientBuilder, ConnectError, ConnectionState, Events, MessageState};
use chat_testkit::{Relay, TestServer};
use common::*;

/// The test-friendly builder of `common`, on `transport`.
fn builder_on(transport: &Arc<dyn Transport>, url: &str, token: String) -> ClientBuilder {
    builder(url, token).transport(transport.clone())
}

async fn connect_on(
    transport: &Arc<dyn Transport>,
    server: &TestServer,
    url: &str,
    user: &str,
) -> (chat_sdk::Client, Events) {
    builder_on(transport, url, server.token(user))
        .connect()
        .await
        .expect("client connects")
}

/// Defect: a refused handshake makes `connect()` return `Ok`; only an error event follows.
async fn a_refused_token_is_a_typed_connect_error(transport: Arc<dyn Transport>) {
    let server = TestServer::start().await.expect("server starts");
    for token in [
        "not-a-jwt".to_owned(),
        server.token("alice") + "x",
        // A forged token (long expired, signed with nothing the server knows).
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MX0.c2lnbmF0dXJl".to_owned(),
    ] {
        match builder_on(&transport, &server.url(), token).connect().await {
            Err(ConnectError::Unauthorized(_)) => {}
            Err(other) => panic!("expected Unauthorized, got {other}"),
            Ok(_) => panic!("a bad token was accepted"),
        }
    }
    // With a refresh hook, the refused token is replaced and the connect succeeds.
    let good = server.token("alice");
    let (client, _events) = builder_on(&transport, &server.url(), "stale".to_owned())
        .token_refresh(move || {
            let good = good.clone();
            async move { Ok(good) }
        })
        .connect()
        .await
        .expect("the refreshed token is accepted");
    assert_eq!(
        *client.connection_state().borrow(),
        ConnectionState::Connected
    );
    client.close().await;
}

/// Defect: after a server-side `disconnect()` rust_socketio never reconnects.
async fn a_server_side_kick_is_followed_by_a_reconnect(transport: Arc<dyn Transport>) {
    let server = TestServer::start().await.expect("server starts");
    let (alice, mut events) = connect_on(&transport, &server, &server.url(), "alice").await;
    let general = room("general");
    alice.join(&general).await.expect("join");
    let state = alice.connection_state();
    server.kick_user("alice");
    wait_reconnected(state).await;
    alice
        .send(&general, "after the kick")
        .await
        .expect("queued")
        .client_id();
    let got = collect_messages(&mut events, &general, 1).await;
    assert_eq!(got[0].body.as_str(), "after the kick");
}

/// Defect: transport loss raises no `Close` event, only an error.
async fn transport_loss_without_a_close_event_is_noticed(transport: Arc<dyn Transport>) {
    let server = TestServer::start().await.expect("server starts");
    let relay = Relay::start(server.addr()).await.expect("relay");
    let (alice, _events) = connect_on(&transport, &server, &relay.url(), "alice").await;
    let state = alice.connection_state();
    assert_eq!(relay.reset_all(), 1);
    wait_reconnected(state).await;
    assert_eq!(relay.accepted(), 2);
}

/// Defect: `max_reconnect_attempts` is ignored and its loop restarts; here one supervisor
/// owns reconnection, one TCP connection per attempt, attempts counted up.
async fn reconnection_is_one_loop_with_counted_attempts(transport: Arc<dyn Transport>) {
    let server = TestServer::start().await.expect("server starts");
    let relay = Relay::start(server.addr()).await.expect("relay");
    let (alice, _events) = connect_on(&transport, &server, &relay.url(), "alice").await;
    relay.refuse_new(true);
    let before = relay.attempts();
    relay.reset_all();
    // While the state says attempt k, attempt k's TCP connection is about to be made or
    // was just made: k - 1 or k connections. Read the count between two equal readings of
    // the state so the two are consistent.
    let attempt_of = |s: &ConnectionState| match s {
        ConnectionState::Reconnecting { attempt } => *attempt as usize,
        _ => 0,
    };
    let mut state = alice.connection_state();
    tokio::time::timeout(PATIENCE, async {
        loop {
            let k = attempt_of(&state.borrow_and_update());
            let made = relay.attempts() - before;
            if k >= 5 && attempt_of(&state.borrow()) == k {
                assert!(
                    (k - 1..=k).contains(&made),
                    "{made} TCP connections while on attempt {k}: more than one loop"
                );
                return;
            }
            state.changed().await.expect("state");
        }
    })
    .await
    .expect("attempts count up");
    relay.refuse_new(false);
    wait_connected(&alice).await;
}

/// Defect: an emit while disconnected is lost (the first returns `Ok`), nothing buffered.
async fn sends_while_disconnected_are_kept_and_delivered_later(transport: Arc<dyn Transport>) {
    let server = TestServer::start().await.expect("server starts");
    let relay = Relay::start(server.addr()).await.expect("relay");
    let (alice, mut events) = connect_on(&transport, &server, &relay.url(), "alice").await;
    let general = room("general");
    alice.join(&general).await.expect("join");
    relay.refuse_new(true);
    relay.reset_all();
    // Sent straight into the cut, before and after the client notices it.
    let bodies: Vec<String> = (0..10).map(|i| format!("into the cut {i}")).collect();
    for body in &bodies {
        alice
            .send(&general, body.clone())
            .await
            .expect("queued")
            .client_id();
    }
    relay.refuse_new(false);
    let got = collect_messages(&mut events, &general, bodies.len()).await;
    assert_exactly_once_in_order(&got, &bodies, 1);
}

/// Defect: an ack that never comes fires no callback and no timeout.
async fn an_ack_that_never_comes_times_out_and_the_message_is_resent(
    transport: Arc<dyn Transport>,
) {
    let server = TestServer::start().await.expect("server starts");
    let relay = Relay::start(server.addr()).await.expect("relay");
    let (alice, mut events) = connect_on(&transport, &server, &relay.url(), "alice").await;
    let general = room("general");
    alice.join(&general).await.expect("join");
    relay.blackhole_all();
    let id = alice
        .send(&general, "into the void")
        .await
        .expect("queued")
        .client_id();
    let got = collect_messages(&mut events, &general, 1).await;
    assert_eq!(got[0].client_id, id);
    wait_until(&mut events, || all_acked(&alice)).await;
    let message = alice.outbox().get(id).expect("store").expect("listed");
    assert!(
        message.attempts >= 2,
        "sent only {} times",
        message.attempts
    );
    assert_eq!(stored(&alice, &general).await.len(), 1);
}

/// Defect: the connect handshake can hang (TCP accepted, nothing said); the JavaScript
/// client waits 20 s there. The connect timeout bounds it.
async fn a_silent_handshake_hits_the_connect_timeout(transport: Arc<dyn Transport>) {
    let server = TestServer::start().await.expect("server starts");
    let relay = Relay::start(server.addr()).await.expect("relay");
    relay.blackhole_new(true);
    let started = tokio::time::Instant::now();
    let result = builder_on(&transport, &relay.url(), server.token("alice"))
        .connect_timeout(Duration::from_millis(300))
        .connect()
        .await;
    assert!(
        matches!(result, Err(ConnectError::Unreachable(_))),
        "got {:?}",
        result.err()
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    let (alice, _events) = builder_on(&transport, &relay.url(), server.token("alice"))
        .connect_timeout(Duration::from_millis(300))
        .start()
        .expect("starts");
    let mut state = alice.connection_state();
    tokio::time::timeout(
        PATIENCE,
        state.wait_for(|s| matches!(s, ConnectionState::Reconnecting { attempt } if *attempt >= 2)),
    )
    .await
    .expect("the hung attempt was abandoned")
    .expect("state");
    relay.blackhole_new(false);
    wait_connected(&alice).await;
}

/// Defect: 300 concurrent `emit_with_ack` corrupt rust_socketio's ack list (wrong payloads,
/// double calls, lost acks, a panicking receive task).
async fn three_hundred_concurrent_sends_and_requests_all_succeed_once(
    transport: Arc<dyn Transport>,
) {
    let server = TestServer::start().await.expect("server starts");
    let (alice, mut events) = connect_on(&transport, &server, &server.url(), "alice").await;
    let general = room("general");
    alice.join(&general).await.expect("join");
    let mut tasks = Vec::new();
    for i in 0..300 {
        let alice = alice.clone();
        let general = general.clone();
        tasks.push(tokio::spawn(async move {
            let id = alice
                .send(&general, format!("c{i}"))
                .await
                .expect("queued")
                .client_id();
            let presence = alice
                .presence(&[UserId::new("alice").expect("id")])
                .await
                .expect("presence answered");
            assert_eq!(presence.len(), 1, "a wrong payload reached a request");
            id
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.expect("task"));
    }
    let got = collect_messages(&mut events, &general, 300).await;
    // Stored in the order they were queued, each once.
    let queue_order: Vec<_> = alice
        .outbox()
        .list()
        .expect("outbox")
        .iter()
        .map(|m| m.client_id)
        .collect();
    assert_eq!(
        got.iter().map(|m| m.client_id).collect::<Vec<_>>(),
        queue_order
    );
    let mut sorted = ids.clone();
    sorted.sort();
    let mut queued_sorted = queue_order.clone();
    queued_sorted.sort();
    assert_eq!(sorted, queued_sorted);
    assert_eq!(stored(&alice, &general).await.len(), 300);
}

/// Defect: after unanswered acks, sequential acks later fail (usually with a panic in the
/// receive task). Each timeout here retires its client; later requests run on fresh ones.
async fn after_unanswered_acks_sequential_requests_keep_working(transport: Arc<dyn Transport>) {
    let server = TestServer::start().await.expect("server starts");
    let relay = Relay::start(server.addr()).await.expect("relay");
    let (alice, mut events) = connect_on(&transport, &server, &relay.url(), "alice").await;
    let general = room("general");
    alice.join(&general).await.expect("join");
    for round in 0..3 {
        relay.blackhole_all();
        alice
            .send(&general, format!("stale {round}"))
            .await
            .expect("queued")
            .client_id();
        wait_until(&mut events, || all_acked(&alice)).await;
    }
    for i in 0..500 {
        let page = alice
            .history(&general, 0, 10)
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(page.messages.len(), 3);
    }
}

/// Defect: one slow callback blocks every other event and ack. The SDK's callbacks only
/// forward into channels, so an application that does not read its events for a while
/// does not hold up the acks of its own sends.
async fn an_application_not_reading_events_does_not_hold_up_acks(transport: Arc<dyn Transport>) {
    let server = TestServer::start().await.expect("server starts");
    let (alice, alice_events) = connect_on(&transport, &server, &server.url(), "alice").await;
    let (bob, mut bob_events) = connect_on(&transport, &server, &server.url(), "bob").await;
    let general = room("general");
    alice.join(&general).await.expect("alice joins");
    bob.join(&general).await.expect("bob joins");
    let mut ids = Vec::new();
    for i in 0..100 {
        let sent = alice.send(&general, format!("unread {i}")).await;
        ids.push(sent.expect("queued").client_id());
    }
    let got = collect_messages(&mut bob_events, &general, 100).await;
    assert_eq!(got.len(), 100);
    // Alice's events sit unread, yet her messages were all acknowledged.
    wait_until(&mut bob_events, || all_acked(&alice)).await;
    assert!(ids.iter().all(|id| {
        alice.outbox().get(*id).expect("store").is_some_and(|m| {
            !matches!(m.state, MessageState::Queued | MessageState::Sending { .. })
        })
    }));
    drop(alice_events);
}

/// Defect: a receive task that stops (rust_socketio's panics) or a half-open link is silent:
/// no error, no close, emits still "succeed". On an idle link, only the health check's
/// probe can notice; it does, and the client reconnects.
async fn an_idle_silent_link_is_noticed_by_the_health_check(transport: Arc<dyn Transport>) {
    let server = TestServer::start().await.expect("server starts");
    let relay = Relay::start(server.addr()).await.expect("relay");
    let (alice, _events) = connect_on(&transport, &server, &relay.url(), "alice").await;
    let state = alice.connection_state();
    assert_eq!(relay.blackhole_all(), 1);
    wait_reconnected(state).await;
    assert_eq!(relay.accepted(), 2);
}

/// Defect: an ack pending when the link drops is never answered and never removed. Here a
/// request in flight on a link that then resets fails at once with a transport error,
/// long before its ack timeout.
async fn a_request_in_flight_when_the_link_drops_fails_fast(transport: Arc<dyn Transport>) {
    let server = TestServer::start().await.expect("server starts");
    let relay = Relay::start(server.addr()).await.expect("relay");
    let (alice, _events) = builder_on(&transport, &relay.url(), server.token("alice"))
        .ack_timeout(Duration::from_secs(60))
        .health_interval(Duration::from_secs(60))
        .connect()
        .await
        .expect("connects");
    let general = room("general");
    alice.join(&general).await.expect("join");
    relay.blackhole_all();
    let pending = tokio::spawn({
        let alice = alice.clone();
        let general = general.clone();
        async move { alice.history(&general, 0, 10).await }
    });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    relay.reset_all();
    let result = tokio::time::timeout(PATIENCE, pending)
        .await
        .expect("the request was left hanging until its ack timeout")
        .expect("task");
    assert!(
        matches!(
            result,
            Err(chat_sdk::RequestError::Transport(_) | chat_sdk::RequestError::NotConnected)
        ),
        "got {result:?}"
    );
}

/// A token refused on reconnect (here: the server rotated its key while the client was
/// away) calls the refresh hook; the queued message goes out with the new token. Without a
/// hook the client stops in `Disconnected { Unauthorized }` and keeps the message queued.
async fn a_token_refused_on_reconnect_is_refreshed_or_reported(transport: Arc<dyn Transport>) {
    let mut server = TestServer::start().await.expect("server starts");
    let general = room("general");
    let (with_hook, mut events) = builder_on(&transport, &server.url(), server.token("alice"))
        .token_refresh(|| async {
            let user = UserId::new("alice").map_err(|e| e.to_string())?;
            chat_server::mint_token("rotated", &user, Duration::from_secs(3600))
                .map_err(|e| e.to_string())
        })
        .connect()
        .await
        .expect("alice connects");
    with_hook.join(&general).await.expect("join");
    let (without_hook, _) = connect_on(&transport, &server, &server.url(), "bob").await;
    without_hook.join(&general).await.expect("join");

    server.stop().await.expect("stops");
    server.rotate_secret("rotated");
    let id = with_hook
        .send(&general, "after the rotation")
        .await
        .expect("queued")
        .client_id();
    let stuck = without_hook
        .send(&general, "never sent")
        .await
        .expect("queued")
        .client_id();
    server.resume().await.expect("resumes");

    let got = collect_messages(&mut events, &general, 1).await;
    assert_eq!(got[0].client_id, id);
    let mut state = without_hook.connection_state();
    tokio::time::timeout(
        PATIENCE,
        state.wait_for(|s| {
            matches!(
                s,
                ConnectionState::Disconnected {
                    reason: chat_sdk::DisconnectReason::Unauthorized { .. }
                }
            )
        }),
    )
    .await
    .expect("bob's client gave up with Unauthorized")
    .expect("state");
    let bob_message = without_hook
        .outbox()
        .get(stuck)
        .expect("store")
        .expect("kept");
    assert!(bob_message.state.is_pending());
}

/// A connection refused for another reason than the token is a typed error too.
async fn a_user_over_its_connection_cap_gets_a_typed_refusal(transport: Arc<dyn Transport>) {
    let server = TestServer::start_with(|config| config.limits.max_connections_per_user = 1)
        .await
        .expect("server starts");
    let (first, _events) = connect_on(&transport, &server, &server.url(), "alice").await;
    match builder_on(&transport, &server.url(), server.token("alice"))
        .connect()
        .await
    {
        Err(ConnectError::Refused { code, .. }) => {
            assert_eq!(code, chat_sdk::chat_protocol::ErrorCode::TooManyConnections)
        }
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("a second connection was accepted over the cap"),
    }
    first.close().await;
}

/// Runs each case on each transport, in a module per transport.
/// A raw connection of `user` on `transport`.
async fn raw_connection(
    transport: &Arc<dyn Transport>,
    server: &TestServer,
    user: &str,
) -> Arc<dyn chat_sdk::transport::Connection> {
    let request = chat_sdk::transport::ConnectRequest {
        url: server.url(),
        tls: chat_sdk::transport::TlsConfig::default(),
        auth: serde_json::json!({ "token": server.token(user) }),
        connect_timeout: Duration::from_secs(3),
        ack_timeout: Duration::from_secs(3),
        inbound_capacity: 1024,
    };
    let (conn, _inbound) = transport.connect(request).await.expect("connects");
    conn
}

/// Defect: closing a rust_socketio connection from a thread outside the runtime did not
/// disconnect it (the disconnect needs a runtime): the server kept the socket. Closing now
/// disconnects on the connection's own runtime, and the server sees the user go.
async fn a_connection_closed_from_a_plain_thread_is_disconnected(transport: Arc<dyn Transport>) {
    let server = TestServer::start().await.expect("server starts");
    let general = room("general");
    let (bob, mut bob_events) = connect(&server, &server.url(), "bob").await;
    bob.join(&general).await.expect("bob joins");
    let alice = raw_connection(&transport, &server, "alice").await;
    alice
        .request("room:join", serde_json::json!({ "room": "general" }))
        .await
        .expect("alice joins");
    let closing = alice.clone();
    std::thread::spawn(move || closing.close("closed from a plain thread"))
        .join()
        .expect("thread");
    wait_for(&mut bob_events, |event| match event {
        chat_sdk::ChatEvent::Presence(p) if p.user.as_str() == "alice" && !p.online => Some(()),
        _ => None,
    })
    .await;
    bob.close().await;
}

macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        cases!(@on on_socketio, SocketIoTransport, $($case),*);
        cases!(@on on_websocket, WebSocketTransport, $($case),*);
    };
    (@on $module:ident, $transport:expr, $($case:ident),*) => {
        mod $module {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(Arc::new($transport)).await;
                }
            )*
        }
    };
}

cases!(
    a_refused_token_is_a_typed_connect_error,
    a_server_side_kick_is_followed_by_a_reconnect,
    transport_loss_without_a_close_event_is_noticed,
    reconnection_is_one_loop_with_counted_attempts,
    sends_while_disconnected_are_kept_and_delivered_later,
    an_ack_that_never_comes_times_out_and_the_message_is_resent,
    a_silent_handshake_hits_the_connect_timeout,
    three_hundred_concurrent_sends_and_requests_all_succeed_once,
    after_unanswered_acks_sequential_requests_keep_working,
    an_application_not_reading_events_does_not_hold_up_acks,
    an_idle_silent_link_is_noticed_by_the_health_check,
    a_request_in_flight_when_the_link_drops_fails_fast,
    a_token_refused_on_reconnect_is_refreshed_or_reported,
    a_user_over_its_connection_cap_gets_a_typed_refusal,
    a_connection_closed_from_a_plain_thread_is_disconnected,
);
