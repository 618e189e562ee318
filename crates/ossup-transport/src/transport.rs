//! The [`Transport`] trait: send one request, get the response with a streaming body.
//!
//! A transport knows HTTP and nothing of OSS: the engine's client builds, addresses and signs
//! requests; its retry layer retries them. `ossup-hyper` ships the stock implementation; a test, a
//! proxy or a TLS stack can bring its own.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::Error;
use crate::body::ResponseBody;

/// Sends one HTTP request and returns the response, its body still streaming.
///
/// The request body is a [`Bytes`], so a part buffer reaches the socket without a copy. A
/// transport reports connection failures and timeouts as errors ([`Error::connection`],
/// [`Error::timeout`]); an HTTP error status is a response, not an error.
///
/// When the request carries a [`TransferProgress`] extension, the transport should
/// [`add`](TransferProgress::add) the bytes of the body as it hands them to the connection: the retry
/// layer uses it to tell a stalled upload from a slow one.
///
/// ```
/// use ossup_transport::{Error, ResponseBody, Transport};
/// use bytes::Bytes;
///
/// /// Answers every request with an empty 200.
/// #[derive(Debug)]
/// struct AlwaysOk;
///
/// #[async_trait::async_trait]
/// impl Transport for AlwaysOk {
///     async fn send(&self, _request: http::Request<Bytes>) -> Result<http::Response<ResponseBody>, Error> {
///         Ok(http::Response::new(ResponseBody::empty()))
///     }
///
///     fn reports_progress(&self) -> bool {
///         false // it sends no body, so it counts none
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait Transport: Send + Sync + Debug {
    /// Sends `request` once.
    async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<ResponseBody>, Error>;

    /// Whether this transport adds to a request's [`TransferProgress`] as the body goes out.
    ///
    /// When it does, the retry layer treats a request body that has not started moving within the
    /// stall timeout as stalled (a connection pool or a proxy holding the request), instead of
    /// waiting for the whole attempt's timeout. A layer forwards the answer of the transport it
    /// wraps: there is no default, so a wrapper cannot weaken stall detection by forgetting it.
    fn reports_progress(&self) -> bool;

    /// Whether this transport paces request bodies by the [`RateLimiter`](crate::RateLimiter) a
    /// request carries as an extension, taking its tokens frame by frame as the body goes out.
    /// When it does not (the default), the engine's rate-limit layer takes a whole body's tokens
    /// before handing the request over.
    fn paces_bodies(&self) -> bool {
        false
    }
}

#[async_trait::async_trait]
impl<T: Transport + ?Sized> Transport for Arc<T> {
    async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<ResponseBody>, Error> {
        (**self).send(request).await
    }

    fn reports_progress(&self) -> bool {
        (**self).reports_progress()
    }

    fn paces_bodies(&self) -> bool {
        (**self).paces_bodies()
    }
}

#[async_trait::async_trait]
impl<T: Transport + ?Sized> Transport for Box<T> {
    async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<ResponseBody>, Error> {
        (**self).send(request).await
    }

    fn reports_progress(&self) -> bool {
        (**self).reports_progress()
    }

    fn paces_bodies(&self) -> bool {
        (**self).paces_bodies()
    }
}

/// How many bytes of a request body a transport has handed to the connection.
///
/// Put in a request's extensions by the retry layer; a transport that supports it adds to it as the
/// body goes out. Clones share one counter.
#[derive(Debug, Clone, Default)]
pub struct TransferProgress(Arc<AtomicU64>);

impl TransferProgress {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts `bytes` more as sent.
    pub fn add(&self, bytes: u64) {
        self.0.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The bytes sent so far.
    pub fn sent(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
