//! Typing indicators: shown to the room but the typer, stopped explicitly or expired.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{server_with, RawClient};

#[tokio::test]
async fn typing_is_shown_to_others_and_expires_without_a_refresh() {
    let server = server_with(|c| c.typing_expiry = Duration::from_millis(200)).await;
    let mut alice = RawClient::as_user(&server, "alice").await;
    let mut bob = RawClient::as_user(&server, "bob").await;
    alice.join("general").await;
    bob.join("general").await;

    alice.emit("typing:start", json!({ "room": "general" }));
    assert_eq!(
        bob.next_event("typing:update").await,
        json!({ "room": "general", "user": "alice", "typing": true })
    );
    // Expired by the server.
    assert_eq!(bob.next_event("typing:update").await["typing"], false);

    alice.emit("typing:start", json!({ "room": "general" }));
    assert_eq!(bob.next_event("typing:update").await["typing"], true);
    alice.emit("typing:stop", json!({ "room": "general" }));
    assert_eq!(bob.next_event("typing:update").await["typing"], false);

    // The typer's own socket is never told; the first typing event alice sees is bob's.
    bob.emit("typing:start", json!({ "room": "general" }));
    assert_eq!(alice.next_event("typing:update").await["user"], "bob");
}

#[tokio::test]
async fn typing_in_a_room_one_is_not_in_is_refused_and_not_shown() {
    let server = server_with(|_| {}).await;
    let mut alice = RawClient::as_user(&server, "alice").await;
    let mallory = RawClient::as_user(&server, "mallory").await;
    let bob = RawClient::as_user(&server, "bob").await;
    alice.join("general").await;
    bob.join("general").await;
    let refused = mallory
        .request("typing:start", json!({ "room": "general" }))
        .await;
    assert_eq!(support::error_code(&refused), "forbidden");
    bob.emit("typing:start", json!({ "room": "general" }));
    assert_eq!(alice.next_event("typing:update").await["user"], "bob");
}
