//! The `/metrics` exposition: every cache, pool, resource kind and health verdict, plus
//! build and process figures, as Prometheus text (0.0.4) or OpenMetrics text (1.0), encoded
//! by prometheus-client from snapshots the caller takes.
//!
//! The names are a contract (`docs/ARCHITECTURE.md`, *Metric names*); they are written below as
//! the Prometheus text format exposes them. Counters are cumulative since their component
//! was built; gauges are current values. Labels: `cache`, `pool`, `kind` and `component`
//! carry the component's name.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `resync_cache_requests_total` | counter | `cache`, `result` = `hit` \| `miss` |
//! | `resync_cache_evictions_total` | counter | `cache`, `cause` = `size` \| `expired` \| `explicit` \| `replaced` |
//! | `resync_cache_inserts_total` | counter | `cache` |
//! | `resync_cache_invalidations_total` | counter | `cache` |
//! | `resync_cache_loads_total` | counter | `cache`, `result` = `ok` \| `failed` |
//! | `resync_cache_load_seconds` | histogram | `cache` |
//! | `resync_cache_entries`, `resync_cache_max_entries` | gauge | `cache` |
//! | `resync_cache_bytes`, `resync_cache_max_bytes` | gauge | `cache` |
//! | `resync_pool_connections` | gauge | `pool`, `state` = `idle` \| `in_use` \| `open` \| `max` |
//! | `resync_pool_waiting` | gauge | `pool` |
//! | `resync_pool_acquires_total` | counter | `pool`, `path` = `direct` \| `waited` |
//! | `resync_pool_timeouts_total` | counter | `pool` |
//! | `resync_pool_exhaustions_total`, `resync_pool_unavailable_total` | counter | `pool` |
//! | `resync_pool_errors_total` | counter | `pool`, `kind` = `connect` \| `broken` \| `caller` |
//! | `resync_pool_connect_timeouts_total` | counter | `pool` |
//! | `resync_pool_connections_created_total` | counter | `pool` |
//! | `resync_pool_connections_closed_total` | counter | `pool`, `reason` = `broken` \| `invalid` \| `max_lifetime` \| `idle_timeout` |
//! | `resync_pool_acquire_seconds`, `resync_pool_hold_seconds`, `resync_pool_connect_seconds` | histogram | `pool` |
//! | `resync_resources_active`, `resync_resources_leaked` | gauge | `kind` |
//! | `resync_resources_leaks_total` | counter | `kind` |
//! | `resync_resources_created_total`, `resync_resources_released_total`, `resync_resources_released_without_close_total` | counter | `kind` |
//! | `resync_health_status` | gauge | `component` (`overall` for the whole) |
//! | `resync_build_info` | gauge (info) = 1 | `version` |
//! | `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`, `process_start_time_seconds` | gauge | — |
//! | `process_cpu_seconds_total` | counter | — |
//!
//! Choices worth knowing:
//!
//! - `resync_pool_timeouts_total` counts acquire timeouts: `get()` calls that waited the
//!   whole acquire timeout with every connection checked out (the pool's *exhaustions*, also
//!   exported as `resync_pool_exhaustions_total`). A `get()` that failed because no
//!   connection could be made is *unavailable* (`resync_pool_unavailable_total`), not a
//!   timeout: it may fail at once with the connect error, and it means the backend is down,
//!   not that the pool is too small.
//! - The cumulative count of leaks is `resync_resources_leaks_total` (each resource counted
//!   once, the first time a scan saw it past its threshold), not `resync_resources_leaked_total`:
//!   in OpenMetrics a counter's family name drops `_total`, and a counter named
//!   `resync_resources_leaked` would clash with the gauge of that name.
//! - `resync_health_status` is 0 healthy, 1 degraded, 2 critical
//!   ([`HealthStatus::as_gauge`]).
//! - Histograms come from the perf-core histograms (nanoseconds), exposed in seconds with
//!   the fixed bounds of [`LE_NANOS`] (1 µs … 60 s) and `+Inf`. A bucket counts the values at
//!   or below its bound at the histogram's resolution: a value at most 3.125 % above a bound
//!   may be counted in it. `_sum` is exact. The acquire histogram includes the failed
//!   `get()`s (time to the failure), and direct checkouts as 0 s; the hold histogram counts
//!   returned connections; the connect histogram successful connects; the load histogram
//!   every load, failed or not.
//! - Process figures come from `/proc/self` ([`ProcessStats`]); each is left out when it
//!   cannot be read. A family with no series (no pool registered, say) is left out whole.

use std::fmt;

use axum::http::HeaderValue;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, text, DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use resync_cache_core::CacheMetrics;
use resync_perf_core::{HealthStatus, HistogramSnapshot};
use resync_pool_optimizer::PoolMetrics;
use resync_resource_manager::ResourceStats;

pub(crate) mod process;

use process::ProcessStats;

/// The `Content-Type` of OpenMetrics text 1.0.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the histogram buckets, in nanoseconds: 1 µs to 60 s, about three per
/// decade, covering an in-memory load (µs), a pooled checkout (µs to ms), a connect or a
/// slow query (ms to s) and an acquire that waits out a connect timeout (up to 60 s).
const LE_NANOS: [u64; 20] = [
    1_000,
    10_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
    60_000_000_000,
];

const NANOS_PER_SECOND: f64 = 1e9;

/// What one scrape exposes; the caller takes the snapshots.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exposition<'a> {
    pub(crate) caches: &'a [CacheMetrics],
    pub(crate) pools: &'a [PoolMetrics],
    pub(crate) kinds: &'a [ResourceStats],
    /// component name -> status, e.g. ("cache:responses", Healthy), plus ("overall", ...)
    pub(crate) health: &'a [(String, HealthStatus)],
}

