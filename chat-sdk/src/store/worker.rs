//! Where the store's SQLite calls and fsyncs run: the store's own thread, with group commit.
//!
//! A file-backed store owns one thread. Every call (a read, a state change, a position)
//! goes to it as a job; the thread takes every job waiting, runs them in order in **one
//! transaction** (each in its own savepoint, so a job that fails leaves the others' changes
//! in), commits once, then runs each job's `then` (its announcement) in the order the jobs
//! came, and answers. A job that must survive a power cut (a new message) is answered only
//! after a second thread fsynced the write-ahead log; that thread too takes every such job
//! waiting, so one fsync covers all of them, while the store thread goes on committing the
//! next batch. So no SQLite call and no fsync runs on a runtime worker, and under load the
//! cost of a commit and of an fsync is shared by every change that waited for it.
//!
//! An in-memory store has nothing to wait for: its jobs run in place, one at a time, under
//! a lock (and paused-time tests see no thread to wait on).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::durability::{Durability, WriteAheadLog};
use super::reply::{self, Answer, Pending};
use crate::error::StoreError;

/// At most this many jobs go in one transaction (and one fsync), so a flood of calls still
/// gets answers in bounded batches.
const MAX_BATCH: usize = 512;

/// Prepared statements kept per connection: every statement the store runs, with room.
const STATEMENT_CACHE: usize = 64;

/// What a job may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Access {
    /// Reads only.
    Read,
    /// Writes; refused with [`StoreError::Closed`] once the client let go of the file.
    Write,
    /// Writes that are still taken after the client let go (room positions: they only ever
    /// move forward, to a message the application took).
    LateWrite,
}

/// A result, with the disk's confirmation of it beside it.
pub(crate) type Durable<R> = (R, Result<(), StoreError>);

/// Committed jobs on their way to the sync thread.
type SyncQueue = mpsc::Sender<Vec<Box<dyn Job>>>;

type Work<R> = Box<dyn FnOnce(&Connection) -> Result<R, StoreError> + Send>;
type Then<R> = Box<dyn FnOnce(&R) + Send>;

/// One job in a batch, whatever its result type.
pub(super) trait Job: Send {
    /// Runs the job's work inside the batch's open transaction (in a savepoint of its own
    /// when `savepoint`, so a failure takes back its own changes only).
    /// Answers false when its savepoint could not be ended: the transaction may hold part
    /// of its changes, and must be taken back whole.
    fn run(&mut self, conn: &Connection, closed: &AtomicBool, savepoint: bool) -> bool;
    /// Whether it may write.
    fn writes(&self) -> bool;
    /// Its work's error, if it failed.
    fn error(&self) -> Option<&StoreError>;
    /// Its changes were taken back with the whole transaction (SQLite rolls a
    /// transaction back by itself on some errors, a full disk among them): it failed too.
    fn rolled_back(&mut self, cause: &StoreError);
    /// The batch committed: runs the job's `then` if its work succeeded.
    fn committed(&mut self);
    /// Whether it is answered only once the disk confirmed the batch.
    fn wants_disk(&self) -> bool;
    /// Answers the caller: `batch` is the commit's outcome, `disk` the fsync's (when the
    /// job waited for one).
    fn answer(self: Box<Self>, batch: Result<(), &StoreError>, disk: Result<(), &StoreError>);
}

/// A job's result before it is answered.
struct Queued<R> {
    access: Access,
    work: Option<Work<R>>,
    then: Option<Then<R>>,
    result: Option<Result<R, StoreError>>,
    reply: Reply<R>,
}

