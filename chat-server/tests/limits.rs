//! Abuse: one user's flood is rate-limited without slowing anybody else, and an oversized
//! packet is refused without harming other sockets.

mod support;

use serde_json::json;
use support::{error_code, send_args, server_with, RawClient};

#[tokio::test]
async fn a_flood_is_rate_limited_while_another_user_still_sends() {
    let server = server_with(|c| {
        c.rates.send_per_sec = 5;
        c.rates.other_per_sec = 50;
    })
    .await;
    let flooder = RawClient::as_user(&server, "flooder").await;
    let calm = RawClient::as_user(&server, "calm").await;
    flooder.join("general").await;
    calm.join("general").await;

    let answers: Vec<_> = (0..30)
        .map(|i| flooder.start_request("message:send", send_args("general", &format!("spam {i}"))))
        .collect();
    let mut accepted = 0;
    let mut limited = Vec::new();
    for answer in answers {
        let ack = answer.await.expect("ack");
        if ack["ok"] == true {
            accepted += 1;
        } else {
            assert_eq!(error_code(&ack), "rate_limited");
            limited.push(
                ack["error"]["retry_after_ms"]
                    .as_u64()
                    .expect("retry_after_ms"),
            );
        }
    }
    assert!(
        (10..=12).contains(&accepted),
        "burst of twice the rate, got {accepted}"
    );
    assert!(
        limited.iter().all(|ms| (1..=1_000).contains(ms)),
        "{limited:?}"
    );
    assert_eq!(calm.say("general", "I am not limited").await["ok"], true);
}

#[tokio::test]
async fn a_one_megabyte_packet_is_refused_without_harming_other_sockets() {
    let server = server_with(|_| {}).await;
    let mut attacker = RawClient::as_user(&server, "attacker").await;
    let bystander = RawClient::as_user(&server, "bystander").await;
    attacker.join("general").await;
    bystander.join("general").await;

    let huge = "x".repeat(1024 * 1024);
    attacker.emit(
        "message:send",
        json!({ "room": "general", "client_id": uuid::Uuid::new_v4().to_string(), "body": huge }),
    );
    attacker.closed().await;

    assert_eq!(
        bystander.say("general", "still fine").await["seq"],
        1,
        "nothing of the big packet was stored"
    );
}
