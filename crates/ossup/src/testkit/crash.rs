//! Crash safety: a writer process killed with SIGKILL in the middle of recording parts leaves a store
//! that opens, holds every part it acknowledged, holds nothing it never attempted, and no torn record.
//!
//! The test binary plays both roles. The test calls [`CrashTest::run`]; in the parent it starts the
//! same binary again, filtered to the same test, with environment variables that make `run` act as
//! the writer: it claims the upload's lock, records parts from several tasks and prints one line per
//! attempt and per acknowledgement. The parent kills it after a seeded number of acknowledgements,
//! reopens the store, claims the lock (a dead holder must not keep it) and compares what is stored
//! with what was acknowledged and attempted. Then another round starts from that state.
//!
//! ```no_run
//! use std::path::PathBuf;
//! use std::sync::Arc;
//! use ossup::testkit::crash::CrashTest;
//! use ossup::{CheckpointStore, FileStore};
//!
//! #[tokio::test(flavor = "multi_thread")]
//! async fn file_store_keeps_acknowledged_parts_across_sigkill() {
//!     // The name must be the test's own, as `cargo test -- --exact` matches it.
//!     CrashTest::new("file_store_keeps_acknowledged_parts_across_sigkill")
//!         .run(|dir: PathBuf| async move {
//!             Arc::new(FileStore::open(dir).unwrap()) as Arc<dyn CheckpointStore>
//!         })
//!         .await;
//! }
//! ```

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::{SplitMix, sample};
use crate::checkpoint::{Checkpoint, PartRecord, UploadIdentity};
use crate::store::CheckpointStore;

/// Set in the writer process: the directory its store lives in.
pub const WRITER_DIR_ENV: &str = "OSSUP_TESTKIT_CRASH_DIR";
const WRITER_ROUND_ENV: &str = "OSSUP_TESTKIT_CRASH_ROUND";
const WRITER_SEED_ENV: &str = "OSSUP_TESTKIT_CRASH_SEED";
const WRITER_TASKS_ENV: &str = "OSSUP_TESTKIT_CRASH_TASKS";
const LINE_PREFIX: &str = "ossup-crash-writer";
/// Part numbers the writer draws from; later rounds overwrite parts of earlier ones.
const PART_NUMBERS: u32 = 2_000;
/// Parts each round plans to record.
const PARTS_PER_ROUND: usize = 1_500;
/// How long one round may take before the harness gives up on the writer.
const ROUND_TIMEOUT: Duration = Duration::from_secs(120);

/// A crash-safety check of one durable store; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct CrashTest {
    test_name: String,
    rounds: u32,
    seed: u64,
    max_acks_before_kill: u32,
    writer_tasks: u32,
}

impl CrashTest {
    /// A check run from the test named `test_name` (its full path within the test binary, as
    /// `--exact` matches it), with 4 rounds, 8 writer tasks and a kill after 0 to 400
    /// acknowledgements.
    pub fn new(test_name: impl Into<String>) -> Self {
        Self {
            test_name: test_name.into(),
            rounds: 4,
            seed: 0xC4A5_5AFE,
            max_acks_before_kill: 400,
            writer_tasks: 8,
        }
    }

    /// How many times to start a writer and kill it.
    pub fn rounds(mut self, rounds: u32) -> Self {
        self.rounds = rounds.max(1);
        self
    }

    /// The seed of the parts written and of the moments of the kills.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The most acknowledgements the parent waits for before killing the writer.
    pub fn max_acks_before_kill(mut self, acks: u32) -> Self {
        self.max_acks_before_kill = acks;
        self
    }

    /// How many tasks in the writer record parts at once.
    pub fn writer_tasks(mut self, tasks: u32) -> Self {
        self.writer_tasks = tasks.max(1);
        self
    }

    /// Runs the check with stores opened by `open` on a directory (the harness's temporary directory in
    /// the parent, the same directory in the writer). Panics on any violation.
    ///
    /// Needs a multi-threaded tokio runtime (`#[tokio::test(flavor = "multi_thread")]`). In the writer
    /// process this never returns: the process exits when its work is done or is killed first.
    pub async fn run<O, F>(self, open: O)
    where
        O: Fn(PathBuf) -> F,
        F: Future<Output = Arc<dyn CheckpointStore>>,
    {
        if let Some(dir) = std::env::var_os(WRITER_DIR_ENV) {
            let round = env_number(WRITER_ROUND_ENV);
            let seed = env_number(WRITER_SEED_ENV);
            let tasks = env_number(WRITER_TASKS_ENV) as u32;
            let store = open(PathBuf::from(dir)).await;
            write_until_killed(store, seed, round as u32, tasks).await;
            std::process::exit(0);
        }
        self.supervise(open).await;
    }

