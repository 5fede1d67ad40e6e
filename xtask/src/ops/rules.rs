//! The `expr` of every rule in a Prometheus rules file, read without a YAML library.
//!
//! Only the shapes a rules file uses are read: list items (`- alert: …`, `- record: …`) whose
//! `expr:` is a block scalar (`|`, `|-`, `>`, …), a plain scalar (on one line or continued
//! on more indented lines) or a one-line quoted string. Anything else an item holds is
//! ignored. An item naming a rule without an `expr` it can read is an error, and the caller
//! compares the count with what `promtool check rules` found, so a rule this reader missed
//! cannot pass unchecked.

use anyhow::{bail, Result};

/// A rule of a rules file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    /// The `alert:` or `record:` name.
    pub(crate) name: String,
    /// The PromQL expression (a block scalar's lines joined with newlines).
    pub(crate) expr: String,
}

/// Every rule of `yaml`, in file order.
pub(crate) fn rules(yaml: &str) -> Result<Vec<Rule>> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut rules = Vec::new();
    // The current list item: its rule name and expression, and the line it started on.
    let mut item: Option<(Option<String>, Option<String>, usize)> = None;
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index];
        let content = strip_comment(line);
        let indent = line.len() - line.trim_start().len();
        let mut key_line = content.trim_start();
        let mut key_column = indent;
        if let Some(rest) = key_line.strip_prefix("- ") {
            finish(item.take(), &mut rules)?;
            item = Some((None, None, index + 1));
            key_column += 2 + (rest.len() - rest.trim_start().len());
            key_line = rest.trim_start();
        }
        index += 1;
        let Some((key, value)) = key_line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "alert" | "record" => {
                if let Some((name, _, _)) = item.as_mut() {
                    *name = Some(unquote(value)?);
                }
            }
            "expr" => {
                let expr = if value.starts_with('|') || value.starts_with('>') {
                    let (block, next) = more_indented(&lines, index, key_column);
                    index = next;
                    dedent(&block)
                } else if value.starts_with('"') || value.starts_with('\'') {
                    unquote(value)?
                } else {
                    let (more, next) = more_indented(&lines, index, key_column);
                    index = next;
                    std::iter::once(value)
                        .chain(more.iter().map(|line| line.trim()))
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                if let Some((_, slot, _)) = item.as_mut() {
                    *slot = Some(expr);
                }
            }
            _ => {}
        }
    }
    finish(item, &mut rules)?;
    Ok(rules)
}

/// Adds a finished list item to `rules` when it names a rule.
fn finish(
    item: Option<(Option<String>, Option<String>, usize)>,
    rules: &mut Vec<Rule>,
) -> Result<()> {
    match item {
        Some((Some(name), Some(expr), _)) if !expr.trim().is_empty() => {
            rules.push(Rule { name, expr });
        }
        Some((Some(name), _, line)) => {
            bail!("rule {name:?} (line {line}) has no expr this reader understands")
        }
        _ => {}
    }
    Ok(())
}

/// The lines from `start` that are blank or indented deeper than `column`, and the index
/// of the first line after them.
fn more_indented<'a>(lines: &[&'a str], start: usize, column: usize) -> (Vec<&'a str>, usize) {
    let mut end = start;
    while end < lines.len() {
        let line = lines[end];
        let indent = line.len() - line.trim_start().len();
        if !line.trim().is_empty() && indent <= column {
            break;
        }
        end += 1;
    }
    // Trailing blank lines belong to what follows.
    let mut last = end;
    while last > start && lines[last - 1].trim().is_empty() {
        last -= 1;
    }
    (lines[start..last].to_vec(), end)
}

/// A block scalar's lines without their common indentation.
fn dedent(block: &[&str]) -> String {
    let indent = block
        .iter()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    block
        .iter()
        .map(|line| line.get(indent..).unwrap_or("").trim_end())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A scalar on one line: plain, `"double"` (backslash escapes) or `'single'` (`''` is a
/// quote).
fn unquote(value: &str) -> Result<String> {
    if let Some(inner) = value.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Ok(out),
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(other) => out.push(other),
                    None => break,
                },
                c => out.push(c),
            }
        }
        bail!("a double-quoted value that does not end on its line: {value}");
    }
    if let Some(inner) = value.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    out.push('\'');
                } else {
                    return Ok(out);
                }
            } else {
                out.push(c);
            }
        }
        bail!("a single-quoted value that does not end on its line: {value}");
    }
    Ok(value.to_owned())
}

/// `line` without a trailing ` # comment` (a `#` outside quotes, after white space or at
/// the start).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (at, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(open), c) if c == open => quote = None,
            (None, '#') if previous.is_whitespace() => return &line[..at],
            _ => {}
        }
        previous = c;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_block_plain_and_quoted_exprs() {
        let yaml = r##"
groups:
  - name: g   # a group, not a rule
    rules:
      - alert: Block
        expr: |
          sum by (a) (rate(x[5m]))
            > 0

        for: 5m
        labels:
          severity: warning
      - alert: Plain
        expr: y > 1 # a comment
      - record: job:z:rate5m
        expr: rate(z[5m])
          / 2
      - expr: "w{a=\"b\"} > 0"
        alert: ExprFirst
      - alert: 'Single ''quoted'''
        expr: 'v{a="#"} > 0'
      - alert: Folded
        expr: >-
          u
          > 0
  - name: h
    rules: []
"##;
        let found = rules(yaml).expect("reads");
        let pairs: Vec<(&str, &str)> = found
            .iter()
            .map(|rule| (rule.name.as_str(), rule.expr.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("Block", "sum by (a) (rate(x[5m]))\n  > 0"),
                ("Plain", "y > 1"),
                ("job:z:rate5m", "rate(z[5m]) / 2"),
                ("ExprFirst", "w{a=\"b\"} > 0"),
                ("Single 'quoted'", "v{a=\"#\"} > 0"),
                ("Folded", "u\n> 0"),
            ]
        );
    }

    #[test]
    fn a_rule_without_a_readable_expr_is_an_error() {
        assert!(
            rules("groups:\n  - name: g\n    rules:\n      - alert: A\n        for: 1m\n").is_err()
        );
        assert!(rules("      - alert: A\n        expr: \"open\n").is_err());
        assert!(rules("      - alert: A\n        expr:\n").is_err());
    }

    #[test]
    fn the_alerts_file_has_an_expr_for_every_alert() {
        let text = include_str!("../../../docs/ops/alerts.yml");
        let found = rules(text).expect("reads");
        let alerts = text
            .lines()
            .filter(|line| line.trim_start().starts_with("- alert:"))
            .count();
        assert_eq!(found.len(), alerts);
        assert!(found.len() >= 10, "{found:?}");
        for rule in &found {
            assert!(rule.name.starts_with("Resync"), "{rule:?}");
            assert!(rule.expr.contains("resync_"), "{rule:?}");
        }
    }
}
