//! Group commit: many tasks' small writes share one durable flush.
//!
//! Recording a part must be durable before `record_part` returns, and a flush to stable storage costs
//! milliseconds. When parts finish concurrently, their records wait for the same flush instead of one
//! flush each: the first caller starts a writer on a blocking thread; callers arriving while it works
//! join the next batch. Every caller still returns only after its own record was committed, so the
//! durability contract holds, and a lone caller pays one flush, as without batching.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::StoreError;

/// The function that commits one batch: it gets the items in arrival order and returns one result per
/// item, in the same order.
type CommitFn<T> = dyn Fn(Vec<T>) -> Vec<Result<(), StoreError>> + Send + Sync;

/// The longest the writer waits for the callers of its last batch to come back with their next item.
const MAX_PATIENCE: Duration = Duration::from_millis(2);
/// The shortest such wait: about what a woken task needs to come back, so a caller recording one item
/// after another keeps the writer (no new blocking task per item).
const MIN_PATIENCE: Duration = Duration::from_micros(50);

/// Batches concurrent writes so they share one commit, for stores whose commit (an `fsync`, a database
/// transaction) costs far more than the write itself.
///
/// The commit function runs on tokio's blocking thread pool, never on an async worker thread, one batch
/// at a time. After a commit, the writer waits up to half that commit's duration (50 µs to 2 ms) for
/// as many items as the batch had: callers that record one item after another come back with their
/// next one and share the next commit, instead of each commit carrying whoever happened to be
/// queued. Cloning gives another handle on the same queue.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use ossup::store::GroupCommit;
///
/// # #[tokio::main] async fn main() {
/// let committed = Arc::new(Mutex::new(Vec::new()));
/// let sink = committed.clone();
/// let commits = GroupCommit::new(move |batch: Vec<u32>| {
///     let n = batch.len();
///     sink.lock().unwrap().extend(batch); // a real store writes and syncs here
///     (0..n).map(|_| Ok(())).collect()
/// });
/// let tasks: Vec<_> = (0..8u32)
///     .map(|i| {
///         let commits = commits.clone();
///         tokio::spawn(async move { commits.submit(i).await })
///     })
///     .collect();
/// for task in tasks {
///     task.await.unwrap().unwrap();
/// }
/// assert_eq!(committed.lock().unwrap().len(), 8);
/// # }
/// ```
pub struct GroupCommit<T> {
    queue: Arc<Queue<T>>,
    commit: Arc<CommitFn<T>>,
}

type Waiting<T> = Vec<(T, oneshot::Sender<Result<(), StoreError>>)>;

struct Queue<T> {
    state: Mutex<QueueState<T>>,
    arrived: Condvar,
    max_batch: usize,
}

struct QueueState<T> {
    waiting: Waiting<T>,
    writer_running: bool,
}

