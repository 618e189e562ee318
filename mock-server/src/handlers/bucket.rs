//! PutBucket, DeleteBucket, GetBucketInfo, GetBucketLocation, ListObjects and ListObjectsV2, and
//! DeleteMultipleObjects.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64_URL;
use http::StatusCode;
use http::request::Parts;
use ossup_proto::ErrorCode;
use ossup_proto::checksum::md5;
use ossup_proto::limits::MAX_KEY_LEN;
use ossup_proto::xml::{
    AccessControlList, BucketInfo, CommonPrefix, CreateBucketConfiguration, DeleteEntry,
    DeleteRequest, DeleteResult, GetBucketInfoResult, ListBucketResult, ListBucketV2Result,
    ListedObject, Owner, to_xml,
};

use super::object::digest_mismatch;
use super::{
    blocking, content_md5, count_param, listed_param, object_acl, read_small_body, storage_class,
    url_encoding, xml_document,
};
use crate::body::RequestBody;
use crate::error::OssError;
use crate::response::{self, HttpResponse, iso8601, status_only, url_encode};
use crate::route::RequestContext;
use crate::service::App;
use crate::storage::records::system_time;

/// The largest PutBucket body read.
const MAX_CREATE_BUCKET_BODY: usize = 64 * 1024;
/// The owner every bucket and object of the mock has.
const OWNER_ID: &str = "oss-mock";

fn owner() -> Owner {
    Owner {
        id: OWNER_ID.to_owned(),
        display_name: OWNER_ID.to_owned(),
    }
}

/// `PUT /` on a bucket, with an optional `CreateBucketConfiguration` body.
pub(super) async fn put_bucket(
    app: &App,
    ctx: &RequestContext,
    parts: &Parts,
    body: &mut RequestBody,
) -> Result<HttpResponse, OssError> {
    let acl = object_acl(&parts.headers, "x-oss-acl")?.unwrap_or_else(|| "private".to_owned());
    let xml = read_small_body(body, MAX_CREATE_BUCKET_BODY)
        .await?
        .map_err(|_| {
            OssError::malformed_xml(format_args!(
                "the body is over the {MAX_CREATE_BUCKET_BODY}-byte limit"
            ))
        })?;
    let class = storage_class(configured_storage_class(&xml)?, "StorageClass")?;
    let store = Arc::clone(&app.store);
    let bucket = ctx.bucket.clone();
    blocking(move || store.create_bucket(&bucket, &class, &acl)).await?;
    let mut response = status_only(StatusCode::OK);
    response::set_header(&mut response, "location", &format!("/{}", ctx.bucket));
    Ok(response)
}

/// The storage class a PutBucket body names: `None` for an empty body (or one without
/// `<StorageClass>`), `400 MalformedXML` for one that is not a `<CreateBucketConfiguration>`.
pub(crate) fn configured_storage_class(xml: &[u8]) -> Result<Option<String>, OssError> {
    if xml.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let config: CreateBucketConfiguration = xml_document(xml, "CreateBucketConfiguration")?;
    Ok(config.storage_class)
}

/// `DELETE /` on a bucket.
pub(super) async fn delete_bucket(
    app: &App,
    ctx: &RequestContext,
) -> Result<HttpResponse, OssError> {
    let store = Arc::clone(&app.store);
    let bucket = ctx.bucket.clone();
    blocking(move || store.delete_bucket(&bucket)).await?;
    Ok(status_only(StatusCode::NO_CONTENT))
}

/// `GET /?bucketInfo`
pub(super) async fn get_bucket_info(
    app: &App,
    ctx: &RequestContext,
) -> Result<HttpResponse, OssError> {
    let store = Arc::clone(&app.store);
    let bucket = ctx.bucket.clone();
    let record = blocking(move || store.bucket(&bucket)).await?;
    let endpoint = app.endpoint_host.clone();
    Ok(response::xml(to_xml(&GetBucketInfoResult {
        bucket: BucketInfo {
            name: record.name,
            creation_date: iso8601(system_time(record.created)),
            extranet_endpoint: endpoint.clone(),
            intranet_endpoint: endpoint,
            location: format!("oss-{}", app.region),
            storage_class: record.storage_class,
            data_redundancy_type: Some("LRS".to_owned()),
            access_monitor: Some("Disabled".to_owned()),
            transfer_acceleration: Some("Disabled".to_owned()),
            cross_region_replication: Some("Disabled".to_owned()),
            owner: owner(),
            access_control_list: AccessControlList { grant: record.acl },
            comment: None,
        },
    })))
}

