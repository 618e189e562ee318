//! Streams of unknown size: one PutObject or growing parts, resumed by the bytes as they arrive,
//! a changed stream never mixed into the old upload, a dying writer keeping what was sent.

use std::io::{self, Read};
use std::time::Duration;

use crate::common::faults::{Action, Faulty, Rule};
use crate::common::*;
use ossup::plan::stream_part_size;
use ossup::{
    Adaptive, Api, CancellationToken, ChecksumMode, CongestionSignal, CongestionWatch, ErrorKind,
    HyperTransport, MemoryStore, Notice, Parallel, RetryConfig, StreamSource, UploadMethod,
    UploadOutcome, UploadRequest,
};
use ossup_test_support::credentials;

/// Uploads `bytes` as the stream `name` with 100 KiB parts through `uploader`.
async fn upload_stream(
    uploader: &ossup::Uploader,
    bytes: &[u8],
    key: &str,
) -> Result<UploadOutcome, ossup::Error> {
    let stream = StreamSource::new(io::Cursor::new(bytes.to_vec()), "test-stream");
    uploader
        .upload(UploadRequest::stream(stream, BUCKET, key).part_size(PART))
        .await
}

/// The open multipart uploads of `key`.
async fn open_uploads(endpoint: &str, key: &str) -> Vec<String> {
    client(endpoint)
        .list_multipart_uploads(BUCKET, Some(key))
        .await
        .unwrap()
        .into_iter()
        .filter(|u| u.key == key)
        .map(|u| u.upload_id)
        .collect()
}

