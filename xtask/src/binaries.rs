//! The `resync` server and `test-upstream` (test-support's sample upstream) binaries that
//! `browser`, `docs`, `promtool` and the benches run: built here with one cargo command, or
//! found where `cargo test` left them.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};

use crate::{cargo, run_step};

/// Which build of the binaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// The dev profile, as the tests build it.
    Debug,
    /// `--release`, for the benches.
    Release,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Release => "release",
        }
    }
}

/// The server and the sample upstream.
#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    pub(crate) resync: PathBuf,
    pub(crate) upstream: PathBuf,
}

impl Binaries {
    /// Builds `resync` and, without `upstream_bin`, `test-upstream` in `profile`; with it,
    /// that binary (which takes test-upstream's command line) is the upstream.
    pub(crate) fn build(
        root: &Path,
        profile: Profile,
        upstream_bin: Option<&Path>,
    ) -> Result<Self> {
        cargo_build(root, profile, upstream_bin.is_none())?;
        let mut binaries = Self::in_target(root, profile);
        ensure_file(&binaries.resync, "after the build")?;
        match upstream_bin {
            Some(upstream) => {
                binaries.upstream = upstream.to_path_buf();
                ensure_file(&binaries.upstream, "the upstream binary given")?;
            }
            None => ensure_file(&binaries.upstream, "after the build")?,
        }
        Ok(binaries)
    }

    /// The binaries an earlier build left (the workspace's tests build the debug ones):
    /// an error naming `built_by` when one is missing.
    pub(crate) fn built(root: &Path, profile: Profile, built_by: &str) -> Result<Self> {
        let binaries = Self::in_target(root, profile);
        for binary in [&binaries.resync, &binaries.upstream] {
            ensure_file(binary, &format!("{built_by} builds it"))?;
        }
        Ok(binaries)
    }

    fn in_target(root: &Path, profile: Profile) -> Self {
        let dir = cargo_target_dir(root).join(profile.dir());
        Self {
            resync: dir.join("resync"),
            upstream: dir.join("test-upstream"),
        }
    }
}

/// Builds `resync` alone in `profile` (for a command that needs no upstream); its path.
pub(crate) fn build_server(root: &Path, profile: Profile) -> Result<PathBuf> {
    cargo_build(root, profile, false)?;
    let resync = Binaries::in_target(root, profile).resync;
    ensure_file(&resync, "after the build")?;
    Ok(resync)
}

/// The `resync` an earlier build left: an error naming `built_by` when it is missing.
pub(crate) fn built_server(root: &Path, profile: Profile, built_by: &str) -> Result<PathBuf> {
    let resync = Binaries::in_target(root, profile).resync;
    ensure_file(&resync, &format!("{built_by} builds it"))?;
    Ok(resync)
}

/// `cargo build` of `resync`, and of `test-upstream` when `with_upstream`.
fn cargo_build(root: &Path, profile: Profile, with_upstream: bool) -> Result<()> {
    let mut command = cargo(root);
    command.arg("build");
    if profile == Profile::Release {
        command.arg("--release");
    }
    command.args(["--locked", "-p", "resync-server", "--bin", "resync"]);
    let what = if with_upstream {
        command.args(["-p", "test-support", "--bin", "test-upstream"]);
        "resync and test-upstream (crates/test-support's bin)"
    } else {
        "resync"
    };
    run_step(&format!("build {what} ({})", profile.dir()), command)
        .with_context(|| format!("building {what}"))
}

fn ensure_file(binary: &Path, hint: &str) -> Result<()> {
    ensure!(binary.is_file(), "{} is missing: {hint}", binary.display());
    Ok(())
}

/// A command starting the `resync` at `binary` in `cwd`, listening on `addr`, with none of
/// the caller's `RESYNC_*` settings or `RUST_LOG` (only the settings the caller adds apply)
/// and no colour codes in its log (which a failure quotes).
pub(crate) fn resync_command(binary: &Path, cwd: &Path, addr: SocketAddr) -> Command {
    let mut command = Command::new(binary);
    command
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RESYNC_") {
            command.env_remove(key);
        }
    }
    command.env("RESYNC_BIND_ADDR", addr.to_string());
    command
}

/// Cargo's target directory for builds run at `root`: `CARGO_TARGET_DIR` when set.
pub(crate) fn cargo_target_dir(root: &Path) -> PathBuf {
    target_dir(root, std::env::var_os("CARGO_TARGET_DIR").as_deref())
}

/// Cargo's target directory: `from_env` (relative to the workspace root, where the build
/// runs) when set, else `<root>/target`.
fn target_dir(root: &Path, from_env: Option<&OsStr>) -> PathBuf {
    match from_env {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_dir_follows_the_variable() {
        let root = Path::new("/repo");
        assert_eq!(target_dir(root, None), Path::new("/repo/target"));
        assert_eq!(
            target_dir(root, Some(OsStr::new(""))),
            Path::new("/repo/target")
        );
        assert_eq!(
            target_dir(root, Some(OsStr::new("out"))),
            Path::new("/repo/out")
        );
        assert_eq!(
            target_dir(root, Some(OsStr::new("/tmp/t"))),
            Path::new("/tmp/t")
        );
    }

    #[test]
    fn profiles_pick_their_directories() {
        let root = Path::new("/repo");
        let debug = Binaries::in_target(root, Profile::Debug);
        let release = Binaries::in_target(root, Profile::Release);
        assert!(debug.resync.ends_with("debug/resync"));
        assert!(release.upstream.ends_with("release/test-upstream"));
    }
}
