//! `cargo xtask chaos --tree`: one iteration uploads a whole seeded tree with
//! `ossup upload DIR oss://BUCKET/PREFIX/ --recursive`, under faults and `kill -9`, with files
//! rewritten between runs, runs it again until every file is done, and checks the bucket against
//! the tree object by object; then one more run with nothing changed must send nothing.

use std::path::Path;

use super::iteration::{
    Binaries, Outcome, SPARE_RUNS, add_stats, append, count_other_end, log_run, timed,
};
use super::mock::{BUCKET, Mock};
use super::plan::rules_json;
use super::report::{self, Totals};
use super::run::{End, run_ossup, scheduler_args, store_flag};
use super::tree_plan::{EXCLUDE, EditKind, EditRound, SeededTree, TREE_PART, TreePlan};
use super::tree_verify::{self, Expected};
use super::verify::{Digest, Net, REGION};

/// What the tree iterations came to, beside what every iteration counts.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct TreeCounts {
    /// Files the upload takes.
    pub files: u64,
    /// Of them, files large enough to go up as multipart uploads.
    pub multipart: u64,
    /// Files `--exclude` leaves out.
    pub left_out: u64,
    /// Files rewritten between runs.
    pub edited: u64,
    /// File results over every run but the last, by status.
    pub uploaded: u64,
    /// See [`TreeCounts::uploaded`].
    pub skipped: u64,
    /// See [`TreeCounts::uploaded`].
    pub failed: u64,
    /// Notices the runs printed (a checkpoint whose file changed, an upload the server forgot, ...).
    pub notices: u64,
    /// Files uploaded although an earlier run had said the bucket holds them as they are: a
    /// listing or HeadObject a fault spoilt, or a skip that did not work.
    pub uploaded_again: u64,
    /// Iterations whose run with nothing changed skipped every file and sent nothing.
    pub quiet_reruns: u64,
    /// Checkpoints left of files whose upload completed in a killed run, skipped ever since.
    pub stale_checkpoints: u64,
}

impl TreeCounts {
    /// Adds `other`'s counts to these.
    pub(super) fn add(&mut self, other: &TreeCounts) {
        self.files += other.files;
        self.multipart += other.multipart;
        self.left_out += other.left_out;
        self.edited += other.edited;
        self.uploaded += other.uploaded;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.notices += other.notices;
        self.uploaded_again += other.uploaded_again;
        self.quiet_reruns += other.quiet_reruns;
        self.stale_checkpoints += other.stale_checkpoints;
    }

    /// What an iteration's line adds to the common ones.
    pub(super) fn describe(&self) -> String {
        let mut text = format!(
            "files uploaded {}, skipped {}, failed {}, edited {}",
            self.uploaded, self.skipped, self.failed, self.edited
        );
        if self.uploaded_again > 0 {
            text.push_str(&format!(", uploaded again {}", self.uploaded_again));
        }
        if self.stale_checkpoints > 0 {
            text.push_str(&format!(", stale checkpoints {}", self.stale_checkpoints));
        }
        text
    }
}

/// The summary's rows for tree iterations.
pub(super) fn rows(totals: &Totals) -> Vec<(&'static str, String)> {
    let (t, c) = (&totals.tree, &totals.counts);
    let passed = totals.iterations as usize - totals.failed.len();
    vec![
        (
            "iterations (trees)",
            format!(
                "{} ({passed} passed, {} failed)",
                totals.iterations,
                totals.failed.len()
            ),
        ),
        (
            "files",
            format!(
                "{} of {} ({} multipart), {} more left out by --exclude",
                t.files,
                report::size(totals.bytes),
                t.multipart,
                t.left_out
            ),
        ),
        ("files rewritten between runs", t.edited.to_string()),
        (
            "ossup runs",
            format!(
                "{} ({} ended with failed files and were run again; {} with nothing changed, one per passed tree)",
                c.runs, c.error_exits, t.quiet_reruns
            ),
        ),
        (
            "file results (every run but the one with nothing changed)",
            format!(
                "{} uploaded, {} skipped, {} failed",
                t.uploaded, t.skipped, t.failed
            ),
        ),
        (
            "notices (a checkpoint whose file changed, an upload the server forgot, ...)",
            t.notices.to_string(),
        ),
        (
            "files uploaded again though a run had said the bucket held them",
            t.uploaded_again.to_string(),
        ),
        (
            "checkpoints left of files whose upload completed in a killed run (skipped since)",
            t.stale_checkpoints.to_string(),
        ),
        (
            "ossup killed (SIGKILL)",
            format!(
                "{} planned, {} while a stalled request held them",
                c.kills, c.watchdog_kills
            ),
        ),
        (
            "server killed (SIGKILL) and restarted",
            c.server_restarts.to_string(),
        ),
        (
            "bytes re-sent: body bytes the server read beyond the trees and their edits",
            report::size(c.received_beyond_size),
        ),
        ("time", format!("{:.0} s", totals.elapsed.as_secs_f64())),
    ]
}