/// How a job's result reaches its caller.
enum Reply<R> {
    /// The result itself.
    Plain(Answer<R>),
    /// The result once the disk confirmed it, with the fsync's own outcome beside it (the
    /// change is made even if the disk then fails to confirm it).
    Durable(Answer<Durable<R>>),
    /// Nobody waits: a failure is logged.
    Detached(&'static str),
}

impl<R: Send + 'static> Job for Queued<R> {
    fn run(&mut self, conn: &Connection, closed: &AtomicBool, savepoint: bool) -> bool {
        let Some(work) = self.work.take() else {
            return true;
        };
        if self.access == Access::Write && closed.load(Ordering::Acquire) {
            self.result = Some(Err(StoreError::Closed));
            return true;
        }
        if !savepoint || self.access == Access::Read {
            self.result = Some(guarded(|| work(conn)));
            return true;
        }
        if let Err(err) = exec(conn, "SAVEPOINT job") {
            self.result = Some(Err(err.into()));
            return true;
        }
        let result = guarded(|| work(conn));
        let ended = match &result {
            Ok(_) => exec(conn, "RELEASE job"),
            Err(_) => exec(conn, "ROLLBACK TO job").and_then(|()| exec(conn, "RELEASE job")),
        };
        // With the transaction gone (SQLite took it back), there is no savepoint to end:
        // the batch sees that and fails every job of it.
        let consistent = ended.is_ok() || conn.is_autocommit();
        self.result = Some(match ended {
            Err(err) if result.is_ok() => Err(err.into()),
            _ => result,
        });
        consistent
    }

    fn writes(&self) -> bool {
        self.access != Access::Read
    }

    fn error(&self) -> Option<&StoreError> {
        self.result
            .as_ref()
            .and_then(|result| result.as_ref().err())
    }

    fn rolled_back(&mut self, cause: &StoreError) {
        self.result = Some(Err(again(cause)));
    }

    fn committed(&mut self) {
        if let (Some(Ok(value)), Some(then)) = (&self.result, self.then.take()) {
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| then(value)));
            if ran.is_err() {
                tracing::error!("an announcement of the outbox panicked; the store goes on");
            }
        }
    }

    fn wants_disk(&self) -> bool {
        matches!(self.reply, Reply::Durable(_)) && matches!(self.result, Some(Ok(_)))
    }

    fn answer(self: Box<Self>, batch: Result<(), &StoreError>, disk: Result<(), &StoreError>) {
        let result = match batch {
            Err(err) => Err(again(err)),
            Ok(()) => self.result.unwrap_or_else(|| Err(StoreError::Closed)),
        };
        match self.reply {
            Reply::Plain(answer) => answer.send(result),
            Reply::Durable(answer) => {
                answer.send(result.map(|value| (value, disk.map_err(again))));
            }
            Reply::Detached(what) => {
                if let Err(err) = result {
                    tracing::warn!(error = %err, "could not record {what}");
                }
            }
        }
    }
}

/// Runs a job's work; a panic in it fails the job instead of ending the store's thread.
fn guarded<R>(work: impl FnOnce() -> Result<R, StoreError>) -> Result<R, StoreError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        .unwrap_or_else(|_| Err(StoreError::Corrupt("a store call panicked".into())))
}

/// The same error once more, for each job of a batch whose commit (or fsync) failed.
fn again(err: &StoreError) -> StoreError {
    fn sqlite(err: &rusqlite::Error) -> rusqlite::Error {
        match err.sqlite_error() {
            Some(code) => rusqlite::Error::SqliteFailure(*code, Some(err.to_string())),
            None => rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                Some(err.to_string()),
            ),
        }
    }
    match err {
        StoreError::Sqlite(err) => StoreError::Sqlite(sqlite(err)),
        StoreError::Full(err) => StoreError::Full(sqlite(err)),
        StoreError::Corrupt(what) => StoreError::Corrupt(what.clone()),
        StoreError::Closed => StoreError::Closed,
        StoreError::SchemaTooNew { found, supported } => StoreError::SchemaTooNew {
            found: *found,
            supported: *supported,
        },
        StoreError::Io(err) => StoreError::Io(std::io::Error::new(err.kind(), err.to_string())),
        StoreError::InUse { path, holder } => StoreError::InUse {
            path: path.clone(),
            holder: *holder,
        },
    }
}

/// A store call being put together: its work, what to run once it is committed, and
/// whether to wait for the disk. Nothing runs until it is started.
#[must_use = "a store call does nothing until it is started, awaited or waited for"]
pub(crate) struct Call<'a, R> {
    executor: &'a Executor,
    access: Access,
    work: Work<R>,
    then: Option<Then<R>>,
}