/// The text format of a scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextFormat {
    /// Prometheus text 0.0.4 (`text/plain`), what every Prometheus version reads.
    Prometheus,
    /// OpenMetrics text 1.0 (`application/openmetrics-text`), ending in `# EOF`.
    OpenMetrics,
}

impl TextFormat {
    /// OpenMetrics when the Accept header asks for application/openmetrics-text, else
    /// Prometheus text 0.0.4.
    ///
    /// OpenMetrics is chosen when the header lists `application/openmetrics-text` with a
    /// quality above 0 and at least that of `text/plain` (Prometheus asks for OpenMetrics
    /// first, with text as a fallback). A missing or unreadable header means Prometheus text.
    pub(crate) fn negotiate(accept: Option<&HeaderValue>) -> Self {
        let Some(accept) = accept.and_then(|value| value.to_str().ok()) else {
            return Self::Prometheus;
        };
        let (mut openmetrics, mut plain) = (0.0_f64, 0.0_f64);
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media_type = parts.next().unwrap_or_default().trim();
            let quality = parts
                .filter_map(|parameter| parameter.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .map_or(1.0, |(_, value)| {
                    value
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|quality| !quality.is_nan())
                        .map_or(0.0, |quality| quality.clamp(0.0, 1.0))
                });
            if media_type.eq_ignore_ascii_case("application/openmetrics-text") {
                openmetrics = openmetrics.max(quality);
            } else if media_type.eq_ignore_ascii_case("text/plain") {
                plain = plain.max(quality);
            }
        }
        if openmetrics > 0.0 && openmetrics >= plain {
            Self::OpenMetrics
        } else {
            Self::Prometheus
        }
    }

    /// The `Content-Type` of a response in this format.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => prometheus_text::CONTENT_TYPE,
            Self::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// Renders every metric; never panics.
pub(crate) fn render(exposition: &Exposition<'_>, format: TextFormat) -> String {
    render_with(exposition, &ProcessStats::read(), format)
}

/// [`render`] with the process figures given.
fn render_with(exposition: &Exposition<'_>, process: &ProcessStats, format: TextFormat) -> String {
    let families = Families::of(exposition, process);
    let mut output = String::with_capacity(families.estimated_len());
    let mut registry = Registry::default();
    registry.register_collector(Box::new(families));
    let encoded = match format {
        TextFormat::Prometheus => prometheus_text::encode(&mut output, &registry),
        TextFormat::OpenMetrics => text::encode(&mut output, &registry),
    };
    // Writing to a `String` cannot fail and the collector returns only the encoder's errors.
    if encoded.is_err() {
        tracing::error!(?format, "encoding the metrics exposition failed");
    }
    output
}

/// One value of a series.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Histogram(Buckets),
    /// An info metric's 1.
    Info,
}

impl From<u64> for Value {
    fn from(value: u64) -> Self {
        Self::Unsigned(value)
    }
}

impl From<u32> for Value {
    fn from(value: u32) -> Self {
        Self::Unsigned(u64::from(value))
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Self::Signed(value)
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Self::Float(value)
    }
}

impl From<&HistogramSnapshot> for Value {
    fn from(snapshot: &HistogramSnapshot) -> Self {
        Self::Histogram(Buckets::from_nanos(snapshot))
    }
}

