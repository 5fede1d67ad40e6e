//! The steps of `cargo xtask ci` that keep every published crate usable on its own:
//!
//! 1. its package metadata is complete ([`check_metadata`]: description, license,
//!    repository, documentation, docs.rs settings, readme, keywords, categories, minimum Rust
//!    version) and its README has a Rust example — which the crate's `lib.rs` compiles and
//!    runs as a doctest (`#[doc = include_str!("../README.md")]` under `cfg(doctest)`), so
//!    `cargo test` proves the example runs;
//! 2. it builds alone — `cargo check -p <crate>` resolves only that crate's features, so a
//!    dependency feature that only another workspace member turned on is caught — with its
//!    default features and, when it has optional features, with none and with all of them;
//! 3. `cargo package --workspace --no-verify` packages every published crate together
//!    (cargo puts the workspace's unpublished versions in a local registry overlay, so a crate
//!    that depends on another workspace crate packages before that one is on crates.io), which
//!    checks each manifest as crates.io would read it. The packages are not built again here
//!    (`--no-verify`): that rebuilds every dependency without the workspace's profiles, more
//!    than three minutes on the 2-core machine, and step 2 already builds each crate alone.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::{cargo, run_step};

/// Every step, in order.
pub(crate) fn run(root: &Path) -> Result<()> {
    let packages = published(root)?;
    check_metadata(root, &packages)?;
    for package in &packages {
        check_alone(root, package)?;
    }
    let mut package = cargo(root);
    package.args([
        "package",
        "--workspace",
        "--no-verify",
        "--locked",
        "--offline",
        "--allow-dirty",
    ]);
    for excluded in unpublished(root)? {
        package.args(["--exclude", &excluded]);
    }
    run_step("cargo package (every published crate)", package)
}

/// The workspace's packages as `cargo metadata` describes them.
fn metadata(root: &Path) -> Result<Vec<Value>> {
    let output = cargo(root)
        .args(["metadata", "--no-deps", "--format-version", "1", "--locked"])
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let json: Value =
        serde_json::from_slice(&output.stdout).context("cargo metadata printed no JSON")?;
    Ok(json["packages"].as_array().cloned().unwrap_or_default())
}

/// Whether a package may be published (`publish` not `false`).
fn is_published(package: &Value) -> bool {
    !matches!(&package["publish"], Value::Array(registries) if registries.is_empty())
}

fn published(root: &Path) -> Result<Vec<Value>> {
    Ok(metadata(root)?.into_iter().filter(is_published).collect())
}

fn unpublished(root: &Path) -> Result<Vec<String>> {
    Ok(metadata(root)?
        .iter()
        .filter(|package| !is_published(package))
        .filter_map(|package| package["name"].as_str().map(str::to_owned))
        .collect())
}

/// Every problem with the metadata and README of `packages`; fails listing them all.
pub(crate) fn check_metadata(root: &Path, packages: &[Value]) -> Result<()> {
    eprintln!("\n==> package metadata of {} crates", packages.len());
    let problems: Vec<String> = packages
        .iter()
        .flat_map(|package| metadata_problems(root, package))
        .collect();
    if !problems.is_empty() {
        bail!("incomplete package metadata:\n  {}", problems.join("\n  "));
    }
    Ok(())
}

