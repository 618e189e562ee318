//! The five multipart APIs and ListMultipartUploads.

use std::sync::Arc;

use http::StatusCode;
use http::request::Parts;
use ossup_proto::ErrorCode;
use ossup_proto::checksum::content_md5 as encode_content_md5;
use ossup_proto::headers::{COMPLETE_ALL, HASH_CRC64ECMA, OBJECT_ACL};
use ossup_proto::limits::{
    MAX_LIST_PARTS, MAX_LIST_UPLOADS, MAX_PART_NUMBER, MAX_PART_SIZE, MIN_PART_NUMBER,
};
use ossup_proto::xml::{
    CompleteMultipartUpload, CompleteMultipartUploadResult, InitiateMultipartUploadResult,
    ListMultipartUploadsResult, ListPartsResult, ListedPart, ListedUpload, to_xml,
};

use super::object::digest_mismatch;
use super::{
    blocking, check_declared_length, check_key_for_write, client_ip, content_md5, count_param,
    forbid_overwrite, header_text, listed_param, object_acl, object_attrs, read_small_body,
    receive_error, set_encryption_headers, url_encoding, xml_document,
};
use crate::body::RequestBody;
use crate::callback::{Callback, UploadFacts};
use crate::error::OssError;
use crate::response::{
    self, HttpResponse, iso8601, set_header, status_only, url_encode, with_url_encoding_type,
};
use crate::route::{Addressing, RequestContext};
use crate::service::App;
use crate::storage::PartSelection;
use crate::storage::records::system_time;

/// The largest CompleteMultipartUpload body the mock reads, in bytes.
///
/// 10,000 parts written the most verbose way a client writes them (entity-quoted ETags, an XML
/// declaration, newlines) take about 1.1 MB, so the cap leaves room for every legal request while
/// refusing runaway bodies with MalformedXML.
pub const MAX_COMPLETE_BODY: usize = 2 * 1024 * 1024;

fn upload_id(ctx: &RequestContext) -> Result<String, OssError> {
    match ctx.upload_id() {
        Some(id) if !id.is_empty() => Ok(id.to_owned()),
        _ => Err(OssError::invalid_argument(
            "uploadId",
            "",
            format!("{} needs the uploadId query parameter.", ctx.api),
        )),
    }
}

fn parse_part_number(ctx: &RequestContext) -> Result<u32, OssError> {
    let raw = ctx.part_number().unwrap_or_default();
    match raw.trim().parse::<u32>() {
        Ok(n) if (MIN_PART_NUMBER..=MAX_PART_NUMBER).contains(&n) => Ok(n),
        _ => Err(OssError::invalid_argument(
            "partNumber",
            raw,
            format!(
                "Part number must be an integer between {MIN_PART_NUMBER} and {MAX_PART_NUMBER}, inclusive."
            ),
        )),
    }
}

/// `POST /KEY?uploads`
pub(super) async fn initiate(
    app: &App,
    ctx: &RequestContext,
    parts: &Parts,
) -> Result<HttpResponse, OssError> {
    check_key_for_write(ctx.key())?;
    let attrs = object_attrs(&parts.headers)?;
    let forbid = forbid_overwrite(&parts.headers);
    let store = Arc::clone(&app.store);
    let (bucket, key) = (ctx.bucket.clone(), ctx.key().to_owned());
    let record = blocking(move || store.initiate(&bucket, &key, attrs, forbid)).await?;
    let mut response = response::xml(to_xml(&InitiateMultipartUploadResult {
        bucket: ctx.bucket.clone(),
        key: record.key,
        upload_id: record.upload_id,
    }));
    set_encryption_headers(&mut response, &record.attrs);
    Ok(response)
}

/// `PUT /KEY?partNumber=N&uploadId=ID`
pub(super) async fn upload_part(
    app: &App,
    ctx: &RequestContext,
    parts: &Parts,
    body: &mut RequestBody,
) -> Result<HttpResponse, OssError> {
    let part_number = parse_part_number(ctx)?;
    let upload_id = upload_id(ctx)?;
    let expected_md5 = content_md5(&parts.headers)?;
    check_declared_length(&parts.headers, MAX_PART_SIZE)?;
    let (bucket, key) = (ctx.bucket.clone(), ctx.key().to_owned());
    {
        let store = Arc::clone(&app.store);
        let (bucket, key, upload_id) = (bucket.clone(), key.clone(), upload_id.clone());
        blocking(move || store.check_upload(&bucket, &key, &upload_id)).await?;
    }
    let blob = app
        .store
        .receive(body, MAX_PART_SIZE, &app.stats)
        .await
        .map_err(receive_error)?;
    if let Some(expected) = expected_md5
        && expected != blob.md5
    {
        return Err(digest_mismatch(&expected, &blob.md5));
    }
    let md5 = blob.md5;
    let store = Arc::clone(&app.store);
    let part =
        blocking(move || store.commit_part(&bucket, &key, &upload_id, part_number, blob)).await?;
    app.stats.add_stored(part.size);
    let mut response = status_only(StatusCode::OK);
    set_header(&mut response, "etag", &part.etag());
    set_header(&mut response, HASH_CRC64ECMA, &part.crc64.to_string());
    set_header(&mut response, "content-md5", &encode_content_md5(&md5));
    Ok(response)
}

