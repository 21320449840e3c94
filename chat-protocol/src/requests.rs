//! Client → server requests, one struct per event, and the event names.
//!
//! Unknown fields are ignored so that newer clients may add optional fields.

use serde::{Deserialize, Deserializer, Serialize};

use crate::body::Body;
use crate::error::ValidationError;
use crate::ids::{ClientId, RoomId, Seq, UserId};
use crate::limits::{MAX_PRESENCE_USERS, MAX_RESUME_ROOMS, MAX_SYNC_LIMIT};

/// Event names of the client → server requests.
pub mod names {
    /// `room:join`
    pub const ROOM_JOIN: &str = "room:join";
    /// `room:leave`
    pub const ROOM_LEAVE: &str = "room:leave";
    /// `message:send`
    pub const MESSAGE_SEND: &str = "message:send";
    /// `message:sync`
    pub const MESSAGE_SYNC: &str = "message:sync";
    /// `receipt:delivered`
    pub const RECEIPT_DELIVERED: &str = "receipt:delivered";
    /// `receipt:read`
    pub const RECEIPT_READ: &str = "receipt:read";
    /// `typing:start`
    pub const TYPING_START: &str = "typing:start";
    /// `typing:stop`
    pub const TYPING_STOP: &str = "typing:stop";
    /// `presence:get`
    pub const PRESENCE_GET: &str = "presence:get";
    /// `room:resume`: an extension of this server (see [`ResumeRooms`](super::ResumeRooms)).
    pub const ROOM_RESUME: &str = "room:resume";
    /// `message:send_batch`: an extension of this server (see
    /// [`SendBatch`](crate::batch::SendBatch)).
    pub const MESSAGE_SEND_BATCH: &str = "message:send_batch";
}

/// Names of the optional extensions a server announces in the `extensions` of a
/// `room:join` answer.
pub mod extensions {
    /// The server answers `room:resume`.
    pub const ROOM_RESUME: &str = "room:resume";
    /// The server answers `message:send_batch`.
    pub const MESSAGE_SEND_BATCH: &str = "message:send_batch";
}

/// The argument of `room:join`, `room:leave`, `typing:start` and `typing:stop`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomRequest {
    /// The room.
    pub room: RoomId,
}

/// `room:join`.
pub type JoinRoom = RoomRequest;
/// `room:leave`.
pub type LeaveRoom = RoomRequest;
/// `typing:start` and `typing:stop`.
pub type Typing = RoomRequest;

/// `message:send`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendMessage {
    /// The room to send to.
    pub room: RoomId,
    /// The sender's idempotency key.
    pub client_id: ClientId,
    /// The text.
    pub body: Body,
    /// The `seq` of the message this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Seq>,
}

/// `message:sync`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncMessages {
    /// The room.
    pub room: RoomId,
    /// Messages with a `seq` greater than this are returned.
    pub after_seq: Seq,
    /// How many at most (1–500, default 100).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "sync_limit"
    )]
    pub limit: Option<u32>,
}

fn sync_limit<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    let limit = Option::<u32>::deserialize(deserializer)?;
    match limit {
        Some(n) if n == 0 || n > MAX_SYNC_LIMIT => {
            Err(serde::de::Error::custom(ValidationError::OutOfRange {
                what: "limit",
                min: 1,
                max: u64::from(MAX_SYNC_LIMIT),
            }))
        }
        other => Ok(other),
    }
}

/// `room:resume`, an extension: re-join many rooms and catch each up in one round trip.
///
/// A server that offers it says so in the `extensions` of its `room:join` answer; one that
/// does not never answers it, so a client sends it only to a server that announced it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeRooms {
    /// The rooms, each at most once (1–1,000).
    #[serde(deserialize_with = "resume_rooms")]
    pub rooms: Vec<ResumeRoom>,
    /// How many missed messages per room at most (1–500, default 100).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "sync_limit"
    )]
    pub limit: Option<u32>,
}

/// One room of a [`ResumeRooms`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeRoom {
    /// The room, joined if the caller is not a member yet.
    pub room: RoomId,
    /// Missed messages are those with a greater `seq`; absent: after the caller's delivered
    /// watermark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_seq: Option<Seq>,
}

