//! Per-socket ordering of request handling.
//!
//! socketioxide runs every event handler in its own task, so two requests from one socket
//! may be handled in either order. Extraction, though, happens in arrival order on the
//! socket's receive loop. [`Turn`] takes a ticket during extraction; the handler waits for its
//! ticket to come up before touching state and passes the turn on when it is done (or dropped),
//! so one socket's requests take effect exactly in the order they arrived.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use socketioxide::adapter::Adapter;
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;
use socketioxide_core::Value;
use tokio::sync::watch;

/// A socket's ticket dispenser and the ticket now being served.
#[derive(Debug)]
pub struct Turnstile {
    next_ticket: AtomicU64,
    serving: watch::Sender<u64>,
}

impl Default for Turnstile {
    fn default() -> Self {
        Self {
            next_ticket: AtomicU64::new(0),
            serving: watch::Sender::new(0),
        }
    }
}

/// A request's place in its socket's order. Must be the last extractor of a handler, so that
/// a ticket is only taken when the handler really runs.
#[derive(Debug)]
pub struct Turn {
    ticket: u64,
    turnstile: Option<Arc<Turnstile>>,
}

impl Turn {
    /// Waits until every earlier request of this socket is done; the returned guard passes
    /// the turn on when dropped.
    pub async fn wait(self) -> TurnGuard {
        if let Some(turnstile) = &self.turnstile {
            let mut serving = turnstile.serving.subscribe();
            // The sender lives in the turnstile we hold, so this cannot fail.
            let _ = serving.wait_for(|now| *now == self.ticket).await;
        }
        TurnGuard { turn: self }
    }
}

/// Holds the turn; dropping it lets the socket's next request proceed.
#[derive(Debug)]
pub struct TurnGuard {
    turn: Turn,
}

impl Drop for TurnGuard {
    fn drop(&mut self) {
        if let Some(turnstile) = &self.turn.turnstile {
            let next = self.turn.ticket + 1;
            turnstile.serving.send_modify(|now| *now = next);
        }
    }
}

impl<A: Adapter> FromMessageParts<A> for Turn {
    type Error = std::convert::Infallible;

    fn from_message_parts(
        socket: &Arc<Socket<A>>,
        _: &mut Value,
        _: &Option<i64>,
    ) -> Result<Self, Self::Error> {
        let turnstile = socket.extensions.get::<Arc<Turnstile>>();
        let ticket = turnstile
            .as_ref()
            .map(|t| t.next_ticket.fetch_add(1, Ordering::SeqCst))
            .unwrap_or(0);
        Ok(Turn { ticket, turnstile })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(turnstile: &Arc<Turnstile>) -> Turn {
        Turn {
            ticket: turnstile.next_ticket.fetch_add(1, Ordering::SeqCst),
            turnstile: Some(turnstile.clone()),
        }
    }

    #[tokio::test]
    async fn later_tickets_wait_for_earlier_ones() {
        let turnstile = Arc::new(Turnstile::default());
        let first = take(&turnstile);
        let second = take(&turnstile);
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
}