#[tokio::test]
async fn streams_of_every_length_arrive_whole_by_put_or_in_parts() {
    let server = mock().await;
    let store = shared_store();
    let uploader = builder(&server.endpoint())
        .store(store.clone())
        .scheduler(Parallel::new(4))
        .build()
        .unwrap();
    let part = PART as usize;
    for (len, method, parts) in [
        (0, UploadMethod::PutObject, 0),
        (1000, UploadMethod::PutObject, 0),
        (part, UploadMethod::PutObject, 0),
        (part + 1, UploadMethod::Multipart, 2),
        (3 * part + 17, UploadMethod::Multipart, 4),
        (4 * part, UploadMethod::Multipart, 4),
    ] {
        let bytes = data(len, len as u64);
        let key = format!("stream-{len}");
        let outcome = upload_stream(&uploader, &bytes, &key).await.unwrap();
        assert_eq!((outcome.method, outcome.parts), (method, parts), "{len}");
        assert_eq!(outcome.size, len as u64);
        assert_eq!(outcome.bytes_sent, len as u64);
        assert_object_is(&client(&server.endpoint()), &key, &bytes).await;
        assert!(open_uploads(&server.endpoint(), &key).await.is_empty());
    }
    assert!(
        ossup::CheckpointStore::list(store.as_ref())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_long_stream_grows_its_parts_and_holds_only_the_parts_in_flight() {
    let server = mock().await;
    let uploader = builder(&server.endpoint())
        .scheduler(Parallel::new(3))
        .build()
        .unwrap();
    // 128 parts of 100 KiB, then parts of 200 KiB.
    let len = (128 * PART + 3 * 2 * PART + 5) as usize;
    let bytes = data(len, 77);
    let outcome = upload_stream(&uploader, &bytes, "grown").await.unwrap();
    assert_eq!(stream_part_size(PART, 129), 2 * PART);
    assert_eq!(outcome.parts, 128 + 4);
    assert!(outcome.peak_part_buffers <= 4, "{outcome:?}");
    assert_object_is(&client(&server.endpoint()), "grown", &bytes).await;
}

#[tokio::test]
async fn an_adaptive_limit_governs_a_stream_as_it_does_a_file() {
    // A front end that refuses a seventh request at once; 100 KiB parts take 25 ms at 4 MiB/s.
    let shape = oss_mock::LinkShape {
        conn_bandwidth: Some(4 << 20),
        max_inflight: Some(6),
        ..oss_mock::LinkShape::default()
    };
    let server =
        ossup_test_support::mock_with(oss_mock::MockConfig::default().with_link(shape)).await;
    let congestion = CongestionSignal::new();
    let adaptive = Adaptive::new(32).listening_to(congestion.clone());
    let uploader = builder_with(
        &server.endpoint(),
        CongestionWatch::new(HyperTransport::new(), congestion),
    )
    .retry(
        RetryConfig::default()
            .max_attempts(10)
            .backoff(Duration::from_millis(10), Duration::from_millis(50)),
    )
    .scheduler(adaptive.clone())
    .build()
    .unwrap();
    let bytes = data((60 * PART) as usize + 7, 78);

    upload_stream(&uploader, &bytes, "governed").await.unwrap();

    // The start at 8 crosses the ceiling of 6 once; 32 parts in flight (each slot sending as it
    // was filled) were refused by the dozen.
    let refused = server.stats().refused_by_ceiling();
    assert!(refused <= 6, "{refused} requests refused");
    assert!(adaptive.current() <= 6, "{}", adaptive.current());
    assert_object_is(&client(&server.endpoint()), "governed", &bytes).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_stream_run_again_after_a_crash_sends_only_what_the_server_lacks() {
    let server = mock().await;
    let store = shared_store();
    let bytes = data(20 * PART as usize + 999, 5);
    let crash = CancellationToken::new();
    let faulty = Faulty::new();
    faulty.rule(Rule::new(Api::UploadPart, Action::ForwardThenCrash(crash.clone())).skip(9));
    let first = builder_with(&server.endpoint(), faulty)
        .store(store.clone())
        .scheduler(Parallel::new(4))
        .build()
        .unwrap();
    let stream = StreamSource::new(io::Cursor::new(bytes.clone()), "test-stream");
    let err = first
        .upload(
            UploadRequest::stream(stream, BUCKET, "resumed")
                .part_size(PART)
                .cancel(crash),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");

    let uploader = builder(&server.endpoint())
        .store(store.clone())
        .scheduler(Parallel::new(4))
        .build()
        .unwrap();
    let outcome = upload_stream(&uploader, &bytes, "resumed").await.unwrap();
    assert!(outcome.resumed);
    // Nine parts acknowledged before the crash (and the tenth forwarded): at most the slots in
    // flight are sent again.
    assert!(
        outcome.bytes_reused >= 9 * PART && outcome.parts_reused >= 9,
        "{outcome:?}"
    );
    assert_eq!(
        outcome.bytes_sent + outcome.bytes_reused,
        bytes.len() as u64
    );
    assert_object_is(&client(&server.endpoint()), "resumed", &bytes).await;
    assert!(open_uploads(&server.endpoint(), "resumed").await.is_empty());
}

/// Runs a crashed upload of `old` as the stream, then `new`: returns the second outcome.
async fn old_then_new(endpoint: &str, key: &str, old: &[u8], new: &[u8]) -> UploadOutcome {
    let store = shared_store();
    let crash = CancellationToken::new();
    let faulty = Faulty::new();
    faulty.rule(Rule::new(Api::UploadPart, Action::ForwardThenCrash(crash.clone())).skip(5));
    let first = builder_with(endpoint, faulty)
        .store(store.clone())
        .scheduler(Parallel::new(2))
        .build()
        .unwrap();
    let stream = StreamSource::new(io::Cursor::new(old.to_vec()), "test-stream");
    first
        .upload(
            UploadRequest::stream(stream, BUCKET, key)
                .part_size(PART)
                .cancel(crash),
        )
        .await
        .unwrap_err();
    assert_eq!(open_uploads(endpoint, key).await.len(), 1);
    let uploader = builder(endpoint)
        .store(store)
        .scheduler(Parallel::new(2))
        .build()
        .unwrap();
    upload_stream(&uploader, new, key).await.unwrap()
}

#[tokio::test]
async fn other_bytes_on_the_rerun_abort_the_old_upload_and_never_mix_into_the_object() {
    let server = mock().await;
    let old = data(10 * PART as usize, 1);
    let new = data(8 * PART as usize + 3, 2);
    let outcome = old_then_new(&server.endpoint(), "changed", &old, &new).await;
    assert!(
        outcome.notices.iter().any(|n| matches!(
            n,
            Notice::StreamDiffers {
                part: 1,
                aborted: true,
                ..
            }
        )),
        "{:?}",
        outcome.notices
    );
    assert_eq!(outcome.bytes_reused, 0);
    assert!(!outcome.resumed);
    assert_object_is(&client(&server.endpoint()), "changed", &new).await;
    assert!(open_uploads(&server.endpoint(), "changed").await.is_empty());
}

#[tokio::test]
async fn a_stream_that_differs_later_keeps_the_equal_parts_and_resends_the_rest() {
    let server = mock().await;
    let old = data(10 * PART as usize, 3);
    let mut new = old.clone();
    new[3 * PART as usize + 10] ^= 0xff; // part 4 differs
    new.truncate(7 * PART as usize + 50); // and the stream is shorter
    let outcome = old_then_new(&server.endpoint(), "edited", &old, &new).await;
    assert!(
        outcome.notices.iter().any(|n| matches!(
            n,
            Notice::StreamDiffers {
                part: 4,
                aborted: false,
                ..
            }
        )),
        "{:?}",
        outcome.notices
    );
    assert!(outcome.bytes_reused >= 3 * PART, "{outcome:?}");
    assert_eq!(outcome.parts, 8);
    assert_object_is(&client(&server.endpoint()), "edited", &new).await;
    assert!(open_uploads(&server.endpoint(), "edited").await.is_empty());
}

#[tokio::test]
async fn a_stream_now_short_enough_for_one_put_aborts_the_old_upload() {
    let server = mock().await;
    let old = data(6 * PART as usize, 4);
    let new = data(500, 4);
    let outcome = old_then_new(&server.endpoint(), "shrunk", &old, &new).await;
    assert_eq!(outcome.method, UploadMethod::PutObject);
    assert!(
        outcome
            .notices
            .iter()
            .any(|n| matches!(n, Notice::StreamDiffers { aborted: true, .. })),
        "{:?}",
        outcome.notices
    );
    assert_object_is(&client(&server.endpoint()), "shrunk", &new).await;
    assert!(open_uploads(&server.endpoint(), "shrunk").await.is_empty());
}

/// Yields `data`, then fails as a pipe whose writer died.
struct DiesAfter {
    data: io::Cursor<Vec<u8>>,
}

impl Read for DiesAfter {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.data.read(buf)? {
            0 => Err(io::Error::new(io::ErrorKind::BrokenPipe, "the writer died")),
            n => Ok(n),
        }
    }
}

#[tokio::test]
async fn a_read_error_keeps_the_parts_sent_and_the_same_stream_resumes() {
    let server = mock().await;
    let store = shared_store();
    let bytes = data(12 * PART as usize + 7, 9);
    let uploader = builder(&server.endpoint())
        .store(store.clone())
        .scheduler(Parallel::new(2))
        .build()
        .unwrap();
    let dying = StreamSource::from_read(
        DiesAfter {
            data: io::Cursor::new(bytes[..6 * PART as usize + 100].to_vec()),
        },
        "test-stream",
    );
    let err = uploader
        .upload(UploadRequest::stream(dying, BUCKET, "dies").part_size(PART))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Source, "{err}");
    assert!(err.to_string().contains("run the upload again"), "{err}");
    assert_eq!(open_uploads(&server.endpoint(), "dies").await.len(), 1);

    let outcome = upload_stream(&uploader, &bytes, "dies").await.unwrap();
    assert!(outcome.resumed);
    assert!(outcome.bytes_reused >= 4 * PART, "{outcome:?}");
    assert_object_is(&client(&server.endpoint()), "dies", &bytes).await;
}

#[test]
fn the_blocking_api_uploads_any_read() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(mock());
    let bytes = data(5 * PART as usize + 1, 12);
    let uploader = ossup::blocking::Uploader::builder()
        .endpoint(&server.endpoint())
        .unwrap()
        .credentials(credentials())
        .region("cn-hangzhou")
        .store(MemoryStore::new())
        .build()
        .unwrap();
    let stream = StreamSource::from_read(io::Cursor::new(bytes.clone()), "blocking");
    let outcome = uploader
        .upload(UploadRequest::stream(stream, BUCKET, "blocking").part_size(PART))
        .unwrap();
    assert_eq!(outcome.size, bytes.len() as u64);
    runtime.block_on(assert_object_is(
        &client(&server.endpoint()),
        "blocking",
        &bytes,
    ));
}

#[tokio::test]
async fn a_stream_whose_checkpoint_was_lost_adopts_its_upload_from_the_server() {
    let server = mock().await;
    let bytes = data(12 * PART as usize + 5, 21);
    let crash = CancellationToken::new();
    let faulty = Faulty::new();
    faulty.rule(Rule::new(Api::UploadPart, Action::ForwardThenCrash(crash.clone())).skip(6));
    let first = builder_with(&server.endpoint(), faulty)
        .store(shared_store())
        .scheduler(Parallel::new(2))
        .build()
        .unwrap();
    let stream = StreamSource::new(io::Cursor::new(bytes.clone()), "test-stream");
    first
        .upload(
            UploadRequest::stream(stream, BUCKET, "adopted")
                .part_size(PART)
                .cancel(crash),
        )
        .await
        .unwrap_err();

    // Another host, or a wiped state directory: no checkpoint.
    let uploader = builder(&server.endpoint())
        .store(shared_store())
        .scheduler(Parallel::new(2))
        .build()
        .unwrap();
    let stream = StreamSource::new(io::Cursor::new(bytes.clone()), "test-stream");
    let outcome = uploader
        .upload(
            UploadRequest::stream(stream, BUCKET, "adopted")
                .part_size(PART)
                .resume_from_server(true),
        )
        .await
        .unwrap();
    assert!(outcome.resumed);
    assert!(outcome.bytes_reused >= 6 * PART, "{outcome:?}");
    assert!(
        outcome.notices.iter().any(|n| matches!(
            n,
            Notice::UploadAdopted { parts_kept, .. } if *parts_kept >= 6
        )),
        "{:?}",
        outcome.notices
    );
    assert_object_is(&client(&server.endpoint()), "adopted", &bytes).await;
    assert!(open_uploads(&server.endpoint(), "adopted").await.is_empty());
}

/// Hands over at most 7,000 bytes per read, as a pipe hands over what its writer has written so
/// far: the parts are filled (and hashed) across many reads that do not line up with anything.
struct Trickle(io::Cursor<Vec<u8>>);

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(7000);
        self.0.read(&mut buf[..n])
    }
}

