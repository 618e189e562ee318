//! The blocking API from plain threads: uploads to an in-process mock server, progress from the
//! uploader's own runtime, cancellation from another thread and the resume after it, and the refusal
//! to block inside an async runtime.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oss_mock::{MockConfig, MockServer};
use ossup::blocking::{Uploader, UploaderBuilder};
use ossup::{
    CancellationToken, Client, Credentials, ErrorKind, FileSource, ProgressEvent, RetryConfig,
    Sequential, UploadMethod, UploadRequest,
};
use rand::{RngCore, SeedableRng};

const BUCKET: &str = "bucket";
const MIB: u64 = 1 << 20;

/// The mock server, served by a runtime of the test's own that exists only to host it: the code
/// under test runs on plain threads.
struct Mock {
    runtime: tokio::runtime::Runtime,
    server: MockServer,
}

impl Mock {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("the mock's runtime starts");
        let server = runtime
            .block_on(MockServer::start(MockConfig::default().with_bucket(BUCKET)))
            .expect("mock server starts");
        Self { runtime, server }
    }

    /// A blocking uploader's builder pointed at the mock, with 1 MiB parts and retries fast enough
    /// for tests.
    fn builder(&self) -> UploaderBuilder {
        Uploader::builder()
            .endpoint(&self.server.endpoint())
            .expect("the mock's endpoint parses")
            .credentials(Credentials::new("test-ak", "test-sk"))
            .region("cn-hangzhou")
            .retry(
                RetryConfig::default()
                    .max_attempts(4)
                    .backoff(Duration::from_millis(1), Duration::from_millis(5)),
            )
            .part_size(MIB)
    }

    /// The bytes the mock holds for `key`.
    fn object(&self, key: &str) -> Vec<u8> {
        let client = Client::builder()
            .endpoint(&self.server.endpoint())
            .expect("the mock's endpoint parses")
            .credentials(Credentials::new("test-ak", "test-sk"))
            .region("cn-hangzhou")
            .build()
            .expect("the client builds");
        self.runtime.block_on(async {
            let object = client
                .get_object(BUCKET, key, None)
                .await
                .unwrap_or_else(|e| panic!("object {key} is readable: {e}"));
            object
                .body
                .collect(usize::MAX)
                .await
                .unwrap_or_else(|e| panic!("object {key}'s body reads: {e}"))
                .to_vec()
        })
    }
}

/// `len` bytes from a seeded generator, written to `dir`/`name`.
fn seeded_file(dir: &Path, name: &str, len: u64, seed: u64) -> (PathBuf, Vec<u8>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut bytes = vec![0u8; usize::try_from(len).expect("test sizes fit in memory")];
    rng.fill_bytes(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, &bytes).expect("the test file is written");
    (path, bytes)
}

#[test]
fn a_multipart_upload_from_a_plain_thread_stores_the_source_and_reports_progress_from_the_runtime()
{
    let mock = Mock::start();
    let dir = tempfile::tempdir().expect("temporary directory");
    let (path, bytes) = seeded_file(dir.path(), "three-parts.bin", 3 * MIB, 1);
    let uploader = mock
        .builder()
        .build()
        .expect("the blocking uploader builds");

    // Each event with the name of the thread it was reported on.
    let events = Arc::new(Mutex::new(Vec::<(ProgressEvent, Option<String>)>::new()));
    let sink = {
        let events = events.clone();
        move |event: &ProgressEvent| {
            let thread = std::thread::current().name().map(str::to_owned);
            events
                .lock()
                .expect("events lock")
                .push((event.clone(), thread));
        }
    };
    let outcome = uploader
        .upload(
            UploadRequest::new(
                FileSource::open(&path).expect("source opens"),
                BUCKET,
                "three",
            )
            .progress(sink),
        )
        .expect("the upload succeeds");

    assert_eq!(outcome.method, UploadMethod::Multipart);
    assert_eq!(outcome.parts, 3);
    assert_eq!(outcome.size, 3 * MIB);
    assert_eq!(outcome.bytes_sent, 3 * MIB);
    assert!(!outcome.resumed);
    assert!(mock.object("three") == bytes, "the object is the source");

    let events = events.lock().expect("events lock").clone();
    let transferred: Vec<u64> = events
        .iter()
        .filter_map(|(event, _)| match event {
            ProgressEvent::PartDone { transferred, .. } => Some(*transferred),
            _ => None,
        })
        .collect();
    assert_eq!(transferred.len(), 3, "one PartDone per part: {events:?}");
    assert_eq!(transferred.last(), Some(&(3 * MIB)));
    let caller = std::thread::current().name().map(str::to_owned);
    for (event, thread) in &events {
        assert_eq!(
            thread.as_deref(),
            Some("ossup-blocking"),
            "{event:?} was reported on the uploader's runtime, not on {caller:?}"
        );
    }
}

