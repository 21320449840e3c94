//! Sequence numbers and order: gap-free under concurrency, and one sender's pipelined
//! messages stored in the order it sent them.

mod support;

use std::collections::BTreeSet;

use serde_json::{json, Value};
use support::{send_args, server, RawClient};

async fn history(client: &RawClient, room: &str) -> Vec<Value> {
    let mut messages = Vec::new();
    let mut after = 0;
    loop {
        let page = client
            .request(
                "message:sync",
                json!({ "room": room, "after_seq": after, "limit": 500 }),
            )
            .await;
        let batch = page["messages"].as_array().cloned().unwrap_or_default();
        after = batch
            .last()
            .map_or(after, |m| m["seq"].as_u64().unwrap_or(after));
        messages.extend(batch);
        if page["has_more"] != true {
            return messages;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seqs_stay_gap_free_and_unique_under_20_concurrent_senders() {
    const SENDERS: usize = 20;
    const EACH: usize = 25;
    let server = server().await;
    let mut tasks = Vec::new();
    for sender in 0..SENDERS {
        let client = RawClient::as_user(&server, &format!("user{sender}")).await;
        client.join("busy").await;
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..EACH {
                let ack = client.say("busy", &format!("{sender}:{i}")).await;
                assert_eq!(ack["ok"], true, "{ack}");
                seqs.push(ack["seq"].as_u64().expect("seq"));
            }
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "one sender's seqs rise"
            );
            seqs
        }));
    }
    let mut all = BTreeSet::new();
    for task in tasks {
        for seq in task.await.expect("sender finished") {
            assert!(all.insert(seq), "seq {seq} given twice");
        }
    }
    let total = (SENDERS * EACH) as u64;
    assert_eq!(all, (1..=total).collect::<BTreeSet<_>>());
}

// A multi-threaded runtime, as in production: there socketioxide's per-event tasks really
// do run out of order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_senders_messages_are_stored_in_its_order() {
    const COUNT: usize = 300;
    let server = server().await;
    let alice = RawClient::as_user(&server, "alice").await;
    alice.join("pipe").await;
    // Every request leaves before any ack is awaited.
    let answers: Vec<_> = (0..COUNT)
        .map(|i| alice.start_request("message:send", send_args("pipe", &format!("#{i}"))))
        .collect();
    for (i, answer) in answers.into_iter().enumerate() {
        let ack = tokio::time::timeout(support::PATIENCE, answer)
            .await
            .expect("ack in time")
            .expect("ack");
        assert_eq!(ack["seq"], i as u64 + 1, "message #{i}");
    }
    let bodies: Vec<String> = history(&alice, "pipe")
        .await
        .iter()
        .map(|m| m["body"].as_str().unwrap_or_default().to_owned())
        .collect();
    let expected: Vec<String> = (0..COUNT).map(|i| format!("#{i}")).collect();
    assert_eq!(bodies, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_join_then_send_succeeds() {
    let server = server().await;
    let alice = RawClient::as_user(&server, "alice").await;
    let join = alice.start_request("room:join", json!({ "room": "fresh" }));
    let send = alice.start_request("message:send", send_args("fresh", "right after join"));
    assert_eq!(join.await.expect("join ack")["ok"], true);
    let ack = send.await.expect("send ack");
    assert_eq!(
        ack["ok"], true,
        "the send was handled after the join: {ack}"
    );
}
