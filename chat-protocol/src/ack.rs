//! The acknowledgement envelope: `{"ok": true, ...}` or `{"ok": false, "error": {...}}`.
//!
//! The server builds acks with [`ok`] and [`err`]; clients read them with [`decode_ack`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ErrorCode;

/// The `error` object of a failed request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The machine-readable code.
    pub code: ErrorCode,
    /// What went wrong, for humans.
    pub message: String,
    /// For `rate_limited`: milliseconds until a retry may succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorBody {
    /// An error without a retry delay.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// A `rate_limited` error asking to wait `retry_after_ms`.
    pub fn rate_limited(retry_after_ms: u64) -> Self {
        Self {
            code: ErrorCode::RateLimited,
            message: format!("rate limit exceeded, retry in {retry_after_ms} ms"),
            retry_after_ms: Some(retry_after_ms),
        }
    }
}

/// The success ack for `result`: its fields with `"ok": true` added.
pub fn ok<T: Serialize>(result: &T) -> Value {
    let mut value =
        serde_json::to_value(result).unwrap_or_else(|_| Value::Object(Default::default()));
    if let Value::Object(map) = &mut value {
        map.insert("ok".into(), Value::Bool(true));
        value
    } else {
        serde_json::json!({ "ok": true, "result": value })
    }
}

/// The failure ack for `error`.
pub fn err(error: &ErrorBody) -> Value {
    serde_json::json!({ "ok": false, "error": error })
}

/// Why an ack could not be turned into a result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// The server answered with an error.
    #[error("server refused the request: {} ({})", .0.code, .0.message)]
    Refused(ErrorBody),
    /// The ack was not the shape the protocol gives.
    #[error("malformed ack: {0}")]
    Malformed(String),
}

/// Reads an ack: the result on `"ok": true`, the error body on `"ok": false`.
///
/// Single-element arrays around the object (some clients wrap ack arguments once or twice)
/// are peeled off first.
///
/// ```
/// use chat_protocol::{decode_ack, results::DeliveredResult, AckError, ErrorCode};
/// use serde_json::json;
///
/// let r: DeliveredResult = decode_ack(json!([[{"ok": true, "delivered_seq": 4}]])).unwrap();
/// assert_eq!(r.delivered_seq, 4);
/// let e = decode_ack::<DeliveredResult>(json!({"ok": false, "error": {"code": "forbidden", "message": "join first"}}));
/// assert!(matches!(e, Err(AckError::Refused(body)) if body.code == ErrorCode::Forbidden));
/// ```
pub fn decode_ack<T: DeserializeOwned>(mut value: Value) -> Result<T, AckError> {
    loop {
        match value {
            Value::Array(mut items) if items.len() == 1 => value = items.remove(0),
            _ => break,
        }
    }
    let ok = value
        .get("ok")
        .and_then(Value::as_bool)
        .ok_or_else(|| AckError::Malformed(format!("no boolean `ok` in {value}")))?;
    if ok {
        serde_json::from_value(value).map_err(|e| AckError::Malformed(e.to_string()))
    } else {
        let error = value
            .get_mut("error")
            .map(Value::take)
            .ok_or_else(|| AckError::Malformed("`ok: false` without `error`".into()))?;
        let body: ErrorBody =
            serde_json::from_value(error).map_err(|e| AckError::Malformed(e.to_string()))?;
        Err(AckError::Refused(body))
    }
}
