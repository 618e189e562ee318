//! Addressing: from a request's host, path and query to a [`RequestContext`] naming the bucket, the
//! key and the API, before anything else looks at the request.
//!
//! Path-style (`/BUCKET/KEY`) and virtual-hosted (`Host: BUCKET.DOMAIN`) requests are both accepted.
//! A host is virtual-hosted when it ends with `.DOMAIN` (the server's base domain, `localhost` by
//! default); an IP address or the bare domain is path-style. The path is percent-decoded, so `%2F`
//! inside a key is a `/` of the key.

use http::Method;
use http::request::Parts;
use ossup_proto::limits::MAX_KEY_LEN;
use ossup_proto::{Api, ErrorCode, headers};
use ossup_sign::SIGNED_SUBRESOURCES;
use percent_encoding::percent_decode_str;

use crate::error::OssError;

/// How a request named its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Addressing {
    /// `Host: BUCKET.DOMAIN`, path `/KEY`.
    VirtualHosted,
    /// Path `/BUCKET/KEY`.
    PathStyle,
}

/// Everything known about a request before it is authenticated: what a fault rule matches on, what
/// the authenticator signs again and what a handler acts on.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    /// The id of this request (`x-oss-request-id`, `<RequestId>`).
    pub request_id: String,
    /// The host the client addressed, as OSS reports it in `<HostId>`.
    pub host_id: String,
    /// The HTTP method.
    pub method: Method,
    /// How the bucket was addressed.
    pub addressing: Addressing,
    /// The API the request calls.
    pub api: Api,
    /// The bucket (validated name).
    pub bucket: String,
    /// The object key (decoded, validated), for object-level APIs.
    pub key: Option<String>,
    /// Decoded query parameters in request order; a bare `?uploads` has an empty value.
    pub query: Vec<(String, String)>,
}

impl RequestContext {
    /// The first value of a query parameter.
    pub(crate) fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The object key; object-level APIs always have one.
    pub(crate) fn key(&self) -> &str {
        self.key.as_deref().unwrap_or_default()
    }

    /// The raw `partNumber` parameter.
    pub(crate) fn part_number(&self) -> Option<&str> {
        self.query("partNumber")
    }

    /// The `uploadId` parameter.
    pub(crate) fn upload_id(&self) -> Option<&str> {
        self.query("uploadId")
    }
}

/// The sub-resources OSS signs (V1) that the mock serves or may ignore. Any other signed
/// sub-resource names an API the mock does not serve (`?live`, `?vod`, `?metaQuery`, …): taken by
/// its method alone for the plain object or bucket API, it would answer as if it had done it, or
/// delete or overwrite the object of that key.
const SERVED_SUBRESOURCES: &[&str] = &[
    "bucketInfo",
    "callback",
    "callback-var",
    "continuation-token",
    "objectMeta",
    "partNumber",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "security-token",
    "sequential",
    "uploadId",
    "uploads",
    "x-oss-request-payer",
    "x-oss-traffic-limit",
];

/// Sub-resources of OSS APIs the mock does not serve that V1 does not sign. A request carrying
/// one, or a signed sub-resource not in [`SERVED_SUBRESOURCES`], is answered NotImplemented
/// rather than mistaken for the plain object or bucket API.
const UNSUPPORTED_SUBRESOURCES: &[&str] = &["uploadPartCopy"];

/// The host a request addressed: the `Host` header, else the URI's authority.
pub(crate) fn request_host(parts: &Parts) -> String {
    parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // An IPv6 literal: always path-style.
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(name, _)| name)
}

/// Whether a request to `host` (a `Host` header) names its bucket in the host: virtual-hosted
/// addressing, `BUCKET.DOMAIN[:PORT]` or an OSS endpoint's `BUCKET.oss-REGION.aliyuncs.com`.
pub(crate) fn names_bucket_in_host(host: &str, domain: &str) -> bool {
    bucket_in_host(&host_name(host).to_ascii_lowercase(), domain).is_some()
}

/// The bucket a host name (lowercase, without its port) names, and whether it came from an OSS
/// endpoint's name rather than the mock's domain: `BUCKET.DOMAIN`, or
/// `BUCKET.oss-REGION[-internal].aliyuncs.com` (a client given an OSS endpoint and sending to the
/// mock's address, as ali-oss does with an IP endpoint, names the bucket only there).
fn bucket_in_host<'a>(host: &'a str, domain: &str) -> Option<(&'a str, bool)> {
    let suffix = format!(".{}", domain.to_ascii_lowercase());
    if let Some(bucket) = host.strip_suffix(&suffix) {
        return (!bucket.is_empty()).then_some((bucket, false));
    }
    let (bucket, endpoint) = host.split_once('.')?;
    (!bucket.is_empty() && endpoint.starts_with("oss-") && endpoint.ends_with(".aliyuncs.com"))
        .then_some((bucket, true))
}

