//! Start-up recovery: loads every record and finishes or discards what a crash interrupted.
//!
//! - `tmp/` is emptied: records that never got renamed into place were never acknowledged.
//! - A bucket directory without `bucket.json` (a create or delete cut short) is removed.
//! - An upload directory without `upload.json` (an initiate, abort or complete cut short) is removed.
//! - An upload whose id an object records as `completed_upload` was completed: it is removed.
//! - A blob no remaining record names (a body received but never committed, a replaced part, the
//!   blobs of a deleted object) is removed.
//!
//! A record that cannot be read, or one that names a missing blob, stops the start with an error
//! naming the file: the data directory was changed by something other than this server, and
//! guessing would risk a silent loss.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::Path;

use super::files::{read_json, remove_dir_all_quietly};
use super::records::{BucketRecord, ObjectRecord, PartRecord, UploadRecord};

/// A bucket as found on disk.
pub(super) struct RecoveredBucket {
    pub record: BucketRecord,
    pub objects: Vec<ObjectRecord>,
    pub uploads: Vec<(UploadRecord, Vec<PartRecord>)>,
}

fn entries(dir: &Path) -> io::Result<Vec<fs::DirEntry>> {
    match fs::read_dir(dir) {
        Ok(iter) => iter.collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn json_files(dir: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    let mut out: Vec<_> = entries(dir)?
        .into_iter()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    out.sort();
    Ok(out)
}

fn damaged(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "the data directory is damaged: {} {what}; restore it or start with an empty data directory",
            path.display()
        ),
    )
}

/// Recovers the store under `root`; see the module documentation.
pub(super) fn recover(
    root: &Path,
    blobs_dir: &Path,
    tmp_dir: &Path,
) -> io::Result<Vec<RecoveredBucket>> {
    for entry in entries(tmp_dir)? {
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            remove_dir_all_quietly(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
    }

    let mut buckets = Vec::new();
    for entry in entries(&root.join("buckets"))? {
        let dir = entry.path();
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let record_path = dir.join("bucket.json");
        if !record_path.exists() {
            tracing::info!(
                "removing {}: a bucket create or delete was cut short",
                dir.display()
            );
            remove_dir_all_quietly(&dir)?;
            continue;
        }
        let record: BucketRecord = read_json(&record_path)?;
        let mut objects = Vec::new();
        for path in json_files(&dir.join("objects"))? {
            objects.push(read_json::<ObjectRecord>(&path)?);
        }
        let mut uploads = Vec::new();
        for upload in entries(&dir.join("uploads"))? {
            let upload_dir = upload.path();
            let upload_record = upload_dir.join("upload.json");
            if !upload_record.exists() {
                remove_dir_all_quietly(&upload_dir)?;
                continue;
            }
            let record: UploadRecord = read_json(&upload_record)?;
            let mut parts = Vec::new();
            for path in json_files(&upload_dir.join("parts"))? {
                parts.push(read_json::<PartRecord>(&path)?);
            }
            parts.sort_by_key(|p: &PartRecord| p.part_number);
            uploads.push((record, parts));
        }
        let completed: HashSet<&str> = objects
            .iter()
            .filter_map(|o| o.completed_upload.as_deref())
            .collect();
        let (done, open): (Vec<_>, Vec<_>) = uploads
            .into_iter()
            .partition(|(u, _)| completed.contains(u.upload_id.as_str()));
        for (upload, _) in done {
            tracing::info!(
                "finishing the completion of upload {} of {:?} cut short by a crash",
                upload.upload_id,
                upload.key
            );
            remove_dir_all_quietly(&dir.join("uploads").join(&upload.upload_id))?;
        }
        buckets.push(RecoveredBucket {
            record,
            objects,
            uploads: open,
        });
    }

    let mut referenced = HashSet::new();
    for bucket in &buckets {
        let dir = root.join("buckets").join(&bucket.record.name);
        for object in &bucket.objects {
            for segment in &object.segments {
                check_blob(blobs_dir, &segment.blob, segment.size, &dir, &object.key)?;
                referenced.insert(segment.blob.clone());
            }
        }
        for (upload, parts) in &bucket.uploads {
            for part in parts {
                check_blob(blobs_dir, &part.blob, part.size, &dir, &upload.key)?;
                referenced.insert(part.blob.clone());
            }
        }
    }
    let mut removed = 0usize;
    for entry in entries(blobs_dir)? {
        let name = entry.file_name();
        if !referenced.contains(name.to_string_lossy().as_ref()) {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!("removed {removed} blobs no record names (uncommitted or replaced data)");
    }
    Ok(buckets)
}

fn check_blob(
    blobs_dir: &Path,
    blob: &str,
    size: u64,
    bucket_dir: &Path,
    key: &str,
) -> io::Result<()> {
    let path = blobs_dir.join(blob);
    match fs::metadata(&path) {
        Ok(meta) if meta.len() == size => Ok(()),
        Ok(meta) => Err(damaged(
            &path,
            &format!(
                "holds {} bytes but a record in {} for key {key:?} says {size}",
                meta.len(),
                bucket_dir.display()
            ),
        )),
        Err(e) => Err(damaged(
            &path,
            &format!(
                "is unreadable ({e}) but a record in {} for key {key:?} names it",
                bucket_dir.display()
            ),
        )),
    }
}
