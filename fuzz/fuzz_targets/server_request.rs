//! The server's reading of a request: a Socket.IO packet as the server receives it (the
//! payload of an Engine.IO message frame), parsed by socketioxide's own parser, its
//! argument extracted as `TryData<Value>` does, then decoded and validated by
//! `chat_protocol` for the request type its event name selects, as chat-server's handlers
//! do. Nothing may panic; a request that decodes must survive a serde round trip unchanged.
#![no_main]

use chat_protocol::batch::decode_send_batch;
use chat_protocol::requests::{
    names, PresenceGet, Receipt, ResumeRooms, RoomRequest, SendMessage, SyncMessages,
};
use chat_protocol::{decode_request, ErrorCode};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use socketioxide_core::packet::PacketData;
use socketioxide_core::parser::{Parse, ParseConfig, ParserState};
use socketioxide_core::{Str, Value as SioValue};
use socketioxide_parser_common::CommonParser;

/// Decodes like the server and checks what a decoded request must satisfy.
fn decode<T>(argument: Value)
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    match decode_request::<T>(argument) {
        Ok(request) => {
            let wire = serde_json::to_value(&request).expect("a decoded request serializes");
            let again = decode_request::<T>(wire).expect("a serialized request decodes");
            assert_eq!(again, request, "a request changed in a round trip");
        }
        Err(error) => assert!(
            matches!(error.code, ErrorCode::InvalidPayload | ErrorCode::TooLarge),
            "{error:?}"
        ),
    }
}

fn handle(event: &str, argument: Value) {
    match event {
        names::ROOM_JOIN | names::ROOM_LEAVE | names::TYPING_START | names::TYPING_STOP => {
            decode::<RoomRequest>(argument)
        }
        names::MESSAGE_SEND => decode::<SendMessage>(argument),
        names::MESSAGE_SYNC => decode::<SyncMessages>(argument),
        names::RECEIPT_DELIVERED | names::RECEIPT_READ => decode::<Receipt>(argument),
        names::PRESENCE_GET => decode::<PresenceGet>(argument),
        names::ROOM_RESUME => decode::<ResumeRooms>(argument),
        names::MESSAGE_SEND_BATCH => {
            if let Ok(items) = decode_send_batch(argument) {
                assert!(!items.is_empty() && items.len() <= chat_protocol::limits::MAX_SEND_BATCH);
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    // Engine.IO hands the Socket.IO layer text frames only once they are valid UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let state = ParserState::default();
    let packet =
        CommonParser.decode_str(&ParseConfig::default(), &state, Str::from(text.to_owned()));
    let Ok(packet) = packet else {
        return;
    };
    if let PacketData::Event(mut value, _ack) = packet.inner {
        let Ok(event) = CommonParser.read_event(&value).map(str::to_owned) else {
            return;
        };
        let argument: Result<Value, _> = CommonParser.decode_value(&mut value, true);
        if let Ok(argument) = argument {
            handle(&event, argument);
        }
        // The event name decides the handler whatever the argument; `SioValue` is kept
        // referenced so a change of socketioxide's value type fails this build.
        let _: &SioValue = &value;
    }
});
