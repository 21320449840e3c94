//! The rooms table: whether the client joined each room, and its position there.

use chat_protocol::{RoomId, Seq};
use rusqlite::params;

use super::{corrupt, seq_to_sql, Access, Call, Store};

/// A room as the store remembers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredRoom {
    pub(crate) room: RoomId,
    pub(crate) joined: bool,
    /// Where receiving resumes after a restart: the last `seq` the application took (the
    /// column is named `last_seq`). `None` until the first join told where to start.
    pub(crate) resume_after: Option<Seq>,
}

impl Store {
    /// Every room the store knows.
    pub(crate) fn rooms(&self) -> Call<'_, Vec<StoredRoom>> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare("SELECT room, joined, last_seq FROM rooms ORDER BY room")?;
            let rows = stmt.query_map([], |row| {
                let room: String = row.get(0)?;
                let joined: bool = row.get(1)?;
                let last_seq: Option<i64> = row.get(2)?;
                Ok((room, joined, last_seq))
            })?;
            rows.map(|row| {
                let (room, joined, last_seq) = row?;
                Ok(StoredRoom {
                    room: RoomId::new(room).map_err(corrupt)?,
                    joined,
                    resume_after: last_seq.map(|s| s.max(0) as Seq),
                })
            })
            .collect()
        })
    }

    /// Records that the client joined (or left) rooms, keeping their positions; one change.
    pub(crate) fn set_joined(&self, rooms: Vec<RoomId>, joined: bool) -> Call<'_, ()> {
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(
                "INSERT INTO rooms (room, joined, last_seq) VALUES (?1, ?2, NULL)
                 ON CONFLICT (room) DO UPDATE SET joined = excluded.joined",
            )?;
            for room in &rooms {
                stmt.execute(params![room.as_str(), joined])?;
            }
            Ok(())
        })
    }

    /// Sets a room's position exactly, also backwards (the application asked to replay).
    pub(crate) fn reset_position(&self, room: RoomId, seq: Seq) -> Call<'_, ()> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO rooms (room, joined, last_seq) VALUES (?1, 1, ?2)
                 ON CONFLICT (room) DO UPDATE SET last_seq = excluded.last_seq",
                params![room.as_str(), seq_to_sql(seq)],
            )?;
            Ok(())
        })
    }

    /// Records the last contiguous `seq` handed to the application for a room.
    pub(crate) fn advance_position(&self, room: RoomId, seq: Seq) -> Call<'_, ()> {
        self.advance_positions(vec![(room, seq)])
    }

    /// Records several rooms' positions (never moving one back) as one change.
    ///
    /// Also after the client let go of the file: the application may still take events
    /// from the stream of a closed client, and its position must not be dropped (the
    /// messages would be handed over again after a restart). A late write is safe beside a
    /// new owner: it only ever moves a position forward, to a message the application took.
    pub(crate) fn advance_positions(&self, positions: Vec<(RoomId, Seq)>) -> Call<'_, ()> {
        Call::new(&self.executor, Access::LateWrite, move |conn| {
            let mut stmt = conn.prepare_cached(
                "INSERT INTO rooms (room, joined, last_seq) VALUES (?1, 0, ?2)
                 ON CONFLICT (room) DO UPDATE SET last_seq = MAX(COALESCE(last_seq, 0), excluded.last_seq)",
            )?;
            for (room, seq) in &positions {
                stmt.execute(params![room.as_str(), seq_to_sql(*seq)])?;
            }
            Ok(())
        })
    }
}
