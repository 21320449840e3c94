//! Helpers for tests and the benchmark: a real server in-process and a relay that breaks
//! connections on purpose.
//!
//! - [`TestServer`] runs the reference server on `127.0.0.1:0` with a temporary SQLite file,
//!   mints tokens for it, kicks users, and restarts on the same database and port.
//! - [`Relay`] sits between clients and a server on loopback and can forward, reset (RST)
//!   or blackhole (stop forwarding, silently) the connections through it.
#![warn(missing_docs)]

mod relay;
mod server;

pub use relay::Relay;
pub use server::TestServer;
