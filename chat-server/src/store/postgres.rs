//! The PostgreSQL store, for several servers on one database.
//!
//! Every operation is one transaction on a pooled connection; appends are group-committed
//! ([`group_commits`]): the appends waiting when a transaction starts share it. A room's `seq` comes from a
//! counter on its row, moved by the `UPDATE` of the transaction that inserts the message:
//! the row lock makes concurrent appends to a room (from any server) take turns, and an
//! aborted transaction takes its increment back with it, so `seq`s stay unique and gap-free
//! — a PostgreSQL sequence would leave holes on abort. A transaction that appends to several
//! rooms locks their rows in one sorted statement first, so two such batches cannot deadlock.
//!
//! Idempotency holds across servers: the unique `(sender, client_id)` index makes a resend
//! that races its original on another server wait for it and then answer the original.
//!
//! Each transaction that stores messages also sends `NOTIFY chat_commits` for each of them,
//! carrying the message itself (or, past [`NOTICE_BYTES`], its room and `seq`); PostgreSQL
//! delivers notices on commit, in commit order, so the other servers have a new message
//! about a millisecond later without reading it ([`listen`]). A notice is lost while a
//! listener's connection is down: the fan-out also polls the heads of its rooms
//! ([`Store::heads`]), so nothing waits on a notice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::results::MemberWatermarks;
use chat_protocol::{Body, ClientId, Message, RoomId, Seq, Timestamp, UserId};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Transaction};
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{AsyncMessage, NoTls, Row};

use super::{
    message_id, postgres_schema, resume_from, unread_page, Appended, Feed, Head, Joined,
    Membership, NewMessage, Notice, Page, Store, Watermarks,
};
use crate::error::StoreError;

/// The channel commit notices travel on.
const CHANNEL: &str = "chat_commits";

/// How long a request waits for a pooled connection before it fails with `internal`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How to open a [`PostgresStore`].
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// Connections in the pool.
    pub pool_size: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self { pool_size: 16 }
    }
}

/// PostgreSQL-backed [`Store`].
#[derive(Debug)]
pub struct PostgresStore {
    pool: Pool,
    appends: mpsc::UnboundedSender<AppendJob>,
    closed: AtomicBool,
}

/// One `append` or `append_batch` waiting for the group commit.
#[derive(Debug)]
struct AppendJob {
    messages: Vec<NewMessage>,
    reply: oneshot::Sender<Result<Vec<Appended>, StoreError>>,
}

/// Most messages one group commit takes.
const MAX_GROUP_MESSAGES: usize = 2_000;

impl PostgresStore {
    /// Connects to `url` (a `postgres://` URL), migrates the schema and checks the database
    /// answers: an unreachable database fails here. Every newly stored message is sent on
    /// `feed` once committed, before its `append` returns.
    pub async fn connect(
        url: &str,
        options: PostgresOptions,
        feed: Option<Feed>,
    ) -> Result<Self, StoreError> {
        let pg_config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Config(format!("PostgreSQL URL: {e}")))?;
        let manager = Manager::from_config(
            pg_config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Config(format!("PostgreSQL pool: {e}")))?;
        let mut client = pool.get().await?;
        postgres_schema::migrate(&mut client).await?;
        drop(client);
        let (appends, waiting) = mpsc::unbounded_channel();
        tokio::spawn(group_commits(pool.clone(), feed, waiting));
        Ok(Self {
            pool,
            appends,
            closed: AtomicBool::new(false),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        Ok(self.pool.get().await?)
    }

    async fn append_all(&self, messages: Vec<NewMessage>) -> Result<Vec<Appended>, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let (reply, answer) = oneshot::channel();
        self.appends
            .send(AppendJob { messages, reply })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Aborted)?
    }

    async fn move_watermarks(
        &self,
        room: &RoomId,
        user: &UserId,
        up_to_seq: Seq,
        read: bool,
    ) -> Result<Membership<Watermarks>, StoreError> {
        let (room, user) = (room.to_string(), user.to_string());
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let current = tx
            .prepare_cached(
                "SELECT m.delivered_seq, m.read_seq, r.last_seq FROM members m
                 JOIN rooms r ON r.id = m.room
                 WHERE m.room = $1 AND m.user_id = $2 AND m.active FOR UPDATE OF m",
            )
            .await?;
        let Some(row) = tx.query_opt(&current, &[&room, &user]).await? else {
            return Ok(Membership::NotMember);
        };
        let (delivered, old_read, last) =
            (to_seq(row.get(0)), to_seq(row.get(1)), to_seq(row.get(2)));
        let target = up_to_seq.min(last);
        let new_delivered = delivered.max(target);
        let new_read = if read { old_read.max(target) } else { old_read };
        let moved = new_delivered != delivered || new_read != old_read;
        if moved {
            let update = tx
                .prepare_cached(
                    "UPDATE members SET delivered_seq = $3, read_seq = $4
                     WHERE room = $1 AND user_id = $2 AND active",
                )
                .await?;
            tx.execute(
                &update,
                &[&room, &user, &(new_delivered as i64), &(new_read as i64)],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Membership::Member(Watermarks {
            delivered_seq: new_delivered,
            read_seq: new_read,
            moved,
            read_moved_by: new_read - old_read,
        }))
    }
}

