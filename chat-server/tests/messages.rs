//! `message:send` and `message:sync`: validation, storage, broadcast, idempotency, paging.

mod support;

use serde_json::json;
use support::{error_code, send_args, server, RawClient};

#[tokio::test]
async fn a_sent_message_is_acked_and_broadcast_to_every_socket_in_the_room() {
    let server = server().await;
    let mut alice = RawClient::as_user(&server, "alice").await;
    let mut alice_phone = RawClient::as_user(&server, "alice").await;
    let mut bob = RawClient::as_user(&server, "bob").await;
    alice.join("general").await;
    alice_phone.join("general").await;
    bob.join("general").await;

    let args = json!({
        "room": "general",
        "client_id": "0e0b7b5a-63ad-4c36-9b2c-6a7a4b6d3e11",
        "body": "hello\n\tworld",
        "reply_to": 0
    });
    let ack = alice.request("message:send", args).await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["seq"], 1);
    assert_eq!(ack["duplicate"], false);
    assert_eq!(ack["id"], "general:1");
    assert!(ack["ts"].as_i64().is_some_and(|ts| ts > 1_600_000_000_000));

    for socket in [&mut alice, &mut alice_phone, &mut bob] {
        let message = socket.next_event("message:new").await;
        assert_eq!(message["seq"], 1);
        assert_eq!(message["sender"], "alice");
        assert_eq!(message["body"], "hello\n\tworld");
        assert_eq!(message["client_id"], "0e0b7b5a-63ad-4c36-9b2c-6a7a4b6d3e11");
        assert_eq!(message["reply_to"], 0);
        assert_eq!(message["ts"], ack["ts"]);
    }
}

#[tokio::test]
async fn a_resend_returns_the_original_and_broadcasts_nothing() {
    let server = server().await;
    let alice = RawClient::as_user(&server, "alice").await;
    let mut bob = RawClient::as_user(&server, "bob").await;
    alice.join("general").await;
    alice.join("random").await;
    bob.join("general").await;

    let args = send_args("general", "once");
    let first = alice.request("message:send", args.clone()).await;
    let again = alice.request("message:send", args.clone()).await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(
        (&again["id"], &again["seq"], &again["ts"]),
        (&first["id"], &first["seq"], &first["ts"])
    );
    // The same client_id to another room is the same message too.
    let mut elsewhere = args.clone();
    elsewhere["room"] = json!("random");
    let moved = alice.request("message:send", elsewhere).await;
    assert_eq!(
        (moved["duplicate"].clone(), moved["id"].clone()),
        (json!(true), first["id"].clone())
    );

    alice.say("general", "second").await;
    assert_eq!(bob.next_event("message:new").await["body"], "once");
    let next = bob.next_event("message:new").await;
    assert_eq!(
        (next["body"].clone(), next["seq"].clone()),
        (json!("second"), json!(2))
    );
}

#[tokio::test]
async fn bad_payloads_get_invalid_payload_and_store_nothing() {
    let server = server().await;
    let alice = RawClient::as_user(&server, "alice").await;
    alice.join("general").await;
    let cases = [
        json!("not an object"),
        json!({ "room": "general" }),
        json!({ "room": "general", "client_id": "not-a-uuid", "body": "x" }),
        json!({ "room": "gen eral", "client_id": uuid::Uuid::new_v4().to_string(), "body": "x" }),
        json!({ "room": "general", "client_id": uuid::Uuid::new_v4().to_string(), "body": "  \n " }),
        json!({ "room": "general", "client_id": uuid::Uuid::new_v4().to_string(), "body": "bell\u{7}" }),
        json!({ "room": "general", "client_id": uuid::Uuid::new_v4().to_string(), "body": "x", "reply_to": -1 }),
    ];
    for case in cases {
        let ack = alice.request("message:send", case.clone()).await;
        assert_eq!(error_code(&ack), "invalid_payload", "for {case}: {ack}");
        assert!(ack["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // An event with no argument, or two, still gets an answer.
    for args in [
        json!(["message:send"]),
        json!(["message:send", {}, {}]),
        json!(["message:send", null]),
    ] {
        let ack = alice.request_verbatim(args.clone()).await;
        assert_eq!(error_code(&ack), "invalid_payload", "for {args}: {ack}");
    }
    let sync = alice
        .request("message:sync", json!({ "room": "general", "after_seq": 0 }))
        .await;
    assert_eq!(sync["messages"], json!([]), "nothing was stored");
    assert_eq!(sync["last_seq"], 0);
}

#[tokio::test]
async fn a_body_over_the_limit_is_too_large() {
    let server = server().await;
    let alice = RawClient::as_user(&server, "alice").await;
    alice.join("general").await;
    let ack = alice.say("general", &"é".repeat(4_001)).await;
    assert_eq!(error_code(&ack), "too_large");
    let ack = alice.say("general", &"é".repeat(4_000)).await;
    assert_eq!(ack["ok"], true, "exactly at the limit is fine");
}

#[tokio::test]
async fn non_members_are_forbidden_to_send_sync_and_mark() {
    let server = server().await;
    let alice = RawClient::as_user(&server, "alice").await;
    let mallory = RawClient::as_user(&server, "mallory").await;
    alice.join("general").await;
    alice.say("general", "private").await;
    let send = mallory.say("general", "let me in").await;
    assert_eq!(error_code(&send), "forbidden");
    let sync = mallory
        .request("message:sync", json!({ "room": "general", "after_seq": 0 }))
        .await;
    assert_eq!(error_code(&sync), "forbidden");
    for event in ["receipt:delivered", "receipt:read"] {
        let ack = mallory
            .request(event, json!({ "room": "general", "up_to_seq": 1 }))
            .await;
        assert_eq!(error_code(&ack), "forbidden", "{event}");
    }
}

#[tokio::test]
async fn sync_pages_through_history_in_seq_order() {
    let server = server().await;
    let alice = RawClient::as_user(&server, "alice").await;
    alice.join("general").await;
    for i in 1..=7 {
        alice.say("general", &format!("m{i}")).await;
    }
    let page = alice
        .request(
            "message:sync",
            json!({ "room": "general", "after_seq": 2, "limit": 3 }),
        )
        .await;
    let seqs: Vec<u64> = page["messages"]
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, [3, 4, 5]);
    assert_eq!(page["has_more"], true);
    assert_eq!(page["last_seq"], 7);
    let rest = alice
        .request("message:sync", json!({ "room": "general", "after_seq": 5 }))
        .await;
    assert_eq!(rest["messages"].as_array().map(Vec::len), Some(2));
    assert_eq!(rest["has_more"], false);
    let bad = alice
        .request(
            "message:sync",
            json!({ "room": "general", "after_seq": 0, "limit": 501 }),
        )
        .await;
    assert_eq!(error_code(&bad), "invalid_payload");
}
