//! The upload of a stream: bytes of unknown length, read once, in order, part by part.
//!
//! Its phases are those of a file, cut to what a stream allows:
//!
//! - **plan**: the first part is read (and one byte past it). A stream that ended within it and the
//!   multipart threshold goes in one PutObject (`put.rs`); a longer one in parts whose size grows
//!   with the part number ([`stream_part_size`]), the same cuts on every run.
//! - **resume**: the checkpoint of the same stream (its name, bucket, key and first part size)
//!   names the multipart upload an earlier run was sending; ListParts (every page) says what the
//!   server holds. The server and the new bytes decide, not the records: a listed part is reused
//!   only when its size and checksums are those of the arriving bytes of that part
//!   ([`judge`]). When part 1 differs, nothing of the old upload can be kept: it is aborted and a
//!   fresh upload begins ([`Notice::StreamDiffers`]). No checkpoint, and `resume_from_server`:
//!   the newest open upload of the key whose parts fit the layout is adopted the same way.
//! - **transfer**: a reader fills part buffers from the stream (at most one per slot of the
//!   scheduler, plus the one being filled: that is the memory bound), and the slots hash, judge,
//!   send and record the parts in parallel; each send runs through the scheduler as a run of one
//!   part, so a limit it shares between runs ([`Adaptive`](crate::Adaptive)'s) governs it.
//! - **complete**: Complete over exactly the parts the stream filled, with the CRC-64 check of
//!   `complete.rs`; the object is the new stream's bytes, whatever the old upload held beyond them.
//!
//! A read error (the writer died) stops the reading; the parts in flight finish and are recorded,
//! and the error says to run again with the same stream. A stream that merely ends early cannot be
//! told from a short one: it is uploaded as it is.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use ossup_proto::ErrorCode;
use ossup_proto::limits::MAX_PART_NUMBER;
use ossup_proto::xml::ListedPart;
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tracing::Instrument as _;

use super::complete::{self, Completion};
use super::context::UploadContext;
use super::hashing::{Hashed, hash_buffer};
use super::orphans::now_unix;
use super::reconcile::{Known, Verdict, judge};
use super::recorder::Recorder;
use super::resume::Stored;
use super::{ChecksumMode, UploadMethod, UploadOutcome, adopt, put, resume};
use crate::buffer::{BufferPool, PartBuffer};
use crate::plan::{stream_capacity, stream_part_size};
use crate::scheduler::run_as_one_part;
use crate::source::StreamReader;
use crate::{Checkpoint, Error, Notice, PartRecord, PartSpec, ProgressEvent, StreamSource};

