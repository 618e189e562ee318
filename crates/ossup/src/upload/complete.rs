//! The complete phase: CompleteMultipartUpload (with the request's callback), the object's CRC-64
//! checked against the combination of the parts', and the checkpoint removed once the object is
//! verified.
//!
//! A Complete answered `NoSuchUpload` (an earlier attempt completed it and its answer was lost, or
//! the upload was aborted) is settled by HeadObject: the object with the source's size and CRC-64
//! is the upload's. Anything else at the key is an integrity error, and the checkpoint is kept.

use std::collections::BTreeMap;

use ossup_proto::ErrorCode;
use ossup_proto::checksum::crc64_of_parts;
use ossup_proto::xml::CompletePart;

use super::context::UploadContext;
use super::hashing::ensure_unchanged;
use crate::{CallbackResult, Error, Notice, PartRecord};

/// The object a multipart upload completed into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Completed {
    /// The object's ETag.
    pub(super) etag: String,
    /// The object's CRC-64, verified against the server's.
    pub(super) crc64: u64,
    /// What came of the callback; `None` without one, or when the answer to Complete was lost.
    pub(super) callback: Option<CallbackResult>,
}

/// Which upload to complete, from which parts.
#[derive(Debug)]
pub(super) struct Completion<'a> {
    /// The multipart upload.
    pub(super) upload_id: &'a str,
    /// The object's size: the source's, or the bytes a stream yielded.
    pub(super) size: u64,
    /// Every part of the plan, as the server holds it.
    pub(super) parts: &'a BTreeMap<u32, PartRecord>,
    /// The ETag of the object an earlier run completed from this upload, if one did: Complete is
    /// not sent again.
    pub(super) completed_etag: Option<String>,
}

/// Runs the phase: completes (unless an earlier run did), verifies, removes the checkpoint.
pub(super) async fn complete(
    ctx: &UploadContext,
    completion: Completion<'_>,
) -> Result<Completed, Error> {
    let upload_id = completion.upload_id;
    let size = completion.size;
    ensure_unchanged(ctx.source(), ctx.plan.stamp)
        .await
        .map_err(|e| e.with_upload_id(upload_id))?;
    let parts: Vec<CompletePart> = completion
        .parts
        .values()
        .map(|r| CompletePart {
            part_number: r.number,
            etag: r.etag.clone(),
        })
        .collect();
    let crc64 = crc64_of_parts(completion.parts.values().map(|r| (r.crc64, r.size)));
    tracing::debug!(%upload_id, parts = parts.len(), "completing");
    let (etag, callback) = match completion.completed_etag {
        Some(etag) => (etag, None),
        None => send_complete(ctx, upload_id, size, &parts, crc64).await?,
    };
    // Cooperating workers let the start lock go once the upload runs. Removing the checkpoint under
    // it again makes the removal atomic with a joining worker's look at the checkpoint: it either
    // finds the checkpoint (and joins, then sees it go) or finds the object, never a checkpoint
    // that vanishes under it, which would make it start the upload afresh.
    let _removal_lock = match &ctx.cooperating {
        Some(_) => Some(super::cooperate::lock_to_start(ctx).await?),
        None => None,
    };
    ctx.store
        .remove(&ctx.identity)
        .await
        .map_err(Error::checkpoint)?;
    Ok(Completed {
        etag,
        crc64,
        callback,
    })
}

/// CompleteMultipartUpload (with the request's callback) and the object CRC-64 check; returns the
/// object's ETag and what came of the callback.
async fn send_complete(
    ctx: &UploadContext,
    upload_id: &str,
    size: u64,
    parts: &[CompletePart],
    crc64: u64,
) -> Result<(String, Option<CallbackResult>), Error> {
    let (bucket, key) = (ctx.bucket(), ctx.key());
    let forbid_overwrite = ctx.options.forbid_overwrite;
    let completed = match &ctx.request.callback {
        Some(callback) => {
            ctx.client
                .complete_multipart_upload_with_callback(
                    bucket,
                    key,
                    upload_id,
                    parts,
                    forbid_overwrite,
                    callback,
                )
                .await
        }
        None => {
            ctx.client
                .complete_multipart_upload(bucket, key, upload_id, parts, forbid_overwrite)
                .await
        }
    };
    match completed {
        Ok(done) => {
            let server_crc = match done.crc64 {
                Some(crc) => Some(crc),
                None => ctx
                    .client
                    .head_object(bucket, key)
                    .await?
                    .and_then(|h| h.crc64),
            };
            let mismatch = |what: String| {
                Error::integrity(format!(
                    "{what}; the object at this key must not be trusted: run the upload again to replace it"
                ))
                .with_upload_id(upload_id)
            };
            match server_crc {
                Some(crc) if crc == crc64 => Ok((done.etag, done.callback)),
                Some(crc) => Err(mismatch(format!(
                    "the completed object's CRC-64 {crc} is not {crc64}, the CRC-64 of the source's parts"
                ))),
                None => Err(mismatch(
                    "the server reported no CRC-64 for the completed object, so it cannot be verified"
                        .to_owned(),
                )),
            }
        }
        Err(e) if e.is_service_code(ErrorCode::NoSuchUpload) => {
            settle_by_head(ctx, upload_id, size, crc64, e).await
        }
        Err(e) => Err(e),
    }
}

