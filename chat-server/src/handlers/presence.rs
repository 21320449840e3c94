//! `presence:get`: who is online now, and when each user was last seen.

use crate::cluster::{online_anywhere, Io, Socket};
use chat_protocol::requests::PresenceGet;
use chat_protocol::results::PresenceResult;
use chat_protocol::{Presence, UserId};

use super::Reply;
use crate::state::AppState;

pub(super) async fn presence_get(
    app: &AppState,
    io: &Io,
    _socket: &Socket,
    _user: &UserId,
    request: PresenceGet,
) -> Reply<PresenceResult> {
    let last_seen = app
        .store
        .last_seen(&request.users)
        .await
        .map_err(|e| e.to_wire())?;
    let mut presence = Vec::with_capacity(request.users.len());
    for (user, last_seen) in request.users.into_iter().zip(last_seen) {
        let mut online = app.presence.is_online(&user);
        // A user with no socket here may have one on another server.
        if !online && app.everywhere() {
            online = online_anywhere(io, &user).await.unwrap_or(false);
        }
        presence.push(Presence {
            online,
            user,
            last_seen,
        });
    }
    Ok(PresenceResult { presence })
}
