//! When a response may be stored, and for how long (RFC 9111 for a shared cache, the subset
//! a gateway needs, plus RFC 5861 `stale-if-error`).

use std::time::Duration;

use axum::http::header::{self, HeaderMap, HeaderName};
use axum::http::StatusCode;

/// The gateway's caching settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// Freshness when the response does not ask for less (`ASYNC_CACHE_TTL`).
    pub ttl: Duration,
    /// How long past its freshness an entry may still be served when the upstream fails
    /// (`GATEWAY_STALE_IF_ERROR_SECS`; zero turns it off).
    pub stale_if_error: Duration,
    /// Bodies larger than this are streamed through and never stored
    /// (`GATEWAY_MAX_CACHED_BODY_BYTES`).
    pub max_body_bytes: u64,
    /// Whether a 404 may be stored (`GATEWAY_CACHE_NOT_FOUND`).
    pub cache_not_found: bool,
}

/// Why a response is not stored (the reason is logged at debug level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uncacheable {
    /// A status the gateway does not store.
    Status,
    /// `Cache-Control: no-store`, `private` or `no-cache`.
    Directive,
    /// `max-age=0` / `s-maxage=0`, or an `Age` at least that old.
    NotFresh,
    /// The response sets a cookie.
    SetsCookie,
    /// `Vary: *`.
    VaryStar,
    /// The body is (or declares itself) larger than the cap.
    TooLarge,
}

/// How long a storable response stays fresh, and the request headers it varies on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storable {
    /// Freshness from the moment it is stored (already reduced by the upstream's `Age`).
    pub fresh_for: Duration,
    /// How long after that it may be served when the upstream fails.
    pub stale_for: Duration,
    /// The upstream's `Age`, in seconds.
    pub initial_age: u64,
    /// The request headers named by `Vary`, lower-case.
    pub vary: Vec<HeaderName>,
}

/// The directives of a `Cache-Control` header that matter to a shared cache.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Directives {
    no_store: bool,
    private: bool,
    no_cache: bool,
    max_age: Option<u64>,
    s_maxage: Option<u64>,
    stale_if_error: Option<u64>,
}

fn directives(headers: &HeaderMap) -> Directives {
    let mut found = Directives::default();
    let values = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|value| value.to_str().ok());
    for directive in values.flat_map(|value| value.split(',')) {
        let (name, argument) = match directive.split_once('=') {
            Some((name, argument)) => (name.trim(), Some(argument.trim().trim_matches('"'))),
            None => (directive.trim(), None),
        };
        let seconds = || argument.and_then(|text| text.parse::<u64>().ok());
        match name.to_ascii_lowercase().as_str() {
            "no-store" => found.no_store = true,
            "private" => found.private = true,
            "no-cache" => found.no_cache = true,
            // An unparsable delta is treated as 0, as RFC 9111 §1.2.2 asks.
            "max-age" => found.max_age = Some(seconds().unwrap_or(0)),
            "s-maxage" => found.s_maxage = Some(seconds().unwrap_or(0)),
            "stale-if-error" => found.stale_if_error = seconds(),
            _ => {}
        }
    }
    found
}

