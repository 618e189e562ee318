//! The contract suite every [`PartScheduler`] passes: what the engine relies on when it hands a
//! scheduler its parts.
//!
//! [`run_scheduler_contract`] runs every case and panics, naming the case, on the first violation.
//! Each case is also a public function of its own. The cases drive the scheduler with a scripted
//! [`PartRunner`] that sends nothing: it only notes which parts start, how many run at once and which
//! are dropped unfinished, and sleeps for a seeded while (or for good, for parts that must be
//! cancelled).
//!
//! ```
//! use ossup::Parallel;
//! use ossup::testkit::run_scheduler_contract;
//!
//! # #[tokio::main] async fn main() {
//! run_scheduler_contract(&Parallel::new(4)).await;
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::SplitMix;
use crate::Error;
use crate::scheduler::{PartRunner, PartScheduler, PartSpec};

/// The seed of the suite's random part durations, so a failure repeats.
pub const SCHEDULER_CONTRACT_SEED: u64 = 0x5C4E_D01E;

/// Parts in each case that runs a whole upload.
const PARTS: u32 = 64;

/// How long a part that must be cancelled would take: far beyond any case's deadline, so a scheduler
/// that waits for it is caught by the deadline rather than by a slow test.
const FOREVER: Duration = Duration::from_secs(3600);

/// How long a case gives a run that must end (or stop) without waiting for slow parts.
const DEADLINE: Duration = Duration::from_secs(10);

/// Runs every case against `scheduler`, with [`SCHEDULER_CONTRACT_SEED`]. Panics, naming the case, on
/// the first violation.
pub async fn run_scheduler_contract(scheduler: &dyn PartScheduler) {
    an_empty_part_list_is_fine(scheduler).await;
    every_part_runs_exactly_once(scheduler, SCHEDULER_CONTRACT_SEED).await;
    concurrency_never_exceeds_the_declared_limit(scheduler, SCHEDULER_CONTRACT_SEED).await;
    the_first_error_stops_the_run_and_is_returned(scheduler).await;
    dropping_the_run_cancels_the_parts_in_flight(scheduler).await;
}

/// Running no parts returns `Ok` at once and calls the runner not at all.
pub async fn an_empty_part_list_is_fine(scheduler: &dyn PartScheduler) {
    const CASE: &str = "an_empty_part_list_is_fine";
    let runner = ScriptedRunner::new(|_| Script::Succeed(Duration::ZERO));
    match tokio::time::timeout(DEADLINE, scheduler.run(Vec::new(), &runner)).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => panic!("contract case {CASE}: running no parts failed: {err}"),
        Err(_) => panic!("contract case {CASE}: running no parts did not end in {DEADLINE:?}"),
    }
    let started = runner.started();
    assert!(
        started.is_empty(),
        "contract case {CASE}: the runner was called for parts never given: {started:?}"
    );
}

/// On success every part given is run exactly once (the engine checks that every part was sent
/// before it completes the upload; a part run twice costs a second upload of it), and no other.
pub async fn every_part_runs_exactly_once(scheduler: &dyn PartScheduler, seed: u64) {
    const CASE: &str = "every_part_runs_exactly_once";
    let runner = ScriptedRunner::with_seeded_durations(seed);
    match tokio::time::timeout(DEADLINE, scheduler.run(parts(PARTS), &runner)).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            panic!("contract case {CASE}: a run of parts that all succeed failed: {err}")
        }
        Err(_) => {
            panic!("contract case {CASE}: a run of {PARTS} short parts took over {DEADLINE:?}")
        }
    }
    let mut runs: BTreeMap<u32, usize> = BTreeMap::new();
    for number in runner.started() {
        *runs.entry(number).or_default() += 1;
    }
    let missing: Vec<u32> = (1..=PARTS).filter(|n| !runs.contains_key(n)).collect();
    let repeated: Vec<(u32, usize)> = runs
        .iter()
        .filter(|(_, count)| **count > 1)
        .map(|(number, count)| (*number, *count))
        .collect();
    let foreign: Vec<u32> = runs.keys().copied().filter(|n| *n > PARTS).collect();
    assert!(
        missing.is_empty() && repeated.is_empty() && foreign.is_empty(),
        "contract case {CASE}: parts never run {missing:?}; parts run more than once (part, runs) \
         {repeated:?}; parts run that were never given {foreign:?}"
    );
    assert_eq!(
        runner.finished().len(),
        PARTS as usize,
        "contract case {CASE}: the run returned Ok before every part finished"
    );
}

