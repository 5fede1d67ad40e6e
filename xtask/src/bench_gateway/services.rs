//! The processes of `bench gateway`: the test upstream, nginx with `proxy_cache` in front of
//! it, and resync's gateway in front of it; each on a loopback port, in its own process group
//! (stopped on drop, so on every error and interrupt too), logging into the scratch directory.
//! `bench distributed` starts its upstream and its resync instances with the same functions.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use nix::sys::signal::Signal;
use test_support::ServiceProcess;

use super::{Target, BOUND, PATHS, TTL};
use crate::{describe, interrupt};

/// The upstream's answer: 1 KiB of JSON after 2 ms, from one thread.
pub(crate) const UPSTREAM_ARGS: &[&str] = &[
    "--latency-ms",
    "2",
    "--body-bytes",
    "1024",
    "--threads",
    "1",
];

/// Idle keep-alive connections to the upstream: nginx's `keepalive` per worker, resync's
/// pool's upper bound.
const UPSTREAM_KEEPALIVE: u32 = 64;

/// Attempts at starting a server on a free port (another process may take the port between
/// the probe and the server's bind).
const PORT_ATTEMPTS: u32 = 5;

/// A fresh directory under the system temporary directory, removed on drop.
#[derive(Debug)]
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    /// `resync-bench-<bench>-<pid>-<nanos>`.
    pub(crate) fn new(bench: &str) -> Result<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "resync-bench-{bench}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running server and where it listens.
pub(crate) struct Service {
    pub(crate) name: &'static str,
    pub(crate) process: ServiceProcess,
    pub(crate) addr: SocketAddr,
}

/// The three servers.
pub(super) struct Services {
    upstream: Service,
    nginx: Service,
    resync: Service,
}

impl Services {
    /// Starts the upstream, then nginx and resync in front of it; the caches hold every path
    /// of `rounds` warm sets.
    pub(super) fn start(
        scratch: &Scratch,
        nginx: &Path,
        resync: &Path,
        upstream: &Path,
        rounds: u32,
    ) -> Result<Self> {
        let dir = scratch.path();
        let keys = PATHS * u64::from(rounds) + 1;
        let cache_control = format!("max-age={}", TTL.as_secs());
        let upstream = start_upstream(upstream, dir, &["--cache-control", &cache_control])?;
        eprintln!("    upstream: http://{}", upstream.addr);
        let nginx = start_nginx(nginx, dir, upstream.addr, keys)?;
        eprintln!(
            "    nginx:    http://{} (config {})",
            nginx.addr,
            dir.join("nginx/nginx.conf").display()
        );
        let resync = start_resync(resync, dir, upstream.addr, keys)?;
        eprintln!("    resync:   http://{}/tws/", resync.addr);
        Ok(Self {
            upstream,
            nginx,
            resync,
        })
    }

    /// Where `target` listens.
    pub(super) fn addr(&self, target: Target) -> SocketAddr {
        match target {
            Target::Upstream => self.upstream.addr,
            Target::Nginx => self.nginx.addr,
            Target::Resync => self.resync.addr,
        }
    }

    /// Fails when a server has exited.
    pub(super) fn ensure_running(&mut self) -> Result<()> {
        for service in [&mut self.upstream, &mut self.nginx, &mut self.resync] {
            ensure!(
                service.process.is_running(),
                "{} exited during the bench",
                service.name
            );
        }
        Ok(())
    }

    /// The end of each server's log, for an error message.
    pub(super) fn log_tails(&self, lines: usize) -> String {
        let mut text = String::new();
        for service in [&self.upstream, &self.nginx, &self.resync] {
            let _ = writeln!(
                text,
                "--- {} log, last {lines} lines:\n{}",
                service.name,
                service.process.log_tail(lines)
            );
        }
        text
    }

    /// Stops the gateways, then the upstream.
    pub(super) fn stop(mut self) -> Result<()> {
        let mut failed = Vec::new();
        for service in [&mut self.resync, &mut self.nginx, &mut self.upstream] {
            if let Err(error) = service.process.stop() {
                failed.push(format!("{}: {error}", service.name));
            }
        }
        ensure!(failed.is_empty(), "stopping: {}", failed.join("; "));
        Ok(())
    }
}

