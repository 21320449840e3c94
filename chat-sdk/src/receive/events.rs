//! The one typed event stream an application renders from.
//!
//! Everything the client learns arrives here, in the order it learned it: messages of the
//! rooms it joined (each exactly once, in `seq` order), the local echo and status changes of
//! its own messages, receipts, typing, presence, membership and the connection state.

use chat_protocol::{
    ClientId, Message, Presence, ReceiptUpdate, RoomId, RoomMember, Seq, TypingUpdate,
};
use std::sync::{Arc, Weak};

use tokio::sync::mpsc;

use super::positions;
use crate::client::shared::Inner;
use crate::store::Store;

use crate::{ConnectionState, MessageState, OutgoingMessage};

/// One thing that happened.
///
/// New kinds of events may be added: match with a `_` arm.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChatEvent {
    /// A stored message of a joined room (the client's own included), handed over exactly
    /// once and in `seq` order per room.
    Message(Message),
    /// A room is live on this connection: every message stored before its catch-up was
    /// handed over (up to `last_seq`), and new ones follow as they are stored. Comes once per
    /// room after each (re)connection, and after [`Client::join`](crate::Client::join).
    CaughtUp {
        /// The room.
        room: RoomId,
        /// The last `seq` handed over.
        last_seq: Seq,
    },
    /// Local echo: a message of this client was queued; render it at once, then follow its
    /// [`ChatEvent::Status`] changes.
    Queued(OutgoingMessage),
    /// An outgoing message changed state.
    Status {
        /// The message.
        client_id: ClientId,
        /// Its room.
        room: RoomId,
        /// The new state.
        state: MessageState,
    },
    /// A member's watermarks moved.
    Receipt(ReceiptUpdate),
    /// Someone started or stopped typing.
    Typing(TypingUpdate),
    /// A user's presence changed.
    Presence(Presence),
    /// A user joined or left a room.
    Member(RoomMember),
    /// The connection state changed.
    Connection(ConnectionState),
}

/// The receiving end of the event stream, returned with the [`Client`](crate::Client).
///
/// The stream is unbounded: events wait here until the application takes them. It ends
/// once the client is closed and every event was taken. Taking a [`ChatEvent::Message`]
/// records its room position in the store, so after a restart the client resumes after the
/// last message the application took — not after messages that were still waiting here.
#[derive(Debug)]
pub struct Events {
    pub(crate) rx: mpsc::UnboundedReceiver<ChatEvent>,
    pub(crate) inner: Weak<Inner>,
    /// Where positions go, also after the client was closed or dropped.
    pub(crate) store: Arc<Store>,
}

impl Events {
    /// The next event, or `None` when the client is closed and the stream drained.
    ///
    /// ```no_run
    /// # async fn demo(mut events: chat_sdk::Events) {
    /// use chat_sdk::ChatEvent;
    ///
    /// while let Some(event) = events.recv().await {
    ///     if let ChatEvent::Message(m) = event {
    ///         println!("#{} {}", m.seq, m.body);
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Option<ChatEvent> {
        let event = self.rx.recv().await;
        self.taken(event.as_slice());
        event
    }

    /// Waits for at least one event, then moves up to `limit` ready events to the end of
    /// `buffer`; returns how many (0 once the client is closed and the stream drained, or
    /// when `limit` is 0).
    ///
    /// Taking a run of messages at once records each room's position once for the run, so
    /// an application that keeps up in batches writes its positions once per batch instead
    /// of once per message. After a restart the client resumes after the batch. Like
    /// [`Events::recv`], it is cancel-safe: in `tokio::select!`, a branch that loses takes
    /// nothing.
    ///
    /// ```no_run
    /// # async fn demo(mut events: chat_sdk::Events) {
    /// use chat_sdk::ChatEvent;
    ///
    /// let mut batch = Vec::with_capacity(64);
    /// while events.recv_many(&mut batch, 64).await > 0 {
    ///     for event in batch.drain(..) {
    ///         if let ChatEvent::Message(m) = event {
    ///             println!("#{} {}", m.seq, m.body);
    ///         }
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn recv_many(&mut self, buffer: &mut Vec<ChatEvent>, limit: usize) -> usize {
        let start = buffer.len();
        let count = self.rx.recv_many(buffer, limit).await;
        self.taken(&buffer[start..]);
        count
    }

    /// The next event if one is ready now.
    pub fn try_recv(&mut self) -> Option<ChatEvent> {
        let event = self.rx.try_recv().ok();
        self.taken(event.as_slice());
        event
    }

    /// Hands what the application took to the receive path, which records the positions.
    fn taken(&self, events: &[ChatEvent]) {
        let inner = self.inner.upgrade();
        positions::record_taken(inner.as_deref(), &self.store, events);
    }
}