/// A histogram in seconds, as the encoders take it: per-bucket (not cumulative) counts by
/// upper bound, the last bound `+Inf`.
#[derive(Debug, Clone, PartialEq)]
struct Buckets {
    sum_seconds: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl Buckets {
    /// Converts a snapshot in nanoseconds to [`LE_NANOS`] buckets in seconds.
    fn from_nanos(snapshot: &HistogramSnapshot) -> Self {
        let mut buckets = Vec::with_capacity(LE_NANOS.len() + 1);
        let mut below = 0_u64;
        for bound in LE_NANOS {
            // `count_le` is monotonic and at most `count()`, so these never underflow and
            // the encoders' running sums end exactly at `count()`.
            let cumulative = snapshot.count_le(bound).max(below);
            buckets.push((bound as f64 / NANOS_PER_SECOND, cumulative - below));
            below = cumulative;
        }
        let count = snapshot.count().max(below);
        buckets.push((f64::INFINITY, count - below));
        Self {
            sum_seconds: snapshot.sum() as f64 / NANOS_PER_SECOND,
            count,
            buckets,
        }
    }
}

type Labels = Vec<(&'static str, String)>;

/// A label value and how to read its figure from a snapshot.
type Figure<T> = (&'static str, fn(&T) -> u64);

/// One metric family: its descriptor and every series.
#[derive(Debug)]
struct Family {
    /// The descriptor name: the exposed name without its unit and without the `_total` or
    /// `_info` the encoders append.
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    metric_type: MetricType,
    series: Vec<(Labels, Value)>,
}

impl Family {
    /// A family exposed (in Prometheus text) as `exposed`. A `_seconds` or `_bytes` suffix
    /// becomes the OpenMetrics unit.
    fn new(exposed: &'static str, help: &'static str, metric_type: MetricType) -> Self {
        let name = match metric_type {
            MetricType::Counter => exposed.strip_suffix("_total"),
            MetricType::Info => exposed.strip_suffix("_info"),
            _ => None,
        }
        .unwrap_or(exposed);
        let (name, unit) = if let Some(base) = name.strip_suffix("_seconds") {
            (base, Some(Unit::Seconds))
        } else if let Some(base) = name.strip_suffix("_bytes") {
            (base, Some(Unit::Bytes))
        } else {
            (name, None)
        };
        Self {
            name,
            help,
            unit,
            metric_type,
            series: Vec::new(),
        }
    }

    fn counter(exposed: &'static str, help: &'static str) -> Self {
        Self::new(exposed, help, MetricType::Counter)
    }

    fn gauge(exposed: &'static str, help: &'static str) -> Self {
        Self::new(exposed, help, MetricType::Gauge)
    }

    fn histogram(exposed: &'static str, help: &'static str) -> Self {
        Self::new(exposed, help, MetricType::Histogram)
    }

    /// Adds one series per item.
    fn series<I, V>(mut self, series: I) -> Self
    where
        I: IntoIterator<Item = (Labels, V)>,
        V: Into<Value>,
    {
        self.series.extend(
            series
                .into_iter()
                .map(|(labels, value)| (labels, value.into())),
        );
        self
    }

    /// Adds one unlabelled series when the value is known.
    fn single<V: Into<Value>>(self, value: Option<V>) -> Self {
        self.series(value.map(|value| (Labels::new(), value)))
    }

    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let mut metric = encoder.encode_descriptor(
            self.name,
            self.help,
            self.unit.as_ref(),
            self.metric_type,
        )?;
        for (labels, value) in &self.series {
            if matches!(value, Value::Info) {
                metric.encode_info(labels)?;
                continue;
            }
            let mut series = metric.encode_family(labels)?;
            let counter = self.metric_type == MetricType::Counter;
            match value {
                Value::Unsigned(value) if counter => {
                    series.encode_counter::<NoLabelSet, _, u64>(value, None)?;
                }
                Value::Float(value) if counter => {
                    series.encode_counter::<NoLabelSet, _, f64>(value, None)?;
                }
                Value::Unsigned(value) => series.encode_gauge(value)?,
                Value::Signed(value) => series.encode_gauge(value)?,
                Value::Float(value) => series.encode_gauge(value)?,
                Value::Histogram(histogram) => series.encode_histogram::<NoLabelSet>(
                    histogram.sum_seconds,
                    histogram.count,
                    &histogram.buckets,
                    None,
                )?,
                Value::Info => {}
            }
        }
        Ok(())
    }
}

/// Every family of one scrape, owned so that the registry can hold it.
#[derive(Debug)]
struct Families(Vec<Family>);

impl Families {
    fn of(exposition: &Exposition<'_>, process: &ProcessStats) -> Self {
        let mut families = Vec::with_capacity(64);
        families.extend(cache_families(exposition.caches));
        families.extend(pool_families(exposition.pools));
        families.extend(resource_families(exposition.kinds));
        families.push(
            Family::gauge(
                "resync_health_status",
                "Health of each component, and of the whole as component overall: 0 healthy, 1 degraded, 2 critical.",
            )
            .series(exposition.health.iter().map(|(component, status)| {
                (vec![("component", component.clone())], status.as_gauge())
            })),
        );
        let mut build = Family::new(
            "resync_build_info",
            "The Resync version serving these metrics; always 1.",
            MetricType::Info,
        );
        build.series.push((
            vec![("version", env!("CARGO_PKG_VERSION").to_owned())],
            Value::Info,
        ));
        families.push(build);
        families.extend(process_families(process));
        families.retain(|family| !family.series.is_empty());
        Self(families)
    }

    /// A guess of the encoded size, to allocate the output once.
    fn estimated_len(&self) -> usize {
        self.0
            .iter()
            .map(|family| {
                let lines: usize = family
                    .series
                    .iter()
                    .map(|(_, value)| match value {
                        Value::Histogram(histogram) => histogram.buckets.len() + 2,
                        _ => 1,
                    })
                    .sum();
                160 + 96 * lines
            })
            .sum()
    }
}

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        self.0
            .iter()
            .try_for_each(|family| family.encode(&mut encoder))
    }
}

/// One series per item, labelled with its name.
fn per_item<'a, T, V>(
    items: &'a [T],
    key: &'static str,
    name: fn(&T) -> &String,
    value: fn(&'a T) -> V,
) -> Vec<(Labels, V)> {
    items
        .iter()
        .map(|item| (vec![(key, name(item).clone())], value(item)))
        .collect()
}

/// One series per item and figure, labelled with the item's name and `label = figure`.
fn per_label<T>(
    items: &[T],
    key: &'static str,
    name: fn(&T) -> &String,
    label: &'static str,
    figures: &[Figure<T>],
) -> Vec<(Labels, u64)> {
    items
        .iter()
        .flat_map(|item| {
            figures.iter().map(move |&(figure, value)| {
                (
                    vec![(key, name(item).clone()), (label, figure.to_owned())],
                    value(item),
                )
            })
        })
        .collect()
}

fn cache_families(caches: &[CacheMetrics]) -> Vec<Family> {
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
    ]
}

