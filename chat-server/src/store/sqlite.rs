//! The embedded SQLite store: one connection owned by one writer thread with group commit.
//!
//! Requests queue on a channel; the thread takes every request waiting (up to a batch
//! limit), runs each inside its own savepoint of one transaction, commits once, and only then
//! answers them all. One fsync thus covers many messages, a failing request rolls back alone,
//! and nobody hears "stored" before the commit is durable. One thread also makes the order of
//! operations the order they were submitted in.
//!
//! Receipt watermarks and last-seen times are the exception: a batch made only of those (and
//! of reads) commits without an fsync of its own (`synchronous=NORMAL` for that commit). The next
//! synced commit covers them, as the log is written in order; a power cut before it can
//! only move a watermark back, never lose a message or a membership.

use std::path::Path;
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;

use async_trait::async_trait;
use chat_protocol::results::MemberWatermarks;
use chat_protocol::{Body, ClientId, Message, RoomId, Seq, Timestamp, UserId};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use super::{
    message_id, resume_from, schema, unread_page, Appended, Joined, Membership, NewMessage, Page,
    Store, Watermarks,
};
use crate::error::StoreError;

/// Most requests committed together.
const MAX_BATCH: usize = 512;

/// Runs inside the batch's transaction; returns whether it succeeded and what to do once the
/// commit's outcome is known.
type Job = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Where committed messages are published, in commit order. Bounded: when its reader (the
/// fan-out) falls this far behind, the writer waits for it, so commits slow down rather
/// than memory grow.
pub type Feed = tokio::sync::mpsc::Sender<Message>;

/// A good capacity for a [`Feed`]: far more than one group commit (512) publishes.
pub const FEED_CAPACITY: usize = 8_192;

/// Whether a request's commit must reach the disk before it is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Durability {
    /// Fsynced before the answer (in a durable store): messages, memberships.
    Synced,
    /// Needs no fsync of its own: reads, and writes (watermarks, last seen) that the next
    /// synced commit carries to the disk.
    Lazy,
}

enum Command {
    Run(Job, Durability),
    Close(oneshot::Sender<()>),
}

/// How to open a [`SqliteStore`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SqliteOptions {
    /// `synchronous=FULL` (every commit reaches the disk before it is answered); otherwise
    /// `NORMAL`.
    pub durable: bool,
    /// The most the database may grow to, in bytes (SQLite's `max_page_count`); past it,
    /// writes fail as on a full disk: answered `internal`, nothing of theirs committed.
    pub max_bytes: Option<u64>,
}

/// SQLite-backed [`Store`].
#[derive(Debug)]
pub struct SqliteStore {
    feed: Option<Feed>,
    commands: Mutex<Option<mpsc::Sender<Command>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    /// `durable` selects `synchronous=FULL`; otherwise `NORMAL`. Every newly stored message
    /// is sent on `feed` once committed, in commit order (so in `seq` order per room), before
    /// its `append` returns.
    pub fn open(path: &Path, durable: bool, feed: Option<Feed>) -> Result<Self, StoreError> {
        Self::open_with(
            path,
            SqliteOptions {
                durable,
                max_bytes: None,
            },
            feed,
        )
    }

    /// [`SqliteStore::open`] with every option.
    pub fn open_with(
        path: &Path,
        options: SqliteOptions,
        feed: Option<Feed>,
    ) -> Result<Self, StoreError> {
        let durable = options.durable;
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "NORMAL" })?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        if let Some(bytes) = options.max_bytes {
            let page: u64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0))?;
            let pages = (bytes / page.max(1)).max(1);
            conn.pragma_update(None, "max_page_count", pages)?;
        }
        schema::migrate(&mut conn)?;
        let (commands, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("chat-store".into())
            .spawn(move || writer_loop(conn, durable, receiver))
            .map_err(|e| StoreError::Corrupt(format!("cannot start the store thread: {e}")))?;
        Ok(Self {
            feed,
            commands: Mutex::new(Some(commands)),
            thread: Mutex::new(Some(thread)),
        })
    }

    async fn call<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.call_publishing(Durability::Synced, work, |_| Vec::new())
            .await
    }

    /// Like `call`, for work that needs no fsync of its own: reads, and writes whose loss on
    /// power failure costs no message (see the module header).
    async fn call_lazy<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.call_publishing(Durability::Lazy, work, |_| Vec::new())
            .await
    }

    /// Like `call`, and once committed publishes the messages `published` picks from the
    /// result, in their order.
    async fn call_publishing<R: Send + 'static>(
        &self,
        durability: Durability,
        work: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
        published: impl FnOnce(&R) -> Vec<Message> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (reply, answer) = oneshot::channel();
        let feed = self.feed.clone();
        let job: Job = Box::new(move |conn| {
            let result = work(conn);
            let ok = result.is_ok();
            let completion: Completion = Box::new(move |commit| {
                let outcome = match commit {
                    Ok(()) => result,
                    Err(e) => Err(StoreError::Commit(e)),
                };
                if let (Ok(value), Some(feed)) = (&outcome, feed) {
                    for message in published(value) {
                        // On the writer thread, never inside the runtime: a full feed
                        // holds the writer until the fan-out catches up.
                        let _ = feed.blocking_send(message);
                    }
                }
                let _ = reply.send(outcome);
            });
            (ok, completion)
        });
        self.send(Command::Run(job, durability))?;
        answer.await.map_err(|_| StoreError::Aborted)?
    }

    fn send(&self, command: Command) -> Result<(), StoreError> {
        let guard = self.commands.lock().map_err(|_| StoreError::Closed)?;
        guard
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(command)
            .map_err(|_| StoreError::Closed)
    }
}

