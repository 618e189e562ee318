//! One iteration: a seeded file, a mock with the plan's faults, `ossup upload` run again and again
//! (killed, and the server under it killed, as planned) until it succeeds, and every check.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::mock::Mock;
use super::plan::{Gen, Interruption, Plan};
use super::run::{End, Kill, Run, Upload};
use super::tree::TreeCounts;
use super::verify::{Digest, Net};

/// Runs allowed beyond the planned interruptions before the iteration counts as failed: enough
/// for every capped fault to run out, few enough that an upload that cannot finish is caught.
pub(super) const SPARE_RUNS: usize = 8;
/// Notices that mean the run dropped the upload it had and began a fresh one, after which sending
/// every part again is right.
const FRESH_START_NOTICES: &[&str] = &[
    "upload_gone",
    "checkpoint_corrupt",
    "source_changed",
    "options_changed",
];

/// The binaries an iteration runs.
#[derive(Debug)]
pub(super) struct Binaries<'a> {
    /// `ossup`.
    pub ossup: &'a Path,
    /// `oss-mock`.
    pub mock: &'a Path,
}

/// What one iteration did and found.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    /// What the runs came to.
    pub counts: RunCounts,
    /// Faults the server fired, per kind.
    pub faults_fired: BTreeMap<String, u64>,
    /// The `error` lines of the runs that ended with an error, each once per run.
    pub run_errors: Vec<String>,
    /// Every check that failed.
    pub failures: Vec<String>,
    /// Wall time.
    pub elapsed: Duration,
    /// What a tree iteration counts beside.
    pub tree: TreeCounts,
    /// What a fleet iteration counts beside.
    pub fleet: super::fleet::FleetCounts,
}

/// What the runs of `ossup` came to: counted per iteration, summed over the whole chaos run.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct RunCounts {
    /// Runs of `ossup`.
    pub runs: u32,
    /// Runs that ended with an error (exit status 1) and were resumed.
    pub error_exits: u32,
    /// Runs killed as planned.
    pub kills: u32,
    /// Runs killed because a stalled request held them.
    pub watchdog_kills: u32,
    /// Server kills, each followed by a restart.
    pub server_restarts: u32,
    /// Runs that began a fresh upload (the server forgot the old one, and so on).
    pub fresh_starts: u32,
    /// Bytes of parts acknowledged in an earlier run and sent again: must stay 0.
    pub resent_acked_bytes: u64,
    /// As above, where a fault made a listing lie about those parts, so sending them again was right.
    pub resent_excused_bytes: u64,
    /// Request body bytes the server read beyond the file's size (retries, parts cut off in flight).
    pub received_beyond_size: u64,
}

impl RunCounts {
    /// Adds `other`'s counts to these.
    pub(super) fn add(&mut self, other: &RunCounts) {
        self.runs += other.runs;
        self.error_exits += other.error_exits;
        self.kills += other.kills;
        self.watchdog_kills += other.watchdog_kills;
        self.server_restarts += other.server_restarts;
        self.fresh_starts += other.fresh_starts;
        self.resent_acked_bytes += other.resent_acked_bytes;
        self.resent_excused_bytes += other.resent_excused_bytes;
        self.received_beyond_size += other.received_beyond_size;
    }
}

/// What is known of the upload across runs: its id and the parts acknowledged for it.
#[derive(Debug, Default)]
struct Acked {
    upload_id: Option<String>,
    parts: BTreeMap<u64, u64>,
    /// Every upload id a run reported, with the first run that did.
    reported: BTreeMap<String, usize>,
}

/// Runs the iteration of `plan` in `dir`.
pub(super) fn run(bins: &Binaries<'_>, plan: &Plan, dir: &Path, net: &Net) -> Outcome {
    timed(|outcome| run_in(bins, plan, dir, net, outcome))
}

/// The outcome of an iteration `work` runs, timed; the error that stops it is one of its failures.
pub(super) fn timed(work: impl FnOnce(&mut Outcome) -> Result<(), String>) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome::default();
    if let Err(e) = work(&mut outcome) {
        outcome.failures.push(e);
    }
    outcome.elapsed = started.elapsed();
    outcome
}