/// Whether `name` is a legal bucket name: 3-63 of lowercase letters, digits and `-`, starting and
/// ending with a letter or digit.
pub(crate) fn valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(|b| *b != b'-')
        && bytes.last().is_some_and(|b| *b != b'-')
}

fn invalid_bucket(name: &str) -> OssError {
    OssError::new(ErrorCode::InvalidBucketName)
        .message(
            "The specified bucket is not valid: a bucket name has 3 to 63 characters, lowercase letters, digits and hyphens, and starts and ends with a letter or digit.",
        )
        .field("BucketName", name)
}

fn invalid_key(key: &str, why: &str) -> OssError {
    OssError::new(ErrorCode::InvalidObjectName)
        .message(format!("The specified object is not valid: {why}."))
        .field("ObjectName", key)
}

/// Decodes one percent-encoded path piece; keys must be UTF-8.
fn decode_key(raw: &str) -> Result<String, OssError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| invalid_key(raw, "the key is not valid UTF-8"))
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn validate_key(key: &str) -> Result<(), OssError> {
    if key.starts_with('/') || key.starts_with('\\') {
        return Err(invalid_key(key, "the key must not start with '/' or '\\'"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(invalid_key(
            truncate_utf8(key, 64),
            &format!(
                "the key is {} bytes long; the limit is {MAX_KEY_LEN}",
                key.len()
            ),
        ));
    }
    Ok(())
}

/// Parses a query string into decoded pairs, in order.
///
/// A `+` is a space, as in form encoding: oss2 (through Python `requests`) writes a space in a query value
/// as `+` and a literal plus as `%2B`, while the Go SDK writes `%20`; reading `+` as a space accepts both.
/// Paths are not decoded this way: a `+` in a key is a plus.
pub(crate) fn parse_query(raw: &str) -> Result<Vec<(String, String)>, OssError> {
    let mut out = Vec::new();
    for piece in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
        let decode = |s: &str| {
            let spaced = s.replace('+', " ");
            percent_decode_str(&spaced)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| {
                    OssError::invalid_argument(
                        name,
                        s,
                        "A query parameter is not valid UTF-8 after percent-decoding.",
                    )
                })
        };
        out.push((decode(name)?, decode(value)?));
    }
    Ok(out)
}

