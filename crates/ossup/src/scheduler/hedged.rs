//! [`Hedged`]: sends a straggling part a second time, so one slow connection does not hold a whole
//! upload back at its tail.
//!
//! A wrapper around any [`PartScheduler`]: the scheduler decides order and concurrency as before,
//! and each part it starts is watched. A part still in flight [`HedgePolicy::multiple`] times longer
//! than the run's median part (scaled to its size), and at least [`HedgePolicy::floor`], is sent
//! again through the same runner; the first to succeed wins and the other is dropped, which cancels
//! its request and closes its connection. Both send the same part number with the same bytes and
//! checksums, so whichever copy the server keeps is right, and only the winner goes on to the
//! checkpoint. The hedge goes out on another connection, since the straggler's is busy with its
//! request: the pool hands out an idle one or opens one. A scheduler beneath that learns from part
//! times ([`Adaptive`](crate::Adaptive)) hears which parts were hedged and leaves them out: one
//! crawling connection is no sign that the link is full.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{Either, select};
use tokio::time::Instant;

use super::{PartRunner, PartScheduler, PartSpec};
use crate::Error;

/// When a part counts as a straggler, and how many may be hedged at once.
///
/// ```
/// use std::time::Duration;
/// use ossup::HedgePolicy;
///
/// let policy = HedgePolicy::default();
/// assert_eq!(policy.multiple, 3.0);
/// assert_eq!(policy.floor, Duration::from_secs(2));
/// let eager = HedgePolicy::default().floor(Duration::from_millis(500));
/// assert_eq!((eager.floor, eager.max_in_flight), (Duration::from_millis(500), 2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct HedgePolicy {
    /// A part is hedged once in flight this many times the median time of the run's parts so far,
    /// scaled to its size.
    pub multiple: f64,
    /// ... and never before this long: on a fast link a part's median time is milliseconds, and a
    /// hedge then would only double the traffic of ordinary jitter.
    pub floor: Duration,
    /// The parts the run must have finished before it hedges any: the median of fewer says little.
    pub min_samples: usize,
    /// The most hedges in flight at once. A storm of slow parts (the server refusing with 503) is
    /// not a straggler: hedging all of it would double the load on a server already asking for
    /// less.
    pub max_in_flight: usize,
}

impl HedgePolicy {
    /// Hedges a part once in flight `multiple` times the median part time (scaled to its size).
    pub fn multiple(mut self, multiple: f64) -> Self {
        self.multiple = multiple;
        self
    }

    /// Never hedges a part in flight for less than `floor`.
    pub fn floor(mut self, floor: Duration) -> Self {
        self.floor = floor;
        self
    }

    /// Hedges nothing before `parts` parts have finished.
    pub fn min_samples(mut self, parts: usize) -> Self {
        self.min_samples = parts;
        self
    }

    /// At most `hedges` hedges in flight at once (at least 1).
    pub fn max_in_flight(mut self, hedges: usize) -> Self {
        self.max_in_flight = hedges.max(1);
        self
    }
}

impl Default for HedgePolicy {
    /// Three times the median part time, at least 2 s, after 3 parts; 2 hedges at once.
    fn default() -> Self {
        Self {
            multiple: 3.0,
            floor: Duration::from_secs(2),
            min_samples: 3,
            max_in_flight: 2,
        }
    }
}

/// What hedging did, shared by clones of a [`Hedged`] scheduler and across its runs.
///
/// ```
/// use ossup::{Hedged, Parallel};
/// let hedged = Hedged::new(Parallel::new(4));
/// let stats = hedged.stats();
/// assert_eq!((stats.hedged(), stats.won()), (0, 0));
/// ```
#[derive(Debug, Default)]
pub struct HedgeStats {
    hedged: AtomicU64,
    won: AtomicU64,
}

impl HedgeStats {
    /// Parts sent a second time because they straggled.
    pub fn hedged(&self) -> u64 {
        self.hedged.load(Ordering::Relaxed)
    }

    /// Hedges that finished before the straggler they were sent for.
    pub fn won(&self) -> u64 {
        self.won.load(Ordering::Relaxed)
    }
}

