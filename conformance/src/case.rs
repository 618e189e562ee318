//! A case: a name, the API it exercises, what it checks, and an async function over a [`Ctx`].
//!
//! The [`Ctx`] gives a case its own key prefix inside the run's prefix, a client, deterministic test
//! data, and helpers for the common steps; everything those helpers create is recorded, and the runner
//! removes it after the case, passed or not, so a case can run against a shared bucket.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use bytes::Bytes;
use ossup_proto::Api;
use ossup_proto::checksum;
use ossup_proto::xml::{CompleteMultipartUpload, CompletePart, InitiateMultipartUploadResult};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::check::{CaseError, CaseResult};
use crate::client::{Client, Request, Response};
use crate::target::{Target, TargetKind, TemporaryCredentials};

/// The future a case's function returns.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = CaseResult> + Send + 'a>>;

/// What a case needs from the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Works inside the target's bucket, under its own prefix.
    SharedBucket,
    /// Creates and deletes buckets of its own; skipped on a remote endpoint, where it would create real
    /// buckets.
    OwnBuckets,
}

/// One conformance case.
#[derive(Clone, Copy)]
pub struct Case {
    /// A unique name that says what behaviour is proven.
    pub name: &'static str,
    /// The API it exercises first of all.
    pub api: Api,
    /// What it checks, in a few words.
    pub checks: &'static str,
    /// What it needs from the target.
    pub needs: Needs,
    /// The case itself.
    pub run: for<'a> fn(&'a Ctx) -> CaseFuture<'a>,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case")
            .field("name", &self.name)
            .field("api", &self.api)
            .field("needs", &self.needs)
            .finish_non_exhaustive()
    }
}

/// Registers an `async fn(&Ctx) -> CaseResult` as a [`Case`].
///
/// `case!(fn_name, Api::X, "what it checks")` for a case in the shared bucket;
/// `case!(own_buckets fn_name, Api::X, "what it checks")` for one that creates buckets.
#[macro_export]
macro_rules! case {
    ($f:ident, $api:expr, $checks:expr) => {
        $crate::case::Case {
            name: stringify!($f),
            api: $api,
            checks: $checks,
            needs: $crate::case::Needs::SharedBucket,
            run: |ctx| Box::pin($f(ctx)),
        }
    };
    (own_buckets $f:ident, $api:expr, $checks:expr) => {
        $crate::case::Case {
            name: stringify!($f),
            api: $api,
            checks: $checks,
            needs: $crate::case::Needs::OwnBuckets,
            run: |ctx| Box::pin($f(ctx)),
        }
    };
}

/// What a case created, to be removed after it.
#[derive(Debug, Default)]
pub(crate) struct Created {
    pub(crate) uploads: Vec<(String, String, String)>,
    pub(crate) objects: Vec<(String, String)>,
    pub(crate) buckets: Vec<String>,
}

/// A part as UploadPart acknowledged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    /// The part number.
    pub number: u32,
    /// The `ETag` header.
    pub etag: String,
    /// The `x-oss-hash-crc64ecma` header.
    pub crc64: u64,
    /// The part's size.
    pub size: u64,
}

/// What a case works with.
pub struct Ctx {
    client: Client,
    bucket: String,
    kind: TargetKind,
    region: Option<String>,
    temporary: Option<TemporaryCredentials>,
    prefix: String,
    run_id: String,
    seed: u64,
    draws: Mutex<u64>,
    pub(crate) created: Mutex<Created>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// The context of case `case_name` in the run whose keys start with `run_prefix`.
    pub fn new(target: &Target, run_prefix: &str, case_name: &str) -> Self {
        Self {
            client: target.client(),
            bucket: target.bucket().to_owned(),
            kind: target.kind(),
            region: target.region().map(str::to_owned),
            temporary: target.temporary_credentials().cloned(),
            prefix: format!("{run_prefix}/{case_name}/"),
            run_id: run_prefix
                .rsplit('/')
                .next()
                .unwrap_or(run_prefix)
                .to_owned(),
            seed: fnv1a(case_name.as_bytes()),
            draws: Mutex::new(0),
            created: Mutex::default(),
        }
    }

