//! The five multipart APIs: Initiate, UploadPart, ListParts, Complete and Abort.

use bytes::Bytes;
use ossup_proto::checksum::{self, crc64_of_parts};
use ossup_proto::etag;
use ossup_proto::headers::COMPLETE_ALL;
use ossup_proto::limits::{MAX_PART_NUMBER, MIN_PART_SIZE};
use ossup_proto::xml::{CompleteMultipartUploadResult, ListPartsResult};
use ossup_proto::{Api, ErrorCode};

use crate::case::{Case, Ctx, UploadedPart, complete_body, expect_same_bytes, upload_part_request};
use crate::check::{CaseError, CaseResult, Context};
use crate::client::Request;
use crate::{case, ensure, ensure_eq};

/// The smallest size every part but the last may have, as a `usize` for buffers.
const FULL: usize = MIN_PART_SIZE as usize;

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!(
            initiate_returns_bucket_key_and_a_fresh_upload_id,
            Api::InitiateMultipartUpload,
            "200; <Bucket>, <Key>, <UploadId>; a second Initiate of the same key gets another id"
        ),
        case!(
            initiate_accepts_uploads_with_an_empty_value,
            Api::InitiateMultipartUpload,
            "`?uploads=` as oss2 sends it: 200, and the upload is listable"
        ),
        case!(
            upload_part_etag_is_quoted_uppercase_md5_and_crc_is_crc64,
            Api::UploadPart,
            "200, empty body, ETag \"UPPERHEX-MD5\", x-oss-hash-crc64ecma = CRC-64/XZ computed here"
        ),
        case!(
            upload_part_with_matching_content_md5_is_accepted,
            Api::UploadPart,
            "a correct Content-MD5 header: 200 with the MD5 ETag"
        ),
        case!(
            upload_part_with_wrong_content_md5_is_invalid_digest,
            Api::UploadPart,
            "Content-MD5 of other bytes: 400 InvalidDigest, and ListParts shows no such part"
        ),
        case!(
            upload_part_number_zero_is_invalid_argument,
            Api::UploadPart,
            "partNumber=0: 400 InvalidArgument naming PartNumber"
        ),
        case!(
            upload_part_number_10001_is_invalid_argument,
            Api::UploadPart,
            "partNumber=10001: 400 InvalidArgument naming PartNumber"
        ),
        case!(
            upload_part_number_that_is_not_a_number_is_invalid_argument,
            Api::UploadPart,
            "partNumber=abc: 400 InvalidArgument"
        ),
        case!(
            upload_part_numbers_1_and_10000_are_accepted,
            Api::UploadPart,
            "the bounds 1 and 10000: 200, and ListParts lists both"
        ),
        case!(
            upload_part_again_replaces_the_part,
            Api::UploadPart,
            "the same part number twice: ListParts shows the second ETag and size; the object has the second bytes"
        ),
        case!(
            upload_part_to_an_unknown_upload_is_no_such_upload,
            Api::UploadPart,
            "a made-up uploadId: 404 NoSuchUpload"
        ),
        case!(
            list_parts_reports_number_etag_size_crc_and_time_of_each_part,
            Api::ListParts,
            "Bucket, Key, UploadId, MaxParts 1000, IsTruncated false, parts ascending with ETag, Size, HashCrc64ecma, ISO 8601 LastModified"
        ),
        case!(
            list_parts_with_max_parts_1_pages_through_every_part,
            Api::ListParts,
            "max-parts=1: one part a page, IsTruncated and NextPartNumberMarker lead through all 3 parts"
        ),
        case!(
            list_parts_after_the_last_part_is_an_empty_final_page,
            Api::ListParts,
            "part-number-marker = last part (and beyond): no parts, IsTruncated false"
        ),
        case!(
            list_parts_with_an_empty_marker_starts_at_the_first_part,
            Api::ListParts,
            "`part-number-marker=` (oss2's first page): every part, PartNumberMarker 0"
        ),
        case!(
            complete_joins_parts_and_returns_the_combined_crc,
            Api::CompleteMultipartUpload,
            "200; Bucket, Key, Location, ETag \"HEX-3\" in XML and header; CRC header = combination of part CRCs = CRC of the bytes; GetObject returns the bytes"
        ),
        case!(
            complete_with_a_subset_of_parts_and_gaps_keeps_only_those,
            Api::CompleteMultipartUpload,
            "parts 1, 3, 7 uploaded, 1 and 7 named: the object is part 1 then part 7"
        ),
        case!(
            complete_with_a_part_under_100_kib_before_the_last_is_entity_too_small,
            Api::CompleteMultipartUpload,
            "a first part of 102399 bytes: 400 EntityTooSmall; the upload stays open and completes with the last part alone"
        ),
        case!(
            complete_with_a_wrong_etag_is_invalid_part,
            Api::CompleteMultipartUpload,
            "an ETag that is not the part's: 400 InvalidPart"
        ),
        case!(
            complete_with_a_part_never_uploaded_is_invalid_part,
            Api::CompleteMultipartUpload,
            "a part number with no part: 400 InvalidPart"
        ),
        case!(
            complete_with_descending_parts_is_invalid_part_order,
            Api::CompleteMultipartUpload,
            "parts 2 then 1: 400 InvalidPartOrder"
        ),
        case!(
            complete_with_malformed_xml_is_malformed_xml,
            Api::CompleteMultipartUpload,
            "a truncated document, and a document of the wrong shape: 400 MalformedXML; the upload stays open"
        ),
        case!(
            complete_accepts_entity_quoted_and_unquoted_etags,
            Api::CompleteMultipartUpload,
            "ETags written &quot;…&quot; with a declaration and newlines (Java, ali-oss), and without quotes: both complete"
        ),
        case!(
            complete_all_header_joins_every_uploaded_part,
            Api::CompleteMultipartUpload,
            "x-oss-complete-all: yes with no body: 200, ETag \"HEX-2\", combined CRC, the bytes of parts 1 and 2"
        ),
        case!(
            complete_all_header_with_a_body_is_invalid_argument,
            Api::CompleteMultipartUpload,
            "x-oss-complete-all: yes and a part list: 400 InvalidArgument; the upload stays open"
        ),
        case!(
            complete_then_every_upload_api_is_no_such_upload,
            Api::CompleteMultipartUpload,
            "after Complete: Complete, ListParts, UploadPart and Abort answer 404 NoSuchUpload"
        ),
        case!(
            abort_answers_204_then_every_upload_api_is_no_such_upload,
            Api::AbortMultipartUpload,
            "Abort: 204 empty; then ListParts, UploadPart, Complete and Abort answer 404 NoSuchUpload"
        ),
    ]
}

