//! Every change of an outgoing message's state, in one place.
//!
//! Each function here persists the change and announces it from the store's own thread,
//! right after the change is committed and before any later change is announced
//! ([`Call::then`](crate::store::Call::then)), so two changes of one message (a retry and
//! the flusher's `Sending`, a prune and the flusher's `Sent`) are announced in the order
//! they were stored. The event stream gets a [`ChatEvent::Queued`] or
//! [`ChatEvent::Status`], and whoever watches the message through its
//! [`SendHandle`](crate::SendHandle) sees the new state. So nothing an application hears of
//! is ever missing from the store, and the flusher, the receipts, the handles and the
//! [`Outbox`](crate::Outbox) never disagree about what a message went through.

use std::sync::Arc;

use chat_protocol::{ClientId, RoomId};

use crate::client::shared::{lock, Inner};
use crate::error::StoreError;
use crate::receive::ChatEvent;
use crate::store::{ClaimNext, Claimed, Durable, Pending, Pick, Store};
use crate::{MessageState, OutgoingMessage};

/// Tells the application (and the message's watchers) that `client_id` is now in `state`.
fn announce(inner: &Inner, client_id: ClientId, room: &RoomId, state: MessageState) {
    inner.watchers.notify(client_id, Some(&state));
    inner.emit(ChatEvent::Status {
        client_id,
        room: room.clone(),
        state,
    });
}

/// Queues a new message if the outbox has room (below `capacity` unsent messages); the
/// answer is false when it is full, and comes once the disk confirmed the message (with
/// the disk's own outcome beside it). Once it is committed, `Queued` is announced and the
/// flusher started, so `Sending` never comes first and the flusher can put the message on
/// the wire while the disk confirms it.
pub(crate) fn queue(
    inner: &Inner,
    message: &OutgoingMessage,
    capacity: usize,
) -> Pending<Durable<bool>> {
    let announced = message.clone();
    inner
        .store
        .insert(message.clone(), capacity)
        .then(with_client(Some(inner), move |inner, inserted| {
            if *inserted {
                // A new message has no watchers yet: its handle is made from the answer.
                inner.emit(ChatEvent::Queued(announced));
                crate::outbox::flusher::trigger(inner);
            }
        }))
        .start_durable()
}

/// Takes the head of the queue for the next request in one change (see
/// [`Store::claim_head`]): the messages `pick` fails become `Failed`, those it sends
/// `Sending` with their next attempt, each announced. One discarded or expired since it
/// was queued is left out, and never goes on the wire.
pub(crate) async fn claim(
    inner: &Inner,
    limit: usize,
    pick: impl FnMut(&OutgoingMessage) -> Pick + Send + 'static,
) -> Result<Claimed, StoreError> {
    inner
        .store
        .claim_head(limit, pick)
        .then(with_client(Some(inner), |inner, claimed| {
            announce_claimed(inner, claimed);
        }))
        .await
}

/// Moves several messages to new states in one change: each that is still in the outbox
/// is announced, and one that is now `Sent` starts being followed for receipts.
pub(crate) async fn record_all(
    inner: &Inner,
    moves: Vec<(&OutgoingMessage, MessageState)>,
) -> Result<(), StoreError> {
    if moves.is_empty() {
        return Ok(());
    }
    settle_and_claim(inner, moves, None).await.map(drop)
}

/// [`record_all`], then (when `claim` gives its limit and pick) [`claim`], in one store
/// call: a request's outcome and the head of the queue for the next request.
pub(crate) async fn settle_and_claim(
    inner: &Inner,
    moves: Vec<(&OutgoingMessage, MessageState)>,
    claim: Option<ClaimNext>,
) -> Result<Option<Claimed>, StoreError> {
    let changes: Vec<(ClientId, MessageState)> = moves
        .iter()
        .map(|(message, state)| (message.client_id, state.clone()))
        .collect();
    let announced: Vec<(RoomId, ClientId, MessageState)> = moves
        .into_iter()
        .map(|(message, state)| (message.room.clone(), message.client_id, state))
        .collect();
    let (_, claimed) = inner
        .store
        .settle_and_claim(changes, claim)
        .then(with_client(
            Some(inner),
            move |inner, settled: &(Vec<bool>, _)| {
                let (present, claimed) = settled;
                announce_present(inner, announced, present);
                if let Some(claimed) = claimed {
                    announce_claimed(inner, claimed);
                }
            },
        ))
        .await?;
    Ok(claimed)
}

/// A `then` that runs `f` with the client, if it is still there once the change is
/// committed (the store's thread does not keep it alive).
fn with_client<R>(
    inner: Option<&Inner>,
    f: impl FnOnce(&Arc<Inner>, &R) + Send + 'static,
) -> impl FnOnce(&R) + Send + 'static {
    let client = inner.map(Inner::weak);
    move |value| {
        if let Some(inner) = client.and_then(|client| client.upgrade()) {
            f(&inner, value);
        }
    }
}

