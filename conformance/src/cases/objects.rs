//! PutObject, GetObject (with Range), HeadObject and DeleteObject.

use ossup_proto::Api;
use ossup_proto::checksum::{self, content_md5, md5};
use ossup_proto::etag::part_etag;

use crate::case::{Case, Ctx, expect_same_bytes};
use crate::check::{CaseResult, Context};
use crate::client::Request;
use crate::{case, ensure, ensure_eq};

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!(
            put_object_answers_md5_etag_and_crc64,
            Api::PutObject,
            "200, ETag \"UPPERHEX-MD5\", x-oss-hash-crc64ecma = CRC-64/XZ of the body"
        ),
        case!(
            put_object_with_wrong_content_md5_is_invalid_digest,
            Api::PutObject,
            "Content-MD5 of other bytes: 400 InvalidDigest, and no object is created"
        ),
        case!(
            put_object_again_replaces_the_object,
            Api::PutObject,
            "a second PutObject of the key: GetObject returns the second body, ETag and CRC"
        ),
        case!(
            put_object_of_an_empty_body_makes_an_empty_object,
            Api::PutObject,
            "0 bytes: 200, ETag of the empty MD5, CRC 0; GetObject returns 0 bytes"
        ),
        case!(
            get_object_returns_body_length_etag_crc_and_type,
            Api::GetObject,
            "200, the bytes, Content-Length, ETag, CRC, Content-Type as put, Last-Modified, x-oss-object-type Normal"
        ),
        case!(
            get_object_with_a_range_returns_206_and_that_range,
            Api::GetObject,
            "bytes=10-19, bytes=-7, bytes=4090-: 206, Content-Range bytes A-B/N, those bytes"
        ),
        case!(
            get_object_with_an_unsatisfiable_range_returns_the_whole_object,
            Api::GetObject,
            "bytes=N-, bytes=0-N, bytes=N-2N on an N-byte object: 200 and every byte, as OSS does by default"
        ),
        case!(
            get_object_of_a_missing_key_is_no_such_key,
            Api::GetObject,
            "404 NoSuchKey with RequestId and HostId"
        ),
        case!(
            head_object_returns_metadata_and_no_body,
            Api::HeadObject,
            "200, no body, Content-Length, ETag, CRC, Content-Type and x-oss-meta-* as put"
        ),
        case!(
            put_object_keeps_content_headers_encryption_and_tags,
            Api::HeadObject,
            "Cache-Control, Content-Disposition, Expires, SSE AES256 and two tags on PutObject: HEAD returns them, the tags as x-oss-tagging-count 2"
        ),
        case!(
            head_object_of_a_missing_key_is_404_with_a_request_id,
            Api::HeadObject,
            "404, no body, x-oss-request-id, the NoSuchKey document base64-encoded in x-oss-err"
        ),
        case!(
            copy_object_copies_bytes_and_metadata,
            Api::CopyObject,
            "PUT with x-oss-copy-source: 200 <CopyObjectResult><ETag>; the copy's bytes and x-oss-meta-* are the source's, or the request's with x-oss-metadata-directive REPLACE; a missing source 404 NoSuchKey"
        ),
        case!(
            delete_object_answers_204_and_the_object_is_gone,
            Api::DeleteObject,
            "204; then GetObject 404 NoSuchKey; deleting it again is 204 too"
        ),
    ]
}

async fn put_object_answers_md5_etag_and_crc64(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("put.bin");
    let body = ctx.data(5000);
    // Ctx::put_object checks the ETag and CRC of the answer.
    ctx.put_object(&key, &body).await?;
    ctx.expect_object(&key, &body).await?;
    Ok(())
}

async fn put_object_with_wrong_content_md5_is_invalid_digest(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("bad-md5.bin");
    ctx.track_object(ctx.bucket(), &key);
    let response = ctx
        .send(
            Request::put(Some(ctx.bucket()), Some(&key))
                .header("content-md5", &content_md5(&md5(b"something else")))
                .body(ctx.data(2000)),
        )
        .await?;
    response.expect_error(400, "InvalidDigest")?;
    let get = ctx
        .send(Request::get(Some(ctx.bucket()), Some(&key)))
        .await?;
    get.expect_error(404, "NoSuchKey")?;
    Ok(())
}

