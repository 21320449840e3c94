//! The state every handler shares, and the names of the Socket.IO rooms the server uses.

use std::sync::Arc;

use chat_protocol::{RoomId, UserId};

use crate::config::ServerConfig;
use crate::presence::PresenceTracker;
use crate::rate::RateLimiters;
use crate::store::Store;
use crate::tails::Watches;
use crate::typing::TypingTracker;

/// Shared server state (cheap to clone).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

/// What [`AppState`] holds.
#[derive(Debug)]
pub struct Inner {
    /// The configuration the server was started with.
    pub config: ServerConfig,
    /// Durable storage.
    pub store: Arc<dyn Store>,
    /// Per-user rate limits.
    pub limiters: RateLimiters,
    /// Connection counts and presence.
    pub presence: PresenceTracker,
    /// Typing indicators.
    pub typing: TypingTracker,
    /// Where joins are reported to this server's room tails.
    pub watches: Watches,
}

impl AppState {
    /// Wraps the parts.
    pub fn new(config: ServerConfig, store: Arc<dyn Store>, watches: Watches) -> Self {
        Self(Arc::new(Inner {
            watches,
            limiters: RateLimiters::new(&config.rates),
            presence: PresenceTracker::default(),
            typing: TypingTracker::default(),
            config,
            store,
        }))
    }
}

impl AppState {
    /// Whether announcements go to the sockets of every server (through Redis).
    pub fn everywhere(&self) -> bool {
        self.config.redis_url.is_some()
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The Socket.IO room holding every socket joined to a chat room.
pub fn room_key(room: &RoomId) -> String {
    format!("room:{room}")
}

/// The Socket.IO room holding every socket of one user.
pub fn user_key(user: &UserId) -> String {
    format!("user:{user}")
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
