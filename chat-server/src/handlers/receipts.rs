//! `receipt:delivered` and `receipt:read`: moving a member's watermarks and announcing the
//! move to the room with `receipt:update`.

use crate::cluster::{Io, Socket};
use chat_protocol::events::names as event;
use chat_protocol::requests::Receipt;
use chat_protocol::results::{DeliveredResult, ReadResult};
use chat_protocol::{ReceiptUpdate, UserId};

use super::{forbidden, Reply};
use crate::fanout::announce;
use crate::state::{room_key, AppState};
use crate::store::Membership;

pub(super) async fn delivered(
    app: &AppState,
    io: &Io,
    _socket: &Socket,
    user: &UserId,
    request: Receipt,
) -> Reply<DeliveredResult> {
    let marks = move_watermark(app, io, user, &request, false).await?;
    Ok(DeliveredResult {
        delivered_seq: marks.delivered_seq,
    })
}

pub(super) async fn read(
    app: &AppState,
    io: &Io,
    _socket: &Socket,
    user: &UserId,
    request: Receipt,
) -> Reply<ReadResult> {
    let marks = move_watermark(app, io, user, &request, true).await?;
    Ok(ReadResult {
        read_seq: marks.read_seq,
        updated: marks.read_moved_by,
    })
}

/// Moves `user`'s delivered (or read) watermark and tells the room when it moved.
async fn move_watermark(
    app: &AppState,
    io: &Io,
    user: &UserId,
    request: &Receipt,
    read: bool,
) -> Reply<crate::store::Watermarks> {
    let (room, up_to) = (&request.room, request.up_to_seq);
    let marks = if read {
        app.store.mark_read(room, user, up_to).await
    } else {
        app.store.mark_delivered(room, user, up_to).await
    };
    let Membership::Member(marks) = marks.map_err(|e| e.to_wire())? else {
        return Err(forbidden(room));
    };
    announce_receipt(app, io, request, user, marks).await;
    Ok(marks)
}

async fn announce_receipt(
    app: &AppState,
    io: &Io,
    request: &Receipt,
    user: &UserId,
    marks: crate::store::Watermarks,
) {
    if marks.moved {
        let update = ReceiptUpdate {
            room: request.room.clone(),
            user: user.clone(),
            delivered_seq: marks.delivered_seq,
            read_seq: marks.read_seq,
        };
        announce(
            io,
            app.everywhere(),
            vec![room_key(&request.room)],
            event::RECEIPT_UPDATE,
            &update,
        )
        .await;
    }
}
