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
use chat_protocol::{AckError, Body, ErrorBody, ErrorCode, RoomId};

use crate::client::shared::Inner;
use crate::error::StoreError;
use crate::outbox::{receipts, transitions};
use crate::store::{ClaimNext, Claimed, Pick};
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
    // The head of the queue, when the last outcome's store call took it already.
    let mut taken: Option<Claimed> = None;
    loop {
        let connection = inner
            .connection()
            .filter(|_| !inner.shutdown.is_cancelled());
        let Some(conn) = connection else {
            if let Some(claimed) = taken {
                // Taken for a request that will not be made now: queued again, as after a
                // lost link.
                let moves = claimed.sending.iter().map(|m| (m, MessageState::Queued));
                transitions::record_all(inner, moves.collect()).await?;
            }
            return Ok(());
        };
        let claimed = match taken.take() {
            Some(claimed) => claimed,
            None => {
                let pick = one_request(inner.config.ttl);
                transitions::claim(inner, head_limit(inner), pick).await?
            }
        };
        if claimed.empty {
            return Ok(());
        }
        let sending = claimed.sending;
        if sending.is_empty() {
            continue;
        }
        let outcome = match sending.len() {
            1 => send_one(inner, &*conn, &sending[0]).await?,
            _ => send_batch(inner, &*conn, &sending).await?,
        };
        // With nothing to wait for, the outcome and the next head go in one store call.
        let next_claim = (outcome.next == Next::Go).then(|| {
            let next: ClaimNext = (head_limit(inner), Box::new(one_request(inner.config.ttl)));
            next
        });
        taken = transitions::settle_and_claim(inner, outcome.moves, next_claim).await?;
        for room in &outcome.stored_in {
            receipts::refresh_room(inner, room).await?;
        }
        match outcome.next {
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

/// How many messages the next request may carry.
fn head_limit(inner: &Inner) -> usize {
    if inner.send_batch.get() == Some(true) {
        MAX_SEND_BATCH
    } else {
        1
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

/// What a request's answer means: each message's next state, what the flusher does next,
/// and the rooms where a message was stored (their receipts may move it on at once).
struct Outcome<'a> {
    moves: Vec<(&'a OutgoingMessage, MessageState)>,
    next: Next,
    stored_in: Vec<RoomId>,
}

impl<'a> Outcome<'a> {
    /// Every message goes back to `Queued`, to be sent again.
    fn requeue(messages: &'a [OutgoingMessage], next: Next) -> Self {
        Self {
            moves: messages.iter().map(|m| (m, MessageState::Queued)).collect(),
            next,
            stored_in: Vec::new(),
        }
    }
}

/// `message:send` of one message, and what its answer means.
async fn send_one<'a>(
    inner: &Inner,
    conn: &dyn Connection,
    message: &'a OutgoingMessage,
) -> Result<Outcome<'a>, StoreError> {
    let payload = serde_json::to_value(request_of(message)?)
        .map_err(|err| StoreError::Corrupt(err.to_string()))?;
    let answer = match conn.request(names::MESSAGE_SEND, payload).await {
        Ok(ack) => ack,
        Err(err) => {
            tracing::debug!(error = %err, client_id = %message.client_id, "send not acked");
            return Ok(Outcome::requeue(std::slice::from_ref(message), Next::Stop));
        }
    };
    Ok(match chat_protocol::decode_ack::<SendResult>(answer) {
        Ok(result) => Outcome {
            moves: vec![(message, sent(&result))],
            next: Next::Go,
            stored_in: vec![message.room.clone()],
        },
        Err(AckError::Refused(error)) => {
            let (state, next) = refused(inner, conn, error);
            Outcome {
                moves: vec![(message, state)],
                next,
                stored_in: Vec::new(),
            }
        }
        Err(AckError::Malformed(text)) => {
            // An answer we cannot read: the link is suspect. Resend on a fresh one.
            tracing::warn!(%text, "malformed message:send ack");
            conn.close("malformed ack");
            Outcome::requeue(std::slice::from_ref(message), Next::Stop)
        }
    })
}

/// `message:send_batch` of several messages, in queue order, and what its answers mean.
///
/// The answers cover a prefix of the batch (docs/protocol.md): a message past the last
/// answer was not stored and goes back to `Queued`, to be sent again after the ones before
/// it, so a room's messages are still stored in the order they were queued.
async fn send_batch<'a>(
    inner: &Inner,
    conn: &dyn Connection,
    messages: &'a [OutgoingMessage],
) -> Result<Outcome<'a>, StoreError> {
    let batch = SendBatch {
        messages: messages.iter().map(request_of).collect::<Result<_, _>>()?,
    };
    let payload =
        serde_json::to_value(batch).map_err(|err| StoreError::Corrupt(err.to_string()))?;
    let answer = match conn.request(names::MESSAGE_SEND_BATCH, payload).await {
        Ok(ack) => ack,
        Err(err) => {
            tracing::debug!(error = %err, messages = messages.len(), "batch not acked");
            // Maybe this server never answers it (it was replaced by one without the
            // extension): send one by one until an answer says again.
            inner.send_batch.forget();
            return Ok(Outcome::requeue(messages, Next::Stop));
        }
    };
    let answers = match chat_protocol::decode_ack::<SendBatchResult>(answer) {
        Ok(result) if !result.results.is_empty() && result.results.len() <= messages.len() => {
            result.results
        }
        Ok(_) | Err(AckError::Malformed(_)) => {
            tracing::warn!("malformed message:send_batch ack");
            conn.close("malformed ack");
            return Ok(Outcome::requeue(messages, Next::Stop));
        }
        Err(AckError::Refused(error)) => {
            let next = if error.code.is_retryable() {
                refused(inner, conn, error).1
            } else {
                // A refusal of the request as a whole, not of one message: send them one by
                // one, so each gets its own answer.
                tracing::warn!(code = %error.code, message = %error.message, "message:send_batch refused; sending one by one");
                inner.send_batch.set(false);
                Next::Go
            };
            return Ok(Outcome::requeue(messages, next));
        }
    };
    let mut outcome = Outcome {
        moves: Vec::with_capacity(messages.len()),
        next: Next::Go,
        stored_in: Vec::new(),
    };
    let answered = answers.len();
    for (message, SendOutcome(answer)) in messages.iter().zip(answers) {
        match answer {
            Ok(result) => {
                if !outcome.stored_in.contains(&message.room) {
                    outcome.stored_in.push(message.room.clone());
                }
                outcome.moves.push((message, sent(&result)));
            }
            Err(error) => {
                let (state, then) = refused(inner, conn, error);
                if outcome.next == Next::Go {
                    outcome.next = then;
                }
                outcome.moves.push((message, state));
            }
        }
    }
    outcome.moves.extend(
        messages[answered..]
            .iter()
            .map(|m| (m, MessageState::Queued)),
    );
    Ok(outcome)
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