/// Commits appends in groups, one transaction at a time: every append waiting when a
/// transaction starts goes into it (each in a savepoint of its own, so one that fails takes
/// back only its own messages), and one commit — one WAL flush, one hold of each room's row
/// lock — covers them all. Under load the lock of a busy room is then taken once per group
/// instead of once per message, which is what bounds a room's rate. Alone, an append is its
/// own group and waits for nothing.
async fn group_commits(
    pool: Pool,
    feed: Option<Feed>,
    mut waiting: mpsc::UnboundedReceiver<AppendJob>,
) {
    while let Some(first) = waiting.recv().await {
        let mut count = first.messages.len();
        let mut jobs = vec![first];
        while count < MAX_GROUP_MESSAGES {
            match waiting.try_recv() {
                Ok(job) => {
                    count += job.messages.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let batches: Vec<Vec<NewMessage>> = jobs
            .iter_mut()
            .map(|job| std::mem::take(&mut job.messages))
            .collect();
        match commit_group(&pool, batches).await {
            Ok(outcomes) => {
                if let Some(feed) = &feed {
                    for appended in outcomes.iter().flatten().flatten() {
                        if let Appended::Stored(message) = appended {
                            let _ = feed.send(message.clone()).await;
                        }
                    }
                }
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.reply.send(outcome);
                }
            }
            Err(e) => {
                let reason = e.to_string();
                for job in jobs {
                    let _ = job.reply.send(Err(StoreError::Commit(reason.clone())));
                }
            }
        }
    }
}

/// One group's transaction: each batch's outcome, or the error that kept the whole
/// transaction from committing.
async fn commit_group(
    pool: &Pool,
    batches: Vec<Vec<NewMessage>>,
) -> Result<Vec<Result<Vec<Appended>, StoreError>>, StoreError> {
    let mut client = pool.get().await?;
    let mut tx = client.transaction().await?;
    let outcomes = match append_bulk(&tx, &batches).await {
        Ok(Some(outcomes)) => outcomes,
        // A key stored meanwhile by another server, or an error of one message: the whole
        // transaction is taken back (it wrote nothing else) and each batch goes again,
        // alone, in a new one.
        bulk => {
            if let Err(e) = bulk {
                tracing::debug!(error = %e, "group append fell back to one batch at a time");
            }
            tx.rollback().await?;
            tx = client.transaction().await?;
            lock_rooms(&tx, batches.iter().flatten()).await?;
            append_each(&tx, batches).await?
        }
    };
    let notices: Vec<String> = outcomes
        .iter()
        .flatten()
        .flatten()
        .filter_map(|outcome| match outcome {
            Appended::Stored(stored) => Some(notice_of(stored)),
            _ => None,
        })
        .collect();
    if !notices.is_empty() {
        let notify = tx
            .prepare_cached("SELECT pg_notify($1, notice) FROM unnest($2::text[]) AS notice")
            .await?;
        tx.execute(&notify, &[&CHANNEL, &notices]).await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// Locks the rows of the rooms of `messages`, in one sorted statement (when there are
/// several): two groups locking rooms in different orders could deadlock.
async fn lock_rooms<'a>(
    tx: &Transaction<'_>,
    messages: impl Iterator<Item = &'a NewMessage>,
) -> Result<(), StoreError> {
    let mut rooms: Vec<&str> = messages.map(|m| m.room.as_str()).collect();
    rooms.sort_unstable();
    rooms.dedup();
    if rooms.len() > 1 {
        let lock = tx
            .prepare_cached("SELECT id FROM rooms WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .await?;
        tx.query(&lock, &[&rooms]).await?;
    }
    Ok(())
}

/// The batches of a group one at a time, each in a savepoint of its own (so one that fails
/// takes back only its own messages), each message as [`append_in`] stores it.
async fn append_each(
    tx: &Transaction<'_>,
    batches: Vec<Vec<NewMessage>>,
) -> Result<Vec<Result<Vec<Appended>, StoreError>>, StoreError> {
    let alone = batches.len() == 1;
    let mut outcomes = Vec::with_capacity(batches.len());
    for batch in batches {
        if !alone {
            tx.batch_execute("SAVEPOINT job").await?;
        }
        let mut appended = Vec::with_capacity(batch.len());
        let mut failed = None;
        for message in batch {
            match append_in(tx, message).await {
                Ok(outcome) => appended.push(outcome),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        match failed {
            None => {
                if !alone {
                    tx.batch_execute("RELEASE SAVEPOINT job").await?;
                }
                outcomes.push(Ok(appended));
            }
            Some(e) if alone => return Err(e),
            Some(e) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job")
                    .await?;
                outcomes.push(Err(e));
            }
        }
    }
    Ok(outcomes)
}

/// What the group's first read found of one message.
enum Found {
    Original(Message),
    NotMember,
    /// To store; the index of the first message of the group with the same key, if any.
    New(Option<usize>),
}

/// The whole group in three round trips: one read of every message's original and
/// membership, one move of every room's counter, one insert of every new message. `None`
/// when another server stored one of the keys meanwhile (the caller takes everything back
/// and goes one message at a time, as that path answers such a race).
async fn append_bulk(
    tx: &Transaction<'_>,
    batches: &[Vec<NewMessage>],
) -> Result<Option<Vec<Result<Vec<Appended>, StoreError>>>, StoreError> {
    let messages: Vec<&NewMessage> = batches.iter().flatten().collect();
    let rooms: Vec<String> = messages.iter().map(|m| m.room.to_string()).collect();
    let senders: Vec<String> = messages.iter().map(|m| m.sender.to_string()).collect();
    let keys: Vec<String> = messages.iter().map(|m| m.client_id.to_string()).collect();
    let check = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM members m
                            WHERE m.room = q.room AND m.user_id = q.sender AND m.active),
                    o.room, o.seq, o.sender, o.client_id, o.body, o.ts, o.reply_to
             FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY
                  AS q(room, sender, client_id, i)
             LEFT JOIN messages o ON o.sender = q.sender AND o.client_id = q.client_id
             ORDER BY q.i",
        )
        .await?;
    let rows = tx.query(&check, &[&rooms, &senders, &keys]).await?;
    if rows.len() != messages.len() {
        return Err(StoreError::Commit("the group read lost a row".into()));
    }
    let mut first_of_key: std::collections::HashMap<(&str, &str), usize> =
        std::collections::HashMap::new();
    let mut found = Vec::with_capacity(rows.len());
    let mut new_per_room: BTreeMap<&str, i64> = BTreeMap::new();
    for (index, row) in rows.iter().enumerate() {
        found.push(if row.get::<_, Option<String>>(1).is_some() {
            Found::Original(to_message_at(row, 1)?)
        } else if !row.get::<_, bool>(0) {
            Found::NotMember
        } else {
            match first_of_key.entry((&senders[index], &keys[index])) {
                std::collections::hash_map::Entry::Occupied(first) => {
                    Found::New(Some(*first.get()))
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(index);
                    *new_per_room.entry(&rooms[index]).or_default() += 1;
                    Found::New(None)
                }
            }
        });
    }
    // Each room's counter moves by its count of new messages, which take the seqs after its
    // old value in their order: one statement, under the rooms' locks (taken only now, after
    // the read, so they are held as briefly as can be).
    let mut seqs: Vec<Option<i64>> = vec![None; messages.len()];
    if !new_per_room.is_empty() {
        lock_rooms(
            tx,
            found
                .iter()
                .zip(&messages)
                .filter_map(|(what, message)| matches!(what, Found::New(None)).then_some(*message)),
        )
        .await?;
        let (ids, counts): (Vec<&str>, Vec<i64>) =
            new_per_room.iter().map(|(r, k)| (*r, *k)).unzip();
        let mut ordinal: BTreeMap<&str, i64> = BTreeMap::new();
        let mut insert = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        let mut inserted_at = Vec::new();
        for (index, what) in found.iter().enumerate() {
            if let Found::New(None) = what {
                let n = ordinal.entry(&rooms[index]).or_default();
                *n += 1;
                let message = messages[index];
                insert.0.push(rooms[index].as_str());
                insert.1.push(*n);
                insert.2.push(senders[index].as_str());
                insert.3.push(keys[index].as_str());
                insert.4.push(message.body.as_str());
                insert.5.push(message.ts);
                insert.6.push(message.reply_to.map(to_sql_seq));
                inserted_at.push(index);
            }
        }
        let statement = tx
            .prepare_cached(
                "WITH advanced AS (
                     UPDATE rooms r SET last_seq = r.last_seq + c.k
                     FROM unnest($1::text[], $2::bigint[]) AS c(id, k)
                     WHERE r.id = c.id
                     RETURNING r.id, r.last_seq - c.k AS base
                 )
                 INSERT INTO messages (room, seq, sender, client_id, body, ts, reply_to)
                 SELECT m.room, a.base + m.n, m.sender, m.client_id, m.body, m.ts, m.reply_to
                 FROM unnest($3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[],
                             $8::bigint[], $9::bigint[])
                      WITH ORDINALITY AS m(room, n, sender, client_id, body, ts, reply_to, i)
                 JOIN advanced a ON a.id = m.room
                 ORDER BY m.i
                 ON CONFLICT (sender, client_id) DO NOTHING
                 RETURNING seq",
            )
            .await?;
        let stored = tx
            .query(
                &statement,
                &[
                    &ids, &counts, &insert.0, &insert.1, &insert.2, &insert.3, &insert.4,
                    &insert.5, &insert.6,
                ],
            )
            .await?;
        if stored.len() != inserted_at.len() {
            return Ok(None);
        }
        // The seq of each is its room's old value plus its place among the room's new ones.
        let mut base: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
        for (row, &index) in stored.iter().zip(&inserted_at) {
            let seq: i64 = row.get(0);
            // The room's smallest new seq, whatever order the rows come back in.
            let first = base.entry(&rooms[index]).or_insert(seq);
            *first = (*first).min(seq);
        }
        let mut placed: BTreeMap<&str, i64> = BTreeMap::new();
        for &index in &inserted_at {
            let first = base.get(rooms[index].as_str()).copied().unwrap_or(0);
            let n = placed.entry(&rooms[index]).or_default();
            seqs[index] = Some(first + *n);
            *n += 1;
        }
    }
    let mut results: Vec<Appended> = Vec::with_capacity(messages.len());
    for (index, what) in found.into_iter().enumerate() {
        results.push(match what {
            Found::Original(message) => Appended::Duplicate(message),
            Found::NotMember => Appended::NotMember,
            Found::New(Some(first)) => match &results[first] {
                Appended::Stored(message) => Appended::Duplicate(message.clone()),
                other => other.clone(),
            },
            Found::New(None) => {
                let message = messages[index].clone();
                let seq = seqs[index].map_or(0, to_seq);
                Appended::Stored(Message {
                    id: message_id(&message.room, seq),
                    room: message.room,
                    seq,
                    client_id: message.client_id,
                    sender: message.sender,
                    body: message.body,
                    ts: message.ts,
                    reply_to: message.reply_to,
                })
            }
        });
    }
    let mut results = results.into_iter();
    Ok(Some(
        batches
            .iter()
            .map(|batch| Ok(results.by_ref().take(batch.len()).collect()))
            .collect(),
    ))
}

/// Listens for commit notices on `url` and sends each on `heads` until `heads` closes,
/// reconnecting after a lost connection. After each (re)connect it sends
/// [`Notice::Missed`]: notices may have been missed, and the reader should poll every room.
pub async fn listen(url: String, heads: mpsc::Sender<Notice>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match listen_once(&url, &heads).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "commit notices from PostgreSQL stopped; reconnecting");
            }
        }
        if heads.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// One connection's worth of [`listen`]: `Ok` when `heads` closed, `Err` when the
