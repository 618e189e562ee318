//! The signing layer: signs each attempt of a request just before it is sent, with fresh credentials
//! and the clock corrected by what the server said about the time.
//!
//! Signing per attempt (not once per request) keeps a retried request's date current after a long
//! backoff and lets temporary credentials be refreshed mid-upload. When OSS refuses temporary
//! credentials (`SecurityTokenExpired`, `InvalidSecurityToken`, `InvalidAccessKeyId` for a key that
//! came with a token), the layer asks the provider to [`refresh`](CredentialsProvider::refresh) and,
//! given different credentials, signs and sends the request once more.
//!
//! Temporary credentials sent over plain `http://` to a host that is not this machine cross the
//! network in the clear (the token travels as a header): the layer warns of it, once per client.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use ossup_proto::ErrorCode;
use ossup_sign::{Credentials, CredentialsProvider, RequestParts, Signer};

use crate::ResponseBody;
use crate::wire::{clone_request, read_error_answer};
use crate::{Error, Transport};

/// The clock signatures are dated by; it lives in its own module, shared with the retry layer.
pub use crate::clock::Clock;

/// The codes with which OSS refuses temporary credentials that fresh ones may cure.
const REFRESH_CODES: &[ErrorCode] = &[
    ErrorCode::SecurityTokenExpired,
    ErrorCode::InvalidSecurityToken,
    ErrorCode::InvalidAccessKeyId,
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

/// A transport that signs every request before handing it to the inner transport.
#[derive(Debug)]
pub struct Signing<T> {
    inner: T,
    signer: Arc<dyn Signer>,
    credentials: Arc<dyn CredentialsProvider>,
    clock: Clock,
    /// Whether the warning about a token over plain HTTP was given.
    warned_plain_http: AtomicBool,
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
            warned_plain_http: AtomicBool::new(false),
        }
    }

    /// Warns, the first time only, when `request` would carry a security token in the clear to
    /// another machine.
    fn warn_of_token_in_the_clear(
        &self,
        request: &http::Request<Bytes>,
        credentials: &Credentials,
    ) {
        if credentials.security_token().is_none()
            || request.uri().scheme_str() != Some("http")
            || request.uri().host().is_none_or(is_loopback)
            || self.warned_plain_http.swap(true, Ordering::Relaxed)
        {
            return;
        }
        tracing::warn!(
            host = request.uri().host().unwrap_or_default(),
            "temporary (STS) credentials are sent over plain http:// to a host that is not this \
             machine: anyone on the network path can read the security token and use it until it \
             expires; use an https:// endpoint"
        );
    }
}

/// Whether `host` (as a URI names it: an IPv6 address in brackets) is this machine.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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
        let credentials = self
            .credentials
            .credentials()
            .await
            .map_err(credentials_error)?;
        self.warn_of_token_in_the_clear(&request, &credentials);
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
        let (answer, response) = read_error_answer(response).await;
        let Some(code) = answer
            .service
            .error_code()
            .filter(|code| REFRESH_CODES.contains(code))
        else {
            return Ok(response);
        };
        let code = code.as_str();
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

