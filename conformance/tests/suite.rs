//! The whole conformance suite as one test: against the mock by default (or the endpoint the
//! environment names), failing with every failed case listed.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

use ossup_conformance::runner::Outcome;
use ossup_conformance::{cases, report, runner, target::Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_conformance_case_passes() {
    let target = Target::from_env().await.expect("a conformance target");
    let described = target.describe();
    let reports = runner::run(&target, &cases::all()).await;
    target.shutdown().await;
    let failed: Vec<String> = reports
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Failed(message) => Some(format!("- {} ({}): {message}", r.name, r.api)),
            _ => None,
        })
        .collect();
    let totals = report::Totals::of(&reports);
    assert!(
        failed.is_empty(),
        "{} of {} conformance cases failed against {described}:\n{}",
        failed.len(),
        reports.len(),
        failed.join("\n")
    );
    assert!(totals.passed > 0, "no case ran against {described}");
}
