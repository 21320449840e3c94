//! The chat client SDK: a persistent outbox, reconnects that lose nothing, typed events.
//!
//! A [`Client`] speaks the chat protocol (Socket.IO v4, see `docs/protocol.md`) to a server.
//! What it adds over a bare Socket.IO client:
//!
//! - **Nothing sent is lost.** [`Client::send`] writes the message to a local SQLite outbox
//!   before returning. The outbox sends one message at a time, in order, and resends after
//!   any failure with the same `client_id`, which the server deduplicates — so each message
//!   is stored exactly once, in the order it was queued, whatever the network does.
//! - **Nothing received is lost or doubled.** Per room the client tracks the last contiguous
//!   `seq` it handed over, fills gaps with `message:sync`, drops duplicates, and catches up
//!   after every reconnect.
//! - **Reconnection is owned here**, with backoff, jitter and a cap, a health check, a
//!   bounded connect timeout, and a typed error for a refused token.
//! - **One typed event stream** ([`ChatEvent`]) with local echo and per-message status
//!   (`Queued → Sending → Sent → Delivered → Read`, or `Failed`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use chat_sdk::{ChatEvent, Client};
//!
//! let (client, mut events) = Client::builder("http://127.0.0.1:3000", "<jwt>")
//!     .store_path("alice.db")
//!     .connect()
//!     .await?;
//! let room = "general".parse()?;
//! client.join(&room).await?;
//! client.send(&room, "hello")?;
//! while let Some(event) = events.recv().await {
//!     if let ChatEvent::Message(message) = event {
//!         println!("#{} {}: {}", message.seq, message.sender, message.body);
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! ## The API at a glance
//!
//! | to … | call |
//! |---|---|
//! | start, waiting for the first connection (typed error on a refused token) | [`ClientBuilder::connect`] |
//! | start offline-first (queue now, send when the server is reachable) | [`ClientBuilder::start`] |
//! | send; reply | [`Client::send`], [`Client::reply`] — return the message's `client_id` once it is on disk |
//! | send without blocking the thread for the disk | [`Client::send_async`] — the fsync runs on the blocking pool |
//! | wait for one message to be sent / delivered / read | [`Client::wait_for`] with a [`Milestone`] |
//! | follow everything (messages, statuses, receipts, typing, presence, members, connection) | the [`Events`] stream |
//! | keep up with a busy stream in batches (one position write per batch) | [`Events::recv_many`] |
//! | join (and catch up); replay from a `seq`; leave | [`Client::join`], [`Client::join_since`], [`Client::leave`] |
//! | mark a room read; typing; presence; history | [`Client::mark_read`] / [`Client::mark_read_up_to`], [`Client::typing`], [`Client::presence`], [`Client::history`] |
//! | inspect and repair the outbox | [`Client::outbox`], [`Client::outbox_depth`], [`Client::retry`], [`Client::discard`], [`Client::prune_acknowledged`] |
//! | watch the connection; force a reconnect; stop | [`Client::connection_state`], [`Client::reconnect`], [`Client::close`] |
//! | choose the Socket.IO transport | [`ClientBuilder::transport`]: [`WebSocketTransport`] (default, tokio-tungstenite, pipelined acks) or [`SocketIoTransport`] (rust_socketio 0.6) |
//!
//! What is promised, exactly, is written in `docs/delivery-guarantees.md`.
#![warn(missing_docs)]

mod client;
mod config;
pub mod error;
mod event;
mod health;
mod inner;
mod outbox;
mod session;
pub mod state;
mod status;
mod store;
mod supervisor;
pub mod transport;
pub mod typing;

pub use chat_protocol;
pub use client::{Client, ClientBuilder};
pub use config::{RetryPolicy, TokenFuture};
pub use error::{
    ConnectError, OutboxError, RequestError, SendError, StoreError, TransportError, WaitError,
};
pub use event::{ChatEvent, Events};
pub use state::{
    ConnectionState, DisconnectReason, FailureReason, MessageState, Milestone, OutgoingMessage,
};
pub use transport::{Connection, SocketIoTransport, Transport, WebSocketTransport};
