//! Pool settings, with the original's keys and defaults, and their validation.

use std::fmt;
use std::time::Duration;

use crate::error::Error;

/// How a pool is sized and timed; one per pool, read from the settings keys
/// `<PREFIX>_MIN_SIZE`, `<PREFIX>_MAX_SIZE`, `<PREFIX>_CONNECT_TIMEOUT`,
/// `<PREFIX>_IDLE_TIMEOUT`, `<PREFIX>_MAX_LIFETIME`, `<PREFIX>_HEALTH_CHECK_INTERVAL`
/// (prefix `DB_POOL`, `REDIS_POOL` or `HTTP_POOL`) and `LEAK_THRESHOLD_SECS`.
///
/// Fields are public so settings can be mapped onto them directly; [`PoolConfig::validate`]
/// (run by [`MonitoredPool::new`](crate::MonitoredPool::new) before bb8's builder, which
/// panics on such values) reports every problem at once, each naming its settings key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Settings-key prefix (`DB_POOL`, `REDIS_POOL`, `HTTP_POOL`) used to name keys in
    /// validation problems and in the advisor's setting changes.
    pub settings_prefix: &'static str,
    /// The [`ResourceTracker`](resync_resource_manager::ResourceTracker) kind under which
    /// checkouts are tracked (`db_connection`, `redis_connection`, `http_connection`). The
    /// kind's configuration is shared: the pool merges its `leak_threshold` into it (the
    /// smallest threshold of the kind wins; a limit and backtrace flag set on the kind stay),
    /// see [`MonitoredPool::new`](crate::MonitoredPool::new).
    pub resource_kind: &'static str,
    /// Idle connections kept open (`*_MIN_SIZE`): by the pool's stash keeper, counting the
    /// stash and bb8's idle connections together, or (with a skip window under 10 ms, so no
    /// stash) by bb8's `min_idle`.
    pub min_size: u32,
    /// Most connections open at once (`*_MAX_SIZE`).
    pub max_size: u32,
    /// Longest a single connect attempt may take (`*_CONNECT_TIMEOUT`); bb8 never times out
    /// a connect, the pool's wrapper does.
    pub connect_timeout: Duration,
    /// Longest a `get()` waits for a free connection; `None` means the connect timeout.
    pub acquire_timeout: Option<Duration>,
    /// Idle connections are closed after this long (`*_IDLE_TIMEOUT`; bb8's reaper, which
    /// looks every 30 s; a connection idle in the stash goes back to bb8 within about a
    /// second); new ones are then opened up to `min_size`.
    pub idle_timeout: Option<Duration>,
    /// Connections are closed after this age (`*_MAX_LIFETIME`): when returned past it, or
    /// when a checkout finds an idle one past it (it is never handed out). An idle connection
    /// no checkout picks is closed by the idle timeout (without one, by bb8's reaper, within
    /// 30 s).
    pub max_lifetime: Option<Duration>,
    /// Period of the background health check (`*_HEALTH_CHECK_INTERVAL`).
    pub health_check_interval: Duration,
    /// Longest one health check may take; `None` means the connect timeout.
    pub health_check_timeout: Option<Duration>,
    /// A connection held longer than this is a counted leak (`LEAK_THRESHOLD_SECS`); when
    /// pools share a `resource_kind`, the smallest of their thresholds applies to all.
    pub leak_threshold: Duration,
    /// A connection used within this window is handed out without a validity round trip
    /// (HikariCP's rule; 500 ms by default); older idle connections are validated first.
    /// Every checkout runs the manager's synchronous `has_broken` check either way;
    /// [`Duration::MAX`] makes that the only check ([`PoolConfig::http`]), zero makes every
    /// checkout a round trip.
    pub validation_skip_window: Duration,
}

/// One thing wrong with a [`PoolConfig`], naming the struct field and, when the field is
/// read from one, the settings key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The settings key, e.g. `DB_POOL_MAX_SIZE`; `None` for fields no settings key sets
    /// (`acquire_timeout`, `health_check_timeout`, `settings_prefix`).
    pub key: Option<String>,
    /// The [`PoolConfig`] field, e.g. `max_size`.
    pub field: &'static str,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{key} ({}): {}", self.field, self.message),
            None => write!(f, "{} (no settings key): {}", self.field, self.message),
        }
    }
}

