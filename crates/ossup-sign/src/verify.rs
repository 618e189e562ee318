//! Server-side verification: parse `Authorization`, sign the request again, compare.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Mac;
use http::header::{AUTHORIZATION, DATE};
use ossup_proto::headers::{OSS_DATE, SECURITY_TOKEN};

use crate::canonical::{self, header_bytes};
use crate::{RequestParts, presign, v1, v4};

/// The signature versions OSS accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVersion {
    /// `OSS id:signature`, HMAC-SHA1.
    V1,
    /// `OSS4-HMAC-SHA256 Credential=…`, HMAC-SHA256.
    V4,
}

/// What a successful verification learned about the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The access key id that signed it.
    pub access_key_id: String,
    /// The signature version used.
    pub version: SignatureVersion,
    /// The region of a V4 signature's scope.
    pub region: Option<String>,
    /// The request time the signature covers.
    pub request_time: SystemTime,
    /// The `x-oss-security-token` the request carried, if any.
    pub security_token: Option<String>,
}

/// Why a request's signature was not accepted; each maps to the OSS error a server answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No `Authorization` header (OSS: 403 AccessDenied for an anonymous request to a private bucket).
    #[error("the request is not signed: no Authorization header")]
    MissingAuthorization,
    /// The `Authorization` header is not a V1 or V4 signature (OSS: 400 InvalidArgument).
    #[error("malformed Authorization header: {0}")]
    MalformedAuthorization(String),
    /// No usable `Date` / `x-oss-date` (OSS: 403 AccessDenied).
    #[error("the request has no valid date: {0}")]
    MissingDate(String),
    /// The key id is unknown (OSS: 403 InvalidAccessKeyId).
    #[error("unknown access key id {0:?}")]
    UnknownAccessKeyId(String),
    /// The request time is more than 15 minutes from `now` (OSS: 403 RequestTimeTooSkewed).
    #[error("request time is too far from the server's clock")]
    RequestTimeTooSkewed {
        /// The request's time.
        request_time: SystemTime,
        /// The server's time.
        server_time: SystemTime,
    },
    /// A presigned URL's validity has ended (OSS: 403 AccessDenied, "Request has expired.").
    #[error("the presigned URL expired")]
    Expired {
        /// When it expired.
        expires: SystemTime,
        /// The server's time.
        server_time: SystemTime,
    },
    /// The signature differs from the one computed here (OSS: 403 SignatureDoesNotMatch).
    #[error("signature does not match")]
    SignatureDoesNotMatch {
        /// The string to sign the server computed, which OSS returns in `<StringToSign>`.
        string_to_sign: String,
        /// For V4, the canonical request the server computed (`<CanonicalRequest>`).
        canonical_request: Option<String>,
        /// The signature the request carried.
        signature_provided: String,
        /// The key id that signed.
        access_key_id: String,
    },
}

