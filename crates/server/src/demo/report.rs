//! The demo's closing report: what the load saw, what the server measured (gateway, response
//! cache, pools, health) and what its advisors recommend, each item with its evidence.

use std::fmt::Write as _;
use std::time::Duration;

use resync_cache_core::CacheMetrics;
use resync_perf_api::{
    CacheOutcome, GatewayMetrics, HealthReport, L2Metrics, RecommendationView, SettingValueView,
};
use resync_pool_optimizer::PoolReport;

use super::load::Totals;

/// Everything the report prints, gathered once the load has stopped.
#[derive(Debug)]
pub(crate) struct Report {
    /// How long the load ran.
    pub(crate) elapsed: Duration,
    /// Workers of the load.
    pub(crate) concurrency: usize,
    /// What the load's client saw.
    pub(crate) totals: Totals,
    /// The gateway's own figures.
    pub(crate) gateway: Option<GatewayMetrics>,
    /// The Redis second level's, when on.
    pub(crate) l2: Option<L2Metrics>,
    /// The response cache's.
    pub(crate) cache: CacheMetrics,
    /// Every pool's.
    pub(crate) pools: Vec<PoolReport>,
    /// Documents the sample upstream served.
    pub(crate) upstream_reads: u64,
    /// Writes the sample upstream took.
    pub(crate) upstream_writes: u64,
    /// The health verdict.
    pub(crate) health: HealthReport,
    /// Cache and pool advice, as the API shows it.
    pub(crate) advice: Vec<RecommendationView>,
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_owned(), |rate| format!("{:.1} %", rate * 100.0))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn millis(nanos: u64) -> String {
    format!("{:.2} ms", nanos as f64 / 1e6)
}

fn setting(value: &SettingValueView) -> String {
    match value {
        SettingValueView::Number(number) => format!("{number}"),
        SettingValueView::Text(text) => text.clone(),
    }
}

impl Report {
    /// The report as text, one section per component.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) -> std::fmt::Result {
        let totals = &self.totals;
        let secs = self.elapsed.as_secs_f64().max(f64::EPSILON);
        writeln!(out, "\n== Report ==")?;
        writeln!(
            out,
            "load:     {} requests in {:.1} s ({:.0}/s) by {} workers: {} reads, {} writes, {} errors; mean latency {}",
            totals.requests(),
            secs,
            totals.requests() as f64 / secs,
            self.concurrency,
            totals.reads,
            totals.writes,
            totals.errors,
            totals
                .mean_latency()
                .map_or_else(|| "-".to_owned(), |mean| format!("{:.2} ms", mean.as_secs_f64() * 1e3)),
        )?;
        writeln!(
            out,
            "          X-Cache: HIT {}, MISS {}, STALE {}, BYPASS {} — hit rate {}",
            totals.hits,
            totals.misses,
            totals.stale,
            totals.bypass,
            percent(totals.hit_rate())
        )?;
        if let Some(gateway) = &self.gateway {
            let upstream = &gateway.upstream;
            writeln!(
                out,
                "gateway:  {} requests, hit rate {} (hit {}, miss {}, stale {}, bypass {})",
                gateway.total_requests(),
                percent(gateway.hit_rate()),
                gateway.requests_with_cache(CacheOutcome::Hit),
                gateway.requests_with_cache(CacheOutcome::Miss),
                gateway.requests_with_cache(CacheOutcome::Stale),
                gateway.requests_with_cache(CacheOutcome::Bypass),
            )?;
            writeln!(
                out,
                "          latency p50 {}, p95 {}, p99 {}; upstream: {} exchanges, {} errors, p95 {}; bytes from cache {}, from upstream {}",
                millis(gateway.request_latency.p50()),
                millis(gateway.request_latency.p95()),
                millis(gateway.request_latency.p99()),
                upstream.total(),
                upstream.errors(),
                millis(gateway.upstream_latency.p95()),
                mib(gateway.bytes_from_cache),
                mib(gateway.bytes_from_upstream),
            )?;
        }
        if let Some(l2) = &self.l2 {
            writeln!(
                out,
                "l2:       Redis second level {}: {} lookups, hit rate {}, {} stores, {} errors",
                if l2.available {
                    "available"
                } else {
                    "unavailable"
                },
                l2.lookups.attempted(),
                percent(l2.hit_rate()),
                l2.stores.stored,
                l2.errors.total(),
            )?;
        }
        writeln!(
            out,
            "upstream: the sample upstream served {} documents and took {} writes (for {} requests through the gateway)",
            self.upstream_reads,
            self.upstream_writes,
            totals.requests(),
        )?;
        let cache = &self.cache;
        writeln!(
            out,
            "cache:    `{}`: {} entries, {} of {} ({:.1} %), hit rate {}, evictions: size {}, expired {}, explicit {}",
            cache.name,
            cache.entries,
            mib(cache.weighted_bytes),
            mib(cache.max_memory_bytes),
            cache.memory_utilization * 100.0,
            percent(cache.hit_rate),
            cache.evictions.size,
            cache.evictions.expired,
            cache.evictions.explicit,
        )?;
        for pool in &self.pools {
            let metrics = &pool.metrics;
            writeln!(
                out,
                "pool:     `{}`: {} connections (max {}), peak in use {}, {} checkouts ({} waited), acquire p95 {}, utilization {}, score {}",
                metrics.name,
                metrics.connections,
                metrics.max_size,
                metrics.peak_in_use,
                metrics.acquires,
                metrics.acquires_waited,
                millis(metrics.acquire_latency.p95()),
                percent(pool.utilization),
                pool.efficiency_score
                    .map_or_else(|| "-".to_owned(), |score| format!("{score:.0}")),
            )?;
        }
        writeln!(
            out,
            "health:   {} (over the last {:.0} s)",
            self.health.status, self.health.window_seconds
        )?;
        for (name, component) in &self.health.components {
            writeln!(out, "          {name}: {}", component.status)?;
            for reason in &component.reasons {
                writeln!(out, "            {} — {}", reason.code, reason.message)?;
            }
        }
        writeln!(out, "\n== Recommendations ({}) ==", self.advice.len())?;
        if self.advice.is_empty() {
            writeln!(out, "none: nothing to change for this load")?;
        }
        for item in &self.advice {
            writeln!(
                out,
                "[{}] {} ({}) — {}",
                item.severity, item.code, item.component, item.message
            )?;
            let evidence: Vec<String> = item
                .evidence
                .iter()
                .map(|(name, value)| format!("{name}={}", round(*value)))
                .collect();
            if !evidence.is_empty() {
                writeln!(out, "    evidence: {}", evidence.join(", "))?;
            }
            if let Some(change) = &item.change {
                writeln!(
                    out,
                    "    change: {} {} → {}",
                    change.key,
                    setting(&change.current),
                    setting(&change.suggested)
                )?;
            }
        }
        Ok(())
    }
}

/// A figure with at most four decimals, trailing zeros dropped.
fn round(value: f64) -> String {
    let text = format!("{value:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" || text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_rounded_for_reading() {
        assert_eq!(round(0.912_345_6), "0.9123");
        assert_eq!(round(100.0), "100");
        assert_eq!(round(0.0), "0");
        assert_eq!(round(-0.000_01), "0");
    }
}