/// connection failed.
async fn listen_once(url: &str, heads: &mpsc::Sender<Notice>) -> Result<(), StoreError> {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls).await?;
    let (notices, mut received) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(notice)) => {
                    if notices.send(Ok(notice.payload().to_owned())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = notices.send(Err(e));
                    return;
                }
            }
        }
        let _ = notices.send(Ok(String::new()));
    });
    let outcome = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        if heads.send(Notice::Missed).await.is_err() {
            return Ok(());
        }
        while let Some(notice) = received.recv().await {
            let payload = notice?;
            if payload.is_empty() {
                return Err(StoreError::Commit("the notice connection closed".into()));
            }
            let Some(notice) = parse_notice(&payload) else {
                tracing::warn!(payload, "unreadable commit notice");
                continue;
            };
            if heads.send(notice).await.is_err() {
                return Ok(());
            }
        }
        Err(StoreError::Commit("the notice connection closed".into()))
    }
    .await;
    driver.abort();
    outcome
}

/// The most bytes a notice may carry: PostgreSQL's limit is 8000.
pub const NOTICE_BYTES: usize = 7_900;

/// The notice of a stored message: the message itself as JSON, or — when that is too big
/// for a notice — `SEQ ROOM`, and the listeners read it from the store.
fn notice_of(message: &Message) -> String {
    match serde_json::to_string(message) {
        Ok(json) if json.len() <= NOTICE_BYTES => json,
        _ => format!("{} {}", message.seq, message.room),
    }
}

