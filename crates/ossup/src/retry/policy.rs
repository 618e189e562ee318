//! Whether to try a failed attempt again, and after how long: the [`RetryPolicy`] trait and the
//! stock [`DefaultRetryPolicy`].
//!
//! A policy only decides; the [retry layer](super::Retry) does the waiting, the timeouts and the
//! clock correction, so a policy of one's own cannot get those wrong.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::RetryConfig;
use crate::Error;

/// What a [`RetryPolicy`] says of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Send the request again, after the policy's [`delay`](RetryPolicy::delay).
    Retry,
    /// Give up: the caller gets this attempt's error answer, or its error.
    Stop,
}

/// Decides which failed attempts of a request are sent again, and how long to wait before each, in
/// the spirit of tower's `retry::Policy`.
///
/// The retry layer asks after every failed attempt: an error answer of OSS (as
/// [`Error::service`]), a transport error, a timeout or stall, a success answer whose document
/// was cut short. [`Error::is_retryable`] is the layer's own opinion: transient network failures, 5xx,
/// 408, 429, `RequestTimeout`, and `RequestTimeTooSkewed` only once the clock was corrected from the
/// server's time (an uncorrected skew would fail again the same way).
///
/// ```
/// use std::time::Duration;
/// use ossup::retry::{RetryDecision, RetryPolicy};
///
/// /// Fails fast: never sends a request twice.
/// #[derive(Debug)]
/// struct Never;
///
/// impl RetryPolicy for Never {
///     fn classify(&self, _error: &ossup::Error, _attempt: u32) -> RetryDecision {
///         RetryDecision::Stop
///     }
///     fn delay(&self, _attempt: u32) -> Duration {
///         Duration::ZERO
///     }
/// }
/// # let _ = ossup::Client::builder().retry_policy(Never);
/// ```
pub trait RetryPolicy: Send + Sync + Debug {
    /// Whether to send the request again after attempt `attempt` (from 1) failed with `error`.
    fn classify(&self, error: &Error, attempt: u32) -> RetryDecision;

    /// How long to wait after attempt `attempt` (from 1) failed, before the next one.
    fn delay(&self, attempt: u32) -> Duration;
}

impl<P: RetryPolicy + ?Sized> RetryPolicy for Arc<P> {
    fn classify(&self, error: &Error, attempt: u32) -> RetryDecision {
        (**self).classify(error, attempt)
    }

    fn delay(&self, attempt: u32) -> Duration {
        (**self).delay(attempt)
    }
}

impl<P: RetryPolicy + ?Sized> RetryPolicy for Box<P> {
    fn classify(&self, error: &Error, attempt: u32) -> RetryDecision {
        (**self).classify(error, attempt)
    }

    fn delay(&self, attempt: u32) -> Duration {
        (**self).delay(attempt)
    }
}

/// The stock policy: retries what [`Error::is_retryable`] calls transient, up to a number of
/// attempts, with full-jitter exponential backoff `random(0, min(base × 2ⁿ, max))` before retry `n`
/// (from 0). Its defaults, and how to change them, are [`RetryConfig`]'s.
///
/// ```
/// use std::time::Duration;
/// use ossup::retry::{DefaultRetryPolicy, RetryDecision, RetryPolicy};
/// let policy = DefaultRetryPolicy::default();
/// let refused = ossup::Error::timeout("no answer");
/// assert_eq!(policy.classify(&refused, 1), RetryDecision::Retry);
/// assert_eq!(policy.classify(&refused, 10), RetryDecision::Stop);
/// assert!(policy.delay(1) <= Duration::from_millis(200));
/// ```
#[derive(Debug, Clone)]
pub struct DefaultRetryPolicy {
    max_attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
}

impl Default for DefaultRetryPolicy {
    fn default() -> Self {
        Self::from(&RetryConfig::default())
    }
}

impl From<&RetryConfig> for DefaultRetryPolicy {
    fn from(config: &RetryConfig) -> Self {
        Self {
            max_attempts: config.max_attempts,
            base_delay: config.base_delay,
            max_delay: config.max_delay,
        }
    }
}

impl DefaultRetryPolicy {
    /// The largest delay before retry `retry` (0 for the first retry).
    pub fn delay_cap(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(30)).unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

impl RetryPolicy for DefaultRetryPolicy {
    fn classify(&self, error: &Error, attempt: u32) -> RetryDecision {
        if error.is_retryable() && attempt < self.max_attempts {
            RetryDecision::Retry
        } else {
            RetryDecision::Stop
        }
    }

    fn delay(&self, attempt: u32) -> Duration {
        let cap = self.delay_cap(attempt.saturating_sub(1));
        let nanos = cap.as_nanos().min(u64::MAX as u128) as u64;
        Duration::from_nanos(rand::thread_rng().gen_range(0..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServiceError;

    fn service(status: u16, code: &str) -> Error {
        Error::service(ServiceError::new(status, code, "m", "REQ", "H"))
    }

    #[test]
    fn the_default_policy_retries_transient_errors_until_the_last_attempt() {
        let policy = DefaultRetryPolicy::default();
        let transient = [
            service(503, "ServiceUnavailable"),
            service(500, "InternalError"),
            service(429, ""),
            service(408, ""),
            service(400, "RequestTimeout"),
            Error::timeout("stalled"),
            Error::connection(
                "reset",
                std::io::Error::from(std::io::ErrorKind::ConnectionReset),
            ),
        ];
        for error in &transient {
            for attempt in 1..10 {
                assert_eq!(
                    policy.classify(error, attempt),
                    RetryDecision::Retry,
                    "{error} at {attempt}"
                );
            }
            assert_eq!(policy.classify(error, 10), RetryDecision::Stop, "{error}");
        }
    }

    #[test]
    fn the_default_policy_never_retries_permanent_errors() {
        let policy = DefaultRetryPolicy::default();
        let permanent = [
            service(404, "NoSuchUpload"),
            service(403, "AccessDenied"),
            service(403, "SignatureDoesNotMatch"),
            service(400, "InvalidDigest"),
            Error::network_permanent("https is not supported"),
            Error::malformed_response("not XML"),
            // A skew the layer could not correct the clock for.
            service(403, "RequestTimeTooSkewed").set_retryable(false),
        ];
        for error in &permanent {
            assert_eq!(policy.classify(error, 1), RetryDecision::Stop, "{error}");
        }
    }

    #[test]
    fn the_default_policy_waits_a_full_jitter_delay_under_an_exponential_cap() {
        let policy = DefaultRetryPolicy::default();
        assert_eq!(policy.delay_cap(0), Duration::from_millis(200));
        assert_eq!(policy.delay_cap(3), Duration::from_millis(1600));
        assert_eq!(policy.delay_cap(20), Duration::from_secs(20));
        for attempt in 1..13 {
            assert!(policy.delay(attempt) <= policy.delay_cap(attempt - 1));
        }
        let config = RetryConfig::default()
            .max_attempts(3)
            .backoff(Duration::from_millis(10), Duration::from_millis(15));
        let policy = DefaultRetryPolicy::from(&config);
        assert_eq!(policy.delay_cap(1), Duration::from_millis(15));
        assert_eq!(
            policy.classify(&Error::timeout("t"), 3),
            RetryDecision::Stop
        );
    }
}
