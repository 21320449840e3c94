//! Tunables of a client: retry policy, timeouts, outbox bounds.
//!
//! Kept apart from the builder so the supervisor, the outbox and the session read one
//! plain struct, and so the defaults are written down in one place.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

use crate::transport::{TlsConfig, Transport};

/// Exponential backoff with jitter and a cap, used both between reconnect attempts and
/// between resends after a transient server error (`internal`).
///
/// Each delay is `min_delay * factor^n`, capped at `max_delay`, plus (with `jitter`) a
/// random extra of up to the same amount again. A `rate_limited` answer is not backed off
/// by this policy: the server's `retry_after_ms` is honoured instead.
///
/// ```
/// use std::time::Duration;
/// use chat_sdk::RetryPolicy;
///
/// let fast = RetryPolicy {
///     min_delay: Duration::from_millis(20),
///     max_delay: Duration::from_millis(500),
///     ..RetryPolicy::default()
/// };
/// assert!(fast.jitter);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// The first delay (default 100 ms).
    pub min_delay: Duration,
    /// The cap (default 2 s; with jitter a wait is at most twice this).
    pub max_delay: Duration,
    /// Growth per attempt (default 2).
    pub factor: f32,
    /// Add random jitter (default true), so many clients do not retry in lock step.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            factor: 2.0,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// An endless iterator of delays following this policy.
    pub fn backoff(&self) -> ExponentialBackoff {
        let builder = ExponentialBuilder::new()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(self.factor)
            .without_max_times();
        let builder = if self.jitter {
            builder.with_jitter()
        } else {
            builder
        };
        builder.build()
    }
}

/// The future a token-refresh hook returns: a new token, or why there is none.
pub(crate) type TokenFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// A token-refresh hook, called when the server refuses the current token.
pub(crate) type TokenRefresh = Arc<dyn Fn() -> TokenFuture + Send + Sync>;

/// Everything the running client reads; built by [`ClientBuilder`](crate::ClientBuilder).
pub(crate) struct Config {
    pub urls: Vec<String>,
    pub device: Option<String>,
    pub token_refresh: Option<TokenRefresh>,
    pub retry: RetryPolicy,
    pub ack_timeout: Duration,
    pub connect_timeout: Duration,
    pub health_interval: Duration,
    pub health_timeout: Duration,
    pub outbox_capacity: usize,
    /// Most acknowledged messages per room followed in memory for receipts.
    pub receipt_tracking: usize,
    pub ttl: Option<Duration>,
    pub transport: Arc<dyn Transport>,
    pub tls: TlsConfig,
    pub inbound_capacity: usize,
    pub send_only: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("urls", &self.urls)
            .field("device", &self.device)
            .field("token_refresh", &self.token_refresh.is_some())
            .field("retry", &self.retry)
            .field("ack_timeout", &self.ack_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("health_interval", &self.health_interval)
            .field("health_timeout", &self.health_timeout)
            .field("outbox_capacity", &self.outbox_capacity)
            .field("ttl", &self.ttl)
            .field("transport", &self.transport)
            .finish()
    }
}

/// Default ack timeout.
pub(crate) const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Default connect timeout (the whole handshake).
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default idle time after which the link is probed.
pub(crate) const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// Default cap on unsent messages.
pub(crate) const DEFAULT_OUTBOX_CAPACITY: usize = 10_000;

/// Default for [`ClientBuilder::receipt_tracking`](crate::ClientBuilder::receipt_tracking).
pub(crate) const DEFAULT_RECEIPT_TRACKING: usize = 10_000;
/// Default inbound event buffer per connection.
pub(crate) const DEFAULT_INBOUND_CAPACITY: usize = 65_536;
