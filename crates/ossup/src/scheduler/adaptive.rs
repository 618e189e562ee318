//! [`Adaptive`]: finds how many parts to keep in flight from how long parts take, so nobody has to
//! guess `--parallel` for their link.
//!
//! A delay-gradient limiter with a slow start, in the spirit of TCP's slow start with HyStart and
//! Netflix concurrency-limits' Gradient2. It works in rounds: a round is as long as a part takes,
//! and its samples are the parts started within it. Once the first half of them (at most 8) are
//! back, the round's median time per byte is its verdict, set against the base, the lowest median
//! of the last rounds (what a part takes when the link is not crowded). The limit starts at 8.
//! During the slow start a round within 2 % of the base (as quick as the link gets) raises it by
//! half. A round that is slower at all ends the slow start: from then on two rounds in a row as
//! quick as the base raise the limit by one part (as TCP's congestion avoidance does; one alone
//! may be chance), and a round slower by up to 10 % says the link is filling: one more part is
//! tried only after eight such rounds in a row. A round more than 10 % slower means the link is full (more parts than it carries share
//! its bandwidth, and each takes longer): the limit stays. The median, not each part, decides, so
//! that one part slowed by a busy CPU neither stops the climb nor lets it run on.
//!
//! The step is what a server's ceiling costs: the parts of a round all go out before the first of
//! them can be refused, so a step past a ceiling is refused once per part it added. Growing by
//! half only while parts take no longer at all, and by one part once in eight rounds as soon as
//! they do, keeps a link that fills right below the ceiling (part times up by a few per cent, as on
//! a thin link whose connections share its bandwidth) to one refusal per long upload, the step from
//! 12 to 13 (not from 12 to 18), and a short one to none. A
//! link that gives no sign at all before a ceiling (part times flat up to it) still pays the slow
//! start's last step: nothing but the refusal says where such a ceiling is.
//!
//! Trouble halves the limit, at most once per round, and ends the slow start: a `503 SlowDown` or
//! `429` reported through a [`CongestionSignal`] (heard at once, not when the next part is back),
//! or a part four times slower per byte than the usual (retries, timeouts, a stall: all happen
//! inside the part). A refusal also sets a ceiling: what was in flight less the refusals heard
//! while the surplus drains (the parts the server did take), so a wave of refusals from one step
//! and a refused part's retry refused again lower it once, not once per answer. The limit climbs
//! back to the ceiling by half a round and no further for 64 rounds (a 256-part upload at 4 or
//! more in flight, since a round is as long as a part), then tries one part more: refused again,
//! the ceiling holds twice as long (up to 1,024 rounds), so a long upload probes the server
//! rarely; taken, the climb goes on by one part a round, so a link that freed up is used. A part that
//! [`Hedged`](crate::Hedged) sent a second time is no sample at all: its time is one connection's
//! straggle, not the link's congestion. The limit never exceeds [`Adaptive::max`], which is also
//! the [`concurrency`](PartScheduler::concurrency) the memory budget is sized by.
//!
//! The limit is the link's, not one upload's: clones and concurrent runs of one `Adaptive` share
//! it. The files of a batch (whose small files each run as one part) draw their parts in flight
//! from it together, every part's time teaches it, and a later upload through the same uploader
//! starts from what the link was found to carry. Times per byte are compared only among parts of
//! like size (within a factor of four): a 4 KiB file's time is its round trip, an 8 MiB part's
//! its bytes, and one would make the other look like trouble.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;

use super::hedged::noting_hedges;
use super::{CongestionSignal, PartRunner, PartScheduler, PartSpec};
use crate::Error;

/// The parts in flight at the start: low enough for a thin link, high enough that an upload of a
/// few dozen parts on a long fat link does not spend most of its parts climbing.
const INITIAL: usize = 8;

/// What a round near the base adds to the limit during the slow start: half of it. Never more:
/// the parts of a round all go out before the first is back, so a round can overshoot the link's
/// saturation point by this much before any part says so.
const SLOW_START_GROWTH: f64 = 0.5;

/// A round whose median time per byte is within this share above the base is as quick as the
/// link gets: the slow start may grow by half. A slower round, though uncrowded, says the link is
/// close to full, and growth goes on one part at a time.
const QUICK: f64 = 0.02;

/// The rounds in a row a link must be filling (parts slower than the base by more than [`QUICK`],
/// less than [`TOLERANCE`]) before one more part is tried; a round as quick as the base adds one
/// at once. On a thin link whose connections share it, the server's ceiling may sit a part or two
/// above where the link fills, and a 64-part upload is only five or six rounds long.
const FILLING_ROUNDS: u32 = 8;

/// After the slow start, the rounds in a row as quick as the base before one more part is tried:
/// on a link that fills, one round of small parts sometimes comes out as quick by chance.
const QUICK_ROUNDS: u32 = 2;

