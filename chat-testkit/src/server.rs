//! The reference server in-process, on `127.0.0.1:0` with a temporary SQLite file, over
//! plain HTTP or TLS with a self-signed certificate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chat_protocol::UserId;
use chat_server::{RateLimits, Server, ServerConfig};
use tokio::net::TcpListener;

use crate::tls::TestCert;

/// Binds a listener whose accepted sockets have `TCP_NODELAY` set (Linux hands the option
/// down from the listening socket). Without it, the server's ack written right after a
/// `message:new` waits on Nagle's algorithm for the client's delayed ACK, up to 40 ms.
fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket.set_reuseaddr(true).map_err(|e| e.to_string())?;
    socket.set_nodelay(true).map_err(|e| e.to_string())?;
    socket.bind(addr).map_err(|e| e.to_string())?;
    socket.listen(1024).map_err(|e| e.to_string())
}

/// The JWT secret test servers use.
pub const TEST_SECRET: &str = "chat-testkit-secret";

/// A running reference server for tests.
#[derive(Debug)]
pub struct TestServer {
    server: Option<Server>,
    addr: SocketAddr,
    config: ServerConfig,
    cert: Option<TestCert>,
    dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server for tests: generous rate limits (tests send fast), a 200 ms presence
    /// grace, `durable: false` (no fsync per commit; restarts here are graceful), and
    /// otherwise the protocol's defaults. Its listener sets `TCP_NODELAY` on accepted
    /// sockets. Use [`TestServer::start_with`] to change any of it.
    pub async fn start() -> Result<Self, String> {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `adjust` changed its configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut ServerConfig)) -> Result<Self, String> {
        Self::launch(None, adjust).await
    }

    /// Starts a server like [`TestServer::start`] that serves HTTPS and WSS with a new
    /// self-signed certificate for `localhost` and `127.0.0.1`: [`TestServer::url`] is
    /// `https://127.0.0.1:PORT`, and clients trust [`TestServer::ca_pem_path`].
    pub async fn start_tls() -> Result<Self, String> {
        Self::start_tls_with(|_| {}).await
    }

    /// [`TestServer::start_tls`] after `adjust` changed the configuration (its `tls` is set
    /// already, so `adjust` may change the handshake timeout, say).
    pub async fn start_tls_with(adjust: impl FnOnce(&mut ServerConfig)) -> Result<Self, String> {
        Self::launch(Some(TestCert::generate()?), adjust).await
    }

    async fn launch(
        cert: Option<TestCert>,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut config = ServerConfig::new(dir.path().join("server.db"), TEST_SECRET);
        config.rates = RateLimits {
            send_per_sec: 100_000,
            typing_per_sec: 10_000,
            other_per_sec: 100_000,
        };
        config.presence_grace = Duration::from_millis(200);
        // Tests restart the server gracefully only; skipping fsync keeps them fast.
        config.durable = false;
        config.tls = cert.as_ref().map(TestCert::tls_config);
        adjust(&mut config);
        let listener = bind("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?)?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let server = Server::start(listener, config.clone())
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self {
            server: Some(server),
            addr,
            config,
            cert,
            dir,
        })
    }

    /// The address it listens on (the same across restarts).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// URL of the server: `http://127.0.0.1:PORT`, or `https://127.0.0.1:PORT` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The certificate a server from [`TestServer::start_tls`] presents; `None` without TLS.
    pub fn cert(&self) -> Option<&TestCert> {
        self.cert.as_ref()
    }

    /// The PEM file a client trusts to reach a server from [`TestServer::start_tls`] (its
    /// self-signed certificate, which is its own CA); `None` without TLS.
    pub fn ca_pem_path(&self) -> Option<&Path> {
        self.cert.as_ref().map(TestCert::cert_path)
    }

    /// The contents of [`TestServer::ca_pem_path`].
    pub fn ca_pem(&self) -> Option<&str> {
        self.cert.as_ref().map(TestCert::cert_pem)
    }

    /// The SQLite file.
    pub fn db_path(&self) -> &Path {
        &self.config.db_path
    }

    /// A temporary directory that lives as long as the server (for client stores).
    pub fn temp_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A token for `user`, valid for an hour.
    pub fn token(&self, user: &str) -> String {
        self.token_with_ttl(user, Duration::from_secs(3600))
    }

    /// A token for `user` valid for `ttl`.
    pub fn token_with_ttl(&self, user: &str, ttl: Duration) -> String {
        let user = UserId::new(user).unwrap_or_else(|_| panic!("invalid test user id {user:?}"));
        chat_server::mint_token(&self.config.jwt_secret, &user, ttl)
            .unwrap_or_else(|e| panic!("minting a token failed: {e}"))
    }

    /// The running server, if it is up.
    pub fn server(&self) -> Option<&Server> {
        self.server.as_ref()
    }

    /// Disconnects every socket of `user` from the server side.
    pub fn kick_user(&self, user: &str) {
        if let (Some(server), Ok(user)) = (&self.server, UserId::new(user)) {
            server.kick_user(&user);
        }
    }

    /// Disconnects every socket from the server side.
    pub fn kick_all(&self) {
        if let Some(server) = &self.server {
            server.kick_all();
        }
    }

    /// Changes the JWT secret from the next [`TestServer::resume`] on: tokens minted before
    /// are refused after it (as after a key rotation).
    pub fn rotate_secret(&mut self, secret: impl Into<String>) {
        self.config.jwt_secret = secret.into();
    }

    /// Shuts the server down gracefully (the database stays).
    pub async fn stop(&mut self) -> Result<(), String> {
        if let Some(server) = self.server.take() {
            server.shutdown().await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Starts the server again on the same address and database (and, with TLS, the same
    /// certificate).
    pub async fn resume(&mut self) -> Result<(), String> {
        if self.server.is_some() {
            return Ok(());
        }
        let mut last_error = String::new();
        for _ in 0..100 {
            match bind(self.addr) {
                Ok(listener) => {
                    let server = Server::start(listener, self.config.clone())
                        .await
                        .map_err(|e| e.to_string())?;
                    self.server = Some(server);
                    return Ok(());
                }
                Err(err) => {
                    // The old socket may linger for a moment after shutdown.
                    last_error = err.to_string();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        Err(format!("could not bind {} again: {last_error}", self.addr))
    }

    /// Changes the configuration from the next [`TestServer::resume`] on (a server
    /// replaced by one set up otherwise, on the same address and database).
    pub fn reconfigure(&mut self, adjust: impl FnOnce(&mut ServerConfig)) {
        adjust(&mut self.config);
    }

    /// Presents `cert` from the next [`TestServer::resume`] on (a certificate rotation; a
    /// client that trusts only the old one then refuses the server).
    pub fn replace_cert(&mut self, cert: TestCert) {
        self.config.tls = Some(cert.tls_config());
        self.cert = Some(cert);
    }

    /// Stops and resumes: a restart on the same database and port.
    pub async fn restart(&mut self) -> Result<(), String> {
        self.stop().await?;
        self.resume().await
    }
}
