//! The many-rooms measurement (`--rooms-per-client N`): one user in N rooms while the server
//! is SIGKILLed and restarted `--reconnects` times, with the server's own default limits.
//! It reports what each reconnect costs in requests and how long after the server is back
//! every room is live again ([`ChatEvent::CaughtUp`]), and checks that the messages other
//! users sent during each outage arrive exactly once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chat_protocol::{ClientId, RoomId};
use chat_sdk::transport::{ConnectRequest, Connection, Inbound, Transport, WebSocketTransport};
use chat_sdk::{ChatEvent, Events, TransportError};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, Notify};

use crate::error::BenchError;
use crate::opts::{Opts, ServerLimits};
use crate::report::Percentiles;
use crate::run::Target;
use crate::sdk::{builder, room_name};

/// Rooms that get a message from another user during each outage, at most.
const MISSED_ROOMS: usize = 100;
/// Rooms each writer posts to (its 20 messages fit the default send burst of 40).
const ROOMS_PER_WRITER: usize = 20;

/// What the many-rooms measurement found.
#[derive(Clone, Debug, Serialize)]
pub struct ManyRoomsReport {
    /// Rooms the measured user is in.
    pub rooms_per_client: u32,
    /// Server restarts (SIGKILL, then start on the same database).
    pub reconnects: u32,
    /// Always `default`: the server's own limits.
    pub server_limits: String,
    /// Whether the server offered `room:resume`.
    pub resume_extension: bool,
    /// Requests the client made from the server's return until every room was live, per
    /// connection it made meanwhile (one, unless a link was given up again), in restart
    /// order.
    pub requests_per_reconnect: Vec<u64>,
    /// The same, by request name, summed over the reconnects.
    pub requests_by_name: BTreeMap<String, u64>,
    /// Per room and reconnect: ms from the server's return until the room was live.
    pub room_live_ms: Percentiles,
    /// Per reconnect: ms from the server's return until every room was live.
    pub all_live_ms: Vec<f64>,
    /// Per reconnect: ms from the server's return until the client was connected (the
    /// rest of `all_live_ms` is the re-join and catch-up; this part is reconnect backoff).
    pub connected_ms: Vec<f64>,
    /// Messages other users sent during the outages.
    pub sent: u64,
    /// Of those, how many arrived.
    pub delivered: u64,
    /// Sent but never arrived within `--drain-timeout`.
    pub lost: u64,
    /// Arrived more than once.
    pub duplicated: u64,
}

impl ManyRoomsReport {
    /// Nothing lost or duplicated, and every room came back live after every restart.
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.all_live_ms.len() == self.reconnects as usize
    }
}

/// The human-readable report.
pub fn human(report: &ManyRoomsReport) -> String {
    let median = |values: &[u64]| {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        sorted.get(sorted.len() / 2).copied().unwrap_or(0)
    };
    let by_name: Vec<String> = report
        .requests_by_name
        .iter()
        .filter(|(_, count)| **count > 0)
        .map(|(name, count)| format!("{name} {count}"))
        .collect();
    let worst_all = report.all_live_ms.iter().copied().fold(0.0_f64, f64::max);
    let worst_connected = report.connected_ms.iter().copied().fold(0.0_f64, f64::max);
    format!(
        "1 client in {} rooms, server SIGKILLed and restarted {} times, server limits: {}, room:resume {}\n\
         requests per reconnect: median {}, max {} ({})\n\
         room live after the server is back: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
         every room live: worst {:.1} ms (of which reconnect backoff: worst {:.1} ms)\n\
         sent during outages {}, delivered {}, lost {}, duplicated {}\n",
        report.rooms_per_client,
        report.reconnects,
        report.server_limits,
        if report.resume_extension { "on" } else { "off" },
        median(&report.requests_per_reconnect),
        report.requests_per_reconnect.iter().max().copied().unwrap_or(0),
        by_name.join(", "),
        report.room_live_ms.p50,
        report.room_live_ms.p99,
        report.room_live_ms.max,
        worst_all,
        worst_connected,
        report.sent,
        report.delivered,
        report.lost,
        report.duplicated,
    )
}

