//! PutObject, CopyObject, GetObject, HeadObject and DeleteObject.

use std::sync::Arc;

use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use ossup_proto::ErrorCode;
use ossup_proto::checksum::content_md5 as encode_content_md5;
use ossup_proto::headers::{COPY_SOURCE, HASH_CRC64ECMA, OBJECT_TYPE, STORAGE_CLASS};
use ossup_proto::limits::MAX_PUT_OBJECT_SIZE;
use ossup_proto::xml::{CopyObjectResult, to_xml};

use super::{
    blocking, check_declared_length, check_key_for_write, client_ip, content_md5, forbid_overwrite,
    header_text, object_attrs, receive_error, set_encryption_headers, set_tagging_count,
};
use crate::body::RequestBody;
use crate::callback::{Callback, UploadFacts};
use crate::error::OssError;
use crate::range::{RangeAnswer, resolve};
use crate::response::{self, HttpResponse, http_date, set_header, status_only};
use crate::route::RequestContext;
use crate::service::App;
use crate::storage::blob::read_range;
use crate::storage::records::system_time;

/// The Content-MD5 mismatch error, naming both digests.
pub(super) fn digest_mismatch(expected: &[u8; 16], actual: &[u8; 16]) -> OssError {
    OssError::new(ErrorCode::InvalidDigest)
        .field("ExpectedContentMD5", encode_content_md5(expected))
        .field("CalculatedContentMD5", encode_content_md5(actual))
}

/// `PUT /KEY`: streams the body into a blob and publishes it as the object.
pub(super) async fn put_object(
    app: &App,
    ctx: &RequestContext,
    parts: &Parts,
    body: &mut RequestBody,
) -> Result<HttpResponse, OssError> {
    check_key_for_write(ctx.key())?;
    let headers = &parts.headers;
    let callback = Callback::from_headers(headers, &app.callback)?;
    let attrs = object_attrs(headers)?;
    let expected_md5 = content_md5(headers)?;
    let forbid = forbid_overwrite(headers);
    check_declared_length(headers, MAX_PUT_OBJECT_SIZE)?;
    refuse_to_overwrite(app, ctx, forbid).await?;
    let (bucket, key) = (ctx.bucket.clone(), ctx.key().to_owned());
    let blob = app
        .store
        .receive(body, MAX_PUT_OBJECT_SIZE, &app.stats)
        .await
        .map_err(receive_error)?;
    if let Some(expected) = expected_md5
        && expected != blob.md5
    {
        return Err(digest_mismatch(&expected, &blob.md5));
    }
    let md5 = blob.md5;
    let store = Arc::clone(&app.store);
    let record = {
        let (bucket, key) = (bucket.clone(), key.clone());
        blocking(move || store.put_object(&bucket, &key, blob, attrs, forbid)).await?
    };
    app.stats.add_stored(record.size);
    if let Some(callback) = callback {
        let facts = UploadFacts {
            operation: ctx.api,
            bucket,
            key,
            etag: record.etag.clone(),
            size: record.size,
            content_type: record.attrs.content_type.clone(),
            crc64: record.crc64,
            content_md5: Some(encode_content_md5(&md5)),
            client_ip: client_ip(parts),
            request_id: ctx.request_id.clone(),
        };
        let headers = [
            ("etag", record.etag.clone()),
            (HASH_CRC64ECMA, record.crc64.to_string()),
            ("content-md5", encode_content_md5(&md5)),
        ];
        return callback.answer(&facts, &app.callback, &headers).await;
    }
    let mut response = status_only(StatusCode::OK);
    set_header(&mut response, "etag", &record.etag);
    set_header(&mut response, HASH_CRC64ECMA, &record.crc64.to_string());
    set_header(&mut response, "content-md5", &encode_content_md5(&md5));
    set_encryption_headers(&mut response, &record.attrs);
    Ok(response)
}

