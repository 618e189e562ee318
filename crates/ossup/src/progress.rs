//! Progress: the events an upload reports, and the [`ProgressSink`] trait that receives them.
//!
//! Events are `serde::Serialize` (tagged by `"event"`), so a command-line tool can print them as
//! JSON lines. A sink is a closure, a channel sender, or a type of your own.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// Something worth knowing that did not stop the upload: a checkpoint set aside, a stale upload
/// aborted. Reported as an event and kept in the [`UploadOutcome`](crate::UploadOutcome).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Notice {
    /// The checkpoint failed validation; it was set aside and the upload started fresh.
    CheckpointCorrupt {
        /// Where the checkpoint was.
        location: String,
        /// What is wrong with it.
        reason: String,
        /// Where it was moved, when it was moved.
        set_aside_to: Option<String>,
    },
    /// The source's size or modification time differs from the checkpoint's: the old multipart
    /// upload was aborted and a fresh one started.
    SourceChanged {
        /// The old upload.
        upload_id: String,
        /// Whether the abort succeeded (it may already have been gone).
        aborted: bool,
    },
    /// The object options differ from those the checkpointed upload was started with: the old
    /// upload was aborted and a fresh one started.
    OptionsChanged {
        /// The old upload.
        upload_id: String,
        /// Whether the abort succeeded.
        aborted: bool,
    },
    /// The checkpointed upload no longer exists on the server (`NoSuchUpload`): a fresh upload was
    /// started.
    UploadGone {
        /// The vanished upload.
        upload_id: String,
    },
    /// The bytes of a stream differ from those an earlier run sent in its upload, from part `part`
    /// on. When the very first part differs, nothing of the old upload fits: it was aborted and a
    /// fresh one started. Later, the parts before `part` were verified equal and are kept, and every
    /// differing part is sent again; the object is the new stream's bytes either way.
    StreamDiffers {
        /// The earlier run's upload.
        upload_id: String,
        /// The first part whose bytes differ.
        part: u32,
        /// Whether the old upload was aborted (only when part 1 differs, or the stream now fits in
        /// one PutObject).
        aborted: bool,
    },
    /// CompleteMultipartUpload's answer was lost and the retry found no upload; HeadObject showed
    /// the object with the source's size and CRC-64, so the upload did complete.
    CompleteSettledByHead {
        /// The completed upload.
        upload_id: String,
    },
    /// While parts were being recorded, the store found the checkpoint damaged (and set it aside)
    /// or no longer there: it was saved again with every part verified so far, and the upload went
    /// on.
    CheckpointRebuilt {
        /// Where the checkpoint was.
        location: String,
        /// What was wrong with it.
        reason: String,
        /// Where the damaged checkpoint was moved, when it was moved.
        set_aside_to: Option<String>,
        /// The parts the saved checkpoint holds.
        parts: u32,
    },
    /// Recording a part in the checkpoint failed. The part is on the server and the upload went
    /// on (the object is complete and verified without the record); only a resume after a crash is
    /// affected, which reads the unrecorded parts from the source again to verify them. Reported
    /// for the first failure of an upload; every one is logged.
    CheckpointRecordFailed {
        /// The part whose record failed.
        part: u32,
        /// Why.
        error: String,
    },
    /// A multipart upload of this key that an interrupted start of this upload left open (an
    /// InitiateMultipartUpload whose answer was lost and was sent again, or a run killed between
    /// Initiate and saving its checkpoint) was aborted.
    OrphanAborted {
        /// The aborted upload.
        upload_id: String,
    },
    /// Looking for uploads an interrupted start left open failed (ListMultipartUploads refused, say,
    /// by an STS policy without `oss:ListMultipartUploads`); the upload went on. Any such upload
    /// stays open until aborted (`ossup uploads abort`) or removed by a lifecycle rule.
    OrphanSweepFailed {
        /// The upload this run started.
        upload_id: String,
        /// Why.
        error: String,
    },
    /// The store held no checkpoint of this upload and the request asked to resume from the
    /// server ([`UploadRequest::resume_from_server`](crate::UploadRequest::resume_from_server)):
    /// this open multipart upload of the key, the newest whose parts fit the upload's part layout,
    /// is carried on. Its listed parts were verified against the source; those that hold other
    /// bytes are sent again.
    UploadAdopted {
        /// The upload carried on.
        upload_id: String,
        /// The parts the server listed for it.
        parts_listed: u32,
        /// The listed parts that hold the source's bytes, kept and not sent again.
        parts_kept: u32,
        /// The bytes of the kept parts.
        bytes_kept: u64,
    },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::CheckpointCorrupt {
                location,
                reason,
                set_aside_to,
            } => {
                write!(f, "checkpoint at {location} was corrupt ({reason})")?;
                if let Some(to) = set_aside_to {
                    write!(f, "; set aside to {to}")?;
                }
                f.write_str("; started a fresh upload")
            }
            Notice::SourceChanged { upload_id, aborted } => write!(
                f,
                "the source changed since upload {upload_id} started; {} it and started a fresh upload",
                if *aborted {
                    "aborted"
                } else {
                    "could not abort"
                }
            ),
            Notice::OptionsChanged { upload_id, aborted } => write!(
                f,
                "the object options differ from those of upload {upload_id}; {} it and started a fresh upload",
                if *aborted {
                    "aborted"
                } else {
                    "could not abort"
                }
            ),
            Notice::UploadGone { upload_id } => write!(
                f,
                "upload {upload_id} no longer exists on the server; started a fresh upload"
            ),
            Notice::StreamDiffers {
                upload_id,
                part,
                aborted: true,
            } => write!(
                f,
                "the stream differs from the one upload {upload_id} was sending, from part {part} on; aborted that upload and started afresh"
            ),
            Notice::StreamDiffers {
                upload_id,
                part,
                aborted: false,
            } => write!(
                f,
                "the stream differs from the one upload {upload_id} was sending, from part {part} on; the parts before it are kept and the differing ones sent again"
            ),
            Notice::CompleteSettledByHead { upload_id } => write!(
                f,
                "the answer to completing upload {upload_id} was lost; the object on the server matches the source's size and CRC-64"
            ),
            Notice::CheckpointRebuilt {
                location,
                reason,
                set_aside_to,
                parts,
            } => {
                write!(
                    f,
                    "checkpoint at {location} was lost while recording parts ({reason})"
                )?;
                if let Some(to) = set_aside_to {
                    write!(f, "; set aside to {to}")?;
                }
                write!(
                    f,
                    "; saved it again with the {parts} parts verified so far, and the upload goes on"
                )
            }
            Notice::CheckpointRecordFailed { part, error } => write!(
                f,
                "recording part {part} in the checkpoint failed ({error}); the upload goes on, but if it is interrupted, resuming reads the unrecorded parts again to verify them"
            ),
            Notice::OrphanAborted { upload_id } => write!(
                f,
                "aborted upload {upload_id} of this key, left open by an interrupted start of this upload"
            ),
            Notice::OrphanSweepFailed { upload_id, error } if upload_id.is_empty() => write!(
                f,
                "could not look for uploads an interrupted start left open ({error}); they stay open until aborted, and the next run looks again"
            ),
            Notice::OrphanSweepFailed { upload_id, error } => write!(
                f,
                "could not look for uploads an interrupted start left open ({error}); upload {upload_id} goes on, but such uploads stay open until aborted"
            ),
            Notice::UploadAdopted {
                upload_id,
                parts_listed,
                parts_kept,
                bytes_kept,
            } => write!(
                f,
                "no checkpoint; carried on upload {upload_id}, found open on the server: {parts_kept} of its {parts_listed} parts ({bytes_kept} bytes) hold the source's bytes and are kept, the rest are sent"
            ),
        }
    }
}