fn trickle(bytes: &[u8]) -> StreamSource {
    StreamSource::from_read(Trickle(io::Cursor::new(bytes.to_vec())), "test-stream")
}

#[tokio::test]
async fn a_blocking_reader_fills_the_parts_in_place_at_every_length() {
    let server = mock().await;
    let uploader = builder(&server.endpoint())
        .scheduler(Parallel::new(3))
        .build()
        .unwrap();
    let part = PART as usize;
    for (len, parts) in [(0, 0), (part, 0), (part + 1, 2), (3 * part + 17, 4)] {
        let bytes = data(len, len as u64 + 100);
        let key = format!("blocking-{len}");
        let outcome = uploader
            .upload(UploadRequest::stream(trickle(&bytes), BUCKET, &key).part_size(PART))
            .await
            .unwrap();
        assert_eq!((outcome.size, outcome.parts), (len as u64, parts), "{len}");
        assert!(outcome.peak_part_buffers <= 4, "{outcome:?}");
        assert_object_is(&client(&server.endpoint()), &key, &bytes).await;
    }
}

#[tokio::test]
async fn a_blocking_stream_in_crc64_mode_resumes_by_the_md5_of_the_listed_parts() {
    let server = mock().await;
    let store = shared_store();
    let old = data(10 * PART as usize, 6);
    let mut new = old.clone();
    new[3 * PART as usize + 10] ^= 0xff; // part 4 differs
    let crash = CancellationToken::new();
    let faulty = Faulty::new();
    faulty.rule(Rule::new(Api::UploadPart, Action::ForwardThenCrash(crash.clone())).skip(6));
    let first = builder_with(&server.endpoint(), faulty)
        .store(store.clone())
        .scheduler(Parallel::new(2))
        .build()
        .unwrap();
    let request = |bytes: &[u8]| {
        UploadRequest::stream(trickle(bytes), BUCKET, "crc64")
            .part_size(PART)
            .checksum_mode(ChecksumMode::Crc64Only)
    };
    first.upload(request(&old).cancel(crash)).await.unwrap_err();
    let uploader = builder(&server.endpoint())
        .store(store)
        .scheduler(Parallel::new(2))
        .build()
        .unwrap();
    // The upload sends no MD5, but the parts the server lists are judged by theirs.
    let outcome = uploader.upload(request(&new)).await.unwrap();
    assert!(outcome.resumed, "{outcome:?}");
    assert!(outcome.bytes_reused >= 3 * PART, "{outcome:?}");
    assert!(
        outcome
            .notices
            .iter()
            .any(|n| matches!(n, Notice::StreamDiffers { part: 4, .. })),
        "{:?}",
        outcome.notices
    );
    assert_object_is(&client(&server.endpoint()), "crc64", &new).await;
    assert!(open_uploads(&server.endpoint(), "crc64").await.is_empty());
}
