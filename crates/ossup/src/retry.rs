//! The retry layer: classified retries with exponential backoff and full jitter, a per-attempt
//! timeout, and stalled-transfer detection, wrapped around any [`Transport`].
//!
//! It sits outside the [signing layer](crate::signing), so each attempt is signed afresh, and it is
//! the only place in the crate that retries: the engine sees one call per request.
//!
//! What is retried ([`is_retryable_service_error`] and [`Error::is_retryable`]): HTTP 5xx, 408, 429,
//! OSS `RequestTimeout`, connection refused/reset/closed, timeouts and stalls, and
//! `RequestTimeTooSkewed` once the [`Clock`] has been corrected from the server's `Date`. Other 4xx
//! answers are final.
//!
//! A request may ask for its whole exchange to be one attempt (`ReadBody` in its extensions): the
//! success answer's body is then read, and judged, within the attempt, so an answer cut short is
//! retried like a lost one. The client asks this of the APIs that answer with a document
//! (InitiateMultipartUpload, ListParts, CompleteMultipartUpload, ListMultipartUploads).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use ossup_proto::{Api, ErrorResponse};
use rand::Rng;
use tokio::time::Instant;

use crate::ResponseBody;
use crate::signing::Clock;
use crate::{Error, TransferProgress, Transport};

/// The most bytes of an error response kept for its error document.
pub(crate) const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// How often the stall watchdog looks at the upload's progress.
const STALL_CHECK_PERIOD: Duration = Duration::from_millis(250);

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
        let factor = 1u32.checked_shl(retry.min(30)).unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// A full-jitter delay before retry `retry`: uniform in `0..=delay_cap(retry)`.
    pub fn jittered_delay(&self, retry: u32) -> Duration {
        let cap = self.delay_cap(retry);
        let nanos = cap.as_nanos().min(u64::MAX as u128) as u64;
        Duration::from_nanos(rand::thread_rng().gen_range(0..=nanos))
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

/// Judges a success answer's whole body: `Ok` to accept it, a retryable error to try the request
/// again (a document cut short), any other error to hand the body on for the caller to report.
pub(crate) type BodyCheck = Arc<dyn Fn(&[u8]) -> Result<(), Error> + Send + Sync>;

/// Put in a request's extensions, asks the retry layer to read a success answer's body (at most
/// `limit` bytes) within the attempt, and to judge it with `check`: a body cut short (the connection
/// closed before its length was reached, or a document without its end) is retried with the same
/// classification and backoff as a lost answer. The response then carries the whole body.
#[derive(Clone)]
pub(crate) struct ReadBody {
    /// The most bytes of the body read into memory.
    pub(crate) limit: usize,
    /// What a complete body must pass.
    pub(crate) check: Option<BodyCheck>,
}

impl fmt::Debug for ReadBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadBody")
            .field("limit", &self.limit)
            .field("check", &self.check.is_some())
            .finish()
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
    config: RetryConfig,
    clock: Option<Clock>,
}

impl<T> Retry<T> {
    /// Retries requests sent through `inner` as `config` says.
    pub fn new(inner: T, config: RetryConfig) -> Self {
        Self {
            inner,
            config,
            clock: None,
        }
    }

    /// Corrects `clock` (shared with the signing layer) when the server answers
    /// `RequestTimeTooSkewed`, and retries such answers.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }
}

/// One attempt's result, classified.
enum Attempt {
    Done(http::Response<ResponseBody>),
    Retry(Error, Option<http::Response<ResponseBody>>),
    Fail(Error),
}