/// With `x-oss-forbid-overwrite: true` (`forbid`), `409 FileAlreadyExists` when the key is taken,
/// before any byte is read or written. The store checks again when it writes: this only spares the
/// transfer.
async fn refuse_to_overwrite(
    app: &App,
    ctx: &RequestContext,
    forbid: bool,
) -> Result<(), OssError> {
    if !forbid {
        return Ok(());
    }
    let store = Arc::clone(&app.store);
    let (bucket, key) = (ctx.bucket.clone(), ctx.key().to_owned());
    if blocking(move || store.object_exists(&bucket, &key)).await? {
        return Err(OssError::new(ErrorCode::FileAlreadyExists).field("Key", ctx.key()));
    }
    Ok(())
}

/// `PUT /KEY` with `x-oss-copy-source: /BUCKET/KEY` (the key percent-encoded): a new object with
/// the source's bytes, and its metadata (`x-oss-metadata-directive: COPY`, the default) or the
/// request's (`REPLACE`). The bytes are written again, as a PutObject of them would be: every object
/// keeps blobs of its own.
pub(super) async fn copy_object(
    app: &App,
    ctx: &RequestContext,
    parts: &Parts,
) -> Result<HttpResponse, OssError> {
    check_key_for_write(ctx.key())?;
    let headers = &parts.headers;
    let (source_bucket, source_key) = copy_source(headers)?;
    let replace = match header_text(headers, "x-oss-metadata-directive").as_deref() {
        None | Some("COPY") => false,
        Some("REPLACE") => true,
        Some(other) => {
            return Err(OssError::invalid_argument(
                "x-oss-metadata-directive",
                other,
                "x-oss-metadata-directive must be COPY or REPLACE.",
            ));
        }
    };
    let forbid = forbid_overwrite(headers);
    refuse_to_overwrite(app, ctx, forbid).await?;
    let store = Arc::clone(&app.store);
    let (bucket, key) = (ctx.bucket.clone(), ctx.key().to_owned());
    let opened = {
        let store = Arc::clone(&store);
        blocking(move || store.open_object(&source_bucket, &source_key)).await?
    };
    let attrs = if replace {
        object_attrs(headers)?
    } else {
        opened.record.attrs.clone()
    };
    let size = opened.record.size;
    let bytes = read_range(opened.segments, 0, size, opened.pins);
    let mut body = http_body_util::StreamBody::new(Box::pin(futures::TryStreamExt::map_ok(
        bytes,
        http_body::Frame::data,
    )));
    // Not bytes a client sent: the stats' received bytes stay the clients'.
    let blob = store
        .receive(
            &mut body,
            MAX_PUT_OBJECT_SIZE,
            &crate::stats::Stats::default(),
        )
        .await
        .map_err(receive_error)?;
    let record = blocking(move || store.put_object(&bucket, &key, blob, attrs, forbid)).await?;
    app.stats.add_stored(record.size);
    let mut response = response::xml(to_xml(&CopyObjectResult {
        etag: record.etag.clone(),
        last_modified: response::iso8601(system_time(record.last_modified)),
    }));
    set_header(&mut response, "etag", &record.etag);
    set_header(&mut response, HASH_CRC64ECMA, &record.crc64.to_string());
    set_encryption_headers(&mut response, &record.attrs);
    Ok(response)
}

/// The bucket and key `x-oss-copy-source` names: `/BUCKET/KEY`, the key percent-encoded.
fn copy_source(headers: &http::HeaderMap) -> Result<(String, String), OssError> {
    let invalid = |value: &str, why: &str| {
        OssError::invalid_argument(
            COPY_SOURCE,
            value,
            format!("{COPY_SOURCE} must be /BUCKET/KEY with the key percent-encoded: {why}."),
        )
    };
    let value = header_text(headers, COPY_SOURCE).unwrap_or_default();
    if value.contains("?versionId=") {
        return Err(OssError::new(ErrorCode::NotImplemented).message(
            "Copying a version of an object (?versionId= in x-oss-copy-source) is not implemented by oss-mock.",
        ));
    }
    let (bucket, key) = value
        .strip_prefix('/')
        .unwrap_or(&value)
        .split_once('/')
        .ok_or_else(|| invalid(&value, "it names no key"))?;
    let key = percent_encoding::percent_decode_str(key)
        .decode_utf8()
        .map_err(|_| invalid(&value, "the key is not UTF-8 once decoded"))?;
    if key.is_empty() || !crate::route::valid_bucket_name(bucket) {
        return Err(invalid(&value, "the bucket or the key is not valid"));
    }
    Ok((bucket.to_owned(), key.into_owned()))
}

