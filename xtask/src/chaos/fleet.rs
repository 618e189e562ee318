//! `cargo xtask chaos --workers N`: N cooperating `ossup upload --cooperate` processes on one
//! file through one shared store (a PostgreSQL database on the run's throwaway cluster, or one
//! SQLite database), under the mock's seeded faults, with workers killed (and started again, as a
//! fleet's supervisor would), the mock killed, and PostgreSQL crashed and restarted. Afterwards
//! [`fleet_verify`](super::fleet_verify) checks the object, the open uploads, the store's rows and
//! how often each part was sent. `docs/chaos.md` ("Fleets") states the bound. The workers, the
//! shared store and the strikes ([`Crew`], [`SharedStore`], [`worker_args`]) serve the fleet on a
//! tree too ([`fleet_tree`](super::fleet_tree)).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use ossup_test_support::postgres::PgCluster;
use serde_json::Value;

use super::fleet_plan::{At, FleetPlan, FleetStore, Strike};
use super::fleet_verify;
use super::iteration::{Binaries, Outcome, add_stats, append, timed};
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
    /// On a tree: PutObject requests the server received for the tree's keys.
    pub put_requests: u64,
    /// On a tree: keys put whole at least once.
    pub put_keys: u64,
    /// On a tree: PutObjects beyond one per key that no failed attempt explains.
    pub put_again: u64,
    /// On a tree: what the bound allows for them (kills and crashes times files in hand).
    pub put_allowed: u64,
    /// On a tree: files the workers' last runs skipped as put by another worker.
    pub by_another: u64,
}

impl FleetCounts {
    /// One iteration's counts, for its line.
    pub(crate) fn describe(&self) -> String {
        let mut text = format!(
            "PostgreSQL restarts {}, part requests {}, re-sent {} (bound {}), unexplained stops {}",
            self.database_restarts,
            self.part_requests,
            self.resent,
            self.allowed,
            self.unexplained_stops
        );
        if self.put_keys > 0 {
            text.push_str(&format!(
                ", PutObjects {} for {} keys, again {} (bound {}), skipped as another's {}",
                self.put_requests, self.put_keys, self.put_again, self.put_allowed, self.by_another
            ));
        }
        text
    }

