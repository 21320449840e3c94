//! Properties of the wire types, checked on generated values rather than a few examples.
//!
//! The snapshot tests pin what one value looks like on the wire; these check what must hold
//! for every value: every request, result and event survives a serde round trip; the
//! validation limits of `chat_protocol::limits` (id lengths and characters, body length,
//! `seq` and `limit` ranges, list and batch sizes) accept exactly what they promise, up to
//! the boundary and not one past it; and decoding arbitrary JSON as any request or ack
//! never panics and fails only with `invalid_payload` or `too_large`.

use chat_protocol::batch::{decode_send_batch, SendBatch, SendBatchResult, SendOutcome};
use chat_protocol::events::{Message, Presence, ReceiptUpdate, RoomMember, TypingUpdate};
use chat_protocol::limits::{
    MAX_BODY_CHARS, MAX_ID_CHARS, MAX_PRESENCE_USERS, MAX_RESUME_ROOMS, MAX_SEND_BATCH,
    MAX_SYNC_LIMIT,
};
use chat_protocol::requests::{
    PresenceGet, Receipt, ResumeRoom, ResumeRooms, RoomRequest, SendMessage, SyncMessages,
};
use chat_protocol::results::{
    DeliveredResult, JoinResult, LeaveResult, MemberWatermarks, PresenceResult, ReadResult,
    ResumeResult, ResumedRoom, SendResult, SyncResult,
};
use chat_protocol::{
    ack, decode_ack, decode_request, AckError, Body, ClientId, ErrorBody, ErrorCode, MessageId,
    RoomId, UserId,
};
use proptest::collection::vec;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

// ---- generators -------------------------------------------------------------------------

const ID_CHARS: &str = "[A-Za-z0-9_.-]";

fn id_text() -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("{ID_CHARS}{{1,{MAX_ID_CHARS}}}")).expect("regex")
}

fn room_id() -> impl Strategy<Value = RoomId> {
    id_text().prop_map(|s| RoomId::new(s).expect("generated ids are valid"))
}

fn user_id() -> impl Strategy<Value = UserId> {
    id_text().prop_map(|s| UserId::new(s).expect("generated ids are valid"))
}

fn client_id() -> impl Strategy<Value = ClientId> {
    any::<u128>().prop_map(|n| ClientId::from_uuid(uuid::Uuid::from_u128(n)))
}

/// A character a body may hold: anything but a control character other than `\n`, `\t`.
fn body_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range(' ', '~'),
        1 => Just('\n'),
        1 => Just('\t'),
        2 => any::<char>().prop_filter("no control", |c| !c.is_control()),
    ]
}

/// A valid body: up to the limit, not blank.
fn body_text(max: usize) -> impl Strategy<Value = String> {
    (
        vec(body_char(), 0..max),
        proptest::char::range('!', '~'),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(mut chars, visible, at)| {
            // One visible character somewhere, so it is never blank.
            let at = at.index(chars.len() + 1);
            chars.insert(at, visible);
            chars.into_iter().collect()
        })
}

fn body() -> impl Strategy<Value = Body> {
    body_text(200).prop_map(|s| Body::new(s).expect("generated bodies are valid"))
}

fn send_message() -> impl Strategy<Value = SendMessage> {
    (room_id(), client_id(), body(), any::<Option<u64>>()).prop_map(
        |(room, client_id, body, reply_to)| SendMessage {
            room,
            client_id,
            body,
            reply_to,
        },
    )
}

fn message() -> impl Strategy<Value = Message> {
    (
        room_id(),
        ".{0,40}",
        any::<u64>(),
        client_id(),
        user_id(),
        body(),
        any::<i64>(),
        any::<Option<u64>>(),
    )
        .prop_map(
            |(room, id, seq, client_id, sender, body, ts, reply_to)| Message {
                room,
                id: MessageId(id),
                seq,
                client_id,
                sender,
                body,
                ts,
                reply_to,
            },
        )
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        Just(ErrorCode::InvalidPayload),
        Just(ErrorCode::TooLarge),
        Just(ErrorCode::Unauthorized),
        Just(ErrorCode::Forbidden),
        Just(ErrorCode::RateLimited),
        Just(ErrorCode::Internal),
        Just(ErrorCode::TooManyConnections),
        Just(ErrorCode::Unknown),
    ]
}