    async fn supervise<O, F>(self, open: O)
    where
        O: Fn(PathBuf) -> F,
        F: Future<Output = Arc<dyn CheckpointStore>>,
    {
        let dir = tempfile::tempdir().expect("a temporary directory for the crash test");
        let identity = crash_identity();
        {
            let store = open(dir.path().to_path_buf()).await;
            store
                .save(&base_checkpoint())
                .await
                .expect("saving the checkpoint the writers record into");
        }
        let mut stored: BTreeMap<u32, PartRecord> = BTreeMap::new();
        let mut kills = SplitMix::new(self.seed ^ 0x4B11);
        let mut acknowledged_total = 0usize;
        for round in 0..self.rounds {
            let kill_after = kills.below(u64::from(self.max_acks_before_kill) + 1) as usize;
            let seen = self.run_writer(&dir, round, kill_after).await;
            acknowledged_total += seen.acknowledged.len();

            let store = open(dir.path().to_path_buf()).await;
            let lock = store.lock(&identity).await.unwrap_or_else(|err| {
                panic!("round {round}: the killed writer still holds the upload: {err}")
            });
            let loaded = store
                .load(&identity)
                .await
                .unwrap_or_else(|err| {
                    panic!("round {round}: reopening after SIGKILL failed: {err}")
                })
                .unwrap_or_else(|| panic!("round {round}: the checkpoint vanished after SIGKILL"));
            check_round(
                round,
                self.seed,
                &base_checkpoint(),
                &stored,
                &seen,
                &loaded,
            );
            eprintln!(
                "crash round {round}: killed after {} acknowledgements ({} attempted); the reopened store holds {} parts",
                seen.acknowledged.len(),
                seen.attempted.len(),
                loaded.parts.len()
            );
            stored = loaded.parts;
            drop(lock);
        }
        assert!(
            acknowledged_total > 0,
            "no writer acknowledged any part in {} rounds: the check proved nothing",
            self.rounds
        );
    }

