//! Delivered and read watermarks: per member, capped, never moving back, announced to the
//! room, and independent of whether the member is online.

mod support;

use serde_json::json;
use support::{server, RawClient};

#[tokio::test]
async fn watermarks_of_an_offline_member_move_when_it_comes_back_and_marks() {
    let server = server().await;
    let mut alice = RawClient::as_user(&server, "alice").await;
    alice.join("general").await;
    {
        let bob = RawClient::as_user(&server, "bob").await;
        bob.join("general").await;
    } // bob goes offline; he stays a member.
    for i in 1..=3 {
        alice.say("general", &format!("m{i}")).await;
    }
    let bob = RawClient::as_user(&server, "bob").await;
    let joined = bob.join("general").await;
    assert_eq!(
        (joined["last_seq"].clone(), joined["delivered_seq"].clone()),
        (json!(3), json!(0))
    );

    let delivered = bob
        .request(
            "receipt:delivered",
            json!({ "room": "general", "up_to_seq": 2 }),
        )
        .await;
    assert_eq!(delivered, json!({ "ok": true, "delivered_seq": 2 }));
    assert_eq!(
        alice.next_event("receipt:update").await,
        json!({ "room": "general", "user": "bob", "delivered_seq": 2, "read_seq": 0 })
    );

    // Reading moves delivered too, in one step however many messages it covers; a watermark
    // beyond the room's newest seq is capped at it.
    let read = bob
        .request(
            "receipt:read",
            json!({ "room": "general", "up_to_seq": 99 }),
        )
        .await;
    assert_eq!(read, json!({ "ok": true, "read_seq": 3, "updated": 3 }));
    assert_eq!(
        alice.next_event("receipt:update").await,
        json!({ "room": "general", "user": "bob", "delivered_seq": 3, "read_seq": 3 })
    );

    // Never back.
    let back = bob
        .request(
            "receipt:delivered",
            json!({ "room": "general", "up_to_seq": 1 }),
        )
        .await;
    assert_eq!(back["delivered_seq"], 3);
    let again = bob
        .request("receipt:read", json!({ "room": "general", "up_to_seq": 2 }))
        .await;
    assert_eq!(
        (again["read_seq"].clone(), again["updated"].clone()),
        (json!(3), json!(0))
    );

    // Every member's watermarks come with a join.
    let alice_view = alice.join("general").await;
    let bob_marks = alice_view["watermarks"]
        .as_array()
        .and_then(|all| all.iter().find(|w| w["user"] == "bob").cloned());
    assert_eq!(
        bob_marks,
        Some(json!({ "user": "bob", "delivered_seq": 3, "read_seq": 3 }))
    );
}
