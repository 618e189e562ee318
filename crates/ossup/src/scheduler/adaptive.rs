//! [`Adaptive`]: finds how many parts to keep in flight from how long parts take, so nobody has to
//! guess `--parallel` for their link.
//!
//! A hill climb on throughput with a slow start and a multiplicative back-off on trouble (AIMD in
//! spirit, as TCP and Netflix's concurrency-limits do it): the limit starts at 4; every epoch (as
//! many parts as the limit, at least four, all started at that limit) measures the throughput as
//! the limit times the bytes per second of a part (Little's law). At first the limit doubles while each doubling still buys more
//! than 10 % more throughput (the slow start: an upload of 64 parts must find 16 in flight within
//! a few epochs, or most of its bytes go at the low start); the first doubling that buys nothing
//! goes back to the limit before it and ends the slow start. From then on the limit grows by half
//! while that still pays, goes back when it does not, and shrinks to 70 % when throughput falls by
//! a fifth. A part that takes four times the usual time per byte (retries after 503 SlowDown or
//! 429, timeouts, a stall: all happen inside the part) halves the limit at once and ends the slow
//! start. It never exceeds [`Adaptive::max`], which is also the
//! [`concurrency`](PartScheduler::concurrency) the memory budget is sized by.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;

use super::{CongestionSignal, PartRunner, PartScheduler, PartSpec};
use crate::Error;

/// The parts in flight at the start.
const INITIAL: usize = 4;

/// Throughput must grow by this factor for the limit to keep growing.
const GROWTH_WORTH_IT: f64 = 1.10;

/// Throughput falling below this factor of the last epoch's shrinks the limit.
const WORSE: f64 = 0.8;

/// A part this many times slower per byte than the usual signals trouble.
const TROUBLE: f64 = 4.0;

/// The weight of a part's time per byte in the usual.
const USUAL_WEIGHT: f64 = 0.1;

/// Adjusts the parts in flight to what the link and the server take, between 1 and `max`; parts
/// start in ascending order, and the run stops at the first error (as [`Parallel`](crate::Parallel)).
///
/// The limit it runs at now is [`current`](Self::current) (shared by clones, so a progress display
/// can show it while the upload runs).
///
/// ```
/// use ossup::{Adaptive, PartScheduler};
/// let adaptive = Adaptive::new(32);
/// assert_eq!(adaptive.concurrency(), 32); // buffers are sized for the most it may reach
/// assert_eq!(adaptive.current(), 4);      // it starts low
/// ```
#[derive(Debug, Clone)]
pub struct Adaptive {
    max: usize,
    initial: usize,
    current: Arc<AtomicUsize>,
    congestion: Option<CongestionSignal>,
}

impl Adaptive {
    /// At most `max` parts at once (at least 1), starting at 4 (or `max`, when lower).
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        let initial = INITIAL.min(max);
        Self {
            max,
            initial,
            current: Arc::new(AtomicUsize::new(initial)),
            congestion: None,
        }
    }

    /// Halves the limit (once per epoch) whenever `signal` was raised since the last part
    /// finished: hand the same signal to a [`CongestionWatch`](crate::CongestionWatch) around the
    /// client's transport, and a server's `503 SlowDown` stops the climb at once instead of after
    /// the retried parts turn out slow.
    ///
    /// ```
    /// use ossup::{Adaptive, CongestionSignal};
    /// let signal = CongestionSignal::new();
    /// let adaptive = Adaptive::new(32).listening_to(signal.clone());
    /// # let _ = adaptive;
    /// ```
    pub fn listening_to(mut self, signal: CongestionSignal) -> Self {
        self.congestion = Some(signal);
        self
    }

    /// Starts at `initial` parts in flight instead of 4 (within 1..=max).
    pub fn starting_at(mut self, initial: usize) -> Self {
        self.initial = initial.clamp(1, self.max);
        self.current.store(self.initial, Ordering::Relaxed);
        self
    }

    /// The most parts it keeps in flight.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The number of parts it keeps in flight now.
    pub fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }
}

