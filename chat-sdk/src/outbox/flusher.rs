//! The outbox flusher: sends queued messages in queue order, one request at a time.
//!
//! Exactly one flusher runs at a time. [`trigger`] takes the `flushing` flag with a
//! compare-exchange and spawns a flusher only if it won; every trigger also sets
//! `flush_again`, so a trigger that lands while a flusher is finishing is never lost. A
//! flusher sends the oldest pending messages, waits for the answer, records the outcome, and
//! only then looks at the next ones — so messages to a room are stored in the order they
//! were queued, and no message is ever in flight twice.
//!
//! To a server that offers `message:send_batch` (docs/protocol.md), the messages queued
//! while a request is out go together in the next one, up to [`MAX_SEND_BATCH`] and one
//! packet: one round trip and one store transaction per batch instead of per message, with
//! the order kept because the server stores a prefix of the batch and the rest is sent
//! again. To any other server, one `message:send` at a time.
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

use chat_protocol::batch::{SendBatch, SendBatchResult, SendOutcome};
use chat_protocol::limits::MAX_SEND_BATCH;
use chat_protocol::requests::{names, SendMessage};
use chat_protocol::results::SendResult;
use chat_protocol::{AckError, Body, ErrorBody, ErrorCode};

use crate::client::shared::Inner;
use crate::error::StoreError;
use crate::outbox::{receipts, transitions};
use crate::store::Pick;
use crate::transport::{Connection, MAX_REQUEST_BYTES};
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
async fn transition(
    inner: &Inner,
    message: &OutgoingMessage,
    state: MessageState,
    attempts: Option<u32>,
) -> Result<(), StoreError> {
    transitions::record(inner, message, state, attempts)
        .await
        .map(drop)
}