impl<'a, R: Send + 'static> Call<'a, R> {
    pub(super) fn new(
        executor: &'a Executor,
        access: Access,
        work: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Self {
        Self {
            executor,
            access,
            work: Box::new(work),
            then: None,
        }
    }

    /// Runs `then` with the result once the change is committed, before any later call's
    /// `then`: announcements made here come in the order the changes were stored.
    pub(crate) fn then(mut self, then: impl FnOnce(&R) + Send + 'static) -> Self {
        self.then = Some(Box::new(then));
        self
    }

    /// Queues the call; the answer comes once it is committed.
    pub(crate) fn start(self) -> Pending<R> {
        let (answer, pending) = reply::channel();
        self.submit(Reply::Plain(answer));
        pending
    }

    /// Queues the call; its answer comes once the disk confirmed it too, with the disk's
    /// own outcome beside the result.
    pub(crate) fn start_durable(self) -> Pending<Durable<R>> {
        let (answer, pending) = reply::channel();
        self.submit(Reply::Durable(answer));
        pending
    }

    /// Queues the call with nobody waiting for it; a failure is logged as "could not
    /// record `what`".
    pub(crate) fn detach(self, what: &'static str) {
        self.submit(Reply::Detached(what));
    }

    /// Runs the call and blocks this thread until it is committed.
    pub(crate) fn wait(self) -> Result<R, StoreError> {
        self.start().wait()
    }

    fn submit(self, reply: Reply<R>) {
        let executor = self.executor;
        executor.submit(Box::new(Queued {
            access: self.access,
            work: Some(self.work),
            then: self.then,
            result: None,
            reply,
        }));
    }
}

impl<R: Send + 'static> std::future::IntoFuture for Call<'_, R> {
    type Output = Result<R, StoreError>;
    type IntoFuture = Pending<R>;

    fn into_future(self) -> Self::IntoFuture {
        self.start()
    }
}

/// Runs the store's jobs.
pub(super) struct Executor {
    /// Set (in job order) once the client let go of the file.
    closed: Arc<AtomicBool>,
    /// Read by the tests that show the grouping.
    #[cfg_attr(not(test), allow(dead_code))]
    counts: Arc<Counts>,
    kind: Kind,
}

/// How much group commit saved: transactions committed and fsyncs made.
#[derive(Debug, Default)]
pub(super) struct Counts {
    pub(super) batches: AtomicU64,
    pub(super) syncs: AtomicU64,
}

enum Kind {
    /// In place, under a lock: an in-memory store.
    Inline(Mutex<Connection>),
    /// On the store's thread.
    Thread(Worker),
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Inline(_) => "inline",
            Kind::Thread(_) => "thread",
        };
        f.debug_struct("Executor")
            .field("kind", &kind)
            .field("closed", &self.closed)
            .finish()
    }
}

impl Executor {
    /// Jobs run in place (an in-memory store).
    pub(super) fn inline(conn: Connection) -> Self {
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Self {
            closed: Arc::default(),
            counts: Arc::default(),
            kind: Kind::Inline(Mutex::new(conn)),
        }
    }

    /// Jobs run on a thread of their own; `durability` says how answers that wait for the
    /// disk get it, `transactional` whether jobs are grouped in a transaction (not for a
    /// read-only view).
    pub(super) fn spawn(
        conn: Connection,
        durability: Durability,
        transactional: bool,
    ) -> Result<Self, StoreError> {
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let closed = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let worker = Worker::spawn(
            conn,
            durability,
            transactional,
            closed.clone(),
            counts.clone(),
        )?;
        Ok(Self {
            closed,
            counts,
            kind: Kind::Thread(worker),
        })
    }

    /// A call that lets go of the file: once it ran, every later [`Access::Write`] job is
    /// refused.
    pub(super) fn close(&self) -> Call<'_, ()> {
        let closed = self.closed.clone();
        Call::new(self, Access::Read, move |_| {
            closed.store(true, Ordering::Release);
            Ok(())
        })
    }

    /// Transactions committed and fsyncs made so far.
    #[cfg(test)]
    pub(super) fn counts(&self) -> (u64, u64) {
        (
            self.counts.batches.load(Ordering::Relaxed),
            self.counts.syncs.load(Ordering::Relaxed),
        )
    }

    fn submit(&self, job: Box<dyn Job>) {
        match &self.kind {
            Kind::Inline(conn) => {
                let conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let mut jobs = vec![job];
                let batch = run_batch(&conn, &self.closed, true, &mut jobs);
                finish_batch(jobs, batch, None);
            }
            Kind::Thread(worker) => worker.submit(job),
        }
    }
}

