//! The resume phase: finds the multipart upload to send parts to, and the parts it already holds.
//!
//! - A checkpoint of this upload with the same source stamp and options: ListParts (every page),
//!   and keep only the listed parts whose checksums match the source's range ([`reconcile`]); the
//!   checkpoint is rewritten to hold exactly those.
//! - A checkpoint whose source or options changed: its upload is aborted, and a fresh one started.
//! - A checkpoint whose upload is gone: when every part was recorded and the object at the key has
//!   the source's size and combined CRC-64, an earlier run completed it ([`Resumed::completed_etag`]);
//!   otherwise a fresh upload starts.
//! - A fresh upload saves an intent before Initiate, aborts the uploads an interrupted start left
//!   open ([`orphans`]), then saves the checkpoint with its upload id.
//!
//! [`reconcile`]: super::reconcile

use std::collections::BTreeMap;

use futures::{StreamExt as _, TryStreamExt as _};
use ossup_proto::ErrorCode;
use ossup_proto::checksum::crc64_of_parts;
use ossup_proto::xml::ListedPart;

use super::ChecksumMode;
use super::context::UploadContext;
use super::hashing::{Hashed, hash_part};
use super::orphans::{self, Intent, now_unix};
use super::reconcile::{Known, Verdict, judge};
use crate::store::StoreError;
use crate::{Checkpoint, Error, Notice, PartRecord, PartSpec};

/// The multipart upload the transfer phase sends parts to.
#[derive(Debug)]
pub(super) struct Resumed {
    /// The checkpoint of the upload, holding the parts verified on the server (and only those).
    pub(super) checkpoint: Checkpoint,
    /// The ETag of the object an earlier run completed from this upload: nothing is left to send,
    /// and Complete is not sent again.
    pub(super) completed_etag: Option<String>,
    /// Whether an earlier run's upload is carried on.
    pub(super) resumed: bool,
}

/// What the stored checkpoint allows.
enum Found {
    /// Nothing to resume: start a fresh upload. With the time (`created_unix`) of the intent a run
    /// saved before its Initiate and never replaced with an upload id: that run was interrupted, and
    /// the uploads it may have left open are looked for from then on.
    Fresh(Option<u64>),
    /// The checkpointed upload, holding the parts verified on the server (and only those).
    Parts(Checkpoint),
    /// This upload id already completed into the right object, with this ETag and these parts.
    Completed {
        upload_id: String,
        etag: String,
        parts: BTreeMap<u32, PartRecord>,
    },
}

/// Runs the phase: resumes the checkpointed upload or starts a fresh one. The checkpoint lock must
/// be held.
pub(super) async fn resume(ctx: &UploadContext) -> Result<Resumed, Error> {
    let resumed = match find(ctx).await? {
        Found::Parts(checkpoint) => Resumed {
            checkpoint,
            completed_etag: None,
            resumed: true,
        },
        Found::Completed {
            upload_id,
            etag,
            parts,
        } => {
            // Nothing is left to send or record; the checkpoint stands for what completed.
            let mut checkpoint = Checkpoint::new(
                ctx.identity.clone(),
                upload_id,
                ctx.plan.stamp,
                now_unix(),
                ctx.options_digest.clone(),
            );
            checkpoint.parts = parts;
            Resumed {
                checkpoint,
                completed_etag: Some(etag),
                resumed: true,
            }
        }
        Found::Fresh(carried) => Resumed {
            checkpoint: start(ctx, carried).await?,
            completed_etag: None,
            resumed: false,
        },
    };
    ctx.cancel
        .started(&ctx.identity, &resumed.checkpoint.upload_id);
    Ok(resumed)
}

