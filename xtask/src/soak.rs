//! `cargo xtask soak`: hours of uploads against one mock with faults armed, watching for what only
//! time shows: memory, file descriptors and connections that grow, an object that comes out wrong
//! once in thousands, an upload left open.
//!
//! One `oss-mock` (the chaos harness's, [`crate::chaos::mock::Mock`]) is started, sampled idle, and
//! given a steady low rate of faults through its control API (503s, slow answers, resets, slow
//! reads, lost acknowledgements: [`workload::fault_rules`]). Then `--workers` threads each run
//! `ossup upload` jobs back to back until the time is up: single files small enough for PutObject,
//! medium and large multipart files, and trees (`--recursive`), with a seeded part size, scheduler,
//! checkpoint store and sometimes `--limit-rate` ([`workload::Job`]). Every object a job leaves is
//! read back and checked against its file (size, MD5, CRC-64). Meanwhile [`sampler::Sampler`] reads
//! `/proc` for the mock's resident set, descriptors and connections every `--interval`, and each
//! client's peak resident set and descriptors while it runs.
//!
//! At the end: growth of the mock and of each kind of client between the warm-up and the end of the
//! load is held against the bounds of [`bounds`]; once the clients are gone the mock must be back to
//! its idle descriptors with no connection; no multipart upload may be open on the server, no
//! checkpoint left in any worker's store. `docs/security.md` ("Soak") has the figures of real runs.

mod bounds;
mod sampler;
mod workload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::chaos::mock::{BUCKET, Mock};
use crate::chaos::verify::{
    ACCESS_KEY_ID, ACCESS_KEY_SECRET, Net, REGION, check_object, list_checkpoints,
};
use crate::cmd::{Failure, Step, parse_size, target_dir};
use crate::mock_process::log_tail;

use bounds::{Check, ClientRun, mib, window};
use sampler::{ClientPeak, Sampler, read_process};
use workload::{Job, Kind, Worker};

/// How long when neither `--minutes` nor `--seconds` is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(10 * 60);
/// Concurrent `ossup` processes when `--workers` is not given.
const DEFAULT_WORKERS: usize = 6;
/// The largest file when `--max-size` is not given.
const DEFAULT_MAX_SIZE: u64 = 32 << 20;
/// The mock is sampled this often when `--interval` is not given.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// One job may take this long before it is killed and counted as hung: the largest file at the
/// lowest `--limit-rate` takes a few seconds, and faults add a few more.
const JOB_LIMIT: Duration = Duration::from_secs(300);
/// How long the mock may take, once the last client has exited, to close its side of every
/// connection and come back to its idle descriptors.
const SETTLE_LIMIT: Duration = Duration::from_secs(15);

/// Where the binaries come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// `cargo build --release`: what users run, and what the figures are of.
    Release,
    /// The debug build the other test steps have already made: for the short run of
    /// `cargo xtask test`, which must not wait for a release build.
    Debug,
}

/// The command line of `cargo xtask soak`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SoakArgs {
    /// How long jobs are started for.
    pub duration: Duration,
    /// The seed of the jobs and of the fault rules.
    pub seed: u64,
    /// Concurrent `ossup` processes.
    pub workers: usize,
    /// The largest file.
    pub max_size: u64,
    /// How often the mock is sampled.
    pub interval: Duration,
    /// Which build of `ossup` and `oss-mock` runs.
    pub profile: Profile,
}