    /// The client, configured with the target's defaults.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The bucket the case works in.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Which kind of target this is.
    pub fn kind(&self) -> TargetKind {
        self.kind
    }

    /// Skips the case unless V4 can be signed for this target.
    pub fn require_region(&self) -> Result<&str, CaseError> {
        self.region.as_deref().ok_or_else(|| {
            CaseError::skipped("no region known for V4 signing; set OSS_REGION (e.g. cn-hangzhou)")
        })
    }

    /// Skips the case unless the target has temporary (STS) credentials for it.
    pub fn require_sts(&self) -> Result<&TemporaryCredentials, CaseError> {
        self.temporary.as_ref().ok_or_else(|| {
            CaseError::skipped(format!(
                "no temporary credentials; set {} (and {} for the expired-token case) to ID:SECRET:TOKEN",
                crate::target::ENV_STS,
                crate::target::ENV_STS_EXPIRED
            ))
        })
    }

    /// This case's key prefix (ends with `/`); every key it writes starts with it.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A key under this case's prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// A bucket name no other case or run uses: lowercase letters, digits and `-`, at most 63 long.
    pub fn bucket_name(&self, tag: &str) -> String {
        let raw = format!("oc-{}-{:08x}-{tag}", self.run_id, self.seed as u32);
        let mut name: String = raw
            .chars()
            .map(|c| match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9') => c,
                _ => '-',
            })
            .take(63)
            .collect();
        while name.ends_with('-') {
            name.pop();
        }
        name
    }

    /// `len` bytes of test data, the same on every run of this case (seeded by the case name).
    pub fn data(&self, len: usize) -> Bytes {
        let draw = {
            let mut draws = self.draws.lock().expect("never poisoned");
            *draws += 1;
            *draws
        };
        let mut rng =
            ChaCha8Rng::seed_from_u64(self.seed ^ draw.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut out = vec![0u8; len];
        rng.fill_bytes(&mut out);
        Bytes::from(out)
    }

    /// Records an object to delete after the case.
    pub fn track_object(&self, bucket: &str, key: &str) {
        let mut created = self.created.lock().expect("never poisoned");
        let entry = (bucket.to_owned(), key.to_owned());
        if !created.objects.contains(&entry) {
            created.objects.push(entry);
        }
    }

    /// Records an upload to abort after the case.
    pub fn track_upload(&self, bucket: &str, key: &str, upload_id: &str) {
        self.created.lock().expect("never poisoned").uploads.push((
            bucket.to_owned(),
            key.to_owned(),
            upload_id.to_owned(),
        ));
    }

    /// Records a bucket to delete after the case (after its objects and uploads).
    pub fn track_bucket(&self, bucket: &str) {
        self.created
            .lock()
            .expect("never poisoned")
            .buckets
            .push(bucket.to_owned());
    }

    /// Sends a request with the case's client.
    pub async fn send(&self, request: Request) -> Result<Response, CaseError> {
        Ok(self.client.send(request).await?)
    }

    /// InitiateMultipartUpload of `key` in the case's bucket; checks the answer names the bucket and key.
    pub async fn initiate(&self, key: &str) -> Result<String, CaseError> {
        self.initiate_in(&self.bucket, key).await
    }

    /// InitiateMultipartUpload of `key` in `bucket`.
    pub async fn initiate_in(&self, bucket: &str, key: &str) -> Result<String, CaseError> {
        let response = self
            .send(Request::post(Some(bucket), Some(key)).query("uploads", ""))
            .await?;
        response.expect_status(200)?;
        let result: InitiateMultipartUploadResult =
            response.xml("InitiateMultipartUploadResult")?;
        crate::ensure_eq!(result.bucket, bucket, "<Bucket> of {}", response.what);
        crate::ensure_eq!(result.key, key, "<Key> of {}", response.what);
        crate::ensure!(
            !result.upload_id.is_empty(),
            "{}: empty <UploadId>",
            response.what
        );
        self.track_upload(bucket, key, &result.upload_id);
        Ok(result.upload_id)
    }

    /// UploadPart of `body` as part `number`; checks 200, the ETag (quoted uppercase MD5) and the CRC-64.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: &Bytes,
    ) -> Result<UploadedPart, CaseError> {
        let response = self
            .send(upload_part_request(
                &self.bucket,
                key,
                upload_id,
                number,
                body.clone(),
            ))
            .await?;
        response.expect_status(200)?;
        let expected_etag = ossup_proto::etag::part_etag(&checksum::md5(body));
        response.expect_header_eq("etag", &expected_etag)?;
        let crc64 = checksum::crc64(body);
        response.expect_crc64(crc64)?;
        Ok(UploadedPart {
            number,
            etag: expected_etag,
            crc64,
            size: body.len() as u64,
        })
    }

    /// PutObject of `body` at `key` in the case's bucket; checks 200, ETag and CRC-64.
    pub async fn put_object(&self, key: &str, body: &Bytes) -> Result<Response, CaseError> {
        self.track_object(&self.bucket, key);
        let response = self
            .send(Request::put(Some(&self.bucket), Some(key)).body(body.clone()))
            .await?;
        response.expect_status(200)?;
        response.expect_header_eq("etag", &ossup_proto::etag::part_etag(&checksum::md5(body)))?;
        response.expect_crc64(checksum::crc64(body))?;
        Ok(response)
    }

    /// GetObject of `key`; checks 200 and that the body is `expected`.
    pub async fn expect_object(&self, key: &str, expected: &[u8]) -> Result<Response, CaseError> {
        let response = self
            .send(Request::get(Some(&self.bucket), Some(key)))
            .await?;
        response.expect_status(200)?;
        expect_same_bytes(&response, expected)?;
        Ok(response)
    }

    /// CompleteMultipartUpload with these parts, in the order given; the answer is not checked.
    pub async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, &str)],
    ) -> Result<Response, CaseError> {
        self.track_object(&self.bucket, key);
        self.send(
            Request::post(Some(&self.bucket), Some(key))
                .query("uploadId", upload_id)
                .body(complete_body(parts)),
        )
        .await
    }
}

