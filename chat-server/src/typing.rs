//! Who is typing where: ephemeral state with server-side expiry.

use std::collections::HashMap;
use std::sync::Mutex;

use chat_protocol::{RoomId, UserId};
use socketioxide::socket::Sid;

/// Typing indicators currently shown, each with the generation of its last refresh and the
/// socket that typed (which is never told about its own typing).
#[derive(Debug, Default)]
pub struct TypingTracker {
    active: Mutex<HashMap<(RoomId, UserId), (u64, Sid)>>,
    next_generation: Mutex<u64>,
}

impl TypingTracker {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<(RoomId, UserId), (u64, Sid)>) -> R) -> R {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut active)
    }

    /// Starts or refreshes; returns whether it just started and the generation the expiry
    /// timer must find unchanged.
    pub fn start(&self, room: &RoomId, user: &UserId, socket: Sid) -> (bool, u64) {
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
                .insert((room.clone(), user.clone()), (generation, socket))
                .is_none()
        });
        (started, generation)
    }

    /// Stops; true when the user was typing.
    pub fn stop(&self, room: &RoomId, user: &UserId) -> bool {
        self.with(|active| active.remove(&(room.clone(), user.clone())).is_some())
    }

    /// Expires the indicator if it was not refreshed since `generation`; returns the socket
    /// that typed when it expired.
    pub fn expire(&self, room: &RoomId, user: &UserId, generation: u64) -> Option<Sid> {
        self.with(|active| {
            let key = (room.clone(), user.clone());
            match active.get(&key) {
                Some(&(current, socket)) if current == generation => {
                    active.remove(&key);
                    Some(socket)
                }
                _ => None,
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
        let socket = Sid::new();
        let (started, first) = tracker.start(&room, &bob, socket);
        assert!(started);
        let (started_again, second) = tracker.start(&room, &bob, socket);
        assert!(!started_again);
        assert_eq!(tracker.expire(&room, &bob, first), None);
        assert_eq!(tracker.expire(&room, &bob, second), Some(socket));
        assert!(!tracker.stop(&room, &bob));
    }
}
