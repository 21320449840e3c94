//! Catching a room up: `room:join`, then `message:sync` from the last contiguous `seq`,
//! handing each message over once and in order, then `receipt:delivered`.
//!
//! The receive loop calls these after every reconnect and whenever a live `message:new`
//! reveals a gap; [`Client::join`](crate::Client::join) calls them for a new room. Callers
//! hold `recv_lock`, so a catch-up and live events never interleave.
//!
//! A join or sync refused for now is retried (see [`patience`](super::patience)); a room whose
//! join or sync was refused is not left silent while the server can answer. A room is
//! *live* once everything stored before its catch-up was handed over: the application hears
//! it as [`ChatEvent::CaughtUp`].

use chat_protocol::limits::MAX_SYNC_LIMIT;
use chat_protocol::requests::extensions;
use chat_protocol::requests::{names, Receipt, RoomRequest, SyncMessages};
use chat_protocol::results::{DeliveredResult, JoinResult, SyncResult};
use chat_protocol::{Message, RoomId, Seq};

use super::patience::patiently;
use crate::client::shared::{lock, request_on, Inner};
use crate::error::RequestError;
use crate::outbox::receipts;
use crate::receive::ChatEvent;
use crate::transport::Connection;

/// `room:join`, then record members, watermarks and where to start receiving.
/// `since` overrides the start for a room the client has no position for yet.
pub(crate) async fn join_room(
    inner: &Inner,
    conn: &dyn Connection,
    room: &RoomId,
    since: Option<Seq>,
) -> Result<JoinResult, RequestError> {
    let result: JoinResult = patiently(
        inner,
        conn,
        names::ROOM_JOIN,
        &RoomRequest { room: room.clone() },
    )
    .await?;
    learn_extensions(inner, &result.extensions);
    apply_join(inner, room, &result, since).await?;
    Ok(result)
}

/// Records what a join answer (of `room:join` or `room:resume`) says: members, watermarks,
/// where to start receiving (`since`, else the delivered watermark, for a room the client
/// has no position for yet) and whether the server has `room:resume`.
pub(crate) async fn apply_join(
    inner: &Inner,
    room: &RoomId,
    result: &JoinResult,
    since: Option<Seq>,
) -> Result<(), RequestError> {
    let start = {
        let mut rooms = lock(&inner.rooms);
        let view = rooms.entry(room.clone()).or_default();
        view.joined = true;
        view.members = result.members.iter().cloned().collect();
        for mark in &result.watermarks {
            let entry = view.watermarks.entry(mark.user.clone()).or_insert((0, 0));
            *entry = (entry.0.max(mark.delivered_seq), entry.1.max(mark.read_seq));
        }
        view.receipt_sent = view.receipt_sent.max(result.delivered_seq);
        match view.received_seq {
            Some(_) => None,
            None => {
                let start = since.unwrap_or(result.delivered_seq).min(result.last_seq);
                view.received_seq = Some(start);
                Some(start)
            }
        }
    };
    if let Some(start) = start {
        inner.store.advance_position(room.clone(), start).await?;
    }
    receipts::refresh_room(inner, room).await?;
    Ok(())
}

/// Records what a `room:join` or `room:resume` answer says of the server's extensions.
pub(crate) fn learn_extensions(inner: &Inner, offered: &[String]) {
    let offers = |extension: &str| offered.iter().any(|name| name == extension);
    inner.resume.set(offers(extensions::ROOM_RESUME));
    inner.send_batch.set(offers(extensions::MESSAGE_SEND_BATCH));
}

/// The room is live: tells the application once per connection.
pub(crate) fn mark_live(inner: &Inner, room: &RoomId) {
    mark_live_at(inner, room, 0);
}

/// [`mark_live`], if everything up to `seq` was handed over. One lock, and nothing more
/// for a room already live: it runs for every live message.
pub(crate) fn mark_live_at(inner: &Inner, room: &RoomId, seq: Seq) {
    let last_seq = {
        let mut rooms = lock(&inner.rooms);
        let Some(view) = rooms.get_mut(room) else {
            return;
        };
        if view.live || view.received_seq.unwrap_or(0) < seq {
            return;
        }
        view.live = true;
        view.received_seq.unwrap_or(0)
    };
    inner.emit(ChatEvent::CaughtUp {
        room: room.clone(),
        last_seq,
    });
}

/// `message:sync` from the last contiguous `seq` until the room's newest, handing over
/// everything in order, then `receipt:delivered`.
pub(crate) async fn catch_up(
    inner: &Inner,
    conn: &dyn Connection,
    room: &RoomId,
) -> Result<(), RequestError> {
    sync_room(inner, conn, room).await?;
    mark_live(inner, room);
    send_receipt(inner, conn, room).await
}

pub(crate) fn received_seq(inner: &Inner, room: &RoomId) -> Seq {
    lock(&inner.rooms)
        .get(room)
        .and_then(|view| view.received_seq)
        .unwrap_or(0)
}

pub(crate) async fn sync_room(
    inner: &Inner,
    conn: &dyn Connection,
    room: &RoomId,
) -> Result<(), RequestError> {
    loop {
        let after = received_seq(inner, room);
        let page: SyncResult = patiently(
            inner,
            conn,
            names::MESSAGE_SYNC,
            &SyncMessages {
                room: room.clone(),
                after_seq: after,
                limit: Some(MAX_SYNC_LIMIT),
            },
        )
        .await?;
        let handed = hand_over(inner, room, page.messages)?;
        if !page.has_more || handed == 0 {
            return Ok(());
        }
    }
}

/// Hands over the messages that continue the room's contiguous run, in `seq` order;
/// drops duplicates; stops at the first gap. Returns how many were handed over.
pub(crate) fn hand_over(
    inner: &Inner,
    room: &RoomId,
    mut messages: Vec<Message>,
) -> Result<usize, RequestError> {
    messages.sort_by_key(|m| m.seq);
    let mut handed = 0;
    let mut last = received_seq(inner, room);
    for message in messages {
        if message.room != *room || message.seq <= last {
            continue;
        }
        if message.seq != last + 1 {
            break;
        }
        last = message.seq;
        handed += 1;
        inner.emit(ChatEvent::Message(message));
    }
    if handed > 0 {
        // Only the in-memory position moves here; the stored one moves when the
        // application takes the message from the stream (see `Events`).
        lock(&inner.rooms)
            .entry(room.clone())
            .or_default()
            .received_seq = Some(last);
    }
    Ok(handed)
}

pub(crate) async fn send_receipt(
    inner: &Inner,
    conn: &dyn Connection,
    room: &RoomId,
) -> Result<(), RequestError> {
    let (last, confirmed) = {
        let rooms = lock(&inner.rooms);
        match rooms.get(room) {
            Some(view) => (view.received_seq.unwrap_or(0), view.receipt_sent),
            None => return Ok(()),
        }
    };
    if last <= confirmed {
        return Ok(());
    }
    // Not `patiently`: a refused receipt is retried by the receive loop with its next
    // batch, without holding up everything else.
    let result: DeliveredResult = request_on(
        conn,
        names::RECEIPT_DELIVERED,
        &Receipt {
            room: room.clone(),
            up_to_seq: last,
        },
    )
    .await?;
    let mut rooms = lock(&inner.rooms);
    let view = rooms.entry(room.clone()).or_default();
    view.receipt_sent = view.receipt_sent.max(result.delivered_seq);
    Ok(())
}
