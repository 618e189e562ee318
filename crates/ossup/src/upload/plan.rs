//! The plan phase: checks the request, stamps the source, and decides how it goes up (one PutObject
//! or a multipart upload in parts of which size), building the [`UploadContext`] the other phases
//! share.

use std::sync::{Arc, Mutex};

use ossup_proto::limits::MAX_PUT_OBJECT_SIZE;

use super::cancel::CancelState;
use super::context::UploadContext;
use super::hashing::stamp_of;
use super::progress::Progress;
use super::{ChecksumMode, UploadMethod, UploadRequest, Uploader};
use crate::buffer::BufferPool;
use crate::plan::{part_size_for, plan_parts};
use crate::{Error, PartSpec, SourceStamp, UploadIdentity};

/// How one source goes up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    /// The source's size and modification time when the upload began.
    pub(super) stamp: SourceStamp,
    /// The part size (grown to fit 10,000 parts); part of the upload's identity.
    pub(super) part_size: u64,
    /// Which checksums protect the parts.
    pub(super) mode: ChecksumMode,
    /// PutObject or multipart. A stream is planned multipart; it goes in one PutObject when it
    /// ends within its first part and `threshold`.
    pub(super) method: UploadMethod,
    /// The multipart threshold: sources of at most this many bytes go in one PutObject.
    pub(super) threshold: u64,
    /// The parts of a multipart upload, ascending; none for a PutObject.
    pub(super) parts: Vec<PartSpec>,
}

/// The smallest `x-oss-traffic-limit` OSS accepts, in bit/s (100 KiB/s).
const TRAFFIC_LIMIT_MIN: u64 = 819_200;

/// The largest `x-oss-traffic-limit` OSS accepts, in bit/s (100 MiB/s).
const TRAFFIC_LIMIT_MAX: u64 = 838_860_800;

/// A source of `size` bytes goes in one PutObject when it is at most `threshold` bytes (an empty
/// source always does), and in parts otherwise.
pub(super) fn method_for(size: u64, threshold: u64) -> UploadMethod {
    if size <= threshold {
        UploadMethod::PutObject
    } else {
        UploadMethod::Multipart
    }
}

/// Refuses a multipart threshold above what one PutObject may carry.
pub(super) fn check_threshold(threshold: u64) -> Result<(), Error> {
    if threshold > MAX_PUT_OBJECT_SIZE {
        return Err(Error::config(format!(
            "multipart threshold {threshold} is above the {MAX_PUT_OBJECT_SIZE} bytes a PutObject may carry"
        )));
    }
    Ok(())
}

/// The part size and multipart threshold of `request` for a source of `size` bytes, with
/// `uploader`'s defaults.
fn sizes(uploader: &Uploader, request: &UploadRequest, size: u64) -> Result<(u64, u64), Error> {
    let requested = request.part_size.unwrap_or(uploader.part_size);
    let part_size = part_size_for(size, requested)?;
    let threshold = request
        .multipart_threshold
        .or(uploader.multipart_threshold)
        .unwrap_or(part_size);
    check_threshold(threshold)?;
    Ok((part_size, threshold))
}

/// How `uploader` would send `request` for a source of `size` bytes: whole, or in parts.
pub(crate) fn method_of(
    uploader: &Uploader,
    request: &UploadRequest,
    size: u64,
) -> Result<UploadMethod, Error> {
    if request.stream.is_some() {
        return Ok(UploadMethod::Multipart);
    }
    let (_, threshold) = sizes(uploader, request, size)?;
    Ok(method_for(size, threshold))
}

