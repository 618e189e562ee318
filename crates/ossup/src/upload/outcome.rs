//! What an upload did: [`UploadOutcome`] and [`UploadMethod`].

use serde::Serialize;

use crate::{CallbackResult, Error, Notice};

/// How the object was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadMethod {
    /// One PutObject request (small or empty source).
    PutObject,
    /// A multipart upload.
    Multipart,
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UploadOutcome {
    /// The bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
    /// The object's size.
    pub size: u64,
    /// The object's ETag.
    pub etag: String,
    /// The object's CRC-64/XZ, verified against the server's.
    pub crc64: u64,
    /// PutObject or multipart.
    pub method: UploadMethod,
    /// The multipart upload id.
    pub upload_id: Option<String>,
    /// The part size used (after growing to fit 10,000 parts).
    pub part_size: u64,
    /// The number of parts.
    pub parts: u32,
    /// Parts sent in this run.
    pub parts_sent: u32,
    /// Parts found on the server, verified, and not sent again.
    pub parts_reused: u32,
    /// Bytes sent in this run (each part counted once, retries not counted).
    pub bytes_sent: u64,
    /// Bytes reused from the server.
    pub bytes_reused: u64,
    /// Whether an earlier run's multipart upload was resumed.
    pub resumed: bool,
    /// Things worth knowing: a corrupt checkpoint set aside, a changed source, a vanished upload.
    pub notices: Vec<Notice>,
    /// The most part buffers alive at once (at most the scheduler's concurrency plus one).
    pub peak_part_buffers: usize,
    /// What came of the upload callback: the callback server's reply. `None` without a callback, and
    /// when an earlier run had completed the upload (its Complete, and callback, are not repeated).
    pub callback: Option<CallbackResult>,
}

impl UploadOutcome {
    /// What was stored, for an [`ErrorKind::CallbackFailed`](crate::ErrorKind::CallbackFailed)
    /// error: the object is in the bucket and verified, only its callback failed.
    pub fn of_failed_callback(error: &Error) -> Option<&UploadOutcome> {
        error.attachment::<UploadOutcome>()
    }

    /// The outcome, or the [`ErrorKind::CallbackFailed`](crate::ErrorKind::CallbackFailed) error
    /// carrying it when OSS stored the object but could not deliver the callback.
    pub(super) fn into_result(self) -> Result<UploadOutcome, Error> {
        match &self.callback {
            Some(CallbackResult::Failed { error }) => {
                let error = error.clone();
                Err(crate::error::callback_failed(self, error))
            }
            _ => Ok(self),
        }
    }
}
