//! The command-line interface of the server, shared by `chat-server` and `chat serve`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chat_protocol::UserId;
use clap::{Args, Subcommand};

use crate::config::{Limits, RateLimits, ServerConfig, TlsConfig};
use crate::error::ServeError;
use crate::Server;

/// Flags of the server.
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// SQLite database file (created if missing), or a `postgres://` URL: a PostgreSQL
    /// database several servers can share.
    #[arg(long, default_value = "chat.db")]
    pub db: PathBuf,
    /// Reach the other servers of a deployment through this Redis (`redis://HOST:PORT`,
    /// Redis 7 or later): room events reach the sockets of every server.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// The token secret.
    #[command(flatten)]
    pub secret: SecretArg,
    /// Sync each commit with `synchronous=NORMAL` instead of `FULL` (faster; the last
    /// commits may be lost on power failure, not on a process crash).
    #[arg(long)]
    pub no_fsync: bool,
    /// Most characters in a message body.
    #[arg(long, default_value_t = 4000, value_parser = clap::value_parser!(u32).range(1..=4000))]
    pub max_body_chars: u32,
    /// `message:send` requests per second per user (burst: twice this).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub send_rate: u32,
    /// `typing:*` events per second per user (burst: twice this).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub typing_rate: u32,
    /// Other requests per second per user (burst: twice this).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub request_rate: u32,
    /// Most simultaneous connections per user.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_user: u32,
    /// Most simultaneous TCP connections from one IP address (authenticated or not).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_address: u32,
    /// Close a connection that has not finished its TLS handshake, sent its HTTP request
    /// head, or sent its Socket.IO CONNECT after the upgrade within this time (each step).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub handshake_timeout: Duration,
    /// Close a connection whose client has sent nothing for this long (more than the 25 s
    /// ping interval: a live client answers every ping).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Let browser pages connect only from this origin (such as
    /// `https://chat.example.com`); repeat for several. Without it any origin may connect.
    /// Clients that send no `Origin` (the SDK, bots) are not affected.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// How long a user stays online after its last socket closes.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub presence_grace: Duration,
    /// Serve HTTPS and WSS with the certificate chain in this PEM file (needs `--tls-key`).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert`, a PEM file (needs `--tls-cert`).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Do not answer or announce the `room:resume` extension: clients re-join and catch up
    /// room by room, as with a server that lacks it.
    #[arg(long)]
    pub no_resume: bool,
    /// Do not answer or announce the `message:send_batch` extension: clients send one
    /// message per request, as to a server that lacks it.
    #[arg(long)]
    pub no_send_batch: bool,
    /// Cap the database at this many MiB; past it writes are refused with `internal`, as on
    /// a full disk.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_db_mib: Option<u64>,
}

/// The token secret, from `--jwt-secret` or `CHAT_JWT_SECRET`.
#[derive(Args, Clone, Debug)]
pub struct SecretArg {
    /// HS256 secret tokens are signed with (required).
    #[arg(long = "jwt-secret", env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

/// No secret was given.
#[derive(Debug, thiserror::Error)]
#[error("no token secret: pass --jwt-secret or set CHAT_JWT_SECRET")]
pub struct MissingSecret;

impl SecretArg {
    /// The secret, which must be given and not be empty.
    pub fn get(&self) -> Result<&str, MissingSecret> {
        self.jwt_secret
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or(MissingSecret)
    }
}

impl ServeArgs {
    /// The configuration these flags describe.
    pub fn config(&self) -> Result<ServerConfig, MissingSecret> {
        let mut config = ServerConfig::new(&self.db, self.secret.get()?);
        let db = self.db.to_string_lossy();
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            config.postgres_url = Some(db.into_owned());
        }
        config.redis_url = self.redis.clone();
        config.durable = !self.no_fsync;
        config.limits = Limits {
            max_body_chars: self.max_body_chars as usize,
            max_connections_per_user: self.max_connections_per_user as usize,
            max_connections_per_address: self.max_connections_per_address as usize,
            ..Limits::default()
        };
        config.rates = RateLimits {
            send_per_sec: self.send_rate,
            typing_per_sec: self.typing_rate,
            other_per_sec: self.request_rate,
        };
        config.presence_grace = self.presence_grace;
        config.handshake_timeout = self.handshake_timeout;
        config.idle_timeout = self.idle_timeout;
        config.allowed_origins = self.allowed_origins.clone();
        // The handshake timeout bounds the TLS handshake too: the same slow client, one step earlier.
        config.tls = self.tls().map(|tls| TlsConfig {
            handshake_timeout: self.handshake_timeout,
            ..tls
        });
        config.resume_extension = !self.no_resume;
        config.send_batch_extension = !self.no_send_batch;
        config.max_db_bytes = self.max_db_mib.map(|mib| mib.saturating_mul(1 << 20));
        Ok(config)
    }

