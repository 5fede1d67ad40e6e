//! What the service reads from the components it reports on: caches of any key and value
//! type behind one object-safe trait, and extra health sources.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;

use resync_cache_core::{Cache, CacheMetrics};
use resync_perf_core::HealthVerdict;

/// A boxed future, as the object-safe traits here return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A cache as the performance service sees it: a name and a statistics snapshot.
///
/// Implemented for every [`Cache<K, V>`], so any cache registers as
/// `service.register_cache(cache.clone())`.
pub trait CacheSource: Send + Sync + fmt::Debug {
    /// The cache's name (unique within a service).
    fn name(&self) -> &str;
    /// A snapshot of its cumulative statistics (cheap: no maintenance pass is forced).
    fn metrics(&self) -> CacheMetrics;
}

impl<K, V> CacheSource for Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        Cache::name(self)
    }

    fn metrics(&self) -> CacheMetrics {
        Cache::metrics(self)
    }
}

/// Any other component that judges its own health (a history sink, a disk, a queue).
///
/// Its check runs concurrently with the others under the service's per-check timeout; a
/// check that does not finish in time makes the component critical.
pub trait HealthSource: Send + Sync + fmt::Debug {
    /// The component's name in reports, e.g. `history:postgres`.
    fn name(&self) -> String;
    /// Its current verdict with the findings behind it.
    fn check(&self) -> BoxFuture<'_, HealthVerdict>;
}
