//! The supervisor: the one loop that owns (re)connection.
//!
//! It connects through the transport, runs a session on each connection until the
//! connection dies, and then reconnects with exponential backoff, jitter and a cap, rotating
//! through the configured URLs. The transport never reconnects by itself, so two retry loops
//! never stack. A refused token triggers the refresh hook; without one (or if the new token
//! is refused too) the client stops in `Disconnected { Unauthorized }`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chat_protocol::ErrorCode;
use serde_json::json;
use tokio::sync::oneshot;

use crate::client::shared::{lock, Inner};
use crate::error::{ConnectError, TransportError};
use crate::outbox::flusher;
use crate::receive::receive_loop;
use crate::transport::ConnectRequest;
use crate::{ConnectionState, DisconnectReason};

/// A token whose `exp` is this close is refreshed before it is offered.
const REFRESH_AHEAD_SECS: f64 = 30.0;

/// Whether `token` (as far as its `exp` can be read) expires within [`REFRESH_AHEAD_SECS`]:
/// then a refresh hook is asked for a new one before connecting, instead of after the
/// server refused it.
fn expires_soon(token: &str) -> bool {
    let Some(exp) = crate::client::builder::token_expiry(token) else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    exp <= now + REFRESH_AHEAD_SECS
}

/// Reports the outcome of the first connection attempt to `connect()`.
pub(crate) type FirstOutcome = oneshot::Sender<Result<(), ConnectError>>;

/// What to do after a failed attempt.
enum Next {
    Retry,
    Stop(DisconnectReason),
}

/// Waits `delay` unless the client shuts down; false on shutdown.
async fn pause(inner: &Inner, delay: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = inner.shutdown.cancelled() => false,
    }
}

async fn refresh_token(inner: &Inner) -> Result<bool, String> {
    let Some(hook) = inner.config.token_refresh.clone() else {
        return Ok(false);
    };
    let token = hook().await?;
    *lock(&inner.token) = token;
    Ok(true)
}

fn connect_request(inner: &Inner, url: &str) -> ConnectRequest {
    let token = lock(&inner.token).clone();
    let auth = match &inner.config.device {
        Some(device) => json!({ "token": token, "device": device }),
        None => json!({ "token": token }),
    };
    ConnectRequest {
        url: url.to_owned(),
        tls: inner.config.tls.clone(),
        auth,
        connect_timeout: inner.config.connect_timeout,
        ack_timeout: inner.config.ack_timeout,
        inbound_capacity: inner.config.inbound_capacity,
    }
}

