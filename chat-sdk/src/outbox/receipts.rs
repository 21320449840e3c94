//! Delivered and read status of this client's own messages.
//!
//! A sent message is *delivered* when every other member of its room has a delivered
//! watermark at or past its `seq`, and *read* likewise with the read watermark
//! (docs/protocol.md, Semantics). Watermarks come from the `room:join` answer (its optional
//! `watermarks` field) and from `receipt:update` events; membership from the join answer
//! and `room:member` events. A room with no other member makes every message delivered and
//! read at once: nobody else is waiting for it.
//!
//! The messages waiting for receipts are kept in memory, at most
//! [`receipt_tracking`](crate::ClientBuilder::receipt_tracking) per room and state; past it
//! the oldest are left to the store, which receipts of that room then also query.

use std::collections::BTreeMap;

use chat_protocol::{ClientId, RoomId, Seq};

use crate::client::shared::{lock, Inner};
use crate::error::StoreError;
use crate::outbox::transitions;
use crate::receive::rooms::AwaitingReceipt;
use crate::MessageState;

/// The lowest (delivered, read) watermark among the other members of `room`, if the room
/// is known.
fn others_floor(inner: &Inner, room: &RoomId) -> Option<(Seq, Seq)> {
    let rooms = lock(&inner.rooms);
    let view = rooms.get(room)?;
    if view.members.is_empty() {
        return None;
    }
    let mut floor = (Seq::MAX, Seq::MAX);
    for member in &view.members {
        if Some(member) == inner.me.as_ref() {
            continue;
        }
        let (delivered, read) = view.watermarks.get(member).copied().unwrap_or((0, 0));
        floor = (floor.0.min(delivered), floor.1.min(read));
    }
    Some(floor)
}

/// Remembers an acknowledged message of this client (`Sent` or `Delivered`) so receipts
/// can move it on. Called once the change to `state` is committed (or at start).
pub(crate) fn track(inner: &Inner, room: &RoomId, client_id: ClientId, state: &MessageState) {
    let limit = inner.config.receipt_tracking;
    let mut rooms = lock(&inner.rooms);
    let view = rooms.entry(room.clone()).or_default();
    match state {
        MessageState::Sent { id, seq } => {
            let id = id.clone();
            view.awaiting_delivery
                .insert(*seq, AwaitingReceipt { client_id, id });
        }
        MessageState::Delivered { id, seq } => {
            let id = id.clone();
            view.awaiting_read
                .insert(*seq, AwaitingReceipt { client_id, id });
        }
        _ => {}
    }
    let over = view.awaiting_delivery.len() > limit || view.awaiting_read.len() > limit;
    while view.awaiting_delivery.len() > limit {
        view.awaiting_delivery.pop_first();
    }
    while view.awaiting_read.len() > limit {
        view.awaiting_read.pop_first();
    }
    view.untracked |= over;
}

/// Removes and returns the entries of `map` at or below `up_to`, in `seq` order.
fn take_up_to(
    map: &mut BTreeMap<Seq, AwaitingReceipt>,
    up_to: Seq,
) -> BTreeMap<Seq, AwaitingReceipt> {
    match up_to.checked_add(1) {
        Some(first_kept) => {
            let kept = map.split_off(&first_kept);
            std::mem::replace(map, kept)
        }
        None => std::mem::take(map),
    }
}

/// Moves the sent messages of `room` forward to `Delivered` or `Read` as the watermarks
/// allow, in one store change, which is not waited for (see
/// [`transitions::record_receipts`]). States never move back. Each receipt costs only the
/// messages it moves.
pub(crate) async fn refresh_room(inner: &Inner, room: &RoomId) -> Result<(), StoreError> {
    let Some((delivered, read)) = others_floor(inner, room) else {
        return Ok(());
    };
    let _guard = inner.status_lock.lock().await;
    let mut moves = Vec::new();
    let untracked = {
        let mut rooms = lock(&inner.rooms);
        let Some(view) = rooms.get_mut(room) else {
            return Ok(());
        };
        // Read implies delivered: whatever the read watermark passed is read at once.
        let read_now = take_up_to(&mut view.awaiting_read, read)
            .into_iter()
            .chain(take_up_to(&mut view.awaiting_delivery, read));
        for (seq, waiting) in read_now {
            moves.push((
                waiting.client_id,
                MessageState::Read {
                    id: waiting.id,
                    seq,
                },
            ));
        }
        for (seq, waiting) in take_up_to(&mut view.awaiting_delivery, delivered) {
            let state = MessageState::Delivered {
                id: waiting.id.clone(),
                seq,
            };
            moves.push((waiting.client_id, state));
            view.awaiting_read.insert(seq, waiting);
        }
        view.untracked
    };
    if untracked {
        untracked_moves(inner, room, (delivered, read), &mut moves).await?;
    }
    transitions::record_receipts(inner, room, moves);
    Ok(())
}

/// Adds the moves of the room's acknowledged messages that only the store follows. The
/// store reads only the rows these watermarks move, so a room stays cheap however many of
/// its messages wait (a room where nobody reads); the room stays in this mode until the
/// client is opened again.
async fn untracked_moves(
    inner: &Inner,
    room: &RoomId,
    (delivered, read): (Seq, Seq),
    moves: &mut Vec<(ClientId, MessageState)>,
) -> Result<(), StoreError> {
    let moving: std::collections::HashSet<ClientId> = moves.iter().map(|(id, _)| *id).collect();
    let found = inner
        .store
        .receipt_moves_in(room.clone(), delivered, read)
        .await?;
    for message in found {
        if moving.contains(&message.client_id) {
            continue;
        }
        let next = match message.state {
            MessageState::Sent { id, seq } | MessageState::Delivered { id, seq } if seq <= read => {
                Some(MessageState::Read { id, seq })
            }
            MessageState::Sent { id, seq } if seq <= delivered => {
                Some(MessageState::Delivered { id, seq })
            }
            _ => None,
        };
        if let Some(state) = next {
            moves.push((message.client_id, state));
        }
    }
    Ok(())
}
