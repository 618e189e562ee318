//! How long one attempt may take, apart from whether a failed one is tried again: the attempt
//! timeout, the stall timeout (no byte of the request body moving), and the response-header timeout
//! (once the body is sent).

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::RetryConfig;
use crate::{Error, ResponseBody, TransferProgress, Transport};

/// How often the stall watchdog looks at the upload's progress.
const STALL_CHECK_PERIOD: Duration = Duration::from_millis(250);

/// The limits one attempt runs under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// The most one whole attempt may take.
    pub(crate) attempt: Duration,
    /// The most to wait for response headers once the request body is sent.
    pub(crate) response: Duration,
    /// The most a request or response body may go without moving a byte.
    pub(crate) stall: Duration,
}

impl From<&RetryConfig> for Timeouts {
    fn from(config: &RetryConfig) -> Self {
        Self {
            attempt: config.attempt_timeout,
            response: config.response_timeout,
            stall: config.stall_timeout,
        }
    }
}

impl Timeouts {
    /// Sends `request` through `inner`, watching it: gives up (with a retryable timeout error) when
    /// the attempt timeout passes, when the body stops moving for the stall timeout, or when the
    /// headers do not come within the response timeout of the body being sent. Returns the answer
    /// and the attempt's deadline, which reading the answer's body must also keep.
    pub(crate) async fn send<T: Transport>(
        &self,
        inner: &T,
        mut request: http::Request<Bytes>,
    ) -> (Result<http::Response<ResponseBody>, Error>, Instant) {
        let body_len = request.body().len() as u64;
        // The counter the retry layer put on this attempt, or one of our own.
        let progress = match request.extensions().get::<TransferProgress>() {
            Some(progress) => progress.clone(),
            None => {
                let progress = TransferProgress::new();
                request.extensions_mut().insert(progress.clone());
                progress
            }
        };
        let send = inner.send(request);
        tokio::pin!(send);

        let started = Instant::now();
        let deadline = started + self.attempt;
        let mut last_sent = 0u64;
        let mut last_change = started;
        let mut body_done_at: Option<Instant> = (body_len == 0).then_some(started);
        let reports_progress = inner.reports_progress();
        let mut ticker = tokio::time::interval(STALL_CHECK_PERIOD);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        let result = loop {
            tokio::select! {
                result = &mut send => break result,
                _ = tokio::time::sleep_until(deadline) => {
                    break Err(Error::timeout(format!(
                        "no answer within the attempt timeout of {:?}", self.attempt
                    )));
                }
                _ = ticker.tick() => {
                    let now = Instant::now();
                    let sent = progress.sent();
                    if sent != last_sent {
                        last_sent = sent;
                        last_change = now;
                    }
                    if body_done_at.is_none() && sent >= body_len {
                        body_done_at = Some(now);
                    }
                    match body_done_at {
                        // A transport that reports no progress is judged by the attempt timeout;
                        // one that does and has not sent a byte is held before the body (a
                        // connection that never came, a pool that never handed one out).
                        None if (sent > 0 || reports_progress)
                            && now - last_change >= self.stall =>
                        {
                            break Err(Error::timeout(format!(
                                "upload stalled: {sent} of {body_len} bytes sent, none for {:?}",
                                self.stall
                            )));
                        }
                        Some(done) if now - done >= self.response => {
                            break Err(Error::timeout(format!(
                                "no response headers within {:?} of sending the request",
                                self.response
                            )));
                        }
                        _ => {}
                    }
                }
            }
        };
        (result, deadline)
    }
}
