//! The retry layer: classified retries with exponential backoff and full jitter, a per-attempt
//! timeout, and stalled-transfer detection, wrapped around any [`Transport`].
//!
//! It sits outside the [signing layer](crate::signing), so each attempt is signed afresh, and it is
//! the only place in the crate that retries: the engine sees one call per request.
//!
//! Whether a failed attempt is tried again, and after how long, is a [`RetryPolicy`]'s decision
//! ([`DefaultRetryPolicy`] unless the client was given another). What the default retries
//! ([`is_retryable_service_error`] and [`Error::is_retryable`]): HTTP 5xx, 408, 429, OSS
//! `RequestTimeout`, connection refused/reset/closed, timeouts and stalls, a credentials provider's
//! transient failure, and `RequestTimeTooSkewed` once the [`Clock`] has been corrected from the
//! server's `<ServerTime>` (or, without one, its `Date`). Other 4xx answers are final. The timeouts
//! (attempt, stall, response headers) are the layer's own, apart from the policy.
//!
//! A request may ask for its whole exchange to be one attempt (a `ReadBody` in its extensions): the
//! success answer's body is then read, and judged, within the attempt, so an answer cut short is
//! retried like a lost one. The client asks this of the APIs that answer with a document
//! (InitiateMultipartUpload, ListParts, CompleteMultipartUpload, ListMultipartUploads).

mod policy;
mod timeouts;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ossup_proto::{Api, ErrorCode};
use tokio::time::Instant;

use crate::clock::{self, Clock};
use crate::wire::{self, ReadBody, clone_request};
use crate::{Error, ResponseBody, TransferProgress, Transport};

pub use policy::{DefaultRetryPolicy, RetryDecision, RetryPolicy};
use timeouts::Timeouts;

/// How many times to try, how long to wait between tries, and when to give up on one try.
///
/// The defaults suit long uploads over unreliable links: 10 attempts (the official SDKs make 3;
/// a 503 storm outlasts that, and a permanent error is never retried anyway), full-jitter backoff
/// `random(0, min(200 ms × 2ⁿ, 20 s))` as the newer SDKs, a stall timeout of 30 s without upload
/// progress, 120 s to wait for response headers once the request is sent, and 15 minutes for one
/// whole attempt.
///
/// ```
/// use std::time::Duration;
/// let config = ossup::RetryConfig::default()
///     .max_attempts(5)
///     .stall_timeout(Duration::from_secs(10));
/// assert_eq!(config.max_attempts_value(), 5);
/// ```
#[derive(Debug, Clone)]
pub struct RetryConfig {
    max_attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
    attempt_timeout: Duration,
    response_timeout: Duration,
    stall_timeout: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
            attempt_timeout: Duration::from_secs(15 * 60),
            response_timeout: Duration::from_secs(120),
            stall_timeout: Duration::from_secs(30),
        }
    }
}

impl RetryConfig {
    /// Tries each request at most `attempts` times (1 means no retry).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The backoff before retry `n` (from 0) is a random duration up to `min(base × 2ⁿ, max)`.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base_delay = base;
        self.max_delay = max.max(base);
        self
    }

    /// Gives up on one attempt after `timeout`, however it is going.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// Gives up on an attempt when the response headers do not come within `timeout` of the request
    /// being sent.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Gives up on an attempt whose request body or response body moves no byte for `timeout`.
    pub fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.stall_timeout = timeout;
        self
    }

    /// The configured attempt count.
    pub fn max_attempts_value(&self) -> u32 {
        self.max_attempts
    }

    /// The largest delay before retry `retry` (0 for the first retry).
    pub fn delay_cap(&self, retry: u32) -> Duration {
        self.policy().delay_cap(retry)
    }

    /// A full-jitter delay before retry `retry`: uniform in `0..=delay_cap(retry)`.
    pub fn jittered_delay(&self, retry: u32) -> Duration {
        self.policy().delay(retry + 1)
    }

    /// The retry policy these settings describe: attempts and backoff (the timeouts are the layer's,
    /// not the policy's).
    pub fn policy(&self) -> DefaultRetryPolicy {
        DefaultRetryPolicy::from(self)
    }
}

