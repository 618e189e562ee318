//! What the workspace's tests share, so no test file carries its own copy: the mock OSS server
//! started in this process on a free loopback port, an uploader and a client signed for it, seeded
//! random data, and the check that an object holds exactly the expected bytes.
//!
//! A dev-dependency only (`publish = false`). The mock's own tests do not use it: it depends on the
//! engine, and the mock must stay testable without the engine it is the counterpart of.

use std::time::Duration;

pub mod postgres;
pub mod records;

use oss_mock::{MockConfig, MockServer};
use ossup::{Client, Credentials, RetryConfig, Uploader, UploaderBuilder, V4Signer};
use ossup_proto::checksum::{Crc64, Md5, crc64, md5};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The bucket every test server starts with.
pub const BUCKET: &str = "bucket";
/// The access key id the mock accepts by default.
pub const ACCESS_KEY_ID: &str = "test-ak";
/// The secret of [`ACCESS_KEY_ID`].
pub const ACCESS_KEY_SECRET: &str = "test-sk";
/// The region the V4 signatures are scoped to.
pub const REGION: &str = "cn-hangzhou";
/// The part size of the test uploads: the smallest OSS takes, so a few hundred KiB make several parts.
pub const PART: u64 = 100 * 1024;

/// Starts a mock server with [`BUCKET`] on 127.0.0.1, on a port the system picks.
pub async fn mock() -> MockServer {
    mock_with(MockConfig::default()).await
}

/// As [`mock`], with `config` (faults, STS, a data directory…) plus [`BUCKET`].
pub async fn mock_with(config: MockConfig) -> MockServer {
    MockServer::start(config.with_bucket(BUCKET))
        .await
        .expect("the in-process mock server starts on a loopback port")
}

/// Retries fast enough for tests: four attempts, backoff between 1 and 5 ms.
pub fn fast_retry() -> RetryConfig {
    RetryConfig::default()
        .max_attempts(4)
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
}

/// The test credentials, [`ACCESS_KEY_ID`] and [`ACCESS_KEY_SECRET`].
pub fn credentials() -> Credentials {
    Credentials::new(ACCESS_KEY_ID, ACCESS_KEY_SECRET)
}

/// An uploader builder pointed at `endpoint`: the test credentials, V4 signatures for [`REGION`],
/// the default transport, [`fast_retry`] and parts of [`PART`] bytes.
pub fn builder(endpoint: &str) -> UploaderBuilder {
    Uploader::builder()
        .endpoint(endpoint)
        .expect("the test endpoint is a valid URL")
        .credentials(credentials())
        .signer(V4Signer::new(REGION))
        .retry(fast_retry())
        .part_size(PART)
}

/// A client pointed at `endpoint`, signed as [`builder`] signs, with the default transport.
pub fn client(endpoint: &str) -> Client {
    Client::builder()
        .endpoint(endpoint)
        .expect("the test endpoint is a valid URL")
        .credentials(credentials())
        .signer(V4Signer::new(REGION))
        .retry(fast_retry())
        .build()
        .expect("a client with endpoint, credentials and signer builds")
}

/// `len` bytes from ChaCha8 seeded with `seed`: the same on every run and every machine.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

/// Downloads `key` from [`BUCKET`] and checks it is `expected`, byte for byte: its size, MD5 and
/// CRC-64 as read, and the CRC-64 the server reports for it.
pub async fn assert_object_is(client: &Client, key: &str, expected: &[u8]) {
    let mut object = client
        .get_object(BUCKET, key, None)
        .await
        .unwrap_or_else(|e| panic!("GetObject of {key} fails: {e}"));
    let mut got_md5 = Md5::new();
    let mut got_crc = Crc64::new();
    let mut len = 0u64;
    while let Some(chunk) = object.body.chunk().await {
        let chunk = chunk.unwrap_or_else(|e| panic!("the body of {key} breaks off: {e}"));
        got_md5.update(&chunk);
        got_crc.update(&chunk);
        len += chunk.len() as u64;
    }
    assert_eq!(
        len,
        expected.len() as u64,
        "object {key} has the wrong size"
    );
    assert_eq!(
        got_md5.finish(),
        md5(expected),
        "object {key} has the wrong MD5"
    );
    assert_eq!(
        got_crc.finish(),
        crc64(expected),
        "object {key} has the wrong CRC-64"
    );
    let head = client
        .head_object(BUCKET, key)
        .await
        .unwrap_or_else(|e| panic!("HeadObject of {key} fails: {e}"))
        .unwrap_or_else(|| panic!("object {key} is missing"));
    assert_eq!(
        head.crc64,
        Some(crc64(expected)),
        "the server's CRC-64 of {key}"
    );
}
