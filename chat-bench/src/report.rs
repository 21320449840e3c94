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
    /// CPU time the run cost, from `/proc`.
    pub cpu: CpuCost,
    /// What the flooder did (`--flooder`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flooder: Option<crate::flooder::FlooderReport>,
    /// Memory and open files over the run (`--soak`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<crate::resources::ResourceSample>,
}

/// CPU time a run cost: the bench process (its clients) and the server it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct CpuCost {
    /// CPU seconds of the bench process during the run.
    pub bench_s: Option<f64>,
    /// CPU seconds of the server during the run (`None` for a server the bench did not start).
    pub server_s: Option<f64>,
    /// `bench_s` per delivered message, in microseconds.
    pub bench_us_per_delivered: Option<f64>,
    /// `server_s` per delivered message, in microseconds.
    pub server_us_per_delivered: Option<f64>,
}

impl CpuCost {
    /// The cost per delivered message of `bench_s` and `server_s`.
    pub fn new(bench_s: Option<f64>, server_s: Option<f64>, delivered: u64) -> Self {
        let per = |s: Option<f64>| {
            s.filter(|_| delivered > 0)
                .map(|s| s * 1e6 / delivered as f64)
        };
        Self {
            bench_s,
            server_s,
            bench_us_per_delivered: per(bench_s),
            server_us_per_delivered: per(server_s),
        }
    }
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
    /// The `--link` shaping of the clients' connections, if any.
    pub link: Option<String>,
    /// The server's per-user limits: `raised` out of the way, the server's `default`s, or
    /// `external` (a server the bench did not start).
    pub server_limits: String,
    /// Whether SDK outboxes were on disk.
    pub persistent_outbox: bool,
    /// The transport under the SDK clients.
    pub sdk_transport: crate::opts::SdkTransport,
    /// The extensions the embedded server offered (absent for a server the bench did not
    /// start).
    pub server_extensions: Option<Vec<String>>,
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
    let _ = write!(out, "{name:<26}");
    for value in values {
        let _ = write!(out, "{value:>18}");
    }
    out.push('\n');
}

/// `a / b` as a ratio, or `-` when it means nothing.
fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}x", a / b)
    } else {
        "-".into()
    }
}

/// One latency kind: a row per run (p50 p90 p99 p99.9 max), then the first run over the
/// second when there are two.
fn latency_block(
    out: &mut String,
    name: &str,
    runs: &[&RunReport],
    names: &[String],
    pick: fn(&RunReport) -> Percentiles,
) {
    let fields: [fn(&Percentiles) -> f64; 5] =
        [|p| p.p50, |p| p.p90, |p| p.p99, |p| p.p999, |p| p.max];
    for (run, client) in runs.iter().zip(names) {
        let p = pick(run);
        if p.count > 0 {
            let values: Vec<String> = fields.iter().map(|f| format!("{:.2}", f(&p))).collect();
            latency_row(out, &format!("{name}, {client}"), &values);
        }
    }
    if let [first, second] = runs {
        let (a, b) = (pick(first), pick(second));
        if a.count > 0 && b.count > 0 {
            let values: Vec<String> = fields.iter().map(|f| ratio(f(&a), f(&b))).collect();
            latency_row(
                out,
                &format!("{name}, {} / {}", names[0], names[1]),
                &values,
            );
        }
    }
}

fn latency_row(out: &mut String, name: &str, values: &[String]) {
    let _ = write!(out, "{name:<36}");
    for value in values {
        let _ = write!(out, "{value:>10}");
    }
    out.push('\n');
}

/// The one-line verdict on a run.
pub fn verdict(run: &RunReport) -> &'static str {
    if run.clean() {
        "no message lost, duplicated or reordered"
    } else if run.lost > 0 || run.duplicated > 0 || run.reordered > 0 || run.unexpected > 0 {
        "MESSAGES LOST, DUPLICATED OR REORDERED"
    } else {
        "DID NOT DRAIN: acknowledged messages were still undelivered when the drain timeout passed (not counted as lost)"
    }
}

