//! Shared helpers of the end-to-end tests: an in-process mock server, an uploader pointed at it,
//! seeded test data, and a byte-for-byte check of the stored object.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use oss_mock::{MockConfig, MockServer};
use ossup::{Client, MemoryStore, ProgressEvent, RetryConfig, Uploader, UploaderBuilder};
use ossup_hyper::HyperTransport;
use ossup_proto::checksum::{Crc64, Md5, crc64, md5};
use ossup_sign::{Credentials, V4Signer};
use rand::{RngCore, SeedableRng};

pub mod faults;

pub const BUCKET: &str = "bucket";
pub const PART: u64 = 100 * 1024;

/// A mock server with the test bucket.
pub async fn mock() -> MockServer {
    MockServer::start(MockConfig::default().with_bucket(BUCKET))
        .await
        .expect("mock server starts")
}

/// Retries fast enough for tests.
pub fn fast_retry() -> RetryConfig {
    RetryConfig::default()
        .max_attempts(4)
        .backoff(Duration::from_millis(1), Duration::from_millis(5))
}

/// A builder pointed at `endpoint` with the mock's credentials and the hyper transport.
pub fn builder(endpoint: &str) -> UploaderBuilder {
    Uploader::builder()
        .endpoint(endpoint)
        .expect("endpoint")
        .credentials(Credentials::new("test-ak", "test-sk"))
        .signer(V4Signer::new("cn-hangzhou"))
        .transport(HyperTransport::new())
        .retry(fast_retry())
        .part_size(PART)
}

/// As [`builder`], sending through `transport` (a [`faults::Faulty`], say).
pub fn builder_with(endpoint: &str, transport: impl ossup::Transport + 'static) -> UploaderBuilder {
    builder(endpoint).transport(transport)
}

/// A client pointed at `endpoint`.
pub fn client(endpoint: &str) -> Client {
    Client::builder()
        .endpoint(endpoint)
        .unwrap()
        .credentials(Credentials::new("test-ak", "test-sk"))
        .signer(V4Signer::new("cn-hangzhou"))
        .transport(HyperTransport::new())
        .retry(fast_retry())
        .build()
        .unwrap()
}

/// `len` bytes from a seeded generator.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut buf = vec![0u8; len];
    rng.fill_bytes(&mut buf);
    buf
}

/// Downloads `key` and checks it is `expected`, byte for byte, by MD5 and CRC-64.
pub async fn assert_object_is(client: &Client, key: &str, expected: &[u8]) {
    let mut object = client
        .get_object(BUCKET, key, None)
        .await
        .expect("object readable");
    let mut got_md5 = Md5::new();
    let mut got_crc = Crc64::new();
    let mut len = 0u64;
    while let Some(chunk) = object.body.chunk().await {
        let chunk = chunk.expect("body reads");
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
        .unwrap()
        .expect("object exists");
    assert_eq!(
        head.crc64,
        Some(crc64(expected)),
        "server's CRC-64 of {key}"
    );
}

/// Collects progress events.
#[derive(Clone, Default)]
pub struct Events(pub Arc<Mutex<Vec<ProgressEvent>>>);

impl Events {
    pub fn sink(&self) -> impl Fn(&ProgressEvent) + Send + Sync + 'static {
        let events = self.0.clone();
        move |e: &ProgressEvent| events.lock().unwrap().push(e.clone())
    }

    pub fn all(&self) -> Vec<ProgressEvent> {
        self.0.lock().unwrap().clone()
    }

    /// The `transferred` of every PartDone, in order.
    pub fn transferred(&self) -> Vec<u64> {
        self.all()
            .into_iter()
            .filter_map(|e| match e {
                ProgressEvent::PartDone { transferred, .. } => Some(transferred),
                _ => None,
            })
            .collect()
    }
}

/// A memory store shared between runs of a test.
pub fn shared_store() -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new())
}
