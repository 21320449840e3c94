//! Measures what the SDK buys over bare rust_socketio on loopback, in one run:
//!
//! 1. SDK, no faults: send-to-delivered latency (from `send()` to the receiver's
//!    application getting the message), p50/p99.
//! 2. Bare rust_socketio, no faults: emit-to-receive latency of the same load.
//! 3. SDK across 20 forced reconnects (server kick, TCP reset and blackhole through a
//!    relay, in turn): messages lost, duplicated and reordered at the receiver.
//! 4. Bare rust_socketio (its own reconnect on) across the same faults: the same counts.
//!
//! Run: `cargo run --release -p chat-sdk --example reconnect_loss`
//! (`MESSAGES=1000 FAULTS=20 RATE=100` are the defaults.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_sdk::chat_protocol::RoomId;
use chat_sdk::{ChatEvent, Client, ClientBuilder, RetryPolicy};
use chat_testkit::{Relay, TestServer};
use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client as SioClient, ClientBuilder as SioBuilder};
use rust_socketio::{Payload, TransportType};
use serde_json::json;
use tokio::sync::mpsc;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Kick,
    Reset,
    Blackhole,
}

const FAULTS: [Fault; 5] = [
    Fault::Kick,
    Fault::Reset,
    Fault::Kick,
    Fault::Reset,
    Fault::Blackhole,
];

