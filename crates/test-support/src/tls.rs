//! [`TestCa`]: a throwaway certificate authority and a server certificate it signed.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tempfile::TempDir;
use tokio_rustls::TlsAcceptor;

/// A certificate authority made up for one test, and a server certificate it signed for
/// `localhost` and `127.0.0.1`. The CA's PEM is also written to a file
/// ([`ca_file`](Self::ca_file)) for clients that take a path; the file is deleted with the
/// value.
///
/// ```
/// let ca = test_support::TestCa::new().expect("a test CA");
/// assert!(ca.ca_file().exists());
/// let _server = ca.server_config();
/// let _client = ca.client_config();
/// ```
pub struct TestCa {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
    ca_file: PathBuf,
    _dir: TempDir,
}

impl TestCa {
    /// Generates the CA and the server certificate and writes the CA to a temporary file.
    ///
    /// # Errors
    ///
    /// When a key or a certificate cannot be generated (not expected) or the file cannot be
    /// written.
    pub fn new() -> io::Result<Self> {
        let ca_key = rcgen::KeyPair::generate().map_err(io::Error::other)?;
        let mut ca_params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(io::Error::other)?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "resync test CA");
        let ca = ca_params.self_signed(&ca_key).map_err(io::Error::other)?;

        let key = rcgen::KeyPair::generate().map_err(io::Error::other)?;
        // rcgen makes "127.0.0.1" an IP address name and "localhost" a DNS name.
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .map_err(io::Error::other)?;
        let cert = params
            .signed_by(&key, &ca, &ca_key)
            .map_err(io::Error::other)?;

        let dir = tempfile::tempdir()?;
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem())?;
        Ok(Self {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca_file,
            _dir: dir,
        })
    }

    /// The CA certificate, PEM.
    #[must_use]
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The server certificate (for `localhost` and `127.0.0.1`), PEM.
    #[must_use]
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The server certificate's private key, PEM (PKCS #8).
    #[must_use]
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A file holding [`ca_pem`](Self::ca_pem), for clients configured with a CA path.
    #[must_use]
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// A rustls server configuration presenting the server certificate (ring provider, safe
    /// default protocol versions, no client authentication).
    ///
    /// # Panics
    ///
    /// Never for the PEM this value generated (the parse and the configuration cannot fail).
    #[must_use]
    pub fn server_config(&self) -> rustls::ServerConfig {
        let certs = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("rcgen's certificate PEM parses");
        let key =
            PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("rcgen's key PEM parses");
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("rcgen's certificate matches its key")
    }

    /// A TLS acceptor over [`server_config`](Self::server_config).
    #[must_use]
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::new(self.server_config()))
    }

    /// A rustls client configuration that trusts this CA only (ring provider).
    ///
    /// # Panics
    ///
    /// Never for the PEM this value generated.
    #[must_use]
    pub fn client_config(&self) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots
                .add(cert.expect("rcgen's CA PEM parses"))
                .expect("rcgen's CA is a valid trust anchor");
        }
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
    }
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa")
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}
