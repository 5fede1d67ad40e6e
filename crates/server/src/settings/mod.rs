//! Settings: the original's keys and defaults, loaded from defaults < `settings.toml` (or
//! `--config PATH`) < `RESYNC_<KEY>` environment variables, then validated.

mod load;
mod validate;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use load::{load, Loaded, Sources};
pub use validate::{Problem, SettingsError};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, coloured when on a terminal.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Every setting of the server. Field `db_pool_max_size` is the key `DB_POOL_MAX_SIZE`;
/// times are whole seconds unless the key says otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub struct Settings {
    /// Postgres URL; empty disables the database pool.
    #[serde(deserialize_with = "load::string_from_scalar")]
    pub database_url: String,
    /// Connections kept open even when idle.
    pub db_pool_min_size: u32,
    /// Upper bound of open connections.
    pub db_pool_max_size: u32,
    /// An idle connection above the minimum is closed after this long.
    pub db_pool_idle_timeout: u64,
    /// A connection is replaced after this long.
    pub db_pool_max_lifetime: u64,
    /// How long a checkout or a connect may wait.
    pub db_pool_connect_timeout: u64,
    /// Seconds between background `SELECT 1` checks.
    pub db_pool_health_check_interval: u64,

    /// Redis URL (`redis://` or `rediss://`); empty disables the Redis pool. A Redis Cluster
    /// is named by several node URLs separated by commas, or one URL with the scheme
    /// `redis+cluster://` (`rediss+cluster://`).
    #[serde(deserialize_with = "load::string_from_scalar")]
    pub redis_url: String,
    /// Connections kept open even when idle.
    pub redis_pool_min_size: u32,
    /// Upper bound of open connections.
    pub redis_pool_max_size: u32,
    /// An idle connection above the minimum is closed after this long.
    pub redis_pool_idle_timeout: u64,
    /// A connection is replaced after this long.
    pub redis_pool_max_lifetime: u64,
    /// How long a checkout or a connect may wait.
    pub redis_pool_connect_timeout: u64,
    /// Seconds between background `PING` checks.
    pub redis_pool_health_check_interval: u64,
    /// Milliseconds one Redis command may take; it also bounds every second-level cache
    /// operation, checkout included, so Redis never adds more than this to a request.
    pub redis_response_timeout_ms: u64,

    /// The upstream HTTP API the gateway fronts; empty disables the gateway.
    #[serde(deserialize_with = "load::string_from_scalar")]
    pub tws_base_url: String,
    /// Upstream connections kept open even when idle.
    pub http_pool_min_size: u32,
    /// Upper bound of upstream connections.
    pub http_pool_max_size: u32,
    /// An idle upstream connection above the minimum is closed after this long.
    pub http_pool_idle_timeout: u64,
    /// An upstream connection is replaced after this long.
    pub http_pool_max_lifetime: u64,
    /// How long a checkout or a connect to the upstream may wait.
    pub http_pool_connect_timeout: u64,
    /// Seconds between background upstream checks.
    pub http_pool_health_check_interval: u64,

    /// Time to live of a cached entry, counted from its write.
    pub async_cache_ttl: u64,
    /// Seconds between maintenance runs that drop expired entries from an idle cache.
    pub async_cache_cleanup_interval: u64,
    /// Statistics stripes (more stripes, less contention on counters).
    pub async_cache_num_shards: u32,
    /// Upper bound of cached entries.
    pub async_cache_max_entries: u64,
    /// Upper bound of cached bytes, in MiB.
    pub async_cache_max_memory_mb: u64,

    /// The bound on one whole upstream exchange (checkout, head and body): 504 past it.
    pub tws_read_timeout: u64,
    /// PEM file of extra CA certificates trusted for an `https://` upstream; empty trusts
    /// the system roots only.
    #[serde(deserialize_with = "load::string_from_scalar")]
    pub tws_ca_file: String,

    /// Response bodies larger than this many bytes stream through and are never cached.
    pub gateway_max_cached_body_bytes: u64,
    /// Request bodies larger than this many bytes are refused with 413.
    pub gateway_max_request_body_bytes: u64,
    /// Seconds past its freshness an entry may still be served (`X-Cache: STALE`) when the
    /// upstream fails (RFC 5861 `stale-if-error`); 0 turns it off. Entries stay in memory
    /// this much longer.
    pub gateway_stale_if_error_secs: u64,
    /// Whether 404 answers are cached like 2xx ones.
    pub gateway_cache_not_found: bool,
    /// A second-level response cache in Redis (`REDIS_URL`), shared by every instance:
    /// lookups go L1 → Redis → upstream, one instance fetches a key at a time, and a write
    /// through any instance invalidates the path in all of them.
    pub gateway_l2: bool,
    /// Milliseconds an instance holds the lease to fetch a key for all instances; the
    /// others wait for its answer (at most `TWS_READ_TIMEOUT`), or fetch themselves once the
    /// lease is gone.
    pub gateway_l2_lease_ms: u64,
    /// A resource held longer than this is reported as a leak.
    pub leak_threshold_secs: u64,
    /// Seconds between history snapshots.
    pub perf_sample_interval: u64,
    /// Snapshots kept in memory.
    pub perf_history_len: u64,
    /// The window health verdicts are judged over.
    pub perf_health_window_secs: u64,
    /// Bearer token guarding `/api/performance/*` and `/metrics`; empty leaves them open.
    #[serde(deserialize_with = "load::string_from_scalar")]
    pub perf_api_token: String,
    /// Address the server listens on.
    #[serde(deserialize_with = "load::string_from_scalar")]
    pub bind_addr: String,
    /// How log lines are written to stderr: `pretty` (human-readable) or `json` (one JSON
    /// object per line).
    pub log_format: LogFormat,
    /// A cache below this hit rate (with enough traffic to judge) is degraded.
    pub health_cache_min_hit_rate: f64,
    /// A cache whose bytes exceed this share of its memory bound is degraded.
    pub health_cache_max_memory_utilization: f64,
    /// Gets a cache needs in the health window before its hit rate is judged.
    pub health_cache_min_requests: u64,
    /// A pool above this utilization is critical.
    pub health_pool_max_utilization: f64,
    /// A pool whose p95 acquire wait exceeds this many milliseconds is degraded.
    pub health_pool_max_wait_ms: u64,
    /// A pool whose error rate exceeds this is degraded.
    pub health_pool_max_error_rate: f64,
    /// The gateway is degraded when its upstream error rate over the health window exceeds
    /// this.
    pub health_gateway_max_error_rate: f64,
    /// The gateway is critical when its upstream error rate over the health window exceeds
    /// this.
    pub health_gateway_critical_error_rate: f64,
    /// Upstream exchanges the gateway needs in the health window before its error rate is
    /// judged.
    pub health_gateway_min_requests: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: String::new(),
            db_pool_min_size: 20,
            db_pool_max_size: 100,
            db_pool_idle_timeout: 1200,
            db_pool_max_lifetime: 1800,
            db_pool_connect_timeout: 60,
            db_pool_health_check_interval: 60,
            redis_url: String::new(),
            redis_pool_min_size: 5,
            redis_pool_max_size: 20,
            redis_pool_idle_timeout: 300,
            redis_pool_max_lifetime: 1800,
            redis_pool_connect_timeout: 30,
            redis_pool_health_check_interval: 60,
            redis_response_timeout_ms: 1000,
            tws_base_url: "http://localhost:31111".to_owned(),
            http_pool_min_size: 10,
            http_pool_max_size: 100,
            http_pool_idle_timeout: 300,
            http_pool_max_lifetime: 1800,
            http_pool_connect_timeout: 10,
            http_pool_health_check_interval: 60,
            async_cache_ttl: 60,
            async_cache_cleanup_interval: 30,
            async_cache_num_shards: 16,
            async_cache_max_entries: 100_000,
            async_cache_max_memory_mb: 100,
            tws_read_timeout: 30,
            tws_ca_file: String::new(),
            gateway_max_cached_body_bytes: 1_048_576,
            gateway_max_request_body_bytes: 10_485_760,
            gateway_stale_if_error_secs: 60,
            gateway_cache_not_found: false,
            gateway_l2: false,
            gateway_l2_lease_ms: 2000,
            leak_threshold_secs: 300,
            perf_sample_interval: 10,
            perf_history_len: 8640,
            perf_health_window_secs: 60,
            perf_api_token: String::new(),
            bind_addr: "127.0.0.1:8000".to_owned(),
            log_format: LogFormat::Pretty,
            health_cache_min_hit_rate: 0.5,
            health_cache_max_memory_utilization: 0.8,
            health_cache_min_requests: 1000,
            health_pool_max_utilization: 0.9,
            health_pool_max_wait_ms: 100,
            health_pool_max_error_rate: 0.05,
            health_gateway_max_error_rate: 0.05,
            health_gateway_critical_error_rate: 0.25,
            health_gateway_min_requests: 20,
        }
    }
}

