//! The settings reference, read from the source of the server's `Settings` struct
//! (`crates/server/src/settings/mod.rs`): each field's key, type and doc comment, and its
//! default from `impl Default for Settings` — the values the binary is built with. Nothing
//! about a setting is written twice: the tables in the docs are rendered from this.
//!
//! The defaults are evaluated from the expressions of the `Default` impl, of the few forms it
//! uses (literals, `String::new()`, `"…".to_owned()`, a unit variant of an enum of the same
//! file with serde's `rename_all = "lowercase"`); any other form is an error naming the
//! field, so a new kind of default cannot be rendered wrong silently. A test checks the
//! result against the shipped `settings.toml`, which the server's own test checks against
//! `Settings::default()` at run time.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use syn::{Expr, Fields, Item, Lit, Type};

/// The source file of the `Settings` struct, relative to the workspace root.
pub(crate) const SOURCE: &str = "crates/server/src/settings/mod.rs";

/// One setting.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Setting {
    /// The key, e.g. `DB_POOL_MAX_SIZE` (the field name in upper case, as serde's
    /// `SCREAMING_SNAKE_CASE` writes it).
    pub(crate) key: String,
    /// What kind of value it takes, for a reader: `integer`, `number`, `boolean`, `string`,
    /// or the values of an enum (`` `pretty` or `json` ``).
    pub(crate) kind: String,
    /// Its default.
    pub(crate) default: Value,
    /// Its doc comment, as one line.
    pub(crate) doc: String,
}

/// A default value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Integer(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl Value {
    /// As the docs show it: TOML syntax (`100`, `0.5`, `false`, `"json"`; `""` for empty).
    pub(crate) fn render(&self) -> String {
        match self {
            Self::Integer(value) => value.to_string(),
            Self::Float(value) => format!("{value:?}"),
            Self::Bool(value) => value.to_string(),
            Self::Text(text) => format!("{text:?}"),
        }
    }

    /// Whether `toml` (a value of `settings.toml`) is this value.
    #[cfg(test)]
    pub(crate) fn matches_toml(&self, toml: &toml::Value) -> bool {
        match (self, toml) {
            (Self::Integer(a), toml::Value::Integer(b)) => a == b,
            (Self::Float(a), toml::Value::Float(b)) => a == b,
            (Self::Bool(a), toml::Value::Boolean(b)) => a == b,
            (Self::Text(a), toml::Value::String(b)) => a == b,
            _ => false,
        }
    }
}

/// The settings and the struct's own doc comment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reference {
    /// The doc comment of `Settings`, as one line.
    pub(crate) summary: String,
    /// Every setting, in the struct's order.
    pub(crate) settings: Vec<Setting>,
}

/// Reads [`SOURCE`] under `root`.
pub(crate) fn read(root: &Path) -> Result<Reference> {
    let path = root.join(SOURCE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("reading the settings from {SOURCE}"))
}

/// Reads the `Settings` struct, its `Default` impl and the enums of `source`.
pub(crate) fn parse(source: &str) -> Result<Reference> {
    let file = syn::parse_file(source).context("not valid Rust")?;
    let mut structure = None;
    let mut defaults = None;
    let mut enums = Vec::new();
    for item in &file.items {
        match item {
            Item::Struct(item) if item.ident == "Settings" => structure = Some(item),
            Item::Impl(item) if is_default_impl_of_settings(item) => defaults = Some(item),
            Item::Enum(item) => enums.push(item),
            _ => {}
        }
    }
    let structure = structure.context("no `struct Settings`")?;
    let defaults = defaults.context("no `impl Default for Settings`")?;
    let values = default_values(defaults, &enums)?;

    let Fields::Named(fields) = &structure.fields else {
        bail!("`Settings` has no named fields");
    };
    let mut settings = Vec::new();
    for field in &fields.named {
        let name = field
            .ident
            .as_ref()
            .context("a field of `Settings` without a name")?
            .to_string();
        let doc = doc_line(&field.attrs);
        ensure!(!doc.is_empty(), "`Settings::{name}` has no doc comment");
        let default = values
            .iter()
            .find(|(field, _)| *field == name)
            .map(|(_, value)| value.clone())
            .with_context(|| format!("`Settings::{name}` has no value in the Default impl"))?;
        settings.push(Setting {
            key: name.to_ascii_uppercase(),
            kind: kind(&field.ty, &enums)
                .with_context(|| format!("the type of `Settings::{name}`"))?,
            default,
            doc,
        });
    }
    ensure!(
        values.len() == settings.len(),
        "the Default impl sets {} fields, the struct has {}",
        values.len(),
        settings.len()
    );
    Ok(Reference {
        summary: doc_line(&structure.attrs),
        settings,
    })
}