impl SoakArgs {
    /// Parses the arguments after `soak`; the seed defaults to one taken from the clock.
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut parsed = SoakArgs {
            duration: DEFAULT_DURATION,
            seed: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            workers: DEFAULT_WORKERS,
            max_size: DEFAULT_MAX_SIZE,
            interval: DEFAULT_INTERVAL,
            profile: Profile::Release,
        };
        let mut interval_given = false;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value; see cargo xtask --help"))
            };
            match arg.as_str() {
                "--minutes" => parsed.duration = seconds(&value("--minutes")?, "--minutes", 60.0)?,
                "--seconds" => parsed.duration = seconds(&value("--seconds")?, "--seconds", 1.0)?,
                "--seed" => {
                    let text = value("--seed")?;
                    parsed.seed = text
                        .trim()
                        .parse()
                        .map_err(|_| format!("--seed {text:?} is not a whole number"))?;
                }
                "--workers" => {
                    let text = value("--workers")?;
                    parsed.workers = text
                        .trim()
                        .parse()
                        .ok()
                        .filter(|n| (1..=64).contains(n))
                        .ok_or_else(|| {
                            format!("--workers {text:?} is not a number from 1 to 64")
                        })?;
                }
                "--max-size" => {
                    parsed.max_size = parse_size("--max-size", &value("--max-size")?)?;
                    if parsed.max_size < 1 << 20 {
                        return Err("--max-size must be at least 1MiB, so that large files have several parts".to_owned());
                    }
                }
                "--interval" => {
                    parsed.interval = seconds(&value("--interval")?, "--interval", 1.0)?;
                    interval_given = true;
                }
                "--debug" => parsed.profile = Profile::Debug,
                other => {
                    return Err(format!(
                        "unknown argument {other:?}; soak takes --minutes N or --seconds N, --seed S, --workers N, --max-size SIZE, --interval SECS and --debug"
                    ));
                }
            }
        }
        // The warm-up and the end window are each a fifth of the run: each must hold samples.
        let most = parsed.duration / 10;
        if parsed.interval > most {
            if interval_given {
                return Err(format!(
                    "--interval {:?} is longer than a tenth of the run ({most:?}): the warm-up and the end would hold too few samples",
                    parsed.interval
                ));
            }
            parsed.interval = most;
        }
        Ok(parsed)
    }

    /// The command that runs this soak again.
    pub(crate) fn command_line(&self) -> String {
        format!(
            "cargo xtask soak --seconds {} --seed {} --workers {} --max-size {} --interval {}{}",
            self.duration.as_secs_f64(),
            self.seed,
            self.workers,
            self.max_size,
            self.interval.as_secs_f64(),
            if self.profile == Profile::Debug {
                " --debug"
            } else {
                ""
            }
        )
    }
}

