//! Token checking on connect (`chat_server::auth::verify_token`), reached three ways by the
//! input's first byte:
//!
//! - `r`: the rest is a token string, as a client may send anything;
//! - `c`: the rest is a Socket.IO CONNECT packet; its auth object is read as the server's
//!   connect middleware reads it (socketioxide's `TryData`, `{"token", "device"?}`) and its
//!   token checked;
//! - `j`: the rest is a claims object, signed with the server's secret, so the checks after
//!   the signature (`exp`, `nbf`, `iat`, `sub` as a user id) see arbitrary claims too.
//!
//! Nothing may panic, and a token that verifies names a valid user id.
#![no_main]

use jsonwebtoken::{EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use socketioxide_core::packet::PacketData;
use socketioxide_core::parser::{Parse, ParseConfig, ParserState};
use socketioxide_core::Str;
use socketioxide_parser_common::CommonParser;

const SECRET: &str = "fuzz-secret";

/// The Socket.IO `auth` object as chat-server's connect middleware declares it.
#[derive(Deserialize)]
#[allow(dead_code)]
struct AuthPayload {
    token: String,
    #[serde(default)]
    device: Option<String>,
}

fn verify(token: &str) {
    if let Ok(user) = chat_server::auth::verify_token(SECRET, token) {
        assert!(chat_protocol::UserId::new(user.as_str()).is_ok());
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut chars = text.chars();
    let mode = chars.next();
    let rest = chars.as_str();
    match mode {
        Some('c') => {
            let state = ParserState::default();
            let packet = CommonParser.decode_str(
                &ParseConfig::default(),
                &state,
                Str::from(rest.to_owned()),
            );
            if let Ok(packet) = packet {
                if let PacketData::Connect(auth) = &packet.inner {
                    let auth: Result<AuthPayload, _> = CommonParser.decode_default(auth.as_ref());
                    if let Ok(auth) = auth {
                        verify(&auth.token);
                    }
                }
            }
        }
        Some('j') => {
            let Ok(claims) = serde_json::from_str::<serde_json::Value>(rest) else {
                return;
            };
            let key = EncodingKey::from_secret(SECRET.as_bytes());
            if let Ok(token) = jsonwebtoken::encode(&Header::default(), &claims, &key) {
                verify(&token);
            }
        }
        _ => verify(rest),
    }
});
