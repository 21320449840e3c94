//! `chat serve` and `chat token`: the reference server and its tokens, exactly as the
//! `chat-server` binary runs them.

use anyhow::Context;
use chat_server::cli::{ServeArgs, TokenArgs};
use tokio::net::TcpListener;

use crate::fail::Fail;

/// Runs the server until Ctrl-C or SIGTERM, printing `listening on <addr>` on stdout once
/// it accepts connections.
pub async fn serve(args: ServeArgs) -> Result<(), Fail> {
    run(args).await.map_err(|e| Fail::usage(format!("{e:#}")))
}

async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let server = chat_server::Server::start(listener, config)
        .await
        .context("cannot start the server")?;
    super::out(&format!("listening on {addr}"));
    super::interrupted().await;
    server.shutdown().await.context("shutdown failed")
}

/// Prints a token for the user and nothing else.
pub fn token(args: TokenArgs) -> Result<(), Fail> {
    let secret = args.secret.get().map_err(|e| Fail::usage(e.to_string()))?;
    let token = chat_server::mint_token(secret, &args.user, args.ttl)
        .map_err(|e| Fail::usage(format!("cannot mint a token: {e}")))?;
    super::out(&token);
    Ok(())
}
