//! Opening connections: TCP (`TCP_NODELAY`, keepalive), then TLS for `https://`, the whole bounded
//! by the connect timeout, and the search of a failed connection's error chain for its cause.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The connector of [`crate::HyperTransport`]: plain TCP for `http://`, TCP then a TLS handshake for
/// `https://`, given up after one deadline.
///
/// The TCP connector's own timeout bounds each address tried; this deadline also covers the
/// handshake, so a server that accepts the connection and then says nothing cannot hold a request
/// until the retry layer's much longer timeouts.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    inner: HttpsConnector<HttpConnector>,
    timeout: Duration,
}

impl Connector {
    pub(crate) fn new(inner: HttpsConnector<HttpConnector>, timeout: Duration) -> Self {
        Self { inner, timeout }
    }
}

impl Service<Uri> for Connector {
    type Response = MaybeHttpsStream<TokioIo<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(result) => result,
                Err(_) => Err(Box::new(ConnectTimedOut { timeout, tls }) as BoxError),
            }
        })
    }
}

/// No connection (and, for `https://`, no finished handshake) within the connect timeout.
#[derive(Debug)]
pub(crate) struct ConnectTimedOut {
    timeout: Duration,
    tls: bool,
}

impl fmt::Display for ConnectTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.tls {
            "TCP connect and TLS handshake"
        } else {
            "TCP connect"
        };
        write!(f, "{what} did not finish within {:?}", self.timeout)
    }
}

impl StdError for ConnectTimedOut {}

/// The first error of type `T` in `error`'s chain, looking inside `io::Error`s too: the TLS
/// stack reports a handshake failure as an `io::Error` wrapping the rustls error, which
/// `io::Error::source` skips.
pub(crate) fn find_cause<'a, T: StdError + 'static>(
    error: &'a (dyn StdError + 'static),
) -> Option<&'a T> {
    let mut next = Some(error);
    while let Some(current) = next {
        if let Some(found) = current.downcast_ref::<T>() {
            return Some(found);
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(found) = find_cause::<T>(inner)
        {
            return Some(found);
        }
        next = current.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_cause_looks_inside_io_errors() {
        let tls = rustls::Error::DecryptError;
        let wrapped = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            tls.clone(),
        ));
        let boxed: BoxError = Box::new(wrapped);
        assert_eq!(find_cause::<rustls::Error>(&*boxed), Some(&tls));
        assert!(find_cause::<ConnectTimedOut>(&*boxed).is_none());
    }
}
