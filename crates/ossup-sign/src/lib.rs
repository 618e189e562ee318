//! Signing and verifying OSS requests: V1 (HMAC-SHA1) and V4 (OSS4-HMAC-SHA256).
//!
//! One canonicalization serves both sides: a client signs a [`RequestParts`] with a [`Signer`], and the
//! mock server checks one with [`verify`], which signs again and compares. So a wire fact about what is
//! signed lives in one place.
//!
//! Credentials come from a [`CredentialsProvider`]: [`Credentials`] themselves (static), or
//! [`EnvCredentialsProvider`], which reads `OSS_ACCESS_KEY_ID`, `OSS_ACCESS_KEY_SECRET` and
//! `OSS_SESSION_TOKEN`, the names the official SDKs use.
//!
//! ```
//! use std::time::SystemTime;
//! use ossup_sign::{Credentials, RequestParts, Signer, V4Signer, verify};
//!
//! let creds = Credentials::new("test-ak", "test-sk");
//! let mut request = RequestParts::new(http::Method::PUT, Some("bucket"), Some("dir/key.bin"))
//!     .with_query("partNumber", "1")
//!     .with_query("uploadId", "0004B9");
//! let now = SystemTime::now();
//! V4Signer::new("cn-hangzhou").sign(&mut request, &creds, now).unwrap();
//! let verified = verify(&request, |id| (id == "test-ak").then(|| "test-sk".to_owned()), now).unwrap();
//! assert_eq!(verified.access_key_id, "test-ak");
//! ```

#![deny(missing_docs)]

mod canonical;
mod credentials;
mod presign;
mod request;
mod v1;
mod v4;
mod verify;

pub use credentials::{
    Credentials, CredentialsError, CredentialsProvider, ENV_ACCESS_KEY_ID, ENV_ACCESS_KEY_SECRET,
    ENV_SESSION_TOKEN, EnvCredentialsProvider,
};
pub use presign::{MAX_V4_EXPIRY, presign_v1, presign_v4};
pub use request::RequestParts;
pub use v1::{SIGNED_SUBRESOURCES, V1Signer};
pub use v4::V4Signer;
pub use verify::{SignatureVersion, Verified, VerifyError, verify};

use std::fmt::Debug;
use std::sync::Arc;
use std::time::SystemTime;

/// Signs a request: adds the date, the security token (for temporary credentials) and the
/// `Authorization` header to [`RequestParts::headers`].
///
/// Implementations are pure: the same request, credentials and time give the same headers.
/// `Arc<S>` and `Box<S>` are signers when `S` is.
pub trait Signer: Send + Sync + Debug {
    /// Signs `request` in place, as of `now`.
    fn sign(
        &self,
        request: &mut RequestParts,
        credentials: &Credentials,
        now: SystemTime,
    ) -> Result<(), SignError>;

    /// Which signature version this signer writes.
    fn version(&self) -> SignatureVersion;
}

/// Signs with the shared signer, so `Arc::new(signer)` can be handed to a client and kept elsewhere.
impl<S: Signer + ?Sized> Signer for Arc<S> {
    fn sign(
        &self,
        request: &mut RequestParts,
        credentials: &Credentials,
        now: SystemTime,
    ) -> Result<(), SignError> {
        (**self).sign(request, credentials, now)
    }

    fn version(&self) -> SignatureVersion {
        (**self).version()
    }
}

/// Signs with the boxed signer, so a `Box<dyn Signer>` is a signer too.
impl<S: Signer + ?Sized> Signer for Box<S> {
    fn sign(
        &self,
        request: &mut RequestParts,
        credentials: &Credentials,
        now: SystemTime,
    ) -> Result<(), SignError> {
        (**self).sign(request, credentials, now)
    }

    fn version(&self) -> SignatureVersion {
        (**self).version()
    }
}

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// A header value the signature must cover is not valid in an HTTP header (a newline, say).
    #[error("cannot sign header {name}: {reason}")]
    InvalidHeader {
        /// The header's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The signing time cannot be written as an HTTP date (before 1970 or after 9999).
    #[error("cannot sign as of {0:?}: OSS dates must fall between 1970 and 9999")]
    InvalidTime(SystemTime),
    /// A presigned URL's validity is zero or longer than OSS allows ([`MAX_V4_EXPIRY`]).
    #[error("cannot presign for {0:?}: a URL is valid for 1 second to 7 days")]
    InvalidExpiry(std::time::Duration),
}
