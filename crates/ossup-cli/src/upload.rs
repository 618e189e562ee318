//! `ossup upload`: one file to one object, resumable, with progress, interruption and a summary.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ossup::store::{CooperativeStore, DigestCache};
use ossup::{
    Adaptive, Callback, CallbackBodyType, CancellationToken, CheckpointStore, ChecksumMode,
    DataEncryption, FileSource, FileStore, HedgeStats, Hedged, MemoryStore, Notice, ObjectAcl,
    ObjectOptions, OnCancel, Parallel, PartScheduler, ProgressEvent, Sequential,
    ServerSideEncryption, StorageClass, StreamSource, UploadOutcome, UploadRequest, Uploader,
};
use ossup_proto::limits::{MAX_PART_SIZE, MIN_PART_SIZE};
use ossup_proto::tagging;

use crate::cli::{
    AclArg, CallbackBodyTypeArg, ChecksumArg, ParallelArg, ProgressArg, SseArg, SseDataArg,
    StorageClassArg, UploadArgs,
};
use crate::config::{Connection, default_checkpoint_dir};
use crate::explain::explain;
use crate::failure::{Failure, shell_command};
use crate::interrupt::{exit_on_second_interrupt, interrupted};
use crate::meta::check_unique;
use crate::progress::{Event, PartInFlight, Reporter, reporter_for};
use crate::size::HumanBytes;
use crate::terminal::printable;

