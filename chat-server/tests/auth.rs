//! Authentication on connect: only a valid, unexpired token signed with the server's secret
//! gets a socket, and a user's connections are capped.

mod support;

use std::time::Duration;

use chat_protocol::UserId;
use serde_json::json;
use support::{server, server_with, RawClient};

const SECRET: &str = "auth-test-secret";

#[tokio::test]
async fn a_valid_token_connects_and_can_make_requests() {
    let server = server().await;
    let alice = RawClient::as_user(&server, "alice").await;
    let ack = alice.join("general").await;
    assert_eq!(ack["members"], json!(["alice"]));
}

#[tokio::test]
async fn missing_malformed_expired_and_wrongly_signed_tokens_are_refused() {
    let server = server_with(|c| c.jwt_secret = SECRET.into()).await;
    let alice = UserId::new("alice").expect("valid");
    let wrong_secret =
        chat_server::mint_token("another-secret", &alice, Duration::from_secs(60)).expect("mints");
    // Expired well beyond the 60 s leeway: a negative lifetime is not expressible, so the
    // token is crafted by hand with the right secret and an old `exp`.
    let expired = {
        use jsonwebtoken::{encode, EncodingKey, Header};
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        encode(
            &Header::default(),
            &json!({ "sub": "alice", "exp": now - 3600, "iat": now - 7200 }),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("encodes")
    };
    for auth in [
        json!({}),
        json!({ "token": 42 }),
        json!({ "token": "not-a-jwt" }),
        json!({ "token": expired }),
        json!({ "token": wrong_secret }),
    ] {
        let refused = RawClient::connect(server.addr(), auth.clone())
            .await
            .err()
            .unwrap_or_else(|| panic!("{auth} was accepted"));
        assert_eq!(refused.0, "unauthorized", "for {auth}");
    }
}

#[tokio::test]
async fn a_token_whose_subject_is_not_a_valid_user_id_is_refused() {
    let server = server_with(|c| c.jwt_secret = SECRET.into()).await;
    let token = {
        use jsonwebtoken::{encode, EncodingKey, Header};
        encode(
            &Header::default(),
            &json!({ "sub": "has space", "exp": u32::MAX }),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("encodes")
    };
    let refused = RawClient::connect(server.addr(), json!({ "token": token })).await;
    assert_eq!(refused.err().map(|r| r.0).as_deref(), Some("unauthorized"));
}

#[tokio::test]
async fn connections_over_the_per_user_cap_are_refused_until_one_closes() {
    let server = server_with(|c| c.limits.max_connections_per_user = 2).await;
    let token = json!({ "token": server.token("bob") });
    let mut first = RawClient::connect(server.addr(), token.clone())
        .await
        .expect("first");
    let mut second = RawClient::connect(server.addr(), token.clone())
        .await
        .expect("second");
    let refused = RawClient::connect(server.addr(), token.clone()).await;
    assert_eq!(
        refused.err().map(|r| r.0).as_deref(),
        Some("too_many_connections")
    );
    // Another user is not affected.
    RawClient::as_user(&server, "carol").await;
    server.kick_all();
    first.closed().await;
    second.closed().await;
    // The server counts the closes on its own tasks; retry until it has (each try is a full
    // handshake, bounded by the test's patience).
    let deadline = tokio::time::Instant::now() + support::PATIENCE;
    loop {
        match RawClient::connect(server.addr(), token.clone()).await {
            Ok(_) => break,
            Err(refused) if tokio::time::Instant::now() < deadline => {
                assert_eq!(refused.0, "too_many_connections");
                tokio::task::yield_now().await;
            }
            Err(refused) => panic!("still refused after the sockets closed: {refused:?}"),
        }
    }
}

// socketioxide sends CONNECT before it runs the connect handler; a request emitted the
// moment CONNECT arrives must still find its handler (multi-threaded, as in production).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_sent_the_moment_connect_arrives_is_answered() {
    let server = server().await;
    for attempt in 0..50 {
        let client = RawClient::as_user(&server, &format!("eager{attempt}")).await;
        let ack = client
            .request("room:join", json!({ "room": "first" }))
            .await;
        assert_eq!(ack["ok"], true, "attempt {attempt}: {ack}");
    }
}