impl PoolConfig {
    /// The original's database pool defaults (`DB_POOL_*`: 20..100, connect 60 s, idle
    /// 1200 s, lifetime 1800 s, health check every 60 s).
    #[must_use]
    pub fn database() -> Self {
        Self::with_defaults("DB_POOL", "db_connection", 20, 100, 60, 1200)
    }

    /// The original's Redis pool defaults (`REDIS_POOL_*`: 5..20, connect 30 s, idle 300 s,
    /// lifetime 1800 s, health check every 60 s).
    #[must_use]
    pub fn redis() -> Self {
        Self::with_defaults("REDIS_POOL", "redis_connection", 5, 20, 30, 300)
    }

    /// The original's HTTP pool defaults (`HTTP_POOL_*`: 10..100, connect 10 s, idle 300 s,
    /// lifetime 1800 s, health check every 60 s).
    ///
    /// `validation_skip_window` is [`Duration::MAX`]: a checkout never makes a validity round
    /// trip. The checkout's synchronous check — the manager's `has_broken`, which for
    /// [`HttpManager`](crate::HttpManager) is whether hyper has closed the connection or an
    /// exchange on it failed — is the whole validation: no allocation, no await. A connection
    /// comes back to the pool once its response body has been read (hold the guard, an
    /// [`OwnedPoolConnection`](crate::OwnedPoolConnection) if the body outlives the handler),
    /// so a returned connection is ready; one returned early is caught by
    /// [`HttpConnection::send`](crate::HttpConnection::send)'s bounded wait for readiness.
    /// A connection the upstream closed while idle is rejected at checkout once hyper has
    /// seen the close; one closed as the request goes out fails with
    /// [`Error::is_stale_connection`].
    #[must_use]
    pub fn http() -> Self {
        Self {
            validation_skip_window: Duration::MAX,
            ..Self::with_defaults("HTTP_POOL", "http_connection", 10, 100, 10, 300)
        }
    }

    fn with_defaults(
        settings_prefix: &'static str,
        resource_kind: &'static str,
        min_size: u32,
        max_size: u32,
        connect_secs: u64,
        idle_secs: u64,
    ) -> Self {
        Self {
            settings_prefix,
            resource_kind,
            min_size,
            max_size,
            connect_timeout: Duration::from_secs(connect_secs),
            acquire_timeout: None,
            idle_timeout: Some(Duration::from_secs(idle_secs)),
            max_lifetime: Some(Duration::from_secs(1800)),
            health_check_interval: Duration::from_secs(60),
            health_check_timeout: None,
            leak_threshold: Duration::from_secs(300),
            validation_skip_window: Duration::from_millis(500),
        }
    }

    /// The settings key for a suffix such as `MAX_SIZE` (`DB_POOL_MAX_SIZE`).
    #[must_use]
    pub fn key(&self, suffix: &str) -> String {
        format!("{}_{suffix}", self.settings_prefix)
    }

    /// How long a `get()` waits for a connection.
    #[must_use]
    pub fn effective_acquire_timeout(&self) -> Duration {
        self.acquire_timeout.unwrap_or(self.connect_timeout)
    }

    /// How long one health check may take.
    #[must_use]
    pub fn effective_health_check_timeout(&self) -> Duration {
        self.health_check_timeout.unwrap_or(self.connect_timeout)
    }

