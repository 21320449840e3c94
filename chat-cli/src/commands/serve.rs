//! `chat serve` and `chat token`: the reference server and its tokens, exactly as the
//! `chat-server` binary runs them.

use chat_server::cli::{ServeArgs, TokenArgs};

use crate::fail::Fail;

/// Runs the server until Ctrl-C or SIGTERM, printing `listening on <addr>` (with TLS,
/// `listening on https://<addr>`) on stdout once it accepts connections.
pub async fn serve(args: ServeArgs) -> Result<(), Fail> {
    run(args).await.map_err(|e| Fail::usage(format!("{e:#}")))
}

async fn run(args: ServeArgs) -> Result<(), chat_server::ServeError> {
    chat_server::cli::serve(&args, super::interrupted(), |listening| {
        super::out(&listening.to_string());
    })
    .await
}

/// Prints a token for the user and nothing else.
pub fn token(args: TokenArgs) -> Result<(), Fail> {
    let secret = args.secret.get().map_err(|e| Fail::usage(e.to_string()))?;
    let token = chat_server::mint_token(secret, &args.user, args.ttl)
        .map_err(|e| Fail::usage(format!("cannot mint a token: {e}")))?;
    super::out(&token);
    Ok(())
}