/// `GET /KEY?uploadId=ID`
pub(super) async fn list_parts(app: &App, ctx: &RequestContext) -> Result<HttpResponse, OssError> {
    let upload_id = upload_id(ctx)?;
    let max = count_param(ctx, "max-parts", MAX_LIST_PARTS, MAX_LIST_PARTS)?;
    let marker = match ctx.query("part-number-marker").map(str::trim) {
        None | Some("") => 0,
        Some(raw) => raw.parse::<u32>().map_err(|_| {
            OssError::invalid_argument(
                "part-number-marker",
                raw,
                "part-number-marker must be a non-negative integer.",
            )
        })?,
    };
    let encode = url_encoding(ctx)?;
    let store = Arc::clone(&app.store);
    let (bucket, key) = (ctx.bucket.clone(), ctx.key().to_owned());
    let page = {
        let upload_id = upload_id.clone();
        blocking(move || store.list_parts(&bucket, &key, &upload_id, marker, max)).await?
    };
    let next_marker = page.parts.last().map_or(marker, |p| p.part_number);
    let key = if encode {
        url_encode(&page.upload.key)
    } else {
        page.upload.key.clone()
    };
    let document = to_xml(&ListPartsResult {
        bucket: ctx.bucket.clone(),
        key,
        upload_id,
        storage_class: Some(page.upload.attrs.storage_class.clone()),
        part_number_marker: marker,
        next_part_number_marker: next_marker,
        max_parts: max as u32,
        is_truncated: page.truncated,
        parts: page
            .parts
            .iter()
            .map(|p| ListedPart {
                part_number: p.part_number,
                last_modified: iso8601(system_time(p.last_modified)),
                etag: p.etag(),
                hash_crc64ecma: Some(p.crc64),
                size: p.size,
            })
            .collect(),
    });
    Ok(response::xml(if encode {
        with_url_encoding_type(document, "ListPartsResult")
    } else {
        document
    }))
}

/// Parses the Complete body into the parts it lists, checking their order.
pub(crate) fn listed_parts(body: &[u8]) -> Result<Vec<(u32, String)>, OssError> {
    let doc: CompleteMultipartUpload = xml_document(body, "CompleteMultipartUpload")?;
    if doc.parts.is_empty() {
        return Err(OssError::malformed_xml(
            "<CompleteMultipartUpload> lists no <Part>",
        ));
    }
    // Part numbers run from 1 to 10000 and must ascend, so a longer list cannot be right; saying
    // so names the real problem rather than the first misordered or unknown part.
    if doc.parts.len() > MAX_PART_NUMBER as usize {
        return Err(OssError::malformed_xml(format_args!(
            "<CompleteMultipartUpload> lists {} parts; an upload has at most {MAX_PART_NUMBER}.",
            doc.parts.len()
        )));
    }
    for pair in doc.parts.windows(2) {
        if pair[1].part_number <= pair[0].part_number {
            return Err(OssError::new(ErrorCode::InvalidPartOrder)
                .field("PartNumber", pair[1].part_number.to_string()));
        }
    }
    Ok(doc
        .parts
        .into_iter()
        .map(|p| (p.part_number, p.etag))
        .collect())
}

