//! A scripted in-memory OSS for the phases' tests: a [`Transport`] that answers each request with the
//! next reply of its script and keeps every request it was sent, so a test can say exactly what
//! went out and in which order.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ossup_proto::ErrorCode;
use ossup_proto::checksum::{crc64, md5};
use ossup_proto::etag::part_etag;
use ossup_proto::limits::MIN_PART_SIZE;
use ossup_sign::{Credentials, V4Signer};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use super::cancel::CancelState;
use super::context::UploadContext;
use super::{UploadRequest, Uploader};
use crate::{
    BytesSource, Checkpoint, Error, MemoryStore, PartRecord, ResponseBody, RetryConfig, Sequential,
    Transport,
};

/// The part size of the scripted uploads: the smallest OSS accepts.
pub(super) const PART: u64 = MIN_PART_SIZE;

/// One scripted answer.
#[derive(Debug, Clone)]
pub(super) struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
    /// How many bytes of the request's body a trickling server takes before it answers (all of
    /// them unless set).
    takes: Option<u64>,
}

impl Reply {
    /// An empty answer with `status`.
    pub(super) fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            takes: None,
        }
    }

    /// The answer, given once a trickling server has taken only `bytes` of the request's body.
    pub(super) fn after_taking(mut self, bytes: u64) -> Self {
        self.takes = Some(bytes);
        self
    }

    /// A 200 carrying the XML document `body`.
    pub(super) fn xml(body: impl Into<String>) -> Self {
        Self {
            body: Bytes::from(body.into()),
            ..Self::status(200)
        }
    }

    /// An OSS error document with `code`.
    pub(super) fn error(status: u16, code: ErrorCode) -> Self {
        let code = code.as_str();
        Self {
            body: Bytes::from(format!(
                "<Error><Code>{code}</Code><Message>scripted</Message><RequestId>R</RequestId><HostId>H</HostId></Error>"
            )),
            ..Self::status(status)
        }
    }

    /// `NoSuchUpload`, as OSS answers for an upload that is gone.
    pub(super) fn no_such_upload() -> Self {
        Self::error(404, ErrorCode::NoSuchUpload)
    }

    /// The answer to an InitiateMultipartUpload creating `upload_id`.
    pub(super) fn initiated(upload_id: &str) -> Self {
        Self::xml(format!(
            "<InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>key</Key><UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>"
        ))
    }

    /// The answer to a ListMultipartUploads listing `uploads` (upload id, `Initiated` time) of the
    /// key.
    pub(super) fn uploads(uploads: &[(&str, &str)]) -> Self {
        let listed: String = uploads
            .iter()
            .map(|(id, initiated)| {
                format!("<Upload><Key>key</Key><UploadId>{id}</UploadId><Initiated>{initiated}</Initiated></Upload>")
            })
            .collect();
        Self::xml(format!(
            "<ListMultipartUploadsResult><Bucket>bucket</Bucket><IsTruncated>false</IsTruncated>{listed}</ListMultipartUploadsResult>"
        ))
    }

    /// The answer to a ListParts of `upload_id` listing `parts` (number, bytes), each with the ETag
    /// and CRC-64 of its bytes.
    pub(super) fn parts(upload_id: &str, parts: &[(u32, &[u8])]) -> Self {
        let listed: String = parts
            .iter()
            .map(|(number, bytes)| {
                format!(
                    "<Part><PartNumber>{number}</PartNumber><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>{}</ETag><HashCrc64ecma>{}</HashCrc64ecma><Size>{}</Size></Part>",
                    part_etag(&md5(bytes)),
                    crc64(bytes),
                    bytes.len()
                )
            })
            .collect();
        Self::xml(format!(
            "<ListPartsResult><Bucket>bucket</Bucket><Key>key</Key><UploadId>{upload_id}</UploadId><IsTruncated>false</IsTruncated>{listed}</ListPartsResult>"
        ))
    }

    /// The answer to a PutObject or UploadPart that stored `bytes`.
    pub(super) fn stored(bytes: &[u8]) -> Self {
        Self::status(200)
            .header("etag", part_etag(&md5(bytes)))
            .header("x-oss-hash-crc64ecma", crc64(bytes).to_string())
    }

    /// The answer to a CompleteMultipartUpload whose object has the CRC-64 `crc`.
    pub(super) fn completed(etag: &str, crc: u64) -> Self {
        Self::xml(format!(
            "<CompleteMultipartUploadResult><Location>l</Location><Bucket>bucket</Bucket><Key>key</Key><ETag>{etag}</ETag></CompleteMultipartUploadResult>"
        ))
        .header("x-oss-hash-crc64ecma", crc.to_string())
    }

    /// The answer to a HeadObject of an object of `size` bytes with the CRC-64 `crc`.
    pub(super) fn head(size: u64, etag: &str, crc: u64) -> Self {
        Self::status(200)
            .header("content-length", size.to_string())
            .header("etag", etag.to_owned())
            .header("x-oss-hash-crc64ecma", crc.to_string())
    }

    /// The answer with one more header.
    pub(super) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// A request as the scripted server saw it.
#[derive(Debug, Clone)]
pub(super) struct Sent {
    /// `METHOD /bucket/key?query`.
    pub(super) line: String,
    /// The request's headers.
    pub(super) headers: http::HeaderMap,
}

/// Answers requests from a script, in order, and keeps them.
#[derive(Debug, Default)]
pub(super) struct Scripted {
    script: Mutex<VecDeque<Reply>>,
    sent: Mutex<Vec<Sent>>,
    trickle: Option<Trickle>,
}