/// A positive number of `unit`-second units, as a duration of at least a second.
fn seconds(text: &str, name: &str, unit: f64) -> Result<Duration, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{name} {text:?} is not a number"))?;
    let secs = value * unit;
    if !(1.0..=86_400.0 * 7.0).contains(&secs) {
        return Err(format!(
            "{name} {text} is out of range: from one second to a week"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `cargo xtask soak ARGS`.
pub(crate) fn run(args: &[String]) -> Result<(), Failure> {
    let args = SoakArgs::parse(args).map_err(Failure::new)?;
    run_with(&args)
}

/// The binaries of `profile`, built first.
fn build(profile: Profile) -> Result<(PathBuf, PathBuf), Failure> {
    let mut build = Step::cargo(
        "build ossup and oss-mock",
        ["build", "--package", "ossup-cli", "--package", "oss-mock"],
    );
    let dir = match profile {
        Profile::Release => {
            build.args(&["--release"]);
            target_dir().join("release")
        }
        Profile::Debug => target_dir().join("debug"),
    };
    build.run()?;
    Ok((dir.join("ossup"), dir.join("oss-mock")))
}

/// What the workers share.
struct Shared<'a> {
    args: &'a SoakArgs,
    ossup: &'a Path,
    work: &'a Path,
    endpoint: String,
    net: &'a Net,
    sampler: &'a Sampler,
    started: Instant,
    next_job: AtomicU64,
    stop: AtomicBool,
    finished: Mutex<Vec<Finished>>,
    failures: Mutex<Vec<String>>,
}

/// One job that ran to its end and whose objects were checked.
#[derive(Debug, Clone, Copy)]
struct Finished {
    kind: Kind,
    ended_secs: f64,
    peak: ClientPeak,
    objects: u64,
    bytes: u64,
    limited: bool,
}

/// Runs the soak `args` describes and prints its summary; fails on a wrong object, an upload left
/// open, a failed job, or growth beyond the bounds.
pub(crate) fn run_with(args: &SoakArgs) -> Result<(), Failure> {
    let (ossup, mock_binary) = build(args.profile)?;
    let work = target_dir().join("soak");
    match std::fs::remove_dir_all(&work) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Failure::new(format!(
                "cannot remove the last soak's {}: {e}",
                work.display()
            )));
        }
        _ => {}
    }
    std::fs::create_dir_all(&work)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", work.display())))?;
    println!(
        "==> soak: {:.0} s from seed {}, {} workers, files up to {}, sampled every {:.1} s ({:?} build)",
        args.duration.as_secs_f64(),
        args.seed,
        args.workers,
        mib(args.max_size),
        args.interval.as_secs_f64(),
        args.profile
    );
    let mock = Mock::start_in(&mock_binary, &work, "[]").map_err(Failure::new)?;
    let mock_pid = mock
        .pid()
        .ok_or_else(|| Failure::new("the mock has no process right after it started"))?;
    let net = Net::new().map_err(Failure::new)?;
    let endpoint = mock.endpoint();
    // Idle: started, one request answered (so whatever the first request sets up exists), no load.
    net.stats(&endpoint).map_err(Failure::new)?;
    thread::sleep(Duration::from_millis(500));
    let idle = read_process(mock_pid)
        .ok_or_else(|| Failure::new(format!("cannot read /proc/{mock_pid} of the mock")))?;
    let rules = workload::fault_rules(args.seed);
    net.set_faults(&endpoint, &rules).map_err(Failure::new)?;

    let started = Instant::now();
    let sampler = Sampler::start(mock_pid, mock.port(), args.interval, started);
    let shared = Shared {
        args,
        ossup: &ossup,
        work: &work,
        endpoint: endpoint.clone(),
        net: &net,
        sampler: &sampler,
        started,
        next_job: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        finished: Mutex::new(Vec::new()),
        failures: Mutex::new(Vec::new()),
    };
    thread::scope(|scope| {
        for slot in 0..args.workers {
            let shared = &shared;
            scope.spawn(move || worker(shared, slot));
        }
        let mut last_report = Instant::now();
        while started.elapsed() < args.duration && !shared.stop.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(200));
            if last_report.elapsed() >= Duration::from_secs(60) {
                last_report = Instant::now();
                progress(&shared, &sampler);
            }
        }
        shared.stop.store(true, Ordering::Relaxed);
    });
    let load_secs = args.duration.as_secs_f64();
    let drained_secs = started.elapsed().as_secs_f64();

    // The load is over: faults off, then what the mock settles to and what it still holds.
    let Shared {
        finished, failures, ..
    } = shared;
    let finished = finished
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let mut failures = failures
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    if let Err(e) = net.clear_faults(&endpoint) {
        failures.push(e);
    }
    let settled = settle(mock_pid, mock.port(), idle.fds);
    let stats = net.stats(&endpoint).map_err(Failure::new)?;
    failures.extend(leftovers(&net, &endpoint, &work, args.workers));
    let timeline = sampler.finish();

    let mut checks = bounds::check_mock(&timeline, load_secs, drained_secs);
    checks.push(bounds::check_settled(idle.fds, settled.0, settled.1));
    for kind in Kind::ALL {
        let runs: Vec<ClientRun> = finished
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| ClientRun {
                window: window(f.ended_secs, load_secs),
                peak_rss: f.peak.peak_rss,
                fds: f.peak.fds,
            })
            .collect();
        checks.extend(bounds::check_clients(kind.name(), &runs));
    }
    let summary = summary(
        args,
        drained_secs,
        &finished,
        &timeline,
        &idle,
        settled,
        &stats,
        &checks,
        &failures,
    );
    print!("{summary}");
    let file = target_dir().join("soak-summary.md");
    if let Err(e) = std::fs::write(&file, &summary) {
        eprintln!("warning: cannot write {}: {e}", file.display());
    }
    let broken: Vec<&Check> = checks.iter().filter(|c| !c.ok).collect();
    if failures.is_empty() && broken.is_empty() {
        println!("\nsoak: passed ({} jobs)", finished.len());
        drop(mock);
        let _ = std::fs::remove_dir_all(&work);
        Ok(())
    } else {
        let mut why: Vec<String> = failures.iter().take(5).cloned().collect();
        why.extend(broken.iter().map(|c| format!("{}: {}", c.name, c.detail)));
        Err(Failure::new(format!(
            "the soak failed: {}; the summary is in {}, each worker's files and the mock's log under {}; run it again with `{}`\n{}",
            why.join("; "),
            file.display(),
            work.display(),
            args.command_line(),
            mock.log_tail()
        )))
    }
}