    /// Checks every field and returns every problem found, each naming its settings key.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] with one [`ConfigProblem`] per invalid field.
    pub fn validate(&self) -> Result<(), Error> {
        let mut problems = Vec::new();
        let mut problem = |suffix: Option<&str>, field: &'static str, message: String| {
            problems.push(ConfigProblem {
                key: suffix.map(|suffix| self.key(suffix)),
                field,
                message,
            });
        };
        if self.max_size == 0 {
            problem(Some("MAX_SIZE"), "max_size", "must be at least 1".into());
        }
        if self.min_size > self.max_size {
            problem(
                Some("MIN_SIZE"),
                "min_size",
                format!(
                    "{} is larger than max_size {}",
                    self.min_size, self.max_size
                ),
            );
        }
        // `acquire_timeout` and `health_check_timeout` have no settings key (unset, they
        // follow `*_CONNECT_TIMEOUT`); the leak threshold's key is global, fixed below.
        let positive: [(Option<&str>, &'static str, Option<Duration>); 7] = [
            (
                Some("CONNECT_TIMEOUT"),
                "connect_timeout",
                Some(self.connect_timeout),
            ),
            (None, "acquire_timeout", self.acquire_timeout),
            (Some("IDLE_TIMEOUT"), "idle_timeout", self.idle_timeout),
            (Some("MAX_LIFETIME"), "max_lifetime", self.max_lifetime),
            (
                Some("HEALTH_CHECK_INTERVAL"),
                "health_check_interval",
                Some(self.health_check_interval),
            ),
            (None, "health_check_timeout", self.health_check_timeout),
            (None, "leak_threshold", Some(self.leak_threshold)),
        ];
        for (suffix, field, value) in positive {
            if value == Some(Duration::ZERO) {
                problem(suffix, field, "must be greater than zero".into());
            }
        }
        if self.settings_prefix.is_empty() {
            problems.push(ConfigProblem {
                key: None,
                field: "settings_prefix",
                message: "must name the settings group, e.g. DB_POOL".into(),
            });
        }
        // The leak threshold is one global key, not a per-pool one.
        for p in &mut problems {
            if p.field == "leak_threshold" {
                p.key = Some("LEAK_THRESHOLD_SECS".into());
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidConfig(problems))
        }
    }
}

impl Default for PoolConfig {
    /// The database defaults.
    fn default() -> Self {
        Self::database()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        for config in [
            PoolConfig::database(),
            PoolConfig::redis(),
            PoolConfig::http(),
        ] {
            if let Err(error) = config.validate() {
                panic!(
                    "default {} config rejected: {error}",
                    config.settings_prefix
                );
            }
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let config = PoolConfig {
            min_size: 5,
            max_size: 0,
            connect_timeout: Duration::ZERO,
            idle_timeout: Some(Duration::ZERO),
            leak_threshold: Duration::ZERO,
            ..PoolConfig::redis()
        };
        let Err(Error::InvalidConfig(problems)) = config.validate() else {
            panic!("an invalid config must be rejected");
        };
        let keys: Vec<Option<&str>> = problems.iter().map(|p| p.key.as_deref()).collect();
        assert_eq!(
            keys,
            [
                Some("REDIS_POOL_MAX_SIZE"),
                Some("REDIS_POOL_MIN_SIZE"),
                Some("REDIS_POOL_CONNECT_TIMEOUT"),
                Some("REDIS_POOL_IDLE_TIMEOUT"),
                Some("LEAK_THRESHOLD_SECS"),
            ]
        );
        let message = Error::InvalidConfig(problems).to_string();
        assert!(message.contains("REDIS_POOL_MIN_SIZE (min_size): 5 is larger than max_size 0"));
    }

    #[test]
    fn fields_without_a_settings_key_are_named_as_fields() {
        let config = PoolConfig {
            acquire_timeout: Some(Duration::ZERO),
            health_check_timeout: Some(Duration::ZERO),
            ..PoolConfig::database()
        };
        let Err(Error::InvalidConfig(problems)) = config.validate() else {
            panic!("zero timeouts must be rejected");
        };
        let named: Vec<(Option<&str>, &str)> = problems
            .iter()
            .map(|p| (p.key.as_deref(), p.field))
            .collect();
        assert_eq!(
            named,
            [(None, "acquire_timeout"), (None, "health_check_timeout")]
        );
        assert!(problems[0]
            .to_string()
            .starts_with("acquire_timeout (no settings key): "));
    }
}
