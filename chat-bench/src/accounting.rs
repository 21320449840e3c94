//! Counting what went wrong, the way Jepsen's queue checker does, per receiver.
//!
//! For each receiver the expected set is every message *acked* to a sender of its room. Then:
//! `lost` = acked but never handed to the receiving application; `duplicated` = handed over
//! more than once; `reordered` = handed over after a later message of the same sender;
//! `unexpected` = handed over but never sent at all.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

/// A message's identity: (sender index, sender's number).
pub type Key = (u32, u64);

/// What one sender did.
#[derive(Debug, Default, Clone)]
pub struct SenderLog {
    /// Every message it tried to send, by number.
    pub sent: HashSet<u64>,
    /// Those the server (or, for the raw baseline, the emit call) confirmed.
    pub acked: HashSet<u64>,
    /// Those that ended failed.
    pub failed: HashSet<u64>,
}

/// The counts over all receivers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Acked but never delivered (summed over receivers).
    pub lost: u64,
    /// Delivered more than once.
    pub duplicated: u64,
    /// Delivered after a later message of the same sender.
    pub reordered: u64,
    /// Delivered but never sent.
    pub unexpected: u64,
    /// Deliveries checked.
    pub delivered: u64,
}

impl Counts {
    /// True when nothing was lost, duplicated, reordered or unexpected.
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.reordered == 0 && self.unexpected == 0
    }
}

/// Checks every receiver's deliveries against the senders of its room.
///
/// `room_of` maps a client to its room; `senders[i]` is client i's log; `received[i]` is what
/// client i's application got, in order.
pub fn check(room_of: &[u32], senders: &[SenderLog], received: &[Vec<Key>]) -> Counts {
    let mut counts = Counts::default();
    for (receiver, deliveries) in received.iter().enumerate() {
        let room = room_of[receiver];
        let mut seen: HashSet<Key> = HashSet::with_capacity(deliveries.len());
        let mut newest: HashMap<u32, u64> = HashMap::new();
        for &(sender, number) in deliveries {
            counts.delivered += 1;
            let from_room = room_of.get(sender as usize) == Some(&room);
            let was_sent = from_room
                && senders
                    .get(sender as usize)
                    .is_some_and(|log| log.sent.contains(&number));
            if !was_sent {
                counts.unexpected += 1;
                continue;
            }
            if !seen.insert((sender, number)) {
                counts.duplicated += 1;
                continue;
            }
            let latest = newest.entry(sender).or_insert(number);
            if number < *latest {
                counts.reordered += 1;
            } else {
                *latest = number;
            }
        }
        for (sender, log) in senders.iter().enumerate() {
            if room_of[sender] != room {
                continue;
            }
            counts.lost += log
                .acked
                .iter()
                .filter(|number| !seen.contains(&(sender as u32, **number)))
                .count() as u64;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(sent: &[u64], acked: &[u64]) -> SenderLog {
        SenderLog {
            sent: sent.iter().copied().collect(),
            acked: acked.iter().copied().collect(),
            failed: HashSet::new(),
        }
    }

    #[test]
    fn a_perfect_run_is_clean() {
        let rooms = [0, 0];
        let senders = [log(&[0, 1], &[0, 1]), log(&[0], &[0])];
        let got = vec![vec![(0, 0), (1, 0), (0, 1)], vec![(0, 0), (0, 1), (1, 0)]];
        let counts = check(&rooms, &senders, &got);
        assert!(counts.clean(), "{counts:?}");
        assert_eq!(counts.delivered, 6);
    }

    #[test]
    fn each_anomaly_is_counted_once() {
        let rooms = [0, 0, 1];
        let senders = [
            log(&[0, 1, 2, 3], &[0, 1, 2, 3]),
            log(&[], &[]),
            log(&[0], &[0]),
        ];
        // Receiver 1: 2 before 1 (reordered), 0 twice (duplicated), 3 never (lost),
        // a message from the other room (unexpected), one never sent (unexpected).
        let got = vec![
            vec![(0, 0), (0, 1), (0, 2), (0, 3)],
            vec![(0, 0), (0, 2), (0, 1), (0, 0), (2, 0), (0, 9)],
            vec![(2, 0)],
        ];
        let counts = check(&rooms, &senders, &got);
        assert_eq!(
            (
                counts.lost,
                counts.duplicated,
                counts.reordered,
                counts.unexpected
            ),
            (1, 1, 1, 2)
        );
    }

    #[test]
    fn a_sent_but_unacked_message_may_arrive_or_not() {
        let rooms = [0];
        let senders = [log(&[0, 1], &[0])];
        assert!(check(&rooms, &senders, &[vec![(0, 0), (0, 1)]]).clean());
        assert!(check(&rooms, &senders, &[vec![(0, 0)]]).clean());
    }
}