/// ListParts with extra query parameters; checks 200 and parses the page.
async fn list_parts(
    ctx: &Ctx,
    key: &str,
    upload_id: &str,
    params: &[(&str, &str)],
) -> Result<ListPartsResult, CaseError> {
    // `name=` for an empty value, as oss2 writes `part-number-marker=` on its first page.
    let mut request = Request::get(Some(ctx.bucket()), Some(key))
        .query("uploadId", upload_id)
        .empty_values_with_equals();
    for (name, value) in params {
        request = request.query(name, value);
    }
    let response = ctx.send(request).await?;
    response.expect_status(200)?;
    response.xml("ListPartsResult")
}

/// Uploads `sizes.len()` parts numbered from 1, returning their bodies and acknowledgements.
async fn upload_parts(
    ctx: &Ctx,
    key: &str,
    upload_id: &str,
    sizes: &[usize],
) -> Result<(Vec<Bytes>, Vec<UploadedPart>), CaseError> {
    let mut bodies = Vec::new();
    let mut parts = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let body = ctx.data(*size);
        parts.push(ctx.upload_part(key, upload_id, i as u32 + 1, &body).await?);
        bodies.push(body);
    }
    Ok((bodies, parts))
}

fn named(parts: &[UploadedPart]) -> Vec<(u32, &str)> {
    parts.iter().map(|p| (p.number, p.etag.as_str())).collect()
}

fn concat(bodies: &[&Bytes]) -> Vec<u8> {
    bodies.iter().flat_map(|b| b.iter().copied()).collect()
}

/// Whether `value` is a multipart ETag of `parts` parts: `"` 32 uppercase hex digits `-N` `"`.
fn is_multipart_etag(value: &str, parts: usize) -> bool {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return false;
    };
    let Some((hex, count)) = inner.split_once('-') else {
        return false;
    };
    hex.len() == 32
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        && count == parts.to_string()
}

