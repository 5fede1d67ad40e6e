//! Figures of the running process, read from Linux's `/proc/self` on demand: memory, file
//! descriptors, CPU time and start time, as the `process_*` metrics of Prometheus clients
//! report them.
//!
//! Each figure is `None` when its file cannot be read or parsed (not Linux, `/proc` not
//! mounted, a format this code does not know): the metric is then left out, never guessed.
//! Reading never panics.

use std::path::Path;

/// Clock ticks per second of the times in `/proc/<pid>/stat` (`USER_HZ`). It is 100 on every
/// architecture Linux supports today; Prometheus's own `procfs` package assumes the same
/// rather than calling `sysconf(_SC_CLK_TCK)`.
const USER_HZ: f64 = 100.0;

/// What `/proc` says about this process at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ProcessStats {
    /// Resident set size in bytes (`VmRSS` of `/proc/self/status`).
    pub(crate) resident_memory_bytes: Option<u64>,
    /// Virtual memory size in bytes (`vsize` of `/proc/self/stat`).
    pub(crate) virtual_memory_bytes: Option<u64>,
    /// Open file descriptors (entries of `/proc/self/fd`).
    pub(crate) open_fds: Option<u64>,
    /// The soft limit on open file descriptors (`/proc/self/limits`); `None` when unlimited.
    pub(crate) max_fds: Option<u64>,
    /// User and system CPU time spent, in seconds.
    pub(crate) cpu_seconds: Option<f64>,
    /// When the process started, in seconds since the Unix epoch.
    pub(crate) start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads the figures of the calling process from `/proc`.
    pub(crate) fn read() -> Self {
        Self::read_from(Path::new("/proc"))
    }

    /// Reads the figures of the calling process from a `/proc` mounted at `proc`.
    fn read_from(proc: &Path) -> Self {
        let read = |path: &str| std::fs::read_to_string(proc.join(path)).ok();
        let stat = read("self/stat").and_then(|text| StatFields::parse(&text));
        let boot_time = read("stat").and_then(|text| boot_time_seconds(&text));
        Self {
            resident_memory_bytes: read("self/status").and_then(|text| resident_bytes(&text)),
            virtual_memory_bytes: stat.map(|stat| stat.vsize_bytes),
            open_fds: std::fs::read_dir(proc.join("self/fd"))
                .ok()
                .map(|entries| entries.filter(Result::is_ok).count() as u64),
            max_fds: read("self/limits").and_then(|text| max_open_files(&text)),
            cpu_seconds: stat.map(|stat| (stat.utime_ticks + stat.stime_ticks) as f64 / USER_HZ),
            start_time_seconds: stat
                .zip(boot_time)
                .map(|(stat, boot)| boot as f64 + stat.start_ticks as f64 / USER_HZ),
        }
    }
}

/// The fields of `/proc/<pid>/stat` this module uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatFields {
    utime_ticks: u64,
    stime_ticks: u64,
    start_ticks: u64,
    vsize_bytes: u64,
}

impl StatFields {
    /// Parses `pid (comm) state ppid …`. The command name may hold spaces and parentheses,
    /// so fields are counted from the last `)`: field 3 (`state`) is the first after it.
    fn parse(text: &str) -> Option<Self> {
        let (_, rest) = text.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Field n of proc(5) (1-based) sits at index n − 3 after the command name.
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Self {
            utime_ticks: field(14)?,
            stime_ticks: field(15)?,
            start_ticks: field(22)?,
            vsize_bytes: field(23)?,
        })
    }
}

/// `btime` of `/proc/stat`: boot time in seconds since the epoch.
fn boot_time_seconds(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
}

/// `VmRSS:   1234 kB` of `/proc/self/status`, in bytes.
fn resident_bytes(text: &str) -> Option<u64> {
    let value = text.lines().find_map(|line| line.strip_prefix("VmRSS:"))?;
    let mut parts = value.split_whitespace();
    let number: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => number.checked_mul(1024),
        _ => None,
    }
}

/// The soft limit of `Max open files` in `/proc/self/limits`; `None` when unlimited.
fn max_open_files(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|limits| limits.split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        // A command name with spaces and a parenthesis, as `prctl` allows.
        let text = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 75 0 0 20 0 8 0 123456 987654321 2048 18446744073709551615";
        let stat = StatFields::parse(text).expect("a well-formed stat line");
        assert_eq!(
            stat,
            StatFields {
                utime_ticks: 250,
                stime_ticks: 75,
                start_ticks: 123_456,
                vsize_bytes: 987_654_321,
            }
        );
        assert_eq!(StatFields::parse("4242 (cmd) S 1 2"), None);
        assert_eq!(StatFields::parse("no parenthesis"), None);
    }

    #[test]
    fn status_limits_and_boot_time_parse() {
        let status = "Name:\tresync\nVmPeak:\t  300 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(resident_bytes(status), Some(12_345 * 1024));
        assert_eq!(resident_bytes("VmRSS:\t12 MB\n"), None);
        assert_eq!(resident_bytes("Name:\tx\n"), None);

        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 1048576              files     \n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(
            max_open_files(
                "Max open files            unlimited            unlimited            files\n"
            ),
            None
        );

        assert_eq!(
            boot_time_seconds("cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
        assert_eq!(boot_time_seconds("cpu 1 2 3\n"), None);
    }

    #[test]
    fn a_missing_proc_gives_no_figures() {
        let stats = ProcessStats::read_from(Path::new("/nonexistent/proc/for/this/test"));
        assert_eq!(stats, ProcessStats::default());
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn this_process_is_read_from_proc() {
        let stats = ProcessStats::read();
        assert!(stats.resident_memory_bytes.is_some_and(|bytes| bytes > 0));
        assert!(stats.virtual_memory_bytes.is_some_and(|bytes| bytes > 0));
        // At least stdin/stdout/stderr or the directory handle itself.
        assert!(stats.open_fds.is_some_and(|fds| fds > 0));
        assert!(stats.cpu_seconds.is_some_and(|seconds| seconds >= 0.0));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs_f64();
        // This test process started moments ago; the slack covers the tick resolution and
        // any drift between the boot-time clock and the wall clock.
        let start = stats.start_time_seconds.expect("start time from /proc");
        assert!(
            start <= now + 60.0 && start > now - 86_400.0,
            "{start} vs {now}"
        );
    }
}
