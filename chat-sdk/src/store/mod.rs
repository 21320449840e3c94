//! The local store: one SQLite file (WAL) per client identity.
//!
//! It holds the outbox (every outgoing message with its state, in the order it was queued)
//! and, per room, whether the client joined it and the last contiguous `seq` handed to the
//! application. Every call runs on the store's own thread ([`worker`]), grouped with the
//! calls waiting beside it into one transaction, so no SQLite call and no fsync runs on a
//! runtime worker. Commits use `synchronous=NORMAL`: they survive a crash of the process at
//! once. A new message is then made safe from a power cut too: its call waits for an fsync
//! of the write-ahead log, made by a second thread for every batch waiting at once, while
//! the store thread goes on (so the flusher can already put the message on the wire while
//! the disk confirms it). State changes and positions are never synced on their own: a
//! power cut may roll back the last ones, which costs a resend or a re-delivery, never a
//! loss. (On a file system that refuses WAL, every commit waits for the disk instead.) On
//! reopen, messages left `Sending` go back to `Queued` with the same `client_id`, and the
//! server's deduplication makes the resend harmless.

use std::path::Path;
use std::sync::Mutex;

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
mod reply;
mod schema;
mod worker;

use durability::{Durability, WriteAheadLog};
pub(crate) use outbox_rows::{ClaimNext, Claimed, Pick};
use owner_lock::OwnerLock;
pub(crate) use reply::Pending;
use worker::{Access, Executor};
pub(crate) use worker::{Call, Durable};

