//! The put phase: a source at most the multipart threshold goes in one PutObject, read whole into
//! one buffer and checked like a part (MD5 against the ETag unless CRC-64-only, CRC-64 against the
//! server's). Nothing is checkpointed: a failed PutObject is simply sent again by the next run.

use super::context::UploadContext;
use super::hashing::{ensure_unchanged, read_part};
use super::{UploadMethod, UploadOutcome};
use crate::client::PartBody;
use crate::{Error, PartSpec, ProgressEvent};

/// Runs the phase: the whole source in one PutObject (with the request's callback).
pub(super) async fn put(ctx: &UploadContext) -> Result<UploadOutcome, Error> {
    let (bucket, key) = (ctx.bucket(), ctx.key());
    let stamp = ctx.plan.stamp;
    ctx.progress.emit(ProgressEvent::Started {
        total: stamp.size,
        already_on_server: 0,
        parts: 0,
        part_size: ctx.plan.part_size,
        upload_id: None,
    });
    let whole = PartSpec {
        number: 1,
        offset: 0,
        size: stamp.size,
    };
    let (mut buffer, hashed) = read_part(ctx.source(), &ctx.pool, whole, ctx.plan.mode).await?;
    ensure_unchanged(ctx.source(), stamp).await?;
    let bytes = buffer.freeze();
    let body = PartBody::with_checksums(bytes, hashed.md5, Some(hashed.crc64));
    let stored = match &ctx.request.callback {
        Some(callback) => {
            ctx.client
                .put_object_with_callback(bucket, key, body, &ctx.options, callback)
                .await?
        }
        None => {
            ctx.client
                .put_object(bucket, key, body, &ctx.options)
                .await?
        }
    };
    ctx.progress.part_done(1, stamp.size);
    ctx.progress.emit(ProgressEvent::Completed {
        etag: stored.etag.clone(),
        crc64: hashed.crc64,
        bytes_sent: stamp.size,
        bytes_reused: 0,
    });
    UploadOutcome {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size: stamp.size,
        etag: stored.etag,
        crc64: hashed.crc64,
        method: UploadMethod::PutObject,
        upload_id: None,
        part_size: ctx.plan.part_size,
        parts: 0,
        parts_sent: 0,
        parts_reused: 0,
        bytes_sent: stamp.size,
        bytes_reused: 0,
        resumed: false,
        notices: Vec::new(),
        peak_part_buffers: ctx.pool.peak(),
        callback: stored.callback,
    }
    .into_result()
}
