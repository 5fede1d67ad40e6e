//! Shared fixtures of the integration tests: a throwaway certificate authority.

#![allow(dead_code, unreachable_pub)] // reason: each test binary uses a different part.

use std::path::PathBuf;

pub mod http_server;
pub mod wait;

/// A CA and a server certificate it signed for `localhost` and `127.0.0.1`, with the CA
/// written to a PEM file.
pub struct TestPki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestPki {
    pub fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "resync test CA");
        let ca = ca_params.self_signed(&ca_key).expect("ca cert");
        let key = rcgen::KeyPair::generate().expect("server key");
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("params");
        let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).expect("write ca");
        Self {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca_file,
            _dir: dir,
        }
    }
}