/// `GET /KEY` and `HEAD /KEY`: the object's headers, and for GET its bytes (all or a range).
pub(super) async fn get_object(
    app: &App,
    ctx: &RequestContext,
    parts: &Parts,
    head: bool,
) -> Result<HttpResponse, OssError> {
    let store = Arc::clone(&app.store);
    let (bucket, key) = (ctx.bucket.clone(), ctx.key().to_owned());
    let opened = blocking(move || store.open_object(&bucket, &key)).await?;
    let record = &opened.record;
    let size = record.size;
    let range = match header_text(&parts.headers, "range") {
        Some(range) if !head => {
            let standard = header_text(&parts.headers, "x-oss-range-behavior")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("standard"));
            resolve(&range, size, standard)
        }
        _ => RangeAnswer::Whole,
    };
    let (status, start, len) = match range {
        RangeAnswer::Whole => (StatusCode::OK, 0, size),
        RangeAnswer::Partial { start, end } => {
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeAnswer::Unsatisfiable => {
            let mut err =
                OssError::new(ErrorCode::InvalidRange).field("ActualObjectSize", size.to_string());
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                err.headers.push((header::CONTENT_RANGE, value));
            }
            return Err(err);
        }
    };

    let mut response = status_only(status);
    let attrs = &record.attrs;
    set_header(
        &mut response,
        "content-type",
        attrs
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream"),
    );
    for (name, value) in attrs.content_headers.iter().chain(&attrs.user_meta) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    set_header(&mut response, "content-length", &len.to_string());
    set_header(&mut response, "etag", &record.etag);
    set_header(
        &mut response,
        "last-modified",
        &http_date(system_time(record.last_modified)),
    );
    set_header(&mut response, "accept-ranges", "bytes");
    set_header(&mut response, OBJECT_TYPE, record.object_type.as_str());
    set_header(&mut response, HASH_CRC64ECMA, &record.crc64.to_string());
    set_header(&mut response, STORAGE_CLASS, &attrs.storage_class);
    set_encryption_headers(&mut response, attrs);
    set_tagging_count(&mut response, attrs);
    if status == StatusCode::PARTIAL_CONTENT {
        set_header(
            &mut response,
            "content-range",
            &format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    if !head {
        for (param, name) in [
            ("response-content-type", "content-type"),
            ("response-content-language", "content-language"),
            ("response-expires", "expires"),
            ("response-cache-control", "cache-control"),
            ("response-content-disposition", "content-disposition"),
            ("response-content-encoding", "content-encoding"),
        ] {
            if let Some(value) = ctx.query(param) {
                set_header(&mut response, name, value);
            }
        }
        let opened = opened;
        *response.body_mut() =
            response::streamed(read_range(opened.segments, start, len, opened.pins));
    }
    Ok(response)
}

/// `DELETE /KEY`: 204 whether or not the object existed.
pub(super) async fn delete_object(
    app: &App,
    ctx: &RequestContext,
) -> Result<HttpResponse, OssError> {
    let store = Arc::clone(&app.store);
    let (bucket, key) = (ctx.bucket.clone(), ctx.key().to_owned());
    blocking(move || store.delete_object(&bucket, &key)).await?;
    Ok(status_only(StatusCode::NO_CONTENT))
}
