//! The `chat` command: a thin user of `chat-sdk` for operators, plus the reference server.
//!
//! `main.rs` only calls [`main`]; everything else lives here so tests can parse [`Opts`]
//! and render help without spawning a process. Results go to stdout, logs and progress to
//! stderr; the exit code is 0 (ok), 1 (ran but something failed) or 2 (usage or
//! connection error), see [`fail`].

pub mod cli;
mod commands;
pub mod config;
mod connect;
pub mod fail;
pub mod output;
pub mod view;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use cli::Command;
pub use cli::Opts;
use fail::Fail;

/// Parses the command line, runs the command, and turns the outcome into an exit code.
pub fn main() -> ExitCode {
    let opts = match Opts::try_parse() {
        Ok(opts) => opts,
        Err(err) => return parse_error(err),
    };
    init_logging(&opts);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chat: cannot start the runtime: {e}");
            return ExitCode::from(fail::USAGE);
        }
    };
    let result = runtime.block_on(run(opts));
    // Background tasks of a closed client must not hold the process up.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(fail) => {
            eprintln!("chat: {}", fail.message);
            ExitCode::from(fail.code)
        }
    }
}

/// Help and version go to stdout with exit 0; a bad value is one line on stderr, exit 2.
fn parse_error(err: clap::Error) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            ExitCode::from(if err.use_stderr() { fail::USAGE } else { 0 })
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let text = err.render().to_string();
            let first = text.lines().next().unwrap_or("invalid value");
            eprintln!("chat: {}", first.trim_start_matches("error: "));
            ExitCode::from(fail::USAGE)
        }
        _ => {
            let _ = err.print();
            ExitCode::from(fail::USAGE)
        }
    }
}

fn init_logging(opts: &Opts) {
    let default = match (&opts.command, opts.verbose) {
        (Command::Serve(_), false) => "chat_server=info",
        (Command::Serve(_), true) => "chat_server=debug,info",
        (_, true) => "chat_cli=debug,chat_sdk=debug,warn",
        (_, false) => "error",
    };
    let filter = if opts.verbose {
        tracing_subscriber::EnvFilter::new(default)
    } else {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default))
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs one parsed command.
pub async fn run(opts: Opts) -> Result<(), Fail> {
    match opts.command {
        Command::Serve(args) => commands::serve::serve(args).await,
        Command::Token(args) => commands::serve::token(args),
        Command::Send(args) => commands::send::run(args).await,
        Command::Listen(args) => commands::listen::run(args).await,
        Command::History(args) => commands::history::run(args).await,
        Command::Read(args) => commands::requests::read(args).await,
        Command::Presence(args) => commands::requests::presence(args).await,
        Command::Typing(args) => commands::requests::typing(args).await,
        Command::Outbox(args) => commands::outbox::run(args).await,
        Command::Chat(args) => commands::chat::run(args).await,
    }
}