impl Default for Adaptive {
    /// Up to 32 parts at once.
    fn default() -> Self {
        Self::new(32)
    }
}

/// The limiter's state within one run.
#[derive(Debug)]
struct Climb {
    limit: f64,
    max: f64,
    /// The usual time per byte of a part.
    usual: Option<f64>,
    /// The usual time a part takes, in seconds.
    usual_took: f64,
    /// Whether the limit still doubles per epoch (until a doubling buys nothing, or trouble).
    slow_start: bool,
    /// The epoch an overload answer last halved the limit in.
    overload_epoch: Option<Instant>,
    epoch_started: Instant,
    /// The bytes, and the seconds they took, of the parts started in this epoch.
    epoch_bytes: u64,
    epoch_seconds: f64,
    epoch_parts: usize,
    last_throughput: Option<f64>,
    /// The limit before the last growth, while its worth is being measured.
    before_growth: Option<f64>,
    /// Epochs held at one limit since the last change; after [`PROBE_AFTER`], it grows again to
    /// see whether the link has more to give.
    held: u32,
}

/// Epochs at a steady limit before probing a higher one again.
const PROBE_AFTER: u32 = 8;

impl Climb {
    fn new(initial: usize, max: usize, now: Instant) -> Self {
        Self {
            limit: initial as f64,
            max: max as f64,
            usual: None,
            usual_took: 0.0,
            slow_start: true,
            overload_epoch: None,
            epoch_started: now,
            epoch_bytes: 0,
            epoch_seconds: 0.0,
            epoch_parts: 0,
            last_throughput: None,
            before_growth: None,
            held: 0,
        }
    }

    fn new_epoch(&mut self, now: Instant) {
        self.epoch_started = now;
        self.epoch_bytes = 0;
        self.epoch_seconds = 0.0;
        self.epoch_parts = 0;
    }

    /// Takes a part of `bytes` that took `took` seconds, finished at `now`, into account.
    fn sample(&mut self, now: Instant, bytes: u64, took: f64) {
        let per_byte = took / bytes.max(1) as f64;
        if let Some(usual) = self.usual
            && per_byte > TROUBLE * usual
        {
            self.limit = (self.limit * 0.5).max(1.0);
            self.slow_start = false;
            self.before_growth = None;
            self.last_throughput = None;
            self.new_epoch(now);
            return;
        }
        self.usual = Some(match self.usual {
            None => per_byte,
            Some(usual) => usual + (per_byte - usual) * USUAL_WEIGHT,
        });
        self.usual_took = if self.usual_took == 0.0 {
            took
        } else {
            self.usual_took + (took - self.usual_took) * USUAL_WEIGHT
        };
        // A part started under an older limit says nothing of this one.
        let started = now.checked_sub(Duration::from_secs_f64(took));
        if started.is_none_or(|started| started < self.epoch_started) {
            return;
        }
        self.epoch_bytes += bytes;
        self.epoch_seconds += took;
        self.epoch_parts += 1;
        if self.epoch_parts < self.in_flight().max(4) {
            return;
        }
        // Little's law: with `limit` parts always in flight, the throughput is the limit over the
        // time a part takes. Counting the bytes that finished within the epoch instead would credit
        // it with parts that started earlier, and make every growth look worth it.
        let throughput =
            self.in_flight() as f64 * self.epoch_bytes as f64 / self.epoch_seconds.max(1e-9);
        let grew = self.before_growth.take();
        if self.slow_start {
            match (self.last_throughput, grew) {
                // The last doubling bought too little: back to the limit before it, and from now
                // on grow carefully.
                (Some(last), Some(before)) if throughput < last * GROWTH_WORTH_IT => {
                    self.limit = before;
                    self.slow_start = false;
                    self.held = 0;
                    self.new_epoch(now);
                    self.last_throughput = Some(throughput.max(last));
                    return;
                }
                _ => self.double(),
            }
            self.last_throughput = Some(throughput);
            self.new_epoch(now);
            return;
        }
        match self.last_throughput {
            Some(last) if throughput < last * WORSE => {
                self.limit = grew.unwrap_or(self.limit * 0.7).max(1.0);
                self.held = 0;
            }
            Some(last) if throughput < last * GROWTH_WORTH_IT => match grew {
                // The last growth bought nothing: back to the limit that did as well.
                Some(before) => {
                    self.limit = before;
                    self.held = 0;
                    // Judge the next epochs against what the smaller limit does.
                    self.new_epoch(now);
                    self.last_throughput = Some(throughput.max(last));
                    return;
                }
                None if self.held >= PROBE_AFTER => self.grow(),
                None => self.held += 1,
            },
            _ => self.grow(),
        }
        self.last_throughput = Some(throughput);
        self.new_epoch(now);
    }

