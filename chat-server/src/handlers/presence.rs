//! `presence:get`: who is online now, and when each user was last seen.

use crate::cluster::{Io, Socket};
use chat_protocol::requests::PresenceGet;
use chat_protocol::results::PresenceResult;
use chat_protocol::{Presence, UserId};

use super::Reply;
use crate::state::AppState;

pub(super) async fn presence_get(
    app: &AppState,
    _io: &Io,
    _socket: &Socket,
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
