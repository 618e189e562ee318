//! Runs cases one after another against a target, cleans up after each, and reports each outcome.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ossup_proto::Api;

use crate::case::{Case, Ctx, Needs};
use crate::check::CaseError;
use crate::client::Request;
use crate::target::Target;

/// How long one case may run, cleanup excluded.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// How a case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every check held.
    Passed,
    /// A check failed; the message says which and how.
    Failed(String),
    /// The case did not run against this target; the reason says why.
    Skipped(String),
}

/// One case's outcome.
#[derive(Debug, Clone)]
pub struct CaseReport {
    /// The case's name.
    pub name: &'static str,
    /// The API it exercises.
    pub api: Api,
    /// What it checks.
    pub checks: &'static str,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took, cleanup included.
    pub elapsed: Duration,
}

/// A prefix no other run shares: every key of this run starts with it.
///
/// ```
/// let prefix = ossup_conformance::runner::run_prefix();
/// assert!(prefix.starts_with("ossup-conformance/"));
/// ```
pub fn run_prefix() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "ossup-conformance/{}-{:08x}-{:x}",
        now.as_secs(),
        now.subsec_nanos(),
        std::process::id()
    )
}

/// Runs `cases` against `target`, in order, and reports each.
pub async fn run(target: &Target, cases: &[Case]) -> Vec<CaseReport> {
    run_with(target, cases, |_| {}).await
}

/// As [`run`], calling `on_report` as each case finishes (to print progress).
pub async fn run_with(
    target: &Target,
    cases: &[Case],
    mut on_report: impl FnMut(&CaseReport),
) -> Vec<CaseReport> {
    let prefix = run_prefix();
    let mut reports = Vec::with_capacity(cases.len());
    for case in cases {
        let report = run_one(target, &prefix, case).await;
        on_report(&report);
        reports.push(report);
    }
    reports
}

async fn run_one(target: &Target, prefix: &str, case: &Case) -> CaseReport {
    let started = Instant::now();
    let report = |outcome| CaseReport {
        name: case.name,
        api: case.api,
        checks: case.checks,
        outcome,
        elapsed: started.elapsed(),
    };
    if case.needs == Needs::OwnBuckets && !target.may_create_buckets() {
        return report(Outcome::Skipped(
            "creates and deletes buckets of its own, which on a remote endpoint would be real buckets; runs against the mock"
                .to_owned(),
        ));
    }

    let ctx = Arc::new(Ctx::new(target, prefix, case.name));
    let run = case.run;
    let task_ctx = ctx.clone();
    let task =
        tokio::spawn(async move { tokio::time::timeout(CASE_TIMEOUT, run(&task_ctx)).await });
    let mut outcome = match task.await {
        Ok(Ok(Ok(()))) => Outcome::Passed,
        Ok(Ok(Err(CaseError::Failed(message)))) => Outcome::Failed(message),
        Ok(Ok(Err(CaseError::Skipped(reason)))) => Outcome::Skipped(reason),
        Ok(Err(_)) => Outcome::Failed(format!("did not finish within {CASE_TIMEOUT:?}")),
        Err(join) => Outcome::Failed(format!("panicked: {}", panic_message(join))),
    };

    let missing_ids = ctx.client().responses_without_request_id();
    if !missing_ids.is_empty() && outcome == Outcome::Passed {
        outcome = Outcome::Failed(format!(
            "responses without x-oss-request-id: {}",
            missing_ids.join("; ")
        ));
    }
    if let Err(problem) = clean_up(&ctx).await {
        outcome = match outcome {
            Outcome::Passed => Outcome::Failed(format!("cleanup: {problem}")),
            Outcome::Failed(message) => Outcome::Failed(format!("{message}; cleanup: {problem}")),
            Outcome::Skipped(reason) => Outcome::Failed(format!("{reason}; cleanup: {problem}")),
        };
    }
    report(outcome)
}

fn panic_message(join: tokio::task::JoinError) -> String {
    match join.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a non-text panic".to_owned()),
        Err(join) => join.to_string(),
    }
}

/// Aborts the uploads, deletes the objects, then the buckets a case made. Answers that say the thing is
/// already gone are fine; anything else is reported, since it would leave data behind.
async fn clean_up(ctx: &Ctx) -> Result<(), String> {
    let created = std::mem::take(&mut *ctx.created.lock().expect("never poisoned"));
    let client = ctx.client().fresh();
    let mut problems = Vec::new();
    let mut send = async |request: Request, gone: &[u16]| match client.send(request).await {
        Ok(response) if response.status.is_success() => {}
        Ok(response) if gone.contains(&response.status.as_u16()) => {}
        Ok(response) => problems.push(response.describe()),
        Err(e) => problems.push(e.to_string()),
    };
    for (bucket, key, upload_id) in &created.uploads {
        send(
            Request::delete(Some(bucket), Some(key)).query("uploadId", upload_id),
            &[404],
        )
        .await;
    }
    for (bucket, key) in &created.objects {
        send(Request::delete(Some(bucket), Some(key)), &[404]).await;
    }
    for bucket in &created.buckets {
        send(Request::delete(Some(bucket), None), &[404]).await;
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
