//! The state shared by the client handle and its background tasks.
//!
//! One `Inner` per client. The supervisor, the session (receive path), the outbox flusher
//! and the public [`Client`](crate::Client) methods all reach the store, the current
//! connection and the event stream through it.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use chat_protocol::{RoomId, UserId};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::client::config::Config;
use crate::client::typing::TypingState;
use crate::error::RequestError;
use crate::outbox::watchers::Watchers;
use crate::receive::rooms::RoomView;
use crate::receive::ChatEvent;
use crate::store::Store;
use crate::transport::Connection;
use crate::ConnectionState;

pub(crate) struct Inner {
    /// This very value, for what runs later elsewhere (the store's announcements) without
    /// keeping the client alive.
    this: Weak<Inner>,
    pub config: Config,
    /// The runtime the client was started on: its tasks are spawned there, so the client
    /// can be used from threads outside it.
    pub runtime: tokio::runtime::Handle,
    pub store: Arc<Store>,
    /// The live connection, if any.
    pub conn: watch::Sender<Option<Arc<dyn Connection>>>,
    pub state: watch::Sender<ConnectionState>,
    events: Mutex<Option<mpsc::UnboundedSender<ChatEvent>>>,
    /// Set while a flusher runs; taken only by compare-exchange.
    pub flushing: AtomicBool,
    /// Woken when a flusher stops, for [`Client::close`](crate::Client::close).
    pub flusher_idle: tokio::sync::Notify,
    /// Set by every flush trigger, so one that lands during a flush is not lost.
    pub flush_again: AtomicBool,
    /// Set when the server refused the token mid-session: refresh before reconnecting.
    pub refresh_token: AtomicBool,
    pub rooms: Mutex<HashMap<RoomId, RoomView>>,
    /// Serialises the receive path: hand-off, sync and joins never interleave.
    pub recv_lock: tokio::sync::Mutex<()>,
    /// Serialises the receipts' recomputation of sent messages' states.
    pub status_lock: tokio::sync::Mutex<()>,
    pub shutdown: CancellationToken,
    pub token: Mutex<String>,
    pub me: Option<UserId>,
    pub typing: Mutex<HashMap<RoomId, TypingState>>,
    /// Watches of single messages, for their send handles.
    pub watchers: Watchers,
    /// Whether the server answers `room:resume`, as its join answers said.
    pub resume: ExtensionSupport,
    /// Whether the server answers `message:send_batch`, as its join and resume answers said.
    pub send_batch: ExtensionSupport,
    /// Rooms whose `receipt:delivered` is due, handed to the receive loop, which batches
    /// receipts; woken by `receipts_wake`.
    pub receipts_due: Mutex<BTreeSet<RoomId>>,
    pub receipts_wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("config", &self.config)
            .field("state", &*self.state.borrow())
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

/// What the client knows of one of the server's extensions: unknown until an answer that
/// lists them says, and learnt again from every such answer (a server may be replaced by
/// one of another kind between two connections).
#[derive(Debug, Default)]
pub(crate) struct ExtensionSupport(std::sync::atomic::AtomicU8);

impl ExtensionSupport {
    const UNKNOWN: u8 = 0;
    const YES: u8 = 1;
    const NO: u8 = 2;

    /// `None` until an answer said.
    pub fn get(&self) -> Option<bool> {
        match self.0.load(std::sync::atomic::Ordering::Acquire) {
            Self::UNKNOWN => None,
            value => Some(value == Self::YES),
        }
    }

    /// Back to unknown: the next connection asks again.
    pub fn forget(&self) {
        self.0
            .store(Self::UNKNOWN, std::sync::atomic::Ordering::Release);
    }

    pub fn set(&self, supported: bool) {
        let value = if supported { Self::YES } else { Self::NO };
        self.0.store(value, std::sync::atomic::Ordering::Release);
    }
}

/// Locks a std mutex, ignoring poisoning: the data behind these locks stays consistent
/// even if a holder panicked (each update is a single assignment).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Inner {
    pub(crate) fn new(
        config: Config,
        runtime: tokio::runtime::Handle,
        store: Store,
        token: String,
        me: Option<UserId>,
        events: mpsc::UnboundedSender<ChatEvent>,
        this: Weak<Inner>,
    ) -> Self {
        Self {
            this,
            config,
            runtime,
            store: Arc::new(store),
            conn: watch::channel(None).0,
            state: watch::channel(ConnectionState::Connecting).0,
            events: Mutex::new(Some(events)),
            flushing: AtomicBool::new(false),
            flusher_idle: tokio::sync::Notify::new(),
            flush_again: AtomicBool::new(false),
            refresh_token: AtomicBool::new(false),
            rooms: Mutex::new(HashMap::new()),
            recv_lock: tokio::sync::Mutex::new(()),
            status_lock: tokio::sync::Mutex::new(()),
            shutdown: CancellationToken::new(),
            token: Mutex::new(token),
            me,
            typing: Mutex::new(HashMap::new()),
            watchers: Watchers::default(),
            resume: ExtensionSupport::default(),
            send_batch: ExtensionSupport::default(),
            receipts_due: Mutex::new(BTreeSet::new()),
            receipts_wake: tokio::sync::Notify::new(),
        }
    }

    /// A handle to this value that does not keep it alive.
    pub(crate) fn weak(&self) -> Weak<Inner> {
        self.this.clone()
    }

    /// Asks the receive loop to send the `receipt:delivered` of these rooms with its next
    /// batch.
    pub(crate) fn queue_receipts(&self, rooms: BTreeSet<RoomId>) {
        if rooms.is_empty() {
            return;
        }
        lock(&self.receipts_due).extend(rooms);
        self.receipts_wake.notify_one();
    }

    /// Hands an event to the application (dropped silently if it dropped its stream).
    pub(crate) fn emit(&self, event: ChatEvent) {
        if let Some(tx) = lock(&self.events).as_ref() {
            let _ = tx.send(event);
        }
    }

    /// Ends the event stream.
    pub(crate) fn close_events(&self) {
        lock(&self.events).take();
    }

    /// Publishes a new connection state (and its event) if it changed.
    pub(crate) fn set_state(&self, state: ConnectionState) {
        let changed = self.state.send_if_modified(|current| {
            if *current == state {
                false
            } else {
                *current = state.clone();
                true
            }
        });
        if changed {
            self.emit(ChatEvent::Connection(state));
        }
    }

    /// The live connection, if any.
    pub(crate) fn connection(&self) -> Option<Arc<dyn Connection>> {
        self.conn.borrow().clone().filter(|c| !c.is_closed())
    }

    /// Sends a request on the live connection and decodes its ack.
    pub(crate) async fn request<Req: Serialize, Res: DeserializeOwned>(
        &self,
        event: &str,
        request: &Req,
    ) -> Result<Res, RequestError> {
        let conn = self.connection().ok_or(RequestError::NotConnected)?;
        request_on(&*conn, event, request).await
    }
}

/// Sends a request on `conn` and decodes its ack.
pub(crate) async fn request_on<Req: Serialize, Res: DeserializeOwned>(
    conn: &dyn Connection,
    event: &str,
    request: &Req,
) -> Result<Res, RequestError> {
    let payload =
        serde_json::to_value(request).map_err(|e| RequestError::Malformed(e.to_string()))?;
    let ack = conn.request(event, payload).await?;
    Ok(chat_protocol::decode_ack(ack)?)
}
