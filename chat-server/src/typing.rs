//! Who is typing where: ephemeral state with server-side expiry.

use std::collections::HashMap;
use std::sync::Mutex;

use chat_protocol::{RoomId, UserId};

/// Typing indicators currently shown, each with the generation of its last refresh.
#[derive(Debug, Default)]
pub struct TypingTracker {
    active: Mutex<HashMap<(RoomId, UserId), u64>>,
    next_generation: Mutex<u64>,
}

impl TypingTracker {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<(RoomId, UserId), u64>) -> R) -> R {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut active)
    }

    /// Starts or refreshes; returns whether it just started and the generation the expiry
    /// timer must find unchanged.
    pub fn start(&self, room: &RoomId, user: &UserId) -> (bool, u64) {
        let generation = {
            let mut next = self
                .next_generation
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            *next += 1;
            *next
        };
        let started = self.with(|active| {
            active
                .insert((room.clone(), user.clone()), generation)
                .is_none()
        });
        (started, generation)
    }

    /// Stops; true when the user was typing.
    pub fn stop(&self, room: &RoomId, user: &UserId) -> bool {
        self.with(|active| active.remove(&(room.clone(), user.clone())).is_some())
    }

    /// Expires the indicator if it was not refreshed since `generation`; true when it expired.
    pub fn expire(&self, room: &RoomId, user: &UserId, generation: u64) -> bool {
        self.with(|active| {
            let key = (room.clone(), user.clone());
            if active.get(&key) == Some(&generation) {
                active.remove(&key);
                true
            } else {
                false
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_outlives_the_first_timer() {
        let tracker = TypingTracker::default();
        let room = RoomId::new("r").expect("valid");
        let bob = UserId::new("bob").expect("valid");
        let (started, first) = tracker.start(&room, &bob);
        assert!(started);
        let (started_again, second) = tracker.start(&room, &bob);
        assert!(!started_again);
        assert!(!tracker.expire(&room, &bob, first));
        assert!(tracker.expire(&room, &bob, second));
        assert!(!tracker.stop(&room, &bob));
    }
}
