//! `chat listen <room>...`: live messages, receipts, typing, presence and membership.
//!
//! Without `--since` the SDK catches up from this outbox file's last position in each room
//! (or, the first time, from the user's delivered watermark). With `--since SEQ` the stored
//! messages after `SEQ` are read with `message:sync` first; the live stream then resumes
//! after the last one printed, so nothing is printed twice and nothing is skipped.

use std::collections::HashMap;

use chat_protocol::{RoomId, Seq};
use chat_sdk::{ChatEvent, Client, ConnectionState};

use super::{interrupted, join_all, out};
use crate::cli::ListenArgs;
use crate::config;
use crate::connect;
use crate::fail::Fail;
use crate::output::{self, Style};

/// Runs `chat listen`.
pub async fn run(args: ListenArgs) -> Result<(), Fail> {
    let settings = config::resolve(&args.client)?;
    let (client, events) = connect::connect(&settings).await?;
    let result = tokio::select! {
        result = listen(&args, &client, events) => result,
        () = interrupted() => Ok(()),
    };
    client.close().await;
    result
}

/// Prints the stored messages of `room` after `since`; returns the last `seq` printed.
async fn backlog(
    client: &Client,
    room: &RoomId,
    since: Seq,
    json: bool,
    show_room: bool,
    style: Style,
) -> Result<Seq, Fail> {
    let mut after = since;
    loop {
        let page = client.history(room, after, 500).await?;
        for message in &page.messages {
            print_event(&ChatEvent::Message(message.clone()), json, show_room, style);
            after = message.seq;
        }
        if !page.has_more || page.messages.is_empty() {
            return Ok(after);
        }
    }
}

async fn listen(
    args: &ListenArgs,
    client: &Client,
    mut events: chat_sdk::Events,
) -> Result<(), Fail> {
    let style = Style::stdout();
    let show_room = args.rooms.len() > 1;
    let mut printed: HashMap<RoomId, Seq> = HashMap::new();
    // Every room in one go: one `room:resume` where the server has it, not a join and a
    // sync per room (which the server's rate limit would spread over seconds).
    let known = client.rooms();
    let new_rooms: Vec<RoomId> = args
        .rooms
        .iter()
        .filter(|room| !known.contains_key(*room))
        .cloned()
        .collect();
    join_all(client, &new_rooms).await?;
    for room in &args.rooms {
        if let Some(since) = args.since {
            let last = backlog(client, room, since, args.json, show_room, style).await?;
            printed.insert(room.clone(), last);
        }
    }
    while let Some(event) = events.recv().await {
        let room = match &event {
            ChatEvent::Message(m) => Some(&m.room),
            ChatEvent::Receipt(r) => Some(&r.room),
            ChatEvent::Typing(t) => Some(&t.room),
            ChatEvent::Member(m) => Some(&m.room),
            ChatEvent::CaughtUp { room, .. } => Some(room),
            ChatEvent::Presence(_) | ChatEvent::Connection(_) => None,
            _ => continue,
        };
        if let Some(room) = room {
            if !args.rooms.contains(room) {
                continue;
            }
        }
        if let ChatEvent::Message(m) = &event {
            if printed.get(&m.room).is_some_and(|&last| m.seq <= last) {
                continue;
            }
        }
        if let ChatEvent::Connection(state @ ConnectionState::Disconnected { .. }) = &event {
            return Err(Fail::usage(output::connection_text(state)));
        }
        print_event(&event, args.json, show_room, style);
    }
    Ok(())
}

/// One event on stdout (connection changes go to stderr in human mode: they are progress,
/// not results).
fn print_event(event: &ChatEvent, json: bool, show_room: bool, style: Style) {
    if json {
        out(&output::event_json(event).to_string());
        return;
    }
    let line = match event {
        ChatEvent::Message(m) => output::message_line(m, show_room, style),
        ChatEvent::Receipt(r) => output::receipt_line(r, show_room, style),
        ChatEvent::Typing(t) => output::typing_line(t, show_room, style),
        ChatEvent::Presence(p) => output::presence_line(p, style),
        ChatEvent::Member(m) => output::member_line(m, style),
        ChatEvent::Connection(c) => {
            eprintln!("{}", output::connection_line(c, Style::plain()));
            return;
        }
        // Progress, not a result: machines get it in --json.
        _ => return,
    };
    out(&line);
}
