//! The local store: one SQLite file (WAL) per client identity.
//!
//! It holds the outbox (every outgoing message with its state, in the order it was queued)
//! and, per room, whether the client joined it and the last contiguous `seq` handed to the
//! application. Every commit uses `synchronous=NORMAL`: it survives a crash of the process
//! at once. A new message is then made safe from a power cut too by [`Store::sync`], an
//! fsync of the write-ahead log that `send` waits for before it returns. The fsync runs
//! outside the store's lock, so the flusher can already put the message on the wire (and
//! the receive loop keep writing positions) while the disk confirms it. State changes and
//! positions are never synced on their own: a power cut may roll back the last ones, which
//! costs a resend or a re-delivery, never a loss. (On a file system that refuses WAL, every
//! commit waits for the disk instead.) On reopen, messages left `Sending` go back to
//! `Queued` with the same `client_id`, and the server's deduplication makes the resend
//! harmless.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use chat_protocol::{ClientId, RoomId, Seq};
use rusqlite::{params, OptionalExtension};

use crate::error::StoreError;
use crate::state::{MessageState, OutgoingMessage};

/// Unsent messages: exactly the rows of the `outbox_unsent` index (a query must repeat this
/// condition word for word for SQLite to use that index).
macro_rules! unsent {
    () => {
        "kind IN ('queued', 'sending', 'failed')"
    };
}

const SCHEMA: &str = concat!(
    "
-- `position` is the queue order. Without AUTOINCREMENT a new row takes the largest
-- position plus one, which keeps the order of the rows present and spares a write to
-- sqlite_sequence on every insert (files created with AUTOINCREMENT keep it, harmlessly).
CREATE TABLE IF NOT EXISTS outbox (
    position   INTEGER PRIMARY KEY,
    client_id  TEXT NOT NULL UNIQUE,
    room       TEXT NOT NULL,
    body       TEXT NOT NULL,
    reply_to   INTEGER,
    queued_at  INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    kind       TEXT NOT NULL,
    state      TEXT NOT NULL,
    seq        INTEGER
);
-- Only unsent messages are indexed: a message leaves the index once acknowledged, so
-- `Delivered` and `Read` rewrite only its row. Receipts are matched in memory.
DROP INDEX IF EXISTS outbox_kind;
DROP INDEX IF EXISTS outbox_room_seq;
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (position, kind) WHERE ",
    unsent!(),
    ";
CREATE TABLE IF NOT EXISTS rooms (
    room      TEXT PRIMARY KEY,
    joined    INTEGER NOT NULL,
    last_seq  INTEGER
);
"
);

/// A room as the store remembers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredRoom {
    pub room: RoomId,
    pub joined: bool,
    /// `None` until the first join told where to start.
    pub last_seq: Option<Seq>,
}

/// The SQLite store. Every call is one short transaction under a mutex.
#[derive(Debug)]
pub(crate) struct Store {
    conn: Mutex<rusqlite::Connection>,
    durability: Durability,
}

/// How a commit is made safe from a power cut.
#[derive(Debug)]
enum Durability {
    /// Write-ahead logging: [`Store::sync`] fsyncs the log, outside the lock.
    Wal(WriteAheadLog),
    /// Another journal mode (the file system refused WAL): every commit waits for the
    /// disk itself (`synchronous=EXTRA`), so there is nothing left to sync.
    InCommit,
    /// An in-memory store: nothing survives a crash, nothing to sync.
    Memory,
}

/// The store's write-ahead log, held open from the start so an fsync reports every write
/// error since then, whichever handle's write it was.
#[derive(Debug)]
struct WriteAheadLog {
    /// Where SQLite keeps it: the database's path as SQLite resolved it, plus `-wal`.
    path: PathBuf,
    file: std::fs::File,
}

