//! `cargo xtask chaos --tree --workers N`: N cooperating `ossup upload DIR … --recursive
//! --cooperate` processes on one seeded tree through one shared store, struck as the fleet on one
//! file is ([`fleet`](super::fleet): workers killed and started again, the mock killed, PostgreSQL
//! crashed). The tree stays as written for the whole iteration: the workers must see the same
//! files. Afterwards the bucket is checked against the tree object by object, each worker's last
//! run against the bucket, the store for anything left, and the sends of small files and of parts
//! against their bounds (`docs/chaos.md`, "Fleets on a tree").

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::fleet::{Crew, Shared, SharedStore, worker_args};
use super::fleet_plan::FleetTreePlan;
use super::fleet_verify;
use super::iteration::{Binaries, Outcome, add_stats, timed};
use super::mock::{BUCKET, Mock};
use super::plan::rules_json;
use super::tree::write_tree;
use super::tree_plan::{EXCLUDE, TREE_PART};
use super::tree_verify;
use super::verify::Net;

/// Runs the iteration of `plan` in `dir`.
pub(super) fn run(
    bins: &Binaries<'_>,
    plan: &FleetTreePlan,
    dir: &Path,
    net: &Net,
    shared: &Shared<'_>,
) -> Outcome {
    timed(|outcome| run_in(bins, plan, dir, net, shared, outcome))
}

fn run_in(
    bins: &Binaries<'_>,
    plan: &FleetTreePlan,
    dir: &Path,
    net: &Net,
    shared: &Shared<'_>,
    outcome: &mut Outcome,
) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let root = dir.join("tree");
    let expected = write_tree(&plan.tree, &root, &mut outcome.tree)?;
    let prefix = &plan.tree.prefix;
    let store = SharedStore::create(shared, dir, plan.seed);
    let mut mock = Mock::start_logging_requests(bins.mock, dir, &rules_json(&plan.rules))?;
    let endpoint = mock.endpoint();
    let report = |n: usize| dir.join(format!("report-{n}.jsonl"));
    let args = |n: usize| -> Vec<String> {
        let mut args: Vec<String> = vec![
            "upload".to_owned(),
            root.display().to_string(),
            format!("oss://{BUCKET}/{prefix}"),
            "--recursive".to_owned(),
            "--exclude".to_owned(),
            EXCLUDE.to_owned(),
            "--report".to_owned(),
            report(n).display().to_string(),
        ];
        args.extend(worker_args(&endpoint, TREE_PART, plan.parallel[n], &store));
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

    let (mut failures, open) = tree_verify::check_objects(net, &endpoint, &expected, prefix);
    failures.extend(expected.check_disk(&root, prefix));
    let mut skipped_by_all: Option<BTreeSet<String>> = None;
    for (n, worker) in workers.iter().enumerate() {
        let whose = format!("worker {n}'s last run");
        let text = std::fs::read_to_string(report(n)).unwrap_or_else(|e| {
            failures.push(format!(
                "{whose} exited 0, and its report {} cannot be read: {e}",
                report(n).display()
            ));
            String::new()
        });
        let found = tree_verify::check_worker_run(&expected, &worker.last_run, &text, &whose);
        failures.extend(found.failures);
        outcome.tree.uploaded += found.uploaded;
        outcome.tree.skipped += found.skipped;
        outcome.fleet.by_another += found.by_another;
        skipped_by_all = Some(match skipped_by_all {
            None => found.skipped_keys,
            Some(all) => all.intersection(&found.skipped_keys).cloned().collect(),
        });
    }
    match store.left(net, prefix) {
        Ok(left) => {
            let stale = check_left(&left, &open, &skipped_by_all.unwrap_or_default());
            outcome.tree.stale_checkpoints += stale.as_ref().map_or(0, |n| *n);
            failures.extend(stale.err());
        }
        Err(e) => failures.push(e),
    }
    let stderr_files: Vec<PathBuf> = workers.iter().map(|w| w.stderr.clone()).collect();
    let mock_log = dir.join("mock.log");
    let sends = fleet_verify::part_sends(&mock_log, &stderr_files, &plan.rules)?;
    outcome.fleet.part_requests += sends.requests;
    outcome.fleet.resent += sends.resent;
    outcome.fleet.allowed += sends.allowed;
    outcome.fleet.excused += sends.excused;
    failures.extend(sends.failures);
    let keys: BTreeSet<String> = plan
        .tree
        .kept()
        .map(|(_, file)| plan.tree.key(file))
        .collect();
    // Every way a file claim can be lost that this harness causes or sees.
    let events = u64::from(
        outcome.counts.kills
            + outcome.counts.server_restarts
            + outcome.fleet.database_restarts
            + outcome.fleet.unexplained_stops,
    );
    // A batch has at most twice its `--parallel` files in hand at once.
    let in_hand: u64 = plan.parallel.iter().map(|&p| 2 * u64::from(p)).sum();
    let puts = fleet_verify::object_puts(
        &mock_log,
        &stderr_files,
        &keys,
        &plan.rules,
        events,
        in_hand,
    )?;
    outcome.fleet.put_requests += puts.requests;
    outcome.fleet.put_keys += puts.keys;
    outcome.fleet.put_again += puts.again;
    outcome.fleet.put_allowed += puts.allowed;
    failures.extend(puts.failures);
    outcome.failures.extend(failures);
    if outcome.failures.is_empty() {
        store.drop_database();
    }
    Ok(())
}

