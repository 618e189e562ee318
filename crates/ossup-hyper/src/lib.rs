//! The hyper 1.x transport of the ossup upload engine.
//!
//! [`HyperTransport`] sends requests over pooled keep-alive HTTP/1.1 connections (hyper-util's
//! client), with `TCP_NODELAY`, a connect timeout, and request bodies handed to the socket from the
//! part buffer without a copy. Response bodies stream.
//!
//! It speaks plain HTTP: OSS serves its endpoints over HTTP too. For HTTPS, implement
//! [`ossup::Transport`] over a TLS connector (the trait is one method).
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

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use ossup::{Error, ResponseBody, TransferProgress, Transport};

/// How much of a request body is handed to hyper per frame: small enough that progress (and so
/// stall detection) is fine-grained, large enough to cost nothing. Frames are slices of the part
/// buffer, not copies.
const FRAME: usize = 256 << 10;

/// The hyper transport: pooled keep-alive HTTP/1.1.
#[derive(Debug, Clone)]
pub struct HyperTransport {
    client: Client<HttpConnector, RequestBody>,
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

    /// A builder to change the timeouts and the pool.
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
}

impl Default for HyperTransportBuilder {
    /// Connect timeout 10 s; idle connections kept 60 s, at most 32 per host; TCP keepalive 30 s.
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle_per_host: 32,
            tcp_keepalive: Some(Duration::from_secs(30)),
        }
    }
}

impl HyperTransportBuilder {
    /// Gives up on connecting after `timeout` (a retryable error).
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

    /// The transport. Must be called within a Tokio runtime's reach when first used.
    pub fn build(self) -> HyperTransport {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(self.connect_timeout));
        connector.set_keepalive(self.tcp_keepalive);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(self.pool_idle_timeout)
            .pool_max_idle_per_host(self.pool_max_idle_per_host)
            .build(connector);
        HyperTransport { client }
    }
}

#[async_trait::async_trait]
impl Transport for HyperTransport {
    async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<ResponseBody>, Error> {
        if request.uri().scheme_str() != Some("http") {
            return Err(Error::network_permanent(format!(
                "HyperTransport speaks plain HTTP and cannot send to {}; use an http:// endpoint or a TLS-capable transport",
                request.uri()
            )));
        }
        let authority = request
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let (parts, data) = request.into_parts();
        let progress = parts.extensions.get::<TransferProgress>().cloned();
        let request = http::Request::from_parts(parts, RequestBody { data, progress });
        let response = self.client.request(request).await.map_err(|e| {
            let what = if e.is_connect() {
                format!("cannot connect to {authority}")
            } else {
                format!("request to {authority} failed")
            };
            Error::connection(what, e)
        })?;
        let (parts, body) = response.into_parts();
        let body = body.map_err(|e| Error::connection("response body interrupted", e));
        Ok(http::Response::from_parts(parts, ResponseBody::new(body)))
    }
}

/// A request body: the part buffer, handed out in slices, counting what went out.
#[derive(Debug)]
pub struct RequestBody {
    data: Bytes,
    progress: Option<TransferProgress>,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.data.is_empty() {
            return Poll::Ready(None);
        }
        let frame = this.data.split_to(this.data.len().min(FRAME));
        if let Some(progress) = &this.progress {
            progress.add(frame.len() as u64);
        }
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn request_body_goes_out_in_slices_and_counts_progress() {
        let data = Bytes::from(vec![7u8; FRAME * 2 + 5]);
        let progress = TransferProgress::new();
        let mut body = RequestBody {
            data: data.clone(),
            progress: Some(progress.clone()),
        };
        assert_eq!(body.size_hint().exact(), Some(data.len() as u64));
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            out.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        assert_eq!(out, data);
        assert_eq!(progress.sent(), data.len() as u64);
    }

    #[tokio::test]
    async fn https_is_refused_permanently() {
        let err = HyperTransport::new()
            .send(
                http::Request::get("https://example.com/")
                    .body(Bytes::new())
                    .unwrap(),
            )
            .await
            .unwrap_err();
        assert!(!err.is_retryable());
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
        assert!(err.to_string().contains("cannot connect"), "{err}");
    }
}