fn parse_notice(payload: &str) -> Option<Notice> {
    if payload.starts_with('{') {
        return serde_json::from_str(payload).ok().map(Notice::Message);
    }
    let (seq, room) = payload.split_once(' ')?;
    Some(Notice::Head(Head {
        room: RoomId::new(room).ok()?,
        seq: seq.parse().ok()?,
    }))
}

/// The value `read` takes from the row whose first column is each id, in the order of `ids`
/// (`None` where no row has it).
fn in_order_of<T: Clone>(
    ids: &[&str],
    rows: &[Row],
    read: impl Fn(&Row) -> T,
) -> impl Iterator<Item = Option<T>> {
    let found: std::collections::HashMap<String, T> = rows
        .iter()
        .map(|row| (row.get::<_, String>(0), read(row)))
        .collect();
    ids.iter()
        .map(|id| found.get(*id).cloned())
        .collect::<Vec<_>>()
        .into_iter()
}

fn to_seq(value: i64) -> Seq {
    Seq::try_from(value).unwrap_or(0)
}

fn to_sql_seq(value: Seq) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn parse<T, E: std::fmt::Display>(what: &str, value: Result<T, E>) -> Result<T, StoreError> {
    value.map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// Columns: room, seq, sender, client_id, body, ts, reply_to.
const MESSAGE_COLUMNS: &str = "room, seq, sender, client_id, body, ts, reply_to";

fn to_message(row: &Row) -> Result<Message, StoreError> {
    to_message_at(row, 0)
}

/// The message in the seven columns of `row` from `at` on.
fn to_message_at(row: &Row, at: usize) -> Result<Message, StoreError> {
    let room = parse("room", RoomId::new(row.get::<_, String>(at)))?;
    let seq = to_seq(row.get(at + 1));
    Ok(Message {
        id: message_id(&room, seq),
        room,
        seq,
        sender: parse("sender", UserId::new(row.get::<_, String>(at + 2)))?,
        client_id: parse(
            "client_id",
            row.get::<_, String>(at + 3).parse::<ClientId>(),
        )?,
        body: parse(
            "body",
            Body::with_limit(row.get::<_, String>(at + 4), usize::MAX),
        )?,
        ts: row.get(at + 5),
        reply_to: row.get::<_, Option<i64>>(at + 6).map(to_seq),
    })
}

async fn last_seq(tx: &Transaction<'_>, room: &str) -> Result<Seq, StoreError> {
    let statement = tx
        .prepare_cached("SELECT last_seq FROM rooms WHERE id = $1")
        .await?;
    Ok(tx
        .query_opt(&statement, &[&room])
        .await?
        .map_or(0, |row| to_seq(row.get(0))))
}

async fn is_member_in(tx: &Transaction<'_>, room: &str, user: &str) -> Result<bool, StoreError> {
    let statement = tx
        .prepare_cached("SELECT 1 FROM members WHERE room = $1 AND user_id = $2 AND active")
        .await?;
    Ok(tx.query_opt(&statement, &[&room, &user]).await?.is_some())
}

async fn join_in(tx: &Transaction<'_>, room: &str, user: &str) -> Result<Joined, StoreError> {
    let create = tx
        .prepare_cached("INSERT INTO rooms (id) VALUES ($1) ON CONFLICT DO NOTHING")
        .await?;
    tx.execute(&create, &[&room]).await?;
    // A row comes back when the member was inserted or turned active again; the `WHERE`
    // leaves an active member alone, and then no row comes back.
    let enter = tx
        .prepare_cached(
            "INSERT INTO members (room, user_id) VALUES ($1, $2)
             ON CONFLICT (room, user_id) DO UPDATE SET active = TRUE WHERE NOT members.active
             RETURNING 1",
        )
        .await?;
    let newly_joined = tx.query_opt(&enter, &[&room, &user]).await?.is_some();
    let members = tx
        .prepare_cached(
            "SELECT user_id, delivered_seq, read_seq FROM members
             WHERE room = $1 AND active ORDER BY user_id",
        )
        .await?;
    let mut watermarks = Vec::new();
    for row in tx.query(&members, &[&room]).await? {
        watermarks.push(MemberWatermarks {
            user: parse("member", UserId::new(row.get::<_, String>(0)))?,
            delivered_seq: to_seq(row.get(1)),
            read_seq: to_seq(row.get(2)),
        });
    }
    Ok(Joined {
        newly_joined,
        last_seq: last_seq(tx, room).await?,
        members: watermarks.iter().map(|w| w.user.clone()).collect(),
        watermarks,
    })
}

async fn page_in(
    tx: &Transaction<'_>,
    room: &str,
    after_seq: Seq,
    limit: u32,
) -> Result<Page, StoreError> {
    let statement = tx
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room = $1 AND seq > $2
             ORDER BY seq LIMIT $3"
        ))
        .await?;
    let rows = tx
        .query(
            &statement,
            &[&room, &to_sql_seq(after_seq), &(i64::from(limit) + 1)],
        )
        .await?;
    let mut messages = Vec::with_capacity(rows.len());
    for row in &rows {
        messages.push(to_message(row)?);
    }
    let has_more = messages.len() > limit as usize;
    messages.truncate(limit as usize);
    Ok(Page {
        messages,
        last_seq: last_seq(tx, room).await?,
        has_more,
    })
}

