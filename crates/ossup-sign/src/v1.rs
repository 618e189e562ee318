//! OSS signature V1: `Authorization: OSS <id>:base64(HMAC-SHA1(secret, StringToSign))`.
//!
//! ```text
//! StringToSign = VERB \n Content-MD5 \n Content-Type \n Date \n CanonicalizedOSSHeaders CanonicalizedResource
//! ```

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use http::header::{CONTENT_TYPE, DATE};
use ossup_proto::headers::{OSS_DATE, OSS_PREFIX, SECURITY_TOKEN};
use sha1::Sha1;

use crate::canonical::{self, header_bytes};
use crate::{Credentials, RequestParts, SignError, SignatureVersion, Signer};

/// The `Authorization` scheme of V1.
pub(crate) const SCHEME: &str = "OSS";

/// The query parameters V1 signs (the sub-resources), as oss2 `auth.py` `_subresource_key_set` lists them.
/// Every other parameter, `max-parts`, `part-number-marker` and `encoding-type` among them, is not signed.
pub const SIGNED_SUBRESOURCES: &[&str] = &[
    "accessPoint",
    "accessPointPolicy",
    "acl",
    "append",
    "asyncFetch",
    "bucketArchiveDirectRead",
    "bucketInfo",
    "callback",
    "callback-var",
    "cname",
    "comp",
    "continuation-token",
    "cors",
    "delete",
    "encryption",
    "endTime",
    "group",
    "httpsConfig",
    "inventory",
    "inventoryId",
    "lifecycle",
    "link",
    "live",
    "location",
    "logging",
    "metaQuery",
    "objectInfo",
    "objectMeta",
    "partNumber",
    "policy",
    "position",
    "publicAccessBlock",
    "qos",
    "qosInfo",
    "qosRequester",
    "redundancyTransition",
    "referer",
    "regionList",
    "replication",
    "replicationLocation",
    "replicationProgress",
    "requestPayment",
    "requesterQosInfo",
    "resourceGroup",
    "resourcePool",
    "resourcePoolBuckets",
    "resourcePoolInfo",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "security-token",
    "sequential",
    "startTime",
    "stat",
    "status",
    "style",
    "styleName",
    "symlink",
    "tagging",
    "transferAcceleration",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "vod",
    "website",
    "worm",
    "wormExtend",
    "wormId",
    "x-oss-ac-forward-allow",
    "x-oss-ac-source-ip",
    "x-oss-ac-subnet-mask",
    "x-oss-ac-vpc-id",
    "x-oss-access-point-name",
    "x-oss-async-process",
    "x-oss-process",
    "x-oss-redundancy-transition-taskid",
    "x-oss-request-payer",
    "x-oss-target-redundancy-type",
    "x-oss-traffic-limit",
    "x-oss-write-get-object-response",
];

/// Signs with OSS signature V1 (HMAC-SHA1).
///
/// Sets `Date` (RFC 1123) unless the request already has `Date` or `x-oss-date`, and
/// `x-oss-security-token` for temporary credentials, then `Authorization`. A request re-signed for a
/// retry keeps the date it already carries, so build a fresh [`RequestParts`] for each attempt.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use ossup_sign::{Credentials, RequestParts, Signer, V1Signer};
///
/// let mut request = RequestParts::new(http::Method::POST, Some("bucket"), Some("a/b.bin"))
///     .with_query("uploads", "");
/// let now = UNIX_EPOCH + Duration::from_secs(1_672_223_261);
/// V1Signer.sign(&mut request, &Credentials::new("ak", "sk"), now).unwrap();
/// assert_eq!(request.headers["date"], "Wed, 28 Dec 2022 10:27:41 GMT");
/// assert!(V1Signer::string_to_sign(&request).ends_with("\n/bucket/a/b.bin?uploads"));
/// assert!(request.headers["authorization"].to_str().unwrap().starts_with("OSS ak:"));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct V1Signer;

