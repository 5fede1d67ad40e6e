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

/// The system's roots plus, when given, every certificate of `ca_file` (possibly none).
pub(crate) fn trusted_roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, Error> {
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
    Ok(roots)
}

/// A rustls client configuration (ring provider) trusting `roots`. An empty store is an
/// error only when `require_roots` (TLS is mandatory, so nothing could ever connect).
pub(crate) fn config_with_roots(
    roots: rustls::RootCertStore,
    require_roots: bool,
) -> Result<rustls::ClientConfig, Error> {
    if require_roots && roots.is_empty() {
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

/// A rustls client configuration trusting the system's roots and, when given, every
/// certificate of `ca_file`; at least one root is required.
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, Error> {
    config_with_roots(trusted_roots(ca_file)?, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_roots_is_an_error_only_when_tls_is_required() {
        assert!(config_with_roots(rustls::RootCertStore::empty(), false).is_ok());
        assert!(matches!(
            config_with_roots(rustls::RootCertStore::empty(), true),
            Err(Error::Tls(_))
        ));
    }
}
