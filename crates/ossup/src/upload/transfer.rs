//! The transfer phase: the parts the server does not hold yet go through the [`PartScheduler`],
//! each read and hashed in one pass, sent with its checksums, and recorded in the checkpoint by the
//! [`Recorder`] while the next parts are sent.
//!
//! Guarantees: every part the phase reports done was acknowledged by the server with the checksums
//! of the source's bytes and is recorded (or was reused from the resume phase); the phase ends only
//! when every record has settled, so a failed upload keeps every acknowledged part for the next run.
//!
//! [`PartScheduler`]: crate::PartScheduler

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::{Instrument as _, Span, field};

use super::context::UploadContext;
use super::hashing::read_part;
use super::recorder::Recorder;
use crate::{Checkpoint, Error, PartRecord, PartRunner, PartSpec, ProgressEvent};

/// What the transfer phase leaves for Complete.
#[derive(Debug)]
pub(super) struct Transferred {
    /// Every part of the plan, as the server holds it.
    pub(super) parts: BTreeMap<u32, PartRecord>,
    /// The parts reused from the server rather than sent.
    pub(super) parts_reused: u32,
    /// The bytes sent in this run (each part counted once).
    pub(super) bytes_sent: u64,
    /// The bytes reused from the server.
    pub(super) bytes_reused: u64,
}

/// Runs the phase: sends the parts of the plan that `checkpoint` (the resume phase's) does not
/// hold.
pub(super) async fn transfer(
    ctx: &UploadContext,
    checkpoint: Checkpoint,
) -> Result<Transferred, Error> {
    let upload_id = checkpoint.upload_id.clone();
    let plan = &ctx.plan.parts;
    let done = &checkpoint.parts;
    let bytes_reused: u64 = done.values().map(|r| r.size).sum();
    let parts_reused = done.len() as u32;
    ctx.progress.start_at(bytes_reused);
    ctx.progress.emit(ProgressEvent::Started {
        total: ctx.plan.stamp.size,
        already_on_server: bytes_reused,
        parts: plan.len() as u32,
        part_size: ctx.plan.part_size,
        upload_id: Some(upload_id.clone()),
    });
    let pending: Vec<PartSpec> = plan
        .iter()
        .filter(|p| !done.contains_key(&p.number))
        .copied()
        .collect();
    let runner = Runner {
        ctx,
        upload_id: &upload_id,
        plan: plan.iter().map(|p| (p.number, *p)).collect(),
        recorder: Recorder::new(ctx.store.clone(), checkpoint, ctx.progress.clone()),
        bytes_sent: AtomicU64::new(0),
        span: Span::current(),
    };
    tracing::debug!(%upload_id, parts = plan.len(), reused = parts_reused, "sending parts");
    ctx.cancel.sending(runner.recorder.lingering());
    let sent = tokio::select! {
        sent = ctx.scheduler.run(pending, &runner) => sent,
        never = ctx.progress.report_sending() => match never {},
    };
    tracing::debug!(%upload_id, ok = sent.is_ok(), "parts sent; waiting for their records");
    // Every record settles before anything else happens: Complete goes out only once the
    // checkpoint holds every part it can, and a failed upload keeps every acknowledged part
    // recorded for the next run.
    let recorded = runner.recorder.finish().await;
    ctx.keep_notices(recorded.notices);
    sent.map_err(|e| e.with_upload_id(&upload_id))?;

    let parts = match &ctx.cooperating {
        // The parts the other workers sent are in the store.
        Some(cooperating) => super::cooperate::all_parts(ctx, cooperating, recorded.parts).await?,
        None => recorded.parts,
    };
    tracing::debug!(%upload_id, recorded = parts.len(), "records settled");
    let missing: Vec<u32> = plan
        .iter()
        .filter(|p| !parts.contains_key(&p.number))
        .map(|p| p.number)
        .collect();
    // Cooperating, the parts a completing worker took the records of with it are judged by
    // `cooperate::settle`.
    if !missing.is_empty() && ctx.cooperating.is_none() {
        return Err(Error::config(format!(
            "the scheduler {:?} finished without sending parts {missing:?}",
            ctx.scheduler
        ))
        .with_upload_id(&upload_id));
    }
    Ok(Transferred {
        parts,
        parts_reused,
        bytes_sent: runner.bytes_sent.load(Ordering::Relaxed),
        bytes_reused,
    })
}

/// Sends the parts the scheduler hands it, shared between the part tasks.
struct Runner<'a> {
    ctx: &'a UploadContext,
    upload_id: &'a str,
    /// The plan by part number, to refuse a part the scheduler made up.
    plan: BTreeMap<u32, PartSpec>,
    /// Commits each acknowledged part's record while the next parts are sent, and keeps every part
    /// verified on the server.
    recorder: Recorder,
    bytes_sent: AtomicU64,
    /// The phase's span: every part's span hangs under it, whichever task the scheduler runs the
    /// part on.
    span: Span,
}

