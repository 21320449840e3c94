//! `typing:start` and `typing:stop`: typing indicators shown to the room but the typer, with
//! the server-side expiry of an indicator that is not refreshed.

use crate::cluster::{Io, Socket};
use chat_protocol::events::names as event;
use chat_protocol::requests::RoomRequest;
use chat_protocol::results::LeaveResult;
use chat_protocol::{TypingUpdate, UserId};
use socketioxide::socket::Sid;
use socketioxide::BroadcastError;

use super::{require_member, Reply};
use crate::fanout::sockets_in;
use crate::state::{room_key, AppState};

/// Emits a typing change to the room, except to `typer` (the socket that typed): on every
/// server through the adapter when there are several.
async fn announce_typing(app: &AppState, io: &Io, update: &TypingUpdate, typer: Sid) {
    let key = room_key(&update.room);
    if app.everywhere() {
        if let Some(ns) = io.of("/") {
            match ns
                .to(key.clone())
                .except(typer)
                .emit(event::TYPING_UPDATE, update)
                .await
            {
                Err(BroadcastError::Adapter(e)) => {
                    crate::metrics::ADAPTER_ERRORS.add(1);
                    tracing::debug!(error = %e, "typing update not sent to the other servers");
                }
                _ => return,
            }
        }
    }
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
    io: &Io,
    socket: &Socket,
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
        announce_typing(app, io, &update, socket.id).await;
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
            announce_typing(&app, &io, &update, typer).await;
        }
    });
    Ok(LeaveResult {})
}

pub(super) async fn typing_stop(
    app: &AppState,
    io: &Io,
    socket: &Socket,
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
        announce_typing(app, io, &update, socket.id).await;
    }
    Ok(LeaveResult {})
}
