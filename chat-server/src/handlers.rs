//! One function per client request: decode, check the rate limit and membership, act, answer.
//!
//! Every request passes through [`respond`], which turns any failure into an error ack with a
//! code, so no request is ever dropped without an answer and nothing here can panic on input.

use chat_protocol::ack;
use chat_protocol::events::names as event;
use chat_protocol::limits::DEFAULT_SYNC_LIMIT;
use chat_protocol::requests::{
    names as request, PresenceGet, Receipt, RoomRequest, SendMessage, SyncMessages,
};
use chat_protocol::results::{
    DeliveredResult, JoinResult, LeaveResult, PresenceResult, ReadResult, SendResult, SyncResult,
};
use chat_protocol::{
    decode_request, ErrorBody, ErrorCode, Presence, ReceiptUpdate, RoomId, RoomMember,
    TypingUpdate, UserId,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use socketioxide::extract::{AckSender, Extension, SocketRef, State, TryData};
use socketioxide::socket::Sid;
use socketioxide::{SendError, SocketError, SocketIo};

use crate::fanout::{emit_to, sockets_in};
use crate::rate::RateClass;
use crate::sequencer::Turn;
use crate::state::{now_ms, room_key, user_key, AppState};
use crate::store::{Appended, Membership, NewMessage};

type Reply<T> = Result<T, ErrorBody>;

fn forbidden(room: &impl std::fmt::Display) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::Forbidden,
        format!("not a member of room {room}; join it first"),
    )
}

/// Rate-limits, decodes and runs one request; the answer is the ack to send.
async fn respond<Req, Res, Fut>(
    app: &AppState,
    class: RateClass,
    user: &UserId,
    argument: Result<Value, impl std::fmt::Display>,
    act: impl FnOnce(Req) -> Fut,
) -> Value
where
    Req: DeserializeOwned,
    Res: Serialize,
    Fut: std::future::Future<Output = Reply<Res>>,
{
    let outcome = async {
        app.limiters.check(class, user)?;
        let argument = argument.map_err(|e| {
            ErrorBody::new(
                ErrorCode::InvalidPayload,
                format!("the argument must be one JSON object: {e}"),
            )
        })?;
        let parsed =
            decode_request::<Req>(argument).map_err(|e| ErrorBody::new(e.code, e.message))?;
        act(parsed).await
    }
    .await;
    match outcome {
        Ok(result) => ack::ok(&result),
        Err(error) => ack::err(&error),
    }
}

fn send_ack(socket: &SocketRef, ack: AckSender, reply: Value) {
    match ack.send(&reply) {
        Ok(()) => {}
        // Gone already: the client resends what was not acked; idempotency makes that safe.
        Err(SendError::Socket(SocketError::Closed)) => {
            tracing::debug!(sid = %socket.id, "ack not sent: socket closed");
        }
        // A full buffer means the socket cannot keep up: drop it so its client reconnects
        // promptly instead of waiting for its ack timeout.
        Err(e) => {
            tracing::warn!(sid = %socket.id, error = %e, "ack could not be sent; disconnecting socket");
            let _ = socket.clone().disconnect();
        }
    }
}

macro_rules! on_request {
    ($socket:expr, $event:expr, $class:expr, $handler:path) => {
        $socket.on(
            $event,
            |socket: SocketRef,
             io: SocketIo,
             State(app): State<AppState>,
             Extension(user): Extension<UserId>,
             ack: AckSender,
             TryData(argument): TryData<Value>,
             turn: Turn| async move {
                let _turn = turn.wait().await;
                let reply = respond(&app, $class, &user, argument, |request| {
                    $handler(&app, &io, &socket, &user, request)
                })
                .await;
                send_ack(&socket, ack, reply);
            },
        )
    };
}

/// Registers every request handler on a freshly connected socket.
pub fn register(socket: &SocketRef) {
    on_request!(socket, request::ROOM_JOIN, RateClass::Other, join);
    on_request!(socket, request::ROOM_LEAVE, RateClass::Other, leave);
    on_request!(socket, request::MESSAGE_SEND, RateClass::Send, send);
    on_request!(socket, request::MESSAGE_SYNC, RateClass::Other, sync);
    on_request!(
        socket,
        request::RECEIPT_DELIVERED,
        RateClass::Other,
        delivered
    );
    on_request!(socket, request::RECEIPT_READ, RateClass::Other, read);
    on_request!(
        socket,
        request::TYPING_START,
        RateClass::Typing,
        typing_start
    );
    on_request!(socket, request::TYPING_STOP, RateClass::Typing, typing_stop);
    on_request!(
        socket,
        request::PRESENCE_GET,
        RateClass::Other,
        presence_get
    );
}