/// Uploads `stream`, planned in `ctx`.
pub(super) async fn upload(
    ctx: &UploadContext,
    stream: &StreamSource,
) -> Result<UploadOutcome, Error> {
    let reader = stream.take_reader().ok_or_else(|| {
        Error::config(
            "this stream was handed to an upload before: a StreamSource is read by one upload only; make a new one",
        )
    })?;
    let mut parts = PartReader::new(reader, ctx.plan.part_size);
    let Some(first) = parts.next(&ctx.pool).await? else {
        return Err(Error::internal("the first part of a stream was not read"));
    };
    let _lock = ctx
        .store
        .lock(&ctx.identity)
        .await
        .map_err(Error::checkpoint)?;
    let target = find(ctx).await?;
    if parts.ended && first.spec.size <= ctx.plan.threshold {
        if let Target::Existing { checkpoint, .. } = &target {
            // The earlier run's stream had more than one part: this one is another stream.
            let notice = Notice::StreamDiffers {
                upload_id: checkpoint.upload_id.clone(),
                part: 1,
                aborted: false,
            };
            resume::drop_changed(ctx, checkpoint, notice).await?;
        }
        put::started(ctx, first.spec.size);
        let (buffer, hashed) = first.buffer.hashed(ctx.plan.mode).await?;
        return put::put_read(ctx, buffer, hashed, first.spec.size)
            .instrument(tracing::info_span!("put"))
            .await;
    }
    let mut adopted_from = None;
    let (checkpoint, listed, resumed, first) = match target {
        Target::Existing {
            checkpoint,
            listed,
            adopted,
        } => match first_part_differs(ctx, first, &listed).await? {
            (first, false) => {
                if adopted {
                    adopted_from = Some(listed.len() as u32);
                }
                (*checkpoint, listed, true, first)
            }
            (first, true) => {
                let notice = Notice::StreamDiffers {
                    upload_id: checkpoint.upload_id.clone(),
                    part: 1,
                    aborted: false,
                };
                resume::drop_changed(ctx, &checkpoint, notice).await?;
                let fresh = resume::start(ctx, None).await?;
                (fresh, BTreeMap::new(), false, first)
            }
        },
        Target::Fresh(carried) => {
            let fresh = resume::start(ctx, carried).await?;
            (fresh, BTreeMap::new(), false, first)
        }
    };
    let upload_id = checkpoint.upload_id.clone();
    ctx.cancel.started(&ctx.identity, &upload_id);
    tracing::Span::current().record("upload_id", upload_id.as_str());
    let transferred = transfer(ctx, checkpoint, listed, resumed, first, parts)
        .instrument(tracing::info_span!("transfer", %upload_id))
        .await?;
    if let Some(parts_listed) = adopted_from {
        // Only now is it known which listed parts held the stream's bytes.
        ctx.notice(Notice::UploadAdopted {
            upload_id: upload_id.clone(),
            parts_listed,
            parts_kept: transferred.parts_reused,
            bytes_kept: transferred.bytes_reused,
        });
    }
    let completed = complete::complete(
        ctx,
        Completion {
            upload_id: &upload_id,
            size: transferred.size,
            parts: &transferred.parts,
            completed_etag: None,
        },
    )
    .instrument(tracing::info_span!("complete", %upload_id))
    .await?;
    ctx.progress.emit(ProgressEvent::Completed {
        etag: completed.etag.clone(),
        crc64: completed.crc64,
        bytes_sent: transferred.bytes_sent,
        bytes_reused: transferred.bytes_reused,
    });
    let parts = transferred.parts.len() as u32;
    UploadOutcome {
        bucket: ctx.bucket().to_owned(),
        key: ctx.key().to_owned(),
        size: transferred.size,
        etag: completed.etag,
        crc64: completed.crc64,
        method: UploadMethod::Multipart,
        upload_id: Some(upload_id),
        part_size: ctx.plan.part_size,
        parts,
        parts_sent: parts - transferred.parts_reused,
        parts_reused: transferred.parts_reused,
        bytes_sent: transferred.bytes_sent,
        bytes_reused: transferred.bytes_reused,
        resumed,
        notices: ctx.take_notices(),
        peak_part_buffers: ctx.pool.peak(),
        callback: completed.callback,
    }
    .into_result()
}

/// The upload the stream's parts go to.
enum Target {
    /// An earlier run's upload, and the parts the server lists for it.
    Existing {
        checkpoint: Box<Checkpoint>,
        listed: BTreeMap<u32, ListedPart>,
        /// Found open on the server rather than named by a checkpoint.
        adopted: bool,
    },
    /// A fresh upload, to be initiated once the stream proves longer than one PutObject; with the
    /// time of an interrupted run's intent (see `resume.rs`).
    Fresh(Option<u64>),
}

/// The upload an earlier run of this stream left, from the checkpoint (or, asked to, from the
/// server's open uploads of the key).
async fn find(ctx: &UploadContext) -> Result<Target, Error> {
    let checkpoint = match resume::load(ctx).await? {
        Stored::Nothing => return adopt(ctx).await,
        Stored::Unusable => return Ok(Target::Fresh(None)),
        Stored::Intent(created_unix) => return Ok(Target::Fresh(Some(created_unix))),
        Stored::Checkpoint(cp) => *cp,
    };
    // A stream's stamp never changes: only other options make the old upload unusable.
    if let Some(notice) = resume::changed(ctx, &checkpoint) {
        resume::drop_changed(ctx, &checkpoint, notice).await?;
        return Ok(Target::Fresh(None));
    }
    match ctx
        .client
        .list_parts(ctx.bucket(), ctx.key(), &checkpoint.upload_id)
        .await
    {
        Ok(listed) => Ok(Target::Existing {
            listed: listed.into_iter().map(|p| (p.part_number, p)).collect(),
            checkpoint: Box::new(checkpoint),
            adopted: false,
        }),
        Err(e) if e.is_service_code(ErrorCode::NoSuchUpload) => {
            // Completed (its checkpoint's removal lost) or aborted: either way nothing to send to.
            ctx.store
                .remove(&ctx.identity)
                .await
                .map_err(Error::checkpoint)?;
            ctx.notice(Notice::UploadGone {
                upload_id: checkpoint.upload_id,
            });
            Ok(Target::Fresh(None))
        }
        Err(e) => Err(e),
    }
}

