//! Where receiving resumes after a restart: the last `seq` of each room the application
//! took from the event stream.
//!
//! The receive loop moves a room's *received* position as it puts messages on the stream;
//! the *taken* position moves only here, when the application takes them, and is what the
//! store keeps, so a restart resumes after the last message the application took, not after
//! messages that were still waiting in the stream.

use chat_protocol::{RoomId, Seq};

use crate::client::shared::{lock, Inner};
use crate::receive::ChatEvent;
use crate::store::Store;

/// Records the positions of the messages among `events` (just taken by the application):
/// one store change for all of them, not waited for. `inner` is gone once the client was dropped; the store
/// still takes the positions.
pub(crate) fn record_taken(inner: Option<&Inner>, store: &Store, events: &[ChatEvent]) {
    let mut newest: Vec<(RoomId, Seq)> = Vec::new();
    for event in events {
        if let ChatEvent::Message(message) = event {
            match newest.iter_mut().find(|(room, _)| *room == message.room) {
                Some((_, seq)) => *seq = (*seq).max(message.seq),
                None => newest.push((message.room.clone(), message.seq)),
            }
        }
    }
    if newest.is_empty() {
        return;
    }
    if let Some(inner) = inner {
        let mut rooms = lock(&inner.rooms);
        for (room, seq) in &newest {
            let view = rooms.entry(room.clone()).or_default();
            view.taken_seq = view.taken_seq.max(*seq);
        }
    }
    store.advance_positions(newest).detach("the room positions");
}