/// Verifies the signature of `request` as of `now`, with `secret_for` giving the secret of a key id.
///
/// The request is signed again with the same code the signers use and compared in constant time.
/// Checks run in the order a server answers them: the `Authorization` header's form, the date, the key
/// id, the clock skew (15 minutes either way), then the signature.
///
/// V1 fills the date slot from `Date`, or from `x-oss-date` when there is no `Date`; when a request has
/// both and they differ, a signature over `x-oss-date` is accepted too (oss2 signs that one).
/// V4 reads `Authorization` fields by name, in any order, separated by `,` with optional spaces.
///
/// A request without `Authorization` may carry its signature in the query string, as a presigned
/// URL does ([`presign_v1`](crate::presign_v1), [`presign_v4`](crate::presign_v4)): it is valid
/// until it expires ([`VerifyError::Expired`]), with no clock-skew check.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use ossup_sign::{Credentials, RequestParts, Signer, V1Signer, VerifyError, verify};
///
/// let now = SystemTime::now();
/// let mut request = RequestParts::new(http::Method::GET, Some("b"), Some("k"));
/// V1Signer.sign(&mut request, &Credentials::new("ak", "sk"), now).unwrap();
/// let secrets = |id: &str| (id == "ak").then(|| "sk".to_owned());
/// assert!(verify(&request, secrets, now).is_ok());
/// let later = now + Duration::from_secs(16 * 60);
/// assert!(matches!(verify(&request, secrets, later), Err(VerifyError::RequestTimeTooSkewed { .. })));
/// ```
pub fn verify(
    request: &RequestParts,
    secret_for: impl Fn(&str) -> Option<String>,
    now: SystemTime,
) -> Result<Verified, VerifyError> {
    let Some(header) = request.headers.get(AUTHORIZATION) else {
        return if request.query_value(presign::V1_SIGNATURE).is_some() {
            verify_v1_presigned(request, secret_for, now)
        } else if request.query_value(presign::V4_VERSION).is_some() {
            verify_v4_presigned(request, secret_for, now)
        } else {
            Err(VerifyError::MissingAuthorization)
        };
    };
    let text = header.to_str().map_err(|_| {
        VerifyError::MalformedAuthorization("the header is not printable ASCII".to_owned())
    })?;
    match parse_authorization(text)? {
        Authorization::V1 {
            access_key_id,
            signature,
        } => verify_v1(request, access_key_id, signature, secret_for, now),
        Authorization::V4(claims) => verify_v4(request, claims, secret_for, now),
    }
}

/// The `Authorization` header, parsed.
#[derive(Debug, PartialEq, Eq)]
enum Authorization<'a> {
    V1 {
        access_key_id: &'a str,
        signature: &'a str,
    },
    V4(V4Claims<'a>),
}

fn malformed(reason: impl Into<String>) -> VerifyError {
    VerifyError::MalformedAuthorization(reason.into())
}

fn parse_authorization(text: &str) -> Result<Authorization<'_>, VerifyError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(malformed("the header is empty"));
    }
    let (scheme, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let rest = rest.trim();
    match scheme {
        v1::SCHEME => parse_v1(rest),
        v4::ALGORITHM => parse_v4(rest),
        other => Err(malformed(format!(
            "unsupported scheme {other:?}; expected \"{}\" (V1) or \"{}\" (V4)",
            v1::SCHEME,
            v4::ALGORITHM
        ))),
    }
}

fn parse_v1(rest: &str) -> Result<Authorization<'_>, VerifyError> {
    // Base64 has no ':', so the last one separates the key id from the signature.
    let (access_key_id, signature) = rest
        .rsplit_once(':')
        .ok_or_else(|| malformed("V1 expects \"OSS <AccessKeyId>:<Signature>\""))?;
    if access_key_id.is_empty() || signature.is_empty() {
        return Err(malformed(
            "V1 expects \"OSS <AccessKeyId>:<Signature>\" with neither part empty",
        ));
    }
    Ok(Authorization::V1 {
        access_key_id,
        signature,
    })
}

fn parse_v4(rest: &str) -> Result<Authorization<'_>, VerifyError> {
    let mut credential = None;
    let mut signature = None;
    let mut additional = None;
    for field in rest.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let (name, value) = field
            .split_once('=')
            .ok_or_else(|| malformed(format!("V4 field {field:?} is not name=value")))?;
        let slot = match name.trim() {
            "Credential" => &mut credential,
            "Signature" => &mut signature,
            "AdditionalHeaders" => &mut additional,
            other => return Err(malformed(format!("unknown V4 field {other:?}"))),
        };
        if slot.replace(value.trim()).is_some() {
            return Err(malformed(format!("V4 field {} appears twice", name.trim())));
        }
    }
    let credential = credential.ok_or_else(|| malformed("V4 Credential field is missing"))?;
    let signature = signature.ok_or_else(|| malformed("V4 Signature field is missing"))?;
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed("V4 Signature is not 64 hex digits"));
    }

    let (access_key_id, date, region) = parse_credential(credential)?;
    let additional_headers = additional.map(additional_headers).unwrap_or_default();
    Ok(Authorization::V4(V4Claims {
        access_key_id,
        date,
        region,
        additional_headers,
        signature,
    }))
}

