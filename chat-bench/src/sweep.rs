//! The capacity sweep (`--sweep`): for the SDK and the raw baseline in turn, the highest
//! rate at which the run drains and its p99 stays within `--p99-bound`.
//!
//! The rate doubles from `--rate` while steps pass (halves while they fail, if the first
//! does), then bisects between the last passing and the first failing rate until they are
//! within 10% of each other. Each step is a calm run (no faults) of `--duration` on a fresh
//! server, so one step's backlog or database cannot slow the next.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::error::BenchError;
use crate::opts::{ClientKind, Opts};
use crate::report::{Configuration, RunReport};
use crate::run::{configuration, run_once, Target};

/// Steps at most, per client kind.
const MAX_STEPS: usize = 14;
/// Bisection stops once the failing rate is within this fraction above the passing one.
const PRECISION: f64 = 0.1;
/// The lowest rate tried.
const MIN_RATE: f64 = 10.0;

/// One rate tried.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// Messages per second, all clients together.
    pub rate: f64,
    /// End-to-end latency p50, ms (coordinated omission corrected).
    pub p50_ms: f64,
    /// End-to-end latency p99, ms.
    pub p99_ms: f64,
    /// Whether every acked message was delivered before the drain timeout.
    pub drained: bool,
    /// Whether nothing was lost, duplicated or reordered (undelivered at the drain timeout
    /// is not counted here: past capacity a run does not drain).
    pub clean: bool,
    /// Within the bound: drained, clean and p99 ≤ the bound.
    pub passed: bool,
    /// CPU µs per delivered message, bench process.
    pub bench_cpu_us_per_delivered: Option<f64>,
    /// CPU µs per delivered message, server.
    pub server_cpu_us_per_delivered: Option<f64>,
}

/// One client kind's sweep.
#[derive(Clone, Debug, Serialize)]
pub struct Capacity {
    /// The highest passing rate (0 when none passed).
    pub capacity_msg_s: f64,
    /// Every step, in the order tried.
    pub steps: Vec<Step>,
}

/// What `--sweep` found.
#[derive(Clone, Debug, Serialize)]
pub struct SweepReport {
    /// How it was measured (`rate` is the starting rate; faults are off).
    pub configuration: Configuration,
    /// The sweep.
    pub sweep: Sweep,
}

/// The sweep's results.
#[derive(Clone, Debug, Serialize)]
pub struct Sweep {
    /// The p99 bound a step must stay within, ms.
    pub p99_bound_ms: f64,
    /// The SDK.
    pub sdk: Capacity,
    /// The raw rust_socketio baseline.
    pub raw: Capacity,
}

impl SweepReport {
    /// No step lost, duplicated or reordered a message.
    pub fn clean(&self) -> bool {
        self.sweep
            .sdk
            .steps
            .iter()
            .chain(&self.sweep.raw.steps)
            .all(|step| step.clean)
    }

    /// SDK capacity over raw capacity.
    pub fn ratio(&self) -> Option<f64> {
        (self.sweep.raw.capacity_msg_s > 0.0)
            .then(|| self.sweep.sdk.capacity_msg_s / self.sweep.raw.capacity_msg_s)
    }
}

/// Runs the sweep; `progress` hears of each step as it ends.
pub async fn run(
    opts: &Opts,
    mut progress: impl FnMut(ClientKind, &Step),
) -> Result<SweepReport, BenchError> {
    if opts.url.is_some() {
        return Err(BenchError::Usage(
            "--sweep starts a fresh server for each step; drop --url".into(),
        ));
    }
    let mut calm = opts.clone();
    calm.faults = vec![None];
    let bound = opts.p99_bound;
    let mut tag = 0;
    let mut capacities = Vec::new();
    for kind in [ClientKind::Sdk, ClientKind::Raw] {
        let mut steps: Vec<Step> = Vec::new();
        let (mut pass, mut fail): (Option<f64>, Option<f64>) = (None, None);
        let mut rate = opts.rate.max(MIN_RATE);
        while steps.len() < MAX_STEPS {
            let step = step(&calm, kind, rate, bound, tag).await?;
            tag += 1;
            progress(kind, &step);
            if step.passed {
                pass = Some(pass.map_or(rate, |p: f64| p.max(rate)));
            } else {
                fail = Some(fail.map_or(rate, |f: f64| f.min(rate)));
            }
            steps.push(step);
            let Some(next) = next_rate(pass, fail) else {
                break;
            };
            rate = next;
        }
        capacities.push(Capacity {
            capacity_msg_s: pass.unwrap_or(0.0),
            steps,
        });
    }
    let raw = capacities.pop().unwrap_or(Capacity {
        capacity_msg_s: 0.0,
        steps: Vec::new(),
    });
    let sdk = capacities.pop().unwrap_or(Capacity {
        capacity_msg_s: 0.0,
        steps: Vec::new(),
    });
    Ok(SweepReport {
        configuration: configuration(&calm),
        sweep: Sweep {
            p99_bound_ms: bound.as_secs_f64() * 1_000.0,
            sdk,
            raw,
        },
    })
}