/// Wraps a scheduler so that a part far slower than its peers is sent a second time and the first
/// answer wins: the wrapped scheduler decides order and concurrency as before; a part in flight
/// longer than its [`HedgePolicy`] allows is sent again through the same runner, the first copy to
/// succeed is the one recorded, and the other is dropped, which cancels its request.
///
/// The wrapped scheduler's [`concurrency`](PartScheduler::concurrency) is kept: a hedge takes a
/// part buffer like any part, so it waits for one when all are busy, and the memory budget holds.
///
/// ```
/// use ossup::{Adaptive, Hedged, HedgePolicy, PartScheduler};
///
/// let scheduler = Hedged::new(Adaptive::new(16));
/// assert_eq!(scheduler.concurrency(), 16);
/// let patient = Hedged::new(Adaptive::new(16)).policy(HedgePolicy::default().multiple(5.0));
/// # let _ = patient;
/// ```
#[derive(Debug, Clone)]
pub struct Hedged<S> {
    inner: S,
    policy: HedgePolicy,
    stats: Arc<HedgeStats>,
}

impl<S: PartScheduler> Hedged<S> {
    /// Hedges the parts `inner` runs, with the [default policy](HedgePolicy::default).
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            policy: HedgePolicy::default(),
            stats: Arc::default(),
        }
    }

    /// Uses `policy` to decide which parts straggle.
    pub fn policy(mut self, policy: HedgePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// What hedging did so far; the same counters as every clone of this scheduler.
    pub fn stats(&self) -> Arc<HedgeStats> {
        self.stats.clone()
    }

    /// The wrapped scheduler.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

#[async_trait::async_trait]
impl<S: PartScheduler> PartScheduler for Hedged<S> {
    fn concurrency(&self) -> usize {
        self.inner.concurrency()
    }

    fn current_limit(&self) -> usize {
        self.inner.current_limit()
    }

    async fn run(&self, parts: Vec<PartSpec>, runner: &dyn PartRunner) -> Result<(), Error> {
        let watcher = Watcher {
            runner,
            policy: self.policy,
            stats: &self.stats,
            seconds_per_byte: Mutex::new(Vec::new()),
            hedges_in_flight: AtomicUsize::new(0),
        };
        self.inner.run(parts, &watcher).await
    }
}

tokio::task_local! {
    /// Whether the part run within this scope was sent a second time: set by the [`Watcher`], read
    /// by a scheduler beneath it through [`noting_hedges`].
    static HEDGED: Cell<bool>;
}

/// Awaits `part` (a scheduler's call to [`PartRunner::run_part`]) and says whether a [`Hedged`]
/// wrapper above the scheduler sent that part a second time meanwhile: its time then is a
/// straggling connection's, which [`Adaptive`](crate::Adaptive) must not take for congestion.
pub(super) async fn noting_hedges<F: Future>(part: F) -> (F::Output, bool) {
    HEDGED
        .scope(Cell::new(false), async move {
            let output = part.await;
            (output, HEDGED.with(Cell::get))
        })
        .await
}

/// How often a part in flight looks again at whether it straggles: the median moves as parts
/// finish, so the moment it becomes one is not known in advance.
const RECHECK: Duration = Duration::from_millis(250);

/// The most part times the median is taken over: the recent ones say more about the link now.
const SAMPLES_KEPT: usize = 256;

/// The runner the wrapped scheduler sees: times every part and hedges the stragglers.
struct Watcher<'a> {
    runner: &'a dyn PartRunner,
    policy: HedgePolicy,
    stats: &'a HedgeStats,
    /// The latest parts' times per byte, oldest first.
    seconds_per_byte: Mutex<Vec<f64>>,
    hedges_in_flight: AtomicUsize,
}

