//! `cargo xtask chaos --workers N`: N cooperating `ossup upload --cooperate` processes on one
//! file through one shared store (a PostgreSQL database on the run's throwaway cluster, or one
//! SQLite database), under the mock's seeded faults, with workers killed (and started again, as a
//! fleet's supervisor would), the mock killed, and PostgreSQL crashed and restarted. Afterwards
//! [`fleet_verify`](super::fleet_verify) checks the object, the open uploads, the store's rows and
//! how often each part was sent. `docs/chaos.md` ("Fleets") states the bound.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use ossup_test_support::postgres::PgCluster;
use serde_json::Value;

use super::fleet_plan::{At, FleetPlan, FleetStore, Strike};
use super::fleet_verify;
use super::iteration::{Binaries, Outcome, add_stats, append};
use super::mock::{BUCKET, Mock};
use super::plan::Gen;
use super::report::{self, Totals};
use super::run::read_lines;
use super::verify::{ACCESS_KEY_ID, ACCESS_KEY_SECRET, Digest, Net, REGION};

/// How long a worker's claims last unless renewed (`--lease`): short, so that a killed worker's
/// parts are taken over within seconds rather than the default 30 s.
pub(crate) const LEASE: &str = "2s";
/// How long an iteration may take before it is counted as hung.
const ITERATION_LIMIT: Duration = Duration::from_secs(300);
/// Runs of one worker beyond its planned kills before the iteration gives up on it.
const SPARE_RUNS: u32 = 8;
/// How often the workers are looked at.
const TICK: Duration = Duration::from_millis(20);
/// How long a worker that exited with an error waits before it is started again, as a supervisor
/// backs off (systemd's `RestartSec`, Kubernetes' back-off): started again at once, workers that
/// join an upload the server forgot fail again while another worker's claims on it live, every few
/// milliseconds, and use up their runs before those claims go.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// What a fleet iteration counts beside the runs.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FleetCounts {
    /// PostgreSQL crashes, each followed by a restart.
    pub database_restarts: u32,
    /// UploadPart requests the server received.
    pub part_requests: u64,
    /// Of those, the ones beyond one per part of an upload that no failed attempt explains.
    pub resent: u64,
    /// What the bound allows for them: claims taken over after a lease expired or was released.
    pub allowed: u64,
    /// Parts over the bound where a corrupted answer (ETag, CRC-64) made the worker send again.
    pub excused: u64,
    /// Processes stopped by a signal this harness did not send (a worker killed, the mock told to
    /// stop), each started again like a planned kill. Seen within a second of PostgreSQL's crash or
    /// restart, rarely, and not explained yet; counted so that it stays visible.
    pub unexplained_stops: u32,
}

impl FleetCounts {
    /// One iteration's counts, for its line.
    pub(crate) fn describe(&self) -> String {
        format!(
            "PostgreSQL restarts {}, part requests {}, re-sent {} (bound {}), unexplained stops {}",
            self.database_restarts,
            self.part_requests,
            self.resent,
            self.allowed,
            self.unexplained_stops
        )
    }

    /// Adds `other`'s counts to these.
    pub(crate) fn add(&mut self, other: &FleetCounts) {
        self.database_restarts += other.database_restarts;
        self.part_requests += other.part_requests;
        self.resent += other.resent;
        self.allowed += other.allowed;
        self.excused += other.excused;
        self.unexplained_stops += other.unexplained_stops;
    }
}

/// Where the workers' shared store is.
pub(crate) enum Shared<'a> {
    /// A database of this cluster, one per iteration.
    Postgres(&'a PgCluster),
    /// A SQLite file in the iteration's directory.
    Sqlite,
}

impl Shared<'_> {
    /// The kind of store, for the plan.
    pub(crate) fn kind(&self) -> FleetStore {
        match self {
            Shared::Postgres(_) => FleetStore::Postgres,
            Shared::Sqlite => FleetStore::Sqlite,
        }
    }
}

/// One worker slot: the run going on, if any, and what its runs came to.
struct Worker {
    child: Option<Child>,
    lines: Option<Receiver<String>>,
    runs: u32,
    done: bool,
    stderr: PathBuf,
    /// When a worker that exited with an error is started again.
    restart_at: Option<Instant>,
}

