//! The hyper 1.x transport of the ossup upload engine.
//!
//! [`HyperTransport`] sends requests over pooled keep-alive HTTP/1.1 connections (hyper-util's
//! client), with `TCP_NODELAY`, a connect timeout, and request bodies handed to the connection
//! from the part buffer without a copy. Response bodies stream.
//!
//! It speaks `http://` and `https://` alike. TLS is rustls (the `ring` provider, TLS 1.2 and 1.3)
//! trusting Mozilla's root certificates, built in, so no system certificate store is needed. A
//! private endpoint's CA is added with [`HyperTransportBuilder::add_root_certificate`]; the
//! operating system's store with [`Certificate::load_native_roots`]. A certificate that is not
//! trusted, not valid for the host, or expired fails the request at once with a permanent error
//! naming the host and the reason; a connection reset during the handshake is retried like any
//! other.
//!
//! ```
//! use std::time::Duration;
//! use ossup_hyper::HyperTransport;
//! let transport = HyperTransport::builder()
//!     .connect_timeout(Duration::from_secs(5))
//!     .pool_max_idle_per_host(16)
//!     .build();
//! # drop(transport);
//! ```

#![deny(missing_docs)]

mod connect;
mod tls;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use ossup_transport::{Error, RateLimiter, ResponseBody, TransferProgress, Transport};

use crate::connect::{ConnectTimedOut, Connector, find_cause};
pub use crate::tls::Certificate;

/// How much of a request body is handed to hyper per frame: small enough that progress (and so
/// stall detection) is fine-grained, large enough to cost nothing. Frames are slices of the part
/// buffer, not copies.
const FRAME: usize = 256 << 10;

/// The hyper transport: pooled keep-alive HTTP/1.1, over TLS for `https://` URLs.
#[derive(Debug, Clone)]
pub struct HyperTransport {
    client: Client<Connector, RequestBody>,
}

impl Default for HyperTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl HyperTransport {
    /// A transport with the defaults of [`HyperTransportBuilder`].
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to change the timeouts, the pool and the trusted certificate authorities.
    pub fn builder() -> HyperTransportBuilder {
        HyperTransportBuilder::default()
    }
}

/// Settings of a [`HyperTransport`].
#[derive(Debug, Clone)]
pub struct HyperTransportBuilder {
    connect_timeout: Duration,
    pool_idle_timeout: Duration,
    pool_max_idle_per_host: usize,
    tcp_keepalive: Option<Duration>,
    built_in_roots: bool,
    root_certificates: Vec<Certificate>,
}

impl Default for HyperTransportBuilder {
    /// Connect timeout 10 s; idle connections kept 60 s, at most 32 per host; TCP keepalive 30 s;
    /// the built-in (Mozilla) root certificates trusted.
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle_per_host: 32,
            tcp_keepalive: Some(Duration::from_secs(30)),
            built_in_roots: true,
            root_certificates: Vec::new(),
        }
    }
}

impl HyperTransportBuilder {
    /// Gives up on connecting after `timeout` (a retryable error). For `https://` the TLS
    /// handshake counts too.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Closes pooled connections idle for longer than `timeout`.
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }

    /// Keeps at most `n` idle connections per host.
    pub fn pool_max_idle_per_host(mut self, n: usize) -> Self {
        self.pool_max_idle_per_host = n;
        self
    }

    /// TCP keepalive probes after `idle` (or none).
    pub fn tcp_keepalive(mut self, idle: Option<Duration>) -> Self {
        self.tcp_keepalive = idle;
        self
    }

    /// Trusts `certificate`'s authority for `https://` endpoints, besides the built-in roots
    /// (see [`built_in_roots`](Self::built_in_roots)).
    ///
    /// ```
    /// use ossup_hyper::{Certificate, HyperTransport};
    /// # let der = {
    /// #     let key = rcgen::KeyPair::generate().unwrap();
    /// #     let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    /// #     params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    /// #     params.self_signed(&key).unwrap().der().to_vec()
    /// # };
    /// // `der`: the private CA's certificate, DER-encoded.
    /// let transport = HyperTransport::builder()
    ///     .add_root_certificate(Certificate::from_der(&der)?)
    ///     .build();
    /// # drop(transport);
    /// # Ok::<(), ossup_transport::Error>(())
    /// ```
    pub fn add_root_certificate(mut self, certificate: Certificate) -> Self {
        self.root_certificates.push(certificate);
        self
    }

    /// Trusts each of `certificates` (from [`Certificate::from_pem`] or
    /// [`Certificate::load_native_roots`], say).
    pub fn add_root_certificates(
        mut self,
        certificates: impl IntoIterator<Item = Certificate>,
    ) -> Self {
        self.root_certificates.extend(certificates);
        self
    }

    /// Whether to trust the built-in root certificates (Mozilla's, as `webpki-roots` ships them);
    /// on by default. Off, only the certificates added with
    /// [`add_root_certificate`](Self::add_root_certificate) are trusted.
    pub fn built_in_roots(mut self, trust: bool) -> Self {
        self.built_in_roots = trust;
        self
    }

    /// The transport. Must be called within a Tokio runtime's reach when first used.
    pub fn build(self) -> HyperTransport {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(self.connect_timeout));
        tcp.set_keepalive(self.tcp_keepalive);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls::client_config(
                self.built_in_roots,
                &self.root_certificates,
            ))
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(self.pool_idle_timeout)
            .pool_max_idle_per_host(self.pool_max_idle_per_host)
            .build(Connector::new(https, self.connect_timeout));
        HyperTransport { client }
    }
}

