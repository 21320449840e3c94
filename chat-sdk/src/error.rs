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
    Sqlite(rusqlite::Error),
    /// The disk (or the outbox's size cap, `ClientBuilder::outbox_max_bytes`) is full:
    /// nothing of this change was written, and what the outbox held before is intact.
    #[error("the outbox's disk is full: nothing was written ({0})")]
    Full(rusqlite::Error),
    /// A row could not be decoded (the file was written by an incompatible version or edited).
    #[error("store holds an unreadable row: {0}")]
    Corrupt(String),
    /// The client was closed (or dropped): its store takes no more writes, since another
    /// client may own the file now.
    #[error("the client is closed; its outbox takes no more changes")]
    Closed,
    /// The file was written by a newer version of the SDK, whose schema this one does not
    /// know; its contents are left untouched.
    #[error("the store's schema is version {found}; this SDK reads up to version {supported}: upgrade the SDK")]
    SchemaTooNew {
        /// The file's schema version.
        found: i64,
        /// The newest this SDK reads.
        supported: i64,
    },
    /// The store's files could not be opened or synced.
    #[error("store file: {0}")]
    Io(#[from] std::io::Error),
    /// Another client (in this process or another) runs on this outbox file. One file
    /// serves one running client; give each client its own, or inspect this one with
    /// [`Outbox::open`](crate::Outbox::open), which opens it read-only while it is in use.
    #[error("the outbox {} is in use by another running client{}", .path.display(), holder_text(*.holder))]
    InUse {
        /// The outbox file.
        path: std::path::PathBuf,
        /// The process id of the client holding it, when it could be read.
        holder: Option<u32>,
    },
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        if error.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            Self::Full(error)
        } else {
            Self::Sqlite(error)
        }
    }
}

fn holder_text(holder: Option<u32>) -> String {
    holder
        .map(|pid| format!(" (process {pid})"))
        .unwrap_or_default()
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
    /// The server's TLS certificate does not verify (unknown issuer, wrong name, expired,
    /// …): the reason says which. Not a network blip; the client does not retry it.
    #[error("the server's certificate was refused: {0}")]
    Certificate(String),
    /// The connection attempt did not finish within the connect timeout.
    #[error("connect timed out after {0:?}")]
    ConnectTimeout(std::time::Duration),
    /// The server sent a frame (or a message of several) larger than
    /// [`MAX_MESSAGE_BYTES`](crate::transport::MAX_MESSAGE_BYTES): refused from its header,
    /// before it was read, and the connection torn down.
    #[error("the server sent a frame larger than {max_bytes} bytes; the connection was torn down")]
    FrameTooLarge {
        /// The limit.
        max_bytes: usize,
    },
    /// The server broke the protocol where nothing can be ignored: a handshake packet
    /// missing or out of place, a text frame that is not UTF-8, a broken WebSocket frame.
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
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
    /// The server's TLS certificate does not verify; the reason says why (for a private CA
    /// or a self-signed server, trust its root with
    /// [`ClientBuilder::add_root_certificate`](crate::ClientBuilder::add_root_certificate)).
    #[error("the server's certificate was refused: {0}")]
    Certificate(String),
    /// The configuration is unusable (no URL, a bad URL, an unreadable root certificate, …).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The local store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The token-refresh hook failed.
    #[error("token refresh failed: {0}")]
    TokenRefresh(String),
}

/// Why [`Client::send`](crate::Client::send) (or `reply`, or their `_blocking` forms) did not queue a message.
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
    #[error("message {} is queued but the disk did not confirm it: {source}", .message.client_id())]
    NotDurable {
        /// The queued message, to follow like any other.
        message: crate::SendHandle,
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

/// Why an outbox operation ([`Outbox::retry`](crate::Outbox::retry),
/// [`Outbox::discard`](crate::Outbox::discard), …) failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// No message with this id is in the outbox.
    #[error("no message {0} in the outbox")]
    NotFound(ClientId),
    /// The message is not in a state that allows the operation (for example `retry` of a
    /// message that was already sent, or `discard` of one on the wire).
    #[error("message {id} is {state}; {operation} needs {}", .operation.accepts())]
    WrongState {
        /// The message.
        id: ClientId,
        /// Its state when the operation was refused.
        state: crate::MessageState,
        /// The operation refused.
        operation: OutboxOperation,
    },
    /// The outbox was opened read-only because a running client owns it: repairs go
    /// through that client ([`Client::outbox`](crate::Client::outbox)), or wait until it
    /// stops.
    #[error("the outbox {} is in use by a running client{}: it can be listed, but {operation} must go through that client or wait until it stops", .path.display(), holder_text(*.holder))]
    ReadOnly {
        /// The outbox file.
        path: std::path::PathBuf,
        /// The process id of the owning client, when known.
        holder: Option<u32>,
        /// The operation refused.
        operation: OutboxOperation,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An operation on the outbox that changes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutboxOperation {
    /// Putting a failed message back in the queue.
    Retry,
    /// Removing a message.
    Discard,
    /// Forgetting acknowledged messages.
    Prune,
}

impl OutboxOperation {
    /// The states the operation accepts, as text.
    fn accepts(self) -> &'static str {
        match self {
            Self::Retry => "a failed message",
            Self::Discard => "a message that is not on the wire (queued, failed or acknowledged)",
            Self::Prune => "acknowledged messages",
        }
    }
}

impl std::fmt::Display for OutboxOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Retry => "retry",
            Self::Discard => "discard",
            Self::Prune => "prune",
        })
    }
}

/// Why [`SendHandle::wait_for`](crate::SendHandle::wait_for) returned without the message reaching
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