async fn put_object_again_replaces_the_object(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("replaced.bin");
    ctx.put_object(&key, &ctx.data(3000)).await?;
    let second = ctx.data(1234);
    ctx.put_object(&key, &second).await?;
    let get = ctx.expect_object(&key, &second).await?;
    get.expect_header_eq("etag", &part_etag(&md5(&second)))?;
    get.expect_crc64(checksum::crc64(&second))?;
    Ok(())
}

async fn put_object_of_an_empty_body_makes_an_empty_object(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("empty");
    let response = ctx.put_object(&key, &bytes::Bytes::new()).await?;
    response.expect_header_eq("etag", "\"D41D8CD98F00B204E9800998ECF8427E\"")?;
    response.expect_crc64(0)?;
    let get = ctx.expect_object(&key, b"").await?;
    get.expect_header_eq("content-length", "0")?;
    get.expect_crc64(0)?;
    Ok(())
}

async fn get_object_returns_body_length_etag_crc_and_type(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("typed.txt");
    let body = ctx.data(2048);
    ctx.track_object(ctx.bucket(), &key);
    ctx.send(
        Request::put(Some(ctx.bucket()), Some(&key))
            .header("content-type", "text/plain")
            .body(body.clone()),
    )
    .await?
    .expect_status(200)?;
    let get = ctx.expect_object(&key, &body).await?;
    get.expect_header_eq("content-length", "2048")?;
    get.expect_header_eq("etag", &part_etag(&md5(&body)))?;
    get.expect_crc64(checksum::crc64(&body))?;
    get.expect_header_eq("content-type", "text/plain")?;
    get.expect_header_eq("x-oss-object-type", "Normal")?;
    let modified = get.expect_header("last-modified")?;
    ensure!(
        httpdate::parse_http_date(modified).is_ok(),
        "Last-Modified {modified:?} is not an HTTP date"
    );
    Ok(())
}

async fn get_object_with_a_range_returns_206_and_that_range(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("ranged.bin");
    let body = ctx.data(4096);
    ctx.put_object(&key, &body).await?;
    let n = body.len();
    for (range, start, end) in [
        ("bytes=10-19", 10, 19),
        ("bytes=-7", n - 7, n - 1),
        ("bytes=4090-", 4090, n - 1),
        ("bytes=0-0", 0, 0),
    ] {
        let response = ctx
            .send(Request::get(Some(ctx.bucket()), Some(&key)).header("range", range))
            .await?;
        response.expect_status(206)?;
        response.expect_header_eq("content-range", &format!("bytes {start}-{end}/{n}"))?;
        response.expect_header_eq("content-length", &(end - start + 1).to_string())?;
        expect_same_bytes(&response, &body[start..=end])?;
    }
    Ok(())
}

async fn get_object_with_an_unsatisfiable_range_returns_the_whole_object(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("out-of-range.bin");
    let body = ctx.data(1000);
    ctx.put_object(&key, &body).await?;
    for range in ["bytes=1000-", "bytes=0-1000", "bytes=1000-2000"] {
        let response = ctx
            .send(Request::get(Some(ctx.bucket()), Some(&key)).header("range", range))
            .await?;
        response.expect_status(200)?;
        ensure!(
            response.header("content-range").is_none(),
            "Range {range} on a 1000-byte object: 200 with Content-Range {:?}",
            response.header("content-range")
        );
        expect_same_bytes(&response, &body)?;
    }
    Ok(())
}

async fn get_object_of_a_missing_key_is_no_such_key(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("never-written");
    let response = ctx
        .send(Request::get(Some(ctx.bucket()), Some(&key)))
        .await?;
    response.expect_error(404, "NoSuchKey")?;
    Ok(())
}

async fn head_object_returns_metadata_and_no_body(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("meta.json");
    let body = ctx.data(777);
    ctx.track_object(ctx.bucket(), &key);
    ctx.send(
        Request::put(Some(ctx.bucket()), Some(&key))
            .header("content-type", "application/json")
            .header("x-oss-meta-color", "blue")
            .header("x-oss-meta-owner", "conformance")
            .body(body.clone()),
    )
    .await?
    .expect_status(200)?;
    let head = ctx
        .send(Request::head(Some(ctx.bucket()), Some(&key)))
        .await?;
    head.expect_status(200)?;
    ensure!(
        head.body.is_empty(),
        "HEAD answered with a {}-byte body",
        head.body.len()
    );
    head.expect_header_eq("content-length", "777")?;
    head.expect_header_eq("etag", &part_etag(&md5(&body)))?;
    head.expect_crc64(checksum::crc64(&body))?;
    head.expect_header_eq("content-type", "application/json")?;
    head.expect_header_eq("x-oss-meta-color", "blue")?;
    head.expect_header_eq("x-oss-meta-owner", "conformance")?;
    Ok(())
}