pub use ossup_transport::is_retryable_service_error;

/// What the retry layer tells an observer before it waits to try again.
#[derive(Debug)]
pub struct RetryNotice<'a> {
    /// The API being retried, when the request named it.
    pub api: Option<Api>,
    /// The attempt that failed, from 1.
    pub attempt: u32,
    /// How long the layer waits before the next attempt.
    pub delay: Duration,
    /// Why the attempt failed.
    pub error: &'a Error,
}

/// A callback the retry layer calls before each retry, put in a request's extensions by whoever wants
/// to hear about it (the engine turns it into [`ProgressEvent::Retrying`](crate::ProgressEvent)).
#[derive(Clone)]
pub struct RetryObserver {
    on_retry: Arc<dyn Fn(&RetryNotice<'_>) + Send + Sync>,
    on_attempt: Arc<dyn Fn(&TransferProgress) + Send + Sync>,
}

impl RetryObserver {
    /// An observer calling `f`.
    pub fn new(f: impl Fn(&RetryNotice<'_>) + Send + Sync + 'static) -> Self {
        Self {
            on_retry: Arc::new(f),
            on_attempt: Arc::new(|_| {}),
        }
    }

    /// Also hands `f` the body byte counter of each attempt as the attempt starts, so the caller
    /// can watch the body go out. Each attempt has a counter of its own, starting from zero.
    pub fn on_attempt(mut self, f: impl Fn(&TransferProgress) + Send + Sync + 'static) -> Self {
        self.on_attempt = Arc::new(f);
        self
    }

    fn notify(&self, notice: &RetryNotice<'_>) {
        (self.on_retry)(notice)
    }

    fn attempt_started(&self, progress: &TransferProgress) {
        (self.on_attempt)(progress)
    }
}

impl fmt::Debug for RetryObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RetryObserver")
    }
}

/// A transport that retries, times out and watches for stalls around an inner transport.
///
/// An HTTP error answer that is not worth retrying, or the last one when attempts run out, is
/// returned as a response (with its body buffered) for the caller to turn into an [`Error`]; a
/// transport error is returned as the error of the last attempt.
#[derive(Debug)]
pub struct Retry<T> {
    inner: T,
    policy: Arc<dyn RetryPolicy>,
    timeouts: Timeouts,
    clock: Option<Clock>,
}

impl<T> Retry<T> {
    /// Retries requests sent through `inner` as `config` says (its attempts and backoff as a
    /// [`DefaultRetryPolicy`], its timeouts).
    pub fn new(inner: T, config: RetryConfig) -> Self {
        Self {
            inner,
            policy: Arc::new(config.policy()),
            timeouts: Timeouts::from(&config),
            clock: None,
        }
    }

    /// Decides which failed attempts to try again, and when, by `policy` instead of the
    /// configuration's attempts and backoff; the timeouts stay.
    pub fn with_policy(mut self, policy: Arc<dyn RetryPolicy>) -> Self {
        self.policy = policy;
        self
    }

    /// Corrects `clock` (shared with the signing layer) when the server answers
    /// `RequestTimeTooSkewed`, and retries such answers.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }
}

/// One attempt's result: an answer to hand on, or a failure for the policy to judge (with the error
/// answer to hand on should it say stop).
enum Attempt {
    Done(http::Response<ResponseBody>),
    Failed {
        error: Error,
        response: Option<http::Response<ResponseBody>>,
    },
}

impl Attempt {
    fn failed(error: Error) -> Self {
        Self::Failed {
            error,
            response: None,
        }
    }
}