/// Without a checkpoint: with `resume_from_server`, the newest open upload of the key whose parts
/// fit the stream's layout (every listed part of its planned size, but the highest-numbered one,
/// which may be the end of a stream); a fresh upload otherwise. Its parts are judged as the bytes
/// arrive, like a checkpointed upload's.
async fn adopt(ctx: &UploadContext) -> Result<Target, Error> {
    if !ctx.request.resume_from_server {
        return Ok(Target::Fresh(None));
    }
    let first = ctx.plan.part_size;
    let fits = move |listed: &[ListedPart]| {
        let last = listed.iter().map(|p| p.part_number).max();
        listed.iter().all(|p| {
            let planned = stream_part_size(first, p.part_number);
            p.size == planned || (Some(p.part_number) == last && p.size > 0 && p.size < planned)
        })
    };
    let Some(found) = adopt::find(ctx, &fits).await? else {
        tracing::info!("no open upload of the key fits this stream; starting a fresh one");
        return Ok(Target::Fresh(None));
    };
    let checkpoint = Checkpoint::new(
        ctx.identity.clone(),
        found.upload_id.clone(),
        ctx.plan.stamp,
        now_unix(),
        ctx.options_digest.clone(),
    );
    ctx.store
        .save(&checkpoint)
        .await
        .map_err(|e| Error::checkpoint(e).with_upload_id(&found.upload_id))?;
    tracing::info!(
        upload_id = %found.upload_id,
        initiated = %found.initiated,
        parts_listed = found.listed.len(),
        "adopted an open upload of the key for the stream"
    );
    Ok(Target::Existing {
        listed: found
            .listed
            .into_iter()
            .map(|p| (p.part_number, p))
            .collect(),
        checkpoint: Box::new(checkpoint),
        adopted: true,
    })
}

/// Whether the first part's bytes differ from the part 1 the server lists; the part comes back
/// hashed, ready to send. A server without part 1 has nothing to differ from.
async fn first_part_differs(
    ctx: &UploadContext,
    first: ReadPart,
    listed: &BTreeMap<u32, ListedPart>,
) -> Result<(ReadPart, bool), Error> {
    let Some(listed) = listed.get(&1) else {
        return Ok((first, false));
    };
    let ReadPart { spec, buffer } = first;
    let (buffer, hashed) = buffer.hashed(ChecksumMode::Md5).await?;
    let differs = !matches!(
        judge(&spec, Some(listed), known(&hashed), ctx.plan.mode),
        Verdict::Done(_)
    );
    let first = ReadPart {
        spec,
        buffer: Filled::Hashed(buffer, hashed),
    };
    Ok((first, differs))
}

/// What the bytes of a part say about it, for [`judge`].
fn known(hashed: &Hashed) -> Known {
    Known {
        md5: hashed.md5,
        crc64: Some(hashed.crc64),
    }
}

/// One part of the stream, read into a buffer from the pool.
struct ReadPart {
    spec: PartSpec,
    buffer: Filled,
}

/// A part's buffer: read, or read and hashed already.
enum Filled {
    Read(PartBuffer),
    Hashed(PartBuffer, Hashed),
}

impl Filled {
    /// The buffer and its checksums, hashing it in `mode` unless it was hashed already.
    async fn hashed(self, mode: ChecksumMode) -> Result<(PartBuffer, Hashed), Error> {
        match self {
            Filled::Hashed(buffer, hashed) => Ok((buffer, hashed)),
            Filled::Read(buffer) => hash_buffer(buffer, mode).await,
        }
    }
}

/// Reads a stream in the parts of its layout.
struct PartReader {
    reader: StreamReader,
    first: u64,
    next: u32,
    offset: u64,
    /// The byte read past the last part to learn whether the stream goes on.
    carried: Option<u8>,
    /// The stream has ended: no part follows.
    ended: bool,
}

