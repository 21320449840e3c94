//! The state of the client's link to the server, as an application observes it.
//!
//! Published by the supervisor through a watch
//! ([`Client::connection_state`](crate::Client::connection_state)) and as
//! [`ChatEvent::Connection`](crate::ChatEvent::Connection) events.

use chat_protocol::ErrorCode;
use serde::{Deserialize, Serialize};

/// The state of the client's link to the server, published through
/// [`Client::connection_state`](crate::Client::connection_state).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnectionState {
    /// The first connection attempt is under way.
    Connecting,
    /// Connected and authenticated; requests flow.
    Connected,
    /// The link was lost (or never came up); attempt `attempt` (from 1) is under way or
    /// waiting for its backoff delay.
    Reconnecting {
        /// The attempt number since the link was last up, from 1.
        attempt: u32,
    },
    /// The client stopped trying: closed by the application, or the server refused the
    /// credentials and no refresh hook helped.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
}

/// Why the client is [`ConnectionState::Disconnected`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum DisconnectReason {
    /// [`Client::close`](crate::Client::close) was called or the client was dropped.
    Closed,
    /// The server refused the token and no refresh hook produced an accepted one.
    Unauthorized {
        /// The server's text.
        message: String,
    },
    /// The server's TLS certificate does not verify: the client stopped instead of retrying,
    /// since waiting does not fix a certificate.
    Certificate {
        /// Why it was refused.
        message: String,
    },
    /// The server refused the connection for another reason.
    Refused {
        /// The code the server sent.
        code: ErrorCode,
    },
}