async fn original(
    tx: &Transaction<'_>,
    sender: &str,
    client_id: &str,
) -> Result<Option<Message>, StoreError> {
    let statement = tx
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender = $1 AND client_id = $2"
        ))
        .await?;
    tx.query_opt(&statement, &[&sender, &client_id])
        .await?
        .as_ref()
        .map(to_message)
        .transpose()
}

/// Stores `message` with its room's next `seq` unless `(sender, client_id)` exists, in two
/// round trips: one reads the original and the membership, one moves the counter and
/// inserts. When the insert finds that a concurrent transaction stored the same key first,
/// the counter is moved back (this transaction holds the room's row lock, so nobody moved
/// it since) and the original is answered.
async fn append_in(tx: &Transaction<'_>, message: NewMessage) -> Result<Appended, StoreError> {
    let sender = message.sender.to_string();
    let client_id = message.client_id.to_string();
    let room = message.room.to_string();
    let check = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM members WHERE room = $1 AND user_id = $2 AND active),
                    o.room, o.seq, o.sender, o.client_id, o.body, o.ts, o.reply_to
             FROM (SELECT 1) AS one
             LEFT JOIN messages o ON o.sender = $2 AND o.client_id = $3",
        )
        .await?;
    let found = tx.query_one(&check, &[&room, &sender, &client_id]).await?;
    if found.get::<_, Option<String>>(1).is_some() {
        return Ok(Appended::Duplicate(to_message_at(&found, 1)?));
    }
    if !found.get::<_, bool>(0) {
        return Ok(Appended::NotMember);
    }
    let insert = tx
        .prepare_cached(
            "WITH next AS (
                 UPDATE rooms SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq
             )
             INSERT INTO messages (room, seq, sender, client_id, body, ts, reply_to)
             SELECT $1, last_seq, $2, $3, $4, $5, $6 FROM next
             ON CONFLICT (sender, client_id) DO NOTHING RETURNING seq",
        )
        .await?;
    let reply_to = message.reply_to.map(to_sql_seq);
    let inserted = tx
        .query_opt(
            &insert,
            &[
                &room,
                &sender,
                &client_id,
                &message.body.as_str(),
                &message.ts,
                &reply_to,
            ],
        )
        .await?;
    let Some(inserted) = inserted else {
        let back = tx
            .prepare_cached("UPDATE rooms SET last_seq = last_seq - 1 WHERE id = $1")
            .await?;
        tx.execute(&back, &[&room]).await?;
        return match original(tx, &sender, &client_id).await? {
            Some(found) => Ok(Appended::Duplicate(found)),
            None => Err(StoreError::Commit(
                "an idempotency key conflicted but its message is gone".into(),
            )),
        };
    };
    let seq = to_seq(inserted.get(0));
    Ok(Appended::Stored(Message {
        id: message_id(&message.room, seq),
        room: message.room,
        seq,
        client_id: message.client_id,
        sender: message.sender,
        body: message.body,
        ts: message.ts,
        reply_to: message.reply_to,
    }))
}

