//! `message:send`, `message:send_batch` and `message:sync`: storing messages (idempotent by
//! client id) and paging through a room's history.

use crate::cluster::{Io, Socket};
use chat_protocol::batch::{decode_send_batch, SendBatchResult, SendOutcome};
use chat_protocol::limits::DEFAULT_SYNC_LIMIT;
use chat_protocol::requests::{SendMessage, SyncMessages};
use chat_protocol::results::{SendResult, SyncResult};
use chat_protocol::{ErrorBody, ErrorCode, RoomId, UserId};
use serde_json::Value;

use super::{forbidden, Reply};
use crate::rate::RateClass;
use crate::state::{now_ms, AppState};
use crate::store::{Appended, Membership, NewMessage};

pub(super) async fn send(
    app: &AppState,
    _io: &Io,
    _socket: &Socket,
    user: &UserId,
    request: SendMessage,
) -> Reply<SendResult> {
    check_length(app, &request)?;
    let room = request.room.clone();
    let started = std::time::Instant::now();
    let appended = app.store.append(new_message(user, request)).await;
    crate::metrics::STORE_COMMIT.observe(started.elapsed());
    let appended = appended.map_err(|e| e.to_wire())?;
    // A stored message reaches the room through the store's commit feed (see `fanout`).
    answer(appended, &room)
}

/// `message:send_batch`: each message checked alone, those that pass stored in order in one
/// store operation. Each message weighs one request of the send rate limit; the first one
/// the limit refuses ends the answer, so what is stored is always a prefix of what was sent
/// (docs/protocol.md).
pub(super) async fn send_batch(
    app: &AppState,
    _io: &Io,
    _socket: &Socket,
    user: &UserId,
    argument: Value,
) -> Reply<SendBatchResult> {
    let items = decode_send_batch(argument)?;
    let mut answers: Vec<Option<Reply<SendResult>>> = Vec::with_capacity(items.len());
    let mut to_store = Vec::with_capacity(items.len());
    let mut cut = None;
    for (index, item) in items.into_iter().enumerate() {
        // `respond` took the first message's share of the limit already.
        if index > 0 {
            if let Err(refused) = app.limiters.check(RateClass::Send, user) {
                cut = Some(refused);
                break;
            }
        }
        match item.and_then(|request| check_length(app, &request).map(|()| request)) {
            Ok(request) => {
                to_store.push((request.room.clone(), new_message(user, request)));
                answers.push(None);
            }
            Err(refused) => answers.push(Some(Err(refused))),
        }
    }
    let (rooms, messages): (Vec<RoomId>, Vec<NewMessage>) = to_store.into_iter().unzip();
    let mut stored = if messages.is_empty() {
        Vec::new()
    } else {
        let started = std::time::Instant::now();
        let appended = app.store.append_batch(messages).await;
        crate::metrics::STORE_COMMIT.observe(started.elapsed());
        appended.map_err(|e| e.to_wire())?
    }
    .into_iter()
    .zip(rooms)
    .map(|(appended, room)| answer(appended, &room));
    let mut results = Vec::with_capacity(answers.len() + 1);
    for decided in answers {
        let outcome = match decided {
            Some(refused) => refused,
            None => stored
                .next()
                .ok_or_else(|| ErrorBody::new(ErrorCode::Internal, "the store lost a message"))?,
        };
        results.push(SendOutcome(outcome));
    }
    results.extend(cut.map(|refused| SendOutcome(Err(refused))));
    Ok(SendBatchResult { results })
}

/// `too_large` when the body is longer than this server allows.
fn check_length(app: &AppState, request: &SendMessage) -> Reply<()> {
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
    Ok(())
}

fn new_message(user: &UserId, request: SendMessage) -> NewMessage {
    NewMessage {
        room: request.room,
        sender: user.clone(),
        client_id: request.client_id,
        body: request.body,
        reply_to: request.reply_to,
        ts: now_ms(),
    }
}

/// What `message:send` answers for what the store did.
fn answer(appended: Appended, room: &RoomId) -> Reply<SendResult> {
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
        Appended::NotMember => Err(forbidden(room)),
    }
}

pub(super) async fn sync(
    app: &AppState,
    _io: &Io,
    _socket: &Socket,
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
