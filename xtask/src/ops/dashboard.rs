//! The Grafana dashboard's structure and queries.

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The datasource every panel, query and variable uses: the dashboard's import input.
pub(crate) const DATASOURCE_UID: &str = "${DS_PROMETHEUS}";

/// Variables Grafana itself defines, and what stands in for each when an expression is
/// checked with promtool.
const BUILT_INS: &[(&str, &str)] = &[
    ("__rate_interval", "5m"),
    ("__interval", "1m"),
    ("__range", "1h"),
    ("__interval_ms", "60000"),
    ("__range_s", "3600"),
    ("__range_ms", "3600000"),
];

/// A PromQL query of the dashboard and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Query {
    /// `panel 6 "Cache hit rate", query A`, or `variable cache`.
    pub(crate) place: String,
    /// The expression as Grafana sends it, variables and all.
    pub(crate) expr: String,
}

/// What the dashboard holds.
#[derive(Debug)]
pub(crate) struct Dashboard {
    /// Panels other than rows.
    pub(crate) panels: usize,
    /// Every panel query, then every variable's query (the metric selector of a
    /// `label_values(selector, label)`).
    pub(crate) queries: Vec<Query>,
}

/// Reads the dashboard and checks that it can be imported as it is: a Prometheus
/// `DS_PROMETHEUS` input used by every panel, query and variable; a schema version; unique
/// panel ids inside the 24-column grid; at least one non-empty query per panel with unique
/// ref ids; and only declared variables or Grafana's own in the queries.
pub(crate) fn read(text: &str) -> Result<Dashboard> {
    let json: Value = serde_json::from_str(text).context("the dashboard is not JSON")?;
    let mut problems = Vec::new();

    let schema = json["schemaVersion"].as_u64().unwrap_or(0);
    if schema < 36 {
        problems.push(format!(
            "schemaVersion is {}, not a Grafana 9+ dashboard (36 or more)",
            json["schemaVersion"]
        ));
    }
    for key in ["title", "uid"] {
        if json[key].as_str().is_none_or(str::is_empty) {
            problems.push(format!("no {key}"));
        }
    }
    let has_input = json["__inputs"].as_array().is_some_and(|inputs| {
        inputs.iter().any(|input| {
            input["name"] == "DS_PROMETHEUS"
                && input["type"] == "datasource"
                && input["pluginId"] == "prometheus"
        })
    });
    if !has_input {
        problems.push("no __inputs entry DS_PROMETHEUS (a prometheus datasource)".to_owned());
    }

    let variables: Vec<&Value> = json["templating"]["list"]
        .as_array()
        .map(|list| list.iter().collect())
        .unwrap_or_default();
    let declared: BTreeSet<&str> = variables
        .iter()
        .filter_map(|variable| variable["name"].as_str())
        .collect();

    let mut queries = Vec::new();
    let mut ids = BTreeSet::new();
    let mut panels = 0;
    let mut all_panels = Vec::new();
    for panel in json["panels"].as_array().into_iter().flatten() {
        all_panels.push(panel);
        all_panels.extend(panel["panels"].as_array().into_iter().flatten());
    }
    if all_panels.is_empty() {
        problems.push("no panels".to_owned());
    }
    for panel in all_panels {
        let id = panel["id"].as_u64();
        let title = panel["title"].as_str().unwrap_or("");
        let name = format!(
            "panel {} {title:?}",
            id.map_or("?".to_owned(), |id| id.to_string())
        );
        match id {
            Some(id) if ids.insert(id) => {}
            Some(_) => problems.push(format!("{name}: its id is used twice")),
            None => problems.push(format!("{name}: no numeric id")),
        }
        let grid = &panel["gridPos"];
        match (grid["x"].as_u64(), grid["w"].as_u64(), grid["h"].as_u64()) {
            (Some(x), Some(w), Some(h)) if w > 0 && h > 0 && x + w <= 24 => {}
            _ => problems.push(format!(
                "{name}: gridPos {grid} is not inside the 24 columns"
            )),
        }
        if panel["type"] == "row" {
            continue;
        }
        panels += 1;
        if title.is_empty() {
            problems.push(format!("{name}: no title"));
        }
        if panel["datasource"]["uid"] != DATASOURCE_UID {
            problems.push(format!(
                "{name}: datasource {} is not {DATASOURCE_UID}",
                panel["datasource"]
            ));
        }
        let targets = panel["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("{name}: no queries"));
        }
        let mut ref_ids = BTreeSet::new();
        for target in targets {
            let ref_id = target["refId"].as_str().unwrap_or("");
            let place = format!("{name}, query {ref_id}");
            if ref_id.is_empty() || !ref_ids.insert(ref_id) {
                problems.push(format!("{place}: a missing or repeated refId"));
            }
            if !target["datasource"].is_null() && target["datasource"]["uid"] != DATASOURCE_UID {
                problems.push(format!(
                    "{place}: datasource {} is not {DATASOURCE_UID}",
                    target["datasource"]
                ));
            }
            match target["expr"].as_str().map(str::trim) {
                Some(expr) if !expr.is_empty() => queries.push(Query {
                    place,
                    expr: expr.to_owned(),
                }),
                _ => problems.push(format!("{place}: no expr")),
            }
        }
    }

    for variable in &variables {
        let name = variable["name"].as_str().unwrap_or("?");
        if variable["type"] != "query" {
            continue;
        }
        let place = format!("variable {name}");
        if variable["datasource"]["uid"] != DATASOURCE_UID {
            problems.push(format!(
                "{place}: datasource {} is not {DATASOURCE_UID}",
                variable["datasource"]
            ));
        }
        let query = variable["query"]["query"]
            .as_str()
            .or_else(|| variable["query"].as_str())
            .unwrap_or("");
        match label_values_selector(query) {
            Some(selector) => queries.push(Query {
                place,
                expr: selector.to_owned(),
            }),
            None => problems.push(format!(
                "{place}: {query:?} is not label_values(selector, label)"
            )),
        }
    }

    for query in &queries {
        for used in variables_in(&query.expr) {
            if !declared.contains(used.as_str())
                && !BUILT_INS.iter().any(|&(built_in, _)| built_in == used)
            {
                problems.push(format!(
                    "{}: ${used} is not a variable of the dashboard",
                    query.place
                ));
            }
        }
    }

    if !problems.is_empty() {
        bail!("the dashboard:\n  {}", problems.join("\n  "));
    }
    Ok(Dashboard { panels, queries })
}

