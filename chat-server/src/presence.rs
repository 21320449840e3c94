//! Who is online: connection counts per user, the connection cap, and the grace period that
//! keeps a quick reconnect from flapping presence.

use std::collections::HashMap;
use std::sync::Mutex;

use chat_protocol::UserId;

#[derive(Debug, Default)]
struct Entry {
    sockets: usize,
    generation: u64,
    online: bool,
}

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverCap;

/// In-memory connection counts.
#[derive(Debug, Default)]
pub struct PresenceTracker {
    users: Mutex<HashMap<UserId, Entry>>,
}

impl PresenceTracker {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<UserId, Entry>) -> R) -> R {
        let mut users = self
            .users
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut users)
    }

    /// Counts a new socket of `user` unless it already has `max` open; returns whether the
    /// user came online with it (false inside the grace period).
    pub fn admit(&self, user: &UserId, max: usize) -> Result<bool, OverCap> {
        self.with(|users| {
            let entry = users.entry(user.clone()).or_default();
            if entry.sockets >= max {
                return Err(OverCap);
            }
            entry.sockets += 1;
            entry.generation += 1;
            let came_online = !entry.online;
            entry.online = true;
            Ok(came_online)
        })
    }

    /// Counts a closed socket; when it was the user's last, returns the generation the
    /// grace timer must find unchanged before calling [`PresenceTracker::expire`].
    pub fn release(&self, user: &UserId) -> Option<u64> {
        self.with(|users| {
            let entry = users.get_mut(user)?;
            entry.sockets = entry.sockets.saturating_sub(1);
            (entry.sockets == 0).then_some(entry.generation)
        })
    }

    /// Ends the grace period: true (the user is now offline) if no socket came back since.
    pub fn expire(&self, user: &UserId, generation: u64) -> bool {
        self.with(|users| match users.get(user) {
            Some(entry) if entry.sockets == 0 && entry.generation == generation => {
                users.remove(user);
                true
            }
            _ => false,
        })
    }

    /// Whether `user` is online (or inside its grace period).
    pub fn is_online(&self, user: &UserId) -> bool {
        self.with(|users| users.get(user).is_some_and(|entry| entry.online))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_inside_grace_does_not_go_offline() {
        let tracker = PresenceTracker::default();
        let alice = UserId::new("alice").expect("valid");
        assert_eq!(tracker.admit(&alice, 16), Ok(true));
        let generation = tracker.release(&alice).expect("last socket");
        assert_eq!(
            tracker.admit(&alice, 16),
            Ok(false),
            "still online in grace"
        );
        assert!(!tracker.expire(&alice, generation), "a socket came back");
        assert!(tracker.is_online(&alice));
        let generation = tracker.release(&alice).expect("last socket again");
        assert!(tracker.expire(&alice, generation));
        assert!(!tracker.is_online(&alice));
    }

    #[test]
    fn cap_counts_open_sockets() {
        let tracker = PresenceTracker::default();
        let bob = UserId::new("bob").expect("valid");
        assert!(tracker.admit(&bob, 2).is_ok());
        assert!(tracker.admit(&bob, 2).is_ok());
        assert_eq!(tracker.admit(&bob, 2), Err(OverCap));
        assert_eq!(tracker.release(&bob), None);
        assert!(tracker.admit(&bob, 2).is_ok());
    }
}
