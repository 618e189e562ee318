//! The resume phase: finds the multipart upload to send parts to, and the parts it already holds.
//!
//! - A checkpoint of this upload with the same source stamp and options: ListParts (every page),
//!   and keep only the listed parts whose checksums match the source's range ([`reconcile`]); the
//!   checkpoint is rewritten to hold exactly those.
//! - A checkpoint whose source or options changed: its upload is aborted, and a fresh one started.
//! - A checkpoint whose upload is gone: when every part was recorded and the object at the key has
//!   the source's size and combined CRC-64, an earlier run completed it ([`Resumed::completed_etag`]);
//!   otherwise a fresh upload starts.
//! - No checkpoint at all, and the request asks to resume from the server: the newest open upload of
//!   the key whose listed parts all have a number and size of the plan is adopted ([`adopt`]); its
//!   parts are judged as those of a checkpoint without records (the source range is hashed), and a
//!   checkpoint holding the upload id and the kept parts is saved before anything is sent.
//! - A fresh upload saves an intent before Initiate, aborts the uploads an interrupted start left
//!   open ([`orphans`]), then saves the checkpoint with its upload id.
//!
//! [`reconcile`]: super::reconcile
//! [`adopt`]: super::adopt

use std::collections::BTreeMap;

use futures::{StreamExt as _, TryStreamExt as _};
use ossup_proto::ErrorCode;
use ossup_proto::checksum::crc64_of_parts;
use ossup_proto::xml::ListedPart;

use super::ChecksumMode;
use super::adopt;
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
    match load(ctx).await? {
        // Only when the store has nothing at all: an intent, a damaged checkpoint or a changed
        // source says what became of this upload's own multipart upload, and a stranger's open
        // upload is no answer to that.
        Stored::Nothing if ctx.request.resume_from_server => {
            Ok(match adopt_open_upload(ctx).await? {
                Some(checkpoint) => Found::Parts(checkpoint),
                None => Found::Fresh(None),
            })
        }
        Stored::Nothing | Stored::Unusable => Ok(Found::Fresh(None)),
        Stored::Intent(created_unix) => Ok(Found::Fresh(Some(created_unix))),
        Stored::Checkpoint(cp) => match changed(ctx, &cp) {
            Some(notice) => {
                drop_changed(ctx, &cp, notice).await?;
                Ok(Found::Fresh(None))
            }
            None => carry_on(ctx, *cp).await,
        },
    }
}

/// What the store holds for an upload, damage already reported and set aside.
pub(super) enum Stored {
    /// Nothing at all.
    Nothing,
    /// An intent without an upload id: the run that saved it (at this time) stopped before saving
    /// the upload its Initiate created, if it created one.
    Intent(u64),
    /// A checkpoint that could not be used (damaged, or another upload's): reported, start fresh.
    Unusable,
    /// The checkpoint of this upload, naming its multipart upload.
    Checkpoint(Box<Checkpoint>),
}

/// Loads the checkpoint of `ctx`'s upload and says what it allows; a damaged one or another
/// upload's is reported as [`Notice::CheckpointCorrupt`].
pub(super) async fn load(ctx: &UploadContext) -> Result<Stored, Error> {
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
        Ok(None) => Ok(Stored::Nothing),
        Ok(Some(cp)) if cp.upload_id.is_empty() && &cp.identity == identity => {
            Ok(Stored::Intent(cp.created_unix))
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
            Ok(Stored::Unusable)
        }
        Ok(Some(cp)) => Ok(Stored::Checkpoint(Box::new(cp))),
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
            Ok(Stored::Unusable)
        }
        Err(e) => Err(Error::checkpoint(e)),
    }
}