#[async_trait::async_trait]
impl PartRunner for Runner<'_> {
    async fn run_part(&self, part: PartSpec) -> Result<(), Error> {
        let span = tracing::debug_span!(
            parent: &self.span,
            "part",
            number = part.number,
            offset = part.offset,
            size = part.size,
            sent = field::Empty,
        );
        self.send_part(part).instrument(span).await
    }
}

impl Runner<'_> {
    /// Reads, hashes, sends and verifies `part`, then queues its record.
    async fn send_part(&self, part: PartSpec) -> Result<(), Error> {
        let ctx = self.ctx;
        if self.plan.get(&part.number) != Some(&part) {
            return Err(Error::config(format!(
                "the scheduler asked for part {part:?}, which is not in the plan"
            ))
            .with_object(ctx.bucket(), ctx.key()));
        }
        let (mut buffer, hashed) = read_part(ctx.source(), &ctx.pool, part, ctx.plan.mode)
            .await
            .map_err(|e| e.with_object(ctx.bucket(), ctx.key()))?;
        let bytes = buffer.freeze();
        let client = match ctx.progress.sending(part.number, part.size) {
            Some(observer) => ctx.client.with_retry_observer(observer),
            None => ctx.client.clone(),
        };
        let stored = client
            .upload_part(
                ctx.bucket(),
                ctx.key(),
                self.upload_id,
                part.number,
                ctx.body(bytes.clone(), hashed.md5, hashed.crc64),
            )
            .await;
        buffer.reclaim(bytes);
        drop(buffer);
        let stored = stored?;
        let record = PartRecord {
            number: part.number,
            size: part.size,
            etag: stored.etag,
            md5: hashed.md5,
            crc64: hashed.crc64,
        };
        self.bytes_sent.fetch_add(part.size, Ordering::Relaxed);
        Span::current().record("sent", part.size);
        tracing::debug!(
            part = part.number,
            bytes = part.size,
            "part sent and verified"
        );
        // The slot goes to the next part now; the record commits alongside it (and PartDone is
        // reported once it has).
        self.recorder.record(record).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::scripted::{
        PART, Reply, Scripted, checkpoint, data, part_of, planned, request, uploader,
    };
    use crate::{CheckpointStore as _, MemoryStore};
    use std::sync::Arc;

    #[tokio::test]
    async fn only_the_parts_the_server_lacks_are_sent_and_every_part_is_recorded() {
        let data = data(2 * PART as usize + 1000, 9);
        let server = Scripted::new(vec![
            Reply::stored(part_of(&data, 2)),
            Reply::stored(part_of(&data, 3)),
        ]);
        let store = Arc::new(MemoryStore::new());
        let ctx = planned(&uploader(&server, &store), request(&data)).await;
        let resumed = checkpoint(&ctx, "U1", &data, &[1]);
        store.save(&resumed).await.unwrap();

        let transferred = transfer(&ctx, resumed).await.unwrap();

        assert_eq!(
            server.lines(),
            [
                "PUT /bucket/key?partNumber=2&uploadId=U1",
                "PUT /bucket/key?partNumber=3&uploadId=U1"
            ]
        );
        let everything = checkpoint(&ctx, "U1", &data, &[1, 2, 3]);
        assert_eq!(transferred.parts, everything.parts);
        assert_eq!(transferred.parts_reused, 1);
        assert_eq!(transferred.bytes_reused, PART);
        assert_eq!(transferred.bytes_sent, PART + 1000);
        let saved = store.load(&ctx.identity).await.unwrap().unwrap();
        assert_eq!(saved.parts, everything.parts);
    }

    #[tokio::test]
    async fn a_failed_part_keeps_the_parts_acknowledged_before_it() {
        let data = data(2 * PART as usize + 1000, 10);
        let server = Scripted::new(vec![
            Reply::stored(part_of(&data, 1)),
            Reply::error(403, ossup_proto::ErrorCode::AccessDenied),
        ]);
        let store = Arc::new(MemoryStore::new());
        let ctx = planned(&uploader(&server, &store), request(&data)).await;
        let fresh = checkpoint(&ctx, "U1", &data, &[]);
        store.save(&fresh).await.unwrap();

        let err = transfer(&ctx, fresh).await.unwrap_err();

        assert_eq!(err.upload_id(), Some("U1"), "{err}");
        assert!(
            err.is_service_code(ossup_proto::ErrorCode::AccessDenied),
            "{err}"
        );
        let saved = store.load(&ctx.identity).await.unwrap().unwrap();
        assert_eq!(saved.parts, checkpoint(&ctx, "U1", &data, &[1]).parts);
    }
}
