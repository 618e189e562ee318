//! [`Sequential`]: one part at a time, in order.

use super::{PartRunner, PartScheduler, PartSpec};
use crate::Error;

/// Sends one part at a time, in ascending order. Uses the least memory (two part buffers).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sequential;

#[async_trait::async_trait]
impl PartScheduler for Sequential {
    fn concurrency(&self) -> usize {
        1
    }

    async fn run(&self, parts: Vec<PartSpec>, runner: &dyn PartRunner) -> Result<(), Error> {
        for part in parts {
            runner.run_part(part).await?;
        }
        Ok(())
    }
}
