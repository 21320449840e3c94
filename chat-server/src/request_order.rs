//! Per-socket ordering of request handling, and the bound on a socket's queue.
//!
//! socketioxide runs every event handler in its own task, so two requests from one socket
//! may be handled in either order. Extraction, though, happens in arrival order on the
//! socket's receive loop. [`Turn`] takes a place in line during extraction; the handler waits
//! for the request before it to be done before touching state, and passes the turn on when it
//! is done (or dropped), so one socket's requests take effect exactly in the order they
//! arrived. Each request waits on the one before it alone (a chain of one-shot channels), so
//! passing the turn wakes one task, however long the line.
//!
//! A client that sends faster than its requests are handled (a flood that never waits for
//! its acks) would grow that line, and the server's memory, without bound: past
//! [`Turnstile::new`]'s limit its socket is closed instead.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;
use socketioxide_core::Value;
use tokio::sync::oneshot;

/// A socket's line of requests: the end of the line, and how many are in it.
#[derive(Debug)]
pub struct Turnstile {
    /// Resolves when the last request in line is done.
    last: Mutex<Option<oneshot::Receiver<()>>>,
    queued: AtomicUsize,
    max_queued: usize,
}

impl Turnstile {
    /// A line of at most `max_queued` requests.
    pub fn new(max_queued: usize) -> Self {
        Self {
            last: Mutex::new(None),
            queued: AtomicUsize::new(0),
            max_queued,
        }
    }

    /// A place at the end of the line, or `None` when the line is full.
    fn join(self: &Arc<Self>) -> Option<Turn> {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let (done, next_waits_on) = oneshot::channel();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let after = last.replace(next_waits_on);
        Some(Turn {
            after,
            done: Some(done),
            turnstile: Some(self.clone()),
        })
    }
}

/// A request's place in its socket's order. Must be the last extractor of a handler, so that
/// a place is only taken when the handler really runs.
#[derive(Debug)]
pub struct Turn {
    after: Option<oneshot::Receiver<()>>,
    done: Option<oneshot::Sender<()>>,
    turnstile: Option<Arc<Turnstile>>,
}

impl Turn {
    /// Waits until every earlier request of this socket is done; the returned guard passes
    /// the turn on when dropped.
    pub async fn wait(mut self) -> TurnGuard {
        if let Some(before) = self.after.take() {
            // An error means the one before was dropped: it is done as well.
            let _ = before.await;
        }
        TurnGuard { turn: self }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(turnstile) = &self.turnstile {
            turnstile.queued.fetch_sub(1, Ordering::AcqRel);
        }
        // Dropping `done` wakes the next request; a request dropped before its turn came
        // must still not let the next one overtake the one before it.
        if let (Some(before), Some(done)) = (self.after.take(), self.done.take()) {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = before.await;
                    drop(done);
                });
            }
        }
    }
}

/// Holds the turn; dropping it lets the socket's next request proceed.
#[derive(Debug)]
pub struct TurnGuard {
    #[allow(dead_code)]
    turn: Turn,
}

/// The socket sent more requests than its line holds; it has been closed.
#[derive(Debug, thiserror::Error)]
#[error("too many requests waiting on this socket; it was closed")]
pub struct LineFull;

impl<A: Adapter> FromMessageParts<A> for Turn {
    type Error = LineFull;

    fn from_message_parts(
        socket: &Arc<Socket<A>>,
        _: &mut Value,
        _: &Option<i64>,
    ) -> Result<Self, Self::Error> {
        let Some(turnstile) = socket.extensions.get::<Arc<Turnstile>>() else {
            return Ok(Turn {
                after: None,
                done: None,
                turnstile: None,
            });
        };
        turnstile.join().ok_or_else(|| {
            if socket.extensions.get::<Flooded>().is_none() {
                socket.extensions.insert(Flooded);
                tracing::warn!(sid = %socket.id, "request line full; closing the socket");
                crate::metrics::DISCONNECTS.inc(&["request_flood"]);
                crate::fanout::disconnect(SocketRef::from(socket.clone()));
            }
            LineFull
        })
    }
}

/// Marks a socket closed for flooding, so that it is closed (and counted) once.
#[derive(Clone, Copy, Debug)]
struct Flooded;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn later_requests_wait_for_earlier_ones() {
        let turnstile = Arc::new(Turnstile::new(8));
        let first = turnstile.join().expect("room");
        let second = turnstile.join().expect("room");
        let (log_tx, mut log_rx) = tokio::sync::mpsc::unbounded_channel();
        let log = log_tx.clone();
        let late = tokio::spawn(async move {
            let _guard = second.wait().await;
            let _ = log.send(2);
        });
        tokio::task::yield_now().await;
        assert!(log_rx.try_recv().is_err(), "second ran before first");
        let guard = first.wait().await;
        let _ = log_tx.send(1);
        drop(guard);
        late.await.expect("second finishes");
        assert_eq!(log_rx.recv().await, Some(1));
        assert_eq!(log_rx.recv().await, Some(2));
    }

    #[tokio::test]
    async fn a_full_line_takes_no_more_until_a_request_is_done() {
        let turnstile = Arc::new(Turnstile::new(2));
        let first = turnstile.join().expect("room");
        let _second = turnstile.join().expect("room");
        assert!(turnstile.join().is_none(), "the line holds two");
        drop(first.wait().await);
        assert!(turnstile.join().is_some(), "a done request frees its place");
    }
}
