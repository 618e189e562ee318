//! What one upload asks for: [`UploadRequest`], and the choices it makes ([`ChecksumMode`],
//! [`OnCancel`]).

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::buffer::BufferPool;
use crate::{Callback, ObjectOptions, ProgressSink, Source, StreamSource};

/// Which checksums protect the parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumMode {
    /// MD5 of every part, sent as `Content-MD5` and checked against the ETag, plus CRC-64 (the
    /// official SDKs' default).
    #[default]
    Md5,
    /// CRC-64 only: no `Content-MD5`; parts are checked by the CRC-64 the server returns, and on
    /// resume by ListParts' `HashCrc64ecma`. Saves the client one MD5 pass over the data.
    Crc64Only,
}

/// What to do with the multipart upload when the caller cancels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnCancel {
    /// Keep the checkpoint and the parts on the server, so running the same upload again resumes.
    #[default]
    KeepCheckpoint,
    /// Abort the multipart upload (freeing its parts) and remove the checkpoint.
    AbortUpload,
}

/// One upload: what to send, where, and how.
pub struct UploadRequest {
    pub(super) source: Arc<dyn Source>,
    /// The stream `source` is, for an upload of a stream.
    pub(super) stream: Option<Arc<StreamSource>>,
    pub(super) bucket: String,
    pub(super) key: String,
    pub(super) part_size: Option<u64>,
    pub(super) multipart_threshold: Option<u64>,
    pub(super) checksum_mode: Option<ChecksumMode>,
    pub(super) options: ObjectOptions,
    pub(super) callback: Option<Callback>,
    pub(super) progress: Option<Arc<dyn ProgressSink>>,
    pub(super) cancel: CancellationToken,
    pub(super) on_cancel: OnCancel,
    /// Without a checkpoint, look on the server for an open upload of the key to carry on.
    pub(super) resume_from_server: bool,
    /// The server-side speed cap of every UploadPart and PutObject, in bit/s.
    pub(super) traffic_limit: Option<u64>,
    /// Part buffers shared with the other uploads of a batch, in place of the upload's own pool.
    pub(super) shared_pool: Option<Arc<BufferPool>>,
}

impl fmt::Debug for UploadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadRequest")
            .field("source", &self.source)
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .field("part_size", &self.part_size)
            .field("multipart_threshold", &self.multipart_threshold)
            .field("checksum_mode", &self.checksum_mode)
            .field("options", &self.options)
            .field("callback", &self.callback)
            .field("on_cancel", &self.on_cancel)
            .field("resume_from_server", &self.resume_from_server)
            .finish_non_exhaustive()
    }
}

impl UploadRequest {
    /// Uploads `source` to `bucket`/`key`.
    pub fn new(
        source: impl Source + 'static,
        bucket: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        Self::from_arc(Arc::new(source), bucket, key)
    }

    /// Uploads a shared source.
    pub fn from_arc(
        source: Arc<dyn Source>,
        bucket: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        Self {
            source,
            stream: None,
            bucket: bucket.into(),
            key: key.into(),
            part_size: None,
            multipart_threshold: None,
            checksum_mode: None,
            options: ObjectOptions::default(),
            callback: None,
            progress: None,
            cancel: CancellationToken::new(),
            on_cancel: OnCancel::default(),
            resume_from_server: false,
            traffic_limit: None,
            shared_pool: None,
        }
    }

    /// Uploads the bytes of `stream` to `bucket`/`key`, reading it once, in order.
    ///
    /// Memory holds only the parts in flight (one per slot of the scheduler, plus one being read).
    /// A stream that ends within the first part (and the multipart threshold) goes in one
    /// PutObject; a longer one in parts whose size starts at the part size and grows with the part
    /// number ([`stream_part_size`](crate::plan::stream_part_size)). Run the same stream again under
    /// the same name and key after an interruption, and the parts the server holds are verified
    /// against the arriving bytes and not sent again.
    ///
    /// ```
    /// use ossup::{StreamSource, UploadRequest};
    /// let request = UploadRequest::stream(StreamSource::stdin(), "bucket", "backups/db.sql")
    ///     .part_size(16 << 20);
    /// assert_eq!(request.key(), "backups/db.sql");
    /// ```
    pub fn stream(stream: StreamSource, bucket: impl Into<String>, key: impl Into<String>) -> Self {
        let stream = Arc::new(stream);
        let mut request = Self::from_arc(stream.clone(), bucket, key);
        request.stream = Some(stream);
        request
    }

    /// The part size: 100 KiB to 5 GiB, grown (doubled) when the source would need more than 10,000
    /// parts. Part of the upload's identity: a different part size is a different upload.
    pub fn part_size(mut self, part_size: u64) -> Self {
        self.part_size = Some(part_size);
        self
    }

