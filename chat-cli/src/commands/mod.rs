//! One module per command; each takes its parsed flags and returns `Ok(())` or a
//! [`Fail`](crate::fail::Fail) with its exit code.

pub mod chat;
pub mod history;
pub mod listen;
pub mod outbox;
pub mod requests;
pub mod send;
pub mod serve;

use chat_protocol::RoomId;
use chat_sdk::{Client, RequestError};

use crate::fail::Fail;

/// Resolves on Ctrl-C or SIGTERM (client commands need nothing of the server crate).
pub async fn interrupted() {
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => drop(terminate.recv().await),
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// Joins `room` unless this outbox file already has: membership is durable on the server,
/// and the SDK re-joins known rooms on every connection. Offline, the SDK remembers the
/// room and joins it as soon as it connects (before it sends anything).
pub async fn ensure_joined(client: &Client, room: &RoomId) -> Result<(), Fail> {
    if client.rooms().contains_key(room) {
        return Ok(());
    }
    join(client, room).await
}

/// Joins `room` now (offline: as soon as the client connects).
pub async fn join(client: &Client, room: &RoomId) -> Result<(), Fail> {
    match client.join(room).await {
        Ok(_) | Err(RequestError::NotConnected) => Ok(()),
        Err(err) => Err(Fail::from(err)),
    }
}

/// Joins every room of `rooms` now (offline: as soon as the client connects).
pub async fn join_all(client: &Client, rooms: &[RoomId]) -> Result<(), Fail> {
    if rooms.is_empty() {
        return Ok(());
    }
    match client.join_all(rooms).await {
        Ok(()) | Err(RequestError::NotConnected) => Ok(()),
        Err(err) => Err(Fail::from(err)),
    }
}

/// Prints a line on stdout, ignoring a closed pipe (`chat listen | head` must not panic).
pub fn out(line: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}