/// Runs `ossup upload`: one file, or with `--recursive` a tree (see `tree_upload.rs`).
pub(crate) async fn run(args: UploadArgs) -> Result<(), Failure> {
    if args.recursive {
        return crate::tree_upload::run(args).await;
    }
    check_unique(&args.meta).map_err(Failure::usage)?;
    if let Some(size) = args.part_size {
        check_part_size(size)?;
    }
    let callback = callback(&args)?;
    args.destination.require_key().map_err(Failure::usage)?;
    let streaming = args.file.as_os_str() == "-";
    let destination = if streaming {
        if args.destination.key.ends_with('/') {
            return Err(Failure::usage(format!(
                "{} names a folder, and standard input has no file name to put in it",
                args.destination
            ))
            .hint("give the object's whole key, e.g. oss://bucket/backups/db.sql"));
        }
        args.destination.clone()
    } else {
        let file_name = check_file(&args.file)?;
        if args.destination.key.ends_with('/') {
            // The key takes the file's name, and an OSS key is UTF-8: say so rather than upload
            // under a name with replacement characters.
            let name = file_name.to_str().ok_or_else(|| {
                Failure::usage(format!(
                    "the file name of {} is not valid UTF-8, so it cannot end the key {}",
                    args.file.display(),
                    args.destination
                ))
                .hint("give the object's whole key, e.g. oss://bucket/dir/name.bin")
            })?;
            args.destination.clone().with_file_name_if_folder(name)
        } else {
            args.destination.clone()
        }
    };
    let connection = Connection::resolve(&args.connection)?;

    let stores = open_store(&args).await?;
    let (uploader, hedges) = build_uploader(&args, &connection, &stores)?;

    let resume_command = (!args.no_checkpoint).then(|| shell_command(std::env::args_os()));
    let mut situation = connection.situation();
    situation.file = Some(args.file.display().to_string());

    let object = destination.to_string();
    let reporter: Arc<Mutex<Box<dyn Reporter>>> = Arc::new(Mutex::new(reporter_for(args.progress)));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let sink = {
        let reporter = reporter.clone();
        let tally = tally.clone();
        let object = object.clone();
        move |event: &ProgressEvent| {
            let translated = tally.lock().expect("tally lock").translate(&object, event);
            if let Some(event) = translated {
                reporter.lock().expect("reporter lock").event(&event);
            }
        }
    };

    let cancel = CancellationToken::new();
    let request = if streaming {
        if args.no_checkpoint {
            eprintln!(
                "note: with --no-checkpoint nothing of this stream can be resumed: an interrupted run aborts its upload"
            );
        }
        UploadRequest::stream(StreamSource::stdin(), &destination.bucket, &destination.key)
            .options(object_options(&args)?)
    } else {
        let source = FileSource::open(&args.file).map_err(|e| explain(&e, &situation))?;
        UploadRequest::new(source, &destination.bucket, &destination.key).options(
            object_options(&args)?
                .with_guessed_content_type(args.file.file_name().and_then(|n| n.to_str())),
        )
    };
    let mut request = request
        .checksum_mode(checksum_mode(&args))
        .progress(sink)
        .cancel(cancel.clone())
        .on_cancel(if args.no_checkpoint {
            OnCancel::AbortUpload
        } else {
            OnCancel::KeepCheckpoint
        })
        .resume_from_server(args.resume_from_server);
    if let Some(bytes_per_sec) = args.traffic_limit {
        request = request.traffic_limit(bytes_per_sec.saturating_mul(8));
    }
    if let Some(size) = args.part_size {
        request = request.part_size(size);
    }
    if let Some(callback) = callback {
        request = request.callback(callback);
    }

    let started = Instant::now();
    let upload = uploader.upload(request);
    tokio::pin!(upload);
    let mut signal = None;
    let result = tokio::select! {
        result = &mut upload => result,
        got = interrupted() => {
            signal = Some(got);
            exit_on_second_interrupt();
            cancel.cancel();
            upload.await
        }
    };
    let elapsed = started.elapsed();
    let report = |event: Event| reporter.lock().expect("reporter lock").event(&event);

    match result {
        Ok(outcome) => {
            let hedged = hedges.as_deref().map_or(0, HedgeStats::hedged);
            let completed = completed_event(&object, &outcome, elapsed, hedged);
            report(completed);
            if args.progress != ProgressArg::Json {
                print_summary(&object, &outcome, elapsed, hedges.as_deref());
            }
            Ok(())
        }
        Err(error) if signal.is_some() || error.kind() == ossup::ErrorKind::Cancelled => {
            let by = signal.map(|s| s.name()).unwrap_or("cancellation");
            let tally = tally.lock().expect("tally lock");
            // Only a multipart upload that exists (and is kept) can be resumed.
            let resume = resume_command.filter(|_| tally.multipart_started);
            report(Event::Cancelled {
                resume_command: resume.clone(),
            });
            let mut failure = if args.no_checkpoint {
                Failure::cancelled(format!(
                    "interrupted by {by}; with --no-checkpoint the multipart upload was aborted"
                ))
            } else if !tally.multipart_started {
                Failure::cancelled(format!(
                    "interrupted by {by} before any part was stored; nothing was left on the server"
                ))
            } else if streaming {
                Failure::cancelled(format!(
                    "interrupted by {by}: {} parts of the stream are on the server; the checkpoint is kept",
                    tally.parts_on_server(),
                ))
            } else {
                Failure::cancelled(format!(
                    "interrupted by {by}: {} of {} parts are on the server; the checkpoint is kept",
                    tally.parts_on_server(),
                    tally.parts_total
                ))
            };
            if let Some(command) = &resume {
                failure = failure.hint(if streaming {
                    format!("resume with the same bytes on standard input: {command}")
                } else {
                    format!("resume with: {command}")
                });
            }
            Err(failure)
        }
        Err(error) => {
            // Only a multipart upload that exists has a checkpoint to resume from.
            if tally.lock().expect("tally lock").multipart_started {
                situation.resume_command = resume_command.clone();
            }
            let failure = explain(&error, &situation);
            report(Event::Error {
                message: failure.message.clone(),
            });
            Err(failure)
        }
    }
}

/// What the events so far add up to, and how engine events become command-line events.
#[derive(Debug, Default)]
struct Tally {
    /// The source's size; `None` for a stream.
    total: Option<u64>,
    parts_total: u32,
    parts_reused: u32,
    parts_done: u32,
    multipart_started: bool,
}

impl Tally {
    /// Parts the server holds: reused ones plus those acknowledged in this run.
    fn parts_on_server(&self) -> u32 {
        self.parts_reused + self.parts_done
    }