fn seconds_header(headers: &HeaderMap, name: &HeaderName) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl CachePolicy {
    /// Whether a response of this status may be stored: 2xx except 206 (partial content),
    /// and 404 when the setting allows it.
    #[must_use]
    pub fn storable_status(&self, status: StatusCode) -> bool {
        (status.is_success() && status != StatusCode::PARTIAL_CONTENT)
            || (self.cache_not_found && status == StatusCode::NOT_FOUND)
    }

    /// Decides from a response head whether it may be stored and for how long.
    ///
    /// # Errors
    ///
    /// Why it may not be stored.
    pub fn judge(&self, status: StatusCode, headers: &HeaderMap) -> Result<Storable, Uncacheable> {
        if !self.storable_status(status) {
            return Err(Uncacheable::Status);
        }
        let found = directives(headers);
        if found.no_store || found.private || found.no_cache {
            return Err(Uncacheable::Directive);
        }
        if headers.contains_key(header::SET_COOKIE) {
            return Err(Uncacheable::SetsCookie);
        }
        let mut vary = Vec::new();
        let names = headers
            .get_all(header::VARY)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|name| !name.is_empty());
        for name in names {
            if name == "*" {
                return Err(Uncacheable::VaryStar);
            }
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                if !vary.contains(&name) {
                    vary.push(name);
                }
            }
        }
        if let Some(length) = seconds_header(headers, &header::CONTENT_LENGTH) {
            if length > self.max_body_bytes {
                return Err(Uncacheable::TooLarge);
            }
        }
        let initial_age = seconds_header(headers, &header::AGE).unwrap_or(0);
        let lifetime = found
            .s_maxage
            .or(found.max_age)
            .map_or(self.ttl, |seconds| {
                self.ttl.min(Duration::from_secs(seconds))
            });
        let fresh_for = lifetime.saturating_sub(Duration::from_secs(initial_age));
        if fresh_for.is_zero() {
            return Err(Uncacheable::NotFresh);
        }
        let stale_for = found.stale_if_error.map_or(self.stale_if_error, |seconds| {
            self.stale_if_error.min(Duration::from_secs(seconds))
        });
        Ok(Storable {
            fresh_for,
            stale_for,
            initial_age,
            vary,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const POLICY: CachePolicy = CachePolicy {
        ttl: Duration::from_secs(60),
        stale_if_error: Duration::from_secs(30),
        max_body_bytes: 1024,
        cache_not_found: false,
    };

    fn head(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    fn judge(status: u16, pairs: &[(&'static str, &'static str)]) -> Result<Storable, Uncacheable> {
        POLICY.judge(
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            &head(pairs),
        )
    }

    #[test]
    fn a_plain_200_is_fresh_for_the_ttl_with_the_stale_window() {
        let storable = judge(200, &[]).expect("storable");
        assert_eq!(storable.fresh_for, Duration::from_secs(60));
        assert_eq!(storable.stale_for, Duration::from_secs(30));
        assert!(storable.vary.is_empty());
    }

    #[test]
    fn shorter_max_age_wins_and_s_maxage_overrides_it_and_age_is_subtracted() {
        assert_eq!(
            judge(200, &[("cache-control", "max-age=5")]).map(|s| s.fresh_for),
            Ok(Duration::from_secs(5))
        );
        assert_eq!(
            judge(200, &[("cache-control", "max-age=500")]).map(|s| s.fresh_for),
            Ok(Duration::from_secs(60))
        );
        assert_eq!(
            judge(200, &[("cache-control", "max-age=5, s-maxage=7")]).map(|s| s.fresh_for),
            Ok(Duration::from_secs(7))
        );
        let aged = judge(200, &[("cache-control", "max-age=10"), ("age", "4")]).expect("storable");
        assert_eq!(
            (aged.fresh_for, aged.initial_age),
            (Duration::from_secs(6), 4)
        );
        assert_eq!(
            judge(200, &[("cache-control", "max-age=0")]),
            Err(Uncacheable::NotFresh)
        );
        assert_eq!(
            judge(200, &[("cache-control", "max-age=3"), ("age", "9")]),
            Err(Uncacheable::NotFresh)
        );
    }

    #[test]
    fn directives_cookies_vary_star_and_size_forbid_storing() {
        for directive in ["no-store", "private", "no-cache", "Private, max-age=60"] {
            assert_eq!(
                judge(200, &[("cache-control", directive)]),
                Err(Uncacheable::Directive)
            );
        }
        assert_eq!(
            judge(200, &[("set-cookie", "a=b")]),
            Err(Uncacheable::SetsCookie)
        );
        assert_eq!(
            judge(200, &[("vary", "accept, *")]),
            Err(Uncacheable::VaryStar)
        );
        assert_eq!(
            judge(200, &[("content-length", "1025")]),
            Err(Uncacheable::TooLarge)
        );
        assert!(judge(200, &[("content-length", "1024")]).is_ok());
    }

    #[test]
    fn only_2xx_but_206_and_404_when_allowed_are_stored() {
        for status in [200, 203, 204] {
            assert!(judge(status, &[]).is_ok(), "{status}");
        }
        for status in [206, 301, 404, 500, 503] {
            assert_eq!(judge(status, &[]), Err(Uncacheable::Status), "{status}");
        }
        let allowing = CachePolicy {
            cache_not_found: true,
            ..POLICY
        };
        assert!(allowing
            .judge(StatusCode::NOT_FOUND, &HeaderMap::new())
            .is_ok());
    }

    #[test]
    fn vary_names_are_collected_once_and_stale_if_error_may_be_shortened() {
        let storable = judge(
            200,
            &[
                ("vary", "Accept-Language, accept"),
                ("vary", "accept-language"),
            ],
        )
        .expect("storable");
        assert_eq!(
            storable.vary,
            vec![HeaderName::from_static("accept-language"), header::ACCEPT]
        );
        let shorter =
            judge(200, &[("cache-control", "max-age=9, stale-if-error=5")]).expect("storable");
        assert_eq!(shorter.stale_for, Duration::from_secs(5));
        let longer = judge(200, &[("cache-control", "stale-if-error=500")]).expect("storable");
        assert_eq!(longer.stale_for, Duration::from_secs(30));
    }
}
