//! How results look: human lines (coloured only on a terminal, never with `NO_COLOR`) and
//! JSON objects for `--json` (one per line).
//!
//! Every formatter here is a pure function of its input, so the human output is pinned by
//! snapshot tests. Times are shown in UTC.

use std::io::IsTerminal;
use std::time::{Duration, UNIX_EPOCH};

use chat_protocol::{Message, Presence, ReceiptUpdate, RoomMember, Timestamp, TypingUpdate};
use chat_sdk::{ChatEvent, ConnectionState, DisconnectReason, MessageState, OutgoingMessage};
use serde_json::{json, Value};

/// Colours for one output stream, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    enabled: bool,
}

impl Style {
    /// Colours when `stream_is_terminal` and `NO_COLOR` is unset or empty.
    pub fn detect(stream_is_terminal: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            enabled: stream_is_terminal && !no_color,
        }
    }

    /// Colours for stdout.
    pub fn stdout() -> Self {
        Self::detect(std::io::stdout().is_terminal())
    }

    /// No colours at all.
    pub fn plain() -> Self {
        Self { enabled: false }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.enabled {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// Faint text (metadata).
    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
    /// Bold text (names).
    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }
    /// Green text (success).
    pub fn green(self, text: &str) -> String {
        self.paint("32", text)
    }
    /// Yellow text (waiting).
    pub fn yellow(self, text: &str) -> String {
        self.paint("33", text)
    }
    /// Red text (failure).
    pub fn red(self, text: &str) -> String {
        self.paint("31", text)
    }
    /// Cyan text (events).
    pub fn cyan(self, text: &str) -> String {
        self.paint("36", text)
    }
}

/// `HH:MM:SS` (UTC) of a server timestamp.
pub fn clock(ts: Timestamp) -> String {
    let secs = ts.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a timestamp.
pub fn date_time(ts: Timestamp) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(ts).unwrap_or(0));
    humantime::format_rfc3339_seconds(time).to_string()
}

/// The first 8 characters of a message id, enough to tell messages apart on screen.
pub fn short_id(id: &chat_protocol::ClientId) -> String {
    id.to_string().chars().take(8).collect()
}

/// A message: `#4 12:00:03 bob: hi`, with the room first when `show_room`. Lines after the
/// first of a multi-line body are indented.
pub fn message_line(message: &Message, show_room: bool, style: Style) -> String {
    let room = if show_room {
        format!("{} ", style.cyan(&format!("[{}]", message.room)))
    } else {
        String::new()
    };
    let body = message.body.as_str().replace('\n', "\n    ");
    format!(
        "{room}{} {} {}: {body}",
        style.dim(&format!("#{}", message.seq)),
        style.dim(&clock(message.ts)),
        style.bold(message.sender.as_str()),
    )
}

/// A receipt: `· bob has #4, read up to #3`.
pub fn receipt_line(receipt: &ReceiptUpdate, show_room: bool, style: Style) -> String {
    let room = room_prefix(&receipt.room, show_room, style);
    style.dim(&format!(
        "{room}· {} has up to #{}, read up to #{}",
        receipt.user, receipt.delivered_seq, receipt.read_seq
    ))
}

/// A typing change: `· bob is typing`.
pub fn typing_line(typing: &TypingUpdate, show_room: bool, style: Style) -> String {
    let room = room_prefix(&typing.room, show_room, style);
    let what = if typing.typing {
        "is typing"
    } else {
        "stopped typing"
    };
    style.dim(&format!("{room}· {} {what}", typing.user))
}

/// A presence change: `· bob is online` / `· bob is offline (last seen …)`.
pub fn presence_line(presence: &Presence, style: Style) -> String {
    style.dim(&format!("· {}", presence_text(presence)))
}

/// `bob is online`, `bob is offline, last seen 2024-…Z`, `bob was never seen`.
pub fn presence_text(presence: &Presence) -> String {
    match (presence.online, presence.last_seen) {
        (true, _) => format!("{} is online", presence.user),
        (false, Some(ts)) => format!("{} is offline, last seen {}", presence.user, date_time(ts)),
        (false, None) => format!("{} is offline, never seen", presence.user),
    }
}

/// A membership change: `· bob joined general`.
pub fn member_line(member: &RoomMember, style: Style) -> String {
    let what = if member.joined { "joined" } else { "left" };
    style.dim(&format!("· {} {what} {}", member.user, member.room))
}

