//! `cargo xtask chaos --tree --workers N`: N cooperating `ossup upload DIR … --recursive
//! --cooperate` processes on one seeded tree through one shared store, struck as the fleet on one
//! file is ([`fleet`](super::fleet): workers killed and started again, the mock killed, PostgreSQL
//! crashed). The tree stays as written for the whole iteration: the workers must see the same
//! files. Afterwards the bucket is checked against the tree object by object, each worker's last
//! run against the bucket, the store for anything left, and the sends of small files and of parts
//! against their bounds (`docs/chaos.md`, "Fleets on a tree").

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::fleet::{Crew, Shared, SharedStore, worker_args};
use super::fleet_plan::FleetTreePlan;
use super::fleet_verify;
use super::iteration::{Binaries, Outcome, add_stats};
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

    let (mut failures, _open) = tree_verify::check_objects(net, &endpoint, &expected, prefix);
    failures.extend(expected.check_disk(&root, prefix));
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
    }
    if let Err(e) = store.rows(net, prefix) {
        failures.push(e);
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
