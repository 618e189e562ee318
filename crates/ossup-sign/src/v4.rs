//! OSS signature V4: `OSS4-HMAC-SHA256`, scoped to a date and a region.
//!
//! ```text
//! CanonicalRequest = VERB \n URI \n Query \n Headers \n AdditionalHeaders \n HashedPayload
//! StringToSign     = OSS4-HMAC-SHA256 \n yyyyMMddTHHmmssZ \n yyyyMMdd/REGION/oss/aliyun_v4_request \n hex(sha256(CanonicalRequest))
//! Signature        = hex(HMAC-SHA256(SigningKey, StringToSign))
//! ```

use std::time::SystemTime;

use hmac::{Hmac, Mac};
use http::HeaderMap;
use ossup_proto::headers::{
    CONTENT_SHA256, OSS_DATE, OSS_PREFIX, SECURITY_TOKEN, UNSIGNED_PAYLOAD,
};
use sha2::{Digest, Sha256};

use crate::canonical::{self, header_bytes};
use crate::{Credentials, RequestParts, SignError, SignatureVersion, Signer};

/// The `Authorization` scheme and string-to-sign algorithm of V4.
pub(crate) const ALGORITHM: &str = "OSS4-HMAC-SHA256";
/// The product a V4 scope names for OSS.
pub(crate) const PRODUCT: &str = "oss";
/// The last element of a V4 scope.
pub(crate) const TERMINATOR: &str = "aliyun_v4_request";

/// Signs with OSS signature V4 (OSS4-HMAC-SHA256) for one region.
///
/// Sets `x-oss-date` and `Date` to the signing time, `x-oss-content-sha256: UNSIGNED-PAYLOAD` unless the
/// request carries a payload hash already, and `x-oss-security-token` (temporary credentials), then
/// `Authorization`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use ossup_sign::{Credentials, RequestParts, Signer, V4Signer};
///
/// let signer = V4Signer::new("cn-hangzhou");
/// let mut request = RequestParts::new(http::Method::DELETE, Some("bucket"), Some("k"))
///     .with_query("uploadId", "0004B9");
/// let now = UNIX_EPOCH + Duration::from_secs(1_702_743_657);
/// signer.sign(&mut request, &Credentials::new("ak", "sk"), now).unwrap();
/// assert_eq!(request.headers["x-oss-date"], "20231216T162057Z");
/// assert!(signer.canonical_request(&request).starts_with("DELETE\n/bucket/k\nuploadId=0004B9\n"));
/// let auth = request.headers["authorization"].to_str().unwrap();
/// assert!(auth.starts_with("OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,Signature="));
/// ```
#[derive(Debug, Clone)]
pub struct V4Signer {
    region: String,
    additional_headers: Vec<String>,
}

impl V4Signer {
    /// A signer for `region`, e.g. `cn-hangzhou` (without the `oss-` prefix).
    pub fn new(region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            additional_headers: Vec::new(),
        }
    }

    /// Also signs these headers (named in `AdditionalHeaders`), e.g. `host`.
    ///
    /// Names are compared without case. A header already signed by default (`x-oss-*`, `content-type`,
    /// `content-md5`) or absent from a request is left out of that request's list, as the SDKs do.
    pub fn with_additional_headers(
        mut self,
        names: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.additional_headers = names
            .into_iter()
            .map(|n| n.into().to_ascii_lowercase())
            .collect();
        self
    }

    /// The region this signer scopes to.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The V4 canonical request of a request whose headers are final (after [`sign`](Signer::sign)).
    ///
    /// Header bytes that are not UTF-8 are shown here as U+FFFD but signed as they are.
    pub fn canonical_request(&self, request: &RequestParts) -> String {
        let additional = self.additional_headers_for(&request.headers);
        String::from_utf8_lossy(&canonical_request_bytes(request, &additional)).into_owned()
    }

    /// The V4 string to sign of a request whose headers are final, dated by its `x-oss-date`.
    pub fn string_to_sign(&self, request: &RequestParts) -> String {
        let additional = self.additional_headers_for(&request.headers);
        let datetime = header_bytes(&request.headers, OSS_DATE).unwrap_or_default();
        let scope = scope(scope_date(&datetime), &self.region);
        let canonical = canonical_request_bytes(request, &additional);
        String::from_utf8_lossy(&string_to_sign_bytes(&datetime, &scope, &canonical)).into_owned()
    }

    /// The additional headers this signer names for a request with `headers`: lowercase, sorted, present,
    /// and not among those signed by default.
    fn additional_headers_for(&self, headers: &HeaderMap) -> Vec<String> {
        let mut names: Vec<String> = self
            .additional_headers
            .iter()
            .filter(|name| !is_signed_by_default(name) && headers.contains_key(name.as_str()))
            .cloned()
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

impl Signer for V4Signer {
    fn sign(
        &self,
        request: &mut RequestParts,
        credentials: &Credentials,
        now: SystemTime,
    ) -> Result<(), SignError> {
        let time = canonical::signing_time(now)?;
        let datetime = canonical::iso8601_basic(time);
        let headers = &mut request.headers;
        canonical::set_header(headers, OSS_DATE, &datetime)?;
        canonical::set_header(headers, "date", &canonical::http_date(time))?;
        if !headers.contains_key(CONTENT_SHA256) {
            canonical::set_header(headers, CONTENT_SHA256, UNSIGNED_PAYLOAD)?;
        }
        if let Some(token) = credentials.security_token() {
            canonical::set_header(headers, SECURITY_TOKEN, token)?;
        }

        let additional = self.additional_headers_for(&request.headers);
        let date = scope_date(datetime.as_bytes());
        let scope = scope(date, &self.region);
        let canonical = canonical_request_bytes(request, &additional);
        let string_to_sign = string_to_sign_bytes(datetime.as_bytes(), &scope, &canonical);
        let mac = mac(
            credentials.access_key_secret(),
            date,
            &self.region,
            &string_to_sign,
        );
        let signature = hex::encode(mac.finalize().into_bytes());

        let mut authorization = format!(
            "{ALGORITHM} Credential={}/{scope}",
            credentials.access_key_id()
        );
        if !additional.is_empty() {
            authorization.push_str(",AdditionalHeaders=");
            authorization.push_str(&additional.join(";"));
        }
        authorization.push_str(",Signature=");
        authorization.push_str(&signature);
        canonical::set_header(&mut request.headers, "authorization", &authorization)
    }

    fn version(&self) -> SignatureVersion {
        SignatureVersion::V4
    }
}

/// Headers V4 always signs when present.
fn is_signed_by_default(lowercase_name: &str) -> bool {
    lowercase_name.starts_with(OSS_PREFIX)
        || lowercase_name == "content-type"
        || lowercase_name == "content-md5"
}

/// The `yyyyMMdd` of a `yyyyMMddTHHmmssZ` (or the whole text when shorter or not UTF-8-safe).
fn scope_date(datetime: &[u8]) -> &str {
    let date = datetime.get(..8).unwrap_or(datetime);
    std::str::from_utf8(date).unwrap_or("")
}

/// `yyyyMMdd/REGION/oss/aliyun_v4_request`.
pub(crate) fn scope(date: &str, region: &str) -> String {
    format!("{date}/{region}/{PRODUCT}/{TERMINATOR}")
}

/// Percent-encodes every byte but `A-Za-z0-9-._~` (and `/` when `keep_slash`), as `%XX` uppercase.
fn uri_encode(out: &mut Vec<u8>, text: &str, keep_slash: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        }
    }
}