/// Announces each change whose message was still in the outbox; one that is now `Sent`
/// starts being followed for receipts.
fn announce_present(
    inner: &Inner,
    changes: Vec<(RoomId, ClientId, MessageState)>,
    present: &[bool],
) {
    for ((room, client_id, state), present) in changes.into_iter().zip(present) {
        if *present {
            if matches!(state, MessageState::Sent { .. }) {
                crate::outbox::receipts::track(inner, &room, client_id, &state);
            }
            announce(inner, client_id, &room, state);
        }
    }
}

/// Announces what a claim of the head of the queue changed.
fn announce_claimed(inner: &Inner, claimed: &Claimed) {
    for message in claimed.failed.iter().chain(&claimed.sending) {
        let state = message.state.clone();
        announce(inner, message.client_id, &message.room, state);
    }
}

/// Moves several acknowledged messages of `room` on (a receipt moves a run at once), in
/// one change; messages no longer in the outbox are not announced. Nobody waits for it: a
/// failure is logged (the messages stay as they were in the store, and are followed again
/// after a restart).
pub(crate) fn record_receipts(inner: &Inner, room: &RoomId, moves: Vec<(ClientId, MessageState)>) {
    if moves.is_empty() {
        return;
    }
    let announced = moves
        .iter()
        .map(|(client_id, state)| (room.clone(), *client_id, state.clone()))
        .collect();
    inner
        .store
        .advance_receipts(moves)
        .then(with_client(
            Some(inner),
            move |inner, present: &Vec<bool>| {
                announce_present(inner, announced, present);
            },
        ))
        .detach("the receipts of sent messages");
}

/// Fails, as expired, every message never handed to the server that has been queued for
/// longer than `ttl`, wherever it stands in the queue.
pub(crate) async fn expire(inner: &Inner, ttl: std::time::Duration) -> Result<(), StoreError> {
    let cutoff = crate::outbox::flusher::now_ms()
        .saturating_sub(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    inner
        .store
        .expire_unattempted(cutoff)
        .then(with_client(Some(inner), |inner, expired: &Vec<_>| {
            for (client_id, room) in expired {
                let reason = crate::FailureReason::Expired;
                announce(inner, *client_id, room, MessageState::Failed { reason });
            }
        }))
        .await
        .map(drop)
}

/// What an outbox repair found.
pub(crate) enum Repair {
    /// Done.
    Done,
    /// No such message.
    NotFound,
    /// The message is in a state the repair does not accept.
    WrongState(MessageState),
}

impl From<Option<OutgoingMessage>> for Repair {
    /// The repair was not made: why, from the message as it is.
    fn from(message: Option<OutgoingMessage>) -> Self {
        match message {
            Some(message) => Repair::WrongState(message.state),
            None => Repair::NotFound,
        }
    }
}

/// Puts a failed message back at the end of the queue, with its `client_id` (so it is
/// still stored at most once). With a running client, it is announced.
pub(crate) async fn requeue(
    store: &Store,
    inner: Option<&Inner>,
    id: ClientId,
) -> Result<Repair, StoreError> {
    let requeued = store
        .requeue_failed(id, crate::outbox::flusher::now_ms())
        .then(with_client(
            inner,
            move |inner, requeued: &Result<OutgoingMessage, _>| {
                if let Ok(message) = requeued {
                    announce(inner, id, &message.room, MessageState::Queued);
                }
            },
        ))
        .await?;
    Ok(requeued.map_or_else(Repair::from, |_| Repair::Done))
}

/// Removes a message that is not on the wire. Its watchers see it leave.
pub(crate) async fn remove(
    store: &Store,
    inner: Option<&Inner>,
    id: ClientId,
) -> Result<Repair, StoreError> {
    let removed = store
        .delete_unless_sending(id)
        .then(with_client(inner, move |inner, removed: &Result<(), _>| {
            if removed.is_ok() {
                forget_receipts(inner, |waiting| waiting == id);
                inner.watchers.notify(id, None);
            }
        }))
        .await?;
    Ok(removed.map_or_else(Repair::from, |()| Repair::Done))
}

/// Forgets every acknowledged message; answers how many. Their watchers see them leave.
pub(crate) async fn prune(store: &Store, inner: Option<&Inner>) -> Result<usize, StoreError> {
    let pruned = store
        .prune_acknowledged()
        .then(with_client(inner, |inner, pruned: &Vec<ClientId>| {
            forget_receipts(inner, |id| pruned.contains(&id));
            for id in pruned {
                inner.watchers.notify(*id, None);
            }
        }))
        .await?;
    Ok(pruned.len())
}

/// Drops the receipt bookkeeping of the messages `which` picks.
fn forget_receipts(inner: &Inner, mut which: impl FnMut(ClientId) -> bool) {
    for view in lock(&inner.rooms).values_mut() {
        view.awaiting_delivery
            .retain(|_, waiting| !which(waiting.client_id));
        view.awaiting_read
            .retain(|_, waiting| !which(waiting.client_id));
    }
}
