//! The link watchdog: notices a silent (blackholed) connection.
//!
//! A connection whose peer vanished without a FIN or RST looks healthy until something
//! times out. The watchdog runs beside the session as its own task: whenever nothing was
//! heard from the server for `health_interval`, it sends a cheap probe request, and when
//! nothing at all arrives within `health_timeout` after the probe it closes the connection —
//! which wakes every request waiting on it and ends the session. Being a task of its own, it
//! keeps watching while the session itself waits on a request (a receipt, a catch-up page).
//! "Heard" counts the events the session handled and, when the transport tracks it
//! ([`Connection::last_heard`]), every frame that arrived.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_protocol::requests::names;
use tokio::task::JoinHandle;

use crate::transport::{Connection, LastHeard};

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
        // The later of what the session handled and what the transport saw arrive.
        let latest = || match conn.last_heard() {
            Some(frame) => frame.max(heard.at()),
            None => heard.at(),
        };
        loop {
            let due = latest() + interval;
            if Instant::now() < due {
                tokio::time::sleep_until(due.into()).await;
                continue;
            }
            // Any answer proves the link; the probe touches no storage on the server.
            tracing::trace!(silent_for = ?latest().elapsed(), "probing the link");
            let asked = Instant::now();
            let probe = conn.request(names::PRESENCE_GET, serde_json::json!({ "users": [] }));
            match tokio::time::timeout(timeout, probe).await {
                Ok(Ok(_)) => heard.now(),
                Ok(Err(err)) => {
                    conn.close(&format!("health check failed: {err}"));
                    return;
                }
                // Other frames arrived meanwhile: the link lives, the probe is only queued
                // behind slower requests. Look again after the next quiet spell.
                Err(_) if latest() > asked => {}
                Err(_) => {
                    conn.close(&format!(
                        "nothing heard for {timeout:?} after a health probe"
                    ));
                    return;
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    //! The watchdog's decision alone, against a connection that never answers a probe
    //! (the server cannot be made to hold one answer back while other frames flow).

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use async_trait::async_trait;
    use serde_json::Value;

    use super::*;
    use crate::error::TransportError;

    const PATIENCE: Duration = Duration::from_secs(20);

    /// Swallows every request; reports frames per `last_heard` when `frames` is set.
    #[derive(Debug, Default)]
    struct Unanswering {
        probes: AtomicUsize,
        closed: Mutex<Option<String>>,
        frames: Option<LastHeard>,
        changed: tokio::sync::Notify,
    }

    #[async_trait]
    impl Connection for Unanswering {
        async fn request(&self, _: &str, _: Value) -> Result<Value, TransportError> {
            self.probes.fetch_add(1, Ordering::SeqCst);
            self.changed.notify_waiters();
            std::future::pending().await
        }
        async fn emit(&self, _: &str, _: Value) -> Result<(), TransportError> {
            Ok(())
        }
        async fn closed(&self) -> String {
            std::future::pending().await
        }
        fn is_closed(&self) -> bool {
            self.closed.lock().expect("lock").is_some()
        }
        fn close(&self, reason: &str) {
            *self.closed.lock().expect("lock") = Some(reason.to_owned());
            self.changed.notify_waiters();
        }
        fn last_heard(&self) -> Option<Instant> {
            self.frames.as_ref().map(LastHeard::at)
        }
    }

    /// Waits until `done` holds of `conn`, re-checking on each change.
    async fn wait_until(conn: &Unanswering, done: impl Fn(&Unanswering) -> bool) {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let changed = conn.changed.notified();
                if done(conn) {
                    return;
                }
                changed.await;
            }
        })
        .await
        .expect("timed out");
    }

    #[tokio::test]
    async fn a_silent_link_is_closed_once_a_probe_goes_unanswered() {
        let conn = Arc::new(Unanswering::default());
        let _watchdog = watch(
            conn.clone(),
            Arc::new(LastHeard::new()),
            Duration::from_millis(20),
            Duration::from_millis(50),
        );
        wait_until(&conn, Unanswering::is_closed).await;
        let reason = conn.closed.lock().expect("lock").clone().expect("closed");
        assert!(reason.contains("nothing heard"), "{reason}");
    }

    #[tokio::test]
    async fn an_unanswered_probe_is_forgiven_while_other_frames_arrive() {
        let conn = Arc::new(Unanswering {
            frames: Some(LastHeard::new()),
            ..Unanswering::default()
        });
        // A frame every 100 ms: each probe (after 50 ms of quiet) sees one within its 500 ms.
        let talker = {
            let conn = conn.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if let Some(frames) = &conn.frames {
                        frames.now();
                    }
                }
            })
        };
        let _watchdog = watch(
            conn.clone(),
            Arc::new(LastHeard::new()),
            Duration::from_millis(50),
            Duration::from_millis(500),
        );
        wait_until(&conn, |c| {
            c.probes.load(Ordering::SeqCst) >= 3 || c.is_closed()
        })
        .await;
        talker.abort();
        assert!(!conn.is_closed(), "closed a link that kept talking");
    }
}