/// A connection state change: `· connected`, `· reconnecting (attempt 2)`, ….
pub fn connection_line(state: &ConnectionState, style: Style) -> String {
    let text = connection_text(state);
    match state {
        ConnectionState::Connected => style.green(&format!("· {text}")),
        ConnectionState::Disconnected { .. } => style.red(&format!("· {text}")),
        _ => style.yellow(&format!("· {text}")),
    }
}

/// The connection state in words.
pub fn connection_text(state: &ConnectionState) -> String {
    match state {
        ConnectionState::Connecting => "connecting".to_owned(),
        ConnectionState::Connected => "connected".to_owned(),
        ConnectionState::Reconnecting { attempt } => format!("reconnecting (attempt {attempt})"),
        ConnectionState::Disconnected { reason } => match reason {
            DisconnectReason::Closed => "disconnected".to_owned(),
            DisconnectReason::Unauthorized { message } => {
                format!("disconnected: the server refused the token ({message})")
            }
            DisconnectReason::Refused { code } => {
                format!("disconnected: the server refused the connection ({code})")
            }
            DisconnectReason::Certificate { message } => format!(
                "disconnected: the server's certificate was refused ({message}); trust its CA with --ca"
            ),
        },
    }
}

/// The mark of an outgoing message's state: `…` queued or sending, `✓` sent, `✓✓`
/// delivered, `✓✓ read`, `✗` failed.
pub fn state_mark(state: &MessageState, style: Style) -> String {
    match state {
        MessageState::Queued | MessageState::Sending { .. } => style.yellow("…"),
        MessageState::Sent { .. } => style.green("✓"),
        MessageState::Delivered { .. } => style.green("✓✓"),
        MessageState::Read { .. } => style.green("✓✓ read"),
        MessageState::Failed { .. } => style.red("✗"),
    }
}

/// A status line of `chat send`: `sent      3f2a9c1e general #4`.
pub fn status_line(
    client_id: &chat_protocol::ClientId,
    room: &chat_protocol::RoomId,
    state: &MessageState,
    style: Style,
) -> String {
    let name = format!("{:<9}", state.name());
    let name = match state {
        MessageState::Failed { .. } => style.red(&name),
        MessageState::Queued | MessageState::Sending { .. } => style.yellow(&name),
        _ => style.green(&name),
    };
    let detail = match state {
        MessageState::Sending { attempt } => format!(" (attempt {attempt})"),
        MessageState::Failed { reason } => format!(" {reason}"),
        other => other.seq().map(|s| format!(" #{s}")).unwrap_or_default(),
    };
    format!("{name} {} {room}{detail}", short_id(client_id))
}

/// One row of `chat outbox list`.
pub fn outbox_row(message: &OutgoingMessage, style: Style) -> String {
    let state = match &message.state {
        MessageState::Failed { reason } => style.red(&format!("failed ({reason})")),
        other => {
            let seq = other.seq().map(|s| format!(" #{s}")).unwrap_or_default();
            format!("{}{seq}", other.name())
        }
    };
    let mut body: String = message.body.chars().take(40).collect();
    if message.body.chars().count() > 40 {
        body.push('…');
    }
    format!(
        "{}  {}  {state}  attempts {}  queued {}  {:?}",
        message.client_id,
        message.room,
        message.attempts,
        date_time(message.queued_at),
        body
    )
}

fn room_prefix(room: &chat_protocol::RoomId, show: bool, style: Style) -> String {
    if show {
        format!("{} ", style.cyan(&format!("[{room}]")))
    } else {
        String::new()
    }
}

/// An event as one JSON object with a `type` field: `message`, `queued`, `status`,
/// `receipt`, `typing`, `presence`, `member`, `caught_up` or `connection`; the other fields
/// are the protocol's (or the SDK's) own. Readers should skip types they do not know.
pub fn event_json(event: &ChatEvent) -> Value {
    let (kind, value) = match event {
        ChatEvent::Message(m) => ("message", serde_json::to_value(m)),
        ChatEvent::Queued(m) => ("queued", serde_json::to_value(m)),
        ChatEvent::Status {
            client_id,
            room,
            state,
        } => ("status", Ok(status_json(client_id, room, state))),
        ChatEvent::Receipt(r) => ("receipt", serde_json::to_value(r)),
        ChatEvent::Typing(t) => ("typing", serde_json::to_value(t)),
        ChatEvent::Presence(p) => ("presence", serde_json::to_value(p)),
        ChatEvent::Member(m) => ("member", serde_json::to_value(m)),
        ChatEvent::Connection(c) => ("connection", serde_json::to_value(c)),
        ChatEvent::CaughtUp { room, last_seq } => (
            "caught_up",
            Ok(json!({ "room": room, "last_seq": last_seq })),
        ),
        other => ("unknown", Ok(json!({ "debug": format!("{other:?}") }))),
    };
    let mut value = value.unwrap_or_else(|e| json!({ "error": e.to_string() }));
    if let Value::Object(map) = &mut value {
        map.insert("type".to_owned(), Value::String(kind.to_owned()));
    }
    value
}