#[async_trait::async_trait]
impl Transport for HyperTransport {
    async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<ResponseBody>, Error> {
        if !matches!(request.uri().scheme_str(), Some("http" | "https")) {
            return Err(Error::network_permanent(format!(
                "HyperTransport cannot send to {}: the URL must start with http:// or https://",
                request.uri()
            )));
        }
        let uri = request.uri().clone();
        let (parts, data) = request.into_parts();
        let progress = parts.extensions.get::<TransferProgress>().cloned();
        let limiter = parts.extensions.get::<RateLimiter>().cloned();
        let request = http::Request::from_parts(parts, RequestBody::new(data, progress, limiter));
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| request_error(e, &uri))?;
        let (parts, body) = response.into_parts();
        let body = body.map_err(|e| Error::connection("response body interrupted", e));
        Ok(http::Response::from_parts(parts, ResponseBody::new(body)))
    }

    /// The request body's bytes are counted as hyper takes them for the connection.
    fn reports_progress(&self) -> bool {
        true
    }

    /// Bodies take their [`RateLimiter`] tokens frame by frame, as hyper takes them.
    fn paces_bodies(&self) -> bool {
        true
    }
}

/// The engine's error for a request hyper could not complete.
fn request_error(error: hyper_util::client::legacy::Error, uri: &http::Uri) -> Error {
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    let host = uri.host().unwrap_or_default();
    if let Some(timed_out) = find_cause::<ConnectTimedOut>(&error) {
        return Error::timeout(format!("cannot connect to {authority}: {timed_out}"));
    }
    if error.is_connect() {
        if let Some(tls) = find_cause::<rustls::Error>(&error) {
            return tls::handshake_error(tls, authority, host);
        }
        if find_cause::<rustls::pki_types::InvalidDnsNameError>(&error).is_some() {
            return Error::network_permanent(format!(
                "TLS handshake with {authority} impossible: {host} is not a valid DNS name"
            ));
        }
        return Error::connection(format!("cannot connect to {authority}"), Causes::of(&error));
    }
    Error::connection(format!("request to {authority} failed"), Causes::of(&error))
}

/// What made a request fail, spelled out (`tcp connect error: Connection refused (os error
/// 111)`): hyper-util's own error only names the stage ("client error (Connect)"), and the
/// engine's error shows one level of cause.
#[derive(Debug)]
struct Causes(String);

impl Causes {
    fn of(error: &hyper_util::client::legacy::Error) -> Self {
        let mut texts: Vec<String> = Vec::new();
        let mut next = std::error::Error::source(error);
        while let Some(cause) = next {
            // An `io::Error` wrapping another error shows that error's text: say it once.
            let text = cause.to_string();
            if texts.last() != Some(&text) {
                texts.push(text);
            }
            next = cause.source();
        }
        if texts.is_empty() {
            texts.push(error.to_string());
        }
        Self(texts.join(": "))
    }
}

impl std::fmt::Display for Causes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Causes {}

