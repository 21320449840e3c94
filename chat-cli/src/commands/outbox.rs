//! `chat outbox list|retry|discard|flush`: the persistent outbox file.
//!
//! `list`, `retry` and `discard` open the file without connecting ([`Outbox::open`]), so
//! they work while the server is down (a retried message goes out on the next connection:
//! `flush`, `send`, `listen` or `chat`). While another `chat` runs on the same file, `list`
//! still works and `retry`/`discard` are refused with a message saying so. `flush` connects
//! and waits until nothing is left to send.

use std::time::Duration;

use chat_sdk::{ChatEvent, Client, ConnectionState, MessageState, Outbox};

use super::out;
use crate::cli::{OutboxAction, OutboxArgs};
use crate::config;
use crate::connect;
use crate::fail::Fail;
use crate::output::{self, Style};

/// Runs `chat outbox ...`.
pub async fn run(args: OutboxArgs) -> Result<(), Fail> {
    let settings = config::resolve(&args.client)?;
    match args.action {
        OutboxAction::List { json } => {
            // Read-only: listing must not hold the file against a client starting meanwhile.
            let messages = if settings.store.exists() {
                Outbox::open_read_only(&settings.store)?.list()?
            } else {
                Vec::new()
            };
            let style = Style::stdout();
            for message in &messages {
                if json {
                    out(&serde_json::to_string(message).unwrap_or_default());
                } else {
                    out(&output::outbox_row(message, style));
                }
            }
            if messages.is_empty() && !json {
                eprintln!("chat: the outbox is empty");
            }
            Ok(())
        }
        OutboxAction::Retry { id } => {
            Outbox::open(&settings.store)?.retry(id).await?;
            eprintln!(
                "chat: {id} queued again; it goes out on the next connection (chat outbox flush)"
            );
            Ok(())
        }
        OutboxAction::Discard { id } => {
            Outbox::open(&settings.store)?.discard(id).await?;
            eprintln!("chat: {id} discarded");
            Ok(())
        }
        OutboxAction::Flush { timeout } => {
            let (client, events) = connect::connect(&settings).await?;
            let result = flush(&client, events, timeout).await;
            client.close().await;
            result
        }
    }
}

/// Messages still to send, and failed ones.
fn unsent(client: &Client) -> Result<(usize, usize), Fail> {
    let messages = client.outbox().list()?;
    let pending = messages.iter().filter(|m| m.state.is_pending()).count();
    let failed = messages
        .iter()
        .filter(|m| matches!(m.state, MessageState::Failed { .. }))
        .count();
    Ok((pending, failed))
}

async fn flush(
    client: &Client,
    mut events: chat_sdk::Events,
    timeout: Duration,
) -> Result<(), Fail> {
    let style = Style::stdout();
    client.flush();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (pending, failed) = unsent(client)?;
        if pending == 0 {
            if failed > 0 {
                return Err(Fail::failed(format!(
                    "{failed} failed message(s) stay in the outbox: see `chat outbox list`, then retry or discard"
                )));
            }
            eprintln!("chat: the outbox is flushed");
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ChatEvent::Status {
                client_id,
                room,
                state,
            })) => {
                if !matches!(state, MessageState::Sending { attempt: 1 }) {
                    out(&output::status_line(&client_id, &room, &state, style));
                }
            }
            Ok(Some(ChatEvent::Connection(state @ ConnectionState::Disconnected { .. }))) => {
                return Err(Fail::usage(output::connection_text(&state)));
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                return Err(Fail::failed(format!(
                    "{pending} message(s) still unsent after {}; they stay in the outbox",
                    humantime::format_duration(timeout)
                )));
            }
        }
    }
}
