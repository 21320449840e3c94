//! Failover between servers sharing one PostgreSQL database: a client given several URLs
//! moves to another server when its own goes away, and resumes with nothing lost, doubled or
//! out of order. Needs PostgreSQL (see `chat_testkit::PostgresDatabase`); the SIGKILL of a
//! node is `chat-bench --nodes 3 --faults node-kill`.

mod common;

use chat_testkit::{PostgresDatabase, TestServer};
use common::*;

async fn node(database: &PostgresDatabase) -> TestServer {
    let url = database.url().to_owned();
    TestServer::start_with(move |config| config.postgres_url = Some(url))
        .await
        .expect("node starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_moves_to_another_node_when_its_node_dies_and_loses_nothing() {
    let Some(database) = PostgresDatabase::create().await else {
        return;
    };
    let mut first = node(&database).await;
    let second = node(&database).await;
    let general = room("general");
    let (bob, mut bob_events) = connect(&second, &second.url(), "bob").await;
    bob.join(&general).await.expect("bob joins");
    let (alice, mut alice_events) = builder(&first.url(), first.token("alice"))
        .fallback_url(second.url())
        .connect()
        .await
        .expect("alice connects to the first node");
    alice.join(&general).await.expect("alice joins");

    let before: Vec<String> = (0..10).map(|i| format!("before {i}")).collect();
    send_all(&alice, &general, &before).await;
    let mut seen = collect_messages(&mut bob_events, &general, before.len()).await;

    first.stop().await.expect("the first node stops");
    // Sent while Alice's node is gone: kept in her outbox, sent on the second node.
    let after: Vec<String> = (0..10).map(|i| format!("after {i}")).collect();
    send_all(&alice, &general, &after).await;
    seen = collect_more(&mut bob_events, &general, before.len() + after.len(), seen).await;
    let all: Vec<String> = before.into_iter().chain(after).collect();
    assert_exactly_once_in_order(&seen, &all, 1);
    // Every message is acked in the end, the later ones by the second node.
    wait_until(&mut alice_events, || all_acked(&alice)).await;
}