fn is_default_impl_of_settings(item: &syn::ItemImpl) -> bool {
    let is_default = item
        .trait_
        .as_ref()
        .and_then(|(_, path, _)| path.segments.last())
        .is_some_and(|segment| segment.ident == "Default");
    let is_settings = matches!(&*item.self_ty, Type::Path(path)
        if path.path.segments.last().is_some_and(|segment| segment.ident == "Settings"));
    is_default && is_settings
}

/// The doc comment of `attrs` as one line: `///` lines joined by spaces, each without the
/// one space rustdoc's sugar puts after `///`.
fn doc_line(attrs: &[syn::Attribute]) -> String {
    let mut words = Vec::new();
    for attr in attrs {
        if !attr.path().is_ident("doc") {
            continue;
        }
        if let syn::Meta::NameValue(pair) = &attr.meta {
            if let Expr::Lit(syn::ExprLit {
                lit: Lit::Str(text),
                ..
            }) = &pair.value
            {
                let line = text.value();
                let line = line.trim();
                if !line.is_empty() {
                    words.push(line.to_owned());
                }
            }
        }
    }
    words.join(" ")
}

/// `(field, value)` for every field the `Default` impl sets.
fn default_values(item: &syn::ItemImpl, enums: &[&syn::ItemEnum]) -> Result<Vec<(String, Value)>> {
    let function = item
        .items
        .iter()
        .find_map(|item| match item {
            syn::ImplItem::Fn(function) if function.sig.ident == "default" => Some(function),
            _ => None,
        })
        .context("no `fn default` in the Default impl")?;
    let structure = function
        .block
        .stmts
        .iter()
        .rev()
        .find_map(|statement| match statement {
            syn::Stmt::Expr(Expr::Struct(structure), None) => Some(structure),
            _ => None,
        })
        .context("`fn default` does not end in a struct expression")?;
    structure
        .fields
        .iter()
        .map(|field| {
            let syn::Member::Named(name) = &field.member else {
                bail!("a positional field in the Default impl");
            };
            let name = name.to_string();
            let value = evaluate(&field.expr, enums)
                .with_context(|| format!("the default of `Settings::{name}`"))?;
            Ok((name, value))
        })
        .collect()
}

/// The value of a default's expression, of the forms the `Default` impl uses.
fn evaluate(expr: &Expr, enums: &[&syn::ItemEnum]) -> Result<Value> {
    match expr {
        Expr::Lit(literal) => literal_value(&literal.lit),
        Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            expr,
            ..
        }) => match evaluate(expr, enums)? {
            Value::Integer(value) => Ok(Value::Integer(-value)),
            Value::Float(value) => Ok(Value::Float(-value)),
            _ => bail!("a negated value that is not a number"),
        },
        // `String::new()`.
        Expr::Call(call) if call.args.is_empty() && path_is(&call.func, &["String", "new"]) => {
            Ok(Value::Text(String::new()))
        }
        // `"…".to_owned()` and the like.
        Expr::MethodCall(call)
            if call.args.is_empty()
                && ["to_owned", "to_string", "into"]
                    .iter()
                    .any(|method| call.method == method) =>
        {
            match evaluate(&call.receiver, enums)? {
                text @ Value::Text(_) => Ok(text),
                _ => bail!("`.{}()` on something other than a string", call.method),
            }
        }
        // `LogFormat::Pretty`: the variant as serde names it.
        Expr::Path(path) => {
            let segments: Vec<String> = path
                .path
                .segments
                .iter()
                .map(|segment| segment.ident.to_string())
                .collect();
            let [enum_name, variant] = segments.as_slice() else {
                bail!(
                    "a path that is not `Enum::Variant`: {}",
                    segments.join("::")
                );
            };
            let item = enums
                .iter()
                .find(|item| item.ident == enum_name)
                .with_context(|| format!("no enum {enum_name} in {SOURCE}"))?;
            ensure!(
                item.variants
                    .iter()
                    .any(|candidate| candidate.ident == variant),
                "{enum_name} has no variant {variant}"
            );
            Ok(Value::Text(serde_name(item, variant)?))
        }
        _ => bail!(
            "an expression of a form this generator does not evaluate (literals, String::new(), \
             \"…\".to_owned() and Enum::Variant are known); extend xtask/src/docs/settings.rs"
        ),
    }
}

