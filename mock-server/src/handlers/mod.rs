//! One handler per API, each turning an authenticated request into a store call and a response.
//!
//! Handlers only see a routed [`RequestContext`]; addressing, fault rules and authentication have
//! already run. Helpers here read the headers several APIs share.

mod bucket;
mod multipart;
mod object;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::request::Parts;
use http_body_util::BodyExt;
use ossup_proto::checksum::parse_content_md5;
use ossup_proto::headers::{
    FORBID_OVERWRITE, META_PREFIX, OBJECT_ACL, SERVER_SIDE_DATA_ENCRYPTION, SERVER_SIDE_ENCRYPTION,
    SSE_KMS_KEY_ID, STORAGE_CLASS, TAGGING, TAGGING_COUNT,
};
use ossup_proto::{Api, ErrorCode, tagging};

use crate::body::RequestBody;
use crate::error::OssError;
use crate::response::{HttpResponse, first_non_xml_char, set_header};
use crate::route::RequestContext;
use crate::service::App;
use crate::storage::{ObjectAttrs, ReceiveError};

pub(crate) use bucket::configured_storage_class;
pub use multipart::MAX_COMPLETE_BODY;
pub(crate) use multipart::listed_parts;

/// Calls the handler of `ctx.api`.
pub(crate) async fn dispatch(
    app: &App,
    ctx: &RequestContext,
    parts: &Parts,
    body: &mut RequestBody,
) -> Result<HttpResponse, OssError> {
    match ctx.api {
        Api::PutBucket => bucket::put_bucket(app, ctx, parts, body).await,
        Api::DeleteBucket => bucket::delete_bucket(app, ctx).await,
        Api::GetBucketInfo => bucket::get_bucket_info(app, ctx).await,
        Api::ListObjects => bucket::list_objects(app, ctx).await,
        Api::GetBucketLocation => bucket::get_bucket_location(app, ctx).await,
        Api::DeleteMultipleObjects => bucket::delete_multiple_objects(app, ctx, parts, body).await,
        Api::ListMultipartUploads => multipart::list_uploads(app, ctx).await,
        Api::InitiateMultipartUpload => multipart::initiate(app, ctx, parts).await,
        Api::UploadPart => multipart::upload_part(app, ctx, parts, body).await,
        Api::ListParts => multipart::list_parts(app, ctx).await,
        Api::CompleteMultipartUpload => multipart::complete(app, ctx, parts, body).await,
        Api::AbortMultipartUpload => multipart::abort(app, ctx).await,
        Api::PutObject => object::put_object(app, ctx, parts, body).await,
        Api::CopyObject => object::copy_object(app, ctx, parts).await,
        Api::GetObject => object::get_object(app, ctx, parts, false).await,
        Api::HeadObject => object::get_object(app, ctx, parts, true).await,
        Api::DeleteObject => object::delete_object(app, ctx).await,
        other => Err(OssError::new(ErrorCode::NotImplemented)
            .message(format!("{other} is not implemented by oss-mock."))),
    }
}

/// Runs a store call on the blocking pool: store calls write and sync small files.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OssError> + Send + 'static,
) -> Result<T, OssError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| OssError::internal("storage task", e))?
}

/// A header as text; bytes outside ASCII are kept as UTF-8 when they are, replaced otherwise.
pub(crate) fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// `Content-MD5`, decoded; a value that is not the base64 of 16 bytes is 400 InvalidDigest.
pub(crate) fn content_md5(headers: &HeaderMap) -> Result<Option<[u8; 16]>, OssError> {
    match header_text(headers, "content-md5") {
        None => Ok(None),
        Some(value) => parse_content_md5(&value).map(Some).ok_or_else(|| {
            OssError::new(ErrorCode::InvalidDigest)
                .message("The Content-MD5 you specified is not valid: it must be the base64 of the 16-byte MD5 of the body.")
                .field("ContentMD5", value)
        }),
    }
}

/// `Content-Length`, when the request declares one.
pub(crate) fn content_length(headers: &HeaderMap) -> Result<Option<u64>, OssError> {
    match header_text(headers, "content-length") {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| {
            OssError::invalid_argument("Content-Length", &v, "Content-Length is not a number.")
        }),
    }
}

