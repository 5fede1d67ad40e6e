//! Pools of closure-built resources (no backend needed): each connection is the count of
//! connections made before it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use resync_pool_optimizer::{Error, FnManager, MonitoredPool, PoolConfig};
use resync_resource_manager::ResourceTracker;

/// A pool of at most `max_size` connections, none opened ahead, with `acquire_timeout`.
pub fn small_config(max_size: u32, acquire_timeout: Duration) -> PoolConfig {
    PoolConfig {
        min_size: 0,
        max_size,
        acquire_timeout: Some(acquire_timeout),
        connect_timeout: Duration::from_secs(10),
        ..PoolConfig::default()
    }
}

/// A pool named `counter` of [`small_config`] whose connections are `0, 1, 2, …` in the
/// order they are made.
pub fn counter_pool(
    max_size: u32,
    acquire_timeout: Duration,
) -> MonitoredPool<impl bb8::ManageConnection<Connection = u64, Error = Error>> {
    let made = Arc::new(AtomicU64::new(0));
    let manager = FnManager::new(move || {
        let made = Arc::clone(&made);
        async move { Ok::<_, std::io::Error>(made.fetch_add(1, Ordering::Relaxed)) }
    });
    MonitoredPool::new(
        "counter",
        small_config(max_size, acquire_timeout),
        manager,
        &ResourceTracker::new(),
    )
    .expect("valid config")
}