impl Watcher<'_> {
    /// How long `part` may be in flight before it is hedged, once enough parts have finished.
    fn patience(&self, part: &PartSpec) -> Option<Duration> {
        let mut times = self.seconds_per_byte.lock().expect("hedge lock").clone();
        if times.len() < self.policy.min_samples.max(1) {
            return None;
        }
        let middle = times.len() / 2;
        let (_, median, _) = times.select_nth_unstable_by(middle, f64::total_cmp);
        let usual = Duration::from_secs_f64(*median * part.size.max(1) as f64);
        Some(usual.mul_f64(self.policy.multiple).max(self.policy.floor))
    }

    fn sample(&self, part: &PartSpec, took: Duration) {
        let mut times = self.seconds_per_byte.lock().expect("hedge lock");
        if times.len() == SAMPLES_KEPT {
            times.remove(0);
        }
        times.push(took.as_secs_f64() / part.size.max(1) as f64);
    }

    /// Takes one of the policy's hedge slots, when one is free.
    fn take_hedge_slot(&self) -> bool {
        self.hedges_in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.policy.max_in_flight).then_some(n + 1)
            })
            .is_ok()
    }
}

#[async_trait::async_trait]
impl PartRunner for Watcher<'_> {
    async fn run_part(&self, part: PartSpec) -> Result<(), Error> {
        let started = Instant::now();
        let mut first = self.runner.run_part(part);
        loop {
            // Look again when the part would become a straggler, or after a while: the median
            // moves, and a straggler that found every hedge slot taken waits for one.
            let now = Instant::now();
            let wake = match self.patience(&part) {
                Some(patience) if started + patience > now => {
                    (started + patience).min(now + RECHECK)
                }
                _ => now + RECHECK,
            };
            tokio::select! {
                result = &mut first => {
                    if result.is_ok() {
                        self.sample(&part, started.elapsed());
                    }
                    return result;
                }
                () = tokio::time::sleep_until(wake) => {}
            }
            let straggles = self
                .patience(&part)
                .is_some_and(|patience| started.elapsed() >= patience);
            if straggles && self.take_hedge_slot() {
                break;
            }
        }
        self.stats.hedged.fetch_add(1, Ordering::Relaxed);
        // Outside a scheduler that notes hedges there is nobody to tell.
        let _ = HEDGED.try_with(|hedged| hedged.set(true));
        tracing::info!(
            part = part.number,
            in_flight_ms = started.elapsed().as_millis() as u64,
            "part straggles; sending it again"
        );
        let hedge = self.runner.run_part(part);
        let outcome = match select(first, hedge).await {
            Either::Left((Ok(()), _)) => Ok(false),
            Either::Right((Ok(()), _)) => Ok(true),
            // One failed: the other may still succeed, and then the part is sent.
            Either::Left((Err(error), hedge)) => hedge.await.map(|()| true).map_err(|_| error),
            Either::Right((Err(error), first)) => first.await.map(|()| false).map_err(|_| error),
        };
        self.hedges_in_flight.fetch_sub(1, Ordering::AcqRel);
        let hedge_won = outcome?;
        if hedge_won {
            self.stats.won.fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(part = part.number, hedge_won, "straggling part settled");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Parallel;
    use std::collections::HashMap;

    /// Each part takes 100 ms, but the first attempt of the parts in `slow` takes `crawl`; counts
    /// the attempts that finished and those dropped unfinished.
    struct Link {
        slow: Vec<u32>,
        crawl: Duration,
        attempts: Mutex<HashMap<u32, u32>>,
        finished: Mutex<Vec<(u32, u32)>>,
        cancelled: AtomicUsize,
        fail_hedges: bool,
    }

    impl Link {
        fn new(slow: &[u32], crawl: Duration) -> Self {
            Self {
                slow: slow.to_vec(),
                crawl,
                attempts: Mutex::default(),
                finished: Mutex::default(),
                cancelled: AtomicUsize::new(0),
                fail_hedges: false,
            }
        }
    }

    struct CountsCancel<'a>(&'a AtomicUsize, bool);

    impl Drop for CountsCancel<'_> {
        fn drop(&mut self) {
            if !self.1 {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    #[async_trait::async_trait]
    impl PartRunner for Link {
        async fn run_part(&self, part: PartSpec) -> Result<(), Error> {
            let attempt = {
                let mut attempts = self.attempts.lock().unwrap();
                let n = attempts.entry(part.number).or_default();
                *n += 1;
                *n
            };
            let mut guard = CountsCancel(&self.cancelled, false);
            let took = if attempt == 1 && self.slow.contains(&part.number) {
                self.crawl
            } else {
                Duration::from_millis(100)
            };
            tokio::time::sleep(took).await;
            guard.1 = true;
            if attempt > 1 && self.fail_hedges {
                return Err(Error::config("scripted hedge failure"));
            }
            self.finished.lock().unwrap().push((part.number, attempt));
            Ok(())
        }
    }

    fn parts(n: u32) -> Vec<PartSpec> {
        (1..=n)
            .map(|number| PartSpec {
                number,
                offset: u64::from(number - 1) << 20,
                size: 1 << 20,
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_straggler_is_sent_again_and_the_first_answer_wins() {
        let link = Link::new(&[7], Duration::from_secs(60));
        let hedged = Hedged::new(Parallel::new(4));
        let started = Instant::now();
        hedged.run(parts(8), &link).await.unwrap();

        // Part 7 hedged after the 2 s floor (3 x 100 ms is less), its hedge took 100 ms.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(link.attempts.lock().unwrap()[&7], 2);
        let finished = link.finished.lock().unwrap().clone();
        assert!(finished.contains(&(7, 2)), "{finished:?}");
        assert!(
            !finished.contains(&(7, 1)),
            "the straggler was not cancelled"
        );
        assert_eq!(link.cancelled.load(Ordering::SeqCst), 1);
        assert_eq!((hedged.stats().hedged(), hedged.stats().won()), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn parts_on_time_are_never_hedged() {
        let link = Link::new(&[], Duration::ZERO);
        let hedged = Hedged::new(Parallel::new(3));
        hedged.run(parts(30), &link).await.unwrap();
        assert!(link.attempts.lock().unwrap().values().all(|&n| n == 1));
        assert_eq!(hedged.stats().hedged(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_threshold_follows_the_median_part_time() {
        // Parts take 100 ms, the straggler 1.5 s: past 3 x the median but under the 2 s floor.
        let link = Link::new(&[5], Duration::from_millis(1500));
        let hedged = Hedged::new(Parallel::new(2));
        hedged.run(parts(6), &link).await.unwrap();
        assert_eq!(hedged.stats().hedged(), 0);

        let link = Link::new(&[5], Duration::from_millis(1500));
        let eager = Hedged::new(Parallel::new(2))
            .policy(HedgePolicy::default().floor(Duration::from_millis(200)));
        eager.run(parts(6), &link).await.unwrap();
        assert_eq!((eager.stats().hedged(), eager.stats().won()), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_hedge_leaves_the_straggler_to_finish() {
        let mut link = Link::new(&[4], Duration::from_secs(5));
        link.fail_hedges = true;
        let hedged = Hedged::new(Parallel::new(2));
        hedged.run(parts(6), &link).await.unwrap();
        assert!(link.finished.lock().unwrap().contains(&(4, 1)));
        assert_eq!((hedged.stats().hedged(), hedged.stats().won()), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn hedges_in_flight_are_capped() {
        // Every part after the first three crawls: a storm, not a straggler.
        let slow: Vec<u32> = (4..=20).collect();
        let link = Link::new(&slow, Duration::from_secs(30));
        let hedged = Hedged::new(Parallel::new(8)).policy(HedgePolicy::default().max_in_flight(1));
        hedged.run(parts(20), &link).await.unwrap();
        // One hedge at a time, each 100 ms: every slow part was hedged in turn, one by one.
        assert_eq!(hedged.stats().hedged(), 17);
        let finished = link.finished.lock().unwrap();
        assert!(finished.iter().all(|&(n, a)| n <= 3 || a == 2));
    }

    #[test]
    fn the_stats_are_shared_by_clones() {
        let hedged = Hedged::new(Parallel::new(2));
        let clone = hedged.clone();
        clone.stats.hedged.fetch_add(1, Ordering::Relaxed);
        assert_eq!(hedged.stats().hedged(), 1);
    }
}