impl Settings {
    /// Every settings key, sorted.
    #[must_use]
    pub fn keys() -> Vec<String> {
        match serde_json::to_value(Self::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// The address to listen on. Valid after [`Settings::validate`].
    ///
    /// # Errors
    ///
    /// When `BIND_ADDR` is not `host:port` with an IP host.
    pub fn bind_addr(&self) -> Result<std::net::SocketAddr, SettingsError> {
        self.bind_addr.parse().map_err(|_| {
            SettingsError::single(
                "BIND_ADDR",
                &self.bind_addr,
                "an IP address and port, e.g. 127.0.0.1:8000",
            )
        })
    }

    /// `ASYNC_CACHE_TTL` as a duration.
    #[must_use]
    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.async_cache_ttl)
    }

    /// The effective settings as TOML, with secrets (the API token, URL passwords) redacted.
    #[must_use]
    pub fn redacted_toml(&self) -> String {
        toml::to_string(&self.redacted())
            .unwrap_or_else(|error| format!("# cannot render: {error}\n"))
    }

    /// The effective settings as a JSON object by key, with secrets redacted (the report's
    /// `config` section).
    #[must_use]
    pub fn redacted_json(&self) -> serde_json::Value {
        serde_json::to_value(self.redacted()).unwrap_or_default()
    }

    /// A copy with secrets (the API token, URL passwords) redacted.
    #[must_use]
    pub fn redacted(&self) -> Self {
        let mut shown = self.clone();
        if !shown.perf_api_token.is_empty() {
            "<redacted>".clone_into(&mut shown.perf_api_token);
        }
        for url in [
            &mut shown.database_url,
            &mut shown.redis_url,
            &mut shown.tws_base_url,
        ] {
            *url = redact_url_password(url);
        }
        shown
    }
}

/// `scheme://user:secret@host` → `scheme://user:<redacted>@host`.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:<redacted>@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests;
