//! Watching the processes of a soak from `/proc`: the mock's resident set, open file descriptors and
//! connections every few seconds, and each `ossup` process's peak resident set and most file
//! descriptors while it runs.
//!
//! One thread does all the reading. It looks at the live clients often (they may live well under a
//! second), and at the mock on the slower timeline the growth checks compare.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::bench::process::status_field_bytes;

/// How often the live clients are read: short enough to see a run of a fraction of a second a few
/// times. `VmHWM` is a high-water mark, so only growth in the last tick before an exit is missed.
const CLIENT_TICK: Duration = Duration::from_millis(50);

/// What `/proc` says about one process at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ProcessReading {
    /// Resident set now (`VmRSS`), bytes.
    pub rss: u64,
    /// Peak resident set so far (`VmHWM`), bytes.
    pub peak_rss: u64,
    /// Open file descriptors (entries of `/proc/PID/fd`).
    pub fds: u64,
}

/// Reads `pid`'s resident set and file descriptors; `None` once it has exited (a zombie has no
/// `VmRSS` line) or when `/proc` would not tell.
pub(crate) fn read_process(pid: u32) -> Option<ProcessReading> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status_field_bytes(&status, "VmRSS")?;
    let peak_rss = status_field_bytes(&status, "VmHWM")?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(Result::ok)
        .count() as u64;
    Some(ProcessReading { rss, peak_rss, fds })
}

/// Established TCP connections whose local port is `port`, from `/proc/net/tcp` and `tcp6`: the
/// server's side of every connection a client holds to the mock.
pub(crate) fn established_connections(port: u16) -> u64 {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(Path::new(table)).ok())
        .map(|table| count_established(&table, port))
        .sum()
}

/// Counts the rows of a `/proc/net/tcp` table in state `01` (ESTABLISHED) with local port `port`.
fn count_established(table: &str, port: u16) -> u64 {
    table
        .lines()
        .skip(1)
        .filter(|row| {
            let mut fields = row.split_whitespace();
            let local = fields.nth(1);
            let state = fields.nth(1);
            let local_port = local
                .and_then(|address| address.rsplit(':').next())
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            local_port == Some(port) && state == Some("01")
        })
        .count() as u64
}

/// One point of the timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    /// Seconds since the load began.
    pub at_secs: f64,
    /// The mock, or `None` if it could not be read.
    pub mock: Option<ProcessReading>,
    /// Established connections to the mock's port.
    pub connections: u64,
    /// `ossup` processes alive.
    pub clients: u64,
    /// Their resident sets added up, bytes.
    pub clients_rss: u64,
}

/// The most one client process reached while it ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ClientPeak {
    /// Peak resident set, bytes (0 if it was never read).
    pub peak_rss: u64,
    /// Most file descriptors open at once.
    pub fds: u64,
}

#[derive(Debug, Default)]
struct Shared {
    clients: HashMap<u32, (ClientPeak, u64)>,
    timeline: Vec<Sample>,
}

/// The sampling thread and what it has seen.
#[derive(Debug)]
pub(crate) struct Sampler {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts reading `mock_pid` and the mock's connections on `port` every `interval`, and the
    /// registered clients every [`CLIENT_TICK`]; times count from `since`.
    pub(crate) fn start(mock_pid: u32, port: u16, interval: Duration, since: Instant) -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            thread::spawn(move || {
                let mut next_sample = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let pids: Vec<u32> = lock(&shared).clients.keys().copied().collect();
                    let readings: Vec<(u32, ProcessReading)> = pids
                        .into_iter()
                        .filter_map(|pid| read_process(pid).map(|r| (pid, r)))
                        .collect();
                    let mut guard = lock(&shared);
                    for (pid, reading) in &readings {
                        if let Some((peak, rss)) = guard.clients.get_mut(pid) {
                            peak.peak_rss = peak.peak_rss.max(reading.peak_rss);
                            peak.fds = peak.fds.max(reading.fds);
                            *rss = reading.rss;
                        }
                    }
                    drop(guard);
                    if Instant::now() >= next_sample {
                        next_sample += interval;
                        let mock = read_process(mock_pid);
                        let connections = established_connections(port);
                        let mut guard = lock(&shared);
                        let sample = Sample {
                            at_secs: since.elapsed().as_secs_f64(),
                            mock,
                            connections,
                            clients: readings.len() as u64,
                            clients_rss: readings.iter().map(|(_, r)| r.rss).sum(),
                        };
                        guard.timeline.push(sample);
                    }
                    thread::sleep(CLIENT_TICK);
                }
            })
        };
        Self {
            shared,
            stop,
            thread: Some(thread),
        }
    }

    /// Starts watching a client process.
    pub(crate) fn watch(&self, pid: u32) {
        lock(&self.shared)
            .clients
            .insert(pid, (ClientPeak::default(), 0));
    }

    /// Stops watching a client (call it once the process has been waited for); the most it reached.
    pub(crate) fn forget(&self, pid: u32) -> ClientPeak {
        lock(&self.shared)
            .clients
            .remove(&pid)
            .map(|(peak, _)| peak)
            .unwrap_or_default()
    }

    /// The timeline so far.
    pub(crate) fn timeline(&self) -> Vec<Sample> {
        lock(&self.shared).timeline.clone()
    }

    /// Stops the thread; the whole timeline.
    pub(crate) fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.timeline()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The readings stay usable after a worker panicked while holding the lock: they are plain numbers.
fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A listening socket on 8080 (0x1F90), two established connections to it, one in TIME_WAIT, and
    // an established one from it to elsewhere on another local port.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
   2: 0100007F:1F90 0100007F:D433 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1
   3: 0100007F:1F90 0100007F:D435 06 00000000:00000000 00:00000000 00000000     0        0 0 3 0 0 0 0 0 0
   4: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0 20 4 30 10 -1
";

    #[test]
    fn only_established_connections_on_the_local_port_are_counted() {
        assert_eq!(count_established(TCP, 8080), 2);
        assert_eq!(count_established(TCP, 0xD431), 1);
        assert_eq!(count_established(TCP, 9000), 0);
        assert_eq!(count_established("", 8080), 0);
    }

    #[test]
    fn this_process_can_be_read_and_a_missing_one_cannot() {
        let me = read_process(std::process::id()).unwrap();
        assert!(me.rss > 0 && me.peak_rss >= me.rss && me.fds >= 3, "{me:?}");
        // Pid numbers above the kernel's maximum (4194304) never name a process.
        assert_eq!(read_process(u32::MAX - 1), None);
    }

    #[test]
    fn a_watched_client_keeps_its_peak_and_the_timeline_has_the_mock() {
        let me = std::process::id();
        let sampler = Sampler::start(me, 1, Duration::from_millis(10), Instant::now());
        sampler.watch(me);
        thread::sleep(CLIENT_TICK * 4);
        let peak = sampler.forget(me);
        assert!(peak.peak_rss > 0 && peak.fds >= 3, "{peak:?}");
        let timeline = sampler.finish();
        assert!(!timeline.is_empty());
        assert!(timeline.iter().all(|s| s.mock.is_some()));
        assert!(timeline.windows(2).all(|w| w[0].at_secs <= w[1].at_secs));
    }
}
