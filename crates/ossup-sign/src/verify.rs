//! Server-side verification: parse `Authorization`, sign the request again, compare.

use std::time::SystemTime;

use crate::RequestParts;

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
pub fn verify(
    request: &RequestParts,
    secret_for: impl Fn(&str) -> Option<String>,
    now: SystemTime,
) -> Result<Verified, VerifyError> {
    let _ = (request, secret_for, now);
    todo!("verify")
}
