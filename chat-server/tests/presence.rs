//! Presence: online while a socket is open, a grace period against flapping on reconnect,
//! `last_seen` when the last socket closed, and `presence:get`.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{server_with, RawClient};

#[tokio::test]
async fn a_reconnect_inside_the_grace_period_does_not_flap() {
    let server = server_with(|c| c.presence_grace = Duration::from_millis(300)).await;
    let mut alice = RawClient::as_user(&server, "alice").await;
    alice.join("general").await;
    let mut bob = RawClient::as_user(&server, "bob").await;
    bob.join("general").await;
    let mut carol = RawClient::as_user(&server, "carol").await;
    carol.join("general").await;

    // bob drops and comes straight back; carol drops after him and stays away.
    server.kick_user("bob");
    bob.closed().await;
    let _bob = RawClient::as_user(&server, "bob").await;
    server.kick_user("carol");
    carol.closed().await;

    // carol's grace period started after bob's, so by the time her offline update arrives
    // bob's timer has fired too: had it flapped, his update would have come first.
    let offline = loop {
        let update = alice.next_event("presence:update").await;
        assert!(
            !(update["user"] == "bob" && update["online"] == false),
            "bob flapped offline: {update}"
        );
        if update["user"] == "carol" && update["online"] == false {
            break update;
        }
    };
    assert!(offline["last_seen"].as_i64().is_some_and(|ts| ts > 0));

    let presence = alice
        .request(
            "presence:get",
            json!({ "users": ["bob", "carol", "nobody"] }),
        )
        .await;
    let list = presence["presence"].as_array().expect("list");
    assert_eq!(list[0]["online"], true);
    assert_eq!(list[1]["online"], false);
    assert_eq!(list[1]["last_seen"], offline["last_seen"]);
    assert_eq!(
        list[2],
        json!({ "user": "nobody", "online": false, "last_seen": null })
    );
}

#[tokio::test]
async fn coming_online_is_announced_to_users_sharing_a_room() {
    let server = server_with(|c| c.presence_grace = Duration::from_millis(100)).await;
    let mut alice = RawClient::as_user(&server, "alice").await;
    alice.join("general").await;
    {
        let dave = RawClient::as_user(&server, "dave").await;
        dave.join("general").await;
    }
    // dave's offline update must come before his next online one.
    loop {
        let update = alice.next_event("presence:update").await;
        if update["user"] == "dave" && update["online"] == false {
            break;
        }
    }
    let _dave = RawClient::as_user(&server, "dave").await;
    let update = alice.next_event("presence:update").await;
    assert_eq!(
        (update["user"].clone(), update["online"].clone()),
        (json!("dave"), json!(true))
    );
    assert!(
        update["last_seen"].as_i64().is_some(),
        "last_seen is kept while online"
    );
}

#[tokio::test]
async fn presence_get_refuses_more_than_100_users() {
    let server = server_with(|_| {}).await;
    let alice = RawClient::as_user(&server, "alice").await;
    let users: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    let ack = alice
        .request("presence:get", json!({ "users": users }))
        .await;
    assert_eq!(support::error_code(&ack), "too_large");
}