fn error_body() -> impl Strategy<Value = ErrorBody> {
    (error_code(), ".{0,40}", any::<Option<u64>>()).prop_map(|(code, message, retry_after_ms)| {
        ErrorBody {
            code,
            message,
            retry_after_ms,
        }
    })
}

fn watermarks() -> impl Strategy<Value = MemberWatermarks> {
    (user_id(), any::<u64>(), any::<u64>()).prop_map(|(user, delivered_seq, read_seq)| {
        MemberWatermarks {
            user,
            delivered_seq,
            read_seq,
        }
    })
}

fn join_result() -> impl Strategy<Value = JoinResult> {
    (
        room_id(),
        any::<u64>(),
        vec(user_id(), 0..4),
        any::<u64>(),
        any::<u64>(),
        vec(watermarks(), 0..4),
        vec("[a-z:_]{1,20}", 0..3),
    )
        .prop_map(
            |(room, last_seq, members, delivered_seq, read_seq, watermarks, extensions)| {
                JoinResult {
                    room,
                    last_seq,
                    members,
                    delivered_seq,
                    read_seq,
                    watermarks,
                    extensions,
                }
            },
        )
}

fn send_result() -> impl Strategy<Value = SendResult> {
    (".{0,40}", any::<u64>(), any::<i64>(), any::<bool>()).prop_map(|(id, seq, ts, duplicate)| {
        SendResult {
            id: MessageId(id),
            seq,
            ts,
            duplicate,
        }
    })
}

/// Any JSON value, biased towards the shapes of this protocol (its field names, ids,
/// numbers around the limits), so decoding gets past the first field often.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        3 => prop::sample::select(vec![
            "room", "rooms", "client_id", "body", "reply_to", "after_seq", "limit", "up_to_seq",
            "users", "messages", "ok", "error", "code", "message", "retry_after_ms", "id", "seq",
            "ts", "duplicate", "results", "last_seq", "members", "delivered_seq", "read_seq",
            "has_more", "presence", "user", "online", "last_seen", "typing", "joined",
        ])
        .prop_map(str::to_owned),
        1 => ".{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![
            Just(0u64),
            Just(1),
            Just(100),
            Just(101),
            Just(500),
            Just(501),
            Just(1000),
            Just(1001)
        ]
        .prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        id_text().prop_map(Value::from),
        Just(Value::from("0b0d1f4c-1b0e-4a53-9d6c-3c2a1f0e9b7a")),
        ".{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..8).prop_map(Value::Array),
            vec((key.clone(), inner), 0..8)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

// ---- helpers ----------------------------------------------------------------------------

/// How a value travels: as a request the server decodes, as an event (plain serde), or as
/// a result inside the success ack a client reads.
#[derive(Clone, Copy)]
enum Wire {
    Request,
    Event,
    Ack,
}

/// Sends `value` over `wire` and back, and compares.
fn round_trip<T>(wire: Wire, value: &T) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let (json, back) = match wire {
        Wire::Request => {
            let json = serde_json::to_value(value).expect("serializes");
            (
                json.clone(),
                decode_request::<T>(json).map_err(|e| e.to_string()),
            )
        }
        Wire::Event => {
            let text = serde_json::to_string(value).expect("serializes");
            let json = Value::String(text.clone());
            (
                json,
                serde_json::from_str::<T>(&text).map_err(|e| e.to_string()),
            )
        }
        Wire::Ack => {
            let json = ack::ok(value);
            (
                json.clone(),
                decode_ack::<T>(json).map_err(|e| e.to_string()),
            )
        }
    };
    let back = back.map_err(|e| TestCaseError::fail(format!("{json} does not decode: {e}")))?;
    prop_assert_eq!(&back, value);
    Ok(())
}