async fn put_object_keeps_content_headers_encryption_and_tags(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("options.bin");
    ctx.track_object(ctx.bucket(), &key);
    let stored = [
        ("cache-control", "max-age=60"),
        (
            "content-disposition",
            "attachment; filename=\"options.bin\"",
        ),
        ("expires", "Wed, 21 Oct 2026 07:28:00 GMT"),
        ("x-oss-server-side-encryption", "AES256"),
    ];
    let mut put = Request::put(Some(ctx.bucket()), Some(&key))
        .header("x-oss-tagging", "team=conformance&tier=1")
        .body(ctx.data(100));
    for (name, value) in stored {
        put = put.header(name, value);
    }
    ctx.send(put).await?.expect_status(200)?;
    let head = ctx
        .send(Request::head(Some(ctx.bucket()), Some(&key)))
        .await?;
    head.expect_status(200)?;
    for (name, value) in stored {
        head.expect_header_eq(name, value)?;
    }
    head.expect_header_eq("x-oss-tagging-count", "2")?;
    ensure!(
        head.header("x-oss-tagging").is_none(),
        "HEAD returned the tags themselves in x-oss-tagging; OSS returns only their count"
    );
    Ok(())
}

async fn head_object_of_a_missing_key_is_404_with_a_request_id(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("never-written");
    let response = ctx
        .send(Request::head(Some(ctx.bucket()), Some(&key)))
        .await?;
    response.expect_error(404, "NoSuchKey")?;
    Ok(())
}

async fn delete_object_answers_204_and_the_object_is_gone(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("deleted.bin");
    ctx.put_object(&key, &ctx.data(100)).await?;
    for attempt in ["first", "second"] {
        let response = ctx
            .send(Request::delete(Some(ctx.bucket()), Some(&key)))
            .await?;
        response
            .expect_status(204)
            .context(format!("{attempt} DeleteObject"))?;
        ensure_eq!(response.body.len(), 0, "body length of the {attempt} 204");
    }
    let get = ctx
        .send(Request::get(Some(ctx.bucket()), Some(&key)))
        .await?;
    get.expect_error(404, "NoSuchKey")?;
    Ok(())
}

async fn copy_object_copies_bytes_and_metadata(ctx: &Ctx) -> CaseResult {
    let source = ctx.key("copy/source file.bin");
    let body = ctx.data(5000);
    let put = Request::put(Some(ctx.bucket()), Some(&source))
        .header("x-oss-meta-origin", "source")
        .body(body.clone());
    ctx.send(put)
        .await?
        .expect_status(200)
        .context("PutObject of the source")?;
    ctx.track_object(ctx.bucket(), &source);
    let copy_source = format!(
        "/{}/{}",
        ctx.bucket(),
        crate::client::encode_key(&source, crate::client::KeyEncoding::KeepSlash)
    );
    for (name, directive, origin) in [
        ("copy", None, "source"),
        ("replaced", Some("REPLACE"), "request"),
    ] {
        let key = ctx.key(&format!("copy/{name}.bin"));
        let mut copy =
            Request::put(Some(ctx.bucket()), Some(&key)).header("x-oss-copy-source", &copy_source);
        if let Some(directive) = directive {
            copy = copy
                .header("x-oss-metadata-directive", directive)
                .header("x-oss-meta-origin", "request");
        }
        let response = ctx.send(copy).await?;
        response
            .expect_status(200)
            .context(format!("CopyObject to {name}"))?;
        ctx.track_object(ctx.bucket(), &key);
        let result: ossup_proto::xml::CopyObjectResult = response.xml("CopyObjectResult")?;
        ensure!(!result.etag.is_empty(), "CopyObjectResult has no ETag");
        let got = ctx.expect_object(&key, &body).await?;
        ensure_eq!(
            got.header("x-oss-meta-origin"),
            Some(origin),
            "x-oss-meta-origin of {name}"
        );
    }
    let missing = Request::put(Some(ctx.bucket()), Some(&ctx.key("copy/of-nothing.bin"))).header(
        "x-oss-copy-source",
        &format!("/{}/{}", ctx.bucket(), ctx.key("copy/never-written")),
    );
    ctx.send(missing)
        .await?
        .expect_error(404, "NoSuchKey")
        .context("CopyObject of a missing source")?;
    Ok(())
}