fn literal_value(literal: &Lit) -> Result<Value> {
    Ok(match literal {
        Lit::Int(int) => Value::Integer(int.base10_parse().context("an integer literal")?),
        Lit::Float(float) => Value::Float(float.base10_parse().context("a float literal")?),
        Lit::Bool(value) => Value::Bool(value.value),
        Lit::Str(text) => Value::Text(text.value()),
        _ => bail!("a literal that is not a number, boolean or string"),
    })
}

fn path_is(expr: &Expr, expected: &[&str]) -> bool {
    let Expr::Path(path) = expr else {
        return false;
    };
    path.path.segments.len() == expected.len()
        && path
            .path
            .segments
            .iter()
            .zip(expected)
            .all(|(segment, expected)| segment.ident == expected)
}

/// How serde names `variant` of `item`: only `rename_all = "lowercase"` (or no renaming) is
/// understood.
fn serde_name(item: &syn::ItemEnum, variant: &str) -> Result<String> {
    let mut rename_all = None;
    for attr in &item.attrs {
        if !attr.path().is_ident("serde") {
            continue;
        }
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename_all") {
                let value: syn::LitStr = meta.value()?.parse()?;
                rename_all = Some(value.value());
            } else if meta.input.peek(syn::Token![=]) {
                // Another `key = value` option: read past its value.
                let _: Expr = meta.value()?.parse()?;
            }
            Ok(())
        })
        .with_context(|| format!("the serde attribute of {}", item.ident))?;
    }
    match rename_all.as_deref() {
        None => Ok(variant.to_owned()),
        Some("lowercase") => Ok(variant.to_ascii_lowercase()),
        Some(other) => bail!(
            "{} renames its variants by {other:?}, which this generator does not know",
            item.ident
        ),
    }
}

/// What kind of value a field of type `ty` takes.
fn kind(ty: &Type, enums: &[&syn::ItemEnum]) -> Result<String> {
    let Type::Path(path) = ty else {
        bail!("not a plain type");
    };
    let name = path
        .path
        .segments
        .last()
        .context("an empty type path")?
        .ident
        .to_string();
    Ok(match name.as_str() {
        "u8" | "u16" | "u32" | "u64" | "usize" | "i32" | "i64" => "integer".to_owned(),
        "f32" | "f64" => "number".to_owned(),
        "bool" => "boolean".to_owned(),
        "String" => "string".to_owned(),
        other => {
            let item = enums
                .iter()
                .find(|item| item.ident == other)
                .with_context(|| {
                    format!("type {other} is neither a primitive nor an enum of {SOURCE}")
                })?;
            let names = item
                .variants
                .iter()
                .map(|variant| {
                    serde_name(item, &variant.ident.to_string()).map(|n| format!("`{n}`"))
                })
                .collect::<Result<Vec<_>>>()?;
            names.join(" or ")
        }
    })
}

/// Markdown table cells cannot hold `|` unescaped.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The full reference: the struct's summary and one row per setting.
pub(crate) fn full_table(reference: &Reference) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "From the doc comments and `Default` impl of `Settings` in [`{SOURCE}`](../{SOURCE}): \
         {}\n",
        cell(&reference.summary)
    );
    out.push_str("| key | default | type | what it does |\n|---|---|---|---|\n");
    for setting in &reference.settings {
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} | {} |",
            setting.key,
            setting.default.render(),
            setting.kind,
            cell(&setting.doc)
        );
    }
    out
}

/// The settings most often changed, in this order; the quick reference and the README show
/// them (`selected_table`).
pub(crate) const MOST_USED: &[&str] = &[
    "BIND_ADDR",
    "TWS_BASE_URL",
    "DATABASE_URL",
    "REDIS_URL",
    "ASYNC_CACHE_MAX_MEMORY_MB",
    "ASYNC_CACHE_MAX_ENTRIES",
    "ASYNC_CACHE_TTL",
    "GATEWAY_L2",
    "DB_POOL_MAX_SIZE",
    "REDIS_POOL_MAX_SIZE",
    "HTTP_POOL_MAX_SIZE",
    "TWS_READ_TIMEOUT",
    "LEAK_THRESHOLD_SECS",
    "PERF_API_TOKEN",
    "PERF_HEALTH_WINDOW_SECS",
    "LOG_FORMAT",
];