/// No more parts run at once than [`PartScheduler::concurrency`] says, which must be at least 1: the
/// engine sizes its pool of part buffers from it.
pub async fn concurrency_never_exceeds_the_declared_limit(
    scheduler: &dyn PartScheduler,
    seed: u64,
) {
    const CASE: &str = "concurrency_never_exceeds_the_declared_limit";
    let declared = scheduler.concurrency();
    assert!(
        declared >= 1,
        "contract case {CASE}: concurrency() is {declared}; a scheduler runs at least one part at once"
    );
    let runner = ScriptedRunner::with_seeded_durations(seed);
    match tokio::time::timeout(DEADLINE, scheduler.run(parts(PARTS), &runner)).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            panic!("contract case {CASE}: a run of parts that all succeed failed: {err}")
        }
        Err(_) => {
            panic!("contract case {CASE}: a run of {PARTS} short parts took over {DEADLINE:?}")
        }
    }
    let peak = runner.peak.load(Ordering::SeqCst);
    assert!(
        peak <= declared,
        "contract case {CASE}: {peak} parts ran at once; concurrency() declares at most {declared}"
    );
}

/// When a part fails, the run returns that part's error promptly: it neither waits for the parts
/// still in flight (it drops them, which cancels them) nor starts the parts still to go.
pub async fn the_first_error_stops_the_run_and_is_returned(scheduler: &dyn PartScheduler) {
    const CASE: &str = "the_first_error_stops_the_run_and_is_returned";
    const FAILING: u32 = 1;
    // The first part fails after a moment, so that a parallel scheduler has others in flight; every
    // other part would take an hour, so only a run that stops at the error ends in time.
    let runner = ScriptedRunner::new(|part| {
        if part.number == FAILING {
            Script::Fail(Duration::from_millis(20))
        } else {
            Script::Succeed(FOREVER)
        }
    });
    let err = match tokio::time::timeout(DEADLINE, scheduler.run(parts(PARTS), &runner)).await {
        Ok(Err(err)) => err,
        Ok(Ok(())) => {
            panic!("contract case {CASE}: part {FAILING} failed, yet the run returned Ok")
        }
        Err(_) => panic!(
            "contract case {CASE}: part {FAILING} failed, yet the run had not returned after \
             {DEADLINE:?}; it must return the error without waiting for the parts in flight"
        ),
    };
    assert_eq!(
        err.part(),
        Some(FAILING),
        "contract case {CASE}: the run returned {err}, not the error of part {FAILING}"
    );
    assert!(
        err.to_string().contains(ScriptedRunner::FAILURE),
        "contract case {CASE}: the run returned {err}, not the error part {FAILING} gave"
    );
    let live = runner.live.load(Ordering::SeqCst);
    assert_eq!(
        live, 0,
        "contract case {CASE}: {live} parts were still running after the run returned its error"
    );
    let started_at_return = runner.started().len();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started_later = runner.started().len() - started_at_return;
    assert_eq!(
        started_later, 0,
        "contract case {CASE}: {started_later} parts started after the run returned"
    );
}