/// Works out bucket, key and API of a request; `domain` is the server's base domain.
pub(crate) fn route(
    parts: &Parts,
    domain: &str,
    request_id: String,
    host_id: String,
) -> Result<RequestContext, OssError> {
    let host = host_name(&host_id).to_ascii_lowercase();
    let path = parts.uri.path();
    let path = path.strip_prefix('/').unwrap_or(path);
    let (addressing, bucket, raw_key) = match bucket_in_host(&host, domain) {
        // ali-oss with `sldEnable` names the bucket in an OSS endpoint's host and in the path too:
        // the path wins, as the SDK signs it (a key that starts with its own bucket's name is then
        // refused by the signature check, never stored under another key).
        Some((bucket, true))
            if path
                .strip_prefix(bucket)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')) =>
        {
            let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
            (Addressing::PathStyle, bucket.to_owned(), key)
        }
        Some((bucket, _)) => (Addressing::VirtualHosted, bucket.to_owned(), path),
        None => {
            let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
            let bucket = percent_decode_str(bucket)
                .decode_utf8()
                .map_err(|_| invalid_bucket(bucket))?
                .into_owned();
            (Addressing::PathStyle, bucket, key)
        }
    };
    let key = if raw_key.is_empty() {
        None
    } else {
        let key = decode_key(raw_key)?;
        validate_key(&key)?;
        Some(key)
    };
    let query = parse_query(parts.uri.query().unwrap_or(""))?;
    if bucket.is_empty() {
        return Err(if parts.method == Method::GET {
            OssError::new(ErrorCode::NotImplemented)
                .message("ListBuckets (GET / without a bucket) is not implemented by oss-mock.")
        } else {
            OssError::new(ErrorCode::MethodNotAllowed)
                .message("A request without a bucket must be GET / (ListBuckets).")
        });
    }
    if !valid_bucket_name(&bucket) {
        return Err(invalid_bucket(&bucket));
    }
    let has = |name: &str| query.iter().any(|(n, _)| n == name);
    // A sub-resource that names an API of its own is served for that API only: `DELETE /?delete`
    // is no DeleteBucket, `GET /KEY?location` no GetObject.
    let api = Api::classify(parts.method.as_str(), key.is_some(), has);
    let selects = |name: &str| match name {
        "delete" => Some(Api::DeleteMultipleObjects),
        "location" => Some(Api::GetBucketLocation),
        _ => None,
    };
    if let Some((name, _)) = query.iter().find(|(n, _)| {
        let n = n.as_str();
        UNSUPPORTED_SUBRESOURCES.contains(&n)
            || selects(n).is_some_and(|own| api != Some(own))
            || (SIGNED_SUBRESOURCES.contains(&n)
                && !SERVED_SUBRESOURCES.contains(&n)
                && selects(n).is_none())
    }) {
        return Err(OssError::new(ErrorCode::NotImplemented).message(format!(
            "The sub-resource ?{name} is not implemented by oss-mock."
        )));
    }
    // A copy is a PUT of the object or a part that names its source and has no body: taken as
    // PutObject or UploadPart, it would store nothing where the client asked for the source's bytes.
    let copy = parts.headers.contains_key(headers::COPY_SOURCE);
    let api = match api {
        Some(Api::PutObject) if copy => Some(Api::CopyObject),
        Some(_) if copy => {
            return Err(OssError::new(ErrorCode::NotImplemented).message(format!(
                "{} names a copy source; of the copies, oss-mock serves CopyObject (PUT of an object) only, not UploadPartCopy.",
                headers::COPY_SOURCE
            )));
        }
        api => api,
    };
    let api = api.ok_or_else(|| {
        OssError::new(ErrorCode::MethodNotAllowed).message(format!(
            "The method {} is not allowed against this resource.",
            parts.method
        ))
    })?;
    Ok(RequestContext {
        request_id,
        host_id,
        method: parts.method.clone(),
        addressing,
        api,
        bucket,
        key,
        query,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn plus_in_a_query_value_is_a_space_and_percent_2b_a_plus() {
        let pairs = super::parse_query("prefix=x+y&marker=a%2Bb&uploads").unwrap();
        assert_eq!(
            pairs,
            vec![
                ("prefix".to_owned(), "x y".to_owned()),
                ("marker".to_owned(), "a+b".to_owned()),
                ("uploads".to_owned(), String::new()),
            ]
        );
    }

    use super::*;

    fn parts(method: &str, uri: &str, host: &str) -> Parts {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", host)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    fn route_of(method: &str, uri: &str, host: &str) -> Result<RequestContext, OssError> {
        route(
            &parts(method, uri, host),
            "localhost",
            "R".into(),
            host.into(),
        )
    }

    #[test]
    fn path_style_decodes_the_key_and_its_slashes() {
        let ctx = route_of(
            "PUT",
            "/bucket/a%2Fb/c%20d?partNumber=1&uploadId=U",
            "127.0.0.1:9000",
        )
        .unwrap();
        assert_eq!(ctx.addressing, Addressing::PathStyle);
        assert_eq!(ctx.bucket, "bucket");
        assert_eq!(ctx.key.as_deref(), Some("a/b/c d"));
        assert_eq!(ctx.api, Api::UploadPart);
        assert_eq!(ctx.part_number(), Some("1"));
    }

    #[test]
    fn virtual_hosted_takes_the_bucket_from_the_host() {
        let ctx = route_of("POST", "/dir/key?uploads=", "bucket.localhost:9000").unwrap();
        assert_eq!(ctx.addressing, Addressing::VirtualHosted);
        assert_eq!(ctx.bucket, "bucket");
        assert_eq!(ctx.key.as_deref(), Some("dir/key"));
        assert_eq!(ctx.api, Api::InitiateMultipartUpload);
        let ctx = route_of("GET", "/?uploads", "bucket.localhost").unwrap();
        assert_eq!(ctx.api, Api::ListMultipartUploads);
        let ctx = route_of("PUT", "/dir/key", "bucket.oss-cn-hangzhou.aliyuncs.com").unwrap();
        assert_eq!(ctx.addressing, Addressing::VirtualHosted);
        assert_eq!(
            (ctx.bucket.as_str(), ctx.key.as_deref()),
            ("bucket", Some("dir/key"))
        );
        let ctx = route_of("GET", "/bucket/k", "oss-cn-hangzhou.aliyuncs.com").unwrap();
        assert_eq!(ctx.addressing, Addressing::PathStyle);
        // ali-oss's `sldEnable`: the bucket in the host and in the path.
        let ctx = route_of(
            "PUT",
            "/bucket/dir/key",
            "bucket.oss-cn-hangzhou.aliyuncs.com",
        )
        .unwrap();
        assert_eq!(ctx.addressing, Addressing::PathStyle);
        assert_eq!(
            (ctx.bucket.as_str(), ctx.key.as_deref()),
            ("bucket", Some("dir/key"))
        );
        // On the mock's own domain the host alone names the bucket, as before.
        let ctx = route_of("PUT", "/bucket/key", "bucket.localhost").unwrap();
        assert_eq!(ctx.key.as_deref(), Some("bucket/key"));
        let ctx = route_of("GET", "/bucket?bucketInfo", "localhost:1").unwrap();
        assert_eq!(ctx.addressing, Addressing::PathStyle);
        assert_eq!(ctx.api, Api::GetBucketInfo);
    }

    #[test]
    fn dot_segments_are_part_of_the_key() {
        let ctx = route_of("GET", "/bucket/../../etc/passwd", "127.0.0.1").unwrap();
        assert_eq!(ctx.key.as_deref(), Some("../../etc/passwd"));
        let ctx = route_of("GET", "/bucket/a/./b", "127.0.0.1").unwrap();
        assert_eq!(ctx.key.as_deref(), Some("a/./b"));
    }

    #[test]
    fn illegal_keys_and_buckets_are_refused() {
        let code = |r: Result<RequestContext, OssError>| r.unwrap_err().code;
        assert_eq!(
            code(route_of("GET", "/bucket//x", "127.0.0.1")),
            ErrorCode::InvalidObjectName
        );
        assert_eq!(
            code(route_of("GET", "/bucket/%5Cx", "127.0.0.1")),
            ErrorCode::InvalidObjectName
        );
        assert_eq!(
            code(route_of("GET", "/bucket/%FF", "127.0.0.1")),
            ErrorCode::InvalidObjectName
        );
        let long = "k".repeat(1024);
        assert_eq!(
            code(route_of("GET", &format!("/bucket/{long}"), "127.0.0.1")),
            ErrorCode::InvalidObjectName
        );
        assert!(route_of("GET", &format!("/bucket/{}", &long[..1023]), "127.0.0.1").is_ok());
        assert_eq!(
            code(route_of("GET", "/Bucket/x", "127.0.0.1")),
            ErrorCode::InvalidBucketName
        );
        assert_eq!(
            code(route_of("GET", "/ab/x", "127.0.0.1")),
            ErrorCode::InvalidBucketName
        );
        assert_eq!(
            code(route_of("GET", "/x", "-bad.localhost")),
            ErrorCode::InvalidBucketName
        );
        assert_eq!(
            code(route_of("GET", "/bucket/x?acl", "127.0.0.1")),
            ErrorCode::NotImplemented
        );
        assert_eq!(
            code(route_of("PATCH", "/bucket/x", "127.0.0.1")),
            ErrorCode::MethodNotAllowed
        );
        // Signed sub-resources of APIs the mock does not serve never reach the object APIs.
        for query in [
            "live",
            "live&status=disabled",
            "vod&endTime=1&startTime=0",
            "metaQuery",
        ] {
            for method in ["GET", "PUT", "DELETE", "POST"] {
                assert_eq!(
                    code(route_of(method, &format!("/bucket/x?{query}"), "127.0.0.1")),
                    ErrorCode::NotImplemented,
                    "{method} ?{query}"
                );
            }
        }
        assert_eq!(
            code(route_of("POST", "/bucket?asyncFetch", "127.0.0.1")),
            ErrorCode::NotImplemented
        );
        // Served for their own API only.
        assert_eq!(
            route_of("POST", "/bucket?delete", "127.0.0.1").unwrap().api,
            Api::DeleteMultipleObjects
        );
        assert_eq!(
            route_of("GET", "/bucket?location", "127.0.0.1")
                .unwrap()
                .api,
            Api::GetBucketLocation
        );
        for (method, uri) in [
            ("DELETE", "/bucket?delete"),
            ("PUT", "/bucket?location"),
            ("GET", "/bucket/k?location"),
            ("DELETE", "/bucket/k?delete"),
        ] {
            assert_eq!(
                code(route_of(method, uri, "127.0.0.1")),
                ErrorCode::NotImplemented,
                "{method} {uri}"
            );
        }
    }

    #[test]
    fn bucket_names_follow_the_oss_rules() {
        assert!(valid_bucket_name("abc"));
        assert!(valid_bucket_name("my-bucket-01"));
        assert!(!valid_bucket_name("ab"));
        assert!(!valid_bucket_name(&"a".repeat(64)));
        assert!(!valid_bucket_name("a_b"));
        assert!(!valid_bucket_name("abc-"));
        assert!(!valid_bucket_name("a.bc"));
    }
}
