//! Forcing reconnects on schedule: every `--fault-every`, the next kind in a seeded shuffle
//! of the kinds asked for (each round uses every kind once, so kinds are mixed evenly).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chat_testkit::Relay;
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
    /// The relay clients connect through, when reset or blackhole are asked for.
    pub relay: Option<Arc<Relay>>,
    /// The server process, when the bench started it.
    pub server: Option<Arc<Mutex<ChildServer>>>,
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
        apply(kind, downtime, &targets, &live).await?;
        injected.push(kind);
        next += every;
    }
    Ok(injected)
}

async fn apply(
    kind: FaultKind,
    downtime: Duration,
    targets: &FaultTargets,
    live: &Live,
) -> Result<(), BenchError> {
    let missing = |what: &str| {
        BenchError::Usage(format!(
            "the {what} fault needs {}",
            match what {
                "kick" | "restart" => "a server started by the bench (not --url)",
                _ => "the relay",
            }
        ))
    };
    match kind {
        FaultKind::Kick => {
            let server = targets.server.as_ref().ok_or_else(|| missing("kick"))?;
            server.lock().await.kick().await?;
        }
        FaultKind::Reset => {
            let relay = targets.relay.as_ref().ok_or_else(|| missing("reset"))?;
            relay.refuse_new(true);
            relay.reset_all();
            tokio::time::sleep(downtime).await;
            relay.refuse_new(false);
        }
        FaultKind::Blackhole => {
            let relay = targets.relay.as_ref().ok_or_else(|| missing("blackhole"))?;
            relay.refuse_new(true);
            relay.blackhole_all();
            tokio::time::sleep(downtime).await;
            relay.refuse_new(false);
        }
        FaultKind::Restart => {
            let server = targets.server.as_ref().ok_or_else(|| missing("restart"))?;
            let mut server = server.lock().await;
            server.kill().await;
            tokio::time::sleep(downtime).await;
            server.resume().await?;
            live.server_back_us.store(live.now_us(), Ordering::Relaxed);
        }
    }
    tracing::debug!(?kind, "fault injected");
    Ok(())
}
