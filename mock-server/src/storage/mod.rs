//! Durable storage of buckets, objects and multipart uploads in a local directory.
//!
//! Layout under the data directory:
//!
//! ```text
//! blobs/ID                                  bytes of one part or one PutObject body
//! tmp/                                      records being written (emptied at start)
//! buckets/NAME/bucket.json                  the bucket
//! buckets/NAME/objects/SHA256(KEY).json     an object: key, attributes, the blobs it is made of
//! buckets/NAME/uploads/ID/upload.json       an open multipart upload
//! buckets/NAME/uploads/ID/parts/N.json      one uploaded part: its blob, size, MD5, CRC-64
//! ```
//!
//! Keys are never file names (they live inside the JSON records), so any key, `../../etc/passwd`
//! included, is just a key. Bucket names are validated before they reach here; upload ids and blob ids
//! are made by the server.
//!
//! Every change is published by one atomic rename of a record (see [`files`]); blobs are written and
//! synced before the record that names them (with [`Durability::ProcessCrash`] nothing is synced;
//! the order stays). A completed upload keeps its part blobs as the segments of
//! the object (no copy). At start, [`Store::open`] finishes or discards whatever a crash interrupted:
//! temp files are removed, an upload whose object records it as completed is removed, and blobs no
//! record names are removed.
//!
//! The in-memory index behind one mutex answers every lookup; the mutex is held across the small record
//! writes of a commit (so concurrent commits of one upload are serialised) but never while a body is
//! received or an object is read.

pub(crate) mod blob;
mod files;
mod md5_lanes;
pub(crate) mod records;
mod recovery;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use ossup_proto::ErrorCode;
use ossup_proto::checksum::crc64_of_parts;
use ossup_proto::etag::{multipart_etag, part_etag, same};
use ossup_proto::limits::MIN_PART_SIZE;
use sha2::{Digest, Sha256};

use crate::config::Durability;
use crate::error::OssError;
use crate::ids::Ids;
pub(crate) use blob::{BlobPins, ReceiveError, ReceivedBlob};
pub(crate) use records::{
    BucketRecord, ObjectAttrs, ObjectRecord, ObjectType, PartRecord, Segment, UploadRecord,
    unix_now,
};

/// The store: the data directory and its in-memory index.
#[derive(Debug)]
pub(crate) struct Store {
    root: PathBuf,
    blobs_dir: PathBuf,
    tmp_dir: PathBuf,
    state: Mutex<State>,
    pins: Arc<blob::PinTable>,
    ids: Arc<Ids>,
    durability: Durability,
    /// The MD5 thread every body received by this store is hashed on.
    md5: md5_lanes::Md5Lanes,
}

#[derive(Debug, Default)]
struct State {
    buckets: BTreeMap<String, BucketState>,
}

#[derive(Debug)]
struct BucketState {
    record: BucketRecord,
    objects: BTreeMap<String, ObjectRecord>,
    uploads: HashMap<String, UploadState>,
}

#[derive(Debug)]
struct UploadState {
    record: UploadRecord,
    parts: BTreeMap<u32, PartRecord>,
}

/// Which parts a Complete joins.
#[derive(Debug)]
pub(crate) enum PartSelection {
    /// The parts the request body lists, `(number, etag)`, already checked to be ascending.
    Listed(Vec<(u32, String)>),
    /// Every uploaded part in order (`x-oss-complete-all: yes`).
    All,
}

/// One page of an upload's parts.
#[derive(Debug)]
pub(crate) struct PartsPage {
    pub upload: UploadRecord,
    pub parts: Vec<PartRecord>,
    pub truncated: bool,
}

/// One page of a bucket's open uploads.
#[derive(Debug)]
pub(crate) struct UploadsPage {
    pub uploads: Vec<UploadRecord>,
    pub truncated: bool,
}

/// One page of a bucket's objects.
#[derive(Debug)]
pub(crate) struct ObjectsPage {
    pub objects: Vec<ObjectRecord>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    pub next_marker: String,
}

/// An object opened for reading: its record, its blob files and the pins that keep them.
#[derive(Debug)]
pub(crate) struct OpenedObject {
    pub record: ObjectRecord,
    pub segments: Vec<(PathBuf, u64)>,
    pub pins: BlobPins,
}

fn io_error(what: &str) -> impl FnOnce(io::Error) -> OssError + '_ {
    move |e| OssError::internal(what, e)
}