fn apply(fault: Fault, server: &TestServer, relay: &Relay) {
    match fault {
        Fault::Kick => server.kick_all(),
        Fault::Reset => {
            relay.reset_all();
        }
        Fault::Blackhole => {
            relay.blackhole_all();
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Lost, duplicated and reordered, as a queue checker counts them at one receiver.
#[derive(Debug, Default)]
struct Counts {
    sent: usize,
    received: usize,
    lost: usize,
    duplicated: usize,
    reordered: usize,
}

fn check(sent: &[String], received: &[String]) -> Counts {
    let index: HashMap<&str, usize> = sent
        .iter()
        .enumerate()
        .map(|(i, b)| (b.as_str(), i))
        .collect();
    let mut seen = HashMap::new();
    let mut counts = Counts {
        sent: sent.len(),
        received: received.len(),
        ..Counts::default()
    };
    let mut last = None;
    for body in received {
        let n = seen.entry(body.as_str()).or_insert(0usize);
        *n += 1;
        if *n > 1 {
            counts.duplicated += 1;
            continue;
        }
        if let Some(&i) = index.get(body.as_str()) {
            if last.is_some_and(|l| i < l) {
                counts.reordered += 1;
            }
            last = Some(i);
        }
    }
    counts.lost = sent
        .iter()
        .filter(|b| !seen.contains_key(b.as_str()))
        .count();
    counts
}

fn sdk_builder(url: &str, token: String) -> ClientBuilder {
    Client::builder(url, token)
        .in_memory()
        .retry_policy(RetryPolicy {
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(300),
            ..RetryPolicy::default()
        })
        .ack_timeout(Duration::from_millis(1000))
        .health_interval(Duration::from_millis(300))
        .connect_timeout(Duration::from_secs(2))
}

/// Sends `count` messages at `rate`/s through the SDK, applying `faults` evenly spread;
/// returns the bodies sent, the bodies received and the latencies.
async fn run_sdk(
    server: &TestServer,
    relay: &Relay,
    room: &RoomId,
    count: usize,
    rate: usize,
    faults: usize,
) -> Result<(Vec<String>, Vec<String>, Vec<Duration>, Duration), Error> {
    let tag = if faults > 0 { "f" } else { "n" };
    let (alice, _alice_events) = sdk_builder(&relay.url(), server.token(&format!("alice{tag}")))
        .connect()
        .await?;
    let (bob, mut bob_events) = sdk_builder(&relay.url(), server.token(&format!("bob{tag}")))
        .connect()
        .await?;
    alice.join(room).await?;
    bob.join_since(room, 0).await?;
    let sent_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let receiver = {
        let sent_at = sent_at.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            let mut latencies = Vec::new();
            while got.len() < count {
                match tokio::time::timeout(Duration::from_secs(30), bob_events.recv()).await {
                    Ok(Some(ChatEvent::Message(m))) => {
                        let body = m.body.as_str().to_owned();
                        if let Some(t) = sent_at.lock().ok().and_then(|s| s.get(&body).copied()) {
                            latencies.push(t.elapsed());
                        }
                        got.push(body);
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            (got, latencies)
        })
    };
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let fault_every = count.checked_div(faults).unwrap_or(usize::MAX).max(1);
    let mut sent = Vec::new();
    let started = Instant::now();
    let mut ticker = tokio::time::interval(interval);
    for i in 0..count {
        ticker.tick().await;
        if faults > 0 && i % fault_every == fault_every / 2 {
            apply(FAULTS[(i / fault_every) % FAULTS.len()], server, relay);
        }
        let body = format!("{tag}{i}");
        if let Ok(mut s) = sent_at.lock() {
            s.insert(body.clone(), Instant::now());
        }
        alice.send(room, body.clone()).await?;
        sent.push(body);
    }
    let (got, mut latencies) = receiver.await?;
    let drained = started.elapsed();
    latencies.sort();
    alice.close().await;
    bob.close().await;
    Ok((sent, got, latencies, drained))
}

async fn raw_client(
    url: &str,
    token: String,
    room: &RoomId,
    tx: Option<mpsc::UnboundedSender<(String, Instant)>>,
) -> Result<SioClient, Error> {
    let mut builder = SioBuilder::new(url)
        .transport_type(TransportType::Websocket)
        .reconnect(true)
        .reconnect_on_disconnect(true)
        .reconnect_delay(20, 300)
        .auth(json!({ "token": token }));
    if let Some(tx) = tx {
        builder = builder.on("message:new", move |payload: Payload, _| {
            if let Payload::Text(values) = payload {
                if let Some(body) = values.first().and_then(|v| v["body"].as_str()) {
                    let _ = tx.send((body.to_owned(), Instant::now()));
                }
            }
            async {}.boxed()
        });
    }
    // Join after each (re)connect so live events keep coming, as a bare client would.
    let (joined_tx, mut joined_rx) = mpsc::unbounded_channel::<()>();
    let rejoin_room = room.clone();
    builder = builder.on("open", move |_, client: SioClient| {
        let room = rejoin_room.clone();
        let joined_tx = joined_tx.clone();
        tokio::spawn(async move {
            let _ = client
                .emit_with_ack(
                    "room:join",
                    json!({ "room": room }),
                    Duration::from_secs(5),
                    move |_, _| {
                        let _ = joined_tx.send(());
                        async {}.boxed()
                    },
                )
                .await;
        });
        async {}.boxed()
    });
    let client = builder.connect().await?;
    tokio::time::timeout(Duration::from_secs(5), joined_rx.recv()).await?;
    Ok(client)
}

async fn run_raw(
    server: &TestServer,
    relay: &Relay,
    room: &RoomId,
    count: usize,
    rate: usize,
    faults: usize,
) -> Result<(Vec<String>, Vec<String>, Vec<Duration>, Duration), Error> {
    let tag = if faults > 0 { "rf" } else { "rn" };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let bob = raw_client(
        &relay.url(),
        server.token(&format!("bob{tag}")),
        room,
        Some(tx),
    )
    .await?;
    let alice = raw_client(
        &relay.url(),
        server.token(&format!("alice{tag}")),
        room,
        None,
    )
    .await?;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let fault_every = count.checked_div(faults).unwrap_or(usize::MAX).max(1);
    let mut sent = Vec::new();
    let mut sent_at = HashMap::new();
    let mut ticker = tokio::time::interval(interval);
    let started = Instant::now();
    for i in 0..count {
        ticker.tick().await;
        if faults > 0 && i % fault_every == fault_every / 2 {
            apply(FAULTS[(i / fault_every) % FAULTS.len()], server, relay);
        }
        let body = format!("{tag}{i}");
        sent_at.insert(body.clone(), Instant::now());
        let request =
            json!({"room": room, "client_id": uuid::Uuid::new_v4().to_string(), "body": body});
        let _ = alice.emit("message:send", request).await;
        sent.push(body);
    }
    let mut got = Vec::new();
    let mut latencies = Vec::new();
    while got.len() < count {
        match tokio::time::timeout(Duration::from_secs(3), rx.recv()).await {
            Ok(Some((body, at))) => {
                if let Some(t) = sent_at.get(&body) {
                    latencies.push(at.duration_since(*t));
                }
                got.push(body);
            }
            _ => break,
        }
    }
    let drained = started.elapsed();
    latencies.sort();
    let _ = alice.disconnect().await;
    let _ = bob.disconnect().await;
    Ok((sent, got, latencies, drained))
}

fn report(name: &str, sent: &[String], got: &[String], latencies: &[Duration], drained: Duration) {
    let c = check(sent, got);
    println!(
        "{name:<34} sent {:>5} received {:>5} lost {:>4} duplicated {:>3} reordered {:>3}  p50 {:>9.3?} p99 {:>9.3?}  drained in {:.1?}",
        c.sent,
        c.received,
        c.lost,
        c.duplicated,
        c.reordered,
        percentile(latencies, 0.50),
        percentile(latencies, 0.99),
        drained
    );
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let count = env("MESSAGES", 1000);
    let faults = env("FAULTS", 20);
    let rate = env("RATE", 100);
    let server = TestServer::start_with(|config| config.durable = true).await?;
    let relay = Relay::start(server.addr()).await?;
    println!("{count} messages at {rate}/s, one sender and one receiver, loopback, durable SQLite");

    let room: RoomId = "calm".parse()?;
    let (sent, got, lat, drained) = run_sdk(&server, &relay, &room, count, rate, 0).await?;
    report("SDK, no faults", &sent, &got, &lat, drained);
    let room: RoomId = "calm-raw".parse()?;
    let (sent, got, lat, drained) = run_raw(&server, &relay, &room, count, rate, 0).await?;
    report("bare rust_socketio, no faults", &sent, &got, &lat, drained);

    let room: RoomId = "stormy".parse()?;
    let before = relay.accepted();
    let (sent, got, lat, drained) = run_sdk(&server, &relay, &room, count, rate, faults).await?;
    report(&format!("SDK, {faults} faults"), &sent, &got, &lat, drained);
    let reconnections = relay.accepted().saturating_sub(before + 2);
    println!("  (reconnections of the two SDK clients: {reconnections})");
    let room: RoomId = "stormy-raw".parse()?;
    let before = relay.accepted();
    let (sent, got, lat, drained) = run_raw(&server, &relay, &room, count, rate, faults).await?;
    report(
        &format!("bare rust_socketio, {faults} faults"),
        &sent,
        &got,
        &lat,
        drained,
    );
    let reconnections = relay.accepted().saturating_sub(before + 2);
    println!("  (reconnections of the two bare clients: {reconnections})");
    Ok(())
}