/// One worker: jobs back to back until the time is up or something failed.
fn worker(shared: &Shared<'_>, slot: usize) {
    let dir = workload::worker_dir(shared.work, slot);
    let prefix = workload::worker_prefix(slot);
    let store = workload::worker_store(slot);
    let checkpoints = store.location(&dir);
    let source = dir.join("src");
    let setup = Worker {
        source: &source,
        bucket: BUCKET,
        prefix: &prefix,
        endpoint: &shared.endpoint,
        region: REGION,
        store,
        checkpoints: &checkpoints,
    };
    let client = match shared.net.client(&shared.endpoint) {
        Ok(client) => client,
        Err(e) => {
            fail(shared, format!("worker {slot}: {e}"));
            return;
        }
    };
    while !shared.stop.load(Ordering::Relaxed) {
        let number = shared.next_job.fetch_add(1, Ordering::Relaxed);
        let job = Job::generate(shared.args.seed, number, shared.args.max_size);
        let expected = match job.prepare(&source, &prefix) {
            Ok(expected) => expected,
            Err(e) => {
                fail(shared, format!("worker {slot}, {}: {e}", job.describe()));
                return;
            }
        };
        let log = dir.join("ossup.log");
        let peak = match run_job(shared, &job, &setup, &log) {
            Ok(peak) => peak,
            Err(e) => {
                fail(
                    shared,
                    format!(
                        "worker {slot}, {}: {e}\n{}",
                        job.describe(),
                        log_tail(&log, 15)
                    ),
                );
                return;
            }
        };
        let checked = shared.net.block_on(async {
            for object in &expected {
                check_object(&client, &object.key, &object.digest)
                    .await
                    .map_err(|e| format!("{}: {e}", object.key))?;
            }
            Ok::<(), String>(())
        });
        if let Err(e) = checked {
            fail(shared, format!("worker {slot}, {}: {e}", job.describe()));
            return;
        }
        lock(&shared.finished).push(Finished {
            kind: job.kind,
            ended_secs: shared.started.elapsed().as_secs_f64(),
            peak,
            objects: expected.len() as u64,
            bytes: expected.iter().map(|e| e.digest.size).sum(),
            limited: job.limit_rate.is_some(),
        });
    }
}

/// Runs one job's `ossup upload` to its end, watched by the sampler; its peak, or why it failed.
fn run_job(
    shared: &Shared<'_>,
    job: &Job,
    setup: &Worker<'_>,
    log: &Path,
) -> Result<ClientPeak, String> {
    let stderr =
        std::fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let args = job.args(setup);
    let mut child = Command::new(shared.ossup)
        .args(&args)
        .env("OSS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("OSS_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", shared.ossup.display()))?;
    let pid = child.id();
    shared.sampler.watch(pid);
    let began = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if began.elapsed() > JOB_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                shared.sampler.forget(pid);
                return Err(format!(
                    "ossup ran past {JOB_LIMIT:?} and was killed (hung)"
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                shared.sampler.forget(pid);
                return Err(format!("waiting for ossup failed: {e}"));
            }
        }
    };
    let peak = shared.sampler.forget(pid);
    if status.success() {
        Ok(peak)
    } else {
        Err(format!("ossup exited with {status}"))
    }
}

/// Records a failure and stops every worker: a soak that found a wrong object has said what it had
/// to say.
fn fail(shared: &Shared<'_>, why: String) {
    eprintln!("soak: FAILED: {why}");
    lock(&shared.failures).push(why);
    shared.stop.store(true, Ordering::Relaxed);
}