fn resume_rooms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<ResumeRoom>, D::Error> {
    let rooms = Vec::<ResumeRoom>::deserialize(deserializer)?;
    if rooms.is_empty() {
        return Err(serde::de::Error::custom(ValidationError::Empty {
            what: "rooms",
        }));
    }
    if rooms.len() > MAX_RESUME_ROOMS {
        return Err(serde::de::Error::custom(ValidationError::TooMany {
            what: "rooms",
            len: rooms.len(),
            max: MAX_RESUME_ROOMS,
        }));
    }
    let mut seen = std::collections::HashSet::with_capacity(rooms.len());
    for entry in &rooms {
        if !seen.insert(&entry.room) {
            return Err(serde::de::Error::custom(ValidationError::Repeated {
                what: "rooms",
                item: entry.room.to_string(),
            }));
        }
    }
    Ok(rooms)
}

/// `receipt:delivered` and `receipt:read`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The room.
    pub room: RoomId,
    /// The watermark to move to (capped at the room's `last_seq`).
    pub up_to_seq: Seq,
}

/// `presence:get`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceGet {
    /// The users asked about (at most 100).
    #[serde(deserialize_with = "presence_users")]
    pub users: Vec<UserId>,
}

fn presence_users<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<UserId>, D::Error> {
    let users = Vec::<UserId>::deserialize(deserializer)?;
    if users.len() > MAX_PRESENCE_USERS {
        return Err(serde::de::Error::custom(ValidationError::TooMany {
            what: "users",
            len: users.len(),
            max: MAX_PRESENCE_USERS,
        }));
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{decode_request, ErrorCode};
    use serde_json::json;

    #[test]
    fn oversized_body_is_too_large_and_bad_shape_is_invalid() {
        let big = "x".repeat(4_001);
        let err = decode_request::<SendMessage>(json!({
            "room": "r", "client_id": ClientId::new_random(), "body": big
        }))
        .expect_err("too long");
        assert_eq!(err.code, ErrorCode::TooLarge);

        let err = decode_request::<SendMessage>(json!({
            "room": "r", "client_id": "nope", "body": "hi"
        }))
        .expect_err("bad uuid");
        assert_eq!(err.code, ErrorCode::InvalidPayload);

        let err = decode_request::<SendMessage>(json!("just a string")).expect_err("not object");
        assert_eq!(err.code, ErrorCode::InvalidPayload);
    }

    #[test]
    fn sync_limit_is_range_checked() {
        let ok: SyncMessages =
            decode_request(json!({"room": "r", "after_seq": 0})).expect("no limit");
        assert_eq!(ok.limit, None);
        assert!(
            decode_request::<SyncMessages>(json!({"room": "r", "after_seq": 0, "limit": 0}))
                .is_err()
        );
        assert!(
            decode_request::<SyncMessages>(json!({"room": "r", "after_seq": 0, "limit": 501}))
                .is_err()
        );
        assert!(decode_request::<SyncMessages>(json!({"room": "r", "after_seq": -1})).is_err());
    }

    #[test]
    fn presence_get_caps_the_user_list() {
        let users: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
        let err = decode_request::<PresenceGet>(json!({ "users": users })).expect_err("101 users");
        assert_eq!(err.code, ErrorCode::TooLarge);
    }

    #[test]
    fn resume_rooms_are_counted_and_distinct() {
        let ok: ResumeRooms =
            decode_request(json!({"rooms": [{"room": "a", "after_seq": 3}, {"room": "b"}]}))
                .expect("two rooms");
        assert_eq!(ok.rooms[1].after_seq, None);
        let err = decode_request::<ResumeRooms>(json!({"rooms": []})).expect_err("empty");
        assert_eq!(err.code, ErrorCode::InvalidPayload);
        let err = decode_request::<ResumeRooms>(json!({"rooms": [{"room": "a"}, {"room": "a"}]}))
            .expect_err("repeated");
        assert_eq!(err.code, ErrorCode::InvalidPayload);
        let rooms: Vec<_> = (0..=MAX_RESUME_ROOMS)
            .map(|i| json!({"room": format!("r{i}")}))
            .collect();
        let err = decode_request::<ResumeRooms>(json!({ "rooms": rooms })).expect_err("too many");
        assert_eq!(err.code, ErrorCode::TooLarge);
        assert!(
            decode_request::<ResumeRooms>(json!({"rooms": [{"room": "a"}], "limit": 501})).is_err()
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let req: Receipt =
            decode_request(json!({"room": "r", "up_to_seq": 3, "extra": true})).expect("lenient");
        assert_eq!(req.up_to_seq, 3);
    }
}
