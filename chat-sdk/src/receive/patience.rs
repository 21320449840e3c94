//! Patience with a server that refuses for now: the requests the client makes on its own
//! (join, resume, sync) are retried after `rate_limited` (its `retry_after_ms`, at most
//! [`MAX_RATE_LIMIT_WAIT`] at a time) until answered, and after `internal` (a backoff delay)
//! up to [`INTERNAL_RETRIES`] times, never past the connection's end.

use chat_protocol::ErrorCode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::client::shared::{request_on, Inner};
use crate::error::{RequestError, TransportError};
use crate::transport::Connection;

/// Wait used when a `rate_limited` answer carries no `retry_after_ms`.
const RATE_LIMIT_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// The longest wait one `rate_limited` answer can ask for.
const MAX_RATE_LIMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How often an `internal` answer is retried before the refusal is given up on (the room is
/// tried again on the next connection): a server that keeps failing must not hold the
/// receive path, which waits under `recv_lock`, for ever.
const INTERNAL_RETRIES: u32 = 5;

/// Sends a request the client makes on its own and decodes its ack, retrying `rate_limited`
/// (after the server's `retry_after_ms`) and `internal` (after a backoff delay) until it is
/// answered otherwise, the connection ends or the client stops.
pub(crate) async fn patiently<Req: Serialize, Res: DeserializeOwned>(
    inner: &Inner,
    conn: &dyn Connection,
    event: &str,
    request: &Req,
) -> Result<Res, RequestError> {
    let mut backoff = inner.config.retry.backoff();
    let mut internal = 0;
    loop {
        let wait = match request_on(conn, event, request).await {
            Err(RequestError::Rejected(refusal)) if refusal.code == ErrorCode::RateLimited => {
                refusal
                    .retry_after_ms
                    .map(std::time::Duration::from_millis)
                    .unwrap_or(RATE_LIMIT_WAIT)
                    .min(MAX_RATE_LIMIT_WAIT)
            }
            Err(RequestError::Rejected(refusal))
                if refusal.code == ErrorCode::Internal && internal < INTERNAL_RETRIES =>
            {
                internal += 1;
                backoff.next().unwrap_or(inner.config.retry.max_delay)
            }
            answered => return answered,
        };
        tracing::debug!(event, ?wait, "request refused for now; retrying");
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            reason = conn.closed() => {
                return Err(RequestError::Transport(TransportError::Closed(reason)))
            }
            () = inner.shutdown.cancelled() => return Err(RequestError::NotConnected),
        }
    }
}
