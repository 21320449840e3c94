//! The one-shot requests: `chat read`, `chat presence`, `chat typing`.

use std::time::Duration;

use serde_json::json;

use super::{ensure_joined, out};
use crate::cli::{PresenceArgs, RoomArgs, TypingArgs};
use crate::config;
use crate::connect;
use crate::fail::Fail;
use crate::output;

/// `chat read <room>`: joins if needed, catches up, and marks everything read.
pub async fn read(args: RoomArgs) -> Result<(), Fail> {
    let settings = config::resolve(&args.client)?;
    let (client, _events) = connect::connect(&settings).await?;
    let result = async {
        // "Everything" is the room's newest message as of the join, whether or not this
        // one-shot command took it from the event stream.
        let joined = client.join(&args.room).await?;
        let read = client.mark_read_up_to(&args.room, joined.last_seq).await?;
        if args.json {
            out(
                &json!({"room": args.room, "read_seq": read.read_seq, "updated": read.updated})
                    .to_string(),
            );
        } else {
            out(&format!(
                "{}: read up to #{} ({} newly read)",
                args.room, read.read_seq, read.updated
            ));
        }
        Ok(())
    }
    .await;
    client.close().await;
    result
}

/// `chat presence <user>...`.
pub async fn presence(args: PresenceArgs) -> Result<(), Fail> {
    let settings = config::resolve(&args.client)?;
    let (client, _events) = connect::connect(&settings).await?;
    let result = client.presence(&args.users).await;
    client.close().await;
    for presence in result? {
        if args.json {
            out(&serde_json::to_string(&presence).unwrap_or_default());
        } else {
            out(&output::presence_text(&presence));
        }
    }
    Ok(())
}

/// `chat typing <room>`: shows the user as typing for a while, then stops.
pub async fn typing(args: TypingArgs) -> Result<(), Fail> {
    let settings = config::resolve(&args.client)?;
    let (client, _events) = connect::connect(&settings).await?;
    let result = async {
        ensure_joined(&client, &args.room).await?;
        let until = tokio::time::Instant::now() + args.duration;
        // The server forgets a typing indicator 6 s after its last refresh; the SDK
        // throttles refreshes, so keep pressing "keys" until the time is up.
        while tokio::time::Instant::now() < until {
            client.typing(&args.room).await;
            let step = until.saturating_duration_since(tokio::time::Instant::now());
            tokio::time::sleep(step.min(Duration::from_secs(1))).await;
        }
        client.stop_typing(&args.room).await;
        eprintln!(
            "chat: typed in {} for {}",
            args.room,
            humantime::format_duration(args.duration)
        );
        Ok(())
    }
    .await;
    client.close().await;
    result
}