impl<T: Transport> Retry<T> {
    async fn attempt(&self, request: http::Request<Bytes>) -> Attempt {
        let read_body = request.extensions().get::<ReadBody>().cloned();
        // Each attempt counts its own body bytes; whoever observes the request hears of the counter.
        let progress = TransferProgress::new();
        if let Some(observer) = request.extensions().get::<RetryObserver>() {
            observer.attempt_started(&progress);
        }
        let mut request = request;
        request.extensions_mut().insert(progress);
        let (result, deadline) = self.timeouts.send(&self.inner, request).await;
        let response = match result {
            Ok(response) => response,
            Err(e) => return Attempt::failed(e),
        };
        let status = response.status();
        if status.is_success() || status.is_redirection() || status.is_informational() {
            let (parts, body) = response.into_parts();
            let body = body.with_idle_timeout(self.timeouts.stall);
            return match read_body {
                Some(read) if status.is_success() => {
                    self.read_whole(parts, body, &read, deadline).await
                }
                _ => Attempt::Done(http::Response::from_parts(parts, body)),
            };
        }

        // An error answer: buffer its (small) body so the code can be read here and by the caller.
        let (parts, body) = response.into_parts();
        let body = match body
            .with_idle_timeout(self.timeouts.stall)
            .collect(wire::ERROR_BODY_LIMIT)
            .await
        {
            Ok(body) => body,
            Err(e) if e.is_retryable() => return Attempt::failed(e),
            Err(_) => Bytes::new(),
        };
        let answer = wire::parse_error_answer(&parts, &body);
        let response = http::Response::from_parts(parts, ResponseBody::from_bytes(body));
        let mut error = Error::service(answer.service);
        if error.is_service_code(ErrorCode::RequestTimeTooSkewed) {
            // Sent again with the same clock, the request would be refused the same way.
            let corrected = self.clock.as_ref().and_then(|clock| {
                let server_time = clock::server_time(response.headers(), answer.document.as_ref())?;
                clock.correct_to(server_time);
                Some(clock.offset_ms())
            });
            match corrected {
                Some(offset_ms) => tracing::warn!(
                    offset_ms,
                    "server reports RequestTimeTooSkewed; corrected the clock from its time"
                ),
                None => error = error.set_retryable(false),
            }
        }
        Attempt::Failed {
            error,
            response: Some(response),
        }
    }
}

impl<T> Retry<T> {
    /// Reads a success answer's whole body within the attempt, as [`ReadBody`] asks: a body cut
    /// short, or failing its check, makes the attempt a failed one (retryable when the cut or the
    /// check says so); a body failing its check is handed on should the policy stop.
    async fn read_whole(
        &self,
        parts: http::response::Parts,
        body: ResponseBody,
        read: &ReadBody,
        deadline: Instant,
    ) -> Attempt {
        let collected = match tokio::time::timeout_at(deadline, body.collect(read.limit)).await {
            Ok(collected) => collected,
            Err(_) => Err(Error::timeout(format!(
                "the answer's body did not arrive within the attempt timeout of {:?}",
                self.timeouts.attempt
            ))),
        };
        let body = match collected {
            Ok(body) => body,
            Err(e) => return Attempt::failed(e),
        };
        let checked = read.check.as_ref().map_or(Ok(()), |check| check(&body));
        let response = http::Response::from_parts(parts, ResponseBody::from_bytes(body));
        match checked {
            Ok(()) => Attempt::Done(response),
            // A cut document is not worth handing on: when the policy stops, the cut is the error.
            Err(error) if error.is_retryable() => Attempt::failed(error),
            Err(error) => Attempt::Failed {
                error,
                response: Some(response),
            },
        }
    }
}

/// The status and `x-oss-request-id` of an attempt's answer, for its log event.
fn answer_of(response: Option<&http::Response<ResponseBody>>) -> (Option<u16>, &str) {
    match response {
        Some(response) => (
            Some(response.status().as_u16()),
            wire::request_id(response.headers()),
        ),
        None => (None, ""),
    }
}