    fn translate(&mut self, object: &str, event: &ProgressEvent) -> Option<Event> {
        match event {
            ProgressEvent::Started {
                total,
                already_on_server,
                parts,
                part_size,
                upload_id,
            } => {
                self.total = Some(*total);
                self.multipart_started = upload_id.is_some();
                self.parts_total = *parts;
                // Every reused part is full-size but the last, so this is their count exactly.
                self.parts_reused = if *part_size == 0 {
                    0
                } else {
                    already_on_server.div_ceil(*part_size) as u32
                };
                Some(Event::Started {
                    object: object.to_owned(),
                    upload_id: upload_id.clone(),
                    total_bytes: *total,
                    parts_total: *parts,
                    part_size: *part_size,
                    parts_reused: self.parts_reused,
                    bytes_reused: *already_on_server,
                })
            }
            ProgressEvent::StreamStarted {
                part_size,
                upload_id,
                resumed,
            } => {
                self.multipart_started = true;
                Some(Event::StreamStarted {
                    object: object.to_owned(),
                    upload_id: upload_id.clone(),
                    part_size: *part_size,
                    resumed: *resumed,
                })
            }
            ProgressEvent::PartDone {
                number,
                bytes,
                transferred,
                concurrency,
            } => {
                self.parts_done += 1;
                Some(Event::PartDone {
                    part: *number,
                    bytes: *bytes,
                    transferred: *transferred,
                    total: self.total,
                    concurrency: *concurrency,
                })
            }
            ProgressEvent::Sending {
                transferred,
                in_flight,
                parts,
                concurrency,
            } => Some(Event::Sending {
                concurrency: *concurrency,
                transferred: *transferred,
                in_flight: *in_flight,
                total: self.total,
                parts: parts
                    .iter()
                    .map(|p| PartInFlight {
                        part: p.number,
                        sent: p.sent,
                        bytes: p.bytes,
                    })
                    .collect(),
            }),
            ProgressEvent::Retrying {
                part,
                api,
                attempt,
                delay_ms,
                error,
            } => Some(Event::Retrying {
                part: *part,
                api: api.clone(),
                attempt: *attempt,
                delay_ms: *delay_ms,
                error: error.clone(),
            }),
            ProgressEvent::Notice { notice, message } => {
                let kind = serde_json::to_value(notice)
                    .ok()
                    .and_then(|v| v.get("notice").and_then(|n| n.as_str()).map(str::to_owned))
                    .unwrap_or_else(|| "notice".to_owned());
                let mut message = message.clone();
                if matches!(notice, Notice::CheckpointCorrupt { .. }) {
                    // The damaged checkpoint may have named a multipart upload that is still open.
                    message.push_str(&format!(
                        " (a multipart upload it named may still be open: `ossup uploads ls {object}` shows it)"
                    ));
                }
                Some(Event::Notice {
                    notice: kind,
                    message,
                })
            }
            // The summary is built from the outcome, which knows more than this event.
            ProgressEvent::Completed { .. } => None,
            _ => None,
        }
    }
}

fn completed_event(
    object: &str,
    outcome: &UploadOutcome,
    elapsed: Duration,
    parts_hedged: u64,
) -> Event {
    let secs = elapsed.as_secs_f64();
    Event::Completed {
        object: object.to_owned(),
        size: outcome.size,
        etag: outcome.etag.clone(),
        crc64: outcome.crc64.to_string(),
        callback_reply: callback_reply(outcome).map(str::to_owned),
        parts_sent: outcome.parts_sent,
        parts_reused: outcome.parts_reused,
        bytes_sent: outcome.bytes_sent,
        bytes_reused: outcome.bytes_reused,
        parts_hedged,
        elapsed_secs: secs,
        bytes_per_sec: if secs > 0.0 {
            outcome.bytes_sent as f64 / secs
        } else {
            0.0
        },
    }
}

