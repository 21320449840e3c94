//! Server → client events and their names.

use serde::{Deserialize, Serialize};

use crate::body::Body;
use crate::ids::{ClientId, MessageId, RoomId, Seq, Timestamp, UserId};

/// Event names of the server → client events.
pub mod names {
    /// `message:new`
    pub const MESSAGE_NEW: &str = "message:new";
    /// `receipt:update`
    pub const RECEIPT_UPDATE: &str = "receipt:update";
    /// `typing:update`
    pub const TYPING_UPDATE: &str = "typing:update";
    /// `presence:update`
    pub const PRESENCE_UPDATE: &str = "presence:update";
    /// `room:member`
    pub const ROOM_MEMBER: &str = "room:member";
}

/// A stored message, as `message:new` and `message:sync` carry it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The room.
    pub room: RoomId,
    /// The server's id.
    pub id: MessageId,
    /// Its place in the room.
    pub seq: Seq,
    /// The sender's idempotency key.
    pub client_id: ClientId,
    /// Who sent it.
    pub sender: UserId,
    /// The text, exactly as sent.
    pub body: Body,
    /// When the server stored it.
    pub ts: Timestamp,
    /// The `seq` this message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Seq>,
}

/// `receipt:update`: a member's watermarks moved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptUpdate {
    /// The room.
    pub room: RoomId,
    /// The member whose watermarks moved.
    pub user: UserId,
    /// Its delivered watermark.
    pub delivered_seq: Seq,
    /// Its read watermark.
    pub read_seq: Seq,
}

/// `typing:update`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingUpdate {
    /// The room.
    pub room: RoomId,
    /// Who is (or stopped) typing.
    pub user: UserId,
    /// Whether the user is typing now.
    pub typing: bool,
}

/// A user's presence, in `presence:update` and `presence:get`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// The user.
    pub user: UserId,
    /// Whether the user is online (or inside the grace period after its last socket closed).
    pub online: bool,
    /// When its last socket closed; `None` if it never connected.
    pub last_seen: Option<Timestamp>,
}

/// `room:member`: a user became or stopped being a member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomMember {
    /// The room.
    pub room: RoomId,
    /// The user.
    pub user: UserId,
    /// True when it joined, false when it left.
    pub joined: bool,
}
