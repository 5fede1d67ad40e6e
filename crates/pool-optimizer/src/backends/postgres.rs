//! [`PostgresManager`]: bb8-postgres over tokio-postgres, with rustls for `sslmode=require`.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use bb8_postgres::PostgresConnectionManager;
use rustls::RootCertStore;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::Error;
use crate::probe::HealthProbe;
use crate::tls::{client_config, config_with_roots, trusted_roots};

/// Postgres connections (`tokio_postgres::Client`) for a [`MonitoredPool`](crate::MonitoredPool).
///
/// Connections are made by bb8-postgres. TLS goes through rustls: with `sslmode=require` in
/// the URL the server's certificate must chain to a system root or to the optional CA file
/// (unlike libpq's `require`, rustls always verifies); with `sslmode=prefer` (the default)
/// TLS is used when the server offers it; `sslmode=disable` never uses it. The health probe
/// is `SELECT 1`.
pub struct PostgresManager {
    inner: PostgresConnectionManager<MakeRustlsConnect>,
}

impl PostgresManager {
    /// A manager for `url` (`postgres://user:pass@host:port/db?sslmode=…`), trusting the
    /// system roots and, when given, the certificates of `ca_file`.
    ///
    /// Trusted roots are needed only for `sslmode=require`. With `sslmode=disable` neither the
    /// system roots nor the CA file are read; with `sslmode=prefer` and no root at all (no system roots,
    /// no CA file) no server certificate could be verified, so the manager connects in plain
    /// text, as `prefer` does with a server that offers no TLS.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] for an unparsable URL, [`Error::Tls`] for an unusable CA file or
    /// for `sslmode=require` without any trusted root.
    pub fn new(url: &str, ca_file: Option<&Path>) -> Result<Self, Error> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| Error::InvalidUrl {
            url: redact(url),
            reason: e.to_string(),
        })?;
        let tls_config = match config.get_ssl_mode() {
            SslMode::Disable => config_with_roots(RootCertStore::empty(), false)?,
            SslMode::Require => client_config(ca_file)?,
            _ => {
                let roots = trusted_roots(ca_file)?;
                if roots.is_empty() {
                    tracing::debug!(
                        "no trusted root certificate: sslmode=prefer connects in plain text"
                    );
                    config.ssl_mode(SslMode::Disable);
                }
                config_with_roots(roots, false)?
            }
        };
        let tls = MakeRustlsConnect::new(tls_config);
        Ok(Self {
            inner: PostgresConnectionManager::new(config, tls),
        })
    }
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl fmt::Debug for PostgresManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresManager").finish_non_exhaustive()
    }
}

impl bb8::ManageConnection for PostgresManager {
    type Connection = tokio_postgres::Client;
    type Error = tokio_postgres::Error;

    async fn connect(&self) -> Result<Self::Connection, Self::Error> {
        self.inner.connect().await
    }

    async fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        self.inner.is_valid(conn).await
    }

    fn has_broken(&self, conn: &mut Self::Connection) -> bool {
        self.inner.has_broken(conn)
    }
}

impl HealthProbe for PostgresManager {
    async fn probe(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        conn.simple_query("SELECT 1").await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::{redact, PostgresManager};

    #[test]
    fn plain_text_modes_need_no_trusted_root() {
        let missing = std::path::Path::new("/nonexistent/ca.pem");
        // sslmode=disable uses no TLS: neither the system roots nor a CA file are read.
        assert!(PostgresManager::new("postgres://app@localhost/x?sslmode=disable", None).is_ok());
        assert!(
            PostgresManager::new("postgres://app@localhost/x?sslmode=disable", Some(missing))
                .is_ok()
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
    }
}
