//! [`Parallel`]: up to `n` parts at once, started in ascending order.

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;

use super::{PartRunner, PartScheduler, PartSpec};
use crate::Error;

/// Sends up to `n` parts at once, starting them in ascending order; stops at the first error,
/// dropping (and so cancelling) the parts still in flight.
///
/// ```
/// use ossup::{Parallel, PartScheduler};
/// assert_eq!(Parallel::new(4).concurrency(), 4);
/// assert_eq!(Parallel::new(0).concurrency(), 1);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Parallel {
    n: usize,
}

impl Parallel {
    /// Up to `n` parts at once (at least 1).
    pub fn new(n: usize) -> Self {
        Self { n: n.max(1) }
    }
}

impl Default for Parallel {
    /// Four parts at once: on two cores this already saturates MD5 and the network.
    fn default() -> Self {
        Self::new(4)
    }
}

#[async_trait::async_trait]
impl PartScheduler for Parallel {
    fn concurrency(&self) -> usize {
        self.n
    }

    async fn run(&self, parts: Vec<PartSpec>, runner: &dyn PartRunner) -> Result<(), Error> {
        let mut pending = parts.into_iter();
        let mut in_flight = FuturesUnordered::new();
        for part in pending.by_ref().take(self.n) {
            in_flight.push(runner.run_part(part));
        }
        while let Some(result) = in_flight.next().await {
            result?;
            if let Some(part) = pending.next() {
                in_flight.push(runner.run_part(part));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[derive(Default)]
    struct Counting {
        now: AtomicUsize,
        peak: AtomicUsize,
        seen: Mutex<Vec<u32>>,
        fail_on: Option<u32>,
    }

    #[async_trait::async_trait]
    impl PartRunner for Counting {
        async fn run_part(&self, part: PartSpec) -> Result<(), Error> {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            self.seen.lock().unwrap().push(part.number);
            if self.fail_on == Some(part.number) {
                return Err(Error::config("scripted failure"));
            }
            Ok(())
        }
    }

    fn parts(n: u32) -> Vec<PartSpec> {
        (1..=n)
            .map(|number| PartSpec {
                number,
                offset: 0,
                size: 1,
            })
            .collect()
    }

    #[tokio::test]
    async fn runs_every_part_with_at_most_n_in_flight() {
        let runner = Counting::default();
        Parallel::new(3).run(parts(10), &runner).await.unwrap();
        assert_eq!(runner.peak.load(Ordering::SeqCst), 3);
        let mut seen = runner.seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(seen, (1..=10).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn stops_at_the_first_error() {
        let runner = Counting {
            fail_on: Some(2),
            ..Default::default()
        };
        assert!(Parallel::new(2).run(parts(50), &runner).await.is_err());
        assert!(runner.seen.lock().unwrap().len() < 50);
    }
}
