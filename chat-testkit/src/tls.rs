//! Self-signed certificates made at run time, so tests serve and trust TLS without a key in
//! the repository.
//!
//! A [`TestCert`] is valid for `localhost` and `127.0.0.1` and is written to PEM files in a
//! temporary directory of its own, because the server reads its certificate and key from
//! files. Each [`TestCert::generate`] makes a new key pair, so a client that trusts one
//! certificate does not trust another: a second one is the "wrong certificate" of a test.

use std::path::{Path, PathBuf};

use chat_server::TlsConfig;

/// The names a [`TestCert`] is valid for (as subject alternative names: a DNS name and an
/// IP address).
pub const TEST_CERT_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A self-signed certificate for `localhost` and `127.0.0.1`, its private key, and the PEM
/// files holding them (removed when it is dropped).
#[derive(Debug)]
pub struct TestCert {
    cert_pem: String,
    key_pem: String,
    cert_path: PathBuf,
    key_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCert {
    /// Makes a new key pair and a certificate for it, and writes both as PEM files.
    pub fn generate() -> Result<Self, String> {
        let names = TEST_CERT_NAMES.map(String::from).to_vec();
        let certified = rcgen::generate_simple_self_signed(names)
            .map_err(|e| format!("cannot make a test certificate: {e}"))?;
        let cert_pem = certified.cert.pem();
        let key_pem = certified.signing_key.serialize_pem();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, &cert_pem)
            .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
        std::fs::write(&key_path, &key_pem)
            .map_err(|e| format!("cannot write {}: {e}", key_path.display()))?;
        Ok(Self {
            cert_pem,
            key_pem,
            cert_path,
            key_path,
            _dir: dir,
        })
    }

    /// The certificate, PEM. Self-signed, so it is also the CA a client must trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, PEM (PKCS#8).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The file holding [`TestCert::cert_pem`].
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The file holding [`TestCert::key_pem`].
    pub fn key_path(&self) -> &Path {
        &self.key_path
    }

    /// A server TLS setting presenting this certificate.
    pub fn tls_config(&self) -> TlsConfig {
        TlsConfig::new(&self.cert_path, &self.key_path)
    }
}
