//! `ossup demo`: a crash and a resume, end to end, on this machine alone.
//!
//! Starts the mock OSS server in-process, writes a file of seeded random bytes, uploads it, drops the
//! upload at about 40% as a crash would (with its parts in flight; only the checkpoint on disk
//! survives), resumes it with a fresh uploader from that checkpoint, reads the object back and checks
//! it against the file, and says what happened at each step.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oss_mock::{FaultAction, FaultRule};
use ossup::{
    CheckpointStore, Client, FileSource, FileStore, Parallel, ProgressEvent, Source,
    UploadIdentity, UploadRequest, Uploader,
};
use ossup_proto::Api;
use ossup_proto::checksum::{Crc64, Md5};
use ossup_proto::limits::MIN_PART_SIZE;
use ossup_sign::{Credentials, V4Signer};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::Notify;

use crate::cli::DemoArgs;
use crate::duration::brief;
use crate::failure::Failure;
use crate::size::HumanBytes;

/// The smallest file the demo accepts: enough parts to crash in the middle of.
const MIN_DEMO_SIZE: u64 = 1 << 20;
/// How many parts the demo's file is cut into (the part size follows from the file size).
const DEMO_PARTS: u64 = 32;
/// Where the crash happens, as a fraction of the file.
const CRASH_AT: f64 = 0.4;
const PARALLEL: usize = 4;
const BUCKET: &str = "demo";
const KEY: &str = "demo/big.bin";
const REGION: &str = "cn-hangzhou";
const ACCESS_KEY_ID: &str = "test-ak";
const ACCESS_KEY_SECRET: &str = "test-sk";
/// The seed of the file's bytes, so every run uploads the same file.
const SEED: u64 = 0x05_5c_0d_e0;

