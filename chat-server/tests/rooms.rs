//! `room:join` and `room:leave`: durable membership and `room:member` announcements.

mod support;

use serde_json::json;
use support::{error_code, server, RawClient};

#[tokio::test]
async fn join_returns_members_watermarks_and_announces_only_new_members() {
    let server = server().await;
    let mut alice = RawClient::as_user(&server, "alice").await;
    let first = alice.join("general").await;
    assert_eq!(first["room"], "general");
    assert_eq!(first["last_seq"], 0);
    assert_eq!(
        (first["delivered_seq"].clone(), first["read_seq"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(
        alice.next_event("room:member").await,
        json!({"room": "general", "user": "alice", "joined": true})
    );

    let bob = RawClient::as_user(&server, "bob").await;
    let joined = bob.join("general").await;
    assert_eq!(joined["members"], json!(["alice", "bob"]));
    assert_eq!(joined["watermarks"].as_array().map(Vec::len), Some(2));
    assert_eq!(alice.next_event("room:member").await["user"], "bob");

    // A re-join (a second socket, or the same one again) announces nothing: the next
    // membership event alice sees is carol's.
    let bob_again = RawClient::as_user(&server, "bob").await;
    bob_again.join("general").await;
    bob.join("general").await;
    RawClient::as_user(&server, "carol")
        .await
        .join("general")
        .await;
    assert_eq!(alice.next_event("room:member").await["user"], "carol");
}

#[tokio::test]
async fn leave_ends_membership_for_every_socket_of_the_user() {
    let server = server().await;
    let mut alice = RawClient::as_user(&server, "alice").await;
    let mut bob_laptop = RawClient::as_user(&server, "bob").await;
    let bob_phone = RawClient::as_user(&server, "bob").await;
    alice.join("general").await;
    bob_laptop.join("general").await;
    bob_phone.join("general").await;

    let left = bob_phone
        .request("room:leave", json!({ "room": "general" }))
        .await;
    assert_eq!(left, json!({ "ok": true }));
    let member = loop {
        let event = alice.next_event("room:member").await;
        if event["joined"] == false {
            break event;
        }
    };
    assert_eq!(member["user"], "bob");
    assert_eq!(
        error_code(&bob_laptop.say("general", "still here?").await),
        "forbidden"
    );

    // bob's laptop no longer receives the room's messages: the next message it sees is
    // from a room it is still in.
    bob_laptop.join("other").await;
    alice.say("general", "bob has gone").await;
    alice.join("other").await;
    alice.say("other", "hello other").await;
    assert_eq!(
        bob_laptop.next_event("message:new").await["body"],
        "hello other"
    );
}

#[tokio::test]
async fn a_member_may_send_and_sync_on_a_new_socket_before_rejoining() {
    let server = server().await;
    let alice = RawClient::as_user(&server, "alice").await;
    alice.join("general").await;
    drop(alice);
    let alice = RawClient::as_user(&server, "alice").await;
    assert_eq!(alice.say("general", "no rejoin needed").await["ok"], true);
    let sync = alice
        .request("message:sync", json!({ "room": "general", "after_seq": 0 }))
        .await;
    assert_eq!(sync["messages"][0]["body"], "no rejoin needed");
}

#[tokio::test]
async fn resume_rejoins_every_room_and_returns_what_was_missed_in_one_request() {
    let server = server().await;
    let alice = RawClient::as_user(&server, "alice").await;
    let joined = alice.join("a").await;
    assert_eq!(
        joined["extensions"],
        json!(["room:resume", "message:send_batch"])
    );
    alice.join("b").await;
    let bob = RawClient::as_user(&server, "bob").await;
    bob.join("a").await;
    bob.join("b").await;
    for body in ["a1", "a2", "a3"] {
        bob.say("a", body).await;
    }
    bob.say("b", "b1").await;
    // Alice took a1 in room a; she has never been in room c.
    let mut alice = RawClient::as_user(&server, "alice").await;
    let resumed = alice
        .request(
            "room:resume",
            json!({"rooms": [
                {"room": "a", "after_seq": 1},
                {"room": "b"},
                {"room": "c", "after_seq": 0}
            ], "limit": 1}),
        )
        .await;
    assert_eq!(resumed["ok"], true, "{resumed}");
    assert_eq!(
        resumed["extensions"],
        json!(["room:resume", "message:send_batch"]),
        "a client that resumes learns the extensions too"
    );
    let rooms = resumed["rooms"].as_array().expect("rooms");
    assert_eq!(rooms.len(), 3);
    assert_eq!(
        (rooms[0]["room"].clone(), rooms[0]["last_seq"].clone()),
        (json!("a"), json!(3))
    );
    assert_eq!(rooms[0]["messages"][0]["body"], "a2");
    assert_eq!(rooms[0]["has_more"], true);
    assert_eq!(rooms[0]["members"], json!(["alice", "bob"]));
    // No position: from her delivered watermark (0).
    assert_eq!(rooms[1]["messages"][0]["body"], "b1");
    assert_eq!(rooms[1]["has_more"], false);
    assert_eq!(rooms[2]["members"], json!(["alice"]));
    // The socket is in every room now: live messages arrive without a room:join.
    bob.say("b", "live").await;
    assert_eq!(alice.next_event("message:new").await["body"], "live");
    // Room c is a durable membership now.
    let sync = alice
        .request("message:sync", json!({ "room": "c", "after_seq": 0 }))
        .await;
    assert_eq!(sync["ok"], true);
}

#[tokio::test]
async fn resume_refuses_bad_room_lists_with_a_code() {
    let server = server().await;
    let alice = RawClient::as_user(&server, "alice").await;
    for (args, code) in [
        (json!({"rooms": []}), "invalid_payload"),
        (
            json!({"rooms": [{"room": "a"}, {"room": "a"}]}),
            "invalid_payload",
        ),
        (json!({"rooms": [{"room": "bad room"}]}), "invalid_payload"),
        (
            json!({"rooms": (0..1001).map(|i| json!({"room": format!("r{i}")})).collect::<Vec<_>>()}),
            "too_large",
        ),
    ] {
        let ack = alice.request("room:resume", args).await;
        assert_eq!(error_code(&ack), code, "{ack}");
    }
}

#[tokio::test]
async fn a_server_without_the_extension_neither_announces_nor_handles_it() {
    let server = support::server_with(|config| config.resume_extension = false).await;
    let alice = RawClient::as_user(&server, "alice").await;
    let joined = alice.join("a").await;
    assert_eq!(joined["extensions"], json!(["message:send_batch"]));
    // An unknown event, as to a server that never had it.
    let ack = alice
        .request("room:resume", json!({"rooms": [{"room": "a"}]}))
        .await;
    assert_eq!(error_code(&ack), "invalid_payload", "{ack}");
}
