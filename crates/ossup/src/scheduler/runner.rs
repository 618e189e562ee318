//! [`PartRunner`]: the engine's side of the scheduler contract.

use crate::Error;

use super::PartSpec;

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
