//! Presigned URLs: the signature in the query string instead of an `Authorization` header, so that
//! someone without the secret can make the request until it expires.
//!
//! V1 (`OSSAccessKeyId`, `Expires`, `Signature`): the V1 string to sign with the expiry time (Unix
//! seconds) in the date slot; a security token goes in `security-token`, a signed sub-resource.
//! V4 (`x-oss-signature-version`, `x-oss-credential`, `x-oss-date`, `x-oss-expires`,
//! `x-oss-signature`, and `x-oss-additional-headers`, `x-oss-security-token` when needed): the V4
//! canonical request over every query parameter but the signature, with an unsigned payload.
//! [`verify`](crate::verify) reads both forms when a request has no `Authorization` header.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Mac;

use crate::canonical;
use crate::v4::{self, ALGORITHM};
use crate::{Credentials, RequestParts, SignError, v1};

/// The query parameters of a V1 presigned URL.
pub(crate) const V1_ACCESS_KEY_ID: &str = "OSSAccessKeyId";
/// The expiry time of a V1 presigned URL, in Unix seconds.
pub(crate) const V1_EXPIRES: &str = "Expires";
/// The signature of a V1 presigned URL.
pub(crate) const V1_SIGNATURE: &str = "Signature";
/// The security token of a V1 presigned URL (a signed sub-resource).
pub(crate) const V1_SECURITY_TOKEN: &str = "security-token";

/// The query parameters of a V4 presigned URL.
pub(crate) const V4_VERSION: &str = "x-oss-signature-version";
/// `AK/yyyyMMdd/REGION/oss/aliyun_v4_request`.
pub(crate) const V4_CREDENTIAL: &str = "x-oss-credential";
/// The signing time, `yyyyMMddTHHmmssZ`.
pub(crate) const V4_DATE: &str = "x-oss-date";
/// Seconds from the signing time the URL is valid for.
pub(crate) const V4_EXPIRES: &str = "x-oss-expires";
/// The signature, 64 hex digits.
pub(crate) const V4_SIGNATURE: &str = "x-oss-signature";
/// The headers signed beyond the default ones, `;`-separated.
pub(crate) const V4_ADDITIONAL_HEADERS: &str = "x-oss-additional-headers";
/// The security token of temporary credentials.
pub(crate) const V4_SECURITY_TOKEN: &str = "x-oss-security-token";

/// The longest a V4 presigned URL may be valid: seven days, as OSS allows.
pub const MAX_V4_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Adds a V1 signature valid until `expires` to `request`'s query: the URL made of it can be used
/// by anyone, with the same method and the signed headers (`Content-Type`, `Content-MD5`,
/// `x-oss-*`) it was signed with, until then.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use ossup_sign::{Credentials, RequestParts, presign_v1, verify};
///
/// let now = SystemTime::now();
/// let mut request = RequestParts::new(http::Method::GET, Some("bucket"), Some("key"));
/// presign_v1(&mut request, &Credentials::new("ak", "sk"), now + Duration::from_secs(60)).unwrap();
/// assert!(request.query_value("Signature").is_some());
/// let secrets = |id: &str| (id == "ak").then(|| "sk".to_owned());
/// assert!(verify(&request, secrets, now).is_ok());
/// assert!(verify(&request, secrets, now + Duration::from_secs(61)).is_err());
/// ```
pub fn presign_v1(
    request: &mut RequestParts,
    credentials: &Credentials,
    expires: SystemTime,
) -> Result<(), SignError> {
    let expires = expires
        .duration_since(UNIX_EPOCH)
        .map_err(|_| SignError::InvalidTime(expires))?
        .as_secs()
        .to_string();
    if let Some(token) = credentials.security_token() {
        request
            .query
            .push((V1_SECURITY_TOKEN.to_owned(), token.to_owned()));
    }
    let string_to_sign = v1::string_to_sign_bytes(request, Some(expires.as_bytes()));
    let signature = BASE64.encode(
        v1::mac(credentials.access_key_secret(), &string_to_sign)
            .finalize()
            .into_bytes(),
    );
    request.query.extend([
        (
            V1_ACCESS_KEY_ID.to_owned(),
            credentials.access_key_id().to_owned(),
        ),
        (V1_EXPIRES.to_owned(), expires),
        (V1_SIGNATURE.to_owned(), signature),
    ]);
    Ok(())
}

/// Adds a V4 signature for `region`, made at `now` and valid for `expires_in` (at most
/// [`MAX_V4_EXPIRY`]), to `request`'s query.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use ossup_sign::{Credentials, RequestParts, presign_v4, verify};
///
/// let now = SystemTime::now();
/// let mut request = RequestParts::new(http::Method::PUT, Some("bucket"), Some("key"));
/// let creds = Credentials::new("ak", "sk");
/// presign_v4(&mut request, &creds, "cn-hangzhou", now, Duration::from_secs(900)).unwrap();
/// assert_eq!(request.query_value("x-oss-expires"), Some("900"));
/// let secrets = |id: &str| (id == "ak").then(|| "sk".to_owned());
/// assert_eq!(verify(&request, secrets, now).unwrap().region.as_deref(), Some("cn-hangzhou"));
/// ```
pub fn presign_v4(
    request: &mut RequestParts,
    credentials: &Credentials,
    region: &str,
    now: SystemTime,
    expires_in: Duration,
) -> Result<(), SignError> {
    if expires_in.is_zero() || expires_in > MAX_V4_EXPIRY {
        return Err(SignError::InvalidExpiry(expires_in));
    }
    let time = canonical::signing_time(now)?;
    let datetime = canonical::iso8601_basic(time);
    let date = &datetime[..8];
    let scope = v4::scope(date, region);
    request.query.extend([
        (V4_VERSION.to_owned(), ALGORITHM.to_owned()),
        (
            V4_CREDENTIAL.to_owned(),
            format!("{}/{scope}", credentials.access_key_id()),
        ),
        (V4_DATE.to_owned(), datetime.clone()),
        (V4_EXPIRES.to_owned(), expires_in.as_secs().to_string()),
    ]);
    if let Some(token) = credentials.security_token() {
        request
            .query
            .push((V4_SECURITY_TOKEN.to_owned(), token.to_owned()));
    }
    let canonical = v4::canonical_request_bytes(request, &[]);
    let string_to_sign = v4::string_to_sign_bytes(datetime.as_bytes(), &scope, &canonical);
    let signature = hex::encode(
        v4::mac(
            credentials.access_key_secret(),
            date,
            region,
            &string_to_sign,
        )
        .finalize()
        .into_bytes(),
    );
    request.query.push((V4_SIGNATURE.to_owned(), signature));
    Ok(())
}