/// `GET /?location`: the bucket's region, `oss-REGION`.
pub(super) async fn get_bucket_location(
    app: &App,
    ctx: &RequestContext,
) -> Result<HttpResponse, OssError> {
    let store = Arc::clone(&app.store);
    let bucket = ctx.bucket.clone();
    blocking(move || store.bucket(&bucket)).await?;
    Ok(response::xml(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint>oss-{}</LocationConstraint>",
        app.region
    )))
}

/// The most objects one DeleteMultipleObjects names.
const MAX_DELETE_OBJECTS: usize = 1000;
/// The largest DeleteMultipleObjects body read: 1,000 keys of 1,023 bytes, with room for the XML.
const MAX_DELETE_BODY: usize = 2 * 1024 * 1024;

/// `POST /?delete`: deletes the objects the body names (a missing one counts as deleted, as with
/// DeleteObject), and lists them unless the body asks for `<Quiet>true</Quiet>`.
pub(super) async fn delete_multiple_objects(
    app: &App,
    ctx: &RequestContext,
    parts: &Parts,
    body: &mut RequestBody,
) -> Result<HttpResponse, OssError> {
    let encode = url_encoding(ctx)?;
    let expected_md5 = content_md5(&parts.headers)?;
    let xml = read_small_body(body, MAX_DELETE_BODY)
        .await?
        .map_err(|size| {
            OssError::malformed_xml(format_args!(
                "the body ({size} bytes) is over the {MAX_DELETE_BODY}-byte limit"
            ))
        })?;
    if let Some(expected) = expected_md5 {
        let actual = md5(&xml);
        if expected != actual {
            return Err(digest_mismatch(&expected, &actual));
        }
    }
    let request: DeleteRequest = xml_document(&xml, "Delete")?;
    if !(1..=MAX_DELETE_OBJECTS).contains(&request.objects.len()) {
        return Err(OssError::malformed_xml(format_args!(
            "<Delete> names {} objects; it must name 1 to {MAX_DELETE_OBJECTS}",
            request.objects.len()
        )));
    }
    for entry in &request.objects {
        if entry.key.is_empty() || entry.key.len() > MAX_KEY_LEN {
            return Err(OssError::new(ErrorCode::InvalidObjectName)
                .message(format!(
                    "The specified object is not valid: a key to delete has {} bytes; it must have 1 to {MAX_KEY_LEN}.",
                    entry.key.len()
                ))
                .field("ObjectName", entry.key.chars().take(64).collect::<String>()));
        }
    }
    let keys: Vec<String> = request.objects.into_iter().map(|o| o.key).collect();
    {
        let store = Arc::clone(&app.store);
        let (bucket, keys) = (ctx.bucket.clone(), keys.clone());
        blocking(move || {
            keys.iter()
                .try_for_each(|key| store.delete_object(&bucket, key))
        })
        .await?;
    }
    let quiet = request.quiet.unwrap_or(false);
    let name = |s: &str| if encode { url_encode(s) } else { s.to_owned() };
    Ok(response::xml(to_xml(&DeleteResult {
        deleted: if quiet {
            Vec::new()
        } else {
            keys.iter()
                .map(|key| DeleteEntry { key: name(key) })
                .collect()
        },
        encoding_type: encode.then(|| "url".to_owned()),
    })))
}