/// Whether `value` looks like `2012-02-23T07:01:34.000Z`.
fn is_iso8601_millis(value: &str) -> bool {
    let b = value.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

async fn expect_no_such_upload(ctx: &Ctx, key: &str, upload_id: &str, after: &str) -> CaseResult {
    let bucket = ctx.bucket();
    let code = ErrorCode::NoSuchUpload.as_str();
    let requests = [
        (
            "ListParts",
            Request::get(Some(bucket), Some(key)).query("uploadId", upload_id),
        ),
        (
            "UploadPart",
            upload_part_request(bucket, key, upload_id, 1, ctx.data(16)),
        ),
        (
            "Complete",
            Request::post(Some(bucket), Some(key))
                .query("uploadId", upload_id)
                .body(complete_body(&[(
                    1,
                    "\"00000000000000000000000000000000\"",
                )])),
        ),
        (
            "Abort",
            Request::delete(Some(bucket), Some(key)).query("uploadId", upload_id),
        ),
    ];
    for (api, request) in requests {
        let response = ctx.send(request).await?;
        response
            .expect_error(404, code)
            .context(format!("{api} {after}"))?;
    }
    Ok(())
}

async fn initiate_returns_bucket_key_and_a_fresh_upload_id(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("object.bin");
    let first = ctx.initiate(&key).await?;
    let second = ctx.initiate(&key).await?;
    ensure!(
        first != second,
        "two Initiates of {key} returned the same UploadId {first:?}"
    );
    Ok(())
}

async fn initiate_accepts_uploads_with_an_empty_value(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("oss2-style");
    let response = ctx
        .send(
            Request::post(Some(ctx.bucket()), Some(&key))
                .query("uploads", "")
                .empty_values_with_equals(),
        )
        .await?;
    response.expect_status(200)?;
    let result: ossup_proto::xml::InitiateMultipartUploadResult =
        response.xml("InitiateMultipartUploadResult")?;
    ctx.track_upload(ctx.bucket(), &key, &result.upload_id);
    let page = list_parts(ctx, &key, &result.upload_id, &[]).await?;
    ensure_eq!(page.upload_id, result.upload_id, "<UploadId> of ListParts");
    ensure!(
        page.parts.is_empty(),
        "a new upload lists {} parts",
        page.parts.len()
    );
    Ok(())
}

async fn upload_part_etag_is_quoted_uppercase_md5_and_crc_is_crc64(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("part.bin");
    let upload_id = ctx.initiate(&key).await?;
    let body = ctx.data(4096);
    let response = ctx
        .send(upload_part_request(
            ctx.bucket(),
            &key,
            &upload_id,
            1,
            body.clone(),
        ))
        .await?;
    response.expect_status(200)?;
    let expected = format!("\"{}\"", hex_upper(&checksum::md5(&body)));
    response.expect_header_eq("etag", &expected)?;
    response.expect_crc64(checksum::crc64(&body))?;
    ensure!(
        response.body.is_empty(),
        "UploadPart answered with a {}-byte body; OSS answers with none",
        response.body.len()
    );
    Ok(())
}

async fn upload_part_with_matching_content_md5_is_accepted(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("md5.bin");
    let upload_id = ctx.initiate(&key).await?;
    let body = ctx.data(1000);
    let md5 = checksum::md5(&body);
    let response = ctx
        .send(
            upload_part_request(ctx.bucket(), &key, &upload_id, 1, body.clone())
                .header("content-md5", &checksum::content_md5(&md5)),
        )
        .await?;
    response.expect_status(200)?;
    response.expect_header_eq("etag", &etag::part_etag(&md5))?;
    Ok(())
}

async fn upload_part_with_wrong_content_md5_is_invalid_digest(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("bad-md5.bin");
    let upload_id = ctx.initiate(&key).await?;
    let body = ctx.data(1000);
    let wrong = checksum::content_md5(&checksum::md5(b"other bytes"));
    let response = ctx
        .send(
            upload_part_request(ctx.bucket(), &key, &upload_id, 1, body)
                .header("content-md5", &wrong),
        )
        .await?;
    response.expect_error(400, "InvalidDigest")?;
    let page = list_parts(ctx, &key, &upload_id, &[]).await?;
    ensure!(
        page.parts.is_empty(),
        "after InvalidDigest, ListParts lists part(s) {:?}",
        page.parts.iter().map(|p| p.part_number).collect::<Vec<_>>()
    );
    Ok(())
}

async fn expect_bad_part_number(ctx: &Ctx, number: &str, check_argument_name: bool) -> CaseResult {
    let key = ctx.key("bad-number.bin");
    let upload_id = ctx.initiate(&key).await?;
    let response = ctx
        .send(
            Request::put(Some(ctx.bucket()), Some(&key))
                .query("partNumber", number)
                .query("uploadId", &upload_id)
                .body(ctx.data(100)),
        )
        .await?;
    let error = response.expect_error(400, "InvalidArgument")?;
    if check_argument_name {
        let name = error.field("ArgumentName").unwrap_or_default();
        ensure!(
            name.eq_ignore_ascii_case("partNumber"),
            "InvalidArgument for partNumber={number}: <ArgumentName> is {name:?}, expected PartNumber"
        );
    }
    let page = list_parts(ctx, &key, &upload_id, &[]).await?;
    ensure!(
        page.parts.is_empty(),
        "after partNumber={number} was refused, ListParts lists {} part(s)",
        page.parts.len()
    );
    Ok(())
}

async fn upload_part_number_zero_is_invalid_argument(ctx: &Ctx) -> CaseResult {
    expect_bad_part_number(ctx, "0", true).await
}

async fn upload_part_number_10001_is_invalid_argument(ctx: &Ctx) -> CaseResult {
    expect_bad_part_number(ctx, &(MAX_PART_NUMBER + 1).to_string(), true).await
}

async fn upload_part_number_that_is_not_a_number_is_invalid_argument(ctx: &Ctx) -> CaseResult {
    expect_bad_part_number(ctx, "abc", false).await
}

async fn upload_part_numbers_1_and_10000_are_accepted(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("bounds.bin");
    let upload_id = ctx.initiate(&key).await?;
    let low = ctx.upload_part(&key, &upload_id, 1, &ctx.data(10)).await?;
    let high = ctx
        .upload_part(&key, &upload_id, MAX_PART_NUMBER, &ctx.data(20))
        .await?;
    let page = list_parts(ctx, &key, &upload_id, &[]).await?;
    let listed: Vec<(u32, String, u64)> = page
        .parts
        .iter()
        .map(|p| (p.part_number, p.etag.clone(), p.size))
        .collect();
    ensure_eq!(
        listed,
        vec![(1, low.etag, 10), (MAX_PART_NUMBER, high.etag, 20)],
        "ListParts (number, ETag, size)"
    );
    Ok(())
}

async fn upload_part_again_replaces_the_part(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("replaced.bin");
    let upload_id = ctx.initiate(&key).await?;
    ctx.upload_part(&key, &upload_id, 1, &ctx.data(500)).await?;
    let second_body = ctx.data(700);
    let second = ctx.upload_part(&key, &upload_id, 1, &second_body).await?;
    let page = list_parts(ctx, &key, &upload_id, &[]).await?;
    ensure_eq!(
        page.parts.len(),
        1,
        "parts listed after uploading part 1 twice"
    );
    ensure_eq!(page.parts[0].etag, second.etag, "ETag of the replaced part");
    ensure_eq!(page.parts[0].size, 700, "Size of the replaced part");
    ctx.complete(&key, &upload_id, &named(&[second]))
        .await?
        .expect_status(200)?;
    ctx.expect_object(&key, &second_body).await?;
    Ok(())
}

async fn upload_part_to_an_unknown_upload_is_no_such_upload(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("unknown-upload.bin");
    let response = ctx
        .send(upload_part_request(
            ctx.bucket(),
            &key,
            "0004B9894A22E5B1888A1E29F823DEAD",
            1,
            ctx.data(10),
        ))
        .await?;
    response.expect_error(404, "NoSuchUpload")?;
    Ok(())
}

async fn list_parts_reports_number_etag_size_crc_and_time_of_each_part(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("listed.bin");
    let upload_id = ctx.initiate(&key).await?;
    let (_, parts) = upload_parts(ctx, &key, &upload_id, &[FULL, FULL, 5]).await?;
    let page = list_parts(ctx, &key, &upload_id, &[]).await?;
    ensure_eq!(page.bucket, ctx.bucket(), "<Bucket>");
    ensure_eq!(page.key, key, "<Key>");
    ensure_eq!(page.upload_id, upload_id, "<UploadId>");
    ensure_eq!(page.max_parts, 1000, "<MaxParts> by default");
    ensure_eq!(
        page.part_number_marker,
        0,
        "<PartNumberMarker> of the first page"
    );
    ensure!(
        !page.is_truncated,
        "<IsTruncated> is true with 3 parts and MaxParts 1000"
    );
    ensure_eq!(page.parts.len(), 3, "parts listed");
    for (listed, uploaded) in page.parts.iter().zip(&parts) {
        let n = uploaded.number;
        ensure_eq!(listed.part_number, n, "<PartNumber> in listing order");
        ensure_eq!(listed.etag, uploaded.etag, "<ETag> of part {n}");
        ensure_eq!(listed.size, uploaded.size, "<Size> of part {n}");
        ensure_eq!(
            listed.hash_crc64ecma,
            Some(uploaded.crc64),
            "<HashCrc64ecma> of part {n}"
        );
        ensure!(
            is_iso8601_millis(&listed.last_modified),
            "<LastModified> of part {n} is {:?}, expected the form 2012-02-23T07:01:34.000Z",
            listed.last_modified
        );
    }
    Ok(())
}

async fn list_parts_with_max_parts_1_pages_through_every_part(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("paged.bin");
    let upload_id = ctx.initiate(&key).await?;
    let (_, parts) = upload_parts(ctx, &key, &upload_id, &[10, 20, 30]).await?;
    let mut marker: Option<u32> = None;
    let mut seen = Vec::new();
    for page_number in 1..=3u32 {
        let marker_text = marker.map(|m| m.to_string());
        let mut params = vec![("max-parts", "1")];
        if let Some(m) = &marker_text {
            params.push(("part-number-marker", m));
        }
        let page = list_parts(ctx, &key, &upload_id, &params).await?;
        ensure_eq!(page.max_parts, 1, "<MaxParts> of page {page_number}");
        ensure_eq!(
            page.part_number_marker,
            marker.unwrap_or(0),
            "<PartNumberMarker> of page {page_number}"
        );
        ensure_eq!(page.parts.len(), 1, "parts on page {page_number}");
        let number = page.parts[0].part_number;
        ensure_eq!(number, page_number, "part on page {page_number}");
        let last_page = page_number == 3;
        ensure_eq!(
            page.is_truncated,
            !last_page,
            "<IsTruncated> of page {page_number} of 3"
        );
        if !last_page {
            ensure_eq!(
                page.next_part_number_marker,
                number,
                "<NextPartNumberMarker> of page {page_number}"
            );
        }
        seen.push((number, page.parts[0].etag.clone()));
        marker = Some(page.next_part_number_marker.max(number));
    }
    let expected: Vec<(u32, String)> = parts.iter().map(|p| (p.number, p.etag.clone())).collect();
    ensure_eq!(seen, expected, "parts gathered page by page");
    Ok(())
}

async fn list_parts_after_the_last_part_is_an_empty_final_page(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("end.bin");
    let upload_id = ctx.initiate(&key).await?;
    upload_parts(ctx, &key, &upload_id, &[10, 20, 30]).await?;
    for marker in ["3", "9999"] {
        let page = list_parts(ctx, &key, &upload_id, &[("part-number-marker", marker)]).await?;
        ensure!(
            page.parts.is_empty(),
            "part-number-marker={marker} after the last part (3) listed parts {:?}",
            page.parts.iter().map(|p| p.part_number).collect::<Vec<_>>()
        );
        ensure!(
            !page.is_truncated,
            "part-number-marker={marker}: <IsTruncated> true on an empty page"
        );
    }
    Ok(())
}

async fn list_parts_with_an_empty_marker_starts_at_the_first_part(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("empty-marker.bin");
    let upload_id = ctx.initiate(&key).await?;
    upload_parts(ctx, &key, &upload_id, &[10, 20]).await?;
    let page = list_parts(ctx, &key, &upload_id, &[("part-number-marker", "")]).await?;
    let numbers: Vec<u32> = page.parts.iter().map(|p| p.part_number).collect();
    ensure_eq!(
        numbers,
        vec![1, 2],
        "parts listed with an empty part-number-marker"
    );
    ensure_eq!(page.part_number_marker, 0, "<PartNumberMarker>");
    Ok(())
}

async fn complete_joins_parts_and_returns_the_combined_crc(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("joined.bin");
    let upload_id = ctx.initiate(&key).await?;
    let (bodies, parts) = upload_parts(ctx, &key, &upload_id, &[FULL, FULL, 1000]).await?;
    let whole = concat(&bodies.iter().collect::<Vec<_>>());
    let response = ctx.complete(&key, &upload_id, &named(&parts)).await?;
    response.expect_status(200)?;
    let combined = crc64_of_parts(parts.iter().map(|p| (p.crc64, p.size)));
    ensure_eq!(
        combined,
        checksum::crc64(&whole),
        "combined part CRCs vs CRC of the bytes (local)"
    );
    response.expect_crc64(combined)?;
    let result: CompleteMultipartUploadResult = response.xml("CompleteMultipartUploadResult")?;
    ensure_eq!(result.bucket, ctx.bucket(), "<Bucket>");
    ensure_eq!(result.key, key, "<Key>");
    ensure!(!result.location.is_empty(), "<Location> is empty");
    ensure!(
        is_multipart_etag(&result.etag, 3),
        "<ETag> is {:?}, expected \"<32 uppercase hex>-3\"",
        result.etag
    );
    response.expect_header_eq("etag", &result.etag)?;

    let get = ctx.expect_object(&key, &whole).await?;
    get.expect_crc64(combined)?;
    get.expect_header_eq("etag", &result.etag)?;
    get.expect_header_eq("content-length", &whole.len().to_string())?;
    get.expect_header_eq("x-oss-object-type", "Multipart")?;
    let head = ctx
        .send(Request::head(Some(ctx.bucket()), Some(&key)))
        .await?;
    head.expect_status(200)?;
    head.expect_crc64(combined)?;
    head.expect_header_eq("etag", &result.etag)?;
    head.expect_header_eq("content-length", &whole.len().to_string())?;
    Ok(())
}

async fn complete_with_a_subset_of_parts_and_gaps_keeps_only_those(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("gaps.bin");
    let upload_id = ctx.initiate(&key).await?;
    let one = ctx.data(FULL);
    let three = ctx.data(FULL);
    let seven = ctx.data(333);
    let p1 = ctx.upload_part(&key, &upload_id, 1, &one).await?;
    ctx.upload_part(&key, &upload_id, 3, &three).await?;
    let p7 = ctx.upload_part(&key, &upload_id, 7, &seven).await?;
    let response = ctx
        .complete(&key, &upload_id, &named(&[p1.clone(), p7.clone()]))
        .await?;
    response.expect_status(200)?;
    let whole = concat(&[&one, &seven]);
    response.expect_crc64(checksum::crc64(&whole))?;
    let result: CompleteMultipartUploadResult = response.xml("CompleteMultipartUploadResult")?;
    ensure!(
        is_multipart_etag(&result.etag, 2),
        "<ETag> is {:?}, expected \"<32 uppercase hex>-2\" for 2 parts",
        result.etag
    );
    ctx.expect_object(&key, &whole).await?;
    Ok(())
}

async fn complete_with_a_part_under_100_kib_before_the_last_is_entity_too_small(
    ctx: &Ctx,
) -> CaseResult {
    let key = ctx.key("small.bin");
    let upload_id = ctx.initiate(&key).await?;
    let (bodies, parts) = upload_parts(ctx, &key, &upload_id, &[FULL - 1, 10]).await?;
    let response = ctx.complete(&key, &upload_id, &named(&parts)).await?;
    response.expect_error(400, "EntityTooSmall")?;
    let head = ctx
        .send(Request::head(Some(ctx.bucket()), Some(&key)))
        .await?;
    head.expect_error(404, "NoSuchKey")?;
    // The failed Complete leaves the upload open: the last part alone may be small.
    let response = ctx.complete(&key, &upload_id, &named(&parts[1..])).await?;
    response.expect_status(200)?;
    ctx.expect_object(&key, &bodies[1]).await?;
    Ok(())
}

async fn complete_with_a_wrong_etag_is_invalid_part(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("wrong-etag.bin");
    let upload_id = ctx.initiate(&key).await?;
    let (_, parts) = upload_parts(ctx, &key, &upload_id, &[FULL, 10]).await?;
    let other = etag::part_etag(&checksum::md5(b"not this part"));
    let response = ctx
        .complete(
            &key,
            &upload_id,
            &[(1, parts[0].etag.as_str()), (2, other.as_str())],
        )
        .await?;
    response.expect_error(400, "InvalidPart")?;
    Ok(())
}

async fn complete_with_a_part_never_uploaded_is_invalid_part(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("missing-part.bin");
    let upload_id = ctx.initiate(&key).await?;
    let (_, parts) = upload_parts(ctx, &key, &upload_id, &[FULL, 10]).await?;
    let response = ctx
        .complete(
            &key,
            &upload_id,
            &[
                (1, parts[0].etag.as_str()),
                (2, parts[1].etag.as_str()),
                (3, parts[1].etag.as_str()),
            ],
        )
        .await?;
    response.expect_error(400, "InvalidPart")?;
    Ok(())
}

async fn complete_with_descending_parts_is_invalid_part_order(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("order.bin");
    let upload_id = ctx.initiate(&key).await?;
    let (_, parts) = upload_parts(ctx, &key, &upload_id, &[FULL, FULL]).await?;
    let response = ctx
        .complete(
            &key,
            &upload_id,
            &[(2, parts[1].etag.as_str()), (1, parts[0].etag.as_str())],
        )
        .await?;
    response.expect_error(400, "InvalidPartOrder")?;
    Ok(())
}

async fn complete_with_malformed_xml_is_malformed_xml(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("malformed.bin");
    let upload_id = ctx.initiate(&key).await?;
    let (_, parts) = upload_parts(ctx, &key, &upload_id, &[10]).await?;
    let bodies = [
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>".to_owned(),
        "<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>\"X\"</ETag></Part></CompleteMultipartUpload>".to_owned(),
        "\u{0}\u{1}not xml at all".to_owned(),
    ];
    for body in bodies {
        let response = ctx
            .send(
                Request::post(Some(ctx.bucket()), Some(&key))
                    .query("uploadId", &upload_id)
                    .body(body.clone()),
            )
            .await?;
        response
            .expect_error(400, "MalformedXML")
            .context(format!("body {body:?}"))?;
    }
    ctx.complete(&key, &upload_id, &named(&parts))
        .await?
        .expect_status(200)?;
    Ok(())
}

async fn complete_accepts_entity_quoted_and_unquoted_etags(ctx: &Ctx) -> CaseResult {
    for (name, style) in [("entities", 0), ("unquoted", 1)] {
        let key = ctx.key(name);
        let upload_id = ctx.initiate(&key).await?;
        let (bodies, parts) = upload_parts(ctx, &key, &upload_id, &[FULL, 99]).await?;
        let mut body =
            String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUpload>\n");
        for part in &parts {
            let hex = etag::unquote(&part.etag);
            let written = if style == 0 {
                format!("&quot;{hex}&quot;")
            } else {
                hex.to_owned()
            };
            body.push_str(&format!(
                "  <Part>\n    <PartNumber>{}</PartNumber>\n    <ETag>{written}</ETag>\n  </Part>\n",
                part.number
            ));
        }
        body.push_str("</CompleteMultipartUpload>\n");
        ctx.track_object(ctx.bucket(), &key);
        let response = ctx
            .send(
                Request::post(Some(ctx.bucket()), Some(&key))
                    .query("uploadId", &upload_id)
                    .body(body),
            )
            .await?;
        response
            .expect_status(200)
            .context(format!("ETags written {name}"))?;
        ctx.expect_object(&key, &concat(&bodies.iter().collect::<Vec<_>>()))
            .await?;
    }
    Ok(())
}

async fn complete_all_header_joins_every_uploaded_part(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("complete-all.bin");
    let upload_id = ctx.initiate(&key).await?;
    let (bodies, parts) = upload_parts(ctx, &key, &upload_id, &[FULL, 4321]).await?;
    ctx.track_object(ctx.bucket(), &key);
    let response = ctx
        .send(
            Request::post(Some(ctx.bucket()), Some(&key))
                .query("uploadId", &upload_id)
                .header(COMPLETE_ALL, "yes"),
        )
        .await?;
    response.expect_status(200)?;
    let combined = crc64_of_parts(parts.iter().map(|p| (p.crc64, p.size)));
    response.expect_crc64(combined)?;
    let result: CompleteMultipartUploadResult = response.xml("CompleteMultipartUploadResult")?;
    ensure!(
        is_multipart_etag(&result.etag, 2),
        "<ETag> is {:?}, expected \"<32 uppercase hex>-2\"",
        result.etag
    );
    ctx.expect_object(&key, &concat(&bodies.iter().collect::<Vec<_>>()))
        .await?;
    Ok(())
}

async fn complete_all_header_with_a_body_is_invalid_argument(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("complete-all-body.bin");
    let upload_id = ctx.initiate(&key).await?;
    let (_, parts) = upload_parts(ctx, &key, &upload_id, &[10]).await?;
    let response = ctx
        .send(
            Request::post(Some(ctx.bucket()), Some(&key))
                .query("uploadId", &upload_id)
                .header(COMPLETE_ALL, "yes")
                .body(complete_body(&named(&parts))),
        )
        .await?;
    response.expect_error(400, "InvalidArgument")?;
    let page = list_parts(ctx, &key, &upload_id, &[]).await?;
    ensure_eq!(
        page.parts.len(),
        1,
        "parts still listed after the refused Complete"
    );
    Ok(())
}

async fn complete_then_every_upload_api_is_no_such_upload(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("completed.bin");
    let upload_id = ctx.initiate(&key).await?;
    let (bodies, parts) = upload_parts(ctx, &key, &upload_id, &[10]).await?;
    ctx.complete(&key, &upload_id, &named(&parts))
        .await?
        .expect_status(200)?;
    expect_no_such_upload(ctx, &key, &upload_id, "after Complete").await?;
    // None of those touched the object.
    let get = ctx
        .send(Request::get(Some(ctx.bucket()), Some(&key)))
        .await?;
    get.expect_status(200)?;
    expect_same_bytes(&get, &bodies[0])
}

async fn abort_answers_204_then_every_upload_api_is_no_such_upload(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("aborted.bin");
    let upload_id = ctx.initiate(&key).await?;
    upload_parts(ctx, &key, &upload_id, &[10, 20]).await?;
    let response = ctx
        .send(Request::delete(Some(ctx.bucket()), Some(&key)).query("uploadId", &upload_id))
        .await?;
    response.expect_status(204)?;
    ensure!(
        response.body.is_empty(),
        "Abort answered 204 with a {}-byte body",
        response.body.len()
    );
    expect_no_such_upload(ctx, &key, &upload_id, "after Abort").await?;
    let head = ctx
        .send(Request::head(Some(ctx.bucket()), Some(&key)))
        .await?;
    head.expect_error(404, "NoSuchKey")?;
    Ok(())
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_etags_are_recognised_by_shape() {
        assert!(is_multipart_etag(
            "\"0123456789ABCDEF0123456789ABCDEF-3\"",
            3
        ));
        assert!(!is_multipart_etag(
            "\"0123456789abcdef0123456789abcdef-3\"",
            3
        ));
        assert!(!is_multipart_etag(
            "\"0123456789ABCDEF0123456789ABCDEF-3\"",
            2
        ));
        assert!(!is_multipart_etag("0123456789ABCDEF0123456789ABCDEF-3", 3));
        assert!(!is_multipart_etag(
            "\"0123456789ABCDEF0123456789ABCDEF\"",
            1
        ));
    }

    #[test]
    fn iso8601_with_milliseconds_is_recognised() {
        assert!(is_iso8601_millis("2012-02-23T07:01:34.000Z"));
        assert!(!is_iso8601_millis("2012-02-23T07:01:34Z"));
        assert!(!is_iso8601_millis("Thu, 23 Feb 2012 07:01:34 GMT"));
    }
}
