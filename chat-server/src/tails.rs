//! The tail of each room on this server: which `seq` its sockets get next, so they get every
//! message once, in order, whichever server stored it.
//!
//! Three sources tell the tail of new messages:
//! - the store's commit feed: the messages this server stored (in any order when PostgreSQL
//!   commits several at once);
//! - commit notices (PostgreSQL `NOTIFY`): a room's new newest `seq`, from any server;
//! - a poll of the newest `seq` of every room this server has sockets in, for the notices
//!   lost while the notice connection was down — the last message of a quiet room has no
//!   later message to reveal the gap.
//!
//! A message with the next `seq` is sent at once. One further ahead waits briefly for the
//! messages before it (another task of this server may be publishing them) and then the
//! gap is read from the store, the single truth. A tail starts where a socket of this server
//! joined the room (the `last_seq` its join answered); a room nobody here joined is not read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chat_protocol::events::names;
use chat_protocol::{Message, RoomId, Seq};
use tokio::sync::mpsc;

use crate::cluster::Io;
use crate::error::StoreError;
use crate::fanout::emit_to;
use crate::state::room_key;
use crate::store::{Head, Notice, Page, Store};

/// How long a tail waits for the messages before one that arrived early, before it reads them.
const GAP_WAIT: Duration = Duration::from_millis(20);

/// How long a tail waits before it reads again after the store failed.
const RETRY_WAIT: Duration = Duration::from_millis(500);

/// Most messages one read of a gap takes.
const READ_LIMIT: u32 = 500;

/// What feeds the tails.
#[derive(Debug)]
pub struct Sources {
    /// Messages this server stored.
    pub feed: mpsc::Receiver<Message>,
    /// Commit notices (PostgreSQL).
    pub heads: Option<mpsc::Receiver<Notice>>,
    /// How often to poll the heads of this server's rooms; `None`: never (one server alone).
    pub poll: Option<Duration>,
    /// Rooms a socket of this server joined, with the `last_seq` the join answered.
    pub watches: mpsc::UnboundedReceiver<Head>,
}

/// Where handlers report that a socket joined a room (cheap to clone).
#[derive(Clone, Debug)]
pub struct Watches(mpsc::UnboundedSender<Head>);

impl Watches {
    /// A sender and the receiver for [`Sources::watches`].
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<Head>) {
        let (to, from) = mpsc::unbounded_channel();
        (Self(to), from)
    }

    /// A socket of this server joined `room`, which was at `last_seq`.
    pub fn joined(&self, room: &RoomId, last_seq: Seq) {
        let _ = self.0.send(Head {
            room: room.clone(),
            seq: last_seq,
        });
    }
}

/// Whether a tail is reading, or about to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadState {
    Idle,
    Scheduled,
    InFlight,
}

#[derive(Debug)]
struct Tail {
    /// The `seq` this server's sockets get next.
    next: Seq,
    /// Messages that came before their turn.
    early: BTreeMap<Seq, Message>,
    /// The newest `seq` known to exist.
    newest: Seq,
    reading: ReadState,
}

impl Tail {
    fn starting_after(seq: Seq) -> Self {
        Self {
            next: seq + 1,
            early: BTreeMap::new(),
            newest: seq,
            reading: ReadState::Idle,
        }
    }

    fn behind(&self) -> bool {
        self.newest >= self.next
    }
}

/// What the tails' own tasks report back.
enum Report {
    /// A scheduled read is due.
    Due(RoomId),
    /// A read of a room's gap finished.
    Read(RoomId, Result<Page, StoreError>),
    /// A poll finished: the rooms this server has sockets in, and their heads.
    Polled(Vec<RoomId>, Result<Vec<Head>, StoreError>),
}

/// Sends every room's messages to this server's sockets, in `seq` order, until the feed closes.
pub async fn run(io: Io, store: Arc<dyn Store>, sources: Sources) {
    let Sources {
        mut feed,
        mut heads,
        poll,
        mut watches,
    } = sources;
    let (report, mut reports) = mpsc::unbounded_channel();
    let mut tails = Tails {
        io,
        store,
        rooms: HashMap::new(),
        report,
        polling: false,
    };
    let mut poll_tick = poll.map(tokio::time::interval);
    loop {
        tokio::select! {
            message = feed.recv() => match message {
                Some(message) => tails.arrived(message),
                None => return,
            },
            Some(watch) = watches.recv() => tails.watch(watch),
            notice = next_notice(&mut heads) => match notice {
                Some(Notice::Message(message)) => tails.told(message),
                Some(Notice::Head(head)) => tails.announced(head),
                Some(Notice::Missed) => tails.poll(),
                None => heads = None,
            },
            _ = tick(&mut poll_tick) => tails.poll(),
            Some(report) = reports.recv() => tails.reported(report),
        }
    }
}

