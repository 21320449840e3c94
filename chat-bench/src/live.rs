//! What every client task records: live counters (for the progress bar and to know when
//! delivery is complete) and each client's own log and histograms (merged at the end, so
//! the hot path shares no lock).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::accounting::{Key, SenderLog};
use crate::stamp::Stamp;

/// Latencies are recorded in microseconds, up to an hour, with 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant bounds are valid")
}

/// Counters every task updates as it goes.
#[derive(Debug)]
pub struct Live {
    epoch: Instant,
    /// Messages handed to the client to send.
    pub sent: AtomicU64,
    /// Messages confirmed.
    pub acked: AtomicU64,
    /// Messages that ended failed.
    pub failed: AtomicU64,
    /// First-time deliveries of messages from the receiver's own room.
    pub delivered_unique: AtomicU64,
    /// Acked messages per room.
    pub acked_per_room: Vec<AtomicU64>,
    /// Members per room.
    pub members_per_room: Vec<u64>,
    /// Reconnects seen by clients.
    pub reconnects: AtomicU64,
    /// When the server last came back from a restart, µs since the epoch (0: never).
    pub server_back_us: AtomicU64,
    /// Last time anything was acked or delivered, µs since the epoch.
    pub last_progress_us: AtomicU64,
}

impl Live {
    /// Counters for `rooms` rooms with the given membership.
    pub fn new(members_per_room: Vec<u64>) -> Self {
        Self {
            epoch: Instant::now(),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            delivered_unique: AtomicU64::new(0),
            acked_per_room: members_per_room.iter().map(|_| AtomicU64::new(0)).collect(),
            members_per_room,
            reconnects: AtomicU64::new(0),
            server_back_us: AtomicU64::new(0),
            last_progress_us: AtomicU64::new(0),
        }
    }

    /// The run's epoch.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Microseconds since the epoch.
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn progressed(&self) {
        self.last_progress_us
            .store(self.now_us(), Ordering::Relaxed);
    }

    /// Deliveries still missing for every acked message to reach every member of its room.
    pub fn missing_deliveries(&self) -> u64 {
        let expected: u64 = self
            .acked_per_room
            .iter()
            .zip(&self.members_per_room)
            .map(|(acked, members)| acked.load(Ordering::Relaxed) * members)
            .sum();
        expected.saturating_sub(self.delivered_unique.load(Ordering::Relaxed))
    }

    /// Messages neither acked nor failed yet.
    pub fn pending(&self) -> u64 {
        let done = self.acked.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed);
        self.sent.load(Ordering::Relaxed).saturating_sub(done)
    }
}

/// One client's record of the run.
#[derive(Debug)]
pub struct ClientRecord {
    /// The client's index.
    pub index: u32,
    /// Its room.
    pub room: u32,
    /// What it sent.
    pub log: SenderLog,
    /// What its application received, in order.
    pub received: Vec<Key>,
    seen: HashSet<Key>,
    /// Receive time minus intended send time.
    pub latency_corrected: Histogram<u64>,
    /// Receive time minus actual send time.
    pub latency_raw: Histogram<u64>,
    /// Send call to confirmation.
    pub ack: Histogram<u64>,
    /// Link lost to link back.
    pub reconnect: Histogram<u64>,
    /// For messages queued before a restart and stored after it: server back to stored.
    pub restart_store: Histogram<u64>,
    /// The deepest this client's outbox got.
    pub peak_outbox: u64,
}

impl ClientRecord {
    /// An empty record.
    pub fn new(index: u32, room: u32) -> Self {
        Self {
            index,
            room,
            log: SenderLog::default(),
            received: Vec::new(),
            seen: HashSet::new(),
            latency_corrected: histogram(),
            latency_raw: histogram(),
            ack: histogram(),
            reconnect: histogram(),
            restart_store: histogram(),
            peak_outbox: 0,
        }
    }

    /// A message was handed to the application.
    pub fn delivered(&mut self, live: &Live, stamp: Stamp, room_of_sender: Option<u32>) {
        let now = live.now_us();
        let key = (stamp.sender, stamp.number);
        self.received.push(key);
        if self.seen.insert(key) && room_of_sender == Some(self.room) {
            live.delivered_unique.fetch_add(1, Ordering::Relaxed);
            live.progressed();
        }
        let _ = self
            .latency_corrected
            .record(now.saturating_sub(stamp.intended_us).max(1));
        let _ = self
            .latency_raw
            .record(now.saturating_sub(stamp.actual_us).max(1));
    }

    /// Stamps message `number`, due at `due`, as leaving now, and counts it as sent.
    pub fn stamp(&mut self, live: &Live, due: tokio::time::Instant, number: u64) -> Stamp {
        let intended = due.into_std().saturating_duration_since(live.epoch());
        self.sent(live, number);
        Stamp {
            sender: self.index,
            number,
            intended_us: u64::try_from(intended.as_micros()).unwrap_or(u64::MAX),
            actual_us: live.now_us(),
        }
    }

    /// A message of this client was sent.
    pub fn sent(&mut self, live: &Live, number: u64) {
        self.log.sent.insert(number);
        live.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// A message of this client was confirmed stored; `sent_us` is when `send` was called.
    pub fn acked(&mut self, live: &Live, number: u64, sent_us: u64) {
        if !self.count_acked(live, number) {
            return;
        }
        let now = live.now_us();
        let _ = self.ack.record(now.saturating_sub(sent_us).max(1));
        let back = live.server_back_us.load(Ordering::Relaxed);
        if back > 0 && sent_us < back && now >= back {
            let _ = self.restart_store.record((now - back).max(1));
        }
    }

    /// A bare emit of this client went out without error. It counts as acked, but nothing
    /// confirms it was stored, so no ack latency or restart-to-stored time is recorded.
    pub fn emitted(&mut self, live: &Live, number: u64) {
        self.count_acked(live, number);
    }

    /// Counts a message as acked once; returns false if it already was.
    fn count_acked(&mut self, live: &Live, number: u64) -> bool {
        if !self.log.acked.insert(number) {
            return false;
        }
        live.acked.fetch_add(1, Ordering::Relaxed);
        if let Some(room) = live.acked_per_room.get(self.room as usize) {
            room.fetch_add(1, Ordering::Relaxed);
        }
        live.progressed();
        true
    }

    /// A message of this client ended failed.
    pub fn failed(&mut self, live: &Live, number: u64) {
        if self.log.failed.insert(number) {
            live.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}
