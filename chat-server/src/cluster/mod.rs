//! What several servers share besides the store: socketioxide's Redis adapter, carrying
//! room-membership changes and the ephemeral events (`receipt:update`, `typing:update`,
//! `presence:update`, `room:member`) to the sockets of every server.
//!
//! One adapter type serves both deployments: with the driver off it behaves as the local
//! adapter, so the handlers are written once. Messages do not travel through Redis: each
//! server fans them out to its own sockets from the store (see `fanout`), so a broadcast
//! Redis drops cannot lose one.

use socketioxide::adapter::Emitter;
use socketioxide::extract::SocketRef;
use socketioxide::SocketIo;
use socketioxide_redis::CustomRedisAdapter;

mod driver;

use chat_protocol::UserId;

pub use driver::ClusterDriver;

use crate::state::user_key;

/// The Socket.IO adapter of every server.
pub type ChatAdapter = CustomRedisAdapter<Emitter, ClusterDriver>;

/// The Socket.IO server handle.
pub type Io = SocketIo<ChatAdapter>;

/// One connected socket.
pub type Socket = SocketRef<ChatAdapter>;

/// Whether `user` has a socket on any server, asking the others through the adapter;
/// `None` when they cannot be asked (Redis down, or a server did not answer in time).
pub async fn online_anywhere(io: &Io, user: &UserId) -> Option<bool> {
    let ns = io.of("/")?;
    match ns.to(user_key(user)).fetch_sockets().await {
        Ok(sockets) => Some(!sockets.is_empty()),
        Err(e) => {
            crate::metrics::ADAPTER_ERRORS.add(1);
            tracing::debug!(%user, error = %e, "the other servers could not be asked for sockets");
            None
        }
    }
}