/// Starts a fresh multipart upload: the intent, Initiate, the orphan sweep, the checkpoint.
pub(super) async fn start(ctx: &UploadContext, carried: Option<u64>) -> Result<Checkpoint, Error> {
    let intent = match carried {
        Some(created_unix) => Intent::carried_over(created_unix),
        None => Intent::now(),
    };
    // The intent goes to the store before Initiate: a run stopped before the upload id is saved
    // leaves it behind, and the next run aborts what this one left open.
    let pending = Checkpoint::new(
        ctx.identity.clone(),
        String::new(),
        ctx.plan.stamp,
        intent.unix(),
        ctx.options_digest.clone(),
    );
    ctx.store.save(&pending).await.map_err(Error::checkpoint)?;
    let upload_id = ctx
        .client
        .initiate_multipart_upload(ctx.bucket(), ctx.key(), &ctx.options)
        .await?;
    ctx.cancel.started(&ctx.identity, &upload_id);
    // Swept before the upload id replaces the intent: a run stopped while sweeping leaves the
    // intent, and the next run sweeps again (this upload, still without a part, included).
    sweep_orphans(ctx, &upload_id, intent).await;
    let checkpoint = Checkpoint::new(
        ctx.identity.clone(),
        upload_id.clone(),
        ctx.plan.stamp,
        now_unix(),
        ctx.options_digest.clone(),
    );
    if let Err(e) = ctx.store.save(&checkpoint).await {
        // Without a checkpoint nobody could resume or find this upload: drop it.
        let _ = ctx
            .client
            .abort_multipart_upload(ctx.bucket(), ctx.key(), &upload_id)
            .await;
        return Err(Error::checkpoint(e).with_upload_id(&upload_id));
    }
    Ok(checkpoint)
}

/// What the stored checkpoint allows, after aborting a stale upload and setting a bad checkpoint
/// aside.
async fn find(ctx: &UploadContext) -> Result<Found, Error> {
    let identity = &ctx.identity;
    let loaded = ctx.store.load(identity).await;
    tracing::debug!(
        found = matches!(&loaded, Ok(Some(_))),
        parts = loaded
            .as_ref()
            .ok()
            .and_then(|cp| cp.as_ref())
            .map(|cp| cp.parts.len()),
        "checkpoint loaded"
    );
    match loaded {
        Ok(None) => Ok(Found::Fresh(None)),
        Ok(Some(cp)) if cp.upload_id.is_empty() && &cp.identity == identity => {
            // An intent without an upload id: the run that saved it stopped before saving the
            // upload its Initiate created (if it created one). Start fresh from its time.
            Ok(Found::Fresh(Some(cp.created_unix)))
        }
        Ok(Some(cp)) if &cp.identity != identity => {
            ctx.notice(Notice::CheckpointCorrupt {
                location: identity.to_string(),
                reason: format!(
                    "the store returned the checkpoint of another upload ({})",
                    cp.identity
                ),
                set_aside_to: None,
            });
            Ok(Found::Fresh(None))
        }
        Ok(Some(cp)) => match changed(ctx, &cp) {
            Some(notice) => {
                drop_changed(ctx, &cp, notice).await?;
                Ok(Found::Fresh(None))
            }
            None => carry_on(ctx, cp).await,
        },
        Err(StoreError::Corrupt {
            location,
            reason,
            set_aside_to,
        }) => {
            ctx.notice(Notice::CheckpointCorrupt {
                location,
                reason,
                set_aside_to,
            });
            Ok(Found::Fresh(None))
        }
        Err(e) => Err(Error::checkpoint(e)),
    }
}

/// The notice to give when `cp` was saved for another source stamp or other options (not yet
/// saying whether its upload was aborted).
fn changed(ctx: &UploadContext, cp: &Checkpoint) -> Option<Notice> {
    let upload_id = cp.upload_id.clone();
    if cp.source != ctx.plan.stamp {
        Some(Notice::SourceChanged {
            upload_id,
            aborted: false,
        })
    } else if cp.options_digest != ctx.options_digest {
        Some(Notice::OptionsChanged {
            upload_id,
            aborted: false,
        })
    } else {
        None
    }
}

/// Aborts the upload of a checkpoint that no longer fits the source or options, and removes it.
pub(super) async fn drop_changed(
    ctx: &UploadContext,
    cp: &Checkpoint,
    mut notice: Notice,
) -> Result<(), Error> {
    let aborted = match ctx
        .client
        .abort_multipart_upload(ctx.bucket(), ctx.key(), &cp.upload_id)
        .await
    {
        Ok(()) => true,
        Err(e) if e.is_service_code(ErrorCode::NoSuchUpload) => false,
        Err(e) => return Err(e),
    };
    if let Notice::SourceChanged { aborted: a, .. }
    | Notice::OptionsChanged { aborted: a, .. }
    | Notice::StreamDiffers { aborted: a, .. } = &mut notice
    {
        *a = aborted;
    }
    ctx.store
        .remove(&ctx.identity)
        .await
        .map_err(Error::checkpoint)?;
    ctx.notice(notice);
    Ok(())
}

