//! `typing:start` and `typing:stop`: typing indicators shown to the room but the typer, with
//! the server-side expiry of an indicator that is not refreshed.

use chat_protocol::events::names as event;
use chat_protocol::requests::RoomRequest;
use chat_protocol::results::LeaveResult;
use chat_protocol::{TypingUpdate, UserId};
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;
use socketioxide::SocketIo;

use super::{require_member, Reply};
use crate::fanout::sockets_in;
use crate::state::{room_key, AppState};

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

pub(super) async fn typing_start(
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

pub(super) async fn typing_stop(
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
