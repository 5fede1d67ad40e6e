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

#[path = "../tests/support/zipf.rs"]
mod zipf;

use std::hint::black_box;

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
}