fn code_of<T: DeserializeOwned>(value: Value) -> Option<ErrorCode> {
    decode_request::<T>(value).err().map(|e| e.code)
}

// ---- round trips ------------------------------------------------------------------------

proptest! {
    #[test]
    fn requests_round_trip(
        room in room_id(),
        send in send_message(),
        after_seq in any::<u64>(),
        limit in proptest::option::of(1..=MAX_SYNC_LIMIT),
        users in vec(user_id(), 0..=MAX_PRESENCE_USERS),
        resume in vec((room_id(), any::<Option<u64>>()), 1..20),
        batch in vec(send_message(), 1..5),
    ) {
        round_trip(Wire::Request, &RoomRequest { room: room.clone() })?;
        round_trip(Wire::Request, &send)?;
        round_trip(Wire::Request, &SyncMessages { room: room.clone(), after_seq, limit })?;
        round_trip(Wire::Request, &Receipt { room: room.clone(), up_to_seq: after_seq })?;
        round_trip(Wire::Request, &PresenceGet { users })?;
        let mut seen = std::collections::HashSet::new();
        let rooms: Vec<ResumeRoom> = resume
            .into_iter()
            .filter(|(room, _)| seen.insert(room.clone()))
            .map(|(room, after_seq)| ResumeRoom { room, after_seq })
            .collect();
        round_trip(Wire::Request, &ResumeRooms { rooms, limit })?;
        let request = SendBatch { messages: batch.clone() };
        round_trip(Wire::Request, &request)?;
        let items = decode_send_batch(serde_json::to_value(&request).expect("serializes"))
            .map_err(|e| TestCaseError::fail(format!("batch refused: {e:?}")))?;
        let items: Vec<SendMessage> = items.into_iter().map(|item| item.expect("each decodes")).collect();
        prop_assert_eq!(items, batch);
    }

    #[test]
    fn events_round_trip(
        message in message(),
        room in room_id(),
        user in user_id(),
        seqs in any::<(u64, u64)>(),
        flag in any::<bool>(),
        last_seen in any::<Option<i64>>(),
    ) {
        round_trip(Wire::Event, &message)?;
        round_trip(Wire::Event, &ReceiptUpdate {
            room: room.clone(), user: user.clone(), delivered_seq: seqs.0, read_seq: seqs.1,
        })?;
        round_trip(Wire::Event, &TypingUpdate { room: room.clone(), user: user.clone(), typing: flag })?;
        round_trip(Wire::Event, &Presence { user: user.clone(), online: flag, last_seen })?;
        round_trip(Wire::Event, &RoomMember { room, user, joined: flag })?;
    }

    #[test]
    fn results_round_trip_in_their_ack(
        join in join_result(),
        sent in send_result(),
        messages in vec(message(), 0..4),
        seqs in any::<(u64, u64)>(),
        flag in any::<bool>(),
        presence in vec((user_id(), any::<bool>(), any::<Option<i64>>()), 0..4),
        outcomes in vec(prop_oneof![
            send_result().prop_map(|r| SendOutcome(Ok(r))),
            error_body().prop_map(|e| SendOutcome(Err(e))),
        ], 0..5),
    ) {
        round_trip(Wire::Ack, &join)?;
        round_trip(Wire::Ack, &LeaveResult {})?;
        round_trip(Wire::Ack, &sent)?;
        round_trip(Wire::Ack, &SyncResult { messages: messages.clone(), last_seq: seqs.0, has_more: flag })?;
        round_trip(Wire::Ack, &DeliveredResult { delivered_seq: seqs.0 })?;
        round_trip(Wire::Ack, &ReadResult { read_seq: seqs.0, updated: seqs.1 })?;
        round_trip(Wire::Ack, &PresenceResult {
            presence: presence
                .into_iter()
                .map(|(user, online, last_seen)| Presence { user, online, last_seen })
                .collect(),
        })?;
        round_trip(Wire::Ack, &ResumeResult {
            rooms: vec![ResumedRoom { joined: join.clone(), messages, has_more: flag }],
            extensions: join.extensions.clone(),
        })?;
        round_trip(Wire::Ack, &SendBatchResult { results: outcomes })?;
    }

    #[test]
    fn error_acks_read_back_as_refusals(error in error_body()) {
        let wire = ack::err(&error);
        match decode_ack::<SendResult>(wire) {
            Err(AckError::Refused(body)) => prop_assert_eq!(body, error),
            other => prop_assert!(false, "not a refusal: {:?}", other),
        }
    }
}