/// A V4 additional-headers list (`a;b`), lowercase, empty names left out.
fn additional_headers(list: &str) -> Vec<String> {
    list.split(';')
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect()
}

/// `AK/yyyyMMdd/REGION/oss/aliyun_v4_request`, as the key id, the date and the region; split from
/// the right so the key id may hold '/'.
fn parse_credential(credential: &str) -> Result<(&str, &str, &str), VerifyError> {
    let expected = "Credential=AK/yyyyMMdd/REGION/oss/aliyun_v4_request";
    let mut parts = credential.rsplitn(5, '/');
    let (terminator, product, region, date, access_key_id) = match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some(t), Some(p), Some(r), Some(d), Some(a)) => (t, p, r, d, a),
        _ => {
            return Err(malformed(format!(
                "V4 Credential {credential:?} is not {expected}"
            )));
        }
    };
    if terminator != v4::TERMINATOR
        || product != v4::PRODUCT
        || region.is_empty()
        || access_key_id.is_empty()
        || date.len() != 8
        || !date.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(malformed(format!(
            "V4 Credential {credential:?} is not {expected}"
        )));
    }

    Ok((access_key_id, date, region))
}

fn lookup_secret(
    access_key_id: &str,
    secret_for: impl Fn(&str) -> Option<String>,
) -> Result<String, VerifyError> {
    secret_for(access_key_id)
        .ok_or_else(|| VerifyError::UnknownAccessKeyId(access_key_id.to_owned()))
}

fn check_skew(request_time: SystemTime, now: SystemTime) -> Result<(), VerifyError> {
    if canonical::within_skew(request_time, now) {
        Ok(())
    } else {
        Err(VerifyError::RequestTimeTooSkewed {
            request_time,
            server_time: now,
        })
    }
}

/// The `x-oss-security-token` a request carries, as a server reads it: the value without the spaces
/// HTTP drops around it. Any UTF-8, not only ASCII: a token a signer sent is reported (and then
/// refused as the wrong one), never taken for a missing one.
fn security_token(request: &RequestParts) -> Option<String> {
    token_header(request, SECURITY_TOKEN)
}

/// The header `name`'s value as a server reads a token from it.
fn token_header(request: &RequestParts, name: &str) -> Option<String> {
    let value = request.headers.get(name)?;
    String::from_utf8(value.as_bytes().trim_ascii().to_vec()).ok()
}

/// The security token of a V1-signed request: `x-oss-security-token`, else the unsigned
/// `security-token` header, where the official Python SDK V2's V1 signer puts it.
fn v1_security_token(request: &RequestParts) -> Option<String> {
    security_token(request).or_else(|| token_header(request, V1_SECURITY_TOKEN))
}

/// The header the Python SDK V2 sends a V1 request's security token in.
const V1_SECURITY_TOKEN: &str = "security-token";

fn parse_date_slot(name: &str, value: &[u8]) -> Result<SystemTime, VerifyError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(canonical::parse_any_date)
        .ok_or_else(|| {
            VerifyError::MissingDate(format!(
                "the {name} header {:?} is not an HTTP date (e.g. \"Wed, 28 Dec 2022 10:27:41 GMT\")",
                String::from_utf8_lossy(value)
            ))
        })
}

