//! TLS termination on rustls with the `ring` provider (no OpenSSL): loading the certificate
//! and key, and the handshake of one accepted connection, bounded by a timeout so a client
//! that connects and says nothing does not hold a task. Accepting and serving HTTP on top
//! is [`crate::accept`]'s job.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;
use crate::error::TlsError;

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

    /// The server side of the handshake on `stream`, failing with `TimedOut` when it takes
    /// longer than the handshake timeout.
    pub(crate) async fn handshake<S>(&self, stream: S) -> io::Result<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(stream)).await {
            Ok(done) => done,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no TLS handshake within {:?}", self.handshake_timeout),
            )),
        }
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
