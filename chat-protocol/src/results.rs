//! Success results of the requests: what follows `"ok": true` in an ack.

use serde::{Deserialize, Serialize};

use crate::events::{Message, Presence};
use crate::ids::{MessageId, RoomId, Seq, Timestamp, UserId};

/// Result of `room:join`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinResult {
    /// The room.
    pub room: RoomId,
    /// The room's newest `seq` (0 when empty).
    pub last_seq: Seq,
    /// Every member, online or not.
    pub members: Vec<UserId>,
    /// The caller's delivered watermark.
    pub delivered_seq: Seq,
    /// The caller's read watermark.
    pub read_seq: Seq,
    /// Every member's watermarks, so a sender can tell which of its messages are delivered
    /// or read. An addition to the protocol: absent from servers that do not send it.
    #[serde(default)]
    pub watermarks: Vec<MemberWatermarks>,
    /// The optional requests this server answers beyond the ones every server has (see
    /// [`requests::extensions`](crate::requests::extensions)). An addition to the protocol:
    /// absent (empty) from servers that have none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
}

/// Result of `room:resume`: one entry per room asked, in the order asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeResult {
    /// The rooms.
    pub rooms: Vec<ResumedRoom>,
    /// The extensions this server answers, as in a `room:join` answer (a client that
    /// resumes sees no join answer). An addition: absent (empty) from servers without it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
}

/// One room of a [`ResumeResult`]: what `room:join` answers, and the first page of what a
/// `message:sync` from the asked position would.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumedRoom {
    /// The join: the room, its newest `seq`, members and watermarks.
    #[serde(flatten)]
    pub joined: JoinResult,
    /// Missed messages, in `seq` order.
    pub messages: Vec<Message>,
    /// True when more missed messages follow the last one returned (fetch them with
    /// `message:sync`).
    pub has_more: bool,
}

/// One member's watermarks in a room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberWatermarks {
    /// The member.
    pub user: UserId,
    /// Its delivered watermark.
    pub delivered_seq: Seq,
    /// Its read watermark.
    pub read_seq: Seq,
}

/// Result of `room:leave`: nothing but success.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveResult {}

/// Result of `message:send`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResult {
    /// The stored message's id.
    pub id: MessageId,
    /// Its place in the room.
    pub seq: Seq,
    /// When the server stored it.
    pub ts: Timestamp,
    /// True when this `(sender, client_id)` was stored before: nothing new was stored.
    pub duplicate: bool,
}

/// Result of `message:sync`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResult {
    /// Messages after the asked `seq`, in `seq` order.
    pub messages: Vec<Message>,
    /// The room's newest `seq`.
    pub last_seq: Seq,
    /// True when more messages follow the last one returned.
    pub has_more: bool,
}

/// Result of `receipt:delivered`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveredResult {
    /// The caller's delivered watermark after the request.
    pub delivered_seq: Seq,
}

/// Result of `receipt:read`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadResult {
    /// The caller's read watermark after the request.
    pub read_seq: Seq,
    /// How far the read watermark moved.
    pub updated: u64,
}

/// Result of `presence:get`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceResult {
    /// One entry per user asked about, in the order asked.
    pub presence: Vec<Presence>,
}
