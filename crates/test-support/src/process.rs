//! A server process in its own process group, stopped on drop.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// How long a stopping server may take before it is killed outright.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// A child process running in its own process group, with its output in a log file.
///
/// Dropping it stops the whole group: first `stop_signal` to the leader, then `SIGKILL` to
/// the group once a grace period of 20 s has passed.
#[derive(Debug)]
pub struct ServiceProcess {
    name: String,
    child: Option<Child>,
    log: PathBuf,
    /// The log's length when this process was spawned: what follows is its own output (the
    /// log is appended to by every start of the same server).
    log_start: u64,
    stop_signal: Signal,
}

impl ServiceProcess {
    /// Spawns `command` in a new process group, appending its stdout and stderr to `log`.
    ///
    /// # Errors
    ///
    /// When the log cannot be opened or the program cannot be started.
    pub fn spawn(
        name: &str,
        mut command: Command,
        log: &Path,
        stop_signal: Signal,
    ) -> io::Result<Self> {
        use std::os::unix::process::CommandExt;
        let out = File::options().create(true).append(true).open(log)?;
        let log_start = out.metadata()?.len();
        let err = out.try_clone()?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = command
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {name}: {e}")))?;
        Ok(Self {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_owned(),
            log_start,
            stop_signal,
        })
    }

    /// The leader's process id (also the process group id).
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Freezes the leader and every process it started (`SIGSTOP`), wherever they moved
    /// (Postgres backends start sessions of their own): a server that hangs, with its
    /// connections open and unanswered, until [`resume`](Self::resume).
    ///
    /// # Errors
    ///
    /// When the signal cannot be sent.
    pub fn pause(&self) -> io::Result<()> {
        self.signal_group(Signal::SIGSTOP)
    }

    /// Lets a paused process tree run again (`SIGCONT`).
    ///
    /// # Errors
    ///
    /// When the signal cannot be sent.
    pub fn resume(&self) -> io::Result<()> {
        self.signal_group(Signal::SIGCONT)
    }

    fn signal_group(&self, signal: Signal) -> io::Result<()> {
        let Some(leader) = self.pid() else {
            return Err(io::Error::other(format!("{} is not running", self.name)));
        };
        nix::sys::signal::killpg(pid_of(leader), signal).map_err(io::Error::from)?;
        for pid in descendants(leader) {
            // A child may have exited meanwhile: that is not an error here.
            let _ = nix::sys::signal::kill(pid_of(pid), signal);
        }
        Ok(())
    }

    /// Whether the leader is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Fails with the end of the log when the process has already exited.
    ///
    /// # Errors
    ///
    /// When the process is no longer running: of kind [`io::ErrorKind::AddrInUse`] when its
    /// own output says it could not bind its port (Postgres and Redis both print the system's
    /// "Address already in use"), so that a caller can retry.
    pub fn ensure_running(&mut self) -> io::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let kind = if self.own_output().contains("Address already in use") {
            io::ErrorKind::AddrInUse
        } else {
            io::ErrorKind::Other
        };
        Err(io::Error::new(
            kind,
            format!(
                "{} exited during start-up; its log ends with:\n{}",
                self.name,
                self.log_tail(40)
            ),
        ))
    }

    /// Whether this process (not an earlier start of the same server) logged `text`.
    pub(crate) fn has_logged(&self, text: &str) -> bool {
        self.own_output().contains(text)
    }

    /// What this process wrote to the log (not earlier starts of the same server).
    fn own_output(&self) -> String {
        use std::io::{Read, Seek, SeekFrom};
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log) {
            if file.seek(SeekFrom::Start(self.log_start)).is_ok() {
                let mut bytes = Vec::new();
                if file.read_to_end(&mut bytes).is_ok() {
                    text = String::from_utf8_lossy(&bytes).into_owned();
                }
            }
        }
        text
    }

    /// The last `lines` lines of the process's log.
    #[must_use]
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// Stops the process group and waits for the leader to exit.
    ///
    /// # Errors
    ///
    /// When waiting for the child fails.
    pub fn stop(&mut self) -> io::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = pid_of(child.id());
        if matches!(child.try_wait(), Ok(None)) {
            let _ = kill(pid, self.stop_signal);
            let deadline = Instant::now() + STOP_GRACE;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Whatever is left of the group (workers, backends) goes now.
        let _ = killpg(pid, Signal::SIGKILL);
        child.wait()?;
        Ok(())
    }

    /// Leaves the process running after this value is dropped and returns its pid.
    #[must_use]
    pub fn detach(mut self) -> Option<u32> {
        self.child.take().map(|child| child.id())
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A server left running by `cargo xtask services up`, to be stopped by `services down`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachedService {
    /// `postgres` or `redis`.
    pub name: String,
    /// The process (and process group) id.
    pub pid: u32,
    /// The temporary directory holding its data, socket and log.
    pub dir: PathBuf,
    /// The URL clients connect to.
    pub url: String,
}

impl DetachedService {
    /// Whether the process is alive and still the server we started: after a reboot or a
    /// long gap the pid may belong to an unrelated program, which must not be signalled.
    #[must_use]
    pub fn is_running(&self) -> bool {
        let proc_dir = PathBuf::from(format!("/proc/{}", self.pid));
        let alive = std::fs::read_to_string(proc_dir.join("stat")).is_ok_and(|stat| {
            // The state follows the parenthesised command name; `Z` is a zombie.
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        });
        if !alive {
            return false;
        }
        let cmdline = std::fs::read(proc_dir.join("cmdline"))
            .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
            .unwrap_or_default();
        let port = self.url.rsplit(':').next().unwrap_or_default();
        let port = port.split('/').next().unwrap_or_default();
        match self.name.as_str() {
            // postgres keeps its arguments, which name our data directory.
            "postgres" => cmdline.contains(&self.dir.display().to_string()),
            // redis rewrites its title to `redis-server 127.0.0.1:PORT`.
            _ => cmdline.contains("redis-server") && cmdline.contains(&format!(":{port}")),
        }
    }

    /// Stops the process group (`SIGTERM`, then `SIGKILL` after a grace period) if it is
    /// still ours, and removes the directory.
    ///
    /// # Errors
    ///
    /// When the directory cannot be removed.
    pub fn stop(&self) -> io::Result<()> {
        let pid = pid_of(self.pid);
        if self.is_running() {
            let _ = killpg(pid, Signal::SIGTERM);
            let deadline = Instant::now() + STOP_GRACE;
            while self.is_running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if self.is_running() {
                let _ = killpg(pid, Signal::SIGKILL);
            }
        }
        match std::fs::remove_dir_all(&self.dir) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }
}

/// Every process descended from `leader`, read from `/proc/<pid>/stat` (field 4 is the
/// parent's pid).
fn descendants(leader: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // The command name may hold spaces and parentheses: fields start after the last ')'.
            let after_name = &stat[stat.rfind(')')? + 1..];
            let parent: u32 = after_name.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, parent))
        })
        .collect();
    let mut found = vec![leader];
    let mut index = 0;
    while index < found.len() {
        let parent = found[index];
        found.extend(
            parents
                .iter()
                .filter(|&&(_, of)| of == parent)
                .map(|&(pid, _)| pid),
        );
        index += 1;
    }
    found.remove(0);
    found
}

fn pid_of(id: u32) -> Pid {
    // Process ids fit in i32 on every Unix; saturate rather than wrap if one ever did not.
    Pid::from_raw(i32::try_from(id).unwrap_or(i32::MAX))
}

pub(crate) fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
