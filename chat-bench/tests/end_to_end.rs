//! The benchmark end to end, against a real server process it starts, kills and restarts:
//! the SDK loses, doubles and reorders nothing across every kind of fault, and the JSON
//! report matches its documented schema.

use std::process::Command;

use chat_bench::opts::{ClientKind, FaultKind};
use chat_bench::Opts;
use clap::Parser;

/// Runs the chat-bench binary with `args`, and `--json` into a file; returns its output
/// and the JSON it wrote.
fn bench_with_json(args: &[&str]) -> (std::process::Output, serde_json::Value) {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_chat-bench"))
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("runs");
    let report = std::fs::read_to_string(&json)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(serde_json::Value::Null);
    (output, report)
}

fn opts(extra: &[&str]) -> Opts {
    let mut args = vec![
        "chat-bench",
        "--server-exe",
        env!("CARGO_BIN_EXE_chat-bench"),
        "--clients",
        "4",
        "--rooms",
        "2",
        "--rate",
        "80",
        "--duration",
        "3s",
        "--fault-every",
        "600ms",
        "--downtime",
        "150ms",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    Opts::parse_from(args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_delivers_everything_once_and_in_order_across_every_fault_kind() {
    let report = chat_bench::run(&opts(&["--compare"]))
        .await
        .expect("bench runs");
    let sdk = &report.primary;
    assert_eq!(sdk.client, ClientKind::Sdk);
    for kind in [
        FaultKind::Kick,
        FaultKind::Reset,
        FaultKind::Blackhole,
        FaultKind::Restart,
    ] {
        assert!(
            sdk.faults.contains(&kind),
            "{kind:?} was not injected: {:?}",
            sdk.faults
        );
    }
    assert!(
        sdk.reconnects >= 4,
        "faults forced reconnects: {}",
        sdk.reconnects
    );
    assert!(
        sdk.sent > 0 && sdk.acked == sdk.sent,
        "every message acked: {sdk:?}"
    );
    assert!(sdk.drained, "delivery completed");
    assert!(
        sdk.clean(),
        "lost {} duplicated {} reordered {} unexpected {}",
        sdk.lost,
        sdk.duplicated,
        sdk.reordered,
        sdk.unexpected
    );
    // Two receivers per room: every acked message delivered to both.
    assert_eq!(sdk.delivered, sdk.acked * 2);
    assert!(sdk.latency_ms.count > 0 && sdk.latency_ms.p50 <= sdk.latency_ms.max);

    let baseline = report
        .baseline
        .as_ref()
        .expect("--compare runs the baseline");
    assert_eq!(baseline.client, ClientKind::Raw);
    assert!(baseline.sent > 0);

    assert_matches_schema(&report);
}

/// Nothing lost, undelivered, doubled or reordered, and the drain finished.
fn assert_clean(sdk: &chat_bench::report::RunReport) {
    assert!(
        sdk.clean(),
        "drained {} lost {} undelivered {} duplicated {} reordered {}",
        sdk.drained,
        sdk.lost,
        sdk.undelivered,
        sdk.duplicated,
        sdk.reordered
    );
}

/// The report validates against docs/bench-report.schema.json.
fn assert_matches_schema(report: &chat_bench::report::Report) {
    let json = serde_json::to_value(report).expect("serializes");
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/bench-report.schema.json"))
            .expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "report does not match docs/bench-report.schema.json: {errors:#?}"
    );
}

#[test]
fn bad_options_are_usage_errors_with_exit_code_2() {
    for args in [
        vec!["--faults", "meteor"],
        vec!["--rate", "0"],
        vec![
            "--url",
            "http://127.0.0.1:9",
            "--jwt-secret",
            "s",
            "--faults",
            "kick",
        ],
        // `--soak` is the duration of a soak; both cannot be given.
        vec!["--soak", "1h"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_chat-bench"))
            .args(&args)
            .args(["--duration", "1s", "--quiet"])
            .output()
            .expect("runs");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            !output.stderr.is_empty(),
            "{args:?} explains itself on stderr"
        );
        assert!(output.stdout.is_empty(), "{args:?} prints no result");
    }
}

#[test]
fn a_calm_run_prints_the_table_and_writes_json() {
    let (output, report) = bench_with_json(&[
        "--clients",
        "2",
        "--rooms",
        "1",
        "--rate",
        "40",
        "--duration",
        "1s",
        "--faults",
        "none",
        "--quiet",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("no message lost, duplicated or reordered"),
        "{stdout}"
    );
    for key in [
        "sent",
        "acked",
        "lost",
        "duplicated",
        "reordered",
        "reconnects",
        "latency_ms",
    ] {
        assert!(report.get(key).is_some(), "{key} missing");
    }
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(
            report["latency_ms"].get(key).is_some(),
            "latency_ms.{key} missing"
        );
    }
    assert_eq!(report["lost"], 0);
    // The CPU each delivered message cost, for the bench and the server it started.
    for key in ["bench_us_per_delivered", "server_us_per_delivered"] {
        assert!(
            report["cpu"][key].as_f64().is_some_and(|us| us > 0.0),
            "cpu.{key}: {}",
            report["cpu"]
        );
    }
    assert!(stdout.contains("CPU µs/delivered, server"), "{stdout}");
}

/// With `--server-limits default` the started server keeps its own per-user limits (the
/// report says so), and the SDK still delivers everything, once and in order, across every
/// fault kind: the friendly limits are not what makes the run clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_stays_clean_under_the_servers_default_limits() {
    let options = opts(&["--server-limits", "default"]);
    let report = chat_bench::run(&options).await.expect("bench runs");
    assert_eq!(report.configuration.server_limits, "default");
    let sdk = &report.primary;
    assert!(
        sdk.reconnects >= 4,
        "faults forced reconnects: {}",
        sdk.reconnects
    );
    assert_clean(sdk);
    assert_eq!(sdk.delivered, sdk.acked * 2);
}

/// `--rooms-per-client`: a user in 300 rooms, the server SIGKILLed twice under its default
/// limits: each reconnect costs one `room:resume`, every room goes live again, and what
/// other users sent during the outages arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_rooms_resume_in_one_request_per_reconnect() {
    let options = opts(&["--rooms-per-client", "300", "--reconnects", "2"]);
    let report = chat_bench::many_rooms::run(&options, 300)
        .await
        .expect("bench runs");
    assert_eq!(report.server_limits, "default");
    assert!(report.clean(), "{report:?}");
    assert_eq!(report.requests_per_reconnect, vec![1, 1], "{report:?}");
    assert!(report.requests_by_name.get("room:resume") >= Some(&2));
    assert!(
        !report.requests_by_name.contains_key("room:join"),
        "{report:?}"
    );
    assert_eq!(report.room_live_ms.count, 600);
    assert_eq!((report.sent, report.delivered), (200, 200));
}

