//! Typing indicators, throttled on the client as the protocol asks.
//!
//! [`Client::typing`](crate::Client::typing) may be called on every keystroke: it sends at
//! most one `typing:start` per room every [`TYPING_THROTTLE_SECS`] seconds, and sends
//! `typing:stop` by itself once the user has not typed for [`STOP_AFTER`] (shorter than the
//! server's 6 s expiry, so the indicator neither flickers nor lingers). Sending a message or
//! calling [`Client::stop_typing`](crate::Client::stop_typing) stops it at once. Typing is
//! volatile: nothing is queued while offline.

use std::sync::Arc;
use std::time::Duration;

use chat_protocol::limits::TYPING_THROTTLE_SECS;
use chat_protocol::requests::{names, RoomRequest};
use chat_protocol::RoomId;
use tokio::time::Instant;

use crate::client::shared::{lock, Inner};

/// Quiet time after the last keystroke before `typing:stop` is sent.
pub const STOP_AFTER: Duration = Duration::from_secs(4);

/// Per-room typing state.
#[derive(Debug, Default)]
pub(crate) struct TypingState {
    /// When the last `typing:start` went out; `None` when not typing.
    last_start: Option<Instant>,
    /// Bumped on every keystroke and stop, so a stale stop timer does nothing.
    generation: u64,
}

async fn emit(inner: &Inner, event: &str, room: &RoomId) {
    if let Some(conn) = inner.connection() {
        let payload = serde_json::json!(RoomRequest { room: room.clone() });
        if let Err(err) = conn.emit(event, payload).await {
            tracing::debug!(error = %err, "typing indicator not sent");
        }
    }
}

/// A keystroke in `room`.
pub(crate) async fn keystroke(inner: &Arc<Inner>, room: &RoomId) {
    let now = Instant::now();
    let throttle = Duration::from_secs(TYPING_THROTTLE_SECS);
    let (send_start, generation) = {
        let mut typing = lock(&inner.typing);
        let state = typing.entry(room.clone()).or_default();
        state.generation += 1;
        let send_start = state
            .last_start
            .is_none_or(|last| now.duration_since(last) >= throttle);
        if send_start {
            state.last_start = Some(now);
        }
        (send_start, state.generation)
    };
    if send_start {
        emit(inner, names::TYPING_START, room).await;
    }
    let inner = inner.clone();
    let room = room.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(STOP_AFTER) => {}
            () = inner.shutdown.cancelled() => return,
        }
        let expired = {
            let mut typing = lock(&inner.typing);
            match typing.get_mut(&room) {
                Some(state) if state.generation == generation && state.last_start.is_some() => {
                    state.last_start = None;
                    true
                }
                _ => false,
            }
        };
        if expired {
            emit(&inner, names::TYPING_STOP, &room).await;
        }
    });
}

/// Stops typing in `room` now (no-op if not typing).
pub(crate) async fn stop(inner: &Inner, room: &RoomId) {
    let was_typing = {
        let mut typing = lock(&inner.typing);
        match typing.get_mut(room) {
            Some(state) => {
                state.generation += 1;
                state.last_start.take().is_some()
            }
            None => false,
        }
    };
    if was_typing {
        emit(inner, names::TYPING_STOP, room).await;
    }
}
