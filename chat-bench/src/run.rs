//! One benchmark: start (or reach) the server, connect the clients, send on schedule while
//! faults are injected, wait for delivery to finish, and count.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chat_protocol::UserId;
use chat_testkit::{PostgresDatabase, RedisServer, Relay};
use futures_util::future::join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{watch, Mutex};
use tokio::time::Instant;

use crate::accounting::check;
use crate::child::{ChildConfig, ChildServer};
use crate::error::BenchError;
use crate::faults::{inject, FaultPlan, FaultTargets};
use crate::live::{histogram, ClientRecord, Live};
use crate::opts::{ClientKind, FaultKind, Opts};
use crate::progress::Progress;
use crate::report::{Configuration, CpuCost, Percentiles, Report, RunReport};
use crate::schedule::Schedule;
use crate::{raw, sdk};

/// Clients connect this many at a time.
const CONNECT_BATCH: usize = 64;

/// The server under test.
#[derive(Debug)]
pub struct Target {
    /// Its URL as clients see it without a relay.
    pub url: String,
    /// Its token secret.
    pub secret: String,
    /// The child process, when the bench started it (the first node, with `--nodes`).
    pub child: Option<Arc<Mutex<ChildServer>>>,
    /// Every node the bench started, the first included.
    pub nodes: Vec<Arc<Mutex<ChildServer>>>,
    /// Each node's URL as clients see it without a relay (the first is `url`).
    pub urls: Vec<String>,
    /// The Redis the bench started for its nodes.
    pub redis: Option<Arc<Mutex<RedisServer>>>,
    /// The database the bench created for its nodes.
    pub database: Option<PostgresDatabase>,
    /// Scratch space (server database, client outboxes).
    pub dir: tempfile::TempDir,
}

impl Target {
    /// Starts the embedded server, or describes the external one.
    pub async fn start(opts: &Opts) -> Result<Self, BenchError> {
        let dir = tempfile::tempdir()?;
        if let Some(url) = &opts.url {
            let secret = opts
                .jwt_secret
                .clone()
                .ok_or_else(|| BenchError::Usage("--url needs --jwt-secret".into()))?;
            return Ok(Self {
                url: url.clone(),
                urls: vec![url.clone()],
                secret,
                child: None,
                nodes: Vec::new(),
                redis: None,
                database: None,
                dir,
            });
        }
        let secret = format!("bench-{}", uuid::Uuid::new_v4());
        let exe = match &opts.server_exe {
            Some(exe) => exe.clone(),
            None => std::env::current_exe()?,
        };
        let (database, redis) = if opts.nodes > 1 || opts.db.is_some() {
            let admin = opts
                .db
                .as_deref()
                .ok_or_else(|| BenchError::Usage("--nodes needs --db postgres://…".into()))?;
            let database = PostgresDatabase::create_on(admin)
                .await
                .map_err(BenchError::Server)?;
            let redis = match &opts.redis {
                Some(url) => (url.clone(), None),
                None => {
                    let server = RedisServer::start().await.ok_or_else(|| {
                        BenchError::Server(
                            "--nodes without --redis starts redis-server, which is not on PATH"
                                .into(),
                        )
                    })?;
                    (server.url(), Some(server))
                }
            };
            (Some(database), Some(redis))
        } else {
            (None, None)
        };
        let db = match &database {
            Some(database) => PathBuf::from(database.url()),
            None => crate::child::db_path(dir.path()),
        };
        let config = ChildConfig {
            exe,
            db,
            secret: secret.clone(),
            durable: !opts.no_fsync,
            raised_limits: opts.server_limits == crate::opts::ServerLimits::Raised,
            resume_extension: !opts.no_resume,
            send_batch_extension: !opts.no_send_batch,
            redis: redis.as_ref().map(|(url, _)| url.clone()),
        };
        let mut nodes = Vec::new();
        let mut urls = Vec::new();
        for _ in 0..opts.nodes {
            let node = ChildServer::start(config.clone()).await?;
            urls.push(format!("http://{}", node.addr()));
            nodes.push(Arc::new(Mutex::new(node)));
        }
        Ok(Self {
            url: urls[0].clone(),
            urls,
            secret,
            child: nodes.first().cloned(),
            nodes,
            redis: redis
                .and_then(|(_, server)| server)
                .map(|server| Arc::new(Mutex::new(server))),
            database,
            dir,
        })
    }