/// Starts the upstream ([`UPSTREAM_ARGS`] and `extra_args`) on a port of its choosing and
/// reads it from its first line.
pub(crate) fn start_upstream(binary: &Path, dir: &Path, extra_args: &[&str]) -> Result<Service> {
    let mut command = Command::new(binary);
    command
        .args(["--addr", "127.0.0.1:0"])
        .args(UPSTREAM_ARGS)
        .args(extra_args);
    eprintln!("\n==> starting {}", describe(&command));
    let log = dir.join("upstream.log");
    let mut process = ServiceProcess::spawn("test-upstream", command, &log, Signal::SIGTERM)
        .context("starting test-upstream")?;
    let deadline = Instant::now() + BOUND;
    let addr = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(addr) = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("listening on http://"))
        {
            break addr
                .trim_end_matches('/')
                .parse::<SocketAddr>()
                .with_context(|| format!("test-upstream printed an odd address: {addr:?}"))?;
        }
        alive(&mut process, "test-upstream")?;
        ensure!(
            Instant::now() < deadline,
            "test-upstream printed no `listening on http://ADDR` within {BOUND:?}; its log:\n{}",
            process.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    ensure!(
        addr.ip().is_loopback(),
        "test-upstream listens on {addr}, not on loopback"
    );
    let mut service = Service {
        name: "test-upstream",
        process,
        addr,
    };
    wait_until_listening(&mut service)?;
    Ok(service)
}

/// Writes nginx's configuration, checks it with `nginx -t`, and starts nginx in the
/// foreground on a free loopback port.
fn start_nginx(binary: &Path, dir: &Path, upstream: SocketAddr, keys: u64) -> Result<Service> {
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(prefix.join("cache"))
        .with_context(|| format!("creating {}", prefix.display()))?;
    let modules = nginx_modules(binary, dir)?;
    let is_root = nix::unistd::Uid::effective().is_root();
    start_on_free_port("nginx", |port| {
        let config = nginx_config(&NginxConfig {
            prefix: &prefix,
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            upstream,
            keys,
            is_root,
            without: &modules,
        });
        let file = prefix.join("nginx.conf");
        std::fs::write(&file, config).with_context(|| format!("writing {}", file.display()))?;
        let args = |command: &mut Command| {
            command
                .arg("-p")
                .arg(&prefix)
                .arg("-c")
                .arg(&file)
                .arg("-e")
                .arg(prefix.join("error.log"));
        };
        let mut test = Command::new(binary);
        test.arg("-t").arg("-q");
        args(&mut test);
        let (ok, output) = captured(test, dir, "nginx-t")?;
        ensure!(ok, "`nginx -t` rejected {}:\n{output}", file.display());
        let mut command = Command::new(binary);
        args(&mut command);
        eprintln!("==> starting {}", describe(&command));
        let process =
            ServiceProcess::spawn("nginx", command, &dir.join("nginx.log"), Signal::SIGTERM)
                .context("starting nginx")?;
        Ok(Service {
            name: "nginx",
            process,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    })
}

/// The `*_temp_path` modules this nginx was built without (`--without-http_uwsgi_module`…):
/// their directives would be unknown.
fn nginx_modules(binary: &Path, dir: &Path) -> Result<Vec<String>> {
    let mut version = Command::new(binary);
    version.arg("-V");
    let (ok, output) = captured(version, dir, "nginx-V")?;
    ensure!(ok, "`nginx -V` failed:\n{output}");
    Ok(["fastcgi", "uwsgi", "scgi"]
        .into_iter()
        .filter(|module| output.contains(&format!("--without-http_{module}_module")))
        .map(str::to_owned)
        .collect())
}

/// What nginx's configuration depends on.
struct NginxConfig<'a> {
    prefix: &'a Path,
    listen: SocketAddr,
    upstream: SocketAddr,
    /// Cache keys the zone must hold.
    keys: u64,
    is_root: bool,
    /// Modules left out of this build (no temp path directive for them).
    without: &'a [String],
}

/// nginx in the foreground, two workers, caching every 200 for the TTL, with keep-alive
/// connections to the upstream; everything it writes stays in `prefix`.
fn nginx_config(config: &NginxConfig<'_>) -> String {
    let prefix = config.prefix.display();
    // A 1 MiB zone holds about 8 000 keys; twice that, and never less than 16 MiB.
    let zone_mb = (config.keys / 4_000 + 1).max(16);
    let user = if config.is_root {
        // Workers would otherwise run as nobody, who cannot enter the scratch directory.
        "user root;\n"
    } else {
        ""
    };
    let mut temp_paths = format!(
        "    client_body_temp_path {prefix}/client_body;\n    proxy_temp_path {prefix}/proxy_temp;\n"
    );
    for module in ["fastcgi", "uwsgi", "scgi"] {
        if !config.without.iter().any(|without| without == module) {
            let _ = writeln!(temp_paths, "    {module}_temp_path {prefix}/{module}_temp;");
        }
    }
    let ttl = TTL.as_secs();
    format!(
        "# Written by `cargo xtask bench gateway`.
{user}daemon off;
master_process on;
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
{temp_paths}
    # As Debian's stock nginx.conf.
    sendfile on;
    tcp_nopush on;
    # wrk's connections stay open for the whole run (nginx's default closes one after 1000
    # requests).
    keepalive_requests 1000000;

    proxy_cache_path {prefix}/cache levels=1:2 keys_zone=bench:{zone_mb}m inactive={ttl}s
        use_temp_path=off;

    upstream test_upstream {{
        server {upstream};
        keepalive {keepalive};
        keepalive_requests 1000000;
    }}

    server {{
        listen {listen};

        location / {{
            proxy_pass http://test_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_cache bench;
            proxy_cache_valid 200 {ttl}s;
            proxy_cache_lock on;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}
}}
",
        upstream = config.upstream,
        listen = config.listen,
        keepalive = UPSTREAM_KEEPALIVE,
    )
}

/// Starts resync on a free loopback port in an empty directory (no `settings.toml`), with
/// only the settings below: no database or Redis, the gateway in front of `upstream`, a
/// cache holding every path, JSON logs into the scratch directory.
fn start_resync(binary: &Path, dir: &Path, upstream: SocketAddr, keys: u64) -> Result<Service> {
    let entries = keys.max(100_000);
    let resync = Resync {
        binary,
        name: "resync",
        upstream,
        ttl: TTL,
        entries,
        memory_mb: memory_mb_for(entries),
        extra_env: &[],
    };
    resync.start(dir)
}

/// Enough memory for `entries` cached 1 KiB answers: about 2 KiB an entry (1 KiB body,
/// headers, key), with room to spare, and never less than 512 MiB.
pub(crate) fn memory_mb_for(entries: u64) -> u64 {
    (entries * 4 / 1024).max(512)
}

/// How one resync process runs.
pub(crate) struct Resync<'a> {
    pub(crate) binary: &'a Path,
    /// Its name in messages; also its working directory's and its log's name.
    pub(crate) name: &'static str,
    pub(crate) upstream: SocketAddr,
    /// `ASYNC_CACHE_TTL`.
    pub(crate) ttl: Duration,
    /// `ASYNC_CACHE_MAX_ENTRIES`.
    pub(crate) entries: u64,
    /// `ASYNC_CACHE_MAX_MEMORY_MB`.
    pub(crate) memory_mb: u64,
    /// Further `RESYNC_*` settings, set after (so over) the ones above.
    pub(crate) extra_env: &'a [(&'a str, String)],
}