#[test]
fn cancelling_from_another_thread_keeps_the_checkpoint_and_the_next_upload_resumes() {
    let mock = Mock::start();
    // The third part is stalled (read, never answered, never stored): the upload is surely mid-way
    // when the cancelling thread sees the server holding it, and the stall, spent, cannot catch the
    // second run.
    let stall_third_part = oss_mock::parse_fault_rules(
        br#"[{"api": "UploadPart", "nth": 3, "action": {"kind": "stall"}}]"#,
    )
    .expect("the fault rule parses");
    mock.server
        .set_faults(stall_third_part)
        .expect("the fault rule is accepted");
    let dir = tempfile::tempdir().expect("temporary directory");
    let (path, bytes) = seeded_file(dir.path(), "four-parts.bin", 4 * MIB, 2);
    // One part at a time, so that the first two parts are surely all the server holds.
    let uploader = mock
        .builder()
        .scheduler(Sequential)
        .build()
        .expect("the blocking uploader builds");

    let cancel = CancellationToken::new();
    let started = Instant::now();
    let err = std::thread::scope(|scope| {
        let canceller = scope.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(30);
            while mock.server.stalled_requests() == 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            // Cancelled either way, so a failure here does not leave the upload hanging.
            let stalled = mock.server.stalled_requests() > 0;
            cancel.cancel();
            assert!(stalled, "the third part never reached the stall");
        });
        let err = uploader
            .upload(
                UploadRequest::new(
                    FileSource::open(&path).expect("source opens"),
                    BUCKET,
                    "four",
                )
                .cancel(cancel.clone()),
            )
            .expect_err("the cancelled upload fails");
        canceller.join().expect("the cancelling thread ends");
        err
    });
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    assert!(
        err.to_string()
            .contains("run the same upload again to resume"),
        "the error says how to go on: {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "cancelling ends the stalled upload at once, not at a timeout ({:?})",
        started.elapsed()
    );

    let outcome = uploader
        .upload(UploadRequest::new(
            FileSource::open(&path).expect("source opens"),
            BUCKET,
            "four",
        ))
        .expect("the second run succeeds");
    assert!(outcome.resumed, "the second run resumes the first's upload");
    assert_eq!(outcome.parts_reused, 2);
    assert_eq!(outcome.bytes_reused, 2 * MIB);
    assert_eq!(outcome.bytes_sent, 2 * MIB);
    assert!(mock.object("four") == bytes, "the object is the source");
}

#[test]
fn upload_inside_an_async_runtime_is_refused_with_a_config_error() {
    let mock = Mock::start();
    let builder = mock.builder();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the caller's runtime starts");
    runtime.block_on(async {
        // Built, used and dropped inside the runtime: none of it may panic.
        let uploader = builder.build().expect("the blocking uploader builds");
        let err = uploader
            .upload(UploadRequest::new(
                ossup::BytesSource::new(vec![7u8; 1024], "small"),
                BUCKET,
                "refused",
            ))
            .expect_err("the upload is refused");
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(
            err.to_string().contains("use the async ossup::Uploader"),
            "the error says what to use instead: {err}"
        );
        drop(uploader);
    });
    let requests: u64 = mock
        .server
        .stats()
        .snapshot()
        .requests
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(requests, 0, "the refused upload sent nothing");
}

#[test]
fn a_clone_keeps_uploading_after_the_uploader_it_was_cloned_from_is_dropped() {
    let mock = Mock::start();
    let dir = tempfile::tempdir().expect("temporary directory");
    let (path, bytes) = seeded_file(dir.path(), "two-parts.bin", 2 * MIB, 3);
    let original = mock
        .builder()
        .build()
        .expect("the blocking uploader builds");
    let clone = original.clone();
    drop(original);

    let outcome = clone
        .upload(UploadRequest::new(
            FileSource::open(&path).expect("source opens"),
            BUCKET,
            "two",
        ))
        .expect("the clone's upload succeeds on the shared runtime");
    assert_eq!(outcome.parts, 2);
    assert!(mock.object("two") == bytes, "the object is the source");
}
