//! Error codes on the wire and the errors of validating and decoding payloads.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The code of a failed request, as carried in an error ack or a connect error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The argument is not the shape or range the protocol gives. Never retry.
    InvalidPayload,
    /// Over a size limit. Never retry.
    TooLarge,
    /// Token missing, expired, wrongly signed or revoked. Retry after re-auth.
    Unauthorized,
    /// Not a member of the room. Never retry (join first).
    Forbidden,
    /// Over the rate limit; retry after `retry_after_ms`.
    RateLimited,
    /// The server failed and committed nothing. Retry with backoff.
    Internal,
    /// The user is over its connection cap (connect error only).
    TooManyConnections,
    /// A code this version of the protocol does not know (sent by a newer server).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it travels on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidPayload => "invalid_payload",
            Self::TooLarge => "too_large",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limited",
            Self::Internal => "internal",
            Self::TooManyConnections => "too_many_connections",
            Self::Unknown => "unknown",
        }
    }

    /// Parses a wire code; anything unknown is [`ErrorCode::Unknown`].
    pub fn from_wire(code: &str) -> Self {
        serde_json::from_value(serde_json::Value::String(code.to_owned())).unwrap_or(Self::Unknown)
    }

    /// Whether a request that failed with this code may succeed if sent again unchanged
    /// (possibly after a delay or a re-authentication).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::RateLimited | Self::Internal | Self::Unauthorized | Self::TooManyConnections
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Prefix of the messages of limit violations, so a decode error can be classified as
/// `too_large` rather than `invalid_payload`.
const TOO_LARGE_PREFIX: &str = "too large: ";

/// Why a value is not a valid id or body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// An id is empty or longer than its limit.
    #[error("{kind} must be 1 to {max} characters")]
    IdLength {
        /// Which kind of id.
        kind: &'static str,
        /// The limit.
        max: usize,
    },
    /// An id holds a character outside `[A-Za-z0-9_.-]`.
    #[error("{kind} may hold only A-Z, a-z, 0-9, '_', '.' and '-', found {found:?}")]
    IdCharacter {
        /// Which kind of id.
        kind: &'static str,
        /// The first offending character.
        found: char,
    },
    /// A `client_id` is not a UUID.
    #[error("client_id must be a UUID")]
    ClientId,
    /// A body is over its limit.
    #[error("too large: body has {chars} characters, at most {max} are allowed")]
    BodyTooLarge {
        /// Characters in the body.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// A body is empty or only white space.
    #[error("body must not be empty or blank")]
    BodyBlank,
    /// A body holds a control character other than `\n` and `\t`.
    #[error("body must not hold control characters (found U+{code_point:04X})")]
    BodyControlCharacter {
        /// The offending character's code point.
        code_point: u32,
    },
    /// A list holds more items than allowed.
    #[error("too large: {what} holds {len} items, at most {max} are allowed")]
    TooMany {
        /// What the list is.
        what: &'static str,
        /// Items in the list.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A list names the same item twice.
    #[error("{what} names {item} more than once")]
    Repeated {
        /// What the list is.
        what: &'static str,
        /// The repeated item.
        item: String,
    },
    /// A list that must not be empty is.
    #[error("{what} must not be empty")]
    Empty {
        /// What the list is.
        what: &'static str,
    },
    /// A number is outside its range.
    #[error("{what} must be between {min} and {max}")]
    OutOfRange {
        /// What the number is.
        what: &'static str,
        /// Lowest allowed value.
        min: u64,
        /// Highest allowed value.
        max: u64,
    },
}

impl ValidationError {
    /// The wire code this violation is answered with.
    pub fn code(&self) -> ErrorCode {
        if self.to_string().starts_with(TOO_LARGE_PREFIX) {
            ErrorCode::TooLarge
        } else {
            ErrorCode::InvalidPayload
        }
    }
}

/// A request argument that could not be decoded into its typed form.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DecodeError {
    /// `invalid_payload`, or `too_large` when a size limit was the reason.
    pub code: ErrorCode,
    /// What was wrong, for humans.
    pub message: String,
}

/// Decodes a request argument, classifying a failure as `too_large` when a size limit was
/// broken and `invalid_payload` otherwise.
///
/// ```
/// use chat_protocol::{decode_request, requests::SendMessage, ErrorCode};
///
/// let err = decode_request::<SendMessage>(serde_json::json!({"room": "r"})).unwrap_err();
/// assert_eq!(err.code, ErrorCode::InvalidPayload);
/// ```
pub fn decode_request<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, DecodeError> {
    serde_json::from_value(value).map_err(|err| {
        let message = err.to_string();
        let code = if message.starts_with(TOO_LARGE_PREFIX) {
            ErrorCode::TooLarge
        } else {
            ErrorCode::InvalidPayload
        };
        DecodeError { code, message }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_do_not_fail_decoding() {
        let code: ErrorCode = serde_json::from_str("\"teapot\"").expect("parses");
        assert_eq!(code, ErrorCode::Unknown);
        assert_eq!(ErrorCode::from_wire("rate_limited"), ErrorCode::RateLimited);
    }

    #[test]
    fn limit_violations_are_too_large() {
        let err = ValidationError::BodyTooLarge { chars: 5, max: 4 };
        assert_eq!(err.code(), ErrorCode::TooLarge);
        assert_eq!(ValidationError::BodyBlank.code(), ErrorCode::InvalidPayload);
    }
}