impl Resync<'_> {
    /// Starts it on a free loopback port in `dir/<name>` (no `settings.toml` there), logging
    /// into `dir/<name>.log` (appended to when the same name starts again).
    pub(crate) fn start(&self, dir: &Path) -> Result<Service> {
        let cwd = dir.join(self.name);
        std::fs::create_dir_all(&cwd).with_context(|| format!("creating {}", cwd.display()))?;
        let Resync {
            binary,
            name,
            upstream,
            ttl,
            entries,
            memory_mb,
            extra_env,
        } = *self;
        start_on_free_port(name, |port| {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut command = crate::binaries::resync_command(binary, &cwd, addr);
            command.envs([
                ("RESYNC_TWS_BASE_URL", format!("http://{upstream}")),
                ("RESYNC_DATABASE_URL", String::new()),
                ("RESYNC_REDIS_URL", String::new()),
                ("RESYNC_ASYNC_CACHE_TTL", ttl.as_secs().to_string()),
                ("RESYNC_ASYNC_CACHE_MAX_ENTRIES", entries.to_string()),
                ("RESYNC_ASYNC_CACHE_MAX_MEMORY_MB", memory_mb.to_string()),
                ("RESYNC_HTTP_POOL_MIN_SIZE", "8".to_owned()),
                ("RESYNC_HTTP_POOL_MAX_SIZE", UPSTREAM_KEEPALIVE.to_string()),
                ("RESYNC_LOG_FORMAT", "json".to_owned()),
            ]);
            command.envs(extra_env.iter().map(|(key, value)| (*key, value)));
            eprintln!("==> starting {}", describe(&command));
            let log = dir.join(format!("{name}.log"));
            let process = ServiceProcess::spawn(name, command, &log, Signal::SIGTERM)
                .with_context(|| format!("starting {name}"))?;
            Ok(Service {
                name,
                process,
                addr,
            })
        })
    }
}

