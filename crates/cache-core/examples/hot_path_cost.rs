//! Hot-path cost in instructions: one thread replays a fixed key stream through `get` (of
//! cached keys), `insert` and `get_with`, each phase in its own never-inlined function, so
//! that callgrind can attribute every instruction of a phase — moka's maintenance and the
//! advisor's replays included, amortised as they occur — to that phase.
//!
//! ```text
//! cargo build --release -p resync-cache-core --example hot_path_cost
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/hot.out \
//!     target/release/examples/hot_path_cost
//! callgrind_annotate --inclusive=yes /tmp/hot.out | grep phase_
//! ```
//!
//! Divide each `phase_*` function's inclusive instruction count by [`OPS`] for instructions
//! per operation. Instruction counts do not depend on the machine's load, so two builds
//! compare exactly where wall-clock runs on a shared machine do not.
//!
//! Two more phases replay the get-then-insert trace of the paired bench (`benches/paired.rs`:
//! Zipf 0.99 over 1 000 000 keys, 128-byte `Bytes` values, insert on a miss) through this
//! cache (statistics and advisor on) and through bare `moka::future::Cache` of the same
//! capacity, each warmed first with [`OPS`] operations of another stretch of the trace:
//! `phase_trace_resync` and `phase_trace_moka`, [`OPS`] gets each, and a third through moka
//! built with the hasher this cache gives its moka (aHash instead of moka's default SipHash),
//! `phase_trace_moka_ahash`, which splits the difference into the hasher's share and this
//! cache's own cost. The capacity is
//! `HOT_PATH_TRACE_ENTRIES` (default 1 000); run it at 100 000, 1 000 and 256 to see what
//! the advisor's sampling costs a small cache (`HOT_PATH_ADVISOR=off` builds the cache of
//! these two phases with its advisor off, for the difference), e.g.
//!
//! ```text
//! HOT_PATH_TRACE_ENTRIES=256 valgrind --tool=callgrind --callgrind-out-file=/tmp/hot256.out \
//!     target/release/examples/hot_path_cost
//! callgrind_annotate --inclusive=yes /tmp/hot256.out | grep -E 'phase_|Advisor'
//! ```

#[path = "../tests/support/zipf.rs"]
mod zipf;

use std::hint::black_box;

use bytes::Bytes;
use resync_cache_core::Cache;
use tokio::runtime::Runtime;

/// Operations per phase.
const OPS: usize = 200_000;
const KEYS: usize = 100_000;
const MAX_ENTRIES: u64 = 10_000;

fn cache() -> Cache<u64, u64> {
    Cache::builder()
        .name("hot-path")
        .max_entries(MAX_ENTRIES)
        .build()
        .expect("valid settings")
}

/// Gets of keys that are all cached.
#[inline(never)]
fn phase_get_hit(runtime: &Runtime, cache: &Cache<u64, u64>, keys: &[u64]) -> u64 {
    runtime.block_on(async {
        let mut found = 0;
        for key in keys {
            found += u64::from(cache.get(key).await.is_some());
        }
        found
    })
}

/// Inserts over a stream that overflows the cache (creates, replacements, evictions).
#[inline(never)]
fn phase_insert(runtime: &Runtime, cache: &Cache<u64, u64>, keys: &[u64]) {
    runtime.block_on(async {
        for &key in keys {
            cache.insert(key, key).await.expect("small entries fit");
        }
    });
}

/// Read-through over the same kind of stream.
#[inline(never)]
fn phase_get_with(runtime: &Runtime, cache: &Cache<u64, u64>, keys: &[u64]) -> u64 {
    runtime.block_on(async {
        let mut sum = 0;
        for &key in keys {
            sum += cache.get_with(key, async move { key }).await;
        }
        sum
    })
}

/// Keys of the get-then-insert trace (the paired bench's).
const TRACE_KEYS: usize = 1_000_000;

/// Get then insert on a miss through the instrumented cache; returns the hits.
#[inline(never)]
fn phase_trace_resync(runtime: &Runtime, cache: &Cache<u64, Bytes>, keys: &[u64]) -> u64 {
    runtime.block_on(get_then_insert_resync(cache, keys))
}

