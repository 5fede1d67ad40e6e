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
struct Checker(Vec<Problem>);

impl Checker {
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
        let mut check = Checker(Vec::new());
        check.url(
            "DATABASE_URL",
            &self.database_url,
            &["postgres", "postgresql"],
        );
        check.url("REDIS_URL", &self.redis_url, &["redis", "rediss"]);
        check.url("TWS_BASE_URL", &self.tws_base_url, &["http", "https"]);
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
        check.at_least_one("TWS_READ_TIMEOUT", self.tws_read_timeout);
        check.at_least_one("LEAK_THRESHOLD_SECS", self.leak_threshold_secs);
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
        if check.0.is_empty() {
            Ok(())
        } else {
            Err(SettingsError::new(check.0))
        }
    }
}
