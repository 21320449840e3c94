//! A latency plot as a small self-contained SVG: latency against percentile on the usual
//! logarithmic "nines" axis, one line per run.

use std::fmt::Write as _;

use crate::report::{Percentiles, Report};

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
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(
        out,
        r#"<text x="{MARGIN}" y="20">end-to-end latency (ms, corrected) by percentile</text>"#
    );
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
    let _ = write!(
        out,
        r#"<line x1="{MARGIN}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/><line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{b}" stroke="black"/>"#,
        b = HEIGHT - MARGIN,
        r = WIDTH - MARGIN
    );
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
