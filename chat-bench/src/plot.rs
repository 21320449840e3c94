//! Plots as small self-contained SVGs: a run's latency against percentile on the usual
//! logarithmic "nines" axis, one line per run; and a sweep's p99 against rate, one line per
//! client, with the bound.

use std::fmt::Write as _;

use crate::report::{Percentiles, Report};
use crate::sweep::SweepReport;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 360.0;
const MARGIN: f64 = 50.0;

fn points(p: &Percentiles) -> [(f64, f64); 5] {
    // x: the number of nines, -log10(1 - q).
    [
        (0.301, p.p50),
        (1.0, p.p90),
        (2.0, p.p99),
        (3.0, p.p999),
        (4.0, p.max),
    ]
}

/// The opening of a plot: the SVG element, a white background, the title and both axes.
fn frame(title: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(out, r#"<text x="{MARGIN}" y="20">{title}</text>"#);
    let _ = write!(
        out,
        r#"<line x1="{MARGIN}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/><line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{b}" stroke="black"/>"#,
        b = HEIGHT - MARGIN,
        r = WIDTH - MARGIN
    );
    out
}

/// The SVG text for a report.
pub fn svg(report: &Report) -> String {
    let mut runs = vec![("sdk", &report.primary)];
    if let Some(baseline) = &report.baseline {
        runs.push(("raw", baseline));
    }
    let top = runs
        .iter()
        .flat_map(|(_, r)| points(&r.latency_ms).map(|(_, y)| y))
        .fold(1.0_f64, f64::max);
    let x = |n: f64| MARGIN + n / 4.0 * (WIDTH - 2.0 * MARGIN);
    let y = |ms: f64| HEIGHT - MARGIN - (ms.max(0.0) / top) * (HEIGHT - 2.0 * MARGIN);
    let mut out = frame("end-to-end latency (ms, corrected) by percentile");
    for (n, label) in [
        (0.301, "50%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "max"),
    ] {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
            x(n),
            HEIGHT - MARGIN + 18.0
        );
    }
    let _ = write!(out, r#"<text x="5" y="{:.1}">{top:.1} ms</text>"#, MARGIN);
    for ((name, run), colour) in runs.iter().zip(["#1f77b4", "#d62728"]) {
        let path: Vec<String> = points(&run.latency_ms)
            .iter()
            .map(|(n, ms)| format!("{:.1},{:.1}", x(*n), y(*ms)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        let (lx, ly) = points(&run.latency_ms)[4];
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" fill="{colour}">{name}</text>"#,
            x(lx) - 30.0,
            y(ly) - 6.0
        );
    }
    out.push_str("</svg>\n");
    out
}

/// The SVG text for a sweep: p99 (ms) against rate (msg/s) for the SDK and the raw
/// baseline, the p99 bound as a dashed line. Latencies far past the bound are drawn at the
/// top edge (the scale stops at four times the bound) so the rates near it stay readable.
pub fn sweep_svg(report: &SweepReport) -> String {
    let sweep = &report.sweep;
    let bound = sweep.p99_bound_ms.max(f64::MIN_POSITIVE);
    let top = bound * 4.0;
    let right = sweep
        .sdk
        .steps
        .iter()
        .chain(&sweep.raw.steps)
        .map(|step| step.rate)
        .fold(1.0_f64, f64::max);
    let x = |rate: f64| MARGIN + rate / right * (WIDTH - 2.0 * MARGIN);
    let y = |ms: f64| HEIGHT - MARGIN - (ms.clamp(0.0, top) / top) * (HEIGHT - 2.0 * MARGIN);
    let mut out = frame("p99 end-to-end latency (ms) against rate (msg/s); dashed: the bound");
    let _ = write!(
        out,
        r#"<line x1="{MARGIN}" y1="{by:.1}" x2="{r}" y2="{by:.1}" stroke="grey" stroke-dasharray="4 4"/>"#,
        by = y(bound),
        r = WIDTH - MARGIN
    );
    let _ = write!(out, r#"<text x="5" y="{:.1}">{top:.0} ms</text>"#, MARGIN);
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{right:.0} msg/s</text>"#,
        WIDTH - MARGIN,
        HEIGHT - MARGIN + 18.0
    );
    for ((name, capacity), colour) in [("sdk", &sweep.sdk), ("raw", &sweep.raw)]
        .into_iter()
        .zip(["#1f77b4", "#d62728"])
    {
        let mut steps: Vec<(f64, f64)> = capacity
            .steps
            .iter()
            .map(|step| (step.rate, step.p99_ms))
            .collect();
        steps.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path: Vec<String> = steps
            .iter()
            .map(|(rate, ms)| format!("{:.1},{:.1}", x(*rate), y(*ms)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        if let Some((rate, ms)) = steps.last() {
            let _ = write!(
                out,
                r#"<text x="{:.1}" y="{:.1}" fill="{colour}">{name}</text>"#,
                x(*rate) - 30.0,
                y(*ms) - 6.0
            );
        }
    }
    out.push_str("</svg>\n");
    out
}
