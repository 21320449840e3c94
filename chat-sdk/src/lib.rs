//! The chat client SDK: a persistent outbox, reconnects that lose nothing, typed events.
//!
//! A [`Client`] speaks the chat protocol (Socket.IO v4, see `docs/protocol.md`) to a server.
//! What it adds over a bare Socket.IO client:
//!
//! - **Nothing sent is lost.** [`Client::send`] writes the message to a local SQLite outbox
//!   (on disk, fsynced) before it completes, and returns a [`SendHandle`] to follow it. The outbox sends one message at a time, in order, and resends after
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
//! let hello = client.send(&room, "hello").await?;
//! println!("queued {}", hello.client_id());
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
//! | send; reply (async: the fsync runs on the blocking pool) | [`Client::send`], [`Client::reply`] — a [`SendHandle`] once the message is durable |
//! | the same from a plain thread | [`Client::send_blocking`], [`Client::reply_blocking`] |
//! | follow one message: its state, a watch of it, wait for sent / delivered / read, retry, discard | [`SendHandle::state`], [`SendHandle::watch`], [`SendHandle::wait_for`] with a [`Milestone`], [`SendHandle::retry`], [`SendHandle::discard`] |
//! | follow everything (messages, statuses, receipts, typing, presence, members, connection) | the [`Events`] stream |
//! | keep up with a busy stream in batches (one position write per batch) | [`Events::recv_many`] |
//! | join (and catch up); replay from a `seq`; leave | [`Client::join`], [`Client::join_since`], [`Client::leave`] |
//! | mark a room read; typing; presence; history | [`Client::mark_read`] / [`Client::mark_read_up_to`], [`Client::typing`], [`Client::presence`], [`Client::history`] |
//! | inspect and repair the outbox of a running client | [`Client::outbox`]: [`Outbox::list`], [`Outbox::depth`], [`Outbox::retry`], [`Outbox::discard`], [`Outbox::prune_acknowledged`] |
//! | the same from a tool, without a network | [`Outbox::open`] (read-only while a client runs on the file) |
//! | watch the connection; force a reconnect; stop | [`Client::connection_state`], [`Client::reconnect`], [`Client::close`] |
//! | choose the Socket.IO transport | [`ClientBuilder::transport`]: [`transport::WebSocketTransport`] (default, tokio-tungstenite, pipelined acks) or `transport::SocketIoTransport` (rust_socketio 0.6, with the `socketio` feature) |
//!
//! What is promised, exactly, is written in `docs/delivery-guarantees.md`.
//!
//! # Layout
//!
//! The modules follow the path a message takes, from the application to the server and
//! back to every receiver:
//!
//! - `client/`: the handle the application holds ([`Client`]) and its builder
//!   ([`ClientBuilder`]), the tunables, the state its tasks share, typing indicators;
//! - `outbox/`: a sent message's way out: its states ([`MessageState`]), the flusher that
//!   puts queued messages on the wire one at a time and in order, and the receipts that move
//!   acknowledged ones on to delivered and read;
//! - `store/`: the local SQLite file: its schema, the outbox rows, the room positions, and
//!   how a commit is made durable;
//! - `transport/`: Socket.IO over a WebSocket ([`transport::WebSocketTransport`]) or
//!   rust_socketio (`transport::SocketIoTransport`, with the `socketio` feature), behind one
//!   trait;
//! - the server (the `chat-server` crate) validates, stores, and fans the message out to
//!   the room;
//! - `connection/`: the supervisor that owns (re)connection, the watchdog that notices a
//!   silent link, and the connection state;
//! - `receive/`: a receiver's way in: the receive loop of one connection, catching a room
//!   up, what is known of each room, the event stream ([`Events`]) the application takes
//!   messages from, and the resume position each taken message moves;
//! - `error.rs`: one error enum per operation.
#![warn(missing_docs)]

mod client;
mod connection;
mod error;
mod outbox;
mod receive;
mod store;
pub mod transport;

pub use chat_protocol;
pub use client::config::RetryPolicy;
pub use client::typing::STOP_AFTER as TYPING_STOP_AFTER;
pub use client::{Client, ClientBuilder};
pub use connection::state::{ConnectionState, DisconnectReason};
pub use error::{
    ConnectError, OutboxError, OutboxOperation, RequestError, SendError, StoreError,
    TransportError, WaitError,
};
pub use outbox::handle::Outbox;
pub use outbox::message_state::{FailureReason, MessageState, Milestone, OutgoingMessage};
pub use outbox::send_handle::SendHandle;
pub use receive::{ChatEvent, Events};
