//! The transport behind one small trait, so the Socket.IO client library can be replaced.
//!
//! A [`Transport`] makes [`Connection`]s; a connection carries requests with acks, volatile
//! emits, and delivers server events into a channel. A connection never reconnects by
//! itself: when it breaks it reports [`Connection::closed`] and is thrown away, and the
//! client's supervisor makes a fresh one. That keeps exactly one retry loop in the system.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::TransportError;
use chat_protocol::ErrorCode;

mod frame;
#[cfg(feature = "socketio")]
mod socketio;
mod tls;
mod websocket;

/// The server-input parsers of the WebSocket transport, public only so `fuzz/` can reach
/// them; not part of the SDK's API.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::frame::{heartbeat_from_open, parse_server_frame, ServerFrame, MAX_HEARTBEAT};

    /// The WebSocket settings the transport reads a server with (its frame and message
    /// bounds), for reading a raw byte stream as the transport would.
    pub fn websocket_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
        super::websocket::websocket_config()
    }
}

#[cfg(feature = "socketio")]
pub use socketio::SocketIoTransport;

/// The most one request's argument may take, in bytes: inside the server's 64 KiB packet
/// with room for the Socket.IO framing.
pub(crate) const MAX_REQUEST_BYTES: usize = 60 * 1024;

/// The largest WebSocket frame, and message, the WebSocket transport reads from a server:
/// 24 MiB. The protocol's largest message is a `room:resume` answer, with up to
/// [`MAX_RESUME_MESSAGES`](chat_protocol::limits::MAX_RESUME_MESSAGES) (1,000) messages of up
/// to 4,000 characters (16,000 bytes of UTF-8, about 16.5 kB with its fields): about
/// 16.5 MB, and this leaves 8 MB above it for the rooms' member lists. A larger frame is
/// refused from its header, before anything is allocated for it, and the connection ends
/// with [`TransportError::FrameTooLarge`].
pub const MAX_MESSAGE_BYTES: usize = 24 * 1024 * 1024;
pub use tls::TlsConfig;
pub use websocket::WebSocketTransport;

/// What a connection attempt needs.
#[derive(Clone, Debug)]
pub struct ConnectRequest {
    /// The server URL, `http://host:port` or `https://host:port` (the Socket.IO path is
    /// added when missing).
    pub url: String,
    /// Which roots a server's TLS certificate may chain to.
    pub tls: TlsConfig,
    /// The Socket.IO `auth` object: `{"token": ..., "device": ...}`.
    pub auth: Value,
    /// How long the whole attempt (TCP, WebSocket upgrade, Socket.IO handshake) may take.
    pub connect_timeout: Duration,
    /// How long a request may wait for its ack before the connection is torn down.
    pub ack_timeout: Duration,
    /// How many server events may wait in the inbound channel; past that the connection is
    /// torn down (and the client catches up with `message:sync` after reconnecting) rather
    /// than dropping an event.
    pub inbound_capacity: usize,
}

/// A server → client event.
#[derive(Clone, Debug, PartialEq)]
pub struct Inbound {
    /// The event name (`message:new`, …).
    pub event: String,
    /// Its one argument.
    pub payload: Value,
}

/// A factory of connections.
#[async_trait]
pub trait Transport: Send + Sync + std::fmt::Debug + 'static {
    /// Opens a connection and completes the Socket.IO handshake. Returns the connection and
    /// the channel its server events arrive on. A refused handshake is
    /// [`TransportError::Refused`]; an attempt past `connect_timeout` is
    /// [`TransportError::ConnectTimeout`].
    async fn connect(
        &self,
        request: ConnectRequest,
    ) -> Result<(Arc<dyn Connection>, mpsc::Receiver<Inbound>), TransportError>;
}

/// One live connection. Dropping it does not close it: call [`Connection::close`].
#[async_trait]
pub trait Connection: Send + Sync + std::fmt::Debug {
    /// Sends `event` with an ack and returns the ack's argument. Requests go on the wire in
    /// the order they are made; a transport may keep several in flight (the server answers
    /// one socket's requests in arrival order) or only one. When no ack arrives within the
    /// ack timeout the connection is closed and [`TransportError::AckTimeout`] returned.
    async fn request(&self, event: &str, payload: Value) -> Result<Value, TransportError>;

    /// Sends `event` without an ack (volatile: lost if the link is down).
    async fn emit(&self, event: &str, payload: Value) -> Result<(), TransportError>;

    /// Resolves when the connection is closed, with the reason.
    async fn closed(&self) -> String;

    /// Whether the connection is closed.
    fn is_closed(&self) -> bool;

    /// Closes the connection (idempotent); `closed` resolves with `reason`.
    fn close(&self, reason: &str);

    /// When the last frame (event, ack or heartbeat) arrived from the server, if this
    /// transport keeps track. The client probes a link only after `health_interval` of
    /// silence, and does not give up on an unanswered probe while other frames still
    /// arrive (the server answers one socket's requests in order, so a probe can queue
    /// behind slow ones). The default, `None`, leaves the client to count only the events
    /// it handles.
    fn last_heard(&self) -> Option<Instant> {
        None
    }
}

/// When the server was last heard from; updated from any thread without a lock.
#[derive(Debug)]
pub(crate) struct LastHeard {
    start: Instant,
    /// Microseconds after `start`.
    at_us: AtomicU64,
}

impl LastHeard {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            at_us: AtomicU64::new(0),
        }
    }

    /// Records that something arrived just now.
    pub(crate) fn now(&self) {
        let elapsed = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.at_us.fetch_max(elapsed, Ordering::Relaxed);
    }

    /// The last time recorded (the creation time if none was).
    pub(crate) fn at(&self) -> Instant {
        self.start + Duration::from_micros(self.at_us.load(Ordering::Relaxed))
    }
}

/// A one-shot "this connection is dead" signal with its reason, shared by transport
/// implementations.
#[derive(Debug)]
pub(crate) struct DeathSignal {
    tx: tokio::sync::watch::Sender<Option<String>>,
}

impl DeathSignal {
    pub(crate) fn new() -> Self {
        Self {
            tx: tokio::sync::watch::channel(None).0,
        }
    }

    /// Marks the connection dead; returns true if this call did it (the first reason wins).
    pub(crate) fn kill(&self, reason: &str) -> bool {
        self.tx.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason.to_owned());
                true
            } else {
                false
            }
        })
    }

    pub(crate) fn reason(&self) -> Option<String> {
        self.tx.borrow().clone()
    }

    pub(crate) async fn wait(&self) -> String {
        let mut rx = self.tx.subscribe();
        let reason = match rx.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            // The sender lives as long as `self`, so this cannot happen while we borrow it.
            Err(_) => "closed".to_owned(),
        };
        reason
    }
}

/// Reads the code and text out of a `CONNECT_ERROR` frame's data:
/// `{"message": "unauthorized"}` or `{"message": ..., "data": {"code": ..., "message": ...}}`.
pub(crate) fn parse_connect_error(data: &str) -> TransportError {
    let value: Value = serde_json::from_str(data).unwrap_or(Value::String(data.to_owned()));
    let message = value
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| value.as_str())
        .unwrap_or("")
        .to_owned();
    let data_code = value
        .get("data")
        .and_then(|d| d.get("code"))
        .and_then(Value::as_str)
        .map(ErrorCode::from_wire);
    let code = match (ErrorCode::from_wire(&message), data_code) {
        (ErrorCode::Unknown, Some(code)) => code,
        (code, _) => code,
    };
    let text = value
        .get("data")
        .and_then(|d| d.get("message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| message.clone());
    TransportError::Refused {
        code,
        message: text,
    }
}