/// A round whose median time per byte is within this share above the base counts as uncrowded.
const TOLERANCE: f64 = 0.10;

/// The most parts of a round its verdict waits for (half the limit, at least one): the round's
/// first parts are back within moments of each other, and its median is robust to one slow part.
const ROUND_SAMPLES: usize = 8;

/// The rounds whose lowest median is the base: recent enough that a link that got slower for good
/// sets a new base.
const BASE_WINDOW: usize = 32;

/// The rounds a ceiling learnt from a refusal holds at first: a round is about as long as a part,
/// so a 256-part upload at 4 or more parts in flight is over before the ceiling is probed again,
/// and a longer one probes once per 64 part times (one refused request in hundreds).
const CEILING_ROUNDS: u32 = 64;

/// The most rounds a ceiling holds: each probe refused again doubles the hold, up to this.
const MAX_CEILING_ROUNDS: u32 = 1024;

/// A part this many times slower per byte than the usual signals trouble.
const TROUBLE: f64 = 4.0;

/// The weight of a part's time per byte in the usual.
const USUAL_WEIGHT: f64 = 0.1;

/// Adjusts the parts in flight to what the link and the server take, between 1 and `max`; parts
/// start in ascending order, and the run stops at the first error (as [`Parallel`](crate::Parallel)).
///
/// The limit it runs at now is [`current`](Self::current). Clones share it, and so do concurrent
/// runs: the parts of every upload running through one `Adaptive` (the files of a batch) count
/// against one limit, which a progress display can show while they run.
///
/// ```
/// use ossup::{Adaptive, PartScheduler};
/// let adaptive = Adaptive::new(32);
/// assert_eq!(adaptive.concurrency(), 32); // buffers are sized for the most it may reach
/// assert_eq!(adaptive.current(), 8);      // it starts low
/// ```
#[derive(Debug, Clone)]
pub struct Adaptive {
    max: usize,
    initial: usize,
    congestion: Option<CongestionSignal>,
    shared: Arc<Shared>,
}

/// What every clone and every concurrent [`run`](PartScheduler::run) of one [`Adaptive`] share: the
/// limit is the link's, not a file's, so the files of a batch draw their parts in flight from it
/// together and each part's time teaches all of them.
#[derive(Debug)]
struct Shared {
    /// The limit now, read by progress displays without the lock.
    current: AtomicUsize,
    state: Mutex<State>,
    /// Raised when a part ends or the limit grows: a run waiting for room looks again.
    room: Notify,
}

#[derive(Debug)]
struct State {
    /// Made by the first run (its clock starts then) and kept: a later file, or a later upload
    /// through the same uploader, goes on from what the link was found to carry.
    climb: Option<Climb>,
    /// The parts in flight across every run.
    in_flight: usize,
    /// The refusals of the congestion signal already taken into account, by whichever run heard
    /// them first.
    overloads_seen: u64,
}

impl Shared {
    fn new(initial: usize) -> Self {
        Self {
            current: AtomicUsize::new(initial),
            state: Mutex::new(State {
                climb: None,
                in_flight: 0,
                overloads_seen: 0,
            }),
            room: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A place in flight, if the limit leaves room for one more part.
    fn take_place(&self) -> Option<Place<'_>> {
        let mut state = self.lock();
        let limit = state.climb.as_ref().map_or(1, Climb::in_flight);
        (state.in_flight < limit).then(|| {
            state.in_flight += 1;
            Place { shared: self }
        })
    }

    /// Publishes the limit after the climb moved.
    fn publish(&self, state: &State) {
        if let Some(climb) = &state.climb {
            self.current.store(climb.in_flight(), Ordering::Relaxed);
        }
    }
}

/// One part's place in flight; given back when dropped (also when a failed run drops its parts).
struct Place<'a> {
    shared: &'a Shared,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.shared.lock().in_flight -= 1;
        self.shared.room.notify_waiters();
    }
}