// ---- validation boundaries --------------------------------------------------------------

proptest! {
    #[test]
    fn ids_of_the_charset_up_to_the_limit_are_accepted(id in id_text()) {
        prop_assert!(RoomId::new(id.clone()).is_ok());
        prop_assert!(UserId::new(id.clone()).is_ok());
        prop_assert_eq!(code_of::<RoomRequest>(json!({ "room": id })), None);
    }

    #[test]
    fn ids_past_the_limit_are_refused(
        id in proptest::string::string_regex(&format!("{ID_CHARS}{{{},200}}", MAX_ID_CHARS + 1))
            .expect("regex"),
    ) {
        prop_assert!(RoomId::new(id.clone()).is_err());
        prop_assert!(UserId::new(id.clone()).is_err());
        prop_assert_eq!(code_of::<RoomRequest>(json!({ "room": id })), Some(ErrorCode::InvalidPayload));
    }

    #[test]
    fn ids_with_a_foreign_character_are_refused(
        (prefix, bad, suffix) in (
            proptest::string::string_regex(&format!("{ID_CHARS}{{0,30}}")).expect("regex"),
            any::<char>().prop_filter("outside the charset", |c| {
                !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            }),
            proptest::string::string_regex(&format!("{ID_CHARS}{{0,30}}")).expect("regex"),
        ),
    ) {
        let id = format!("{prefix}{bad}{suffix}");
        prop_assert!(RoomId::new(id.clone()).is_err());
        prop_assert!(UserId::new(id.clone()).is_err());
        prop_assert_eq!(code_of::<RoomRequest>(json!({ "room": id })), Some(ErrorCode::InvalidPayload));
    }

    #[test]
    fn bodies_up_to_the_limit_are_accepted_and_one_past_is_too_large(
        text in body_text(MAX_BODY_CHARS - 1),
        filler in body_char(),
    ) {
        prop_assert!(Body::new(text.clone()).is_ok());
        // Fill up to exactly the limit, then one past it.
        let mut at_limit = text.clone();
        while at_limit.chars().count() < MAX_BODY_CHARS {
            at_limit.push(filler);
        }
        prop_assert!(Body::new(at_limit.clone()).is_ok(), "{} chars", at_limit.chars().count());
        let past = format!("{at_limit}{filler}");
        let request = |body: &str| json!({
            "room": "r", "client_id": "0b0d1f4c-1b0e-4a53-9d6c-3c2a1f0e9b7a", "body": body,
        });
        prop_assert_eq!(code_of::<SendMessage>(request(&at_limit)), None);
        prop_assert_eq!(code_of::<SendMessage>(request(&past)), Some(ErrorCode::TooLarge));
    }

    #[test]
    fn blank_bodies_and_control_characters_are_invalid(
        blank in "[ \n\t]{0,50}",
        text in body_text(100),
        control in any::<char>().prop_filter("a forbidden control", |c| {
            c.is_control() && !matches!(c, '\n' | '\t')
        }),
        at in any::<prop::sample::Index>(),
    ) {
        prop_assert!(Body::new(blank).is_err());
        let mut chars: Vec<char> = text.chars().collect();
        chars.insert(at.index(chars.len() + 1), control);
        let with_control: String = chars.into_iter().collect();
        prop_assert!(Body::new(with_control.clone()).is_err());
        prop_assert_eq!(
            code_of::<SendMessage>(json!({
                "room": "r", "client_id": "0b0d1f4c-1b0e-4a53-9d6c-3c2a1f0e9b7a", "body": with_control,
            })),
            Some(ErrorCode::InvalidPayload)
        );
    }

    #[test]
    fn seqs_are_any_u64_and_nothing_else(
        seq in any::<u64>(),
        negative in i64::MIN..0,
        fraction in any::<f64>().prop_filter("not whole", |f| f.is_finite() && f.fract() != 0.0),
    ) {
        let sync = |after: Value| json!({ "room": "r", "after_seq": after });
        let receipt = |up_to: Value| json!({ "room": "r", "up_to_seq": up_to });
        prop_assert_eq!(code_of::<SyncMessages>(sync(json!(seq))), None);
        prop_assert_eq!(code_of::<Receipt>(receipt(json!(seq))), None);
        prop_assert!(code_of::<SyncMessages>(sync(json!(negative))).is_some());
        prop_assert!(code_of::<Receipt>(receipt(json!(negative))).is_some());
        prop_assert!(code_of::<SyncMessages>(sync(json!(fraction))).is_some());
        // One past u64::MAX, written as JSON text.
        let past: Value = serde_json::from_str(r#"{"room":"r","up_to_seq":18446744073709551616}"#)
            .expect("parses as a float");
        prop_assert!(code_of::<Receipt>(past).is_some());
    }

    #[test]
    fn sync_and_resume_limits_are_one_to_the_maximum(limit in any::<u32>()) {
        let in_range = (1..=MAX_SYNC_LIMIT).contains(&limit);
        let sync = code_of::<SyncMessages>(json!({ "room": "r", "after_seq": 0, "limit": limit }));
        let resume = code_of::<ResumeRooms>(json!({ "rooms": [{"room": "r"}], "limit": limit }));
        prop_assert_eq!(sync.is_none(), in_range, "sync limit {}", limit);
        prop_assert_eq!(resume.is_none(), in_range, "resume limit {}", limit);
        let sync_at = |limit: u32| code_of::<SyncMessages>(json!({ "room": "r", "after_seq": 0, "limit": limit }));
        prop_assert_eq!(sync_at(0), Some(ErrorCode::InvalidPayload));
        prop_assert_eq!(sync_at(1), None);
        prop_assert_eq!(sync_at(MAX_SYNC_LIMIT), None);
        prop_assert_eq!(sync_at(MAX_SYNC_LIMIT + 1), Some(ErrorCode::InvalidPayload));
    }

    #[test]
    fn list_sizes_are_bounded_and_past_the_bound_is_too_large(extra in 1usize..20, under in 0usize..=MAX_PRESENCE_USERS) {
        let users = |n: usize| json!({ "users": (0..n).map(|i| format!("u{i}")).collect::<Vec<_>>() });
        prop_assert_eq!(code_of::<PresenceGet>(users(under)), None);
        prop_assert_eq!(code_of::<PresenceGet>(users(MAX_PRESENCE_USERS)), None);
        prop_assert_eq!(code_of::<PresenceGet>(users(MAX_PRESENCE_USERS + extra)), Some(ErrorCode::TooLarge));

        let rooms = |n: usize| json!({ "rooms": (0..n).map(|i| json!({ "room": format!("r{i}") })).collect::<Vec<_>>() });
        prop_assert_eq!(code_of::<ResumeRooms>(rooms(MAX_RESUME_ROOMS)), None);
        prop_assert_eq!(code_of::<ResumeRooms>(rooms(MAX_RESUME_ROOMS + extra)), Some(ErrorCode::TooLarge));
        prop_assert_eq!(code_of::<ResumeRooms>(rooms(0)), Some(ErrorCode::InvalidPayload));
        prop_assert_eq!(code_of::<ResumeRooms>(rooms(under.max(1))), None);
    }

    #[test]
    fn resume_refuses_a_room_named_twice(rooms in vec(room_id(), 1..30), repeat in any::<prop::sample::Index>()) {
        let mut rooms: Vec<RoomId> = rooms.into_iter().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let twice = rooms[repeat.index(rooms.len())].clone();
        rooms.push(twice);
        let request = json!({ "rooms": rooms.iter().map(|room| json!({ "room": room })).collect::<Vec<_>>() });
        prop_assert_eq!(code_of::<ResumeRooms>(request), Some(ErrorCode::InvalidPayload));
    }

    #[test]
    fn batches_hold_one_to_the_maximum(n in 0usize..=MAX_SEND_BATCH + 20) {
        let message = json!({ "room": "r", "client_id": "0b0d1f4c-1b0e-4a53-9d6c-3c2a1f0e9b7a", "body": "hi" });
        let outcome = decode_send_batch(json!({ "messages": vec![message; n] }));
        match n {
            0 => prop_assert_eq!(outcome.expect_err("empty").code, ErrorCode::InvalidPayload),
            n if n > MAX_SEND_BATCH => prop_assert_eq!(outcome.expect_err("too many").code, ErrorCode::TooLarge),
            n => {
                let items = outcome.expect("in range");
                prop_assert_eq!(items.len(), n);
                prop_assert!(items.iter().all(Result::is_ok));
            }
        }
    }
}

// ---- arbitrary JSON ---------------------------------------------------------------------

fn decodes_or_refuses<T: DeserializeOwned>(value: &Value) -> Result<(), TestCaseError> {
    if let Err(error) = decode_request::<T>(value.clone()) {
        prop_assert!(
            matches!(error.code, ErrorCode::InvalidPayload | ErrorCode::TooLarge),
            "{:?}",
            error
        );
    }
    Ok(())
}

fn ack_decodes_or_refuses<T: DeserializeOwned>(value: &Value) -> Result<(), TestCaseError> {
    // Any outcome is fine; reaching it without a panic is the property.
    let _ = decode_ack::<T>(value.clone());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decoding_arbitrary_json_never_panics(value in any_json()) {
        type Check = fn(&Value) -> Result<(), TestCaseError>;
        let checks: [Check; 13] = [
            decodes_or_refuses::<RoomRequest>, decodes_or_refuses::<SendMessage>,
            decodes_or_refuses::<SyncMessages>, decodes_or_refuses::<Receipt>,
            decodes_or_refuses::<PresenceGet>, decodes_or_refuses::<ResumeRooms>,
            decodes_or_refuses::<SendBatch>, ack_decodes_or_refuses::<JoinResult>,
            ack_decodes_or_refuses::<SendResult>, ack_decodes_or_refuses::<SyncResult>,
            ack_decodes_or_refuses::<ResumeResult>, ack_decodes_or_refuses::<SendBatchResult>,
            ack_decodes_or_refuses::<PresenceResult>,
        ];
        for check in checks {
            check(&value)?;
        }
        if let Ok(items) = decode_send_batch(value.clone()) {
            prop_assert!(!items.is_empty() && items.len() <= MAX_SEND_BATCH);
        }
        let _ = serde_json::from_value::<Message>(value.clone());
        let _ = serde_json::from_value::<ReceiptUpdate>(value.clone());
        let _ = serde_json::from_value::<Presence>(value);
    }

    #[test]
    fn arbitrary_text_never_panics_the_decoders(text in ".{0,200}") {
        if let Ok(value) = serde_json::from_str::<Value>(&text) {
            decodes_or_refuses::<SendMessage>(&value)?;
            ack_decodes_or_refuses::<SyncResult>(&value)?;
        }
        let _ = ErrorCode::from_wire(&text);
        let _ = text.parse::<ClientId>();
    }
}