/// Dropping the future of a run (the caller cancelled the upload) drops every part in flight, so
/// none keeps sending, and starts no more.
pub async fn dropping_the_run_cancels_the_parts_in_flight(scheduler: &dyn PartScheduler) {
    const CASE: &str = "dropping_the_run_cancels_the_parts_in_flight";
    let runner = ScriptedRunner::new(|_| Script::Succeed(FOREVER));
    let outcome = tokio::time::timeout(
        Duration::from_millis(100),
        scheduler.run(parts(PARTS), &runner),
    )
    .await;
    assert!(
        outcome.is_err(),
        "contract case {CASE}: a run of parts that never finish ended: {outcome:?}"
    );
    let started = runner.started().len();
    assert!(
        started >= 1,
        "contract case {CASE}: no part started within 100ms of the run"
    );
    let live = runner.live.load(Ordering::SeqCst);
    assert_eq!(
        live, 0,
        "contract case {CASE}: {live} of the {started} parts started were still running after the run was dropped"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started_later = runner.started().len() - started;
    assert_eq!(
        started_later, 0,
        "contract case {CASE}: {started_later} parts started after the run was dropped"
    );
}

/// `count` parts of 1 KiB, numbered from 1, ascending as the engine gives them.
fn parts(count: u32) -> Vec<PartSpec> {
    (1..=count)
        .map(|number| PartSpec {
            number,
            offset: u64::from(number - 1) * 1024,
            size: 1024,
        })
        .collect()
}

/// What the scripted runner does with one part.
#[derive(Debug, Clone, Copy)]
enum Script {
    /// Succeeds after this long.
    Succeed(Duration),
    /// Fails after this long.
    Fail(Duration),
}

/// A [`PartRunner`] that sends nothing and notes what the scheduler does with it.
struct ScriptedRunner {
    script: Box<dyn Fn(PartSpec) -> Script + Send + Sync>,
    started: Mutex<Vec<u32>>,
    finished: Mutex<Vec<u32>>,
    /// Parts started and neither finished nor dropped.
    live: AtomicUsize,
    /// The most parts live at once.
    peak: AtomicUsize,
}

impl ScriptedRunner {
    /// Part of the message of a scripted failure, to tell it from any error the scheduler makes up.
    const FAILURE: &'static str = "scripted failure of the scheduler contract";

    fn new(script: impl Fn(PartSpec) -> Script + Send + Sync + 'static) -> Self {
        Self {
            script: Box::new(script),
            started: Mutex::default(),
            finished: Mutex::default(),
            live: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Every part succeeds after 0 to 3 ms, chosen from `seed` and the part number, so parts finish
    /// out of order and overlap.
    fn with_seeded_durations(seed: u64) -> Self {
        Self::new(move |part| {
            let mut random = SplitMix::new(seed ^ u64::from(part.number));
            Script::Succeed(Duration::from_micros(random.below(3_000)))
        })
    }

    fn started(&self) -> Vec<u32> {
        self.started
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn finished(&self) -> Vec<u32> {
        self.finished
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// Counts a part out of [`ScriptedRunner::live`] however its future ends: finished or dropped.
struct Live<'a>(&'a AtomicUsize);

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl PartRunner for ScriptedRunner {
    async fn run_part(&self, part: PartSpec) -> Result<(), Error> {
        self.started
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(part.number);
        let now = self.live.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let _live = Live(&self.live);
        match (self.script)(part) {
            Script::Succeed(duration) => {
                tokio::time::sleep(duration).await;
                self.finished
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push(part.number);
                Ok(())
            }
            Script::Fail(duration) => {
                tokio::time::sleep(duration).await;
                Err(Error::internal(Self::FAILURE).with_part(part.number))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::FutureExt as _;

    use super::*;
    use crate::{Parallel, Sequential};

    #[tokio::test]
    async fn sequential_passes_the_scheduler_contract() {
        run_scheduler_contract(&Sequential).await;
    }

    #[tokio::test]
    async fn adaptive_passes_the_scheduler_contract() {
        run_scheduler_contract(&crate::Adaptive::new(4)).await;
        run_scheduler_contract(&crate::Adaptive::new(1)).await;
    }

    #[tokio::test]
    async fn a_hedged_scheduler_passes_the_scheduler_contract() {
        run_scheduler_contract(&crate::Hedged::new(Parallel::new(4))).await;
        run_scheduler_contract(&crate::Hedged::new(crate::Sequential)).await;
    }

    #[tokio::test]
    async fn parallel_passes_the_scheduler_contract_at_every_width() {
        for n in [1, 4, 16] {
            run_scheduler_contract(&Parallel::new(n)).await;
        }
    }

    #[tokio::test]
    async fn a_shared_or_boxed_scheduler_passes_the_scheduler_contract() {
        run_scheduler_contract(&Arc::new(Parallel::new(4))).await;
        let boxed: Box<dyn PartScheduler> = Box::new(Sequential);
        run_scheduler_contract(&boxed).await;
    }

    /// Declares a concurrency of 2 but starts every part at once.
    #[derive(Debug)]
    struct Greedy;

    #[async_trait::async_trait]
    impl PartScheduler for Greedy {
        fn concurrency(&self) -> usize {
            2
        }
        async fn run(&self, parts: Vec<PartSpec>, runner: &dyn PartRunner) -> Result<(), Error> {
            futures::future::try_join_all(parts.into_iter().map(|part| runner.run_part(part)))
                .await?;
            Ok(())
        }
    }

    /// Runs every part, but one after another after waiting out every failure: a run that fails
    /// still sends the whole upload.
    #[derive(Debug)]
    struct Stubborn;

    #[async_trait::async_trait]
    impl PartScheduler for Stubborn {
        fn concurrency(&self) -> usize {
            1
        }
        async fn run(&self, parts: Vec<PartSpec>, runner: &dyn PartRunner) -> Result<(), Error> {
            let mut first_error = None;
            for part in parts {
                if let Err(err) = runner.run_part(part).await {
                    first_error.get_or_insert(err);
                }
            }
            first_error.map_or(Ok(()), Err)
        }
    }

    /// The panic message of `case`, which must panic.
    async fn violation(case: impl std::future::Future<Output = ()>) -> String {
        let panic = std::panic::AssertUnwindSafe(case)
            .catch_unwind()
            .await
            .expect_err("the broken scheduler must fail the case");
        panic
            .downcast::<String>()
            .map(|message| *message)
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn the_suite_catches_a_scheduler_running_more_parts_than_it_declares() {
        let message = violation(concurrency_never_exceeds_the_declared_limit(
            &Greedy,
            SCHEDULER_CONTRACT_SEED,
        ))
        .await;
        assert!(
            message.contains("64 parts ran at once; concurrency() declares at most 2"),
            "{message}"
        );
        // The same scheduler meets the rest of the contract: only the broken promise is caught.
        every_part_runs_exactly_once(&Greedy, SCHEDULER_CONTRACT_SEED).await;
        the_first_error_stops_the_run_and_is_returned(&Greedy).await;
        dropping_the_run_cancels_the_parts_in_flight(&Greedy).await;
    }

    #[tokio::test]
    async fn the_suite_catches_a_scheduler_that_goes_on_after_an_error() {
        // Stubborn waits for an hour-long part after the failure; the case's ten-second deadline
        // runs on paused time, so it is reached at once.
        tokio::time::pause();
        let message = violation(the_first_error_stops_the_run_and_is_returned(&Stubborn)).await;
        assert!(
            message.contains("yet the run had not returned"),
            "{message}"
        );
    }
}
