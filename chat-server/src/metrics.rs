//! Counters and histograms every server keeps, shown in the Prometheus text format at
//! `/metrics` (docs/deployment.md lists them). They are process-wide, as one process runs one
//! server in production; a test that reads them compares before and after.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// A counter at zero.
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counts by label values.
#[derive(Debug, Default)]
pub struct LabelledCounter(Mutex<BTreeMap<Vec<String>, u64>>);

impl LabelledCounter {
    /// No counts yet.
    pub const fn new() -> Self {
        Self(Mutex::new(BTreeMap::new()))
    }

    /// Adds one for these label values.
    pub fn inc(&self, labels: &[&str]) {
        if let Ok(mut counts) = self.0.lock() {
            let key: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
            *counts.entry(key).or_default() += 1;
        }
    }

    /// The count for these label values.
    pub fn get(&self, labels: &[&str]) -> u64 {
        let key: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        self.0
            .lock()
            .ok()
            .and_then(|counts| counts.get(&key).copied())
            .unwrap_or(0)
    }

    fn render(&self, out: &mut String, name: &str, help: &str, label_names: &[&str]) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        let Ok(counts) = self.0.lock() else { return };
        for (values, count) in counts.iter() {
            let labels: Vec<String> = label_names
                .iter()
                .zip(values)
                .map(|(name, value)| format!("{name}=\"{}\"", escape(value)))
                .collect();
            let _ = writeln!(out, "{name}{{{}}} {count}", labels.join(","));
        }
    }
}

/// Upper bounds of the histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A latency histogram with fixed buckets.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Empty.
    pub const fn new() -> Self {
        Self {
            buckets: [const { AtomicU64::new(0) }; BUCKETS.len()],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Requests answered, by event and outcome (`ok` or the error code).
pub static REQUESTS: LabelledCounter = LabelledCounter::new();
/// Requests refused by a rate limit, by class.
pub static RATE_LIMITED: LabelledCounter = LabelledCounter::new();
/// TCP connections and HTTP requests refused before any Socket.IO handshake, by reason
/// (`per_address`, `origin`).
pub static CONNECTIONS_REFUSED: LabelledCounter = LabelledCounter::new();
/// Sockets closed, by reason.
pub static DISCONNECTS: LabelledCounter = LabelledCounter::new();
/// Time the store took to commit a `message:send` or `message:send_batch`.
pub static STORE_COMMIT: Histogram = Histogram::new();
/// Time from a message's storing to its sending to this server's sockets.
pub static FANOUT_LAG: Histogram = Histogram::new();
/// Messages read back from the store because no notice or feed brought them in time.
pub static REPAIRED: Counter = Counter::new();
/// Broadcasts the adapter could not send to the other servers.
pub static ADAPTER_ERRORS: Counter = Counter::new();

/// What the server adds at scrape time.
#[derive(Clone, Copy, Debug)]
pub struct Gauges {
    /// Sockets connected to this server.
    pub connections: usize,
    /// Messages from other servers dropped by the adapter's full buffer.
    pub adapter_dropped: u64,
}

/// The whole page of `/metrics`.
pub fn render(gauges: Gauges) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP chat_connections Sockets connected to this server.\n# TYPE chat_connections gauge\nchat_connections {}",
        gauges.connections
    );
    REQUESTS.render(
        &mut out,
        "chat_requests_total",
        "Requests answered, by event and outcome.",
        &["event", "outcome"],
    );
    CONNECTIONS_REFUSED.render(
        &mut out,
        "chat_connections_refused_total",
        "Connections and requests refused before the Socket.IO handshake, by reason.",
        &["reason"],
    );
    RATE_LIMITED.render(
        &mut out,
        "chat_rate_limited_total",
        "Requests refused by a per-user rate limit, by class.",
        &["class"],
    );
    DISCONNECTS.render(
        &mut out,
        "chat_disconnects_total",
        "Sockets closed, by reason.",
        &["reason"],
    );
    STORE_COMMIT.render(
        &mut out,
        "chat_store_commit_seconds",
        "Time the store took to commit a send request.",
    );
    FANOUT_LAG.render(
        &mut out,
        "chat_fanout_lag_seconds",
        "Time from a message's storing to its sending to this server's sockets.",
    );
    let _ = writeln!(
        out,
        "# HELP chat_fanout_repaired_total Messages read back from the store to fill a gap.\n# TYPE chat_fanout_repaired_total counter\nchat_fanout_repaired_total {}",
        REPAIRED.get()
    );
    let _ = writeln!(
        out,
        "# HELP chat_adapter_errors_total Broadcasts not sent to the other servers.\n# TYPE chat_adapter_errors_total counter\nchat_adapter_errors_total {}",
        ADAPTER_ERRORS.get()
    );
    let _ = writeln!(
        out,
        "# HELP chat_adapter_dropped_total Messages from other servers dropped by a full adapter buffer.\n# TYPE chat_adapter_dropped_total counter\nchat_adapter_dropped_total {}",
        gauges.adapter_dropped
    );
    out
}
