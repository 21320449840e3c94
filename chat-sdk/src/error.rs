//! Errors of the SDK, one enum per operation.
//!
//! Each public operation fails with its own enum so a caller matches only on what that
//! operation can actually do wrong. Nothing here is produced by a panic: every fault the
//! network or the disk can cause ends up as one of these values.

use chat_protocol::{ClientId, ErrorBody, ErrorCode, ValidationError};

/// A failure of the local store (the SQLite file holding the outbox and room positions).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A row could not be decoded (the file was written by an incompatible version or edited).
    #[error("store holds an unreadable row: {0}")]
    Corrupt(String),
    /// The store's files could not be opened or synced.
    #[error("store file: {0}")]
    Io(#[from] std::io::Error),
}

/// A failure of the transport: the link to the server, not the server's answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The connection is closed (or was never usable); the reason says why.
    #[error("connection closed: {0}")]
    Closed(String),
    /// No ack arrived within the ack timeout; the connection has been torn down.
    #[error("no ack within {0:?}; the connection was torn down")]
    AckTimeout(std::time::Duration),
    /// The server could not be reached or the handshake failed.
    #[error("cannot connect: {0}")]
    Unreachable(String),
    /// The server refused the connection (a Socket.IO `CONNECT_ERROR`).
    #[error("connection refused by the server: {code} ({message})")]
    Refused {
        /// The code the server sent (`unauthorized`, `too_many_connections`, …).
        code: ErrorCode,
        /// The server's text.
        message: String,
    },
    /// The connection attempt did not finish within the connect timeout.
    #[error("connect timed out after {0:?}")]
    ConnectTimeout(std::time::Duration),
}

/// Why [`ClientBuilder::connect`](crate::ClientBuilder::connect) or
/// [`ClientBuilder::start`](crate::ClientBuilder::start) failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The server refused the token (expired, wrongly signed, malformed) and no refresh hook
    /// produced one it accepted.
    #[error("the server refused the token: {0}")]
    Unauthorized(String),
    /// The server refused the connection for another reason (for example
    /// `too_many_connections`).
    #[error("the server refused the connection: {code} ({message})")]
    Refused {
        /// The code the server sent.
        code: ErrorCode,
        /// The server's text.
        message: String,
    },
    /// The server could not be reached, or did not complete the handshake in time.
    #[error("cannot reach the server: {0}")]
    Unreachable(TransportError),
    /// The configuration is unusable (no URL, a bad URL, …).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The local store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The token-refresh hook failed.
    #[error("token refresh failed: {0}")]
    TokenRefresh(String),
}

/// Why [`Client::send`](crate::Client::send) did not queue a message.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The body breaks the protocol's rules (empty, too long, control characters).
    #[error("invalid message: {0}")]
    Invalid(#[from] ValidationError),
    /// The outbox already holds its maximum number of unsent messages.
    #[error("outbox full: {capacity} messages are waiting to be sent")]
    OutboxFull {
        /// The configured cap.
        capacity: usize,
    },
    /// The message could not be written to the store; it was not queued.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The message is queued and will be sent like any other (its status events follow),
    /// but its write could not be confirmed on disk: it survives a crash of the process,
    /// maybe not a power cut. Do not send it again; a new `send` would be a second message.
    #[error("message {client_id} is queued but the disk did not confirm it: {source}")]
    NotDurable {
        /// The queued message.
        client_id: ClientId,
        /// Why: the fsync failed, or the store's log file was removed or replaced.
        source: StoreError,
    },
}

/// Why a request to the server (join, sync, read, presence, …) failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// There is no connection right now. The request was not sent.
    #[error("not connected")]
    NotConnected,
    /// The link failed while the request was in flight; the server may or may not have
    /// processed it.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server answered with an error.
    #[error("the server refused the request: {} ({})", .0.code, .0.message)]
    Rejected(ErrorBody),
    /// The server's answer was not the shape the protocol gives.
    #[error("malformed answer from the server: {0}")]
    Malformed(String),
    /// An argument breaks the protocol's rules; nothing was sent.
    #[error("invalid request: {0}")]
    Invalid(#[from] ValidationError),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RequestError {
    /// The server's error code, when the server answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Rejected(body) => Some(body.code),
            _ => None,
        }
    }
}

impl From<chat_protocol::AckError> for RequestError {
    fn from(err: chat_protocol::AckError) -> Self {
        match err {
            chat_protocol::AckError::Refused(body) => Self::Rejected(body),
            chat_protocol::AckError::Malformed(text) => Self::Malformed(text),
        }
    }
}

/// Why an outbox operation ([`Client::retry`](crate::Client::retry),
/// [`Client::discard`](crate::Client::discard), …) failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// No message with this id is in the outbox.
    #[error("no message {0} in the outbox")]
    NotFound(ClientId),
    /// The message is not in a state that allows the operation (for example `retry` of a
    /// message that was already sent).
    #[error("message {id} is {state}; {operation} needs a failed{also} message")]
    WrongState {
        /// The message.
        id: ClientId,
        /// Its current state, as text.
        state: String,
        /// The operation refused.
        operation: &'static str,
        /// Which other states the operation accepts, as text.
        also: &'static str,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why [`Client::wait_for`](crate::Client::wait_for) returned without the message reaching
/// the asked state.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// No message with this id is in the outbox (never queued, discarded or pruned).
    #[error("no message {0} in the outbox")]
    NotFound(ClientId),
    /// The message failed; it stays in the outbox until retried or discarded.
    #[error("message failed: {0}")]
    Failed(crate::FailureReason),
    /// The time ran out; the message is still in `last` and keeps going.
    #[error("timed out; the message is still {last}")]
    Timeout {
        /// Its state when the time ran out.
        last: crate::MessageState,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
