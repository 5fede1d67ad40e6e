//! The exposition parsed back: names, types, labels, values and bucket order.
use std::collections::BTreeMap;

use resync_cache_core::Cache;
use resync_perf_core::Histogram;
use resync_pool_optimizer::{FnManager, MonitoredPool, PoolConfig};
use resync_resource_manager::ResourceTracker;

use resync_perf_core::HistogramSnapshot;

use crate::gateway::{
    CacheOutcome, GatewayExchange, GatewayStats, L2Lease, L2Lookup, L2Metrics, L2Op, L2Stats,
    MethodLabel, StatusClass, UpstreamOutcome,
};

use super::family::Value;
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
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || (colon && first == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
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
const FAMILIES: [(&str, &str); 52] = [
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
    ("resync_cache_skipped_gets_total", "counter"),
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
    ("resync_gateway_requests_total", "counter"),
    ("resync_gateway_upstream_requests_total", "counter"),
    ("resync_gateway_bytes_total", "counter"),
    ("resync_gateway_request_duration_seconds", "histogram"),
    ("resync_gateway_upstream_duration_seconds", "histogram"),
    ("resync_gateway_l2_lookups_total", "counter"),
    ("resync_gateway_l2_stores_total", "counter"),
    ("resync_gateway_l2_lookup_duration_seconds", "histogram"),
    ("resync_gateway_l2_store_duration_seconds", "histogram"),
    ("resync_gateway_l2_leases_total", "counter"),
    ("resync_gateway_l2_invalidations_total", "counter"),
    ("resync_gateway_l1_flushes_total", "counter"),
    ("resync_gateway_l2_errors_total", "counter"),
    ("resync_gateway_l2_available", "gauge"),
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
    gateway: GatewayMetrics,
    gateway_l2: L2Metrics,
    health: Vec<(String, HealthStatus)>,
}

impl Scenario {
    fn exposition(&self) -> Exposition<'_> {
        Exposition {
            caches: &self.caches,
            pools: &self.pools,
            kinds: &self.kinds,
            gateway: Some(&self.gateway),
            gateway_l2: Some(&self.gateway_l2),
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

    // A small cache whose advisor replays its first window of sampled events and skips the
    // next ones: its curve counts the sampled gets not replayed.
    let sampled: Cache<u64, u64> = Cache::builder()
        .name("sampled")
        .max_entries(100)
        .max_memory_bytes(1 << 20)
        .build()
        .expect("valid cache settings");
    for i in 0..20_000_u64 {
        let key = i % 300;
        if sampled.get(&key).await.is_none() {
            sampled.insert(key, i).await.expect("fits");
        }
    }
    let sampled = sampled.settled_metrics().await;
    let skipped = sampled.curve.as_ref().map(|curve| curve.skipped_gets);
    assert!(
        skipped.is_some_and(|skipped| skipped > 0),
        "a curve with skipped gets: {:?}",
        sampled.curve
    );

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

    // The gateway: a miss, two hits, a stale answer, a timed-out PUT and a DELETE.
    let gateway = GatewayStats::new();
    let put = axum::http::Method::PUT;
    let delete = axum::http::Method::DELETE;
    let millis = std::time::Duration::from_millis;
    let exchanges = [
        (
            &axum::http::Method::GET,
            200,
            CacheOutcome::Miss,
            Some((millis(30), UpstreamOutcome::Answered(200))),
            1_000,
        ),
        (
            &axum::http::Method::GET,
            200,
            CacheOutcome::Hit,
            None,
            1_000,
        ),
        (&axum::http::Method::HEAD, 200, CacheOutcome::Hit, None, 0),
        (
            &axum::http::Method::GET,
            200,
            CacheOutcome::Stale,
            Some((millis(5), UpstreamOutcome::Unreachable)),
            900,
        ),
        (
            &put,
            504,
            CacheOutcome::Bypass,
            Some((millis(3_000), UpstreamOutcome::TimedOut)),
            60,
        ),
        (
            &delete,
            204,
            CacheOutcome::Bypass,
            Some((millis(20), UpstreamOutcome::Answered(204))),
            0,
        ),
    ];
    for (method, status, cache, upstream, body_bytes) in exchanges {
        gateway.record(&GatewayExchange {
            method,
            status,
            cache,
            latency: millis(2),
            upstream,
            body_bytes,
        });
    }

    // The gateway's L2: three hits, a miss, a failed lookup, two stores (one failed), one
    // lease of each outcome, invalidations both ways, a flush, and the subscriber down.
    let l2 = L2Stats::new();
    for outcome in [
        L2Lookup::Hit,
        L2Lookup::Hit,
        L2Lookup::Hit,
        L2Lookup::Miss,
        L2Lookup::Error,
    ] {
        l2.record_lookup(outcome, Some(millis(1)));
    }
    l2.record_lookup(L2Lookup::Skipped, None);
    l2.record_store(true, millis(2));
    l2.record_store(false, millis(2));
    for lease in L2Lease::ALL {
        l2.record_lease(lease);
    }
    l2.record_invalidation_sent();
    l2.record_invalidation_received();
    l2.record_invalidation_received();
    l2.record_l1_flush();
    l2.record_error(L2Op::Store, "READONLY");
    l2.set_available(false, Some("the subscriber is reconnecting"));

    Scenario {
        caches: vec![responses, weird, sampled],
        pools: vec![pool_metrics],
        kinds,
        gateway: gateway.metrics(),
        gateway_l2: l2.metrics(),
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
    // Three caches' load times, three pool histograms, two gateway and two L2 histograms.
    assert_eq!(exposed.check_histograms(), 10);
    assert_eq!(open.check_histograms(), 10);
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
        "# TYPE resync_gateway_bytes counter",
        "# UNIT resync_gateway_bytes bytes",
        "# UNIT resync_gateway_request_duration_seconds seconds",
        "# TYPE resync_gateway_l1_flushes counter",
        "# TYPE resync_gateway_l2_lookups counter",
        "# UNIT resync_gateway_l2_lookup_duration_seconds seconds",
        "# TYPE resync_gateway_l2_available gauge",
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
        // Only a cache with a miss-ratio curve has skipped gets to show.
        if let Some(curve) = &cache.curve {
            expected.push((
                "resync_cache_skipped_gets_total",
                vec![("cache", c)],
                f(curve.skipped_gets),
            ));
        }
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
    let gateway = &scenario.gateway;
    for row in gateway.request_counts() {
        let labels = vec![
            ("method", row.method.as_str()),
            ("status_class", row.status_class.as_str()),
            ("cache", row.cache.as_str()),
        ];
        expected.push(("resync_gateway_requests_total", labels, f(row.count)));
    }
    for (outcome, count) in gateway.upstream.by_label() {
        expected.push((
            "resync_gateway_upstream_requests_total",
            vec![("outcome", outcome)],
            f(count),
        ));
    }
    let (requests, upstream) = (&gateway.request_latency, &gateway.upstream_latency);
    #[rustfmt::skip]
    let rows = [
        ("resync_gateway_bytes_total", vec![("source", "cache")], f(gateway.bytes_from_cache)),
        ("resync_gateway_bytes_total", vec![("source", "upstream")], f(gateway.bytes_from_upstream)),
        ("resync_gateway_request_duration_seconds_count", vec![], f(requests.count())),
        ("resync_gateway_request_duration_seconds_sum", vec![], seconds(requests)),
        ("resync_gateway_upstream_duration_seconds_count", vec![], f(upstream.count())),
        ("resync_gateway_upstream_duration_seconds_sum", vec![], seconds(upstream)),
    ];
    expected.extend(rows);
    let l2 = &scenario.gateway_l2;
    let labelled = |name, key, rows: &[(&'static str, u64)]| -> Vec<Row<'static>> {
        rows.iter()
            .map(|&(value, count)| (name, vec![(key, value)], f(count)))
            .collect()
    };
    expected.extend(labelled(
        "resync_gateway_l2_lookups_total",
        "result",
        &l2.lookups.by_label(),
    ));
    expected.extend(labelled(
        "resync_gateway_l2_stores_total",
        "result",
        &[("stored", l2.stores.stored), ("error", l2.stores.error)],
    ));
    expected.extend(labelled(
        "resync_gateway_l2_leases_total",
        "outcome",
        &l2.leases.by_label(),
    ));
    expected.extend(labelled(
        "resync_gateway_l2_invalidations_total",
        "direction",
        &[
            ("sent", l2.invalidations.sent),
            ("received", l2.invalidations.received),
        ],
    ));
    expected.extend(labelled(
        "resync_gateway_l2_errors_total",
        "op",
        &l2.errors.by_label(),
    ));
    let (lookups, stores) = (&l2.lookup_latency, &l2.store_latency);
    #[rustfmt::skip]
    let rows = [
        ("resync_gateway_l1_flushes_total", vec![], f(l2.l1_flushes)),
        ("resync_gateway_l2_available", vec![], f(u64::from(l2.available))),
        ("resync_gateway_l2_lookup_duration_seconds_count", vec![], f(lookups.count())),
        ("resync_gateway_l2_lookup_duration_seconds_sum", vec![], seconds(lookups)),
        ("resync_gateway_l2_store_duration_seconds_count", vec![], f(stores.count())),
        ("resync_gateway_l2_store_duration_seconds_sum", vec![], seconds(stores)),
    ];
    expected.extend(rows);
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
    let requests = "resync_gateway_requests_total";
    let upstream = "resync_gateway_upstream_requests_total";
    let by = |method, class, cache| {
        [
            ("method", method),
            ("status_class", class),
            ("cache", cache),
        ]
    };
    #[rustfmt::skip]
    let fixed: [FixedRow<'_>; 15] = [
        (requests, &by("GET", "2xx", "miss"), 1.0),
        (requests, &by("GET", "2xx", "hit"), 1.0),
        (requests, &by("HEAD", "2xx", "hit"), 1.0),
        (requests, &by("GET", "2xx", "stale"), 1.0),
        (requests, &by("PUT", "5xx", "bypass"), 1.0),
        (requests, &by("DELETE", "2xx", "bypass"), 1.0),
        (requests, &by("OTHER", "1xx", "bypass"), 0.0),
        (upstream, &[("outcome", "answered_2xx")], 2.0),
        (upstream, &[("outcome", "unreachable")], 1.0),
        (upstream, &[("outcome", "timed_out")], 1.0),
        (upstream, &[("outcome", "answered_5xx")], 0.0),
        ("resync_gateway_bytes_total", &[("source", "cache")], 1_900.0),
        ("resync_gateway_bytes_total", &[("source", "upstream")], 1_060.0),
        ("resync_gateway_request_duration_seconds_count", &[], 6.0),
        ("resync_gateway_upstream_duration_seconds_count", &[], 4.0),
    ];
    for (metric, labels, value) in fixed {
        assert_eq!(exposed.value(metric, labels), value, "{metric}{labels:?}");
    }
    // Every label combination is a series: 8 methods x 5 classes x 4 cache outcomes.
    let series = exposed
        .samples
        .iter()
        .filter(|s| s.name == requests)
        .count();
    assert_eq!(series, MethodLabel::ALL.len() * StatusClass::ALL.len() * 4);
    // The L2's figures, as the scenario recorded them.
    let lookups = "resync_gateway_l2_lookups_total";
    #[rustfmt::skip]
    let fixed: [FixedRow<'_>; 17] = [
        (lookups, &[("result", "hit")], 3.0),
        (lookups, &[("result", "miss")], 1.0),
        (lookups, &[("result", "other_version")], 0.0),
        (lookups, &[("result", "error")], 1.0),
        (lookups, &[("result", "skipped")], 1.0),
        ("resync_gateway_l2_stores_total", &[("result", "stored")], 1.0),
        ("resync_gateway_l2_stores_total", &[("result", "error")], 1.0),
        ("resync_gateway_l2_leases_total", &[("outcome", "won")], 1.0),
        ("resync_gateway_l2_leases_total", &[("outcome", "expired")], 1.0),
        ("resync_gateway_l2_invalidations_total", &[("direction", "sent")], 1.0),
        ("resync_gateway_l2_invalidations_total", &[("direction", "received")], 2.0),
        ("resync_gateway_l1_flushes_total", &[], 1.0),
        ("resync_gateway_l2_errors_total", &[("op", "store")], 1.0),
        ("resync_gateway_l2_errors_total", &[("op", "subscribe")], 0.0),
        ("resync_gateway_l2_available", &[], 0.0),
        ("resync_gateway_l2_lookup_duration_seconds_count", &[], 5.0),
        ("resync_gateway_l2_store_duration_seconds_count", &[], 2.0),
    ];
    for (metric, labels, value) in fixed {
        assert_eq!(exposed.value(metric, labels), value, "{metric}{labels:?}");
    }
    // The 3 s timeout lands in the 5 s bucket, not below 2.5 s.
    let bucket = "resync_gateway_upstream_duration_seconds_bucket";
    assert_eq!(exposed.value(bucket, &[("le", "2.5")]), 3.0);
    assert_eq!(exposed.value(bucket, &[("le", "5")]), 4.0);
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
        gateway: None,
        gateway_l2: None,
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
        gateway: None,
        gateway_l2: None,
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
        gateway: None,
        gateway_l2: None,
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
