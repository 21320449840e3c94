//! The pub/sub driver under socketioxide's Redis adapter: off (one server alone), or Redis
//! through a `ConnectionManager` that reconnects and subscribes again by itself.
//!
//! The adapter's own `redis` driver keeps one connection and never subscribes again after it
//! broke, so a server that lived through a Redis restart would go deaf to the other servers
//! for good. Here the connection manager reconnects on the next command and, as configured,
//! re-subscribes every channel; a heartbeat ([`ClusterDriver::heartbeat`]) sends that command
//! every second, so an idle server recovers too. Messages are at-most-once either way (Redis
//! pub/sub keeps nothing for a subscriber that is away): the store repairs what matters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, PushInfo, PushKind};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;

use crate::error::ClusterError;

type Handlers = Arc<RwLock<HashMap<String, mpsc::Sender<ChanItem>>>>;

/// How long one Redis command may take before it fails (and the adapter's request with it).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How often an idle server checks its Redis connection (and so reconnects after a restart).
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// The adapter's driver: [`ClusterDriver::off`] for one server, or a Redis connection.
#[derive(Clone, Debug, Default)]
pub struct ClusterDriver {
    link: Option<Arc<RedisLink>>,
}

struct RedisLink {
    connection: ConnectionManager,
    handlers: Handlers,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink").finish_non_exhaustive()
    }
}

impl ClusterDriver {
    /// No other server: publishing goes nowhere and nothing arrives.
    pub fn off() -> Self {
        Self::default()
    }

    /// Connects to the Redis at `url` (RESP3 is asked for when the URL does not say): an
    /// unreachable Redis fails here.
    pub async fn connect(url: &str) -> Result<Self, ClusterError> {
        let url = if url.contains("protocol=") {
            url.to_owned()
        } else if url.contains('?') {
            format!("{url}&protocol=resp3")
        } else {
            format!("{url}?protocol=resp3")
        };
        let client = redis::Client::open(url.as_str())?;
        let handlers: Handlers = Arc::default();
        let dropped = Arc::new(AtomicU64::new(0));
        let (to, count) = (handlers.clone(), dropped.clone());
        let config = ConnectionManagerConfig::new()
            .set_push_sender(move |push: PushInfo| {
                route(push, &to, &count);
                Ok::<(), std::convert::Infallible>(())
            })
            .set_automatic_resubscription()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self {
            link: Some(Arc::new(RedisLink {
                connection,
                handlers,
                dropped,
            })),
        })
    }

    /// Whether a Redis is behind this driver.
    pub fn is_on(&self) -> bool {
        self.link.is_some()
    }

    /// Messages from the other servers dropped because the adapter read them too slowly.
    pub fn dropped(&self) -> u64 {
        self.link
            .as_ref()
            .map_or(0, |link| link.dropped.load(Ordering::Relaxed))
    }

    /// Pings Redis every [`HEARTBEAT`], forever: a broken connection is noticed and rebuilt
    /// (with its subscriptions) even on a server that publishes nothing.
    pub async fn heartbeat(self) {
        let Some(link) = self.link else { return };
        let mut tick = tokio::time::interval(HEARTBEAT);
        let mut healthy = true;
        loop {
            tick.tick().await;
            let mut connection = link.connection.clone();
            let ping: redis::RedisResult<String> =
                redis::cmd("PING").query_async(&mut connection).await;
            match (ping, healthy) {
                (Ok(_), false) => {
                    tracing::info!("Redis is back");
                    healthy = true;
                }
                (Err(e), true) => {
                    tracing::warn!(error = %e, "Redis is unreachable; reconnecting");
                    healthy = false;
                }
                _ => {}
            }
        }
    }
}

/// Hands a pushed message to the adapter's stream for its channel; a full stream drops it
/// (counted), as the adapter cannot be made to wait.
fn route(push: PushInfo, handlers: &Handlers, dropped: &AtomicU64) {
    if !matches!(push.kind, PushKind::Message | PushKind::SMessage) {
        return;
    }
    let mut data = push.data.into_iter();
    let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
        return;
    };
    let (Ok(channel), Ok(payload)) = (
        String::from_redis_value(channel),
        Vec::<u8>::from_redis_value(payload),
    ) else {
        tracing::warn!("unreadable message from Redis");
        return;
    };
    let Ok(handlers) = handlers.read() else {
        return;
    };
    if let Some(stream) = handlers.get(&channel) {
        if stream.try_send((channel, payload)).is_err() {
            dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("a message from another server was dropped: the adapter is behind");
        }
    }
}

impl Driver for ClusterDriver {
    type Error = ClusterError;

    async fn publish(&self, channel: String, value: Vec<u8>) -> Result<(), Self::Error> {
        let Some(link) = &self.link else {
            return Ok(());
        };
        let mut connection = link.connection.clone();
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(value)
            .query_async::<redis::Value>(&mut connection)
            .await?;
        Ok(())
    }

    async fn subscribe(
        &self,
        channel: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, Self::Error> {
        let Some(link) = &self.link else {
            return Ok(MessageStream::new_empty());
        };
        let (to, stream) = mpsc::channel(size.max(1));
        if let Ok(mut handlers) = link.handlers.write() {
            handlers.insert(channel.clone(), to);
        }
        link.connection.clone().subscribe(channel.as_str()).await?;
        Ok(MessageStream::new(stream))
    }

    async fn unsubscribe(&self, channel: String) -> Result<(), Self::Error> {
        let Some(link) = &self.link else {
            return Ok(());
        };
        if let Ok(mut handlers) = link.handlers.write() {
            handlers.remove(&channel);
        }
        link.connection
            .clone()
            .unsubscribe(channel.as_str())
            .await?;
        Ok(())
    }

    async fn num_serv(&self, channel: &str) -> Result<u16, Self::Error> {
        let Some(link) = &self.link else {
            return Ok(1);
        };
        let mut connection = link.connection.clone();
        let (_, count): (String, u16) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(&mut connection)
            .await?;
        Ok(count)
    }
}