/// The selector of `label_values(selector, label)`; `None` for any other query (including
/// `label_values(label)`, which names no metric).
fn label_values_selector(query: &str) -> Option<&str> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    let label = label.trim();
    (!label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some(selector.trim())
}

/// The variable names `$name`, `${name}`, `${name:format}` and `[[name]]` used in `expr`.
fn variables_in(expr: &str) -> Vec<String> {
    let mut found = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let word = |from: usize| -> String {
        chars[from..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
            .collect()
    };
    let mut at = 0;
    while at < chars.len() {
        if chars[at] == '$' {
            let from = if chars.get(at + 1) == Some(&'{') {
                at + 2
            } else {
                at + 1
            };
            let name = word(from);
            at = from + name.len();
            if !name.is_empty() {
                found.push(name);
            }
        } else if chars[at] == '[' && chars.get(at + 1) == Some(&'[') {
            let name = word(at + 2);
            at += 2 + name.len();
            if !name.is_empty() {
                found.push(name);
            }
        } else {
            at += 1;
        }
    }
    found
}

/// `expr` with Grafana's own interval variables replaced by durations, for promtool.
/// Declared variables stay: they stand inside matcher strings, where any text is valid.
pub(crate) fn with_built_ins(expr: &str) -> String {
    let mut out = expr.to_owned();
    for &(name, value) in BUILT_INS {
        out = out.replace(&format!("${{{name}}}"), value);
    }
    // Longest names first, so `$__interval_ms` is not read as `$__interval` + `_ms`.
    let mut by_length: Vec<&(&str, &str)> = BUILT_INS.iter().collect();
    by_length.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    for &&(name, value) in &by_length {
        out = out.replace(&format!("${name}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal(panels: &str, variables: &str) -> String {
        format!(
            r#"{{"__inputs":[{{"name":"DS_PROMETHEUS","type":"datasource","pluginId":"prometheus"}}],
               "schemaVersion":39,"title":"t","uid":"u","panels":[{panels}],
               "templating":{{"list":[{variables}]}}}}"#
        )
    }

    const DS: &str = r#"{"type":"prometheus","uid":"${DS_PROMETHEUS}"}"#;

    #[test]
    fn reads_panels_rows_and_variables() {
        let text = minimal(
            &format!(
                r#"{{"id":1,"type":"row","title":"r","gridPos":{{"x":0,"w":24,"h":1}},"panels":[
                     {{"id":3,"type":"stat","title":"in a row","datasource":{DS},"gridPos":{{"x":0,"w":6,"h":4}},
                       "targets":[{{"refId":"A","expr":"up"}}]}}]}},
                   {{"id":2,"type":"timeseries","title":"p","datasource":{DS},"gridPos":{{"x":12,"w":12,"h":8}},
                     "targets":[{{"refId":"A","datasource":{DS},"expr":"rate(x{{job=~\"$job\"}}[$__rate_interval])"}},
                                {{"refId":"B","expr":"y"}}]}}"#
            ),
            &format!(
                r#"{{"name":"job","type":"query","datasource":{DS},"query":{{"query":"label_values(resync_build_info, job)"}}}}"#
            ),
        );
        let dashboard = read(&text).expect("valid");
        assert_eq!(dashboard.panels, 2);
        let exprs: Vec<&str> = dashboard.queries.iter().map(|q| q.expr.as_str()).collect();
        assert_eq!(
            exprs,
            [
                "up",
                "rate(x{job=~\"$job\"}[$__rate_interval])",
                "y",
                "resync_build_info"
            ]
        );
        assert_eq!(dashboard.queries[1].place, "panel 2 \"p\", query A");
    }

    #[test]
    fn names_every_problem() {
        let text = r#"{"schemaVersion":27,"panels":[
            {"id":1,"type":"timeseries","title":"","datasource":{"uid":"prom"},"gridPos":{"x":20,"w":8,"h":8},
             "targets":[{"refId":"A","expr":"x[$window]"},{"refId":"A","expr":" "}]},
            {"id":1,"type":"stat","title":"s","datasource":{"uid":"${DS_PROMETHEUS}"},"gridPos":{"x":0,"w":8,"h":8}}],
            "templating":{"list":[{"name":"v","type":"query","datasource":{"uid":"${DS_PROMETHEUS}"},"query":"label_values(job)"}]}}"#;
        let error = read(text).err().map(|e| e.to_string()).unwrap_or_default();
        for expected in [
            "schemaVersion is 27",
            "no title",
            "no uid",
            "no __inputs entry DS_PROMETHEUS",
            "panel 1 \"\": gridPos",
            "panel 1 \"\": datasource",
            "query A: a missing or repeated refId",
            "query A: no expr",
            "panel 1 \"s\": its id is used twice",
            "panel 1 \"s\": no queries",
            "variable v: \"label_values(job)\" is not label_values(selector, label)",
            "$window is not a variable of the dashboard",
        ] {
            assert!(error.contains(expected), "{expected:?} not in:\n{error}");
        }
    }

    #[test]
    fn variables_and_built_ins() {
        assert_eq!(
            variables_in("a{x=~\"$job\",y=~\"${instance:regex}\"}[$__rate_interval] [[old]]"),
            ["job", "instance", "__rate_interval", "old"]
        );
        assert_eq!(
            with_built_ins("rate(a[$__rate_interval]) + rate(b[${__interval}]) * $__interval_ms"),
            "rate(a[5m]) + rate(b[1m]) * 60000"
        );
        assert_eq!(
            label_values_selector("label_values(up{job=~\"$job\"}, instance)"),
            Some("up{job=~\"$job\"}")
        );
        assert_eq!(label_values_selector("label_values(instance)"), None);
        assert_eq!(label_values_selector("query_result(up)"), None);
    }

    #[test]
    fn the_dashboard_of_docs_ops_reads() {
        let dashboard = read(include_str!("../../../docs/ops/grafana-dashboard.json"))
            .expect("docs/ops/grafana-dashboard.json is valid");
        assert!(dashboard.panels >= 10, "{dashboard:?}");
        for query in &dashboard.queries {
            let selectors = super::super::promql::selectors(&query.expr)
                .unwrap_or_else(|error| panic!("{}: {error:#}", query.place));
            assert!(
                !selectors.is_empty(),
                "{}: no metric in {}",
                query.place,
                query.expr
            );
        }
    }
}