/// Fails early with EntityTooLarge when the declared length is over `limit`.
pub(crate) fn check_declared_length(headers: &HeaderMap, limit: u64) -> Result<(), OssError> {
    match content_length(headers)? {
        Some(len) if len > limit => Err(too_large(limit)),
        _ => Ok(()),
    }
}

fn too_large(limit: u64) -> OssError {
    OssError::new(ErrorCode::EntityTooLarge)
        .message(format!(
            "Your proposed upload exceeds the maximum allowed size of {limit} bytes."
        ))
        .field("MaxSizeAllowed", limit.to_string())
}

/// `x-oss-forbid-overwrite: true`.
pub(crate) fn forbid_overwrite(headers: &HeaderMap) -> bool {
    header_text(headers, FORBID_OVERWRITE).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The client's address, for the callback's `${clientIp}`.
pub(crate) fn client_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<crate::callback::PeerAddr>()
        .map(|peer| peer.0.ip())
}

const ACLS: &[&str] = &["private", "public-read", "public-read-write", "default"];
const STORAGE_CLASSES: &[&str] = &[
    "Standard",
    "IA",
    "Archive",
    "ColdArchive",
    "DeepColdArchive",
];

/// `x-oss-object-acl`, checked against the values OSS knows.
pub(crate) fn object_acl(headers: &HeaderMap, name: &str) -> Result<Option<String>, OssError> {
    match header_text(headers, name) {
        None => Ok(None),
        Some(acl) if ACLS.contains(&acl.trim()) => Ok(Some(acl.trim().to_owned())),
        Some(acl) => Err(OssError::invalid_argument(
            name,
            &acl,
            format!("{name} must be one of {}.", ACLS.join(", ")),
        )),
    }
}

/// Checks a storage class name; `None` means Standard.
pub(crate) fn storage_class(value: Option<String>, name: &str) -> Result<String, OssError> {
    match value {
        None => Ok("Standard".to_owned()),
        Some(class) => STORAGE_CLASSES
            .iter()
            .find(|c| c.eq_ignore_ascii_case(class.trim()))
            .map(|c| (*c).to_owned())
            .ok_or_else(|| {
                OssError::invalid_argument(
                    name,
                    &class,
                    format!("{name} must be one of {}.", STORAGE_CLASSES.join(", ")),
                )
            }),
    }
}

/// The headers PutObject and InitiateMultipartUpload store with the object.
pub(crate) fn object_attrs(headers: &HeaderMap) -> Result<ObjectAttrs, OssError> {
    let content_headers = [
        "cache-control",
        "content-disposition",
        "content-encoding",
        "content-language",
        "expires",
    ]
    .into_iter()
    .filter_map(|name| header_text(headers, name).map(|v| (name.to_owned(), v)))
    .collect();
    let user_meta = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with(META_PREFIX))
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let encryption = encryption(headers)?;
    let tags = match header_text(headers, TAGGING) {
        None => Vec::new(),
        Some(value) => tagging::parse(&value).map_err(|e| {
            OssError::invalid_argument(TAGGING, &value, format!("The tagging is invalid: {e}."))
        })?,
    };
    Ok(ObjectAttrs {
        content_type: header_text(headers, "content-type"),
        content_headers,
        user_meta,
        acl: object_acl(headers, OBJECT_ACL)?,
        storage_class: storage_class(header_text(headers, STORAGE_CLASS), STORAGE_CLASS)?,
        server_side_encryption: encryption.algorithm,
        sse_kms_key_id: encryption.kms_key_id,
        sse_data_encryption: encryption.data_encryption,
        tags,
    })
}

/// What a request's server-side encryption headers ask for.
struct Encryption {
    algorithm: Option<String>,
    kms_key_id: Option<String>,
    data_encryption: Option<String>,
}

