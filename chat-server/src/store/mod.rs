//! Durable storage behind one trait, so SQLite (the default) and PostgreSQL (for several
//! servers on one database) are interchangeable and pass the same conformance suite (`tests/store_conformance.rs`).
//!
//! Every method is one atomic operation. A message's `seq` is assigned in the same
//! transaction that stores it, and an operation returns only after it is durably committed.

use async_trait::async_trait;
use chat_protocol::results::MemberWatermarks;
use chat_protocol::{Body, ClientId, Message, MessageId, RoomId, Seq, Timestamp, UserId};

use crate::error::StoreError;

mod postgres;
mod postgres_schema;
mod schema;
mod sqlite;

pub use postgres::{listen, PostgresOptions, PostgresStore, NOTICE_BYTES};
pub use sqlite::{Feed, SqliteOptions, SqliteStore, FEED_CAPACITY};

/// What a commit notice from PostgreSQL says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A message some server stored (small enough to travel in the notice).
    Message(Message),
    /// A room's newest `seq` (its message was too big to travel in the notice).
    Head(Head),
    /// The notice connection was (re)made: notices may have been missed meanwhile.
    Missed,
}

/// A room's newest `seq`, as another server committed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// The room.
    pub room: RoomId,
    /// Its newest `seq`.
    pub seq: Seq,
}

/// What `join` found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    /// True when the user was not a member before this call.
    pub newly_joined: bool,
    /// The room's newest `seq`.
    pub last_seq: Seq,
    /// Every member, the caller included, sorted.
    pub members: Vec<UserId>,
    /// Every member's watermarks, sorted by user.
    pub watermarks: Vec<MemberWatermarks>,
}

/// A message to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    /// The room.
    pub room: RoomId,
    /// The sender.
    pub sender: UserId,
    /// The sender's idempotency key.
    pub client_id: ClientId,
    /// The text.
    pub body: Body,
    /// The `seq` answered.
    pub reply_to: Option<Seq>,
    /// The server's time of storing.
    pub ts: Timestamp,
}

/// What `append` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Appended {
    /// The message was stored now.
    Stored(Message),
    /// `(sender, client_id)` was stored before: this is the original, nothing new was stored.
    Duplicate(Message),
    /// The sender is not a member of the room; nothing was stored.
    NotMember,
}

/// A page of history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// Messages in `seq` order.
    pub messages: Vec<Message>,
    /// The room's newest `seq`.
    pub last_seq: Seq,
    /// More messages follow the page.
    pub has_more: bool,
}

/// A member's watermarks after a receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watermarks {
    /// Delivered watermark.
    pub delivered_seq: Seq,
    /// Read watermark.
    pub read_seq: Seq,
    /// True when either moved.
    pub moved: bool,
    /// How far the read watermark moved.
    pub read_moved_by: u64,
}

/// The result of an operation that requires membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Membership<T> {
    /// The caller is a member; here is the result.
    Member(T),
    /// The caller is not a member; nothing was done.
    NotMember,
}

/// Durable storage of rooms, memberships, messages, watermarks and `last_seen`.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Makes `user` a member of `room` (creating the room), or confirms it already is.
    async fn join(&self, room: &RoomId, user: &UserId) -> Result<Joined, StoreError>;
    /// Joins `user` to each room (as [`Store::join`]) and reads, per room, up to `limit`
    /// messages after its position (absent: after `user`'s delivered watermark), taking at
    /// most `budget` messages over all rooms; one atomic operation, results in the order given.
    async fn resume(
        &self,
        user: &UserId,
        rooms: Vec<(RoomId, Option<Seq>)>,
        limit: u32,
        budget: usize,
    ) -> Result<Vec<(Joined, Page)>, StoreError>;
    /// Ends `user`'s membership; true when it was a member.
    async fn leave(&self, room: &RoomId, user: &UserId) -> Result<bool, StoreError>;
    /// Whether `user` is a member of `room`.
    async fn is_member(&self, room: &RoomId, user: &UserId) -> Result<bool, StoreError>;
    /// Stores a message with the room's next `seq`, unless `(sender, client_id)` exists.
    async fn append(&self, message: NewMessage) -> Result<Appended, StoreError>;
    /// Appends each message as [`Store::append`] would, in the order given, as one atomic
    /// operation: on an error nothing of the batch is stored.
    async fn append_batch(&self, messages: Vec<NewMessage>) -> Result<Vec<Appended>, StoreError>;
    /// Up to `limit` messages after `after_seq`.
    async fn sync(
        &self,
        room: &RoomId,
        user: &UserId,
        after_seq: Seq,
        limit: u32,
    ) -> Result<Membership<Page>, StoreError>;
    /// Moves `user`'s delivered watermark up to `up_to_seq` (capped at the room's newest).
    async fn mark_delivered(
        &self,
        room: &RoomId,
        user: &UserId,
        up_to_seq: Seq,
    ) -> Result<Membership<Watermarks>, StoreError>;
    /// Moves `user`'s read (and delivered) watermark up to `up_to_seq`, in one statement.
    async fn mark_read(
        &self,
        room: &RoomId,
        user: &UserId,
        up_to_seq: Seq,
    ) -> Result<Membership<Watermarks>, StoreError>;
    /// Rooms `user` is a member of.
    async fn rooms_of(&self, user: &UserId) -> Result<Vec<RoomId>, StoreError>;
    /// Records when `user`'s last socket closed.
    async fn set_last_seen(&self, user: &UserId, ts: Timestamp) -> Result<(), StoreError>;
    /// `last_seen` of each user, in the order given.
    async fn last_seen(&self, users: &[UserId]) -> Result<Vec<Option<Timestamp>>, StoreError>;
    /// Up to `limit` messages of `room` after `after_seq`, whoever asks: the fan-out's read,
    /// to fill a gap in what it was told of.
    async fn tail(&self, room: &RoomId, after_seq: Seq, limit: u32) -> Result<Page, StoreError>;
    /// The newest `seq` of each room (0 for a room that does not exist), in the order given.
    async fn heads(&self, rooms: &[RoomId]) -> Result<Vec<Seq>, StoreError>;
    /// Flushes and closes; later calls fail with [`StoreError::Closed`].
    async fn close(&self) -> Result<(), StoreError>;
}

/// Where `user`'s resume of a room starts: the position given, else its delivered watermark.
pub(crate) fn resume_from(joined: &Joined, user: &UserId, position: Option<Seq>) -> Seq {
    position.unwrap_or_else(|| {
        joined
            .watermarks
            .iter()
            .find(|w| &w.user == user)
            .map_or(0, |w| w.delivered_seq)
    })
}

/// The page of a room the resume's budget does not reach: no message, and whether any waits.
pub(crate) fn unread_page(joined: &Joined, after: Seq) -> Page {
    Page {
        messages: Vec::new(),
        last_seq: joined.last_seq,
        has_more: joined.last_seq > after,
    }
}

/// Builds a message id from its room and seq: unique, stable across restarts.
pub(crate) fn message_id(room: &RoomId, seq: Seq) -> MessageId {
    MessageId(format!("{room}:{seq}"))
}