fn verify_v1(
    request: &RequestParts,
    access_key_id: &str,
    signature: &str,
    secret_for: impl Fn(&str) -> Option<String>,
    now: SystemTime,
) -> Result<Verified, VerifyError> {
    let (slot_name, slot_value) = v1::date_slot(request).ok_or_else(|| {
        VerifyError::MissingDate(
            "the request has neither a Date nor an x-oss-date header".to_owned(),
        )
    })?;
    let request_time = parse_date_slot(slot_name, &slot_value)?;
    let secret = lookup_secret(access_key_id, secret_for)?;
    check_skew(request_time, now)?;

    // A signature that is not base64 cannot match; it is still compared, against nothing, below.
    let provided = BASE64.decode(signature).unwrap_or_default();
    let verified = |request_time| Verified {
        access_key_id: access_key_id.to_owned(),
        version: SignatureVersion::V1,
        region: None,
        request_time,
        security_token: v1_security_token(request),
    };

    let string_to_sign = v1::string_to_sign_bytes(request, Some(&slot_value));
    if v1::mac(&secret, &string_to_sign)
        .verify_slice(&provided)
        .is_ok()
    {
        return Ok(verified(request_time));
    }
    // oss2 puts x-oss-date in the date slot even when it also sends Date.
    if slot_name == DATE.as_str()
        && let Some(oss_date) = header_bytes(&request.headers, OSS_DATE)
        && oss_date != slot_value
        && let Ok(oss_time) = parse_date_slot(OSS_DATE, &oss_date)
        && canonical::within_skew(oss_time, now)
        && v1::mac(&secret, &v1::string_to_sign_bytes(request, Some(&oss_date)))
            .verify_slice(&provided)
            .is_ok()
    {
        return Ok(verified(oss_time));
    }
    Err(VerifyError::SignatureDoesNotMatch {
        string_to_sign: String::from_utf8_lossy(&string_to_sign).into_owned(),
        canonical_request: None,
        signature_provided: signature.to_owned(),
        access_key_id: access_key_id.to_owned(),
    })
}

/// What a V4 `Authorization` header claims.
#[derive(Debug, PartialEq, Eq)]
struct V4Claims<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    additional_headers: Vec<String>,
    signature: &'a str,
}

fn verify_v4(
    request: &RequestParts,
    claims: V4Claims<'_>,
    secret_for: impl Fn(&str) -> Option<String>,
    now: SystemTime,
) -> Result<Verified, VerifyError> {
    let datetime = header_bytes(&request.headers, OSS_DATE).ok_or_else(|| {
        VerifyError::MissingDate("a V4 request needs an x-oss-date header".to_owned())
    })?;
    let request_time = std::str::from_utf8(&datetime)
        .ok()
        .and_then(canonical::parse_iso8601_basic)
        .ok_or_else(|| {
            VerifyError::MissingDate(format!(
                "x-oss-date {:?} is not yyyyMMddTHHmmssZ (e.g. 20231216T162057Z)",
                String::from_utf8_lossy(&datetime)
            ))
        })?;
    let secret = lookup_secret(claims.access_key_id, secret_for)?;
    check_skew(request_time, now)?;

    check_v4(
        request,
        &claims,
        &datetime,
        &secret,
        request_time,
        security_token(request),
    )
}

/// Signs `signed` again with `claims`' scope and additional headers at `datetime` and compares with
/// `claims.signature`: the check both forms of V4 (header and presigned URL) end in.
fn check_v4(
    signed: &RequestParts,
    claims: &V4Claims<'_>,
    datetime: &[u8],
    secret: &str,
    request_time: SystemTime,
    security_token: Option<String>,
) -> Result<Verified, VerifyError> {
    let scope = v4::scope(claims.date, claims.region);
    let canonical_request = v4::canonical_request_bytes(signed, &claims.additional_headers);
    let string_to_sign = v4::string_to_sign_bytes(datetime, &scope, &canonical_request);
    let provided = hex::decode(claims.signature).unwrap_or_default();
    if v4::mac(secret, claims.date, claims.region, &string_to_sign)
        .verify_slice(&provided)
        .is_ok()
    {
        return Ok(Verified {
            access_key_id: claims.access_key_id.to_owned(),
            version: SignatureVersion::V4,
            region: Some(claims.region.to_owned()),
            request_time,
            security_token,
        });
    }
    Err(VerifyError::SignatureDoesNotMatch {
        string_to_sign: String::from_utf8_lossy(&string_to_sign).into_owned(),
        canonical_request: Some(String::from_utf8_lossy(&canonical_request).into_owned()),
        signature_provided: claims.signature.to_owned(),
        access_key_id: claims.access_key_id.to_owned(),
    })
}

