//! The benchmark's errors.

/// A benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The options do not fit together.
    #[error("{0}")]
    Usage(String),
    /// The server could not be started, reached or controlled.
    #[error("server: {0}")]
    Server(String),
    /// A client could not connect or join.
    #[error("client {index}: {message}")]
    Client {
        /// Which client.
        index: u32,
        /// What failed.
        message: String,
    },
    /// Writing the report failed.
    #[error("report: {0}")]
    Io(#[from] std::io::Error),
}
