//! Delivered and read status of this client's own messages.
//!
//! A sent message is *delivered* when every other member of its room has a delivered
//! watermark at or past its `seq`, and *read* likewise with the read watermark
//! (PROTOCOL.md, Semantics). Watermarks come from the `room:join` answer (its optional
//! `watermarks` field) and from `receipt:update` events; membership from the join answer
//! and `room:member` events. A room with no other member makes every message delivered and
//! read at once: nobody else is waiting for it.

use chat_protocol::{RoomId, Seq};

use crate::error::StoreError;
use crate::inner::{lock, Inner};
use crate::outbox::transition;
use crate::state::MessageState;

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

/// Moves the sent messages of `room` forward to `Delivered` or `Read` as the watermarks
/// allow. States never move back.
pub(crate) fn refresh_room(inner: &Inner, room: &RoomId) -> Result<(), StoreError> {
    let Some((delivered, read)) = others_floor(inner, room) else {
        return Ok(());
    };
    let _guard = lock(&inner.status_lock);
    for message in inner.store.sent_to_advance(room, delivered, read)? {
        let Some(seq) = message.state.seq() else {
            continue;
        };
        let id = match &message.state {
            MessageState::Sent { id, .. } | MessageState::Delivered { id, .. } => id.clone(),
            _ => continue,
        };
        let next = if read >= seq {
            MessageState::Read { id, seq }
        } else if delivered >= seq {
            MessageState::Delivered { id, seq }
        } else {
            continue;
        };
        if next.rank() > message.state.rank() {
            transition(inner, &message, next, None)?;
        }
    }
    Ok(())
}
