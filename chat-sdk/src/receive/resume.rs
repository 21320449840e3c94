//! Re-joining every room after a (re)connection in one round trip: `room:resume`, an
//! extension of the reference server (docs/protocol.md), which re-joins the rooms and
//! answers, per room, what `room:join` would and the first page of what was missed.
//!
//! Used only with a server whose `room:join` answers announced it: one that does not have it
//! never answers it. The rooms go in as few requests as the server's limits allow (at most
//! [`MAX_RESUME_ROOMS`] rooms and [`MAX_REQUEST_BYTES`] of room names in one); a room whose
//! first page was not all it missed is caught up with `message:sync` afterwards.

use chat_protocol::limits::{MAX_RESUME_ROOMS, MAX_SYNC_LIMIT};
use chat_protocol::requests::{names, ResumeRoom, ResumeRooms};
use chat_protocol::results::ResumeResult;
use chat_protocol::RoomId;

use super::catch_up::{apply_join, hand_over, mark_live};
use super::patience::patiently;
use crate::client::shared::{lock, Inner};
use crate::error::RequestError;
use crate::transport::Connection;

/// Room names one request carries at most, in bytes: well inside the server's 64 KiB packet.
const MAX_REQUEST_BYTES: usize = 48 * 1024;

/// What a resume left to do.
#[derive(Debug, Default)]
pub(crate) struct Resumed {
    /// Rooms with more missed messages than their first page: sync them.
    pub follow_up: Vec<RoomId>,
    /// Rooms whose position moved: their `receipt:delivered` is due.
    pub moved: Vec<RoomId>,
    /// Rooms of a request the server refused: join and catch them up one by one.
    pub refused: Vec<RoomId>,
}

/// Re-joins `rooms` and hands over their first pages of missed messages. A request the
/// server refuses for good leaves its rooms in [`Resumed::refused`]; only the connection's
/// end is an error.
pub(crate) async fn resume(
    inner: &Inner,
    conn: &dyn Connection,
    rooms: &[RoomId],
) -> Result<Resumed, RequestError> {
    let mut resumed = Resumed::default();
    for chunk in chunks(rooms) {
        let request = ResumeRooms {
            rooms: chunk
                .iter()
                .map(|room| ResumeRoom {
                    room: room.clone(),
                    after_seq: lock(&inner.rooms)
                        .get(room)
                        .and_then(|view| view.received_seq),
                })
                .collect(),
            limit: Some(MAX_SYNC_LIMIT),
        };
        let answer: ResumeResult = match patiently(inner, conn, names::ROOM_RESUME, &request).await
        {
            Ok(answer) => answer,
            Err(err @ (RequestError::Transport(_) | RequestError::NotConnected)) => {
                return Err(err)
            }
            Err(err) => {
                tracing::warn!(error = %err, rooms = chunk.len(), "room:resume refused; joining the rooms one by one");
                resumed.refused.extend(chunk.iter().cloned());
                continue;
            }
        };
        for entry in answer.rooms {
            let room = entry.joined.room.clone();
            if !chunk.contains(&room) {
                tracing::warn!(%room, "room:resume answered for a room not asked about; ignored");
                continue;
            }
            apply_join(inner, &room, &entry.joined, None)?;
            if hand_over(inner, &room, entry.messages)? > 0 {
                resumed.moved.push(room.clone());
            }
            if entry.has_more {
                resumed.follow_up.push(room);
            } else {
                mark_live(inner, &room);
            }
        }
        // A room the answer left out is caught up on its own rather than left silent.
        for room in chunk {
            let answered = lock(&inner.rooms).get(room).is_some_and(|view| view.live)
                || resumed.follow_up.contains(room);
            if !answered {
                resumed.follow_up.push(room.clone());
            }
        }
    }
    Ok(resumed)
}

/// Splits `rooms` into requests of at most [`MAX_RESUME_ROOMS`] rooms and
/// [`MAX_REQUEST_BYTES`] of names.
fn chunks(rooms: &[RoomId]) -> Vec<&[RoomId]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, room) in rooms.iter().enumerate() {
        // `{"room":"…","after_seq":…},` with a 20-digit seq at most.
        let size = room.as_str().len() + 40;
        if i > start && (i - start == MAX_RESUME_ROOMS || bytes + size > MAX_REQUEST_BYTES) {
            chunks.push(&rooms[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < rooms.len() {
        chunks.push(&rooms[start..]);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rooms(n: usize, name_len: usize) -> Vec<RoomId> {
        (0..n)
            .map(|i| RoomId::new(format!("{i:0>name_len$}")).expect("valid room"))
            .collect()
    }

    #[test]
    fn a_thousand_short_rooms_go_in_one_request() {
        let rooms = rooms(1000, 8);
        assert_eq!(chunks(&rooms).len(), 1);
    }

    #[test]
    fn long_names_and_many_rooms_are_split_within_the_limits() {
        let long = rooms(1000, 64);
        let split = chunks(&long);
        assert!(split.len() > 1);
        assert!(split
            .iter()
            .all(|c| c.iter().map(|r| r.as_str().len() + 40).sum::<usize>() <= MAX_REQUEST_BYTES));
        assert_eq!(split.iter().map(|c| c.len()).sum::<usize>(), 1000);
        let many = rooms(2500, 4);
        assert_eq!(
            chunks(&many).iter().map(|c| c.len()).collect::<Vec<_>>(),
            vec![1000, 1000, 500]
        );
        assert!(chunks(&[]).is_empty());
    }
}
