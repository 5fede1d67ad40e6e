//! Ctrl-C, SIGTERM and SIGHUP stop the running step, not xtask: the servers it started are
//! in their own process groups and would otherwise outlive it.

use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{killpg, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::Pid;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Makes SIGINT, SIGTERM and SIGHUP set a flag instead of killing xtask.
pub(crate) fn install_handlers() -> Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe, and
        // handlers are reset to the default in children at exec.
        #[allow(unsafe_code)]
        unsafe { sigaction(signal, &action) }
            .with_context(|| format!("installing a {signal} handler"))?;
    }
    Ok(())
}

/// Whether xtask has been asked to stop (SIGINT, SIGTERM or SIGHUP); long waits poll this and
/// fail, so their callers unwind and stop what they started.
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Runs `command` in its own process group and waits for it; on a signal to xtask, stops
/// that group (SIGTERM, then SIGKILL after 10 s) and fails, so callers unwind and stop their
/// servers.
pub(crate) fn run(command: Command) -> Result<ExitStatus> {
    run_bounded(command, None)
}

/// [`run`], and when `limit` is given the group is stopped the same way once the command has
/// run that long, failing with a timeout.
pub(crate) fn run_bounded(mut command: Command, limit: Option<Duration>) -> Result<ExitStatus> {
    use std::os::unix::process::CommandExt;
    let started = Instant::now();
    let mut child = command.process_group(0).spawn()?;
    let group = Pid::from_raw(i32::try_from(child.id()).context("pid out of range")?);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        let timed_out = limit.is_some_and(|limit| started.elapsed() >= limit);
        if timed_out || INTERRUPTED.load(Ordering::SeqCst) {
            let _ = killpg(group, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait()?.is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = killpg(group, Signal::SIGKILL);
            let _ = child.wait();
            if timed_out {
                bail!("still running after {:?}: stopped", started.elapsed());
            }
            bail!("interrupted");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
