//! The engines of a multi-node deployment, for tests: a fresh PostgreSQL database per test on
//! the server `CHAT_TEST_POSTGRES` names, and a Redis server of the test's own (from the
//! `redis-server` binary, or `CHAT_TEST_REDIS_SERVER`) that it can kill and restart.
//!
//! `scripts/engines.sh` installs and starts both and prints these variables; without them the
//! PostgreSQL it sets up (`chat:chat@127.0.0.1:5432`) and `redis-server` on `PATH` are used.
//! When neither is there a test that needs them says so on stderr and passes without running, unless
//! `CHAT_REQUIRE_ENGINES=1` (CI sets it): then it fails, so nothing is skipped where the
//! engines are meant to be.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// How long an engine gets to start.
const START_PATIENCE: Duration = Duration::from_secs(20);

fn required() -> bool {
    std::env::var("CHAT_REQUIRE_ENGINES").is_ok_and(|v| v == "1")
}

/// Says why a test that needs `what` does not run; fails instead where the engines are required.
fn unavailable(what: &str, why: &str) {
    assert!(
        !required(),
        "{what} is required (CHAT_REQUIRE_ENGINES=1) but {why}"
    );
    eprintln!("not run: {what} {why}; start the engines with `eval \"$(scripts/engines.sh)\"`");
}

/// Where `scripts/engines.sh` puts PostgreSQL, tried when `CHAT_TEST_POSTGRES` is not set.
const DEFAULT_POSTGRES: &str = "postgres://chat:chat@127.0.0.1:5432/postgres";

/// A database of its own for one test, on the PostgreSQL server of `CHAT_TEST_POSTGRES`.
#[derive(Debug, Clone)]
pub struct PostgresDatabase {
    url: String,
    name: String,
    admin: String,
}

impl PostgresDatabase {
    /// Creates a new, empty database; `None` (after saying why) when no server is configured.
    pub async fn create() -> Option<Self> {
        let admin = Self::admin().await?;
        match Self::create_on(&admin).await {
            Ok(database) => Some(database),
            Err(e) => panic!("{e}"),
        }
    }

    /// The URL of the PostgreSQL server tests create their databases on, once it answered;
    /// `None` (after saying why) when there is none.
    pub async fn admin() -> Option<String> {
        let (admin, configured) = match std::env::var("CHAT_TEST_POSTGRES") {
            Ok(url) => (url, true),
            Err(_) => (DEFAULT_POSTGRES.to_owned(), false),
        };
        match tokio_postgres::connect(&admin, tokio_postgres::NoTls).await {
            Ok(_) => Some(admin),
            Err(e) if configured => panic!("cannot reach PostgreSQL at {admin}: {e}"),
            Err(_) => {
                unavailable(
                    "PostgreSQL",
                    "CHAT_TEST_POSTGRES is not set and none answers as scripts/engines.sh sets it up",
                );
                None
            }
        }
    }

    /// Creates a new, empty database on the server `admin` (a `postgres://` URL of a role
    /// that may create databases) reaches.
    pub async fn create_on(admin: &str) -> Result<Self, String> {
        let (client, connection) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("cannot reach PostgreSQL at {admin}: {e}"))?;
        let driver = tokio::spawn(connection);
        let name = format!("chat_test_{}", uuid::Uuid::new_v4().simple());
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| format!("cannot create database {name}: {e}"))?;
        drop(client);
        let _ = driver.await;
        let url = match admin.rsplit_once('/') {
            Some((server, _)) if server.contains("://") && !server.ends_with('/') => {
                format!("{server}/{name}")
            }
            _ => {
                return Err(format!(
                    "the PostgreSQL URL must end with /DATABASE: {admin}"
                ))
            }
        };
        Ok(Self {
            url,
            name,
            admin: admin.to_owned(),
        })
    }

    /// Drops the database (every connection to it must be closed).
    pub async fn drop_database(&self) -> Result<(), String> {
        let (client, connection) = tokio_postgres::connect(&self.admin, tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(connection);
        let dropped = client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .map_err(|e| e.to_string());
        drop(client);
        let _ = driver.await;
        dropped
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A Redis server on a free loopback port, killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    binary: String,
    addr: SocketAddr,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one; `None` (after saying why) when no `redis-server` can be found.
    pub async fn start() -> Option<Self> {
        let binary =
            std::env::var("CHAT_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let found = std::process::Command::new(&binary)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            unavailable("Redis", &format!("{binary} cannot be run"));
            return None;
        }
        let addr = StdListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let mut server = Self {
            binary,
            addr,
            child: None,
        };
        server.spawn().await;
        Some(server)
    }

    /// `redis://` URL of the server, asking for RESP3 (the adapter needs it).
    pub fn url(&self) -> String {
        format!("redis://{}/?protocol=resp3", self.addr)
    }

    /// Kills the server (SIGKILL): every connection to it breaks, every message in flight
    /// is lost.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    async fn spawn(&mut self) {
        let child = Command::new(&self.binary)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.addr.port().to_string())
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + START_PATIENCE;
        while tokio::net::TcpStream::connect(self.addr).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not listen on {} in time",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
