//! The manager bb8 sees: the backend's manager plus timing, counting and skipped validation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, SharedError};
use crate::stats::PoolStats;

/// A pooled connection with the bookkeeping the wrapper needs.
#[derive(Debug)]
pub(crate) struct Tracked<C> {
    pub(crate) conn: C,
    /// When the connection was last returned to the pool (or made).
    pub(crate) last_used: Instant,
    /// Set when a caller reported the connection unusable.
    pub(crate) broken: bool,
}

/// Wraps the backend manager `M`: times out and counts every connect, skips the validity
/// round trip for recently used connections, and counts broken connections on return.
#[derive(Debug)]
pub(crate) struct MonitoredManager<M> {
    pub(crate) inner: Arc<M>,
    pub(crate) stats: Arc<PoolStats>,
    pub(crate) connect_timeout: Duration,
    pub(crate) validation_skip_window: Duration,
}

impl<M> bb8::ManageConnection for MonitoredManager<M>
where
    M: bb8::ManageConnection,
    M::Error: std::error::Error + Send + Sync + 'static,
{
    type Connection = Tracked<M::Connection>;
    type Error = SharedError;

    async fn connect(&self) -> Result<Self::Connection, Self::Error> {
        PoolStats::count(&self.stats.connect_attempts);
        let started = Instant::now();
        let error: SharedError =
            match tokio::time::timeout(self.connect_timeout, self.inner.connect()).await {
                Ok(Ok(conn)) => {
                    let now = Instant::now();
                    self.stats.connect_latency.record_duration(now - started);
                    return Ok(Tracked {
                        conn,
                        last_used: now,
                        broken: false,
                    });
                }
                Ok(Err(error)) => Arc::new(error),
                Err(_elapsed) => {
                    PoolStats::count(&self.stats.connect_timeouts);
                    Arc::new(Error::ConnectTimeout(self.connect_timeout))
                }
            };
        tracing::debug!(pool = %self.stats.name, %error, "connect failed");
        self.stats.connect_failed(error.clone());
        Err(error)
    }

    async fn is_valid(&self, tracked: &mut Self::Connection) -> Result<(), Self::Error> {
        if tracked.broken || self.inner.has_broken(&mut tracked.conn) {
            PoolStats::count(&self.stats.validation_failures);
            return Err(Arc::new(Error::Broken));
        }
        if tracked.last_used.elapsed() < self.validation_skip_window {
            PoolStats::count(&self.stats.validations_skipped);
            return Ok(());
        }
        PoolStats::count(&self.stats.validations_run);
        match self.inner.is_valid(&mut tracked.conn).await {
            Ok(()) => Ok(()),
            Err(error) => {
                PoolStats::count(&self.stats.validation_failures);
                Err(Arc::new(error))
            }
        }
    }

    fn has_broken(&self, tracked: &mut Self::Connection) -> bool {
        // bb8 calls this on every return; the guard stamped `last_used` just before.
        let broken = tracked.broken || self.inner.has_broken(&mut tracked.conn);
        if broken {
            PoolStats::count(&self.stats.broken);
        }
        broken
    }
}