/// `GET /` on a bucket: ListObjects, or ListObjectsV2 with `list-type=2` (the same API to RAM, to
/// fault rules and in the stats).
pub(super) async fn list_objects(
    app: &App,
    ctx: &RequestContext,
) -> Result<HttpResponse, OssError> {
    let v2 = match ctx.query("list-type") {
        None => false,
        Some("2") => true,
        Some(other) => {
            return Err(OssError::invalid_argument(
                "list-type",
                other,
                "list-type must be 2 (ListObjectsV2), or absent (ListObjects).",
            ));
        }
    };
    let encode = url_encoding(ctx)?;
    let prefix = listed_param(ctx, "prefix", encode)?;
    let delimiter = listed_param(ctx, "delimiter", encode)?;
    let max = count_param(ctx, "max-keys", 100, 1000)?;
    // Version 1 pages by key; version 2 by a token that holds the last key listed, or else from
    // `start-after`.
    let start_after = v2
        .then(|| listed_param(ctx, "start-after", encode))
        .transpose()?;
    let token = match ctx.query("continuation-token").filter(|_| v2) {
        None => None,
        Some(token) => Some((token.to_owned(), continuation_key(token)?)),
    };
    let marker = match (&token, &start_after) {
        (Some((_, key)), _) => key.clone(),
        (None, Some(start_after)) => start_after.clone(),
        (None, None) if v2 => String::new(),
        (None, None) => listed_param(ctx, "marker", encode)?,
    };
    let store = Arc::clone(&app.store);
    let page = {
        let (bucket, prefix, marker, delimiter) = (
            ctx.bucket.clone(),
            prefix.clone(),
            marker.clone(),
            delimiter.clone(),
        );
        blocking(move || store.list_objects(&bucket, &prefix, &marker, &delimiter, max)).await?
    };
    let name = |s: &str| if encode { url_encode(s) } else { s.to_owned() };
    // OSS names the owner in a V2 listing only when asked.
    let with_owner = !v2 || ctx.query("fetch-owner") == Some("true");
    let contents: Vec<ListedObject> = page
        .objects
        .iter()
        .map(|o| ListedObject {
            key: name(&o.key),
            last_modified: iso8601(system_time(o.last_modified)),
            etag: o.etag.clone(),
            object_type: o.object_type.as_str().to_owned(),
            size: o.size,
            storage_class: o.attrs.storage_class.clone(),
            owner: with_owner.then(owner),
        })
        .collect();
    let common_prefixes: Vec<CommonPrefix> = page
        .common_prefixes
        .iter()
        .map(|p| CommonPrefix { prefix: name(p) })
        .collect();
    let xml = if v2 {
        to_xml(&ListBucketV2Result {
            name: ctx.bucket.clone(),
            prefix: name(&prefix),
            continuation_token: token.map(|(token, _)| token),
            start_after: start_after.filter(|s| !s.is_empty()).map(|s| name(&s)),
            max_keys: max as u32,
            delimiter: name(&delimiter),
            encoding_type: encode.then(|| "url".to_owned()),
            is_truncated: page.truncated,
            next_continuation_token: page.truncated.then(|| BASE64_URL.encode(&page.next_marker)),
            key_count: (contents.len() + common_prefixes.len()) as u32,
            contents,
            common_prefixes,
        })
    } else {
        to_xml(&ListBucketResult {
            name: ctx.bucket.clone(),
            prefix: name(&prefix),
            marker: name(&marker),
            max_keys: max as u32,
            delimiter: name(&delimiter),
            encoding_type: encode.then(|| "url".to_owned()),
            is_truncated: page.truncated,
            next_marker: page.truncated.then(|| name(&page.next_marker)),
            contents,
            common_prefixes,
        })
    };
    Ok(response::xml(xml))
}

/// The key a ListObjectsV2 continuation token continues after: the mock's tokens are the last key
/// listed, base64-encoded (URL-safe, unpadded), and opaque to clients.
fn continuation_key(token: &str) -> Result<String, OssError> {
    BASE64_URL
        .decode(token)
        .ok()
        .and_then(|key| String::from_utf8(key).ok())
        .ok_or_else(|| {
            OssError::invalid_argument(
                "continuation-token",
                token,
                "The continuation-token is not one this server gave; pass NextContinuationToken as it came.",
            )
        })
}
