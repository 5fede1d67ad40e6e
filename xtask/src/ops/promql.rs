//! A small, conservative PromQL reader: the series selectors of an expression (metric names
//! and their label matchers), nothing else.
//!
//! It is not a parser — `promtool check rules` judges the syntax — but a tokenizer that
//! knows where a metric name can stand. An identifier is a metric name unless it is a
//! keyword (`and`, `by`, `offset`, …), a function or aggregation (followed by `(`), or a
//! label name: inside `{…}` matchers, or in the label list of `by`, `without`, `on`,
//! `ignoring`, `group_left` and `group_right`. Strings, numbers, durations, the brackets of a
//! range or subquery (`[5m:1m]`), comments and Grafana variables (`$__rate_interval`,
//! `${DS_PROMETHEUS}`, `[[var]]`) are skipped. What it cannot read — an unterminated string
//! or matcher list — is an error, never a silent skip.

use anyhow::{bail, Result};

/// Keywords followed by a parenthesised list of label names.
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Aggregation operators, which may take their `by (…)` or `without (…)` before the
/// parenthesised expression.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Keywords that are neither metric names nor functions.
const KEYWORDS: &[&str] = &[
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
];

/// How a label matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

/// One `label op "value"` of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Matcher {
    pub(crate) label: String,
    pub(crate) op: MatchOp,
    /// The value with its string escapes resolved.
    pub(crate) value: String,
}

/// A series selector: a metric name and its matchers (`{__name__="x"}` gives the name `x`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selector {
    pub(crate) name: String,
    pub(crate) matchers: Vec<Matcher>,
}

/// The selectors of `expr`, in order of appearance.
pub(crate) fn selectors(expr: &str) -> Result<Vec<Selector>> {
    Reader {
        chars: expr.chars().collect(),
        at: 0,
    }
    .read()
}

struct Reader {
    chars: Vec<char>,
    at: usize,
}

