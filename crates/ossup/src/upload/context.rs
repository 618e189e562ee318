//! The context of one upload: everything its phases share, built once by the plan phase.

use std::sync::{Arc, Mutex};

use super::UploadRequest;
use super::cancel::CancelState;
use super::plan::Plan;
use super::progress::Progress;
use crate::buffer::BufferPool;
use crate::{
    CheckpointStore, Client, Notice, ObjectOptions, PartScheduler, Source, UploadIdentity,
};

/// What every phase of one upload needs: the uploader's pieces, the request, the plan made for it,
/// and what the phases report along the way.
pub(super) struct UploadContext {
    /// The client, reporting its retries to the request's progress sink.
    pub(super) client: Client,
    /// Where the checkpoint lives.
    pub(super) store: Arc<dyn CheckpointStore>,
    /// Which parts go when.
    pub(super) scheduler: Arc<dyn PartScheduler>,
    /// The request as the caller made it.
    pub(super) request: UploadRequest,
    /// The stamp, part layout and method chosen for the source.
    pub(super) plan: Plan,
    /// The identity the checkpoint is saved under.
    pub(super) identity: UploadIdentity,
    /// The object's options, with the content type guessed from the source's name when unset.
    pub(super) options: ObjectOptions,
    /// The digest of `options`: a checkpoint saved with other options is not resumed.
    pub(super) options_digest: String,
    /// Progress events, in order.
    pub(super) progress: Arc<Progress>,
    /// The part buffers (one per part in flight, plus one).
    pub(super) pool: Arc<BufferPool>,
    /// What a cancellation must clean up once it drops the run.
    pub(super) cancel: Arc<CancelState>,
    /// The notices for the outcome, in the order they were reported.
    pub(super) notices: Mutex<Vec<Notice>>,
    /// Set when several workers share the upload (`cooperate.rs`).
    pub(super) cooperating: Option<Arc<super::cooperate::Cooperating>>,
}

impl UploadContext {
    /// The bucket.
    pub(super) fn bucket(&self) -> &str {
        &self.request.bucket
    }

    /// The object key.
    pub(super) fn key(&self) -> &str {
        &self.request.key
    }

    /// The source.
    pub(super) fn source(&self) -> &Arc<dyn Source> {
        &self.request.source
    }

    /// The body of a part (or of a PutObject) with its checksums, carrying the request's traffic
    /// limit.
    pub(super) fn body(
        &self,
        data: bytes::Bytes,
        md5: Option<[u8; 16]>,
        crc64: u64,
    ) -> crate::PartBody {
        let body = crate::PartBody::with_checksums(data, md5, Some(crc64));
        match self.request.traffic_limit {
            Some(bits) => body.with_traffic_limit(bits),
            None => body,
        }
    }

    /// Reports `notice` and keeps it for the outcome.
    pub(super) fn notice(&self, notice: Notice) {
        let mut notices = self.notices.lock().expect("notices lock");
        self.progress.notice(&mut notices, notice);
    }

    /// Keeps notices already reported (by the recorder) for the outcome.
    pub(super) fn keep_notices(&self, reported: Vec<Notice>) {
        self.notices.lock().expect("notices lock").extend(reported);
    }

    /// The notices reported so far, taken for the outcome.
    pub(super) fn take_notices(&self) -> Vec<Notice> {
        std::mem::take(&mut *self.notices.lock().expect("notices lock"))
    }
}
