//! Cancellation: what the caller's token leaves behind once the run is dropped, settled as the
//! request's [`OnCancel`] says.

use std::sync::Mutex;

use ossup_proto::ErrorCode;

use super::recorder::Lingering;
use super::{OnCancel, UploadRequest, Uploader};
use crate::{Error, UploadIdentity};

/// What cancelling needs to know of a run it drops: the object, what to do, and how far the run got.
pub(super) struct CancelState {
    bucket: String,
    key: String,
    on_cancel: OnCancel,
    /// The identity and upload id once the multipart upload exists.
    started: Mutex<Option<(UploadIdentity, String)>>,
    /// The records waiting for their batch commit while parts are sent.
    lingering: Mutex<Option<Lingering>>,
}

impl CancelState {
    /// Nothing started yet for `request`.
    pub(super) fn new(request: &UploadRequest) -> Self {
        Self {
            bucket: request.bucket.clone(),
            key: request.key.clone(),
            on_cancel: request.on_cancel,
            started: Mutex::new(None),
            lingering: Mutex::new(None),
        }
    }

    /// The multipart upload `upload_id` of `identity` exists: a cancellation aborts or keeps it.
    pub(super) fn started(&self, identity: &UploadIdentity, upload_id: &str) {
        *self.started.lock().expect("started lock") =
            Some((identity.clone(), upload_id.to_owned()));
    }

    /// Parts are being sent: a cancellation keeping the checkpoint commits `lingering` first.
    pub(super) fn sending(&self, lingering: Lingering) {
        *self.lingering.lock().expect("lingering lock") = Some(lingering);
    }

    /// Settles a cancellation after the run has been dropped (with every part in flight), and
    /// returns the error the upload ends with.
    pub(super) async fn settle(&self, uploader: &Uploader) -> Error {
        let lingering = self.lingering.lock().expect("lingering lock").take();
        if let (OnCancel::KeepCheckpoint, Some(lingering)) = (self.on_cancel, lingering) {
            // Acknowledged parts whose records were waiting for their batch: the checkpoint kept
            // for the next run should hold them.
            lingering.commit().await;
        }
        let started = self.started.lock().expect("started lock").clone();
        let object = format!("oss://{}/{}", self.bucket, self.key);
        // A cancellation is no failure of an API: its message is the whole sentence, and the object
        // rides along as context for callers that look.
        let cancelled = |what: String| {
            Error::cancelled(format!("the upload of {object} {what}"))
                .with_object(&self.bucket, &self.key)
        };
        match (self.on_cancel, started) {
            (OnCancel::AbortUpload, Some((identity, upload_id))) => {
                let aborted = uploader
                    .client
                    .abort_multipart_upload(&self.bucket, &self.key, &upload_id)
                    .await;
                match aborted {
                    Err(e) if !e.is_service_code(ErrorCode::NoSuchUpload) => {
                        return cancelled(format!(
                            "was cancelled, but aborting its multipart upload {upload_id} failed; the checkpoint is kept, so running the same upload again resumes it"
                        ))
                        .with_source(e);
                    }
                    _ => {}
                }
                if let Err(e) = uploader.store.remove(&identity).await {
                    return Error::checkpoint(e);
                }
                cancelled(format!(
                    "was cancelled; its multipart upload {upload_id} was aborted and its checkpoint removed"
                ))
            }
            (OnCancel::AbortUpload, None) => cancelled("was cancelled before it started".into()),
            (OnCancel::KeepCheckpoint, Some((_, upload_id))) => cancelled(format!(
                "was cancelled; its multipart upload {upload_id} and its checkpoint are kept: run the same upload again to resume"
            )),
            (OnCancel::KeepCheckpoint, None) => {
                cancelled("was cancelled before any part was sent".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::scripted::{Reply, Scripted, data, request, uploader};
    use crate::{Checkpoint, CheckpointStore as _, ErrorKind, MemoryStore, SourceStamp};
    use std::sync::Arc;

    fn identity() -> UploadIdentity {
        UploadIdentity::new("scripted-source", "bucket", "key", 100 << 10)
    }

    #[tokio::test]
    async fn a_kept_upload_reads_as_one_sentence_naming_the_object_and_the_upload() {
        let server = Scripted::new(Vec::new());
        let store = Arc::new(MemoryStore::new());
        let state = CancelState::new(&request(&data(10, 1)));
        state.started(&identity(), "U1");

        let err = state.settle(&uploader(&server, &store)).await;

        assert_eq!(err.kind(), ErrorKind::Cancelled);
        assert_eq!(
            err.to_string(),
            "the upload of oss://bucket/key was cancelled; its multipart upload U1 and its checkpoint are kept: run the same upload again to resume"
        );
        assert!(server.lines().is_empty());
    }

    #[tokio::test]
    async fn aborting_on_cancel_aborts_the_upload_and_removes_its_checkpoint() {
        let server = Scripted::new(vec![Reply::status(204)]);
        let store = Arc::new(MemoryStore::new());
        let checkpoint = Checkpoint::new(
            identity(),
            "U1",
            SourceStamp {
                size: 10,
                modified_nanos: None,
            },
            1,
            "",
        );
        store.save(&checkpoint).await.unwrap();
        let state = CancelState::new(&request(&data(10, 1)).on_cancel(OnCancel::AbortUpload));
        state.started(&identity(), "U1");

        let err = state.settle(&uploader(&server, &store)).await;

        assert_eq!(server.lines(), ["DELETE /bucket/key?uploadId=U1"]);
        assert_eq!(
            err.to_string(),
            "the upload of oss://bucket/key was cancelled; its multipart upload U1 was aborted and its checkpoint removed"
        );
        assert_eq!(store.load(&identity()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_failed_abort_keeps_the_checkpoint_and_says_why() {
        let server = Scripted::new(vec![Reply::error(
            403,
            ossup_proto::ErrorCode::AccessDenied,
        )]);
        let store = Arc::new(MemoryStore::new());
        let state = CancelState::new(&request(&data(10, 1)).on_cancel(OnCancel::AbortUpload));
        state.started(&identity(), "U1");

        let err = state.settle(&uploader(&server, &store)).await;

        let text = err.to_string();
        assert!(
            text.starts_with("the upload of oss://bucket/key was cancelled, but aborting its multipart upload U1 failed"),
            "{text}"
        );
        assert!(text.contains("AccessDenied"), "{text}");
    }
}