/// What the store holds at the end is right: no file claim still held, and no checkpoint but, as
/// with one client on a tree (`--tree`), the checkpoint of a multipart file whose upload was
/// completed by a worker that then could not remove it (killed, or its store down), which no run
/// looks at again since every run skips the file by content: its key has no open upload and every
/// worker's last run skipped it (`skipped_by_all`). Such checkpoints are counted (the count is
/// returned), with their parts and claims, whose leases may still run.
fn check_left(
    left: &fleet_verify::LeftInStore,
    open: &BTreeSet<String>,
    skipped_by_all: &BTreeSet<String>,
) -> Result<u64, String> {
    let mut failures = Vec::new();
    if left.live_file_claims > 0 {
        failures.push(format!(
            "{} file claims are still held in the shared store after every worker exited 0",
            left.live_file_claims
        ));
    }
    if left.checkpoints.is_empty() && left.live_claims > 0 {
        failures.push(format!(
            "{} claims on parts or completions are still live in the shared store, of no checkpoint",
            left.live_claims
        ));
    }
    let mut stale = 0;
    for key in &left.checkpoints {
        if !open.contains(key) && skipped_by_all.contains(key) {
            stale += 1;
        } else {
            failures.push(format!(
                "a checkpoint was left behind in the shared store for {key:?} (its upload {}, {} every worker's last run skipped it)",
                if open.contains(key) { "open" } else { "not open" },
                if skipped_by_all.contains(key) { "and" } else { "but not" }
            ));
        }
    }
    if failures.is_empty() {
        Ok(stale)
    } else {
        Err(failures.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_checkpoints_of_files_every_worker_skipped_and_no_upload_holds_are_stale() {
        let keys = |k: &[&str]| {
            k.iter()
                .map(|k| (*k).to_owned())
                .collect::<BTreeSet<String>>()
        };
        let left =
            |checkpoints: &[&str], live_claims, live_file_claims| fleet_verify::LeftInStore {
                checkpoints: checkpoints.iter().map(|k| (*k).to_owned()).collect(),
                live_claims,
                live_file_claims,
            };
        let skipped = keys(&["t/big 1.bin", "t/a"]);
        assert_eq!(check_left(&left(&[], 0, 0), &keys(&[]), &skipped), Ok(0));
        assert_eq!(
            check_left(&left(&["t/big 1.bin"], 3, 0), &keys(&[]), &skipped),
            Ok(1)
        );
        let open = check_left(
            &left(&["t/big 1.bin"], 0, 0),
            &keys(&["t/big 1.bin"]),
            &skipped,
        );
        assert!(open.unwrap_err().contains("upload open"));
        let uploaded = check_left(&left(&["t/big 0.bin"], 0, 0), &keys(&[]), &skipped);
        assert!(uploaded.unwrap_err().contains("but not"));
        let held = check_left(&left(&[], 0, 2), &keys(&[]), &skipped);
        assert!(held.unwrap_err().contains("2 file claims"));
        let orphan = check_left(&left(&[], 1, 0), &keys(&[]), &skipped);
        assert!(orphan.unwrap_err().contains("of no checkpoint"));
    }
}