fn print_summary(
    object: &str,
    outcome: &UploadOutcome,
    elapsed: Duration,
    hedges: Option<&HedgeStats>,
) {
    let rate = crate::size::rate_text(outcome.bytes_sent, elapsed);
    let parts = match outcome.method {
        ossup::UploadMethod::PutObject => "1 request (PutObject)".to_owned(),
        _ => format!(
            "{} sent, {} reused ({} parts of {})",
            outcome.parts_sent,
            outcome.parts_reused,
            outcome.parts,
            HumanBytes(outcome.part_size)
        ),
    };
    let mut out = std::io::stdout().lock();
    // The ETag, the upload id and the callback's reply are the server's text.
    let _ = writeln!(out, "uploaded {}", printable(object));
    let _ = writeln!(
        out,
        "  size    {} ({} bytes)",
        HumanBytes(outcome.size),
        outcome.size
    );
    let _ = writeln!(out, "  ETag    {}", printable(&outcome.etag));
    let _ = writeln!(out, "  CRC-64  {} (matches the file)", outcome.crc64);
    let _ = writeln!(out, "  parts   {parts}");
    let _ = writeln!(
        out,
        "  sent    {} in {}, {rate}",
        HumanBytes(outcome.bytes_sent),
        crate::duration::brief(elapsed)
    );
    if let Some(hedges) = hedges.filter(|h| h.hedged() > 0) {
        let _ = writeln!(
            out,
            "  hedged  {} straggling parts sent again ({} answered first)",
            hedges.hedged(),
            hedges.won()
        );
    }
    if let Some(id) = &outcome.upload_id {
        let _ = writeln!(
            out,
            "  upload  {}{}",
            printable(id),
            if outcome.resumed { " (resumed)" } else { "" }
        );
    }
    if let Some(reply) = callback_reply(outcome) {
        let _ = writeln!(out, "  callback replied: {}", printable(reply));
    }
}

/// The callback server's reply, when the upload had a callback and it answered.
fn callback_reply(outcome: &UploadOutcome) -> Option<&str> {
    outcome.callback.as_ref().and_then(|c| c.reply())
}

/// The upload callback the flags ask for.
pub(crate) fn callback(args: &UploadArgs) -> Result<Option<Callback>, Failure> {
    let (Some(first), Some(body)) = (args.callback_url.first(), &args.callback_body) else {
        return Ok(None);
    };
    let mut callback =
        Callback::new(first.clone(), body.clone()).body_type(match args.callback_body_type {
            CallbackBodyTypeArg::Form => CallbackBodyType::FormUrlEncoded,
            CallbackBodyTypeArg::Json => CallbackBodyType::Json,
        });
    for url in &args.callback_url[1..] {
        callback = callback.url(url.clone());
    }
    if let Some(host) = &args.callback_host {
        callback = callback.host(host.clone());
    }
    for (i, (name, value)) in args.callback_var.iter().enumerate() {
        if args.callback_var[..i].iter().any(|(n, _)| n == name) {
            return Err(Failure::usage(format!(
                "--callback-var {name} is given twice; give each name once"
            )));
        }
        callback = callback.var(name, value.clone());
    }
    callback
        .validate()
        .map_err(|e| Failure::usage(format!("the upload callback: {}", e.message())))?;
    Ok(Some(callback))
}