/// The server-side encryption headers, checked as OSS does: a known algorithm, and a key id or
/// data encryption only with KMS.
fn encryption(headers: &HeaderMap) -> Result<Encryption, OssError> {
    let sse = match header_text(headers, SERVER_SIDE_ENCRYPTION) {
        None => None,
        Some(value) if SSE_ALGORITHMS.contains(&value.trim()) => Some(value.trim().to_owned()),
        Some(value) => {
            return Err(OssError::invalid_argument(
                SERVER_SIDE_ENCRYPTION,
                &value,
                format!(
                    "{SERVER_SIDE_ENCRYPTION} must be one of {}.",
                    SSE_ALGORITHMS.join(", ")
                ),
            ));
        }
    };
    let kms = sse.as_deref() == Some("KMS");
    let key_id = header_text(headers, SSE_KMS_KEY_ID);
    if let Some(key_id) = &key_id
        && !kms
    {
        return Err(OssError::invalid_argument(
            SSE_KMS_KEY_ID,
            key_id,
            format!("{SSE_KMS_KEY_ID} is only valid with {SERVER_SIDE_ENCRYPTION}: KMS."),
        ));
    }
    let data = header_text(headers, SERVER_SIDE_DATA_ENCRYPTION);
    if let Some(data) = &data
        && (!kms || data.trim() != "SM4")
    {
        return Err(OssError::invalid_argument(
            SERVER_SIDE_DATA_ENCRYPTION,
            data,
            format!(
                "{SERVER_SIDE_DATA_ENCRYPTION} must be SM4, and is only valid with {SERVER_SIDE_ENCRYPTION}: KMS."
            ),
        ));
    }
    Ok(Encryption {
        algorithm: sse,
        kms_key_id: key_id,
        data_encryption: data.map(|d| d.trim().to_owned()),
    })
}

/// The server-side encryption algorithms OSS knows.
const SSE_ALGORITHMS: [&str; 3] = ["AES256", "KMS", "SM4"];

/// Adds the encryption headers OSS returns for an object stored encrypted.
pub(crate) fn set_encryption_headers(response: &mut HttpResponse, attrs: &ObjectAttrs) {
    for (name, value) in [
        (SERVER_SIDE_ENCRYPTION, &attrs.server_side_encryption),
        (SSE_KMS_KEY_ID, &attrs.sse_kms_key_id),
        (SERVER_SIDE_DATA_ENCRYPTION, &attrs.sse_data_encryption),
    ] {
        if let Some(value) = value {
            set_header(response, name, value);
        }
    }
}

/// Adds `x-oss-tagging-count` for a tagged object: OSS reports how many tags, not which.
pub(crate) fn set_tagging_count(response: &mut HttpResponse, attrs: &ObjectAttrs) {
    if !attrs.tags.is_empty() {
        set_header(response, TAGGING_COUNT, &attrs.tags.len().to_string());
    }
}

/// The OSS error for a body that could not be received.
pub(crate) fn receive_error(err: ReceiveError) -> OssError {
    match err {
        ReceiveError::TooLarge { limit } => too_large(limit),
        ReceiveError::Incomplete(why) => OssError::new(ErrorCode::IncompleteBody).message(format!(
            "You did not provide the number of bytes specified by the Content-Length HTTP header ({why})."
        )),
        ReceiveError::Io(e) => OssError::internal("writing the request body", e),
    }
}

/// Reads a small body (an XML document) whole, refusing more than `limit` bytes.
pub(crate) async fn read_small_body(
    body: &mut RequestBody,
    limit: usize,
) -> Result<Result<Bytes, usize>, OssError> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            OssError::new(ErrorCode::IncompleteBody)
                .message(format!("The request body ended early: {e}."))
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Ok(Err(buf.len() + data.len()));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Ok(buf.freeze()))
}

/// How deep the elements of a request's XML document may nest. The documents the mock reads
/// (`CompleteMultipartUpload`, `CreateBucketConfiguration`) are three levels deep; the bound keeps a
/// document of a million nested elements from costing more than reading it.
pub(crate) const MAX_XML_DEPTH: usize = 16;