impl PartReader {
    fn new(reader: StreamReader, first: u64) -> Self {
        Self {
            reader,
            first,
            next: 1,
            offset: 0,
            carried: None,
            ended: false,
        }
    }

    /// The next part (`None` once the stream has ended), read into a buffer from `pool`; the first
    /// part is returned even when the stream is empty.
    async fn next(&mut self, pool: &std::sync::Arc<BufferPool>) -> Result<Option<ReadPart>, Error> {
        if self.ended {
            return Ok(None);
        }
        let number = self.next;
        if number > MAX_PART_NUMBER {
            return Err(Error::config(format!(
                "the stream goes on past {} bytes, all that 10,000 parts starting at {} bytes hold; run again with a larger part size",
                self.offset, self.first
            )));
        }
        let size = stream_part_size(self.first, number);
        let len = usize::try_from(size)
            .map_err(|_| Error::config(format!("part size {size} does not fit in memory")))?;
        let mut buffer = pool.acquire(len).await;
        let mut start = 0;
        if let Some(byte) = self.carried.take() {
            buffer.as_mut()[0] = byte;
            start = 1;
        }
        let (mut buffer, fill) = match &mut self.reader {
            StreamReader::Async(reader) => {
                let fill = fill_async(reader, buffer.as_mut(), start).await;
                (buffer, fill)
            }
            // The reader's thread reads straight into the part's buffer: no copy on the way.
            StreamReader::Blocking(thread) => thread
                .run(move |reader| {
                    let fill = fill_blocking(reader, buffer.as_mut(), start);
                    (buffer, fill)
                })
                .await
                .map_err(|e| self.read_error(number, start, e))?,
        };
        let filled = fill.filled;
        (self.ended, self.carried) = (fill.ended, fill.carried);
        if let Some(e) = fill.error {
            return Err(self.read_error(number, filled, e));
        }
        if filled == 0 && number > 1 {
            return Ok(None);
        }
        buffer.truncate(filled);
        let spec = PartSpec {
            number,
            offset: self.offset,
            size: filled as u64,
        };
        self.offset += filled as u64;
        self.next += 1;
        Ok(Some(ReadPart {
            spec,
            buffer: Filled::Read(buffer),
        }))
    }

    fn read_error(&self, number: u32, filled: usize, e: std::io::Error) -> Error {
        Error::source_io(
            format!(
                "reading the stream failed after {} bytes, in part {number}; the parts sent so far are kept: run the upload again with the same stream (from its start) to resume",
                self.offset + filled as u64
            ),
            e,
        )
        .with_part(number)
    }
}

/// How far filling one part's buffer got.
struct Fill {
    /// Bytes in the buffer: all of it, unless the stream ended (or failed) first.
    filled: usize,
    /// The stream ended within this part: no part follows.
    ended: bool,
    /// The byte read past a full part to learn whether the stream goes on; it starts the next part.
    carried: Option<u8>,
    /// The read error that stopped the filling.
    error: Option<std::io::Error>,
}

/// Fills `buf` from an async reader after the `start` bytes already in it, then reads one byte
/// past a full buffer.
async fn fill_async(reader: &mut (impl AsyncRead + Unpin), buf: &mut [u8], start: usize) -> Fill {
    let mut fill = Fill {
        filled: start,
        ended: false,
        carried: None,
        error: None,
    };
    while fill.filled < buf.len() {
        match reader.read(&mut buf[fill.filled..]).await {
            Ok(0) => {
                fill.ended = true;
                return fill;
            }
            Ok(n) => fill.filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                fill.error = Some(e);
                return fill;
            }
        }
    }
    let mut byte = [0u8; 1];
    loop {
        match reader.read(&mut byte).await {
            Ok(0) => fill.ended = true,
            Ok(_) => fill.carried = Some(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => fill.error = Some(e),
        }
        return fill;
    }
}

