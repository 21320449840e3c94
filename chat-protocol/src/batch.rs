//! `message:send_batch`, an extension: several messages in one request, stored in order.
//!
//! A client with several messages queued sends them in one request instead of one round trip
//! each; the server stores them in the order given, in one transaction. Each message gets an
//! answer of its own, shaped like a `message:send` ack, so one refused message (a body too
//! long, a room the sender left) refuses only itself.
//!
//! Order holds because the answers cover a *prefix* of the batch: when the server cannot
//! take a message for a reason that passes (`rate_limited`), that message's answer is the
//! last one, and nothing after it is stored. The client sends the rest again later, after
//! the refused one. A whole-request error (`internal`) means nothing of the batch was
//! stored.
//!
//! ```
//! use chat_protocol::batch::{SendBatch, SendBatchResult, SendOutcome};
//! use chat_protocol::requests::SendMessage;
//! use chat_protocol::{Body, ClientId, ErrorCode, RoomId};
//!
//! let message = SendMessage {
//!     room: RoomId::new("general").unwrap(),
//!     client_id: ClientId::new_random(),
//!     body: Body::new("hello").unwrap(),
//!     reply_to: None,
//! };
//! let request = serde_json::to_value(SendBatch { messages: vec![message] }).unwrap();
//! assert_eq!(request["messages"][0]["body"], "hello");
//!
//! let answer: SendBatchResult = chat_protocol::decode_ack(serde_json::json!({
//!     "ok": true,
//!     "results": [
//!         {"ok": true, "id": "general:7", "seq": 7, "ts": 1, "duplicate": false},
//!         {"ok": false, "error": {"code": "rate_limited", "message": "wait", "retry_after_ms": 50}}
//!     ]
//! })).unwrap();
//! assert!(matches!(&answer.results[0], SendOutcome(Ok(sent)) if sent.seq == 7));
//! assert!(matches!(&answer.results[1], SendOutcome(Err(e)) if e.code == ErrorCode::RateLimited));
//! ```

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::ack::{self, AckError, ErrorBody};
use crate::error::{decode_request, ErrorCode, ValidationError};
use crate::limits::MAX_SEND_BATCH;
use crate::requests::SendMessage;
use crate::results::SendResult;

/// The argument of `message:send_batch`: 1 to [`MAX_SEND_BATCH`] messages, in the order
/// they are to be stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendBatch {
    /// The messages, each as `message:send` takes it.
    pub messages: Vec<SendMessage>,
}

/// The result of `message:send_batch`: one answer per message, in the order sent, covering
/// a prefix of the batch (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendBatchResult {
    /// The answers.
    pub results: Vec<SendOutcome>,
}

/// One message's answer in a batch: what its own `message:send` would have answered, in
/// the same envelope (`{"ok": true, ...}` or `{"ok": false, "error": {...}}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendOutcome(pub Result<SendResult, ErrorBody>);

impl Serialize for SendOutcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Ok(result) => ack::ok(result).serialize(serializer),
            Err(error) => ack::err(error).serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for SendOutcome {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        match ack::decode_ack::<SendResult>(value) {
            Ok(result) => Ok(Self(Ok(result))),
            Err(AckError::Refused(error)) => Ok(Self(Err(error))),
            Err(AckError::Malformed(text)) => Err(serde::de::Error::custom(text)),
        }
    }
}

