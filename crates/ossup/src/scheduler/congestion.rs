//! The server's "slow down" carried to the scheduler: a [`CongestionWatch`] transport counts the
//! answers that say the server or a gateway is overloaded (`503`, `429`), and an
//! [`Adaptive`](crate::Adaptive) scheduler listening to the same [`CongestionSignal`] halves its
//! limit at once. Without it the scheduler sees such answers only as slow parts (the retry layer
//! waits and tries again inside the part), which is too late to keep from crowding a server past
//! its ceiling.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::{Error, ResponseBody, Transport};

/// A count of overload answers, shared by the transport that sees them and the scheduler that acts
/// on them. Clones share the count.
///
/// ```
/// use ossup::CongestionSignal;
/// let signal = CongestionSignal::new();
/// let seen_by_scheduler = signal.clone();
/// signal.raise();
/// assert_eq!(seen_by_scheduler.count(), 1);
/// ```
#[derive(Debug, Clone, Default)]
pub struct CongestionSignal(Arc<Count>);

/// The count, and the scheduler waiting for it to move.
#[derive(Debug, Default)]
struct Count {
    raised: AtomicU64,
    changed: Notify,
}

impl CongestionSignal {
    /// A signal raised no times yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one overload answer.
    pub fn raise(&self) {
        self.0.raised.fetch_add(1, Ordering::Release);
        self.0.changed.notify_waiters();
    }

    /// How many overload answers were counted so far.
    pub fn count(&self) -> u64 {
        self.0.raised.load(Ordering::Acquire)
    }

    /// Waits until the count is past `seen`, and returns it: a scheduler hears of a refusal the
    /// moment it comes, not when its next part finishes, and starts no more parts meanwhile.
    pub(crate) async fn raised_past(&self, seen: u64) -> u64 {
        loop {
            let changed = self.0.changed.notified();
            let mut changed = std::pin::pin!(changed);
            // Registered before the count is read, so a raise in between is not missed.
            changed.as_mut().enable();
            let count = self.count();
            if count > seen {
                return count;
            }
            changed.await;
        }
    }
}

/// A [`Transport`] that raises a [`CongestionSignal`] on every `503 Service Unavailable` (OSS's
/// `SlowDown`, a gateway's overload) and `429 Too Many Requests` it receives, then hands the
/// answer on unchanged (the retry layer above still retries it).
///
/// ```
/// use ossup::{CongestionSignal, CongestionWatch};
/// # #[derive(Debug)] struct MyTransport;
/// # #[async_trait::async_trait]
/// # impl ossup::Transport for MyTransport {
/// #     async fn send(&self, _: http::Request<bytes::Bytes>) -> Result<http::Response<ossup::ResponseBody>, ossup::Error> { unimplemented!() }
/// #     fn reports_progress(&self) -> bool { false }
/// # }
/// let signal = CongestionSignal::new();
/// let watched = CongestionWatch::new(MyTransport, signal.clone());
/// assert_eq!(watched.signal().count(), 0);
/// ```
#[derive(Debug)]
pub struct CongestionWatch<T> {
    inner: T,
    signal: CongestionSignal,
}

impl<T> CongestionWatch<T> {
    /// `inner`, its overload answers counted in `signal`.
    pub fn new(inner: T, signal: CongestionSignal) -> Self {
        Self { inner, signal }
    }

    /// The signal it raises.
    pub fn signal(&self) -> &CongestionSignal {
        &self.signal
    }
}

#[async_trait::async_trait]
impl<T: Transport> Transport for CongestionWatch<T> {
    async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<ResponseBody>, Error> {
        let response = self.inner.send(request).await?;
        let status = response.status();
        if status == http::StatusCode::SERVICE_UNAVAILABLE
            || status == http::StatusCode::TOO_MANY_REQUESTS
        {
            self.signal.raise();
        }
        Ok(response)
    }

    fn reports_progress(&self) -> bool {
        self.inner.reports_progress()
    }

    fn paces_bodies(&self) -> bool {
        self.inner.paces_bodies()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_waiting_scheduler_hears_of_a_raise_at_once() {
        let signal = CongestionSignal::new();
        let raiser = signal.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            raiser.raise();
        });
        let started = tokio::time::Instant::now();
        assert_eq!(signal.raised_past(0).await, 1);
        assert_eq!(started.elapsed(), Duration::from_millis(30));
        // Already past: no wait.
        assert_eq!(signal.raised_past(0).await, 1);
    }
}