    /// The server said it is overloaded: halve the limit and end the slow start, once per epoch
    /// (the parts already in flight when it said so may meet the same answer).
    fn overloaded(&mut self, now: Instant) {
        if self.overload_epoch == Some(self.epoch_started) {
            return;
        }
        self.limit = (self.limit * 0.5).max(1.0);
        self.slow_start = false;
        self.before_growth = None;
        self.last_throughput = None;
        self.held = 0;
        self.new_epoch(now);
        self.overload_epoch = Some(self.epoch_started);
    }

    /// Doubles the limit, remembering where it was; at the maximum, the slow start is over.
    fn double(&mut self) {
        if self.limit < self.max {
            self.before_growth = Some(self.limit);
            self.limit = (self.limit * 2.0).min(self.max);
        } else {
            self.slow_start = false;
        }
        self.held = 0;
    }

    /// Raises the limit by half (at least one part), remembering where it was.
    fn grow(&mut self) {
        if self.limit < self.max {
            self.before_growth = Some(self.limit);
            self.limit = (self.limit + (self.limit * 0.5).max(1.0)).min(self.max);
        }
        self.held = 0;
    }

    fn in_flight(&self) -> usize {
        self.limit.floor() as usize
    }
}

#[async_trait::async_trait]
impl PartScheduler for Adaptive {
    fn concurrency(&self) -> usize {
        self.max
    }

    fn current_limit(&self) -> usize {
        self.current()
    }