fn is_expired(ttl: Option<Duration>, message: &OutgoingMessage) -> bool {
    match ttl {
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

/// What the flusher does after an answer.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Next {
    /// Send the next messages.
    Go,
    /// Wait this long (the server's `retry_after_ms`), then go on.
    Wait(Duration),
    /// Wait a backoff delay, then go on.
    Backoff,
    /// Stop this pass: the connection is gone or being replaced.
    Stop,
}

/// Sends pending messages until none is left or the connection is gone.
async fn pass(inner: &Arc<Inner>) -> Result<(), StoreError> {
    if let Some(ttl) = inner.config.ttl {
        // The whole queue, not only its head: a message behind one that is resent until
        // acknowledged (and so never expires) still expires on time.
        transitions::expire(inner, ttl).await?;
    }
    let mut backoff = inner.config.retry.backoff();
    loop {
        if inner.shutdown.is_cancelled() {
            return Ok(());
        }
        let Some(conn) = inner.connection() else {
            return Ok(());
        };
        let batching = inner.send_batch.get() == Some(true);
        let limit = if batching { MAX_SEND_BATCH } else { 1 };
        let claimed = transitions::claim(inner, limit, one_request(inner.config.ttl)).await?;
        if claimed.empty {
            return Ok(());
        }
        let sending = claimed.sending;
        if sending.is_empty() {
            continue;
        }
        let next = match sending.len() {
            0 => Next::Go,
            1 => send_one(inner, &*conn, &sending[0]).await?,
            _ => send_batch(inner, &*conn, &sending).await?,
        };
        match next {
            Next::Go => {}
            Next::Wait(wait) => {
                if !pause(inner, wait).await {
                    return Ok(());
                }
            }
            Next::Backoff => {
                let wait = backoff.next().unwrap_or(inner.config.retry.max_delay);
                if !pause(inner, wait).await {
                    return Ok(());
                }
                continue;
            }
            Next::Stop => return Ok(()),
        }
        backoff = inner.config.retry.backoff();
    }
}

/// What to do with each message of the head of the queue, in order: fail one that may
/// not be sent (expired, or a body the protocol refuses), and send as many of the rest as
/// one request carries.
fn one_request(ttl: Option<Duration>) -> impl FnMut(&OutgoingMessage) -> Pick + Send {
    let mut bytes = 0;
    let mut taken = 0;
    move |message| {
        // Only a message never handed to the server may expire: one that was may already be
        // stored, and calling it failed would be a lie. It is resent until acknowledged.
        if message.attempts == 0 && is_expired(ttl, message) {
            let reason = FailureReason::Expired;
            return Pick::Fail(MessageState::Failed { reason });
        }
        if let Err(err) = Body::new(message.body.clone()) {
            let reason = FailureReason::Rejected {
                code: err.code(),
                message: err.to_string(),
            };
            return Pick::Fail(MessageState::Failed { reason });
        }
        // An upper bound of the encoding: JSON at most doubles a body's bytes (no control
        // characters but `\n` and `\t` pass `Body`), plus the room and the fixed fields.
        let size = 2 * message.body.len() + message.room.as_str().len() + 128;
        if taken > 0 && bytes + size > MAX_REQUEST_BYTES {
            return Pick::Stop;
        }
        bytes += size;
        taken += 1;
        Pick::Send
    }
}

fn request_of(message: &OutgoingMessage) -> Result<SendMessage, StoreError> {
    Ok(SendMessage {
        room: message.room.clone(),
        client_id: message.client_id,
        body: Body::new(message.body.clone()).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        reply_to: message.reply_to,
    })
}

/// `message:send` of one message, and what its answer means.
async fn send_one(
    inner: &Arc<Inner>,
    conn: &dyn Connection,
    message: &OutgoingMessage,
) -> Result<Next, StoreError> {
    let payload = serde_json::to_value(request_of(message)?)
        .map_err(|err| StoreError::Corrupt(err.to_string()))?;
    let answer = match conn.request(names::MESSAGE_SEND, payload).await {
        Ok(ack) => ack,
        Err(err) => {
            tracing::debug!(error = %err, client_id = %message.client_id, "send not acked");
            transition(inner, message, MessageState::Queued, None).await?;
            return Ok(Next::Stop);
        }
    };
    match chat_protocol::decode_ack::<SendResult>(answer) {
        Ok(result) => {
            transitions::record_sent(inner, message, sent(&result)).await?;
            receipts::refresh_room(inner, &message.room).await?;
            Ok(Next::Go)
        }
        Err(AckError::Refused(error)) => {
            let (state, next) = refused(inner, conn, error);
            transition(inner, message, state, None).await?;
            Ok(next)
        }
        Err(AckError::Malformed(text)) => {
            // An answer we cannot read: the link is suspect. Resend on a fresh one.
            tracing::warn!(%text, "malformed message:send ack");
            transition(inner, message, MessageState::Queued, None).await?;
            conn.close("malformed ack");
            Ok(Next::Stop)
        }
    }
}

/// `message:send_batch` of several messages, in queue order, and what its answers mean.
///
/// The answers cover a prefix of the batch (docs/protocol.md): a message past the last
/// answer was not stored and goes back to `Queued`, to be sent again after the ones before
/// it, so a room's messages are still stored in the order they were queued.
async fn send_batch(
    inner: &Arc<Inner>,
    conn: &dyn Connection,
    messages: &[OutgoingMessage],
) -> Result<Next, StoreError> {
    let batch = SendBatch {
        messages: messages.iter().map(request_of).collect::<Result<_, _>>()?,
    };
    let payload =
        serde_json::to_value(batch).map_err(|err| StoreError::Corrupt(err.to_string()))?;
    let requeue_all = || {
        transitions::record_all(
            inner,
            messages.iter().map(|m| (m, MessageState::Queued)).collect(),
        )
    };
    let answer = match conn.request(names::MESSAGE_SEND_BATCH, payload).await {
        Ok(ack) => ack,
        Err(err) => {
            tracing::debug!(error = %err, messages = messages.len(), "batch not acked");
            // Maybe this server never answers it (it was replaced by one without the
            // extension): send one by one until an answer says again.
            inner.send_batch.forget();
            requeue_all().await?;
            return Ok(Next::Stop);
        }
    };
    let answers = match chat_protocol::decode_ack::<SendBatchResult>(answer) {
        Ok(result) if !result.results.is_empty() && result.results.len() <= messages.len() => {
            result.results
        }
        Ok(_) | Err(AckError::Malformed(_)) => {
            tracing::warn!("malformed message:send_batch ack");
            requeue_all().await?;
            conn.close("malformed ack");
            return Ok(Next::Stop);
        }
        Err(AckError::Refused(error)) => {
            requeue_all().await?;
            return Ok(if error.code.is_retryable() {
                refused(inner, conn, error).1
            } else {
                // A refusal of the request as a whole, not of one message: send them one by
                // one, so each gets its own answer.
                tracing::warn!(code = %error.code, message = %error.message, "message:send_batch refused; sending one by one");
                inner.send_batch.set(false);
                Next::Go
            });
        }
    };
    let mut moves = Vec::with_capacity(messages.len());
    let mut next = Next::Go;
    let mut rooms = Vec::new();
    let answered = answers.len();
    for (message, SendOutcome(outcome)) in messages.iter().zip(answers) {
        match outcome {
            Ok(result) => {
                if !rooms.contains(&message.room) {
                    rooms.push(message.room.clone());
                }
                moves.push((message, sent(&result)));
            }
            Err(error) => {
                let (state, then) = refused(inner, conn, error);
                if next == Next::Go {
                    next = then;
                }
                moves.push((message, state));
            }
        }
    }
    moves.extend(
        messages[answered..]
            .iter()
            .map(|m| (m, MessageState::Queued)),
    );
    transitions::record_all(inner, moves).await?;
    for room in &rooms {
        receipts::refresh_room(inner, room).await?;
    }
    Ok(next)
}

fn sent(result: &SendResult) -> MessageState {
    MessageState::Sent {
        id: result.id.clone(),
        seq: result.seq,
    }
}

/// What a refusal of one message means: the state it moves to, and what the flusher does.
fn refused(inner: &Inner, conn: &dyn Connection, error: ErrorBody) -> (MessageState, Next) {
    match error.code {
        ErrorCode::RateLimited => {
            let wait = error
                .retry_after_ms
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_RATE_LIMIT_WAIT);
            (MessageState::Queued, Next::Wait(wait))
        }
        ErrorCode::Internal | ErrorCode::TooManyConnections => {
            (MessageState::Queued, Next::Backoff)
        }
        ErrorCode::Unauthorized => {
            inner.refresh_token.store(true, Ordering::Release);
            conn.close("the server refused the token");
            (MessageState::Queued, Next::Stop)
        }
        ErrorCode::InvalidPayload
        | ErrorCode::TooLarge
        | ErrorCode::Forbidden
        | ErrorCode::Unknown => {
            let reason = FailureReason::Rejected {
                code: error.code,
                message: error.message,
            };
            (MessageState::Failed { reason }, Next::Go)
        }
    }
}
