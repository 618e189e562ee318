//! Where requests go: the endpoint, and how a bucket and key become a URL (path-style or
//! virtual-hosted).

use std::net::IpAddr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::Error;

/// Characters left as they are in a path: unreserved ones and `/`.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Characters left as they are in a query name or value: unreserved ones.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// An OSS endpoint and its addressing style.
///
/// Path-style (`http://ENDPOINT/BUCKET/KEY`) is chosen for an IP address or `localhost`, as oss2 does;
/// virtual-hosted (`http://BUCKET.ENDPOINT/KEY`) otherwise. [`with_path_style`](Self::with_path_style)
/// overrides the choice.
///
/// ```
/// use ossup::Endpoint;
/// let local = Endpoint::parse("http://127.0.0.1:9000").unwrap();
/// assert!(local.is_path_style());
/// assert_eq!(local.object_url("b", Some("a b/c"), &[("uploads".into(), "".into())]), "http://127.0.0.1:9000/b/a%20b/c?uploads");
///
/// let oss = Endpoint::parse("oss-cn-hangzhou.aliyuncs.com").unwrap();
/// assert_eq!(oss.object_url("b", Some("k"), &[]), "http://b.oss-cn-hangzhou.aliyuncs.com/k");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    scheme: String,
    authority: String,
    path_style: bool,
}

impl Endpoint {
    /// Parses `http://host[:port]`, `https://host[:port]` or a bare `host[:port]` (taken as `http`).
    pub fn parse(endpoint: &str) -> Result<Self, Error> {
        let trimmed = endpoint.trim();
        let (scheme, rest) = match trimmed.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None => ("http".to_owned(), trimmed),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let bad = |why: &str| {
            Error::config(format!(
                "endpoint {endpoint:?} is not valid: {why}; expected e.g. http://oss-cn-hangzhou.aliyuncs.com or http://127.0.0.1:9000"
            ))
        };
        if scheme != "http" && scheme != "https" {
            return Err(bad("the scheme must be http or https"));
        }
        if rest.is_empty() {
            return Err(bad("no host"));
        }
        if rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(bad("it must be a host and optional port, without a path"));
        }
        let authority: http::uri::Authority = rest.parse().map_err(|_| bad("not a host[:port]"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let path_style = host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok();
        Ok(Self {
            scheme,
            authority: authority.as_str().to_ascii_lowercase(),
            path_style,
        })
    }

    /// Forces path-style (`true`) or virtual-hosted (`false`) addressing.
    pub fn with_path_style(mut self, path_style: bool) -> Self {
        self.path_style = path_style;
        self
    }

    /// Whether buckets go in the path rather than the host name.
    pub fn is_path_style(&self) -> bool {
        self.path_style
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The host and port of the endpoint.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The URL of `key` in `bucket` (or of the bucket when `key` is `None`), with `query` encoded.
    pub fn object_url(
        &self,
        bucket: &str,
        key: Option<&str>,
        query: &[(String, String)],
    ) -> String {
        let key_path = key
            .map(|k| utf8_percent_encode(k, PATH).to_string())
            .unwrap_or_default();
        let mut url = if self.path_style {
            format!(
                "{}://{}/{}/{}",
                self.scheme, self.authority, bucket, key_path
            )
        } else {
            format!(
                "{}://{}.{}/{}",
                self.scheme, bucket, self.authority, key_path
            )
        };
        for (i, (name, value)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.extend(utf8_percent_encode(name, QUERY));
            if !value.is_empty() {
                url.push('=');
                url.extend(utf8_percent_encode(value, QUERY));
            }
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_and_localhost_endpoints_are_path_style() {
        assert!(
            Endpoint::parse("http://127.0.0.1:9000")
                .unwrap()
                .is_path_style()
        );
        assert!(Endpoint::parse("localhost:9000").unwrap().is_path_style());
        assert!(
            Endpoint::parse("http://[::1]:9000")
                .unwrap()
                .is_path_style()
        );
        assert!(
            !Endpoint::parse("https://oss-cn-hangzhou.aliyuncs.com")
                .unwrap()
                .is_path_style()
        );
    }

    #[test]
    fn bad_endpoints_say_what_is_wrong() {
        for bad in ["ftp://x", "", "http://", "http://host/path"] {
            let err = Endpoint::parse(bad).unwrap_err();
            assert!(err.to_string().contains("expected e.g."), "{err}");
        }
    }

    #[test]
    fn keys_and_query_values_are_percent_encoded() {
        let e = Endpoint::parse("http://127.0.0.1:1").unwrap();
        assert_eq!(
            e.object_url(
                "b",
                Some("dir/ü?&=+.txt"),
                &[("uploadId".into(), "a+b/c=".into())]
            ),
            "http://127.0.0.1:1/b/dir/%C3%BC%3F%26%3D%2B.txt?uploadId=a%2Bb%2Fc%3D"
        );
        assert_eq!(e.object_url("b", None, &[]), "http://127.0.0.1:1/b/");
    }
}
