//! Starting and stopping a server: the HTTP stack (plain, or TLS through [`crate::tls`]), the
//! Socket.IO layer with explicit limits, the store, and the background tasks.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chat_protocol::UserId;
use socketioxide::handler::ConnectHandler;
use socketioxide::TransportType;
use socketioxide_redis::{RedisAdapterConfig, RedisAdapterCtr};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::accept::origin::{self, AllowedOrigins};
use crate::accept::per_address::PerAddress;
use crate::accept::{self, Guards};
use crate::cluster::{ChatAdapter, ClusterDriver, Io};
use crate::config::ServerConfig;
use crate::connection::{authenticate, on_connect};
use crate::error::ServerError;
use crate::fanout::{self, sockets_in};
use crate::state::{user_key, AppState};
use crate::store::{PostgresOptions, PostgresStore, SqliteOptions, SqliteStore, Store};
use crate::tails::{self, Watches};
use crate::tls::Tls;

/// How long shutdown waits for connections to close before it stops waiting.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    io: Io,
    store: Arc<dyn Store>,
    stop: Option<oneshot::Sender<()>>,
    serving: JoinHandle<std::io::Result<()>>,
    background: Vec<JoinHandle<()>>,
}

impl Server {
    /// Opens the store and starts serving on `listener`: HTTPS and WSS when `config.tls` is
    /// set (its files are read first, so a bad certificate or key fails here), plain HTTP
    /// and WS otherwise.
    pub async fn start(listener: TcpListener, config: ServerConfig) -> Result<Self, ServerError> {
        let addr = listener.local_addr()?;
        if config.limits.max_body_chars > chat_protocol::limits::MAX_BODY_CHARS {
            return Err(ServerError::Config(format!(
                "max body length {} is over the protocol's {}",
                config.limits.max_body_chars,
                chat_protocol::limits::MAX_BODY_CHARS
            )));
        }
        if config.idle_timeout <= config.ping_interval {
            return Err(ServerError::Config(format!(
                "the idle timeout ({:?}) must be longer than the ping interval ({:?}): a live client is silent between two pings",
                config.idle_timeout, config.ping_interval
            )));
        }
        let tls = config.tls.as_ref().map(Tls::load).transpose()?;
        let (feed, feed_rx) = tokio::sync::mpsc::channel(crate::store::FEED_CAPACITY);
        let store = open_store(&config, feed).await?;
        let driver = match &config.redis_url {
            Some(url) => ClusterDriver::connect(url).await?,
            None => ClusterDriver::off(),
        };
        let heads = match &config.postgres_url {
            Some(url) => {
                let (to, heads) = tokio::sync::mpsc::channel(crate::store::FEED_CAPACITY);
                Some((tokio::spawn(crate::store::listen(url.clone(), to)), heads))
            }
            None => None,
        };
        let head_poll = config.postgres_url.as_ref().map(|_| config.head_poll);
        let packet = config.limits.max_packet_bytes;
        let (ping_interval, ping_timeout) = (config.ping_interval, config.ping_timeout);
        let buffer = config.limits.socket_buffer_packets;
        let guards = Guards {
            per_address: PerAddress::new(config.limits.max_connections_per_address),
            handshake_timeout: config.handshake_timeout,
            idle_timeout: config.idle_timeout,
        };
        let origins = AllowedOrigins::new(&config.allowed_origins);
        let (watches, watched) = Watches::channel();
        let state = AppState::new(config, store.clone(), watches);
        let (layer, io) = socketioxide::SocketIo::builder()
            .transports([TransportType::Websocket, TransportType::Polling])
            .max_payload(packet as u64)
            .ws_max_message_size(packet)
            .ws_max_frame_size(packet)
            .max_buffer_size(buffer)
            .ping_interval(ping_interval)
            .ping_timeout(ping_timeout)
            .connect_timeout(guards.handshake_timeout)
            .with_state(state.clone())
            .with_adapter::<ChatAdapter>(RedisAdapterCtr::new_with_driver(
                driver.clone(),
                RedisAdapterConfig::new().with_prefix("chat"),
            ))
            .build_layer();
        io.ns("/", on_connect.with(authenticate))
            .await
            .map_err(|e| {
                ServerError::Config(format!("the Socket.IO adapter did not start: {e}"))
            })?;

        let scrape = (io.clone(), driver.clone());
        let app = axum::Router::new()
            .route("/health", axum::routing::get(|| async { "ok" }))
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let (io, driver) = scrape.clone();
                    async move {
                        let connections = io.of("/").map_or(0, |ns| ns.sockets().len());
                        (
                            [("content-type", "text/plain; version=0.0.4")],
                            crate::metrics::render(crate::metrics::Gauges {
                                connections,
                                adapter_dropped: driver.dropped(),
                            }),
                        )
                    }
                }),
            )
            .layer(layer)
            .layer(axum::middleware::from_fn_with_state(origins, origin::check));
        let (stop, stopped) = oneshot::channel::<()>();
        let stopped = async {
            let _ = stopped.await;
        };
        let secure = tls.is_some();
        let serving = tokio::spawn(accept::serve(listener, tls, guards, app, stopped));
        let (listener_task, heads) = match heads {
            Some((task, heads)) => (Some(task), Some(heads)),
            None => (None, None),
        };
        let mut background = vec![
            tokio::spawn(tails::run(
                io.clone(),
                store.clone(),
                tails::Sources {
                    feed: feed_rx,
                    heads,
                    poll: head_poll,
                    watches: watched,
                },
            )),
            tokio::spawn(housekeeping(state)),
            tokio::spawn(driver.heartbeat()),
        ];
        background.extend(listener_task);
        tracing::info!(%addr, tls = secure, "listening");
        Ok(Self {
            addr,
            io,
            store,
            stop: Some(stop),
            serving,
            background,
        })
    }

    /// The address the server accepts connections on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Disconnects every socket of `user` from the server side.
    pub fn kick_user(&self, user: &UserId) {
        for socket in sockets_in(&self.io, vec![user_key(user)]) {
            fanout::disconnect(socket);
        }
    }

    /// Disconnects every socket from the server side.
    pub fn kick_all(&self) {
        for socket in self.io.of("/").map(|ns| ns.sockets()).unwrap_or_default() {
            fanout::disconnect(socket);
        }
    }

    /// Number of connected sockets.
    pub fn connection_count(&self) -> usize {
        self.io.of("/").map_or(0, |ns| ns.sockets().len())
    }

    /// Stops accepting, closes every socket, waits for the store to flush and close.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.io.close().await;
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.serving).await {
            Ok(Ok(result)) => result?,
            Ok(Err(e)) => tracing::warn!(error = %e, "server task failed"),
            Err(_) => {
                tracing::warn!("connections still open after the grace period; closing them");
                self.serving.abort();
            }
        }
        for task in self.background.drain(..) {
            task.abort();
        }
        self.store.close().await?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Opens the store `config` names: PostgreSQL when it has a URL, SQLite otherwise.
async fn open_store(
    config: &ServerConfig,
    feed: crate::store::Feed,
) -> Result<Arc<dyn Store>, ServerError> {
    if let Some(url) = &config.postgres_url {
        let store = PostgresStore::connect(url, PostgresOptions::default(), Some(feed)).await?;
        return Ok(Arc::new(store));
    }
    let path = config.db_path.clone();
    let options = SqliteOptions {
        durable: config.durable,
        max_bytes: config.max_db_bytes,
    };
    Ok(Arc::new(
        tokio::task::spawn_blocking(move || SqliteStore::open_with(&path, options, Some(feed)))
            .await
            .map_err(|e| ServerError::Config(format!("store thread failed: {e}")))??,
    ))
}

/// Periodic upkeep: forget idle rate-limit entries.
async fn housekeeping(app: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        app.limiters.forget_idle();
    }
}

/// Serves on `listener` until `shutdown` completes, then stops gracefully.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let server = Server::start(listener, config).await?;
    shutdown.await;
    server.shutdown().await
}
