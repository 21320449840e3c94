//! TLS termination on rustls with the `ring` provider (no OpenSSL): loading the certificate
//! and key, and serving the router over TLS.
//!
//! `axum::serve` speaks plain TCP only, so with TLS the server runs its own accept loop. Each
//! connection gets a task that runs the handshake, bounded by a timeout, and then serves
//! HTTP/1.1 on hyper with upgrades, so WebSockets work. A failed handshake drops that
//! connection only. Shutdown works as `axum::serve`'s graceful shutdown does: stop
//! accepting, ask every connection to finish, wait for them.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;
use crate::error::TlsError;

/// How long the accept loop waits after an error that is not about one connection (such as
/// running out of file descriptors) before it accepts again.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// What a handshake needs: the acceptor and how long a handshake may take.
#[derive(Clone)]
pub(crate) struct Tls {
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the certificate chain and the private key and checks that they fit together.
    pub(crate) fn load(config: &TlsConfig) -> Result<Self, TlsError> {
        let certificate = |reason: String| TlsError::Certificate {
            path: config.cert_chain.clone(),
            reason,
        };
        let chain = CertificateDer::pem_file_iter(&config.cert_chain)
            .map_err(|e| certificate(describe(e, "CERTIFICATE")))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| certificate(describe(e, "CERTIFICATE")))?;
        if chain.is_empty() {
            return Err(certificate(describe(
                pem::Error::NoItemsFound,
                "CERTIFICATE",
            )));
        }
        let key = PrivateKeyDer::from_pem_file(&config.private_key).map_err(|e| {
            TlsError::PrivateKey {
                path: config.private_key.clone(),
                reason: describe(e, "PRIVATE KEY"),
            }
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
            .map_err(|reason| TlsError::Rejected {
                cert: config.cert_chain.clone(),
                key: config.private_key.clone(),
                reason,
            })?;
        // HTTP/1.1 is all this listener serves, and WebSocket upgrades need it.
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            handshake_timeout: config.handshake_timeout,
        })
    }
}

/// A PEM error in words; `section` names what was looked for when nothing was found.
fn describe(error: pem::Error, section: &str) -> String {
    match error {
        pem::Error::NoItemsFound => format!("no {section} section in it"),
        pem::Error::Io(e) => e.to_string(),
        other => format!("not valid PEM: {other}"),
    }
}

/// Serves `router` over TLS on `listener` until `stop` resolves, then waits for the open
/// connections to finish (the caller bounds how long it waits).
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Tls,
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
                    connections.spawn(connection(
                        tcp,
                        peer,
                        tls.clone(),
                        router.clone(),
                        closing.clone(),
                    ));
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

/// One connection: the handshake, then HTTP (and the upgrades it asks for) until the client
/// goes away or the server shuts down.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Tls,
    router: axum::Router,
    mut closing: watch::Receiver<bool>,
) {
    // Small frames (acks, events) must leave at once: without TCP_NODELAY, Nagle's algorithm
    // and the peer's delayed ACK hold them for up to 40 ms.
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    let handshake = tokio::time::timeout(tls.handshake_timeout, tls.acceptor.accept(tcp));
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, timeout = ?tls.handshake_timeout, "TLS handshake timed out");
                return;
            }
        },
        () = closed(&mut closing) => return,
    };
    let builder = Builder::new(TokioExecutor::new());
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