impl Store {
    /// Opens (creating if needed) the store in `root`, recovering from any crash; `durability` says
    /// whether its changes are fsynced.
    pub(crate) fn open(root: &Path, ids: Arc<Ids>, durability: Durability) -> io::Result<Store> {
        let root = root.to_path_buf();
        let blobs_dir = root.join("blobs");
        let tmp_dir = root.join("tmp");
        for dir in [&root, &blobs_dir, &tmp_dir, &root.join("buckets")] {
            std::fs::create_dir_all(dir)?;
        }
        let buckets = recovery::recover(&root, &blobs_dir, &tmp_dir)?;
        let state = State {
            buckets: buckets
                .into_iter()
                .map(|b| {
                    let uploads = b
                        .uploads
                        .into_iter()
                        .map(|(record, parts)| {
                            (
                                record.upload_id.clone(),
                                UploadState {
                                    record,
                                    parts: parts.into_iter().map(|p| (p.part_number, p)).collect(),
                                },
                            )
                        })
                        .collect();
                    (
                        b.record.name.clone(),
                        BucketState {
                            record: b.record,
                            objects: b.objects.into_iter().map(|o| (o.key.clone(), o)).collect(),
                            uploads,
                        },
                    )
                })
                .collect(),
        };
        Ok(Store {
            pins: Arc::new(blob::PinTable::new(blobs_dir.clone())),
            root,
            blobs_dir,
            tmp_dir,
            state: Mutex::new(state),
            ids,
            durability,
            md5: md5_lanes::Md5Lanes::start()?,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.join("buckets").join(bucket)
    }

    fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        let digest = Sha256::digest(key.as_bytes());
        self.bucket_dir(bucket)
            .join("objects")
            .join(format!("{}.json", hex::encode(digest)))
    }

    fn upload_dir(&self, bucket: &str, upload_id: &str) -> PathBuf {
        self.bucket_dir(bucket).join("uploads").join(upload_id)
    }

    fn write_record<T: serde::Serialize>(&self, dest: &Path, value: &T) -> io::Result<()> {
        files::write_json_atomic(
            &self.tmp_dir,
            &format!("{}.tmp", self.ids.file_name()),
            dest,
            value,
            self.durability,
        )
    }

    /// Receives a request body into a new blob (see [`blob::receive`]).
    pub(crate) async fn receive<B>(
        &self,
        body: &mut B,
        limit: u64,
        stats: &crate::stats::Stats,
    ) -> Result<ReceivedBlob, ReceiveError>
    where
        B: http_body::Body<Data = bytes::Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        blob::receive(
            &self.blobs_dir,
            self.ids.file_name(),
            body,
            limit,
            stats,
            self.durability,
            &self.md5,
        )
        .await
    }

    /// Makes the directory entries of newly received blobs durable before a record names them.
    fn sync_blob_entries(&self) -> Result<(), OssError> {
        files::sync_dir(&self.blobs_dir, self.durability)
            .map_err(io_error("syncing the blobs directory"))
    }

    // ----- buckets -----

    /// Creates a bucket; 409 BucketAlreadyExists when it exists.
    pub(crate) fn create_bucket(
        &self,
        name: &str,
        storage_class: &str,
        acl: &str,
    ) -> Result<(), OssError> {
        let mut state = self.lock();
        if state.buckets.contains_key(name) {
            return Err(OssError::new(ErrorCode::BucketAlreadyExists).field("BucketName", name));
        }
        let record = BucketRecord {
            name: name.to_owned(),
            created: unix_now(),
            storage_class: storage_class.to_owned(),
            acl: acl.to_owned(),
        };
        let dir = self.bucket_dir(name);
        (|| {
            std::fs::create_dir_all(dir.join("objects"))?;
            std::fs::create_dir_all(dir.join("uploads"))?;
            files::sync_dir(&dir, self.durability)?;
            files::sync_parent(&dir, self.durability)?;
            self.write_record(&dir.join("bucket.json"), &record)
        })()
        .map_err(io_error("creating the bucket directory"))?;
        state.buckets.insert(
            name.to_owned(),
            BucketState {
                record,
                objects: BTreeMap::new(),
                uploads: HashMap::new(),
            },
        );
        Ok(())
    }