/// One step of an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProgressEvent {
    /// The upload is planned: `total` bytes, of which `already_on_server` need not be sent again.
    Started {
        /// The source's size.
        total: u64,
        /// Bytes the server already holds, verified (from an earlier run).
        already_on_server: u64,
        /// The number of parts (0 for a single PutObject).
        parts: u32,
        /// The part size.
        part_size: u64,
        /// The multipart upload id, when multipart.
        upload_id: Option<String>,
    },
    /// The upload of a stream began (its size is known at its end only): parts go in order from
    /// `part_size` bytes up, and a part the server already holds counts in `PartDone` once its
    /// bytes are verified.
    StreamStarted {
        /// The size of the first parts (later ones grow: see
        /// [`stream_part_size`](crate::plan::stream_part_size)).
        part_size: u64,
        /// The multipart upload.
        upload_id: String,
        /// Whether an earlier run's upload is carried on.
        resumed: bool,
    },
    /// A part was acknowledged, verified and recorded in the checkpoint (or its record failed: see
    /// [`Notice::CheckpointRecordFailed`]).
    PartDone {
        /// The part number.
        number: u32,
        /// The part's size.
        bytes: u64,
        /// Bytes on the server so far, reused ones included; never decreases.
        transferred: u64,
        /// The most parts the scheduler runs at once now
        /// ([`PartScheduler::current_limit`](crate::PartScheduler::current_limit)): it moves when
        /// the scheduler adapts to the link ([`Adaptive`](crate::Adaptive)).
        concurrency: u32,
    },
    /// Bytes of the parts being sent have gone out to the connection, not yet acknowledged.
    /// Reported at most every 100 ms, and only while the figure moves and the transport counts
    /// the bytes it sends (the stock one does).
    ///
    /// `transferred + in_flight` never decreases, not even when a part's request is retried and
    /// sends its body again: a part's `sent` stays at the furthest point any attempt reached until
    /// a later attempt passes it, and the part's bytes move from `in_flight` to `transferred` when
    /// its [`PartDone`](Self::PartDone) is reported.
    Sending {
        /// Bytes acknowledged and recorded so far, as [`PartDone`](Self::PartDone) reports them.
        transferred: u64,
        /// Bytes of the parts in flight handed to the connection: the sum of `parts`' `sent`.
        in_flight: u64,
        /// The parts in flight, by part number.
        parts: Vec<PartSending>,
        /// The most parts the scheduler runs at once now, as in [`PartDone`](Self::PartDone).
        concurrency: u32,
    },
    /// A request failed and will be tried again.
    Retrying {
        /// The part, for UploadPart.
        part: Option<u32>,
        /// The API being retried.
        api: Option<String>,
        /// The attempt that failed, from 1.
        attempt: u32,
        /// The wait before the next attempt, in milliseconds.
        delay_ms: u64,
        /// Why it failed.
        error: String,
    },
    /// Something worth knowing that did not stop the upload.
    Notice {
        /// What happened.
        #[serde(flatten)]
        notice: Notice,
        /// The notice in words.
        message: String,
    },
    /// The object is complete and verified.
    Completed {
        /// The object's ETag.
        etag: String,
        /// The object's CRC-64/XZ.
        crc64: u64,
        /// Bytes sent in this run.
        bytes_sent: u64,
        /// Bytes found on the server from an earlier run and not sent again.
        bytes_reused: u64,
    },
}

