//! Configuring and starting a client: [`ClientBuilder`].
//!
//! The builder opens the store, reads back the rooms and the messages still waiting for
//! receipts, and launches the supervisor; [`ClientBuilder::connect`] also waits for the
//! first connection.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chat_protocol::UserId;
use tokio::sync::{mpsc, oneshot};

use super::config::{self, Config, RetryPolicy};
use super::shared::{lock, Inner};
use super::{Client, Handle};
use crate::connection::supervisor;
use crate::error::ConnectError;
use crate::outbox::{flusher, receipts};
use crate::receive::Events;
use crate::store::Store;
use crate::transport::{TlsConfig, Transport, WebSocketTransport};

/// Where the client keeps its outbox and room positions.
#[derive(Clone, Debug)]
enum StoreChoice {
    Unset,
    File(PathBuf),
    Memory,
}

/// Configures and starts a [`Client`].
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use chat_sdk::Client;
///
/// let (client, mut events) = Client::builder("http://127.0.0.1:3000", "<jwt>")
///     .store_path("alice.outbox.db")
///     .ack_timeout(Duration::from_secs(3))
///     .connect()
///     .await?;
/// # drop((client, events)); Ok(()) }
/// ```
pub struct ClientBuilder {
    urls: Vec<String>,
    token: String,
    device: Option<String>,
    token_refresh: Option<config::TokenRefresh>,
    store: StoreChoice,
    retry: RetryPolicy,
    ack_timeout: Duration,
    connect_timeout: Duration,
    health_interval: Duration,
    health_timeout: Option<Duration>,
    outbox_capacity: usize,
    receipt_tracking: usize,
    outbox_max_bytes: Option<u64>,
    ttl: Option<Duration>,
    transport: Arc<dyn Transport>,
    extra_roots: Vec<PathBuf>,
    inbound_capacity: usize,
    send_only: bool,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("urls", &self.urls)
            .field("store", &self.store)
            .field("retry", &self.retry)
            .field("ack_timeout", &self.ack_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// The claims of a JWT, read without checking the signature (the server checks it).
fn token_claims(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The `sub` claim: the SDK needs to know which member of a room is itself.
fn token_subject(token: &str) -> Option<UserId> {
    UserId::new(token_claims(token)?.get("sub")?.as_str()?).ok()
}

/// The `exp` claim, in seconds since the epoch, when the token has a readable one.
pub(crate) fn token_expiry(token: &str) -> Option<f64> {
    token_claims(token)?.get("exp")?.as_f64()
}

impl ClientBuilder {
    pub(super) fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            urls: vec![url.into()],
            token: token.into(),
            device: None,
            token_refresh: None,
            store: StoreChoice::Unset,
            retry: RetryPolicy::default(),
            ack_timeout: config::DEFAULT_ACK_TIMEOUT,
            connect_timeout: config::DEFAULT_CONNECT_TIMEOUT,
            health_interval: config::DEFAULT_HEALTH_INTERVAL,
            health_timeout: None,
            outbox_capacity: config::DEFAULT_OUTBOX_CAPACITY,
            receipt_tracking: config::DEFAULT_RECEIPT_TRACKING,
            outbox_max_bytes: None,
            ttl: None,
            transport: Arc::new(WebSocketTransport),
            extra_roots: Vec::new(),
            send_only: false,
            inbound_capacity: config::DEFAULT_INBOUND_CAPACITY,
        }
    }

    /// Adds a URL to fail over to: attempts rotate through the URLs in order.
    pub fn fallback_url(mut self, url: impl Into<String>) -> Self {
        self.urls.push(url.into());
        self
    }

    /// Names this device in the handshake's `auth` object.
    pub fn device(mut self, device: impl Into<String>) -> Self {
        self.device = Some(device.into());
        self
    }

    /// A hook called when the server refuses the token; it returns a fresh one.
    ///
    /// ```
    /// use chat_sdk::Client;
    ///
    /// let builder = Client::builder("http://127.0.0.1:3000", "old")
    ///     .in_memory()
    ///     .token_refresh(|| async { Ok::<_, String>("fresh".to_owned()) });
    /// # drop(builder);
    /// ```
    pub fn token_refresh<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<String, String>> + Send + 'static,
    {
        self.token_refresh = Some(Arc::new(move || -> config::TokenFuture {
            Box::pin(hook())
        }));
        self
    }

    /// Keeps the outbox and room positions in the SQLite file at `path` (created if
    /// missing). Use one file per user and device.
    pub fn store_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.store = StoreChoice::File(path.into());
        self
    }