/// [`fill_async`] for a blocking reader, on its thread.
fn fill_blocking(reader: &mut dyn Read, buf: &mut [u8], start: usize) -> Fill {
    let mut fill = Fill {
        filled: start,
        ended: false,
        carried: None,
        error: None,
    };
    while fill.filled < buf.len() {
        match reader.read(&mut buf[fill.filled..]) {
            Ok(0) => {
                fill.ended = true;
                return fill;
            }
            Ok(n) => fill.filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                fill.error = Some(e);
                return fill;
            }
        }
    }
    let mut byte = [0u8; 1];
    loop {
        match reader.read(&mut byte) {
            Ok(0) => fill.ended = true,
            Ok(_) => fill.carried = Some(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => fill.error = Some(e),
        }
        return fill;
    }
}

/// What the transfer of a stream leaves for Complete.
struct Transferred {
    /// Every part of the stream, as the server holds it.
    parts: BTreeMap<u32, PartRecord>,
    /// The stream's length.
    size: u64,
    parts_reused: u32,
    bytes_sent: u64,
    bytes_reused: u64,
}

/// Reads the rest of the stream after `first` and has every part reused or sent; ends once every
/// record has settled.
async fn transfer(
    ctx: &UploadContext,
    checkpoint: Checkpoint,
    listed: BTreeMap<u32, ListedPart>,
    resumed: bool,
    first: ReadPart,
    mut parts: PartReader,
) -> Result<Transferred, Error> {
    let upload_id = checkpoint.upload_id.clone();
    ctx.progress.start_at(0);
    ctx.progress.emit(ProgressEvent::StreamStarted {
        part_size: ctx.plan.part_size,
        upload_id: upload_id.clone(),
        resumed,
    });
    let mut header = checkpoint;
    // The records of this run say what the stream holds; the server and the bytes judge the rest.
    header.parts.clear();
    let run = StreamRun {
        ctx,
        upload_id: &upload_id,
        listed,
        recorder: Recorder::new(ctx.store.clone(), header, ctx.progress.clone()),
        bytes_sent: AtomicU64::new(0),
        bytes_reused: AtomicU64::new(0),
        parts_reused: AtomicU32::new(0),
        differs_from: Mutex::new(None),
        failure: Mutex::new(None),
        failed: AtomicBool::new(false),
    };
    ctx.cancel.sending(run.recorder.lingering());
    let (tx, rx) = tokio::sync::mpsc::channel::<ReadPart>(1);
    let read = async {
        let tx = tx;
        let mut part = Some(first);
        while let Some(next) = part {
            if run.failed.load(Ordering::SeqCst) || tx.send(next).await.is_err() {
                return Ok(());
            }
            part = parts.next(&ctx.pool).await?;
        }
        Ok::<(), Error>(())
    };
    let mut rx = rx;
    let slots = ctx.scheduler.concurrency().max(1);
    let send = async {
        let mut in_flight = FuturesUnordered::new();
        let mut open = true;
        loop {
            tokio::select! {
                part = rx.recv(), if open && in_flight.len() < slots => match part {
                    Some(part) => in_flight.push(run.settle(part)),
                    None => open = false,
                },
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                else => break,
            }
        }
    };
    let read_and_send = async {
        let (read, ()) = tokio::join!(
            async {
                let read = read.await;
                if let Err(e) = &read {
                    run.failed.store(true, Ordering::SeqCst);
                    tracing::warn!(error = %e, "reading the stream failed");
                }
                read
            },
            send
        );
        read
    };
    let read = tokio::select! {
        read = read_and_send => read,
        never = ctx.progress.report_sending() => match never {},
    };
    let recorded = run.recorder.finish().await;
    ctx.keep_notices(recorded.notices);
    if let Some(part) = *run.differs_from.lock().expect("differs lock") {
        ctx.notice(Notice::StreamDiffers {
            upload_id: upload_id.clone(),
            part,
            aborted: false,
        });
    }
    read.map_err(|e| e.with_upload_id(&upload_id))?;
    if let Some(e) = run.failure.lock().expect("failure lock").take() {
        return Err(e.with_upload_id(&upload_id));
    }
    let count = parts.next - 1;
    let mut done = recorded.parts;
    done.retain(|&n, _| n <= count);
    if done.len() != count as usize {
        let missing: Vec<u32> = (1..=count).filter(|n| !done.contains_key(n)).collect();
        return Err(Error::internal(format!(
            "the stream's parts {missing:?} were neither reused nor sent"
        ))
        .with_upload_id(&upload_id));
    }
    tracing::debug!(%upload_id, parts = count, size = parts.offset, capacity = stream_capacity(parts.first), "stream read to its end");
    Ok(Transferred {
        parts: done,
        size: parts.offset,
        parts_reused: run.parts_reused.load(Ordering::Relaxed),
        bytes_sent: run.bytes_sent.load(Ordering::Relaxed),
        bytes_reused: run.bytes_reused.load(Ordering::Relaxed),
    })
}

