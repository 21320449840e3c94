//! Server configuration: where data lives, the token secret, TLS, and every limit.
//!
//! Defaults are the ones docs/protocol.md gives; the binary exposes each as a flag.

use std::path::PathBuf;
use std::time::Duration;

use chat_protocol::limits;

/// Everything a server needs to run.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The SQLite database file (created if missing); unused when `postgres_url` is set.
    pub db_path: PathBuf,
    /// Store everything in this PostgreSQL database (a `postgres://` URL) instead of SQLite:
    /// several servers can share it.
    pub postgres_url: Option<String>,
    /// Reach the other servers of a deployment through this Redis (a `redis://` URL), with
    /// socketioxide's Redis adapter; `None`: this server is alone.
    pub redis_url: Option<String>,
    /// How often a server on PostgreSQL compares the newest `seq` of its rooms with what it
    /// sent its sockets, to send what a lost commit notice did not announce.
    pub head_poll: Duration,
    /// The HS256 secret tokens are signed with.
    pub jwt_secret: String,
    /// Clock difference allowed when checking a token's `exp` (and `nbf`, `iat`), on
    /// connect and at every request.
    pub token_leeway: Duration,
    /// Whether SQLite syncs every commit to disk (`synchronous=FULL`); `false` uses `NORMAL`,
    /// which survives a process crash but may lose the last commits on power loss.
    pub durable: bool,
    /// Size and count limits.
    pub limits: Limits,
    /// Per-user request rates.
    pub rates: RateLimits,
    /// How long a user stays online after its last socket closes.
    pub presence_grace: Duration,
    /// How long a typing indicator lives without a refresh.
    pub typing_expiry: Duration,
    /// Engine.IO ping interval.
    pub ping_interval: Duration,
    /// Engine.IO ping timeout.
    pub ping_timeout: Duration,
    /// How long a client may take to send its HTTP request head, and, once upgraded, the
    /// Socket.IO CONNECT; a connection that has not done so by then is closed.
    pub handshake_timeout: Duration,
    /// A connection on which the client sends nothing for this long is closed, whatever it
    /// is doing. Longer than `ping_interval`: a live client answers every ping.
    pub idle_timeout: Duration,
    /// The origins browser pages may connect from (`Origin` header values such as
    /// `https://chat.example.com`); empty, the default: any origin. A request without an
    /// `Origin` (not from a browser page: the SDK, a bot) is always let through.
    pub allowed_origins: Vec<String>,
    /// Serve HTTPS and WSS with this certificate and key; `None` (the default) serves plain
    /// HTTP and WS.
    pub tls: Option<TlsConfig>,
    /// Whether the server answers the `room:resume` extension (and announces it in every
    /// `room:join` answer). On by default; off, the server speaks only the requests every
    /// server has, as a server without the extension does.
    pub resume_extension: bool,
    /// Whether the server answers the `message:send_batch` extension (and announces it in
    /// every `room:join` answer). On by default; off, clients send one message per request.
    pub send_batch_extension: bool,
    /// The most the database may grow to, in bytes; past it every write is refused with
    /// `internal`, as on a full disk (nothing is lost: clients retry). `None`: no cap.
    pub max_db_bytes: Option<u64>,
}

impl ServerConfig {
    /// A configuration with the protocol's defaults.
    pub fn new(db_path: impl Into<PathBuf>, jwt_secret: impl Into<String>) -> Self {
        Self {
            db_path: db_path.into(),
            postgres_url: None,
            redis_url: None,
            head_poll: Duration::from_millis(250),
            jwt_secret: jwt_secret.into(),
            token_leeway: Duration::from_secs(crate::auth::LEEWAY_SECS),
            durable: true,
            limits: Limits::default(),
            rates: RateLimits::default(),
            presence_grace: Duration::from_secs(limits::PRESENCE_GRACE_SECS),
            typing_expiry: Duration::from_secs(limits::TYPING_EXPIRY_SECS),
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            allowed_origins: Vec::new(),
            tls: None,
            resume_extension: true,
            send_batch_extension: true,
            max_db_bytes: None,
        }
    }
}

/// TLS termination: the certificate chain and private key the server presents, as PEM files
/// read when the server starts.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, the server's own certificate first.
    pub cert_chain: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key: PathBuf,
    /// How long a connection may take to finish its TLS handshake before it is dropped, so
    /// a client that connects and says nothing does not hold a task forever.
    pub handshake_timeout: Duration,
}

impl TlsConfig {
    /// The certificate chain and key in these files, with a 10 s handshake timeout.
    pub fn new(cert_chain: impl Into<PathBuf>, private_key: impl Into<PathBuf>) -> Self {
        Self {
            cert_chain: cert_chain.into(),
            private_key: private_key.into(),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Size and count limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most Unicode scalar values in a message body (at most the protocol's 4,000).
    pub max_body_chars: usize,
    /// Largest Socket.IO packet, in bytes (WebSocket message, frame and polling payload).
    pub max_packet_bytes: usize,
    /// Most packets queued for one socket before sends to it fail.
    pub socket_buffer_packets: usize,
    /// Most simultaneous connections of one user.
    pub max_connections_per_user: usize,
    /// Most requests of one socket waiting to be handled (they are handled one at a time, in
    /// order); a client that sends more without waiting for answers is disconnected.
    pub max_queued_requests: usize,
    /// Most simultaneous TCP connections from one IP address, authenticated or not; past
    /// it a new connection is closed at once.
    pub max_connections_per_address: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_chars: limits::MAX_BODY_CHARS,
            max_packet_bytes: limits::MAX_PACKET_BYTES,
            socket_buffer_packets: 4096,
            max_connections_per_user: 16,
            max_connections_per_address: 256,
            max_queued_requests: 1024,
        }
    }
}

/// Per-user request rates (GCRA); each allows a burst of twice its rate.
#[derive(Clone, Debug)]
pub struct RateLimits {
    /// `message:send` per second.
    pub send_per_sec: u32,
    /// `typing:*` per second.
    pub typing_per_sec: u32,
    /// All other requests together, per second.
    pub other_per_sec: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            send_per_sec: 20,
            typing_per_sec: 5,
            other_per_sec: 50,
        }
    }
}
