//! Generated sections of a Markdown file: the text between
//! `<!-- generated:NAME … -->` and `<!-- end generated:NAME -->`, each marker on a line of its
//! own. Everything else in the file is written by hand and left alone.

use anyhow::{bail, Context, Result};

/// The opening marker of section `name` (what follows the name up to `-->` is a note for
/// the reader).
fn begin(name: &str) -> String {
    format!("<!-- generated:{name} ")
}

fn end(name: &str) -> String {
    format!("<!-- end generated:{name} -->")
}

/// Where the body of section `name` lies in `text`: the byte range between the end of the
/// opening marker's line and the start of the closing marker's line.
fn body_range(text: &str, name: &str) -> Result<std::ops::Range<usize>> {
    let begin = begin(name);
    let end = end(name);
    let mut open = None;
    let mut close = None;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed.starts_with(&begin) && trimmed.ends_with("-->") {
            if open.is_some() {
                bail!("section {name} opens twice");
            }
            open = Some(at + line.len());
        } else if trimmed == end {
            if close.is_some() || open.is_none() {
                bail!("section {name} closes twice or before it opens");
            }
            close = Some(at);
        }
        at += line.len();
    }
    match (open, close) {
        (Some(open), Some(close)) => Ok(open..close),
        (None, _) => bail!("no `{begin}… -->` line"),
        (Some(_), None) => bail!("no `{end}` line"),
    }
}

/// The body of section `name`.
pub(crate) fn get<'a>(text: &'a str, name: &str) -> Result<&'a str> {
    let range = body_range(text, name)?;
    Ok(&text[range])
}

/// `text` with the body of section `name` replaced by `body` (which gets a final newline
/// when it lacks one).
pub(crate) fn replace(text: &str, name: &str, body: &str) -> Result<String> {
    let range = body_range(text, name).with_context(|| format!("section {name}"))?;
    let mut out = String::with_capacity(text.len() + body.len());
    out.push_str(&text[..range.start]);
    out.push_str(body);
    if !body.is_empty() && !body.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&text[range.end..]);
    Ok(out)
}

/// The names of every section in `text`, in order.
pub(crate) fn names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.trim_end().strip_prefix("<!-- generated:"))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# Title\n\
        <!-- generated:one (cargo xtask docs) -->\n\
        old\nlines\n\
        <!-- end generated:one -->\n\
        between\n\
        <!-- generated:two x -->\n\
        <!-- end generated:two -->\n\
        tail\n";

    #[test]
    fn replaces_only_the_body() {
        assert_eq!(get(TEXT, "one").unwrap(), "old\nlines\n");
        assert_eq!(get(TEXT, "two").unwrap(), "");
        let out = replace(TEXT, "one", "new").unwrap();
        assert_eq!(
            out,
            TEXT.replace("old\nlines\n", "new\n"),
            "a missing final newline is added"
        );
        let out = replace(&out, "two", "a\nb\n").unwrap();
        assert!(out.contains("<!-- generated:two x -->\na\nb\n<!-- end generated:two -->\ntail"));
        assert_eq!(names(&out), ["one", "two"]);
    }

    #[test]
    fn refuses_broken_markers() {
        assert!(get(TEXT, "three").is_err());
        assert!(get("<!-- generated:a -->\nx\n", "a").is_err());
        assert!(get("<!-- end generated:a -->\n<!-- generated:a -->\n", "a").is_err());
        let twice = format!("{TEXT}<!-- generated:one -->\n<!-- end generated:one -->\n");
        assert!(get(&twice, "one").is_err());
    }
}
