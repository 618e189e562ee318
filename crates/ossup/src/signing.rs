//! The signing layer: signs each attempt of a request just before it is sent, with fresh credentials
//! and the clock corrected by what the server said about the time.
//!
//! Signing per attempt (not once per request) keeps a retried request's date current after a long
//! backoff and lets temporary credentials be refreshed mid-upload.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use ossup_sign::{CredentialsProvider, RequestParts, Signer};

use crate::body::ResponseBody;
use crate::{Error, Transport};

/// What a request addresses, in the logical terms the signature covers.
///
/// The [`Client`](crate::Client) puts this in every request's extensions; the signing layer reads it
/// rather than reverse-engineering the URL (whose form depends on the addressing style).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OssResource {
    /// The bucket, or `None` for a service-level request.
    pub bucket: Option<String>,
    /// The object key, or `None` for a bucket-level request.
    pub key: Option<String>,
    /// The decoded query parameters, as sent.
    pub query: Vec<(String, String)>,
}

/// The local clock plus the offset learned from the server (`RequestTimeTooSkewed`).
///
/// Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// A clock with no correction.
    pub fn new() -> Self {
        Self::default()
    }

    /// The corrected current time.
    pub fn now(&self) -> SystemTime {
        let offset = self.offset_ms.load(Ordering::Relaxed);
        let now = SystemTime::now();
        if offset >= 0 {
            now + Duration::from_millis(offset as u64)
        } else {
            now - Duration::from_millis(offset.unsigned_abs())
        }
    }

    /// The current correction in milliseconds (server time minus local time).
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Sets the correction so that [`now`](Self::now) reads `server_time` at this moment.
    pub fn correct_to(&self, server_time: SystemTime) {
        let local = SystemTime::now();
        let offset = match server_time.duration_since(local) {
            Ok(ahead) => ahead.as_millis() as i64,
            Err(behind) => -(behind.duration().as_millis() as i64),
        };
        self.offset_ms.store(offset, Ordering::Relaxed);
    }
}

/// A transport that signs every request before handing it to the inner transport.
#[derive(Debug)]
pub struct Signing<T> {
    inner: T,
    signer: Arc<dyn Signer>,
    credentials: Arc<dyn CredentialsProvider>,
    clock: Clock,
}

impl<T> Signing<T> {
    /// Signs with `signer` and `credentials` at `clock`'s time, then sends through `inner`.
    pub fn new(
        inner: T,
        signer: Arc<dyn Signer>,
        credentials: Arc<dyn CredentialsProvider>,
        clock: Clock,
    ) -> Self {
        Self {
            inner,
            signer,
            credentials,
            clock,
        }
    }
}

#[async_trait::async_trait]
impl<T: Transport> Transport for Signing<T> {
    async fn send(
        &self,
        mut request: http::Request<Bytes>,
    ) -> Result<http::Response<ResponseBody>, Error> {
        let resource = request
            .extensions()
            .get::<OssResource>()
            .cloned()
            .ok_or_else(|| {
                Error::config(
                    "request has no OssResource extension; the signing layer cannot sign it",
                )
            })?;
        let credentials = self.credentials.credentials().await.map_err(|e| {
            Error::config("could not get credentials to sign the request").with_source(e)
        })?;
        let mut parts = RequestParts {
            method: request.method().clone(),
            bucket: resource.bucket,
            key: resource.key,
            query: resource.query,
            headers: std::mem::take(request.headers_mut()),
        };
        self.signer
            .sign(&mut parts, &credentials, self.clock.now())
            .map_err(|e| Error::config("could not sign the request").with_source(e))?;
        *request.headers_mut() = parts.headers;
        self.inner.send(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_correction_moves_now_to_the_server_time() {
        let clock = Clock::new();
        let server = SystemTime::now() - Duration::from_secs(3600);
        clock.correct_to(server);
        let skew = SystemTime::now()
            .duration_since(clock.now())
            .unwrap()
            .as_secs();
        assert!((3599..=3601).contains(&skew), "skew {skew}");
        assert!(clock.offset_ms() < 0);
    }
}