    /// Sources of at most `threshold` bytes go in one PutObject (read whole into memory); larger
    /// ones in parts. Defaults to the part size. Empty sources always use PutObject.
    pub fn multipart_threshold(mut self, threshold: u64) -> Self {
        self.multipart_threshold = Some(threshold);
        self
    }

    /// The checksum mode of this upload.
    pub fn checksum_mode(mut self, mode: ChecksumMode) -> Self {
        self.checksum_mode = Some(mode);
        self
    }

    /// The object's options (content type, metadata, ACL, storage class, overwrite).
    pub fn options(mut self, options: ObjectOptions) -> Self {
        self.options = options;
        self
    }

    /// Asks OSS to call `callback` once the object is stored: sent with CompleteMultipartUpload, or
    /// with PutObject for a small source, including when the upload resumes an earlier run.
    ///
    /// The callback server's reply is the outcome's [`callback`](crate::UploadOutcome::callback). When OSS
    /// stores the object but cannot deliver the callback (`203 CallbackFailed`) the upload ends with an
    /// [`ErrorKind::CallbackFailed`](crate::ErrorKind::CallbackFailed) error that carries the outcome
    /// ([`UploadOutcome::of_failed_callback`](crate::UploadOutcome::of_failed_callback)); it is never retried as a failed upload. The callback is not part of the
    /// upload's identity: a resumed run sends the callback of its own request.
    pub fn callback(mut self, callback: Callback) -> Self {
        self.callback = Some(callback);
        self
    }

    /// Where progress events go.
    pub fn progress(mut self, sink: impl ProgressSink + 'static) -> Self {
        self.progress = Some(Arc::new(sink));
        self
    }

    /// Cancels the upload when `token` is cancelled.
    pub fn cancel(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// What cancelling does to the multipart upload.
    pub fn on_cancel(mut self, on_cancel: OnCancel) -> Self {
        self.on_cancel = on_cancel;
        self
    }

    /// When the store holds no checkpoint of this upload (lost with a machine, wiped, or never
    /// written by a run killed early), carries on the newest open multipart upload of exactly this
    /// key whose parts fit this upload's part layout, instead of sending every part again.
    ///
    /// Every part the server lists is verified as a resume verifies a part it has no record of:
    /// its ETag must be the MD5 of that range of the source (or, in
    /// [`ChecksumMode::Crc64Only`], its listed CRC-64 the range's), so the source is read once.
    /// Parts that do not match are sent again; the object's CRC-64 is checked at Complete as
    /// always. The other open uploads of the key are left alone. When no open upload fits, a fresh
    /// upload starts as without this setting; the outcome's
    /// [`resumed`](crate::UploadOutcome::resumed) and a
    /// [`Notice::UploadAdopted`](crate::Notice::UploadAdopted) say when one was carried on.
    ///
    /// The object gets the metadata, Content-Type, storage class and encryption the adopted upload
    /// was initiated with, which OSS does not list: only ask this when the open uploads of the key
    /// were started by this same upload. Needs `oss:ListMultipartUploads` and `oss:ListParts`; a
    /// refused listing fails the upload. Off by default.
    ///
    /// ```
    /// use ossup::{BytesSource, UploadRequest};
    ///
    /// let request = UploadRequest::new(BytesSource::new(vec![0; 10], "example"), "bucket", "key")
    ///     .resume_from_server(true);
    /// # let _ = request;
    /// ```
    pub fn resume_from_server(mut self, resume_from_server: bool) -> Self {
        self.resume_from_server = resume_from_server;
        self
    }

    /// Takes part buffers from `pool`, shared by every upload of a batch, so that the batch as a
    /// whole holds at most the pool's capacity of parts in memory and in flight.
    pub(crate) fn shared_pool(mut self, pool: Arc<BufferPool>) -> Self {
        self.shared_pool = Some(pool);
        self
    }

    /// Asks OSS to take each part (and a PutObject) at most `bits_per_sec` fast: the server-side
    /// cap `x-oss-traffic-limit`, per request, from 819,200 (100 KiB/s) to 838,860,800 (100 MiB/s)
    /// bit/s; a value outside is refused before anything is sent. Parts in parallel each get the
    /// cap: for one cap on the whole upload use
    /// [`UploaderBuilder::rate_limit`](crate::UploaderBuilder::rate_limit).
    ///
    /// ```
    /// use ossup::{BytesSource, UploadRequest};
    /// let request = UploadRequest::new(BytesSource::new("x", "x"), "bucket", "key")
    ///     .traffic_limit(80 << 20); // 10 MiB/s per request
    /// # let _ = request;
    /// ```
    pub fn traffic_limit(mut self, bits_per_sec: u64) -> Self {
        self.traffic_limit = Some(bits_per_sec);
        self
    }

    /// The key this request uploads to.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The bucket this request uploads to.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}