    async fn run(&self, parts: Vec<PartSpec>, runner: &dyn PartRunner) -> Result<(), Error> {
        let mut climb = Climb::new(self.initial, self.max, Instant::now());
        let mut overloads_seen = self.congestion.as_ref().map_or(0, CongestionSignal::count);
        let mut pending = parts.into_iter().peekable();
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < climb.in_flight() {
                let Some(part) = pending.next() else { break };
                in_flight.push(async move {
                    let started = Instant::now();
                    let result = runner.run_part(part).await;
                    (part, started.elapsed(), result)
                });
            }
            let Some((part, took, result)) = in_flight.next().await else {
                return Ok(());
            };
            result?;
            let now = Instant::now();
            if let Some(signal) = &self.congestion {
                let count = signal.count();
                if count > overloads_seen {
                    overloads_seen = count;
                    climb.overloaded(now);
                }
            }
            climb.sample(now, part.size, took.as_secs_f64());
            self.current.store(climb.in_flight(), Ordering::Relaxed);
            tracing::trace!(
                limit = climb.limit,
                part = part.number,
                took_ms = took.as_millis() as u64,
                "adaptive concurrency"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A link: each part takes `latency` while fewer than `capacity` parts are in flight; past that
    /// they share the bandwidth, and each takes proportionally longer (to the power `overload`:
    /// above 1, crowding costs throughput, as CPU contention or refusals past a ceiling do).
    struct Link {
        latency: Duration,
        capacity: usize,
        overload: f64,
        now: AtomicUsize,
        peak: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl PartRunner for Link {
        async fn run_part(&self, _part: PartSpec) -> Result<(), Error> {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            // The part's progress follows the crowd in flight at each moment, not only at its
            // start, as bytes on a shared link do.
            let tick = self.latency / 20;
            let mut done = 0.0;
            while done < 1.0 {
                tokio::time::sleep(tick).await;
                let crowd = self.now.load(Ordering::SeqCst) as f64 / self.capacity as f64;
                done += 1.0 / 20.0 / crowd.max(1.0).powf(self.overload);
            }
            self.now.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn parts(n: u32) -> Vec<PartSpec> {
        (1..=n)
            .map(|number| PartSpec {
                number,
                offset: 0,
                size: 1 << 20,
            })
            .collect()
    }

    fn link(capacity: usize) -> Link {
        Link {
            latency: Duration::from_millis(100),
            capacity,
            overload: 1.0,
            now: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn on_a_long_fat_link_it_climbs_to_what_the_link_carries() {
        let adaptive = Adaptive::new(64);
        let link = link(24);
        adaptive.run(parts(600), &link).await.unwrap();
        let reached = adaptive.current();
        assert!((16..=40).contains(&reached), "{reached}");
        assert!(link.peak.load(Ordering::SeqCst) <= 64);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_upload_comes_close_to_the_best_fixed_setting() {
        // 16 parts in flight fill the link: 640 parts take 40 rounds of 100 ms at best. The climb
        // from 4 and the probes past 16 cost about a tenth of that.
        let best = Duration::from_millis(100) * 40;
        let link = link(16);
        let started = Instant::now();
        Adaptive::new(32).run(parts(640), &link).await.unwrap();
        let took = started.elapsed();
        assert!(took.as_secs_f64() <= best.as_secs_f64() / 0.85, "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_slow_start_doubles_until_a_doubling_costs_throughput() {
        // Throughput grows up to 16 in flight (4, 8, 16 each buy more); past it, crowding costs.
        let adaptive = Adaptive::new(64);
        let link = Link {
            overload: 1.5,
            ..link(16)
        };
        adaptive.run(parts(200), &link).await.unwrap();
        assert!(link.peak.load(Ordering::SeqCst) >= 16);
        assert!(
            (12..32).contains(&adaptive.current()),
            "{}",
            adaptive.current()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn on_a_thin_link_it_stays_low() {
        let adaptive = Adaptive::new(64);
        let link = link(3);
        adaptive.run(parts(400), &link).await.unwrap();
        let reached = adaptive.current();
        assert!(reached <= 8, "{reached}");
    }

    #[tokio::test(start_paused = true)]
    async fn it_never_passes_its_maximum() {
        let adaptive = Adaptive::new(5);
        let link = link(100);
        adaptive.run(parts(300), &link).await.unwrap();
        assert_eq!(adaptive.current(), 5);
        assert_eq!(link.peak.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn an_overload_answer_halves_the_limit_once_per_epoch() {
        let start = Instant::now();
        let mut climb = Climb::new(16, 64, start);
        climb.overloaded(start + Duration::from_millis(10));
        assert_eq!(climb.limit, 8.0);
        assert!(!climb.slow_start);
        // More refusals of the parts already in flight: the same epoch, no second cut.
        climb.overloaded(start + Duration::from_millis(20));
        assert_eq!(climb.limit, 8.0);
    }

    #[test]
    fn a_part_far_slower_than_usual_halves_the_limit() {
        let start = Instant::now();
        let mut climb = Climb::new(20, 64, start);
        for i in 1..=10 {
            climb.sample(start + Duration::from_millis(100 * i), 1 << 20, 0.1);
        }
        let before = climb.limit;
        climb.sample(start + Duration::from_secs(5), 1 << 20, 1.0);
        assert_eq!(climb.limit, before * 0.5);
    }
}
