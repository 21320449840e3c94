//! Pins the exact JSON of every request, result and event on the wire.

use chat_protocol::ack::{err, ok};
use chat_protocol::batch::{SendBatch, SendBatchResult, SendOutcome};
use chat_protocol::events::{Message, Presence, ReceiptUpdate, RoomMember, TypingUpdate};
use chat_protocol::requests::{
    PresenceGet, Receipt, ResumeRoom, ResumeRooms, RoomRequest, SendMessage, SyncMessages,
};
use chat_protocol::results::{
    DeliveredResult, JoinResult, LeaveResult, MemberWatermarks, PresenceResult, ReadResult,
    ResumeResult, ResumedRoom, SendResult, SyncResult,
};
use chat_protocol::{Body, ClientId, ErrorBody, ErrorCode, MessageId, RoomId, UserId};
use uuid::Uuid;

fn room() -> RoomId {
    RoomId::new("general").expect("valid room")
}

fn user(name: &str) -> UserId {
    UserId::new(name).expect("valid user")
}

fn client_id() -> ClientId {
    ClientId::from_uuid(Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef))
}

fn message() -> Message {
    Message {
        room: room(),
        id: MessageId("m-1".into()),
        seq: 7,
        client_id: client_id(),
        sender: user("alice"),
        body: Body::new("hello\nworld").expect("valid body"),
        ts: 1_700_000_000_000,
        reply_to: Some(3),
    }
}

#[test]
fn requests() {
    insta::assert_json_snapshot!("room_request", RoomRequest { room: room() });
    insta::assert_json_snapshot!(
        "send_message",
        SendMessage {
            room: room(),
            client_id: client_id(),
            body: Body::new("hi").expect("valid body"),
            reply_to: None,
        }
    );
    insta::assert_json_snapshot!(
        "send_batch",
        SendBatch {
            messages: vec![
                SendMessage {
                    room: room(),
                    client_id: client_id(),
                    body: Body::new("first").expect("valid body"),
                    reply_to: None,
                },
                SendMessage {
                    room: room(),
                    client_id: ClientId::from_uuid(Uuid::from_u128(2)),
                    body: Body::new("second").expect("valid body"),
                    reply_to: Some(7),
                },
            ],
        }
    );
    insta::assert_json_snapshot!(
        "sync_messages",
        SyncMessages {
            room: room(),
            after_seq: 10,
            limit: Some(50),
        }
    );
    insta::assert_json_snapshot!(
        "receipt",
        Receipt {
            room: room(),
            up_to_seq: 12,
        }
    );
    insta::assert_json_snapshot!(
        "resume_rooms",
        ResumeRooms {
            rooms: vec![
                ResumeRoom {
                    room: room(),
                    after_seq: Some(6),
                },
                ResumeRoom {
                    room: RoomId::new("random").expect("valid room"),
                    after_seq: None,
                },
            ],
            limit: Some(50),
        }
    );
    insta::assert_json_snapshot!(
        "presence_get",
        PresenceGet {
            users: vec![user("alice"), user("bob")],
        }
    );
}

#[test]
fn results_as_acks() {
    insta::assert_json_snapshot!(
        "ack_join",
        ok(&JoinResult {
            room: room(),
            last_seq: 9,
            members: vec![user("alice"), user("bob")],
            delivered_seq: 8,
            read_seq: 5,
            watermarks: vec![MemberWatermarks {
                user: user("bob"),
                delivered_seq: 9,
                read_seq: 9,
            }],
            extensions: vec!["room:resume".into()],
        })
    );
    insta::assert_json_snapshot!(
        "ack_resume",
        ok(&ResumeResult {
            rooms: vec![ResumedRoom {
                joined: JoinResult {
                    room: room(),
                    last_seq: 7,
                    members: vec![user("alice"), user("bob")],
                    delivered_seq: 6,
                    read_seq: 5,
                    watermarks: vec![MemberWatermarks {
                        user: user("bob"),
                        delivered_seq: 7,
                        read_seq: 7,
                    }],
                    extensions: Vec::new(),
                },
                messages: vec![message()],
                has_more: false,
            }],
            extensions: vec!["room:resume".into(), "message:send_batch".into()],
        })
    );
    insta::assert_json_snapshot!(
        "ack_send_batch",
        ok(&SendBatchResult {
            results: vec![
                SendOutcome(Ok(SendResult {
                    id: MessageId("general:7".into()),
                    seq: 7,
                    ts: 1_700_000_000_000,
                    duplicate: false,
                })),
                SendOutcome(Err(ErrorBody::new(
                    ErrorCode::Forbidden,
                    "not a member of room secret; join it first"
                ))),
                SendOutcome(Err(ErrorBody::rate_limited(40))),
            ],
        })
    );
    insta::assert_json_snapshot!("ack_leave", ok(&LeaveResult {}));
    insta::assert_json_snapshot!(
        "ack_send",
        ok(&SendResult {
            id: MessageId("m-1".into()),
            seq: 7,
            ts: 1_700_000_000_000,
            duplicate: false,
        })
    );
    insta::assert_json_snapshot!(
        "ack_sync",
        ok(&SyncResult {
            messages: vec![message()],
            last_seq: 7,
            has_more: false,
        })
    );
    insta::assert_json_snapshot!("ack_delivered", ok(&DeliveredResult { delivered_seq: 7 }));
    insta::assert_json_snapshot!(
        "ack_read",
        ok(&ReadResult {
            read_seq: 7,
            updated: 2,
        })
    );
    insta::assert_json_snapshot!(
        "ack_presence",
        ok(&PresenceResult {
            presence: vec![Presence {
                user: user("bob"),
                online: false,
                last_seen: None,
            }],
        })
    );
}

#[test]
fn error_acks() {
    insta::assert_json_snapshot!(
        "ack_error_forbidden",
        err(&ErrorBody::new(
            ErrorCode::Forbidden,
            "not a member of general"
        ))
    );
    insta::assert_json_snapshot!("ack_error_rate_limited", err(&ErrorBody::rate_limited(250)));
}

#[test]
fn server_events() {
    insta::assert_json_snapshot!("message_new", message());
    insta::assert_json_snapshot!(
        "receipt_update",
        ReceiptUpdate {
            room: room(),
            user: user("bob"),
            delivered_seq: 7,
            read_seq: 6,
        }
    );
    insta::assert_json_snapshot!(
        "typing_update",
        TypingUpdate {
            room: room(),
            user: user("bob"),
            typing: true,
        }
    );
    insta::assert_json_snapshot!(
        "presence_update",
        Presence {
            user: user("bob"),
            online: true,
            last_seen: Some(1_700_000_000_000),
        }
    );
    insta::assert_json_snapshot!(
        "room_member",
        RoomMember {
            room: room(),
            user: user("carol"),
            joined: true,
        }
    );
}