impl V1Signer {
    /// The V1 string to sign of a request whose headers are final.
    ///
    /// The date slot holds the `Date` header, or `x-oss-date` when there is no `Date`. Header bytes that
    /// are not UTF-8 are shown here as U+FFFD but signed as they are.
    pub fn string_to_sign(request: &RequestParts) -> String {
        let date = date_slot(request).map(|(_, value)| value);
        String::from_utf8_lossy(&string_to_sign_bytes(request, date.as_deref())).into_owned()
    }

    /// The V1 signature of a request whose headers are final: base64 of HMAC-SHA1 over the string to sign.
    pub fn signature(request: &RequestParts, access_key_secret: &str) -> String {
        let date = date_slot(request).map(|(_, value)| value);
        let mac = mac(
            access_key_secret,
            &string_to_sign_bytes(request, date.as_deref()),
        );
        BASE64.encode(mac.finalize().into_bytes())
    }
}

impl Signer for V1Signer {
    fn sign(
        &self,
        request: &mut RequestParts,
        credentials: &Credentials,
        now: SystemTime,
    ) -> Result<(), SignError> {
        let time = canonical::signing_time(now)?;
        if !request.headers.contains_key(DATE) && !request.headers.contains_key(OSS_DATE) {
            canonical::set_header(&mut request.headers, "date", &canonical::http_date(time))?;
        }
        if let Some(token) = credentials.security_token() {
            canonical::set_header(&mut request.headers, SECURITY_TOKEN, token)?;
        }
        let signature = Self::signature(request, credentials.access_key_secret());
        canonical::set_header(
            &mut request.headers,
            "authorization",
            &format!("{SCHEME} {}:{signature}", credentials.access_key_id()),
        )
    }

    fn version(&self) -> SignatureVersion {
        SignatureVersion::V1
    }
}

/// Which header fills the date slot, and its value: `Date`, else `x-oss-date`.
pub(crate) fn date_slot(request: &RequestParts) -> Option<(&'static str, Vec<u8>)> {
    header_bytes(&request.headers, DATE.as_str())
        .map(|v| ("date", v))
        .or_else(|| header_bytes(&request.headers, OSS_DATE).map(|v| (OSS_DATE, v)))
}

/// The string to sign as bytes, with `date` in the date slot (empty when `None`).
pub(crate) fn string_to_sign_bytes(request: &RequestParts, date: Option<&[u8]>) -> Vec<u8> {
    let headers = &request.headers;
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(request.method.as_str().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&header_bytes(headers, "content-md5").unwrap_or_default());
    out.push(b'\n');
    out.extend_from_slice(&header_bytes(headers, CONTENT_TYPE.as_str()).unwrap_or_default());
    out.push(b'\n');
    out.extend_from_slice(date.unwrap_or_default());
    out.push(b'\n');

    // `HeaderMap` keys are lowercase already; `keys()` yields each name once.
    let mut oss_headers: Vec<&str> = headers
        .keys()
        .map(|name| name.as_str())
        .filter(|name| name.starts_with(OSS_PREFIX))
        .collect();
    oss_headers.sort_unstable();
    for name in oss_headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        out.extend_from_slice(&header_bytes(headers, name).unwrap_or_default());
        out.push(b'\n');
    }

    let path = canonical::resource_path(request.bucket.as_deref(), request.key.as_deref());
    out.extend_from_slice(path.as_bytes());
    let mut subresources: Vec<(&str, &str)> = request
        .query
        .iter()
        .filter(|(name, _)| SIGNED_SUBRESOURCES.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    subresources.sort_unstable();
    for (i, (name, value)) in subresources.into_iter().enumerate() {
        out.push(if i == 0 { b'?' } else { b'&' });
        out.extend_from_slice(name.as_bytes());
        if !value.is_empty() {
            out.push(b'=');
            out.extend_from_slice(value.as_bytes());
        }
    }
    out
}

/// HMAC-SHA1 keyed by the secret, over `string_to_sign`.
pub(crate) fn mac(access_key_secret: &str, string_to_sign: &[u8]) -> Hmac<Sha1> {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(access_key_secret.as_bytes())
        .expect("HMAC accepts a key of any length");
    mac.update(string_to_sign);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subresource_list_is_sorted_and_unique() {
        assert!(SIGNED_SUBRESOURCES.windows(2).all(|w| w[0] < w[1]));
    }
}