/// Runs `ossup demo`.
pub(crate) async fn run(args: DemoArgs) -> Result<(), Failure> {
    if args.size < MIN_DEMO_SIZE {
        return Err(Failure::usage(format!(
            "--size {} is too small for the demo: give at least 1MiB, so there are parts to \
             interrupt the upload between",
            HumanBytes(args.size)
        )));
    }
    let demo_started = Instant::now();
    let size = args.size;
    let part_size = demo_part_size(size);
    let parts = size.div_ceil(part_size);
    say(format!(
        "ossup demo: upload {} in {parts} parts of {}, {PARALLEL} at a time, crash at {:.0}%, \
         resume, verify",
        HumanBytes(size),
        HumanBytes(part_size),
        CRASH_AT * 100.0
    ));

    let step = Instant::now();
    let scratch = tempfile::Builder::new()
        .prefix("ossup-demo-")
        .tempdir()
        .map_err(|e| Failure::failed(format!("cannot make a temporary directory: {e}")))?;
    let server = start_mock(scratch.path()).await?;
    let endpoint = server.endpoint().to_string();
    report(
        1,
        "start the mock OSS server",
        step.elapsed(),
        &[
            format!(
                "listening at {endpoint}, bucket {BUCKET}, data in {}",
                server.data_dir().display()
            ),
            "faults armed: 503s on about 15% of parts, a connection cut mid-part, a part whose \
             answer is lost, a 500 on ListParts, and a lost answer to Complete"
                .to_owned(),
        ],
    );

    let step = Instant::now();
    let file = scratch.path().join("big.bin");
    let expected = write_random_file(&file, size).await?;
    report(
        2,
        "write the file to upload",
        step.elapsed(),
        &[
            format!(
                "{} of seeded random bytes in {}",
                HumanBytes(expected.size),
                file.display()
            ),
            format!("MD5 {}, CRC-64 {}", hex(&expected.md5), expected.crc64),
        ],
    );

    let checkpoints = scratch.path().join("checkpoints");
    let step = Instant::now();
    let crash = crash_partway(&endpoint, &checkpoints, &file, part_size, size).await?;
    let crash_time = step.elapsed();
    let identity = UploadIdentity::new(crash.source_identity.clone(), BUCKET, KEY, part_size);
    let checkpoint = {
        let store = FileStore::open(&checkpoints)
            .map_err(|e| Failure::failed(format!("cannot reopen the checkpoint store: {e}")))?;
        store
            .load(&identity)
            .await
            .map_err(|e| {
                Failure::failed(format!("cannot read the checkpoint after the crash: {e}"))
            })?
            .ok_or_else(|| {
                Failure::failed("the crashed upload left no checkpoint; nothing to resume from")
            })?
    };
    let client = demo_client(&endpoint)?;
    let on_server = client
        .list_parts(BUCKET, KEY, &checkpoint.upload_id)
        .await
        .map_err(|e| Failure::failed(format!("ListParts after the crash failed: {e}")))?;
    report(
        3,
        &format!("upload it, and crash at {:.0}%", CRASH_AT * 100.0),
        crash_time,
        &[
            format!(
                "{} parts ({}, {:.0}%) acknowledged, then the upload was dropped with its parts \
                 in flight, as a crash drops it",
                crash.acknowledged,
                HumanBytes(crash.transferred),
                crash.fraction * 100.0
            ),
            format!(
                "left behind: a checkpoint recording {} parts, and {} parts on the server in \
                 upload {}",
                checkpoint.parts.len(),
                on_server.len(),
                checkpoint.upload_id
            ),
        ],
    );

    // A fresh uploader, as a new process would build, finds the checkpoint and resumes.
    let step = Instant::now();
    let uploader = demo_uploader(&endpoint, &checkpoints)?;
    let source = FileSource::open(&file).map_err(|e| Failure::failed(e.to_string()))?;
    let outcome = uploader
        .upload(UploadRequest::new(source, BUCKET, KEY).part_size(part_size))
        .await
        .map_err(|e| Failure::failed(format!("the resumed upload failed: {e}")))?;
    let resume_time = step.elapsed();
    if !outcome.resumed {
        return Err(Failure::failed(
            "the second run did not resume the crashed upload; it started over",
        ));
    }
    if outcome.bytes_reused + outcome.bytes_sent != size {
        return Err(Failure::failed(format!(
            "the resumed upload reused {} bytes and sent {}, which is not the file's {size}",
            outcome.bytes_reused, outcome.bytes_sent
        )));
    }
    let unrecorded = (outcome.parts_reused as usize).saturating_sub(checkpoint.parts.len());
    let mut details = vec![
        format!(
            "listed the parts of upload {} on the server; kept each whose size and ETag match the \
             file's MD5 for its range",
            outcome.upload_id.as_deref().unwrap_or("?")
        ),
        format!(
            "reused {} parts ({}){}",
            outcome.parts_reused,
            HumanBytes(outcome.bytes_reused),
            if unrecorded > 0 {
                format!(
                    ", {unrecorded} of them acknowledged by the server but never recorded \
                     (its answer was lost)"
                )
            } else {
                String::new()
            }
        ),
        format!(
            "sent the other {} parts ({}) at {}/s",
            outcome.parts_sent,
            HumanBytes(outcome.bytes_sent),
            HumanBytes(rate(outcome.bytes_sent, resume_time))
        ),
    ];
    details.push(format!(
        "reused + sent = {} + {} bytes = the whole file: no part the server held was sent again",
        outcome.bytes_reused, outcome.bytes_sent
    ));
    let stats = server.stats();
    let received = stats.bytes_received();
    details.push(format!(
        "the server received {} of part data over both runs in {} UploadPart requests: the file's \
         {} plus {} of parts cut off by the crash or sent again after an injected fault",
        HumanBytes(received),
        stats.requests(Api::UploadPart),
        HumanBytes(size),
        HumanBytes(received.saturating_sub(size))
    ));
    details.push(format!(
        "faults fired so far: {}; each was retried or settled",
        describe_faults(&server)
    ));
    report(4, "resume from the checkpoint", resume_time, &details);

    let step = Instant::now();
    let actual = read_object(&client).await?;
    let verdict = |ok: bool| if ok { "matches" } else { "DIFFERS" };
    let size_ok = actual.size == size;
    let md5_ok = actual.md5 == expected.md5;
    let crc_ok = actual.crc64 == expected.crc64 && outcome.crc64 == expected.crc64;
    report(
        5,
        "verify the object against the file",
        step.elapsed(),
        &[
            format!(
                "downloaded oss://{BUCKET}/{KEY}: {} bytes, ETag {}",
                actual.size, outcome.etag
            ),
            format!(
                "size {}, MD5 {} {}, CRC-64 {} {}",
                verdict(size_ok),
                hex(&actual.md5),
                verdict(md5_ok),
                actual.crc64,
                verdict(crc_ok)
            ),
        ],
    );
    if !(size_ok && md5_ok && crc_ok) {
        return Err(Failure::failed(
            "the object on the server is not the file: the demo failed",
        ));
    }

    let step = Instant::now();
    let left = FileStore::open(&checkpoints)
        .map_err(|e| Failure::failed(format!("cannot reopen the checkpoint store: {e}")))?
        .list()
        .await
        .map_err(|e| Failure::failed(format!("cannot list checkpoints: {e}")))?;
    if !left.is_empty() {
        return Err(Failure::failed(format!(
            "the completed upload left {} checkpoint(s) behind",
            left.len()
        )));
    }
    server.shutdown().await;
    let scratch_path = scratch.path().display().to_string();
    scratch
        .close()
        .map_err(|e| Failure::failed(format!("cannot remove {scratch_path}: {e}")))?;
    report(
        6,
        "clean up",
        step.elapsed(),
        &[format!(
            "the completed upload had removed its checkpoint; stopped the server; removed {scratch_path}"
        )],
    );
    say(format!(
        "demo passed in {}: crashed at {:.0}%, resumed reusing {} of {} parts, object verified \
         byte for byte",
        brief(demo_started.elapsed()),
        crash.fraction * 100.0,
        outcome.parts_reused,
        outcome.parts
    ));
    Ok(())
}

