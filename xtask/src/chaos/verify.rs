//! Talking to the mock from the harness: its unsigned control routes (`/_mock/stats`,
//! `/_mock/faults`), and the final checks through the engine's own signed [`ossup::Client`]: the
//! object's bytes, the uploads left open, the checkpoints left behind.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use ossup::{CheckpointStore, Client, FileStore, RetryConfig, Transport, UploadIdentity};
use ossup_hyper::HyperTransport;
use ossup_proto::checksum::{Crc64, Md5};
use ossup_sign::{Credentials, V4Signer};
use ossup_sqlite::SqliteStore;
use serde_json::Value;

use super::mock::BUCKET;
use super::plan::Store;

/// The key pair the mock accepts by default.
pub(crate) const ACCESS_KEY_ID: &str = "test-ak";
/// The secret of [`ACCESS_KEY_ID`].
pub(crate) const ACCESS_KEY_SECRET: &str = "test-sk";
/// The region requests are signed for.
pub(crate) const REGION: &str = "cn-hangzhou";

/// What the source file is: its size and digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Digest {
    /// Bytes.
    pub size: u64,
    /// MD5.
    pub md5: [u8; 16],
    /// CRC-64/XZ, as OSS computes it.
    pub crc64: u64,
}

impl Digest {
    /// The digest of `bytes`.
    pub(crate) fn of(bytes: &[u8]) -> Self {
        let mut md5 = Md5::new();
        let mut crc = Crc64::new();
        md5.update(bytes);
        crc.update(bytes);
        Self {
            size: bytes.len() as u64,
            md5: md5.finish(),
            crc64: crc.finish(),
        }
    }
}

/// The harness's side of the network: a runtime, a transport for control routes, signed clients.
/// The benchmark of link shapes reads the mock's counters with it too.
#[derive(Debug)]
pub(crate) struct Net {
    runtime: tokio::runtime::Runtime,
}

impl Net {
    /// A small runtime of its own, driven from the harness's thread.
    pub(crate) fn new() -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
        Ok(Self { runtime })
    }

    /// `GET /_mock/stats` as JSON.
    pub(crate) fn stats(&self, endpoint: &str) -> Result<Value, String> {
        let body = self.control(endpoint, http::Method::GET, "/_mock/stats")?;
        serde_json::from_slice(&body).map_err(|e| format!("/_mock/stats is not JSON: {e}"))
    }

    /// `DELETE /_mock/faults`.
    pub(crate) fn clear_faults(&self, endpoint: &str) -> Result<(), String> {
        self.control(endpoint, http::Method::DELETE, "/_mock/faults")
            .map(|_| ())
    }

    /// `PUT /_mock/faults` with `rules`, a JSON array in the mock's rule format: replaces every rule.
    pub(crate) fn set_faults(&self, endpoint: &str, rules: &Value) -> Result<(), String> {
        let body = Bytes::from(rules.to_string());
        self.control_with(endpoint, http::Method::PUT, "/_mock/faults", body)
            .map(|_| ())
    }

    fn control(&self, endpoint: &str, method: http::Method, path: &str) -> Result<Bytes, String> {
        self.control_with(endpoint, method, path, Bytes::new())
    }

    fn control_with(
        &self,
        endpoint: &str,
        method: http::Method,
        path: &str,
        body: Bytes,
    ) -> Result<Bytes, String> {
        let what = format!("{method} {endpoint}{path}");
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{endpoint}{path}"))
            .body(body)
            .map_err(|e| format!("{what}: {e}"))?;
        self.runtime.block_on(async {
            // A fresh transport each time: the server may have been killed since the last call,
            // and a pooled connection to the dead process would only fail.
            let call = async {
                let response = HyperTransport::new()
                    .send(request)
                    .await
                    .map_err(|e| format!("{what}: {e}"))?;
                let status = response.status();
                let body = response
                    .into_body()
                    .collect(1 << 20)
                    .await
                    .map_err(|e| format!("{what}: reading the answer: {e}"))?;
                if status.is_success() {
                    Ok(body)
                } else {
                    Err(format!(
                        "{what}: {status}: {}",
                        String::from_utf8_lossy(&body)
                    ))
                }
            };
            tokio::time::timeout(Duration::from_secs(10), call)
                .await
                .unwrap_or_else(|_| Err(format!("{what}: no answer within 10 s")))
        })
    }

    /// Runs `work` to its end on the harness's runtime.
    pub(crate) fn block_on<F: Future>(&self, work: F) -> F::Output {
        self.runtime.block_on(work)
    }

    /// A signed client for the mock at `endpoint`, with quick retries (faults are cleared before it
    /// is used, so a failure is worth knowing fast).
    pub(crate) fn client(&self, endpoint: &str) -> Result<Client, String> {
        let _guard = self.runtime.enter();
        Client::builder()
            .endpoint(endpoint)
            .and_then(|b| {
                b.credentials(Credentials::new(ACCESS_KEY_ID, ACCESS_KEY_SECRET))
                    .signer(V4Signer::new(REGION))
                    .transport(HyperTransport::new())
                    .retry(
                        RetryConfig::default()
                            .max_attempts(4)
                            .backoff(Duration::from_millis(50), Duration::from_millis(500))
                            .response_timeout(Duration::from_secs(30)),
                    )
                    .build()
            })
            .map_err(|e| format!("cannot build a client for {endpoint}: {e}"))
    }

    /// Every final check of one upload.
    pub(super) fn verify(
        &self,
        endpoint: &str,
        key: &str,
        source: &Digest,
        store: Store,
        checkpoints: &Path,
    ) -> Verification {
        let mut found = Verification::default();
        let client = match self.client(endpoint) {
            Ok(client) => client,
            Err(e) => {
                found.failures.push(e);
                return found;
            }
        };
        self.runtime.block_on(async {
            if let Err(e) = check_object(&client, key, source).await {
                found.failures.push(e);
            }
            match client.list_multipart_uploads(BUCKET, Some(key)).await {
                Ok(uploads) => {
                    found.open_uploads = uploads
                        .into_iter()
                        .filter(|u| u.key == key)
                        .map(|u| u.upload_id)
                        .collect();
                }
                Err(e) => found
                    .failures
                    .push(format!("ListMultipartUploads failed: {e}")),
            }
            if let Err(e) = check_no_checkpoint(store, checkpoints).await {
                found.failures.push(e);
            }
        });
        found
    }
}

