//! Checking settings: every problem is reported at once, each naming the key, the value and
//! what is expected.

use std::fmt;
use std::path::Path;

use figment::error::Kind;

use super::Settings;

/// One bad setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The settings key (`DB_POOL_MAX_SIZE`), or the file or flag at fault.
    pub key: String,
    /// The value found, as written.
    pub value: String,
    /// What would be accepted.
    pub expected: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}: expected {}", self.key, self.expected)
        } else {
            write!(
                f,
                "{} = {}: expected {}",
                self.key, self.value, self.expected
            )
        }
    }
}

/// Settings that cannot be used, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid settings:\n{}", list(.problems))]
pub struct SettingsError {
    /// What is wrong, one entry per key.
    pub problems: Vec<Problem>,
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|problem| format!("  - {problem}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl SettingsError {
    /// An error with these problems.
    #[must_use]
    pub fn new(problems: Vec<Problem>) -> Self {
        Self { problems }
    }

    /// An error with one problem.
    #[must_use]
    pub fn single(key: &str, value: &str, expected: &str) -> Self {
        Self::new(vec![Problem {
            key: key.to_owned(),
            value: value.to_owned(),
            expected: expected.to_owned(),
        }])
    }

    pub(super) fn from_figment(error: figment::Error, file: Option<&Path>) -> Self {
        let problems = error
            .into_iter()
            .map(|error| {
                let (value, expected) = match &error.kind {
                    Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
                        (actual.to_string(), expected.clone())
                    }
                    Kind::UnknownVariant(found, expected) => {
                        (found.clone(), format!("one of {}", expected.join(", ")))
                    }
                    Kind::UnknownField(found, _) => (
                        found.clone(),
                        "a known settings key (see settings.toml)".to_owned(),
                    ),
                    other => (String::new(), other.to_string()),
                };
                let key = match (&error.kind, error.path.is_empty()) {
                    (Kind::UnknownField(found, _), true) => found.clone(),
                    (_, false) => error.path.join("."),
                    _ => "settings".to_owned(),
                };
                let source = error
                    .metadata
                    .as_ref()
                    .map(|meta| meta.name.to_string())
                    .or_else(|| file.map(|path| path.display().to_string()));
                let expected = match source {
                    Some(source) => format!("{expected} (from {source})"),
                    None => expected,
                };
                Problem {
                    key,
                    value,
                    expected,
                }
            })
            .collect();
        Self::new(problems)
    }
}

/// Collects problems while checking.
#[derive(Debug, Default)]
struct Checker(Vec<Problem>);

impl Checker {
    /// `Ok` when nothing was found, else every problem in the order found.
    fn finish(self) -> Result<(), SettingsError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(SettingsError::new(self.0))
        }
    }

    fn require(&mut self, ok: bool, key: &str, value: impl fmt::Display, expected: &str) {
        if !ok {
            self.0.push(Problem {
                key: key.to_owned(),
                value: value.to_string(),
                expected: expected.to_owned(),
            });
        }
    }

    fn at_least_one(&mut self, key: &str, value: u64) {
        self.require(value >= 1, key, value, "a whole number of at least 1");
    }

    fn ratio(&mut self, key: &str, value: f64) {
        self.require(
            (0.0..=1.0).contains(&value),
            key,
            value,
            "a ratio between 0 and 1",
        );
    }

    fn url(&mut self, key: &str, value: &str, schemes: &[&str]) {
        let ok = value.is_empty()
            || schemes.iter().any(|scheme| {
                value
                    .strip_prefix(scheme)
                    .and_then(|rest| rest.strip_prefix("://"))
                    .is_some_and(|rest| !rest.is_empty())
            });
        let expected = format!(
            "empty (disabled) or a URL starting with {}",
            schemes
                .iter()
                .map(|scheme| format!("{scheme}://"))
                .collect::<Vec<_>>()
                .join(" or ")
        );
        self.require(ok, key, format!("{value:?}"), &expected);
    }

    fn pool(&mut self, prefix: &str, min: u32, max: u32, times: [(&str, u64); 4]) {
        let max_key = format!("{prefix}_MAX_SIZE");
        self.require(max >= 1, &max_key, max, "a whole number of at least 1");
        self.require(
            min <= max,
            &format!("{prefix}_MIN_SIZE"),
            min,
            &format!("at most {max_key} ({max})"),
        );
        for (suffix, value) in times {
            self.at_least_one(&format!("{prefix}_{suffix}"), value);
        }
    }
}

