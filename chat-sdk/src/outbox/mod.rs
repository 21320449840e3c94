//! The way out: this client's own messages from `send` until the server has stored them,
//! and on until every other member has read them.
//!
//! - [`message_state`]: the states a message moves through, as persisted and announced;
//! - [`flusher`]: the one task that puts queued messages on the wire, in order;
//! - [`receipts`]: moves acknowledged messages on to delivered and read.

pub(crate) mod flusher;
pub(crate) mod message_state;
pub(crate) mod receipts;
