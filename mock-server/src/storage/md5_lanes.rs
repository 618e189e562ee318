//! MD5 of every body being received, computed together in SIMD lanes on one thread of its own.
//!
//! The mock must compute each part's MD5 for its ETag, as OSS does, and one MD5 stream cannot go
//! faster than its chain of 64-byte blocks allows (~750 MB/s on the machine measured, where
//! `md5_compress` was half of the mock's CPU). Independent streams can share the lanes of one SIMD
//! register instead: `md5-many` hashes 8 streams in AVX2 lanes or 16 in AVX-512 lanes for about the
//! cost of one or two. [`Md5Lanes`] gathers the pending batches of every body being received, as
//! minio's `md5-simd` server gathers blocks from its hashers, and steps them through the lanes
//! together; each body's [`Md5State`] travels with its batch and is handed back when the batch is
//! hashed.
//!
//! Gathering: each body being hashed here holds an [`Md5Body`] from its first batch until it is
//! received, so the thread knows how many there are. A round starts with the first batch to arrive
//! and waits for a batch from every other body, but no longer than [`GATHER`]: each body has one
//! batch hashed while it receives the next, so a wait shorter than the time a batch takes to arrive
//! holds nobody back, and without it the thread, once faster than the bodies, would take each batch
//! alone on the single-stream path. A body's last batch is different: its client waits for the
//! answer, so a round holding one waits no more. A batch that arrives while others are being hashed
//! joins them at the next step (at most [`STEP`] bytes a lane).
//!
//! Lanes advance in lockstep: each step feeds every lane the same whole number of 64-byte blocks,
//! which is what the crate's fast path takes. Frames are cut anywhere by the network, so a lane whose
//! next block spans two frames (or whose frame ends in less than a block) completes it through the
//! state's own 64-byte buffer first, on the single-stream path: one block per frame boundary. A lone
//! body is hashed by `md5-many`'s single-stream code.
//!
//! The thread is not tokio's blocking pool: a test on a paused tokio clock whose bodies span
//! several batches sees the clock auto-advance while a batch is hashed here, where a task on the
//! blocking pool would hold it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};
use std::{io, thread};

use bytes::Bytes;
use md5_many::Md5Many;
pub(crate) use md5_many::Md5State;
use tokio::sync::oneshot;

/// At most this many bytes a lane per step, so that a batch arriving meanwhile waits for no more
/// than one step (16 lanes × 64 KiB: about 0.2 ms) before it joins.
const STEP: usize = 64 * 1024;

/// Lanes stepped together at most: AVX-512's 16 lanes of 32 bits.
const MAX_GROUP: usize = 16;

/// How long a round waits for a batch from every body being received. A 1 MiB batch arriving at
/// 150 MB/s (a quarter of what loopback carries to a busy mock) takes about 7 ms to gather.
const GATHER: Duration = Duration::from_millis(2);

/// The MD5 thread's handle: cheap to clone, the thread ends when the last clone is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Md5Lanes {
    queue: mpsc::Sender<Message>,
    /// Bodies being received: how many batches a round waits for.
    bodies: Arc<AtomicUsize>,
}

/// One body hashed on the MD5 thread, counted from [`Md5Lanes::body`] until it is dropped.
#[derive(Debug)]
pub(crate) struct Md5Body(Md5Lanes);

/// What the MD5 thread is sent.
enum Message {
    /// A batch to hash.
    Batch(Job),
    /// A body is no longer received: a round waiting for its batch stops waiting.
    Closed,
}

/// A batch being hashed: resolves to its body's MD5 state with the batch's bytes added.
#[derive(Debug)]
pub(crate) struct Pending(oneshot::Receiver<Md5State>);

impl Pending {
    /// Waits for the batch to be hashed and takes the state back.
    pub(crate) async fn wait(self) -> io::Result<Md5State> {
        self.0
            .await
            .map_err(|_| io::Error::other("the MD5 thread stopped before hashing a batch"))
    }
}

impl Md5Lanes {
    /// Starts the MD5 thread, with the widest SIMD level this CPU offers.
    pub(crate) fn start() -> io::Result<Self> {
        let (queue, messages) = mpsc::channel();
        let bodies = Arc::new(AtomicUsize::new(0));
        let engine = Md5Many::new();
        let counted = Arc::clone(&bodies);
        thread::Builder::new()
            .name("oss-mock-md5".into())
            .spawn(move || run(engine, &messages, &counted))
            .map_err(|e| io::Error::other(format!("starting the MD5 thread failed: {e}")))?;
        Ok(Self { queue, bodies })
    }