    /// A token for `user`.
    pub fn token(&self, user: &str) -> Result<String, BenchError> {
        let user = UserId::new(user).map_err(|e| BenchError::Usage(e.to_string()))?;
        chat_server::mint_token(&self.secret, &user, Duration::from_secs(24 * 3600))
            .map_err(|e| BenchError::Usage(e.to_string()))
    }

    /// Stops the embedded servers, and drops the database made for them.
    pub async fn stop(&self) {
        for node in &self.nodes {
            node.lock().await.stop().await;
        }
        if let Some(database) = &self.database {
            if let Err(e) = database.drop_database().await {
                tracing::warn!(error = %e, database = database.name(), "bench database not dropped");
            }
        }
    }
}

fn validate(opts: &Opts) -> Result<(), BenchError> {
    if !(opts.rate.is_finite() && opts.rate > 0.0) {
        return Err(BenchError::Usage("--rate must be a positive number".into()));
    }
    if opts.soak.is_some() && opts.sample_every.is_zero() {
        return Err(BenchError::Usage(
            "--sample-every must be more than zero".into(),
        ));
    }
    if opts.duration.is_zero() {
        return Err(BenchError::Usage(
            "--duration must be more than zero".into(),
        ));
    }
    let needs_server = opts
        .fault_kinds()
        .iter()
        .any(|k| matches!(k, FaultKind::Kick | FaultKind::Restart));
    if opts.url.is_some() && needs_server {
        return Err(BenchError::Usage(
            "kick and restart need the server the bench starts; with --url use --faults reset,blackhole".into(),
        ));
    }
    let kinds = opts.fault_kinds();
    if opts.nodes < 2
        && kinds
            .iter()
            .any(|k| matches!(k, FaultKind::NodeKill | FaultKind::RedisRestart))
    {
        return Err(BenchError::Usage(
            "node-kill and redis-restart need --nodes 2 or more".into(),
        ));
    }
    if opts.redis.is_some() && kinds.contains(&FaultKind::RedisRestart) {
        return Err(BenchError::Usage(
            "redis-restart restarts the Redis the bench starts; drop --redis".into(),
        ));
    }
    if opts.nodes > 1 && opts.url.is_some() {
        return Err(BenchError::Usage(
            "--nodes starts the servers; drop --url".into(),
        ));
    }
    Ok(())
}