/// A table of the settings named in `keys`, in that order; fails on a key the struct does
/// not have.
pub(crate) fn selected_table(reference: &Reference, keys: &[&str]) -> Result<String> {
    let mut out = String::from("| key | default | what it does |\n|---|---|---|\n");
    for key in keys {
        let setting = reference
            .settings
            .iter()
            .find(|setting| setting.key == *key)
            .with_context(|| format!("{key} is not a setting of {SOURCE}"))?;
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} |",
            setting.key,
            setting.default.render(),
            cell(&setting.doc)
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
        use serde::Deserialize;
        /// How logs look.
        #[derive(Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum LogFormat { Pretty, Json }

        /// Every setting.
        /// Second line.
        #[derive(Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
        pub struct Settings {
            /// The URL; empty | off.
            #[serde(deserialize_with = "x")]
            pub some_url: String,
            /// Max
            /// size.
            pub pool_max_size: u32,
            /// A ratio.
            pub max_rate: f64,
            /// On or off.
            pub enabled: bool,
            /// Format.
            pub log_format: LogFormat,
            /// Address.
            pub bind_addr: String,
        }

        impl Default for Settings {
            fn default() -> Self {
                Self {
                    some_url: String::new(),
                    pool_max_size: 100_000,
                    max_rate: 0.05,
                    enabled: false,
                    log_format: LogFormat::Pretty,
                    bind_addr: "127.0.0.1:8000".to_owned(),
                }
            }
        }
    "#;

    #[test]
    fn reads_keys_kinds_defaults_and_docs() {
        let reference = parse(SAMPLE).unwrap();
        assert_eq!(reference.summary, "Every setting. Second line.");
        let rows: Vec<(&str, &str, String, &str)> = reference
            .settings
            .iter()
            .map(|s| {
                (
                    s.key.as_str(),
                    s.kind.as_str(),
                    s.default.render(),
                    s.doc.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (
                    "SOME_URL",
                    "string",
                    "\"\"".to_owned(),
                    "The URL; empty | off."
                ),
                ("POOL_MAX_SIZE", "integer", "100000".to_owned(), "Max size."),
                ("MAX_RATE", "number", "0.05".to_owned(), "A ratio."),
                ("ENABLED", "boolean", "false".to_owned(), "On or off."),
                (
                    "LOG_FORMAT",
                    "`pretty` or `json`",
                    "\"pretty\"".to_owned(),
                    "Format."
                ),
                (
                    "BIND_ADDR",
                    "string",
                    "\"127.0.0.1:8000\"".to_owned(),
                    "Address."
                ),
            ]
        );
        let table = full_table(&reference);
        assert!(table.contains("| `SOME_URL` | `\"\"` | string | The URL; empty \\| off. |"));
        let selected = selected_table(&reference, &["BIND_ADDR", "ENABLED"]).unwrap();
        assert_eq!(
            selected,
            "| key | default | what it does |\n|---|---|---|\n\
             | `BIND_ADDR` | `\"127.0.0.1:8000\"` | Address. |\n\
             | `ENABLED` | `false` | On or off. |\n"
        );
        assert!(selected_table(&reference, &["NOPE"]).is_err());
    }

    #[test]
    fn refuses_what_it_cannot_render() {
        let undocumented = SAMPLE.replace("/// A ratio.\n", "");
        assert!(parse(&undocumented).is_err());
        let computed = SAMPLE.replace("max_rate: 0.05,", "max_rate: rate(),");
        let error = format!("{:#}", parse(&computed).unwrap_err());
        assert!(error.contains("Settings::max_rate"), "{error}");
        let missing = SAMPLE.replace("enabled: false,", "");
        assert!(parse(&missing).is_err());
    }

    /// The defaults read from the source are the shipped `settings.toml`'s, key for key;
    /// the server's test `shipped_settings_toml_matches_the_struct` checks that file against
    /// `Settings::default()` at run time, so these are the values the binary uses.
    #[test]
    fn the_real_settings_match_the_shipped_settings_toml() {
        let root = crate::project_root();
        let reference = read(&root).unwrap();
        let text = std::fs::read_to_string(root.join("settings.toml")).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(reference.settings.len(), table.len());
        for setting in &reference.settings {
            let shipped = table
                .get(&setting.key)
                .unwrap_or_else(|| panic!("{} is not in settings.toml", setting.key));
            assert!(
                setting.default.matches_toml(shipped),
                "{}: {} from the source, {shipped} in settings.toml",
                setting.key,
                setting.default.render()
            );
        }
    }
}