    /// Counts one more body being received until the returned handle is dropped; its batches are
    /// hashed through the handle.
    pub(crate) fn body(&self) -> Md5Body {
        self.bodies.fetch_add(1, Ordering::AcqRel);
        Md5Body(self.clone())
    }
}

impl Md5Body {
    /// Adds `frames`, in order, to this body's MD5 `state`, among the batches of every other body
    /// being received; more of this body is still to come.
    pub(crate) fn hash(&self, state: Md5State, frames: Vec<Bytes>) -> Pending {
        self.send(state, frames, false)
    }

    /// Adds the body's last `frames` to its MD5 `state`: the client waits for this one, so it
    /// waits for no other body's batch.
    pub(crate) fn hash_last(&self, state: Md5State, frames: Vec<Bytes>) -> Pending {
        self.send(state, frames, true)
    }

    fn send(&self, state: Md5State, frames: Vec<Bytes>, last: bool) -> Pending {
        let (done, pending) = oneshot::channel();
        let job = Job {
            state,
            frames,
            frame: 0,
            offset: 0,
            last,
            done,
        };
        // A send fails only if the thread is gone; the dropped job then fails `Pending::wait`.
        let _ = self.0.queue.send(Message::Batch(job));
        Pending(pending)
    }
}

impl Drop for Md5Body {
    fn drop(&mut self) {
        self.0.bodies.fetch_sub(1, Ordering::AcqRel);
        let _ = self.0.queue.send(Message::Closed);
    }
}

/// One body's batch on the MD5 thread: its state and how far into the frames it has got.
struct Job {
    state: Md5State,
    frames: Vec<Bytes>,
    frame: usize,
    offset: usize,
    /// The body's last batch: a client is waiting for it.
    last: bool,
    done: oneshot::Sender<Md5State>,
}

impl Job {
    /// What is left of the current frame.
    fn rest(&self) -> &[u8] {
        self.frames
            .get(self.frame)
            .map_or(&[][..], |f| &f[self.offset..])
    }

    fn advance(&mut self, len: usize) {
        self.offset += len;
        if self.offset == self.frames[self.frame].len() {
            self.frame += 1;
            self.offset = 0;
        }
    }

    fn is_done(&self) -> bool {
        self.frame == self.frames.len()
    }

    /// Brings the state to a block boundary at a point where the current frame holds at least one
    /// whole block; returns how many whole-block bytes (at most [`STEP`]) the frame then offers,
    /// 0 once the batch is done.
    fn align(&mut self) -> usize {
        loop {
            while !self.is_done() && self.rest().is_empty() {
                self.frame += 1;
                self.offset = 0;
            }
            if self.is_done() {
                return 0;
            }
            let buffered = (self.state.bytes_hashed() % 64) as usize;
            let rest = self.rest().len();
            if buffered != 0 || rest < 64 {
                let take = if buffered != 0 { 64 - buffered } else { rest }.min(rest);
                self.state
                    .update(&self.frames[self.frame][self.offset..self.offset + take]);
                self.advance(take);
                continue;
            }
            return (rest / 64 * 64).min(STEP);
        }
    }
}

/// The MD5 thread: gathers batches into rounds, hashes them together, hands each state back when
/// its batch is done; returns when every [`Md5Lanes`] is dropped and no batch is left.
fn run(engine: Md5Many, messages: &mpsc::Receiver<Message>, bodies: &AtomicUsize) {
    let mut jobs: Vec<Job> = Vec::new();
    let take = |message, jobs: &mut Vec<Job>| {
        if let Message::Batch(job) = message {
            jobs.push(job);
        }
    };
    loop {
        if jobs.is_empty() {
            match messages.recv() {
                Ok(message) => take(message, &mut jobs),
                Err(mpsc::RecvError) => return,
            }
            let deadline = Instant::now() + GATHER;
            while !gathered(&jobs, bodies.load(Ordering::Acquire)) {
                let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                    break;
                };
                match messages.recv_timeout(left) {
                    Ok(message) => take(message, &mut jobs),
                    Err(_) => break,
                }
            }
        }
        for message in messages.try_iter() {
            take(message, &mut jobs);
        }
        step(engine, &mut jobs);
        let mut i = 0;
        while i < jobs.len() {
            if jobs[i].is_done() {
                let job = jobs.swap_remove(i);
                // The receiving task may be gone (its client disconnected): nothing to hand back.
                let _ = job.done.send(job.state);
            } else {
                i += 1;
            }
        }
    }
}

