//! What the interactive session shows, apart from the terminal: which lines each event
//! prints and what the prompt says (connection state, who is typing).
//!
//! Your own messages show as status lines that follow them along: `… queued`, `✓ sent`,
//! `✓✓ delivered` (every other member has it), `✓✓ read` (every other member read it), or
//! `✗ failed`. Other people's messages show as `#seq time sender: text`.

use std::collections::{BTreeSet, HashMap};

use chat_protocol::{ClientId, RoomId, UserId};
use chat_sdk::{ChatEvent, ConnectionState, MessageState};

use crate::output::{self, Style};

/// The state of the screen of `chat chat <room>`.
#[derive(Debug)]
pub struct View {
    room: RoomId,
    me: Option<UserId>,
    style: Style,
    /// This session's own messages and their text.
    mine: HashMap<ClientId, String>,
    typing: BTreeSet<UserId>,
    connection: ConnectionState,
    /// Messages of others were shown since the last read receipt.
    pub unread: bool,
}

impl View {
    /// A view of `room` for `me`.
    pub fn new(room: RoomId, me: Option<UserId>, style: Style) -> Self {
        Self {
            room,
            me,
            style,
            mine: HashMap::new(),
            typing: BTreeSet::new(),
            connection: ConnectionState::Connecting,
            unread: false,
        }
    }

    /// The room shown.
    pub fn room(&self) -> &RoomId {
        &self.room
    }

    /// The connection state last seen.
    pub fn connection(&self) -> &ConnectionState {
        &self.connection
    }

    /// The prompt: `general> `, with the connection state when not connected and who is
    /// typing.
    pub fn prompt(&self) -> String {
        let mut prompt = self.room.to_string();
        if self.connection != ConnectionState::Connected {
            prompt.push_str(&format!(
                " {}",
                self.style
                    .yellow(&format!("[{}]", output::connection_text(&self.connection)))
            ));
        }
        if !self.typing.is_empty() {
            let names: Vec<&str> = self.typing.iter().map(UserId::as_str).collect();
            let verb = if names.len() == 1 { "is" } else { "are" };
            prompt.push_str(&format!(
                " {}",
                self.style
                    .dim(&format!("[{} {verb} typing]", names.join(", ")))
            ));
        }
        prompt.push_str("> ");
        prompt
    }

    fn own_line(&self, id: &ClientId, state: &MessageState) -> Option<String> {
        let text = self.mine.get(id)?;
        let mut quoted: String = text.chars().take(40).collect();
        if text.chars().count() > 40 {
            quoted.push('…');
        }
        let mark = output::state_mark(state, self.style);
        let seq = state.seq().map(|s| format!(" #{s}")).unwrap_or_default();
        Some(match state {
            MessageState::Sending { .. } => return None,
            MessageState::Queued => format!("  {mark} queued {quoted:?}"),
            MessageState::Sent { .. } => format!("  {mark} sent{seq} {quoted:?}"),
            MessageState::Delivered { .. } => format!("  {mark} delivered{seq} {quoted:?}"),
            MessageState::Read { .. } => format!("  {mark}{seq} {quoted:?}"),
            MessageState::Failed { reason } => format!(
                "  {mark} failed {quoted:?}: {reason} (kept in the outbox: chat outbox retry {id})"
            ),
        })
    }

    /// Takes in one event; returns the lines to print above the prompt.
    pub fn apply(&mut self, event: &ChatEvent) -> Vec<String> {
        match event {
            ChatEvent::Message(m) if m.room == self.room => {
                let own = Some(&m.sender) == self.me.as_ref();
                if own && self.mine.contains_key(&m.client_id) {
                    return Vec::new();
                }
                if !own {
                    self.unread = true;
                    self.typing.remove(&m.sender);
                }
                vec![output::message_line(m, false, self.style)]
            }
            ChatEvent::Queued(m) if m.room == self.room => {
                self.mine.insert(m.client_id, m.body.clone());
                self.own_line(&m.client_id, &m.state).into_iter().collect()
            }
            ChatEvent::Status {
                client_id, state, ..
            } => self.own_line(client_id, state).into_iter().collect(),
            ChatEvent::Typing(t) if t.room == self.room && Some(&t.user) != self.me.as_ref() => {
                if t.typing {
                    self.typing.insert(t.user.clone());
                } else {
                    self.typing.remove(&t.user);
                }
                Vec::new()
            }
            ChatEvent::Presence(p) if Some(&p.user) != self.me.as_ref() => {
                vec![output::presence_line(p, self.style)]
            }
            ChatEvent::Member(m) if m.room == self.room && Some(&m.user) != self.me.as_ref() => {
                vec![output::member_line(m, self.style)]
            }
            ChatEvent::Connection(state) => {
                self.connection = state.clone();
                if *state != ConnectionState::Connected {
                    self.typing.clear();
                }
                if matches!(state, ConnectionState::Reconnecting { attempt } if *attempt > 1) {
                    // Later attempts show in the prompt only.
                    return Vec::new();
                }
                vec![output::connection_line(state, self.style)]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::{Body, Message, MessageId, TypingUpdate};
    use chat_sdk::OutgoingMessage;

    fn user(name: &str) -> UserId {
        UserId::new(name).expect("user")
    }

    #[test]
    fn a_session_as_the_user_sees_it() {
        let room = RoomId::new("general").expect("room");
        let mut view = View::new(room.clone(), Some(user("alice")), Style::plain());
        let id: ClientId = "0b5e6f9e-3c1a-4f7e-9a55-0c3c3b1c2d4e"
            .parse()
            .expect("uuid");
        let mut screen = vec![view.prompt()];
        let mid = MessageId("m".into());
        let events = [
            ChatEvent::Connection(ConnectionState::Connected),
            ChatEvent::Message(Message {
                room: room.clone(),
                id: mid.clone(),
                seq: 1,
                client_id: ClientId::new_random(),
                sender: user("bob"),
                body: Body::new("hi alice").expect("body"),
                ts: 1_714_564_803_000,
                reply_to: None,
            }),
            ChatEvent::Typing(TypingUpdate {
                room: room.clone(),
                user: user("bob"),
                typing: true,
            }),
            ChatEvent::Connection(ConnectionState::Reconnecting { attempt: 1 }),
            ChatEvent::Queued(OutgoingMessage {
                client_id: id,
                room: room.clone(),
                body: "hello bob".into(),
                reply_to: None,
                queued_at: 0,
                attempts: 0,
                state: MessageState::Queued,
            }),
            ChatEvent::Connection(ConnectionState::Connected),
            ChatEvent::Status {
                client_id: id,
                room: room.clone(),
                state: MessageState::Sending { attempt: 1 },
            },
            ChatEvent::Status {
                client_id: id,
                room: room.clone(),
                state: MessageState::Sent {
                    id: mid.clone(),
                    seq: 2,
                },
            },
            ChatEvent::Status {
                client_id: id,
                room: room.clone(),
                state: MessageState::Delivered {
                    id: mid.clone(),
                    seq: 2,
                },
            },
            ChatEvent::Status {
                client_id: id,
                room: room.clone(),
                state: MessageState::Read { id: mid, seq: 2 },
            },
        ];
        for event in &events {
            screen.extend(view.apply(event));
            screen.push(view.prompt());
        }
        assert!(view.unread);
        insta::assert_snapshot!(screen.join("\n"));
    }
}
