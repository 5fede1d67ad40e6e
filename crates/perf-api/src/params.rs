//! Query parameters: each endpoint names the ones it takes; anything else, or a value that
//! does not parse, is a 400 naming the parameter and what is expected.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;

use crate::api_error::ApiError;

/// The query of one request, checked against the parameters the endpoint takes.
#[derive(Debug)]
pub(crate) struct Params(BTreeMap<String, String>);

impl Params {
    /// The parameters, refusing any not in `allowed`.
    pub(crate) fn parse(
        query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
        allowed: &[&str],
    ) -> Result<Self, ApiError> {
        let Query(map) = query.map_err(|rejection| ApiError {
            status: axum::http::StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: format!("the query string cannot be read: {}", rejection.body_text()),
        })?;
        if let Some(unknown) = map.keys().find(|key| !allowed.contains(&key.as_str())) {
            let expected = if allowed.is_empty() {
                "no query parameters on this endpoint".to_owned()
            } else {
                format!("one of: {}", allowed.join(", "))
            };
            return Err(ApiError::bad_parameter(unknown, &map[unknown], &expected));
        }
        Ok(Self(map))
    }

    /// A non-negative number of seconds.
    pub(crate) fn seconds(&self, name: &str) -> Result<Option<f64>, ApiError> {
        self.0
            .get(name)
            .map(|raw| {
                raw.parse::<f64>()
                    .ok()
                    .filter(|value| value.is_finite() && *value >= 0.0)
                    .ok_or_else(|| {
                        ApiError::bad_parameter(name, raw, "a non-negative number of seconds")
                    })
            })
            .transpose()
    }

    /// A whole number in `1..=max`.
    pub(crate) fn count(&self, name: &str, max: usize) -> Result<Option<usize>, ApiError> {
        self.0
            .get(name)
            .map(|raw| {
                raw.parse::<usize>()
                    .ok()
                    .filter(|value| (1..=max).contains(value))
                    .ok_or_else(|| {
                        ApiError::bad_parameter(
                            name,
                            raw,
                            &format!("a whole number from 1 to {max}"),
                        )
                    })
            })
            .transpose()
    }

    /// An instant as RFC 3339 (`2026-12-02T10:00:00Z`) or unix seconds, as unix seconds.
    pub(crate) fn instant(&self, name: &str) -> Result<Option<f64>, ApiError> {
        self.0
            .get(name)
            .map(|raw| {
                if let Ok(seconds) = raw.parse::<f64>() {
                    if seconds.is_finite() && seconds >= 0.0 {
                        return Ok(seconds);
                    }
                }
                humantime::parse_rfc3339_weak(raw)
                    .ok()
                    .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|since_epoch| since_epoch.as_secs_f64())
                    .ok_or_else(|| {
                        ApiError::bad_parameter(
                            name,
                            raw,
                            "an RFC 3339 time (2026-12-02T10:00:00Z) or unix seconds",
                        )
                    })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)], allowed: &[&str]) -> Result<Params, ApiError> {
        let map = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Params::parse(Ok(Query(map)), allowed)
    }

    #[test]
    fn unknown_and_malformed_parameters_name_themselves() {
        let error = params(&[("limt", "3")], &["since", "limit"]).unwrap_err();
        assert!(error.message.contains("`limt`"), "{}", error.message);
        assert!(error.message.contains("since, limit"), "{}", error.message);

        let p = params(
            &[("limit", "0"), ("since", "yesterday")],
            &["since", "limit"],
        )
        .unwrap();
        let error = p.count("limit", 10).unwrap_err();
        assert!(error.message.contains("from 1 to 10"), "{}", error.message);
        let error = p.instant("since").unwrap_err();
        assert!(error.message.contains("RFC 3339"), "{}", error.message);
    }

    #[test]
    fn instants_parse_as_rfc3339_or_unix_seconds() {
        let p = params(
            &[("since", "2026-12-02T00:00:00Z"), ("min_age_secs", "1.5")],
            &["since", "min_age_secs"],
        )
        .unwrap();
        assert_eq!(p.instant("since").unwrap(), Some(1_796_169_600.0));
        assert_eq!(p.seconds("min_age_secs").unwrap(), Some(1.5));
        let p = params(&[("since", "1796169600")], &["since"]).unwrap();
        assert_eq!(p.instant("since").unwrap(), Some(1_796_169_600.0));
        assert_eq!(p.seconds("absent").unwrap(), None);
    }
}
