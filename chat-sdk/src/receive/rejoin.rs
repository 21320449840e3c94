//! Re-joining a set of rooms and catching each up: with `room:resume` where the server has
//! it (learnt from the first `room:join` answer of the client's life), else room by room
//! with `room:join`, `message:sync` and `receipt:delivered`.
//!
//! Two steps, because queued messages may go once membership is in place, before the
//! catch-up ends: [`rejoin`], then [`catch_up`]. Callers hold `recv_lock` for each.
//! Only the link's end is an error: a room the server refused is left for the next live
//! message or connection, and logged.

use std::collections::BTreeSet;

use chat_protocol::RoomId;

use super::catch_up::{self as room, join_room, mark_live, sync_room};
use super::receive_loop::fatal;
use super::resume;
use crate::client::shared::Inner;
use crate::error::RequestError;
use crate::transport::Connection;

/// What re-joining left to do once queued messages may go.
#[derive(Debug, Default)]
pub(crate) struct Rejoined {
    /// Rooms joined one by one: catch each up (sync, then receipt).
    one_by_one: Vec<RoomId>,
    /// Rooms resumed with more missed than their first page: sync them.
    follow_up: Vec<RoomId>,
    /// Rooms resumed whose position moved: their receipt is due.
    moved: Vec<RoomId>,
}

/// Re-joins `rooms`.
pub(crate) async fn rejoin(
    inner: &Inner,
    conn: &dyn Connection,
    rooms: &[RoomId],
) -> Result<Rejoined, RequestError> {
    let mut probed = None;
    if inner.resume.get().is_none() {
        if let Some(first) = rooms.first() {
            match join_room(inner, conn, first, None).await {
                Ok(_) => probed = Some(first),
                Err(err) => ended(err)?,
            }
        }
    }
    let mut rejoined = Rejoined {
        one_by_one: rooms.to_vec(),
        ..Rejoined::default()
    };
    if inner.resume.get() == Some(true) && !rooms.is_empty() {
        let resumed = resume::resume(inner, conn, rooms).await?;
        rejoined = Rejoined {
            one_by_one: resumed.refused,
            follow_up: resumed.follow_up,
            moved: resumed.moved,
        };
        probed = None;
    }
    for room in &rejoined.one_by_one {
        if Some(room) == probed {
            continue;
        }
        if let Err(err) = join_room(inner, conn, room, None).await {
            ended(err)?;
        }
    }
    Ok(rejoined)
}

/// Catches up what [`rejoin`] left; rooms whose receipt is due go in `receipts_due`.
pub(crate) async fn catch_up(
    inner: &Inner,
    conn: &dyn Connection,
    rejoined: Rejoined,
    receipts_due: &mut BTreeSet<RoomId>,
) -> Result<(), RequestError> {
    receipts_due.extend(rejoined.moved);
    for room in rejoined.one_by_one {
        // A receipt refused (or a sync refused for good) is tried again with the next batch.
        if let Err(err) = room::catch_up(inner, conn, &room).await {
            ended(err)?;
        }
        receipts_due.insert(room);
    }
    for room in rejoined.follow_up {
        match sync_room(inner, conn, &room).await {
            Ok(()) => mark_live(inner, &room),
            Err(err) => ended(err)?,
        }
        receipts_due.insert(room);
    }
    Ok(())
}

/// `Err` if `err` means the link is gone; else logs it (`fatal` does) and carries on.
fn ended(err: RequestError) -> Result<(), RequestError> {
    match fatal(&err) {
        Some(_) => Err(err),
        None => Ok(()),
    }
}
