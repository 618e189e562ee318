//! What a batch did, file by file ([`FileOutcome`], [`FileStatus`]) and in all ([`BatchSummary`]).

use std::path::PathBuf;

use serde::Serialize;

use crate::{Error, UploadOutcome};

/// How a skipped file was found to be in the bucket already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Same size, and the object's ETag is the MD5 of the file (an object put whole).
    SameEtag,
    /// Same size, and the object's CRC-64 (`x-oss-hash-crc64ecma`) is the file's (a multipart
    /// object, whose ETag is not an MD5 of the content).
    SameCrc64,
    /// Another worker of a cooperating batch put the object while this one had the file in hand:
    /// its record (size, ETag, CRC-64) matches the file's content, and the bucket holds that
    /// object.
    UploadedByAnotherWorker,
}

/// What became of one file of a batch.
#[derive(Debug)]
#[non_exhaustive]
pub enum FileStatus {
    /// Uploaded (or resumed and completed) by this run.
    Uploaded(Box<UploadOutcome>),
    /// Not sent: the bucket already holds these bytes under the key.
    Skipped {
        /// The file's size.
        size: u64,
        /// How that was decided.
        reason: SkipReason,
    },
    /// Failed; the others went on (unless the batch was told to stop at the first failure). The
    /// checkpoint of a multipart upload is kept, so the next run resumes it.
    Failed(Error),
}

/// One file's result, in the order files finish.
#[derive(Debug)]
pub struct FileOutcome {
    /// The local path, for a file item.
    pub path: Option<PathBuf>,
    /// The object key.
    pub key: String,
    /// What happened.
    pub status: FileStatus,
}

impl FileOutcome {
    /// Bytes this run sent for the file (0 when skipped; what reached the server before a failure is
    /// not counted).
    pub fn bytes_sent(&self) -> u64 {
        match &self.status {
            FileStatus::Uploaded(outcome) => outcome.bytes_sent,
            _ => 0,
        }
    }

    /// Bytes not sent because the server held them: parts of a resumed upload, or the whole file
    /// when skipped.
    pub fn bytes_reused(&self) -> u64 {
        match &self.status {
            FileStatus::Uploaded(outcome) => outcome.bytes_reused,
            FileStatus::Skipped { size, .. } => *size,
            FileStatus::Failed(_) => 0,
        }
    }

    /// The error, for a failed file.
    pub fn error(&self) -> Option<&Error> {
        match &self.status {
            FileStatus::Failed(error) => Some(error),
            _ => None,
        }
    }
}

/// Counts of a whole batch.
///
/// ```
/// let summary = ossup::BatchSummary::default();
/// assert!(summary.all_succeeded());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BatchSummary {
    /// Files uploaded by this run.
    pub uploaded: u64,
    /// Files skipped as already in the bucket.
    pub skipped: u64,
    /// Files that failed.
    pub failed: u64,
    /// Bytes sent in all.
    pub bytes_sent: u64,
    /// Bytes not sent because the server held them.
    pub bytes_reused: u64,
    /// The keys of the failed files, in the order they failed.
    pub failed_keys: Vec<String>,
    /// Whether the batch stopped early (cancelled, or at the first failure when asked to).
    pub stopped_early: bool,
}

impl BatchSummary {
    /// Files with a result.
    pub fn files(&self) -> u64 {
        self.uploaded + self.skipped + self.failed
    }

    /// No file failed and the batch was not stopped.
    pub fn all_succeeded(&self) -> bool {
        self.failed == 0 && !self.stopped_early
    }

    /// Counts one file's result.
    pub fn add(&mut self, outcome: &FileOutcome) {
        match &outcome.status {
            FileStatus::Uploaded(_) => self.uploaded += 1,
            FileStatus::Skipped { .. } => self.skipped += 1,
            FileStatus::Failed(_) => {
                self.failed += 1;
                self.failed_keys.push(outcome.key.clone());
            }
        }
        self.bytes_sent += outcome.bytes_sent();
        self.bytes_reused += outcome.bytes_reused();
    }
}
