//! The command line: every command, flag and its `--help` text, as clap derive types.
//!
//! `serve` and `token` flatten the server's own [`ServeArgs`] and [`TokenArgs`], so
//! `chat serve` takes exactly the flags of `chat-server`. The commands that talk to a
//! server share [`ClientArgs`]: each of its flags falls back to an environment variable and
//! then to the config file (see [`crate::config`]).

use std::path::PathBuf;
use std::time::Duration;

use chat_protocol::{ClientId, RoomId, Seq, UserId};
use chat_server::cli::{ServeArgs, TokenArgs};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// `chat`: send, watch and repair a chat server's rooms from the terminal.
#[derive(Parser, Debug)]
#[command(
    name = "chat",
    version,
    about = "Send, watch and repair chat rooms from the terminal, or run the server.",
    after_help = "Examples:\n  \
        chat serve --jwt-secret s3cret &\n  \
        export CHAT_TOKEN=$(chat token alice --jwt-secret s3cret)\n  \
        chat send general 'hello'\n  \
        chat chat general\n\n\
        Configuration: flags, then CHAT_URL / CHAT_TOKEN / CHAT_STORE, then the file \
        $XDG_CONFIG_HOME/chat/config.toml (keys: url, token, store).\n\
        Exit codes: 0 ok, 1 ran but something failed (unsent, timed out, refused), \
        2 usage or connection error."
)]
pub struct Opts {
    /// More logs on stderr (or set RUST_LOG).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the reference server (the same flags as `chat-server`).
    #[command(
        after_help = "Example:\n  chat serve --listen 127.0.0.1:7070 --db chat.db --jwt-secret s3cret"
    )]
    Serve(ServeArgs),
    /// Print a token for a user, signed with the server's secret; nothing else is printed.
    #[command(
        after_help = "Example:\n  export CHAT_TOKEN=$(chat token alice --ttl 1h --jwt-secret s3cret)"
    )]
    Token(TokenArgs),
    /// Send a message (joining the room if needed) and follow its status.
    #[command(after_help = "Examples:\n  \
        chat send general 'hello'\n  \
        chat send general 'are you there?' --wait read --timeout 1m\n  \
        printf 'one\\ntwo\\n' | chat send general -\n\n\
        A message that cannot go out before the timeout stays in the outbox \
        (see `chat outbox`) and the command exits 1.")]
    Send(SendArgs),
    /// Print live messages, receipts, typing and presence of rooms.
    #[command(after_help = "Examples:\n  \
        chat listen general random\n  \
        chat listen general --since 0 --json | jq .body")]
    Listen(ListenArgs),
    /// Print a room's stored messages (the newest ones by default).
    #[command(after_help = "Examples:\n  \
        chat history general --limit 20\n  \
        chat history general --after 100 --json")]
    History(HistoryArgs),
    /// Mark everything in a room as read.
    #[command(after_help = "Example:\n  chat read general")]
    Read(RoomArgs),
    /// Show whether users are online and when they were last seen.
    #[command(after_help = "Example:\n  chat presence alice bob --json")]
    Presence(PresenceArgs),
    /// Tell a room you are typing, for a while.
    #[command(after_help = "Example:\n  chat typing general --for 5s")]
    Typing(TypingArgs),
    /// Inspect and repair the outbox of unsent messages (works offline).
    #[command(after_help = "Examples:\n  \
        chat outbox list\n  \
        chat outbox retry 0b5e6f9e-3c1a-4f7e-9a55-0c3c3b1c2d4e\n  \
        chat outbox flush --timeout 30s")]
    Outbox(OutboxArgs),
    /// An interactive session in a room: type a line to send it.
    #[command(after_help = "Example:\n  chat chat general\n\n\
        Your messages show ✓ when stored, ✓✓ when every other member has them and \
        'read' when all have read them. Messages typed offline wait in the outbox and go \
        out on reconnect. Ctrl-C or Ctrl-D leaves; the outbox is kept.")]
    Chat(ChatArgs),
}