#[async_trait::async_trait]
impl<T: Transport> Transport for Retry<T> {
    async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<ResponseBody>, Error> {
        let api = request.extensions().get::<Api>().copied();
        let observer = request.extensions().get::<RetryObserver>().cloned();
        let mut attempt = 1u32;
        loop {
            let started = Instant::now();
            let outcome = self.attempt(clone_request(&request)).await;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let (error, last_response) = match outcome {
                Attempt::Done(response) => {
                    let (status, request_id) = answer_of(Some(&response));
                    tracing::debug!(
                        ?api,
                        attempt,
                        status,
                        request_id,
                        elapsed_ms,
                        "attempt answered"
                    );
                    return Ok(response);
                }
                Attempt::Failed { error, response } => (error, response),
            };
            let (status, request_id) = answer_of(last_response.as_ref());
            tracing::debug!(?api, attempt, status, request_id, elapsed_ms, %error, "attempt failed");
            if self.policy.classify(&error, attempt) == RetryDecision::Stop {
                if error.is_retryable() {
                    tracing::warn!(?api, attempt, %error, "giving up after the last attempt");
                }
                return match last_response {
                    Some(response) => Ok(response),
                    None => Err(error),
                };
            }
            let delay = self.policy.delay(attempt);
            tracing::info!(?api, attempt, ?delay, %error, "retrying");
            if let Some(observer) = &observer {
                observer.notify(&RetryNotice {
                    api,
                    attempt,
                    delay,
                    error: &error,
                });
            }
            drop(last_response);
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    fn reports_progress(&self) -> bool {
        self.inner.reports_progress()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TransferProgress;
    use crate::wire::BodyCheck;
    use std::collections::VecDeque;
    use std::sync::Arc;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::SystemTime;

    /// One scripted answer: status, body, `Date` header; or a transport error.
    type Answer = Result<(u16, &'static str, Option<String>), Error>;

    /// Answers with a script of responses, one per call, and counts calls.
    #[derive(Debug, Default)]
    struct Scripted {
        script: Mutex<VecDeque<Answer>>,
        calls: AtomicU32,
    }

    impl Scripted {
        fn new(script: Vec<Answer>) -> Self {
            Self {
                script: Mutex::new(script.into()),
                calls: AtomicU32::new(0),
            }
        }
    }

    #[async_trait::async_trait]
    impl Transport for Scripted {
        async fn send(
            &self,
            _request: http::Request<Bytes>,
        ) -> Result<http::Response<ResponseBody>, Error> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let (status, body, date) = self.script.lock().unwrap().pop_front().expect("script")?;
            let mut response = http::Response::new(ResponseBody::from_bytes(body));
            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
            if let Some(date) = date {
                response
                    .headers_mut()
                    .insert(http::header::DATE, date.parse().unwrap());
            }
            Ok(response)
        }

        fn reports_progress(&self) -> bool {
            false
        }
    }

    fn error_xml(code: &str) -> &'static str {
        Box::leak(
            format!("<Error><Code>{code}</Code><Message>m</Message><RequestId>R</RequestId><HostId>H</HostId></Error>")
                .into_boxed_str(),
        )
    }

    fn fast() -> RetryConfig {
        RetryConfig::default()
            .max_attempts(4)
            .backoff(Duration::from_millis(1), Duration::from_millis(2))
    }

    fn request() -> http::Request<Bytes> {
        http::Request::new(Bytes::from_static(b"body"))
    }

    #[tokio::test]
    async fn retries_5xx_408_429_and_connection_errors_then_succeeds() {
        let scripted = Scripted::new(vec![
            Ok((503, error_xml("ServiceUnavailable"), None)),
            Err(Error::connection(
                "reset",
                std::io::Error::from(std::io::ErrorKind::ConnectionReset),
            )),
            Ok((429, "", None)),
            Ok((200, "", None)),
        ]);
        let retry = Retry::new(scripted, fast());
        let response = retry.send(request()).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(retry.inner.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn does_not_retry_other_4xx() {
        for code in [
            "NoSuchUpload",
            "AccessDenied",
            "InvalidDigest",
            "SignatureDoesNotMatch",
        ] {
            let status = if code == "NoSuchUpload" {
                404
            } else if code == "InvalidDigest" {
                400
            } else {
                403
            };
            let retry = Retry::new(
                Scripted::new(vec![Ok((status, error_xml(code), None))]),
                fast(),
            );
            let response = retry.send(request()).await.unwrap();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(
                retry.inner.calls.load(Ordering::SeqCst),
                1,
                "{code} was retried"
            );
            let body = response.into_body().collect(1 << 16).await.unwrap();
            assert!(std::str::from_utf8(&body).unwrap().contains(code));
        }
    }

    #[tokio::test]
    async fn does_not_retry_permanent_transport_errors() {
        let retry = Retry::new(
            Scripted::new(vec![Err(Error::network_permanent(
                "https is not supported",
            ))]),
            fast(),
        );
        assert!(retry.send(request()).await.is_err());
        assert_eq!(retry.inner.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn returns_the_last_error_answer_when_attempts_run_out() {
        let scripted = Scripted::new(
            (0..4)
                .map(|_| Ok((500, error_xml("InternalError"), None)))
                .collect(),
        );
        let retry = Retry::new(scripted, fast());
        let response = retry.send(request()).await.unwrap();
        assert_eq!(response.status(), 500);
        assert_eq!(retry.inner.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn skew_is_retried_only_after_correcting_the_clock_from_date() {
        let server_time = SystemTime::now() + Duration::from_secs(40 * 60);
        let date = httpdate::fmt_http_date(server_time);
        let clock = Clock::new();
        let scripted = Scripted::new(vec![
            Ok((403, error_xml("RequestTimeTooSkewed"), Some(date))),
            Ok((200, "", None)),
        ]);
        let retry = Retry::new(scripted, fast()).with_clock(clock.clone());
        let response = retry.send(request()).await.unwrap();
        assert_eq!(response.status(), 200);
        let offset_s = clock.offset_ms() / 1000;
        assert!((2398..=2401).contains(&offset_s), "offset {offset_s}");

        // Without a clock to correct, the skew answer is final.
        let retry = Retry::new(
            Scripted::new(vec![Ok((403, error_xml("RequestTimeTooSkewed"), None))]),
            fast(),
        );
        assert_eq!(retry.send(request()).await.unwrap().status(), 403);
    }

    #[tokio::test]
    async fn skew_is_corrected_from_the_documents_server_time_before_the_date_header() {
        let server_time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let document = Box::leak(
            format!(
                "<Error><Code>RequestTimeTooSkewed</Code><Message>m</Message><RequestId>R</RequestId><HostId>H</HostId><ServerTime>{}</ServerTime></Error>",
                "2030-03-17T17:46:40.000Z"
            )
            .into_boxed_str(),
        );
        // The Date header (a proxy's, say) says otherwise; the document's time wins.
        let date = httpdate::fmt_http_date(SystemTime::now());
        let clock = Clock::new();
        let scripted = Scripted::new(vec![Ok((403, document, Some(date))), Ok((200, "", None))]);
        let retry = Retry::new(scripted, fast()).with_clock(clock.clone());
        assert_eq!(retry.send(request()).await.unwrap().status(), 200);
        let expected = server_time
            .duration_since(SystemTime::now())
            .unwrap()
            .as_secs() as i64;
        let offset_s = clock.offset_ms() / 1000;
        assert!(
            (expected - 2..=expected + 1).contains(&offset_s),
            "offset {offset_s}, expected {expected}"
        );
    }

    /// Never sends a request twice.
    #[derive(Debug)]
    struct NeverRetry;

    impl RetryPolicy for NeverRetry {
        fn classify(&self, _error: &Error, _attempt: u32) -> RetryDecision {
            RetryDecision::Stop
        }

        fn delay(&self, _attempt: u32) -> Duration {
            Duration::ZERO
        }
    }

    /// Retries anything twice, without waiting, and counts what it was asked.
    #[derive(Debug, Default)]
    struct TwoRetries {
        asked: AtomicU32,
    }

    impl RetryPolicy for TwoRetries {
        fn classify(&self, _error: &Error, attempt: u32) -> RetryDecision {
            self.asked.fetch_add(1, Ordering::SeqCst);
            if attempt <= 2 {
                RetryDecision::Retry
            } else {
                RetryDecision::Stop
            }
        }

        fn delay(&self, _attempt: u32) -> Duration {
            Duration::ZERO
        }
    }

    #[tokio::test]
    async fn a_policy_that_never_retries_hands_on_the_first_error_answer() {
        let scripted = Scripted::new(vec![Ok((503, error_xml("ServiceUnavailable"), None))]);
        let retry = Retry::new(scripted, fast()).with_policy(Arc::new(NeverRetry));
        let response = retry.send(request()).await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(retry.inner.calls.load(Ordering::SeqCst), 1);

        let refused = Scripted::new(vec![Err(Error::connection(
            "refused",
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        ))]);
        let retry = Retry::new(refused, fast()).with_policy(Arc::new(NeverRetry));
        assert!(retry.send(request()).await.unwrap_err().is_retryable());
        assert_eq!(retry.inner.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_policy_that_retries_twice_sends_three_times_even_what_the_default_would_not() {
        let policy = Arc::new(TwoRetries::default());
        let scripted = Scripted::new(
            (0..5)
                .map(|_| Ok((404, error_xml("NoSuchUpload"), None)))
                .collect(),
        );
        let retry = Retry::new(scripted, fast()).with_policy(policy.clone());
        let response = retry.send(request()).await.unwrap();
        assert_eq!(response.status(), 404);
        assert_eq!(retry.inner.calls.load(Ordering::SeqCst), 3);
        assert_eq!(policy.asked.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn observer_hears_each_retry() {
        let scripted = Scripted::new(vec![
            Ok((503, error_xml("ServiceUnavailable"), None)),
            Ok((503, error_xml("ServiceUnavailable"), None)),
            Ok((200, "", None)),
        ]);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let mut req = request();
        req.extensions_mut().insert(Api::UploadPart);
        req.extensions_mut().insert(RetryObserver::new(move |n| {
            sink.lock()
                .unwrap()
                .push((n.api, n.attempt, n.error.is_retryable()));
        }));
        Retry::new(scripted, fast()).send(req).await.unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                (Some(Api::UploadPart), 1, true),
                (Some(Api::UploadPart), 2, true)
            ]
        );
    }

    /// A transport that takes part of the body and then never finishes.
    #[derive(Debug)]
    struct Stalls;

    #[async_trait::async_trait]
    impl Transport for Stalls {
        async fn send(
            &self,
            request: http::Request<Bytes>,
        ) -> Result<http::Response<ResponseBody>, Error> {
            if let Some(progress) = request.extensions().get::<TransferProgress>() {
                progress.add(10);
            }
            std::future::pending().await
        }

        fn reports_progress(&self) -> bool {
            false
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_upload_times_out_and_is_retried() {
        let config = fast().max_attempts(2).stall_timeout(Duration::from_secs(5));
        let retry = Retry::new(Stalls, config);
        let err = retry
            .send(http::Request::new(Bytes::from(vec![0u8; 100])))
            .await
            .unwrap_err();
        assert!(err.is_retryable());
        assert!(err.to_string().contains("stalled"), "{err}");
    }

    /// A transport that never takes a byte of the body (a pool that never hands out a connection);
    /// whether it says it reports progress is up to the test.
    #[derive(Debug)]
    struct NeverStarts {
        reports_progress: bool,
    }

    #[async_trait::async_trait]
    impl Transport for NeverStarts {
        async fn send(
            &self,
            _request: http::Request<Bytes>,
        ) -> Result<http::Response<ResponseBody>, Error> {
            std::future::pending().await
        }

        fn reports_progress(&self) -> bool {
            self.reports_progress
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_starts_moving_is_a_stall_when_the_transport_reports_progress() {
        let config = fast()
            .max_attempts(1)
            .stall_timeout(Duration::from_secs(5))
            .attempt_timeout(Duration::from_secs(600));
        let started = Instant::now();
        let err = Retry::new(
            NeverStarts {
                reports_progress: true,
            },
            config.clone(),
        )
        .send(http::Request::new(Bytes::from(vec![0u8; 100])))
        .await
        .unwrap_err();
        assert!(err.is_retryable());
        assert!(err.to_string().contains("0 of 100 bytes sent"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));

        // A transport that cannot tell is given the whole attempt.
        let started = Instant::now();
        let err = Retry::new(
            NeverStarts {
                reports_progress: false,
            },
            config,
        )
        .send(http::Request::new(Bytes::from(vec![0u8; 100])))
        .await
        .unwrap_err();
        assert!(err.to_string().contains("attempt timeout"), "{err}");
        assert!(started.elapsed() >= Duration::from_secs(600));
    }

    #[test]
    fn layers_forward_whether_their_transport_reports_progress() {
        let reporting = Retry::new(
            Arc::new(NeverStarts {
                reports_progress: true,
            }),
            fast(),
        );
        assert!(reporting.reports_progress());
        assert!(!Retry::new(Box::new(Stalls), fast()).reports_progress());
    }

    /// Answers 200 with a body that sends `sent` and then fails as a connection closed too early
    /// would, the first `cut` times; then the whole `full` body.
    #[derive(Debug)]
    struct CutShort {
        full: &'static str,
        sent: &'static str,
        cut: u32,
        calls: AtomicU32,
    }

    #[async_trait::async_trait]
    impl Transport for CutShort {
        async fn send(
            &self,
            _request: http::Request<Bytes>,
        ) -> Result<http::Response<ResponseBody>, Error> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            if call >= self.cut {
                return Ok(http::Response::new(ResponseBody::from_bytes(self.full)));
            }
            let frames: Vec<Result<http_body::Frame<Bytes>, Error>> = vec![
                Ok(http_body::Frame::data(Bytes::from_static(
                    self.sent.as_bytes(),
                ))),
                Err(Error::connection(
                    "response body interrupted",
                    std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                )),
            ];
            let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
            Ok(http::Response::new(ResponseBody::new(body)))
        }

        fn reports_progress(&self) -> bool {
            false
        }
    }

    fn reading(check: Option<BodyCheck>) -> http::Request<Bytes> {
        let mut req = request();
        req.extensions_mut().insert(ReadBody {
            limit: 1 << 16,
            check,
        });
        req
    }

    #[tokio::test]
    async fn a_body_cut_short_is_retried_when_the_request_asks_for_the_whole_body() {
        let transport = CutShort {
            full: "<Doc>whole</Doc>",
            sent: "<Doc>wh",
            cut: 2,
            calls: AtomicU32::new(0),
        };
        let retry = Retry::new(transport, fast());
        let response = retry.send(reading(None)).await.unwrap();
        assert_eq!(retry.inner.calls.load(Ordering::SeqCst), 3);
        let body = response.into_body().collect(1 << 16).await.unwrap();
        assert_eq!(&body[..], b"<Doc>whole</Doc>");

        // Without the extension the body is the caller's to read: one attempt, and the cut shows.
        let transport = CutShort {
            full: "<Doc>whole</Doc>",
            sent: "<Doc>wh",
            cut: 1,
            calls: AtomicU32::new(0),
        };
        let retry = Retry::new(transport, fast());
        let response = retry.send(request()).await.unwrap();
        assert!(response.into_body().collect(1 << 16).await.is_err());
        assert_eq!(retry.inner.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_check_retries_only_what_it_calls_retryable() {
        let check: BodyCheck = Arc::new(|body: &[u8]| match body {
            b"complete" => Ok(()),
            b"cut" => Err(Error::malformed_response("cut short").set_retryable(true)),
            _ => Err(Error::malformed_response("unexpected document")),
        });
        let scripted = Scripted::new(vec![
            Ok((200, "cut", None)),
            Ok((200, "cut", None)),
            Ok((200, "complete", None)),
        ]);
        let retry = Retry::new(scripted, fast());
        let response = retry.send(reading(Some(check.clone()))).await.unwrap();
        assert_eq!(retry.inner.calls.load(Ordering::SeqCst), 3);
        assert_eq!(
            &response.into_body().collect(1 << 16).await.unwrap()[..],
            b"complete"
        );

        // A complete but unexpected body is handed on after one attempt, for the caller to report.
        let retry = Retry::new(Scripted::new(vec![Ok((200, "other", None))]), fast());
        let response = retry.send(reading(Some(check))).await.unwrap();
        assert_eq!(retry.inner.calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            &response.into_body().collect(1 << 16).await.unwrap()[..],
            b"other"
        );
    }

    #[test]
    fn backoff_caps_grow_exponentially_to_the_maximum() {
        let config = RetryConfig::default();
        assert_eq!(config.delay_cap(0), Duration::from_millis(200));
        assert_eq!(config.delay_cap(3), Duration::from_millis(1600));
        assert_eq!(config.delay_cap(20), Duration::from_secs(20));
        for retry in 0..12 {
            assert!(config.jittered_delay(retry) <= config.delay_cap(retry));
        }
    }
}
