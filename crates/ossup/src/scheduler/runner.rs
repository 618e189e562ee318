//! [`PartRunner`]: the engine's side of the scheduler contract.

use std::sync::{Mutex, PoisonError};

use crate::Error;

use super::{PartScheduler, PartSpec};

/// Sends one part: reads its range of the source, hashes it (MD5 and CRC-64 in one pass), uploads
/// it, verifies the answer, and starts recording it in the checkpoint.
///
/// The engine implements this; a [`PartScheduler`](super::PartScheduler) calls it.
#[async_trait::async_trait]
pub trait PartRunner: Send + Sync {
    /// Sends `part`; resolves once the server acknowledged it and its answer is verified.
    ///
    /// The part's checkpoint record commits alongside the next parts (so a durable store's flush
    /// does not hold the slot) and its progress is reported once it has; the engine waits for every
    /// record before it completes the upload. When too many records are pending, this waits for
    /// one to finish before it resolves.
    async fn run_part(&self, part: PartSpec) -> Result<(), Error>;
}

/// Sends one request as a run of one part through `scheduler` and returns what `send` made: a file
/// put whole, or one part of a stream. The request takes its place in flight as any part does, so
/// a scheduler whose limit is shared by its runs ([`Adaptive`](crate::Adaptive)) counts it.
pub(crate) async fn run_as_one_part<T, F, Fut>(
    scheduler: &dyn PartScheduler,
    part: PartSpec,
    send: F,
) -> Result<T, Error>
where
    T: Send,
    F: Fn(PartSpec) -> Fut + Send + Sync,
    Fut: Future<Output = Result<T, Error>> + Send,
{
    let runner = OnePart {
        send,
        made: Mutex::new(None),
    };
    scheduler.run(vec![part], &runner).await?;
    let made = runner.made.into_inner();
    made.unwrap_or_else(PoisonError::into_inner).ok_or_else(|| {
        Error::config(format!(
            "the scheduler {scheduler:?} finished without sending part {}",
            part.number
        ))
    })
}

/// The runner of [`run_as_one_part`]: keeps what the last successful send made.
struct OnePart<F, T> {
    send: F,
    made: Mutex<Option<T>>,
}

#[async_trait::async_trait]
impl<F, Fut, T> PartRunner for OnePart<F, T>
where
    T: Send,
    F: Fn(PartSpec) -> Fut + Send + Sync,
    Fut: Future<Output = Result<T, Error>> + Send,
{
    async fn run_part(&self, part: PartSpec) -> Result<(), Error> {
        let made = (self.send)(part).await?;
        *self.made.lock().unwrap_or_else(PoisonError::into_inner) = Some(made);
        Ok(())
    }
}
