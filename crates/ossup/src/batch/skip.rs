//! Skip by content: whether the bucket already holds a file's bytes under its key.
//!
//! The object's size and ETag come from one listing of the batch's prefix (a request per 1,000
//! keys) or, for a key outside it, from a HeadObject. Same size, then: an ETag that is an MD5 (an
//! object put whole) is compared with the file's MD5; a multipart ETag says nothing of the content,
//! so the object's CRC-64 is read with a HeadObject and compared with the file's. The file's digests
//! come from the [`DigestCache`] while its stat is unchanged, and from one read of the file otherwise.
//!
//! In a cooperating batch the same decision judges what another worker recorded of an object it
//! put ([`FinishedFile`]): the record stands for the remote side, and a HeadObject confirms that the
//! bucket still holds that object.

use std::collections::HashMap;
use std::sync::Arc;

use ossup_proto::etag::md5_of_etag;

use super::SkipReason;
use crate::store::{DigestCache, FileDigest, FileStat, FinishedFile};
use crate::upload::hash_part;
use crate::{ChecksumMode, Client, Error, PartSpec, Source};

/// The objects under a prefix, from one listing.
#[derive(Debug, Default)]
pub(super) struct Listing {
    prefix: String,
    objects: HashMap<String, ListedObject>,
}

#[derive(Debug)]
struct ListedObject {
    size: u64,
    etag: String,
}

impl Listing {
    /// Lists every object of `bucket` under `prefix`.
    pub(super) async fn of(client: &Client, bucket: &str, prefix: &str) -> Result<Self, Error> {
        let objects = client
            .list_objects(bucket, prefix)
            .await?
            .into_iter()
            .map(|o| {
                let listed = ListedObject {
                    size: o.size,
                    etag: o.etag,
                };
                (o.key, listed)
            })
            .collect();
        Ok(Self {
            prefix: prefix.to_owned(),
            objects,
        })
    }

    /// How many objects the listing holds.
    pub(super) fn len(&self) -> usize {
        self.objects.len()
    }
}

/// The object under a key, as far as skipping needs it.
#[derive(Debug)]
struct Remote {
    size: u64,
    etag: String,
    crc64: Option<u64>,
}

/// The local side: the source, and for a file its cache key and stat.
pub(super) struct Local<'a> {
    pub(super) source: &'a Arc<dyn Source>,
    pub(super) size: u64,
    pub(super) file: Option<(&'a str, FileStat)>,
}

/// Whether `local` is already the object `key` of `bucket`; `None` means it must be uploaded.
pub(super) async fn already_there(
    client: &Client,
    bucket: &str,
    key: &str,
    listing: Option<&Listing>,
    cache: Option<&Arc<dyn DigestCache>>,
    local: &Local<'_>,
) -> Result<Option<SkipReason>, Error> {
    let Some(remote) = remote(client, bucket, key, listing).await? else {
        return Ok(None);
    };
    same_content(client, bucket, key, &remote, cache, local).await
}

/// Whether `local` is the object another worker `finished` (judged by content, as any object is),
/// and the bucket still holds that object: a record outlives what it describes when the object is
/// deleted or overwritten afterwards.
pub(super) async fn is_the_finished_object(
    client: &Client,
    bucket: &str,
    key: &str,
    finished: &FinishedFile,
    cache: Option<&Arc<dyn DigestCache>>,
    local: &Local<'_>,
) -> Result<bool, Error> {
    let recorded = Remote {
        size: finished.size,
        etag: finished.etag.clone(),
        crc64: Some(finished.crc64),
    };
    if same_content(client, bucket, key, &recorded, cache, local)
        .await?
        .is_none()
    {
        return Ok(false);
    }
    let unquoted = |etag: &str| etag.trim_matches('"').to_ascii_uppercase();
    Ok(client.head_object(bucket, key).await?.is_some_and(|head| {
        head.size == finished.size
            && unquoted(&head.etag) == unquoted(&finished.etag)
            && head.crc64.is_none_or(|crc64| crc64 == finished.crc64)
    }))
}

/// Whether `local` has `remote`'s content: same size, and its MD5 is the ETag or, for a multipart
/// ETag, its CRC-64 is the object's (read with a HeadObject when `remote` does not have it).
async fn same_content(
    client: &Client,
    bucket: &str,
    key: &str,
    remote: &Remote,
    cache: Option<&Arc<dyn DigestCache>>,
    local: &Local<'_>,
) -> Result<Option<SkipReason>, Error> {
    if remote.size != local.size {
        return Ok(None);
    }
    if let Some(remote_md5) = md5_of_etag(&remote.etag) {
        let digest = digest_of(local, cache, true).await?;
        return Ok((digest.md5 == Some(remote_md5)).then_some(SkipReason::SameEtag));
    }
    // A multipart ETag: only the object's CRC-64 speaks for its content.
    let remote_crc64 = match remote.crc64 {
        Some(crc64) => Some(crc64),
        None => client.head_object(bucket, key).await?.and_then(|h| h.crc64),
    };
    let Some(remote_crc64) = remote_crc64 else {
        return Ok(None);
    };
    let digest = digest_of(local, cache, false).await?;
    Ok((digest.crc64 == remote_crc64).then_some(SkipReason::SameCrc64))
}

async fn remote(
    client: &Client,
    bucket: &str,
    key: &str,
    listing: Option<&Listing>,
) -> Result<Option<Remote>, Error> {
    if let Some(listing) = listing.filter(|l| key.starts_with(&l.prefix)) {
        return Ok(listing.objects.get(key).map(|o| Remote {
            size: o.size,
            etag: o.etag.clone(),
            crc64: None,
        }));
    }
    Ok(client.head_object(bucket, key).await?.map(|h| Remote {
        size: h.size,
        etag: h.etag,
        crc64: h.crc64,
    }))
}

/// The file's digests: from the cache while its stat is unchanged (and it has an MD5 when one is
/// needed), from one read of the source otherwise (then remembered).
async fn digest_of(
    local: &Local<'_>,
    cache: Option<&Arc<dyn DigestCache>>,
    need_md5: bool,
) -> Result<FileDigest, Error> {
    if let (Some(cache), Some((path, stat))) = (cache, local.file) {
        match cache.digest(path).await {
            Ok(Some(digest)) if digest.stat == stat && (digest.md5.is_some() || !need_md5) => {
                return Ok(digest);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(path, %e, "cannot read the digest cache; hashing the file"),
        }
    }
    let whole = PartSpec {
        number: 1,
        offset: 0,
        size: local.size,
    };
    let hashed = hash_part(local.source.clone(), whole, ChecksumMode::Md5).await?;
    let stat = local.file.map(|(_, stat)| stat);
    let digest = FileDigest {
        stat: stat.unwrap_or(FileStat {
            size: local.size,
            modified_nanos: 0,
            inode: 0,
        }),
        md5: hashed.md5,
        crc64: hashed.crc64,
    };
    if let (Some(cache), Some((path, _))) = (cache, local.file) {
        remember(cache, path, &digest).await;
    }
    Ok(digest)
}

/// Records `digest` for `path`; a cache that cannot write only costs a read next time.
pub(super) async fn remember(cache: &Arc<dyn DigestCache>, path: &str, digest: &FileDigest) {
    if let Err(e) = cache.record_digest(path, digest).await {
        tracing::warn!(path, %e, "cannot record the file's digest; the next run will read it again");
    }
}