impl Adaptive {
    /// At most `max` parts at once (at least 1), starting at 8 (or `max`, when lower).
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        let initial = INITIAL.min(max);
        Self {
            max,
            initial,
            congestion: None,
            shared: Arc::new(Shared::new(initial)),
        }
    }

    /// Halves the limit (once per round of parts) the moment `signal` is raised, and does not
    /// climb past the parts the server took then for the next 64 rounds (more when a later probe
    /// past it is refused again): hand the same
    /// signal to a [`CongestionWatch`](crate::CongestionWatch) around the client's transport, and
    /// a server's `503 SlowDown` stops the climb at once instead of after the retried parts turn
    /// out slow.
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

    /// Starts at `initial` parts in flight instead of 8 (within 1..=max).
    pub fn starting_at(mut self, initial: usize) -> Self {
        self.initial = initial.clamp(1, self.max);
        self.shared.current.store(self.initial, Ordering::Relaxed);
        self
    }

    /// The most parts it keeps in flight.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The number of parts it keeps in flight now.
    pub fn current(&self) -> usize {
        self.shared.current.load(Ordering::Relaxed)
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
    /// Whether a round near the base still raises the limit by half (rather than by one part).
    slow_start: bool,
    /// The rounds in a row, since the last step, that were slower than the base by more than
    /// [`QUICK`] and less than [`TOLERANCE`]: the link filling.
    filling_rounds: u32,
    /// The rounds in a row, since the last step, within [`QUICK`] of the base.
    quick_rounds: u32,
    /// What parts of each size class take: a 4 KiB file put whole takes its round trip, a 8 MiB
    /// part its bytes, so the time per byte of one says nothing of the other's.
    classes: HashMap<u32, Class>,
    /// When the current round began: the parts started since then are its samples.
    round_started: Instant,
    /// The current round's size classes and times per byte so far.
    round: Vec<(u32, f64)>,
    /// The round the limit was last halved in: one cut per round, since the parts already in
    /// flight when trouble began meet the same trouble.
    cut_round: Option<Instant>,
    /// The most parts the server took without refusing one, and the rounds it is still trusted
    /// for: the climb goes back to it quickly and not past it.
    ceiling: Option<(f64, u32)>,
    /// The last ceiling learnt and the rounds it was held for, kept after it expires: a probe past
    /// it refused again holds the next ceiling twice as long.
    last_ceiling: Option<(f64, u32)>,
    /// From a refusal until the next round's verdict: the parts in flight at the first refusal
    /// and the refusals heard since. A refusal is answered as late as a part (the server reads
    /// the refused body first), so until a round started after the cut is back, a refusal may
    /// be of a request sent before the cut: it answers the same overshoot, and the parts in
    /// flight when it comes say nothing of the server's ceiling.
    draining: Option<(usize, usize)>,
    /// The parts the last growth added (the first ones for the start): an overshoot is refused
    /// at most once per part it added, so more refusals while it drains are retries refused
    /// again, not parts the server did not take.
    last_step: usize,
}

impl Climb {
    fn new(initial: usize, max: usize, now: Instant) -> Self {
        Self {
            limit: initial as f64,
            max: max as f64,
            slow_start: initial < max,
            filling_rounds: 0,
            quick_rounds: 0,
            classes: HashMap::new(),
            round_started: now,
            round: Vec::with_capacity(ROUND_SAMPLES),
            cut_round: None,
            ceiling: None,
            last_ceiling: None,
            draining: None,
            last_step: initial,
        }
    }

    /// Takes a part of `bytes` that took `took` seconds, finished at `now`, into account.
    fn sample(&mut self, now: Instant, bytes: u64, took: f64) {
        let per_byte = took / bytes.max(1) as f64;
        let class = size_class(bytes);
        let usual = &mut self.classes.entry(class).or_default().usual;
        if let Some(usual) = *usual
            && per_byte > TROUBLE * usual
        {
            self.cut(now);
            return;
        }
        *usual = Some(match *usual {
            None => per_byte,
            Some(usual) => usual + (per_byte - usual) * USUAL_WEIGHT,
        });
        // A part started before this round ran under another limit: it says nothing of this one.
        let started = now.checked_sub(Duration::from_secs_f64(took));
        if started.is_none_or(|started| started < self.round_started) {
            return;
        }
        self.round.push((class, per_byte));
        if self.round.len() < (self.in_flight() / 2).clamp(1, ROUND_SAMPLES) {
            return;
        }
        // The round is judged by the size most of its parts are of (of a file's parts, all but
        // the last), against what parts of that size took before.
        let class = dominant_class(&self.round);
        let mut times: Vec<f64> = self
            .round
            .iter()
            .filter(|(c, _)| *c == class)
            .map(|(_, per_byte)| *per_byte)
            .collect();
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let recent = &mut self.classes.entry(class).or_default().recent;
        if recent.len() == BASE_WINDOW {
            recent.pop_front();
        }
        recent.push_back(median);
        let base = recent.iter().copied().fold(f64::INFINITY, f64::min);
        tracing::trace!(
            limit = self.limit,
            slower = median / base - 1.0,
            samples = times.len(),
            "adaptive round"
        );
        let ceiling = self.ceiling.map(|(ceiling, rounds)| {
            self.ceiling = (rounds > 1).then_some((ceiling, rounds - 1));
            ceiling
        });
        if median > base * (1.0 + QUICK) {
            // Slower at all: the link is close to full, and a step by half could cross a ceiling
            // by as many parts as it adds.
            self.slow_start = false;
        }
        if median <= base * (1.0 + TOLERANCE) {
            // Below a ceiling the server set, the way back up is as quick as the slow start: the
            // server took that many parts.
            let quick = median <= base * (1.0 + QUICK);
            self.filling_rounds = if quick { 0 } else { self.filling_rounds + 1 };
            self.quick_rounds = if quick { self.quick_rounds + 1 } else { 0 };
            let step = if self.slow_start || ceiling.is_some_and(|ceiling| self.limit < ceiling) {
                self.limit * SLOW_START_GROWTH
            } else if self.quick_rounds >= QUICK_ROUNDS || self.filling_rounds >= FILLING_ROUNDS {
                // A link that fills (parts a few per cent slower) is probed past rarely, and one
                // quick round there may be noise: the part the step adds is the one a ceiling
                // right above refuses.
                self.filling_rounds = 0;
                self.quick_rounds = 0;
                1.0
            } else {
                0.0
            };
            let top = ceiling.map_or(self.max, |ceiling| ceiling.min(self.max));
            let before = self.in_flight();
            self.limit = (self.limit + step).min(top.max(self.limit));
            if self.in_flight() > before {
                self.last_step = self.in_flight() - before;
            }
            if self.limit >= self.max {
                self.slow_start = false;
            }
        } else {
            self.slow_start = false;
            self.filling_rounds = 0;
            self.quick_rounds = 0;
        }
        // A round started after any cut is back: every refusal of the overshoot has come.
        self.draining = None;
        self.new_round(now);
    }