    /// Keeps the outbox in memory only: queued messages die with the process.
    pub fn in_memory(mut self) -> Self {
        self.store = StoreChoice::Memory;
        self
    }

    /// Backoff between reconnect attempts and after `internal` errors.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How long a request waits for its ack before the connection is torn down
    /// (default 5 s).
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// How long one connection attempt (TCP, WebSocket, Socket.IO handshake) may take
    /// (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// After this long without hearing from the server, a probe request checks the link
    /// (default 5 s). A blackholed link is noticed after this plus the health timeout.
    pub fn health_interval(mut self, interval: Duration) -> Self {
        self.health_interval = interval;
        self
    }

    /// How long the link probe waits, hearing nothing at all from the server, before the
    /// connection is torn down (default: the ack timeout). The reference server answers the
    /// probe without touching its store, and a probe queued behind slow requests is forgiven
    /// while other frames keep arriving, so this can be much shorter than the ack timeout
    /// (which also covers the server's disk commit): a silent link is then noticed sooner
    /// without giving up on slow sends.
    pub fn health_timeout(mut self, timeout: Duration) -> Self {
        self.health_timeout = Some(timeout);
        self
    }

    /// Most unsent (queued, sending or failed) messages the outbox holds (default 10,000);
    /// past it `send` fails with [`SendError::OutboxFull`](crate::SendError::OutboxFull).
    pub fn outbox_capacity(mut self, capacity: usize) -> Self {
        self.outbox_capacity = capacity;
        self
    }

    /// The most the outbox file may grow to, in bytes (default: as far as the disk allows).
    /// Past it — as on a full disk — `send` fails with
    /// [`StoreError::Full`](crate::StoreError::Full) and queues nothing; what was queued
    /// before stays queued and is sent.
    pub fn outbox_max_bytes(mut self, bytes: u64) -> Self {
        self.outbox_max_bytes = Some(bytes);
        self
    }

    /// How many of its acknowledged messages per room the client follows in memory until
    /// receipts make them delivered and read (default 10,000). Past it — a room whose
    /// other member stays away while many are sent — the oldest are followed through the
    /// outbox file instead: their statuses still move, at the cost of a query per receipt in
    /// that room, and memory stays bounded.
    pub fn receipt_tracking(mut self, per_room: usize) -> Self {
        self.receipt_tracking = per_room.max(1);
        self
    }