/// The object options the flags ask for (the Content-Type is guessed per file later); a
/// combination OSS would refuse is a usage error.
pub(crate) fn object_options(args: &UploadArgs) -> Result<ObjectOptions, Failure> {
    let mut options = ObjectOptions::default().forbid_overwrite(args.forbid_overwrite);
    if let Some(ct) = &args.content_type {
        options = options.content_type(ct.clone());
    }
    for entry in &args.meta {
        options = options.meta(entry.name.clone(), entry.value.clone());
    }
    if let Some(acl) = args.acl {
        options = options.acl(match acl {
            AclArg::Private => ObjectAcl::Private,
            AclArg::PublicRead => ObjectAcl::PublicRead,
            AclArg::PublicReadWrite => ObjectAcl::PublicReadWrite,
            AclArg::Default => ObjectAcl::Default,
        });
    }
    if let Some(class) = args.storage_class {
        options = options.storage_class(match class {
            StorageClassArg::Standard => StorageClass::Standard,
            StorageClassArg::Ia => StorageClass::IA,
            StorageClassArg::Archive => StorageClass::Archive,
            StorageClassArg::ColdArchive => StorageClass::ColdArchive,
            StorageClassArg::DeepColdArchive => StorageClass::DeepColdArchive,
        });
    }
    if let Some(value) = &args.cache_control {
        options = options.cache_control(value.clone());
    }
    if let Some(value) = &args.content_disposition {
        options = options.content_disposition(value.clone());
    }
    if let Some(value) = &args.content_encoding {
        options = options.content_encoding(value.clone());
    }
    if let Some(value) = &args.expires {
        options = options.expires(value.clone());
    }
    if let Some(sse) = args.sse {
        options = options.server_side_encryption(match sse {
            SseArg::Aes256 => ServerSideEncryption::Aes256,
            SseArg::Kms => ServerSideEncryption::Kms,
            SseArg::Sm4 => ServerSideEncryption::Sm4,
        });
    }
    if let Some(key_id) = &args.sse_kms_key_id {
        options = options.sse_kms_key_id(key_id.clone());
    }
    if let Some(SseDataArg::Sm4) = args.sse_data_encryption {
        options = options.sse_data_encryption(DataEncryption::Sm4);
    }
    if let Some(query) = &args.tagging {
        let tags = tagging::parse(query)
            .map_err(|e| Failure::usage(format!("--tagging {query:?}: {e}")))?;
        options = add_tags(options, tags)?;
    }
    options = add_tags(options, args.tag.clone())?;
    for (name, value) in &args.header {
        options = options.header(name.clone(), value.clone());
    }
    options
        .validate()
        .map_err(|e| Failure::usage(e.message()))?;
    Ok(options)
}

/// Adds tags, refusing a key that is already there: `--tagging` and `--tag` add up, and a key
/// given twice is most likely a mistake.
fn add_tags(
    mut options: ObjectOptions,
    tags: Vec<(String, String)>,
) -> Result<ObjectOptions, Failure> {
    for (key, value) in tags {
        if options.tags.iter().any(|(k, _)| *k == key) {
            return Err(Failure::usage(format!(
                "tag {key:?} is given twice; give each tag key once"
            )));
        }
        options = options.tag(key, value);
    }
    Ok(options)
}

/// What [`open_store`] opens: the checkpoint store, the same store as the digest cache of a tree
/// upload (none with `--no-checkpoint`; with a PostgreSQL store, the host's default checkpoint
/// directory), and the same store again when `--cooperate` shares the upload through it.
pub(crate) type Stores = (
    Arc<dyn CheckpointStore>,
    Option<Arc<dyn DigestCache>>,
    Option<Arc<dyn CooperativeStore>>,
);