/// What the slots sending a stream's parts share.
struct StreamRun<'a> {
    ctx: &'a UploadContext,
    upload_id: &'a str,
    /// The parts the server held when the run began, by number.
    listed: BTreeMap<u32, ListedPart>,
    recorder: Recorder,
    bytes_sent: AtomicU64,
    bytes_reused: AtomicU64,
    parts_reused: AtomicU32,
    /// The lowest part the server held with other bytes.
    differs_from: Mutex<Option<u32>>,
    /// The first part that failed.
    failure: Mutex<Option<Error>>,
    /// Set at the first failure: no part is read or sent after it.
    failed: AtomicBool,
}

impl StreamRun<'_> {
    /// Runs `part` unless a part failed already; keeps the first failure.
    async fn settle(&self, part: ReadPart) {
        if self.failed.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = self.part(part).await {
            self.failed.store(true, Ordering::SeqCst);
            self.failure.lock().expect("failure lock").get_or_insert(e);
        }
    }

    /// Hashes `part`, reuses it when the server holds these bytes, and sends it otherwise.
    async fn part(&self, part: ReadPart) -> Result<(), Error> {
        let ctx = self.ctx;
        let ReadPart { spec, buffer } = part;
        let span = tracing::debug_span!(
            "part",
            number = spec.number,
            offset = spec.offset,
            size = spec.size
        );
        async {
            let listed = self.listed.get(&spec.number);
            // A listed part is judged by its ETag (the MD5) unless its CRC-64 is listed.
            let mode = if listed.is_some() {
                ChecksumMode::Md5
            } else {
                ctx.plan.mode
            };
            let (mut buffer, hashed) = buffer.hashed(mode).await?;
            if let Some(listed) = listed {
                match judge(&spec, Some(listed), known(&hashed), ctx.plan.mode) {
                    Verdict::Done(record) => {
                        drop(buffer);
                        self.parts_reused.fetch_add(1, Ordering::Relaxed);
                        self.bytes_reused.fetch_add(spec.size, Ordering::Relaxed);
                        tracing::debug!(part = spec.number, "part verified on the server");
                        self.recorder.record(record).await;
                        return Ok(());
                    }
                    Verdict::Send | Verdict::NeedSource => {
                        let mut differs = self.differs_from.lock().expect("differs lock");
                        if differs.is_none_or(|p| spec.number < p) {
                            *differs = Some(spec.number);
                        }
                    }
                }
            }
            let md5 = match ctx.plan.mode {
                ChecksumMode::Md5 => hashed.md5,
                ChecksumMode::Crc64Only => None,
            };
            let bytes = buffer.freeze();
            // The part takes its place in flight from the scheduler, as a file's parts do: an
            // adaptive limit governs a stream too.
            let sent = run_as_one_part(ctx.scheduler.as_ref(), spec, |spec| {
                let client = match ctx.progress.sending(spec.number, spec.size) {
                    Some(observer) => ctx.client.with_retry_observer(observer),
                    None => ctx.client.clone(),
                };
                let body = ctx.body(bytes.clone(), md5, hashed.crc64);
                async move {
                    client
                        .upload_part(ctx.bucket(), ctx.key(), self.upload_id, spec.number, body)
                        .await
                }
            })
            .await;
            buffer.reclaim(bytes);
            drop(buffer);
            let etag = sent?.etag;
            self.bytes_sent.fetch_add(spec.size, Ordering::Relaxed);
            self.recorder
                .record(PartRecord {
                    number: spec.number,
                    size: spec.size,
                    etag,
                    md5: hashed.md5,
                    crc64: hashed.crc64,
                })
                .await;
            Ok(())
        }
        .instrument(span)
        .await
        .map_err(|e: Error| e.with_object(ctx.bucket(), ctx.key()))
    }
}
