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

use super::catch_up::{apply_join, hand_over, learn_extensions, mark_live};
use super::patience::patiently;
use crate::client::shared::{lock, Inner};
use crate::error::RequestError;
use crate::transport::{Connection, MAX_REQUEST_BYTES};

/// What a resume left to do.
#[derive(Debug, Default)]
pub(crate) struct Resumed {
    /// Rooms with more missed messages than their first page: sync them.
    pub follow_up: Vec<RoomId>,
    /// Rooms whose position moved: their `receipt:delivered` is due.
    pub moved: Vec<RoomId>,
    /// Rooms of a request the server refused, or that its answer left out: join and catch
    /// them up one by one.
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
    let entries: Vec<ResumeRoom> = {
        let views = lock(&inner.rooms);
        rooms
            .iter()
            .map(|room| ResumeRoom {
                room: room.clone(),
                after_seq: views.get(room).and_then(|view| view.received_seq),
            })
            .collect()
    };
    for (chunk, entries) in chunks(rooms, &entries) {
        let request = ResumeRooms {
            rooms: entries.to_vec(),
            limit: Some(MAX_SYNC_LIMIT),
        };
        let answer: ResumeResult = match patiently(inner, conn, names::ROOM_RESUME, &request).await
        {
            Ok(answer) => answer,
            Err(err @ (RequestError::Transport(_) | RequestError::NotConnected)) => {
                // Maybe this server never answers it (it was replaced by one without the
                // extension): the next connection asks a join answer again rather than
                // resume into silence for ever.
                inner.resume.forget();
                return Err(err);
            }
            Err(err) => {
                tracing::warn!(error = %err, rooms = chunk.len(), "room:resume refused; joining the rooms one by one");
                resumed.refused.extend(chunk.iter().cloned());
                continue;
            }
        };
        // A server that lists no extensions here predates the list: it has `room:resume`
        // (it just answered one), and what else it has was learnt from a join answer.
        if !answer.extensions.is_empty() {
            learn_extensions(inner, &answer.extensions);
        }
        for entry in answer.rooms {
            let room = entry.joined.room.clone();
            if !chunk.contains(&room) {
                tracing::warn!(%room, "room:resume answered for a room not asked about; ignored");
                continue;
            }
            // A store that refuses (a full disk) costs this room its resume, not the
            // session: it is joined and caught up on its own, as the room-by-room path does.
            let handed = match apply_join(inner, &room, &entry.joined, None).await {
                Ok(()) => hand_over(inner, &room, entry.messages),
                Err(err) => Err(err),
            };
            match handed {
                Ok(0) => {}
                Ok(_) => resumed.moved.push(room.clone()),
                Err(err) => {
                    tracing::warn!(%room, error = %err, "a resumed room could not be recorded");
                    resumed.refused.push(room);
                    continue;
                }
            }
            if entry.has_more {
                resumed.follow_up.push(room);
            } else {
                mark_live(inner, &room);
            }
        }
        // A room the answer left out is joined and caught up on its own rather than left
        // silent (a sync alone would not bring its live events to this socket).
        for room in chunk {
            let answered = lock(&inner.rooms).get(room).is_some_and(|view| view.live)
                || resumed.follow_up.contains(room)
                || resumed.refused.contains(room);
            if !answered {
                resumed.refused.push(room.clone());
            }
        }
    }
    Ok(resumed)
}

/// What one room takes in a request: its encoding and a comma.
fn entry_bytes(entry: &ResumeRoom) -> usize {
    serde_json::to_vec(entry).map_or(usize::MAX / 2, |bytes| bytes.len() + 1)
}

/// Splits `rooms` (and their `entries`, one each) into requests of at most
/// [`MAX_RESUME_ROOMS`] rooms and [`MAX_REQUEST_BYTES`].
fn chunks<'a>(
    rooms: &'a [RoomId],
    entries: &'a [ResumeRoom],
) -> Vec<(&'a [RoomId], &'a [ResumeRoom])> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, entry) in entries.iter().enumerate() {
        let size = entry_bytes(entry);
        if i > start && (i - start == MAX_RESUME_ROOMS || bytes + size > MAX_REQUEST_BYTES) {
            chunks.push((&rooms[start..i], &entries[start..i]));
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < entries.len() {
        chunks.push((&rooms[start..], &entries[start..]));
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(
        n: usize,
        name_len: usize,
        after_seq: Option<u64>,
    ) -> (Vec<RoomId>, Vec<ResumeRoom>) {
        let rooms: Vec<RoomId> = (0..n)
            .map(|i| RoomId::new(format!("{i:0>name_len$}")).expect("valid room"))
            .collect();
        let entries = rooms
            .iter()
            .map(|room| ResumeRoom {
                room: room.clone(),
                after_seq,
            })
            .collect();
        (rooms, entries)
    }

    fn sizes(chunks: &[(&[RoomId], &[ResumeRoom])]) -> Vec<usize> {
        chunks.iter().map(|(rooms, _)| rooms.len()).collect()
    }

    #[test]
    fn a_thousand_rooms_with_short_names_go_in_one_request() {
        let (rooms, entries) = entries(1000, 24, Some(123_456));
        assert_eq!(sizes(&chunks(&rooms, &entries)), vec![1000]);
    }

    #[test]
    fn long_names_and_many_rooms_are_split_within_the_limits() {
        let (rooms, long) = entries(1000, 64, Some(u64::MAX));
        let split = chunks(&rooms, &long);
        assert!(split.len() > 1);
        for (_, entries) in &split {
            let request = ResumeRooms {
                rooms: entries.to_vec(),
                limit: Some(MAX_SYNC_LIMIT),
            };
            let encoded = serde_json::to_vec(&request).expect("encodes").len();
            assert!(encoded <= MAX_REQUEST_BYTES + 64, "{encoded} bytes");
        }
        assert_eq!(sizes(&split).iter().sum::<usize>(), 1000);
        let (rooms, many) = entries(2500, 4, None);
        assert_eq!(sizes(&chunks(&rooms, &many)), vec![1000, 1000, 500]);
        assert!(chunks(&[], &[]).is_empty());
    }
}