/// The rate to try after the highest passing and the lowest failing rate so far, or `None`
/// when the capacity is found (or nothing passes even at the lowest rate).
fn next_rate(pass: Option<f64>, fail: Option<f64>) -> Option<f64> {
    match (pass, fail) {
        (Some(p), None) => Some(p * 2.0),
        (None, Some(f)) if f / 2.0 >= MIN_RATE => Some(f / 2.0),
        (Some(p), Some(f)) if f > p * (1.0 + PRECISION) => Some(((p + f) / 2.0).round()),
        _ => None,
    }
}

/// One calm run of `kind` at `rate` on a fresh server.
async fn step(
    opts: &Opts,
    kind: ClientKind,
    rate: f64,
    bound: Duration,
    tag: usize,
) -> Result<Step, BenchError> {
    let mut at = opts.clone();
    at.rate = rate;
    let target = Target::start(&at).await?;
    let run = run_once(&at, kind, &target, tag).await;
    target.stop().await;
    let run: RunReport = run?;
    let p99 = run.latency_ms.p99;
    Ok(Step {
        rate,
        p50_ms: run.latency_ms.p50,
        p99_ms: p99,
        drained: run.drained,
        clean: run.lost == 0 && run.duplicated == 0 && run.reordered == 0 && run.unexpected == 0,
        passed: run.clean() && run.latency_ms.count > 0 && p99 <= bound.as_secs_f64() * 1_000.0,
        bench_cpu_us_per_delivered: run.cpu.bench_us_per_delivered,
        server_cpu_us_per_delivered: run.cpu.server_us_per_delivered,
    })
}

/// One line per step, for the table and for progress.
pub fn step_line(kind: ClientKind, step: &Step) -> String {
    let cpu = |us: Option<f64>| us.map_or("-".to_owned(), |us| format!("{us:.0}"));
    format!(
        "{:<4}{:>10.0}{:>10.2}{:>10.2}{:>9}{:>12}{:>12}  {}",
        match kind {
            ClientKind::Sdk => "sdk",
            ClientKind::Raw => "raw",
        },
        step.rate,
        step.p50_ms,
        step.p99_ms,
        if step.drained { "yes" } else { "no" },
        cpu(step.bench_cpu_us_per_delivered),
        cpu(step.server_cpu_us_per_delivered),
        if step.passed { "pass" } else { "FAIL" }
    )
}

/// The header of [`step_line`]'s columns.
pub fn step_header() -> String {
    format!(
        "{:<4}{:>10}{:>10}{:>10}{:>9}{:>12}{:>12}  {}",
        "", "msg/s", "p50 ms", "p99 ms", "drained", "bench µs/m", "server µs/m", "verdict"
    )
}

/// The human-readable sweep report.
pub fn human(report: &SweepReport) -> String {
    let mut out = String::new();
    let sweep = &report.sweep;
    let _ = writeln!(
        out,
        "capacity at p99 <= {} ms: sdk {:.0} msg/s, raw {:.0} msg/s, sdk/raw {}",
        sweep.p99_bound_ms,
        sweep.sdk.capacity_msg_s,
        sweep.raw.capacity_msg_s,
        report.ratio().map_or("-".to_owned(), |r| format!("{r:.2}"))
    );
    let c = &report.configuration;
    let _ = writeln!(
        out,
        "{} clients in {} rooms, {}s per step, no faults, server {} limits\n",
        c.clients, c.rooms, c.duration_s, c.server_limits
    );
    let _ = writeln!(out, "{}", step_header());
    for (kind, capacity) in [(ClientKind::Sdk, &sweep.sdk), (ClientKind::Raw, &sweep.raw)] {
        for step in &capacity.steps {
            let _ = writeln!(out, "{}", step_line(kind, step));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_doubles_halves_then_bisects_to_within_ten_percent() {
        assert_eq!(next_rate(Some(1000.0), None), Some(2000.0));
        assert_eq!(next_rate(None, Some(1000.0)), Some(500.0));
        assert_eq!(next_rate(None, Some(15.0)), None, "below the lowest rate");
        assert_eq!(next_rate(Some(2000.0), Some(4000.0)), Some(3000.0));
        assert_eq!(next_rate(Some(3000.0), Some(3200.0)), None, "within 10%");
    }
}