/// Runs the tree iteration of `plan` in `dir`.
pub(super) fn run(bins: &Binaries<'_>, plan: &TreePlan, dir: &Path, net: &Net) -> Outcome {
    timed(|outcome| run_in(bins, plan, dir, net, outcome))
}

/// The places of one iteration.
struct Places<'a> {
    root: &'a Path,
    checkpoints: &'a Path,
    report: &'a Path,
}

/// The command line of every run, as a person would type it.
fn args(plan: &TreePlan, places: &Places<'_>, endpoint: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "upload",
        &places.root.display().to_string(),
        &format!("oss://{BUCKET}/{}", plan.tree.prefix),
        "--recursive",
        "--exclude",
        EXCLUDE,
        "--endpoint",
        endpoint,
        "--region",
        REGION,
        "--part-size",
        &TREE_PART.to_string(),
        store_flag(plan.store),
        &places.checkpoints.display().to_string(),
        "--report",
        &places.report.display().to_string(),
        "--progress",
        "json",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    args.extend(scheduler_args(plan.scheduler));
    args
}

fn run_in(
    bins: &Binaries<'_>,
    plan: &TreePlan,
    dir: &Path,
    net: &Net,
    outcome: &mut Outcome,
) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let root = dir.join("tree");
    let mut expected = write_tree(&plan.tree, &root, &mut outcome.tree)?;
    // Bytes the bucket must receive at least: the tree, and each edit of a file it takes.
    let mut needed = expected.bytes();
    let mut mock = Mock::start_in(bins.mock, dir, &rules_json(&plan.rules))?;
    let checkpoints = plan.store.location(dir);
    let report = dir.join("report.jsonl");
    let places = Places {
        root: &root,
        checkpoints: &checkpoints,
        report: &report,
    };
    let args = args(plan, &places, &mock.endpoint());
    let stderr = dir.join("ossup.stderr");
    let runs_log = dir.join("runs.log");
    let mut versions = vec![0u32; plan.tree.files.len()];
    let mut pending: Vec<&EditRound> = plan.edits.iter().collect();
    let limit = plan.interruptions.len() + plan.edits.len() + SPARE_RUNS;
    let mut received = 0u64;
    let mut last_lines = None;
    let mut last_error = String::new();
    let mut whole_tree_done = false;
    for index in 0..limit {
        // A round is due at its run, or at once when the tree is already uploaded.
        while let Some(round) = pending.first()
            && (round.before_run <= index || whole_tree_done)
        {
            needed += edit(plan, &root, round, &mut versions, &mut expected)?;
            outcome.tree.edited += round.edits.len() as u64;
            append(
                &runs_log,
                &format!("edits before run {index}: {:?}\n", round.edits),
            );
            pending.remove(0);
            whole_tree_done = false;
        }
        let held = expected.start_run();
        let _ = std::fs::remove_file(&report);
        let interruption = plan.interruptions.get(index).copied();
        let run = run_ossup(bins.ossup, &args, &stderr, &mut mock, net, interruption)?;
        log_run(&runs_log, index, interruption, &run);
        outcome.counts.runs += 1;
        outcome.counts.server_restarts += run.server_restarts;
        for stats in &run.stats_before_server_kills {
            received += add_stats(outcome, stats);
        }
        let ended_by_itself = matches!(run.end, End::Exited(0 | 1));
        let report_text = ended_by_itself.then(|| read_report(&report, index, outcome));
        let found =
            tree_verify::check_run(&mut expected, &held, &run, report_text.as_deref(), index);
        outcome.failures.extend(found.failures);
        outcome.tree.uploaded += found.uploaded;
        outcome.tree.skipped += found.skipped;
        outcome.tree.failed += found.failed;
        outcome.tree.notices += found.notices;
        outcome.tree.uploaded_again += found.uploaded_again;
        outcome.run_errors.extend(found.file_errors);
        match &run.end {
            End::Exited(0) => {
                whole_tree_done = true;
                if pending.is_empty() {
                    last_lines = Some(found.lines);
                    break;
                }
            }
            End::Exited(1) => {
                outcome.counts.error_exits += 1;
                last_error = run.stderr_tail.clone();
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
    outcome.counts.received_beyond_size = received.saturating_sub(needed);
    let Some(lines) = last_lines else {
        outcome.failures.push(format!(
            "the tree was not uploaded in {} runs (at most the planned interruptions, the edit rounds and {SPARE_RUNS} more); the last error: {last_error}",
            outcome.counts.runs
        ));
        return Ok(());
    };
    net.clear_faults(&mock.endpoint())?;
    outcome
        .failures
        .extend(expected.check_disk(&root, &plan.tree.prefix));
    let bucket = tree_verify::check_bucket(
        net,
        &mock.endpoint(),
        &expected,
        &plan.tree.prefix,
        &lines,
        (plan.store, &checkpoints),
    );
    outcome.failures.extend(bucket.failures);
    outcome.tree.stale_checkpoints += bucket.stale_checkpoints;
    // Once more with nothing changed: every file skipped, nothing sent.
    let before = net.stats(&mock.endpoint())?;
    let held = expected.start_run();
    let _ = std::fs::remove_file(&report);
    let run = run_ossup(bins.ossup, &args, &stderr, &mut mock, net, None)?;
    let index = outcome.counts.runs as usize;
    log_run(&runs_log, index, None, &run);
    outcome.counts.runs += 1;
    let after = net.stats(&mock.endpoint())?;
    let report_text = read_report(&report, index, outcome);
    let found = tree_verify::check_run(&mut expected, &held, &run, Some(&report_text), index);
    let quiet = tree_verify::check_quiet_run(&run, &found, expected.len(), &before, &after);
    if quiet.is_empty() && found.failures.is_empty() {
        outcome.tree.quiet_reruns += 1;
    }
    outcome.failures.extend(found.failures);
    outcome.failures.extend(quiet);
    Ok(())
}

/// Writes `tree` under `root` (which must not exist yet) and returns what the bucket must end up
/// holding; counts its files in `counts`.
pub(super) fn write_tree(
    tree: &SeededTree,
    root: &Path,
    counts: &mut TreeCounts,
) -> Result<Expected, String> {
    tree.write(root)?;
    let mut expected = Expected::default();
    for (index, file) in tree.files.iter().enumerate() {
        if file.excluded {
            expected.leave_out(tree.key(file));
            counts.left_out += 1;
        } else {
            let digest = Digest::of(&tree.content(index, 0, file.size));
            let path = root.join(&file.rel).display().to_string();
            expected.add(tree.key(file), path, digest);
            counts.files += 1;
            counts.multipart += u64::from(file.size > TREE_PART);
        }
    }
    Ok(expected)
}

/// Rewrites the files of `round` under `root`; returns the bytes of the new versions of files the
/// upload takes, which the bucket must now receive.
fn edit(
    plan: &TreePlan,
    root: &Path,
    round: &EditRound,
    versions: &mut [u32],
    expected: &mut Expected,
) -> Result<u64, String> {
    let mut bytes_to_send = 0;
    for edit in &round.edits {
        let file = &plan.tree.files[edit.file];
        let path = root.join(&file.rel);
        let old_size = std::fs::metadata(&path)
            .map_err(|e| format!("cannot stat {}: {e}", path.display()))?
            .len();
        versions[edit.file] += 1;
        let size = match edit.kind {
            EditKind::Rewrite => old_size,
            EditKind::Resize(size) | EditKind::Replace(size) => size,
        };
        let bytes = plan.tree.content(edit.file, versions[edit.file], size);
        let written = match edit.kind {
            EditKind::Rewrite | EditKind::Resize(_) => std::fs::write(&path, &bytes),
            EditKind::Replace(_) => {
                // Written beside the tree, not in it, so that no run could ever see it.
                let fresh = root.with_file_name("replacement.tmp");
                std::fs::write(&fresh, &bytes).and_then(|()| std::fs::rename(&fresh, &path))
            }
        };
        written.map_err(|e| format!("cannot rewrite {}: {e}", path.display()))?;
        if !file.excluded {
            expected.edited(&plan.tree.key(file), Digest::of(&bytes));
            bytes_to_send += size;
        }
    }
    Ok(bytes_to_send)
}

/// The report of a run that ended by itself; a report that cannot be read is a failure of the run.
fn read_report(report: &Path, index: usize, outcome: &mut Outcome) -> String {
    std::fs::read_to_string(report).unwrap_or_else(|e| {
        outcome.failures.push(format!(
            "run {index} ended by itself, and its report {} cannot be read: {e}",
            report.display()
        ));
        String::new()
    })
}
