//! Measures `message:send` on the reference server over loopback, durable storage
//! (`synchronous=FULL`): the ack round trip of one sequential client, and the throughput of
//! 20 concurrent sequential senders in one room.
//!
//! Run: `cargo run --release -p chat-server --example send_load`
//! (`ROUND_TRIPS=5000 SENDERS=20 EACH=1000 DURABLE=1` are the defaults; `DURABLE=0` runs
//! SQLite with `synchronous=NORMAL`.)

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{send_args, RawClient};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main]
async fn main() {
    let round_trips = env("ROUND_TRIPS", 5000);
    let senders = env("SENDERS", 20);
    let each = env("EACH", 1000);
    let server = support::server_with(|c| {
        c.durable = std::env::var("DURABLE").map_or(true, |v| v != "0");
        c.rates.send_per_sec = 1_000_000;
        c.rates.other_per_sec = 1_000_000;
    })
    .await;

    let client = RawClient::as_user(&server, "solo").await;
    client.join("rtt").await;
    let mut samples = Vec::with_capacity(round_trips);
    for i in 0..round_trips {
        let started = Instant::now();
        let ack = client.say("rtt", &format!("m{i}")).await;
        samples.push(started.elapsed());
        assert_eq!(ack["ok"], true, "{ack}");
    }
    samples.sort();
    println!(
        "one sequential client, {round_trips} sends: ack round trip p50 {:?}, p99 {:?}, max {:?}",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples[samples.len() - 1]
    );

    let mut clients = Vec::new();
    for i in 0..senders {
        let client = RawClient::as_user(&server, &format!("sender{i}")).await;
        client.join("busy").await;
        clients.push(client);
    }
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| {
            tokio::spawn(async move {
                for i in 0..each {
                    let ack = client
                        .request("message:send", send_args("busy", &format!("m{i}")))
                        .await;
                    assert_eq!(ack["ok"], true, "{ack}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("sender finished");
    }
    let elapsed = started.elapsed();
    let total = senders * each;
    println!(
        "{senders} concurrent sequential senders, {total} sends: {:.0} messages/s durably stored ({elapsed:.2?})",
        total as f64 / elapsed.as_secs_f64()
    );
}