/// An UploadPart request.
pub fn upload_part_request(
    bucket: &str,
    key: &str,
    upload_id: &str,
    number: u32,
    body: Bytes,
) -> Request {
    Request::put(Some(bucket), Some(key))
        .query("partNumber", &number.to_string())
        .query("uploadId", upload_id)
        .body(body)
}

/// The CompleteMultipartUpload body naming these parts, as the official SDKs write it.
pub fn complete_body(parts: &[(u32, &str)]) -> String {
    let document = CompleteMultipartUpload {
        parts: parts
            .iter()
            .map(|(number, etag)| CompletePart {
                part_number: *number,
                etag: (*etag).to_owned(),
            })
            .collect(),
    };
    ossup_proto::xml::to_xml(&document)
}

/// Fails unless the response body is exactly `expected`; the message says where they first differ.
pub fn expect_same_bytes(response: &Response, expected: &[u8]) -> CaseResult {
    let actual = &response.body[..];
    if actual == expected {
        return Ok(());
    }
    let first_difference = actual
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(actual.len().min(expected.len()));
    Err(CaseError::failed(format!(
        "body of {}: {} bytes, expected {} bytes; first difference at offset {first_difference}",
        response.what,
        actual.len(),
        expected.len()
    )))
}

/// FNV-1a: a stable 64-bit seed from a case name (std's hasher may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_body_lists_parts_in_the_given_order() {
        let body = complete_body(&[(2, "\"B\""), (1, "\"A\"")]);
        let parsed: CompleteMultipartUpload =
            ossup_proto::xml::from_xml("CompleteMultipartUpload", &body).unwrap();
        let numbers: Vec<u32> = parsed.parts.iter().map(|p| p.part_number).collect();
        assert_eq!(numbers, [2, 1]);
        assert_eq!(parsed.parts[1].etag, "\"A\"");
    }

    #[test]
    fn seeds_are_stable_across_runs() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
