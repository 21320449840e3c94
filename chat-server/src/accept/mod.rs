//! Accepting connections: the one accept loop for plain TCP and TLS, and what guards it
//! against clients that take resources without using them.
//!
//! Each accepted connection, before any byte of it is read:
//! - takes a place under the per-address cap ([`per_address`]), or is closed at once;
//! - is wrapped so that silence from the client for the idle timeout closes it
//!   ([`silence`]), whether it is in its TLS handshake, between two HTTP requests, or a
//!   WebSocket whose client stopped talking;
//! - then gets its TLS handshake (bounded by its own timeout) and HTTP/1.1 on hyper, which
//!   must receive the whole request head within the handshake timeout (a half-sent request
//!   is closed), with upgrades so WebSockets work.
//!
//! The Socket.IO CONNECT that must follow the Engine.IO open is bounded by socketioxide's
//! connect timeout, set to the same handshake timeout when the server starts. Origins are
//! checked per request by the router's [`origin`] middleware.
//!
//! Shutdown works as `axum::serve`'s graceful shutdown does: stop accepting, ask every
//! connection to finish, wait for them (the caller bounds how long).

pub(crate) mod origin;
pub(crate) mod per_address;
pub(crate) mod silence;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use self::per_address::PerAddress;
use self::silence::Silence;
use crate::tls::Tls;

/// How long the accept loop waits after an error that is not about one connection (such as
/// running out of file descriptors) before it accepts again.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// What every accepted connection is held to.
#[derive(Clone, Debug)]
pub(crate) struct Guards {
    /// Most simultaneous connections from one IP address.
    pub(crate) per_address: Arc<PerAddress>,
    /// Longest wait for a complete HTTP request head.
    pub(crate) handshake_timeout: Duration,
    /// Longest silence from a client before its connection is closed.
    pub(crate) idle_timeout: Duration,
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until `stop` resolves, then
/// waits for the open connections to finish.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<Tls>,
    guards: Guards,
    router: axum::Router,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    let (closing_tx, closing) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            Some(finished) = connections.join_next() => {
                if let Err(e) = finished {
                    tracing::error!(error = %e, "connection task failed");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let Some(permit) = guards.per_address.admit(peer.ip()) else {
                        crate::metrics::CONNECTIONS_REFUSED.inc(&["per_address"]);
                        tracing::debug!(%peer, "connection closed: too many from this address");
                        continue;
                    };
                    let guards = guards.clone();
                    let (tls, router, closing) = (tls.clone(), router.clone(), closing.clone());
                    connections.spawn(async move {
                        connection(tcp, peer, tls, &guards, router, closing).await;
                        drop(permit);
                    });
                }
                Err(e) if is_connection_error(&e) => {
                    tracing::debug!(error = %e, "accept failed");
                }
                Err(e) => {
                    tracing::error!(error = %e, "accept error; accepting again in {ACCEPT_BACKOFF:?}");
                    tokio::select! {
                        () = &mut stop => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    }
                }
            },
        }
    }
    drop(listener);
    // Receivers see `true` at once; `send` fails only when every connection is gone already.
    let _ = closing_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Errors about one incoming connection, which say nothing about the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Resolves once the server is shutting down.
async fn closed(closing: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which only happens when serving is over too.
    let _ = closing.wait_for(|closing| *closing).await;
}

/// One connection: the TLS handshake if any, then HTTP (and the upgrades it asks for) until
/// the client goes away, falls silent, or the server shuts down.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<Tls>,
    guards: &Guards,
    router: axum::Router,
    mut closing: watch::Receiver<bool>,
) {
    // Small frames (acks, events) must leave at once: without TCP_NODELAY, Nagle's algorithm
    // and the peer's delayed ACK hold them for up to 40 ms.
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    let stream = Silence::new(tcp, guards.idle_timeout);
    match tls {
        None => http(stream, peer, guards, router, closing).await,
        Some(tls) => {
            let stream = tokio::select! {
                done = tls.handshake(stream) => match done {
                    Ok(stream) => stream,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                },
                () = closed(&mut closing) => return,
            };
            http(stream, peer, guards, router, closing).await;
        }
    }
}

/// HTTP/1.1 with upgrades on `stream`, the request head due within the handshake timeout.
async fn http<S>(
    stream: S,
    peer: SocketAddr,
    guards: &Guards,
    router: axum::Router,
    mut closing: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(guards.handshake_timeout);
    let serving = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(router));
    tokio::pin!(serving);
    let result = tokio::select! {
        result = serving.as_mut() => result,
        () = closed(&mut closing) => {
            serving.as_mut().graceful_shutdown();
            serving.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
