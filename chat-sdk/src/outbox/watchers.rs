//! Watches of single messages, for [`SendHandle::watch`](crate::SendHandle::watch).
//!
//! The map has an entry per watched message, dropped at the message's next change (or the
//! next subscription to any message) once its last receiver is gone, and when the message
//! reaches a state it never leaves (read, or removed from the outbox). An unwatched message
//! costs one map lookup per change.

use std::collections::HashMap;
use std::sync::Mutex;

use chat_protocol::ClientId;
use tokio::sync::watch;

use crate::client::shared::lock;
use crate::error::StoreError;
use crate::MessageState;

/// The state of one message; `None` once it left the outbox.
pub(crate) type StateWatch = watch::Receiver<Option<MessageState>>;

/// Every watched message of one client.
#[derive(Debug, Default)]
pub(crate) struct Watchers {
    by_id: Mutex<HashMap<ClientId, watch::Sender<Option<MessageState>>>>,
}

impl Watchers {
    /// A watch of `id`, starting from `current()` (read under the map's lock, so a change
    /// made after that read reaches the watch).
    pub(crate) fn subscribe(
        &self,
        id: ClientId,
        current: impl FnOnce() -> Result<Option<MessageState>, StoreError>,
    ) -> Result<StateWatch, StoreError> {
        let mut by_id = lock(&self.by_id);
        if let Some(sender) = by_id.get(&id) {
            return Ok(sender.subscribe());
        }
        // Forget the messages nobody watches any more (their handles were dropped).
        by_id.retain(|_, sender| sender.receiver_count() > 0);
        let state = current()?;
        let (sender, receiver) = watch::channel(state.clone());
        if !is_final(state.as_ref()) {
            by_id.insert(id, sender);
        }
        Ok(receiver)
    }

    /// Publishes that `id` is now in `state` (`None`: removed).
    pub(crate) fn notify(&self, id: ClientId, state: Option<&MessageState>) {
        let mut by_id = lock(&self.by_id);
        let Some(sender) = by_id.get(&id) else {
            return;
        };
        sender.send_replace(state.cloned());
        if sender.receiver_count() == 0 || is_final(state) {
            by_id.remove(&id);
        }
    }
}

/// A state a message never leaves.
fn is_final(state: Option<&MessageState>) -> bool {
    matches!(state, None | Some(MessageState::Read { .. }))
}
