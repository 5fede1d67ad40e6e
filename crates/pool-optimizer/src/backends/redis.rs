//! [`RedisManager`]: the redis crate's multiplexed connection with honoured timeouts.
//!
//! Not bb8-redis: its manager connects with the redis crate's default connection config,
//! whose connect (1 s) and response (500 ms) timeouts are fixed, so `REDIS_POOL_CONNECT_TIMEOUT`
//! and a response timeout could not be honoured. This manager sets the response timeout
//! through `AsyncConnectionConfig` and turns the crate's own connect timeout off: the pool's
//! wrapper bounds every connect with `PoolConfig::connect_timeout`
//! (`REDIS_POOL_CONNECT_TIMEOUT`), the one connect timeout.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError};

use crate::error::Error;
use crate::probe::HealthProbe;
use crate::tls::read_pem_certificates;

/// Redis connections for a [`MonitoredPool`](crate::MonitoredPool).
///
/// `rediss://` URLs use rustls; with a CA file only that file's certificates are trusted,
/// otherwise the system roots. The health probe and the checkout validation are `PING`.
#[derive(Clone)]
pub struct RedisManager {
    client: Client,
    config: AsyncConnectionConfig,
}

impl RedisManager {
    /// A manager for `url` whose commands time out after `response_timeout`. Connects are
    /// bounded by the pool's `connect_timeout` (the wrapper times out every connect), so
    /// there is no second connect timeout here.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] for an unusable URL, [`Error::Tls`] for an unusable CA file.
    pub fn new(
        url: &str,
        response_timeout: Duration,
        ca_file: Option<&Path>,
    ) -> Result<Self, Error> {
        let invalid = |e: RedisError| Error::InvalidUrl {
            url: url.split('@').next_back().unwrap_or(url).to_owned(),
            reason: e.to_string(),
        };
        let client = match ca_file {
            None => Client::open(url).map_err(invalid)?,
            Some(path) => {
                // Validate the file here so a bad one is reported as a TLS problem.
                read_pem_certificates(path)?;
                let pem = std::fs::read(path)
                    .map_err(|e| Error::Tls(format!("cannot read {}: {e}", path.display())))?;
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                };
                Client::build_with_tls(url, certificates).map_err(invalid)?
            }
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(Some(response_timeout));
        Ok(Self { client, config })
    }
}

impl fmt::Debug for RedisManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisManager").finish_non_exhaustive()
    }
}

/// `PING` on `conn`: an error unless the server answers `PONG`.
pub(crate) async fn ping(conn: &mut MultiplexedConnection) -> Result<(), RedisError> {
    let pong: String = redis::cmd("PING").query_async(conn).await?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err(RedisError::from((
            redis::ErrorKind::Client,
            "unexpected PING reply",
            pong,
        )))
    }
}

impl bb8::ManageConnection for RedisManager {
    type Connection = MultiplexedConnection;
    type Error = RedisError;

    async fn connect(&self) -> Result<Self::Connection, Self::Error> {
        self.client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
    }

    async fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        ping(conn).await
    }

    fn has_broken(&self, _conn: &mut Self::Connection) -> bool {
        // A multiplexed connection exposes no "closed" flag; a dead one fails its next
        // command, which the caller reports with `PoolConnection::report_error`, and the
        // checkout validation catches it once idle past the skip window.
        false
    }
}

impl HealthProbe for RedisManager {
    async fn probe(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        ping(conn).await
    }
}