    /// Creates a bucket unless it exists (for buckets named at start).
    pub(crate) fn ensure_bucket(&self, name: &str) -> Result<(), OssError> {
        match self.create_bucket(name, "Standard", "private") {
            Err(e) if e.code == ErrorCode::BucketAlreadyExists => Ok(()),
            other => other,
        }
    }

    /// Deletes an empty bucket; 409 BucketNotEmpty while it holds objects or uploads.
    pub(crate) fn delete_bucket(&self, name: &str) -> Result<(), OssError> {
        let mut state = self.lock();
        let bucket = state
            .buckets
            .get(name)
            .ok_or_else(|| OssError::no_such_bucket(name))?;
        if !bucket.objects.is_empty() || !bucket.uploads.is_empty() {
            return Err(OssError::new(ErrorCode::BucketNotEmpty)
                .field("BucketName", name)
                .message(format!(
                    "The bucket you tried to delete is not empty: it holds {} objects and {} multipart uploads.",
                    bucket.objects.len(),
                    bucket.uploads.len()
                )));
        }
        let dir = self.bucket_dir(name);
        files::remove_file_durably(&dir.join("bucket.json"), self.durability)
            .map_err(io_error("removing the bucket record"))?;
        state.buckets.remove(name);
        if let Err(e) = files::remove_dir_all_quietly(&dir) {
            tracing::warn!("bucket {name} deleted but its directory stays: {e}");
        }
        Ok(())
    }

    /// The bucket's record; 404 NoSuchBucket.
    pub(crate) fn bucket(&self, name: &str) -> Result<BucketRecord, OssError> {
        self.lock()
            .buckets
            .get(name)
            .map(|b| b.record.clone())
            .ok_or_else(|| OssError::no_such_bucket(name))
    }

    // ----- objects -----

    /// Whether an object exists (after checking the bucket does).
    pub(crate) fn object_exists(&self, bucket: &str, key: &str) -> Result<bool, OssError> {
        let state = self.lock();
        let b = state
            .buckets
            .get(bucket)
            .ok_or_else(|| OssError::no_such_bucket(bucket))?;
        Ok(b.objects.contains_key(key))
    }

