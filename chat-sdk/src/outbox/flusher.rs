//! The outbox flusher: sends queued messages one at a time, in queue order.
//!
//! Exactly one flusher runs at a time. [`trigger`] takes the `flushing` flag with a
//! compare-exchange and spawns a flusher only if it won; every trigger also sets
//! `flush_again`, so a trigger that lands while a flusher is finishing is never lost. A
//! flusher sends the oldest pending message, waits for its ack, records the outcome, and
//! only then looks at the next one — so messages to a room are stored in the order they
//! were queued, and no message is ever in flight twice.
//!
//! Each failure is classified once:
//! - transport failure or ack timeout: back to `Queued`; the connection is gone, and the
//!   supervisor's reconnect triggers the next flush;
//! - `rate_limited`: back to `Queued`, wait `retry_after_ms`, send again — never a failure;
//! - `internal` (and `too_many_connections`): back to `Queued`, wait per the retry policy;
//! - `unauthorized`: back to `Queued`, close the connection, refresh the token;
//! - `invalid_payload`, `too_large`, `forbidden`, unknown codes: `Failed`, kept until the
//!   application retries or discards it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chat_protocol::requests::{names, SendMessage};
use chat_protocol::results::SendResult;
use chat_protocol::{AckError, Body, ErrorCode};

use crate::client::shared::Inner;
use crate::error::StoreError;
use crate::outbox::{receipts, transitions};
use crate::{FailureReason, MessageState, OutgoingMessage};

/// Wait used when a `rate_limited` answer carries no `retry_after_ms`.
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_millis(100);

/// Asks for a flush; starts a flusher unless one is running.
pub(crate) fn trigger(inner: &Arc<Inner>) {
    inner.flush_again.store(true, Ordering::Release);
    if inner
        .flushing
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        let task = inner.clone();
        inner.runtime.spawn(async move { run(task).await });
    }
}

async fn run(inner: Arc<Inner>) {
    let mut claim = Claim {
        inner: &inner,
        held: true,
    };
    let mut backoff = inner.config.retry.backoff();
    loop {
        inner.flush_again.store(false, Ordering::Release);
        if let Err(err) = pass(&inner).await {
            // A busy or full disk passes: try again after a backoff delay, still holding the
            // flag, instead of leaving queued messages until the next trigger.
            tracing::warn!(error = %err, "outbox flush failed on a store error; retrying");
            let wait = backoff.next().unwrap_or(inner.config.retry.max_delay);
            if !pause(&inner, wait).await {
                break;
            }
            continue;
        }
        backoff = inner.config.retry.backoff();
        claim.held = false;
        inner.flushing.store(false, Ordering::Release);
        if !inner.flush_again.load(Ordering::Acquire)
            || inner
                .flushing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            break;
        }
        claim.held = true;
    }
}

/// The flusher's hold on the `flushing` flag: let go however the flusher ends, a panic
/// included, so one failed flush never stops sending for the life of the client.
struct Claim<'a> {
    inner: &'a Inner,
    held: bool,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if self.held {
            self.inner.flushing.store(false, Ordering::Release);
        }
        self.inner.flusher_idle.notify_waiters();
    }
}

