//! JSON as the server wrote it, indented: the docs show a response's members in the order the
//! server sent them and its numbers as it spelled them, so the text is re-indented rather
//! than parsed and printed again (serde_json's map would sort the keys).

use std::fmt::Write as _;

use anyhow::{bail, ensure, Context, Result};

/// `raw` indented by two spaces per level, one member or element per line; `{}` and `[]`
/// stay on one line. Fails when `raw` is not JSON.
pub(crate) fn pretty(raw: &str) -> Result<String> {
    let _: serde_json::Value = serde_json::from_str(raw).context("not JSON")?;
    let mut out = String::with_capacity(raw.len() * 2);
    let mut depth = 0usize;
    let mut chars = raw.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                out.push('"');
                while let Some(c) = chars.next() {
                    out.push(c);
                    match c {
                        '\\' => {
                            if let Some(escaped) = chars.next() {
                                out.push(escaped);
                            }
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while chars.peek().is_some_and(char::is_ascii_whitespace) {
                    chars.next();
                }
                if chars.peek() == Some(&close) {
                    chars.next();
                    out.push(c);
                    out.push(close);
                } else {
                    out.push(c);
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The members of the JSON object `raw`, in order: each key (unescaped) and the raw text of
/// its value.
pub(crate) fn members(raw: &str) -> Result<Vec<(String, String)>> {
    let value: serde_json::Value = serde_json::from_str(raw).context("not JSON")?;
    ensure!(value.is_object(), "not a JSON object");
    let bytes = raw.as_bytes();
    let mut at = raw.find('{').context("no object")? + 1;
    let mut out = Vec::new();
    loop {
        at = skip_space(bytes, at);
        match bytes.get(at) {
            Some(b'}') => return Ok(out),
            Some(b',') => {
                at += 1;
                continue;
            }
            Some(b'"') => {}
            _ => bail!("unexpected text at byte {at}"),
        }
        let key_end = string_end(bytes, at)?;
        let key: String = serde_json::from_str(&raw[at..key_end]).context("a key")?;
        at = skip_space(bytes, key_end);
        ensure!(bytes.get(at) == Some(&b':'), "no `:` after key {key}");
        at = skip_space(bytes, at + 1);
        let value_end = value_end(bytes, at)?;
        out.push((key, raw[at..value_end].trim_end().to_owned()));
        at = value_end;
    }
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// The index just past the string starting at `at` (its opening quote).
fn string_end(bytes: &[u8], at: usize) -> Result<usize> {
    let mut index = at + 1;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'\\' => index += 2,
            b'"' => return Ok(index + 1),
            _ => index += 1,
        }
    }
    bail!("a string without its closing quote")
}

/// The index just past the value starting at `at`.
fn value_end(bytes: &[u8], at: usize) -> Result<usize> {
    let mut depth = 0usize;
    let mut index = at;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'"' => {
                index = string_end(bytes, index)?;
                if depth == 0 {
                    return Ok(index);
                }
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth == 0 => return Ok(index),
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(index + 1);
                }
            }
            b',' if depth == 0 => return Ok(index),
            _ => {}
        }
        index += 1;
    }
    bail!("a value without its end")
}

/// An object of `members` (key, raw value) as raw JSON.
pub(crate) fn object(members: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (index, (key, value)) in members.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}:{value}", serde_json::Value::from(key.as_str()));
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indents_keeping_order_and_spelling() {
        let raw = r#"{"z":1.0e-6,"a":[],"s":"x,{\"y\":[1]}","o":{"b":[1,{"c":null}],"e":{}}}"#;
        assert_eq!(
            pretty(raw).unwrap(),
            r#"{
  "z": 1.0e-6,
  "a": [],
  "s": "x,{\"y\":[1]}",
  "o": {
    "b": [
      1,
      {
        "c": null
      }
    ],
    "e": {}
  }
}"#
        );
        assert!(pretty("{").is_err());
    }

    #[test]
    fn splits_and_joins_members() {
        let raw = r#" { "b" : {"x": [1, "]"]}, "a\"q": "v,}", "n": 12 } "#;
        let members = members(raw).unwrap();
        assert_eq!(
            members,
            [
                ("b".to_owned(), r#"{"x": [1, "]"]}"#.to_owned()),
                ("a\"q".to_owned(), r#""v,}""#.to_owned()),
                ("n".to_owned(), "12".to_owned()),
            ]
        );
        let joined = object(&members);
        assert_eq!(joined, r#"{"b":{"x": [1, "]"]},"a\"q":"v,}","n":12}"#);
        assert!(super::members("[1]").is_err());
    }
}