/// The error of a provider that could not give credentials: one that says its failure is transient
/// (a credentials service that timed out) is retried like a lost connection; any other is final.
fn credentials_error(error: ossup_sign::CredentialsError) -> Error {
    let transient = error.is_transient();
    let message = if transient {
        "could not get credentials to sign the request; the provider says trying again may help"
    } else {
        "could not get credentials to sign the request; check the credentials provider's configuration"
    };
    Error::config(message)
        .with_source(error)
        .set_retryable(transient)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RetryConfig;
    use crate::retry::Retry;
    use ossup_sign::{CredentialsError, V4Signer};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    /// Fails the first `failures` calls with `failure`, then gives credentials.
    #[derive(Debug)]
    struct Flaky {
        failures: u32,
        transient: bool,
        calls: AtomicU32,
    }

    #[async_trait::async_trait]
    impl CredentialsProvider for Flaky {
        async fn credentials(&self) -> Result<Credentials, CredentialsError> {
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
                let message = "the credentials service did not answer".to_owned();
                return Err(if self.transient {
                    CredentialsError::Transient(message)
                } else {
                    CredentialsError::Provider(message)
                });
            }
            Ok(Credentials::new("ak", "sk"))
        }
    }

    /// Answers 200 to every request, and counts them.
    #[derive(Debug, Default)]
    struct Accepts {
        calls: AtomicU32,
    }

    #[async_trait::async_trait]
    impl Transport for Accepts {
        async fn send(
            &self,
            _request: http::Request<Bytes>,
        ) -> Result<http::Response<ResponseBody>, Error> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(http::Response::new(ResponseBody::from_bytes("")))
        }

        fn reports_progress(&self) -> bool {
            false
        }
    }

    fn layers(provider: Arc<Flaky>) -> (Retry<Signing<Arc<Accepts>>>, Arc<Accepts>) {
        let transport = Arc::new(Accepts::default());
        let signing = Signing::new(
            transport.clone(),
            Arc::new(V4Signer::new("cn-hangzhou")),
            provider,
            Clock::new(),
        );
        let config = RetryConfig::default()
            .max_attempts(4)
            .backoff(Duration::from_millis(1), Duration::from_millis(2));
        (Retry::new(signing, config), transport)
    }

    fn request() -> http::Request<Bytes> {
        let mut request = http::Request::builder()
            .uri("http://127.0.0.1:9/b/k")
            .body(Bytes::new())
            .unwrap();
        request.extensions_mut().insert(OssResource {
            bucket: Some("b".into()),
            key: Some("k".into()),
            query: Vec::new(),
        });
        request
    }

    #[tokio::test]
    async fn a_transient_credentials_failure_is_retried_like_a_lost_connection() {
        let provider = Arc::new(Flaky {
            failures: 2,
            transient: true,
            calls: AtomicU32::new(0),
        });
        let (layers, transport) = layers(provider.clone());
        let response = layers.send(request()).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(provider.calls.load(Ordering::SeqCst), 3);
        assert_eq!(transport.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_permanent_credentials_failure_is_final() {
        let provider = Arc::new(Flaky {
            failures: 1,
            transient: false,
            calls: AtomicU32::new(0),
        });
        let err = layers(provider.clone())
            .0
            .send(request())
            .await
            .unwrap_err();
        assert!(!err.is_retryable(), "{err}");
        assert!(err.to_string().contains("credentials"), "{err}");
        assert_eq!(provider.calls.load(Ordering::SeqCst), 1);
    }

    /// A sink for formatted tracing output.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// How many times sending three requests to `uri` with `credentials` warned of a token in the
    /// clear. Nothing leaves this process: the transport answers every request itself.
    async fn warnings_for(uri: &str, credentials: Credentials) -> usize {
        let signing = Signing::new(
            Arc::new(Accepts::default()),
            Arc::new(V4Signer::new("cn-hangzhou")),
            Arc::new(credentials),
            Clock::new(),
        );
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        for _ in 0..3 {
            let mut request = request();
            *request.uri_mut() = uri.parse().unwrap();
            signing.send(request).await.unwrap();
        }
        drop(guard);
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(!log.contains("STS-TOKEN-VALUE"), "{log}");
        log.matches("plain http://").count()
    }

    #[tokio::test]
    async fn a_token_over_plain_http_to_another_host_is_warned_of_once_per_client() {
        let sts = || Credentials::new("ak", "sk").with_security_token("STS-TOKEN-VALUE");
        assert_eq!(warnings_for("http://oss.example.com/b/k", sts()).await, 1);
        assert_eq!(warnings_for("http://10.1.2.3:9000/b/k", sts()).await, 1);
        for quiet in [
            "https://oss.example.com/b/k",
            "http://127.0.0.1:9/b/k",
            "http://127.8.0.1:9/b/k",
            "http://localhost:9/b/k",
            "http://[::1]:9/b/k",
        ] {
            assert_eq!(warnings_for(quiet, sts()).await, 0, "{quiet}");
        }
        // Long-lived keys carry no token to give away.
        assert_eq!(
            warnings_for("http://oss.example.com/b/k", Credentials::new("ak", "sk")).await,
            0
        );
    }
}