/// What the final checks found.
#[derive(Debug, Default)]
pub(super) struct Verification {
    /// Each failed check, in words.
    pub failures: Vec<String>,
    /// The multipart uploads still open for the key (there should be none).
    pub open_uploads: Vec<String>,
}

/// GETs the object and compares size, MD5 and CRC-64 with the source's.
pub(crate) async fn check_object(
    client: &Client,
    key: &str,
    source: &Digest,
) -> Result<(), String> {
    let mut object = client
        .get_object(BUCKET, key, None)
        .await
        .map_err(|e| format!("GetObject failed: {e}"))?;
    let mut md5 = Md5::new();
    let mut crc = Crc64::new();
    let mut size = 0u64;
    while let Some(chunk) = object.body.chunk().await {
        let chunk = chunk.map_err(|e| format!("reading the object failed: {e}"))?;
        md5.update(&chunk);
        crc.update(&chunk);
        size += chunk.len() as u64;
    }
    let (md5, crc) = (md5.finish(), crc.finish());
    if size != source.size || md5 != source.md5 || crc != source.crc64 {
        return Err(format!(
            "WRONG OBJECT: {size} bytes, MD5 {}, CRC-64 {crc}; the file has {} bytes, MD5 {}, CRC-64 {}",
            hex(&md5),
            source.size,
            hex(&source.md5),
            source.crc64
        ));
    }
    Ok(())
}

/// The store lists no checkpoint, and a checkpoint directory holds no file at all (no journal, no
/// lock, nothing set aside as corrupt).
async fn check_no_checkpoint(store: Store, location: &Path) -> Result<(), String> {
    let files = checkpoint_files(store, location);
    if !files.is_empty() {
        return Err(format!(
            "checkpoint files left in {}: {}",
            location.display(),
            files.join(", ")
        ));
    }
    let left = list_checkpoints(store, location).await?;
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "checkpoints left behind in {}: {left:?}",
            location.display()
        ))
    }
}

/// The names of the files in a checkpoint directory (none for a database).
pub(super) fn checkpoint_files(store: Store, location: &Path) -> Vec<String> {
    match store {
        Store::Files => std::fs::read_dir(location)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default(),
        Store::Sqlite => Vec::new(),
    }
}

/// The checkpoints the store lists, opened as `ossup` opens it.
pub(crate) async fn list_checkpoints(
    store: Store,
    location: &Path,
) -> Result<Vec<UploadIdentity>, String> {
    let listed = match store {
        Store::Files => {
            FileStore::open(location)
                .map_err(|e| e.to_string())?
                .list()
                .await
        }
        Store::Sqlite => {
            SqliteStore::open(location)
                .await
                .map_err(|e| e.to_string())?
                .list()
                .await
        }
    };
    listed.map_err(|e| format!("cannot list the checkpoints in {}: {e}", location.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