/// The canonical request as bytes, naming `additional` (lowercase) in its additional-headers line.
pub(crate) fn canonical_request_bytes(request: &RequestParts, additional: &[String]) -> Vec<u8> {
    let headers = &request.headers;
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(request.method.as_str().as_bytes());
    out.push(b'\n');

    let path = canonical::resource_path(request.bucket.as_deref(), request.key.as_deref());
    uri_encode(&mut out, &path, true);
    out.push(b'\n');

    // Every parameter is signed; sorting happens on the encoded forms, as the SDKs do.
    let mut query: Vec<(Vec<u8>, Vec<u8>)> = request
        .query
        .iter()
        .map(|(name, value)| {
            let (mut n, mut v) = (Vec::new(), Vec::new());
            uri_encode(&mut n, name, false);
            uri_encode(&mut v, value, false);
            (n, v)
        })
        .collect();
    query.sort_unstable();
    for (i, (name, value)) in query.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(name);
        if !value.is_empty() {
            out.push(b'=');
            out.extend_from_slice(value);
        }
    }
    out.push(b'\n');

    let mut signed: Vec<&str> = headers
        .keys()
        .map(|name| name.as_str())
        .filter(|name| is_signed_by_default(name) || additional.iter().any(|a| a == name))
        .collect();
    signed.sort_unstable();
    for name in signed {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        out.extend_from_slice(&header_bytes(headers, name).unwrap_or_default());
        out.push(b'\n');
    }
    out.push(b'\n');

    out.extend_from_slice(additional.join(";").as_bytes());
    out.push(b'\n');
    match header_bytes(headers, CONTENT_SHA256) {
        Some(hash) => out.extend_from_slice(&hash),
        None => out.extend_from_slice(UNSIGNED_PAYLOAD.as_bytes()),
    }
    out
}

/// `OSS4-HMAC-SHA256 \n datetime \n scope \n hex(sha256(canonical_request))`.
pub(crate) fn string_to_sign_bytes(
    datetime: &[u8],
    scope: &str,
    canonical_request: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(ALGORITHM.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(datetime);
    out.push(b'\n');
    out.extend_from_slice(scope.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(hex::encode(Sha256::digest(canonical_request)).as_bytes());
    out
}

/// HMAC-SHA256 over `string_to_sign`, keyed by the signing key derived from the secret and the scope.
pub(crate) fn mac(
    access_key_secret: &str,
    date: &str,
    region: &str,
    string_to_sign: &[u8],
) -> Hmac<Sha256> {
    fn hmac(key: &[u8], data: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts a key of any length");
        mac.update(data);
        mac
    }
    let secret = format!("aliyun_v4{access_key_secret}");
    let k_date = hmac(secret.as_bytes(), date.as_bytes())
        .finalize()
        .into_bytes();
    let k_region = hmac(&k_date, region.as_bytes()).finalize().into_bytes();
    let k_product = hmac(&k_region, PRODUCT.as_bytes()).finalize().into_bytes();
    let k_signing = hmac(&k_product, TERMINATOR.as_bytes())
        .finalize()
        .into_bytes();
    hmac(&k_signing, string_to_sign)
}