/// The checkpoint store the flags ask for (see [`Stores`]).
pub(crate) async fn open_store(args: &UploadArgs) -> Result<Stores, Failure> {
    if args.cooperate && args.checkpoint_url.is_none() && args.checkpoint_db.is_none() {
        return Err(Failure::usage(
            "--cooperate needs a checkpoint store the workers share: --checkpoint-url \
             postgres://USER@HOST/DB for several hosts, or --checkpoint-db FILE for processes on \
             one host (a checkpoint directory keeps one run per upload)",
        ));
    }
    if args.no_checkpoint {
        return Ok((Arc::new(MemoryStore::new()), None, None));
    }
    if let Some(url) = &args.checkpoint_url {
        let store = open_postgres(url).await?;
        let cooperative = args
            .cooperate
            .then(|| Arc::new(store.clone()) as Arc<dyn CooperativeStore>);
        return Ok((Arc::new(store), host_digest_cache(args), cooperative));
    }
    let hint = |e: &ossup::StoreError, otherwise: &str| {
        match e {
        // The error says what is wrong and the chmod that fixes it.
        ossup::StoreError::NotPrivate { .. } => {
            "or keep checkpoints elsewhere: --checkpoint-dir DIR, --checkpoint-db FILE, --no-checkpoint"
                .to_owned()
        }
        _ => otherwise.to_owned(),
    }
    };
    if let Some(db) = &args.checkpoint_db {
        let store = ossup_sqlite::SqliteStore::open(db).await.map_err(|e| {
            let hint = hint(
                &e,
                "check the path, or pass --checkpoint-dir DIR or --no-checkpoint",
            );
            Failure::failed(format!(
                "cannot open the checkpoint database {}: {e}",
                db.display()
            ))
            .hint(hint)
        })?;
        let cooperative = args
            .cooperate
            .then(|| Arc::new(store.clone()) as Arc<dyn CooperativeStore>);
        return Ok((Arc::new(store.clone()), Some(Arc::new(store)), cooperative));
    }
    let dir = match &args.checkpoint_dir {
        Some(dir) => dir.clone(),
        None => default_checkpoint_dir()?,
    };
    let store = FileStore::open(&dir).map_err(|e| {
        let hint = hint(
            &e,
            "pass --checkpoint-dir DIR with a writable directory, or --no-checkpoint",
        );
        Failure::failed(format!(
            "cannot use the checkpoint directory {}: {e}",
            dir.display()
        ))
        .hint(hint)
    })?;
    Ok((Arc::new(store.clone()), Some(Arc::new(store)), None))
}

/// The digest cache of a tree uploaded with a PostgreSQL checkpoint store: the default checkpoint
/// directory's, on this host. What it remembers (a file's digests by path, size, time and inode) is
/// true of this host's files only, so it is not shared through the database. Without it every file
/// is read again to be compared with the bucket, which a note says.
fn host_digest_cache(args: &UploadArgs) -> Option<Arc<dyn DigestCache>> {
    if !args.recursive {
        return None;
    }
    let opened = default_checkpoint_dir().and_then(|dir| {
        FileStore::open(&dir).map_err(|e| {
            Failure::failed(format!(
                "cannot use the checkpoint directory {}: {e}",
                dir.display()
            ))
        })
    });
    match opened {
        Ok(store) => Some(Arc::new(store)),
        Err(failure) => {
            eprintln!(
                "note: no digest cache on this host ({failure}): every file is read again to compare it with the bucket"
            );
            None
        }
    }
}

/// The PostgreSQL checkpoint store at `url`. A URL carrying a password is refused: a command line
/// is seen by every user of the host (`ps`) and kept in shell histories.
pub(crate) async fn open_postgres(url: &str) -> Result<ossup_postgres::PostgresStore, Failure> {
    if url_has_password(url) {
        return Err(Failure::usage(
            "the --checkpoint-url holds a password, which a command line shows to every user of the host",
        )
        .hint("drop it from the URL and put it in PGPASSWORD or ~/.pgpass (mode 0600), as for psql"));
    }
    ossup_postgres::PostgresStore::connect(url)
        .await
        .map_err(|e| {
            Failure::failed(format!("cannot use the PostgreSQL checkpoint store: {e}")).hint(
                "check the URL (postgres://USER@HOST[:PORT]/DATABASE), that the server is reachable, and PGPASSWORD or ~/.pgpass",
            )
        })
}

/// Whether a `postgres://` URL names a password (`USER:PASSWORD@` or a `password=` parameter).
fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let userinfo_has_password = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    let query_has_password = url.split_once('?').is_some_and(|(_, query)| {
        query
            .split('&')
            .any(|pair| pair.split('=').next() == Some("password"))
    });
    userinfo_has_password || query_has_password
}

