//! Starting an SDK client from the settings: connected, or in the background.
//!
//! - [`connect`] waits for the first connection and fails (exit 2) when the server is down
//!   or refuses the token: for commands that need the server now (`listen`, `history`, …).
//! - [`start`] returns at once and connects in the background: `send` and `chat` queue
//!   messages in the outbox while the server is down.

use std::time::Duration;

use chat_sdk::{Client, ClientBuilder, ConnectionState, Events, RetryPolicy};

use crate::config::Settings;
use crate::fail::Fail;

/// Reconnect quickly: an operator at a terminal is waiting.
fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        min_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(2),
        ..RetryPolicy::default()
    }
}

fn builder(settings: &Settings) -> Result<ClientBuilder, Fail> {
    let builder = Client::builder(&settings.url, settings.token()?)
        .store_path(&settings.store)
        .device("chat-cli")
        .retry_policy(retry_policy())
        .connect_timeout(Duration::from_secs(3));
    Ok(match &settings.ca {
        Some(ca) => builder.add_root_certificate(ca),
        None => builder,
    })
}

/// Connects and waits for the connection; exit 2 when that fails.
pub async fn connect(settings: &Settings) -> Result<(Client, Events), Fail> {
    builder(settings)?
        .connect()
        .await
        .map_err(|e| Fail::usage(format!("{e} (server {})", settings.url)))
}

/// Starts the client in the background.
pub fn start(settings: &Settings) -> Result<(Client, Events), Fail> {
    Ok(builder(settings)?.start()?)
}

/// Starts a client that only sends, in the background: it re-joins no room on its own.
pub fn start_sending(settings: &Settings) -> Result<(Client, Events), Fail> {
    Ok(builder(settings)?.send_only().start()?)
}

/// Waits until the first connection attempt has an outcome: `Connected`, or a failure
/// (`Reconnecting` or `Disconnected`). Returns the state reached, or `None` after `limit`.
pub async fn first_outcome(client: &Client, limit: Duration) -> Option<ConnectionState> {
    let mut state = client.connection_state();
    let outcome = tokio::time::timeout(limit, async {
        state
            .wait_for(|s| !matches!(s, ConnectionState::Connecting))
            .await
            .map(|s| s.clone())
            .ok()
    })
    .await;
    outcome.ok().flatten()
}
