//! A presence watcher: prints who is online now, then every change as it happens.
//!
//! Run it against `chat serve`:
//!
//! ```sh
//! chat serve --jwt-secret s3cret &                      # listens on 127.0.0.1:7070
//! CHAT_TOKEN=$(chat token carol --jwt-secret s3cret) \
//!     cargo run -p examples --example presence_watcher -- general alice bob
//! # then connect and disconnect alice: chat chat general (as alice), Ctrl-C
//! ```
//!
//! Presence changes arrive for users who share a room with the watcher, so it joins the
//! room given first. A user stays online for a grace period (5 s by default) after the
//! last connection closes, so a quick reconnect does not flap.

use chat_protocol::UserId;
use chat_sdk::{ChatEvent, Client};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("CHAT_URL").unwrap_or_else(|_| "http://127.0.0.1:7070".into());
    let token = std::env::var("CHAT_TOKEN").map_err(|_| "set CHAT_TOKEN (chat token carol)")?;
    let mut args = std::env::args().skip(1);
    let room = args.next().unwrap_or_else(|| "general".into()).parse()?;
    let mut users = Vec::new();
    for name in args {
        users.push(UserId::new(name)?);
    }

    let (client, mut events) = Client::builder(url, token).in_memory().connect().await?;
    let joined = client.join(&room).await?;
    if users.is_empty() {
        users = joined.members;
    }
    for p in client.presence(&users).await? {
        println!(
            "{}: {}",
            p.user,
            if p.online { "online" } else { "offline" }
        );
    }

    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(ChatEvent::Presence(p)) => {
                    let seen = p.last_seen.map(|ts| format!(" (last seen at {ts} ms)")).unwrap_or_default();
                    println!("{} is now {}{seen}", p.user, if p.online { "online" } else { "offline" });
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