/// The same through bare moka.
#[inline(never)]
fn phase_trace_moka(
    runtime: &Runtime,
    cache: &moka::future::Cache<u64, Bytes>,
    keys: &[u64],
) -> u64 {
    runtime.block_on(get_then_insert_moka(cache, keys))
}

/// The same through moka built with the hasher this cache gives its moka (aHash): the
/// difference to `phase_trace_moka` is the hasher's share, the difference to
/// `phase_trace_resync` this cache's own cost.
#[inline(never)]
fn phase_trace_moka_ahash(
    runtime: &Runtime,
    cache: &moka::future::Cache<u64, Bytes, ahash::RandomState>,
    keys: &[u64],
) -> u64 {
    runtime.block_on(get_then_insert_moka(cache, keys))
}

async fn get_then_insert_resync(cache: &Cache<u64, Bytes>, keys: &[u64]) -> u64 {
    let value = Bytes::from(vec![0x5a; 128]);
    let mut hits = 0;
    for &key in keys {
        if cache.get(&key).await.is_some() {
            hits += 1;
        } else {
            cache.insert(key, value.clone()).await.expect("fits");
        }
    }
    hits
}

async fn get_then_insert_moka<S>(cache: &moka::future::Cache<u64, Bytes, S>, keys: &[u64]) -> u64
where
    S: std::hash::BuildHasher + Clone + Send + Sync + 'static,
{
    let value = Bytes::from(vec![0x5a; 128]);
    let mut hits = 0;
    for &key in keys {
        if cache.get(&key).await.is_some() {
            hits += 1;
        } else {
            cache.insert(key, value.clone()).await;
        }
    }
    hits
}

fn trace_phases(runtime: &Runtime) {
    let entries: u64 = std::env::var("HOT_PATH_TRACE_ENTRIES")
        .ok()
        .map(|entries| entries.parse().expect("HOT_PATH_TRACE_ENTRIES: a number"))
        .unwrap_or(1_000);
    let trace = zipf::Zipf::new(TRACE_KEYS, 0.99).trace(2 * OPS, 0x7ace);
    let (warm, measured) = trace.split_at(OPS);

    let advisor = std::env::var("HOT_PATH_ADVISOR").map_or(true, |value| value != "off");
    let resync: Cache<u64, Bytes> = Cache::builder()
        .name("hot-path-trace")
        .max_entries(entries)
        .advisor(advisor)
        .build()
        .expect("valid settings");
    runtime.block_on(get_then_insert_resync(&resync, warm));
    let resync_hits = phase_trace_resync(runtime, &resync, measured);
    let curve = resync.metrics().curve;

    let moka = moka::future::Cache::new(entries);
    runtime.block_on(get_then_insert_moka(&moka, warm));
    let moka_hits = phase_trace_moka(runtime, &moka, measured);

    let moka_ahash = moka::future::Cache::builder()
        .max_capacity(entries)
        .build_with_hasher(ahash::RandomState::new());
    runtime.block_on(get_then_insert_moka(&moka_ahash, warm));
    let moka_ahash_hits = phase_trace_moka_ahash(runtime, &moka_ahash, measured);
    println!(
        "get-then-insert at {entries} entries (advisor {}), {OPS} gets: hits resync {resync_hits}, moka {moka_hits}, moka with aHash {moka_ahash_hits}",
        if advisor { "on" } else { "off" }
    );
    if let Some(curve) = curve {
        println!(
            "advisor: sample rate {}, sampled gets replayed {} of {} (the rest fell into skipped windows)",
            curve.sample_rate,
            curve.sampled_gets,
            curve.sampled_gets + curve.skipped_gets
        );
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    let stream = zipf::Zipf::new(KEYS, 0.99).trace(OPS, 7);

    let hits = cache();
    let resident: Vec<u64> = (0..MAX_ENTRIES / 2).map(zipf::scramble).collect();
    runtime.block_on(async {
        for &key in &resident {
            hits.insert(key, key).await.expect("small entries fit");
        }
        hits.run_pending_tasks().await;
    });
    let gets: Vec<u64> = resident.iter().copied().cycle().take(OPS).collect();
    black_box(phase_get_hit(&runtime, &hits, &gets));

    let writes = cache();
    phase_insert(&runtime, &writes, &stream);

    let loads = cache();
    black_box(phase_get_with(&runtime, &loads, &stream));

    trace_phases(&runtime);
}
