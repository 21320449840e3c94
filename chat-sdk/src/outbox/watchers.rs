//! Watches of single messages, for [`SendHandle::watch`](crate::SendHandle::watch).
//!
//! The map has an entry per watched message, dropped at the message's next change (or the
//! next subscription to any message) once its last receiver is gone, and when the message
//! reaches a state it never leaves (read, or removed from the outbox). An unwatched message
//! costs one map lookup per change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chat_protocol::ClientId;
use tokio::sync::watch;

use crate::client::shared::{lock, Inner};
use crate::error::StoreError;
use crate::store::Call;
use crate::{MessageState, OutgoingMessage};

/// The state of one message; `None` once it left the outbox.
pub(crate) type StateWatch = watch::Receiver<Option<MessageState>>;

/// Every watched message of one client.
#[derive(Debug, Default)]
pub(crate) struct Watchers {
    by_id: Mutex<HashMap<ClientId, watch::Sender<Option<MessageState>>>>,
}

impl Watchers {
    /// A watch of `id`, starting from its state in the store. The state is read by the
    /// store's thread and the watch registered right after, before any later change is
    /// announced (announcements run there too, in commit order), so no change made after
    /// the read is missed. Nothing is locked while the store works.
    pub(crate) fn subscribe(inner: &Inner, id: ClientId) -> Subscription<'_> {
        let registered: Arc<Mutex<Option<StateWatch>>> = Arc::default();
        let (slot, owner) = (registered.clone(), inner.weak());
        let call = inner.store.get(id).then(move |message| {
            let state = message.as_ref().map(|m| m.state.clone());
            if let Some(inner) = owner.upgrade() {
                *lock(&slot) = Some(inner.watchers.register(id, state));
            }
        });
        Subscription { call, registered }
    }

    /// Registers a watch of `id`, now in `state` (or joins the one already there).
    fn register(&self, id: ClientId, state: Option<MessageState>) -> StateWatch {
        let mut by_id = lock(&self.by_id);
        if let Some(sender) = by_id.get(&id) {
            return sender.subscribe();
        }
        // Forget the messages nobody watches any more (their handles were dropped).
        by_id.retain(|_, sender| sender.receiver_count() > 0);
        let (sender, receiver) = watch::channel(state.clone());
        if !is_final(state.as_ref()) {
            by_id.insert(id, sender);
        }
        receiver
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

/// A watch being set up by the store's thread.
pub(crate) struct Subscription<'a> {
    call: Call<'a, Option<OutgoingMessage>>,
    registered: Arc<Mutex<Option<StateWatch>>>,
}

impl Subscription<'_> {
    /// Blocks this thread until the watch is set up.
    pub(crate) fn wait(self) -> Result<StateWatch, StoreError> {
        let message = self.call.wait()?;
        Ok(Self::watch(&self.registered, message))
    }

    /// Waits until the watch is set up.
    pub(crate) async fn done(self) -> Result<StateWatch, StoreError> {
        let message = self.call.await?;
        Ok(Self::watch(&self.registered, message))
    }

    /// The registered watch; a watch of its own for a client already gone.
    fn watch(
        registered: &Mutex<Option<StateWatch>>,
        message: Option<OutgoingMessage>,
    ) -> StateWatch {
        lock(registered)
            .take()
            .unwrap_or_else(|| watch::channel(message.map(|m| m.state)).1)
    }
}

/// A state a message never leaves.
fn is_final(state: Option<&MessageState>) -> bool {
    matches!(state, None | Some(MessageState::Read { .. }))
}