fn pool_families(pools: &[PoolMetrics]) -> Vec<Family> {
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

fn resource_families(kinds: &[ResourceStats]) -> Vec<Family> {
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

fn process_families(process: &ProcessStats) -> Vec<Family> {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use resync_cache_core::Cache;
    use resync_perf_core::Histogram;
    use resync_pool_optimizer::{FnManager, MonitoredPool, PoolConfig};
    use resync_resource_manager::ResourceTracker;

    use super::*;

    /// One sample line: `name{labels} value`.
    #[derive(Debug, Clone, PartialEq)]
    struct Sample {
        name: String,
        labels: BTreeMap<String, String>,
        value: f64,
    }

    /// A parsed exposition.
    #[derive(Debug, Default)]
    struct Exposed {
        /// Family name (as in `# TYPE`) → type.
        types: BTreeMap<String, String>,
        samples: Vec<Sample>,
    }

    fn is_name(name: &str, colon: bool) -> bool {
        let mut chars = name.chars();
        chars.next().is_some_and(|first| {
            first.is_ascii_alphabetic() || first == '_' || (colon && first == ':')
        }) && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
    }

    fn parse_value(text: &str) -> f64 {
        match text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            _ => text
                .parse()
                .unwrap_or_else(|_| panic!("{text:?} is not a number")),
        }
    }

    /// Parses `name{key="value",…} value` (no timestamp), undoing the label escapes.
    fn parse_sample(line: &str) -> Sample {
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let name = &line[..name_end];
        assert!(is_name(name, true), "bad metric name in {line:?}");
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(after) = rest.strip_prefix('{') {
            let mut chars = after.char_indices();
            loop {
                let (start, first) = chars.next().expect("a label or `}`");
                if first == '}' {
                    rest = &after[start + 1..];
                    break;
                }
                let eq = after[start..].find('=').expect("`=` after a label name") + start;
                let key = &after[start..eq];
                assert!(is_name(key, false), "bad label name {key:?} in {line:?}");
                while chars.next().is_some_and(|(index, _)| index < eq) {}
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "quote in {line:?}");
                let mut value = String::new();
                loop {
                    match chars.next().expect("a closing quote").1 {
                        '"' => break,
                        '\\' => match chars.next().expect("an escaped character").1 {
                            'n' => value.push('\n'),
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            other => panic!("bad escape \\{other} in {line:?}"),
                        },
                        '\n' => panic!("raw newline in {line:?}"),
                        c => value.push(c),
                    }
                }
                assert!(
                    labels.insert(key.to_owned(), value).is_none(),
                    "label {key} twice in {line:?}"
                );
                match chars.next().expect("`,` or `}`") {
                    (_, ',') => {}
                    (index, '}') => {
                        rest = &after[index + 1..];
                        break;
                    }
                    (_, other) => panic!("unexpected {other:?} in {line:?}"),
                }
            }
        }
        let value = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("one space before the value in {line:?}"));
        assert!(!value.contains(' '), "a timestamp or garbage in {line:?}");
        Sample {
            name: name.to_owned(),
            labels,
            value: parse_value(value),
        }
    }

    /// Parses an exposition, checking its structure: every line a `# HELP`, `# TYPE`,
    /// (OpenMetrics) `# UNIT` or a sample; one HELP then one TYPE per family; each sample
    /// right after its family's TYPE and named as its type requires; OpenMetrics ends in
    /// `# EOF`.
    fn parse(text: &str, format: TextFormat) -> Exposed {
        let mut exposed = Exposed::default();
        let mut helped = Vec::<String>::new();
        let mut current: Option<(String, String)> = None;
        let mut eof = false;
        assert!(text.ends_with('\n'), "the exposition ends with a newline");
        for line in text.lines() {
            assert!(!eof, "{line:?} after # EOF");
            if format == TextFormat::OpenMetrics && line == "# EOF" {
                eof = true;
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("HELP has a text");
                assert!(!help.is_empty(), "{name} has an empty help");
                assert!(!helped.contains(&name.to_owned()), "second HELP for {name}");
                helped.push(name.to_owned());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE has a type");
                assert!(is_name(name, true), "bad family name {name:?}");
                assert_eq!(
                    helped.last().map(String::as_str),
                    Some(name),
                    "HELP before TYPE"
                );
                let previous = exposed.types.insert(name.to_owned(), kind.to_owned());
                assert!(previous.is_none(), "second TYPE for {name}");
                current = Some((name.to_owned(), kind.to_owned()));
            } else if let Some(rest) = line.strip_prefix("# UNIT ") {
                assert_eq!(format, TextFormat::OpenMetrics, "UNIT in Prometheus text");
                let (name, unit) = rest.split_once(' ').expect("UNIT has a unit");
                let (family, _) = current.as_ref().expect("UNIT after TYPE");
                assert_eq!(name, family, "UNIT of the current family");
                assert!(
                    name.ends_with(&format!("_{unit}")),
                    "{name} ends in its unit"
                );
            } else {
                assert!(!line.starts_with('#'), "unexpected comment {line:?}");
                let sample = parse_sample(line);
                let (family, kind) = current
                    .as_ref()
                    .unwrap_or_else(|| panic!("{line:?} before any TYPE"));
                let suffixes: &[&str] = match (kind.as_str(), format) {
                    ("histogram", _) => &["_bucket", "_sum", "_count"],
                    ("counter", TextFormat::OpenMetrics) => &["_total"],
                    ("info", TextFormat::OpenMetrics) => &["_info"],
                    _ => &[""],
                };
                assert!(
                    suffixes
                        .iter()
                        .any(|suffix| sample.name == format!("{family}{suffix}")),
                    "{} is not a sample of the family {family} ({kind}) it follows",
                    sample.name
                );
                exposed.samples.push(sample);
            }
        }
        assert_eq!(
            eof,
            format == TextFormat::OpenMetrics,
            "# EOF iff OpenMetrics"
        );
        exposed
    }

    impl Exposed {
        /// The value of the one sample named `name` with exactly these labels.
        fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
            let found: Vec<&Sample> = self
                .samples
                .iter()
                .filter(|sample| {
                    sample.name == name
                        && sample.labels.len() == labels.len()
                        && labels.iter().all(|(key, value)| {
                            sample.labels.get(*key).map(String::as_str) == Some(value)
                        })
                })
                .collect();
            assert_eq!(
                found.len(),
                1,
                "one sample {name}{labels:?}, found {found:?}"
            );
            found[0].value
        }

        /// Samples keyed by name and labels, bounds normalised, to compare two formats.
        fn keyed(&self) -> BTreeMap<String, f64> {
            let keyed: BTreeMap<String, f64> = self
                .samples
                .iter()
                .map(|sample| {
                    let mut labels = sample.labels.clone();
                    if let Some(le) = labels.get_mut("le") {
                        *le = format!("{:?}", parse_value(le));
                    }
                    (format!("{}{labels:?}", sample.name), sample.value)
                })
                .collect();
            assert_eq!(keyed.len(), self.samples.len(), "no duplicate series");
            keyed
        }

        /// Checks every histogram: `le` ascending up to `+Inf`, cumulative counts that never
        /// decrease, `+Inf` equal to `_count`, and a `_sum`.
        fn check_histograms(&self) -> usize {
            let mut checked = 0;
            for (family, _) in self.types.iter().filter(|(_, kind)| *kind == "histogram") {
                // (le, cumulative count) of each series, by its other labels.
                let mut series: BTreeMap<Vec<(String, String)>, Bounds> = BTreeMap::new();
                for sample in self
                    .samples
                    .iter()
                    .filter(|s| s.name == format!("{family}_bucket"))
                {
                    let mut labels = sample.labels.clone();
                    let le = parse_value(&labels.remove("le").expect("a bucket has le"));
                    series
                        .entry(labels.into_iter().collect())
                        .or_default()
                        .push((le, sample.value));
                }
                assert!(!series.is_empty(), "{family} has buckets");
                for (labels, buckets) in series {
                    let labels: Vec<(&str, &str)> = labels
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    assert!(
                        buckets
                            .windows(2)
                            .all(|pair| pair[0].0 < pair[1].0 && pair[0].1 <= pair[1].1),
                        "{family}{labels:?}: bounds ascend and counts accumulate: {buckets:?}"
                    );
                    let (last_le, inf) = *buckets.last().expect("at least +Inf");
                    assert_eq!(last_le, f64::INFINITY, "{family}{labels:?} ends at +Inf");
                    assert_eq!(inf, self.value(&format!("{family}_count"), &labels));
                    let sum = self.value(&format!("{family}_sum"), &labels);
                    assert!(sum >= 0.0 && sum.is_finite());
                    checked += 1;
                }
            }
            checked
        }
    }

    /// A histogram series' `(le, cumulative count)` pairs.
    type Bounds = Vec<(f64, f64)>;

    /// A series (name, labels) and the value it must show.
    type Row<'a> = (&'a str, Vec<(&'a str, &'a str)>, f64);
    type FixedRow<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0)
    }

    /// Every family of the contract, as exposed in Prometheus text, with its type.
    const FAMILIES: [(&str, &str); 37] = [
        ("resync_cache_requests_total", "counter"),
        ("resync_cache_evictions_total", "counter"),
        ("resync_cache_inserts_total", "counter"),
        ("resync_cache_invalidations_total", "counter"),
        ("resync_cache_loads_total", "counter"),
        ("resync_cache_load_seconds", "histogram"),
        ("resync_cache_entries", "gauge"),
        ("resync_cache_max_entries", "gauge"),
        ("resync_cache_bytes", "gauge"),
        ("resync_cache_max_bytes", "gauge"),
        ("resync_pool_connections", "gauge"),
        ("resync_pool_waiting", "gauge"),
        ("resync_pool_acquires_total", "counter"),
        ("resync_pool_timeouts_total", "counter"),
        ("resync_pool_exhaustions_total", "counter"),
        ("resync_pool_unavailable_total", "counter"),
        ("resync_pool_errors_total", "counter"),
        ("resync_pool_connect_timeouts_total", "counter"),
        ("resync_pool_connections_created_total", "counter"),
        ("resync_pool_connections_closed_total", "counter"),
        ("resync_pool_acquire_seconds", "histogram"),
        ("resync_pool_hold_seconds", "histogram"),
        ("resync_pool_connect_seconds", "histogram"),
        ("resync_resources_active", "gauge"),
        ("resync_resources_leaked", "gauge"),
        ("resync_resources_leaks_total", "counter"),
        ("resync_resources_created_total", "counter"),
        ("resync_resources_released_total", "counter"),
        ("resync_resources_released_without_close_total", "counter"),
        ("resync_health_status", "gauge"),
        ("resync_build_info", "gauge"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_virtual_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
        ("process_cpu_seconds_total", "counter"),
        ("process_start_time_seconds", "gauge"),
    ];

    const PROCESS: ProcessStats = ProcessStats {
        resident_memory_bytes: Some(12_345_678),
        virtual_memory_bytes: Some(987_654_321),
        open_fds: Some(17),
        max_fds: Some(1024),
        cpu_seconds: Some(1.25),
        start_time_seconds: Some(1_700_000_000.5),
    };

    /// The weird cache name: every character the text format must escape.
    const WEIRD: &str = "we\"ird\\na\nme";

    struct Scenario {
        caches: Vec<CacheMetrics>,
        pools: Vec<PoolMetrics>,
        kinds: Vec<ResourceStats>,
        health: Vec<(String, HealthStatus)>,
    }

    impl Scenario {
        fn exposition(&self) -> Exposition<'_> {
            Exposition {
                caches: &self.caches,
                pools: &self.pools,
                kinds: &self.kinds,
                health: &self.health,
            }
        }
    }

    /// Real components with some traffic, and their snapshots.
    async fn scenario() -> Scenario {
        let tracker = ResourceTracker::new();

        let cache: Cache<u64, String> = Cache::builder()
            .name("responses")
            .max_entries(100)
            .max_memory_bytes(1 << 20)
            .build()
            .expect("valid cache settings");
        assert_eq!(cache.get(&1).await, None);
        cache.insert(1, "one".to_owned()).await.expect("fits");
        assert_eq!(cache.get(&1).await.as_deref(), Some("one"));
        cache.insert(1, "uno".to_owned()).await.expect("fits");
        assert_eq!(cache.get_with(2, async { "two".to_owned() }).await, "two");
        let failed = cache
            .try_get_with(3, async {
                Err::<String, _>(std::io::Error::other("backend down"))
            })
            .await;
        assert!(failed.is_err());
        cache.invalidate(&2).await;
        let responses = cache.settled_metrics().await;
        assert_eq!(
            (
                responses.hits,
                responses.misses,
                responses.loads_ok,
                responses.loads_failed
            ),
            (1, 3, 1, 1),
            "the scenario's traffic"
        );

        let weird: Cache<u64, u64> = Cache::builder()
            .name(WEIRD)
            .max_entries(10)
            .max_memory_bytes(1 << 16)
            .build()
            .expect("valid cache settings");
        weird.insert(7, 7).await.expect("fits");
        let weird = weird.settled_metrics().await;

        let manager = FnManager::new(|| async { Ok::<_, std::io::Error>(String::from("conn")) });
        let config = PoolConfig {
            min_size: 0,
            max_size: 3,
            ..PoolConfig::default()
        };
        let pool = MonitoredPool::new("strings", config, manager, &tracker).expect("valid pool");
        let held = pool.get().await.expect("a connection");
        {
            let mut broken = pool.get().await.expect("a second connection");
            broken.report_error();
        }
        drop(pool.get().await.expect("a connection again"));
        let pool_metrics = pool.metrics();
        assert_eq!(pool_metrics.acquires, 3);
        assert_eq!(pool_metrics.in_use, 1);
        assert_eq!(pool_metrics.caller_errors, 1);
        drop(held);

        let job = tracker.track("export_job", "nightly export");
        drop(tracker.track("export_job", "done"));
        let kinds = tracker.stats();
        drop(job);
        assert!(
            kinds.len() >= 2,
            "the pool's kind and export_job: {kinds:?}"
        );

        Scenario {
            caches: vec![responses, weird],
            pools: vec![pool_metrics],
            kinds,
            health: vec![
                ("cache:responses".to_owned(), HealthStatus::Healthy),
                ("pool:strings".to_owned(), HealthStatus::Degraded),
                ("overall".to_owned(), HealthStatus::Critical),
            ],
        }
    }

    #[tokio::test]
    async fn real_snapshots_render_in_both_formats_with_their_figures() {
        let scenario = scenario().await;
        let exposition = scenario.exposition();
        let text = render_with(&exposition, &PROCESS, TextFormat::Prometheus);
        let openmetrics = render_with(&exposition, &PROCESS, TextFormat::OpenMetrics);
        let exposed = parse(&text, TextFormat::Prometheus);
        let open = parse(&openmetrics, TextFormat::OpenMetrics);

        // The same series and values in both formats, and well-formed histograms.
        assert_eq!(exposed.keyed(), open.keyed());
        // Two caches' load times, three pool histograms.
        assert_eq!(exposed.check_histograms(), 5);
        assert_eq!(open.check_histograms(), 5);
        assert!(openmetrics.ends_with("# EOF\n"));

        // Exactly the families of the contract, with their types.
        let expected: BTreeMap<String, String> = FAMILIES
            .iter()
            .map(|(name, kind)| ((*name).to_owned(), (*kind).to_owned()))
            .collect();
        assert_eq!(exposed.types, expected);
        // OpenMetrics names counters without `_total`, with units, and has an info type.
        for line in [
            "# TYPE resync_cache_requests counter",
            "# TYPE resync_pool_acquire_seconds histogram",
            "# UNIT resync_pool_acquire_seconds seconds",
            "# UNIT resync_cache_bytes bytes",
            "# TYPE resync_build info",
            "# TYPE process_cpu_seconds counter",
        ] {
            assert!(
                openmetrics.lines().any(|l| l == line),
                "{line:?} in OpenMetrics"
            );
        }

        // Every series but the buckets (checked above), with the figure it must show.
        let f = |value: u64| value as f64;
        let seconds = |snapshot: &HistogramSnapshot| snapshot.sum() as f64 / 1e9;
        let mut expected: Vec<Row<'_>> = Vec::new();
        for cache in &scenario.caches {
            let (c, load) = (cache.name.as_str(), cache.load_time_snapshot());
            let by = |key, value| vec![("cache", c), (key, value)];
            #[rustfmt::skip]
            let rows = [
                ("resync_cache_requests_total", by("result", "hit"), f(cache.hits)),
                ("resync_cache_requests_total", by("result", "miss"), f(cache.misses)),
                ("resync_cache_evictions_total", by("cause", "size"), f(cache.evictions.size)),
                ("resync_cache_evictions_total", by("cause", "expired"), f(cache.evictions.expired)),
                ("resync_cache_evictions_total", by("cause", "explicit"), f(cache.evictions.explicit)),
                ("resync_cache_evictions_total", by("cause", "replaced"), f(cache.evictions.replaced)),
                ("resync_cache_loads_total", by("result", "ok"), f(cache.loads_ok)),
                ("resync_cache_loads_total", by("result", "failed"), f(cache.loads_failed)),
                ("resync_cache_inserts_total", vec![("cache", c)], f(cache.inserts)),
                ("resync_cache_invalidations_total", vec![("cache", c)], f(cache.invalidations)),
                ("resync_cache_entries", vec![("cache", c)], f(cache.entries)),
                ("resync_cache_max_entries", vec![("cache", c)], f(cache.max_entries)),
                ("resync_cache_bytes", vec![("cache", c)], f(cache.weighted_bytes)),
                ("resync_cache_max_bytes", vec![("cache", c)], f(cache.max_memory_bytes)),
                ("resync_cache_load_seconds_count", vec![("cache", c)], f(load.count())),
                ("resync_cache_load_seconds_sum", vec![("cache", c)], seconds(load)),
            ];
            expected.extend(rows);
        }
        for pool in &scenario.pools {
            let p = pool.name.as_str();
            let by = |key, value| vec![("pool", p), (key, value)];
            let closed = "resync_pool_connections_closed_total";
            #[rustfmt::skip]
            let rows = [
                ("resync_pool_connections", by("state", "idle"), f(pool.idle.into())),
                ("resync_pool_connections", by("state", "in_use"), f(pool.in_use)),
                ("resync_pool_connections", by("state", "open"), f(pool.connections.into())),
                ("resync_pool_connections", by("state", "max"), f(pool.max_size.into())),
                ("resync_pool_acquires_total", by("path", "direct"), f(pool.acquires_direct)),
                ("resync_pool_acquires_total", by("path", "waited"), f(pool.acquires_waited)),
                ("resync_pool_errors_total", by("kind", "connect"), f(pool.connect_failures)),
                ("resync_pool_errors_total", by("kind", "broken"), f(pool.broken)),
                ("resync_pool_errors_total", by("kind", "caller"), f(pool.caller_errors)),
                (closed, by("reason", "broken"), f(pool.closed_broken)),
                (closed, by("reason", "invalid"), f(pool.closed_invalid)),
                (closed, by("reason", "max_lifetime"), f(pool.closed_max_lifetime)),
                (closed, by("reason", "idle_timeout"), f(pool.closed_idle_timeout)),
                ("resync_pool_waiting", vec![("pool", p)], f(pool.waiting)),
                ("resync_pool_timeouts_total", vec![("pool", p)], f(pool.exhaustions)),
                ("resync_pool_exhaustions_total", vec![("pool", p)], f(pool.exhaustions)),
                ("resync_pool_unavailable_total", vec![("pool", p)], f(pool.unavailable)),
                ("resync_pool_connect_timeouts_total", vec![("pool", p)], f(pool.connect_timeouts)),
                ("resync_pool_connections_created_total", vec![("pool", p)], f(pool.created)),
                ("resync_pool_acquire_seconds_count", vec![("pool", p)], f(pool.acquire_latency.count())),
                ("resync_pool_acquire_seconds_sum", vec![("pool", p)], seconds(&pool.acquire_latency)),
                ("resync_pool_hold_seconds_count", vec![("pool", p)], f(pool.hold_time.count())),
                ("resync_pool_hold_seconds_sum", vec![("pool", p)], seconds(&pool.hold_time)),
                ("resync_pool_connect_seconds_count", vec![("pool", p)], f(pool.connect_latency.count())),
                ("resync_pool_connect_seconds_sum", vec![("pool", p)], seconds(&pool.connect_latency)),
            ];
            expected.extend(rows);
        }
        for kind in &scenario.kinds {
            let k = || vec![("kind", kind.kind.as_str())];
            #[rustfmt::skip]
            let rows = [
                ("resync_resources_active", k(), f(kind.active)),
                ("resync_resources_leaked", k(), f(kind.leaked_now)),
                ("resync_resources_leaks_total", k(), f(kind.leaked_total)),
                ("resync_resources_created_total", k(), f(kind.created)),
                ("resync_resources_released_total", k(), f(kind.released)),
                ("resync_resources_released_without_close_total", k(), f(kind.released_without_close)),
            ];
            expected.extend(rows);
        }
        let status = |component| vec![("component", component)];
        #[rustfmt::skip]
        let rows = [
            ("resync_health_status", status("cache:responses"), 0.0),
            ("resync_health_status", status("pool:strings"), 1.0),
            ("resync_health_status", status("overall"), 2.0),
            ("resync_build_info", vec![("version", env!("CARGO_PKG_VERSION"))], 1.0),
            ("process_resident_memory_bytes", vec![], 12_345_678.0),
            ("process_virtual_memory_bytes", vec![], 987_654_321.0),
            ("process_open_fds", vec![], 17.0),
            ("process_max_fds", vec![], 1024.0),
            ("process_cpu_seconds_total", vec![], 1.25),
            ("process_start_time_seconds", vec![], 1_700_000_000.5),
        ];
        expected.extend(rows);
        for (metric, labels, value) in &expected {
            let shown = exposed.value(metric, labels);
            assert!(
                close(shown, *value),
                "{metric}{labels:?}: {shown} != {value}"
            );
        }
        // Nothing else is exposed but the buckets.
        let others = exposed
            .samples
            .iter()
            .filter(|sample| !sample.name.ends_with("_bucket"))
            .count();
        assert_eq!(others, expected.len());

        // Figures the scenario fixed, to be sure the snapshots are not all zeros.
        let (responses, strings, jobs) = ("responses", "strings", "export_job");
        #[rustfmt::skip]
        let fixed: [FixedRow<'_>; 13] = [
            ("resync_cache_requests_total", &[("cache", responses), ("result", "hit")], 1.0),
            ("resync_cache_requests_total", &[("cache", responses), ("result", "miss")], 3.0),
            ("resync_cache_loads_total", &[("cache", responses), ("result", "failed")], 1.0),
            ("resync_cache_load_seconds_count", &[("cache", responses)], 2.0),
            ("resync_cache_evictions_total", &[("cache", responses), ("cause", "replaced")], 1.0),
            ("resync_cache_evictions_total", &[("cache", responses), ("cause", "explicit")], 1.0),
            ("resync_cache_entries", &[("cache", WEIRD)], 1.0),
            ("resync_pool_connections", &[("pool", strings), ("state", "max")], 3.0),
            ("resync_pool_connections", &[("pool", strings), ("state", "in_use")], 1.0),
            ("resync_pool_errors_total", &[("pool", strings), ("kind", "caller")], 1.0),
            ("resync_pool_acquire_seconds_count", &[("pool", strings)], 3.0),
            ("resync_resources_active", &[("kind", jobs)], 1.0),
            ("resync_resources_created_total", &[("kind", jobs)], 2.0),
        ];
        for (metric, labels, value) in fixed {
            assert_eq!(exposed.value(metric, labels), value, "{metric}{labels:?}");
        }
    }

    #[tokio::test]
    async fn histogram_buckets_are_cumulative_seconds_at_fixed_bounds() {
        let histogram = Histogram::new();
        for nanos in [0, 500, 2_000_000, 3_000_000_000, 100_000_000_000] {
            histogram.record(nanos);
        }
        let snapshot = histogram.snapshot();
        let Value::Histogram(buckets) = Value::from(&snapshot) else {
            panic!("a snapshot converts to a histogram");
        };
        assert_eq!(buckets.count, 5);
        assert!(close(buckets.sum_seconds, 103.002_000_5));
        assert_eq!(buckets.buckets.len(), LE_NANOS.len() + 1);
        let cumulative: Vec<(f64, u64)> = buckets
            .buckets
            .iter()
            .scan(0, |total, &(le, count)| {
                *total += count;
                Some((le, *total))
            })
            .collect();
        let at = |le: f64| {
            cumulative
                .iter()
                .find(|(bound, _)| *bound == le)
                .map(|&(_, count)| count)
        };
        assert_eq!(at(1e-6), Some(2));
        assert_eq!(at(0.001), Some(2));
        assert_eq!(at(0.0025), Some(3));
        assert_eq!(at(2.5), Some(3));
        assert_eq!(at(5.0), Some(4));
        assert_eq!(at(60.0), Some(4));
        assert_eq!(at(f64::INFINITY), Some(5));

        // The same through a real pool's snapshot, as the text shows it.
        let tracker = ResourceTracker::new();
        let manager = FnManager::new(|| async { Ok::<_, std::io::Error>(0_u8) });
        let config = PoolConfig {
            min_size: 0,
            max_size: 1,
            ..PoolConfig::default()
        };
        let pool = MonitoredPool::new("p", config, manager, &tracker).expect("valid pool");
        let mut metrics = pool.metrics();
        metrics.acquire_latency = snapshot;
        let pools = [metrics];
        let exposition = Exposition {
            caches: &[],
            pools: &pools,
            kinds: &[],
            health: &[],
        };
        let text = render_with(
            &exposition,
            &ProcessStats::default(),
            TextFormat::Prometheus,
        );
        for line in [
            "resync_pool_acquire_seconds_bucket{pool=\"p\",le=\"1e-06\"} 2",
            "resync_pool_acquire_seconds_bucket{pool=\"p\",le=\"0.0025\"} 3",
            "resync_pool_acquire_seconds_bucket{pool=\"p\",le=\"5\"} 4",
            "resync_pool_acquire_seconds_bucket{pool=\"p\",le=\"60\"} 4",
            "resync_pool_acquire_seconds_bucket{pool=\"p\",le=\"+Inf\"} 5",
            "resync_pool_acquire_seconds_sum{pool=\"p\"} 103.0020005",
            "resync_pool_acquire_seconds_count{pool=\"p\"} 5",
            // An empty histogram still has every bucket, at 0.
            "resync_pool_hold_seconds_bucket{pool=\"p\",le=\"+Inf\"} 0",
            "resync_pool_hold_seconds_count{pool=\"p\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
        let exposed = parse(&text, TextFormat::Prometheus);
        assert_eq!(exposed.check_histograms(), 3);
    }

    #[test]
    fn an_empty_exposition_has_only_the_build_info() {
        let exposition = Exposition {
            caches: &[],
            pools: &[],
            kinds: &[],
            health: &[],
        };
        let version = env!("CARGO_PKG_VERSION");
        let text = render_with(
            &exposition,
            &ProcessStats::default(),
            TextFormat::Prometheus,
        );
        assert_eq!(
            text,
            format!(
                "# HELP resync_build_info The Resync version serving these metrics; always 1.\n\
                 # TYPE resync_build_info gauge\n\
                 resync_build_info{{version=\"{version}\"}} 1\n"
            )
        );
        let open = render_with(
            &exposition,
            &ProcessStats::default(),
            TextFormat::OpenMetrics,
        );
        assert_eq!(
            open,
            format!(
                "# HELP resync_build The Resync version serving these metrics; always 1.\n\
                 # TYPE resync_build info\n\
                 resync_build_info{{version=\"{version}\"}} 1\n\
                 # EOF\n"
            )
        );
    }

    #[test]
    fn render_reads_this_process() {
        let exposition = Exposition {
            caches: &[],
            pools: &[],
            kinds: &[],
            health: &[],
        };
        let exposed = parse(
            &render(&exposition, TextFormat::Prometheus),
            TextFormat::Prometheus,
        );
        if cfg!(target_os = "linux") {
            assert!(exposed.value("process_resident_memory_bytes", &[]) > 0.0);
            assert!(exposed.value("process_open_fds", &[]) > 0.0);
            assert!(exposed.value("process_start_time_seconds", &[]) > 1e9);
        }
    }

    #[test]
    fn negotiation_follows_the_accept_header() {
        let negotiate = |accept: &str| {
            TextFormat::negotiate(Some(
                &HeaderValue::from_str(accept).expect("a header value"),
            ))
        };
        assert_eq!(TextFormat::negotiate(None), TextFormat::Prometheus);
        // What Prometheus 2 and 3 send.
        assert_eq!(
            negotiate(
                "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;\
                 version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
            ),
            TextFormat::OpenMetrics
        );
        assert_eq!(
            negotiate(
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,\
                 application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;\
                 escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
            ),
            TextFormat::OpenMetrics
        );
        assert_eq!(
            negotiate("Application/OpenMetrics-Text"),
            TextFormat::OpenMetrics
        );
        assert_eq!(negotiate("text/plain"), TextFormat::Prometheus);
        assert_eq!(negotiate("*/*"), TextFormat::Prometheus);
        assert_eq!(negotiate("application/json"), TextFormat::Prometheus);
        assert_eq!(
            negotiate("application/openmetrics-text; q=0"),
            TextFormat::Prometheus
        );
        assert_eq!(
            negotiate("application/openmetrics-text;q=NaN"),
            TextFormat::Prometheus
        );
        assert_eq!(
            negotiate("text/plain;q=0.9, application/openmetrics-text;q=0.5"),
            TextFormat::Prometheus
        );
        assert_eq!(
            negotiate("text/plain;q=0.5, application/openmetrics-text ; Q=0.9"),
            TextFormat::OpenMetrics
        );
        let opaque = HeaderValue::from_bytes(b"application/openmetrics-text\xff").expect("opaque");
        assert_eq!(TextFormat::negotiate(Some(&opaque)), TextFormat::Prometheus);

        assert_eq!(
            TextFormat::Prometheus.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(
            TextFormat::OpenMetrics.content_type(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
    }
}