/// Runs the measurement.
pub async fn run(opts: &Opts, rooms_per_client: u32) -> Result<ManyRoomsReport, BenchError> {
    if opts.url.is_some() {
        return Err(BenchError::Usage(
            "--rooms-per-client restarts the server the bench starts; drop --url".into(),
        ));
    }
    let mut opts = opts.clone();
    opts.server_limits = ServerLimits::Default;
    let target = Target::start(&opts).await?;
    let child = target
        .child
        .clone()
        .ok_or_else(|| BenchError::Server("no embedded server".into()))?;
    let prefix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let rooms: Vec<RoomId> = (0..rooms_per_client)
        .map(|i| room_name(&prefix, i))
        .collect();

    let counter = Arc::new(RequestCounter::default());
    let (reader, events) = builder(&target.url, target.token("reader")?)
        .store_path(target.dir.path().join("reader.db"))
        .transport(Arc::new(CountingTransport {
            counter: counter.clone(),
        }))
        .connect()
        .await
        .map_err(|e| client_error(0, e))?;
    let log = Arc::new(ReaderLog::default());
    let reading = tokio::spawn(read(events, log.clone()));
    let joining = Instant::now();
    reader
        .join_all(&rooms)
        .await
        .map_err(|e| client_error(0, e))?;
    log.wait_all_live(rooms.len(), joining, opts.drain_timeout)
        .await
        .ok_or_else(|| BenchError::Server("the rooms did not all go live after joining".into()))?;

    let missed_rooms = &rooms[..rooms.len().min(MISSED_ROOMS)];
    let mut writers = Vec::new();
    for (index, share) in missed_rooms.chunks(ROOMS_PER_WRITER).enumerate() {
        let (writer, _events) = builder(&target.url, target.token(&format!("writer-{index}"))?)
            .in_memory()
            .connect()
            .await
            .map_err(|e| client_error(index as u32 + 1, e))?;
        writer
            .join_all(share)
            .await
            .map_err(|e| client_error(index as u32 + 1, e))?;
        writers.push((writer, share.to_vec()));
    }

    let mut live_ms = Histogram::<u64>::new(3).map_err(|e| BenchError::Usage(e.to_string()))?;
    let mut report = ManyRoomsReport {
        rooms_per_client,
        reconnects: opts.reconnects,
        server_limits: "default".into(),
        resume_extension: !opts.no_resume,
        requests_per_reconnect: Vec::new(),
        requests_by_name: BTreeMap::new(),
        room_live_ms: Percentiles::default(),
        all_live_ms: Vec::new(),
        connected_ms: Vec::new(),
        sent: 0,
        delivered: 0,
        lost: 0,
        duplicated: 0,
    };
    let mut expected: Vec<ClientId> = Vec::new();
    for round in 0..opts.reconnects {
        child.lock().await.kill().await;
        for (writer, share) in &writers {
            for room in share {
                let message = writer
                    .send(room, format!("round {round} in {room}"))
                    .await
                    .map_err(|e| BenchError::Server(format!("a writer could not queue: {e}")))?;
                expected.push(message.client_id());
            }
        }
        tokio::time::sleep(opts.downtime).await;
        let before = counter.snapshot();
        child.lock().await.resume().await?;
        let back = Instant::now();
        let Some(live) = log
            .wait_all_live(rooms.len(), back, opts.drain_timeout)
            .await
        else {
            tracing::warn!(round, "not every room went live within --drain-timeout");
            continue;
        };
        let after = counter.snapshot();
        let mut total = 0;
        let mut connections = 1;
        for (name, count) in &after {
            let made = count - before.get(name).copied().unwrap_or(0);
            if name == CONNECT {
                connections = made.max(1);
            } else if made > 0 {
                total += made;
                *report.requests_by_name.entry(name.clone()).or_insert(0) += made;
            }
        }
        report
            .requests_per_reconnect
            .push(total.div_ceil(connections));
        let mut worst = Duration::ZERO;
        for at in live {
            let since = at.saturating_duration_since(back);
            worst = worst.max(since);
            let _ = live_ms.record(since.as_micros() as u64);
        }
        report.all_live_ms.push(worst.as_secs_f64() * 1_000.0);
        if let Some(connected) = log.connected.lock().ok().and_then(|at| *at) {
            let since = connected.saturating_duration_since(back);
            report.connected_ms.push(since.as_secs_f64() * 1_000.0);
        }
    }
    report.room_live_ms = Percentiles::of(&live_ms);
    log.wait_delivered(&expected, opts.drain_timeout).await;
    let received = log.received.lock().map(|r| r.clone()).unwrap_or_default();
    report.sent = expected.len() as u64;
    for id in &expected {
        match received.get(id).copied().unwrap_or(0) {
            0 => report.lost += 1,
            1 => report.delivered += 1,
            _ => {
                report.delivered += 1;
                report.duplicated += 1;
            }
        }
    }
    for (writer, _) in &writers {
        writer.close().await;
    }
    reader.close().await;
    reading.abort();
    target.stop().await;
    Ok(report)
}

