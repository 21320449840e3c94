//! `chat chat <room>`: the interactive session.
//!
//! On a terminal the input line is edited in raw mode (so every keystroke can say "typing")
//! and events print above it; the prompt shows the connection state and who is typing.
//! With stdin not a terminal, each line of stdin is sent and events print as plain lines;
//! at the end of input the session waits (up to 10 s) for the outbox to drain.
//!
//! The client runs in the background and reconnects by itself; messages typed while the
//! server is away wait in the outbox and go out when it is back. Ctrl-C (or Ctrl-D on an
//! empty line) leaves; the outbox file keeps whatever is still unsent.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use chat_sdk::{ChatEvent, Client, ConnectionState, Events, SendError};
use crossterm::event::{Event, EventStream, KeyCode, KeyEventKind, KeyModifiers};
use futures_util::StreamExt;
use tokio::io::AsyncBufReadExt;

use super::{ensure_joined, interrupted, out};
use crate::cli::ChatArgs;
use crate::config;
use crate::connect;
use crate::fail::Fail;
use crate::output::Style;
use crate::view::View;

/// Runs `chat chat`.
pub async fn run(args: ChatArgs) -> Result<(), Fail> {
    let settings = config::resolve(&args.client)?;
    let (client, events) = connect::start(&settings)?;
    // A refused token ends the session at once; a server that is down does not.
    if let Some(state @ ConnectionState::Disconnected { .. }) =
        connect::first_outcome(&client, Duration::from_secs(5)).await
    {
        client.close().await;
        return Err(Fail::usage(crate::output::connection_text(&state)));
    }
    ensure_joined(&client, &args.room).await?;
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let view = View::new(
        args.room.clone(),
        client.user().cloned(),
        Style::detect(terminal),
    );
    let result = if terminal {
        tty(&client, events, view).await
    } else {
        lines(&client, events, view).await
    };
    let left = client.outbox().depth().unwrap_or(0);
    client.close().await;
    if left > 0 {
        eprintln!("chat: {left} message(s) wait in the outbox; they go out on the next connection (chat outbox flush)");
    }
    result
}

/// What a batch of events asks of the session.
fn take_events(
    view: &mut View,
    client: &Client,
    first: ChatEvent,
    events: &mut Events,
) -> Result<Vec<String>, Fail> {
    let mut lines = Vec::new();
    let mut next = Some(first);
    while let Some(event) = next {
        if let ChatEvent::Connection(state @ ConnectionState::Disconnected { .. }) = &event {
            return Err(Fail::usage(crate::output::connection_text(state)));
        }
        lines.extend(view.apply(&event));
        next = events.try_recv();
    }
    // What was shown has been seen: one read receipt per batch.
    if view.unread && *view.connection() == ConnectionState::Connected {
        view.unread = false;
        let client = client.clone();
        let room = view_room(view);
        tokio::spawn(async move {
            if let Err(err) = client.mark_read(&room).await {
                tracing::debug!(error = %err, "read receipt failed");
            }
        });
    }
    Ok(lines)
}

fn view_room(view: &View) -> chat_protocol::RoomId {
    view.room().clone()
}

async fn send_line(client: &Client, view: &View, text: &str) -> Option<String> {
    if text.trim().is_empty() {
        return None;
    }
    match client.send(&view_room(view), text).await {
        Ok(_) => None,
        Err(SendError::NotDurable { source, .. }) => Some(format!(
            "  ! queued, but the disk did not confirm it (do not type it again): {source}"
        )),
        Err(err) => Some(format!("  ✗ not sent: {err}")),
    }
}

/// Restores the terminal however the session ends.
struct RawMode;

impl RawMode {
    fn enable() -> Result<Self, Fail> {
        crossterm::terminal::enable_raw_mode()
            .map_err(|e| Fail::usage(format!("cannot set up the terminal: {e}")))?;
        Ok(Self)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// The input line and the lines printed above it.
struct Screen {
    input: String,
}

impl Screen {
    fn redraw(&self, prompt: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = write!(stdout, "\r\x1b[2K{prompt}{}", self.input);
        let _ = stdout.flush();
    }

    fn print(&self, lines: &[String], prompt: &str) {
        if lines.is_empty() {
            self.redraw(prompt);
            return;
        }
        let mut stdout = std::io::stdout().lock();
        for line in lines {
            let _ = write!(stdout, "\r\x1b[2K{}\r\n", line.replace('\n', "\r\n"));
        }
        drop(stdout);
        self.redraw(prompt);
    }
}

async fn tty(client: &Client, mut events: Events, mut view: View) -> Result<(), Fail> {
    let _raw = RawMode::enable()?;
    let mut keys = EventStream::new();
    let mut screen = Screen {
        input: String::new(),
    };
    screen.redraw(&view.prompt());
    let quit = interrupted();
    tokio::pin!(quit);
    let result = loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break Ok(()) };
                match take_events(&mut view, client, event, &mut events) {
                    Ok(lines) => screen.print(&lines, &view.prompt()),
                    Err(fail) => break Err(fail),
                }
            }
            key = keys.next() => {
                let Some(Ok(Event::Key(key))) = key else {
                    if key.is_none() { break Ok(()) }
                    continue;
                };
                if key.kind != KeyEventKind::Press {
                    continue;
                }
                let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
                match key.code {
                    KeyCode::Char('c') if ctrl => break Ok(()),
                    KeyCode::Char('d') if ctrl && screen.input.is_empty() => break Ok(()),
                    KeyCode::Char('u') if ctrl => screen.input.clear(),
                    KeyCode::Enter => {
                        let text = std::mem::take(&mut screen.input);
                        let lines: Vec<String> = send_line(client, &view, &text).await.into_iter().collect();
                        screen.print(&lines, &view.prompt());
                        continue;
                    }
                    KeyCode::Backspace => {
                        screen.input.pop();
                    }
                    KeyCode::Char(c) if !ctrl => {
                        screen.input.push(c);
                        let client = client.clone();
                        let room = view_room(&view);
                        tokio::spawn(async move { client.typing(&room).await });
                    }
                    _ => {}
                }
                screen.redraw(&view.prompt());
            }
            () = &mut quit => break Ok(()),
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = write!(stdout, "\r\x1b[2K");
    let _ = stdout.flush();
    result
}

async fn lines(client: &Client, mut events: Events, mut view: View) -> Result<(), Fail> {
    let mut input = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut input_open = true;
    let quit = interrupted();
    tokio::pin!(quit);
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    loop {
        if let Some(deadline) = drain_deadline {
            if client.outbox().depth().unwrap_or(0) == 0 || tokio::time::Instant::now() >= deadline
            {
                return Ok(());
            }
        }
        let tick = async {
            match drain_deadline {
                Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return Ok(()) };
                for line in take_events(&mut view, client, event, &mut events)? {
                    out(&line);
                }
            }
            line = input.next_line(), if input_open => match line {
                Ok(Some(text)) => {
                    if let Some(line) = send_line(client, &view, &text).await {
                        out(&line);
                    }
                }
                Ok(None) | Err(_) => {
                    input_open = false;
                    drain_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(10));
                }
            },
            () = tick => {}
            () = &mut quit => return Ok(()),
        }
    }
}
