//! Whether two JSON documents have the same shape: the same keys at the same places and the
//! same kinds of values, whatever the numbers and strings are. The example responses in the
//! docs are checked this way against a fresh capture, because their figures (latencies,
//! uptimes, timestamps) differ on every run while their structure must not.
//!
//! The rules, chosen so that a run-to-run difference in *traffic* is not reported while a
//! change of the API's *types* is:
//!
//! - objects must have the same keys, except under [`FREE_MAPS`] (maps whose keys depend on
//!   which rule fired, such as a recommendation's `evidence`);
//! - `null` matches anything (an optional figure is absent in one run and present in the
//!   next: a curve before enough samples, a last error);
//! - an empty array matches any array; otherwise every element of each side is compared with
//!   the first element of the other (arrays hold values of one type);
//! - numbers match numbers, strings strings, booleans booleans.

use serde_json::Value;

/// Object keys whose values are maps with data-dependent keys: their keys are not compared.
pub(crate) const FREE_MAPS: &[&str] = &["evidence"];

/// The differences between the shape of `documented` and that of `fresh`, each naming its
/// path (`$.pools[].window.seconds`); empty when they match.
pub(crate) fn differences(documented: &Value, fresh: &Value) -> Vec<String> {
    let mut out = Vec::new();
    compare(documented, fresh, "$", &mut out);
    out.sort();
    out.dedup();
    out
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn compare(documented: &Value, fresh: &Value, path: &str, out: &mut Vec<String>) {
    match (documented, fresh) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(a), Value::Object(b)) => {
            if FREE_MAPS
                .iter()
                .any(|free| path.ends_with(&format!(".{free}")))
            {
                return;
            }
            for key in a.keys().filter(|key| !b.contains_key(*key)) {
                out.push(format!(
                    "{path}.{key}: documented, no longer in the response"
                ));
            }
            for key in b.keys().filter(|key| !a.contains_key(*key)) {
                out.push(format!("{path}.{key}: in the response, not documented"));
            }
            for (key, value) in a {
                if let Some(other) = b.get(key) {
                    compare(value, other, &format!("{path}.{key}"), out);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            let (Some(first_a), Some(first_b)) = (a.first(), b.first()) else {
                return;
            };
            // The same difference found from both sides, or in several elements, is listed
            // once (`differences` sorts and deduplicates).
            let item = format!("{path}[]");
            for value in b {
                compare(first_a, value, &item, out);
            }
            for value in a {
                compare(value, first_b, &item, out);
            }
        }
        (a, b) if kind(a) == kind(b) => {}
        (a, b) => out.push(format!(
            "{path}: documented as {}, now {}",
            kind(a),
            kind(b)
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn figures_may_change_structure_may_not() {
        let documented = json!({
            "status": "healthy",
            "window_seconds": 12.5,
            "pools": [{"name": "db", "p95": 0.001, "last_error": null}],
            "recommendations": [],
            "evidence": {"a": 1.0},
        });
        let fresh = json!({
            "status": "degraded",
            "window_seconds": 60.0,
            "pools": [
                {"name": "db", "p95": 0.002, "last_error": {"message": "refused"}},
                {"name": "http", "p95": 0.3, "last_error": null},
            ],
            "recommendations": [{"code": "pool.exhausted", "evidence": {"b": 2.0}}],
            "evidence": {"c": 3.0},
        });
        assert_eq!(differences(&documented, &fresh), Vec::<String>::new());
    }

    #[test]
    fn names_every_structural_difference() {
        let documented = json!({
            "a": 1,
            "gone": true,
            "pools": [{"name": "db", "size": 3}],
            "list": [1, 2],
        });
        let fresh = json!({
            "a": "one",
            "new": true,
            "pools": [{"name": "db"}, {"name": "http", "extra": 1}],
            "list": [{"x": 1}],
        });
        assert_eq!(
            differences(&documented, &fresh),
            [
                "$.a: documented as a number, now a string",
                "$.gone: documented, no longer in the response",
                "$.list[]: documented as a number, now an object",
                "$.new: in the response, not documented",
                "$.pools[].extra: in the response, not documented",
                "$.pools[].size: documented, no longer in the response",
            ]
        );
    }
}
