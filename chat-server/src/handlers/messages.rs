//! `message:send` and `message:sync`: storing a message (idempotent by client id) and
//! paging through a room's history.

use chat_protocol::limits::DEFAULT_SYNC_LIMIT;
use chat_protocol::requests::{SendMessage, SyncMessages};
use chat_protocol::results::{SendResult, SyncResult};
use chat_protocol::{ErrorBody, ErrorCode, UserId};
use socketioxide::extract::SocketRef;
use socketioxide::SocketIo;

use super::{forbidden, Reply};
use crate::state::{now_ms, AppState};
use crate::store::{Appended, Membership, NewMessage};

pub(super) async fn send(
    app: &AppState,
    _io: &SocketIo,
    _socket: &SocketRef,
    user: &UserId,
    request: SendMessage,
) -> Reply<SendResult> {
    let max = app.config.limits.max_body_chars;
    if request.body.char_count() > max {
        return Err(ErrorBody::new(
            ErrorCode::TooLarge,
            format!(
                "body has {} characters, at most {max} are allowed",
                request.body.char_count()
            ),
        ));
    }
    let appended = app
        .store
        .append(NewMessage {
            room: request.room.clone(),
            sender: user.clone(),
            client_id: request.client_id,
            body: request.body,
            reply_to: request.reply_to,
            ts: now_ms(),
        })
        .await
        .map_err(|e| e.to_wire())?;
    // A stored message reaches the room through the store's commit feed (see `fanout`).
    match appended {
        Appended::Stored(message) => Ok(SendResult {
            id: message.id,
            seq: message.seq,
            ts: message.ts,
            duplicate: false,
        }),
        Appended::Duplicate(original) => Ok(SendResult {
            id: original.id,
            seq: original.seq,
            ts: original.ts,
            duplicate: true,
        }),
        Appended::NotMember => Err(forbidden(&request.room)),
    }
}

pub(super) async fn sync(
    app: &AppState,
    _io: &SocketIo,
    _socket: &SocketRef,
    user: &UserId,
    request: SyncMessages,
) -> Reply<SyncResult> {
    let limit = request.limit.unwrap_or(DEFAULT_SYNC_LIMIT);
    match app
        .store
        .sync(&request.room, user, request.after_seq, limit)
        .await
        .map_err(|e| e.to_wire())?
    {
        Membership::Member(page) => Ok(SyncResult {
            messages: page.messages,
            last_seq: page.last_seq,
            has_more: page.has_more,
        }),
        Membership::NotMember => Err(forbidden(&request.room)),
    }
}