/// `--sweep` runs the SDK and the raw baseline in turn and writes each one's steps and
/// capacity. With a bound nothing can meet, every step fails and the rate halves down to
/// the lowest tried: the capacity is 0, and nothing was lost on the way (exit 0).
#[test]
fn a_sweep_reports_each_clients_steps_and_capacity() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plot = dir.path().join("sweep.svg");
    let (output, report) = bench_with_json(&[
        "--sweep",
        "--clients",
        "2",
        "--rooms",
        "1",
        "--rate",
        "40",
        "--duration",
        "1s",
        "--p99-bound",
        "1us",
        "--quiet",
        "--plot",
        plot.to_str().expect("a UTF-8 path"),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.starts_with("capacity at p99 <= 0.001 ms"),
        "{stdout}"
    );
    for kind in ["sdk", "raw"] {
        let capacity = &report["sweep"][kind];
        assert_eq!(capacity["capacity_msg_s"], 0.0, "{capacity}");
        let rates: Vec<f64> = capacity["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|step| step["rate"].as_f64().expect("rate"))
            .collect();
        assert_eq!(rates, [40.0, 20.0, 10.0], "{kind}");
        assert!(capacity["steps"][0]["p99_ms"].as_f64().is_some());
    }
    assert_eq!(report["sweep"]["p99_bound_ms"], 0.001);
    let svg = std::fs::read_to_string(&plot).expect("the plot was written");
    assert!(svg.starts_with("<svg") && svg.contains(">sdk<") && svg.contains(">raw<"));
}

/// `--link` carries every client connection over a shaped link: each message crosses it
/// twice (sender to server, server to receiver), so no delivery can be quicker than twice
/// the delay less the jitter; and the SDK still delivers everything once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shaped_link_delays_every_delivery_and_loses_nothing() {
    let options = opts(&["--faults", "none", "--link", "delay 20ms jitter 5ms"]);
    let report = chat_bench::run(&options).await.expect("bench runs");
    assert_eq!(
        report.configuration.link.as_deref(),
        Some("delay 20ms jitter 5ms")
    );
    let sdk = &report.primary;
    assert!(sdk.clean(), "{sdk:?}");
    assert!(
        sdk.latency_raw_ms.p50 >= 30.0,
        "p50 {} ms over two hops of 20 ± 5 ms",
        sdk.latency_raw_ms.p50
    );
}

