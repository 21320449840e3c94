//! The SDK's reading of what a server says after the handshake: a text frame goes through
//! the WebSocket transport's parser; an event is decoded into the protocol type its name
//! selects, as the SDK's receive loop does; an ack is decoded (`chat_protocol::decode_ack`)
//! as each request's result type, as the outbox and the client's requests do; a
//! `CONNECT_ERROR` becomes a typed refusal. Nothing may panic, and what decodes survives a
//! serde round trip unchanged.
#![no_main]

use chat_protocol::batch::SendBatchResult;
use chat_protocol::events::names;
use chat_protocol::results::{
    DeliveredResult, JoinResult, LeaveResult, PresenceResult, ReadResult, ResumeResult, SendResult,
    SyncResult,
};
use chat_protocol::{decode_ack, Message, Presence, ReceiptUpdate, RoomMember, TypingUpdate};
use chat_sdk::transport::fuzzing::{parse_server_frame, ServerFrame};
use chat_sdk::TransportError;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

fn round_trip<T>(value: &T)
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    let wire = serde_json::to_value(value).expect("a decoded value serializes");
    let again: T = serde_json::from_value(wire).expect("a serialized value decodes");
    assert_eq!(&again, value, "a value changed in a round trip");
}

fn event<T>(payload: Value)
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(decoded) = serde_json::from_value::<T>(payload) {
        round_trip(&decoded);
    }
}

fn ack<T>(value: &Value)
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(result) = decode_ack::<T>(value.clone()) {
        round_trip(&result);
    }
}

fuzz_target!(|data: &[u8]| {
    // tungstenite hands over text frames only once they are valid UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_server_frame(text) {
        ServerFrame::Event(inbound) => match inbound.event.as_str() {
            names::MESSAGE_NEW => event::<Message>(inbound.payload),
            names::RECEIPT_UPDATE => event::<ReceiptUpdate>(inbound.payload),
            names::TYPING_UPDATE => event::<TypingUpdate>(inbound.payload),
            names::PRESENCE_UPDATE => event::<Presence>(inbound.payload),
            names::ROOM_MEMBER => event::<RoomMember>(inbound.payload),
            _ => {}
        },
        ServerFrame::Ack { value, .. } => {
            ack::<JoinResult>(&value);
            ack::<LeaveResult>(&value);
            ack::<SendResult>(&value);
            ack::<SyncResult>(&value);
            ack::<DeliveredResult>(&value);
            ack::<ReadResult>(&value);
            ack::<PresenceResult>(&value);
            ack::<ResumeResult>(&value);
            ack::<SendBatchResult>(&value);
        }
        ServerFrame::ConnectError(error) => {
            assert!(matches!(error, TransportError::Refused { .. }), "{error:?}")
        }
        _ => {}
    }
});