impl WriteAheadLog {
    fn open(conn: &rusqlite::Connection) -> Result<Self, StoreError> {
        let database = conn
            .path()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| std::io::Error::other("the store's database has no file name"))?;
        let path = PathBuf::from(format!("{database}-wal"));
        let file = std::fs::OpenOptions::new().write(true).open(&path)?;
        Ok(Self { path, file })
    }

    /// Flushes the log to disk, and checks that it is still the file SQLite will recover
    /// from after a crash (a log removed or replaced under a running store is not).
    fn sync(&self) -> Result<(), StoreError> {
        self.file.sync_data()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let held = self.file.metadata()?;
            let at_path = std::fs::metadata(&self.path)?;
            if (held.dev(), held.ino()) != (at_path.dev(), at_path.ino()) {
                return Err(StoreError::Io(std::io::Error::other(format!(
                    "{} was replaced while the store was open",
                    self.path.display()
                ))));
            }
        }
        Ok(())
    }
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn row_to_message(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<Result<OutgoingMessage, StoreError>> {
    let client_id: String = row.get("client_id")?;
    let room: String = row.get("room")?;
    let body: String = row.get("body")?;
    let reply_to: Option<i64> = row.get("reply_to")?;
    let queued_at: i64 = row.get("queued_at")?;
    let attempts: i64 = row.get("attempts")?;
    let state: String = row.get("state")?;
    Ok((|| {
        Ok(OutgoingMessage {
            client_id: client_id.parse().map_err(corrupt)?,
            room: RoomId::new(room).map_err(corrupt)?,
            body,
            reply_to: reply_to.map(|s| s.max(0) as Seq),
            queued_at,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            state: serde_json::from_str(&state).map_err(corrupt)?,
        })
    })())
}

fn seq_to_sql(seq: Seq) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

impl Store {
    /// Opens (creating if needed) the store at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = rusqlite::Connection::open(path)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        let wal = mode.eq_ignore_ascii_case("wal");
        // With a log, commits need not wait for the disk: `sync` makes a new message
        // durable, and a state change lost to a power cut costs one resend, which the
        // server deduplicates. Without one, every commit waits.
        conn.pragma_update(None, "synchronous", if wal { "NORMAL" } else { "EXTRA" })?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let conn = Self::init(conn)?;
        let durability = if wal {
            Durability::Wal(WriteAheadLog::open(&conn)?)
        } else {
            Durability::InCommit
        };
        Ok(Self {
            conn: Mutex::new(conn),
            durability,
        })
    }

    /// A store that lives only in memory.
    pub(crate) fn in_memory() -> Result<Self, StoreError> {
        Ok(Self {
            conn: Mutex::new(Self::init(rusqlite::Connection::open_in_memory()?)?),
            durability: Durability::Memory,
        })
    }

    /// Creates or migrates the schema; resets messages a crash left `Sending`.
    fn init(conn: rusqlite::Connection) -> Result<rusqlite::Connection, StoreError> {
        conn.execute_batch(SCHEMA)?;
        // A message left `Sending` by a crash was maybe stored, maybe not: send it again
        // with the same client_id and let the server deduplicate.
        let queued = serde_json::to_string(&MessageState::Queued).map_err(corrupt)?;
        conn.execute(
            concat!(
                "UPDATE outbox SET kind = 'queued', state = ?1 WHERE ",
                unsent!(),
                " AND kind = 'sending'"
            ),
            params![queued],
        )?;
        Ok(conn)
    }

    fn lock(&self) -> MutexGuard<'_, rusqlite::Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (each call is one
        // statement or transaction), so a poisoned lock is still usable.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `insert_announced` with nothing to announce.
    #[cfg(test)]
    pub(crate) fn insert(
        &self,
        message: &OutgoingMessage,
        capacity: usize,
    ) -> Result<bool, StoreError> {
        self.insert_announced(message, capacity, || ())
    }

    /// Adds a message if the number of unsent (queued, sending or failed) messages is below
    /// `capacity`; returns false when full. Check and insert are one transaction. Once this
    /// returns the message survives a crash of the process and the flusher may send it;
    /// [`Store::sync`] makes it survive a power cut. `announce` runs once the row is
    /// committed but before any other call can see it, so the application hears of the
    /// message (`Queued`) before the flusher can send it (`Sending`).
    pub(crate) fn insert_announced(
        &self,
        message: &OutgoingMessage,
        capacity: usize,
        announce: impl FnOnce(),
    ) -> Result<bool, StoreError> {
        let mut conn = self.lock();
        let inserted = Self::insert_within_capacity(&mut conn, message, capacity)?;
        if inserted {
            announce();
        }
        Ok(inserted)
    }

    /// Whether [`Store::sync`] has anything to do.
    pub(crate) fn needs_sync(&self) -> bool {
        matches!(self.durability, Durability::Wal(_))
    }

    /// Waits until every commit made so far is on disk: an fsync of the write-ahead log,
    /// taken without the store's lock so other calls go on meanwhile. (No other connection
    /// removes the log while this one is open: SQLite deletes it only when it can lock the
    /// database exclusively.)
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        match &self.durability {
            Durability::Wal(log) => log.sync(),
            Durability::InCommit | Durability::Memory => Ok(()),
        }
    }

    fn insert_within_capacity(
        conn: &mut rusqlite::Connection,
        message: &OutgoingMessage,
        capacity: usize,
    ) -> Result<bool, StoreError> {
        let tx = conn.transaction()?;
        let unsent: i64 = tx
            .prepare_cached(concat!("SELECT COUNT(*) FROM outbox WHERE ", unsent!()))?
            .query_row([], |row| row.get(0))?;
        if usize::try_from(unsent).unwrap_or(usize::MAX) >= capacity {
            return Ok(false);
        }
        tx.prepare_cached(
            "INSERT INTO outbox (client_id, room, body, reply_to, queued_at, attempts, kind, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            message.client_id.to_string(),
            message.room.as_str(),
            message.body,
            message.reply_to.map(seq_to_sql),
            message.queued_at,
            message.attempts,
            message.state.name(),
            serde_json::to_string(&message.state).map_err(corrupt)?,
        ])?;
        tx.commit()?;
        Ok(true)
    }

    /// How many messages are unsent (queued, sending or failed).
    pub(crate) fn unsent_count(&self) -> Result<usize, StoreError> {
        let conn = self.lock();
        let n: i64 = conn.query_row(
            concat!("SELECT COUNT(*) FROM outbox WHERE ", unsent!()),
            [],
            |row| row.get(0),
        )?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Removes every acknowledged message (sent, delivered, read); returns how many.
    pub(crate) fn prune_acknowledged(&self) -> Result<usize, StoreError> {
        let conn = self.lock();
        Ok(conn.execute(
            "DELETE FROM outbox WHERE kind IN ('sent', 'delivered', 'read')",
            [],
        )?)
    }

    /// The oldest message still to send (queued or sending), in queue order.
    pub(crate) fn next_pending(&self) -> Result<Option<OutgoingMessage>, StoreError> {
        let conn = self.lock();
        let row = conn
            .prepare_cached(concat!(
                "SELECT * FROM outbox WHERE ",
                unsent!(),
                " AND kind != 'failed' ORDER BY position LIMIT 1"
            ))?
            .query_row([], row_to_message)
            .optional()?;
        row.transpose()
    }

    /// One message.
    pub(crate) fn get(&self, id: ClientId) -> Result<Option<OutgoingMessage>, StoreError> {
        let conn = self.lock();
        let row = conn
            .prepare_cached("SELECT * FROM outbox WHERE client_id = ?1")?
            .query_row(params![id.to_string()], row_to_message)
            .optional()?;
        row.transpose()
    }

    /// Every message in the outbox, in queue order.
    pub(crate) fn list(&self) -> Result<Vec<OutgoingMessage>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT * FROM outbox ORDER BY position")?;
        let rows = stmt.query_map([], row_to_message)?;
        rows.map(|row| row?).collect()
    }

    /// Every acknowledged message not yet read (`Sent` or `Delivered`), in queue order.
    pub(crate) fn awaiting_receipts(&self) -> Result<Vec<OutgoingMessage>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT * FROM outbox WHERE kind IN ('sent', 'delivered') ORDER BY position",
        )?;
        let rows = stmt.query_map([], row_to_message)?;
        rows.map(|row| row?).collect()
    }

    /// Sets the state of several acknowledged messages in one transaction (a receipt moves
    /// a run of them at once). Messages no longer in the outbox are skipped.
    pub(crate) fn set_states(
        &self,
        changes: &[(ClientId, MessageState)],
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE outbox SET kind = ?2, state = ?3, seq = ?4 WHERE client_id = ?1",
            )?;
            for (id, state) in changes {
                let json = serde_json::to_string(state).map_err(corrupt)?;
                stmt.execute(params![
                    id.to_string(),
                    state.name(),
                    json,
                    state.seq().map(seq_to_sql)
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Sets a message's state (and attempt count, when given). Returns false if the message
    /// is not in the outbox.
    pub(crate) fn set_state(
        &self,
        id: ClientId,
        state: &MessageState,
        attempts: Option<u32>,
    ) -> Result<bool, StoreError> {
        let conn = self.lock();
        let json = serde_json::to_string(state).map_err(corrupt)?;
        let seq = state.seq().map(seq_to_sql);
        let changed = match attempts {
            Some(n) => conn
                .prepare_cached(
                    "UPDATE outbox SET kind = ?2, state = ?3, seq = ?4, attempts = ?5 WHERE client_id = ?1",
                )?
                .execute(params![id.to_string(), state.name(), json, seq, n])?,
            None => conn
                .prepare_cached(
                    "UPDATE outbox SET kind = ?2, state = ?3, seq = ?4 WHERE client_id = ?1",
                )?
                .execute(params![id.to_string(), state.name(), json, seq])?,
        };
        Ok(changed > 0)
    }

    /// Removes a message; returns false if it was not there.
    pub(crate) fn delete(&self, id: ClientId) -> Result<bool, StoreError> {
        let conn = self.lock();
        Ok(conn.execute(
            "DELETE FROM outbox WHERE client_id = ?1",
            params![id.to_string()],
        )? > 0)
    }

    /// Every room the store knows.
    pub(crate) fn rooms(&self) -> Result<Vec<StoredRoom>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT room, joined, last_seq FROM rooms ORDER BY room")?;
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
                last_seq: last_seq.map(|s| s.max(0) as Seq),
            })
        })
        .collect()
    }

    /// Records that the client joined (or left) a room, keeping its position.
    pub(crate) fn set_joined(&self, room: &RoomId, joined: bool) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO rooms (room, joined, last_seq) VALUES (?1, ?2, NULL)
             ON CONFLICT (room) DO UPDATE SET joined = excluded.joined",
            params![room.as_str(), joined],
        )?;
        Ok(())
    }

    /// Sets a room's position exactly, also backwards (the application asked to replay).
    pub(crate) fn reset_last_seq(&self, room: &RoomId, seq: Seq) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO rooms (room, joined, last_seq) VALUES (?1, 1, ?2)
             ON CONFLICT (room) DO UPDATE SET last_seq = excluded.last_seq",
            params![room.as_str(), seq_to_sql(seq)],
        )?;
        Ok(())
    }

    /// Records the last contiguous `seq` handed to the application for a room.
    pub(crate) fn set_last_seq(&self, room: &RoomId, seq: Seq) -> Result<(), StoreError> {
        self.set_last_seqs(&[(room, seq)])
    }

    /// Records several rooms' positions (never moving one back) in one transaction.
    pub(crate) fn set_last_seqs(&self, positions: &[(&RoomId, Seq)]) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO rooms (room, joined, last_seq) VALUES (?1, 0, ?2)
                 ON CONFLICT (room) DO UPDATE SET last_seq = MAX(COALESCE(last_seq, 0), excluded.last_seq)",
            )?;
            for (room, seq) in positions {
                stmt.execute(params![room.as_str(), seq_to_sql(*seq)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(room: &str, state: MessageState) -> OutgoingMessage {
        OutgoingMessage {
            client_id: ClientId::new_random(),
            room: RoomId::new(room).expect("room"),
            body: "hi".into(),
            reply_to: None,
            queued_at: 1,
            attempts: 0,
            state,
        }
    }

    #[test]
    fn pending_messages_come_back_in_queue_order_and_sending_resets_on_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("outbox.db");
        let first = message("r", MessageState::Queued);
        let second = message("r", MessageState::Queued);
        {
            let store = Store::open(&path).expect("open");
            assert!(store.insert(&first, 10).expect("insert"));
            assert!(store.insert(&second, 10).expect("insert"));
            store
                .set_state(
                    first.client_id,
                    &MessageState::Sending { attempt: 1 },
                    Some(1),
                )
                .expect("set");
        }
        let store = Store::open(&path).expect("reopen");
        let next = store.next_pending().expect("query").expect("one pending");
        assert_eq!(next.client_id, first.client_id);
        assert_eq!(next.state, MessageState::Queued);
        assert_eq!(next.attempts, 1);
        assert_eq!(store.list().expect("list").len(), 2);
    }

    /// Every message's `client_id`, in queue order.
    fn queue(store: &Store) -> Vec<ClientId> {
        let messages = store.list().expect("list");
        messages.iter().map(|m| m.client_id).collect()
    }

    #[test]
    fn a_file_from_the_previous_schema_keeps_its_queue_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("outbox.db");
        let (first, second) = (ClientId::new_random(), ClientId::new_random());
        {
            let conn = rusqlite::Connection::open(&path).expect("open");
            conn.execute_batch(
                "CREATE TABLE outbox (
                    position INTEGER PRIMARY KEY AUTOINCREMENT, client_id TEXT NOT NULL UNIQUE,
                    room TEXT NOT NULL, body TEXT NOT NULL, reply_to INTEGER,
                    queued_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                    kind TEXT NOT NULL, state TEXT NOT NULL, seq INTEGER);
                 CREATE INDEX outbox_kind ON outbox (kind, position);",
            )
            .expect("old schema");
            let queued = serde_json::to_string(&MessageState::Queued).expect("json");
            for id in [first, second] {
                conn.execute(
                    "INSERT INTO outbox (client_id, room, body, queued_at, kind, state)
                     VALUES (?1, 'r', 'hi', 1, 'queued', ?2)",
                    params![id.to_string(), queued],
                )
                .expect("row");
            }
        }
        let store = Store::open(&path).expect("reopen");
        let third = message("r", MessageState::Queued);
        assert!(store.insert(&third, 10).expect("insert"));
        assert_eq!(queue(&store), [first, second, third.client_id]);
        assert_eq!(store.unsent_count().expect("count"), 3);
        let next = store.next_pending().expect("query").expect("pending");
        assert_eq!(next.client_id, first);
    }

    #[test]
    fn queue_order_holds_after_acknowledged_messages_are_pruned() {
        let store = Store::in_memory().expect("store");
        let sent = MessageState::Sent {
            id: chat_protocol::MessageId("m1".into()),
            seq: 1,
        };
        let old = message("r", MessageState::Queued);
        assert!(store.insert(&old, 10).expect("insert"));
        store.set_state(old.client_id, &sent, None).expect("set");
        let failed = message("r", MessageState::Queued);
        assert!(store.insert(&failed, 10).expect("insert"));
        let reason = crate::state::FailureReason::Expired;
        store
            .set_state(failed.client_id, &MessageState::Failed { reason }, None)
            .expect("set");
        assert_eq!(store.prune_acknowledged().expect("prune"), 1);
        let (a, b) = (
            message("r", MessageState::Queued),
            message("r", MessageState::Queued),
        );
        assert!(store.insert(&a, 10).expect("insert"));
        assert!(store.insert(&b, 10).expect("insert"));
        // The failed message is skipped, not sent; the new ones go in the order queued.
        let next = store.next_pending().expect("query").expect("pending");
        assert_eq!(next.client_id, a.client_id);
        assert_eq!(queue(&store), [failed.client_id, a.client_id, b.client_id]);
        assert_eq!(store.unsent_count().expect("count"), 3);
    }

    #[test]
    fn capacity_counts_unsent_messages_only() {
        let store = Store::in_memory().expect("store");
        let a = message("r", MessageState::Queued);
        assert!(store.insert(&a, 1).expect("insert"));
        assert!(!store
            .insert(&message("r", MessageState::Queued), 1)
            .expect("insert"));
        let sent = MessageState::Sent {
            id: chat_protocol::MessageId("m1".into()),
            seq: 1,
        };
        store.set_state(a.client_id, &sent, None).expect("set");
        assert!(store
            .insert(&message("r", MessageState::Queued), 1)
            .expect("insert"));
        let awaiting = store.awaiting_receipts().expect("query");
        assert_eq!(awaiting.len(), 1);
        assert_eq!(awaiting[0].client_id, a.client_id);
    }

    #[test]
    fn room_positions_only_move_forward() {
        let store = Store::in_memory().expect("store");
        let room = RoomId::new("r").expect("room");
        store.set_joined(&room, true).expect("join");
        store.set_last_seq(&room, 5).expect("seq");
        store.set_last_seq(&room, 3).expect("seq");
        let rooms = store.rooms().expect("rooms");
        assert_eq!(
            rooms,
            vec![StoredRoom {
                room,
                joined: true,
                last_seq: Some(5)
            }]
        );
    }
}