/// Carries on the upload of `cp`: the parts the server holds with the source's bytes, or, when the
/// upload is gone, whether it completed.
async fn carry_on(ctx: &UploadContext, cp: Checkpoint) -> Result<Found, Error> {
    match ctx
        .client
        .list_parts(ctx.bucket(), ctx.key(), &cp.upload_id)
        .await
    {
        Ok(listed) => {
            let done = reconcile(ctx, &cp, &listed).await?;
            let mut verified = cp;
            if verified.parts != done {
                // Rewrite the checkpoint to hold exactly what the server confirmed: without stale
                // parts, with the parts whose records were lost.
                verified.parts = done;
                ctx.store.save(&verified).await.map_err(Error::checkpoint)?;
            }
            Ok(Found::Parts(verified))
        }
        Err(e) if e.is_service_code(ErrorCode::NoSuchUpload) => {
            let completed = completed_earlier(ctx, &cp).await?;
            ctx.store
                .remove(&ctx.identity)
                .await
                .map_err(Error::checkpoint)?;
            let upload_id = cp.upload_id;
            match completed {
                Some(etag) => {
                    ctx.notice(Notice::CompleteSettledByHead {
                        upload_id: upload_id.clone(),
                    });
                    Ok(Found::Completed {
                        upload_id,
                        etag,
                        parts: cp.parts,
                    })
                }
                None => {
                    ctx.notice(Notice::UploadGone { upload_id });
                    Ok(Found::Fresh(None))
                }
            }
        }
        Err(e) => Err(e),
    }
}

/// Aborts the uploads of the key that an interrupted start of this upload left open (see
/// [`orphans`]), one notice each. A failure is a notice too, never the upload's: an STS policy may
/// well not allow ListMultipartUploads.
async fn sweep_orphans(ctx: &UploadContext, upload_id: &str, intent: Intent) {
    let swept = orphans::sweep(ctx, upload_id, intent.elapsed()).await;
    let (aborted, failed) = match swept {
        Ok(swept) => (swept.aborted, swept.failed),
        Err(e) => (Vec::new(), Some(e)),
    };
    for orphan in aborted {
        ctx.notice(Notice::OrphanAborted { upload_id: orphan });
    }
    if let Some(e) = failed {
        ctx.notice(Notice::OrphanSweepFailed {
            upload_id: upload_id.to_owned(),
            error: e.to_string(),
        });
    }
}

/// When an earlier run recorded every part and its upload is gone, it may have completed (its
/// process died before the answer to Complete was recorded): the object with the source's size and
/// combined CRC-64 says so. Returns the object's ETag then.
async fn completed_earlier(ctx: &UploadContext, cp: &Checkpoint) -> Result<Option<String>, Error> {
    let plan = &ctx.plan.parts;
    let all_recorded = plan
        .iter()
        .all(|p| cp.parts.get(&p.number).is_some_and(|r| r.size == p.size));
    if !all_recorded || cp.parts.len() != plan.len() {
        return Ok(None);
    }
    let crc = crc64_of_parts(cp.parts.values().map(|r| (r.crc64, r.size)));
    Ok(
        match ctx.client.head_object(ctx.bucket(), ctx.key()).await? {
            Some(head) if head.size == ctx.plan.stamp.size && head.crc64 == Some(crc) => {
                Some(head.etag)
            }
            _ => None,
        },
    )
}