/// `POST /KEY?uploadId=ID`
pub(super) async fn complete(
    app: &App,
    ctx: &RequestContext,
    parts: &Parts,
    body: &mut RequestBody,
) -> Result<HttpResponse, OssError> {
    let upload_id = upload_id(ctx)?;
    let headers = &parts.headers;
    let callback = Callback::from_headers(headers, &app.callback)?;
    let complete_all = match header_text(headers, COMPLETE_ALL) {
        None => false,
        Some(v) if v.trim().eq_ignore_ascii_case("yes") => true,
        Some(v) => {
            return Err(OssError::invalid_argument(
                COMPLETE_ALL,
                &v,
                format!("{COMPLETE_ALL} must be yes when present."),
            ));
        }
    };
    let forbid = forbid_overwrite(headers);
    let acl = object_acl(headers, OBJECT_ACL)?;
    let (bucket, key) = (ctx.bucket.clone(), ctx.key().to_owned());
    {
        let store = Arc::clone(&app.store);
        let (bucket, key, upload_id) = (bucket.clone(), key.clone(), upload_id.clone());
        blocking(move || store.check_upload(&bucket, &key, &upload_id)).await?;
    }
    let too_big = |size: String| {
        OssError::malformed_xml(format_args!(
            "the body ({size} bytes) is over the {MAX_COMPLETE_BODY}-byte limit oss-mock sets for CompleteMultipartUpload"
        ))
    };
    if let Some(len) = super::content_length(headers)?
        && len > MAX_COMPLETE_BODY as u64
    {
        return Err(too_big(len.to_string()));
    }
    let xml = read_small_body(body, MAX_COMPLETE_BODY)
        .await?
        .map_err(|seen| too_big(format!("at least {seen}")))?;
    let selection = if complete_all {
        if !xml.is_empty() {
            return Err(OssError::invalid_argument(
                COMPLETE_ALL,
                "yes",
                format!("With {COMPLETE_ALL}: yes the request body must be empty."),
            ));
        }
        PartSelection::All
    } else {
        PartSelection::Listed(listed_parts(&xml)?)
    };
    let store = Arc::clone(&app.store);
    let record = {
        let (bucket, key) = (bucket.clone(), key.clone());
        blocking(move || store.complete(&bucket, &key, &upload_id, selection, forbid, acl)).await?
    };
    if let Some(callback) = callback {
        let facts = UploadFacts {
            operation: ctx.api,
            bucket,
            key,
            etag: record.etag.clone(),
            size: record.size,
            content_type: record.attrs.content_type.clone(),
            crc64: record.crc64,
            content_md5: None,
            client_ip: client_ip(parts),
            request_id: ctx.request_id.clone(),
        };
        let headers = [
            ("etag", record.etag.clone()),
            (HASH_CRC64ECMA, record.crc64.to_string()),
        ];
        return callback.answer(&facts, &app.callback, &headers).await;
    }
    let mut response = response::xml(to_xml(&CompleteMultipartUploadResult {
        location: match ctx.addressing {
            Addressing::VirtualHosted => format!("http://{}/{}", ctx.host_id, url_encode(&key)),
            Addressing::PathStyle => {
                format!("http://{}/{bucket}/{}", ctx.host_id, url_encode(&key))
            }
        },
        bucket,
        key,
        etag: record.etag.clone(),
    }));
    set_header(&mut response, "etag", &record.etag);
    set_encryption_headers(&mut response, &record.attrs);
    set_header(&mut response, HASH_CRC64ECMA, &record.crc64.to_string());
    Ok(response)
}

/// `DELETE /KEY?uploadId=ID`
pub(super) async fn abort(app: &App, ctx: &RequestContext) -> Result<HttpResponse, OssError> {
    let upload_id = upload_id(ctx)?;
    let store = Arc::clone(&app.store);
    let (bucket, key) = (ctx.bucket.clone(), ctx.key().to_owned());
    blocking(move || store.abort(&bucket, &key, &upload_id)).await?;
    Ok(status_only(StatusCode::NO_CONTENT))
}

/// `GET /?uploads`
pub(super) async fn list_uploads(
    app: &App,
    ctx: &RequestContext,
) -> Result<HttpResponse, OssError> {
    let encode = url_encoding(ctx)?;
    let prefix = listed_param(ctx, "prefix", encode)?;
    let key_marker = listed_param(ctx, "key-marker", encode)?;
    // Echoed as is even in a URL-encoded answer.
    let upload_id_marker = listed_param(ctx, "upload-id-marker", false)?;
    let max = count_param(ctx, "max-uploads", MAX_LIST_UPLOADS, MAX_LIST_UPLOADS)?;
    if ctx.query("delimiter").is_some_and(|d| !d.is_empty()) {
        return Err(OssError::new(ErrorCode::NotImplemented).message(
            "ListMultipartUploads with a delimiter is not implemented by oss-mock; list with a prefix instead.",
        ));
    }
    let store = Arc::clone(&app.store);
    let page = {
        let (bucket, prefix, key_marker, upload_id_marker) = (
            ctx.bucket.clone(),
            prefix.clone(),
            key_marker.clone(),
            upload_id_marker.clone(),
        );
        blocking(move || store.list_uploads(&bucket, &prefix, &key_marker, &upload_id_marker, max))
            .await?
    };
    let name = |s: &str| if encode { url_encode(s) } else { s.to_owned() };
    let (next_key_marker, next_upload_id_marker) = page
        .uploads
        .last()
        .map(|u| (u.key.clone(), u.upload_id.clone()))
        .unwrap_or_default();
    let document = to_xml(&ListMultipartUploadsResult {
        bucket: ctx.bucket.clone(),
        key_marker: name(&key_marker),
        upload_id_marker,
        next_key_marker: name(&next_key_marker),
        next_upload_id_marker,
        delimiter: String::new(),
        prefix: name(&prefix),
        max_uploads: max as u32,
        is_truncated: page.truncated,
        uploads: page
            .uploads
            .iter()
            .map(|u| ListedUpload {
                key: name(&u.key),
                upload_id: u.upload_id.clone(),
                initiated: iso8601(system_time(u.initiated)),
                storage_class: Some(u.attrs.storage_class.clone()),
            })
            .collect(),
    });
    Ok(response::xml(if encode {
        with_url_encoding_type(document, "ListMultipartUploadsResult")
    } else {
        document
    }))
}
