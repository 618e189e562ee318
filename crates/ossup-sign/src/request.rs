//! The parts of a request that a signature covers, independent of how it is addressed on the wire.

use http::{HeaderMap, Method};

/// A request as the signer and the verifier see it: method, bucket, key, query and headers.
///
/// `bucket` and `key` are the logical names, never percent-encoded; the query holds decoded
/// `(name, value)` pairs in the order they were given, with an empty value for a bare parameter
/// (`?uploads`). How the request is addressed (path-style or virtual-hosted) does not change its
/// signature.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestParts {
    /// The HTTP method.
    pub method: Method,
    /// The bucket, or `None` for a service-level request.
    pub bucket: Option<String>,
    /// The object key, or `None` for a bucket-level request.
    pub key: Option<String>,
    /// Decoded query parameters, in request order.
    pub query: Vec<(String, String)>,
    /// The request headers; the signer adds its own here.
    pub headers: HeaderMap,
}

impl RequestParts {
    /// A request with no query and no headers.
    ///
    /// ```
    /// let r = ossup_sign::RequestParts::new(http::Method::GET, Some("b"), None::<&str>);
    /// assert_eq!(r.bucket.as_deref(), Some("b"));
    /// ```
    pub fn new(
        method: Method,
        bucket: Option<impl Into<String>>,
        key: Option<impl Into<String>>,
    ) -> Self {
        Self {
            method,
            bucket: bucket.map(Into::into),
            key: key.map(Into::into),
            query: Vec::new(),
            headers: HeaderMap::new(),
        }
    }

    /// Adds a query parameter, builder style; `""` as the value makes a bare parameter.
    pub fn with_query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Adds a header, builder style.
    ///
    /// # Panics
    /// When `name` or `value` is not a valid header name or value; use [`headers`](Self::headers)
    /// directly for untrusted input.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("valid header name"),
            http::HeaderValue::from_str(value).expect("valid header value"),
        );
        self
    }

    /// The value of a query parameter, when present.
    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}