fn client_error(index: u32, error: impl std::fmt::Display) -> BenchError {
    BenchError::Client {
        index,
        message: error.to_string(),
    }
}

/// What the reader's application saw.
#[derive(Debug, Default)]
struct ReaderLog {
    /// When each room last said it was live.
    live: Mutex<HashMap<RoomId, Instant>>,
    /// When the client last connected.
    connected: Mutex<Option<Instant>>,
    /// How often each message arrived.
    received: Mutex<HashMap<ClientId, u32>>,
    changed: Notify,
}

impl ReaderLog {
    /// Waits until `rooms` rooms went live after `since`; returns when each did.
    async fn wait_all_live(
        &self,
        rooms: usize,
        since: Instant,
        timeout: Duration,
    ) -> Option<Vec<Instant>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.changed.notified();
            let live: Vec<Instant> = self
                .live
                .lock()
                .ok()?
                .values()
                .copied()
                .filter(|&at| at >= since)
                .collect();
            if live.len() >= rooms {
                return Some(live);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return None;
            }
        }
    }

    /// Waits until every message of `expected` arrived, or `timeout` passed with none new.
    async fn wait_delivered(&self, expected: &[ClientId], timeout: Duration) {
        loop {
            let changed = self.changed.notified();
            let all = self
                .received
                .lock()
                .map(|r| expected.iter().all(|id| r.contains_key(id)))
                .unwrap_or(true);
            if all || tokio::time::timeout(timeout, changed).await.is_err() {
                return;
            }
        }
    }
}

async fn read(mut events: Events, log: Arc<ReaderLog>) {
    while let Some(event) = events.recv().await {
        match event {
            ChatEvent::CaughtUp { room, .. } => {
                if let Ok(mut live) = log.live.lock() {
                    live.insert(room, Instant::now());
                }
            }
            ChatEvent::Connection(chat_sdk::ConnectionState::Connected) => {
                if let Ok(mut connected) = log.connected.lock() {
                    *connected = Some(Instant::now());
                }
            }
            ChatEvent::Message(message) => {
                if let Ok(mut received) = log.received.lock() {
                    *received.entry(message.client_id).or_insert(0) += 1;
                }
            }
            _ => continue,
        }
        log.changed.notify_waiters();
    }
}

/// Requests put on the wire, by name; connections made under the key `connect`.
#[derive(Debug, Default)]
struct RequestCounter(Mutex<BTreeMap<String, u64>>);

/// The key [`RequestCounter`] counts connections under.
const CONNECT: &str = "connect";

impl RequestCounter {
    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// The WebSocket transport, counting each request it sends.
#[derive(Debug)]
struct CountingTransport {
    counter: Arc<RequestCounter>,
}

#[derive(Debug)]
struct CountingConnection {
    inner: Arc<dyn Connection>,
    counter: Arc<RequestCounter>,
}

#[async_trait]
impl Transport for CountingTransport {
    async fn connect(
        &self,
        request: ConnectRequest,
    ) -> Result<(Arc<dyn Connection>, mpsc::Receiver<Inbound>), TransportError> {
        let (inner, inbound) = WebSocketTransport.connect(request).await?;
        if let Ok(mut counts) = self.counter.0.lock() {
            *counts.entry(CONNECT.to_owned()).or_insert(0) += 1;
        }
        let counted: Arc<dyn Connection> = Arc::new(CountingConnection {
            inner,
            counter: self.counter.clone(),
        });
        Ok((counted, inbound))
    }
}

#[async_trait]
impl Connection for CountingConnection {
    async fn request(&self, event: &str, payload: Value) -> Result<Value, TransportError> {
        if let Ok(mut counts) = self.counter.0.lock() {
            *counts.entry(event.to_owned()).or_insert(0) += 1;
        }
        self.inner.request(event, payload).await
    }

    async fn emit(&self, event: &str, payload: Value) -> Result<(), TransportError> {
        self.inner.emit(event, payload).await
    }

    async fn closed(&self) -> String {
        self.inner.closed().await
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn close(&self, reason: &str) {
        self.inner.close(reason)
    }

    fn last_heard(&self) -> Option<Instant> {
        self.inner.last_heard()
    }
}
