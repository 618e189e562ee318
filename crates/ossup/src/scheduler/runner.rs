//! [`PartRunner`]: the engine's side of the scheduler contract.

use crate::Error;

use super::PartSpec;

/// Sends one part: reads its range of the source, hashes it (MD5 and CRC-64 in one pass), uploads
/// it, verifies the answer, records it in the checkpoint and reports progress.
///
/// The engine implements this; a [`PartScheduler`](super::PartScheduler) calls it.
#[async_trait::async_trait]
pub trait PartRunner: Send + Sync {
    /// Sends `part`; resolves once the server acknowledged it and it is recorded.
    async fn run_part(&self, part: PartSpec) -> Result<(), Error>;
}
