//! [`Outbox`]: the outbox as a whole, for listing and repairs, with or without a client.
//!
//! From a running client ([`Client::outbox`](crate::Client::outbox)) every repair goes
//! through that client: it is announced on its event stream and the flusher picks a retried
//! message up at once. Opened from a file ([`Outbox::open`]) it needs no network: a tool
//! can list and repair the outbox of a client that is not running. While a client runs on
//! the file, `open` gives a read-only view: listing works, and repairs are refused with
//! [`OutboxError::ReadOnly`], since a second writer could race the client's flusher.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chat_protocol::ClientId;

use super::send_handle::SendHandle;
use super::transitions::{self, Repair};
use crate::client::shared::Inner;
use crate::error::{OutboxError, OutboxOperation, StoreError};
use crate::outbox::flusher;
use crate::store::Store;
use crate::OutgoingMessage;

/// The persistent outbox: every message this client queued, in queue order, with its state.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use chat_sdk::{MessageState, Outbox};
///
/// let outbox = Outbox::open("alice.db")?; // no network
/// for m in outbox.list()? {
///     if let MessageState::Failed { reason } = &m.state {
///         eprintln!("retrying {} ({reason})", m.client_id);
///         outbox.retry(m.client_id).await?;
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Outbox {
    backing: Backing,
}

#[derive(Clone)]
enum Backing {
    /// The outbox of a running client in this process.
    Client(Arc<Inner>),
    /// A file opened on its own: owned (repairs allowed) or read-only beside its owner.
    File {
        store: Arc<Store>,
        path: PathBuf,
        holder: Option<u32>,
    },
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backing {
            Backing::Client(_) => f.debug_struct("Outbox").field("of", &"client").finish(),
            Backing::File { path, .. } => f
                .debug_struct("Outbox")
                .field("path", path)
                .field("read_only", &self.is_read_only())
                .finish(),
        }
    }
}

impl Outbox {
    pub(crate) fn of_client(inner: Arc<Inner>) -> Self {
        Self {
            backing: Backing::Client(inner),
        }
    }

    /// Opens the outbox file at `path` without connecting anywhere. If no client runs on
    /// it, this handle owns the file until dropped (a client started meanwhile gets
    /// [`StoreError::InUse`]) and may repair it. If one does, the handle is read-only: see
    /// [`Outbox::is_read_only`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let (store, holder) = match Store::open(path) {
            Ok(store) => (store, None),
            Err(StoreError::InUse { holder, .. }) => (Store::open_read_only(path)?, holder),
            Err(other) => return Err(other),
        };
        Ok(Self {
            backing: Backing::File {
                store: Arc::new(store),
                path: path.to_owned(),
                holder,
            },
        })
    }

    /// Opens the existing outbox file at `path` for listing only, whether or not a client
    /// runs on it: nothing is migrated or reset, nothing is locked (a client may start
    /// meanwhile), and repairs are refused with [`OutboxError::ReadOnly`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        Ok(Self {
            backing: Backing::File {
                store: Arc::new(Store::open_read_only(path)?),
                path: path.to_owned(),
                holder: None,
            },
        })
    }

    /// True when a running client owns the file: listing works, repairs are refused.
    pub fn is_read_only(&self) -> bool {
        self.store().is_read_only()
    }

    fn store(&self) -> &Arc<Store> {
        match &self.backing {
            Backing::Client(inner) => &inner.store,
            Backing::File { store, .. } => store,
        }
    }

    fn client(&self) -> Option<&Inner> {
        match &self.backing {
            Backing::Client(inner) => Some(inner),
            Backing::File { .. } => None,
        }
    }

    /// Every message, oldest first: unsent, failed, and acknowledged ones with their
    /// delivered/read progress (until pruned).
    pub fn list(&self) -> Result<Vec<OutgoingMessage>, StoreError> {
        self.store().list().wait()
    }

    /// How many messages wait to be sent: queued, sending or failed.
    pub fn depth(&self) -> Result<usize, StoreError> {
        self.store().unsent_count().wait()
    }

    /// One message.
    pub fn get(&self, id: ClientId) -> Result<Option<OutgoingMessage>, StoreError> {
        self.store().get(id).wait()
    }

    /// A handle to follow message `id`, when this is a running client's outbox and the
    /// message is in it.
    pub fn handle(&self, id: ClientId) -> Result<Option<SendHandle>, StoreError> {
        let Backing::Client(inner) = &self.backing else {
            return Ok(None);
        };
        Ok(inner
            .store
            .get(id)
            .wait()?
            .map(|message| SendHandle::new(inner.clone(), id, message.room)))
    }

    /// Puts a failed message back at the end of the queue (same `client_id`, so it is still
    /// stored at most once), in one commit. Returns once that is on disk; if the disk
    /// cannot confirm it, [`OutboxError::Store`] comes back although the message is queued.
    pub async fn retry(&self, id: ClientId) -> Result<(), OutboxError> {
        self.writable(OutboxOperation::Retry)?;
        let repair = transitions::requeue(self.store(), self.client(), id).await?;
        self.settle(id, repair, OutboxOperation::Retry)?;
        if let Backing::Client(inner) = &self.backing {
            flusher::trigger(inner);
        }
        self.sync().await
    }

    /// Removes a message that is not on the wire: queued (it is then never sent), failed,
    /// or acknowledged. A message being sent right now is refused with
    /// [`OutboxError::WrongState`]; the check and the removal are one statement, so the
    /// flusher cannot send it in between. Returns once that is on disk.
    pub async fn discard(&self, id: ClientId) -> Result<(), OutboxError> {
        self.writable(OutboxOperation::Discard)?;
        let repair = transitions::remove(self.store(), self.client(), id).await?;
        self.settle(id, repair, OutboxOperation::Discard)?;
        // A discard lost to a power cut would bring the message back, and it would be sent.
        self.sync().await
    }

    /// Forgets acknowledged messages (sent, delivered, read), which stay listed until
    /// pruned so their progress can be followed. Returns how many were removed.
    pub async fn prune_acknowledged(&self) -> Result<usize, OutboxError> {
        self.writable(OutboxOperation::Prune)?;
        Ok(transitions::prune(self.store(), self.client()).await?)
    }

    fn writable(&self, operation: OutboxOperation) -> Result<(), OutboxError> {
        match &self.backing {
            Backing::File {
                path,
                holder,
                store,
            } if store.is_read_only() => Err(OutboxError::ReadOnly {
                path: path.clone(),
                holder: *holder,
                operation,
            }),
            _ => Ok(()),
        }
    }

    fn settle(
        &self,
        id: ClientId,
        repair: Repair,
        operation: OutboxOperation,
    ) -> Result<(), OutboxError> {
        match repair {
            Repair::Done => Ok(()),
            Repair::NotFound => Err(OutboxError::NotFound(id)),
            Repair::WrongState(state) => Err(OutboxError::WrongState {
                id,
                state,
                operation,
            }),
        }
    }

    /// Waits for the disk (one fsync, on the store's own thread).
    async fn sync(&self) -> Result<(), OutboxError> {
        Ok(self.store().sync().await?)
    }
}
