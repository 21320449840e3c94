//! The way out: this client's own messages from `send` until the server has stored them,
//! and on until every other member has read them.
//!
//! - [`message_state`]: the states a message moves through, as persisted and announced;
//! - [`flusher`]: the one task that puts queued messages on the wire, in order;
//! - [`receipts`]: moves acknowledged messages on to delivered and read;
//! - [`transitions`]: the one place a message's state changes (persisted, then announced);
//! - [`send_handle`] and [`watchers`]: one message, as the application follows it;
//! - [`handle`]: the outbox as a whole, for listing and repairs, with or without a client.

pub(crate) mod flusher;
pub(crate) mod handle;
pub(crate) mod message_state;
pub(crate) mod receipts;
pub(crate) mod send_handle;
pub(crate) mod transitions;
pub(crate) mod watchers;