    /// A message still unsent `ttl` after being queued becomes `Failed { Expired }` instead
    /// of being sent (default: no limit). A message already handed to the server once is
    /// never expired (it may be stored); it is resent until acknowledged.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Replaces the transport (default [`WebSocketTransport`]; `transport::SocketIoTransport`, with the `socketio` feature, is the rust_socketio one).
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = transport;
        self
    }

    /// Makes a client that only sends (a one-shot command, a bot that only posts): on each
    /// connection it re-joins and catches up only the rooms [`Client::join`] was called for
    /// in this run, not every room its store remembers. Sending needs no re-join (membership
    /// is durable on the server), so a user in a thousand rooms connects with a handful of
    /// requests. Receipts (delivered/read) of its messages arrive only for the rooms it
    /// joined in this run.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let (client, _events) = chat_sdk::Client::builder("http://127.0.0.1:3000", "<jwt>")
    ///     .store_path("bot.db")
    ///     .send_only()
    ///     .connect()
    ///     .await?;
    /// client.send(&"alerts".parse()?, "disk 91% full on db-3").await?;
    /// # Ok(()) }
    /// ```
    pub fn send_only(mut self) -> Self {
        self.send_only = true;
        self
    }

    /// Also trusts the root certificates in the PEM file at `path` for `https://` and
    /// `wss://` servers, beside Mozilla's roots: a private CA, or a self-signed server. Call
    /// it once per file. An unreadable file fails `connect()`/`start()` with
    /// [`ConnectError::Config`].
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let (client, _events) = chat_sdk::Client::builder("https://chat.internal:7070", "<jwt>")
    ///     .add_root_certificate("/etc/chat/ca.pem")
    ///     .store_path("alice.db")
    ///     .connect()
    ///     .await?;
    /// # drop(client); Ok(()) }
    /// ```
    pub fn add_root_certificate(mut self, path: impl Into<PathBuf>) -> Self {
        self.extra_roots.push(path.into());
        self
    }

    fn build(self) -> Result<(Arc<Inner>, Events), ConnectError> {
        if self.urls.is_empty() || self.urls.iter().any(|u| u.trim().is_empty()) {
            return Err(ConnectError::Config("a server URL is required".into()));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            ConnectError::Config("the client must be started inside a tokio runtime".into())
        })?;
        let store = match &self.store {
            StoreChoice::Unset => {
                return Err(ConnectError::Config(
                    "choose where the outbox lives: store_path(..) or in_memory()".into(),
                ))
            }
            StoreChoice::File(path) => Store::open_capped(path, self.outbox_max_bytes)?,
            StoreChoice::Memory => Store::in_memory()?,
        };
        let tls = TlsConfig::with_extra_roots(self.extra_roots).map_err(ConnectError::Config)?;
        let me = token_subject(&self.token);
        let config = Config {
            urls: self.urls,
            device: self.device,
            token_refresh: self.token_refresh,
            retry: self.retry,
            ack_timeout: self.ack_timeout,
            connect_timeout: self.connect_timeout,
            health_interval: self.health_interval,
            health_timeout: self.health_timeout.unwrap_or(self.ack_timeout),
            outbox_capacity: self.outbox_capacity,
            receipt_tracking: self.receipt_tracking,
            ttl: self.ttl,
            transport: self.transport,
            tls,
            send_only: self.send_only,
            inbound_capacity: self.inbound_capacity,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new_cyclic(|this| {
            Inner::new(config, runtime, store, self.token, me, tx, this.clone())
        });
        let stored_rooms = inner.store.rooms().wait()?;
        {
            let mut rooms = lock(&inner.rooms);
            for stored in stored_rooms {
                let view = rooms.entry(stored.room).or_default();
                view.joined = stored.joined;
                view.received_seq = stored.resume_after;
                view.taken_seq = stored.resume_after.unwrap_or(0);
            }
        }
        for message in inner.store.awaiting_receipts().wait()? {
            receipts::track(&inner, &message.room, message.client_id, &message.state);
        }
        let events = Events {
            rx,
            inner: Arc::downgrade(&inner),
            store: inner.store.clone(),
        };
        Ok((inner, events))
    }

    fn launch(inner: Arc<Inner>, first: Option<supervisor::FirstOutcome>) -> Client {
        let supervisor = inner.runtime.spawn(supervisor::run(inner.clone(), first));
        inner
            .runtime
            .spawn(supervisor::expiry_ticker(inner.clone()));
        // Messages left from a previous run may expire or wait for the connection.
        flusher::trigger(&inner);
        Client {
            handle: Arc::new(Handle {
                inner,
                supervisor: std::sync::Mutex::new(Some(supervisor)),
                closing: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Starts the client and returns at once; it connects (and reconnects) in the
    /// background. Use this to work offline: `send` queues, and the outbox flushes when the
    /// connection comes up. Fails only on a bad configuration or an unusable store.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let (client, _events) = chat_sdk::Client::builder("http://127.0.0.1:3000", "<jwt>")
    ///     .store_path("outbox.db")
    ///     .start()?;
    /// client.send(&"general".parse()?, "queued even if the server is down").await?;
    /// # Ok(()) }
    /// ```
    pub fn start(self) -> Result<(Client, Events), ConnectError> {
        let (inner, events) = self.build()?;
        Ok((Self::launch(inner, None), events))
    }

    /// Starts the client and waits for the first connection. Fails with
    /// [`ConnectError::Unauthorized`] when the server refuses the token (and no refresh
    /// hook fixed it), [`ConnectError::Unreachable`] when no URL answered within the connect
    /// timeout.
    ///
    /// ```no_run
    /// # async fn demo() {
    /// use chat_sdk::{Client, ConnectError};
    ///
    /// match Client::builder("http://127.0.0.1:3000", "expired").in_memory().connect().await {
    ///     Ok((client, _events)) => drop(client),
    ///     Err(ConnectError::Unauthorized(why)) => eprintln!("log in again: {why}"),
    ///     Err(other) => eprintln!("{other}"),
    /// }
    /// # }
    /// ```
    pub async fn connect(self) -> Result<(Client, Events), ConnectError> {
        let (inner, events) = self.build()?;
        let (tx, rx) = oneshot::channel();
        let client = Self::launch(inner, Some(tx));
        match rx.await {
            Ok(Ok(())) => Ok((client, events)),
            Ok(Err(err)) => {
                client.close().await;
                Err(err)
            }
            Err(_) => {
                client.close().await;
                Err(ConnectError::Config(
                    "the client stopped before connecting".into(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_subject_reads_sub_without_verifying() {
        let claims =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"alice","exp":1}"#);
        let token = format!("eyJhbGciOiJIUzI1NiJ9.{claims}.sig");
        assert_eq!(token_subject(&token), UserId::new("alice").ok());
        assert_eq!(token_subject("garbage"), None);
        assert_eq!(token_expiry(&token), Some(1.0));
        assert_eq!(token_expiry("garbage"), None);
    }
}