/// How a trickling server takes request bodies: `chunk` bytes every `pause`, counted in the
/// request's [`TransferProgress`](crate::TransferProgress) as a real connection would.
#[derive(Debug, Clone, Copy)]
pub(super) struct Trickle {
    /// Bytes taken at a time.
    pub(super) chunk: u64,
    /// The wait before each chunk.
    pub(super) pause: std::time::Duration,
}

impl Scripted {
    /// A server that answers with `script`, one reply per request.
    pub(super) fn new(script: Vec<Reply>) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(script.into()),
            sent: Mutex::new(Vec::new()),
            trickle: None,
        })
    }

    /// A server that answers with `script` once it has taken each request's body as `trickle`
    /// says.
    pub(super) fn trickling(script: Vec<Reply>, trickle: Trickle) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(script.into()),
            sent: Mutex::new(Vec::new()),
            trickle: Some(trickle),
        })
    }

    /// The requests sent so far, as `METHOD /bucket/key?query` lines.
    pub(super) fn lines(&self) -> Vec<String> {
        self.sent().into_iter().map(|s| s.line).collect()
    }

    /// The requests sent so far.
    pub(super) fn sent(&self) -> Vec<Sent> {
        self.sent.lock().expect("sent lock").clone()
    }

    /// How many replies are left unused.
    pub(super) fn unused(&self) -> usize {
        self.script.lock().expect("script lock").len()
    }
}

#[async_trait::async_trait]
impl Transport for Scripted {
    async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<ResponseBody>, Error> {
        let line = format!(
            "{} {}",
            request.method(),
            request
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
        );
        self.sent.lock().expect("sent lock").push(Sent {
            line: line.clone(),
            headers: request.headers().clone(),
        });
        let reply = self.script.lock().expect("script lock").pop_front();
        let Some(reply) = reply else {
            return Err(Error::network_permanent(format!(
                "the script has no reply left for {line}"
            )));
        };
        if let (Some(trickle), Some(progress)) = (
            self.trickle,
            request.extensions().get::<crate::TransferProgress>(),
        ) {
            let mut left = reply.takes.unwrap_or(request.body().len() as u64);
            while left > 0 {
                tokio::time::sleep(trickle.pause).await;
                let chunk = trickle.chunk.min(left);
                progress.add(chunk);
                left -= chunk;
            }
        }
        let mut response = http::Response::new(ResponseBody::from_bytes(reply.body));
        *response.status_mut() = http::StatusCode::from_u16(reply.status).expect("scripted status");
        for (name, value) in reply.headers {
            response
                .headers_mut()
                .insert(name, value.parse().expect("scripted header value"));
        }
        Ok(response)
    }

    /// Only a trickling server counts the body bytes it takes.
    fn reports_progress(&self) -> bool {
        self.trickle.is_some()
    }
}

/// An uploader talking to `server`, with no retries, sending parts one at a time, checkpointing to
/// `store`.
pub(super) fn uploader(server: &Arc<Scripted>, store: &Arc<MemoryStore>) -> Uploader {
    uploader_retrying(server, store, RetryConfig::default().max_attempts(1))
}

/// An uploader like [`uploader`]'s that retries as `retry` says.
pub(super) fn uploader_retrying(
    server: &Arc<Scripted>,
    store: &Arc<MemoryStore>,
    retry: RetryConfig,
) -> Uploader {
    Uploader::builder()
        .endpoint("http://127.0.0.1:9")
        .expect("loopback endpoint")
        .credentials(Credentials::new("test-ak", "test-sk"))
        .signer(V4Signer::new("cn-hangzhou"))
        .transport(server.clone())
        .retry(retry)
        .store(store.clone())
        .scheduler(Sequential)
        .part_size(PART)
        .build()
        .expect("scripted uploader")
}

/// A request to upload `data` to `bucket`/`key`.
pub(super) fn request(data: &[u8]) -> UploadRequest {
    UploadRequest::new(
        BytesSource::new(data.to_vec(), "scripted-source"),
        "bucket",
        "key",
    )
}

/// `len` random bytes, the same for the same `seed`.
pub(super) fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0; len];
    StdRng::seed_from_u64(seed).fill(&mut bytes[..]);
    bytes
}

/// Bytes `number` (from 1) of `data` cut in [`PART`]-byte parts.
pub(super) fn part_of(data: &[u8], number: u32) -> &[u8] {
    let start = (u64::from(number - 1) * PART) as usize;
    let end = (start + PART as usize).min(data.len());
    &data[start..end]
}

/// The record of part `number` holding `bytes`, as a run that sent it with MD5 saves it.
pub(super) fn record(number: u32, bytes: &[u8]) -> PartRecord {
    let md5 = md5(bytes);
    PartRecord {
        number,
        size: bytes.len() as u64,
        etag: part_etag(&md5),
        md5: Some(md5),
        crc64: crc64(bytes),
    }
}

/// The checkpoint an earlier run of `ctx`'s upload saved with `upload_id` and the records of parts
/// `numbers` of `data`.
pub(super) fn checkpoint(
    ctx: &UploadContext,
    upload_id: &str,
    data: &[u8],
    numbers: &[u32],
) -> Checkpoint {
    let mut checkpoint = Checkpoint::new(
        ctx.identity.clone(),
        upload_id,
        ctx.plan.stamp,
        1,
        ctx.options_digest.clone(),
    );
    for &number in numbers {
        checkpoint
            .parts
            .insert(number, record(number, part_of(data, number)));
    }
    checkpoint
}

/// The context the plan phase makes of `request` with `uploader`.
pub(super) async fn planned(uploader: &Uploader, request: UploadRequest) -> UploadContext {
    let cancel = Arc::new(CancelState::new(&request));
    super::plan::plan(uploader, request, cancel)
        .await
        .expect("the request plans")
}