/// Waits until no flusher runs (after shutdown, none starts that touches the store).
pub(crate) async fn idle(inner: &Inner) {
    loop {
        let notified = inner.flusher_idle.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !inner.flushing.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Moves a message to `state` through the one place states change.
fn transition(
    inner: &Inner,
    message: &OutgoingMessage,
    state: MessageState,
    attempts: Option<u32>,
) -> Result<(), StoreError> {
    transitions::record(inner, message, state, attempts).map(drop)
}

fn is_expired(inner: &Inner, message: &OutgoingMessage) -> bool {
    match inner.config.ttl {
        Some(ttl) => {
            let age = now_ms().saturating_sub(message.queued_at);
            u128::try_from(age).unwrap_or(0) > ttl.as_millis()
        }
        None => false,
    }
}

/// Waits `delay` unless the client shuts down; returns false on shutdown.
async fn pause(inner: &Inner, delay: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = inner.shutdown.cancelled() => false,
    }
}

/// Sends pending messages until none is left or the connection is gone.
async fn pass(inner: &Arc<Inner>) -> Result<(), StoreError> {
    if let Some(ttl) = inner.config.ttl {
        // The whole queue, not only its head: a message behind one that is resent until
        // acknowledged (and so never expires) still expires on time.
        transitions::expire(inner, ttl)?;
    }
    let mut backoff = inner.config.retry.backoff();
    loop {
        if inner.shutdown.is_cancelled() {
            return Ok(());
        }
        let Some(message) = inner.store.next_pending()? else {
            return Ok(());
        };
        // Only a message never handed to the server may expire: one that was may already be
        // stored, and calling it failed would be a lie. It is resent until acknowledged.
        if message.attempts == 0 && is_expired(inner, &message) {
            transition(
                inner,
                &message,
                MessageState::Failed {
                    reason: FailureReason::Expired,
                },
                None,
            )?;
            continue;
        }
        let Some(conn) = inner.connection() else {
            return Ok(());
        };
        let body = match Body::new(message.body.clone()) {
            Ok(body) => body,
            Err(err) => {
                let reason = FailureReason::Rejected {
                    code: err.code(),
                    message: err.to_string(),
                };
                transition(inner, &message, MessageState::Failed { reason }, None)?;
                continue;
            }
        };
        let attempt = message.attempts.saturating_add(1);
        if !transitions::record(
            inner,
            &message,
            MessageState::Sending { attempt },
            Some(attempt),
        )? {
            // Discarded or expired between being read and being sent: never put it on the wire.
            continue;
        }
        let request = SendMessage {
            room: message.room.clone(),
            client_id: message.client_id,
            body,
            reply_to: message.reply_to,
        };
        let payload = match serde_json::to_value(&request) {
            Ok(payload) => payload,
            Err(err) => return Err(StoreError::Corrupt(err.to_string())),
        };
        let answer = conn.request(names::MESSAGE_SEND, payload).await;
        let answer = match answer {
            Ok(ack) => ack,
            Err(err) => {
                tracing::debug!(error = %err, client_id = %message.client_id, "send not acked");
                transition(inner, &message, MessageState::Queued, None)?;
                return Ok(());
            }
        };
        match chat_protocol::decode_ack::<SendResult>(answer) {
            Ok(result) => {
                backoff = inner.config.retry.backoff();
                let sent = MessageState::Sent {
                    id: result.id,
                    seq: result.seq,
                };
                transitions::record_sent(inner, &message, sent)?;
                receipts::refresh_room(inner, &message.room)?;
            }
            Err(AckError::Refused(error)) => match error.code {
                ErrorCode::RateLimited => {
                    transition(inner, &message, MessageState::Queued, None)?;
                    let wait = error
                        .retry_after_ms
                        .map(Duration::from_millis)
                        .unwrap_or(DEFAULT_RATE_LIMIT_WAIT);
                    if !pause(inner, wait).await {
                        return Ok(());
                    }
                }
                ErrorCode::Internal | ErrorCode::TooManyConnections => {
                    transition(inner, &message, MessageState::Queued, None)?;
                    let wait = backoff.next().unwrap_or(inner.config.retry.max_delay);
                    if !pause(inner, wait).await {
                        return Ok(());
                    }
                }
                ErrorCode::Unauthorized => {
                    transition(inner, &message, MessageState::Queued, None)?;
                    inner.refresh_token.store(true, Ordering::Release);
                    conn.close("the server refused the token");
                    return Ok(());
                }
                ErrorCode::InvalidPayload
                | ErrorCode::TooLarge
                | ErrorCode::Forbidden
                | ErrorCode::Unknown => {
                    let reason = FailureReason::Rejected {
                        code: error.code,
                        message: error.message,
                    };
                    transition(inner, &message, MessageState::Failed { reason }, None)?;
                }
            },
            Err(AckError::Malformed(text)) => {
                // An answer we cannot read: the link is suspect. Resend on a fresh one.
                tracing::warn!(%text, "malformed message:send ack");
                transition(inner, &message, MessageState::Queued, None)?;
                conn.close("malformed ack");
                return Ok(());
            }
        }
    }
}