    /// Adds `other`'s counts to these.
    pub(crate) fn add(&mut self, other: &FleetCounts) {
        self.database_restarts += other.database_restarts;
        self.part_requests += other.part_requests;
        self.resent += other.resent;
        self.allowed += other.allowed;
        self.excused += other.excused;
        self.unexplained_stops += other.unexplained_stops;
        self.put_requests += other.put_requests;
        self.put_keys += other.put_keys;
        self.put_again += other.put_again;
        self.put_allowed += other.put_allowed;
        self.by_another += other.by_another;
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
pub(super) struct Worker {
    child: Option<Child>,
    lines: Option<Receiver<String>>,
    runs: u32,
    done: bool,
    /// Its stderr, with its debug log, across its runs.
    pub stderr: PathBuf,
    /// When a worker that exited with an error is started again.
    restart_at: Option<Instant>,
    /// The JSON lines its latest run printed.
    pub last_run: Vec<Value>,
}

/// Runs the fleet iteration of `plan` in `dir`.
pub(super) fn run(
    bins: &Binaries<'_>,
    plan: &FleetPlan,
    dir: &Path,
    net: &Net,
    shared: &Shared<'_>,
) -> Outcome {
    timed(|outcome| run_in(bins, plan, dir, net, shared, outcome))
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
    let store = SharedStore::create(shared, dir, plan.seed);
    let mut mock =
        Mock::start_logging_requests(bins.mock, dir, &super::plan::rules_json(&plan.rules))?;
    let endpoint = mock.endpoint();
    let args = |n: usize| -> Vec<String> {
        let mut args = vec![
            "upload".to_owned(),
            file.display().to_string(),
            format!("oss://{BUCKET}/{key}"),
        ];
        args.extend(worker_args(
            &endpoint,
            plan.part_size,
            plan.parallel[n],
            &store,
        ));
        args
    };
    let crew = Crew {
        ossup: bins.ossup,
        dir,
        workers: plan.parallel.len(),
        args: &args,
        strikes: &plan.strikes,
    };
    let workers = crew.drive(&mut mock, net, shared, outcome)?;
    net.clear_faults(&endpoint)?;
    let stats = net.stats(&endpoint)?;
    add_stats(outcome, &stats);
    let mut failures = fleet_verify::object_and_uploads(net, &endpoint, &key, &source);
    if let Err(e) = store.rows(net, "") {
        failures.push(e);
    }
    let stderr_files: Vec<PathBuf> = workers.iter().map(|w| w.stderr.clone()).collect();
    let sends = fleet_verify::part_sends(&dir.join("mock.log"), &stderr_files, &plan.rules)?;
    outcome.fleet.part_requests += sends.requests;
    outcome.fleet.resent += sends.resent;
    outcome.fleet.allowed += sends.allowed;
    outcome.fleet.excused += sends.excused;
    failures.extend(sends.failures);
    outcome.failures.extend(failures);
    if outcome.failures.is_empty() {
        store.drop_database();
    }
    Ok(())
}

/// The options every worker's command line has after its source and destination: the mock, the
/// part size, cooperation with a short lease, its parallelism, no hedging, JSON progress, and the
/// shared store.
pub(super) fn worker_args(
    endpoint: &str,
    part_size: u64,
    parallel: u16,
    store: &SharedStore<'_>,
) -> Vec<String> {
    let mut args: Vec<String> = [
        "--endpoint",
        endpoint,
        "--region",
        REGION,
        "--part-size",
        &part_size.to_string(),
        "--cooperate",
        "--lease",
        LEASE,
        "--parallel",
        &parallel.to_string(),
        // A hedge is a second send of a part by a live worker, on purpose; without it every
        // part sent twice is a retry or a takeover, which the bound counts.
        "--no-hedge",
        "--progress",
        "json",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    args.extend(store.args());
    args
}

/// The store one iteration's workers share: a fresh database on the run's cluster, or a SQLite
/// file in the iteration's directory.
pub(super) struct SharedStore<'a> {
    shared: &'a Shared<'a>,
    database: String,
    sqlite: PathBuf,
}

impl<'a> SharedStore<'a> {
    /// Creates the store of the iteration of `seed` in `dir` (a database `chaos_SEED`, or
    /// `dir/shared.db`, which the first worker creates).
    pub(super) fn create(shared: &'a Shared<'a>, dir: &Path, seed: u64) -> SharedStore<'a> {
        let database = format!("chaos_{seed}");
        if let Shared::Postgres(cluster) = shared {
            cluster.create_database(&database);
        }
        SharedStore {
            shared,
            database,
            sqlite: dir.join("shared.db"),
        }
    }

    /// The store's flag and value on a worker's command line.
    fn args(&self) -> [String; 2] {
        match self.shared {
            Shared::Postgres(cluster) => {
                ["--checkpoint-url".to_owned(), cluster.url(&self.database)]
            }
            Shared::Sqlite => [
                "--checkpoint-db".to_owned(),
                self.sqlite.display().to_string(),
            ],
        }
    }

    /// Checks that the store holds nothing live once every worker is done: no checkpoint, part,
    /// claim or completion, and no file claim under `prefix` whose lease still runs.
    pub(super) fn rows(&self, net: &Net, prefix: &str) -> Result<(), String> {
        match self.shared {
            Shared::Postgres(cluster) => fleet_verify::postgres_rows(cluster, &self.database),
            Shared::Sqlite => fleet_verify::sqlite_rows(net, &self.sqlite, prefix),
        }
    }

    /// What the store still holds once every worker is done (see [`fleet_verify::LeftInStore`]).
    pub(super) fn left(
        &self,
        net: &Net,
        prefix: &str,
    ) -> Result<fleet_verify::LeftInStore, String> {
        match self.shared {
            Shared::Postgres(cluster) => fleet_verify::postgres_left(cluster, &self.database),
            Shared::Sqlite => fleet_verify::sqlite_left(net, &self.sqlite, prefix),
        }
    }

    /// Drops the iteration's database (once it passed; a failed one is kept to be looked at).
    pub(super) fn drop_database(&self) {
        if let Shared::Postgres(cluster) = self.shared {
            cluster.psql("postgres", &format!("DROP DATABASE \"{}\"", self.database));
        }
    }
}

/// The workers of one iteration, and what is done to them.
pub(super) struct Crew<'a> {
    /// `ossup`.
    pub ossup: &'a Path,
    /// The iteration's directory, where each worker's stderr and the runs log go.
    pub dir: &'a Path,
    /// How many workers.
    pub workers: usize,
    /// The command line of worker n (every run of it the same).
    pub args: &'a dyn Fn(usize) -> Vec<String>,
    /// The kills and restarts, in order.
    pub strikes: &'a [(At, Strike)],
}

