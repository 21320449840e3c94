//! The reference chat server: Socket.IO on socketioxide and axum, with authentication on
//! connect, validated payloads, per-user rate limits and durable SQLite storage, over plain
//! HTTP or TLS ([`ServerConfig::tls`]).
//!
//! Start it in-process (tests and the benchmark do) with [`Server::start`] or [`run`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use chat_server::{Server, ServerConfig};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let server = Server::start(listener, ServerConfig::new("chat.db", "secret")).await?;
//! println!("listening on {}", server.local_addr());
//! server.shutdown().await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod accept;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
mod connection;
pub mod error;
mod fanout;
mod handlers;
pub mod metrics;
pub mod presence;
pub mod rate;
mod request_order;
mod server;
pub mod state;
pub mod store;
pub mod tails;
mod tls;
pub mod typing;

pub use auth::mint_token;
pub use config::{Limits, RateLimits, ServerConfig, TlsConfig};
pub use error::{ServeError, ServerError, StoreError, TlsError, TokenError};
pub use server::{run, Server};
