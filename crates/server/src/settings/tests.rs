//! Settings: defaults, the shipped settings.toml, precedence and error messages.

// figment's `Jail::expect_with` fixes the closure's error type to its own large `Error`.
#![allow(clippy::result_large_err)]

use std::path::PathBuf;

use figment::Jail;

use super::*;

fn load_here() -> Result<Loaded, SettingsError> {
    load(&Sources::default())
}

fn load_error() -> SettingsError {
    match load_here() {
        Ok(loaded) => panic!("expected an error, got {:?}", loaded.settings),
        Err(error) => error,
    }
}

#[test]
fn defaults_are_valid_and_every_key_is_upper_case() {
    Settings::default().validate().unwrap();
    let keys = Settings::keys();
    assert_eq!(keys.len(), 51);
    assert!(keys.iter().all(|key| key == &key.to_ascii_uppercase()));
}

/// The shipped settings.toml and the `Settings` struct must agree: same keys, same
/// defaults. Change both together.
#[test]
fn shipped_settings_toml_matches_the_struct() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../settings.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    let mut in_file: Vec<String> = table.keys().cloned().collect();
    let mut in_struct = Settings::keys();
    in_file.sort();
    in_struct.sort();
    assert_eq!(
        in_file, in_struct,
        "settings.toml and Settings have different keys"
    );
    let parsed: Settings = toml::from_str(&text).unwrap();
    assert_eq!(parsed, Settings::default(), "settings.toml defaults differ");
    for key in &in_struct {
        let documented = text
            .lines()
            .zip(text.lines().skip(1))
            .any(|(above, line)| above.starts_with('#') && line.starts_with(&format!("{key} ")));
        assert!(documented, "{key} in settings.toml has no comment above it");
    }
}

#[test]
fn environment_beats_file_beats_defaults() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "settings.toml",
            "DB_POOL_MAX_SIZE = 50\nDB_POOL_MIN_SIZE = 5\nLOG_FORMAT = \"json\"\n",
        )?;
        jail.set_env("RESYNC_DB_POOL_MAX_SIZE", "70");
        jail.set_env("RESYNC_PERF_API_TOKEN", "12345");
        jail.set_env("RESYNC_UNRELATED", "ignored");
        let loaded = load_here().unwrap();
        assert_eq!(loaded.settings.db_pool_max_size, 70);
        assert_eq!(loaded.settings.db_pool_min_size, 5);
        assert_eq!(loaded.settings.log_format, LogFormat::Json);
        assert_eq!(loaded.settings.perf_api_token, "12345");
        assert_eq!(loaded.settings.redis_pool_max_size, 20);
        assert_eq!(loaded.file, Some(PathBuf::from("settings.toml")));
        Ok(())
    });
}

#[test]
fn a_value_of_the_wrong_type_names_key_value_and_expectation() {
    Jail::expect_with(|jail| {
        jail.set_env("RESYNC_DB_POOL_MAX_SIZE", "lots");
        let error = load_error();
        let problem = &error.problems[0];
        assert_eq!(problem.key, "DB_POOL_MAX_SIZE");
        assert!(problem.value.contains("lots"), "{problem}");
        assert!(problem.expected.contains("u32"), "{problem}");
        Ok(())
    });
}

#[test]
fn out_of_range_values_are_all_reported() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "settings.toml",
            "REDIS_POOL_MIN_SIZE = 30\nHEALTH_POOL_MAX_ERROR_RATE = 1.5\n\
             BIND_ADDR = \"localhost\"\nREDIS_URL = \"http://x\"\nLOG_FORMAT = \"xml\"\n",
        )?;
        let error = load_error();
        let keys: Vec<&str> = error.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["LOG_FORMAT"], "type errors come first: {error}");
        jail.create_file(
            "settings.toml",
            "REDIS_POOL_MIN_SIZE = 30\nHEALTH_POOL_MAX_ERROR_RATE = 1.5\n\
             BIND_ADDR = \"localhost\"\nREDIS_URL = \"http://x\"\n",
        )?;
        let error = load_error();
        let keys: Vec<&str> = error.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "REDIS_URL",
                "REDIS_POOL_MIN_SIZE",
                "BIND_ADDR",
                "HEALTH_POOL_MAX_ERROR_RATE"
            ]
        );
        let text = error.to_string();
        assert!(
            text.contains("REDIS_POOL_MIN_SIZE = 30: expected at most REDIS_POOL_MAX_SIZE (20)")
        );
        assert!(text.contains("HEALTH_POOL_MAX_ERROR_RATE = 1.5: expected a ratio between 0 and 1"));
        Ok(())
    });
}

#[test]
fn unknown_keys_in_a_flat_file_are_rejected() {
    Jail::expect_with(|jail| {
        jail.create_file("settings.toml", "DB_POOL_MAX_SIZ = 5\n")?;
        let error = load_error();
        assert_eq!(error.problems[0].key, "DB_POOL_MAX_SIZ");
        Ok(())
    });
}

#[test]
fn a_legacy_default_table_is_flattened() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "settings.toml",
            "[default]\nDB_POOL_MAX_SIZE = 40\nTWS_HOST = \"tws\"\n\
             [default.ASYNC_CACHE]\nTTL_SECONDS = 120\nMAX_ENTRIES = 500\n\
             [production]\nDB_POOL_MAX_SIZE = 1\n",
        )?;
        let loaded = load_here().unwrap();
        assert_eq!(loaded.settings.db_pool_max_size, 40);
        assert_eq!(loaded.settings.async_cache_ttl, 120);
        assert_eq!(loaded.settings.async_cache_max_entries, 500);
        assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
        assert!(loaded.warnings.iter().any(|w| w.contains("TWS_HOST")));
        Ok(())
    });
}

#[test]
fn a_missing_config_file_or_broken_toml_is_an_error() {
    Jail::expect_with(|jail| {
        let sources = Sources {
            config: Some(PathBuf::from("nope.toml")),
            ..Sources::default()
        };
        let error = load(&sources).unwrap_err();
        assert_eq!(error.problems[0].key, "--config");
        assert_eq!(error.problems[0].value, "nope.toml");
        jail.create_file("settings.toml", "[a]\nx = 1\n[a]\ny = 2\n")?;
        let error = load_error();
        assert!(error.to_string().contains("declared twice"), "{error}");
        Ok(())
    });
}

#[test]
fn secrets_are_redacted() {
    let settings = Settings {
        perf_api_token: "hunter2".into(),
        database_url: "postgres://app:s3cret@db:5432/app".into(),
        ..Settings::default()
    };
    let shown = settings.redacted_toml();
    assert!(
        !shown.contains("hunter2") && !shown.contains("s3cret"),
        "{shown}"
    );
    assert!(
        shown.contains("postgres://app:<redacted>@db:5432/app"),
        "{shown}"
    );
}
