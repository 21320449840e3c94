//! The report: a table for people on stdout, and JSON for machines (schema:
//! `docs/bench-report.schema.json`).

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::accounting::Counts;
use crate::opts::{ClientKind, FaultKind};

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
}

impl Percentiles {
    /// Summarises a histogram of microseconds.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1_000.0;
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            count: histogram.len(),
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }
}

/// One run's results.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// Which client drove the load.
    pub client: ClientKind,
    /// Messages handed to the clients to send.
    pub sent: u64,
    /// Messages confirmed stored (for the raw baseline: emitted without error).
    pub acked: u64,
    /// Messages that ended failed.
    pub failed: u64,
    /// Acked messages a receiver never got, and none was arriving any more when the drain
    /// was given up on (summed over receivers).
    pub lost: u64,
    /// Acked messages a receiver had not got yet when the drain timeout passed while
    /// deliveries were still arriving: maybe on their way, so not called lost (summed over
    /// receivers).
    pub undelivered: u64,
    /// Messages a receiver got more than once.
    pub duplicated: u64,
    /// Messages a receiver got after a later one of the same sender.
    pub reordered: u64,
    /// Messages a receiver got that were never sent.
    pub unexpected: u64,
    /// Deliveries to receivers' applications.
    pub delivered: u64,
    /// Reconnections the clients went through.
    pub reconnects: u64,
    /// Faults injected.
    pub faults: Vec<FaultKind>,
    /// The deepest any client's outbox got.
    pub peak_outbox_depth: u64,
    /// Acked messages per second of sending.
    pub throughput_per_s: f64,
    /// True when every acked message reached every member before the drain timeout.
    pub drained: bool,
    /// Time from the end of sending until delivery was complete (or given up), ms.
    pub drain_ms: f64,
    /// End-to-end latency from each message's intended send time (coordinated omission
    /// corrected), per delivery.
    pub latency_ms: Percentiles,
    /// End-to-end latency from the actual `send` call.
    pub latency_raw_ms: Percentiles,
    /// From `send` to the server's confirmation.
    pub ack_latency_ms: Percentiles,
    /// From a client losing its link to having it back.
    pub reconnect_ms: Percentiles,
    /// For messages queued before a restart and stored after: from the server being back to stored.
    pub restart_to_stored_ms: Percentiles,
}

impl RunReport {
    /// Fills in the accounting.
    /// What is missing is lost, unless the drain was given up on while deliveries were
    /// `still_arriving`: then it may be on its way, and is undelivered.
    pub fn counts(&mut self, counts: Counts, still_arriving: bool) {
        (self.lost, self.undelivered) = if self.drained || !still_arriving {
            (counts.lost, 0)
        } else {
            (0, counts.lost)
        };
        self.duplicated = counts.duplicated;
        self.reordered = counts.reordered;
        self.unexpected = counts.unexpected;
        self.delivered = counts.delivered;
    }

    /// True when the run drained and nothing was lost, duplicated, reordered or unexpected.
    pub fn clean(&self) -> bool {
        self.drained
            && self.lost == 0
            && self.undelivered == 0
            && self.duplicated == 0
            && self.reordered == 0
            && self.unexpected == 0
    }
}

/// The configuration a report was measured with.
#[derive(Clone, Debug, Serialize)]
pub struct Configuration {
    /// Clients.
    pub clients: u32,
    /// Rooms.
    pub rooms: u32,
    /// Messages per second, all clients together.
    pub rate: f64,
    /// Seconds of sending.
    pub duration_s: f64,
    /// Fault kinds asked for.
    pub faults: Vec<FaultKind>,
    /// Seconds between faults.
    pub fault_every_s: f64,
    /// Seconds a fault keeps the server unreachable.
    pub downtime_s: f64,
    /// The seed.
    pub seed: u64,
    /// Where the server was: `embedded` or the URL.
    pub server: String,
    /// Whether the server syncs every commit.
    pub durable: bool,
    /// The server's per-user limits: `raised` out of the way, the server's `default`s, or
    /// `external` (a server the bench did not start).
    pub server_limits: String,
    /// Whether SDK outboxes were on disk.
    pub persistent_outbox: bool,
    /// The transport under the SDK clients.
    pub sdk_transport: crate::opts::SdkTransport,
    /// This tool's version.
    pub version: String,
    /// Cores of this machine.
    pub cores: usize,
}