/// Three nodes on one PostgreSQL and the bench's own Redis, with a node killed (SIGKILL)
/// and Redis restarted in turn: nothing lost, doubled or reordered, and the report still
/// matches its schema. Needs PostgreSQL (see `chat_testkit::PostgresDatabase`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_lose_nothing_across_node_kills_and_redis_restarts() {
    let Some(admin) = chat_testkit::PostgresDatabase::admin().await else {
        return;
    };
    let report = chat_bench::run(&opts(&[
        "--nodes",
        "3",
        "--db",
        &admin,
        "--faults",
        "node-kill,redis-restart,reset",
    ]))
    .await
    .expect("bench runs");
    let sdk = &report.primary;
    for kind in [
        FaultKind::NodeKill,
        FaultKind::RedisRestart,
        FaultKind::Reset,
    ] {
        assert!(
            sdk.faults.contains(&kind),
            "{kind:?} not injected: {:?}",
            sdk.faults
        );
    }
    assert!(
        sdk.sent > 0 && sdk.acked == sdk.sent,
        "every message acked: {sdk:?}"
    );
    assert!(sdk.drained, "delivery completed");
    assert!(
        sdk.clean(),
        "lost {} duplicated {} reordered {}",
        sdk.lost,
        sdk.duplicated,
        sdk.reordered
    );
    assert_eq!(sdk.delivered, sdk.acked * 2);
    assert_matches_schema(&report);
}

#[test]
fn node_faults_need_several_nodes() {
    for args in [
        vec!["--faults", "node-kill"],
        vec!["--nodes", "2", "--faults", "reset"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_chat-bench"))
            .args(&args)
            .args(["--duration", "1s", "--quiet"])
            .output()
            .expect("runs");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// `--soak` samples the memory and open files of the bench and of the server it started
/// over the run, and `--flooder` floods beside the load under the server's default limits:
/// the load stays clean, every sample has the server's numbers, and the report matches its
/// schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_beside_a_flooder_samples_resources_and_stays_clean() {
    let mut options = opts(&[
        "--server-limits",
        "default",
        "--flooder",
        "--sample-every",
        "1s",
    ]);
    // What `chat-bench --soak 3s` does with its value.
    options.soak = Some(options.duration);
    let report = chat_bench::run(&options).await.expect("bench runs");
    let sdk = &report.primary;
    assert_clean(sdk);
    let flooder = sdk.flooder.expect("a flooder report");
    assert!(flooder.emitted > 0, "{flooder:?}");
    assert!(
        sdk.resources.len() >= 4,
        "a sample a second over 3 s and one at the end: {:?}",
        sdk.resources
    );
    assert!(
        sdk.resources
            .iter()
            .all(|s| s.server_rss_kib.is_some() && s.server_fds.is_some() && s.bench_fds.is_some()),
        "{:?}",
        sdk.resources
    );
    assert_matches_schema(&report);
}