/// A V1 presigned URL: `OSSAccessKeyId`, `Expires` (Unix seconds, in the string to sign's date
/// slot) and `Signature` in the query.
fn verify_v1_presigned(
    request: &RequestParts,
    secret_for: impl Fn(&str) -> Option<String>,
    now: SystemTime,
) -> Result<Verified, VerifyError> {
    let query = |name| request.query_value(name).unwrap_or_default();
    let (access_key_id, expires_text, signature) = (
        query(presign::V1_ACCESS_KEY_ID),
        query(presign::V1_EXPIRES),
        query(presign::V1_SIGNATURE),
    );
    if access_key_id.is_empty() || signature.is_empty() {
        return Err(malformed(format!(
            "a V1 presigned URL needs {} and {}",
            presign::V1_ACCESS_KEY_ID,
            presign::V1_SIGNATURE
        )));
    }
    let expires = expires_text
        .parse::<u64>()
        .ok()
        .and_then(|secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
        .ok_or_else(|| {
            malformed(format!(
                "a V1 presigned URL's {} {expires_text:?} is not a time in Unix seconds",
                presign::V1_EXPIRES
            ))
        })?;
    let secret = lookup_secret(access_key_id, secret_for)?;
    if now > expires {
        return Err(VerifyError::Expired {
            expires,
            server_time: now,
        });
    }
    let provided = BASE64.decode(signature).unwrap_or_default();
    let string_to_sign = v1::string_to_sign_bytes(request, Some(expires_text.as_bytes()));
    if v1::mac(&secret, &string_to_sign)
        .verify_slice(&provided)
        .is_ok()
    {
        return Ok(Verified {
            access_key_id: access_key_id.to_owned(),
            version: SignatureVersion::V1,
            region: None,
            request_time: now,
            security_token: request
                .query_value(presign::V1_SECURITY_TOKEN)
                .map(str::to_owned),
        });
    }
    Err(VerifyError::SignatureDoesNotMatch {
        string_to_sign: String::from_utf8_lossy(&string_to_sign).into_owned(),
        canonical_request: None,
        signature_provided: signature.to_owned(),
        access_key_id: access_key_id.to_owned(),
    })
}

/// A V4 presigned URL: `x-oss-signature-version`, `x-oss-credential`, `x-oss-date`,
/// `x-oss-expires` and `x-oss-signature` in the query, every other parameter signed.
fn verify_v4_presigned(
    request: &RequestParts,
    secret_for: impl Fn(&str) -> Option<String>,
    now: SystemTime,
) -> Result<Verified, VerifyError> {
    let query = |name| request.query_value(name).unwrap_or_default();
    let version = query(presign::V4_VERSION);
    if version != v4::ALGORITHM {
        return Err(malformed(format!(
            "{} {version:?} is not {}",
            presign::V4_VERSION,
            v4::ALGORITHM
        )));
    }
    let (access_key_id, date, region) = parse_credential(query(presign::V4_CREDENTIAL))?;
    let datetime = query(presign::V4_DATE);
    let request_time = canonical::parse_iso8601_basic(datetime).ok_or_else(|| {
        VerifyError::MissingDate(format!(
            "{} {datetime:?} is not yyyyMMddTHHmmssZ (e.g. 20231216T162057Z)",
            presign::V4_DATE
        ))
    })?;
    let expires_text = query(presign::V4_EXPIRES);
    let expires_in = expires_text
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
        // 0 is a URL valid within its signing second: the Python SDK V2 writes it for a 1 s expiry.
        .filter(|d| *d <= presign::MAX_V4_EXPIRY)
        .ok_or_else(|| {
            malformed(format!(
                "{} {expires_text:?} is not 0 to {} seconds",
                presign::V4_EXPIRES,
                presign::MAX_V4_EXPIRY.as_secs()
            ))
        })?;
    let signature = query(presign::V4_SIGNATURE);
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed(format!(
            "{} is not 64 hex digits",
            presign::V4_SIGNATURE
        )));
    }
    let secret = lookup_secret(access_key_id, secret_for)?;
    let expires = request_time + expires_in;
    if now > expires {
        return Err(VerifyError::Expired {
            expires,
            server_time: now,
        });
    }
    let claims = V4Claims {
        access_key_id,
        date,
        region,
        additional_headers: additional_headers(query(presign::V4_ADDITIONAL_HEADERS)),
        signature,
    };
    // Every parameter is signed but the signature itself.
    let mut signed = request.clone();
    signed
        .query
        .retain(|(name, _)| name != presign::V4_SIGNATURE);
    let token = request
        .query_value(presign::V4_SECURITY_TOKEN)
        .map(str::to_owned);
    check_v4(
        &signed,
        &claims,
        datetime.as_bytes(),
        &secret,
        request_time,
        token,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &str = "e21d18daa82167720f9b1047ae7e7f1ce7cb77a31e8203a7d5f4624fa0284afe";

    fn v4(text: &str) -> V4Claims<'_> {
        match parse_authorization(text) {
            Ok(Authorization::V4(claims)) => claims,
            other => panic!("expected V4 claims from {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn v4_fields_parse_by_name_in_either_sdk_layout() {
        let go = format!(
            "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,AdditionalHeaders=abc;zabc,Signature={SIG}"
        );
        let oss2 = format!(
            "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request, Signature={SIG}, AdditionalHeaders=abc;zabc"
        );
        let (a, b) = (v4(&go), v4(&oss2));
        assert_eq!(a, b);
        assert_eq!(a.access_key_id, "ak");
        assert_eq!(a.date, "20231216");
        assert_eq!(a.region, "cn-hangzhou");
        assert_eq!(a.additional_headers, ["abc", "zabc"]);
    }

    #[test]
    fn v4_key_id_may_contain_a_slash() {
        let text = format!(
            "OSS4-HMAC-SHA256 Credential=a/b/20231216/cn-hangzhou/oss/aliyun_v4_request,Signature={SIG}"
        );
        assert_eq!(v4(&text).access_key_id, "a/b");
    }

    #[test]
    fn v1_splits_at_the_last_colon() {
        assert_eq!(
            parse_authorization("OSS ak:kSHKmLxlyEAKtZPkJhG9bZb5k7M=").unwrap(),
            Authorization::V1 {
                access_key_id: "ak",
                signature: "kSHKmLxlyEAKtZPkJhG9bZb5k7M="
            }
        );
    }

    #[test]
    fn malformed_headers_name_what_is_wrong() {
        let cases = [
            ("", "empty"),
            ("OSS", "OSS <AccessKeyId>:<Signature>"),
            ("OSS a", "OSS <AccessKeyId>:<Signature>"),
            ("OSS :sig", "neither part empty"),
            ("OSS ak:", "neither part empty"),
            ("OSS2 AccessKeyId:ak,Signature:x", "unsupported scheme"),
            ("OSS4-HMAC-SHA256", "Credential field is missing"),
            ("OSS4-HMAC-SHA256 garbage", "not name=value"),
            (
                "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request",
                "Signature field is missing",
            ),
            (
                "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,Signature=xyz",
                "64 hex",
            ),
            (
                "OSS4-HMAC-SHA256 Credential=ak/20231216,Signature=0",
                "64 hex",
            ),
            (
                &format!(
                    "OSS4-HMAC-SHA256 Credential=ak/2023121/cn-hangzhou/oss/aliyun_v4_request,Signature={SIG}"
                ),
                "is not Credential=",
            ),
            (
                &format!(
                    "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/s3/aws4_request,Signature={SIG}"
                ),
                "is not Credential=",
            ),
            (
                &format!(
                    "OSS4-HMAC-SHA256 Credential=ak/20231216/oss/aliyun_v4_request,Signature={SIG}"
                ),
                "is not Credential=",
            ),
            (
                &format!("OSS4-HMAC-SHA256 Signature={SIG},Signature={SIG}"),
                "appears twice",
            ),
            (
                &format!("OSS4-HMAC-SHA256 Foo=bar,Signature={SIG}"),
                "unknown V4 field",
            ),
        ];
        for (text, expected) in cases {
            match parse_authorization(text) {
                Err(VerifyError::MalformedAuthorization(reason)) => assert!(
                    reason.contains(expected),
                    "{text:?}: reason {reason:?} lacks {expected:?}"
                ),
                other => panic!("{text:?}: expected MalformedAuthorization, got {other:?}"),
            }
        }
    }
}
