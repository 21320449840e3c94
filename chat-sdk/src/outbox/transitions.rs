//! Every change of an outgoing message's state, in one place.
//!
//! Each function here persists the change and then announces it, in that order, holding
//! the client's `status_lock` throughout, so two changes of one message (a retry and the
//! flusher's `Sending`, a prune and the flusher's `Sent`) are announced in the order they
//! were stored. The event
//! stream gets a [`ChatEvent::Queued`] or [`ChatEvent::Status`], and whoever watches the
//! message through its [`SendHandle`](crate::SendHandle) sees the new state. So nothing an
//! application hears of is ever missing from the store, and the flusher, the receipts, the
//! handles and the [`Outbox`](crate::Outbox) never disagree about what a message went
//! through.

use chat_protocol::{ClientId, RoomId};

use crate::client::shared::{lock, Inner};
use crate::error::StoreError;
use crate::receive::ChatEvent;
use crate::store::Store;
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

/// Queues a new message if the outbox has room (below `capacity` unsent messages); returns
/// false when it is full. `Queued` is announced before the flusher can see the row, so
/// `Sending` never comes first.
pub(crate) fn queue(
    inner: &Inner,
    message: &OutgoingMessage,
    capacity: usize,
) -> Result<bool, StoreError> {
    // A new message has no watchers yet: its handle is made from what this returns.
    inner.store.insert_announced(message, capacity, || {
        inner.emit(ChatEvent::Queued(message.clone()));
    })
}

/// Moves a message to `state` (recording its attempt count when given). Returns false if
/// the message is no longer in the outbox: then nothing is announced.
pub(crate) fn record(
    inner: &Inner,
    message: &OutgoingMessage,
    state: MessageState,
    attempts: Option<u32>,
) -> Result<bool, StoreError> {
    let _guard = lock(&inner.status_lock);
    if !inner.store.set_state(message.client_id, &state, attempts)? {
        return Ok(false);
    }
    announce(inner, message.client_id, &message.room, state);
    Ok(true)
}

/// Records that the server stored a message (`Sent`), and starts following its receipts.
pub(crate) fn record_sent(
    inner: &Inner,
    message: &OutgoingMessage,
    sent: MessageState,
) -> Result<(), StoreError> {
    let _guard = lock(&inner.status_lock);
    if inner.store.set_state(message.client_id, &sent, None)? {
        crate::outbox::receipts::track(inner, &message.room, message.client_id, &sent);
        announce(inner, message.client_id, &message.room, sent);
    }
    Ok(())
}

/// Hands `messages` to the server: each one still to send moves to `Sending` with its next
/// attempt, all in one store transaction. Returns those that did (as they now are); one
/// discarded or expired since it was read is left out, and never goes on the wire.
pub(crate) fn begin_sending(
    inner: &Inner,
    messages: Vec<OutgoingMessage>,
) -> Result<Vec<OutgoingMessage>, StoreError> {
    let _guard = lock(&inner.status_lock);
    let changes: Vec<(ClientId, MessageState, u32)> = messages
        .iter()
        .map(|message| {
            let attempt = message.attempts.saturating_add(1);
            (
                message.client_id,
                MessageState::Sending { attempt },
                attempt,
            )
        })
        .collect();
    let present = inner.store.begin_sending(&changes)?;
    let mut sending = Vec::with_capacity(messages.len());
    for ((mut message, (_, state, attempt)), present) in
        messages.into_iter().zip(changes).zip(present)
    {
        if present {
            announce(inner, message.client_id, &message.room, state.clone());
            message.attempts = attempt;
            message.state = state;
            sending.push(message);
        }
    }
    Ok(sending)
}