/// Runs the fleet iteration of `plan` in `dir`.
pub(super) fn run(
    bins: &Binaries<'_>,
    plan: &FleetPlan,
    dir: &Path,
    net: &Net,
    shared: &Shared<'_>,
) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome::default();
    if let Err(e) = run_in(bins, plan, dir, net, shared, &mut outcome) {
        outcome.failures.push(e);
    }
    outcome.elapsed = started.elapsed();
    outcome
}

fn run_in(
    bins: &Binaries<'_>,
    plan: &FleetPlan,
    dir: &Path,
    net: &Net,
    shared: &Shared<'_>,
    outcome: &mut Outcome,
) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut bytes = vec![0u8; plan.size as usize];
    Gen::new(plan.seed ^ 0x5EED_F1EE7).fill(&mut bytes);
    let file = dir.join("source.bin");
    std::fs::write(&file, &bytes).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    let source = Digest::of(&bytes);
    drop(bytes);
    let key = format!("fleet/{}.bin", plan.seed);
    let database = format!("chaos_{}", plan.seed);
    let store_args = match shared {
        Shared::Postgres(cluster) => {
            cluster.create_database(&database);
            vec!["--checkpoint-url".to_owned(), cluster.url(&database)]
        }
        Shared::Sqlite => vec![
            "--checkpoint-db".to_owned(),
            dir.join("shared.db").display().to_string(),
        ],
    };
    let mut mock =
        Mock::start_logging_requests(bins.mock, dir, &super::plan::rules_json(&plan.rules))?;
    let endpoint = mock.endpoint();
    let args = |parallel: u16| -> Vec<String> {
        let mut args = vec![
            "upload".to_owned(),
            file.display().to_string(),
            format!("oss://{BUCKET}/{key}"),
            "--endpoint".to_owned(),
            endpoint.clone(),
            "--region".to_owned(),
            REGION.to_owned(),
            "--part-size".to_owned(),
            plan.part_size.to_string(),
            "--cooperate".to_owned(),
            "--lease".to_owned(),
            LEASE.to_owned(),
            "--parallel".to_owned(),
            parallel.to_string(),
            // A hedge is a second send of a part by a live worker, on purpose; without it every
            // part sent twice is a retry or a takeover, which the bound counts.
            "--no-hedge".to_owned(),
            "--progress".to_owned(),
            "json".to_owned(),
        ];
        args.extend(store_args.iter().cloned());
        args
    };
    let runs_log = dir.join("runs.log");
    let mut workers: Vec<Worker> = (0..plan.parallel.len())
        .map(|n| Worker {
            child: None,
            lines: None,
            runs: 0,
            done: false,
            stderr: dir.join(format!("worker-{n}.stderr")),
            restart_at: None,
        })
        .collect();
    let limit = |n: usize| {
        plan.strikes
            .iter()
            .filter(|(_, s)| *s == Strike::Worker(n))
            .count() as u32
            + SPARE_RUNS
    };
    let begun = Instant::now();
    for (n, worker) in workers.iter_mut().enumerate() {
        spawn(bins.ossup, &args(plan.parallel[n]), worker, n, &runs_log)?;
    }
    outcome.counts.runs += workers.len() as u32;
    let mut parts_done = 0usize;
    let mut strikes = plan.strikes.iter().peekable();
    while workers.iter().any(|w| !w.done) {
        if begun.elapsed() > ITERATION_LIMIT {
            for worker in &mut workers {
                if let Some(mut child) = worker.child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            return Err(format!(
                "the workers did not all finish within {} s (hung); their logs are worker-N.stderr",
                ITERATION_LIMIT.as_secs()
            ));
        }
        for (n, worker) in workers.iter_mut().enumerate() {
            parts_done += drain(worker, n, &runs_log, outcome);
        }
        if let Some(status) = mock.ended_by_itself() {
            // Exit status 0 is the mock stopping on SIGINT or SIGTERM, which this harness never
            // sends it: the server went down as a kill would take it, so it is started again.
            if status.success() {
                append(
                    &runs_log,
                    &format!(
                        "{:?}: oss-mock stopped on a signal this harness did not send; started again\n",
                        begun.elapsed()
                    ),
                );
                outcome.fleet.unexplained_stops += 1;
                mock.restart()?;
                continue;
            }
            for worker in &mut workers {
                if let Some(mut child) = worker.child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            return Err(format!(
                "oss-mock ended without being killed here ({status}); the workers cannot finish\n{}",
                mock.log_tail()
            ));
        }
        while let Some((at, strike)) = strikes.peek() {
            let due = match at {
                At::PartsDone(k) => parts_done >= *k,
                At::Ms(ms) => begun.elapsed() >= Duration::from_millis(*ms),
            };
            if !due {
                break;
            }
            append(&runs_log, &format!("{:?}: {strike:?}\n", begun.elapsed()));
            match *strike {
                Strike::Worker(n) => {
                    if let Some(mut child) = workers[n].child.take() {
                        let _ = child.kill();
                        let status = child.wait().ok();
                        parts_done += drain(&mut workers[n], n, &runs_log, outcome);
                        workers[n].lines = None;
                        if status.and_then(|s| s.code()) == Some(0) {
                            workers[n].done = true;
                        } else {
                            outcome.counts.kills += 1;
                        }
                    }
                }
                Strike::Server { down_ms } => {
                    if let Ok(stats) = net.stats(&endpoint) {
                        add_stats(outcome, &stats);
                    }
                    mock.kill();
                    std::thread::sleep(Duration::from_millis(down_ms));
                    mock.restart()?;
                    outcome.counts.server_restarts += 1;
                }
                Strike::Database { down_ms } => {
                    if let Shared::Postgres(cluster) = shared {
                        cluster.crash();
                        std::thread::sleep(Duration::from_millis(down_ms));
                        cluster.restart();
                        outcome.fleet.database_restarts += 1;
                    }
                }
            }
            strikes.next();
        }
        for (n, worker) in workers.iter_mut().enumerate() {
            if worker.done {
                continue;
            }
            let ended = match worker.child.as_mut() {
                Some(child) => match child.try_wait() {
                    Ok(Some(status)) => Some(status),
                    Ok(None) => continue,
                    Err(e) => return Err(format!("cannot wait for worker {n}: {e}")),
                },
                // Killed above: start it again.
                None => None,
            };
            if let Some(status) = ended {
                worker.child = None;
                parts_done += drain(worker, n, &runs_log, outcome);
                worker.lines = None;
                append(
                    &runs_log,
                    &format!("worker {n} run {} ended: {status}\n", worker.runs),
                );
                match status.code() {
                    Some(0) => {
                        worker.done = true;
                        continue;
                    }
                    Some(1) => {
                        outcome.counts.error_exits += 1;
                        outcome.run_errors.push(last_error(&worker.stderr));
                        worker.restart_at = Some(Instant::now() + RESTART_DELAY);
                    }
                    // No planned kill of it is pending here (those reap the worker themselves).
                    None if std::os::unix::process::ExitStatusExt::signal(&status).is_some() => {
                        outcome.fleet.unexplained_stops += 1;
                    }
                    _ => {
                        return Err(format!(
                            "worker {n} run {} ended with {status}: {}",
                            worker.runs,
                            last_error(&worker.stderr)
                        ));
                    }
                }
            }
            if worker.restart_at.is_some_and(|at| Instant::now() < at) {
                continue;
            }
            worker.restart_at = None;
            if worker.runs >= limit(n) {
                return Err(format!(
                    "worker {n} did not finish in {} runs; its last error: {}",
                    worker.runs,
                    last_error(&worker.stderr)
                ));
            }
            spawn(bins.ossup, &args(plan.parallel[n]), worker, n, &runs_log)?;
            outcome.counts.runs += 1;
        }
        std::thread::sleep(TICK);
    }
    net.clear_faults(&endpoint)?;
    let stats = net.stats(&endpoint)?;
    add_stats(outcome, &stats);
    let rows = match shared {
        Shared::Postgres(cluster) => fleet_verify::postgres_rows(cluster, &database),
        Shared::Sqlite => fleet_verify::sqlite_rows(net, &dir.join("shared.db")),
    };
    let mut failures = fleet_verify::object_and_uploads(net, &endpoint, &key, &source);
    if let Err(e) = rows {
        failures.push(e);
    }
    let stderr_files: Vec<PathBuf> = workers.iter().map(|w| w.stderr.clone()).collect();
    let sends = fleet_verify::part_sends(&dir.join("mock.log"), &stderr_files, plan)?;
    outcome.fleet.part_requests += sends.requests;
    outcome.fleet.resent += sends.resent;
    outcome.fleet.allowed += sends.allowed;
    outcome.fleet.excused += sends.excused;
    failures.extend(sends.failures);
    outcome.failures.extend(failures);
    if let Shared::Postgres(cluster) = shared
        && outcome.failures.is_empty()
    {
        cluster.psql("postgres", &format!("DROP DATABASE \"{database}\""));
    }
    Ok(())
}

/// Starts one more run of worker `n`, its stderr (with its debug log) appended to its file.
fn spawn(
    ossup: &Path,
    args: &[String],
    worker: &mut Worker,
    n: usize,
    runs_log: &Path,
) -> Result<(), String> {
    worker.runs += 1;
    let banner = format!("=== worker {n} run {} ===\n", worker.runs);
    append(&worker.stderr, &banner);
    append(runs_log, &banner);
    let stderr = std::fs::OpenOptions::new()
        .append(true)
        .open(&worker.stderr)
        .map_err(|e| format!("cannot open {}: {e}", worker.stderr.display()))?;
    let mut child = Command::new(ossup)
        .args(args)
        .env("OSS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("OSS_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
        .env("RUST_LOG", "ossup=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", ossup.display()))?;
    worker.lines = Some(read_lines(&mut child));
    worker.child = Some(child);
    Ok(())
}

/// Reads the lines a worker printed so far into the runs log; returns how many were `part_done`.
/// A line that is not a JSON object fails the iteration.
fn drain(worker: &mut Worker, n: usize, runs_log: &Path, outcome: &mut Outcome) -> usize {
    let Some(lines) = &worker.lines else {
        return 0;
    };
    let mut done = 0;
    let mut text = String::new();
    // After the child ended, its reader thread may still hold the last lines: wait for the end.
    let exited = worker.child.is_none();
    loop {
        let line = if exited {
            match lines.recv_timeout(Duration::from_secs(5)) {
                Ok(line) => line,
                Err(_) => break,
            }
        } else {
            match lines.try_recv() {
                Ok(line) => line,
                Err(_) => break,
            }
        };
        match serde_json::from_str::<Value>(&line) {
            Ok(event) if event.is_object() => {
                if event["event"] == "part_done" {
                    done += 1;
                }
            }
            _ => outcome.failures.push(format!(
                "worker {n} printed a line that is not a JSON object: {line:?}"
            )),
        }
        text.push_str(&format!("  worker {n}: {line}\n"));
    }
    append(runs_log, &text);
    done
}

/// The last `error:` line of a worker's stderr (what it printed as its error, with its hints
/// after it), else its last line that is not a log line.
fn last_error(stderr: &Path) -> String {
    let text = std::fs::read_to_string(stderr).unwrap_or_default();
    let own = |line: &&str| {
        !line.starts_with("===")
            && !line.starts_with(' ')
            && !line.as_bytes().first().is_some_and(u8::is_ascii_digit)
    };
    let lines: Vec<&str> = text.lines().filter(own).collect();
    lines
        .iter()
        .rev()
        .find(|line| line.starts_with("error:"))
        .or(lines.last())
        .map(|line| (*line).to_owned())
        .unwrap_or_default()
}

/// The measures of a fleet run.
pub(super) fn rows(totals: &Totals) -> Vec<(&'static str, String)> {
    let (f, c) = (&totals.fleet, &totals.counts);
    let passed = totals.iterations as usize - totals.failed.len();
    vec![
        (
            "iterations",
            format!(
                "{} ({passed} passed, {} failed)",
                totals.iterations,
                totals.failed.len()
            ),
        ),
        (
            "data uploaded",
            format!("{} in {} parts", report::size(totals.bytes), totals.parts),
        ),
        (
            "worker runs",
            format!(
                "{} ({} ended with an error and were started again)",
                c.runs, c.error_exits
            ),
        ),
        (
            "workers killed (SIGKILL) and started again",
            c.kills.to_string(),
        ),
        (
            "server killed (SIGKILL) and restarted",
            c.server_restarts.to_string(),
        ),
        (
            "PostgreSQL crashed (immediate stop) and restarted",
            f.database_restarts.to_string(),
        ),
        (
            "processes stopped by a signal this harness did not send (started again)",
            f.unexplained_stops.to_string(),
        ),
        (
            "UploadPart requests the server received",
            f.part_requests.to_string(),
        ),
        (
            "parts re-sent beyond retries of failed attempts, against the bound (claims taken over after an expired or released lease)",
            format!(
                "{} against {} allowed ({} parts over the bound excused by a corrupted answer)",
                f.resent, f.allowed, f.excused
            ),
        ),
        ("time", format!("{:.0} s", totals.elapsed.as_secs_f64())),
    ]
}
