//! The states of this client's own messages, as the outbox persists and announces them.
//!
//! Plain data types shared by the outbox (which persists [`MessageState`]), the store and
//! the event stream.

use chat_protocol::{ClientId, ErrorCode, MessageId, RoomId, Seq, Timestamp};
use serde::{Deserialize, Serialize};

/// Why a message ended [`MessageState::Failed`]. A failed message stays in the outbox until
/// [`Outbox::retry`](crate::Outbox::retry) or [`Outbox::discard`](crate::Outbox::discard)
/// (or the same on its [`SendHandle`](crate::SendHandle)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailureReason {
    /// The server refused it with a code that retrying cannot fix (`invalid_payload`,
    /// `too_large`, `forbidden`, or a code this SDK does not know).
    Rejected {
        /// The code.
        code: ErrorCode,
        /// The server's text.
        message: String,
    },
    /// It was not acknowledged within the configured time-to-live.
    Expired,
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rejected { code, message } => write!(f, "rejected: {code} ({message})"),
            Self::Expired => f.write_str("expired before it could be sent"),
        }
    }
}

/// Where an outgoing message is. It moves only forward along
/// `Queued → Sending → Sent → Delivered → Read`; a transient failure moves it from
/// `Sending` back to `Queued`, a permanent one to `Failed`, and a retry from `Failed` back to
/// `Queued`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum MessageState {
    /// On disk, waiting for its turn (or for the connection).
    Queued,
    /// Handed to the server; the ack has not arrived yet.
    Sending {
        /// Which attempt this is, from 1.
        attempt: u32,
    },
    /// The server stored it durably.
    Sent {
        /// The server's id.
        id: MessageId,
        /// Its place in the room.
        seq: Seq,
    },
    /// Every other member of the room has had it handed to its application.
    Delivered {
        /// The server's id.
        id: MessageId,
        /// Its place in the room.
        seq: Seq,
    },
    /// Every other member of the room has read it.
    Read {
        /// The server's id.
        id: MessageId,
        /// Its place in the room.
        seq: Seq,
    },
    /// It will not be sent unless retried.
    Failed {
        /// Why.
        reason: FailureReason,
    },
}

impl MessageState {
    /// True for `Queued` and `Sending`: the outbox still has to send it.
    pub fn is_pending(&self) -> bool {
        matches!(self, Self::Queued | Self::Sending { .. })
    }

    /// The server's `seq`, once it is known.
    pub fn seq(&self) -> Option<Seq> {
        match self {
            Self::Sent { seq, .. } | Self::Delivered { seq, .. } | Self::Read { seq, .. } => {
                Some(*seq)
            }
            _ => None,
        }
    }

    /// A short lowercase name: `queued`, `sending`, `sent`, `delivered`, `read`, `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending { .. } => "sending",
            Self::Sent { .. } => "sent",
            Self::Delivered { .. } => "delivered",
            Self::Read { .. } => "read",
            Self::Failed { .. } => "failed",
        }
    }

    /// Rank along the happy path, used so acknowledged states never move back.
    pub(crate) fn rank(&self) -> u8 {
        match self {
            Self::Queued | Self::Failed { .. } => 0,
            Self::Sending { .. } => 1,
            Self::Sent { .. } => 2,
            Self::Delivered { .. } => 3,
            Self::Read { .. } => 4,
        }
    }
}

impl std::fmt::Display for MessageState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A point on a message's way that [`SendHandle::wait_for`](crate::SendHandle::wait_for) can wait
/// for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Milestone {
    /// Stored by the server (`Sent` or later).
    Sent,
    /// Delivered to every other member (`Delivered` or later).
    Delivered,
    /// Read by every other member.
    Read,
}

impl Milestone {
    /// Whether `state` is at or past this milestone.
    pub fn reached_by(self, state: &MessageState) -> bool {
        let needed = match self {
            Self::Sent => 2,
            Self::Delivered => 3,
            Self::Read => 4,
        };
        state.rank() >= needed
    }
}

/// A message this client sends, as the outbox holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingMessage {
    /// The idempotency key, also the message's id in the outbox.
    pub client_id: ClientId,
    /// The room.
    pub room: RoomId,
    /// The text.
    pub body: String,
    /// The `seq` it answers, if any.
    pub reply_to: Option<Seq>,
    /// When it was queued, in milliseconds since the Unix epoch (local clock).
    pub queued_at: Timestamp,
    /// How many times it was handed to the server.
    pub attempts: u32,
    /// Where it is now.
    pub state: MessageState,
}