impl<T: Send + 'static> GroupCommit<T> {
    /// A queue whose batches are committed by `commit`, at most 1024 items per batch.
    pub fn new(
        commit: impl Fn(Vec<T>) -> Vec<Result<(), StoreError>> + Send + Sync + 'static,
    ) -> Self {
        Self::with_max_batch(1024, commit)
    }

    /// A queue committing at most `max_batch` items (at least 1) per call of `commit`.
    pub fn with_max_batch(
        max_batch: usize,
        commit: impl Fn(Vec<T>) -> Vec<Result<(), StoreError>> + Send + Sync + 'static,
    ) -> Self {
        Self {
            queue: Arc::new(Queue {
                state: Mutex::new(QueueState {
                    waiting: Vec::new(),
                    writer_running: false,
                }),
                arrived: Condvar::new(),
                max_batch: max_batch.max(1),
            }),
            commit: Arc::new(commit),
        }
    }

    /// Queues `item` and waits until the batch holding it has been committed; returns that item's
    /// result.
    ///
    /// Dropping the returned future does not withdraw the item: it is committed all the same, as long
    /// as a handle on this queue is alive.
    pub async fn submit(&self, item: T) -> Result<(), StoreError> {
        self.submit_all(vec![item]).await
    }

    /// Queues every item of `items` at once, so they go into the same batch (up to the batch
    /// limit), and waits until all of them have been committed; returns the first error, if any.
    ///
    /// Dropping the returned future does not withdraw the items, as with [`submit`](Self::submit).
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use ossup::store::GroupCommit;
    ///
    /// # #[tokio::main] async fn main() {
    /// let batches = Arc::new(Mutex::new(Vec::new()));
    /// let sink = batches.clone();
    /// let commits = GroupCommit::new(move |batch: Vec<u32>| {
    ///     let n = batch.len();
    ///     sink.lock().unwrap().push(batch);
    ///     (0..n).map(|_| Ok(())).collect()
    /// });
    /// commits.submit_all(vec![1, 2, 3]).await.unwrap();
    /// assert_eq!(*batches.lock().unwrap(), vec![vec![1, 2, 3]]);
    /// # }
    /// ```
    pub async fn submit_all(&self, items: Vec<T>) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut receivers = Vec::with_capacity(items.len());
        let start_writer = {
            let mut state = self.queue.lock();
            for item in items {
                let (sender, receiver) = oneshot::channel();
                state.waiting.push((item, sender));
                receivers.push(receiver);
            }
            !std::mem::replace(&mut state.writer_running, true)
        };
        if start_writer {
            let queue = self.queue.clone();
            let commit = Arc::downgrade(&self.commit);
            tokio::task::spawn_blocking(move || write_batches(&queue, &commit));
        } else {
            self.queue.arrived.notify_one();
        }
        let mut first_error = None;
        for receiver in receivers {
            let result = receiver.await.unwrap_or_else(|_| {
                Err(StoreError::Other(
                    "the checkpoint writer stopped before committing this record".into(),
                ))
            });
            if let Err(error) = result {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl<T> Queue<T> {
    fn lock(&self) -> MutexGuard<'_, QueueState<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next batch: waits up to `patience` for `expected` items, then takes what is there; `None`
    /// (and the writer marked stopped) when nothing is.
    fn next_batch(&self, expected: usize, patience: Duration) -> Option<Waiting<T>> {
        let mut state = self.lock();
        if state.waiting.len() < expected && !patience.is_zero() {
            let deadline = Instant::now() + patience;
            while state.waiting.len() < expected {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                state = self
                    .arrived
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        if state.waiting.is_empty() {
            state.writer_running = false;
            return None;
        }
        let take = state.waiting.len().min(self.max_batch);
        Some(state.waiting.drain(..take).collect())
    }
}

/// Commits batches until the queue stays empty, then lets the next caller start a new writer.
///
/// Holds the commit function (and so the store behind it) only while committing, so a store whose
/// last handle drops right after its last record returns is really closed.
fn write_batches<T>(queue: &Queue<T>, commit: &Weak<CommitFn<T>>) {
    let mut expected = 0;
    let mut patience = Duration::ZERO;
    while let Some(batch) = queue.next_batch(expected, patience) {
        let (items, senders): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
        let count = items.len();
        let started = Instant::now();
        let results = match commit.upgrade() {
            Some(commit) => run_commit(&*commit, items),
            None => failures(
                count,
                "the checkpoint store was dropped before this record was committed",
            ),
        };
        expected = count;
        patience = (started.elapsed() / 2).clamp(MIN_PATIENCE, MAX_PATIENCE);
        deliver(senders, results);
    }
}

fn run_commit<T>(commit: &CommitFn<T>, items: Vec<T>) -> Vec<Result<(), StoreError>> {
    let count = items.len();
    let results =
        std::panic::catch_unwind(AssertUnwindSafe(|| commit(items))).unwrap_or_else(|_| {
            failures(
                count,
                "the checkpoint writer panicked while committing this record",
            )
        });
    debug_assert_eq!(results.len(), count, "one result per committed item");
    results
}

fn failures(count: usize, why: &str) -> Vec<Result<(), StoreError>> {
    (0..count)
        .map(|_| Err(StoreError::Other(why.to_string())))
        .collect()
}

fn deliver(
    senders: Vec<oneshot::Sender<Result<(), StoreError>>>,
    results: Vec<Result<(), StoreError>>,
) {
    let mut results = results.into_iter();
    for sender in senders {
        let result = results.next().unwrap_or_else(|| {
            Err(StoreError::Other(
                "the checkpoint writer returned no result for this record".into(),
            ))
        });
        // The caller may have stopped waiting; the record is committed regardless.
        let _ = sender.send(result);
    }
}

impl<T> Clone for GroupCommit<T> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            commit: self.commit.clone(),
        }
    }
}

impl<T> std::fmt::Debug for GroupCommit<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.queue.lock();
        f.debug_struct("GroupCommit")
            .field("waiting", &state.waiting.len())
            .field("writer_running", &state.writer_running)
            .field("max_batch", &self.queue.max_batch)
            .finish()
    }
}

