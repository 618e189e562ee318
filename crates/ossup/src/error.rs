//! The engine's side of the one error type: [`Error`] itself lives in `ossup-transport` (transports
//! return it too); here is what only the engine knows how to build.

use crate::UploadOutcome;
use crate::store::StoreError;

pub use ossup_transport::{Error, ErrorKind, ServiceError};

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        Error::checkpoint(error)
    }
}

/// The error of an upload whose object is stored and verified, but whose callback OSS could not
/// deliver (`error`, HTTP 203 `CallbackFailed`); `outcome` rides along for
/// [`UploadOutcome::of_failed_callback`].
pub(crate) fn callback_failed(outcome: UploadOutcome, error: ServiceError) -> Error {
    let message = format!(
        "the object is stored ({} bytes, ETag {}, CRC-64 {} verified), but OSS could not deliver its upload callback, and does not retry callbacks; do not upload it again for the callback's sake",
        outcome.size, outcome.etag, outcome.crc64
    );
    let mut err = Error::callback_failed(message, error).with_object(&outcome.bucket, &outcome.key);
    if let Some(id) = &outcome.upload_id {
        err = err.with_upload_id(id);
    }
    err.attach(outcome)
}
