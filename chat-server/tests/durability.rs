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
