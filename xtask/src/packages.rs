//! The system packages the tests and benches need, installed on demand on Debian.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Debian packages and the program that tells whether each is present.
const PACKAGES: &[(&str, &str)] = &[
    ("postgresql", "postgres"),
    ("redis-server", "redis-server"),
    ("prometheus", "promtool"),
];

/// Installs the missing packages when running as root with `apt-get`; otherwise fails with a
/// message naming them.
pub(crate) fn ensure_installed() -> Result<()> {
    ensure(PACKAGES)
}

/// `promtool` (Debian package `prometheus`), installed when missing as [`ensure_installed`]
/// does; returns where it is.
pub(crate) fn ensure_promtool() -> Result<PathBuf> {
    ensure(&[("prometheus", "promtool")])?;
    find_program("promtool").context("promtool is still not found after installing prometheus")
}

/// `nginx` (Debian package `nginx-light`) and `wrk` for `bench gateway`, installed when
/// missing as [`ensure_installed`] does; returns where they are.
pub(crate) fn ensure_nginx_and_wrk() -> Result<(PathBuf, PathBuf)> {
    ensure(&[("nginx-light", "nginx"), ("wrk", "wrk")])?;
    let nginx = find_program("nginx").context("nginx is still not found after installing it")?;
    let wrk = find_program("wrk").context("wrk is still not found after installing it")?;
    Ok((nginx, wrk))
}

/// `wrk` and `redis-server` for `bench distributed`, installed when missing as
/// [`ensure_installed`] does; returns where wrk is.
pub(crate) fn ensure_wrk_and_redis() -> Result<PathBuf> {
    ensure(&[("wrk", "wrk"), ("redis-server", "redis-server")])?;
    find_program("wrk").context("wrk is still not found after installing it")
}

/// `chromium` (Debian package `chromium`) for the dashboard's browser test, installed when
/// missing as [`ensure_installed`] does; returns where it is.
pub(crate) fn ensure_chromium() -> Result<PathBuf> {
    ensure(&[("chromium", "chromium")])?;
    find_program("chromium").context("chromium is still not found after installing it")
}

/// Installs the missing `packages` (Debian package, program that tells it is present).
fn ensure(packages: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, program)| !present(program))
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let is_root = nix::unistd::Uid::effective().is_root();
    if !is_root || !on_path("apt-get") {
        bail!(
            "missing system packages: {} — install them (Debian: `apt-get install {}`) and run again",
            missing.join(", "),
            missing.join(" ")
        );
    }
    eprintln!("==> installing {}", missing.join(" "));
    // policy-rc.d exiting 101 stops the packages from starting system services on the default
    // ports during the install; the tests start their own servers.
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let had_policy = policy.exists();
    if !had_policy {
        std::fs::write(policy, "#!/bin/sh\nexit 101\n").context("writing policy-rc.d")?;
        set_executable(policy)?;
    }
    let result = apt(&["update", "-q"]).and_then(|()| {
        let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
        args.extend(&missing);
        apt(&args)
    });
    if !had_policy {
        let _ = std::fs::remove_file(policy);
    }
    result?;
    let still: Vec<&str> = packages
        .iter()
        .filter(|(_, program)| !present(program))
        .map(|(package, _)| *package)
        .collect();
    if !still.is_empty() {
        bail!(
            "packages still missing after apt-get install: {}",
            still.join(", ")
        );
    }
    Ok(())
}

fn apt(args: &[&str]) -> Result<()> {
    // apt's output goes to stderr: `services up` keeps stdout for the `export` lines that
    // `eval "$(cargo xtask services up)"` runs.
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(std::process::Stdio::from(std::io::stderr()))
        .status()
        .context("running apt-get")?;
    if !status.success() {
        bail!("apt-get {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn present(program: &str) -> bool {
    if program == "postgres" {
        // The server binaries live outside PATH on Debian.
        return std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .any(|entry| entry.path().join("bin/postgres").exists())
            || std::env::var_os("RESYNC_PG_BIN").is_some();
    }
    find_program(program).is_some()
}

/// Where `program` is: the first match on `PATH`, else in `/usr/bin` or `/usr/sbin` (where
/// Debian installs it, should `PATH` be narrow).
pub(crate) fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", path.display()))
}