/// Runs `jobs` in one transaction (when `transactional`) and commits it.
fn run_batch(
    conn: &Connection,
    closed: &AtomicBool,
    transactional: bool,
    jobs: &mut [Box<dyn Job>],
) -> Result<(), StoreError> {
    if !transactional || !jobs.iter().any(|job| job.writes()) {
        // Reads only: each statement reads a consistent snapshot on its own.
        for job in jobs.iter_mut() {
            job.run(conn, closed, false);
        }
        return Ok(());
    }
    // Immediate: the write lock from the start, so no read snapshot taken earlier in the
    // batch can make a later write fail as stale.
    exec(conn, "BEGIN IMMEDIATE")?;
    if let [job] = jobs {
        // Alone in its transaction, a job needs no savepoint: a failure takes it all back.
        job.run(conn, closed, false);
        if job.error().is_some() {
            if !conn.is_autocommit() {
                exec(conn, "ROLLBACK")?;
            }
            return Ok(());
        }
        return commit(conn);
    }
    let mut first = 0;
    for index in 0..jobs.len() {
        if !jobs[index].run(conn, closed, true) {
            // Its savepoint could not be ended: nothing of this transaction can be trusted.
            let cause = jobs[index]
                .error()
                .map(again)
                .unwrap_or_else(|| StoreError::Corrupt("a savepoint could not end".into()));
            if !conn.is_autocommit() {
                exec(conn, "ROLLBACK")?;
            }
            for job in &mut jobs[first..index] {
                job.rolled_back(&cause);
            }
            first = index + 1;
            exec(conn, "BEGIN IMMEDIATE")?;
            continue;
        }
        if !conn.is_autocommit() {
            continue;
        }
        // SQLite took the whole transaction back: the jobs before this one in it lost
        // their changes too. The next jobs go in a new one.
        let cause = jobs[index]
            .error()
            .map(again)
            .unwrap_or_else(|| StoreError::Corrupt("the transaction ended by itself".into()));
        for job in &mut jobs[first..index] {
            job.rolled_back(&cause);
        }
        if jobs[index].error().is_none() {
            jobs[index].rolled_back(&cause);
        }
        first = index + 1;
        exec(conn, "BEGIN IMMEDIATE")?;
    }
    commit(conn)
}

fn commit(conn: &Connection) -> Result<(), StoreError> {
    if let Err(err) = exec(conn, "COMMIT") {
        if !conn.is_autocommit() {
            let _ = exec(conn, "ROLLBACK");
        }
        return Err(err.into());
    }
    Ok(())
}

/// One statement without parameters, prepared once per connection.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// After the commit: each job's `then` in order, then the answers of those that need not
/// wait for the disk; the others go to `sync` (or are answered now when there is none).
fn finish_batch(jobs: Vec<Box<dyn Job>>, batch: Result<(), StoreError>, sync: Option<&SyncQueue>) {
    let mut for_disk = Vec::new();
    for mut job in jobs {
        if batch.is_ok() {
            job.committed();
        }
        if batch.is_ok() && sync.is_some() && job.wants_disk() {
            for_disk.push(job);
        } else {
            job.answer(batch.as_ref().map(|_| ()), Ok(()));
        }
    }
    if let (Some(sync), false) = (sync, for_disk.is_empty()) {
        if let Err(mpsc::SendError(jobs)) = sync.send(for_disk) {
            let gone = StoreError::Io(std::io::Error::other("the store's sync thread stopped"));
            for job in jobs {
                job.answer(Ok(()), Err(&gone));
            }
        }
    }
}

