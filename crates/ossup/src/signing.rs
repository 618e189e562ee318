//! The signing layer: signs each attempt of a request just before it is sent, with fresh credentials
//! and the clock corrected by what the server said about the time.
//!
//! Signing per attempt (not once per request) keeps a retried request's date current after a long
//! backoff and lets temporary credentials be refreshed mid-upload. When OSS refuses temporary
//! credentials (`SecurityTokenExpired`, `InvalidSecurityToken`, `InvalidAccessKeyId` for a key that
//! came with a token), the layer asks the provider to [`refresh`](CredentialsProvider::refresh) and,
//! given different credentials, signs and sends the request once more.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use ossup_proto::ErrorResponse;
use ossup_sign::{Credentials, CredentialsProvider, RequestParts, Signer};

use crate::ResponseBody;
use crate::retry::{ERROR_BODY_LIMIT, clone_request};
use crate::{Error, Transport};

/// The codes with which OSS refuses temporary credentials that fresh ones may cure.
const REFRESH_CODES: &[&str] = &[
    "SecurityTokenExpired",
    "InvalidSecurityToken",
    "InvalidAccessKeyId",
];

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

impl<T: Transport> Signing<T> {
    /// Signs `request` with `credentials` and sends it.
    async fn send_signed(
        &self,
        mut request: http::Request<Bytes>,
        resource: OssResource,
        credentials: &Credentials,
    ) -> Result<http::Response<ResponseBody>, Error> {
        let mut parts = RequestParts {
            method: request.method().clone(),
            bucket: resource.bucket,
            key: resource.key,
            query: resource.query,
            headers: std::mem::take(request.headers_mut()),
        };
        self.signer
            .sign(&mut parts, credentials, self.clock.now())
            .map_err(|e| Error::config("could not sign the request").with_source(e))?;
        *request.headers_mut() = parts.headers;
        self.inner.send(request).await
    }
}

#[async_trait::async_trait]
impl<T: Transport> Transport for Signing<T> {
    async fn send(
        &self,
        request: http::Request<Bytes>,
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
        // Only temporary credentials can be refreshed; keep the request to sign it again.
        let unsigned = credentials
            .security_token()
            .is_some()
            .then(|| clone_request(&request));
        let response = self
            .send_signed(request, resource.clone(), &credentials)
            .await?;
        let Some(unsigned) = unsigned else {
            return Ok(response);
        };
        if response.status() != http::StatusCode::FORBIDDEN {
            return Ok(response);
        }
        let (parts, body) = response.into_parts();
        let body = body.collect(ERROR_BODY_LIMIT).await.unwrap_or_default();
        let code = std::str::from_utf8(&body)
            .ok()
            .and_then(|text| ErrorResponse::from_xml(text).ok())
            .map(|doc| doc.code)
            .unwrap_or_default();
        let response = http::Response::from_parts(parts, ResponseBody::from_bytes(body));
        if !REFRESH_CODES.contains(&code.as_str()) {
            return Ok(response);
        }
        let fresh = match self.credentials.refresh().await {
            Ok(fresh) => fresh,
            Err(e) => {
                tracing::warn!(
                    "OSS refused the temporary credentials ({code}) and refreshing them failed: {e}"
                );
                return Ok(response);
            }
        };
        if fresh == credentials {
            return Ok(response);
        }
        tracing::info!(
            "OSS refused the temporary credentials ({code}); signing the request again with refreshed ones"
        );
        self.send_signed(unsigned, resource, &fresh).await
    }

    fn reports_progress(&self) -> bool {
        self.inner.reports_progress()
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