/// The human-readable report, read at a glance: the verdict first, then the setup, the
/// counts with the clients side by side (and their ratio), then one row per latency kind
/// and client (p50 p90 p99 p99.9 max, in ms).
pub fn human(report: &Report) -> String {
    let c = &report.configuration;
    let mut out = String::new();
    let mut runs = vec![&report.primary];
    runs.extend(report.baseline.as_ref());
    let names: Vec<String> = runs
        .iter()
        .map(|r| match r.client {
            ClientKind::Sdk => "sdk".into(),
            ClientKind::Raw => "raw".into(),
        })
        .collect();
    let _ = writeln!(out, "{}: {}", names[0], verdict(&report.primary));
    let faults = if c.faults.is_empty() {
        "none".to_owned()
    } else {
        let kinds: Vec<String> = c
            .faults
            .iter()
            .map(|f| {
                clap::ValueEnum::to_possible_value(f)
                    .map_or_else(|| format!("{f:?}"), |v| v.get_name().to_owned())
            })
            .collect();
        format!(
            "{} every {}s, downtime {}s",
            kinds.join(","),
            c.fault_every_s,
            c.downtime_s
        )
    };
    let link = c
        .link
        .as_ref()
        .map_or(String::new(), |link| format!(", link: {link}"));
    let _ = writeln!(
        out,
        "{} clients in {} rooms, {} msg/s for {}s, faults: {faults}, seed {}{link}",
        c.clients, c.rooms, c.rate, c.duration_s, c.seed
    );
    let _ = writeln!(
        out,
        "server: {} ({}, {} limits), SDK outbox {}, SDK transport {}; chat-bench {} on {} cores",
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
        c.sdk_transport.name(),
        c.version,
        c.cores
    );
    if let Some(names) = &c.server_extensions {
        let names = if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        };
        let _ = writeln!(out, "server extensions: {names}");
    }
    out.push('\n');
    let mut header = names.clone();
    if runs.len() == 2 {
        header.push(format!("{} / {}", names[0], names[1]));
    }
    row(&mut out, "", &header);
    let count = |f: fn(&RunReport) -> f64, decimals: usize| {
        let mut values: Vec<String> = runs
            .iter()
            .map(|r| format!("{:.decimals$}", f(r)))
            .collect();
        if let [first, second] = runs.as_slice() {
            values.push(ratio(f(first), f(second)));
        }
        values
    };
    row(&mut out, "sent", &count(|r| r.sent as f64, 0));
    row(&mut out, "acked", &count(|r| r.acked as f64, 0));
    row(&mut out, "delivered", &count(|r| r.delivered as f64, 0));
    row(
        &mut out,
        "throughput (acked msg/s)",
        &count(|r| r.throughput_per_s, 0),
    );
    let anomalies: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{}/{}/{}/{}",
                r.lost, r.undelivered, r.duplicated, r.reordered
            )
        })
        .collect();
    row(&mut out, "lost/undeliv./dup./reord.", &anomalies);
    let others: Vec<String> = runs
        .iter()
        .map(|r| format!("{}/{}", r.failed, r.unexpected))
        .collect();
    row(&mut out, "failed/unexpected", &others);
    let reconnects: Vec<String> = runs
        .iter()
        .map(|r| format!("{} ({} faults)", r.reconnects, r.faults.len()))
        .collect();
    row(&mut out, "reconnects", &reconnects);
    let outbox: Vec<String> = runs
        .iter()
        .map(|r| r.peak_outbox_depth.to_string())
        .collect();
    row(&mut out, "peak outbox depth", &outbox);
    let cpu = |pick: fn(&CpuCost) -> Option<f64>| {
        let mut values: Vec<String> = runs
            .iter()
            .map(|r| pick(&r.cpu).map_or("-".into(), |us| format!("{us:.1}")))
            .collect();
        if let [first, second] = runs.as_slice() {
            values.push(match (pick(&first.cpu), pick(&second.cpu)) {
                (Some(a), Some(b)) => ratio(a, b),
                _ => "-".into(),
            });
        }
        values
    };
    row(
        &mut out,
        "CPU µs/delivered, bench",
        &cpu(|c| c.bench_us_per_delivered),
    );
    row(
        &mut out,
        "CPU µs/delivered, server",
        &cpu(|c| c.server_us_per_delivered),
    );
    let drains: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{:.0}{}",
                r.drain_ms,
                if r.drained { "" } else { " (gave up)" }
            )
        })
        .collect();
    row(&mut out, "drain after sending (ms)", &drains);
    out.push('\n');
    latency_row(
        &mut out,
        "latency (ms)",
        &["p50", "p90", "p99", "p99.9", "max"].map(String::from),
    );
    latency_block(&mut out, "end to end", &runs, &names, |r| r.latency_ms);
    latency_block(&mut out, "end to end, uncorrected", &runs, &names, |r| {
        r.latency_raw_ms
    });
    latency_block(&mut out, "ack", &runs, &names, |r| r.ack_latency_ms);
    latency_block(&mut out, "reconnect", &runs, &names, |r| r.reconnect_ms);
    latency_block(&mut out, "restart to stored", &runs, &names, |r| {
        r.restart_to_stored_ms
    });
    if let Some(flooder) = &report.primary.flooder {
        let _ = writeln!(
            out,
            "\nflooder: {} message:send written, {:.0}/s, beside the load",
            flooder.emitted, flooder.per_s
        );
    }
    resources_table(&mut out, &report.primary.resources);
    if let Some(baseline) = &report.baseline {
        let _ = writeln!(out, "\n{}: {}", names[1], verdict(baseline));
    }
    out
}

/// The soak's samples, one line each.
fn resources_table(out: &mut String, samples: &[crate::resources::ResourceSample]) {
    if samples.is_empty() {
        return;
    }
    let shown = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
    let mib =
        |v: Option<u64>| v.map_or("-".to_owned(), |kib| format!("{:.1}", kib as f64 / 1024.0));
    let _ = writeln!(
        out,
        "\n{:>9}  {:>14}  {:>10}  {:>15}  {:>11}",
        "elapsed", "bench RSS MiB", "bench fds", "server RSS MiB", "server fds"
    );
    for sample in samples {
        let _ = writeln!(
            out,
            "{:>8.0}s  {:>14}  {:>10}  {:>15}  {:>11}",
            sample.elapsed_s,
            mib(sample.bench_rss_kib),
            shown(sample.bench_fds),
            mib(sample.server_rss_kib),
            shown(sample.server_fds)
        );
    }
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
            cpu: CpuCost::default(),
            flooder: None,
            resources: Vec::new(),
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