fn writer_loop(conn: Connection, durable: bool, receiver: mpsc::Receiver<Command>) {
    let mut closing = None;
    // The connection's `synchronous` setting: FULL exactly when this is `Synced`.
    let mut current = if durable {
        Durability::Synced
    } else {
        Durability::Lazy
    };
    while closing.is_none() {
        let Ok(first) = receiver.recv() else { break };
        let mut jobs = Vec::new();
        let mut batch_sync = Durability::Lazy;
        let mut take = |command, jobs: &mut Vec<Job>| match command {
            Command::Run(job, durability) => {
                if durability == Durability::Synced {
                    batch_sync = Durability::Synced;
                }
                jobs.push(job);
                None
            }
            Command::Close(done) => Some(done),
        };
        closing = take(first, &mut jobs);
        while closing.is_none() && jobs.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(command) => closing = take(command, &mut jobs),
                Err(_) => break,
            }
        }
        if jobs.is_empty() {
            continue;
        }
        let wanted = if durable {
            batch_sync
        } else {
            Durability::Lazy
        };
        if wanted != current {
            let level = match wanted {
                Durability::Synced => "PRAGMA synchronous = FULL",
                Durability::Lazy => "PRAGMA synchronous = NORMAL",
            };
            match conn.execute_batch(level) {
                Ok(()) => current = wanted,
                // Committing under FULL when NORMAL would do costs only time; the reverse
                // would answer "stored" without the fsync. Dropping the jobs unrun answers
                // each caller with `Aborted`.
                Err(e) if wanted == Durability::Synced => {
                    tracing::error!(error = %e, "cannot turn on synchronous=FULL; batch refused");
                    continue;
                }
                Err(e) => tracing::warn!(error = %e, "cannot turn off synchronous=FULL"),
            }
        }
        run_batch(&conn, jobs);
    }
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "checkpoint on close failed");
    }
    drop(conn);
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// Runs `jobs` in as few transactions as it can, each job in a savepoint of its own, and
/// answers each once its transaction's outcome is known.
///
/// A job that fails rolls back to its savepoint alone. When SQLite rolls back the whole
/// transaction by itself (SQLITE_FULL, an I/O error: it is then in autocommit mode), or a
/// savepoint cannot be ended, nothing of the transaction is committed: its jobs are answered
/// with the error, and the jobs not yet run start a new transaction — never run in
/// autocommit mode, where each savepoint would commit on its own. A job whose savepoint
/// cannot be opened is not run (its caller hears `Aborted`).
fn run_batch(conn: &Connection, jobs: Vec<Job>) {
    let mut pending = jobs.into_iter();
    loop {
        let mut next = pending.next();
        if next.is_none() {
            return;
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Dropping the jobs unrun answers each caller with `Aborted`: nothing was committed.
            tracing::error!(error = %e, "cannot begin a transaction");
            return;
        }
        let mut completions = Vec::new();
        let mut broken = None;
        while let Some(job) = next.take() {
            if let Err(e) = conn.execute_batch("SAVEPOINT job") {
                tracing::error!(error = %e, "cannot open a savepoint; request refused");
                drop(job);
                if conn.is_autocommit() {
                    broken = Some(format!("the transaction ended: {e}"));
                    break;
                }
                next = pending.next();
                continue;
            }
            let (ok, completion) = job(conn);
            completions.push(completion);
            if conn.is_autocommit() {
                broken =
                    Some("SQLite rolled the transaction back (disk full or I/O error)".to_owned());
                break;
            }
            let end = if ok {
                "RELEASE job"
            } else {
                "ROLLBACK TO job; RELEASE job"
            };
            if let Err(e) = conn.execute_batch(end) {
                broken = Some(format!("cannot end a savepoint: {e}"));
                break;
            }
            next = pending.next();
        }
        let outcome = match broken {
            None => conn.execute_batch("COMMIT").map_err(|e| e.to_string()),
            Some(reason) => Err(reason),
        };
        if let Err(e) = &outcome {
            tracing::error!(error = %e, jobs = completions.len(), "batch not committed");
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
        for completion in completions {
            completion(outcome.clone());
        }
    }
}

fn parse<T, E: std::fmt::Display>(what: &str, value: Result<T, E>) -> Result<T, StoreError> {
    value.map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// Columns: room, seq, sender, client_id, body, ts, reply_to.
const MESSAGE_COLUMNS: &str = "room, seq, sender, client_id, body, ts, reply_to";

type MessageRow = (String, i64, String, String, String, i64, Option<i64>);

fn read_message_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
    ))
}

