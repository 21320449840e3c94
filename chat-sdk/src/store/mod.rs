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

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use chat_protocol::Seq;
use rusqlite::params;

use crate::error::StoreError;
use crate::MessageState;

/// Unsent messages: exactly the rows of the `outbox_unsent` index (a query must repeat this
/// condition word for word for SQLite to use that index).
macro_rules! unsent {
    () => {
        "kind IN ('queued', 'sending', 'failed')"
    };
}

mod durability;
mod outbox_rows;
mod owner_lock;
mod positions;
mod schema;

use durability::{Durability, WriteAheadLog};
use owner_lock::OwnerLock;

/// The SQLite store. Every call is one short transaction under a mutex.
#[derive(Debug)]
pub(crate) struct Store {
    conn: Mutex<rusqlite::Connection>,
    durability: Durability,
    /// Held by the one client (or repairing tool) that owns the file; `None` for an
    /// in-memory store and for a read-only view of a file another client owns.
    owner: Mutex<Option<OwnerLock>>,
    /// Opened beside the owning client: every write fails.
    read_only: bool,
    /// Set when the owning client let go of the file: from then on every write fails with
    /// [`StoreError::Closed`], so a task of a stopped client cannot write over the state of
    /// the client that owns the file now.
    closed: std::sync::atomic::AtomicBool,
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn seq_to_sql(seq: Seq) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

impl Store {
    /// Opens (creating if needed) the store at `path` as its one owner: fails with
    /// [`StoreError::InUse`] while another client owns it.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_capped(path, None)
    }

    /// [`Store::open`], the file growing to at most `max_bytes` (SQLite's
    /// `max_page_count`): past it writes fail with [`StoreError::Full`], as on a full disk.
    pub(crate) fn open_capped(path: &Path, max_bytes: Option<u64>) -> Result<Self, StoreError> {
        let owner = OwnerLock::acquire(path)?;
        let conn = rusqlite::Connection::open(path)?;
        if let Some(bytes) = max_bytes {
            let page: u64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0))?;
            conn.pragma_update(None, "max_page_count", (bytes / page.max(1)).max(1))?;
        }
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
            owner: Mutex::new(Some(owner)),
            read_only: false,
            closed: Default::default(),
        })
    }

    /// Opens the existing store at `path` for reading only, beside the client that owns
    /// it: nothing is migrated or reset, and every write fails.
    pub(crate) fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::check(&conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            durability: Durability::Memory,
            owner: Mutex::new(None),
            read_only: true,
            closed: Default::default(),
        })
    }

    /// [`Store::sync`] on `runtime`'s blocking pool, so the calling task yields instead of
    /// blocking its thread (inline when there is no runtime).
    pub(crate) async fn sync_off_thread(
        self: &std::sync::Arc<Self>,
        runtime: Option<tokio::runtime::Handle>,
    ) -> Result<(), StoreError> {
        if !self.needs_sync() {
            return Ok(());
        }
        let Some(runtime) = runtime else {
            return self.sync();
        };
        let store = self.clone();
        runtime
            .spawn_blocking(move || store.sync())
            .await
            .unwrap_or_else(|stopped| Err(std::io::Error::other(stopped.to_string()).into()))
    }

    /// Lets go of the file (the client stopped): another client may own it from now on.
    pub(crate) fn release_owner(&self) {
        // Under the connection's lock: a write in progress finishes first, later ones fail.
        let _conn = self.lock();
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.owner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
    }

    /// Whether this is a read-only view of a file another client owns.
    pub(crate) fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// A store that lives only in memory.
    pub(crate) fn in_memory() -> Result<Self, StoreError> {
        Ok(Self {
            conn: Mutex::new(Self::init(rusqlite::Connection::open_in_memory()?)?),
            durability: Durability::Memory,
            owner: Mutex::new(None),
            read_only: false,
            closed: Default::default(),
        })
    }

    /// Creates or migrates the schema; resets messages a crash left `Sending`.
    fn init(mut conn: rusqlite::Connection) -> Result<rusqlite::Connection, StoreError> {
        schema::migrate(&mut conn)?;
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

    /// The connection, for a write: refused once the client let go of the file.
    fn writer(&self) -> Result<MutexGuard<'_, rusqlite::Connection>, StoreError> {
        let conn = self.lock();
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        Ok(conn)
    }

    fn lock(&self) -> MutexGuard<'_, rusqlite::Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (each call is one
        // statement or transaction), so a poisoned lock is still usable.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
}

#[cfg(test)]
mod tests {
    use super::positions::StoredRoom;
    use super::*;
    use crate::OutgoingMessage;
    use chat_protocol::{ClientId, RoomId};

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
        let reason = crate::FailureReason::Expired;
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
        store
            .set_joined(std::slice::from_ref(&room), true)
            .expect("join");
        store.advance_position(&room, 5).expect("seq");
        store.advance_position(&room, 3).expect("seq");
        let rooms = store.rooms().expect("rooms");
        assert_eq!(
            rooms,
            vec![StoredRoom {
                room,
                joined: true,
                resume_after: Some(5)
            }]
        );
    }
}