impl Crew<'_> {
    /// Starts every worker, strikes as planned (a killed worker started again at once, one that
    /// exited 1 after [`RESTART_DELAY`], the mock restarted, PostgreSQL crashed and restarted),
    /// and waits until every worker has exited 0. Returns the workers, each with the lines of its
    /// last run.
    pub(super) fn drive(
        &self,
        mock: &mut Mock,
        net: &Net,
        shared: &Shared<'_>,
        outcome: &mut Outcome,
    ) -> Result<Vec<Worker>, String> {
        let runs_log = self.dir.join("runs.log");
        let mut workers: Vec<Worker> = (0..self.workers)
            .map(|n| Worker {
                child: None,
                lines: None,
                runs: 0,
                done: false,
                stderr: self.dir.join(format!("worker-{n}.stderr")),
                restart_at: None,
                last_run: Vec::new(),
            })
            .collect();
        let limit = |n: usize| {
            self.strikes
                .iter()
                .filter(|(_, s)| *s == Strike::Worker(n))
                .count() as u32
                + SPARE_RUNS
        };
        let endpoint = mock.endpoint();
        let begun = Instant::now();
        for (n, worker) in workers.iter_mut().enumerate() {
            spawn(self.ossup, &(self.args)(n), worker, n, &runs_log)?;
        }
        outcome.counts.runs += workers.len() as u32;
        let mut progress = 0usize;
        let mut strikes = self.strikes.iter().peekable();
        let stop_all = |workers: &mut Vec<Worker>| {
            for worker in workers {
                if let Some(mut child) = worker.child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        };
        while workers.iter().any(|w| !w.done) {
            if begun.elapsed() > ITERATION_LIMIT {
                stop_all(&mut workers);
                return Err(format!(
                    "the workers did not all finish within {} s (hung); their logs are worker-N.stderr",
                    ITERATION_LIMIT.as_secs()
                ));
            }
            for (n, worker) in workers.iter_mut().enumerate() {
                progress += drain(worker, n, &runs_log, outcome);
            }
            if let Some(status) = mock.ended_by_itself() {
                // Exit status 0 is the mock stopping on SIGINT or SIGTERM, which this harness
                // never sends it: the server went down as a kill would take it, so it is started
                // again.
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
                stop_all(&mut workers);
                return Err(format!(
                    "oss-mock ended without being killed here ({status}); the workers cannot finish\n{}",
                    mock.log_tail()
                ));
            }
            while let Some((at, strike)) = strikes.peek() {
                let due = match at {
                    At::Progress(k) => progress >= *k,
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
                            progress += drain(&mut workers[n], n, &runs_log, outcome);
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
                    progress += drain(worker, n, &runs_log, outcome);
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
                        // No planned kill of it is pending here (those reap the worker
                        // themselves).
                        None if std::os::unix::process::ExitStatusExt::signal(&status)
                            .is_some() =>
                        {
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
                spawn(self.ossup, &(self.args)(n), worker, n, &runs_log)?;
                outcome.counts.runs += 1;
            }
            std::thread::sleep(TICK);
        }
        Ok(workers)
    }
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
    worker.last_run.clear();
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

/// Reads the lines a worker printed so far into the runs log and its run's lines; returns how many
/// were progress (`part_done` of a file, or `file`, a tree's result for one file). A line that is
/// not a JSON object fails the iteration.
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
                if event["event"] == "part_done" || event["event"] == "file" {
                    done += 1;
                }
                worker.last_run.push(event);
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
    ]
    .into_iter()
    .chain((f.put_keys > 0).then(|| {
        let t = &totals.tree;
        [
            (
                "files (trees)",
                format!(
                    "{} of {} ({} multipart), {} more left out by --exclude",
                    t.files,
                    report::size(totals.bytes),
                    t.multipart,
                    t.left_out
                ),
            ),
            (
                "PutObject requests the server received, for how many keys",
                format!("{} for {} keys", f.put_requests, f.put_keys),
            ),
            (
                "PutObjects beyond one per key not explained by a failed attempt, against the bound (kills and crashes x files in the workers' hands)",
                format!("{} against {} allowed", f.put_again, f.put_allowed),
            ),
            (
                "workers' last runs: files uploaded, skipped (of them put by another worker)",
                format!("{} uploaded, {} skipped ({})", t.uploaded, t.skipped, f.by_another),
            ),
            (
                "checkpoints left of files whose upload completed in a run that could not remove them (skipped since)",
                t.stale_checkpoints.to_string(),
            ),
        ]
    }).into_iter().flatten())
    .chain([("time", format!("{:.0} s", totals.elapsed.as_secs_f64()))])
    .collect()
}
