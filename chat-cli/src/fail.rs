//! Exit codes and the one error type every command returns.
//!
//! The convention (docs/cli.md, Output and exit codes): `0` everything worked; `1` the command ran but what it
//! was asked to do did not happen (a message unsent or failed, a wait that timed out, a
//! request the server refused); `2` the command could not run at all (bad usage, bad input,
//! no configuration, the server unreachable). A [`Fail`] carries its code and one line of
//! text for stderr.

use chat_sdk::{ConnectError, OutboxError, RequestError, SendError, StoreError};

/// Exit code: the command ran but something it was asked for failed.
pub const FAILED: u8 = 1;
/// Exit code: bad usage, bad input, or no connection.
pub const USAGE: u8 = 2;

/// Why a command did not succeed: an exit code and one line for stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    /// The process exit code (1 or 2).
    pub code: u8,
    /// One line of explanation.
    pub message: String,
}

impl Fail {
    /// Exit 2: the command could not run.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: USAGE,
            message: message.into(),
        }
    }

    /// Exit 1: the command ran but did not achieve what was asked.
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            code: FAILED,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fail {}

impl From<ConnectError> for Fail {
    fn from(err: ConnectError) -> Self {
        Self::usage(err.to_string())
    }
}

impl From<RequestError> for Fail {
    fn from(err: RequestError) -> Self {
        match &err {
            RequestError::NotConnected | RequestError::Transport(_) => {
                Self::usage(format!("lost the server: {err}"))
            }
            RequestError::Invalid(_) => Self::usage(err.to_string()),
            RequestError::Rejected(_) | RequestError::Malformed(_) | RequestError::Store(_) => {
                Self::failed(err.to_string())
            }
        }
    }
}

impl From<SendError> for Fail {
    fn from(err: SendError) -> Self {
        match err {
            SendError::Invalid(_) => Self::usage(err.to_string()),
            SendError::OutboxFull { .. } | SendError::Store(_) | SendError::NotDurable { .. } => {
                Self::failed(err.to_string())
            }
        }
    }
}

impl From<OutboxError> for Fail {
    fn from(err: OutboxError) -> Self {
        Self::failed(err.to_string())
    }
}

impl From<StoreError> for Fail {
    fn from(err: StoreError) -> Self {
        Self::failed(err.to_string())
    }
}

impl From<std::io::Error> for Fail {
    fn from(err: std::io::Error) -> Self {
        Self::failed(format!("i/o error: {err}"))
    }
}
