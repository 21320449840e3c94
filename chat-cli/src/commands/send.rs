//! `chat send <room> <text>|-`: queue messages, follow their status, wait for a target.
//!
//! The client starts in the background, so a message is queued in the outbox even when
//! the server is down; it then goes out when the server answers (now, or on any later run
//! that opens the same outbox). The room is joined first if this outbox has not joined it,
//! and offline the SDK joins it on connect before it sends.

use std::collections::HashMap;
use std::io::BufRead;
use std::time::Duration;

use chat_protocol::{Body, ClientId};
use chat_sdk::{ChatEvent, ConnectionState, MessageState, SendError};
use tokio::time::Instant;

use super::{ensure_joined, join, out};
use crate::cli::{SendArgs, WaitFor};
use crate::config;
use crate::connect;
use crate::fail::Fail;
use crate::output::{self, Style};

/// How far along the happy path a state is.
fn rank(state: &MessageState) -> u8 {
    match state {
        MessageState::Queued | MessageState::Failed { .. } => 0,
        MessageState::Sending { .. } => 1,
        MessageState::Sent { .. } => 2,
        MessageState::Delivered { .. } => 3,
        MessageState::Read { .. } => 4,
    }
}

fn target_rank(wait: WaitFor) -> u8 {
    match wait {
        WaitFor::Sent => 2,
        WaitFor::Delivered => 3,
        WaitFor::Read => 4,
    }
}

/// The texts to send: the argument, or each non-blank line of stdin for `-`. Each is
/// checked against the protocol's rules before anything is queued.
fn bodies(text: &str) -> Result<Vec<String>, Fail> {
    let texts = if text == "-" {
        let mut lines = Vec::new();
        for line in std::io::stdin().lock().lines() {
            let line = line.map_err(|e| Fail::usage(format!("cannot read stdin: {e}")))?;
            if !line.trim().is_empty() {
                lines.push(line);
            }
        }
        if lines.is_empty() {
            return Err(Fail::usage("no message: stdin held no non-blank line"));
        }
        lines
    } else {
        vec![text.to_owned()]
    };
    for text in &texts {
        Body::new(text.as_str()).map_err(|e| Fail::usage(format!("invalid message: {e}")))?;
    }
    Ok(texts)
}

/// Runs `chat send`.
pub async fn run(args: SendArgs) -> Result<(), Fail> {
    let texts = bodies(&args.text)?;
    let settings = config::resolve(&args.client)?;
    // Sending only: the client does not re-join and catch up every room the store knows.
    let (client, mut events) = connect::start_sending(&settings)?;
    let result = send(&args, &settings, texts, &client, &mut events).await;
    client.close().await;
    result
}

async fn send(
    args: &SendArgs,
    settings: &config::Settings,
    texts: Vec<String>,
    client: &chat_sdk::Client,
    events: &mut chat_sdk::Events,
) -> Result<(), Fail> {
    let style = Style::stdout();
    let deadline = Instant::now() + args.timeout;
    // Let the first attempt finish, so that online the join is answered before the send.
    match connect::first_outcome(client, args.timeout.min(Duration::from_secs(5))).await {
        Some(ConnectionState::Disconnected { reason }) => {
            return Err(Fail::usage(output::connection_text(
                &ConnectionState::Disconnected { reason },
            )))
        }
        Some(ConnectionState::Connected) => {}
        _ => eprintln!(
            "chat: cannot reach {} yet; the message waits in the outbox",
            settings.url
        ),
    }
    let joined = async {
        if args.wait > WaitFor::Sent {
            // Receipts reach a socket only in the rooms it joined on this connection.
            join(client, &args.room).await
        } else {
            ensure_joined(client, &args.room).await
        }
    };
    match tokio::time::timeout_at(deadline, joined).await {
        Ok(joined) => joined?,
        Err(_) => {
            return Err(Fail::failed(format!(
                "could not join {} within {}; nothing was sent",
                args.room,
                humantime::format_duration(args.timeout)
            )))
        }
    }
    let mut states: HashMap<ClientId, MessageState> = HashMap::new();
    let mut order = Vec::new();
    for text in texts {
        let id = match client.send(&args.room, text).await {
            Ok(message) => message.client_id(),
            // Queued and on its way, only not confirmed on disk: sending it again would
            // make a second message, so go on and report it like any other.
            Err(SendError::NotDurable { message, source }) => {
                let client_id = message.client_id();
                eprintln!("chat: message {client_id} is queued, but the disk did not confirm it: {source}");
                client_id
            }
            Err(err) => return Err(err.into()),
        };
        states.insert(id, MessageState::Queued);
        order.push(id);
        // Said as soon as it is durable: a caller killed mid-run knows what was queued.
        print_status(args.json, &id, &args.room, &MessageState::Queued, style);
    }
    let target = target_rank(args.wait);
    let finished = |states: &HashMap<ClientId, MessageState>| {
        states
            .values()
            .all(|s| rank(s) >= target || matches!(s, MessageState::Failed { .. }))
    };
    while !finished(&states) {
        let event = match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(_) => break,
        };
        match event {
            ChatEvent::Status {
                client_id,
                room,
                state,
            } if states.contains_key(&client_id) => {
                if matches!(state, MessageState::Sending { attempt: 1 }) {
                    // Every message passes through its first attempt; only retries are news.
                } else {
                    print_status(args.json, &client_id, &room, &state, style);
                }
                states.insert(client_id, state);
            }
            ChatEvent::Connection(state) => {
                if let ConnectionState::Disconnected { .. } = state {
                    return Err(Fail::usage(output::connection_text(&state)));
                }
                tracing::info!(state = %output::connection_text(&state), "connection");
            }
            _ => {}
        }
    }
    verdict(args, &order, &states)
}

fn print_status(
    json: bool,
    id: &ClientId,
    room: &chat_protocol::RoomId,
    state: &MessageState,
    style: Style,
) {
    if json {
        out(&output::status_json(id, room, state).to_string());
    } else {
        out(&output::status_line(id, room, state, style));
    }
}

/// Exit 0 when every message reached the target, else 1 with what is left.
fn verdict(
    args: &SendArgs,
    order: &[ClientId],
    states: &HashMap<ClientId, MessageState>,
) -> Result<(), Fail> {
    let target = target_rank(args.wait);
    let mut problems = Vec::new();
    for id in order {
        let Some(state) = states.get(id) else {
            continue;
        };
        match state {
            MessageState::Failed { reason } => problems.push(format!(
                "message {id} failed: {reason} (kept in the outbox: chat outbox retry|discard {id})"
            )),
            s if s.is_pending() => problems.push(format!(
                "message {id} is still {}: kept in the outbox, `chat outbox flush` sends it",
                s.name()
            )),
            s if rank(s) < target => problems.push(format!(
                "message {id} is {} but not {} after {}",
                s.name(),
                args.wait.name(),
                humantime::format_duration(args.timeout)
            )),
            _ => {}
        }
    }
    match problems.len() {
        0 => Ok(()),
        1 => Err(Fail::failed(problems.remove(0))),
        n => Err(Fail::failed(format!(
            "{n} messages did not finish; first: {}",
            problems[0]
        ))),
    }
}