/// Where the server is, who you are, and where the outbox lives.
#[derive(Args, Debug, Clone, Default)]
pub struct ClientArgs {
    /// Server URL [default: http://127.0.0.1:7070].
    #[arg(long, env = "CHAT_URL", hide_env_values = true)]
    pub url: Option<String>,
    /// Token (a JWT from `chat token`).
    #[arg(long, env = "CHAT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Outbox file [default: <data dir>/chat/<user>.db].
    #[arg(long, env = "CHAT_STORE", hide_env_values = true)]
    pub store: Option<PathBuf>,
    /// Also trust the root certificate(s) in this PEM file for an https:// server (a
    /// private CA, a self-signed `chat serve --tls-cert`).
    #[arg(
        long = "ca",
        env = "CHAT_CA_FILE",
        hide_env_values = true,
        value_name = "FILE"
    )]
    pub ca: Option<PathBuf>,
    /// Config file [default: <config dir>/chat/config.toml].
    #[arg(long, env = "CHAT_CONFIG", hide_env_values = true)]
    pub config: Option<PathBuf>,
}

/// The status a `send` waits for.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WaitFor {
    /// Stored by the server.
    Sent,
    /// Handed to every other member's application.
    Delivered,
    /// Read by every other member.
    Read,
}

impl WaitFor {
    /// The [`chat_sdk::MessageState::name`] this target corresponds to.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
        }
    }
}

/// Flags of `send`.
#[derive(Args, Debug)]
pub struct SendArgs {
    /// The room.
    pub room: RoomId,
    /// The message, or `-` to send each line of stdin as a message.
    pub text: String,
    /// Wait until the message is this far.
    #[arg(long, value_enum, default_value = "sent")]
    pub wait: WaitFor,
    /// Give up waiting after this long (the message stays in the outbox).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Print status changes as JSON Lines.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
}

/// Flags of `listen`.
#[derive(Args, Debug)]
pub struct ListenArgs {
    /// The rooms (joined if needed).
    #[arg(required = true)]
    pub rooms: Vec<RoomId>,
    /// First print the stored messages after this `seq` (0: the whole history).
    #[arg(long)]
    pub since: Option<Seq>,
    /// Print JSON Lines, one event a line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
}

/// Flags of `history`.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// The room (you must be a member).
    pub room: RoomId,
    /// How many messages.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub limit: u32,
    /// The messages right after this `seq` instead of the newest ones.
    #[arg(long)]
    pub after: Option<Seq>,
    /// Print JSON Lines.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
}

/// Flags of commands that take one room.
#[derive(Args, Debug)]
pub struct RoomArgs {
    /// The room.
    pub room: RoomId,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
}

/// Flags of `typing`.
#[derive(Args, Debug)]
pub struct TypingArgs {
    /// The room.
    pub room: RoomId,
    /// How long to show as typing.
    #[arg(long = "for", default_value = "3s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
}

/// Flags of `presence`.
#[derive(Args, Debug)]
pub struct PresenceArgs {
    /// The users (at most 100).
    #[arg(required = true)]
    pub users: Vec<UserId>,
    /// Print JSON Lines.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
}

/// Flags of `outbox`.
#[derive(Args, Debug)]
pub struct OutboxArgs {
    /// What to do with the outbox.
    #[command(subcommand)]
    pub action: OutboxAction,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
}

/// Outbox subcommands.
#[derive(Subcommand, Debug)]
pub enum OutboxAction {
    /// List every message in the outbox with its state (offline).
    List {
        /// Print JSON Lines.
        #[arg(long)]
        json: bool,
    },
    /// Queue a failed message again (offline; it goes out on the next connection).
    Retry {
        /// The message's id, from `chat outbox list`.
        id: ClientId,
    },
    /// Remove a message that is not being sent (offline).
    Discard {
        /// The message's id, from `chat outbox list`.
        id: ClientId,
    },
    /// Connect and send everything queued; exit 1 if anything is left.
    Flush {
        /// Give up after this long.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

/// Flags of `chat`.
#[derive(Args, Debug)]
pub struct ChatArgs {
    /// The room (joined if needed).
    pub room: RoomId,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
}