/// The store's thread and its sync thread.
struct Worker {
    jobs: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    fn spawn(
        conn: Connection,
        durability: Durability,
        transactional: bool,
        closed: Arc<AtomicBool>,
        counts: Arc<Counts>,
    ) -> Result<Self, StoreError> {
        let (jobs, incoming) = mpsc::channel::<Box<dyn Job>>();
        let sync = match durability {
            Durability::Wal(log) => Some(spawn_sync(log, counts.clone())?),
            Durability::InCommit | Durability::Memory => None,
        };
        let thread = std::thread::Builder::new()
            .name("chat-sdk-store".into())
            .spawn(move || {
                let (sync_jobs, sync_thread) = match sync {
                    Some((jobs, thread)) => (Some(jobs), Some(thread)),
                    None => (None, None),
                };
                while let Ok(first) = incoming.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match incoming.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    let outcome = run_batch(&conn, &closed, transactional, &mut batch);
                    counts.batches.fetch_add(1, Ordering::Relaxed);
                    finish_batch(batch, outcome, sync_jobs.as_ref());
                }
                drop(conn);
                drop(sync_jobs);
                if let Some(thread) = sync_thread {
                    let _ = thread.join();
                }
            })?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    fn submit(&self, job: Box<dyn Job>) {
        let sent = match &self.jobs {
            Some(jobs) => jobs.send(job).map_err(|mpsc::SendError(job)| job),
            None => Err(job),
        };
        if let Err(job) = sent {
            let gone = StoreError::Io(std::io::Error::other("the store's thread stopped"));
            job.answer(Err(&gone), Ok(()));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // The thread finishes the jobs queued so far, closes the file and ends. Waiting for
        // it means the file is closed once the store is gone (a client opened next on it
        // finds it as this one left it) — unless the store is dropped by its own thread.
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

/// The thread that makes committed batches durable: one fsync of the log for every batch
/// waiting, then their answers.
fn spawn_sync(
    log: WriteAheadLog,
    counts: Arc<Counts>,
) -> Result<(SyncQueue, std::thread::JoinHandle<()>), StoreError> {
    let (jobs, incoming) = mpsc::channel::<Vec<Box<dyn Job>>>();
    let thread = std::thread::Builder::new()
        .name("chat-sdk-store-sync".into())
        .spawn(move || {
            while let Ok(mut waiting) = incoming.recv() {
                while let Ok(more) = incoming.try_recv() {
                    waiting.extend(more);
                }
                let synced = log.sync();
                counts.syncs.fetch_add(1, Ordering::Relaxed);
                for job in waiting {
                    job.answer(Ok(()), synced.as_ref().map(|_| ()));
                }
            }
        })?;
    Ok((jobs, thread))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rusqlite::params;

    use super::super::Store;
    use super::*;

    /// A call that keeps the store's thread busy until `release` is sent, so the calls made
    /// meanwhile wait together for the next batch.
    fn hold(store: &Store) -> (mpsc::Sender<()>, Pending<()>) {
        let (release, held) = mpsc::channel::<()>();
        let (entered, inside) = mpsc::channel::<()>();
        let holding = Call::new(&store.executor, Access::Read, move |_| {
            let _ = entered.send(());
            let _ = held.recv_timeout(Duration::from_secs(30));
            Ok(())
        })
        .start();
        inside
            .recv_timeout(Duration::from_secs(30))
            .expect("the store's thread runs the holding call");
        (release, holding)
    }

    fn insert<'a>(store: &'a Store, room: &'static str) -> Call<'a, ()> {
        Call::new(&store.executor, Access::Write, move |conn| {
            conn.execute(
                "INSERT INTO rooms (room, joined, last_seq) VALUES (?1, 1, NULL)",
                params![room],
            )?;
            Ok(())
        })
    }

    fn rooms(store: &Store) -> Vec<String> {
        let rooms = store.rooms().wait().expect("rooms");
        rooms
            .into_iter()
            .map(|r| r.room.as_str().to_owned())
            .collect()
    }

    #[test]
    fn calls_that_wait_together_share_one_commit_and_one_fsync_and_run_off_the_caller() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s.db")).expect("open");
        let (release, holding) = hold(&store);
        let before = store.executor.counts();
        let calls: Vec<_> = (0..20)
            .map(|_| {
                Call::new(&store.executor, Access::Read, |_| {
                    Ok(std::thread::current().name().map(str::to_owned))
                })
                .start_durable()
            })
            .collect();
        release.send(()).expect("release");
        holding.wait().expect("held call");
        for call in calls {
            let (thread, disk) = call.wait().expect("answer");
            disk.expect("synced");
            assert_eq!(thread.as_deref(), Some("chat-sdk-store"));
        }
        let after = store.executor.counts();
        // The held call's batch, then one batch for all twenty, with one fsync.
        assert_eq!(after.0 - before.0, 2, "batches");
        assert_eq!(after.1 - before.1, 1, "fsyncs");
    }

    #[test]
    fn a_failing_call_in_a_batch_takes_back_only_its_own_changes_and_thens_run_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s.db")).expect("open");
        let order = Arc::new(Mutex::new(Vec::new()));
        let (release, holding) = hold(&store);
        let mut calls = Vec::new();
        for room in ["a", "b"] {
            let order = order.clone();
            calls.push(
                insert(&store, room)
                    .then(move |()| order.lock().expect("order").push(room))
                    .start(),
            );
        }
        // Inserts a row, then fails: its row must not stay.
        let failing = Call::new(&store.executor, Access::Write, |conn| {
            conn.execute("INSERT INTO rooms (room, joined) VALUES ('c', 1)", [])?;
            conn.execute("INSERT INTO rooms (room, joined) VALUES ('a', 1)", [])?;
            Ok(())
        })
        .start();
        let order_d = order.clone();
        calls.push(
            insert(&store, "d")
                .then(move |()| order_d.lock().expect("order").push("d"))
                .start(),
        );
        release.send(()).expect("release");
        holding.wait().expect("held call");
        assert!(failing.wait().is_err(), "a duplicate room is refused");
        for call in calls {
            call.wait().expect("committed");
        }
        assert_eq!(rooms(&store), ["a", "b", "d"]);
        assert_eq!(*order.lock().expect("order"), ["a", "b", "d"]);
    }

    #[test]
    fn a_full_disk_mid_batch_fails_every_change_it_took_back_and_keeps_later_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_capped(&dir.path().join("s.db"), Some(64 * 1024)).expect("open");
        let (release, holding) = hold(&store);
        let before = insert(&store, "before").start();
        let big = "x".repeat(200_000);
        let filling = Call::new(&store.executor, Access::Write, move |conn| {
            conn.execute(
                "INSERT INTO rooms (room, joined) VALUES (?1, 1)",
                params![big],
            )?;
            Ok(())
        })
        .start();
        let after = insert(&store, "after").start();
        release.send(()).expect("release");
        holding.wait().expect("held call");
        assert!(matches!(filling.wait(), Err(StoreError::Full(_))));
        // SQLite takes back the whole transaction on a full disk: the change before it in
        // the batch is lost too, and says so, instead of answering that it was made.
        let before = before.wait();
        let kept = rooms(&store);
        assert_eq!(
            before.is_ok(),
            kept.contains(&"before".to_owned()),
            "{before:?} {kept:?}"
        );
        after
            .wait()
            .expect("a later change goes in a new transaction");
        assert!(kept.contains(&"after".to_owned()), "{kept:?}");
    }