/// Waits, up to [`SETTLE_LIMIT`], for the mock to close every connection and come back to its idle
/// descriptors; what it held last (descriptors, connections).
fn settle(mock_pid: u32, port: u16, idle_fds: u64) -> (u64, u64) {
    let began = Instant::now();
    loop {
        let fds = read_process(mock_pid).map_or(u64::MAX, |r| r.fds);
        let connections = sampler::established_connections(port);
        let settled = connections == 0 && fds <= idle_fds + bounds::MOCK_FD_SETTLED;
        if settled || began.elapsed() > SETTLE_LIMIT {
            return (fds, connections);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// What the load may not leave behind: a multipart upload open on the server, a checkpoint in any
/// worker's store.
fn leftovers(net: &Net, endpoint: &str, work: &Path, workers: usize) -> Vec<String> {
    let mut found = Vec::new();
    let client = match net.client(endpoint) {
        Ok(client) => client,
        Err(e) => return vec![e],
    };
    net.block_on(async {
        match client.list_multipart_uploads(BUCKET, None).await {
            Ok(open) if open.is_empty() => {}
            Ok(open) => found.push(format!(
                "{} multipart uploads left open: {}",
                open.len(),
                open.iter()
                    .take(5)
                    .map(|u| format!("{} ({})", u.key, u.upload_id))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Err(e) => found.push(format!("ListMultipartUploads failed: {e}")),
        }
        for slot in 0..workers {
            let store = workload::worker_store(slot);
            let location = store.location(&workload::worker_dir(work, slot));
            if !location.exists() {
                continue;
            }
            match list_checkpoints(store, &location).await {
                Ok(left) if left.is_empty() => {}
                Ok(left) => found.push(format!(
                    "{} checkpoints left in {}: {left:?}",
                    left.len(),
                    location.display()
                )),
                Err(e) => found.push(e),
            }
        }
    });
    found
}

/// A line a minute while the soak runs.
fn progress(shared: &Shared<'_>, sampler: &Sampler) {
    let jobs = lock(&shared.finished).len();
    let last = sampler.timeline().last().copied();
    let mock = last
        .and_then(|s| s.mock)
        .map(|m| format!("mock RSS {}, {} fds", mib(m.rss), m.fds))
        .unwrap_or_default();
    println!(
        "    {:>5.0} s: {jobs} jobs done; {mock}, {} connections, {} clients",
        shared.started.elapsed().as_secs_f64(),
        last.map_or(0, |s| s.connections),
        last.map_or(0, |s| s.clients)
    );
}

/// The summary, as markdown.
#[allow(clippy::too_many_arguments)]
fn summary(
    args: &SoakArgs,
    drained_secs: f64,
    finished: &[Finished],
    timeline: &[sampler::Sample],
    idle: &sampler::ProcessReading,
    settled: (u64, u64),
    stats: &serde_json::Value,
    checks: &[Check],
    failures: &[String],
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "\n## Soak: `{}`\n", args.command_line());
    let objects: u64 = finished.iter().map(|f| f.objects).sum();
    let bytes: u64 = finished.iter().map(|f| f.bytes).sum();
    let _ = writeln!(
        out,
        "{} uploads completed in {:.0} s ({} with --limit-rate), {} objects checked against their files ({}); the mock received {} and stored {}.\n",
        finished.len(),
        drained_secs,
        finished.iter().filter(|f| f.limited).count(),
        objects,
        mib(bytes),
        mib(stats["bytes_received"].as_u64().unwrap_or(0)),
        mib(stats["bytes_stored"].as_u64().unwrap_or(0)),
    );
    let _ = writeln!(
        out,
        "| kind | uploads | objects | bytes | client peak RSS (median / most) | client fds (most) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for kind in Kind::ALL {
        let runs: Vec<&Finished> = finished.iter().filter(|f| f.kind == kind).collect();
        let peaks: Vec<u64> = runs.iter().map(|f| f.peak.peak_rss).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} / {} | {} |",
            kind.name(),
            runs.len(),
            runs.iter().map(|f| f.objects).sum::<u64>(),
            mib(runs.iter().map(|f| f.bytes).sum()),
            mib(bounds::median(peaks.clone()).unwrap_or(0)),
            mib(peaks.iter().copied().max().unwrap_or(0)),
            runs.iter().map(|f| f.peak.fds).max().unwrap_or(0)
        );
    }
    let in_load: Vec<&sampler::Sample> = timeline
        .iter()
        .filter(|s| s.at_secs <= drained_secs)
        .collect();
    let mock: Vec<sampler::ProcessReading> = in_load.iter().filter_map(|s| s.mock).collect();
    let end = mock.last().copied().unwrap_or_default();
    let _ = writeln!(
        out,
        "\nmock: RSS idle {}, peak {}, at the end of the load {}; fds idle {}, most {}, at the end of the load {}, after it {}; connections most {}, after the load {}.",
        mib(idle.rss),
        mib(mock.iter().map(|m| m.peak_rss).max().unwrap_or(0)),
        mib(end.rss),
        idle.fds,
        mock.iter().map(|m| m.fds).max().unwrap_or(0),
        end.fds,
        settled.0,
        in_load.iter().map(|s| s.connections).max().unwrap_or(0),
        settled.1
    );
    let _ = writeln!(
        out,
        "clients: at most {} at once, {} resident together at most; {} samples.",
        in_load.iter().map(|s| s.clients).max().unwrap_or(0),
        mib(in_load.iter().map(|s| s.clients_rss).max().unwrap_or(0)),
        timeline.len()
    );
    let fired: BTreeMap<String, u64> = stats["faults_fired"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_u64().filter(|n| *n > 0).map(|n| (k.clone(), n)))
                .collect()
        })
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "faults fired: {}; requests: {}; open uploads on the mock: {}.\n",
        fired
            .iter()
            .map(|(k, n)| format!("{k} x{n}"))
            .collect::<Vec<_>>()
            .join(", "),
        stats["requests"]
            .as_object()
            .map(|o| o
                .values()
                .filter_map(serde_json::Value::as_u64)
                .sum::<u64>())
            .unwrap_or(0),
        stats["open_uploads"]
    );
    let _ = writeln!(out, "| check | result | |\n|---|---|---|");
    for check in checks {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            check.name,
            if check.ok { "ok" } else { "FAILED" },
            check.detail
        );
    }
    for failure in failures {
        let _ = writeln!(out, "\nFAILED: {failure}");
    }
    out
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<SoakArgs, String> {
        SoakArgs::parse(&args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn arguments_are_read_and_the_command_line_runs_the_same_soak() {
        let args = parse(&[
            "--minutes",
            "0.5",
            "--seed",
            "9",
            "--workers",
            "3",
            "--max-size",
            "2MiB",
            "--interval",
            "2",
            "--debug",
        ])
        .unwrap();
        assert_eq!(args.duration, Duration::from_secs(30));
        assert_eq!((args.seed, args.workers, args.max_size), (9, 3, 2 << 20));
        assert_eq!(args.interval, Duration::from_secs(2));
        assert_eq!(args.profile, Profile::Debug);
        let again: Vec<String> = args
            .command_line()
            .split_whitespace()
            .skip(3)
            .map(str::to_owned)
            .collect();
        assert_eq!(SoakArgs::parse(&again).unwrap(), args);
    }

    #[test]
    fn the_interval_shrinks_to_a_tenth_of_a_short_run_unless_it_was_asked_for() {
        let args = parse(&["--seconds", "20"]).unwrap();
        assert_eq!(args.interval, Duration::from_secs(2));
        assert_eq!(args.profile, Profile::Release);
        assert!(
            parse(&["--seconds", "20", "--interval", "5"])
                .unwrap_err()
                .contains("a tenth")
        );
    }

    #[test]
    fn bad_arguments_say_what_was_wrong() {
        assert!(parse(&["--minutes"]).unwrap_err().contains("needs a value"));
        assert!(
            parse(&["--minutes", "x"])
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            parse(&["--seconds", "0.5"])
                .unwrap_err()
                .contains("out of range")
        );
        assert!(parse(&["--workers", "0"]).unwrap_err().contains("1 to 64"));
        assert!(
            parse(&["--max-size", "64KiB"])
                .unwrap_err()
                .contains("at least 1MiB")
        );
        assert!(
            parse(&["--hours", "1"])
                .unwrap_err()
                .contains("unknown argument")
        );
    }
}
