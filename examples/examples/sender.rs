//! A sender that prints each status change of its message until it is read.
//!
//! Run it against `chat serve`:
//!
//! ```sh
//! chat serve --jwt-secret s3cret &                      # listens on 127.0.0.1:7070
//! CHAT_TOKEN=$(chat token alice --jwt-secret s3cret) \
//!     cargo run -p examples --example sender -- general "hello, world"
//! # then, as another member: chat read general
//! ```
//!
//! It prints `queued`, `sending`, `sent #seq`, then `delivered` and `read` as the other
//! members of the room receive and read it. Stop the server meanwhile: the message waits
//! in the outbox (`sender.db`) and goes out when the server is back.

use chat_sdk::{Client, MessageState};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("CHAT_URL").unwrap_or_else(|_| "http://127.0.0.1:7070".into());
    let token = std::env::var("CHAT_TOKEN").map_err(|_| "set CHAT_TOKEN (chat token alice)")?;
    let mut args = std::env::args().skip(1);
    let room = args.next().unwrap_or_else(|| "general".into()).parse()?;
    let text = args.next().unwrap_or_else(|| "hello".into());

    // `start` does not wait for the server: the message is queued on disk either way.
    let (client, events) = Client::builder(url, token)
        .store_path("sender.db")
        .start()?;
    if let Err(err) = client.join(&room).await {
        // Offline, the SDK joins the room as soon as it connects, before sending.
        eprintln!("join deferred: {err}");
    }
    let message = client.send(&room, text).await?;
    println!("queued {}", message.client_id());

    // The handle's watch shows the message's state now, then every change.
    let mut state = message.watch()?;
    loop {
        let now = state.borrow_and_update().clone();
        match &now {
            Some(now) => match now.seq() {
                Some(seq) => println!("{now} #{seq}"),
                None => println!("{now}"),
            },
            None => break, // discarded from another handle
        }
        if matches!(
            now,
            Some(MessageState::Read { .. } | MessageState::Failed { .. })
        ) || state.changed().await.is_err()
        {
            break;
        }
    }
    drop(events);
    client.close().await;
    Ok(())
}