/// The upload is gone (Complete answered `gone`): completed by an attempt whose answer was lost, or
/// aborted. The object at the key says which.
async fn settle_by_head(
    ctx: &UploadContext,
    upload_id: &str,
    size: u64,
    crc64: u64,
    gone: Error,
) -> Result<(String, Option<CallbackResult>), Error> {
    match ctx.client.head_object(ctx.bucket(), ctx.key()).await? {
        Some(head) if head.size == size && head.crc64 == Some(crc64) => {
            ctx.notice(Notice::CompleteSettledByHead {
                upload_id: upload_id.to_owned(),
            });
            // The answer to the Complete that stored it, and so the callback's, was lost.
            Ok((head.etag, None))
        }
        head => Err(Error::integrity(format!(
            "completing upload {upload_id} found no such upload, and the object is {}; run the upload again",
            match head {
                None => "absent".to_owned(),
                Some(h) => format!(
                    "{} bytes with CRC-64 {:?}, not {size} bytes with CRC-64 {crc64}",
                    h.size, h.crc64
                ),
            }
        ))
        .with_upload_id(upload_id)
        .with_source(gone)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::scripted::{
        PART, Reply, Scripted, checkpoint, data, planned, request, uploader,
    };
    use crate::{CheckpointStore as _, ErrorKind, MemoryStore};
    use ossup_proto::checksum::crc64;
    use std::sync::Arc;

    /// An upload of two parts whose checkpoint records both, ready to complete.
    async fn ready(
        script: Vec<Reply>,
    ) -> (Arc<Scripted>, Arc<MemoryStore>, UploadContext, Vec<u8>) {
        let data = data(PART as usize + 500, 11);
        let server = Scripted::new(script);
        let store = Arc::new(MemoryStore::new());
        let ctx = planned(&uploader(&server, &store), request(&data)).await;
        store
            .save(&checkpoint(&ctx, "U1", &data, &[1, 2]))
            .await
            .unwrap();
        (server, store, ctx, data)
    }

    fn completion(parts: &BTreeMap<u32, PartRecord>) -> Completion<'_> {
        Completion {
            upload_id: "U1",
            parts,
            completed_etag: None,
            size: PART + 500,
        }
    }

    #[tokio::test]
    async fn complete_verifies_the_objects_crc_and_removes_the_checkpoint() {
        let source_crc = crc64(&data(PART as usize + 500, 11));
        let (server, store, ctx, data) = ready(vec![Reply::completed("\"E-2\"", source_crc)]).await;
        let parts = checkpoint(&ctx, "U1", &data, &[1, 2]).parts;

        let completed = complete(&ctx, completion(&parts)).await.unwrap();

        assert_eq!(server.lines(), ["POST /bucket/key?uploadId=U1"]);
        assert_eq!(
            completed,
            Completed {
                etag: "\"E-2\"".into(),
                crc64: source_crc,
                callback: None
            }
        );
        assert_eq!(store.load(&ctx.identity).await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_object_with_another_crc_fails_and_keeps_the_checkpoint() {
        let source_crc = crc64(&data(PART as usize + 500, 11));
        let (_, store, ctx, data) = ready(vec![Reply::completed("\"E-2\"", source_crc ^ 1)]).await;
        let parts = checkpoint(&ctx, "U1", &data, &[1, 2]).parts;

        let err = complete(&ctx, completion(&parts)).await.unwrap_err();

        assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
        assert_eq!(err.upload_id(), Some("U1"));
        assert!(err.to_string().contains("must not be trusted"), "{err}");
        assert!(store.load(&ctx.identity).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_lost_complete_answer_is_settled_by_head_object() {
        let data = data(PART as usize + 500, 11);
        let (server, store, ctx, data) = ready(vec![
            Reply::no_such_upload(),
            Reply::head(data.len() as u64, "\"E-2\"", crc64(&data)),
        ])
        .await;
        let parts = checkpoint(&ctx, "U1", &data, &[1, 2]).parts;

        let completed = complete(&ctx, completion(&parts)).await.unwrap();

        assert_eq!(
            server.lines(),
            ["POST /bucket/key?uploadId=U1", "HEAD /bucket/key"]
        );
        assert_eq!(completed.etag, "\"E-2\"");
        assert_eq!(
            ctx.take_notices(),
            [Notice::CompleteSettledByHead {
                upload_id: "U1".into()
            }]
        );
        assert_eq!(store.load(&ctx.identity).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_gone_upload_without_its_object_is_an_integrity_error() {
        let (server, store, ctx, data) =
            ready(vec![Reply::no_such_upload(), Reply::status(404)]).await;
        let parts = checkpoint(&ctx, "U1", &data, &[1, 2]).parts;

        let err = complete(&ctx, completion(&parts)).await.unwrap_err();

        assert_eq!(server.unused(), 0);
        assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
        assert!(err.to_string().contains("the object is absent"), "{err}");
        let gone = std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<Error>())
            .expect("the NoSuchUpload answer is the source");
        assert!(gone.is_service_code(ErrorCode::NoSuchUpload));
        assert!(store.load(&ctx.identity).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn an_upload_an_earlier_run_completed_is_not_completed_again() {
        let (server, store, ctx, data) = ready(Vec::new()).await;
        let parts = checkpoint(&ctx, "U1", &data, &[1, 2]).parts;

        let completed = complete(
            &ctx,
            Completion {
                completed_etag: Some("\"E-2\"".into()),
                ..completion(&parts)
            },
        )
        .await
        .unwrap();

        assert!(server.lines().is_empty());
        assert_eq!(completed.crc64, crc64(&data));
        assert_eq!(store.load(&ctx.identity).await.unwrap(), None);
    }
}
