//! Reading the server's Engine.IO 4 / Socket.IO 5 text frames, apart from any socket.
//!
//! A server is network input like any other: a broken or malicious one may send anything.
//! Everything the WebSocket transport learns from a frame goes through [`parse_server_frame`]
//! and [`heartbeat_from_open`], which are pure functions of the frame's text, so they can be
//! unit-tested and fuzzed (`fuzz/fuzz_targets/sdk_frame.rs`, `sdk_inbound.rs`) without a
//! socket. Neither panics, allocates more than the frame's size, or trusts a number it reads.

use std::time::Duration;

use serde_json::Value;

use super::{parse_connect_error, Inbound};
use crate::error::TransportError;

/// Heartbeat used when the server's handshake names none (Engine.IO's defaults).
const DEFAULT_PING_INTERVAL_MS: u64 = 25_000;
const DEFAULT_PING_TIMEOUT_MS: u64 = 20_000;

/// The longest heartbeat deadline a server may announce: a larger `pingInterval +
/// pingTimeout` is cut to this, so a server cannot switch off the detection of a silent
/// link by announcing a huge one.
pub const MAX_HEARTBEAT: Duration = Duration::from_secs(10 * 60);

/// What one text frame from the server says.
#[derive(Debug, PartialEq)]
pub enum ServerFrame {
    /// Engine.IO `OPEN` (`0{...}`): the handshake's first packet. Its JSON is read by
    /// [`heartbeat_from_open`].
    Open(String),
    /// Engine.IO `PING` (`2`): answer with a pong.
    Ping,
    /// Engine.IO `CLOSE` (`1`) or Socket.IO `DISCONNECT` (`41`): the server ends the link.
    Close,
    /// Socket.IO `CONNECT` (`40...`): the server admitted the socket.
    Connected,
    /// Socket.IO `CONNECT_ERROR` (`44...`): the server refused the socket.
    ConnectError(TransportError),
    /// Socket.IO `EVENT` (`42[...]`) with a name and its first argument.
    Event(Inbound),
    /// Socket.IO `ACK` (`43<id>[...]`): the answer to request `id`.
    Ack {
        /// The request's ack id.
        id: u64,
        /// The ack's argument: the JSON, or the text as a string when it is not JSON (the
        /// request then sees a malformed answer).
        value: Value,
    },
    /// A frame that carries nothing for this client (a pong, a noop, a binary-event
    /// header, another namespace, ...): ignored.
    Ignored,
    /// A frame that breaks the protocol; ignored too, with this reason logged.
    Malformed(&'static str),
}

/// Reads one text frame from the server.
pub fn parse_server_frame(text: &str) -> ServerFrame {
    let mut chars = text.chars();
    match chars.next() {
        Some('0') => ServerFrame::Open(chars.as_str().to_owned()),
        Some('1') => ServerFrame::Close,
        Some('2') => ServerFrame::Ping,
        Some('4') => parse_socketio(chars.as_str()),
        // `3` pong, `5` upgrade, `6` noop: nothing to do.
        Some('3' | '5' | '6') => ServerFrame::Ignored,
        _ => ServerFrame::Malformed("not an Engine.IO packet"),
    }
}

/// Reads one Socket.IO packet (what follows Engine.IO's `4`).
fn parse_socketio(packet: &str) -> ServerFrame {
    let mut chars = packet.chars();
    let kind = chars.next();
    let rest = chars.as_str();
    match kind {
        Some('0') => ServerFrame::Connected,
        Some('1') => ServerFrame::Close,
        Some('2') => parse_event(rest),
        Some('3') => parse_ack(rest),
        Some('4') => ServerFrame::ConnectError(parse_connect_error(rest)),
        // Binary events and acks (`5`, `6`) are not part of this protocol.
        Some('5' | '6') => ServerFrame::Malformed("binary Socket.IO packets are not used"),
        _ => ServerFrame::Malformed("not a Socket.IO packet"),
    }
}

fn parse_event(rest: &str) -> ServerFrame {
    if rest.starts_with('/') {
        // Another namespace (`/ns,...`): this client speaks only the default one.
        return ServerFrame::Ignored;
    }
    // A server asking for an ack of its event (`42<id>[...]`): the id is skipped, this
    // protocol has no server → client requests.
    let (_, json) = split_ack_id(rest);
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(json) else {
        return ServerFrame::Malformed("an event that is not a JSON array");
    };
    let mut items = items.into_iter();
    let Some(Value::String(event)) = items.next() else {
        return ServerFrame::Malformed("an event without a name");
    };
    let payload = items.next().unwrap_or(Value::Null);
    ServerFrame::Event(Inbound { event, payload })
}

fn parse_ack(rest: &str) -> ServerFrame {
    if rest.starts_with('/') {
        return ServerFrame::Ignored;
    }
    let (id, json) = split_ack_id(rest);
    let Some(id) = id else {
        return ServerFrame::Malformed("an ack without a readable id");
    };
    let value = match serde_json::from_str::<Value>(json) {
        Ok(value) => value,
        // Unreadable: the request sees it as a malformed ack.
        Err(_) => Value::String(json.to_owned()),
    };
    ServerFrame::Ack { id, value }
}

/// A Socket.IO packet after its type: optional ack id digits, then a JSON array. An id
/// too large for a `u64` reads as none.
pub(crate) fn split_ack_id(data: &str) -> (Option<u64>, &str) {
    let digits = data.bytes().take_while(u8::is_ascii_digit).count();
    // ASCII digits are one byte each, so `digits` is a character boundary.
    let (id, rest) = data.split_at(digits);
    (id.parse().ok(), rest)
}

/// The heartbeat deadline (`pingInterval + pingTimeout`, at most [`MAX_HEARTBEAT`]) from an
/// Engine.IO `OPEN` packet's JSON.
pub fn heartbeat_from_open(open: &str) -> Result<Duration, TransportError> {
    let value: Value = serde_json::from_str(open)
        .map_err(|e| TransportError::Protocol(format!("bad Engine.IO open packet: {e}")))?;
    if !value.is_object() {
        return Err(TransportError::Protocol(
            "bad Engine.IO open packet: not a JSON object".into(),
        ));
    }
    let field =
        |name: &str, default: u64| value.get(name).and_then(Value::as_u64).unwrap_or(default);
    let millis = field("pingInterval", DEFAULT_PING_INTERVAL_MS)
        .saturating_add(field("pingTimeout", DEFAULT_PING_TIMEOUT_MS));
    Ok(Duration::from_millis(millis).min(MAX_HEARTBEAT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::ErrorCode;
    use serde_json::json;

    #[test]
    fn ack_ids_are_read_before_the_json() {
        assert_eq!(split_ack_id("12[1]"), (Some(12), "[1]"));
        assert_eq!(split_ack_id("[\"e\"]"), (None, "[\"e\"]"));
        assert_eq!(split_ack_id("99999999999999999999999[1]").0, None);
    }

    #[test]
    fn heartbeat_is_interval_plus_timeout_within_a_cap() {
        assert_eq!(
            heartbeat_from_open(r#"{"sid":"x","pingInterval":300,"pingTimeout":200}"#)
                .expect("open"),
            Duration::from_millis(500)
        );
        assert_eq!(
            heartbeat_from_open("{}").expect("defaults"),
            Duration::from_millis(45_000)
        );
        assert!(heartbeat_from_open("not json").is_err());
        assert!(heartbeat_from_open("[1]").is_err());
    }

    /// Regression: `u64::MAX + 1` overflowed (a panic in a debug build, a tiny deadline
    /// in a release one, so every connection died at once).
    #[test]
    fn a_huge_announced_heartbeat_is_capped_not_overflowed() {
        let open = format!(
            r#"{{"pingInterval":{},"pingTimeout":{}}}"#,
            u64::MAX,
            u64::MAX
        );
        assert_eq!(heartbeat_from_open(&open).expect("open"), MAX_HEARTBEAT);
    }

    /// Regression: a multi-byte character right after the Engine.IO `4` made the reader
    /// split a string inside a character, a panic that killed the read task.
    #[test]
    fn a_multibyte_character_where_a_packet_type_goes_is_malformed_not_a_panic() {
        for frame in ["4é", "4\u{1F600}[1]", "é", "42é", "43é"] {
            let _ = parse_server_frame(frame);
        }
        assert!(matches!(
            parse_server_frame("4é"),
            ServerFrame::Malformed(_)
        ));
    }

    #[test]
    fn frames_are_read_as_the_protocol_gives_them() {
        assert_eq!(parse_server_frame("2"), ServerFrame::Ping);
        assert_eq!(parse_server_frame("1"), ServerFrame::Close);
        assert_eq!(parse_server_frame("41"), ServerFrame::Close);
        assert_eq!(parse_server_frame("3"), ServerFrame::Ignored);
        assert_eq!(
            parse_server_frame("40{\"sid\":\"a\"}"),
            ServerFrame::Connected
        );
        assert_eq!(
            parse_server_frame("0{\"sid\":\"a\"}"),
            ServerFrame::Open("{\"sid\":\"a\"}".into())
        );
        assert_eq!(
            parse_server_frame(r#"42["message:new",{"a":1},2]"#),
            ServerFrame::Event(Inbound {
                event: "message:new".into(),
                payload: json!({"a": 1}),
            })
        );
        assert_eq!(
            parse_server_frame(r#"4212["e"]"#),
            ServerFrame::Event(Inbound {
                event: "e".into(),
                payload: Value::Null,
            })
        );
        assert_eq!(
            parse_server_frame(r#"435[{"ok":true}]"#),
            ServerFrame::Ack {
                id: 5,
                value: json!([{"ok": true}]),
            }
        );
        assert_eq!(
            parse_server_frame("435nope"),
            ServerFrame::Ack {
                id: 5,
                value: json!("nope"),
            }
        );
        assert!(matches!(
            parse_server_frame(r#"44{"message":"unauthorized"}"#),
            ServerFrame::ConnectError(TransportError::Refused {
                code: ErrorCode::Unauthorized,
                ..
            })
        ));
        assert_eq!(
            parse_server_frame(r#"42/admin,["e"]"#),
            ServerFrame::Ignored
        );
        for garbage in [
            "", "hello", "{}", "42", "42{}", "42[1]", "43[1]", "45", "4x",
        ] {
            assert!(
                matches!(parse_server_frame(garbage), ServerFrame::Malformed(_)),
                "{garbage:?}"
            );
        }
    }
}