/// One part in flight, in a [`ProgressEvent::Sending`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartSending {
    /// The part number.
    pub number: u32,
    /// Bytes of the part handed to the connection (the furthest any attempt reached).
    pub sent: u64,
    /// The part's size.
    pub bytes: u64,
}

/// Receives progress events.
///
/// Called from the engine's tasks, in order, one at a time; keep it quick (hand slow work to a
/// channel). Closures, [`tokio::sync::mpsc::UnboundedSender`] and `Arc<S>` of a sink `S` are sinks:
///
/// ```
/// use ossup::{ProgressEvent, ProgressSink};
/// let print = |event: &ProgressEvent| println!("{}", serde_json::to_string(event).unwrap());
/// print.on_event(&ProgressEvent::PartDone { number: 1, bytes: 10, transferred: 10, concurrency: 4 });
///
/// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
/// tx.on_event(&ProgressEvent::PartDone { number: 1, bytes: 10, transferred: 10, concurrency: 4 });
/// assert!(rx.try_recv().is_ok());
/// ```
pub trait ProgressSink: Send + Sync {
    /// Handles one event.
    fn on_event(&self, event: &ProgressEvent);
}

impl<F: Fn(&ProgressEvent) + Send + Sync> ProgressSink for F {
    fn on_event(&self, event: &ProgressEvent) {
        self(event)
    }
}

impl ProgressSink for tokio::sync::mpsc::UnboundedSender<ProgressEvent> {
    fn on_event(&self, event: &ProgressEvent) {
        // A dropped receiver means nobody is listening; the upload goes on.
        let _ = self.send(event.clone());
    }
}

/// Hands every event to the shared sink, so one sink can watch several uploads. (A boxed closure is
/// already a sink through the closure impl, which is why there is no `Box` impl beside this one.)
impl<S: ProgressSink + ?Sized> ProgressSink for Arc<S> {
    fn on_event(&self, event: &ProgressEvent) {
        (**self).on_event(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_as_tagged_json() {
        let json = serde_json::to_value(ProgressEvent::PartDone {
            number: 3,
            bytes: 100,
            transferred: 300,
            concurrency: 4,
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"event": "part_done", "number": 3, "bytes": 100, "transferred": 300, "concurrency": 4})
        );
        let notice = Notice::UploadGone {
            upload_id: "U".into(),
        };
        let json = serde_json::to_value(ProgressEvent::Notice {
            message: notice.to_string(),
            notice,
        })
        .unwrap();
        assert_eq!(json["event"], "notice");
        assert_eq!(json["notice"], "upload_gone");
        assert_eq!(json["upload_id"], "U");
    }
}