/// The parts of the checkpointed upload that the server holds with the source's bytes.
///
/// Listed parts the checkpoint has no record of (their acknowledgement was lost before it was
/// recorded) are hashed from the source, as many at a time as the scheduler runs parts, each in one
/// pass.
async fn reconcile(
    ctx: &UploadContext,
    cp: &Checkpoint,
    listed: &[ListedPart],
) -> Result<BTreeMap<u32, PartRecord>, Error> {
    let mode = ctx.plan.mode;
    let by_number: BTreeMap<u32, &ListedPart> = listed.iter().map(|p| (p.part_number, p)).collect();
    let mut done = BTreeMap::new();
    let mut unknown = Vec::new();
    for spec in &ctx.plan.parts {
        let listed = by_number.get(&spec.number).copied();
        let known = Known::from_record(spec, cp.parts.get(&spec.number));
        match judge(spec, listed, known, mode) {
            Verdict::Done(record) => {
                done.insert(spec.number, record);
            }
            Verdict::NeedSource => unknown.push(*spec),
            Verdict::Send => {}
        }
    }
    // The hashing futures own what they use (a clone of the source's Arc, the part): futures
    // borrowing into a buffered stream make the upload's future lose `Send` (a rustc limitation
    // with higher-ranked lifetimes), and then it could not be spawned.
    let source = ctx.source().clone();
    let hashed: Vec<(PartSpec, Hashed)> = futures::stream::iter(unknown)
        .map(move |spec| {
            let source = source.clone();
            async move {
                let hashed = hash_part(source, spec, ChecksumMode::Md5).await?;
                Ok::<_, Error>((spec, hashed))
            }
        })
        .buffer_unordered(ctx.scheduler.concurrency().max(1))
        .try_collect()
        .await?;
    for (spec, hashed) in hashed {
        let listed = by_number.get(&spec.number).copied();
        let from_source = Known {
            md5: hashed.md5,
            crc64: Some(hashed.crc64),
        };
        if let Verdict::Done(record) = judge(&spec, listed, from_source, mode) {
            done.insert(spec.number, record);
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CheckpointStore as _;
    use crate::MemoryStore;
    use crate::upload::scripted::{
        PART, Reply, Scripted, checkpoint, data, part_of, planned, request, uploader,
    };
    use std::sync::Arc;

    /// Three parts, the last short.
    fn three_parts() -> Vec<u8> {
        data(2 * PART as usize + 1000, 7)
    }

    #[tokio::test]
    async fn a_fresh_upload_saves_an_intent_initiates_sweeps_and_checkpoints() {
        let server = Scripted::new(vec![
            Reply::initiated("U1"),
            Reply::uploads(&[("U1", "2024-01-01T00:00:00.000Z")]),
        ]);
        let store = Arc::new(MemoryStore::new());
        let ctx = planned(&uploader(&server, &store), request(&three_parts())).await;
        let before = now_unix();
        let resumed = resume(&ctx).await.unwrap();
        let after = now_unix();

        assert_eq!(
            server.lines(),
            [
                "POST /bucket/key?uploads",
                "GET /bucket/?uploads&prefix=key"
            ]
        );
        assert!(!resumed.resumed);
        assert_eq!(resumed.completed_etag, None);
        let saved = store.load(&ctx.identity).await.unwrap().unwrap();
        assert_eq!(saved, resumed.checkpoint);
        assert_eq!(saved.upload_id, "U1");
        assert!(saved.parts.is_empty());
        assert!((before..=after).contains(&saved.created_unix), "{saved:?}");
        assert!(ctx.take_notices().is_empty());
    }

    #[tokio::test]
    async fn resuming_keeps_only_the_listed_parts_whose_bytes_match_the_source() {
        let data = three_parts();
        let other = three_parts().iter().map(|b| !b).collect::<Vec<u8>>();
        let server = Scripted::new(vec![Reply::parts(
            "U1",
            &[
                (1, part_of(&data, 1)),
                // Part 2 on the server holds other bytes; part 3 was never sent.
                (2, part_of(&other, 2)),
            ],
        )]);
        let store = Arc::new(MemoryStore::new());
        let ctx = planned(&uploader(&server, &store), request(&data)).await;
        store
            .save(&checkpoint(&ctx, "U1", &data, &[1, 2]))
            .await
            .unwrap();

        let resumed = resume(&ctx).await.unwrap();

        assert_eq!(server.lines(), ["GET /bucket/key?uploadId=U1"]);
        assert!(resumed.resumed);
        assert_eq!(
            resumed.checkpoint.parts.keys().copied().collect::<Vec<_>>(),
            [1]
        );
        // The checkpoint is rewritten without the part the server does not hold.
        let saved = store.load(&ctx.identity).await.unwrap().unwrap();
        assert_eq!(saved, resumed.checkpoint);
    }

    #[tokio::test]
    async fn a_listed_part_the_checkpoint_lost_is_judged_by_reading_the_source() {
        let data = three_parts();
        let server = Scripted::new(vec![Reply::parts(
            "U1",
            &[(1, part_of(&data, 1)), (2, part_of(&data, 2))],
        )]);
        let store = Arc::new(MemoryStore::new());
        let ctx = planned(&uploader(&server, &store), request(&data)).await;
        store
            .save(&checkpoint(&ctx, "U1", &data, &[1]))
            .await
            .unwrap();

        let resumed = resume(&ctx).await.unwrap();

        let expected = checkpoint(&ctx, "U1", &data, &[1, 2]);
        assert_eq!(resumed.checkpoint.parts, expected.parts);
    }

    #[tokio::test]
    async fn a_checkpoint_of_a_changed_source_aborts_its_upload_and_starts_fresh() {
        let data = three_parts();
        let server = Scripted::new(vec![
            Reply::status(204),
            Reply::initiated("U2"),
            Reply::uploads(&[("U2", "2024-01-01T00:00:00.000Z")]),
        ]);
        let store = Arc::new(MemoryStore::new());
        let ctx = planned(&uploader(&server, &store), request(&data)).await;
        let mut stale = checkpoint(&ctx, "U1", &data, &[1]);
        stale.source.size += 1;
        store.save(&stale).await.unwrap();

        let resumed = resume(&ctx).await.unwrap();

        assert_eq!(
            server.lines(),
            [
                "DELETE /bucket/key?uploadId=U1",
                "POST /bucket/key?uploads",
                "GET /bucket/?uploads&prefix=key"
            ]
        );
        assert_eq!(
            ctx.take_notices(),
            [Notice::SourceChanged {
                upload_id: "U1".into(),
                aborted: true
            }]
        );
        assert!(!resumed.resumed);
        assert_eq!(resumed.checkpoint.upload_id, "U2");
    }

    #[tokio::test]
    async fn a_gone_upload_whose_object_has_the_sources_crc_was_completed_earlier() {
        let data = three_parts();
        let crc = ossup_proto::checksum::crc64(&data);
        let server = Scripted::new(vec![
            Reply::no_such_upload(),
            Reply::head(data.len() as u64, "\"E-3\"", crc),
        ]);
        let store = Arc::new(MemoryStore::new());
        let ctx = planned(&uploader(&server, &store), request(&data)).await;
        let recorded = checkpoint(&ctx, "U1", &data, &[1, 2, 3]);
        store.save(&recorded).await.unwrap();

        let resumed = resume(&ctx).await.unwrap();

        assert_eq!(
            server.lines(),
            ["GET /bucket/key?uploadId=U1", "HEAD /bucket/key"]
        );
        assert_eq!(resumed.completed_etag.as_deref(), Some("\"E-3\""));
        assert_eq!(resumed.checkpoint.parts, recorded.parts);
        assert_eq!(
            ctx.take_notices(),
            [Notice::CompleteSettledByHead {
                upload_id: "U1".into()
            }]
        );
        assert_eq!(store.load(&ctx.identity).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_gone_upload_with_parts_missing_is_replaced_by_a_fresh_one() {
        let data = three_parts();
        let server = Scripted::new(vec![
            Reply::no_such_upload(),
            Reply::initiated("U2"),
            Reply::uploads(&[("U2", "2024-01-01T00:00:00.000Z")]),
        ]);
        let store = Arc::new(MemoryStore::new());
        let ctx = planned(&uploader(&server, &store), request(&data)).await;
        store
            .save(&checkpoint(&ctx, "U1", &data, &[1]))
            .await
            .unwrap();

        let resumed = resume(&ctx).await.unwrap();

        // Not every part was recorded: no HeadObject, the upload cannot have completed.
        assert_eq!(
            server.lines(),
            [
                "GET /bucket/key?uploadId=U1",
                "POST /bucket/key?uploads",
                "GET /bucket/?uploads&prefix=key"
            ]
        );
        assert_eq!(
            ctx.take_notices(),
            [Notice::UploadGone {
                upload_id: "U1".into()
            }]
        );
        assert_eq!(resumed.checkpoint.upload_id, "U2");
    }

    #[tokio::test]
    async fn uploads_an_interrupted_start_left_open_are_aborted() {
        let data = three_parts();
        let server = Scripted::new(vec![
            Reply::initiated("U2"),
            Reply::uploads(&[
                ("U1", "2024-01-01T00:00:00.000Z"),
                ("U2", "2024-01-01T00:00:01.000Z"),
                // Opened long before this upload meant to start: not this upload's.
                ("U0", "2023-01-01T00:00:00.000Z"),
            ]),
            Reply::status(204),
        ]);
        let store = Arc::new(MemoryStore::new());
        let ctx = planned(&uploader(&server, &store), request(&data)).await;

        let resumed = resume(&ctx).await.unwrap();

        assert_eq!(
            server.lines()[2..],
            ["DELETE /bucket/key?uploadId=U1".to_owned()]
        );
        assert_eq!(
            ctx.take_notices(),
            [Notice::OrphanAborted {
                upload_id: "U1".into()
            }]
        );
        assert_eq!(resumed.checkpoint.upload_id, "U2");
    }
}