/// The uploader the flags ask for: a client of `connection` (with `--limit-rate`), the scheduler
/// of `--parallel` / `--sequential` (`auto` listening to the client's overload answers), hedged
/// unless `--no-hedge`, over the stores; and the hedging's counters, when it hedges.
pub(crate) fn build_uploader(
    args: &UploadArgs,
    connection: &Connection,
    (store, _, cooperative): &Stores,
) -> Result<(Uploader, Option<Arc<HedgeStats>>), Failure> {
    let congestion = ossup::CongestionSignal::new();
    let client = connection.client_limited(args.limit_rate, &congestion)?;
    let builder = Uploader::builder().client(client);
    let builder = match cooperative {
        Some(shared) => builder.cooperative_store(shared.clone()),
        None => builder.store(store.clone()),
    };
    let builder = match args.lease {
        Some(lease) => builder.lease(lease),
        None => builder,
    };
    let scheduler: Box<dyn PartScheduler> = match (args.sequential, args.parallel) {
        (true, _) => Box::new(Sequential),
        (false, Some(ParallelArg::Fixed(n))) => Box::new(Parallel::new(usize::from(n))),
        (false, Some(ParallelArg::Auto) | None) => {
            Box::new(Adaptive::new(usize::from(args.max_parallel)).listening_to(congestion))
        }
    };
    let (builder, hedges) = if args.no_hedge {
        (builder.scheduler(scheduler), None)
    } else {
        let hedged = Hedged::new(scheduler);
        let hedges = hedged.stats();
        (builder.scheduler(hedged), Some(hedges))
    };
    let uploader = builder.build().map_err(|e| Failure::usage(e.message()))?;
    Ok((uploader, hedges))
}

/// The checksum mode of `--checksum`.
pub(crate) fn checksum_mode(args: &UploadArgs) -> ChecksumMode {
    match args.checksum {
        ChecksumArg::Md5 => ChecksumMode::Md5,
        ChecksumArg::Crc64 => ChecksumMode::Crc64Only,
    }
}

pub(crate) fn check_part_size(size: u64) -> Result<(), Failure> {
    if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&size) {
        return Err(Failure::usage(format!(
            "--part-size {} ({size} bytes) is out of range: OSS takes parts of 100KiB to 5GiB",
            HumanBytes(size)
        )));
    }
    Ok(())
}

