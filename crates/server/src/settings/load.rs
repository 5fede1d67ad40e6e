//! Where settings come from, in order of precedence (lowest first): the defaults, the
//! settings file, then `RESYNC_<KEY>` environment variables.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::Deserializer;

use super::validate::{Problem, SettingsError};
use super::Settings;

/// Where to read settings from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// An explicit `--config PATH`: it must exist.
    pub config: Option<PathBuf>,
    /// The file read when no `--config` is given, if it exists (`settings.toml`).
    pub default_file: PathBuf,
    /// Prefix of the environment variables (`RESYNC_`).
    pub env_prefix: String,
}

impl Default for Sources {
    fn default() -> Self {
        Self {
            config: None,
            default_file: PathBuf::from("settings.toml"),
            env_prefix: "RESYNC_".to_owned(),
        }
    }
}

/// Settings that loaded, and what was odd about them.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated settings.
    pub settings: Settings,
    /// The file they were read from, if any.
    pub file: Option<PathBuf>,
    /// Things worth a warning (keys of a legacy file this server does not use).
    pub warnings: Vec<String>,
}

/// Loads and validates the settings.
///
/// # Errors
///
/// Every problem found — an unreadable file, an unknown key, a value of the wrong type, a
/// value out of range — each naming the key, the value and what is expected.
pub fn load(sources: &Sources) -> Result<Loaded, SettingsError> {
    let keys = Settings::keys();
    let mut figment = Figment::from(Serialized::defaults(Settings::default()));
    let mut warnings = Vec::new();

    let file = match &sources.config {
        Some(path) if !path.is_file() => {
            return Err(SettingsError::single(
                "--config",
                &path.display().to_string(),
                "a readable settings file",
            ))
        }
        Some(path) => Some(path.clone()),
        None => sources
            .default_file
            .is_file()
            .then(|| sources.default_file.clone()),
    };
    if let Some(path) = &file {
        figment = merge_file(figment, path, &keys, &mut warnings)?;
    }

    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    // figment lowercases environment keys unless told not to; ours are upper case. Every
    // filter (`only` included) resets that flag to `true` in figment 0.10, so
    // `lowercase(false)` must come last.
    figment = figment.merge(
        Env::prefixed(&sources.env_prefix)
            .only(&key_refs)
            .lowercase(false),
    );

    let settings: Settings = figment
        .extract()
        .map_err(|error| SettingsError::from_figment(error, file.as_deref()))?;
    settings.validate()?;
    Ok(Loaded {
        settings,
        file,
        warnings,
    })
}

/// Merges a settings file: flat keys (canonical), or the original's layout with a
/// `[default]` table whose sub-tables are flattened (`[default.ASYNC_CACHE] TTL = 60` is
/// `ASYNC_CACHE_TTL`).
fn merge_file(
    figment: Figment,
    path: &Path,
    keys: &[String],
    warnings: &mut Vec<String>,
) -> Result<Figment, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        SettingsError::single(
            "--config",
            &path.display().to_string(),
            &format!("a readable settings file ({error})"),
        )
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|error| {
        SettingsError::new(vec![Problem {
            key: path.display().to_string(),
            value: String::new(),
            expected: format!(
                "valid TOML (a table declared twice must be merged into one): {}",
                error.message()
            ),
        }])
    })?;
    let Some(toml::Value::Table(legacy)) = table.get("default") else {
        return Ok(figment.merge(Toml::file_exact(path)));
    };
    for other in table.keys().filter(|key| *key != "default") {
        warnings.push(format!(
            "{}: ignoring `{other}`: only the [default] table of a legacy settings file is read",
            path.display()
        ));
    }
    let mut flat = toml::Table::new();
    flatten(legacy, "", &mut flat);
    let mut known = toml::Table::new();
    for (key, value) in flat {
        let alias = key.strip_suffix("_SECONDS").map(str::to_owned);
        match (keys.contains(&key), alias) {
            (true, _) => {
                known.insert(key, value);
            }
            (false, Some(alias)) if keys.contains(&alias) => {
                known.insert(alias, value);
            }
            _ => warnings.push(format!(
                "{}: ignoring legacy key `{key}`, which resync does not use",
                path.display()
            )),
        }
    }
    Ok(figment.merge(Serialized::defaults(known)))
}

fn flatten(table: &toml::Table, prefix: &str, out: &mut toml::Table) {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key.to_ascii_uppercase()
        } else {
            format!("{prefix}_{}", key.to_ascii_uppercase())
        };
        match value {
            toml::Value::Table(inner) => flatten(inner, &name, out),
            other => {
                out.insert(name, other.clone());
            }
        }
    }
}

/// Accepts any scalar for a string setting: `PERF_API_TOKEN=12345` arrives from the
/// environment as a number.
pub(crate) fn string_from_scalar<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<String, D::Error> {
    struct Scalar;
    impl serde::de::Visitor<'_> for Scalar {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_char<E: serde::de::Error>(self, v: char) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    deserializer.deserialize_any(Scalar)
}
