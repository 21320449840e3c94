//! Sending server events to the sockets in a room.
//!
//! Messages are fanned out to this server's own sockets by one task ([`run`], the room
//! tails of [`crate::tails`]), so every receiver gets a room's messages in `seq` order, each
//! once. Each socket is written to on its own: a socket whose buffer is full is disconnected
//! rather than silently skipped, so its client reconnects and catches up with `message:sync`
//! instead of missing a message.
//!
//! The other events ([`announce`]) reach the sockets of every server through the adapter when
//! there are several; they are at-most-once between servers.
//!
//! socketioxide's `disconnect()` of a socket whose buffer is full does nothing (it returns
//! the full-buffer error before closing, as its disconnect packet does not fit either), so
//! [`disconnect`] sends that socket nothing more and retries until the packet fits or the
//! socket is gone.

use std::time::Duration;

use serde::Serialize;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use socketioxide::{BroadcastError, SendError, SocketError, SocketIo};

use crate::cluster::Io;

/// The sockets in `rooms`; none once the server is closing (socketioxide's `io.to` would
/// panic when the namespace is gone, as it is after `close`).
pub fn sockets_in<A: Adapter>(io: &SocketIo<A>, rooms: Vec<String>) -> Vec<SocketRef<A>> {
    io.of("/")
        .map(|ns| ns.to(rooms).sockets())
        .unwrap_or_default()
}

/// Emits `event` to every socket in `rooms`; sockets that cannot take it are disconnected.
pub fn emit_to<A: Adapter, T: Serialize + ?Sized>(
    io: &SocketIo<A>,
    rooms: Vec<String>,
    event: &str,
    data: &T,
) {
    if rooms.is_empty() {
        return;
    }
    for socket in sockets_in(io, rooms) {
        if socket.extensions.get::<Dropping>().is_some() {
            continue;
        }
        match socket.emit(event, data) {
            Ok(()) => {}
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                tracing::warn!(sid = %socket.id, event, "socket buffer full; disconnecting it so it resyncs");
                disconnect(socket);
            }
            Err(e) => tracing::debug!(sid = %socket.id, event, error = %e, "emit failed"),
        }
    }
}

/// Marks a socket being disconnected: nothing more is sent to it.
#[derive(Clone, Copy, Debug)]
struct Dropping;

/// How often the disconnect of a socket with a full buffer is tried again.
const DISCONNECT_RETRY: Duration = Duration::from_millis(10);

/// Disconnects `socket` from the server side, also when its buffer is full: it is sent
/// nothing more, and the disconnect is tried again until it fits or the socket is gone.
pub fn disconnect<A: Adapter>(socket: SocketRef<A>) {
    match socket.clone().disconnect() {
        Err(SocketError::InternalChannelFull) => {}
        _ => return,
    }
    if socket.extensions.get::<Dropping>().is_some() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    socket.extensions.insert(Dropping);
    runtime.spawn(async move {
        while socket.connected() {
            tokio::time::sleep(DISCONNECT_RETRY).await;
            match socket.clone().disconnect() {
                Err(SocketError::InternalChannelFull) => continue,
                _ => return,
            }
        }
    });
}

/// Emits `event` to the sockets in `rooms` on every server (through the adapter) when
/// `everywhere`, else to this server's alone. When the adapter cannot reach the other
/// servers (Redis down), this server's sockets still get it.
pub async fn announce<T: Serialize + ?Sized>(
    io: &Io,
    everywhere: bool,
    rooms: Vec<String>,
    event: &str,
    data: &T,
) {
    if everywhere && !rooms.is_empty() {
        let Some(ns) = io.of("/") else { return };
        match ns.to(rooms.clone()).emit(event, data).await {
            // Nothing was sent, not even here: send it here.
            Err(BroadcastError::Adapter(e)) => {
                // Counted, and logged at debug: while Redis is down every broadcast fails,
                // and the driver's heartbeat already says so once.
                crate::metrics::ADAPTER_ERRORS.add(1);
                tracing::debug!(event, error = %e, "not sent to the other servers");
            }
            Err(e) => {
                tracing::debug!(event, error = %e, "not sent to some sockets");
                return;
            }
            Ok(()) => return,
        }
    }
    emit_to(io, rooms, event, data);
}
