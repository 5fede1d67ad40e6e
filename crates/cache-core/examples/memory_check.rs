//! Memory check: fills a cache bounded at 100 MiB with 1 KiB values far past its bound and
//! reports the process's resident-memory growth against the bound (Linux, `/proc/self`).
//!
//! ```text
//! cargo run --release -p resync-cache-core --example memory_check
//! ```
//!
//! Without arguments it runs itself twice in fresh processes (so one run's freed memory does
//! not hide the other's): once with the default weigher (`MemorySize` plus
//! `ENTRY_OVERHEAD_BYTES`) and once counting only the entries' own bytes, and from the second
//! run it derives moka's real per-entry overhead.

use std::process::Command;

use resync_cache_core::{Cache, ENTRY_OVERHEAD_BYTES};

const BOUND: u64 = 100 * 1024 * 1024;
const VALUE_BYTES: usize = 1024;
/// Ten times what fits.
const INSERTS: u64 = 10 * BOUND / VALUE_BYTES as u64;

/// Resident set size and its high-water mark, in bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The bytes an entry really owns: key, the `Vec` header and its 1 KiB buffer.
fn own_bytes() -> u64 {
    (std::mem::size_of::<u64>() + std::mem::size_of::<Vec<u8>>() + VALUE_BYTES) as u64
}

async fn fill(with_overhead: bool) {
    let (before, _) = rss();
    let builder = Cache::<u64, Vec<u8>>::builder()
        .name("memory-check")
        .max_entries(1_000_000)
        .max_memory_bytes(BOUND);
    let cache = if with_overhead {
        builder.build()
    } else {
        builder.build_with_weigher(|_key, value| {
            (std::mem::size_of::<u64>() + std::mem::size_of::<Vec<u8>>() + value.capacity()) as u64
        })
    }
    .expect("valid settings");
    for key in 0..INSERTS {
        cache
            .insert(key, vec![(key % 251) as u8; VALUE_BYTES])
            .await
            .expect("1 KiB fits");
    }
    cache.run_pending_tasks().await;
    let (after, peak) = rss();
    let growth = after.saturating_sub(before);
    let peak_growth = peak.saturating_sub(before);
    let entries = cache.entry_count();
    let weight_label = if with_overhead {
        format!("MemorySize + {ENTRY_OVERHEAD_BYTES} B overhead")
    } else {
        "own bytes only (0 B overhead)".to_owned()
    };
    println!("weigher: {weight_label}");
    println!(
        "  inserted {INSERTS} values of {VALUE_BYTES} B; kept {entries} entries weighing {} B (bound {BOUND} B)",
        cache.weighted_size()
    );
    println!(
        "  RSS growth {:.1} MiB = {:.3}x the bound (peak {:.1} MiB = {:.3}x)",
        growth as f64 / 1048576.0,
        growth as f64 / BOUND as f64,
        peak_growth as f64 / 1048576.0,
        peak_growth as f64 / BOUND as f64
    );
    if entries > 0 {
        let per_entry = growth as f64 / entries as f64;
        println!(
            "  RSS per kept entry {per_entry:.0} B, of which {:.0} B beyond the entry's own {} B",
            per_entry - own_bytes() as f64,
            own_bytes()
        );
    }
}

fn main() {
    let mode = std::env::args().nth(1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    match mode.as_deref() {
        Some("default") => runtime.block_on(fill(true)),
        Some("no-overhead") => runtime.block_on(fill(false)),
        _ => {
            let program = std::env::current_exe().expect("the example's own path");
            for mode in ["default", "no-overhead"] {
                let status = Command::new(&program)
                    .arg(mode)
                    .status()
                    .expect("the example can run itself");
                assert!(status.success(), "{mode} run failed");
            }
        }
    }
}
