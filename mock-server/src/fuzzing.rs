//! Entry points for the fuzz targets in `fuzz/`: each runs one of the server's input parsers as a
//! request meets it, and answers what the client would be sent. Not a stable API (hidden from the
//! docs); it follows the parsers it reaches.

use std::sync::Arc;
use std::time::SystemTime;

use http::request::Parts;
use ossup_proto::{Api, ErrorCode};
use ossup_sign::Verified;

use crate::auth::{Authenticator, StsCredential, StsRegistry};
use crate::error::OssError;
use crate::route::{self, Addressing};

/// The request id stamped on every refusal made here.
pub const REQUEST_ID: &str = "FUZZ0000000000000000000";

/// An error answer, as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The error code.
    pub code: ErrorCode,
    /// The HTTP status.
    pub status: u16,
    /// The `<Error>` document the client receives.
    pub document: String,
}

impl Refusal {
    fn new(err: &OssError, host_id: &str) -> Self {
        Self {
            code: err.code,
            status: err.status().as_u16(),
            document: err.document(REQUEST_ID, host_id).to_xml(),
        }
    }
}

/// What routing made of a request: the API, bucket, key and query a handler acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// The API the request calls.
    pub api: Api,
    /// The bucket, a valid bucket name.
    pub bucket: String,
    /// The decoded object key, for object-level APIs.
    pub key: Option<String>,
    /// The decoded query parameters, in request order.
    pub query: Vec<(String, String)>,
    /// Whether the bucket came from the `Host` header.
    pub virtual_hosted: bool,
}

/// Routes a request as the server does, under the base domain `domain`.
pub fn route(parts: &Parts, domain: &str) -> Result<Routed, Refusal> {
    let host_id = route::request_host(parts);
    let ctx = route::route(parts, domain, REQUEST_ID.to_owned(), host_id.clone())
        .map_err(|e| Refusal::new(&e, &host_id))?;
    Ok(Routed {
        api: ctx.api,
        virtual_hosted: ctx.addressing == Addressing::VirtualHosted,
        bucket: ctx.bucket,
        key: ctx.key,
        query: ctx.query,
    })
}

/// Routes and then authenticates a request as the server does, as of `now`, with the permanent
/// `keys` (id, secret), the temporary credentials `sts` and the server's `region`.
pub fn authenticate(
    parts: &Parts,
    domain: &str,
    keys: &[(String, String)],
    sts: &[StsCredential],
    region: &str,
    now: SystemTime,
) -> Result<Verified, Refusal> {
    let host_id = route::request_host(parts);
    let ctx = route::route(parts, domain, REQUEST_ID.to_owned(), host_id.clone())
        .map_err(|e| Refusal::new(&e, &host_id))?;
    Authenticator::new(keys, Arc::new(StsRegistry::new(sts)), region)
        .authenticate(&ctx, &parts.headers, now)
        .map_err(|e| Refusal::new(&e, &host_id))
}

/// The parts a CompleteMultipartUpload body lists, `(part number, ETag)`, in order.
pub fn complete_body(body: &[u8]) -> Result<Vec<(u32, String)>, Refusal> {
    crate::handlers::listed_parts(body).map_err(|e| Refusal::new(&e, "localhost"))
}

/// The storage class a PutBucket body names, if any.
pub fn bucket_configuration(body: &[u8]) -> Result<Option<String>, Refusal> {
    crate::handlers::configured_storage_class(body).map_err(|e| Refusal::new(&e, "localhost"))
}
