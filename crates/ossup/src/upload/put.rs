//! The put phase: a source at most the multipart threshold goes in one PutObject, read whole into
//! one buffer and checked like a part (MD5 against the ETag unless CRC-64-only, CRC-64 against the
//! server's). Nothing is checkpointed: a failed PutObject is simply sent again by the next run.

use super::context::UploadContext;
use super::hashing::{Hashed, ensure_unchanged, read_part};
use super::{UploadMethod, UploadOutcome};
use crate::buffer::PartBuffer;
use crate::scheduler::run_as_one_part;
use crate::{Error, Notice, PartSpec, ProgressEvent};

/// Runs the phase: the whole source in one PutObject (with the request's callback).
///
/// The PutObject goes through the uploader's scheduler as the plan's one part, read when the
/// scheduler starts it: in a batch, files put whole and the parts of bigger files take their places
/// in flight from one limit ([`Adaptive`](crate::Adaptive) finds it for the whole batch), and no
/// buffer is held while the file waits for its turn. A run of one part is never hedged
/// ([`Hedged`](crate::Hedged) waits for a part of the run to finish first), so a callback is never
/// called twice.
pub(super) async fn put(ctx: &UploadContext) -> Result<UploadOutcome, Error> {
    drop_outgrown_upload(ctx).await?;
    let stamp = ctx.plan.stamp;
    started(ctx, stamp.size);
    let whole = PartSpec {
        number: 1,
        offset: 0,
        size: stamp.size,
    };
    run_as_one_part(ctx.scheduler.as_ref(), whole, |whole| async move {
        let (buffer, hashed) = read_part(ctx.source(), &ctx.pool, whole, ctx.plan.mode).await?;
        ensure_unchanged(ctx.source(), stamp).await?;
        put_read(ctx, buffer, hashed, whole.size).await
    })
    .await
}

/// A source that shrank to one PutObject since an earlier run began it in parts: that run's
/// multipart upload is aborted and its checkpoint removed ([`Notice::SourceChanged`]), as a
/// multipart resume does for a changed source, so nothing is left open or listed as resumable. An
/// intent (a run stopped while starting its multipart upload) has the uploads of the key it may
/// have left open aborted ([`Notice::OrphanAborted`]), and is removed.
async fn drop_outgrown_upload(ctx: &UploadContext) -> Result<(), Error> {
    match ctx.store.load(&ctx.identity).await {
        Ok(Some(cp)) if !cp.upload_id.is_empty() && cp.identity == ctx.identity => {
            let notice = Notice::SourceChanged {
                upload_id: cp.upload_id.clone(),
                aborted: false,
            };
            super::resume::drop_changed(ctx, &cp, notice).await
        }
        Ok(Some(cp)) if cp.identity == ctx.identity => {
            // An intent: a run stopped while starting a multipart upload, which may be open.
            let swept = super::orphans::sweep_since(ctx, cp.created_unix).await;
            let (aborted, failed) = match swept {
                Ok(swept) => (swept.aborted, swept.failed),
                Err(e) => (Vec::new(), Some(e)),
            };
            for upload_id in aborted {
                ctx.notice(Notice::OrphanAborted { upload_id });
            }
            match failed {
                // Kept: the next run looks again.
                Some(e) => ctx.notice(Notice::OrphanSweepFailed {
                    upload_id: String::new(),
                    error: e.to_string(),
                }),
                None => ctx
                    .store
                    .remove(&ctx.identity)
                    .await
                    .map_err(Error::checkpoint)?,
            }
            Ok(())
        }
        // Nothing of an earlier run, or a checkpoint the store cannot read: the PutObject does not
        // depend on it.
        _ => Ok(()),
    }
}

/// Reports the start of a PutObject of `size` bytes.
pub(super) fn started(ctx: &UploadContext, size: u64) {
    ctx.progress.emit(ProgressEvent::Started {
        total: size,
        already_on_server: 0,
        parts: 0,
        part_size: ctx.plan.part_size,
        upload_id: None,
    });
}