/// Whether a round has waited enough: it holds a batch of every body being received (`bodies`), or
/// a body's last batch, or nothing at all (the batch that started it was only a wake-up).
fn gathered(jobs: &[Job], bodies: usize) -> bool {
    jobs.is_empty() || jobs.len() >= bodies || jobs.iter().any(|job| job.last)
}

/// Moves every batch forward by up to [`STEP`] bytes: aligned, then stepped in groups of lanes.
fn step(engine: Md5Many, jobs: &mut [Job]) {
    let mut ready: Vec<(usize, usize)> = jobs
        .iter_mut()
        .enumerate()
        .filter_map(|(i, job)| Some((i, job.align())).filter(|&(_, len)| len > 0))
        .collect();
    if let [(i, len)] = ready[..] {
        let job = &mut jobs[i];
        job.state
            .update(&job.frames[job.frame][job.offset..job.offset + len]);
        job.advance(len);
        return;
    }
    // The longest runs first, so a group's lanes are cut to the shortest of similar lengths.
    ready.sort_unstable_by_key(|&(_, len)| std::cmp::Reverse(len));
    for group in ready.chunks(MAX_GROUP) {
        step_group(engine, jobs, group);
    }
}

/// Feeds every lane of `group` (job index, whole-block bytes ready) the same number of blocks, the
/// fewest any of them has, in one lockstep call.
fn step_group(engine: Md5Many, jobs: &mut [Job], group: &[(usize, usize)]) {
    let len = group.iter().map(|&(_, len)| len).min().unwrap_or(0);
    // The crate's lockstep kernels take 8 (AVX2) or 16 (AVX-512) lanes; lanes without a body hash a
    // copy of the first lane's bytes into scratch states and cost what an idle lane would.
    let width = if group.len() <= 8 { 8 } else { MAX_GROUP };
    let mut states = [Md5State::new(); MAX_GROUP];
    let mut inputs: [&[u8]; MAX_GROUP] = [&[]; MAX_GROUP];
    for (lane, &(i, _)) in group.iter().enumerate() {
        states[lane] = jobs[i].state;
        inputs[lane] = &jobs[i].rest()[..len];
    }
    for lane in group.len()..width {
        inputs[lane] = inputs[0];
    }
    engine.update_many(&mut states[..width], &inputs[..width]);
    for (lane, &(i, _)) in group.iter().enumerate() {
        jobs[i].state = states[lane];
        jobs[i].advance(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use ossup_proto::checksum::md5;
    use proptest::prelude::*;
    use proptest::test_runner::RngSeed;
    use rand::{Rng, RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `len` bytes from `seed`, cut into frames of random sizes (empty ones included) as a network
    /// would cut them, then into `batches` batches of frames.
    fn random_body(seed: u64, len: usize, batches: usize) -> (Vec<u8>, Vec<Vec<Bytes>>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut data = vec![0; len];
        rng.fill_bytes(&mut data);
        let mut frames = Vec::new();
        let mut at = 0;
        while at < len {
            let frame = match rng.gen_range(0..10) {
                0 => 0,
                1..4 => rng.gen_range(1..130),
                _ => rng.gen_range(1..70_000),
            }
            .min(len - at);
            frames.push(Bytes::copy_from_slice(&data[at..at + frame]));
            at += frame;
        }
        let per = frames.len().div_ceil(batches).max(1);
        (data, frames.chunks(per).map(<[Bytes]>::to_vec).collect())
    }

    fn job(state: Md5State, frames: Vec<Bytes>) -> (Job, oneshot::Receiver<Md5State>) {
        let (done, receiver) = oneshot::channel();
        let job = Job {
            state,
            frames,
            frame: 0,
            offset: 0,
            last: false,
            done,
        };
        (job, receiver)
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 48,
            rng_seed: RngSeed::Fixed(0x6d64_355f_6c61_6e65),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Every body's batch at once through the steps the MD5 thread takes (groups of 1 to 16
        /// lanes and more than one group), each batch's state carried to the body's next batch.
        #[test]
        fn bodies_stepped_together_hash_as_md5_does(
            bodies in proptest::collection::vec((any::<u64>(), 0usize..300_000, 1usize..5), 1..40)
        ) {
            let engine = Md5Many::new();
            let (datas, mut batches): (Vec<_>, Vec<_>) = bodies
                .iter()
                .map(|&(seed, len, cuts)| random_body(seed, len, cuts))
                .unzip();
            let mut states = vec![Md5State::new(); bodies.len()];
            while batches.iter().any(|b| !b.is_empty()) {
                let mut jobs = Vec::new();
                let mut owners = Vec::new();
                for (n, body) in batches.iter_mut().enumerate().filter(|(_, b)| !b.is_empty()) {
                    jobs.push(job(states[n], body.remove(0)).0);
                    owners.push(n);
                }
                while jobs.iter().any(|j| !j.is_done()) {
                    step(engine, &mut jobs);
                }
                for (job, n) in jobs.into_iter().zip(owners) {
                    states[n] = job.state;
                }
            }
            for (n, data) in datas.iter().enumerate() {
                prop_assert_eq!(states[n].bytes_hashed(), data.len() as u64);
                prop_assert_eq!(states[n].finalize(), md5(data), "body {} of {}", n, datas.len());
            }
        }
    }

    #[tokio::test]
    async fn bodies_sent_to_the_thread_at_once_come_back_hashed() {
        let lanes = Md5Lanes::start().unwrap();
        for bodies in [1, 3, 12, 33] {
            let handles: Vec<Md5Body> = (0..bodies).map(|_| lanes.body()).collect();
            let (datas, mut batches): (Vec<_>, Vec<_>) = (0..bodies)
                .map(|n| random_body(n, 100_000 + 7_919 * n as usize, 3))
                .unzip();
            let mut states = vec![Md5State::new(); bodies as usize];
            while batches.iter().any(|b| !b.is_empty()) {
                let pending: Vec<(usize, Pending)> = batches
                    .iter_mut()
                    .enumerate()
                    .filter(|(_, b)| !b.is_empty())
                    .map(|(n, b)| (n, handles[n].hash(states[n], b.remove(0))))
                    .collect();
                for (n, p) in pending {
                    states[n] = p.wait().await.unwrap();
                }
            }
            for (n, data) in datas.iter().enumerate() {
                assert_eq!(states[n].finalize(), md5(data), "body {n} of {bodies}");
            }
        }
    }

    #[tokio::test]
    async fn empty_batches_and_frames_leave_the_state_as_it_was() {
        let body = Md5Lanes::start().unwrap().body();
        let mut state = Md5State::new();
        state.update(b"abc");
        let state = body.hash(state, Vec::new()).wait().await.unwrap();
        let state = body
            .hash(state, vec![Bytes::new(), Bytes::new()])
            .wait()
            .await
            .unwrap();
        assert_eq!(state.finalize(), md5(b"abc"));
    }

    #[test]
    fn a_round_waits_for_every_body_unless_it_holds_a_last_batch() {
        let batch = |last| Job {
            last,
            ..job(Md5State::new(), vec![Bytes::from_static(b"x")]).0
        };
        assert!(gathered(&[], 3));
        assert!(!gathered(&[batch(false)], 3));
        assert!(!gathered(&[batch(false), batch(false)], 3));
        assert!(gathered(&[batch(false), batch(false), batch(false)], 3));
        assert!(gathered(&[batch(false), batch(true)], 3));
        assert!(gathered(&[batch(true)], 1));
        assert!(gathered(&[batch(false)], 1));
        // A body that closed after its batch was sent leaves the count below the batches held.
        assert!(gathered(&[batch(false), batch(false)], 1));
    }

    #[test]
    fn a_batch_whose_body_is_gone_is_hashed_and_dropped_while_the_others_come_back() {
        let engine = Md5Many::new();
        let (gone, receiver) = job(Md5State::new(), vec![Bytes::from(vec![1; 5_000])]);
        drop(receiver);
        let (kept, receiver) = job(Md5State::new(), vec![Bytes::from(vec![2; 5_000])]);
        let (queue, messages) = mpsc::channel();
        queue.send(Message::Batch(gone)).unwrap();
        queue.send(Message::Batch(kept)).unwrap();
        drop(queue);
        run(engine, &messages, &AtomicUsize::new(2));
        assert_eq!(
            receiver.blocking_recv().unwrap().finalize(),
            md5(&[2; 5_000])
        );
    }
}
