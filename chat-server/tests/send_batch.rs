//! `message:send_batch`: several messages in one request, stored in order, each answered
//! alone, the rate limit cutting a prefix, and the extension off.

mod support;

use serde_json::{json, Value};
use support::{error_code, send_args, server, server_with, RawClient};

fn batch(messages: Vec<Value>) -> Value {
    json!({ "messages": messages })
}

async fn bodies_of(client: &RawClient, room: &str) -> Vec<String> {
    let page = client
        .request(
            "message:sync",
            json!({"room": room, "after_seq": 0, "limit": 500}),
        )
        .await;
    assert_eq!(page["ok"], true, "{page}");
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["body"].as_str().expect("body").to_owned())
        .collect()
}

#[tokio::test]
async fn a_batch_is_stored_in_order_and_each_message_answered_alone() {
    let server = server().await;
    let alice = RawClient::as_user(&server, "alice").await;
    let mut bob = RawClient::as_user(&server, "bob").await;
    let joined = alice.join("general").await;
    assert!(
        joined["extensions"]
            .as_array()
            .is_some_and(|names| names.iter().any(|n| n == "message:send_batch")),
        "{joined}"
    );
    alice.join("random").await;
    bob.join("general").await;

    let first = send_args("general", "one");
    let ack = alice
        .request(
            "message:send_batch",
            batch(vec![
                first.clone(),
                send_args("random", "elsewhere"),
                send_args("general", "   "),
                send_args("secret", "not a member"),
                json!("not an object"),
                send_args("general", "two"),
                first.clone(),
            ]),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let results = ack["results"].as_array().expect("results");
    assert_eq!(results.len(), 7, "{ack}");
    assert_eq!(
        (&results[0]["seq"], &results[0]["duplicate"]),
        (&json!(1), &json!(false))
    );
    assert_eq!(results[1]["id"], "random:1");
    assert_eq!(error_code(&results[2]), "invalid_payload");
    assert_eq!(error_code(&results[3]), "forbidden");
    assert_eq!(error_code(&results[4]), "invalid_payload");
    assert_eq!(results[5]["seq"], 2);
    // The same client id twice in one batch is one message.
    assert_eq!(
        (&results[6]["seq"], &results[6]["duplicate"]),
        (&json!(1), &json!(true))
    );

    assert_eq!(bob.next_event("message:new").await["body"], "one");
    assert_eq!(bob.next_event("message:new").await["body"], "two");
    assert_eq!(bodies_of(&alice, "general").await, ["one", "two"]);
}

#[tokio::test]
async fn the_rate_limit_cuts_a_batch_and_nothing_after_the_cut_is_stored() {
    // A burst of 10 sends.
    let server = server_with(|config| config.rates.send_per_sec = 5).await;
    let alice = RawClient::as_user(&server, "alice").await;
    alice.join("general").await;
    let messages: Vec<Value> = (0..15)
        .map(|i| send_args("general", &format!("m{i}")))
        .collect();
    let ack = alice.request("message:send_batch", batch(messages)).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let results = ack["results"].as_array().expect("results");
    assert_eq!(results.len(), 11, "ten stored, then the refusal: {ack}");
    for (i, result) in results[..10].iter().enumerate() {
        assert_eq!(result["seq"], i + 1, "{ack}");
    }
    assert_eq!(error_code(&results[10]), "rate_limited");
    assert!(results[10]["error"]["retry_after_ms"]
        .as_u64()
        .is_some_and(|ms| ms > 0));
    let stored = bodies_of(&alice, "general").await;
    let expected: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    assert_eq!(stored, expected);
}

#[tokio::test]
async fn a_batch_refused_whole_stores_nothing() {
    let server = server().await;
    let alice = RawClient::as_user(&server, "alice").await;
    alice.join("general").await;
    let too_many: Vec<Value> = (0..101)
        .map(|i| send_args("general", &format!("m{i}")))
        .collect();
    for (args, code) in [
        (batch(Vec::new()), "invalid_payload"),
        (batch(too_many), "too_large"),
        (json!({"messages": "one"}), "invalid_payload"),
        (json!("messages"), "invalid_payload"),
    ] {
        let ack = alice.request("message:send_batch", args).await;
        assert_eq!(error_code(&ack), code, "{ack}");
    }
    assert!(bodies_of(&alice, "general").await.is_empty());
}

#[tokio::test]
async fn a_server_without_the_extension_neither_announces_nor_stores_a_batch() {
    let server = server_with(|config| config.send_batch_extension = false).await;
    let alice = RawClient::as_user(&server, "alice").await;
    let joined = alice.join("a").await;
    let names = joined["extensions"].as_array().cloned().unwrap_or_default();
    assert!(!names.iter().any(|n| n == "message:send_batch"), "{joined}");
    // An unknown event, as to a server that never had it.
    let ack = alice
        .request("message:send_batch", batch(vec![send_args("a", "x")]))
        .await;
    assert_eq!(ack["error"]["code"], "invalid_payload", "{ack}");
    assert!(bodies_of(&alice, "a").await.is_empty());
}