/// The server's memory with idle connections.
#[derive(Clone, Debug, Serialize)]
pub struct IdleReport {
    /// Connections opened.
    pub connections: u32,
    /// Server resident memory before, bytes.
    pub server_rss_before: u64,
    /// Server resident memory with every connection open, bytes.
    pub server_rss_after: u64,
    /// (after − before) / connections, bytes.
    pub server_bytes_per_connection: u64,
    /// Seconds to open them all.
    pub connect_s: f64,
}

/// Everything a run of the tool reports. The top level is the primary run (the SDK, unless
/// `--baseline` chose another); `--compare` adds the raw baseline under `baseline`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// How it was measured.
    pub configuration: Configuration,
    /// The primary run.
    #[serde(flatten)]
    pub primary: RunReport,
    /// The raw baseline, with `--compare`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<RunReport>,
}

fn row(out: &mut String, name: &str, values: &[String]) {
    let _ = write!(out, "{name:<34}");
    for value in values {
        let _ = write!(out, "{value:>20}");
    }
    out.push('\n');
}

fn latency_rows(
    out: &mut String,
    name: &str,
    runs: &[&RunReport],
    pick: fn(&RunReport) -> Percentiles,
) {
    for (label, field) in [
        ("p50", (|p: Percentiles| p.p50) as fn(Percentiles) -> f64),
        ("p90", |p| p.p90),
        ("p99", |p| p.p99),
        ("p99.9", |p| p.p999),
        ("max", |p| p.max),
    ] {
        let values: Vec<String> = runs
            .iter()
            .map(|r| {
                let p = pick(r);
                if p.count == 0 {
                    "-".into()
                } else {
                    format!("{:.3}", field(p))
                }
            })
            .collect();
        row(out, &format!("{name} {label} (ms)"), &values);
    }
}