/// The configuration section of the report.
pub fn configuration(opts: &Opts) -> Configuration {
    Configuration {
        clients: opts.clients,
        rooms: opts.rooms.min(opts.clients),
        rate: opts.rate,
        duration_s: opts.duration.as_secs_f64(),
        faults: opts.fault_kinds(),
        fault_every_s: opts.fault_every.as_secs_f64(),
        downtime_s: opts.downtime.as_secs_f64(),
        seed: opts.seed,
        server: match (&opts.url, opts.nodes) {
            (Some(url), _) => url.clone(),
            (None, 1) if opts.db.is_none() => "embedded".into(),
            (None, nodes) => format!("{nodes} embedded node(s) on PostgreSQL and Redis"),
        },
        durable: !opts.no_fsync,
        server_limits: match (&opts.url, opts.server_limits) {
            (Some(_), _) => "external".into(),
            (None, crate::opts::ServerLimits::Raised) => "raised".into(),
            (None, crate::opts::ServerLimits::Default) => "default".into(),
        },
        persistent_outbox: !opts.in_memory_outbox,
        sdk_transport: opts.sdk_transport,
        version: env!("CARGO_PKG_VERSION").into(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        link: opts.link.clone(),
        server_extensions: opts.url.is_none().then(|| {
            let mut names = Vec::new();
            if !opts.no_resume {
                names.push("room:resume".to_owned());
            }
            if !opts.no_send_batch {
                names.push("message:send_batch".to_owned());
            }
            names
        }),
    }
}

/// Runs the benchmark the options describe.
pub async fn run(opts: &Opts) -> Result<Report, BenchError> {
    validate(opts)?;
    let target = Target::start(opts).await?;
    let mut runs = Vec::new();
    for (tag, kind) in opts.client_kinds().into_iter().enumerate() {
        match run_once(opts, kind, &target, tag).await {
            Ok(run) => runs.push(run),
            Err(e) => {
                target.stop().await;
                return Err(e);
            }
        }
    }
    target.stop().await;
    let mut runs = runs.into_iter();
    let primary = runs
        .next()
        .ok_or_else(|| BenchError::Usage("nothing to run".into()))?;
    Ok(Report {
        configuration: configuration(opts),
        primary,
        baseline: runs.next(),
    })
}

enum Connected {
    Sdk(sdk::SdkClient),
    Raw(raw::RawClient),
}

pub(crate) async fn run_once(
    opts: &Opts,
    kind: ClientKind,
    target: &Target,
    tag: usize,
) -> Result<RunReport, BenchError> {
    let kinds = opts.fault_kinds();
    let transport = opts.sdk_transport;
    let clients = opts.clients;
    let rooms = opts.rooms.min(clients);
    let room_of: Arc<Vec<u32>> = Arc::new((0..clients).map(|i| i % rooms).collect());
    let mut members = vec![0u64; rooms as usize];
    for room in room_of.iter() {
        members[*room as usize] += 1;
    }
    let needs_relay = opts.link.is_some()
        || kinds
            .iter()
            .any(|k| matches!(k, FaultKind::Reset | FaultKind::Blackhole));
    let mut relays = Vec::new();
    if needs_relay {
        for node_url in &target.urls {
            let upstream = node_url
                .trim_start_matches("http://")
                .parse()
                .map_err(|_| {
                    BenchError::Usage(format!(
                        "the relay needs an http://host:port URL, got {node_url}"
                    ))
                })?;
            relays.push(Arc::new(
                Relay::start_shaped(upstream, opts.link_shape().unwrap_or_default()).await?,
            ));
        }
    }
    // What clients connect to: each node's relay, or the node itself.
    let node_urls: Vec<String> = if relays.is_empty() {
        target.urls.clone()
    } else {
        relays.iter().map(|relay| relay.url()).collect()
    };
    let outbox_dir: Option<PathBuf> =
        (!opts.in_memory_outbox).then(|| target.dir.path().join(format!("outboxes-{tag}")));
    if let Some(dir) = &outbox_dir {
        std::fs::create_dir_all(dir)?;
    }

    // Users and rooms are new on every run, so a second run against the same server (`--url`)
    // does not read the first one's messages as duplicates.
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let run_id = &run_id[..8];
    let prefix = match kind {
        ClientKind::Sdk => format!("s{tag}-{run_id}"),
        ClientKind::Raw => format!("r{tag}-{run_id}"),
    };
    let mut connected = Vec::with_capacity(clients as usize);
    let indices: Vec<u32> = (0..clients).collect();
    for batch in indices.chunks(CONNECT_BATCH) {
        let attempts = batch.iter().map(|&index| {
            // Client `index` starts on node `index % nodes` and fails over to the others in turn.
            let home = index as usize % node_urls.len();
            let urls: Vec<String> = (0..node_urls.len())
                .map(|offset| node_urls[(home + offset) % node_urls.len()].clone())
                .collect();
            let (outbox_dir, room) = (outbox_dir.clone(), room_of[index as usize]);
            let token = target.token(&format!("bench-{prefix}-{index}"));
            let prefix = prefix.clone();
            async move {
                let token = token?;
                Ok::<_, BenchError>(match kind {
                    ClientKind::Sdk => Connected::Sdk(
                        sdk::connect(
                            index,
                            room,
                            &prefix,
                            &urls,
                            token,
                            outbox_dir.as_deref(),
                            transport,
                        )
                        .await?,
                    ),
                    ClientKind::Raw => {
                        Connected::Raw(raw::connect(index, room, &prefix, &urls[0], token).await?)
                    }
                })
            }
        });
        for client in join_all(attempts).await {
            connected.push(client?);
        }
    }

    let live = Arc::new(Live::new(members));
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let interval = Duration::from_secs_f64(f64::from(clients) / opts.rate);
    let cpu_at_start = cpu_now(target).await;
    let start = Instant::now() + Duration::from_millis(200);
    let end = start + opts.duration;
    let (finish, finished) = watch::channel(false);
    let sampler = opts.soak.map(|_| {
        tokio::spawn(crate::resources::sample(
            opts.sample_every,
            target.nodes.clone(),
            start,
            finished.clone(),
        ))
    });
    let (stop_flood, flood_stops) = watch::channel(false);
    let flooder = if opts.flooder {
        Some(start_flooder(
            node_urls[0].clone(),
            target.token(&format!("bench-{prefix}-flooder"))?,
            format!("bench-{prefix}-flood"),
            flood_stops,
        ))
    } else {
        None
    };
    let schedules: Vec<Schedule> = connected
        .iter()
        .map(|_| Schedule {
            start,
            end,
            phase: interval.mul_f64(rng.random::<f64>()),
            interval,
        })
        .collect();
    let tasks: Vec<_> = connected
        .into_iter()
        .zip(crate::schedule::pace(&schedules))
        .map(|(client, due)| {
            let (live, room_of, finished) = (live.clone(), room_of.clone(), finished.clone());
            match client {
                Connected::Sdk(c) => tokio::spawn(c.run(live, room_of, due, finished)),
                Connected::Raw(c) => tokio::spawn(c.run(live, room_of, due, finished)),
            }
        })
        .collect();
    let plan = FaultPlan {
        kinds,
        every: opts.fault_every,
        downtime: opts.downtime,
        rng: StdRng::seed_from_u64(opts.seed.wrapping_add(1)),
    };
    let faults = tokio::spawn(inject(
        plan,
        FaultTargets {
            relays: relays.clone(),
            servers: target.nodes.clone(),
            redis: target.redis.clone(),
        },
        live.clone(),
        start,
        end,
    ));
    let progress = Progress::start(opts, kind, live.clone(), start, end);

    tokio::time::sleep_until(end).await;
    let _ = stop_flood.send(true);
    let injected = faults
        .await
        .map_err(|e| BenchError::Server(format!("fault injector failed: {e}")))??;
    let drain_started = Instant::now();
    let quiet = Duration::from_secs(3).max(opts.downtime * 4);
    // Whether deliveries were still arriving when the drain was given up on: what is
    // missing then may be on its way (undelivered); after a quiet spell it is lost.
    let mut still_arriving = false;
    let drained = loop {
        if live.pending() == 0 && live.missing_deliveries() == 0 {
            break true;
        }
        let since_progress = live.now_us().saturating_sub(
            live.last_progress_us
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        let given_up = drain_started.elapsed() >= opts.drain_timeout
            || (kind == ClientKind::Raw && Duration::from_micros(since_progress) >= quiet);
        if given_up {
            still_arriving = Duration::from_micros(since_progress) < quiet;
            break false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let drain = drain_started.elapsed();
    let _ = finish.send(true);
    progress.finish();
    let mut records: Vec<ClientRecord> = Vec::with_capacity(tasks.len());
    for task in tasks {
        records.push(
            task.await
                .map_err(|e| BenchError::Server(format!("a client task failed: {e}")))?,
        );
    }
    records.sort_by_key(|r| r.index);
    let cpu_at_end = cpu_now(target).await;
    let mut report = summarise(
        kind,
        &records,
        &room_of,
        &live,
        injected,
        opts.duration,
        drained,
        still_arriving,
        drain,
    );
    let spent = |start: Option<f64>, end: Option<f64>| Some(end? - start?);
    report.cpu = CpuCost::new(
        spent(cpu_at_start.0, cpu_at_end.0),
        spent(cpu_at_start.1, cpu_at_end.1),
        report.delivered,
    );
    if let Some(sampler) = sampler {
        report.resources = sampler
            .await
            .map_err(|e| BenchError::Server(format!("the resource sampler failed: {e}")))?;
    }
    if let Some(flooder) = flooder {
        report.flooder = Some(
            tokio::task::spawn_blocking(move || flooder.join())
                .await
                .map_err(|e| BenchError::Server(format!("the flooder failed: {e}")))?
                .map_err(|_| BenchError::Server("the flooder panicked".into()))??,
        );
    }
    Ok(report)
}

/// Starts the flooder on a thread and runtime of its own, so that its busy loop competes
/// with the measured clients for CPU only, as another process would, not for their
/// runtime's scheduler.
fn start_flooder(
    url: String,
    token: String,
    room: String,
    stops: watch::Receiver<bool>,
) -> std::thread::JoinHandle<Result<crate::flooder::FlooderReport, BenchError>> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(crate::flooder::run(url, token, room, stops))
    })
}

/// CPU seconds so far of the bench process and of the server it started.
async fn cpu_now(target: &Target) -> (Option<f64>, Option<f64>) {
    let mut server = None;
    for node in &target.nodes {
        if let Some(seconds) = node.lock().await.cpu_seconds() {
            server = Some(server.unwrap_or(0.0) + seconds);
        }
    }
    (crate::cpu::process_seconds(None), server)
}

#[allow(clippy::too_many_arguments)]
fn summarise(
    kind: ClientKind,
    records: &[ClientRecord],
    room_of: &[u32],
    live: &Live,
    injected: Vec<FaultKind>,
    duration: Duration,
    drained: bool,
    still_arriving: bool,
    drain: Duration,
) -> RunReport {
    let logs: Vec<_> = records.iter().map(|r| r.log.clone()).collect();
    let received: Vec<_> = records.iter().map(|r| r.received.clone()).collect();
    let counts = check(room_of, &logs, &received);
    let merge = |pick: fn(&ClientRecord) -> &hdrhistogram::Histogram<u64>| {
        let mut all = histogram();
        for record in records {
            let _ = all.add(pick(record));
        }
        Percentiles::of(&all)
    };
    let sent: u64 = logs.iter().map(|l| l.sent.len() as u64).sum();
    let acked: u64 = logs.iter().map(|l| l.acked.len() as u64).sum();
    let failed: u64 = logs.iter().map(|l| l.failed.len() as u64).sum();
    let mut report = RunReport {
        client: kind,
        sent,
        acked,
        failed,
        lost: 0,
        undelivered: 0,
        duplicated: 0,
        reordered: 0,
        unexpected: 0,
        delivered: 0,
        reconnects: live.reconnects.load(std::sync::atomic::Ordering::Relaxed),
        faults: injected,
        peak_outbox_depth: records.iter().map(|r| r.peak_outbox).max().unwrap_or(0),
        throughput_per_s: acked as f64 / duration.as_secs_f64(),
        drained,
        drain_ms: drain.as_secs_f64() * 1_000.0,
        latency_ms: merge(|r| &r.latency_corrected),
        latency_raw_ms: merge(|r| &r.latency_raw),
        ack_latency_ms: merge(|r| &r.ack),
        reconnect_ms: merge(|r| &r.reconnect),
        restart_to_stored_ms: merge(|r| &r.restart_store),
        cpu: CpuCost::default(),
        flooder: None,
        resources: Vec::new(),
    };
    report.counts(counts, still_arriving);
    report
}