impl Reader {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.at + offset).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    /// The next character that is not white space, without consuming anything.
    fn next_significant(&self) -> Option<char> {
        self.chars[self.at..]
            .iter()
            .copied()
            .find(|c| !c.is_whitespace())
    }

    /// Whether the next word, after white space, is `by` or `without`.
    fn next_word_is_label_list_keyword(&self) -> bool {
        let word: String = self.chars[self.at..]
            .iter()
            .copied()
            .skip_while(|c| c.is_whitespace())
            .take_while(|&c| is_identifier_char(c))
            .collect();
        matches!(word.to_ascii_lowercase().as_str(), "by" | "without")
    }

    fn read(mut self) -> Result<Vec<Selector>> {
        let mut found = Vec::new();
        while let Some(c) = self.peek() {
            match c {
                c if c.is_whitespace() => self.at += 1,
                '#' => self.skip_comment(),
                '"' | '\'' | '`' => {
                    self.string()?;
                }
                '$' => self.skip_variable()?,
                '[' => self.skip_brackets()?,
                '{' => {
                    let matchers = self.matchers()?;
                    // `{__name__="x", …}`: a selector by name; otherwise no name to check.
                    if let Some(name) = matchers
                        .iter()
                        .find(|m| m.label == "__name__" && m.op == MatchOp::Equal)
                        .map(|m| m.value.clone())
                    {
                        let matchers = matchers
                            .into_iter()
                            .filter(|m| m.label != "__name__")
                            .collect();
                        found.push(Selector { name, matchers });
                    }
                }
                c if c.is_ascii_digit()
                    || (c == '.' && self.peek_at(1).is_some_and(|d| d.is_ascii_digit())) =>
                {
                    self.skip_number();
                }
                c if is_identifier_start(c) => {
                    let word = self.identifier();
                    let lower = word.to_ascii_lowercase();
                    if LABEL_LIST_KEYWORDS.contains(&lower.as_str()) {
                        self.skip_space();
                        if self.peek() == Some('(') {
                            self.skip_label_list()?;
                        }
                    } else if KEYWORDS.contains(&lower.as_str())
                        || self.next_significant() == Some('(')
                        || (AGGREGATIONS.contains(&lower.as_str())
                            && self.next_word_is_label_list_keyword())
                    {
                        // A keyword, or a function or aggregation name.
                    } else {
                        self.skip_space();
                        let matchers = if self.peek() == Some('{') {
                            self.matchers()?
                        } else {
                            Vec::new()
                        };
                        found.push(Selector {
                            name: word,
                            matchers,
                        });
                    }
                }
                _ => self.at += 1,
            }
        }
        Ok(found)
    }

    fn skip_comment(&mut self) {
        while let Some(c) = self.peek() {
            self.at += 1;
            if c == '\n' {
                break;
            }
        }
    }

    /// A quoted string at the cursor, its escapes resolved (backquoted strings have none).
    fn string(&mut self) -> Result<String> {
        let start = self.at;
        let Some(quote) = self.peek() else {
            bail!("expected a string at the end of the expression");
        };
        self.at += 1;
        let mut value = String::new();
        while let Some(c) = self.peek() {
            self.at += 1;
            if c == quote {
                return Ok(value);
            }
            if c == '\\' && quote != '`' {
                let Some(escaped) = self.peek() else { break };
                self.at += 1;
                value.push(match escaped {
                    'n' => '\n',
                    't' => '\t',
                    other => other,
                });
            } else {
                value.push(c);
            }
        }
        bail!(
            "unterminated string starting at character {start}: {}",
            self.chars[start..].iter().collect::<String>()
        )
    }

    /// `$name`, `${name}` or `${name:format}`: a Grafana variable.
    fn skip_variable(&mut self) -> Result<()> {
        self.at += 1;
        if self.peek() == Some('{') {
            let start = self.at;
            while let Some(c) = self.peek() {
                self.at += 1;
                if c == '}' {
                    return Ok(());
                }
            }
            bail!("unterminated variable ${{ at character {start}");
        }
        while self.peek().is_some_and(is_identifier_char) {
            self.at += 1;
        }
        Ok(())
    }

    /// A range or subquery (`[5m]`, `[$__rate_interval]`, `[1h:5m]`) or a Grafana
    /// `[[variable]]`: no metric name inside.
    fn skip_brackets(&mut self) -> Result<()> {
        let start = self.at;
        let mut depth = 0_usize;
        while let Some(c) = self.peek() {
            self.at += 1;
            match c {
                '[' => depth += 1,
                ']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        bail!("unterminated [ at character {start}")
    }

    /// A number or duration: `5m`, `1h30m`, `0.95`, `1e3`, `0x1F`.
    fn skip_number(&mut self) {
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
        {
            self.at += 1;
        }
    }

    fn identifier(&mut self) -> String {
        let start = self.at;
        while self.peek().is_some_and(is_identifier_char) {
            self.at += 1;
        }
        self.chars[start..self.at].iter().collect()
    }

    /// `( label, label … )` after `by`, `on`, …: label names, skipped.
    fn skip_label_list(&mut self) -> Result<()> {
        let start = self.at;
        while let Some(c) = self.peek() {
            self.at += 1;
            match c {
                ')' => return Ok(()),
                '"' | '\'' | '`' => {
                    self.at -= 1;
                    self.string()?;
                }
                _ => {}
            }
        }
        bail!("unterminated label list at character {start}")
    }

    /// `{ label op "value", … }` at the cursor.
    fn matchers(&mut self) -> Result<Vec<Matcher>> {
        let start = self.at;
        self.at += 1;
        let mut matchers = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                Some('}') => {
                    self.at += 1;
                    return Ok(matchers);
                }
                Some(c) if is_identifier_start(c) => {}
                Some('"') => {}
                Some(other) => bail!(
                    "unexpected {other:?} in the matchers starting at character {start}: {}",
                    self.rest_from(start)
                ),
                None => bail!(
                    "unterminated matchers starting at character {start}: {}",
                    self.rest_from(start)
                ),
            }
            let label = if self.peek() == Some('"') {
                self.string()?
            } else {
                self.identifier()
            };
            self.skip_space();
            let op = match (self.peek(), self.peek_at(1)) {
                (Some('='), Some('~')) => MatchOp::Regex,
                (Some('!'), Some('~')) => MatchOp::NotRegex,
                (Some('!'), Some('=')) => MatchOp::NotEqual,
                (Some('='), _) => MatchOp::Equal,
                _ => bail!(
                    "expected a matcher operator after {label:?} in the matchers starting at character {start}: {}",
                    self.rest_from(start)
                ),
            };
            self.at += if op == MatchOp::Equal { 1 } else { 2 };
            self.skip_space();
            if !matches!(self.peek(), Some('"' | '\'' | '`')) {
                bail!(
                    "expected a quoted value after {label:?} in the matchers starting at character {start}: {}",
                    self.rest_from(start)
                );
            }
            let value = self.string()?;
            matchers.push(Matcher { label, op, value });
            self.skip_space();
            match self.peek() {
                Some(',') => self.at += 1,
                Some('}') => {}
                _ => bail!(
                    "expected , or }} after the value of {:?} in the matchers starting at character {start}: {}",
                    matchers.last().map_or("", |m| m.label.as_str()),
                    self.rest_from(start)
                ),
            }
        }
    }

    fn rest_from(&self, start: usize) -> String {
        self.chars[start..].iter().take(120).collect()
    }
}