    /// The server refused `refusals` requests (heard together) with `in_flight` parts in flight
    /// (the refused among them): halve the limit (once per round), end the slow start, and do not
    /// climb past the parts the server took for a while.
    fn overloaded(&mut self, now: Instant, in_flight: usize, refusals: usize) {
        // Refusals while the surplus of an earlier one drains answer the same overshoot: each is
        // one more part the server did not take (up to the parts the step added), not a new
        // overload.
        let (at, refused) = match self.draining {
            Some((at, refused)) => (at, refused + refusals),
            None => (in_flight, refusals),
        };
        self.draining = Some((at, refused));
        let took = at.saturating_sub(refused.min(self.last_step)).max(1) as f64;
        match (self.ceiling, self.last_ceiling) {
            (Some((ceiling, rounds)), Some((_, hold))) => {
                self.ceiling = Some((ceiling.min(took), rounds));
                self.last_ceiling = Some((ceiling.min(took), hold));
            }
            (_, last) => {
                // A probe past the last ceiling refused again: the server's ceiling is still
                // there, so trust it longer before the next probe.
                let hold = match last {
                    Some((last, hold)) if took <= last => (hold * 2).min(MAX_CEILING_ROUNDS),
                    _ => CEILING_ROUNDS,
                };
                self.ceiling = Some((took, hold));
                self.last_ceiling = Some((took, hold));
            }
        }
        self.cut(now);
    }

    /// Halves the limit, unless it was halved in this round already, and ends the slow start.
    fn cut(&mut self, now: Instant) {
        self.slow_start = false;
        self.filling_rounds = 0;
        self.quick_rounds = 0;
        if self.cut_round == Some(self.round_started) {
            return;
        }
        self.limit = (self.limit * 0.5).max(1.0);
        self.new_round(now);
        self.cut_round = Some(now);
    }

    fn new_round(&mut self, now: Instant) {
        self.round_started = now;
        self.round.clear();
    }

    fn in_flight(&self) -> usize {
        self.limit.floor() as usize
    }
}

/// What parts of one size class took.
#[derive(Debug, Default)]
struct Class {
    /// The latest rounds' median times per byte, oldest first; the lowest is the base.
    recent: VecDeque<f64>,
    /// The usual time per byte of a part, against which trouble is judged.
    usual: Option<f64>,
}

/// Sizes within a factor of four share a class: a file's parts and most of its last part do, a
/// small file and a big file's parts do not.
fn size_class(bytes: u64) -> u32 {
    bytes.max(1).ilog2() / 2
}

