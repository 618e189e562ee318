//! The [`PartScheduler`] trait: which parts go when, and how many at once.
//!
//! The engine hands a scheduler the parts still to send and a [`PartRunner`] that sends one part
//! (read, hash, upload, verify; the checkpoint record follows without holding the slot). The scheduler only decides order and concurrency, so a
//! rate-limited or prioritised scheduler needs no change to the engine, and cannot weaken its
//! guarantees: part buffers come from a pool sized by [`PartScheduler::concurrency`], whatever the
//! scheduler does.
//!
//! [`Sequential`], [`Parallel`] and [`Adaptive`] ship, and [`Hedged`] wraps any of them to send a
//! straggling part a second time.

mod adaptive;
mod congestion;
mod hedged;
mod parallel;
mod runner;
mod sequential;

pub use adaptive::Adaptive;
pub use congestion::{CongestionSignal, CongestionWatch};
pub use hedged::{HedgePolicy, HedgeStats, Hedged};
pub use parallel::Parallel;
pub use runner::PartRunner;
pub(crate) use runner::run_as_one_part;
pub use sequential::Sequential;

use std::fmt::Debug;
use std::sync::Arc;

use serde::Serialize;

use crate::Error;

/// One part of an upload: its number and the range of the source it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PartSpec {
    /// The part number, 1..=10000.
    pub number: u32,
    /// The offset of the part's first byte in the source.
    pub offset: u64,
    /// The part's size in bytes.
    pub size: u64,
}

/// Decides which parts are sent when, and how many at once.
///
/// [`run`](Self::run) must call [`PartRunner::run_part`] for every part it is given (once each; a
/// part sent twice is harmless but wasted) and return the first error it sees, promptly: dropping
/// the other in-flight calls is the right way to stop them. The engine checks that every part was
/// sent before it completes the upload. The `testkit` feature's scheduler suite,
/// `testkit::run_scheduler_contract`, checks all of this.
///
/// Both methods are required: a wrapper around another scheduler must decide its concurrency (the
/// engine sizes its buffer pool from it) as well as its order. `Arc<S>` and `Box<S>` are schedulers
/// when `S` is.
///
/// ```
/// use ossup::{Error, PartRunner, PartScheduler, PartSpec};
///
/// /// Sends the last part first, one at a time.
/// #[derive(Debug)]
/// struct Backwards;
///
/// #[async_trait::async_trait]
/// impl PartScheduler for Backwards {
///     fn concurrency(&self) -> usize { 1 }
///     async fn run(&self, mut parts: Vec<PartSpec>, runner: &dyn PartRunner) -> Result<(), Error> {
///         parts.reverse();
///         for part in parts {
///             runner.run_part(part).await?;
///         }
///         Ok(())
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait PartScheduler: Send + Sync + Debug {
    /// The most parts this scheduler runs at once. The engine keeps at most this many part
    /// buffers, plus one, alive: a scheduler that runs more simply waits for buffers.
    fn concurrency(&self) -> usize;

    /// The most parts it runs at once right now, for progress displays: at most
    /// [`concurrency`](Self::concurrency), which it is unless the scheduler adjusts itself as it
    /// goes ([`Adaptive`] does). A wrapper forwards it.
    fn current_limit(&self) -> usize {
        self.concurrency()
    }

    /// Sends every part of `parts` (ascending by number) through `runner`.
    async fn run(&self, parts: Vec<PartSpec>, runner: &dyn PartRunner) -> Result<(), Error>;
}

/// Both methods go to the shared scheduler, so `Arc::new(scheduler)` can be handed to the engine and
/// kept elsewhere.
#[async_trait::async_trait]
impl<S: PartScheduler + ?Sized> PartScheduler for Arc<S> {
    fn concurrency(&self) -> usize {
        (**self).concurrency()
    }

    fn current_limit(&self) -> usize {
        (**self).current_limit()
    }

    async fn run(&self, parts: Vec<PartSpec>, runner: &dyn PartRunner) -> Result<(), Error> {
        (**self).run(parts, runner).await
    }
}

/// Both methods go to the boxed scheduler, so a `Box<dyn PartScheduler>` is a scheduler too.
#[async_trait::async_trait]
impl<S: PartScheduler + ?Sized> PartScheduler for Box<S> {
    fn concurrency(&self) -> usize {
        (**self).concurrency()
    }

    fn current_limit(&self) -> usize {
        (**self).current_limit()
    }

    async fn run(&self, parts: Vec<PartSpec>, runner: &dyn PartRunner) -> Result<(), Error> {
        (**self).run(parts, runner).await
    }
}
