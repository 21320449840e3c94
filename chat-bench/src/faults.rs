//! Forcing reconnects on schedule: every `--fault-every`, the next kind in a seeded shuffle
//! of the kinds asked for (each round uses every kind once, so kinds are mixed evenly).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chat_testkit::{RedisServer, Relay};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::child::ChildServer;
use crate::error::BenchError;
use crate::live::Live;
use crate::opts::FaultKind;

/// What the injector can act on.
#[derive(Debug)]
pub struct FaultTargets {
    /// The relays clients connect through (one per node), when reset or blackhole are
    /// asked for.
    pub relays: Vec<Arc<Relay>>,
    /// The server processes the bench started (one per node).
    pub servers: Vec<Arc<Mutex<ChildServer>>>,
    /// The Redis the bench started for its nodes.
    pub redis: Option<Arc<Mutex<RedisServer>>>,
}

/// Which faults, how often and for how long.
#[derive(Debug)]
pub struct FaultPlan {
    /// The kinds to use.
    pub kinds: Vec<FaultKind>,
    /// Time between two faults.
    pub every: Duration,
    /// How long a fault keeps the server unreachable.
    pub downtime: Duration,
    /// Orders the kinds.
    pub rng: StdRng,
}

/// Injects faults from `start + every` until `end`; returns the kinds injected, in order.
pub async fn inject(
    plan: FaultPlan,
    targets: FaultTargets,
    live: Arc<Live>,
    start: Instant,
    end: Instant,
) -> Result<Vec<FaultKind>, BenchError> {
    let FaultPlan {
        kinds,
        every,
        downtime,
        mut rng,
    } = plan;
    let mut injected = Vec::new();
    if kinds.is_empty() || every.is_zero() {
        return Ok(injected);
    }
    let mut round: Vec<FaultKind> = Vec::new();
    let mut next = start + every;
    while next < end {
        tokio::time::sleep_until(next).await;
        if round.is_empty() {
            round = kinds.clone();
            round.shuffle(&mut rng);
        }
        let Some(kind) = round.pop() else { break };
        let victim = injected.iter().filter(|k| **k == kind).count();
        apply(kind, downtime, &targets, &live, victim).await?;
        injected.push(kind);
        next += every;
    }
    Ok(injected)
}

/// Applies one fault; `victim` picks the node of a `node-kill` (in turn).
async fn apply(
    kind: FaultKind,
    downtime: Duration,
    targets: &FaultTargets,
    live: &Live,
    victim: usize,
) -> Result<(), BenchError> {
    let missing = |what: &str| {
        BenchError::Usage(format!(
            "the {what} fault needs {}",
            match what {
                "kick" | "restart" | "node-kill" => "a server started by the bench (not --url)",
                "redis-restart" => "the Redis the bench starts (--nodes 2 or more, no --redis)",
                _ => "the relay",
            }
        ))
    };
    match kind {
        FaultKind::Kick => {
            if targets.servers.is_empty() {
                return Err(missing("kick"));
            }
            for server in &targets.servers {
                server.lock().await.kick().await?;
            }
        }
        FaultKind::Reset | FaultKind::Blackhole => {
            if targets.relays.is_empty() {
                return Err(missing(if kind == FaultKind::Reset {
                    "reset"
                } else {
                    "blackhole"
                }));
            }
            for relay in &targets.relays {
                relay.refuse_new(true);
                if kind == FaultKind::Reset {
                    relay.reset_all();
                } else {
                    relay.blackhole_all();
                }
            }
            tokio::time::sleep(downtime).await;
            for relay in &targets.relays {
                relay.refuse_new(false);
            }
        }
        FaultKind::Restart => {
            if targets.servers.is_empty() {
                return Err(missing("restart"));
            }
            let mut servers = Vec::new();
            for server in &targets.servers {
                let mut server = server.clone().lock_owned().await;
                server.kill().await;
                servers.push(server);
            }
            tokio::time::sleep(downtime).await;
            for server in &mut servers {
                server.resume().await?;
            }
            live.server_back_us.store(live.now_us(), Ordering::Relaxed);
        }
        FaultKind::NodeKill => {
            if targets.servers.len() < 2 {
                return Err(missing("node-kill"));
            }
            let node = &targets.servers[victim % targets.servers.len()];
            let mut node = node.lock().await;
            node.kill().await;
            tokio::time::sleep(downtime).await;
            node.resume().await?;
        }
        FaultKind::RedisRestart => {
            let redis = targets
                .redis
                .as_ref()
                .ok_or_else(|| missing("redis-restart"))?;
            let mut redis = redis.lock().await;
            redis.kill().await;
            tokio::time::sleep(downtime).await;
            redis.restart().await;
        }
    }
    tracing::debug!(?kind, "fault injected");
    Ok(())
}