/// Sends `size` bytes already read into `buffer` (and `hashed`) in one PutObject: the whole source,
/// or a stream that ended within its first part.
pub(super) async fn put_read(
    ctx: &UploadContext,
    mut buffer: PartBuffer,
    hashed: Hashed,
    size: u64,
) -> Result<UploadOutcome, Error> {
    let (bucket, key) = (ctx.bucket(), ctx.key());
    let bytes = buffer.freeze();
    let body = ctx.body(bytes, hashed.md5, hashed.crc64);
    let client = match ctx.progress.sending_whole(size) {
        Some(observer) => ctx.client.with_retry_observer(observer),
        None => ctx.client.clone(),
    };
    let put = async {
        match &ctx.request.callback {
            Some(callback) => {
                client
                    .put_object_with_callback(bucket, key, body, &ctx.options, callback)
                    .await
            }
            None => client.put_object(bucket, key, body, &ctx.options).await,
        }
    };
    let stored = tokio::select! {
        stored = put => stored?,
        never = ctx.progress.report_sending() => match never {},
    };
    ctx.progress.part_done(1, size);
    ctx.progress.emit(ProgressEvent::Completed {
        etag: stored.etag.clone(),
        crc64: hashed.crc64,
        bytes_sent: size,
        bytes_reused: 0,
    });
    UploadOutcome {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size,
        etag: stored.etag,
        crc64: hashed.crc64,
        method: UploadMethod::PutObject,
        upload_id: None,
        part_size: ctx.plan.part_size,
        parts: 0,
        parts_sent: 0,
        parts_reused: 0,
        bytes_sent: size,
        bytes_reused: 0,
        resumed: false,
        notices: ctx.take_notices(),
        peak_part_buffers: ctx.pool.peak(),
        callback: stored.callback,
    }
    .into_result()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::scripted::{Reply, Scripted, data, planned, request, uploader};
    use crate::{ChecksumMode, ErrorKind, MemoryStore};
    use ossup_proto::checksum::{content_md5, crc64, md5};
    use ossup_proto::etag::part_etag;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_small_source_goes_in_one_put_object_with_its_checksums() {
        let data = data(1000, 3);
        let server = Scripted::new(vec![Reply::stored(&data)]);
        let store = Arc::new(MemoryStore::new());
        let ctx = planned(&uploader(&server, &store), request(&data)).await;

        let outcome = put(&ctx).await.unwrap();

        let sent = server.sent();
        assert_eq!(server.lines(), ["PUT /bucket/key"]);
        assert_eq!(
            sent[0].headers["content-md5"].to_str().unwrap(),
            content_md5(&md5(&data))
        );
        assert_eq!(outcome.method, UploadMethod::PutObject);
        assert_eq!(outcome.etag, part_etag(&md5(&data)));
        assert_eq!(outcome.crc64, crc64(&data));
        assert_eq!((outcome.size, outcome.bytes_sent), (1000, 1000));
        assert_eq!(outcome.upload_id, None);
    }

    #[tokio::test]
    async fn a_crc64_only_put_sends_no_content_md5() {
        let data = data(1000, 4);
        let server = Scripted::new(vec![
            Reply::status(200)
                .header("etag", "\"not-an-md5\"")
                .header("x-oss-hash-crc64ecma", crc64(&data).to_string()),
        ]);
        let store = Arc::new(MemoryStore::new());
        let request = request(&data).checksum_mode(ChecksumMode::Crc64Only);
        let ctx = planned(&uploader(&server, &store), request).await;

        let outcome = put(&ctx).await.unwrap();

        assert!(!server.sent()[0].headers.contains_key("content-md5"));
        assert_eq!(outcome.crc64, crc64(&data));
    }

    #[tokio::test]
    async fn a_put_whose_etag_is_not_the_md5_of_the_bytes_fails() {
        let data = data(1000, 5);
        let server = Scripted::new(vec![Reply::stored(b"other bytes")]);
        let store = Arc::new(MemoryStore::new());
        let ctx = planned(&uploader(&server, &store), request(&data)).await;

        let err = put(&ctx).await.unwrap_err();

        assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
        assert_eq!(server.lines(), ["PUT /bucket/key"]);
    }
}
