//! Helpers for tests and the benchmark: a real server in-process and a relay that breaks
//! connections on purpose.
//!
//! - [`TestServer`] runs the reference server on `127.0.0.1:0` with a temporary SQLite file,
//!   mints tokens for it, kicks users, and restarts on the same database and port; with
//!   [`TestServer::start_tls`] it serves HTTPS and WSS.
//! - [`TestCert`] is a self-signed certificate for `localhost` and `127.0.0.1`, made at run
//!   time and written to PEM files.
//! - [`Relay`] sits between clients and a server on loopback and can forward, reset (RST)
//!   or blackhole (stop forwarding, silently) the connections through it, and carry them
//!   over a shaped link ([`LinkShape`]: delay, jitter, a bandwidth cap, stalls).
//! - [`PostgresDatabase`] and [`RedisServer`] are the engines of a multi-node deployment: a
//!   fresh database per test, and a Redis the test can kill and restart.
#![warn(missing_docs)]

mod engines;
mod relay;
mod server;
mod shape;
mod tls;

pub use engines::{PostgresDatabase, RedisServer};
pub use relay::Relay;
pub use server::TestServer;
pub use shape::{LinkShape, LinkShapeError};
pub use tls::{TestCert, TEST_CERT_NAMES};