impl Settings {
    /// Checks every value and returns every problem found.
    ///
    /// # Errors
    ///
    /// A [`SettingsError`] listing each bad key with its value and what is expected.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let mut check = Checker::default();
        self.check_urls(&mut check);
        self.check_pools(&mut check);
        self.check_cache(&mut check);
        self.check_timeouts(&mut check);
        self.check_gateway(&mut check);
        self.check_perf_api(&mut check);
        self.check_health_thresholds(&mut check);
        check.finish()
    }

    /// The backends' URLs: empty, or of the backend's scheme.
    fn check_urls(&self, check: &mut Checker) {
        check.url(
            "DATABASE_URL",
            &self.database_url,
            &["postgres", "postgresql"],
        );
        check.url("REDIS_URL", &self.redis_url, &["redis", "rediss"]);
        check.url("TWS_BASE_URL", &self.tws_base_url, &["http", "https"]);
    }

    /// Each pool's sizes (`MIN_SIZE` ≤ `MAX_SIZE`, `MAX_SIZE` ≥ 1) and times (≥ 1 s).
    fn check_pools(&self, check: &mut Checker) {
        check.pool(
            "DB_POOL",
            self.db_pool_min_size,
            self.db_pool_max_size,
            [
                ("IDLE_TIMEOUT", self.db_pool_idle_timeout),
                ("MAX_LIFETIME", self.db_pool_max_lifetime),
                ("CONNECT_TIMEOUT", self.db_pool_connect_timeout),
                ("HEALTH_CHECK_INTERVAL", self.db_pool_health_check_interval),
            ],
        );
        check.pool(
            "REDIS_POOL",
            self.redis_pool_min_size,
            self.redis_pool_max_size,
            [
                ("IDLE_TIMEOUT", self.redis_pool_idle_timeout),
                ("MAX_LIFETIME", self.redis_pool_max_lifetime),
                ("CONNECT_TIMEOUT", self.redis_pool_connect_timeout),
                (
                    "HEALTH_CHECK_INTERVAL",
                    self.redis_pool_health_check_interval,
                ),
            ],
        );
        check.pool(
            "HTTP_POOL",
            self.http_pool_min_size,
            self.http_pool_max_size,
            [
                ("IDLE_TIMEOUT", self.http_pool_idle_timeout),
                ("MAX_LIFETIME", self.http_pool_max_lifetime),
                ("CONNECT_TIMEOUT", self.http_pool_connect_timeout),
                (
                    "HEALTH_CHECK_INTERVAL",
                    self.http_pool_health_check_interval,
                ),
            ],
        );
    }

    /// The response cache: its TTL, cleanup interval, stripes and bounds.
    fn check_cache(&self, check: &mut Checker) {
        check.at_least_one("ASYNC_CACHE_TTL", self.async_cache_ttl);
        check.at_least_one(
            "ASYNC_CACHE_CLEANUP_INTERVAL",
            self.async_cache_cleanup_interval,
        );
        check.require(
            (1..=1024).contains(&self.async_cache_num_shards),
            "ASYNC_CACHE_NUM_SHARDS",
            self.async_cache_num_shards,
            "a whole number from 1 to 1024",
        );
        check.at_least_one("ASYNC_CACHE_MAX_ENTRIES", self.async_cache_max_entries);
        check.require(
            (1..=1 << 20).contains(&self.async_cache_max_memory_mb),
            "ASYNC_CACHE_MAX_MEMORY_MB",
            self.async_cache_max_memory_mb,
            "a whole number of MiB from 1 to 1048576",
        );
    }

    /// The upstream read timeout and the leak threshold (each ≥ 1 s).
    fn check_timeouts(&self, check: &mut Checker) {
        check.at_least_one("TWS_READ_TIMEOUT", self.tws_read_timeout);
        check.at_least_one("LEAK_THRESHOLD_SECS", self.leak_threshold_secs);
    }

    /// The gateway's body caps (≥ 1 byte; the cached-body cap at most the cache's memory
    /// bound) and its CA file (readable when set).
    fn check_gateway(&self, check: &mut Checker) {
        check.at_least_one(
            "GATEWAY_MAX_CACHED_BODY_BYTES",
            self.gateway_max_cached_body_bytes,
        );
        check.require(
            self.gateway_max_cached_body_bytes
                <= self.async_cache_max_memory_mb.saturating_mul(1024 * 1024),
            "GATEWAY_MAX_CACHED_BODY_BYTES",
            self.gateway_max_cached_body_bytes,
            &format!(
                "at most the cache's memory bound, ASYNC_CACHE_MAX_MEMORY_MB ({} MiB)",
                self.async_cache_max_memory_mb
            ),
        );
        check.at_least_one(
            "GATEWAY_MAX_REQUEST_BODY_BYTES",
            self.gateway_max_request_body_bytes,
        );
        check.require(
            self.tws_ca_file.is_empty() || std::path::Path::new(&self.tws_ca_file).is_file(),
            "TWS_CA_FILE",
            format!("{:?}", self.tws_ca_file),
            "empty, or the path of a readable PEM file",
        );
        self.check_l2(check);
    }

    /// The second level: it needs Redis and the gateway, and a lease and timeout to work by.
    fn check_l2(&self, check: &mut Checker) {
        check.require(
            !self.gateway_l2 || !self.redis_url.is_empty(),
            "GATEWAY_L2",
            self.gateway_l2,
            "false while REDIS_URL is empty (the second level lives in Redis)",
        );
        check.require(
            !self.gateway_l2 || !self.tws_base_url.is_empty(),
            "GATEWAY_L2",
            self.gateway_l2,
            "false while TWS_BASE_URL is empty (there is no gateway to share)",
        );
        check.at_least_one("GATEWAY_L2_LEASE_MS", self.gateway_l2_lease_ms);
        check.at_least_one("REDIS_RESPONSE_TIMEOUT_MS", self.redis_response_timeout_ms);
    }

    /// The performance API: its sampling, history and health window, and the address it is
    /// served on.
    fn check_perf_api(&self, check: &mut Checker) {
        check.at_least_one("PERF_SAMPLE_INTERVAL", self.perf_sample_interval);
        check.require(
            self.perf_history_len >= 2,
            "PERF_HISTORY_LEN",
            self.perf_history_len,
            "at least 2 snapshots",
        );
        check.require(
            self.perf_health_window_secs >= self.perf_sample_interval,
            "PERF_HEALTH_WINDOW_SECS",
            self.perf_health_window_secs,
            &format!(
                "at least PERF_SAMPLE_INTERVAL ({})",
                self.perf_sample_interval
            ),
        );
        check.require(
            self.bind_addr.parse::<std::net::SocketAddr>().is_ok(),
            "BIND_ADDR",
            format!("{:?}", self.bind_addr),
            "an IP address and port, e.g. 127.0.0.1:8000",
        );
    }

    /// The `HEALTH_*` thresholds: ratios in 0–1, counts and times ≥ 1.
    fn check_health_thresholds(&self, check: &mut Checker) {
        check.ratio("HEALTH_CACHE_MIN_HIT_RATE", self.health_cache_min_hit_rate);
        check.ratio(
            "HEALTH_CACHE_MAX_MEMORY_UTILIZATION",
            self.health_cache_max_memory_utilization,
        );
        check.at_least_one("HEALTH_CACHE_MIN_REQUESTS", self.health_cache_min_requests);
        check.ratio(
            "HEALTH_POOL_MAX_UTILIZATION",
            self.health_pool_max_utilization,
        );
        check.at_least_one("HEALTH_POOL_MAX_WAIT_MS", self.health_pool_max_wait_ms);
        check.ratio(
            "HEALTH_POOL_MAX_ERROR_RATE",
            self.health_pool_max_error_rate,
        );
        check.ratio(
            "HEALTH_GATEWAY_MAX_ERROR_RATE",
            self.health_gateway_max_error_rate,
        );
        check.ratio(
            "HEALTH_GATEWAY_CRITICAL_ERROR_RATE",
            self.health_gateway_critical_error_rate,
        );
        check.require(
            self.health_gateway_critical_error_rate >= self.health_gateway_max_error_rate,
            "HEALTH_GATEWAY_CRITICAL_ERROR_RATE",
            self.health_gateway_critical_error_rate,
            &format!(
                "at least HEALTH_GATEWAY_MAX_ERROR_RATE ({})",
                self.health_gateway_max_error_rate
            ),
        );
        check.at_least_one(
            "HEALTH_GATEWAY_MIN_REQUESTS",
            self.health_gateway_min_requests,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One group of rules, as `validate` runs it.
    type Group = fn(&Settings, &mut Checker);

    const GROUPS: [(&str, Group); 7] = [
        ("urls", Settings::check_urls),
        ("pools", Settings::check_pools),
        ("cache", Settings::check_cache),
        ("timeouts", Settings::check_timeouts),
        ("gateway", Settings::check_gateway),
        ("perf_api", Settings::check_perf_api),
        ("health_thresholds", Settings::check_health_thresholds),
    ];

    /// The problems `group` alone finds in `settings`.
    fn problems(settings: &Settings, group: Group) -> Vec<Problem> {
        let mut check = Checker::default();
        group(settings, &mut check);
        check.0
    }

    fn keys(settings: &Settings, group: Group) -> Vec<String> {
        problems(settings, group)
            .into_iter()
            .map(|problem| problem.key)
            .collect()
    }

    #[test]
    fn every_group_accepts_the_defaults() {
        for (name, group) in GROUPS {
            assert_eq!(problems(&Settings::default(), group), [], "{name}");
        }
    }

    #[test]
    fn urls_are_empty_or_of_their_backends_scheme() {
        let settings = Settings {
            database_url: "mysql://db/app".to_owned(),
            redis_url: "redis://".to_owned(),
            tws_base_url: "https://upstream".to_owned(),
            ..Settings::default()
        };
        let found = problems(&settings, Settings::check_urls);
        let found_keys: Vec<&str> = found.iter().map(|problem| problem.key.as_str()).collect();
        assert_eq!(found_keys, ["DATABASE_URL", "REDIS_URL"]);
        assert_eq!(found[0].value, "\"mysql://db/app\"");
        assert_eq!(
            found[0].expected,
            "empty (disabled) or a URL starting with postgres:// or postgresql://"
        );
        let accepted = Settings {
            database_url: "postgresql://db/app".to_owned(),
            redis_url: "rediss://cache:6380".to_owned(),
            tws_base_url: String::new(),
            ..Settings::default()
        };
        assert_eq!(keys(&accepted, Settings::check_urls), [] as [&str; 0]);
    }

    #[test]
    fn pools_need_a_max_size_above_their_min_size_and_whole_seconds() {
        let settings = Settings {
            db_pool_min_size: 101,
            redis_pool_max_size: 0,
            http_pool_connect_timeout: 0,
            http_pool_health_check_interval: 0,
            ..Settings::default()
        };
        assert_eq!(
            keys(&settings, Settings::check_pools),
            [
                "DB_POOL_MIN_SIZE",
                "REDIS_POOL_MAX_SIZE",
                "REDIS_POOL_MIN_SIZE",
                "HTTP_POOL_CONNECT_TIMEOUT",
                "HTTP_POOL_HEALTH_CHECK_INTERVAL",
            ]
        );
        let expected = problems(&settings, Settings::check_pools)[0].to_string();
        assert_eq!(
            expected,
            "DB_POOL_MIN_SIZE = 101: expected at most DB_POOL_MAX_SIZE (100)"
        );
    }

    #[test]
    fn the_cache_needs_whole_times_stripes_in_range_and_bounds() {
        let settings = Settings {
            async_cache_ttl: 0,
            async_cache_num_shards: 2048,
            async_cache_max_entries: 0,
            async_cache_max_memory_mb: (1 << 20) + 1,
            ..Settings::default()
        };
        assert_eq!(
            keys(&settings, Settings::check_cache),
            [
                "ASYNC_CACHE_TTL",
                "ASYNC_CACHE_NUM_SHARDS",
                "ASYNC_CACHE_MAX_ENTRIES",
                "ASYNC_CACHE_MAX_MEMORY_MB",
            ]
        );
        let no_cleanup = Settings {
            async_cache_cleanup_interval: 0,
            async_cache_num_shards: 0,
            ..Settings::default()
        };
        assert_eq!(
            keys(&no_cleanup, Settings::check_cache),
            ["ASYNC_CACHE_CLEANUP_INTERVAL", "ASYNC_CACHE_NUM_SHARDS"]
        );
    }

    #[test]
    fn timeouts_are_at_least_a_second() {
        let settings = Settings {
            tws_read_timeout: 0,
            leak_threshold_secs: 0,
            ..Settings::default()
        };
        assert_eq!(
            keys(&settings, Settings::check_timeouts),
            ["TWS_READ_TIMEOUT", "LEAK_THRESHOLD_SECS"]
        );
    }

    #[test]
    fn gateway_caps_are_positive_the_cached_body_fits_the_cache_and_the_ca_file_exists() {
        let settings = Settings {
            gateway_max_cached_body_bytes: 0,
            gateway_max_request_body_bytes: 0,
            tws_ca_file: "/nonexistent/ca.pem".to_owned(),
            ..Settings::default()
        };
        assert_eq!(
            keys(&settings, Settings::check_gateway),
            [
                "GATEWAY_MAX_CACHED_BODY_BYTES",
                "GATEWAY_MAX_REQUEST_BODY_BYTES",
                "TWS_CA_FILE"
            ]
        );
        let larger_than_the_cache = Settings {
            async_cache_max_memory_mb: 1,
            gateway_max_cached_body_bytes: 1024 * 1024 + 1,
            ..Settings::default()
        };
        let found = problems(&larger_than_the_cache, Settings::check_gateway);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].to_string().contains("ASYNC_CACHE_MAX_MEMORY_MB"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn gateway_error_rates_are_ratios_with_critical_above_degraded() {
        let settings = Settings {
            health_gateway_max_error_rate: 0.5,
            health_gateway_critical_error_rate: 0.2,
            health_gateway_min_requests: 0,
            ..Settings::default()
        };
        assert_eq!(
            keys(&settings, Settings::check_health_thresholds),
            [
                "HEALTH_GATEWAY_CRITICAL_ERROR_RATE",
                "HEALTH_GATEWAY_MIN_REQUESTS"
            ]
        );
    }

    #[test]
    fn the_perf_api_needs_a_history_a_window_of_a_sample_and_an_address() {
        let settings = Settings {
            perf_history_len: 1,
            perf_health_window_secs: 5,
            bind_addr: "localhost".to_owned(),
            ..Settings::default()
        };
        let found = problems(&settings, Settings::check_perf_api);
        let found_keys: Vec<&str> = found.iter().map(|problem| problem.key.as_str()).collect();
        assert_eq!(
            found_keys,
            ["PERF_HISTORY_LEN", "PERF_HEALTH_WINDOW_SECS", "BIND_ADDR"]
        );
        assert_eq!(found[1].expected, "at least PERF_SAMPLE_INTERVAL (10)");
        let no_sampling = Settings {
            perf_sample_interval: 0,
            perf_health_window_secs: 0,
            ..Settings::default()
        };
        assert_eq!(
            keys(&no_sampling, Settings::check_perf_api),
            ["PERF_SAMPLE_INTERVAL"]
        );
    }

    #[test]
    fn health_thresholds_are_ratios_and_whole_counts() {
        let settings = Settings {
            health_cache_min_hit_rate: -0.1,
            health_cache_max_memory_utilization: 1.2,
            health_cache_min_requests: 0,
            health_pool_max_utilization: f64::NAN,
            health_pool_max_wait_ms: 0,
            health_pool_max_error_rate: 1.5,
            ..Settings::default()
        };
        assert_eq!(
            keys(&settings, Settings::check_health_thresholds),
            [
                "HEALTH_CACHE_MIN_HIT_RATE",
                "HEALTH_CACHE_MAX_MEMORY_UTILIZATION",
                "HEALTH_CACHE_MIN_REQUESTS",
                "HEALTH_POOL_MAX_UTILIZATION",
                "HEALTH_POOL_MAX_WAIT_MS",
                "HEALTH_POOL_MAX_ERROR_RATE",
            ]
        );
        let at_the_edges = Settings {
            health_cache_min_hit_rate: 0.0,
            health_pool_max_error_rate: 1.0,
            ..Settings::default()
        };
        assert_eq!(
            keys(&at_the_edges, Settings::check_health_thresholds),
            [] as [&str; 0]
        );
    }

    #[test]
    fn validate_reports_the_groups_problems_in_order() {
        let settings = Settings {
            redis_url: "http://x".to_owned(),
            redis_pool_min_size: 30,
            async_cache_ttl: 0,
            leak_threshold_secs: 0,
            bind_addr: "localhost".to_owned(),
            health_pool_max_error_rate: 1.5,
            ..Settings::default()
        };
        let error = settings.validate().expect_err("six bad keys");
        let keys: Vec<&str> = error
            .problems
            .iter()
            .map(|problem| problem.key.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "REDIS_URL",
                "REDIS_POOL_MIN_SIZE",
                "ASYNC_CACHE_TTL",
                "LEAK_THRESHOLD_SECS",
                "BIND_ADDR",
                "HEALTH_POOL_MAX_ERROR_RATE",
            ]
        );
    }
}