/// Checks the file is there, is a regular file and can be read; returns its name.
fn check_file(path: &Path) -> Result<OsString, Failure> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Failure::failed(format!("{shown} does not exist")),
        std::io::ErrorKind::PermissionDenied => {
            Failure::failed(format!("cannot read {shown}: permission denied"))
        }
        _ => Failure::failed(format!("cannot read {shown}: {e}")),
    })?;
    if meta.is_dir() {
        return Err(Failure::failed(format!(
            "{shown} is a directory; ossup uploads one file at a time unless told otherwise"
        ))
        .hint("pass --recursive to upload the files below it"));
    }
    if !meta.is_file() {
        return Err(Failure::failed(format!(
            "{shown} is not a regular file; ossup needs a file it can read at any offset"
        )));
    }
    File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            Failure::failed(format!("cannot read {shown}: permission denied"))
        }
        _ => Failure::failed(format!("cannot read {shown}: {e}")),
    })?;
    Ok(path.file_name().map(OsStr::to_owned).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_userinfo_or_the_query_is_found() {
        assert!(url_has_password("postgres://u:p@h/db"));
        assert!(url_has_password(
            "postgresql://u@h/db?sslmode=require&password=p"
        ));
        assert!(!url_has_password("postgres://u@h:5432/db?sslmode=require"));
        assert!(!url_has_password("postgres://u@[::1]:5432/db"));
    }
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn upload_args(flags: &[&str]) -> UploadArgs {
        let args = ["ossup", "upload", "report.json", "oss://bucket/k"];
        let cli = Cli::try_parse_from(args.iter().chain(flags)).expect("flags parse");
        let Command::Upload(args) = cli.command else {
            panic!("not an upload")
        };
        *args
    }

    #[test]
    fn object_flags_become_object_options() {
        let options = object_options(&upload_args(&[
            "--cache-control",
            "no-cache",
            "--content-disposition",
            "attachment",
            "--content-encoding",
            "gzip",
            "--expires",
            "Wed, 21 Oct 2026 07:28:00 GMT",
            "--sse",
            "KMS",
            "--sse-kms-key-id",
            "key-1",
            "--sse-data-encryption",
            "sm4",
            "--tagging",
            "a=1&b=two+words",
            "--tag",
            "c=3",
            "--header",
            "X-Oss-Request-Payer: requester",
        ]))
        .unwrap();
        assert_eq!(options.cache_control.as_deref(), Some("no-cache"));
        assert_eq!(options.content_disposition.as_deref(), Some("attachment"));
        assert_eq!(options.content_encoding.as_deref(), Some("gzip"));
        assert_eq!(
            options.expires.as_deref(),
            Some("Wed, 21 Oct 2026 07:28:00 GMT")
        );
        assert_eq!(
            options.server_side_encryption,
            Some(ServerSideEncryption::Kms)
        );
        assert_eq!(options.sse_kms_key_id.as_deref(), Some("key-1"));
        assert_eq!(options.sse_data_encryption, Some(DataEncryption::Sm4));
        let tags: Vec<(&str, &str)> = options
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(tags, [("a", "1"), ("b", "two words"), ("c", "3")]);
        assert_eq!(
            options.extra_headers,
            [("x-oss-request-payer".to_owned(), "requester".to_owned())]
        );
        // Guessed per file from its name when the upload runs, not here.
        assert_eq!(options.content_type, None);
    }

    #[test]
    fn object_flags_oss_would_refuse_are_usage_errors_that_say_why() {
        for (flags, says) in [
            (
                &["--sse-kms-key-id", "k"][..],
                "needs server-side encryption KMS",
            ),
            (
                &["--sse", "AES256", "--sse-data-encryption", "SM4"][..],
                "KMS",
            ),
            (&["--tagging", "a=1", "--tag", "a=2"][..], "given twice"),
            (&["--tagging", "a=b=c"][..], "--tagging"),
            (&["--tag", &"k".repeat(129)][..], "at most 128"),
            (
                &["--header", "Content-MD5: x"][..],
                "computes it from the body",
            ),
            (&["--header", "x-oss-tagging: a=1"][..], "--tag"),
        ] {
            let err = object_options(&upload_args(flags)).unwrap_err();
            assert_eq!(err.exit_code, crate::failure::EXIT_USAGE, "{flags:?}");
            assert!(err.message.contains(says), "{flags:?}: {}", err.message);
        }
    }

    #[test]
    fn part_sizes_outside_oss_limits_name_the_flag() {
        let err = check_part_size(1024).unwrap_err();
        assert!(err.message.contains("--part-size"), "{err}");
        assert_eq!(err.exit_code, crate::failure::EXIT_USAGE);
        assert!(check_part_size(100 * 1024).is_ok());
        assert!(check_part_size(MAX_PART_SIZE + 1).is_err());
    }

    #[test]
    fn missing_files_and_directories_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.bin");
        assert!(
            check_file(&missing)
                .unwrap_err()
                .message
                .ends_with("does not exist")
        );
        assert!(
            check_file(dir.path())
                .unwrap_err()
                .message
                .contains("is a directory")
        );
        let file = dir.path().join("a.bin");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(check_file(&file).unwrap(), "a.bin");
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let name = OsStr::from_bytes(b"caf\xe9.bin");
            let odd = dir.path().join(name);
            std::fs::write(&odd, b"x").unwrap();
            assert_eq!(check_file(&odd).unwrap(), name);
        }
    }

    #[test]
    fn reused_parts_are_counted_from_reused_bytes() {
        let mut tally = Tally::default();
        let event = tally.translate(
            "oss://b/k",
            &ProgressEvent::Started {
                total: 1000,
                already_on_server: 300 + 100,
                parts: 4,
                part_size: 300,
                upload_id: Some("U".to_owned()),
            },
        );
        let Some(Event::Started { parts_reused, .. }) = event else {
            panic!("no started event")
        };
        // One full part and the short last one.
        assert_eq!(parts_reused, 2);
    }
}