async fn next_notice(heads: &mut Option<mpsc::Receiver<Notice>>) -> Option<Notice> {
    match heads {
        Some(heads) => heads.recv().await,
        None => std::future::pending().await,
    }
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

struct Tails {
    io: Io,
    store: Arc<dyn Store>,
    rooms: HashMap<RoomId, Tail>,
    report: mpsc::UnboundedSender<Report>,
    polling: bool,
}

impl Tails {
    /// A message this server stored, or one read from the store.
    fn arrived(&mut self, message: Message) {
        let room = message.room.clone();
        let tail = self
            .rooms
            .entry(room.clone())
            .or_insert_with(|| Tail::starting_after(message.seq.saturating_sub(1)));
        tail.newest = tail.newest.max(message.seq);
        if message.seq < tail.next {
            return;
        }
        if message.seq > tail.next {
            tail.early.insert(message.seq, message);
            self.schedule(&room, GAP_WAIT);
            return;
        }
        let mut due = vec![message];
        tail.next += 1;
        while let Some(message) = tail.early.remove(&tail.next) {
            due.push(message);
            tail.next += 1;
        }
        tail.early.retain(|seq, _| *seq >= tail.next);
        let now = crate::state::now_ms();
        for message in &due {
            let lag = u64::try_from(now.saturating_sub(message.ts)).unwrap_or(0);
            crate::metrics::FANOUT_LAG.observe(Duration::from_millis(lag));
            emit_to(
                &self.io,
                vec![room_key(&message.room)],
                names::MESSAGE_NEW,
                message,
            );
        }
    }

    /// A message some server stored, from its commit notice: sent in its turn, to a room
    /// somebody here joined.
    fn told(&mut self, message: Message) {
        if self.rooms.contains_key(&message.room) {
            self.arrived(message);
        }
    }

    /// A socket of this server joined a room that was at `last_seq`.
    fn watch(&mut self, joined: Head) {
        self.rooms
            .entry(joined.room)
            .or_insert_with(|| Tail::starting_after(joined.seq));
    }

    /// Some server stored messages up to `head.seq`.
    fn announced(&mut self, head: Head) {
        let Some(tail) = self.rooms.get_mut(&head.room) else {
            // Nobody here joined it since this server started: nobody here to send it to.
            return;
        };
        if head.seq > tail.newest {
            tail.newest = head.seq;
        }
        if tail.behind() {
            self.schedule(&head.room, GAP_WAIT);
        }
    }

    /// Reads the heads of every room this server has sockets in.
    fn poll(&mut self) {
        if self.polling || self.rooms.is_empty() {
            return;
        }
        self.polling = true;
        let (io, store, report) = (self.io.clone(), self.store.clone(), self.report.clone());
        tokio::spawn(async move {
            let joined: Vec<RoomId> = match io.local().rooms().await {
                Ok(rooms) => rooms
                    .iter()
                    .filter_map(|name| name.strip_prefix("room:"))
                    .filter_map(|room| RoomId::new(room).ok())
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "this server's rooms not listed");
                    Vec::new()
                }
            };
            let heads = store.heads(&joined).await.map(|seqs| {
                joined
                    .iter()
                    .cloned()
                    .zip(seqs)
                    .map(|(room, seq)| Head { room, seq })
                    .collect()
            });
            let _ = report.send(Report::Polled(joined, heads));
        });
    }

    fn reported(&mut self, report: Report) {
        match report {
            Report::Due(room) => self.read(room),
            Report::Read(room, page) => self.read_done(room, page),
            Report::Polled(joined, heads) => {
                self.polling = false;
                // Rooms whose sockets here are all gone need no tail; a socket joining
                // again starts a new one.
                let joined: std::collections::HashSet<RoomId> = joined.into_iter().collect();
                self.rooms
                    .retain(|room, tail| joined.contains(room) || tail.reading != ReadState::Idle);
                match heads {
                    Ok(heads) => heads.into_iter().for_each(|head| self.announced(head)),
                    Err(e) => tracing::warn!(error = %e, "room heads not read"),
                }
            }
        }
    }

    /// Reads `room`'s gap after `delay`, unless a read is on its way already.
    fn schedule(&mut self, room: &RoomId, delay: Duration) {
        let Some(tail) = self.rooms.get_mut(room) else {
            return;
        };
        if tail.reading != ReadState::Idle {
            return;
        }
        tail.reading = ReadState::Scheduled;
        let (room, report) = (room.clone(), self.report.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = report.send(Report::Due(room));
        });
    }

    fn read(&mut self, room: RoomId) {
        let Some(tail) = self.rooms.get_mut(&room) else {
            return;
        };
        if !tail.behind() {
            tail.reading = ReadState::Idle;
            return;
        }
        tail.reading = ReadState::InFlight;
        let after = tail.next - 1;
        let (store, report) = (self.store.clone(), self.report.clone());
        tokio::spawn(async move {
            let page = store.tail(&room, after, READ_LIMIT).await;
            let _ = report.send(Report::Read(room, page));
        });
    }

    fn read_done(&mut self, room: RoomId, page: Result<Page, StoreError>) {
        let Some(tail) = self.rooms.get_mut(&room) else {
            return;
        };
        tail.reading = ReadState::Idle;
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(%room, error = %e, "missed messages not read; trying again");
                self.schedule(&room, RETRY_WAIT);
                return;
            }
        };
        tail.newest = tail.newest.max(page.last_seq);
        let more = page.has_more;
        let next = tail.next;
        crate::metrics::REPAIRED.add(page.messages.iter().filter(|m| m.seq >= next).count() as u64);
        for message in page.messages {
            self.arrived(message);
        }
        let behind = self.rooms.get(&room).is_some_and(Tail::behind);
        if behind {
            self.schedule(&room, if more { Duration::ZERO } else { GAP_WAIT });
        }
    }
}
