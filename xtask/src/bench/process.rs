//! Watching a measured process from outside: its peak memory and the bytes it wrote, from `/proc`,
//! and the signals that stop it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::cmd::Failure;

/// How often the peak watcher reads `/proc/PID/status`.
pub(super) const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The value of a `kB` field of `/proc/PID/status` (such as `VmHWM`), in bytes.
pub(crate) fn status_field_bytes(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let kib: u64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
        Some(kib * 1024)
    })
}

/// The value of a field of `/proc/PID/io` (such as `wchar`).
pub(super) fn io_field(io: &str, field: &str) -> Option<u64> {
    io.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().parse().ok()
    })
}

/// Clock ticks per second of the CPU times in `/proc/PID/stat` (`getconf CLK_TCK`; 100 on every
/// Linux this runs on).
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// CPU seconds from `/proc/PID/stat` text: user + system time of the process itself, or with
/// `children`, of its children that have been waited for (`cutime` + `cstime`).
pub(super) fn stat_cpu_secs(stat: &str, children: bool) -> Option<f64> {
    // The command name, in parentheses, may hold spaces: count fields after its closing one.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14..=17 of proc(5) (utime, stime, cutime, cstime); `rest` starts at field 3.
    let (first, second) = if children { (13, 14) } else { (11, 12) };
    let ticks: u64 =
        fields.get(first)?.parse::<u64>().ok()? + fields.get(second)?.parse::<u64>().ok()?;
    Some(ticks as f64 / CLOCK_TICKS_PER_SEC)
}

/// CPU seconds a live process has used so far.
pub(super) fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(proc_path(pid, "stat")).ok()?;
    stat_cpu_secs(&stat, false)
}

/// CPU seconds used by the children of this process that have been waited for.
pub(super) fn waited_children_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    stat_cpu_secs(&stat, true)
}

/// The peak resident set of a live process so far (`VmHWM`), in bytes; `None` once it has exited.
pub(super) fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(proc_path(pid, "status")).ok()?;
    status_field_bytes(&status, "VmHWM")
}

/// Bytes a live process has passed to `write`-family calls (`wchar` of `/proc/PID/io`): its socket
/// writes, and also its writes to files and pipes.
pub(super) fn bytes_written(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(proc_path(pid, "io")).ok()?;
    io_field(&io, "wchar")
}

fn proc_path(pid: u32, file: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{file}"))
}

/// Sends `signal` (a name such as `STOP`) to `pid` with the `kill` command.
pub(super) fn send_signal(pid: u32, signal: &str) -> Result<(), Failure> {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .stdin(Stdio::null())
        .status()
        .map_err(|e| Failure::new(format!("could not run `kill -s {signal} {pid}`: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::new(format!(
            "`kill -s {signal} {pid}` exited with {status}"
        )))
    }
}

/// Reads a process's `VmHWM` every [`POLL_INTERVAL`] on a thread of its own until told to stop.
///
/// `VmHWM` is the kernel's high-water mark of the resident set, so the last value read is the peak up
/// to that read; only growth in the last interval before the process exits can be missed.
#[derive(Debug)]
pub(super) struct PeakWatcher {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Option<u64>>,
}

impl PeakWatcher {
    /// Starts watching `pid`.
    pub(super) fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut peak = None;
                while !stop.load(Ordering::Relaxed) {
                    match peak_rss(pid) {
                        Some(now) => peak = Some(peak.map_or(now, |p: u64| p.max(now))),
                        // Exited (a zombie has no VmHWM line) or gone: nothing more to read.
                        None if peak.is_some() => break,
                        None => {}
                    }
                    thread::sleep(POLL_INTERVAL);
                }
                peak
            })
        };
        Self { stop, thread }
    }

    /// Stops watching; the peak seen, `None` if the process exited before the first read.
    pub(super) fn finish(self) -> Option<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str =
        "Name:\tossup\nVmPeak:\t  120000 kB\nVmHWM:\t   40960 kB\nVmRSS:\t   30000 kB\n";
    const IO: &str = "rchar: 1000\nwchar: 8389000\nsyscr: 10\nsyscw: 20\n";

    #[test]
    fn status_fields_are_read_in_bytes() {
        assert_eq!(status_field_bytes(STATUS, "VmHWM"), Some(40 << 20));
        assert_eq!(status_field_bytes(STATUS, "VmRSS"), Some(30_000 * 1024));
        assert_eq!(status_field_bytes(STATUS, "VmSwap"), None);
        // A field whose name is a prefix of another is not confused with it.
        assert_eq!(status_field_bytes(STATUS, "Vm"), None);
    }

    #[test]
    fn cpu_times_are_read_after_the_command_name() {
        // Fields: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime cutime cstime ...
        let stat = "42 (tokio runtime) S 1 42 42 0 -1 4194304 10 0 0 0 250 50 7 3 20 0 1 0";
        assert_eq!(stat_cpu_secs(stat, false), Some(3.0));
        assert_eq!(stat_cpu_secs(stat, true), Some(0.1));
        assert_eq!(stat_cpu_secs("42 (x) S 1", false), None);
        assert!(waited_children_cpu_secs().is_some());
        assert!(cpu_secs(std::process::id()).is_some());
    }

    #[test]
    fn io_fields_are_read_as_numbers() {
        assert_eq!(io_field(IO, "wchar"), Some(8_389_000));
        assert_eq!(io_field(IO, "rchar"), Some(1000));
        assert_eq!(io_field(IO, "read_bytes"), None);
    }

    #[test]
    fn the_watcher_sees_this_process_and_nothing_of_a_missing_one() {
        let me = PeakWatcher::start(std::process::id());
        thread::sleep(POLL_INTERVAL * 2);
        assert!(me.finish().is_some_and(|peak| peak > 0));
        // Pid numbers above the kernel's maximum (4194304) never name a process.
        assert_eq!(peak_rss(u32::MAX - 1), None);
        assert_eq!(bytes_written(u32::MAX - 1), None);
    }
}