    /// The TLS setting of `--tls-cert` and `--tls-key`, given both (the command line accepts
    /// both or neither).
    pub fn tls(&self) -> Option<TlsConfig> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsConfig::new(cert, key)),
            _ => None,
        }
    }
}

/// Where a started server accepts connections. Its `Display` is the line the binaries
/// print on stdout: `listening on 127.0.0.1:7070`, or `listening on https://127.0.0.1:7070`
/// with TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listening {
    /// The bound address.
    pub addr: SocketAddr,
    /// Whether it serves TLS.
    pub tls: bool,
}

impl std::fmt::Display for Listening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.tls {
            write!(f, "listening on https://{}", self.addr)
        } else {
            write!(f, "listening on {}", self.addr)
        }
    }
}

/// Flags of `token`.
#[derive(Args, Clone, Debug)]
pub struct TokenArgs {
    /// The user the token is for.
    pub user: UserId,
    /// How long the token is valid.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// The token secret.
    #[command(flatten)]
    pub secret: SecretArg,
}

/// Subcommands of `chat-server`.
#[derive(Subcommand, Clone, Debug)]
pub enum ServerCommand {
    /// Print a token for a user, signed with the server's secret.
    ///
    /// Example: `CHAT_TOKEN=$(chat-server token alice --ttl 1h)`
    Token(TokenArgs),
}

/// Runs the server the flags describe: binds, starts, calls `announce` with where it listens
/// once connections are accepted, serves until `stop` completes, then shuts down gracefully.
/// Both `chat-server` and `chat serve` run this.
pub async fn serve(
    args: &ServeArgs,
    stop: impl Future<Output = ()>,
    announce: impl FnOnce(Listening),
) -> Result<(), ServeError> {
    let config = args.config()?;
    raise_open_file_limit();
    let tls = config.tls.is_some();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: args.listen,
        source,
    })?;
    let server = Server::start(listener, config).await?;
    announce(Listening { addr, tls });
    stop.await;
    Ok(server.shutdown().await?)
}

/// Raises this process's soft limit on open files to its hard limit: every connection is a
/// file descriptor, and the common soft default of 1,024 would cap the server at about a
/// thousand clients however much the machine could serve.
pub fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(open_files = limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}

/// Resolves on Ctrl-C, or SIGTERM on Unix.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_startup_line_names_https_only_with_tls() {
        let addr: SocketAddr = "127.0.0.1:7070".parse().expect("address");
        let plain = Listening { addr, tls: false };
        let secure = Listening { addr, tls: true };
        assert_eq!(plain.to_string(), "listening on 127.0.0.1:7070");
        assert_eq!(secure.to_string(), "listening on https://127.0.0.1:7070");
    }

    #[derive(clap::Parser)]
    struct Command {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn the_handshake_timeout_also_bounds_the_tls_handshake() {
        use clap::Parser;
        let parsed = Command::try_parse_from([
            "chat-server",
            "--jwt-secret",
            "s",
            "--handshake-timeout",
            "3s",
            "--tls-cert",
            "cert.pem",
            "--tls-key",
            "key.pem",
        ])
        .expect("flags parse");
        let config = parsed.serve.config().expect("a secret");
        assert_eq!(config.handshake_timeout, Duration::from_secs(3));
        let tls = config.tls.expect("TLS is on");
        assert_eq!(tls.handshake_timeout, Duration::from_secs(3));
    }
}