    #[test]
    fn a_call_that_panics_fails_alone_and_the_store_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s.db")).expect("open");
        let panicking = Call::new(&store.executor, Access::Write, |_| -> Result<(), _> {
            panic!("a bug in a store call")
        })
        .start();
        let announced = Arc::new(AtomicBool::new(false));
        let seen = announced.clone();
        let panicking_then = insert(&store, "a")
            .then(|()| panic!("a bug in an announcement"))
            .start();
        let after = insert(&store, "b")
            .then(move |()| seen.store(true, Ordering::Release))
            .start();
        assert!(matches!(panicking.wait(), Err(StoreError::Corrupt(_))));
        panicking_then.wait().expect("its change was committed");
        after.wait().expect("the store still answers");
        assert!(announced.load(Ordering::Acquire));
        assert_eq!(rooms(&store), ["a", "b"]);
    }

    #[test]
    fn writes_after_close_are_refused_in_order_and_positions_still_taken() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s.db")).expect("open");
        let (release, holding) = hold(&store);
        let early = insert(&store, "early").start();
        let close = store.executor.close().start();
        let late = insert(&store, "late").start();
        let position = store
            .advance_position(chat_protocol::RoomId::new("early").expect("room"), 4)
            .start();
        release.send(()).expect("release");
        holding.wait().expect("held call");
        early.wait().expect("before the close");
        close.wait().expect("closed");
        assert!(matches!(late.wait(), Err(StoreError::Closed)));
        position
            .wait()
            .expect("a position is taken after the close");
        assert_eq!(rooms(&store), ["early"]);
    }
}