/// Runs until shutdown or a permanent refusal.
pub(crate) async fn run(inner: Arc<Inner>, mut first: Option<FirstOutcome>) {
    let urls = inner.config.urls.clone();
    let mut url_index = 0usize;
    let mut attempt: u32 = 0;
    let mut backoff = inner.config.retry.backoff();
    let mut ever_connected = false;
    // Per URL: its server's certificate was refused (cleared by a connection).
    let mut cert_refused = vec![false; urls.len()];
    // Refreshes tried since the last accepted token; a second refusal in a row stops.
    let mut refreshed_since_refusal = false;

    let final_reason = loop {
        if inner.shutdown.is_cancelled() {
            break DisconnectReason::Closed;
        }
        inner.set_state(if ever_connected || attempt > 0 {
            ConnectionState::Reconnecting {
                attempt: attempt.max(1),
            }
        } else {
            ConnectionState::Connecting
        });
        let expiring = expires_soon(&lock(&inner.token));
        if (inner.refresh_token.swap(false, Ordering::AcqRel) || expiring)
            && inner.config.token_refresh.is_some()
        {
            match refresh_token(&inner).await {
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "token refresh failed"),
            }
        }
        // Skip the URLs whose certificate was refused, while another one remains.
        while cert_refused[url_index % urls.len()] && cert_refused.iter().any(|r| !r) {
            url_index += 1;
        }
        let url = &urls[url_index % urls.len()];
        let request = connect_request(&inner, url);
        let result = tokio::select! {
            result = inner.config.transport.connect(request) => result,
            () = inner.shutdown.cancelled() => break DisconnectReason::Closed,
        };
        let next = match result {
            Ok((conn, inbound)) => {
                ever_connected = true;
                cert_refused.fill(false);
                attempt = 0;
                refreshed_since_refusal = false;
                backoff = inner.config.retry.backoff();
                inner.conn.send_replace(Some(conn.clone()));
                inner.set_state(ConnectionState::Connected);
                if let Some(first) = first.take() {
                    let _ = first.send(Ok(()));
                }
                let reason = receive_loop::run(&inner, conn.clone(), inbound).await;
                tracing::debug!(%reason, "connection ended");
                conn.close(&reason);
                inner.conn.send_replace(None);
                if inner.shutdown.is_cancelled() {
                    break DisconnectReason::Closed;
                }
                Next::Retry
            }
            Err(TransportError::Refused {
                code: ErrorCode::Unauthorized,
                message,
            }) => {
                if refreshed_since_refusal || inner.config.token_refresh.is_none() {
                    if let Some(first) = first.take() {
                        let _ = first.send(Err(ConnectError::Unauthorized(message.clone())));
                    }
                    Next::Stop(DisconnectReason::Unauthorized { message })
                } else {
                    match refresh_token(&inner).await {
                        Ok(_) => {
                            refreshed_since_refusal = true;
                            // Try the new token at once.
                            continue;
                        }
                        Err(err) => {
                            if let Some(first) = first.take() {
                                let _ = first.send(Err(ConnectError::TokenRefresh(err.clone())));
                                Next::Stop(DisconnectReason::Unauthorized { message: err })
                            } else {
                                // A running client keeps going: the hook is asked again at
                                // the next attempt, after the backoff delay.
                                tracing::warn!(error = %err, "token refresh failed; retrying");
                                Next::Retry
                            }
                        }
                    }
                }
            }
            Err(TransportError::Certificate(reason)) => {
                tracing::warn!(%reason, url, "the server's certificate was refused");
                // Waiting does not fix a certificate: this URL is not tried again, and once
                // every URL refused its certificate the client stops.
                cert_refused[url_index % urls.len()] = true;
                url_index += 1;
                if cert_refused.iter().all(|refused| *refused) {
                    if let Some(first) = first.take() {
                        let _ = first.send(Err(ConnectError::Certificate(reason.clone())));
                    }
                    Next::Stop(DisconnectReason::Certificate { message: reason })
                } else if first.is_some() {
                    continue;
                } else {
                    Next::Retry
                }
            }
            Err(TransportError::Refused { code, message }) => {
                // `too_many_connections` and the like: maybe transient for a running
                // client, but a first connect reports it.
                if let Some(first) = first.take() {
                    let _ = first.send(Err(ConnectError::Refused { code, message }));
                    Next::Stop(DisconnectReason::Refused { code })
                } else {
                    Next::Retry
                }
            }
            Err(err) => {
                tracing::debug!(error = %err, url, "connection attempt failed");
                url_index += 1;
                if first.is_some() && url_index >= urls.len() {
                    if let Some(first) = first.take() {
                        let _ = first.send(Err(ConnectError::Unreachable(err)));
                    }
                    Next::Stop(DisconnectReason::Closed)
                } else if first.is_some() {
                    // Fail over to the next URL at once during the first connect.
                    continue;
                } else {
                    Next::Retry
                }
            }
        };
        match next {
            Next::Stop(reason) => break reason,
            Next::Retry => {
                attempt = attempt.saturating_add(1);
                inner.set_state(ConnectionState::Reconnecting { attempt });
                let delay = backoff.next().unwrap_or(inner.config.retry.max_delay);
                if !pause(&inner, delay).await {
                    break DisconnectReason::Closed;
                }
            }
        }
    };
    if let Some(conn) = inner.conn.send_replace(None) {
        conn.close("client closed");
    }
    inner.set_state(ConnectionState::Disconnected {
        reason: final_reason,
    });
}

/// While the client runs, wakes the flusher periodically when a time-to-live is set, so an
/// expired message becomes `Failed` even while offline.
pub(crate) async fn expiry_ticker(inner: Arc<Inner>) {
    let Some(ttl) = inner.config.ttl else {
        return;
    };
    let period = (ttl / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut ticker = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                // Directly, not only through the flusher: it may be waiting on an ack.
                if let Err(err) = crate::outbox::transitions::expire(&inner, ttl).await {
                    tracing::warn!(error = %err, "could not expire old messages");
                }
                flusher::trigger(&inner);
            }
            () = inner.shutdown.cancelled() => return,
        }
    }
}