/// The notice to give when `cp` was saved for another source stamp or other options (not yet
/// saying whether its upload was aborted).
pub(super) fn changed(ctx: &UploadContext, cp: &Checkpoint) -> Option<Notice> {
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

/// Carries on the newest open upload of the key whose listed parts all have a number and size of the
/// plan: its parts are judged as those of a checkpoint without records, and a checkpoint with its
/// upload id and the kept parts is saved before anything is sent. `None` when no open upload fits.
async fn adopt_open_upload(ctx: &UploadContext) -> Result<Option<Checkpoint>, Error> {
    let sizes: BTreeMap<u32, u64> = ctx.plan.parts.iter().map(|p| (p.number, p.size)).collect();
    // A part of another number or size means another part size or source: its parts are no use.
    let fits = move |listed: &[ListedPart]| {
        listed
            .iter()
            .all(|p| sizes.get(&p.part_number) == Some(&p.size))
    };
    let Some(found) = adopt::find(ctx, &fits).await? else {
        tracing::info!("no open upload of the key fits this upload; starting a fresh one");
        return Ok(None);
    };
    let mut checkpoint = Checkpoint::new(
        ctx.identity.clone(),
        found.upload_id.clone(),
        ctx.plan.stamp,
        now_unix(),
        ctx.options_digest.clone(),
    );
    // No records: every listed part is judged by hashing its range of the source.
    checkpoint.parts = reconcile(ctx, &checkpoint, &found.listed)
        .await
        .map_err(|e| e.with_upload_id(&found.upload_id))?;
    ctx.store
        .save(&checkpoint)
        .await
        .map_err(|e| Error::checkpoint(e).with_upload_id(&found.upload_id))?;
    let parts_listed = found.listed.len() as u32;
    let parts_kept = checkpoint.parts.len() as u32;
    let bytes_kept = checkpoint.parts.values().map(|r| r.size).sum::<u64>();
    tracing::info!(
        upload_id = %found.upload_id,
        initiated = %found.initiated,
        parts_listed,
        parts_kept,
        bytes_kept,
        "adopted an open upload of the key"
    );
    ctx.notice(Notice::UploadAdopted {
        upload_id: found.upload_id,
        parts_listed,
        parts_kept,
        bytes_kept,
    });
    Ok(Some(checkpoint))
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
    async fn without_a_checkpoint_the_newest_fitting_open_upload_is_adopted_and_others_left_alone()
    {
        let data = three_parts();
        let server = Scripted::new(vec![
            Reply::uploads(&[
                ("OLDER", "2024-01-01T00:00:00.000Z"),
                ("NEWEST", "2024-01-01T00:00:09.000Z"),
                ("FITS", "2024-01-01T00:00:05.000Z"),
            ]),
            // The newest holds a part of another size: another part size, not this upload's.
            Reply::parts("NEWEST", &[(1, &part_of(&data, 1)[..1000])]),
            Reply::parts("FITS", &[(1, part_of(&data, 1)), (3, part_of(&data, 3))]),
        ]);
        let store = Arc::new(MemoryStore::new());
        let ctx = planned(
            &uploader(&server, &store),
            request(&data).resume_from_server(true),
        )
        .await;

        let resumed = resume(&ctx).await.unwrap();

        // Nothing initiated, nothing aborted: OLDER stays open, untouched.
        assert_eq!(
            server.lines(),
            [
                "GET /bucket/?uploads&prefix=key",
                "GET /bucket/key?uploadId=NEWEST",
                "GET /bucket/key?uploadId=FITS"
            ]
        );
        assert!(resumed.resumed);
        assert_eq!(resumed.completed_etag, None);
        let expected = checkpoint(&ctx, "FITS", &data, &[1, 3]);
        assert_eq!(resumed.checkpoint.upload_id, "FITS");
        assert_eq!(resumed.checkpoint.parts, expected.parts);
        // Saved before anything is sent.
        let saved = store.load(&ctx.identity).await.unwrap().unwrap();
        assert_eq!(saved, resumed.checkpoint);
        assert_eq!(
            ctx.take_notices(),
            [Notice::UploadAdopted {
                upload_id: "FITS".into(),
                parts_listed: 2,
                parts_kept: 2,
                bytes_kept: PART + 1000,
            }]
        );
    }

    #[tokio::test]
    async fn an_adopted_upload_keeps_only_the_parts_holding_the_sources_bytes() {
        let data = three_parts();
        let other = data.iter().map(|b| !b).collect::<Vec<u8>>();
        let server = Scripted::new(vec![
            Reply::uploads(&[("U1", "2024-01-01T00:00:00.000Z")]),
            Reply::parts("U1", &[(1, part_of(&data, 1)), (2, part_of(&other, 2))]),
            // Part 2 again (its bytes were another source's), part 3 for the first time.
            Reply::stored(part_of(&data, 2)),
            Reply::stored(part_of(&data, 3)),
            Reply::completed("\"E-3\"", ossup_proto::checksum::crc64(&data)),
        ]);
        let store = Arc::new(MemoryStore::new());

        let outcome = uploader(&server, &store)
            .upload(request(&data).resume_from_server(true))
            .await
            .unwrap();

        assert_eq!(
            server.lines()[2..],
            [
                "PUT /bucket/key?partNumber=2&uploadId=U1",
                "PUT /bucket/key?partNumber=3&uploadId=U1",
                "POST /bucket/key?uploadId=U1"
            ]
        );
        assert!(outcome.resumed);
        assert_eq!(outcome.upload_id.as_deref(), Some("U1"));
        assert_eq!((outcome.parts_reused, outcome.parts_sent), (1, 2));
        assert_eq!(outcome.bytes_reused, PART);
        assert_eq!(outcome.bytes_sent, data.len() as u64 - PART);
        assert_eq!(
            outcome.notices,
            [Notice::UploadAdopted {
                upload_id: "U1".into(),
                parts_listed: 2,
                parts_kept: 1,
                bytes_kept: PART,
            }]
        );
        assert!(store.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn in_crc64_only_mode_an_adopted_uploads_parts_are_judged_by_their_listed_crc() {
        let data = three_parts();
        let part = |number: u32, etag: &str, crc: u64| {
            format!(
                "<Part><PartNumber>{number}</PartNumber><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>{etag}</ETag><HashCrc64ecma>{crc}</HashCrc64ecma><Size>{}</Size></Part>",
                part_of(&data, number).len()
            )
        };
        let crc = |number: u32| ossup_proto::checksum::crc64(part_of(&data, number));
        let md5_etag = |number: u32| {
            ossup_proto::etag::part_etag(&ossup_proto::checksum::md5(part_of(&data, number)))
        };
        let listed = format!(
            "<ListPartsResult><Bucket>bucket</Bucket><Key>key</Key><UploadId>U1</UploadId><IsTruncated>false</IsTruncated>{}{}</ListPartsResult>",
            // Part 1: an ETag that is no MD5 of the range, the range's CRC-64: kept.
            part(1, "\"00000000000000000000000000000000\"", crc(1)),
            // Part 2: the range's MD5, another CRC-64: sent again.
            part(2, &md5_etag(2), crc(2) ^ 1),
        );
        let server = Scripted::new(vec![
            Reply::uploads(&[("U1", "2024-01-01T00:00:00.000Z")]),
            Reply::xml(listed),
        ]);
        let store = Arc::new(MemoryStore::new());
        let ctx = planned(
            &uploader(&server, &store),
            request(&data)
                .checksum_mode(ChecksumMode::Crc64Only)
                .resume_from_server(true),
        )
        .await;

        let resumed = resume(&ctx).await.unwrap();

        assert_eq!(
            resumed.checkpoint.parts.keys().copied().collect::<Vec<_>>(),
            [1]
        );
        assert_eq!(resumed.checkpoint.parts[&1].crc64, crc(1));
    }

    #[tokio::test]
    async fn when_no_open_upload_fits_a_fresh_upload_starts_as_usual() {
        let data = three_parts();
        let server = Scripted::new(vec![
            Reply::uploads(&[("U1", "2023-01-01T00:00:00.000Z")]),
            // Part 4: a smaller part size, or a longer source.
            Reply::parts("U1", &[(4, part_of(&data, 3))]),
            Reply::initiated("U2"),
            Reply::uploads(&[
                ("U1", "2023-01-01T00:00:00.000Z"),
                ("U2", "2024-01-01T00:00:00.000Z"),
            ]),
        ]);
        let store = Arc::new(MemoryStore::new());
        let ctx = planned(
            &uploader(&server, &store),
            request(&data).resume_from_server(true),
        )
        .await;

        let resumed = resume(&ctx).await.unwrap();

        assert_eq!(
            server.lines(),
            [
                "GET /bucket/?uploads&prefix=key",
                "GET /bucket/key?uploadId=U1",
                "POST /bucket/key?uploads",
                "GET /bucket/?uploads&prefix=key"
            ]
        );
        assert!(!resumed.resumed);
        assert_eq!(resumed.checkpoint.upload_id, "U2");
        assert!(resumed.checkpoint.parts.is_empty());
        // U1 was opened long before this upload's intent: the sweep leaves it alone too.
        assert!(ctx.take_notices().is_empty());
    }

    #[tokio::test]
    async fn not_asked_to_resume_from_the_server_nothing_is_listed() {
        let data = three_parts();
        let server = Scripted::new(vec![
            Reply::initiated("U1"),
            Reply::uploads(&[("U1", "2024-01-01T00:00:00.000Z")]),
        ]);
        let store = Arc::new(MemoryStore::new());
        let ctx = planned(
            &uploader(&server, &store),
            request(&data).resume_from_server(false),
        )
        .await;

        let resumed = resume(&ctx).await.unwrap();

        // Exactly a fresh upload's requests: the sweep's listing, no ListParts.
        assert_eq!(
            server.lines(),
            [
                "POST /bucket/key?uploads",
                "GET /bucket/?uploads&prefix=key"
            ]
        );
        assert!(!resumed.resumed);
    }

    #[tokio::test]
    async fn an_intent_left_by_an_interrupted_start_is_not_answered_by_adopting() {
        let data = three_parts();
        let server = Scripted::new(vec![
            Reply::initiated("U2"),
            Reply::uploads(&[("U2", "2024-01-01T00:00:00.000Z")]),
        ]);
        let store = Arc::new(MemoryStore::new());
        let ctx = planned(
            &uploader(&server, &store),
            request(&data).resume_from_server(true),
        )
        .await;
        let mut intent = checkpoint(&ctx, "", &data, &[]);
        intent.created_unix = now_unix();
        store.save(&intent).await.unwrap();

        let resumed = resume(&ctx).await.unwrap();

        // The intent's start is carried on (Initiate, sweep), with no look for uploads to adopt.
        assert_eq!(
            server.lines(),
            [
                "POST /bucket/key?uploads",
                "GET /bucket/?uploads&prefix=key"
            ]
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