/// What `package` lacks.
fn metadata_problems(root: &Path, package: &Value) -> Vec<String> {
    let name = package["name"].as_str().unwrap_or("?");
    let mut problems = Vec::new();
    let mut lacks = |what: &str| problems.push(format!("{name}: {what}"));
    for field in [
        "description",
        "license",
        "repository",
        "documentation",
        "rust_version",
    ] {
        if package[field].as_str().is_none_or(str::is_empty) {
            lacks(&format!("no `{field}`"));
        }
    }
    let keywords = package["keywords"].as_array().map_or(0, Vec::len);
    if !(1..=5).contains(&keywords) {
        lacks(&format!("{keywords} keywords (crates.io takes 1 to 5)"));
    }
    if package["categories"].as_array().is_none_or(Vec::is_empty) {
        lacks("no `categories`");
    }
    if package["metadata"]["docs"]["rs"]["all-features"] != Value::Bool(true) {
        lacks("no `[package.metadata.docs.rs] all-features = true`");
    }
    let manifest = Path::new(package["manifest_path"].as_str().unwrap_or_default());
    let dir = manifest.parent().unwrap_or(root);
    let readme = package["readme"].as_str().map(|readme| dir.join(readme));
    let text = match readme {
        Some(path) => std::fs::read_to_string(&path).unwrap_or_default(),
        None => {
            lacks("no `readme`");
            String::new()
        }
    };
    let is_library_only = package["targets"].as_array().is_some_and(|targets| {
        targets
            .iter()
            .any(|target| target["kind"] == Value::from(vec!["lib"]))
            && !targets
                .iter()
                .any(|target| target["kind"] == Value::from(vec!["bin"]))
    });
    if is_library_only {
        if !text.contains("```rust\n") {
            lacks("a README without a ```rust example");
        }
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap_or_default();
        if !lib.contains("include_str!(\"../README.md\")") {
            lacks("a lib.rs that does not run the README's examples as doctests");
        }
    }
    problems
}

/// `cargo check -p <crate>` with its default features, and with none and all of them when it
/// has optional features.
fn check_alone(root: &Path, package: &Value) -> Result<()> {
    let name = package["name"]
        .as_str()
        .context("a package without a name")?;
    let has_features = package["features"]
        .as_object()
        .is_some_and(|features| features.keys().any(|feature| feature != "default"));
    let mut variants: Vec<&[&str]> = vec![&[]];
    if has_features {
        variants.push(&["--no-default-features"]);
        variants.push(&["--all-features"]);
    }
    for extra in variants {
        let mut check = cargo(root);
        check
            .args(["check", "--locked", "--lib", "--bins", "-p", name])
            .args(extra);
        let what = if extra.is_empty() {
            format!("{name} alone")
        } else {
            format!("{name} alone, {}", extra.join(" "))
        };
        run_step(&what, check)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every published crate's metadata and README are complete now (the same check
    /// `cargo xtask ci` runs before packaging).
    #[test]
    fn published_crates_have_complete_metadata() {
        let root = crate::project_root();
        let packages = published(&root).unwrap();
        let names: Vec<&str> = packages
            .iter()
            .filter_map(|package| package["name"].as_str())
            .collect();
        for expected in [
            "resync-perf-core",
            "resync-cache-core",
            "resync-pool-optimizer",
            "resync-resource-manager",
            "resync-perf-api",
            "resync-server",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} is not published: {names:?}"
            );
        }
        assert!(!names.contains(&"test-support") && !names.contains(&"xtask"));
        check_metadata(&root, &packages).unwrap();
    }

    #[test]
    fn names_what_a_manifest_lacks() {
        let package = serde_json::json!({
            "name": "x",
            "description": "d",
            "license": "MIT",
            "keywords": ["a", "b", "c", "d", "e", "f"],
            "categories": [],
            "metadata": null,
            "manifest_path": "/nowhere/x/Cargo.toml",
            "readme": null,
            "targets": [{"kind": ["lib"]}],
        });
        let problems = metadata_problems(Path::new("/nowhere"), &package);
        for expected in [
            "x: no `repository`",
            "x: no `documentation`",
            "x: no `rust_version`",
            "x: 6 keywords (crates.io takes 1 to 5)",
            "x: no `categories`",
            "x: no `[package.metadata.docs.rs] all-features = true`",
            "x: no `readme`",
            "x: a README without a ```rust example",
            "x: a lib.rs that does not run the README's examples as doctests",
        ] {
            assert!(
                problems.iter().any(|p| p == expected),
                "{expected}: {problems:?}"
            );
        }
    }
}