/// The class most of `round` is of (the larger on a tie).
fn dominant_class(round: &[(u32, f64)]) -> u32 {
    let mut counts: Vec<(u32, usize)> = Vec::new();
    for (class, _) in round {
        match counts.iter_mut().find(|(c, _)| c == class) {
            Some((_, n)) => *n += 1,
            None => counts.push((*class, 1)),
        }
    }
    counts
        .into_iter()
        .max_by_key(|&(class, n)| (n, class))
        .map_or(0, |(class, _)| class)
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
        let shared = &*self.shared;
        {
            let mut state = shared.lock();
            if state.climb.is_none() {
                state.climb = Some(Climb::new(self.initial, self.max, Instant::now()));
                state.overloads_seen = self.congestion.as_ref().map_or(0, CongestionSignal::count);
            }
        }
        let mut pending = parts.into_iter().peekable();
        let mut in_flight = FuturesUnordered::new();
        loop {
            // Registered before looking for room, so that room made meanwhile is not missed.
            let room = shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            while pending.peek().is_some() {
                let Some(place) = shared.take_place() else {
                    break;
                };
                let part = pending.next().expect("peeked");
                in_flight.push(async move {
                    let started = Instant::now();
                    let (result, hedged) = noting_hedges(runner.run_part(part)).await;
                    (part, started.elapsed(), hedged, result, place)
                });
            }
            let waiting = pending.peek().is_some();
            if in_flight.is_empty() && !waiting {
                return Ok(());
            }
            let seen = shared.lock().overloads_seen;
            let overload = async {
                match &self.congestion {
                    Some(signal) => signal.raised_past(seen).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                count = overload => {
                    let mut state = shared.lock();
                    // Another run may have taken these refusals into account already.
                    let refusals = usize::try_from(count.saturating_sub(state.overloads_seen))
                        .unwrap_or(usize::MAX);
                    state.overloads_seen = state.overloads_seen.max(count);
                    if refusals > 0 {
                        let total = state.in_flight;
                        let climb = state.climb.as_mut().expect("made at the start of the run");
                        climb.overloaded(Instant::now(), total, refusals);
                        tracing::debug!(limit = climb.limit, "server overloaded; fewer parts in flight");
                        shared.publish(&state);
                    }
                }
                Some((part, took, hedged, result, place)) = in_flight.next(), if !in_flight.is_empty() => {
                    // A hedged part took as long as one connection's straggle: the link said
                    // nothing.
                    if result.is_ok() && !hedged {
                        let mut state = shared.lock();
                        let climb = state.climb.as_mut().expect("made at the start of the run");
                        climb.sample(Instant::now(), part.size, took.as_secs_f64());
                        tracing::trace!(
                            limit = climb.limit,
                            part = part.number,
                            took_ms = took.as_millis() as u64,
                            "adaptive concurrency"
                        );
                        shared.publish(&state);
                    }
                    drop(place);
                    result?;
                }
                () = &mut room, if waiting => {}
            }
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
    async fn the_slow_start_grows_until_parts_slow_down() {
        // Parts take their 100 ms up to 16 in flight (8, 12 each buy more); past it, crowding costs.
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
        // Started below the link's 3 (the default 8 is above it already): it finds 3 and does not
        // climb much past it, since every part past 3 takes longer.
        let adaptive = Adaptive::new(64).starting_at(2);
        let link = link(3);
        adaptive.run(parts(400), &link).await.unwrap();
        let reached = adaptive.current();
        assert!(reached <= 8, "{reached}");
    }

    /// The first moment `link` had at least `parts` in flight, watching it while `run` runs.
    async fn first_reached(link: &Link, parts: usize, run: impl Future<Output = ()>) -> Duration {
        let started = Instant::now();
        let watch = async {
            while link.now.load(Ordering::SeqCst) < parts {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            started.elapsed()
        };
        let (reached, ()) = tokio::join!(watch, run);
        reached
    }

    #[tokio::test(start_paused = true)]
    async fn on_a_long_fat_link_it_reaches_the_knee_within_two_part_times() {
        // 16 parts fill the link; an upload of 64 parts of 100 ms cannot afford a slow climb.
        let adaptive = Adaptive::new(32);
        let link = link(16);
        let run = async { adaptive.run(parts(64), &link).await.unwrap() };
        let reached = first_reached(&link, 16, run).await;
        assert!(reached <= Duration::from_millis(250), "{reached:?}");
        // Past the knee parts slow down and growth stops well short of the maximum.
        let peak = link.peak.load(Ordering::SeqCst);
        assert!((16..=24).contains(&peak), "{peak}");
    }

    #[tokio::test(start_paused = true)]
    async fn on_a_thin_link_it_stops_before_a_ceiling_just_above_saturation() {
        // The link carries 10 parts at full speed; a server would refuse a 13th. The slow start's
        // growth by half a round goes 8 -> 12, where parts take 1.2 times as long: it stops there.
        let adaptive = Adaptive::new(32);
        let link = link(10);
        adaptive.run(parts(200), &link).await.unwrap();
        let peak = link.peak.load(Ordering::SeqCst);
        assert!((10..=12).contains(&peak), "{peak}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hedged_part_is_no_congestion_sample() {
        use crate::{HedgePolicy, Hedged};
        // Part 30 crawls for a minute on its first attempt; the hedge after 1 s wins. Without
        // hedging noted, its 1.1 s against the usual 100 ms would halve the limit.
        struct OneStraggler(AtomicUsize);
        #[async_trait::async_trait]
        impl PartRunner for OneStraggler {
            async fn run_part(&self, part: PartSpec) -> Result<(), Error> {
                let first_try_of_30 =
                    part.number == 30 && self.0.fetch_add(1, Ordering::SeqCst) == 0;
                let took = if first_try_of_30 { 60_000 } else { 100 };
                tokio::time::sleep(Duration::from_millis(took)).await;
                Ok(())
            }
        }
        let adaptive = Adaptive::new(4).starting_at(4);
        let hedged = Hedged::new(adaptive.clone())
            .policy(HedgePolicy::default().floor(Duration::from_secs(1)));
        hedged
            .run(parts(60), &OneStraggler(AtomicUsize::new(0)))
            .await
            .unwrap();
        assert_eq!(hedged.stats().won(), 1);
        assert_eq!(adaptive.current(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn it_never_passes_its_maximum() {
        let adaptive = Adaptive::new(5);
        let link = link(100);
        adaptive.run(parts(300), &link).await.unwrap();
        assert_eq!(adaptive.current(), 5);
        assert_eq!(link.peak.load(Ordering::SeqCst), 5);
    }

    /// A server behind `link` that refuses a request past `ceiling` in flight, as the mock's
    /// `--max-inflight` does: the refused request's body is read first (one part time, not counted
    /// in flight), the refusal raises the signal as a `CongestionWatch` would, and the part is
    /// retried after `backoff`, as the retry layer does.
    struct Ceiling {
        link: Link,
        ceiling: usize,
        signal: CongestionSignal,
        backoff: Duration,
        refused: AtomicUsize,
    }

    impl Ceiling {
        fn new(link: Link, ceiling: usize, backoff: Duration) -> Self {
            Self {
                link,
                ceiling,
                signal: CongestionSignal::new(),
                backoff,
                refused: AtomicUsize::new(0),
            }
        }

        fn refused(&self) -> usize {
            self.refused.load(Ordering::SeqCst)
        }
    }

    #[async_trait::async_trait]
    impl PartRunner for Ceiling {
        async fn run_part(&self, part: PartSpec) -> Result<(), Error> {
            while self.link.now.load(Ordering::SeqCst) >= self.ceiling {
                self.refused.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(self.link.latency).await;
                self.signal.raise();
                tokio::time::sleep(self.backoff).await;
            }
            self.link.run_part(part).await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_ceiling_where_the_link_fills_costs_a_short_upload_nothing_and_a_long_one_a_refusal()
    {
        // Shape b of the benchmark: parts take their 100 ms up to 11 in flight and 12/11 of it at
        // 12, where the server's ceiling is. The round at 12 is slower, though by less than the
        // tolerance: the link is filling, and one more part is tried only after eight such rounds.
        // A 64-part upload is over before that; a 256-part one pays the step to 13 once.
        for (parts_in_upload, refusals) in [(64, 0), (256, 1)] {
            let server = Ceiling::new(link(11), 12, Duration::from_millis(100));
            let adaptive = Adaptive::new(32).listening_to(server.signal.clone());
            adaptive.run(parts(parts_in_upload), &server).await.unwrap();
            assert_eq!(server.refused(), refusals, "{parts_in_upload} parts");
            assert!(server.link.peak.load(Ordering::SeqCst) <= 12);
            let settled = adaptive.current();
            assert!(
                (11..=12).contains(&settled),
                "{parts_in_upload} parts: {settled}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_upload_probes_a_ceiling_rarely() {
        // 2,000 parts at about 12 per 110 ms round: some 170 rounds. The ceiling holds 64 rounds,
        // then a probe is refused again and holds 128: a few refusals in 2,000 requests.
        let server = Ceiling::new(link(11), 12, Duration::from_millis(100));
        let adaptive = Adaptive::new(32).listening_to(server.signal.clone());
        adaptive.run(parts(2000), &server).await.unwrap();
        let refused = server.refused();
        assert!((1..=4).contains(&refused), "{refused}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_ceiling_on_a_link_that_gives_no_sign_costs_the_last_step_once() {
        // Parts take their 100 ms right up to the ceiling of 12: nothing but a refusal says where
        // it is, and the slow start's step from 12 to 18 is refused six times. The ceiling it
        // learns is the 12 the server took, so the climb back stops there for the rest.
        let server = Ceiling::new(link(12), 12, Duration::from_millis(100));
        let adaptive = Adaptive::new(32).listening_to(server.signal.clone());
        adaptive.run(parts(256), &server).await.unwrap();
        assert_eq!(server.refused(), 6);
        assert_eq!(adaptive.current(), 12);
    }

    #[tokio::test(start_paused = true)]
    async fn refused_retries_do_not_cascade() {
        // Retries 1 ms after a refusal are refused again and again while the server is full: many
        // refusals of the same few parts. They answer one overshoot: the limit is halved once
        // and comes back to the ceiling, not down to 1.
        let server = Ceiling::new(link(11), 12, Duration::from_millis(1));
        let adaptive = Adaptive::new(32).listening_to(server.signal.clone());
        adaptive.run(parts(256), &server).await.unwrap();
        assert!(server.refused() > 1, "the retries raced");
        let settled = adaptive.current();
        assert!((11..=12).contains(&settled), "{settled}");
    }

    #[tokio::test(start_paused = true)]
    async fn files_uploaded_together_share_one_limit() {
        // Four files of 64 parts at once, as a batch sends them, behind a ceiling of 12: one
        // limit for all of them finds it as one file does. Four climbs of their own would start
        // 32 parts at once and be refused over and over.
        let server = Ceiling::new(link(11), 12, Duration::from_millis(100));
        let adaptive = Adaptive::new(32).listening_to(server.signal.clone());
        let files = (0..4).map(|_| adaptive.run(parts(64), &server));
        for sent in futures::future::join_all(files).await {
            sent.unwrap();
        }
        assert!(server.refused() <= 2, "{}", server.refused());
        assert!(server.link.peak.load(Ordering::SeqCst) <= 13);
        let settled = adaptive.current();
        assert!((10..=12).contains(&settled), "{settled}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_upload_gives_its_places_back_to_the_others() {
        // Part 3 of one file fails while its other parts are in flight: that run stops and drops
        // them, and their places go to the other file, which then runs at the whole limit.
        struct FailsPart3;
        #[async_trait::async_trait]
        impl PartRunner for FailsPart3 {
            async fn run_part(&self, part: PartSpec) -> Result<(), Error> {
                tokio::time::sleep(Duration::from_millis(if part.number == 3 {
                    50
                } else {
                    100
                }))
                .await;
                if part.number == 3 {
                    return Err(Error::config("part 3 cannot be sent"));
                }
                Ok(())
            }
        }
        let adaptive = Adaptive::new(8).starting_at(8);
        let link = link(64);
        let (failed, sent) = tokio::join!(
            adaptive.run(parts(100), &FailsPart3),
            adaptive.run(parts(40), &link)
        );
        assert!(failed.is_err());
        sent.unwrap();
        assert_eq!(
            adaptive.shared.lock().in_flight,
            0,
            "every place given back"
        );
        assert_eq!(
            link.peak.load(Ordering::SeqCst),
            8,
            "the other file took them all"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_heard_by_every_file_halves_the_limit_once() {
        // Four files wait on the same congestion signal; one 503 is one overload, whichever run
        // hears it first.
        let signal = CongestionSignal::new();
        let adaptive = Adaptive::new(16)
            .starting_at(16)
            .listening_to(signal.clone());
        let link = link(64);
        let refuse = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            signal.raise();
        };
        let files = futures::future::join_all((0..4).map(|_| adaptive.run(parts(4), &link)));
        let (sent, ()) = tokio::join!(files, refuse);
        assert!(sent.into_iter().all(|sent| sent.is_ok()));
        let state = adaptive.shared.lock();
        let climb = state.climb.as_ref().expect("the runs made it");
        assert_eq!(climb.limit, 8.0);
        // One refusal of the 16 in flight: the server took 15. Heard as four, it would be 12.
        assert_eq!(climb.ceiling.map(|(ceiling, _)| ceiling), Some(15.0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_upload_starts_from_what_the_link_was_found_to_carry() {
        let adaptive = Adaptive::new(64);
        let first = link(24);
        adaptive.run(parts(300), &first).await.unwrap();
        let learnt = adaptive.current();
        assert!(learnt >= 16, "{learnt}");
        let again = link(24);
        let run = async { adaptive.run(parts(64), &again).await.unwrap() };
        let reached = first_reached(&again, learnt, run).await;
        // The watch looks every millisecond: all of them went out at once.
        assert!(reached <= Duration::from_millis(1), "{reached:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn small_files_put_whole_and_big_files_parts_are_judged_apart() {
        // A part takes 10 ms of round trip plus 100 ms per MiB: a 4 KiB file's time per byte is
        // 25 times a 1 MiB part's, which a single usual would take for trouble every time.
        struct RoundTrip;
        #[async_trait::async_trait]
        impl PartRunner for RoundTrip {
            async fn run_part(&self, part: PartSpec) -> Result<(), Error> {
                let millis = 10.0 + 100.0 * part.size as f64 / f64::from(1 << 20);
                tokio::time::sleep(Duration::from_secs_f64(millis / 1000.0)).await;
                Ok(())
            }
        }
        let adaptive = Adaptive::new(32);
        let big = adaptive.run(parts(200), &RoundTrip);
        let small = async {
            for _ in 0..400 {
                let file = PartSpec {
                    number: 1,
                    offset: 0,
                    size: 4 << 10,
                };
                adaptive.run(vec![file], &RoundTrip).await.unwrap();
            }
        };
        let (big, ()) = tokio::join!(big, small);
        big.unwrap();
        assert_eq!(adaptive.current(), 32, "nothing crowds this link");
    }

    #[test]
    fn a_wave_of_refusals_sets_the_ceiling_at_the_parts_the_server_took() {
        let start = Instant::now();
        let mut climb = Climb::new(12, 64, start);
        // A step by half to 18 crosses a ceiling of 12: six refusals come back, all with 18 in
        // flight, then two of the retries are refused again.
        climb.limit = 18.0;
        climb.last_step = 6;
        for i in 0..8 {
            climb.overloaded(start + Duration::from_millis(10 * i), 18, 1);
        }
        assert_eq!(climb.ceiling.map(|(ceiling, _)| ceiling), Some(12.0));
        assert_eq!(climb.limit, 9.0, "halved once");
        // The same six heard at once (the signal counted them before the scheduler woke).
        let mut climb = Climb::new(12, 64, start);
        climb.limit = 18.0;
        climb.last_step = 6;
        climb.overloaded(start, 18, 6);
        assert_eq!(climb.ceiling.map(|(ceiling, _)| ceiling), Some(12.0));
        // A step of one part refused, and its retry refused again: the ceiling is one below.
        let mut climb = Climb::new(12, 64, start);
        climb.limit = 13.0;
        climb.last_step = 1;
        climb.overloaded(start, 13, 1);
        climb.overloaded(start + Duration::from_millis(50), 13, 1);
        assert_eq!(climb.ceiling.map(|(ceiling, _)| ceiling), Some(12.0));
    }

    #[test]
    fn a_probe_refused_again_holds_the_ceiling_twice_as_long() {
        let start = Instant::now();
        let mut climb = Climb::new(13, 64, start);
        climb.overloaded(start, 13, 1);
        assert_eq!(climb.ceiling, Some((12.0, CEILING_ROUNDS)));
        // The ceiling expires; the climb probes 13 again and is refused again.
        climb.ceiling = None;
        climb.draining = None;
        climb.limit = 13.0;
        climb.overloaded(start + Duration::from_secs(10), 13, 1);
        assert_eq!(climb.ceiling, Some((12.0, 2 * CEILING_ROUNDS)));
        // A probe that the server took lifts nothing here; one refused higher up starts afresh.
        climb.ceiling = None;
        climb.draining = None;
        climb.limit = 20.0;
        climb.overloaded(start + Duration::from_secs(20), 20, 1);
        assert_eq!(climb.ceiling, Some((19.0, CEILING_ROUNDS)));
    }

    #[test]
    fn an_overload_answer_halves_the_limit_once_per_round() {
        let start = Instant::now();
        let mut climb = Climb::new(16, 64, start);
        climb.overloaded(start + Duration::from_millis(10), 16, 1);
        assert_eq!(climb.limit, 8.0);
        assert!(!climb.slow_start);
        // More refusals of the parts already in flight: the same round, no second cut.
        climb.overloaded(start + Duration::from_millis(20), 16, 1);
        assert_eq!(climb.limit, 8.0);
    }

    #[test]
    fn after_a_refusal_it_climbs_back_quickly_but_not_past_where_it_was_refused() {
        let start = Instant::now();
        let mut climb = Climb::new(8, 64, start);
        // Refused with 13 parts in flight: halved, and 12 is the ceiling for a while.
        climb.overloaded(start, 13, 1);
        assert_eq!(climb.limit, 4.0);
        let mut now = start;
        for _ in 0..6 {
            // A round of uncrowded parts, each 100 ms.
            now += Duration::from_millis(100);
            for _ in 0..climb.in_flight().div_ceil(2) {
                climb.sample(now, 1 << 20, 0.1);
            }
        }
        // 4 -> 6 -> 9 -> 12 by half a round (as quick as the slow start), then held at 12.
        assert_eq!(climb.limit, 12.0);
    }

    #[test]
    fn past_the_slow_start_one_quick_round_is_not_enough_to_grow() {
        let start = Instant::now();
        let mut climb = Climb::new(12, 64, start);
        let mut now = start;
        // One round of parts: 12 in flight, the first half of them back after `took` seconds.
        let mut round = |climb: &mut Climb, took: f64| {
            now += Duration::from_secs_f64(took);
            for _ in 0..climb.in_flight() / 2 {
                climb.sample(now, 1 << 20, took);
            }
        };
        round(&mut climb, 0.100);
        assert_eq!(climb.limit, 18.0, "the slow start grew by half");
        // 6 % slower: the link fills; the slow start ends and the limit stays.
        round(&mut climb, 0.106);
        assert!(!climb.slow_start);
        assert_eq!(climb.limit, 18.0);
        // One round as quick as the base may be chance: nothing yet.
        round(&mut climb, 0.100);
        assert_eq!(climb.limit, 18.0);
        // A second in a row: one more part.
        round(&mut climb, 0.100);
        assert_eq!(climb.limit, 19.0);
        // Filling again: one more part only after eight such rounds in a row.
        for _ in 0..7 {
            round(&mut climb, 0.106);
        }
        assert_eq!(climb.limit, 19.0);
        round(&mut climb, 0.106);
        assert_eq!(climb.limit, 20.0);
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