/// Prints one line of the demo's story on stdout, at once.
fn say(text: String) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
}

/// Prints a step: its number, what it did and how long it took, then its details indented.
fn report(number: u32, title: &str, took: Duration, details: &[String]) {
    say(format!("[{number}/6] {title} ({})", brief(took)));
    for detail in details {
        say(format!("      {detail}"));
    }
}

/// About [`DEMO_PARTS`] parts, each a multiple of 4 KiB and at least OSS's minimum.
fn demo_part_size(size: u64) -> u64 {
    let per_part = size.div_ceil(DEMO_PARTS).next_multiple_of(4096);
    per_part.max(MIN_PART_SIZE)
}

fn rate(bytes: u64, took: Duration) -> u64 {
    let secs = took.as_secs_f64();
    if secs > 0.0 {
        (bytes as f64 / secs) as u64
    } else {
        0
    }
}

fn hex(bytes: &[u8; 16]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn start_mock(scratch: &Path) -> Result<oss_mock::MockServer, Failure> {
    let config = oss_mock::MockConfig {
        data_dir: Some(scratch.join("mock-data")),
        buckets: vec![BUCKET.to_owned()],
        ..Default::default()
    };
    let server = oss_mock::MockServer::start(config)
        .await
        .map_err(|e| Failure::failed(format!("cannot start the mock OSS server: {e}")))?;
    server
        .set_faults(demo_faults())
        .map_err(|e| Failure::failed(format!("cannot arm the demo's fault rules: {e}")))?;
    Ok(server)
}

/// The faults the demo's mock injects, seeded so every run meets the same ones: what a flaky network
/// and a busy server do to an upload, each of which the engine must ride out without a wrong byte.
fn demo_faults() -> Vec<FaultRule> {
    vec![
        FaultRule::new(FaultAction::error(503, "ServiceUnavailable"))
            .api(Api::UploadPart)
            .probability(0.15)
            .seed(7)
            .times(6),
        FaultRule::new(FaultAction::ResetMidBody {
            after_bytes: 64 * 1024,
        })
        .api(Api::UploadPart)
        .nth(4),
        FaultRule::new(FaultAction::ResetAfterCommit)
            .api(Api::UploadPart)
            .nth(7),
        FaultRule::new(FaultAction::error(500, "InternalError"))
            .api(Api::ListParts)
            .nth(1),
        FaultRule::new(FaultAction::ResetAfterCommit)
            .api(Api::CompleteMultipartUpload)
            .nth(1),
    ]
}

/// One line per fault rule: what it does and how often it fired.
fn describe_faults(server: &oss_mock::MockServer) -> String {
    let fired: Vec<String> = server
        .fault_report()
        .iter()
        .zip(demo_faults())
        .map(|(report, rule)| {
            let api = rule
                .api
                .map_or_else(|| "any".to_owned(), |api| api.to_string());
            format!("{} on {api} x{}", report.kind, report.fired)
        })
        .collect();
    fired.join(", ")
}

fn demo_client(endpoint: &str) -> Result<Client, Failure> {
    Client::builder()
        .endpoint(endpoint)
        .and_then(|b| {
            b.credentials(Credentials::new(ACCESS_KEY_ID, ACCESS_KEY_SECRET))
                .signer(V4Signer::new(REGION))
                .transport(ossup_hyper::HyperTransport::new())
                .build()
        })
        .map_err(|e| Failure::failed(format!("cannot build a client for {endpoint}: {e}")))
}

fn demo_uploader(endpoint: &str, checkpoints: &Path) -> Result<Uploader, Failure> {
    let store = FileStore::open(checkpoints)
        .map_err(|e| Failure::failed(format!("cannot open the checkpoint store: {e}")))?;
    Uploader::builder()
        .client(demo_client(endpoint)?)
        .store(store)
        .scheduler(Parallel::new(PARALLEL))
        .build()
        .map_err(|e| Failure::failed(format!("cannot build the uploader: {e}")))
}

/// The size and checksums of some bytes.
struct Digest {
    size: u64,
    md5: [u8; 16],
    crc64: u64,
}

/// Writes `size` seeded random bytes to `path`, hashing them on the way.
async fn write_random_file(path: &Path, size: u64) -> Result<Digest, Failure> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || -> std::io::Result<Digest> {
        let mut rng = ChaCha8Rng::seed_from_u64(SEED);
        // Owner-only, like every file ossup writes (it lives in a private temporary directory too).
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, ossup::store::PRIVATE_FILE_MODE);
        let mut file = std::io::BufWriter::new(options.open(&path)?);
        let mut md5 = Md5::new();
        let mut crc = Crc64::new();
        let mut chunk = vec![0u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            rng.fill_bytes(&mut chunk[..n]);
            md5.update(&chunk[..n]);
            crc.update(&chunk[..n]);
            file.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        // No fsync: the file only has to outlive this process, not a power cut.
        file.flush()?;
        Ok(Digest {
            size,
            md5: md5.finish(),
            crc64: crc.finish(),
        })
    })
    .await
    .map_err(|e| Failure::failed(format!("writing the demo file panicked: {e}")))?
    .map_err(|e| Failure::failed(format!("cannot write the demo file: {e}")))
}