/// Reads a request body as the XML `document` (its root element's name): UTF-8, nested no deeper
/// than [`MAX_XML_DEPTH`], and that document; `400 MalformedXML` saying what was wrong otherwise.
pub(crate) fn xml_document<T: serde::de::DeserializeOwned>(
    body: &[u8],
    document: &'static str,
) -> Result<T, OssError> {
    let text =
        std::str::from_utf8(body).map_err(|_| OssError::malformed_xml("the body is not UTF-8"))?;
    check_xml_depth(text)?;
    ossup_proto::xml::from_xml(document, text).map_err(OssError::malformed_xml)
}

/// `400 MalformedXML` when the elements of `text` nest deeper than [`MAX_XML_DEPTH`], checked by
/// a flat scan before the document is deserialized. Syntax errors are left to the parser, which
/// names them.
pub(crate) fn check_xml_depth(text: &str) -> Result<(), OssError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut depth = 0usize;
    loop {
        match reader.read_event() {
            Ok(Event::Start(_)) => {
                depth += 1;
                if depth > MAX_XML_DEPTH {
                    return Err(OssError::malformed_xml(format_args!(
                        "its elements nest more than {MAX_XML_DEPTH} deep"
                    )));
                }
            }
            Ok(Event::End(_)) => depth = depth.saturating_sub(1),
            Ok(Event::Eof) | Err(_) => return Ok(()),
            Ok(_) => {}
        }
    }
}

/// Parses a count parameter (`max-parts`, `max-uploads`, `max-keys`): `default` when absent or
/// empty, 400 InvalidArgument when not a number in `1..=max`.
pub(crate) fn count_param(
    ctx: &RequestContext,
    name: &str,
    default: u32,
    max: u32,
) -> Result<usize, OssError> {
    match ctx.query(name).map(str::trim) {
        None | Some("") => Ok(default as usize),
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n as usize),
            _ => Err(OssError::invalid_argument(
                name,
                raw,
                format!("{name} must be an integer between 1 and {max}."),
            )),
        },
    }
}

/// Refuses, with `400 InvalidObjectName`, a key that would make the answers naming it ill-formed:
/// one holding a character XML 1.0 cannot carry (NUL and the other C0 controls but tab and line
/// feed; a carriage return, which a parser reads back as a line feed; U+FFFE, U+FFFF). OSS stores
/// such keys and its listings then need `encoding-type=url`; the mock refuses them when they are
/// written, so every listing it answers is well formed. Checked by the APIs that create a key
/// (PutObject, InitiateMultipartUpload); other APIs simply find no such key.
pub(crate) fn check_key_for_write(key: &str) -> Result<(), OssError> {
    match first_non_xml_char(key) {
        None => Ok(()),
        Some(c) => Err(OssError::new(ErrorCode::InvalidObjectName)
            .message(format!(
                "The specified object is not valid: the key holds the control character U+{:04X}, which XML 1.0 listings cannot carry; oss-mock refuses such keys.",
                u32::from(c)
            ))
            .field("ObjectName", key)),
    }
}

/// A query value a listing echoes in its XML (`prefix`, `marker`, …): `400 InvalidArgument` when it
/// holds a character XML 1.0 cannot carry and the answer is not URL-encoded, since the answer would be
/// ill-formed.
pub(crate) fn listed_param(
    ctx: &RequestContext,
    name: &str,
    url_encoded: bool,
) -> Result<String, OssError> {
    let value = ctx.query(name).unwrap_or_default();
    match first_non_xml_char(value) {
        Some(c) if !url_encoded => Err(OssError::invalid_argument(
            name,
            value,
            format!(
                "{name} holds the control character U+{:04X}, which an XML answer cannot carry; ask with encoding-type=url.",
                u32::from(c)
            ),
        )),
        _ => Ok(value.to_owned()),
    }
}

/// Whether the request asked for `encoding-type=url`.
pub(crate) fn url_encoding(ctx: &RequestContext) -> Result<bool, OssError> {
    match ctx.query("encoding-type") {
        None | Some("") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("url") => Ok(true),
        Some(v) => Err(OssError::invalid_argument(
            "encoding-type",
            v,
            "encoding-type must be url.",
        )),
    }
}
