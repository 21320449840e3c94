//! Command-line options of `chat-bench`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// One kind of forced reconnect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The server disconnects every socket.
    Kick,
    /// The relay resets every connection (TCP RST) and refuses new ones for `--downtime`.
    Reset,
    /// The relay stops forwarding silently (only a heartbeat notices) and refuses new
    /// connections for `--downtime`.
    Blackhole,
    /// The server process is killed with SIGKILL and started again on the same database
    /// after `--downtime` (every node, with `--nodes`).
    Restart,
    /// One node (the next in turn) is killed with SIGKILL and started again after
    /// `--downtime`; its clients move to the other nodes meanwhile. Needs `--nodes` 2 or more.
    NodeKill,
    /// The Redis the bench started is killed with SIGKILL and started again, empty, after
    /// `--downtime`. Needs `--nodes` 2 or more and no `--redis`.
    RedisRestart,
}

/// Which client drives the load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// The chat SDK (persistent outbox, resends, catch-up).
    Sdk,
    /// Bare rust_socketio emits, reconnecting by themselves: no outbox, no sync.
    Raw,
}

/// The per-user limits of the server the bench starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerLimits {
    /// Rates and the connection cap raised out of the way, so the run measures delivery.
    Raised,
    /// The server's own defaults, as users run it.
    Default,
}

/// Which Socket.IO transport the SDK clients use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SdkTransport {
    /// The SDK's default: WebSocket on tokio-tungstenite, acks pipelined.
    Websocket,
    /// rust_socketio 0.6, one request in flight per connection.
    Socketio,
}

impl SdkTransport {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Websocket => "websocket",
            Self::Socketio => "socketio",
        }
    }
}

