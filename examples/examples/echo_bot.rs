//! An echo bot: joins a room and answers every message of someone else with its text.
//!
//! Run it against `chat serve`:
//!
//! ```sh
//! chat serve --jwt-secret s3cret &                      # listens on 127.0.0.1:7070
//! CHAT_TOKEN=$(chat token echo-bot --jwt-secret s3cret) \
//!     cargo run -p examples --example echo_bot -- general
//! # in another terminal, as someone else:
//! CHAT_TOKEN=$(chat token alice --jwt-secret s3cret) chat chat general
//! ```
//!
//! `CHAT_URL` overrides the server URL (default `http://127.0.0.1:7070`).

use chat_sdk::{ChatEvent, Client};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("CHAT_URL").unwrap_or_else(|_| "http://127.0.0.1:7070".into());
    let token = std::env::var("CHAT_TOKEN").map_err(|_| "set CHAT_TOKEN (chat token echo-bot)")?;
    let room = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "general".into())
        .parse()?;

    // An in-memory outbox: a bot that restarts need not resend old answers.
    let (client, mut events) = Client::builder(url, token).in_memory().connect().await?;
    let me = client.user().cloned();
    client.join(&room).await?;
    eprintln!("echo bot in {room}; Ctrl-C stops it");

    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(ChatEvent::Message(message)) if Some(&message.sender) != me.as_ref() => {
                    // At start the SDK catches up from the bot's delivered watermark, so a
                    // restarted bot answers what arrived while it was away, once.
                    let text = format!("{} said: {}", message.sender, message.body);
                    client.reply(&room, text, message.seq).await?;
                }
                Some(_) => {}
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    client.close().await;
    Ok(())
}
