//! The link watchdog: notices a silent (blackholed) connection.
//!
//! A connection whose peer vanished without a FIN or RST looks healthy until something
//! times out. The watchdog runs beside the session as its own task: whenever nothing was
//! heard from the server for `health_interval`, it sends a cheap probe request, and when
//! the probe is not answered within `health_timeout` it closes the connection — which wakes
//! every request waiting on it and ends the session. Being a task of its own, it keeps
//! watching while the session itself waits on a request (a receipt, a catch-up page).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chat_protocol::requests::names;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::transport::Connection;

/// When the server was last heard from, shared by the session (which records it) and the
/// watchdog (which reads it).
#[derive(Debug)]
pub(crate) struct LastHeard {
    start: Instant,
    /// Microseconds after `start`.
    at_us: AtomicU64,
}

impl LastHeard {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            at_us: AtomicU64::new(0),
        }
    }

    /// Records that something arrived just now.
    pub(crate) fn now(&self) {
        let elapsed = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.at_us.fetch_max(elapsed, Ordering::Relaxed);
    }

    fn at(&self) -> Instant {
        self.start + Duration::from_micros(self.at_us.load(Ordering::Relaxed))
    }
}

/// The watchdog task; aborted when dropped, so it never outlives its session.
pub(crate) struct Watchdog(JoinHandle<()>);

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts watching `conn`.
pub(crate) fn watch(
    conn: Arc<dyn Connection>,
    heard: Arc<LastHeard>,
    interval: Duration,
    timeout: Duration,
) -> Watchdog {
    Watchdog(tokio::spawn(async move {
        loop {
            let due = heard.at() + interval;
            if Instant::now() < due {
                tokio::time::sleep_until(due).await;
                continue;
            }
            // Any answer proves the link; the probe touches no storage on the server.
            tracing::trace!(silent_for = ?heard.at().elapsed(), "probing the link");
            let probe = conn.request(names::PRESENCE_GET, serde_json::json!({ "users": [] }));
            match tokio::time::timeout(timeout, probe).await {
                Ok(Ok(_)) => heard.now(),
                Ok(Err(err)) => {
                    conn.close(&format!("health check failed: {err}"));
                    return;
                }
                Err(_) => {
                    conn.close(&format!("health check unanswered after {timeout:?}"));
                    return;
                }
            }
        }
    }))
}