/// A copy of `error` for each of the other callers whose records shared the failed commit.
///
/// `StoreError` holds an `io::Error`, which is not `Clone`; the copy keeps its kind and message.
pub fn replicate_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::Corrupt {
            location,
            reason,
            set_aside_to,
        } => StoreError::Corrupt {
            location: location.clone(),
            reason: reason.clone(),
            set_aside_to: set_aside_to.clone(),
        },
        StoreError::UnsupportedVersion {
            location,
            found,
            supported,
        } => StoreError::UnsupportedVersion {
            location: location.clone(),
            found: *found,
            supported: *supported,
        },
        StoreError::InUse { identity, holder } => StoreError::InUse {
            identity: identity.clone(),
            holder: holder.clone(),
        },
        StoreError::NotPrivate {
            location,
            problem,
            fix,
        } => StoreError::NotPrivate {
            location: location.clone(),
            problem: problem.clone(),
            fix: fix.clone(),
        },
        StoreError::NotFound(identity) => StoreError::NotFound(identity.clone()),
        StoreError::CannotCooperate { store } => StoreError::CannotCooperate {
            store: store.clone(),
        },
        StoreError::Io { location, source } => StoreError::Io {
            location: location.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        StoreError::Other(message) => StoreError::Other(message.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_submissions_share_commits_and_all_get_their_result() {
        let commits = Arc::new(AtomicUsize::new(0));
        let counter = commits.clone();
        let queue = GroupCommit::new(move |batch: Vec<u32>| {
            counter.fetch_add(1, Ordering::SeqCst);
            // Slow commits are what make batches form.
            std::thread::sleep(Duration::from_millis(5));
            batch
                .into_iter()
                .map(|n| {
                    if n % 7 == 0 {
                        Err(StoreError::NotFound(n.to_string()))
                    } else {
                        Ok(())
                    }
                })
                .collect()
        });
        let tasks: Vec<_> = (1..=200u32)
            .map(|n| {
                let queue = queue.clone();
                tokio::spawn(async move { (n, queue.submit(n).await) })
            })
            .collect();
        for task in tasks {
            let (n, result) = task.await.unwrap();
            match result {
                Err(StoreError::NotFound(which)) => {
                    assert_eq!(n % 7, 0);
                    assert_eq!(which, n.to_string());
                }
                Ok(()) => assert_ne!(n % 7, 0),
                other => panic!("{other:?}"),
            }
        }
        assert!(commits.load(Ordering::SeqCst) < 200);
    }

    #[tokio::test]
    async fn a_panicking_commit_fails_its_batch_and_the_queue_keeps_working() {
        let queue = GroupCommit::new(|batch: Vec<bool>| {
            assert!(!batch.contains(&true), "commit refuses");
            batch.into_iter().map(|_| Ok(())).collect()
        });
        assert!(matches!(
            queue.submit(true).await,
            Err(StoreError::Other(message)) if message.contains("panicked")
        ));
        queue.submit(false).await.unwrap();
    }

    #[test]
    fn a_replicated_io_error_keeps_kind_location_and_message() {
        let original = StoreError::Io {
            location: "/x".into(),
            source: std::io::Error::new(std::io::ErrorKind::StorageFull, "disk full"),
        };
        let copy = replicate_error(&original);
        assert_eq!(copy.to_string(), original.to_string());
        assert!(
            matches!(copy, StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull)
        );
    }
}
