//! A socket's life: authentication on connect, the connection cap, presence on connect and
//! disconnect (with the grace period), and handler registration.

use crate::cluster::{online_anywhere, Io, Socket};
use std::sync::Arc;

use chat_protocol::events::names as event;
use chat_protocol::{Presence, UserId};
use serde::Deserialize;
use socketioxide::extract::{Extension, State, TryData};
use socketioxide::socket::DisconnectReason;

use crate::auth::{verify_token_with, TokenExpiry, Verified};
use crate::fanout::announce;
use crate::handlers;
use crate::request_order::Turnstile;
use crate::state::{now_ms, room_key, user_key, AppState};

/// The Socket.IO `auth` object.
#[derive(Debug, Deserialize)]
pub(crate) struct AuthPayload {
    token: String,
    #[serde(default)]
    #[allow(dead_code)]
    device: Option<String>,
}

/// Why a connection was refused; its text is the code (`ErrorCode`) the client sees as the
/// connect error's `message`.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Missing, malformed, expired or wrongly signed token.
    #[error("unauthorized")]
    Unauthorized,
    /// The user has too many sockets open.
    #[error("too_many_connections")]
    TooManyConnections,
}

/// Connect middleware: checks the token and the connection cap before any event is handled.
pub async fn authenticate(
    socket: Socket,
    State(app): State<AppState>,
    TryData(auth): TryData<AuthPayload>,
) -> Result<(), Refusal> {
    let auth = auth.map_err(|_| Refusal::Unauthorized)?;
    let Verified { user, expires_at } =
        verify_token_with(&app.config.jwt_secret, &auth.token, app.config.token_leeway).map_err(
            |e| {
                tracing::info!(sid = %socket.id, error = %e, "connection refused");
                Refusal::Unauthorized
            },
        )?;
    let came_online = app
        .presence
        .admit(&user, app.config.limits.max_connections_per_user)
        .map_err(|_| {
            tracing::info!(%user, "connection refused: too many connections");
            Refusal::TooManyConnections
        })?;
    socket.extensions.insert(user.clone());
    socket
        .extensions
        .insert(TokenExpiry::new(expires_at, app.config.token_leeway));
    socket.extensions.insert(Arc::new(Turnstile::new(
        app.config.limits.max_queued_requests,
    )));
    socket.extensions.insert(CameOnline(came_online));
    // Handlers are registered here, not in `on_connect`: socketioxide sends CONNECT right
    // after the middleware and only then spawns the connect handler, so a client that
    // emits at once could otherwise reach a socket with no handlers and be ignored.
    socket.join(user_key(&user));
    handlers::register(&socket, &app.config);
    socket.on_disconnect(on_disconnect);
    Ok(())
}

#[derive(Clone, Copy, Debug)]
struct CameOnline(bool);

/// Connect handler: runs after [`authenticate`] admitted the socket.
pub async fn on_connect(
    socket: Socket,
    io: Io,
    State(app): State<AppState>,
    Extension(user): Extension<UserId>,
) {
    tracing::debug!(sid = %socket.id, %user, "connected");
    if socket.extensions.get::<CameOnline>().is_some_and(|c| c.0) {
        announce_presence(&app, &io, &user, true, None).await;
    }
}

async fn on_disconnect(
    reason: DisconnectReason,
    socket: Socket,
    io: Io,
    State(app): State<AppState>,
    Extension(user): Extension<UserId>,
) {
    tracing::debug!(sid = %socket.id, %user, ?reason, "disconnected");
    crate::metrics::DISCONNECTS.inc(&[disconnect_reason(reason)]);
    let Some(generation) = app.presence.release(&user) else {
        return;
    };
    let closed_at = now_ms();
    if let Err(e) = app.store.set_last_seen(&user, closed_at).await {
        tracing::warn!(%user, error = %e, "last_seen not stored");
    }
    tokio::spawn(async move {
        tokio::time::sleep(app.config.presence_grace).await;
        if !app.presence.expire(&user, generation) {
            return;
        }
        // Its last socket here closed; with several servers it may have one on another.
        if app.everywhere() && online_anywhere(&io, &user).await == Some(true) {
            return;
        }
        announce_presence(&app, &io, &user, false, Some(closed_at)).await;
    });
}

/// The name of a disconnect reason in metrics.
fn disconnect_reason(reason: DisconnectReason) -> &'static str {
    match reason {
        DisconnectReason::TransportClose => "transport_close",
        DisconnectReason::MultipleHttpPollingError => "polling_error",
        DisconnectReason::PacketParsingError => "packet_parsing_error",
        DisconnectReason::TransportError => "transport_error",
        DisconnectReason::HeartbeatTimeout => "heartbeat_timeout",
        DisconnectReason::ClientNSDisconnect => "client_disconnect",
        DisconnectReason::ServerNSDisconnect => "server_disconnect",
        DisconnectReason::ClosingServer => "server_closing",
    }
}

/// Tells the sockets of every user sharing a room with `user` that its presence changed.
async fn announce_presence(
    app: &AppState,
    io: &Io,
    user: &UserId,
    online: bool,
    last_seen: Option<i64>,
) {
    let rooms = match app.store.rooms_of(user).await {
        Ok(rooms) => rooms,
        Err(e) => {
            tracing::warn!(%user, error = %e, "presence not announced");
            return;
        }
    };
    let last_seen = match last_seen {
        Some(ts) => Some(ts),
        None => app
            .store
            .last_seen(std::slice::from_ref(user))
            .await
            .ok()
            .and_then(|seen| seen.into_iter().next().flatten()),
    };
    let update = Presence {
        user: user.clone(),
        online,
        last_seen,
    };
    announce(
        io,
        app.everywhere(),
        rooms.iter().map(room_key).collect(),
        event::PRESENCE_UPDATE,
        &update,
    )
    .await;
}
