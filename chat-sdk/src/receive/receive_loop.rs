//! The receive path of one connection: re-join, catch up, then hand over live events.
//!
//! Re-joining takes one `room:resume` (per 1,000 rooms) where the server has it, and a
//! `room:join` then a `message:sync` per room where it does not (see [`rejoin`]).
//!
//! For each room the client keeps the last contiguous `seq` it handed to the application
//! (persisted). A `message:new` with the next `seq` is handed over at once; one at or below
//! it is a duplicate and dropped; one beyond it is a gap, closed with `message:sync` from
//! the last contiguous `seq` before anything later is handed over. After each batch the
//! client tells the server with `receipt:delivered`. Everything here runs under
//! `recv_lock`, so a join's catch-up and live events never interleave.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chat_protocol::events::names as event_names;
use chat_protocol::{
    ErrorCode, Message, Presence, ReceiptUpdate, RoomId, RoomMember, TypingUpdate,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::catch_up::{hand_over, mark_live_at, received_seq, send_receipt, sync_room};
use super::rejoin;
use crate::client::shared::{lock, Inner};
use crate::connection::health;
use crate::error::RequestError;
use crate::outbox::flusher;
use crate::outbox::receipts;
use crate::receive::ChatEvent;
use crate::transport::{Connection, Inbound, LastHeard};

/// How long handed-over messages wait before their `receipt:delivered` goes out.
const RECEIPT_DELAY: Duration = Duration::from_millis(25);

/// Runs the session until the connection dies or the client shuts down; returns why.
pub(crate) async fn run(
    inner: &Arc<Inner>,
    conn: Arc<dyn Connection>,
    inbound: mpsc::Receiver<Inbound>,
) -> String {
    let reason = session(inner, conn, inbound).await;
    // No room is live without a connection; the next one catches each up again.
    let _guard = inner.recv_lock.lock().await;
    for view in lock(&inner.rooms).values_mut() {
        view.live = false;
    }
    reason
}

async fn session(
    inner: &Arc<Inner>,
    conn: Arc<dyn Connection>,
    mut inbound: mpsc::Receiver<Inbound>,
) -> String {
    let heard = Arc::new(LastHeard::new());
    let _watchdog = health::watch(
        conn.clone(),
        heard.clone(),
        inner.config.health_interval,
        inner.config.health_timeout,
    );
    // A send-only client re-joins only the rooms it joined in this run: it does not catch
    // up every room the store remembers (membership on the server is durable either way).
    // It does re-join the rooms it has messages for: a join asked for while offline may
    // never have reached the server.
    let send_only = inner.config.send_only;
    let pending_rooms = if send_only {
        inner.store.pending_rooms().await.unwrap_or_default()
    } else {
        Vec::new()
    };
    // Rooms whose position moved since the last `receipt:delivered`, and when to send it:
    // receipts are batched for RECEIPT_DELAY so a steady stream costs a few requests per
    // second, not one per message (the server rate-limits requests).
    let mut dirty: BTreeSet<RoomId> = BTreeSet::new();
    let mut receipt_due: Option<Instant> = None;
    let (rooms, rejoined) = {
        let _guard = inner.recv_lock.lock().await;
        // Rooms a `join` caught up on this connection already are live: skipped.
        let rooms: Vec<RoomId> = lock(&inner.rooms)
            .iter()
            .filter(|(room, view)| {
                view.joined
                    && !view.live
                    && (!send_only || view.joined_here || pending_rooms.contains(room))
            })
            .map(|(room, _)| room.clone())
            .collect();
        match rejoin::rejoin(inner, &*conn, &rooms).await {
            Ok(rejoined) => (rooms, rejoined),
            Err(err) => return fatal(&err).unwrap_or_else(|| err.to_string()),
        }
    };
    // Membership is in place: queued messages may go now.
    flusher::trigger(inner);
    {
        let _guard = inner.recv_lock.lock().await;
        if let Err(err) = rejoin::catch_up(inner, &*conn, rejoined, &mut dirty).await {
            return fatal(&err).unwrap_or_else(|| err.to_string());
        }
    }
    // A receipt the last connection still owed (batched or refused when it dropped) goes
    // out now: a room whose receipt is up to date costs no request.
    dirty.extend(rooms);
    if !dirty.is_empty() {
        receipt_due = Some(Instant::now() + RECEIPT_DELAY);
    }
    loop {
        let receipt_timer = async {
            match receipt_due {
                Some(due) => tokio::time::sleep_until(due).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            reason = conn.closed() => return reason,
            () = inner.shutdown.cancelled() => return "client closed".to_owned(),
            event = inbound.recv() => {
                let Some(event) = event else {
                    return "event channel closed".to_owned();
                };
                heard.now();
                let _guard = inner.recv_lock.lock().await;
                if let Err(err) = handle(inner, &*conn, event, &mut dirty).await {
                    if let Some(reason) = fatal(&err) { return reason; }
                }
                while let Ok(event) = inbound.try_recv() {
                    if let Err(err) = handle(inner, &*conn, event, &mut dirty).await {
                        if let Some(reason) = fatal(&err) { return reason; }
                    }
                }
                if !dirty.is_empty() && receipt_due.is_none() {
                    receipt_due = Some(Instant::now() + RECEIPT_DELAY);
                }
            }
            () = inner.receipts_wake.notified() => {
                dirty.extend(std::mem::take(&mut *lock(&inner.receipts_due)));
                if !dirty.is_empty() && receipt_due.is_none() {
                    receipt_due = Some(Instant::now() + RECEIPT_DELAY);
                }
            }
            () = receipt_timer => {
                receipt_due = None;
                let _guard = inner.recv_lock.lock().await;
                let mut wait = RECEIPT_DELAY * 4;
                for room in std::mem::take(&mut dirty) {
                    if receipt_due.is_some() {
                        // Rate limited: the rest wait with it rather than be refused too.
                        dirty.insert(room);
                        continue;
                    }
                    match send_receipt(inner, &*conn, &room).await {
                        Ok(()) => {}
                        Err(RequestError::Rejected(refusal)) if refusal.code == ErrorCode::RateLimited => {
                            wait = refusal.retry_after_ms.map_or(wait, Duration::from_millis).max(RECEIPT_DELAY);
                            receipt_due = Some(Instant::now() + wait);
                            dirty.insert(room);
                        }
                        Err(err) => {
                            if let Some(reason) = fatal(&err) { return reason; }
                            // Refused otherwise: try again with the next batch.
                            dirty.insert(room);
                        }
                    }
                }
                if !dirty.is_empty() && receipt_due.is_none() {
                    receipt_due = Some(Instant::now() + wait);
                }
            }
        }
    }
}

/// A request error that ends the session (the link is gone), with its reason.
pub(crate) fn fatal(err: &RequestError) -> Option<String> {
    match err {
        RequestError::Transport(err) => Some(err.to_string()),
        RequestError::NotConnected => Some("not connected".to_owned()),
        other => {
            tracing::warn!(error = %other, "request failed");
            None
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(event: Inbound) -> Option<T> {
    match serde_json::from_value(event.payload) {
        Ok(value) => Some(value),
        Err(err) => {
            tracing::warn!(event = %event.event, error = %err, "ignoring a malformed server event");
            None
        }
    }
}

async fn handle(
    inner: &Inner,
    conn: &dyn Connection,
    event: Inbound,
    dirty: &mut BTreeSet<RoomId>,
) -> Result<(), RequestError> {
    match event.event.clone().as_str() {
        event_names::MESSAGE_NEW => {
            let Some(message) = decode::<Message>(event) else {
                return Ok(());
            };
            let room = message.room.clone();
            let seq = message.seq;
            let last = received_seq(inner, &room);
            if message.seq <= last {
                return Ok(());
            }
            if message.seq == last + 1 {
                hand_over(inner, &room, vec![message])?;
            } else {
                sync_room(inner, conn, &room).await?;
            }
            // Everything up to a live message is handed over: a room whose catch-up was
            // refused is live again from here.
            mark_live_at(inner, &room, seq);
            dirty.insert(room);
        }
        event_names::RECEIPT_UPDATE => {
            let Some(update) = decode::<ReceiptUpdate>(event) else {
                return Ok(());
            };
            {
                let mut rooms = lock(&inner.rooms);
                let view = rooms.entry(update.room.clone()).or_default();
                view.members.insert(update.user.clone());
                let entry = view.watermarks.entry(update.user.clone()).or_insert((0, 0));
                *entry = (
                    entry.0.max(update.delivered_seq),
                    entry.1.max(update.read_seq),
                );
            }
            let room = update.room.clone();
            inner.emit(ChatEvent::Receipt(update));
            receipts::refresh_room(inner, &room).await?;
        }
        event_names::ROOM_MEMBER => {
            let Some(member) = decode::<RoomMember>(event) else {
                return Ok(());
            };
            {
                let mut rooms = lock(&inner.rooms);
                let view = rooms.entry(member.room.clone()).or_default();
                if member.joined {
                    view.members.insert(member.user.clone());
                } else {
                    view.members.remove(&member.user);
                }
            }
            let room = member.room.clone();
            inner.emit(ChatEvent::Member(member));
            receipts::refresh_room(inner, &room).await?;
        }
        event_names::TYPING_UPDATE => {
            if let Some(update) = decode::<TypingUpdate>(event) {
                inner.emit(ChatEvent::Typing(update));
            }
        }
        event_names::PRESENCE_UPDATE => {
            if let Some(presence) = decode::<Presence>(event) {
                inner.emit(ChatEvent::Presence(presence));
            }
        }
        other => tracing::debug!(event = other, "ignoring an unknown server event"),
    }
    Ok(())
}
