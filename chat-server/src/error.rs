//! The server's errors, one enum per operation.

use std::path::PathBuf;

use chat_protocol::{ErrorBody, ErrorCode};

/// Starting, running or stopping the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store could not be opened or closed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// Serving connections failed.
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
    /// The configuration is not usable.
    #[error("configuration: {0}")]
    Config(String),
    /// The TLS certificate or key is not usable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The other servers cannot be reached (Redis).
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// The TLS certificate or private key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or holds no certificate.
    #[error("TLS certificate file {}: {reason}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key file could not be read or holds no private key.
    #[error("TLS private key file {}: {reason}", path.display())]
    PrivateKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The certificate and key were read but cannot be used together (for instance, the
    /// key is not the certificate's).
    #[error("TLS certificate {} with key {}: {reason}", cert.display(), key.display())]
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why rustls refused them.
        reason: rustls::Error,
    },
}

/// Running the server from its command-line flags failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// No token secret was given.
    #[error(transparent)]
    MissingSecret(#[from] crate::cli::MissingSecret),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed to start or to stop.
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// PostgreSQL reported an error, or the connection to it failed.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection to PostgreSQL could be had in time.
    #[error("PostgreSQL connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The store's settings are not usable (a malformed URL).
    #[error("store configuration: {0}")]
    Config(String),
    /// The database file is from a newer version of the server.
    #[error("database schema version {found} is newer than this server understands ({supported})")]
    SchemaTooNew {
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// The commit failed; nothing of the request was stored.
    #[error("commit failed: {0}")]
    Commit(String),
    /// The request was dropped unrun (the store could not start a transaction).
    #[error("the store could not run the request")]
    Aborted,
    /// The store has been closed.
    #[error("the store is closed")]
    Closed,
    /// Stored data could not be read back (a corrupt or hand-edited row).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// How a client is told about this failure: nothing was committed.
    pub fn to_wire(&self) -> ErrorBody {
        tracing::error!(error = %self, "store failure");
        ErrorBody::new(
            ErrorCode::Internal,
            "the server could not store the request; nothing was committed",
        )
    }
}

/// The link to the other servers (Redis) failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Redis refused or could not be reached.
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Minting or checking a token failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token is malformed, expired or wrongly signed.
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    /// The token's `iat` lies in the future (beyond the clock leeway).
    #[error("invalid token: issued in the future")]
    IssuedInTheFuture,
    /// The token's subject is not a valid user id.
    #[error("token subject is not a valid user id: {0}")]
    Subject(#[from] chat_protocol::ValidationError),
}