    /// Opens an object for reading, pinning its blobs.
    pub(crate) fn open_object(&self, bucket: &str, key: &str) -> Result<OpenedObject, OssError> {
        let state = self.lock();
        let record = state
            .buckets
            .get(bucket)
            .ok_or_else(|| OssError::no_such_bucket(bucket))?
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| OssError::no_such_key(key))?;
        let pins = self
            .pins
            .pin(record.segments.iter().map(|s| s.blob.clone()).collect());
        let segments = record
            .segments
            .iter()
            .map(|s| (self.blobs_dir.join(&s.blob), s.size))
            .collect();
        Ok(OpenedObject {
            record,
            segments,
            pins,
        })
    }

    fn publish_object(
        &self,
        state: &mut State,
        bucket: &str,
        record: ObjectRecord,
    ) -> Result<(), OssError> {
        self.write_record(&self.object_path(bucket, &record.key), &record)
            .map_err(io_error("writing the object record"))?;
        let Some(b) = state.buckets.get_mut(bucket) else {
            return Err(OssError::no_such_bucket(bucket));
        };
        if let Some(old) = b.objects.insert(record.key.clone(), record) {
            self.pins.release(old.segments.into_iter().map(|s| s.blob));
        }
        Ok(())
    }

    /// Stores a received body as the object `key` (PutObject).
    pub(crate) fn put_object(
        &self,
        bucket: &str,
        key: &str,
        blob: ReceivedBlob,
        attrs: ObjectAttrs,
        forbid_overwrite: bool,
    ) -> Result<ObjectRecord, OssError> {
        self.sync_blob_entries()?;
        let mut state = self.lock();
        let b = state
            .buckets
            .get(bucket)
            .ok_or_else(|| OssError::no_such_bucket(bucket))?;
        if forbid_overwrite && b.objects.contains_key(key) {
            return Err(OssError::new(ErrorCode::FileAlreadyExists).field("Key", key));
        }
        let record = ObjectRecord {
            key: key.to_owned(),
            size: blob.size,
            etag: part_etag(&blob.md5),
            crc64: blob.crc64,
            object_type: ObjectType::Normal,
            last_modified: unix_now(),
            attrs,
            segments: vec![Segment {
                blob: blob.id.clone(),
                size: blob.size,
            }],
            completed_upload: None,
        };
        self.publish_object(&mut state, bucket, record.clone())?;
        blob.commit();
        Ok(record)
    }

    /// Deletes an object; deleting a missing key succeeds, as in OSS.
    pub(crate) fn delete_object(&self, bucket: &str, key: &str) -> Result<(), OssError> {
        let mut state = self.lock();
        let b = state
            .buckets
            .get_mut(bucket)
            .ok_or_else(|| OssError::no_such_bucket(bucket))?;
        if !b.objects.contains_key(key) {
            return Ok(());
        }
        files::remove_file_durably(&self.object_path(bucket, key), self.durability)
            .map_err(io_error("removing the object record"))?;
        if let Some(old) = b.objects.remove(key) {
            self.pins.release(old.segments.into_iter().map(|s| s.blob));
        }
        Ok(())
    }

    /// One page of a bucket's objects in key order (ListObjects).
    pub(crate) fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        marker: &str,
        delimiter: &str,
        max_keys: usize,
    ) -> Result<ObjectsPage, OssError> {
        let state = self.lock();
        let b = state
            .buckets
            .get(bucket)
            .ok_or_else(|| OssError::no_such_bucket(bucket))?;
        let mut page = ObjectsPage {
            objects: Vec::new(),
            common_prefixes: Vec::new(),
            truncated: false,
            next_marker: String::new(),
        };
        let start = std::ops::Bound::Excluded(marker.to_owned());
        let range = if marker.is_empty() {
            b.objects.range::<String, _>(..)
        } else {
            b.objects.range((start, std::ops::Bound::Unbounded))
        };
        let mut last = String::new();
        let skip_under_marker =
            !delimiter.is_empty() && !marker.is_empty() && marker.ends_with(delimiter);
        for (key, record) in range {
            if skip_under_marker && key.starts_with(marker) {
                // The marker is a common prefix of the previous page: its keys were rolled up there.
                continue;
            }
            if !key.starts_with(prefix) {
                if key.as_str() > prefix {
                    break;
                }
                continue;
            }
            let common = (!delimiter.is_empty())
                .then(|| {
                    key[prefix.len()..]
                        .find(delimiter)
                        .map(|i| key[..prefix.len() + i + delimiter.len()].to_owned())
                })
                .flatten();
            if let Some(common) = &common
                && page.common_prefixes.last() == Some(common)
            {
                continue;
            }
            if page.objects.len() + page.common_prefixes.len() == max_keys {
                page.truncated = true;
                page.next_marker = last;
                break;
            }
            match common {
                Some(common) => {
                    // Resume after every key under this prefix.
                    last = common.clone();
                    page.common_prefixes.push(common);
                }
                None => {
                    last = key.clone();
                    page.objects.push(record.clone());
                }
            }
        }
        Ok(page)
    }

    // ----- multipart uploads -----

    /// Starts a multipart upload.
    pub(crate) fn initiate(
        &self,
        bucket: &str,
        key: &str,
        attrs: ObjectAttrs,
        forbid_overwrite: bool,
    ) -> Result<UploadRecord, OssError> {
        let mut state = self.lock();
        let b = state
            .buckets
            .get_mut(bucket)
            .ok_or_else(|| OssError::no_such_bucket(bucket))?;
        if forbid_overwrite && b.objects.contains_key(key) {
            return Err(OssError::new(ErrorCode::FileAlreadyExists).field("Key", key));
        }
        let record = UploadRecord {
            upload_id: self.ids.upload_id(),
            key: key.to_owned(),
            initiated: unix_now(),
            attrs,
        };
        let dir = self.upload_dir(bucket, &record.upload_id);
        (|| {
            std::fs::create_dir_all(dir.join("parts"))?;
            files::sync_dir(&dir, self.durability)?;
            files::sync_parent(&dir, self.durability)?;
            self.write_record(&dir.join("upload.json"), &record)
        })()
        .map_err(io_error("writing the upload record"))?;
        b.uploads.insert(
            record.upload_id.clone(),
            UploadState {
                record: record.clone(),
                parts: BTreeMap::new(),
            },
        );
        Ok(record)
    }

    fn upload_mut<'s>(
        state: &'s mut State,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<&'s mut UploadState, OssError> {
        let b = state
            .buckets
            .get_mut(bucket)
            .ok_or_else(|| OssError::no_such_bucket(bucket))?;
        match b.uploads.get_mut(upload_id) {
            Some(u) if u.record.key == key => Ok(u),
            _ => Err(OssError::no_such_upload(upload_id)),
        }
    }

    /// Checks that an upload is open for this key; 404 NoSuchUpload otherwise.
    pub(crate) fn check_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), OssError> {
        let mut state = self.lock();
        Self::upload_mut(&mut state, bucket, key, upload_id).map(|_| ())
    }

    /// Records a received part, replacing any earlier upload of the same number.
    pub(crate) fn commit_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        blob: ReceivedBlob,
    ) -> Result<PartRecord, OssError> {
        self.sync_blob_entries()?;
        let mut state = self.lock();
        let upload = Self::upload_mut(&mut state, bucket, key, upload_id)?;
        let record = PartRecord {
            part_number,
            blob: blob.id.clone(),
            size: blob.size,
            md5_hex: hex::encode_upper(blob.md5),
            crc64: blob.crc64,
            last_modified: unix_now(),
        };
        let path = self
            .upload_dir(bucket, upload_id)
            .join("parts")
            .join(format!("{part_number}.json"));
        self.write_record(&path, &record)
            .map_err(io_error("writing the part record"))?;
        blob.commit();
        if let Some(old) = upload.parts.insert(part_number, record.clone()) {
            self.pins.release([old.blob]);
        }
        Ok(record)
    }

    /// One page of an upload's parts: those numbered above `marker`, at most `max`.
    pub(crate) fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        marker: u32,
        max: usize,
    ) -> Result<PartsPage, OssError> {
        let mut state = self.lock();
        let upload = Self::upload_mut(&mut state, bucket, key, upload_id)?;
        let mut parts: Vec<PartRecord> = upload
            .parts
            .range(marker.saturating_add(1)..)
            .take(max + 1)
            .map(|(_, p)| p.clone())
            .collect();
        let truncated = parts.len() > max;
        parts.truncate(max);
        Ok(PartsPage {
            upload: upload.record.clone(),
            parts,
            truncated,
        })
    }

    /// Completes an upload: checks the selected parts, publishes the object made of their blobs and
    /// removes the upload, all under the lock so that no part commit interleaves.
    pub(crate) fn complete(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        selection: PartSelection,
        forbid_overwrite: bool,
        acl: Option<String>,
    ) -> Result<ObjectRecord, OssError> {
        let mut state = self.lock();
        let upload = Self::upload_mut(&mut state, bucket, key, upload_id)?;
        let chosen: Vec<PartRecord> = match selection {
            PartSelection::All => upload.parts.values().cloned().collect(),
            PartSelection::Listed(listed) => {
                let mut chosen = Vec::with_capacity(listed.len());
                for (number, etag) in listed {
                    match upload.parts.get(&number) {
                        Some(part) if same(&part.md5_hex, &etag) => chosen.push(part.clone()),
                        _ => {
                            return Err(OssError::new(ErrorCode::InvalidPart)
                                .field("UploadId", upload_id)
                                .field("PartNumber", number.to_string())
                                .field("ETag", etag));
                        }
                    }
                }
                chosen
            }
        };
        if chosen.is_empty() {
            return Err(OssError::invalid_argument(
                "x-oss-complete-all",
                "yes",
                "The upload has no parts: upload at least one part before completing it.",
            ));
        }
        if let Some((_, but_last)) = chosen.split_last()
            && let Some(small) = but_last.iter().find(|p| p.size < MIN_PART_SIZE)
        {
            return Err(OssError::new(ErrorCode::EntityTooSmall)
                .message(format!(
                    "Your proposed upload is smaller than the minimum allowed size: part {} is {} bytes; every part but the last must be at least {MIN_PART_SIZE} bytes.",
                    small.part_number, small.size
                ))
                .field("PartNumber", small.part_number.to_string())
                .field("ProposedSize", small.size.to_string())
                .field("MinSizeAllowed", MIN_PART_SIZE.to_string()));
        }
        let exists = state
            .buckets
            .get(bucket)
            .is_some_and(|b| b.objects.contains_key(key));
        if forbid_overwrite && exists {
            return Err(OssError::new(ErrorCode::FileAlreadyExists).field("Key", key));
        }
        let upload = Self::upload_mut(&mut state, bucket, key, upload_id)?;
        let mut attrs = upload.record.attrs.clone();
        if acl.is_some() {
            attrs.acl = acl;
        }
        let md5s: Vec<[u8; 16]> = chosen.iter().map(PartRecord::md5).collect();
        let record = ObjectRecord {
            key: key.to_owned(),
            size: chosen.iter().map(|p| p.size).sum(),
            etag: multipart_etag(&md5s),
            crc64: crc64_of_parts(chosen.iter().map(|p| (p.crc64, p.size))),
            object_type: ObjectType::Multipart,
            last_modified: unix_now(),
            attrs,
            segments: chosen
                .iter()
                .map(|p| Segment {
                    blob: p.blob.clone(),
                    size: p.size,
                })
                .collect(),
            completed_upload: Some(upload_id.to_owned()),
        };
        let unchosen: Vec<String> = {
            let chosen_numbers: std::collections::HashSet<u32> =
                chosen.iter().map(|p| p.part_number).collect();
            upload
                .parts
                .values()
                .filter(|p| !chosen_numbers.contains(&p.part_number))
                .map(|p| p.blob.clone())
                .collect()
        };
        // The object record is the commit point; the upload's removal after it is redone by
        // recovery if a crash cuts it short.
        self.publish_object(&mut state, bucket, record.clone())?;
        self.remove_upload_files(bucket, upload_id);
        if let Some(b) = state.buckets.get_mut(bucket) {
            b.uploads.remove(upload_id);
        }
        self.pins.release(unchosen);
        Ok(record)
    }

    /// Removes an upload's records, `upload.json` first so that a crash part-way leaves an upload
    /// directory recovery recognises as removed.
    fn remove_upload_files(&self, bucket: &str, upload_id: &str) {
        let dir = self.upload_dir(bucket, upload_id);
        if let Err(e) = files::remove_file_durably(&dir.join("upload.json"), self.durability) {
            tracing::warn!("could not remove the record of upload {upload_id}: {e}");
        }
        if let Err(e) = files::remove_dir_all_quietly(&dir) {
            tracing::warn!("could not remove the directory of upload {upload_id}: {e}");
        }
    }

    /// Aborts an upload and removes its parts.
    pub(crate) fn abort(&self, bucket: &str, key: &str, upload_id: &str) -> Result<(), OssError> {
        let mut state = self.lock();
        Self::upload_mut(&mut state, bucket, key, upload_id)?;
        let dir = self.upload_dir(bucket, upload_id);
        files::remove_file_durably(&dir.join("upload.json"), self.durability)
            .map_err(io_error("removing the upload record"))?;
        let Some(upload) = state
            .buckets
            .get_mut(bucket)
            .and_then(|b| b.uploads.remove(upload_id))
        else {
            return Err(OssError::no_such_upload(upload_id));
        };
        if let Err(e) = files::remove_dir_all_quietly(&dir) {
            tracing::warn!("could not remove the directory of upload {upload_id}: {e}");
        }
        self.pins
            .release(upload.parts.into_values().map(|p| p.blob));
        Ok(())
    }

    /// How many multipart uploads are open, in every bucket.
    pub(crate) fn open_upload_count(&self) -> usize {
        self.lock().buckets.values().map(|b| b.uploads.len()).sum()
    }

    /// One page of a bucket's open uploads, ordered by key then initiation (ListMultipartUploads).
    pub(crate) fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: &str,
        upload_id_marker: &str,
        max: usize,
    ) -> Result<UploadsPage, OssError> {
        let state = self.lock();
        let b = state
            .buckets
            .get(bucket)
            .ok_or_else(|| OssError::no_such_bucket(bucket))?;
        let mut uploads: Vec<&UploadRecord> = b
            .uploads
            .values()
            .map(|u| &u.record)
            .filter(|u| u.key.starts_with(prefix))
            .filter(|u| {
                if key_marker.is_empty() {
                    true
                } else if upload_id_marker.is_empty() {
                    u.key.as_str() > key_marker
                } else {
                    u.key.as_str() > key_marker
                        || (u.key == key_marker && u.upload_id.as_str() > upload_id_marker)
                }
            })
            .collect();
        uploads.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
        let truncated = uploads.len() > max;
        uploads.truncate(max);
        Ok(UploadsPage {
            uploads: uploads.into_iter().cloned().collect(),
            truncated,
        })
    }
}

#[cfg(test)]
mod tests;
