//! TLS for the WebSocket transport, on rustls: `https://` and `wss://` servers.
//!
//! The roots a server's certificate must chain to are Mozilla's (webpki-roots), plus any
//! extra root the application trusts with
//! [`ClientBuilder::add_root_certificate`](crate::ClientBuilder::add_root_certificate) (a
//! private CA, a test certificate). A certificate that does not verify is a
//! [`TransportError::Certificate`] naming the reason, never retried as a network blip.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::error::TransportError;

/// The TLS settings of a client's connections: which roots to trust. The default trusts
/// Mozilla's roots; the builder adds those of
/// [`ClientBuilder::add_root_certificate`](crate::ClientBuilder::add_root_certificate).
#[derive(Clone)]
pub struct TlsConfig {
    rustls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

fn config(roots: rustls::RootCertStore) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Mozilla's roots.
fn mozilla_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    roots
}

impl Default for TlsConfig {
    /// Mozilla's roots only.
    fn default() -> Self {
        Self {
            rustls: Arc::new(config(mozilla_roots())),
        }
    }
}

impl TlsConfig {
    /// Mozilla's roots plus every certificate in the PEM files `extra`.
    pub(crate) fn with_extra_roots(extra: Vec<std::path::PathBuf>) -> Result<Self, String> {
        let mut roots = mozilla_roots();
        for path in &extra {
            add_pem_roots(&mut roots, path)?;
        }
        Ok(Self {
            rustls: Arc::new(config(roots)),
        })
    }
}

/// Adds the certificates of the PEM file at `path` to `roots`.
fn add_pem_roots(roots: &mut rustls::RootCertStore, path: &Path) -> Result<(), String> {
    let shown = path.display();
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read the root certificate {shown}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{shown} is not a PEM certificate file: {e}"))?;
    if certificates.is_empty() {
        return Err(format!("{shown} holds no certificate"));
    }
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|e| format!("{shown} holds a certificate rustls cannot use: {e}"))?;
    }
    Ok(())
}

/// Opens TLS over `tcp` to `host`, verifying its certificate.
pub(crate) async fn connect(
    tls: &TlsConfig,
    host: &str,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, TransportError> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| TransportError::Unreachable(format!("{host} is not a server name: {e}")))?;
    tokio_rustls::TlsConnector::from(tls.rustls.clone())
        .connect(name, tcp)
        .await
        .map_err(|err| classify(&err))
}

/// A certificate that does not verify is its own error; anything else is a failed link.
fn classify(err: &std::io::Error) -> TransportError {
    match err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(reason)) => {
            let mut text = format!("{reason:?}");
            if text.contains("CaUsedAsEndEntity") {
                // `openssl req -x509` makes such certificates unless told otherwise.
                text.push_str(
                    ": the server presents a CA certificate as its own; sign a server \
                     certificate with that CA, or make the self-signed one with \
                     basicConstraints CA:FALSE",
                );
            }
            TransportError::Certificate(text)
        }
        Some(other) => TransportError::Unreachable(format!("TLS handshake failed: {other}")),
        None => TransportError::Unreachable(format!("TLS handshake failed: {err}")),
    }
}