/// Checks `request` and plans it with `uploader`'s defaults; errors carry no object context yet.
pub(super) async fn plan(
    uploader: &Uploader,
    request: UploadRequest,
    cancel: Arc<CancelState>,
) -> Result<UploadContext, Error> {
    if request.bucket.is_empty() || request.key.is_empty() {
        return Err(Error::config("bucket and key must not be empty"));
    }
    request.options.validate()?;
    if let Some(bits) = request.traffic_limit
        && !(TRAFFIC_LIMIT_MIN..=TRAFFIC_LIMIT_MAX).contains(&bits)
    {
        return Err(Error::config(format!(
            "traffic limit {bits} bit/s is outside the {TRAFFIC_LIMIT_MIN}..={TRAFFIC_LIMIT_MAX} bit/s (100 KiB/s to 100 MiB/s) OSS accepts"
        )));
    }
    if let Some(callback) = &request.callback {
        callback.validate()?;
    }
    let stamp = stamp_of(&request.source).await?;
    let mode = request.checksum_mode.unwrap_or(uploader.checksum_mode);
    let (part_size, threshold) = sizes(uploader, &request, stamp.size)?;
    let options = request
        .options
        .clone()
        .with_guessed_content_type(request.source.name_hint().as_deref());
    let progress =
        Arc::new(Progress::new(request.progress.clone()).limited_by(uploader.scheduler.clone()));
    let client = match progress.observer(None) {
        Some(observer) => uploader.client.with_retry_observer(observer),
        None => uploader.client.clone(),
    };
    // A stream's size is known at its end only: it is planned in parts, and put whole if it ends
    // early (see `stream.rs`).
    let method = match request.stream {
        Some(_) => UploadMethod::Multipart,
        None => method_for(stamp.size, threshold),
    };
    let (parts, own_buffers) = match method {
        UploadMethod::PutObject => (Vec::new(), 1),
        UploadMethod::Multipart if request.stream.is_some() => {
            (Vec::new(), uploader.scheduler.concurrency() + 1)
        }
        UploadMethod::Multipart => (
            plan_parts(stamp.size, part_size),
            uploader.scheduler.concurrency() + 1,
        ),
    };
    let pool = match &request.shared_pool {
        Some(shared) => shared.clone(),
        None => BufferPool::new(own_buffers),
    };
    let identity = UploadIdentity::new(
        request.source.identity(),
        request.bucket.clone(),
        request.key.clone(),
        part_size,
    );
    // A cooperating file upload takes its parts by claim; a stream cannot be shared.
    let cooperating = match (&uploader.cooperative, &request.stream) {
        (Some(store), None) => Some(super::cooperate::Cooperating::new(
            store.clone(),
            uploader.lease,
        )),
        _ => None,
    };
    // Parts are claimed; a file put whole is claimed by the batch (`batch/run.rs`).
    let scheduler = match &cooperating {
        Some(shared) if method == UploadMethod::Multipart => {
            shared.scheduler(uploader.scheduler.clone(), identity.clone())
        }
        _ => uploader.scheduler.clone(),
    };
    Ok(UploadContext {
        client,
        store: uploader.store.clone(),
        scheduler,
        cooperating,
        identity,
        options_digest: options.digest(),
        options,
        request,
        plan: Plan {
            stamp,
            part_size,
            mode,
            method,
            threshold,
            parts,
        },
        progress,
        pool,
        cancel,
        notices: Mutex::new(Vec::new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;
    use crate::upload::scripted::{PART, Scripted, data, planned, request, uploader};

    #[test]
    fn sources_up_to_the_threshold_are_put_and_larger_ones_go_in_parts() {
        assert_eq!(method_for(0, 0), UploadMethod::PutObject);
        assert_eq!(method_for(0, PART), UploadMethod::PutObject);
        assert_eq!(method_for(PART, PART), UploadMethod::PutObject);
        assert_eq!(method_for(PART + 1, PART), UploadMethod::Multipart);
        assert_eq!(method_for(1, 0), UploadMethod::Multipart);
    }

    #[test]
    fn a_threshold_above_what_one_put_object_carries_is_refused() {
        assert!(check_threshold(MAX_PUT_OBJECT_SIZE).is_ok());
        let err = check_threshold(MAX_PUT_OBJECT_SIZE + 1).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config, "{err}");
        assert!(err.to_string().contains("multipart threshold"), "{err}");
    }

    #[tokio::test]
    async fn an_empty_source_is_put_even_with_a_zero_threshold() {
        let server = Scripted::new(Vec::new());
        let store = Arc::new(MemoryStore::new());
        let ctx = planned(
            &uploader(&server, &store),
            request(b"").multipart_threshold(0),
        )
        .await;
        assert_eq!(ctx.plan.method, UploadMethod::PutObject);
        assert!(ctx.plan.parts.is_empty());
        assert!(server.lines().is_empty());
    }

    #[tokio::test]
    async fn a_source_above_the_threshold_is_planned_in_parts() {
        let server = Scripted::new(Vec::new());
        let store = Arc::new(MemoryStore::new());
        let data = data(2 * PART as usize + 1, 1);
        let ctx = planned(&uploader(&server, &store), request(&data)).await;
        assert_eq!(ctx.plan.method, UploadMethod::Multipart);
        assert_eq!(ctx.plan.parts, plan_parts(data.len() as u64, PART));
        assert_eq!(ctx.plan.stamp.size, data.len() as u64);
        assert_eq!(ctx.identity.part_size, PART);
    }

    #[tokio::test]
    async fn a_request_without_a_key_is_refused_before_anything_is_sent() {
        let server = Scripted::new(Vec::new());
        let store = Arc::new(MemoryStore::new());
        let uploader = uploader(&server, &store);
        let request = UploadRequest::new(crate::BytesSource::new(vec![1], "s"), "bucket", "");
        let cancel = Arc::new(CancelState::new(&request));
        let err = plan(&uploader, request, cancel)
            .await
            .err()
            .expect("refused");
        assert_eq!(err.kind(), crate::ErrorKind::Config, "{err}");
        assert!(server.lines().is_empty());
    }
}
