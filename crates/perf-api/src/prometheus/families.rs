//! The families of each component: caches, pools, resource kinds, the gateway, the process.

use resync_cache_core::CacheMetrics;
use resync_perf_core::HistogramSnapshot;
use resync_pool_optimizer::PoolMetrics;
use resync_resource_manager::ResourceStats;

use crate::gateway::{GatewayMetrics, L2Metrics};

use super::family::{per_item, per_label, Family, Figure, Labels};
use super::process::ProcessStats;

pub(super) fn cache_families(caches: &[CacheMetrics]) -> Vec<Family> {
    let each = |value: fn(&CacheMetrics) -> u64| per_item(caches, "cache", |c| &c.name, value);
    let by = |key: &'static str, figures: &[Figure<CacheMetrics>]| {
        per_label(caches, "cache", |c| &c.name, key, figures)
    };
    vec![
        Family::counter(
            "resync_cache_requests_total",
            "Gets served by the cache, read-through calls included, by result.",
        )
        .series(by("result", &[("hit", |c| c.hits), ("miss", |c| c.misses)])),
        Family::counter(
            "resync_cache_evictions_total",
            "Entries removed from the cache, by cause (size evictions are derived when the cache cannot expire entries).",
        )
        .series(by(
            "cause",
            &[
                ("size", |c| c.evictions.size),
                ("expired", |c| c.evictions.expired),
                ("explicit", |c| c.evictions.explicit),
                ("replaced", |c| c.evictions.replaced),
            ],
        )),
        Family::counter(
            "resync_cache_inserts_total",
            "Values written to the cache, by insert or by a completed load.",
        )
        .series(each(|c| c.inserts)),
        Family::counter(
            "resync_cache_invalidations_total",
            "Calls of invalidate, remove and invalidate_all on the cache.",
        )
        .series(each(|c| c.invalidations)),
        Family::counter(
            "resync_cache_loads_total",
            "Read-through loads that produced a value (ok) or failed (failed).",
        )
        .series(by(
            "result",
            &[("ok", |c| c.loads_ok), ("failed", |c| c.loads_failed)],
        )),
        Family::histogram(
            "resync_cache_load_seconds",
            "Time read-through loads took, failed ones included.",
        )
        .series(per_item(caches, "cache", |c| &c.name, |c| {
            c.load_time_snapshot()
        })),
        Family::gauge(
            "resync_cache_entries",
            "Entries cached, as of the last maintenance pass.",
        )
        .series(each(|c| c.entries)),
        Family::gauge("resync_cache_max_entries", "The cache's entry bound.")
            .series(each(|c| c.max_entries)),
        Family::gauge(
            "resync_cache_bytes",
            "Weighted size of the cached entries in bytes, as of the last maintenance pass.",
        )
        .series(each(|c| c.weighted_bytes)),
        Family::gauge("resync_cache_max_bytes", "The cache's memory bound in bytes.")
            .series(each(|c| c.max_memory_bytes)),
        Family::counter(
            "resync_cache_skipped_gets_total",
            "Gets the cache's advisor sampled but did not replay into its miss-ratio simulations: with the default sample rate, a cache of fewer than 8192 entries replays only some windows of its sample, to bound what the advisor costs. Only for caches with a miss-ratio curve.",
        )
        .series(caches.iter().filter_map(|c| {
            let curve = c.curve.as_ref()?;
            Some((vec![("cache", c.name.clone())], curve.skipped_gets))
        })),
    ]
}