fn to_message(row: MessageRow) -> Result<Message, StoreError> {
    let (room, seq, sender, client_id, body, ts, reply_to) = row;
    let room = parse("room", RoomId::new(room))?;
    let seq = seq as Seq;
    Ok(Message {
        id: message_id(&room, seq),
        room,
        seq,
        client_id: parse("client_id", client_id.parse::<ClientId>())?,
        sender: parse("sender", UserId::new(sender))?,
        body: parse("body", Body::with_limit(body, usize::MAX))?,
        ts,
        reply_to: reply_to.map(|r| r as Seq),
    })
}

fn last_seq(conn: &Connection, room: &str) -> rusqlite::Result<Seq> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT last_seq FROM rooms WHERE id = ?1")?
        .query_row([room], |row| row.get(0))
        .optional()?;
    Ok(seq.unwrap_or(0) as Seq)
}

fn member_watermarks(
    conn: &Connection,
    room: &str,
    user: &str,
) -> rusqlite::Result<Option<(Seq, Seq)>> {
    conn.prepare_cached(
        "SELECT delivered_seq, read_seq FROM members WHERE room = ?1 AND user = ?2 AND active = 1",
    )?
    .query_row([room, user], |row| {
        Ok((row.get::<_, i64>(0)? as Seq, row.get::<_, i64>(1)? as Seq))
    })
    .optional()
}

/// Makes `user` a member of `room` (creating the room) or confirms it is; inside a job.
fn join_in(conn: &Connection, room: &str, user: &str) -> Result<Joined, StoreError> {
    conn.prepare_cached("INSERT INTO rooms (id) VALUES (?1) ON CONFLICT DO NOTHING")?
        .execute([room])?;
    let active: Option<i64> = conn
        .prepare_cached("SELECT active FROM members WHERE room = ?1 AND user = ?2")?
        .query_row([room, user], |row| row.get(0))
        .optional()?;
    let newly_joined = active != Some(1);
    if newly_joined {
        conn.prepare_cached(
            "INSERT INTO members (room, user) VALUES (?1, ?2)
             ON CONFLICT (room, user) DO UPDATE SET active = 1",
        )?
        .execute([room, user])?;
    }
    let mut watermarks = Vec::new();
    let mut statement = conn.prepare_cached(
        "SELECT user, delivered_seq, read_seq FROM members
         WHERE room = ?1 AND active = 1 ORDER BY user",
    )?;
    let rows = statement.query_map([room], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (member, delivered, read) = row?;
        watermarks.push(MemberWatermarks {
            user: parse("member", UserId::new(member))?,
            delivered_seq: delivered as Seq,
            read_seq: read as Seq,
        });
    }
    Ok(Joined {
        newly_joined,
        last_seq: last_seq(conn, room)?,
        members: watermarks.iter().map(|w| w.user.clone()).collect(),
        watermarks,
    })
}

/// Up to `limit` messages of `room` after `after_seq`; inside a job.
fn page_in(conn: &Connection, room: &str, after_seq: Seq, limit: u32) -> Result<Page, StoreError> {
    let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = ?1 AND seq > ?2
         ORDER BY seq LIMIT ?3"
    ))?;
    let rows = statement.query_map(params![room, after, i64::from(limit) + 1], read_message_row)?;
    let mut messages = Vec::with_capacity(limit as usize);
    for row in rows {
        messages.push(to_message(row?)?);
    }
    let has_more = messages.len() > limit as usize;
    messages.truncate(limit as usize);
    Ok(Page {
        messages,
        last_seq: last_seq(conn, room)?,
        has_more,
    })
}