/// Moves several messages to new states in one store transaction: each that is still in
/// the outbox is announced, and one that is now `Sent` starts being followed for receipts.
pub(crate) fn record_all(
    inner: &Inner,
    moves: Vec<(&OutgoingMessage, MessageState)>,
) -> Result<(), StoreError> {
    if moves.is_empty() {
        return Ok(());
    }
    let _guard = lock(&inner.status_lock);
    let changes: Vec<(ClientId, MessageState)> = moves
        .iter()
        .map(|(message, state)| (message.client_id, state.clone()))
        .collect();
    let present = inner.store.set_states(&changes)?;
    for ((message, state), present) in moves.into_iter().zip(present) {
        if present {
            if matches!(state, MessageState::Sent { .. }) {
                crate::outbox::receipts::track(inner, &message.room, message.client_id, &state);
            }
            announce(inner, message.client_id, &message.room, state);
        }
    }
    Ok(())
}

/// Moves several acknowledged messages of `room` on (a receipt moves a run at once), in
/// one store transaction; messages no longer in the outbox are not announced. The caller
/// holds `status_lock`.
pub(crate) fn record_receipts(
    inner: &Inner,
    room: &RoomId,
    moves: Vec<(ClientId, MessageState)>,
) -> Result<(), StoreError> {
    if moves.is_empty() {
        return Ok(());
    }
    let present = inner.store.set_states(&moves)?;
    for ((client_id, state), present) in moves.into_iter().zip(present) {
        if present {
            announce(inner, client_id, room, state);
        }
    }
    Ok(())
}

/// Fails, as expired, every message never handed to the server that has been queued for
/// longer than `ttl`, wherever it stands in the queue.
pub(crate) fn expire(inner: &Inner, ttl: std::time::Duration) -> Result<(), StoreError> {
    let cutoff = crate::outbox::flusher::now_ms()
        .saturating_sub(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    let _guard = lock(&inner.status_lock);
    for (client_id, room) in inner.store.expire_unattempted(cutoff)? {
        let reason = crate::FailureReason::Expired;
        announce(inner, client_id, &room, MessageState::Failed { reason });
    }
    Ok(())
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

/// Puts a failed message back at the end of the queue, with its `client_id` (so it is
/// still stored at most once). With a running client, it is announced and the flusher
/// started.
pub(crate) fn requeue(
    store: &Store,
    inner: Option<&Inner>,
    id: ClientId,
) -> Result<Repair, StoreError> {
    let _guard = inner.map(|inner| lock(&inner.status_lock));
    match store.requeue_failed(id, crate::outbox::flusher::now_ms())? {
        Some(message) => {
            if let Some(inner) = inner {
                announce(inner, id, &message.room, MessageState::Queued);
            }
            Ok(Repair::Done)
        }
        None => Ok(match store.get(id)? {
            Some(message) => Repair::WrongState(message.state),
            None => Repair::NotFound,
        }),
    }
}

/// Removes a message that is not on the wire. Its watchers see it leave.
pub(crate) fn remove(
    store: &Store,
    inner: Option<&Inner>,
    id: ClientId,
) -> Result<Repair, StoreError> {
    let _guard = inner.map(|inner| lock(&inner.status_lock));
    if store.delete_unless_sending(id)? {
        if let Some(inner) = inner {
            forget_receipts(inner, |waiting| waiting == id);
            inner.watchers.notify(id, None);
        }
        return Ok(Repair::Done);
    }
    Ok(match store.get(id)? {
        Some(message) => Repair::WrongState(message.state),
        None => Repair::NotFound,
    })
}

/// Forgets every acknowledged message; returns how many. Their watchers see them leave.
pub(crate) fn prune(store: &Store, inner: Option<&Inner>) -> Result<usize, StoreError> {
    let Some(inner) = inner else {
        return store.prune_acknowledged();
    };
    let _guard = lock(&inner.status_lock);
    let mut pruned = Vec::new();
    forget_receipts(inner, |id| {
        pruned.push(id);
        true
    });
    let count = store.prune_acknowledged()?;
    for id in pruned {
        inner.watchers.notify(id, None);
    }
    Ok(count)
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