impl<T: Transport> Retry<T> {
    async fn attempt(&self, request: http::Request<Bytes>) -> Attempt {
        let body_len = request.body().len() as u64;
        let read_body = request.extensions().get::<ReadBody>().cloned();
        let progress = TransferProgress::new();
        if let Some(observer) = request.extensions().get::<RetryObserver>() {
            observer.attempt_started(&progress);
        }
        let mut request = request;
        request.extensions_mut().insert(progress.clone());
        let send = self.inner.send(request);
        tokio::pin!(send);

        let started = Instant::now();
        let attempt_deadline = started + self.config.attempt_timeout;
        let mut last_sent = 0u64;
        let mut last_change = started;
        let mut body_done_at: Option<Instant> = (body_len == 0).then_some(started);
        let reports_progress = self.inner.reports_progress();
        let mut ticker = tokio::time::interval(STALL_CHECK_PERIOD);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        let result = loop {
            tokio::select! {
                result = &mut send => break result,
                _ = tokio::time::sleep_until(attempt_deadline) => {
                    break Err(Error::timeout(format!(
                        "no answer within the attempt timeout of {:?}", self.config.attempt_timeout
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
                            && now - last_change >= self.config.stall_timeout =>
                        {
                            break Err(Error::timeout(format!(
                                "upload stalled: {sent} of {body_len} bytes sent, none for {:?}",
                                self.config.stall_timeout
                            )));
                        }
                        Some(done) if now - done >= self.config.response_timeout => {
                            break Err(Error::timeout(format!(
                                "no response headers within {:?} of sending the request",
                                self.config.response_timeout
                            )));
                        }
                        _ => {}
                    }
                }
            }
        };

        let response = match result {
            Ok(response) => response,
            Err(e) if e.is_retryable() => return Attempt::Retry(e, None),
            Err(e) => return Attempt::Fail(e),
        };
        let status = response.status();
        if status.is_success() || status.is_redirection() || status.is_informational() {
            let (parts, body) = response.into_parts();
            let body = body.with_idle_timeout(self.config.stall_timeout);
            return match read_body {
                Some(read) if status.is_success() => {
                    self.read_whole(parts, body, &read, attempt_deadline).await
                }
                _ => Attempt::Done(http::Response::from_parts(parts, body)),
            };
        }

        // An error answer: buffer its (small) body so the code can be read here and by the caller.
        let (parts, body) = response.into_parts();
        let body = match body
            .with_idle_timeout(self.config.stall_timeout)
            .collect(ERROR_BODY_LIMIT)
            .await
        {
            Ok(body) => body,
            Err(e) if e.is_retryable() => return Attempt::Retry(e, None),
            Err(_) => Bytes::new(),
        };
        let document = std::str::from_utf8(&body)
            .ok()
            .and_then(|text| ErrorResponse::from_xml(text).ok());
        let code = document
            .as_ref()
            .map(|d| d.code.clone())
            .unwrap_or_default();
        let service = crate::client::service_error(&parts, document);
        let response = http::Response::from_parts(parts, ResponseBody::from_bytes(body));

        if code == "RequestTimeTooSkewed" {
            let Some(clock) = &self.clock else {
                return Attempt::Done(response);
            };
            let Some(server_time) = server_time(&response) else {
                return Attempt::Done(response);
            };
            clock.correct_to(server_time);
            tracing::warn!(
                offset_ms = clock.offset_ms(),
                "server reports RequestTimeTooSkewed; corrected the clock from its Date header"
            );
            return Attempt::Retry(Error::service(service), Some(response));
        }
        if is_retryable_service_error(status.as_u16(), &code) {
            return Attempt::Retry(Error::service(service), Some(response));
        }
        Attempt::Done(response)
    }
}

impl<T> Retry<T> {
    /// Reads a success answer's whole body within the attempt, as [`ReadBody`] asks: a body cut
    /// short, or failing its check with a retryable error, makes the attempt one to retry.
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
                self.config.attempt_timeout
            ))),
        };
        let body = match collected {
            Ok(body) => body,
            Err(e) if e.is_retryable() => return Attempt::Retry(e, None),
            Err(e) => return Attempt::Fail(e),
        };
        if let Some(check) = &read.check
            && let Err(e) = check(&body)
            && e.is_retryable()
        {
            return Attempt::Retry(e, None);
        }
        Attempt::Done(http::Response::from_parts(
            parts,
            ResponseBody::from_bytes(body),
        ))
    }
}

/// The server's time from a response: `Date`, or `<ServerTime>` of a skew error.
fn server_time(response: &http::Response<ResponseBody>) -> Option<SystemTime> {
    let date = response.headers().get(http::header::DATE)?.to_str().ok()?;
    httpdate::parse_http_date(date).ok()
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
            let copy = clone_request(&request);
            tracing::trace!(?api, attempt, "attempt");
            let (error, last_response) = match self.attempt(copy).await {
                Attempt::Done(response) => return Ok(response),
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry(error, response) => (error, response),
            };
            if attempt >= self.config.max_attempts {
                tracing::warn!(?api, attempt, %error, "giving up after the last attempt");
                return match last_response {
                    Some(response) => Ok(response),
                    None => Err(error),
                };
            }
            let delay = self.config.jittered_delay(attempt - 1);
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

/// A copy of a request for one attempt; the body is a cheap `Bytes` clone.
pub(crate) fn clone_request(request: &http::Request<Bytes>) -> http::Request<Bytes> {
    let mut copy = http::Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Arc;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

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
