//! [`FnManager`]: a pool of any resource, built from closures (the original's `ResourcePool`).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::error::Error;
use crate::probe::HealthProbe;

type Check<C> = Arc<dyn Fn(&mut C) -> bool + Send + Sync>;

/// A bb8 manager whose connections are made by a closure.
///
/// `connect` creates a resource; the optional `check` says whether one still works (used for
/// checkout validation, for `has_broken` on return, and as the health probe).
///
/// ```
/// # async fn demo() -> Result<(), resync_pool_optimizer::Error> {
/// use resync_pool_optimizer::{FnManager, MonitoredPool, PoolConfig};
/// use resync_resource_manager::ResourceTracker;
///
/// let manager = FnManager::new(|| async { Ok::<_, std::io::Error>(Vec::<u8>::with_capacity(64)) })
///     .with_check(|buffer: &mut Vec<u8>| buffer.capacity() >= 64);
/// let pool = MonitoredPool::new("buffers", PoolConfig::default(), manager, &ResourceTracker::new())?;
/// pool.get().await?.push(1);
/// # Ok(()) }
/// ```
pub struct FnManager<F, C, E> {
    connect: F,
    check: Option<Check<C>>,
    _error: PhantomData<fn() -> E>,
}

impl<F, C, E> FnManager<F, C, E> {
    /// A manager making resources with `connect`.
    #[must_use]
    pub fn new(connect: F) -> Self {
        Self {
            connect,
            check: None,
            _error: PhantomData,
        }
    }

    /// Adds a liveness check for resources.
    #[must_use]
    pub fn with_check(mut self, check: impl Fn(&mut C) -> bool + Send + Sync + 'static) -> Self {
        self.check = Some(Arc::new(check));
        self
    }

    fn alive(&self, conn: &mut C) -> bool {
        self.check.as_ref().is_none_or(|check| check(conn))
    }
}

impl<F, C, E> fmt::Debug for FnManager<F, C, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnManager")
            .field("has_check", &self.check.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, Fut, C, E> bb8::ManageConnection for FnManager<F, C, E>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<C, E>> + Send,
    C: Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    type Connection = C;
    type Error = Error;

    async fn connect(&self) -> Result<C, Error> {
        (self.connect)().await.map_err(Error::backend)
    }

    async fn is_valid(&self, conn: &mut C) -> Result<(), Error> {
        if self.alive(conn) {
            Ok(())
        } else {
            Err(Error::Broken)
        }
    }

    fn has_broken(&self, conn: &mut C) -> bool {
        !self.alive(conn)
    }
}

impl<F, Fut, C, E> HealthProbe for FnManager<F, C, E>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<C, E>> + Send,
    C: Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    async fn probe(&self, conn: &mut C) -> Result<(), Error> {
        bb8::ManageConnection::is_valid(self, conn).await
    }
}