pub(super) fn pool_families(pools: &[PoolMetrics]) -> Vec<Family> {
    let each = |value: fn(&PoolMetrics) -> u64| per_item(pools, "pool", |p| &p.name, value);
    let by = |key: &'static str, figures: &[Figure<PoolMetrics>]| {
        per_label(pools, "pool", |p| &p.name, key, figures)
    };
    let histogram =
        |value: fn(&PoolMetrics) -> &HistogramSnapshot| per_item(pools, "pool", |p| &p.name, value);
    vec![
        Family::gauge(
            "resync_pool_connections",
            "Connections of the pool by state: idle, in_use (checked out), open (idle + in use) and max (the configured max_size).",
        )
        .series(by(
            "state",
            &[
                ("idle", |p| u64::from(p.idle)),
                ("in_use", |p| p.in_use),
                ("open", |p| u64::from(p.connections)),
                ("max", |p| u64::from(p.max_size)),
            ],
        )),
        Family::gauge("resync_pool_waiting", "get() calls waiting for a connection now.")
            .series(each(|p| p.waiting)),
        Family::counter(
            "resync_pool_acquires_total",
            "Successful checkouts, by path: direct (served at once) or waited.",
        )
        .series(by(
            "path",
            &[("direct", |p| p.acquires_direct), ("waited", |p| p.acquires_waited)],
        )),
        Family::counter(
            "resync_pool_timeouts_total",
            "Acquire timeouts: get() calls that waited the whole timeout with every connection in use (the exhaustions).",
        )
        .series(each(|p| p.exhaustions)),
        Family::counter(
            "resync_pool_exhaustions_total",
            "get() calls that timed out with every connection in use.",
        )
        .series(each(|p| p.exhaustions)),
        Family::counter(
            "resync_pool_unavailable_total",
            "get() calls that failed because no connection could be made.",
        )
        .series(each(|p| p.unavailable)),
        Family::counter(
            "resync_pool_errors_total",
            "Connection errors by kind: failed connects, connections the backend found broken, errors reported by callers.",
        )
        .series(by(
            "kind",
            &[
                ("connect", |p| p.connect_failures),
                ("broken", |p| p.broken),
                ("caller", |p| p.caller_errors),
            ],
        )),
        Family::counter(
            "resync_pool_connect_timeouts_total",
            "Connect attempts that hit the connect timeout (also counted as connect errors).",
        )
        .series(each(|p| p.connect_timeouts)),
        Family::counter(
            "resync_pool_connections_created_total",
            "Connections the pool created.",
        )
        .series(each(|p| p.created)),
        Family::counter(
            "resync_pool_connections_closed_total",
            "Connections the pool closed, by reason.",
        )
        .series(by(
            "reason",
            &[
                ("broken", |p| p.closed_broken),
                ("invalid", |p| p.closed_invalid),
                ("max_lifetime", |p| p.closed_max_lifetime),
                ("idle_timeout", |p| p.closed_idle_timeout),
            ],
        )),
        Family::histogram(
            "resync_pool_acquire_seconds",
            "Time from get() to a connection or a failure; direct checkouts count as 0.",
        )
        .series(histogram(|p| &p.acquire_latency)),
        Family::histogram(
            "resync_pool_hold_seconds",
            "Time each connection was held by its caller.",
        )
        .series(histogram(|p| &p.hold_time)),
        Family::histogram(
            "resync_pool_connect_seconds",
            "Time successful connects took.",
        )
        .series(histogram(|p| &p.connect_latency)),
    ]
}

pub(super) fn resource_families(kinds: &[ResourceStats]) -> Vec<Family> {
    let each = |value: fn(&ResourceStats) -> u64| per_item(kinds, "kind", |k| &k.kind, value);
    vec![
        Family::gauge(
            "resync_resources_active",
            "Resources of the kind alive now.",
        )
        .series(each(|k| k.active)),
        Family::gauge(
            "resync_resources_leaked",
            "Resources of the kind alive now past the kind's leak threshold.",
        )
        .series(each(|k| k.leaked_now)),
        Family::counter(
            "resync_resources_leaks_total",
            "Resources ever seen past the kind's leak threshold, each counted once.",
        )
        .series(each(|k| k.leaked_total)),
        Family::counter(
            "resync_resources_created_total",
            "Resources of the kind tracked.",
        )
        .series(each(|k| k.created)),
        Family::counter(
            "resync_resources_released_total",
            "Resources of the kind released, closed or not.",
        )
        .series(each(|k| k.released)),
        Family::counter(
            "resync_resources_released_without_close_total",
            "Resources of the kind dropped without a deliberate close.",
        )
        .series(each(|k| k.released_without_close)),
    ]
}