/// Runs `start` with a free port until the server listens; again on another port when it
/// exited because the port was taken meanwhile.
pub(crate) fn start_on_free_port(
    name: &str,
    mut start: impl FnMut(u16) -> Result<Service>,
) -> Result<Service> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = test_support::free_port().context("finding a free loopback port")?;
        let mut service = start(port)?;
        match wait_until_listening(&mut service) {
            Ok(()) => return Ok(service),
            Err(error) => {
                let lost_port = !service.process.is_running()
                    && service
                        .process
                        .log_tail(40)
                        .contains("Address already in use");
                if lost_port && attempt < PORT_ATTEMPTS {
                    eprintln!("    {name} lost port {port} to another process; another port");
                    continue;
                }
                return Err(error);
            }
        }
    }
}

/// Waits until the service accepts connections, failing early when it exits.
fn wait_until_listening(service: &mut Service) -> Result<()> {
    let deadline = Instant::now() + BOUND;
    loop {
        alive(&mut service.process, service.name)?;
        match test_support::wait_for_tcp(service.addr, Duration::from_millis(200)) {
            Ok(()) => return Ok(()),
            Err(error) if Instant::now() >= deadline => bail!(
                "{} did not accept connections on {} within {BOUND:?}: {error}; its log:\n{}",
                service.name,
                service.addr,
                service.process.log_tail(20)
            ),
            Err(_) => {}
        }
    }
}

/// Fails when the process has exited (quoting its log) or xtask was interrupted.
pub(crate) fn alive(process: &mut ServiceProcess, name: &str) -> Result<()> {
    if interrupt::interrupted() {
        bail!("interrupted");
    }
    ensure!(
        process.is_running(),
        "{name} exited during start-up; its log:\n{}",
        process.log_tail(20)
    );
    Ok(())
}

/// Runs a short command with its output in a file of `dir`; returns whether it succeeded and
/// what it printed.
pub(crate) fn captured(mut command: Command, dir: &Path, label: &str) -> Result<(bool, String)> {
    let file = dir.join(format!("{label}.out"));
    let out =
        std::fs::File::create(&file).with_context(|| format!("creating {}", file.display()))?;
    let shell = describe(&command);
    command.stdout(out.try_clone()?).stderr(out);
    let status =
        interrupt::run_bounded(command, Some(BOUND)).with_context(|| format!("running {shell}"))?;
    let output = std::fs::read_to_string(&file).unwrap_or_default();
    Ok((status.success(), output.trim_end().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_config_caches_through_keepalive_connections() {
        let without = vec!["uwsgi".to_owned(), "scgi".to_owned()];
        let config = nginx_config(&NginxConfig {
            prefix: Path::new("/tmp/x"),
            listen: "127.0.0.1:8081".parse().unwrap(),
            upstream: "127.0.0.1:9000".parse().unwrap(),
            keys: 50_001,
            is_root: true,
            without: &without,
        });
        for line in [
            "user root;",
            "daemon off;",
            "worker_processes 2;",
            "pid /tmp/x/nginx.pid;",
            "error_log /tmp/x/error.log warn;",
            "access_log off;",
            "keys_zone=bench:16m",
            "server 127.0.0.1:9000;",
            "keepalive 64;",
            "listen 127.0.0.1:8081;",
            "proxy_http_version 1.1;",
            "proxy_set_header Connection \"\";",
            "proxy_cache_valid 200 60s;",
            "proxy_cache_lock on;",
            "add_header X-Cache-Status $upstream_cache_status always;",
            "fastcgi_temp_path /tmp/x/fastcgi_temp;",
        ] {
            assert!(config.contains(line), "no {line:?} in:\n{config}");
        }
        assert!(!config.contains("uwsgi_temp_path"));
        let bigger = nginx_config(&NginxConfig {
            keys: 500_001,
            is_root: false,
            ..NginxConfig {
                prefix: Path::new("/tmp/x"),
                listen: "127.0.0.1:8081".parse().unwrap(),
                upstream: "127.0.0.1:9000".parse().unwrap(),
                keys: 0,
                is_root: false,
                without: &without,
            }
        });
        assert!(bigger.contains("keys_zone=bench:126m"));
        assert!(!bigger.contains("user root;"));
    }
}