    /// Starts a writer for `round` and kills it after `kill_after` acknowledgements; returns what it
    /// said before dying.
    async fn run_writer(&self, dir: &tempfile::TempDir, round: u32, kill_after: usize) -> Seen {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = tokio::process::Command::new(exe)
            .args([
                self.test_name.as_str(),
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(WRITER_DIR_ENV, dir.path())
            .env(WRITER_ROUND_ENV, round.to_string())
            .env(WRITER_SEED_ENV, self.seed.to_string())
            .env(WRITER_TASKS_ENV, self.writer_tasks.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("starting the writer process");
        let stdout = child.stdout.take().expect("the writer's stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = Seen::default();
        let mut killed = false;
        let reading = async {
            while let Some(line) = lines
                .next_line()
                .await
                .expect("reading the writer's output")
            {
                // The harness may print "test name ... " on the same line before the first event.
                let Some(at) = line.find(LINE_PREFIX) else {
                    continue;
                };
                let event = &line[at + LINE_PREFIX.len()..];
                let mut words = event.split_whitespace();
                match (
                    words.next(),
                    words.next().and_then(|n| n.parse::<u32>().ok()),
                ) {
                    (Some("locked"), _) => seen.locked = true,
                    (Some("attempt"), Some(number)) => {
                        seen.attempted.insert(number);
                    }
                    (Some("ack"), Some(number)) => {
                        seen.acknowledged.insert(number);
                    }
                    _ => panic!("unexpected line from the writer: {line}"),
                }
                // Keep reading after the kill: lines written before death are still in the pipe.
                if !killed && seen.locked && seen.acknowledged.len() >= kill_after {
                    child.start_kill().expect("sending SIGKILL to the writer");
                    killed = true;
                }
            }
        };
        if tokio::time::timeout(ROUND_TIMEOUT, reading).await.is_err() {
            let _ = child.start_kill();
            panic!("round {round}: the writer did not finish within {ROUND_TIMEOUT:?}");
        }
        // Reaped, so the process is gone (not a zombie) when the store checks whether it lives.
        let status = child.wait().await.expect("waiting for the writer");
        assert!(
            seen.locked,
            "round {round}: the writer never claimed the upload (exit status {status}); is `{}` this test's exact name?",
            self.test_name
        );
        if !killed {
            assert!(
                status.success(),
                "round {round}: the writer failed on its own: {status}"
            );
        }
        seen
    }
}

/// What the writer printed.
#[derive(Debug, Default)]
struct Seen {
    locked: bool,
    attempted: BTreeSet<u32>,
    acknowledged: BTreeSet<u32>,
}

fn env_number(name: &str) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("the crash writer needs {name}"))
}

fn crash_identity() -> UploadIdentity {
    sample::identity("crash")
}

fn base_checkpoint() -> Checkpoint {
    let mut checkpoint = sample::plain_checkpoint("crash", 0);
    checkpoint.upload_id = "crash-upload".into();
    checkpoint
}

/// The parts round `round` records, in order: the same in parent and writer.
fn plan(seed: u64, round: u32) -> Vec<PartRecord> {
    let mut rng = SplitMix::new(seed ^ u64::from(round).wrapping_mul(0x1000_0000_01B3));
    let mut numbers: Vec<u32> = (1..=PART_NUMBERS).collect();
    for i in (1..numbers.len()).rev() {
        numbers.swap(i, rng.below(i as u64 + 1) as usize);
    }
    numbers.truncate(PARTS_PER_ROUND);
    numbers
        .into_iter()
        .map(|number| planned_part(number, round))
        .collect()
}

fn planned_part(number: u32, round: u32) -> PartRecord {
    let mut part = sample::part(number, round as u8);
    part.etag = format!("\"round-{round}-part-{number}\"");
    part
}

async fn write_until_killed(store: Arc<dyn CheckpointStore>, seed: u64, round: u32, tasks: u32) {
    let identity = crash_identity();
    let lock = store
        .lock(&identity)
        .await
        .unwrap_or_else(|err| panic!("the crash writer could not claim the upload: {err}"));
    say(&format!("locked {}", std::process::id()));
    let queue = Arc::new(Mutex::new(VecDeque::from(plan(seed, round))));
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let store = store.clone();
        let queue = queue.clone();
        let identity = identity.clone();
        handles.push(tokio::spawn(async move {
            loop {
                let Some(part) = queue
                    .lock()
                    .expect("the part queue is never poisoned")
                    .pop_front()
                else {
                    return;
                };
                say(&format!("attempt {}", part.number));
                store
                    .record_part(&identity, &part)
                    .await
                    .unwrap_or_else(|err| panic!("the crash writer's record_part failed: {err}"));
                say(&format!("ack {}", part.number));
            }
        }));
    }
    for handle in handles {
        handle.await.expect("a crash writer task");
    }
    drop(lock);
}

/// One line on stdout, written and flushed at once, bypassing the test harness's capture.
fn say(event: &str) {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{LINE_PREFIX} {event}")
        .and_then(|()| stdout.flush())
        .expect("writing to the parent");
}

/// Checks a store reopened after round `round`'s kill against what that round acknowledged and
/// attempted, given what was stored before it.
fn check_round(
    round: u32,
    seed: u64,
    base: &Checkpoint,
    before: &BTreeMap<u32, PartRecord>,
    seen: &Seen,
    loaded: &Checkpoint,
) {
    let mut fixed = loaded.clone();
    fixed.parts = base.parts.clone();
    assert_eq!(
        &fixed, base,
        "round {round}: the checkpoint's fixed fields changed"
    );
    let planned: BTreeMap<u32, PartRecord> = plan(seed, round)
        .into_iter()
        .map(|part| (part.number, part))
        .collect();
    assert!(
        seen.acknowledged.is_subset(&seen.attempted),
        "round {round}: acknowledged without an attempt"
    );
    let numbers: BTreeSet<u32> = before
        .keys()
        .chain(loaded.parts.keys())
        .chain(seen.attempted.iter())
        .copied()
        .collect();
    for number in numbers {
        let now = loaded.parts.get(&number);
        let new = planned.get(&number);
        let old = before.get(&number);
        if seen.acknowledged.contains(&number) {
            assert_eq!(
                now, new,
                "round {round}: part {number} was acknowledged but is not stored as written"
            );
        } else if seen.attempted.contains(&number) {
            assert!(
                now == new || now == old,
                "round {round}: part {number} was attempted, not acknowledged, and is stored as {now:?}: neither the attempt {new:?} nor what was there before {old:?}"
            );
        } else {
            assert_eq!(
                now, old,
                "round {round}: part {number} was never attempted this round but changed"
            );
        }
    }
}
