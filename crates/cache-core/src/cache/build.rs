//! Construction: a [`CacheBuilder`]'s settings become the moka cache the entries live in
//! (weighing entries while they can, see `store`), the eviction-cause accounting its
//! expiration calls for, the advisor, and (with a cleanup interval) the background
//! maintenance task.

use std::hash::Hash;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use super::causes::{cleanup_loop, Abandoned};
use super::store::{MokaConfig, Store, Weighing};
use super::{Cache, Inner};
use crate::advisor::{Advisor, AdvisorConfig};
use crate::builder::CacheBuilder;
use crate::error::Error;
use crate::stats::Stats;

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn from_builder(builder: CacheBuilder<K, V>) -> Result<Self, Error> {
        let weigher = builder
            .weigher
            .expect("build and build_with_weigher always set a weigher before building");
        let min_weight = builder.max_memory_bytes.div_ceil(builder.max_entries);
        let stats = Arc::new(Stats::new(builder.stat_shards));
        let runtime = match builder.cleanup_interval {
            Some(_) => Some(tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?),
            None => None,
        };

        // Weighing entries (bare moka's policy) holds while every entry weighs the floor.
        // When every entry is known to outweigh it (the default weigher's fixed part alone
        // does), the cache weighs bytes from the start instead of moving there at its
        // first write.
        let weighing = match builder.min_entry_weight {
            Some(lightest) if lightest > min_weight => Weighing::Bytes,
            _ => Weighing::Entries,
        };
        let config = MokaConfig {
            name: builder.name.clone(),
            max_memory_bytes: builder.max_memory_bytes,
            max_floor_entries: builder
                .max_entries
                .min(builder.max_memory_bytes / min_weight),
            weigher: Arc::clone(&weigher),
            min_weight,
            expires: builder.time_to_live.is_some()
                || builder.time_to_idle.is_some()
                || builder.expiry.is_some(),
            stats: Arc::clone(&stats),
            time_to_live: builder.time_to_live,
            time_to_idle: builder.time_to_idle,
            expiry: builder.expiry.map(Arc::from),
        };
        let (store, causes) = Store::new(config, weighing);
        let advisor = builder.advisor.then(|| {
            Advisor::new(AdvisorConfig {
                max_memory_bytes: builder.max_memory_bytes,
                max_entries: builder.max_entries,
                sample_rate: builder.advisor_sample_rate,
                time_to_live: builder.time_to_live,
                time_to_idle: builder.time_to_idle,
                weighing,
                min_weight,
                stripes: builder.stat_shards,
            })
        });
        // The first stamp calibrates quanta's clock (a busy loop of a millisecond or more):
        // paid here, at build time, not by the first caller of a read-through.
        let _ = crate::stored::now();
        let inner = Arc::new(Inner {
            name: builder.name,
            store,
            stats,
            advisor,
            weigher,
            min_weight,
            max_entries: builder.max_entries,
            max_memory_bytes: builder.max_memory_bytes,
            max_entry_weight: builder.max_memory_bytes.min(u64::from(u32::MAX)),
            time_to_live: builder.time_to_live,
            cleanup_interval: builder.cleanup_interval,
            cleanup: OnceLock::new(),
            causes,
            created_settled: AtomicU64::new(0),
            size_reported: AtomicU64::new(0),
            abandoned: Abandoned::default(),
        });
        if let (Some(runtime), Some(interval)) = (runtime, builder.cleanup_interval) {
            let task = runtime.spawn(cleanup_loop(Arc::downgrade(&inner), interval));
            // The cell was created empty just above and nothing else can reach it yet.
            let _ = inner.cleanup.set(task.abort_handle());
        }
        Ok(Self { inner })
    }
}