async fn join(
    app: &AppState,
    io: &SocketIo,
    socket: &SocketRef,
    user: &UserId,
    request: RoomRequest,
) -> Reply<JoinResult> {
    let joined = app
        .store
        .join(&request.room, user)
        .await
        .map_err(|e| e.to_wire())?;
    socket.join(room_key(&request.room));
    if joined.newly_joined {
        let member = RoomMember {
            room: request.room.clone(),
            user: user.clone(),
            joined: true,
        };
        emit_to(
            io,
            vec![room_key(&request.room)],
            event::ROOM_MEMBER,
            &member,
        );
    }
    let own = joined.watermarks.iter().find(|w| &w.user == user);
    Ok(JoinResult {
        delivered_seq: own.map_or(0, |w| w.delivered_seq),
        read_seq: own.map_or(0, |w| w.read_seq),
        room: request.room,
        last_seq: joined.last_seq,
        members: joined.members,
        watermarks: joined.watermarks,
    })
}

async fn leave(
    app: &AppState,
    io: &SocketIo,
    _socket: &SocketRef,
    user: &UserId,
    request: RoomRequest,
) -> Reply<LeaveResult> {
    let was_member = app
        .store
        .leave(&request.room, user)
        .await
        .map_err(|e| e.to_wire())?;
    let key = room_key(&request.room);
    if let Some(ns) = io.of("/") {
        if let Err(e) = ns.to(user_key(user)).leave(key.clone()).await {
            tracing::warn!(error = %e, "sockets could not leave the room");
        }
    }
    if was_member {
        let member = RoomMember {
            room: request.room,
            user: user.clone(),
            joined: false,
        };
        emit_to(io, vec![key], event::ROOM_MEMBER, &member);
    }
    Ok(LeaveResult {})
}

async fn send(
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

async fn sync(
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

async fn delivered(
    app: &AppState,
    io: &SocketIo,
    _socket: &SocketRef,
    user: &UserId,
    request: Receipt,
) -> Reply<DeliveredResult> {
    let marks = move_watermark(app, io, user, &request, false).await?;
    Ok(DeliveredResult {
        delivered_seq: marks.delivered_seq,
    })
}

async fn read(
    app: &AppState,
    io: &SocketIo,
    _socket: &SocketRef,
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
    io: &SocketIo,
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
    announce_receipt(io, request, user, marks);
    Ok(marks)
}

fn announce_receipt(
    io: &SocketIo,
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
        emit_to(
            io,
            vec![room_key(&request.room)],
            event::RECEIPT_UPDATE,
            &update,
        );
    }
}

/// `forbidden` unless `user` is a member of `room`.
async fn require_member(app: &AppState, room: &RoomId, user: &UserId) -> Reply<()> {
    if app
        .store
        .is_member(room, user)
        .await
        .map_err(|e| e.to_wire())?
    {
        Ok(())
    } else {
        Err(forbidden(room))
    }
}

/// Emits a typing change to the room, except to `typer` (the socket that typed).
fn announce_typing(io: &SocketIo, update: &TypingUpdate, typer: Sid) {
    let key = room_key(&update.room);
    for target in sockets_in(io, vec![key]) {
        if target.id == typer {
            continue;
        }
        if let Err(e) = target.emit(event::TYPING_UPDATE, update) {
            tracing::debug!(error = %e, "typing update not sent");
        }
    }
}

async fn typing_start(
    app: &AppState,
    io: &SocketIo,
    socket: &SocketRef,
    user: &UserId,
    request: RoomRequest,
) -> Reply<LeaveResult> {
    require_member(app, &request.room, user).await?;
    let (started, generation) = app.typing.start(&request.room, user, socket.id);
    if started {
        let update = TypingUpdate {
            room: request.room.clone(),
            user: user.clone(),
            typing: true,
        };
        announce_typing(io, &update, socket.id);
    }
    let (app, io, room, user) = (app.clone(), io.clone(), request.room, user.clone());
    tokio::spawn(async move {
        tokio::time::sleep(app.config.typing_expiry).await;
        if let Some(typer) = app.typing.expire(&room, &user, generation) {
            let update = TypingUpdate {
                room,
                user,
                typing: false,
            };
            announce_typing(&io, &update, typer);
        }
    });
    Ok(LeaveResult {})
}

async fn typing_stop(
    app: &AppState,
    io: &SocketIo,
    socket: &SocketRef,
    user: &UserId,
    request: RoomRequest,
) -> Reply<LeaveResult> {
    require_member(app, &request.room, user).await?;
    if app.typing.stop(&request.room, user) {
        let update = TypingUpdate {
            room: request.room,
            user: user.clone(),
            typing: false,
        };
        announce_typing(io, &update, socket.id);
    }
    Ok(LeaveResult {})
}

async fn presence_get(
    app: &AppState,
    _io: &SocketIo,
    _socket: &SocketRef,
    _user: &UserId,
    request: PresenceGet,
) -> Reply<PresenceResult> {
    let last_seen = app
        .store
        .last_seen(&request.users)
        .await
        .map_err(|e| e.to_wire())?;
    let presence = request
        .users
        .into_iter()
        .zip(last_seen)
        .map(|(user, last_seen)| Presence {
            online: app.presence.is_online(&user),
            user,
            last_seen,
        })
        .collect();
    Ok(PresenceResult { presence })
}