fn run_in(
    bins: &Binaries<'_>,
    plan: &Plan,
    dir: &Path,
    net: &Net,
    outcome: &mut Outcome,
) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let file = dir.join("source.bin");
    let mut bytes = vec![0u8; plan.size as usize];
    Gen::new(plan.seed ^ 0x5eed_f11e).fill(&mut bytes);
    std::fs::write(&file, &bytes).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    let source = Digest::of(&bytes);
    drop(bytes);
    let mut mock = Mock::start_in(bins.mock, dir, &plan.rules_json())?;
    let checkpoints = plan.store.location(dir);
    let key = format!("chaos/{}.bin", plan.seed);
    let upload = Upload {
        ossup: bins.ossup,
        file: &file,
        key: &key,
        plan,
        checkpoints: &checkpoints,
        stderr: &dir.join("ossup.stderr"),
    };
    let mut received = 0u64;
    let mut acked = Acked::default();
    let mut done = false;
    let mut last_error = String::new();
    for index in 0..plan.interruptions.len() + SPARE_RUNS {
        let interruption = plan.interruptions.get(index).copied();
        let run = upload.run(&mut mock, net, interruption)?;
        log_run(&dir.join("runs.log"), index, interruption, &run);
        outcome.counts.runs += 1;
        outcome.counts.server_restarts += run.server_restarts;
        for stats in &run.stats_before_server_kills {
            received += add_stats(outcome, stats);
        }
        check_run(plan, &source, &run, index, &mut acked, outcome);
        match &run.end {
            End::Exited(0) => {
                if run.events.iter().any(|e| e["event"] == "completed") {
                    done = true;
                    break;
                }
                outcome
                    .failures
                    .push(format!("run {index} exited 0 without a `completed` line"));
            }
            End::Exited(1) => {
                outcome.counts.error_exits += 1;
                last_error = run.stderr_tail.clone();
                if let Some(message) = run
                    .events
                    .iter()
                    .rev()
                    .find(|e| e["event"] == "error")
                    .and_then(|e| e["message"].as_str())
                {
                    outcome.run_errors.push(message.to_owned());
                }
            }
            _ => {
                if !count_other_end(index, &run, outcome) {
                    break;
                }
            }
        }
    }
    let stats = net.stats(&mock.endpoint())?;
    received += add_stats(outcome, &stats);
    outcome.counts.received_beyond_size = received.saturating_sub(source.size);
    if !done {
        outcome.failures.push(format!(
            "the upload did not complete in {} runs; the last error: {last_error}",
            outcome.counts.runs
        ));
        return Ok(());
    }
    net.clear_faults(&mock.endpoint())?;
    let found = net.verify(&mock.endpoint(), &key, &source, plan.store, &checkpoints);
    outcome.failures.extend(found.failures);
    for id in found.open_uploads {
        outcome.failures.push(match acked.reported.get(&id) {
            Some(run) => format!(
                "multipart upload {id} was left open; run {run} reported it in its `started` line"
            ),
            None => format!(
                "multipart upload {id} was left open, and no run ever reported it: its InitiateMultipartUpload answer was lost, or the run was killed between InitiateMultipartUpload and saving the checkpoint"
            ),
        });
    }
    Ok(())
}

/// Counts a run that ended neither with status 0 nor 1: killed as planned or by the watchdog (to
/// be run again), or hung, crashed or ended with another status (failures). Returns false when
/// running it again is pointless.
pub(super) fn count_other_end(index: usize, run: &Run, outcome: &mut Outcome) -> bool {
    match &run.end {
        End::Exited(code) => {
            outcome.failures.push(format!(
                "run {index} exited with status {code}: {}",
                run.stderr_tail
            ));
            // A usage error: running it again would say the same.
            return *code != 2;
        }
        End::Killed(Kill::Planned) => outcome.counts.kills += 1,
        End::Killed(Kill::Watchdog) => outcome.counts.watchdog_kills += 1,
        End::Killed(Kill::Hung) => outcome.failures.push(format!(
            "run {index} hung: no end after {} s; stderr: {}; its log ended with:\n{}",
            super::run::RUN_LIMIT.as_secs(),
            run.stderr_tail,
            run.log_tail
        )),
        End::Crashed(signal) => outcome.failures.push(format!(
            "run {index} died of signal {signal}: {}",
            run.stderr_tail
        )),
    }
    true
}

