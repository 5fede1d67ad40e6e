//! rustls client configuration shared by the backends: system roots plus an optional CA file.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::error::Error;

/// Reads every certificate of a PEM file.
pub(crate) fn read_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| Error::Tls(format!("cannot read CA file {}: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("bad PEM in CA file {}: {e}", path.display())))?;
    if certificates.is_empty() {
        return Err(Error::Tls(format!(
            "CA file {} holds no certificate",
            path.display()
        )));
    }
    Ok(certificates)
}

/// A rustls client configuration (ring provider) trusting the system's roots and, when
/// given, every certificate of `ca_file`.
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, Error> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(%error, "skipping a system root certificate source");
    }
    let (_added, _ignored) = roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        for certificate in read_pem_certificates(path)? {
            roots.add(certificate).map_err(|e| {
                Error::Tls(format!("bad CA certificate in {}: {e}", path.display()))
            })?;
        }
    }
    if roots.is_empty() {
        return Err(Error::Tls(
            "no trusted root certificate: the system has none and no CA file was given".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
