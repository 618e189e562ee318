//! Authentication: every request's V1 or V4 signature is checked with `ossup_sign::verify`, and each
//! way it can fail becomes the error OSS answers with.

use std::collections::HashMap;
use std::time::SystemTime;

use http::HeaderMap;
use ossup_proto::ErrorCode;
use ossup_proto::limits::MAX_CLOCK_SKEW_SECS;
use ossup_sign::{RequestParts, Verified, VerifyError, verify};

use crate::error::OssError;
use crate::response::iso8601;
use crate::route::RequestContext;

/// Query parameters of a presigned URL, which the mock does not accept.
const PRESIGN_PARAMS: &[&str] = &["Signature", "OSSAccessKeyId", "x-oss-signature"];

/// Checks signatures against a fixed set of access keys.
#[derive(Debug, Clone)]
pub(crate) struct Authenticator {
    secrets: HashMap<String, String>,
}

impl Authenticator {
    /// An authenticator accepting these `(access key id, secret)` pairs.
    pub fn new(credentials: &[(String, String)]) -> Self {
        Self {
            secrets: credentials.iter().cloned().collect(),
        }
    }

    /// Verifies the request's signature as of `now`.
    pub fn authenticate(
        &self,
        ctx: &RequestContext,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Result<Verified, OssError> {
        let request = RequestParts {
            method: ctx.method.clone(),
            bucket: Some(ctx.bucket.clone()),
            key: ctx.key.clone(),
            query: ctx.query.clone(),
            headers: headers.clone(),
        };
        verify(&request, |id| self.secrets.get(id).cloned(), now)
            .map_err(|e| self.to_oss_error(ctx, e))
    }

    fn to_oss_error(&self, ctx: &RequestContext, err: VerifyError) -> OssError {
        match err {
            VerifyError::MissingAuthorization => {
                if PRESIGN_PARAMS.iter().any(|p| ctx.query(p).is_some()) {
                    OssError::new(ErrorCode::AccessDenied).message(
                        "Presigned URLs (signatures in the query string) are not supported by oss-mock; sign with the Authorization header.",
                    )
                } else {
                    OssError::new(ErrorCode::AccessDenied).message(
                        "You have no right to access this object because of bucket acl: the request carries no Authorization header.",
                    )
                }
            }
            VerifyError::MalformedAuthorization(why) => OssError::invalid_argument(
                "Authorization",
                "",
                format!("Authorization header is invalid: {why}."),
            ),
            VerifyError::MissingDate(why) => OssError::new(ErrorCode::AccessDenied).message(
                format!("The request has no valid Date or x-oss-date header: {why}."),
            ),
            VerifyError::UnknownAccessKeyId(id) => {
                OssError::new(ErrorCode::InvalidAccessKeyId).field("OSSAccessKeyId", id)
            }
            VerifyError::RequestTimeTooSkewed {
                request_time,
                server_time,
            } => OssError::new(ErrorCode::RequestTimeTooSkewed)
                .field("RequestTime", iso8601(request_time))
                .field("ServerTime", iso8601(server_time))
                .field(
                    "MaxAllowedSkewMilliseconds",
                    (MAX_CLOCK_SKEW_SECS * 1000).to_string(),
                ),
            VerifyError::SignatureDoesNotMatch {
                string_to_sign,
                canonical_request,
                signature_provided,
                access_key_id,
            } => {
                let mut e = OssError::new(ErrorCode::SignatureDoesNotMatch)
                    .field("StringToSign", string_to_sign);
                if let Some(canonical) = canonical_request {
                    e = e.field("CanonicalRequest", canonical);
                }
                e.field("SignatureProvided", signature_provided)
                    .field("OSSAccessKeyId", access_key_id)
            }
            other => OssError::new(ErrorCode::AccessDenied)
                .message(format!("The request could not be authenticated: {other}.")),
        }
    }
}
