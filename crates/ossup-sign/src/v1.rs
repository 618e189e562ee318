//! OSS signature V1: `Authorization: OSS <id>:base64(HMAC-SHA1(secret, StringToSign))`.

use std::time::SystemTime;

use crate::{Credentials, RequestParts, SignError, SignatureVersion, Signer};

/// Signs with OSS signature V1 (HMAC-SHA1).
///
/// Sets `Date` (RFC 1123) unless the request already has one, and `x-oss-security-token` for
/// temporary credentials, then `Authorization`.
#[derive(Debug, Clone, Copy, Default)]
pub struct V1Signer;

impl V1Signer {
    /// The V1 string to sign of a request whose headers are final.
    pub fn string_to_sign(request: &RequestParts) -> String {
        let _ = request;
        todo!("V1 string to sign")
    }
}

impl Signer for V1Signer {
    fn sign(
        &self,
        request: &mut RequestParts,
        credentials: &Credentials,
        now: SystemTime,
    ) -> Result<(), SignError> {
        let _ = (request, credentials, now);
        todo!("V1 sign")
    }

    fn version(&self) -> SignatureVersion {
        SignatureVersion::V1
    }
}
