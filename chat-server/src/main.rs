//! `chat-server`: runs the reference server, or mints a token with `chat-server token`.

use anyhow::Context;
use chat_server::cli::{ServeArgs, ServerCommand};
use clap::Parser;

/// The reference chat server.
///
/// Example: `chat-server --listen 127.0.0.1:7070 --db ./chat.db --jwt-secret SECRET`
#[derive(Parser, Debug)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<ServerCommand>,
    #[command(flatten)]
    serve: ServeArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "chat_server=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match (cli.command, cli.serve) {
        (Some(ServerCommand::Token(args)), _) => {
            let secret = args.secret.get();
            secret
                .map_err(anyhow::Error::from)
                .and_then(|secret| {
                    chat_server::mint_token(secret, &args.user, args.ttl)
                        .context("cannot mint a token")
                })
                .map(|token| println!("{token}"))
        }
        (None, args) => serve(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-server: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    runtime.block_on(chat_server::cli::serve(
        &args,
        chat_server::cli::shutdown_signal(),
        |listening| println!("{listening}"),
    ))?;
    Ok(())
}
