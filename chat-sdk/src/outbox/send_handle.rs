//! [`SendHandle`]: one sent message, as the application follows it.

use std::sync::Arc;
use std::time::Duration;

use chat_protocol::{ClientId, RoomId};

use super::handle::Outbox;
use super::watchers::Watchers;
use crate::client::shared::Inner;
use crate::error::{OutboxError, StoreError, WaitError};
use crate::{MessageState, Milestone};

/// A message this client queued: what [`Client::send`](crate::Client::send) returns.
///
/// It is a cheap, cloneable key to the message in the outbox: its state is always read
/// from there, so the handle never disagrees with the store or the event stream. Dropping
/// it changes nothing; the message goes on.
///
/// ```no_run
/// # async fn demo(client: chat_sdk::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use chat_sdk::{Milestone, WaitError};
///
/// let message = client.send(&"general".parse()?, "hello").await?;
/// match message.wait_for(Milestone::Delivered, Duration::from_secs(30)).await {
///     Ok(state) => println!("{}: {state}", message.client_id()),
///     Err(WaitError::Failed(reason)) => {
///         eprintln!("refused ({reason}); retrying");
///         message.retry().await?;
///     }
///     Err(other) => eprintln!("{other}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SendHandle {
    client_id: ClientId,
    room: RoomId,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SendHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendHandle")
            .field("client_id", &self.client_id)
            .field("room", &self.room)
            .finish_non_exhaustive()
    }
}

impl SendHandle {
    pub(crate) fn new(inner: Arc<Inner>, client_id: ClientId, room: RoomId) -> Self {
        Self {
            client_id,
            room,
            inner,
        }
    }

    /// The message's idempotency key, also its id in the outbox.
    pub fn client_id(&self) -> ClientId {
        self.client_id
    }

    /// Its room.
    pub fn room(&self) -> &RoomId {
        &self.room
    }

    /// Its state now; `None` once it left the outbox (discarded or pruned).
    pub fn state(&self) -> Result<Option<MessageState>, StoreError> {
        Ok(self
            .inner
            .store
            .get(self.client_id)
            .wait()?
            .map(|m| m.state))
    }

    /// A watch of its state: the current one (read it with `borrow`), then every change
    /// (`Queued → Sending → Sent → Delivered → Read`, a return to `Queued` after a lost
    /// link, `Failed`), and `None` if it leaves the outbox. A watch may skip states that
    /// came and went while nobody looked; the event stream has every one.
    ///
    /// ```no_run
    /// # async fn demo(message: chat_sdk::SendHandle) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut states = message.watch()?;
    /// loop {
    ///     println!("now {:?}", *states.borrow_and_update());
    ///     if states.changed().await.is_err() {
    ///         break; // read, or gone: it will not change again
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn watch(&self) -> Result<tokio::sync::watch::Receiver<Option<MessageState>>, StoreError> {
        Watchers::subscribe(&self.inner, self.client_id).wait()
    }

    /// Waits until the message reaches `milestone` (or a later state), at most `timeout`;
    /// returns its state then. Fails at once when the message fails or leaves the outbox.
    pub async fn wait_for(
        &self,
        milestone: Milestone,
        timeout: Duration,
    ) -> Result<MessageState, WaitError> {
        let mut states = Watchers::subscribe(&self.inner, self.client_id)
            .done()
            .await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let current = states.borrow_and_update().clone();
            let Some(state) = current else {
                return Err(WaitError::NotFound(self.client_id));
            };
            if milestone.reached_by(&state) {
                return Ok(state);
            }
            if let MessageState::Failed { reason } = state {
                return Err(WaitError::Failed(reason));
            }
            match tokio::time::timeout_at(deadline, states.changed()).await {
                Ok(Ok(())) => {}
                // The watch ends only after a final state (read, removed), which a pass
                // above has already judged; this is not reached with one.
                Ok(Err(_)) | Err(_) => return Err(WaitError::Timeout { last: state }),
            }
        }
    }

    /// Puts the message back in the queue if it failed (same `client_id`, so it is still
    /// stored at most once); see [`Outbox::retry`].
    pub async fn retry(&self) -> Result<(), OutboxError> {
        self.outbox().retry(self.client_id).await
    }

    /// Removes the message unless it is on the wire right now; see [`Outbox::discard`].
    pub async fn discard(&self) -> Result<(), OutboxError> {
        self.outbox().discard(self.client_id).await
    }

    fn outbox(&self) -> Outbox {
        Outbox::of_client(self.inner.clone())
    }
}
