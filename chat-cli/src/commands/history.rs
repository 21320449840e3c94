//! `chat history <room>`: stored messages, read with `message:sync`, without joining and
//! without moving this client's position or receipts.

use super::out;
use crate::cli::HistoryArgs;
use crate::config;
use crate::connect;
use crate::fail::Fail;
use crate::output::{self, Style};

/// Runs `chat history`.
pub async fn run(args: HistoryArgs) -> Result<(), Fail> {
    let settings = config::resolve(&args.client)?;
    let (client, _events) = connect::connect(&settings).await?;
    let result = history(&args, &client).await;
    client.close().await;
    result
}

async fn history(args: &HistoryArgs, client: &chat_sdk::Client) -> Result<(), Fail> {
    let after = match args.after {
        Some(after) => after,
        None => {
            // One message is enough to learn the room's newest `seq`.
            let probe = client.history(&args.room, 0, 1).await.map_err(|e| {
                if e.code() == Some(chat_protocol::ErrorCode::Forbidden) {
                    Fail::failed(format!(
                        "you are not a member of {}: join it with `chat listen {}` or `chat send`",
                        args.room, args.room
                    ))
                } else {
                    Fail::from(e)
                }
            })?;
            probe.last_seq.saturating_sub(u64::from(args.limit))
        }
    };
    let page = client.history(&args.room, after, args.limit).await?;
    let style = Style::stdout();
    for message in &page.messages {
        if args.json {
            out(&serde_json::to_string(message).unwrap_or_default());
        } else {
            out(&output::message_line(message, false, style));
        }
    }
    if page.messages.is_empty() && !args.json {
        eprintln!("chat: no messages in {} after #{after}", args.room);
    }
    Ok(())
}