/// Delivery latency and message loss across forced reconnects.
///
/// With no flags it starts a reference server (a child process on a temporary SQLite file),
/// connects 50 SDK clients in 10 rooms, sends 1,000 messages/s for 30 s while forcing a
/// reconnect of every client every 2 s (kick, reset, blackhole and restart in turn), then
/// waits for delivery to finish and reports what was lost, duplicated or reordered and how
/// long delivery took.
///
/// Examples:
///   chat-bench --compare --duration 10s
///   chat-bench --faults none --rate 2000 --json report.json
///   chat-bench --url http://127.0.0.1:7070 --jwt-secret SECRET --faults reset,blackhole
///   chat-bench --rooms-per-client 1000
///   chat-bench --sweep --duration 10s
#[derive(Parser, Clone, Debug)]
#[command(name = "chat-bench", version, verbatim_doc_comment)]
pub struct Opts {
    /// Number of clients; each sends and receives.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub clients: u32,
    /// Number of rooms; clients are spread over them evenly.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub rooms: u32,
    /// Messages per second, all clients together (open loop: sent on schedule whatever the latency).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// How long to send.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Kinds of forced reconnect, comma-separated, used in turn; `none` for a calm run.
    #[arg(long, value_delimiter = ',', default_value = "kick,reset,blackhole,restart", value_parser = parse_fault)]
    pub faults: Vec<Option<FaultKind>>,
    /// Time between two faults.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub fault_every: Duration,
    /// How long a reset, blackhole or restart keeps the server unreachable.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    pub downtime: Duration,
    /// Longest wait, after sending stops, for everything to be delivered.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Write the report as JSON to this file (`-` for stdout).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a plot (SVG) to this file: latency by percentile, or with `--sweep` p99 against rate.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Start this many server processes on one PostgreSQL (`--db`) and one Redis, and spread
    /// the clients over them (each client may fail over to every other node).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub nodes: u32,
    /// The PostgreSQL server the nodes (one or more) store in, as the URL of a role that may create databases
    /// (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`); the bench creates a fresh database on
    /// it for the run and drops it afterwards.
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// With `--nodes`: the Redis the nodes share; without it the bench starts one
    /// (`redis-server` on PATH), which the `redis-restart` fault needs.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// Target an external server instead of starting one (kick and restart are then unavailable).
    #[arg(long, requires = "jwt_secret")]
    pub url: Option<String>,
    /// The external server's token secret.
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Drive the load with this client instead of the SDK.
    #[arg(long, value_enum, conflicts_with = "compare")]
    pub baseline: Option<ClientKind>,
    /// Run the SDK and the raw baseline one after the other and report them side by side.
    #[arg(long)]
    pub compare: bool,
    /// Seed of the fault order and the clients' send phases.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The transport under the SDK clients.
    #[arg(long, value_enum, default_value = "websocket")]
    pub sdk_transport: SdkTransport,
    /// Keep the SDK outboxes in memory instead of on disk.
    #[arg(long)]
    pub in_memory_outbox: bool,
    /// Run the started server with `synchronous=NORMAL` instead of `FULL`.
    #[arg(long)]
    pub no_fsync: bool,
    /// The started server's per-user rate limits and connection cap: raised out of the way
    /// (the default), or the server's own defaults.
    #[arg(long, value_enum, default_value = "raised")]
    pub server_limits: ServerLimits,
    /// Instead of a load run: open this many idle connections and report the server's memory
    /// per connection.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub idle_connections: Option<u32>,
    /// Instead of a load run: one client in this many rooms; the server (with its default
    /// limits) is SIGKILLed and restarted `--reconnects` times, and the report gives the
    /// requests each reconnect cost and how long until every room was live again.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000), conflicts_with = "idle_connections")]
    pub rooms_per_client: Option<u32>,
    /// With `--rooms-per-client`: how many times the server is killed and restarted.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub reconnects: u32,
    /// Instead of one run: find the capacity of the SDK and of the raw baseline, the highest
    /// rate (from `--rate`, doubling, then bisecting) at which a calm run of `--duration`
    /// drains with p99 within `--p99-bound`; prints each step and the ratio.
    #[arg(long, conflicts_with_all = ["compare", "baseline", "rooms_per_client", "idle_connections", "url"])]
    pub sweep: bool,
    /// With `--sweep`: the p99 end-to-end latency a step must stay within.
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    pub p99_bound: std::time::Duration,
    /// Carry every client connection over a shaped link, made in the bench's own relay:
    /// e.g. "delay 30ms jitter 10ms" (each direction; order kept as TCP keeps it), plus
    /// "rate 2mbit" (a bandwidth cap) and "stall 300ms every 10s" (random stalls).
    #[arg(long, value_parser = parse_link)]
    pub link: Option<String>,
    /// Start the server without the `room:resume` extension, so clients re-join room by
    /// room (as with a server that lacks it).
    #[arg(long)]
    pub no_resume: bool,
    /// Start the server without the `message:send_batch` extension, so SDK clients send one
    /// message per request (as to a server that lacks it).
    #[arg(long)]
    pub no_send_batch: bool,
    /// The executable started as the server (default: this program, which can serve).
    #[arg(long, hide = true)]
    pub server_exe: Option<PathBuf>,
    /// A soak test: run for this long (in place of `--duration`, for example `1h`) and
    /// sample the memory and open files of the bench and of the server every
    /// `--sample-every`; the report shows the curve.
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with_all = ["duration", "sweep", "compare"])]
    pub soak: Option<Duration>,
    /// With `--soak`: the time between two samples.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    pub sample_every: Duration,
    /// Add a flooder beside the measured load: one more user, in a room of its own, sending
    /// `message:send` as fast as its socket takes them without waiting for answers. With
    /// `--server-limits default` this shows what a flood costs everyone else.
    #[arg(long, conflicts_with = "sweep")]
    pub flooder: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_link(value: &str) -> Result<String, String> {
    value
        .parse::<chat_testkit::LinkShape>()
        .map(|_| value.to_owned())
        .map_err(|e| e.to_string())
}

impl Opts {
    /// The `--link` shaping, if any.
    pub fn link_shape(&self) -> Option<chat_testkit::LinkShape> {
        self.link.as_deref().and_then(|text| text.parse().ok())
    }
}

fn parse_fault(value: &str) -> Result<Option<FaultKind>, String> {
    if value.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    FaultKind::from_str(value, true).map(Some).map_err(|_| {
        format!(
            "unknown fault {value:?}: use kick, reset, blackhole, restart, node-kill, redis-restart or none"
        )
    })
}

impl Opts {
    /// The fault kinds asked for (empty for `none`).
    pub fn fault_kinds(&self) -> Vec<FaultKind> {
        self.faults.iter().flatten().copied().collect()
    }

    /// Which client kinds to run, in order.
    pub fn client_kinds(&self) -> Vec<ClientKind> {
        if self.compare {
            vec![ClientKind::Sdk, ClientKind::Raw]
        } else {
            vec![self.baseline.unwrap_or(ClientKind::Sdk)]
        }
    }
}
