//! A listener: prints every message of the rooms it is given, live, after catching up.
//!
//! Run it against `chat serve`:
//!
//! ```sh
//! chat serve --jwt-secret s3cret &                      # listens on 127.0.0.1:7070
//! CHAT_TOKEN=$(chat token bob --jwt-secret s3cret) \
//!     cargo run -p examples --example listener -- general random
//! # and send something: chat send general hi
//! ```
//!
//! Its position in each room is kept in `listener.db`: stop it, let messages arrive, start
//! it again, and it prints exactly the ones it missed, once each, in order.

use chat_sdk::{ChatEvent, Client};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("CHAT_URL").unwrap_or_else(|_| "http://127.0.0.1:7070".into());
    let token = std::env::var("CHAT_TOKEN").map_err(|_| "set CHAT_TOKEN (chat token bob)")?;
    let mut rooms = Vec::new();
    for name in std::env::args().skip(1) {
        rooms.push(name.parse()?);
    }
    if rooms.is_empty() {
        rooms.push("general".parse()?);
    }

    let (client, mut events) = Client::builder(url, token)
        .store_path("listener.db")
        .connect()
        .await?;
    for room in &rooms {
        client.join(room).await?;
    }

    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(ChatEvent::Message(m)) => println!("[{}] #{} {}: {}", m.room, m.seq, m.sender, m.body),
                Some(ChatEvent::Connection(state)) => eprintln!("connection: {state:?}"),
                Some(_) => {}
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    client.close().await;
    Ok(())
}
