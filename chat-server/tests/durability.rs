//! What is acked survives a restart: messages, memberships, seqs and watermarks are on disk.

mod support;

use serde_json::json;
use support::{server, RawClient};

#[tokio::test]
async fn messages_and_memberships_survive_a_restart_on_the_same_file() {
    let mut server = server().await;
    {
        let alice = RawClient::as_user(&server, "alice").await;
        let bob = RawClient::as_user(&server, "bob").await;
        alice.join("general").await;
        bob.join("general").await;
        for i in 1..=3 {
            alice.say("general", &format!("before {i}")).await;
        }
        bob.request("receipt:read", json!({ "room": "general", "up_to_seq": 2 }))
            .await;
    }
    server.restart().await.expect("restarts");

    let bob = RawClient::as_user(&server, "bob").await;
    // No re-join: membership is durable.
    let sync = bob
        .request("message:sync", json!({ "room": "general", "after_seq": 0 }))
        .await;
    let bodies: Vec<&str> = sync["messages"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|m| m["body"].as_str())
        .collect();
    assert_eq!(bodies, ["before 1", "before 2", "before 3"]);
    let joined = bob.join("general").await;
    assert_eq!(joined["members"], json!(["alice", "bob"]));
    assert_eq!(
        (joined["delivered_seq"].clone(), joined["read_seq"].clone()),
        (json!(2), json!(2))
    );
    // Seqs continue where they stopped.
    assert_eq!(bob.say("general", "after").await["seq"], 4);
}

/// A full database (capped with `max_db_bytes`, as a full disk) refuses writes with a clear
/// `internal` and stores nothing of what it refused: the room's seqs stay gap-free, and a
/// message refused and sent again later is stored once.
#[tokio::test]
async fn a_full_database_answers_internal_and_stores_nothing_it_refused() {
    let server = support::server_with(|config| {
        config.max_db_bytes = Some(1 << 20);
        config.rates.send_per_sec = 100_000;
    })
    .await;
    let alice = RawClient::as_user(&server, "alice").await;
    alice.join("general").await;
    let body = "x".repeat(3_000);
    let mut stored = 0;
    let refused = loop {
        let args = support::send_args("general", &body);
        let ack = alice.request("message:send", args.clone()).await;
        if ack["ok"] == true {
            stored += 1;
            assert_eq!(ack["seq"], stored, "gap-free while there is room");
            continue;
        }
        assert_eq!(support::error_code(&ack), "internal", "{ack}");
        break args;
    };
    assert!(stored > 10, "{stored} stored before the database was full");
    let sync = alice
        .request(
            "message:sync",
            json!({ "room": "general", "after_seq": 0, "limit": 500 }),
        )
        .await;
    assert_eq!(
        sync["last_seq"], stored,
        "no seq taken by the refused message"
    );
    assert_eq!(
        sync["messages"].as_array().map(Vec::len),
        Some(stored as usize)
    );
    // Reading still works; the refused message, resent, is refused again, not half-stored.
    let again = alice.request("message:send", refused).await;
    assert_eq!(support::error_code(&again), "internal");
}