/// The SQLite store. Every call is a [`Call`]: awaited, waited for, or detached.
#[derive(Debug)]
pub(crate) struct Store {
    executor: Executor,
    /// Held by the one client (or repairing tool) that owns the file; `None` for an
    /// in-memory store and for a read-only view of a file another client owns.
    owner: Mutex<Option<OwnerLock>>,
    /// Opened beside the owning client: every write fails.
    read_only: bool,
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
        // With a log, commits need not wait for the disk: a new message waits for an fsync
        // of the log, and a state change lost to a power cut costs one resend, which the
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
            executor: Executor::spawn(conn, durability, true)?,
            owner: Mutex::new(Some(owner)),
            read_only: false,
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
            executor: Executor::spawn(conn, Durability::Memory, false)?,
            owner: Mutex::new(None),
            read_only: true,
        })
    }

    /// A store that lives only in memory.
    pub(crate) fn in_memory() -> Result<Self, StoreError> {
        Ok(Self {
            executor: Executor::inline(Self::init(rusqlite::Connection::open_in_memory()?)?),
            owner: Mutex::new(None),
            read_only: false,
        })
    }

    /// Lets go of the file (the client stopped): another client may own it from now on.
    /// Blocks until the calls queued before it ran; later writes fail with
    /// [`StoreError::Closed`].
    pub(crate) fn release_owner(&self) {
        if let Err(err) = self.executor.close().wait() {
            tracing::warn!(error = %err, "the store did not confirm its close");
        }
        self.owner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
    }

    /// Whether this is a read-only view of a file another client owns.
    pub(crate) fn is_read_only(&self) -> bool {
        self.read_only
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

    /// A call that reads.
    fn read<R: Send + 'static>(
        &self,
        work: impl FnOnce(&rusqlite::Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Call<'_, R> {
        Call::new(&self.executor, Access::Read, work)
    }

    /// A call that writes: refused once the client let go of the file.
    fn write<R: Send + 'static>(
        &self,
        work: impl FnOnce(&rusqlite::Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Call<'_, R> {
        Call::new(&self.executor, Access::Write, work)
    }

    /// Waits until every commit made so far is on disk (one fsync of the write-ahead log,
    /// shared with every other call waiting for one); the answer is the disk's.
    pub(crate) async fn sync(&self) -> Result<(), StoreError> {
        let ((), disk) = self.read(|_| Ok(())).start_durable().await?;
        disk
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
            assert!(store.insert(first.clone(), 10).wait().expect("insert"));
            assert!(store.insert(second.clone(), 10).wait().expect("insert"));
            store
                .set_state(
                    first.client_id,
                    MessageState::Sending { attempt: 1 },
                    Some(1),
                )
                .wait()
                .expect("set");
        }
        let store = Store::open(&path).expect("reopen");
        let next = store.next_pending().expect("query").expect("one pending");
        assert_eq!(next.client_id, first.client_id);
        assert_eq!(next.state, MessageState::Queued);
        assert_eq!(next.attempts, 1);
        assert_eq!(store.list().wait().expect("list").len(), 2);
    }

    /// Every message's `client_id`, in queue order.
    fn queue(store: &Store) -> Vec<ClientId> {
        let messages = store.list().wait().expect("list");
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
        assert!(store.insert(third.clone(), 10).wait().expect("insert"));
        assert_eq!(queue(&store), [first, second, third.client_id]);
        assert_eq!(store.unsent_count().wait().expect("count"), 3);
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
        assert!(store.insert(old.clone(), 10).wait().expect("insert"));
        store
            .set_state(old.client_id, sent.clone(), None)
            .wait()
            .expect("set");
        let failed = message("r", MessageState::Queued);
        assert!(store.insert(failed.clone(), 10).wait().expect("insert"));
        let reason = crate::FailureReason::Expired;
        store
            .set_state(failed.client_id, MessageState::Failed { reason }, None)
            .wait()
            .expect("set");
        assert_eq!(
            store.prune_acknowledged().wait().expect("prune"),
            [old.client_id]
        );
        let (a, b) = (
            message("r", MessageState::Queued),
            message("r", MessageState::Queued),
        );
        assert!(store.insert(a.clone(), 10).wait().expect("insert"));
        assert!(store.insert(b.clone(), 10).wait().expect("insert"));
        // The failed message is skipped, not sent; the new ones go in the order queued.
        let next = store.next_pending().expect("query").expect("pending");
        assert_eq!(next.client_id, a.client_id);
        assert_eq!(queue(&store), [failed.client_id, a.client_id, b.client_id]);
        assert_eq!(store.unsent_count().wait().expect("count"), 3);
    }

    #[test]
    fn a_request_outcome_stands_when_the_next_head_cannot_be_read() {
        let store = Store::in_memory().expect("store");
        let (sent_one, unreadable) = (
            message("r", MessageState::Sending { attempt: 1 }),
            message("r", MessageState::Queued),
        );
        assert!(store.insert(sent_one.clone(), 10).wait().expect("insert"));
        assert!(store.insert(unreadable.clone(), 10).wait().expect("insert"));
        let id = unreadable.client_id.to_string();
        store
            .write(move |conn| {
                conn.execute(
                    "UPDATE outbox SET state = 'not json' WHERE client_id = ?1",
                    params![id],
                )?;
                Ok(())
            })
            .wait()
            .expect("spoil the row");
        let sent = MessageState::Sent {
            id: chat_protocol::MessageId("m1".into()),
            seq: 1,
        };
        let pick: ClaimNext = (1, Box::new(|_: &OutgoingMessage| Pick::Send));
        let (present, claimed) = store
            .settle_and_claim(vec![(sent_one.client_id, sent.clone())], Some(pick))
            .wait()
            .expect("the outcome is recorded");
        assert_eq!(present, [true]);
        assert!(claimed.is_none(), "the unreadable head is not claimed");
        let stored = store.get(sent_one.client_id).wait().expect("get");
        assert_eq!(stored.map(|m| m.state), Some(sent));
    }

    #[test]
    fn capacity_counts_unsent_messages_only() {
        let store = Store::in_memory().expect("store");
        let a = message("r", MessageState::Queued);
        assert!(store.insert(a.clone(), 1).wait().expect("insert"));
        assert!(!store
            .insert(message("r", MessageState::Queued), 1)
            .wait()
            .expect("insert"));
        let sent = MessageState::Sent {
            id: chat_protocol::MessageId("m1".into()),
            seq: 1,
        };
        store
            .set_state(a.client_id, sent, None)
            .wait()
            .expect("set");
        assert!(store
            .insert(message("r", MessageState::Queued), 1)
            .wait()
            .expect("insert"));
        let awaiting = store.awaiting_receipts().wait().expect("query");
        assert_eq!(awaiting.len(), 1);
        assert_eq!(awaiting[0].client_id, a.client_id);
    }

    #[test]
    fn room_positions_only_move_forward() {
        let store = Store::in_memory().expect("store");
        let room = RoomId::new("r").expect("room");
        store
            .set_joined(vec![room.clone()], true)
            .wait()
            .expect("join");
        store.advance_position(room.clone(), 5).wait().expect("seq");
        store.advance_position(room.clone(), 3).wait().expect("seq");
        let rooms = store.rooms().wait().expect("rooms");
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