#[async_trait]
impl Store for PostgresStore {
    async fn join(&self, room: &RoomId, user: &UserId) -> Result<Joined, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let joined = join_in(&tx, room.as_str(), user.as_str()).await?;
        tx.commit().await?;
        Ok(joined)
    }

    async fn resume(
        &self,
        user: &UserId,
        rooms: Vec<(RoomId, Option<Seq>)>,
        limit: u32,
        budget: usize,
    ) -> Result<Vec<(Joined, Page)>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut budget = budget;
        let mut resumed = Vec::with_capacity(rooms.len());
        for (room, position) in rooms {
            let joined = join_in(&tx, room.as_str(), user.as_str()).await?;
            let after = resume_from(&joined, user, position);
            let take = (limit as usize).min(budget);
            let page = if take == 0 {
                unread_page(&joined, after)
            } else {
                page_in(&tx, room.as_str(), after, take as u32).await?
            };
            budget -= page.messages.len();
            resumed.push((joined, page));
        }
        tx.commit().await?;
        Ok(resumed)
    }

    async fn leave(&self, room: &RoomId, user: &UserId) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "UPDATE members SET active = FALSE WHERE room = $1 AND user_id = $2 AND active",
            )
            .await?;
        let changed = client
            .execute(&statement, &[&room.as_str(), &user.as_str()])
            .await?;
        Ok(changed == 1)
    }

    async fn is_member(&self, room: &RoomId, user: &UserId) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let member = is_member_in(&tx, room.as_str(), user.as_str()).await?;
        tx.commit().await?;
        Ok(member)
    }

    async fn append(&self, message: NewMessage) -> Result<Appended, StoreError> {
        let mut appended = self.append_all(vec![message]).await?;
        appended
            .pop()
            .ok_or_else(|| StoreError::Commit("an append answered nothing".into()))
    }

    async fn append_batch(&self, messages: Vec<NewMessage>) -> Result<Vec<Appended>, StoreError> {
        self.append_all(messages).await
    }

    async fn sync(
        &self,
        room: &RoomId,
        user: &UserId,
        after_seq: Seq,
        limit: u32,
    ) -> Result<Membership<Page>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if !is_member_in(&tx, room.as_str(), user.as_str()).await? {
            return Ok(Membership::NotMember);
        }
        let page = page_in(&tx, room.as_str(), after_seq, limit).await?;
        tx.commit().await?;
        Ok(Membership::Member(page))
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
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT room FROM members WHERE user_id = $1 AND active ORDER BY room")
            .await?;
        client
            .query(&statement, &[&user.as_str()])
            .await?
            .iter()
            .map(|row| parse("room", RoomId::new(row.get::<_, String>(0))))
            .collect()
    }

    async fn set_last_seen(&self, user: &UserId, ts: Timestamp) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO users (id, last_seen) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen",
            )
            .await?;
        client.execute(&statement, &[&user.as_str(), &ts]).await?;
        Ok(())
    }

    async fn last_seen(&self, users: &[UserId]) -> Result<Vec<Option<Timestamp>>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = users.iter().map(UserId::as_str).collect();
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT id, last_seen FROM users WHERE id = ANY($1)")
            .await?;
        let rows = client.query(&statement, &[&ids]).await?;
        Ok(in_order_of(&ids, &rows, |row| row.get::<_, Option<i64>>(1))
            .map(Option::flatten)
            .collect())
    }

    async fn tail(&self, room: &RoomId, after_seq: Seq, limit: u32) -> Result<Page, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let page = page_in(&tx, room.as_str(), after_seq, limit).await?;
        tx.commit().await?;
        Ok(page)
    }

    async fn heads(&self, rooms: &[RoomId]) -> Result<Vec<Seq>, StoreError> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = rooms.iter().map(RoomId::as_str).collect();
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT id, last_seq FROM rooms WHERE id = ANY($1)")
            .await?;
        let rows = client.query(&statement, &[&ids]).await?;
        Ok(in_order_of(&ids, &rows, |row| to_seq(row.get(1)))
            .map(|seq| seq.unwrap_or(0))
            .collect())
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.closed.store(true, Ordering::Release);
        self.pool.close();
        Ok(())
    }
}
