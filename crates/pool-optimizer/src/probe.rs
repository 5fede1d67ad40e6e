//! [`HealthProbe`]: the real round trip a backend's health check makes.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::pool::MonitoredPool;

/// A manager that can prove a connection works with a real round trip (`SELECT 1`, `PING`,
/// an HTTP request). Used by [`MonitoredPool::check_health`] and the
/// [`PoolManager`](crate::PoolManager)(crate::PoolManager)'s background checks.
pub trait HealthProbe: bb8::ManageConnection {
    /// Makes the round trip on `conn`.
    fn probe(
        &self,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

impl<M> MonitoredPool<M>
where
    M: HealthProbe,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    /// Checks out a connection and makes the backend's round trip, returning how long the
    /// whole check took. A failed probe marks the connection broken (it is discarded) and is
    /// counted as a caller-reported connection error.
    ///
    /// # Errors
    ///
    /// The `get()` error ([`Error::Unavailable`], [`Error::Exhausted`]) or the probe's error
    /// as [`Error::Backend`].
    pub async fn check_health(&self) -> Result<Duration, Error> {
        let started = Instant::now();
        let mut conn = self.get().await?;
        match self.manager().probe(&mut conn).await {
            Ok(()) => Ok(started.elapsed()),
            Err(error) => {
                conn.report_error();
                Err(Error::backend(error))
            }
        }
    }
}
