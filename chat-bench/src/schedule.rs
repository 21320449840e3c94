//! The open-loop send schedule: each client sends at fixed intervals from its own phase,
//! whatever the latency, so a slow system cannot slow the load down (no coordinated omission).
//!
//! The [`pace`] thread says when each message is due. It sleeps with the operating system's
//! timer (tens of microseconds of slack) rather than tokio's, whose 1 ms wheel rounds every
//! deadline up: that rounding alone would add about a millisecond to every corrected latency.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

/// A message that is due now: its number in the client's sequence and when it was due.
pub type Due = (u64, Instant);

/// When one client sends.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// The run's start.
    pub start: Instant,
    /// When sending stops.
    pub end: Instant,
    /// This client's offset from the start.
    pub phase: Duration,
    /// Time between two of its messages.
    pub interval: Duration,
}

impl Schedule {
    /// When message `number` is due, or `None` past the end.
    pub fn due(&self, number: u64) -> Option<Instant> {
        let offset = self.phase + self.interval.mul_f64(number as f64);
        let at = self.start + offset;
        (at < self.end).then_some(at)
    }
}

/// Starts a thread that sends each client, on its channel, every message number as it
/// falls due. The thread ends when every schedule is over or every receiver is gone.
pub fn pace(schedules: &[Schedule]) -> Vec<mpsc::UnboundedReceiver<Due>> {
    let mut senders = Vec::with_capacity(schedules.len());
    let mut receivers = Vec::with_capacity(schedules.len());
    let mut heap = BinaryHeap::new();
    for (client, schedule) in schedules.iter().enumerate() {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        receivers.push(rx);
        if let Some(at) = schedule.due(0) {
            heap.push(Reverse((at, client, 0u64)));
        }
    }
    let schedules = schedules.to_vec();
    let spawned = std::thread::Builder::new()
        .name("bench-pacer".into())
        .spawn(move || {
            while let Some(Reverse((at, client, number))) = heap.pop() {
                let now = Instant::now();
                if at > now {
                    std::thread::sleep(at - now);
                }
                if senders[client].send((number, at)).is_err() {
                    continue;
                }
                if let Some(next) = schedules[client].due(number + 1) {
                    heap.push(Reverse((next, client, number + 1)));
                }
            }
        });
    if let Err(err) = spawned {
        // Without the thread every channel is closed at once: the run sends nothing and
        // says so in its counts rather than hanging.
        tracing::error!(error = %err, "could not start the pacer thread");
    }
    receivers
}

/// Resolves once the run's finish flag is set (or its sender is gone).
pub async fn finished(flag: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = flag.wait_for(|done| *done).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_due_on_a_fixed_grid_until_the_end() {
        let start = Instant::now();
        let schedule = Schedule {
            start,
            end: start + Duration::from_millis(100),
            phase: Duration::from_millis(5),
            interval: Duration::from_millis(20),
        };
        assert_eq!(schedule.due(0), Some(start + Duration::from_millis(5)));
        assert_eq!(schedule.due(4), Some(start + Duration::from_millis(85)));
        assert_eq!(schedule.due(5), None);
    }

    #[tokio::test]
    async fn the_pacer_hands_out_every_due_message_in_order_and_not_early() {
        let start = Instant::now();
        let schedule = |phase| Schedule {
            start,
            end: start + Duration::from_millis(30),
            phase: Duration::from_millis(phase),
            interval: Duration::from_millis(10),
        };
        let schedules = [schedule(0), schedule(5)];
        let mut channels = pace(&schedules);
        for (client, rx) in channels.iter_mut().enumerate() {
            let mut numbers = Vec::new();
            while let Some((number, due)) = rx.recv().await {
                assert_eq!(Some(due), schedules[client].due(number));
                assert!(Instant::now() >= due, "handed out before it was due");
                numbers.push(number);
            }
            assert_eq!(numbers, vec![0, 1, 2]);
        }
    }
}