/// Reads a `message:send_batch` argument as a server must: the envelope is checked as a
/// whole (an object with 1 to [`MAX_SEND_BATCH`] messages), each message on its own, so one
/// malformed message is refused alone and the others are still stored.
///
/// ```
/// use chat_protocol::batch::decode_send_batch;
/// use chat_protocol::ErrorCode;
/// use serde_json::json;
///
/// let items = decode_send_batch(json!({"messages": [
///     {"room": "general", "client_id": "0b0d1f4c-1b0e-4a53-9d6c-3c2a1f0e9b7a", "body": "hi"},
///     {"room": "general", "client_id": "not a uuid", "body": "hi"},
/// ]})).unwrap();
/// assert!(items[0].is_ok());
/// assert_eq!(items[1].as_ref().unwrap_err().code, ErrorCode::InvalidPayload);
///
/// let refused = decode_send_batch(json!({"messages": []})).unwrap_err();
/// assert_eq!(refused.code, ErrorCode::InvalidPayload);
/// ```
pub fn decode_send_batch(
    argument: Value,
) -> Result<Vec<Result<SendMessage, ErrorBody>>, ErrorBody> {
    let Value::Object(mut envelope) = argument else {
        return Err(ErrorBody::new(
            ErrorCode::InvalidPayload,
            "the argument must be an object with `messages`",
        ));
    };
    let Some(Value::Array(messages)) = envelope.remove("messages") else {
        return Err(ErrorBody::new(
            ErrorCode::InvalidPayload,
            "`messages` must be an array of messages",
        ));
    };
    if messages.is_empty() {
        let error = ValidationError::Empty { what: "messages" };
        return Err(ErrorBody::new(error.code(), error.to_string()));
    }
    if messages.len() > MAX_SEND_BATCH {
        let error = ValidationError::TooMany {
            what: "messages",
            len: messages.len(),
            max: MAX_SEND_BATCH,
        };
        return Err(ErrorBody::new(error.code(), error.to_string()));
    }
    Ok(messages
        .into_iter()
        .map(|message| {
            decode_request::<SendMessage>(message)
                .map_err(|error| ErrorBody::new(error.code, error.message))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::MessageId;
    use serde_json::json;

    #[test]
    fn outcomes_round_trip_in_the_ack_envelope() {
        let outcomes = SendBatchResult {
            results: vec![
                SendOutcome(Ok(SendResult {
                    id: MessageId("r:1".into()),
                    seq: 1,
                    ts: 5,
                    duplicate: true,
                })),
                SendOutcome(Err(ErrorBody::rate_limited(30))),
            ],
        };
        let wire = serde_json::to_value(&outcomes).expect("serializes");
        assert_eq!(wire["results"][0]["ok"], true);
        assert_eq!(wire["results"][0]["seq"], 1);
        assert_eq!(wire["results"][1]["ok"], false);
        assert_eq!(wire["results"][1]["error"]["code"], "rate_limited");
        let back: SendBatchResult = serde_json::from_value(wire).expect("parses");
        assert_eq!(back, outcomes);
    }

    #[test]
    fn an_outcome_that_is_no_ack_is_refused() {
        let err = serde_json::from_value::<SendBatchResult>(json!({"results": [{"seq": 1}]}));
        assert!(err.is_err());
    }

    #[test]
    fn the_envelope_is_checked_whole_and_each_message_alone() {
        let too_many = json!({"messages": vec![json!({}); MAX_SEND_BATCH + 1]});
        assert_eq!(
            decode_send_batch(too_many).expect_err("too many").code,
            ErrorCode::TooLarge
        );
        assert_eq!(
            decode_send_batch(json!([1, 2]))
                .expect_err("no object")
                .code,
            ErrorCode::InvalidPayload
        );
        assert_eq!(
            decode_send_batch(json!({"messages": "x"}))
                .expect_err("no array")
                .code,
            ErrorCode::InvalidPayload
        );
        let long_body = "x".repeat(crate::limits::MAX_BODY_CHARS + 1);
        let items = decode_send_batch(json!({"messages": [
            {"room": "r", "client_id": "0b0d1f4c-1b0e-4a53-9d6c-3c2a1f0e9b7a", "body": long_body},
            "not an object",
            {"room": "r", "client_id": "0b0d1f4c-1b0e-4a53-9d6c-3c2a1f0e9b7b", "body": "ok"},
        ]}))
        .expect("envelope fine");
        assert_eq!(
            items[0].as_ref().expect_err("long").code,
            ErrorCode::TooLarge
        );
        assert_eq!(
            items[1].as_ref().expect_err("garbage").code,
            ErrorCode::InvalidPayload
        );
        assert!(items[2].is_ok());
    }
}