/// The human-readable report.
pub fn human(report: &Report) -> String {
    let c = &report.configuration;
    let mut out = String::new();
    let faults = if c.faults.is_empty() {
        "none".to_owned()
    } else {
        let names: Vec<String> = c
            .faults
            .iter()
            .map(|f| format!("{f:?}").to_lowercase())
            .collect();
        format!(
            "{} every {}s, downtime {}s",
            names.join(","),
            c.fault_every_s,
            c.downtime_s
        )
    };
    let _ = writeln!(out, "chat-bench {} on {} cores", c.version, c.cores);
    let _ = writeln!(
        out,
        "{} clients in {} rooms, {} msg/s for {}s, faults: {faults}, seed {}",
        c.clients, c.rooms, c.rate, c.duration_s, c.seed
    );
    let _ = writeln!(
        out,
        "server: {} ({}, {} limits), SDK outbox {}, SDK transport {}\n",
        c.server,
        if c.durable {
            "synchronous=FULL"
        } else {
            "synchronous=NORMAL"
        },
        c.server_limits,
        if c.persistent_outbox {
            "on disk"
        } else {
            "in memory"
        },
        c.sdk_transport.name()
    );
    let mut runs = vec![&report.primary];
    runs.extend(report.baseline.as_ref());
    let names: Vec<String> = runs
        .iter()
        .map(|r| match r.client {
            ClientKind::Sdk => "sdk".into(),
            ClientKind::Raw => "raw rust_socketio".into(),
        })
        .collect();
    row(&mut out, "", &names);
    let count =
        |f: fn(&RunReport) -> u64| runs.iter().map(|r| f(r).to_string()).collect::<Vec<_>>();
    row(&mut out, "sent", &count(|r| r.sent));
    row(&mut out, "acked", &count(|r| r.acked));
    row(&mut out, "failed", &count(|r| r.failed));
    row(&mut out, "delivered", &count(|r| r.delivered));
    row(&mut out, "lost", &count(|r| r.lost));
    row(&mut out, "undelivered", &count(|r| r.undelivered));
    row(&mut out, "duplicated", &count(|r| r.duplicated));
    row(&mut out, "reordered", &count(|r| r.reordered));
    row(&mut out, "unexpected", &count(|r| r.unexpected));
    row(
        &mut out,
        "faults injected",
        &count(|r| r.faults.len() as u64),
    );
    row(&mut out, "reconnects", &count(|r| r.reconnects));
    row(
        &mut out,
        "peak outbox depth",
        &count(|r| r.peak_outbox_depth),
    );
    let values: Vec<String> = runs
        .iter()
        .map(|r| format!("{:.0}", r.throughput_per_s))
        .collect();
    row(&mut out, "throughput (acked msg/s)", &values);
    let values: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{:.0}{}",
                r.drain_ms,
                if r.drained { "" } else { " (gave up)" }
            )
        })
        .collect();
    row(&mut out, "drain after sending (ms)", &values);
    latency_rows(&mut out, "latency", &runs, |r| r.latency_ms);
    latency_rows(&mut out, "latency, uncorrected", &runs, |r| {
        r.latency_raw_ms
    });
    latency_rows(&mut out, "ack", &runs, |r| r.ack_latency_ms);
    latency_rows(&mut out, "reconnect", &runs, |r| r.reconnect_ms);
    latency_rows(&mut out, "restart to stored", &runs, |r| {
        r.restart_to_stored_ms
    });
    let primary = &report.primary;
    let verdict = if primary.clean() {
        "no message lost, duplicated or reordered"
    } else if primary.lost > 0
        || primary.duplicated > 0
        || primary.reordered > 0
        || primary.unexpected > 0
    {
        "MESSAGES LOST, DUPLICATED OR REORDERED"
    } else {
        "DID NOT DRAIN: acknowledged messages were still undelivered when the drain timeout passed (not counted as lost)"
    };
    let _ = writeln!(out, "\n{}: {verdict}", names[0]);
    out
}

/// The human-readable idle-connection report.
pub fn human_idle(idle: &IdleReport) -> String {
    format!(
        "{} idle connections opened in {:.1}s\nserver RSS {:.1} MiB -> {:.1} MiB: {} bytes per connection\n",
        idle.connections,
        idle.connect_s,
        idle.server_rss_before as f64 / 1_048_576.0,
        idle.server_rss_after as f64 / 1_048_576.0,
        idle.server_bytes_per_connection
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(drained: bool) -> RunReport {
        RunReport {
            client: ClientKind::Sdk,
            sent: 10,
            acked: 10,
            failed: 0,
            lost: 0,
            undelivered: 0,
            duplicated: 0,
            reordered: 0,
            unexpected: 0,
            delivered: 0,
            reconnects: 0,
            faults: Vec::new(),
            peak_outbox_depth: 0,
            throughput_per_s: 0.0,
            drained,
            drain_ms: 0.0,
            latency_ms: Percentiles::default(),
            latency_raw_ms: Percentiles::default(),
            ack_latency_ms: Percentiles::default(),
            reconnect_ms: Percentiles::default(),
            restart_to_stored_ms: Percentiles::default(),
        }
    }

    #[test]
    fn missing_deliveries_are_undelivered_only_while_deliveries_still_arrive() {
        let missing = Counts {
            lost: 3,
            delivered: 47,
            ..Counts::default()
        };
        let mut slow = report(false);
        slow.counts(missing, true);
        assert_eq!((slow.lost, slow.undelivered), (0, 3));
        assert!(!slow.clean(), "a run that did not drain is not clean");
        let mut stalled = report(false);
        stalled.counts(missing, false);
        assert_eq!((stalled.lost, stalled.undelivered), (3, 0));
        let mut drained = report(true);
        drained.counts(missing, true);
        assert_eq!((drained.lost, drained.undelivered), (3, 0));
        assert!(!drained.clean());
        let mut good = report(true);
        good.counts(Counts::default(), false);
        assert!(good.clean());
    }
}