/// A request body: the part buffer, handed out in slices, counting what went out, and paced by the
/// request's [`RateLimiter`] when it carries one.
pub struct RequestBody {
    data: Bytes,
    progress: Option<TransferProgress>,
    limiter: Option<RateLimiter>,
    /// A frame whose tokens are reserved, waiting for `wait` to end.
    held: Option<Bytes>,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody")
            .field(
                "len",
                &(self.data.len() + self.held.as_ref().map_or(0, Bytes::len)),
            )
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl RequestBody {
    fn new(data: Bytes, progress: Option<TransferProgress>, limiter: Option<RateLimiter>) -> Self {
        Self {
            data,
            progress,
            limiter,
            held: None,
            wait: None,
        }
    }

    /// Hands `frame` out, counting it.
    fn emit(&self, frame: Bytes) -> Poll<Option<Result<Frame<Bytes>, std::convert::Infallible>>> {
        if let Some(progress) = &self.progress {
            progress.add(frame.len() as u64);
        }
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(wait) = &mut this.wait {
            if wait.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.wait = None;
        }
        if let Some(frame) = this.held.take() {
            return this.emit(frame);
        }
        if this.data.is_empty() {
            return Poll::Ready(None);
        }
        let Some(limiter) = &this.limiter else {
            let frame = this.data.split_to(this.data.len().min(FRAME));
            return this.emit(frame);
        };
        let frame = this
            .data
            .split_to(this.data.len().min(limiter.frame_size(FRAME)));
        let wait = limiter.reserve(frame.len() as u64);
        if wait.is_zero() {
            return this.emit(frame);
        }
        let mut sleep = Box::pin(tokio::time::sleep(wait));
        if sleep.as_mut().poll(cx).is_ready() {
            return this.emit(frame);
        }
        this.held = Some(frame);
        this.wait = Some(sleep);
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty() && self.held.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact((self.data.len() + self.held.as_ref().map_or(0, Bytes::len)) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_body_with_a_rate_limiter_goes_out_at_the_cap() {
        let data = Bytes::from(vec![1u8; 4 << 20]);
        let limiter = RateLimiter::new(1 << 20);
        let progress = TransferProgress::new();
        let mut body =
            RequestBody::new(data.clone(), Some(progress.clone()), Some(limiter.clone()));
        let start = tokio::time::Instant::now();
        let mut out = 0;
        let mut frames = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.unwrap().into_data().unwrap();
            assert!(frame.len() as u64 <= limiter.burst());
            out += frame.len();
            frames += 1;
        }
        assert_eq!(out, data.len());
        assert_eq!(progress.sent(), data.len() as u64);
        assert!(frames > 60, "{frames}");
        // 4 MiB at 1 MiB/s, less the burst that went at once.
        let expected = (data.len() as u64 - limiter.burst()) as f64 / (1 << 20) as f64;
        let took = start.elapsed().as_secs_f64();
        assert!((took - expected).abs() < 0.01, "{took} vs {expected}");
    }

    #[tokio::test]
    async fn request_body_goes_out_in_slices_and_counts_progress() {
        let data = Bytes::from(vec![7u8; FRAME * 2 + 5]);
        let progress = TransferProgress::new();
        let mut body = RequestBody::new(data.clone(), Some(progress.clone()), None);
        assert_eq!(body.size_hint().exact(), Some(data.len() as u64));
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            out.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        assert_eq!(out, data);
        assert_eq!(progress.sent(), data.len() as u64);
    }

    #[tokio::test]
    async fn a_scheme_other_than_http_or_https_is_refused_permanently() {
        let err = HyperTransport::new()
            .send(
                http::Request::get("ftp://example.com/")
                    .body(Bytes::new())
                    .unwrap(),
            )
            .await
            .unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("http:// or https://"), "{err}");
    }

    #[tokio::test]
    async fn an_https_host_that_is_no_dns_name_is_refused_permanently() {
        // Checked first so that the request below can never reach a resolver.
        let host = "oss..example.com";
        assert!(rustls::pki_types::ServerName::try_from(host).is_err());
        let err = HyperTransport::new()
            .send(
                http::Request::get(format!("https://{host}/"))
                    .body(Bytes::new())
                    .unwrap(),
            )
            .await
            .unwrap_err();
        assert!(!err.is_retryable(), "{err}");
        assert!(
            err.message()
                .contains("oss..example.com is not a valid DNS name"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_retryable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = HyperTransport::new()
            .send(
                http::Request::get(format!("http://{addr}/"))
                    .body(Bytes::new())
                    .unwrap(),
            )
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("cannot connect to {addr}: tcp connect error")),
            "{err}"
        );
    }
}