/// Appends what a run did to the iteration's log, for whoever reads a failure.
pub(super) fn log_run(path: &Path, index: usize, interruption: Option<Interruption>, run: &Run) {
    let mut text = format!(
        "run {index}: interruption {interruption:?}, ended {:?}, {} server restarts\n",
        run.end, run.server_restarts
    );
    for event in &run.events {
        text.push_str(&format!("  {event}\n"));
    }
    for line in &run.stray_lines {
        text.push_str(&format!("  stray: {line}\n"));
    }
    if !run.stderr_tail.is_empty() {
        text.push_str(&format!(
            "  stderr: {}\n",
            run.stderr_tail.replace('\n', "\n          ")
        ));
    }
    append(path, &text);
}

/// Appends `text` to the log at `path`; a log that cannot be written is worth a warning only.
pub(super) fn append(path: &Path, text: &str) {
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| std::io::Write::write_all(&mut file, text.as_bytes()));
    if let Err(e) = appended {
        eprintln!("warning: cannot write {}: {e}", path.display());
    }
}

/// Adds a stats snapshot's faults to the outcome; returns its bytes received.
pub(super) fn add_stats(outcome: &mut Outcome, stats: &Value) -> u64 {
    if let Some(fired) = stats["faults_fired"].as_object() {
        for (kind, n) in fired {
            *outcome.faults_fired.entry(kind.clone()).or_default() += n.as_u64().unwrap_or(0);
        }
    }
    stats["bytes_received"].as_u64().unwrap_or(0)
}

/// The checks on one run's lines: the JSON contract, `transferred` never going backwards, the
/// completed object's size and CRC-64, and no part acknowledged earlier being sent again.
fn check_run(
    plan: &Plan,
    source: &Digest,
    run: &Run,
    index: usize,
    acked: &mut Acked,
    outcome: &mut Outcome,
) {
    for line in &run.stray_lines {
        outcome.failures.push(format!(
            "run {index} printed a line that is not a JSON object on stdout: {line:?}"
        ));
    }
    // The parts acknowledged before this run, for the upload this run continues.
    let before: BTreeSet<u64> = acked.parts.keys().copied().collect();
    let mut continuing = acked.upload_id.is_some();
    let mut last_transferred = 0u64;
    for event in &run.events {
        match event["event"].as_str().unwrap_or_default() {
            "started" => {
                let id = event["upload_id"].as_str().map(str::to_owned);
                if let Some(id) = &id {
                    acked.reported.entry(id.clone()).or_insert(index);
                }
                if id != acked.upload_id {
                    continuing = false;
                    acked.upload_id = id;
                    acked.parts.clear();
                }
                last_transferred = 0;
            }
            "notice" => {
                let kind = event["notice"].as_str().unwrap_or_default();
                if FRESH_START_NOTICES.contains(&kind) {
                    outcome.counts.fresh_starts += 1;
                    continuing = false;
                }
            }
            "part_done" => {
                let part = event["part"].as_u64().unwrap_or(0);
                let bytes = event["bytes"].as_u64().unwrap_or(0);
                let transferred = event["transferred"].as_u64().unwrap_or(0);
                if transferred < last_transferred {
                    outcome.failures.push(format!(
                        "run {index}: `transferred` went back from {last_transferred} to {transferred}"
                    ));
                }
                last_transferred = transferred;
                if continuing && plan.multipart() && before.contains(&part) {
                    if plan.rules.iter().any(|r| r.corrupts_listing()) {
                        outcome.counts.resent_excused_bytes += bytes;
                    } else {
                        outcome.counts.resent_acked_bytes += bytes;
                        outcome.failures.push(format!(
                            "run {index} sent part {part} again, although an earlier run had it acknowledged for upload {}",
                            acked.upload_id.as_deref().unwrap_or("?")
                        ));
                    }
                }
                acked.parts.insert(part, bytes);
            }
            "completed" => {
                let size = event["size"].as_u64();
                let crc = event["crc64"].as_str().and_then(|c| c.parse::<u64>().ok());
                if size != Some(source.size) || crc != Some(source.crc64) {
                    outcome.failures.push(format!(
                        "run {index} reported a completed object of {size:?} bytes, CRC-64 {crc:?}; the file has {} bytes, CRC-64 {}",
                        source.size, source.crc64
                    ));
                }
            }
            _ => {}
        }
    }
}