/// What the crash left.
struct Crash {
    source_identity: String,
    /// Bytes acknowledged when the upload was dropped.
    transferred: u64,
    fraction: f64,
    /// Parts acknowledged before the upload was dropped.
    acknowledged: u32,
}

/// Uploads until about [`CRASH_AT`] of the file is on the server, then drops the upload.
async fn crash_partway(
    endpoint: &str,
    checkpoints: &Path,
    file: &Path,
    part_size: u64,
    size: u64,
) -> Result<Crash, Failure> {
    let uploader = demo_uploader(endpoint, checkpoints)?;
    let source = FileSource::open(file).map_err(|e| Failure::failed(e.to_string()))?;
    let source_identity = source.identity();
    let threshold = (size as f64 * CRASH_AT) as u64;
    let reached = Arc::new(Notify::new());
    let transferred = Arc::new(AtomicU64::new(0));
    let acknowledged = Arc::new(AtomicU32::new(0));
    let sink = {
        let reached = reached.clone();
        let transferred = transferred.clone();
        let acknowledged = acknowledged.clone();
        let fired = Mutex::new(false);
        move |event: &ProgressEvent| {
            if let ProgressEvent::PartDone {
                transferred: now, ..
            } = event
            {
                transferred.store(*now, Ordering::SeqCst);
                acknowledged.fetch_add(1, Ordering::SeqCst);
                let mut fired = fired.lock().expect("crash flag lock");
                if *now >= threshold && !*fired {
                    *fired = true;
                    reached.notify_one();
                }
            }
        }
    };
    let request = UploadRequest::new(source, BUCKET, KEY)
        .part_size(part_size)
        .progress(sink);
    let mut upload = Box::pin(uploader.upload(request));
    tokio::select! {
        () = reached.notified() => {}
        finished = &mut upload => {
            return Err(match finished {
                Ok(_) => finished_too_soon(),
                Err(e) => Failure::failed(format!("the first upload failed: {e}")),
            });
        }
    }
    // The crash: the upload and every request it has in flight are dropped where they stand.
    drop(upload);
    let transferred = transferred.load(Ordering::SeqCst);
    Ok(Crash {
        source_identity,
        transferred,
        fraction: transferred as f64 / size as f64,
        acknowledged: acknowledged.load(Ordering::SeqCst),
    })
}

fn finished_too_soon() -> Failure {
    Failure::failed("the upload finished before it could be interrupted; try a larger --size")
}

/// Downloads the demo object, hashing it as it streams.
async fn read_object(client: &Client) -> Result<Digest, Failure> {
    let mut object = client
        .get_object(BUCKET, KEY, None)
        .await
        .map_err(|e| Failure::failed(format!("GetObject failed: {e}")))?;
    let mut md5 = Md5::new();
    let mut crc = Crc64::new();
    let mut size = 0u64;
    while let Some(chunk) = object.body.chunk().await {
        let chunk =
            chunk.map_err(|e| Failure::failed(format!("reading the object failed: {e}")))?;
        md5.update(&chunk);
        crc.update(&chunk);
        size += chunk.len() as u64;
    }
    Ok(Digest {
        size,
        md5: md5.finish(),
        crc64: crc.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_size_gets_8_mib_parts() {
        assert_eq!(demo_part_size(256 << 20), 8 << 20);
    }

    #[test]
    fn small_sizes_keep_the_minimum_part_size() {
        assert_eq!(demo_part_size(1 << 20), MIN_PART_SIZE);
        let part = demo_part_size(4 << 20);
        assert_eq!(part, 128 << 10);
        assert_eq!((4u64 << 20).div_ceil(part), 32);
    }
}