/// The gateway's families; none without a gateway (a family without series is left out).
pub(super) fn gateway_families(gateway: Option<&GatewayMetrics>) -> Vec<Family> {
    let Some(gateway) = gateway else {
        return Vec::new();
    };
    let requests = gateway.request_counts().map(|row| {
        let labels: Labels = vec![
            ("method", row.method.as_str().to_owned()),
            ("status_class", row.status_class.as_str().to_owned()),
            ("cache", row.cache.as_str().to_owned()),
        ];
        (labels, row.count)
    });
    let upstream = gateway
        .upstream
        .by_label()
        .map(|(outcome, count)| (vec![("outcome", outcome.to_owned())], count));
    let bytes = [
        ("cache", gateway.bytes_from_cache),
        ("upstream", gateway.bytes_from_upstream),
    ]
    .map(|(source, bytes)| (vec![("source", source.to_owned())], bytes));
    vec![
        Family::counter(
            "resync_gateway_requests_total",
            "Requests the gateway served, by method (OTHER for any but the seven usual ones), class of the status sent and cache outcome (hit, miss, stale, bypass).",
        )
        .series(requests),
        Family::counter(
            "resync_gateway_upstream_requests_total",
            "Upstream exchanges the gateway attempted, by outcome: answered_2xx to answered_5xx, unreachable, failed, timed_out, exhausted (the HTTP pool).",
        )
        .series(upstream),
        Family::counter(
            "resync_gateway_bytes_total",
            "Response body bytes sent to clients, by source: cache (hits and stale answers) or upstream (everything else).",
        )
        .series(bytes),
        Family::histogram(
            "resync_gateway_request_duration_seconds",
            "Time from a request's first byte in to its response head out.",
        )
        .single(Some(&gateway.request_latency)),
        Family::histogram(
            "resync_gateway_upstream_duration_seconds",
            "Time the upstream exchanges took, failed ones included.",
        )
        .single(Some(&gateway.upstream_latency)),
    ]
}

/// The gateway L2's families; none without an L2 (a family without series is left out).
pub(super) fn gateway_l2_families(l2: Option<&L2Metrics>) -> Vec<Family> {
    let Some(l2) = l2 else {
        return Vec::new();
    };
    let labelled = |key: &'static str, rows: &[(&'static str, u64)]| -> Vec<(Labels, u64)> {
        rows.iter()
            .map(|&(value, count)| (vec![(key, value.to_owned())], count))
            .collect()
    };
    vec![
        Family::counter(
            "resync_gateway_l2_lookups_total",
            "Lookups of the gateway's L2 cache (Redis), by result: hit (a current entry), miss (none), other_version (an entry of another version, not used), error (the lookup failed), skipped (L2 unavailable, not asked).",
        )
        .series(labelled("result", &l2.lookups.by_label())),
        Family::counter(
            "resync_gateway_l2_stores_total",
            "Entries the gateway wrote to its L2 cache (SET with an expiry), by result: stored or error.",
        )
        .series(labelled("result", &l2.stores.by_label())),
        Family::histogram(
            "resync_gateway_l2_lookup_duration_seconds",
            "Time the L2 lookups sent to Redis took, failed ones included (skipped ones are not timed).",
        )
        .single(Some(&l2.lookup_latency)),
        Family::histogram(
            "resync_gateway_l2_store_duration_seconds",
            "Time the L2 stores took, failed ones included.",
        )
        .single(Some(&l2.store_latency)),
        Family::counter(
            "resync_gateway_l2_leases_total",
            "Cross-instance fetch leases, by outcome: won (this instance fetched from the upstream), waited (another instance's value arrived in L2), expired (waited in vain, then fetched itself).",
        )
        .series(labelled("outcome", &l2.leases.by_label())),
        Family::counter(
            "resync_gateway_l2_invalidations_total",
            "Cache invalidations between the gateway's instances, by direction: sent (published by this instance) or received (from the others).",
        )
        .series(labelled("direction", &l2.invalidations.by_label())),
        Family::counter(
            "resync_gateway_l1_flushes_total",
            "Times the gateway dropped its whole in-process (L1) cache because the L2 invalidation subscriber reconnected and invalidations may have been missed.",
        )
        .single(Some(l2.l1_flushes)),
        Family::counter(
            "resync_gateway_l2_errors_total",
            "L2 operations that failed, by operation: lookup, store, lease, invalidate (publishing), subscribe (the invalidation subscriber).",
        )
        .series(labelled("op", &l2.errors.by_label())),
        Family::gauge(
            "resync_gateway_l2_available",
            "Whether the gateway's L2 cache is usable now (the invalidation subscriber is connected and Redis answers): 1 yes, 0 no.",
        )
        .single(Some(u64::from(l2.available))),
    ]
}

pub(super) fn process_families(process: &ProcessStats) -> Vec<Family> {
    vec![
        Family::gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        )
        .single(process.resident_memory_bytes),
        Family::gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
        )
        .single(process.virtual_memory_bytes),
        Family::gauge("process_open_fds", "Number of open file descriptors.")
            .single(process.open_fds),
        Family::gauge(
            "process_max_fds",
            "Maximum number of open file descriptors (the soft limit).",
        )
        .single(process.max_fds),
        Family::counter(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        )
        .single(process.cpu_seconds),
        Family::gauge(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds.",
        )
        .single(process.start_time_seconds),
    ]
}
