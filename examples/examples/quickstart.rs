//! The SDK in fifteen lines: connect over TLS, send, and follow the message until read.
//!
//! ```sh
//! CHAT_URL=https://127.0.0.1:7443 CHAT_CA=ca.pem CHAT_TOKEN=$(chat token alice) \
//!     cargo run -p examples --example quickstart
//! ```

use std::time::Duration;

use chat_sdk::{Client, Milestone};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("CHAT_URL").unwrap_or_else(|_| "http://127.0.0.1:7070".into());
    let mut builder = Client::builder(url, std::env::var("CHAT_TOKEN")?).store_path("alice.db");
    if let Ok(ca) = std::env::var("CHAT_CA") {
        builder = builder.add_root_certificate(ca); // a private CA or a self-signed server
    }
    let (client, _events) = builder.connect().await?;
    let room = "general".parse()?;
    client.join(&room).await?;
    let message = client.send(&room, "hello").await?; // on disk, safe from a crash
    let state = message
        .wait_for(Milestone::Delivered, Duration::from_secs(30))
        .await?;
    println!(
        "{} is {state}; {} left in the outbox",
        message.client_id(),
        client.outbox().depth()?
    );
    client.close().await;
    Ok(())
}
