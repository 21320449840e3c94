//! Sending server events to the sockets in a room.
//!
//! Messages are fanned out by one task reading the store's commit feed, so every receiver
//! gets a room's messages in `seq` order. Each socket is written to on its own: a socket whose
//! buffer is full is disconnected rather than silently skipped, so its client reconnects and
//! catches up with `message:sync` instead of missing a message.
//!
//! socketioxide's `disconnect()` of a socket whose buffer is full does nothing (it returns
//! the full-buffer error before closing, as its disconnect packet does not fit either), so
//! [`disconnect`] sends that socket nothing more and retries until the packet fits or the
//! socket is gone.

use std::time::Duration;

use chat_protocol::events::names;
use chat_protocol::Message;
use serde::Serialize;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use socketioxide::{SendError, SocketError, SocketIo};
use tokio::sync::mpsc;

use crate::state::room_key;

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

/// Fans out committed messages, in commit order, until the feed closes.
pub async fn run<A: Adapter>(io: SocketIo<A>, mut feed: mpsc::Receiver<Message>) {
    while let Some(message) = feed.recv().await {
        emit_to(
            &io,
            vec![room_key(&message.room)],
            names::MESSAGE_NEW,
            &message,
        );
    }
}