fn is_identifier_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expr: &str) -> Vec<String> {
        match selectors(expr) {
            Ok(found) => found.into_iter().map(|s| s.name).collect(),
            Err(error) => panic!("{expr:?}: {error:#}"),
        }
    }

    #[test]
    fn a_bare_name_and_one_with_matchers() {
        assert_eq!(names("up"), ["up"]);
        let found = selectors(
            r#"resync_pool_connections{pool="db", state!="max",le=~"0\\.1|\"x\"", kind!~'a'}"#,
        )
        .expect("parses");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "resync_pool_connections");
        assert_eq!(
            found[0].matchers,
            [
                Matcher {
                    label: "pool".into(),
                    op: MatchOp::Equal,
                    value: "db".into()
                },
                Matcher {
                    label: "state".into(),
                    op: MatchOp::NotEqual,
                    value: "max".into()
                },
                Matcher {
                    label: "le".into(),
                    op: MatchOp::Regex,
                    value: "0\\.1|\"x\"".into()
                },
                Matcher {
                    label: "kind".into(),
                    op: MatchOp::NotRegex,
                    value: "a".into()
                },
            ]
        );
    }

    #[test]
    fn functions_and_aggregations_are_not_names() {
        assert_eq!(
            names("histogram_quantile(0.95, sum by (pool, le) (rate(a_bucket[5m])))"),
            ["a_bucket"]
        );
        assert_eq!(names("sum (rate (a[5m])) by (job)"), ["a"]);
        assert_eq!(names("topk(3, b) + absent(c{x=\"y\"})"), ["b", "c"]);
        assert_eq!(
            names(r#"label_replace(m, "dst", "$1", "src", "(.*)")"#),
            ["m"]
        );
    }

    #[test]
    fn label_lists_are_not_names() {
        assert_eq!(
            names("sum without (instance) (x) / on (job, pool) group_left (kind) y"),
            ["x", "y"]
        );
        assert_eq!(names("a * ignoring(le) group_right b"), ["a", "b"]);
        assert_eq!(names("SUM BY (cache) (hits)"), ["hits"]);
        assert_eq!(
            names("count without (a) (b) + quantile by (c) (0.9, d)"),
            ["b", "d"]
        );
        // An aggregation's name standing alone is a metric name.
        assert_eq!(names("sum + 1"), ["sum"]);
    }

    #[test]
    fn keywords_numbers_and_durations_are_skipped() {
        assert_eq!(
            names("a > bool 0.5 and b or c unless d offset 1h30m"),
            ["a", "b", "c", "d"]
        );
        assert_eq!(
            names("e * 60 >= 1e3 and f < Inf and g != NaN"),
            ["e", "f", "g"]
        );
        assert_eq!(names("h @ 1609746000 + .5 + 0x1F"), ["h"]);
        assert_eq!(names("atan2 (i, j)"), ["i", "j"]);
        assert_eq!(names("i atan2 j"), ["i", "j"]);
    }

    #[test]
    fn ranges_subqueries_and_variables_are_skipped() {
        assert_eq!(names("rate(a[5m:1m])"), ["a"]);
        assert_eq!(
            names("max_over_time(rate(b[$__rate_interval])[1h:])"),
            ["b"]
        );
        assert_eq!(
            names(r#"c{job=~"$job", instance=~"${instance:regex}"} * $scale / ${factor}"#),
            ["c"]
        );
        assert_eq!(names("rate(d[[[interval]]])"), ["d"]);
    }

    #[test]
    fn strings_and_comments_hide_identifiers() {
        assert_eq!(
            names("count_values(\"not_a_name\", x) # y{z=\"1\"}\n + w"),
            ["x", "w"]
        );
        assert_eq!(names(r#"label_join(v, "a", "\"q\" b", 'c')"#), ["v"]);
        assert_eq!(names("`raw` + u"), ["u"]);
    }

    #[test]
    fn recording_rule_names_with_colons() {
        assert_eq!(
            names("job:resync_requests:rate5m > 0"),
            ["job:resync_requests:rate5m"]
        );
    }

    #[test]
    fn selectors_by_name_label() {
        let found =
            selectors(r#"{__name__="resync_cache_bytes", cache="responses"}"#).expect("parses");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "resync_cache_bytes");
        assert_eq!(found[0].matchers.len(), 1);
        assert!(names(r#"{__name__=~"resync_.*"}"#).is_empty());
    }

    #[test]
    fn unreadable_input_is_an_error() {
        for bad in [
            "a{b=\"c\"",
            "a{b=\"c}",
            "a{b}",
            "a{b=c}",
            "a{b=\"c\" d=\"e\"}",
            "rate(a[5m)",
            "\"open",
            "x + ${never",
            "sum by (job",
        ] {
            assert!(selectors(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