/// A status change as JSON: `{"client_id", "room", "state", "seq"?, "id"?, "reason"?}`.
pub fn status_json(
    client_id: &chat_protocol::ClientId,
    room: &chat_protocol::RoomId,
    state: &MessageState,
) -> Value {
    let mut value = serde_json::to_value(state).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut value {
        map.insert("client_id".to_owned(), json!(client_id));
        map.insert("room".to_owned(), json!(room));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::{Body, ClientId, MessageId, RoomId, UserId};
    use chat_sdk::FailureReason;

    const TS: Timestamp = 1_714_564_803_000; // 2024-05-01T12:00:03Z

    fn id() -> ClientId {
        "0b5e6f9e-3c1a-4f7e-9a55-0c3c3b1c2d4e"
            .parse()
            .expect("a uuid")
    }

    fn room() -> RoomId {
        RoomId::new("general").expect("room")
    }

    fn message(body: &str) -> Message {
        Message {
            room: room(),
            id: MessageId("m-1".into()),
            seq: 4,
            client_id: id(),
            sender: UserId::new("bob").expect("user"),
            body: Body::new(body).expect("body"),
            ts: TS,
            reply_to: None,
        }
    }

    #[test]
    fn human_lines() {
        let plain = Style::plain();
        let bob = UserId::new("bob").expect("user");
        let sent = MessageState::Sent {
            id: MessageId("m-1".into()),
            seq: 4,
        };
        let failed = MessageState::Failed {
            reason: FailureReason::Rejected {
                code: chat_protocol::ErrorCode::Forbidden,
                message: "not a member".into(),
            },
        };
        let outgoing = OutgoingMessage {
            client_id: id(),
            room: room(),
            body: "hello there".into(),
            reply_to: None,
            queued_at: TS,
            attempts: 1,
            state: sent.clone(),
        };
        let lines = [
            message_line(&message("hi"), false, plain),
            message_line(&message("two\nlines"), true, plain),
            receipt_line(
                &ReceiptUpdate {
                    room: room(),
                    user: bob.clone(),
                    delivered_seq: 4,
                    read_seq: 3,
                },
                true,
                plain,
            ),
            typing_line(
                &TypingUpdate {
                    room: room(),
                    user: bob.clone(),
                    typing: true,
                },
                false,
                plain,
            ),
            presence_line(
                &Presence {
                    user: bob.clone(),
                    online: false,
                    last_seen: Some(TS),
                },
                plain,
            ),
            member_line(
                &RoomMember {
                    room: room(),
                    user: bob,
                    joined: true,
                },
                plain,
            ),
            connection_line(&ConnectionState::Reconnecting { attempt: 2 }, plain),
            status_line(&id(), &room(), &MessageState::Queued, plain),
            status_line(&id(), &room(), &sent, plain),
            status_line(&id(), &room(), &failed, plain),
            outbox_row(&outgoing, plain),
            format!(
                "{} {} {}",
                state_mark(&MessageState::Queued, plain),
                state_mark(&sent, plain),
                state_mark(&failed, plain)
            ),
        ];
        insta::assert_snapshot!(lines.join("\n"));
    }

    #[test]
    fn colour_only_when_enabled() {
        let coloured = Style { enabled: true };
        assert!(coloured.green("x").contains("\x1b[32m"));
        assert_eq!(Style::plain().green("x"), "x");
        assert_eq!(Style::detect(false), Style::plain());
    }

    #[test]
    fn events_as_json_carry_a_type() {
        let value = event_json(&ChatEvent::Message(message("hi")));
        assert_eq!(value["type"], "message");
        assert_eq!(value["seq"], 4);
        let value = event_json(&ChatEvent::Status {
            client_id: id(),
            room: room(),
            state: MessageState::Delivered {
                id: MessageId("m-1".into()),
                seq: 4,
            },
        });
        insta::assert_json_snapshot!(value);
    }

    #[test]
    fn clock_is_utc() {
        assert_eq!(clock(TS), "12:00:03");
        assert_eq!(date_time(TS), "2024-05-01T12:00:03Z");
    }
}