/// Stores `message` with its room's next `seq` unless `(sender, client_id)` exists; inside a
/// job.
fn append_in(conn: &Connection, message: NewMessage) -> Result<Appended, StoreError> {
    let sender = message.sender.to_string();
    let client_id = message.client_id.to_string();
    let original = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender = ?1 AND client_id = ?2"
        ))?
        .query_row([&sender, &client_id], read_message_row)
        .optional()?;
    if let Some(row) = original {
        return Ok(Appended::Duplicate(to_message(row)?));
    }
    let room = message.room.to_string();
    if member_watermarks(conn, &room, &sender)?.is_none() {
        return Ok(Appended::NotMember);
    }
    let seq: i64 = conn
        .prepare_cached(
            "UPDATE rooms SET last_seq = last_seq + 1 WHERE id = ?1 RETURNING last_seq",
        )?
        .query_row([&room], |row| row.get(0))?;
    conn.prepare_cached(&format!(
        "INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))?
    .execute(params![
        room,
        seq,
        sender,
        client_id,
        message.body.as_str(),
        message.ts,
        message.reply_to.map(|r| r as i64),
    ])?;
    Ok(Appended::Stored(Message {
        id: message_id(&message.room, seq as Seq),
        room: message.room,
        seq: seq as Seq,
        client_id: message.client_id,
        sender: message.sender,
        body: message.body,
        ts: message.ts,
        reply_to: message.reply_to,
    }))
}

#[async_trait]
impl Store for SqliteStore {
    async fn join(&self, room: &RoomId, user: &UserId) -> Result<Joined, StoreError> {
        let (room, user) = (room.to_string(), user.to_string());
        self.call(move |conn| join_in(conn, &room, &user)).await
    }

    async fn resume(
        &self,
        user: &UserId,
        rooms: Vec<(RoomId, Option<Seq>)>,
        limit: u32,
        budget: usize,
    ) -> Result<Vec<(Joined, Page)>, StoreError> {
        let user = user.clone();
        self.call(move |conn| {
            let mut budget = budget;
            let mut resumed = Vec::with_capacity(rooms.len());
            for (room, position) in rooms {
                let room = room.to_string();
                let joined = join_in(conn, &room, user.as_str())?;
                let after = resume_from(&joined, &user, position);
                let take = (limit as usize).min(budget);
                let page = if take == 0 {
                    unread_page(&joined, after)
                } else {
                    page_in(conn, &room, after, take as u32)?
                };
                budget -= page.messages.len();
                resumed.push((joined, page));
            }
            Ok(resumed)
        })
        .await
    }

    async fn leave(&self, room: &RoomId, user: &UserId) -> Result<bool, StoreError> {
        let (room, user) = (room.to_string(), user.to_string());
        self.call(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE members SET active = 0 WHERE room = ?1 AND user = ?2 AND active = 1",
                )?
                .execute([&room, &user])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn is_member(&self, room: &RoomId, user: &UserId) -> Result<bool, StoreError> {
        let (room, user) = (room.to_string(), user.to_string());
        self.call_lazy(move |conn| Ok(member_watermarks(conn, &room, &user)?.is_some()))
            .await
    }

    async fn append(&self, message: NewMessage) -> Result<Appended, StoreError> {
        self.call_publishing(
            Durability::Synced,
            move |conn| append_in(conn, message),
            |appended| match appended {
                Appended::Stored(message) => vec![message.clone()],
                _ => Vec::new(),
            },
        )
        .await
    }

    async fn append_batch(&self, messages: Vec<NewMessage>) -> Result<Vec<Appended>, StoreError> {
        self.call_publishing(
            Durability::Synced,
            move |conn| {
                messages
                    .into_iter()
                    .map(|message| append_in(conn, message))
                    .collect::<Result<Vec<_>, _>>()
            },
            |appended| {
                appended
                    .iter()
                    .filter_map(|appended| match appended {
                        Appended::Stored(message) => Some(message.clone()),
                        _ => None,
                    })
                    .collect()
            },
        )
        .await
    }

    async fn sync(
        &self,
        room: &RoomId,
        user: &UserId,
        after_seq: Seq,
        limit: u32,
    ) -> Result<Membership<Page>, StoreError> {
        let (room, user) = (room.to_string(), user.to_string());
        self.call_lazy(move |conn| {
            if member_watermarks(conn, &room, &user)?.is_none() {
                return Ok(Membership::NotMember);
            }
            Ok(Membership::Member(page_in(conn, &room, after_seq, limit)?))
        })
        .await
    }

    async fn mark_delivered(
        &self,
        room: &RoomId,
        user: &UserId,
        up_to_seq: Seq,
    ) -> Result<Membership<Watermarks>, StoreError> {
        self.move_watermarks(room, user, up_to_seq, false).await
    }

    async fn mark_read(
        &self,
        room: &RoomId,
        user: &UserId,
        up_to_seq: Seq,
    ) -> Result<Membership<Watermarks>, StoreError> {
        self.move_watermarks(room, user, up_to_seq, true).await
    }

    async fn rooms_of(&self, user: &UserId) -> Result<Vec<RoomId>, StoreError> {
        let user = user.to_string();
        self.call_lazy(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT room FROM members WHERE user = ?1 AND active = 1 ORDER BY room",
            )?;
            let rows = statement.query_map([&user], |row| row.get::<_, String>(0))?;
            let mut rooms = Vec::new();
            for room in rows {
                rooms.push(parse("room", RoomId::new(room?))?);
            }
            Ok(rooms)
        })
        .await
    }

    async fn set_last_seen(&self, user: &UserId, ts: Timestamp) -> Result<(), StoreError> {
        let user = user.to_string();
        self.call_lazy(move |conn| {
            conn.prepare_cached(
                "INSERT INTO users (id, last_seen) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen",
            )?
            .execute(params![user, ts])?;
            Ok(())
        })
        .await
    }

    async fn last_seen(&self, users: &[UserId]) -> Result<Vec<Option<Timestamp>>, StoreError> {
        // The SDK's link probe asks for nobody: answer it without queueing for the writer.
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let users: Vec<String> = users.iter().map(ToString::to_string).collect();
        self.call_lazy(move |conn| {
            let mut statement = conn.prepare_cached("SELECT last_seen FROM users WHERE id = ?1")?;
            let mut seen = Vec::with_capacity(users.len());
            for user in &users {
                let ts: Option<Option<i64>> =
                    statement.query_row([user], |row| row.get(0)).optional()?;
                seen.push(ts.flatten());
            }
            Ok(seen)
        })
        .await
    }

    async fn tail(&self, room: &RoomId, after_seq: Seq, limit: u32) -> Result<Page, StoreError> {
        let room = room.to_string();
        self.call_lazy(move |conn| page_in(conn, &room, after_seq, limit))
            .await
    }

    async fn heads(&self, rooms: &[RoomId]) -> Result<Vec<Seq>, StoreError> {
        let rooms: Vec<String> = rooms.iter().map(ToString::to_string).collect();
        self.call_lazy(move |conn| {
            rooms
                .iter()
                .map(|room| last_seq(conn, room).map_err(StoreError::from))
                .collect()
        })
        .await
    }

    async fn close(&self) -> Result<(), StoreError> {
        let (done, closed) = oneshot::channel();
        if self.send(Command::Close(done)).is_ok() {
            let _ = closed.await;
        }
        if let Ok(mut commands) = self.commands.lock() {
            commands.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        Ok(())
    }
}

impl SqliteStore {
    async fn move_watermarks(
        &self,
        room: &RoomId,
        user: &UserId,
        up_to_seq: Seq,
        read: bool,
    ) -> Result<Membership<Watermarks>, StoreError> {
        let (room, user) = (room.to_string(), user.to_string());
        self.call_lazy(move |conn| {
            let Some((delivered, old_read)) = member_watermarks(conn, &room, &user)? else {
                return Ok(Membership::NotMember);
            };
            let target = up_to_seq.min(last_seq(conn, &room)?);
            let new_delivered = delivered.max(target);
            let new_read = if read { old_read.max(target) } else { old_read };
            let moved = new_delivered != delivered || new_read != old_read;
            if moved {
                // One statement moves the watermark, however many messages it covers.
                conn.prepare_cached(
                    "UPDATE members SET delivered_seq = ?3, read_seq = ?4
                     WHERE room = ?1 AND user = ?2 AND active = 1",
                )?
                .execute(params![
                    room,
                    user,
                    new_delivered as i64,
                    new_read as i64
                ])?;
            }
            Ok(Membership::Member(Watermarks {
                delivered_seq: new_delivered,
                read_seq: new_read,
                moved,
                read_moved_by: new_read - old_read,
            }))
        })
        .await
    }
}
