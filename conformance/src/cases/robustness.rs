//! Hostile and broken input: truncated bodies, vanished clients, oversized XML, errors on a kept-alive
//! connection, and a request id on every answer.

use std::time::Duration;

use ossup_proto::Api;
use ossup_proto::xml::ListPartsResult;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::case::{Case, Ctx, complete_body, upload_part_request};
use crate::check::{CaseError, CaseResult, Context};
use crate::client::{Auth, Request};
use crate::{case, ensure, ensure_eq};

/// How long a raw exchange waits for the server to answer or close.
const RAW_TIMEOUT: Duration = Duration::from_secs(15);

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!(
            truncated_part_body_stores_nothing_and_the_server_keeps_serving,
            Api::UploadPart,
            "Content-Length 200000, 1000 bytes sent, write side closed: a 400 or a closed connection; no part listed; the part then uploads"
        ),
        case!(
            client_vanishing_mid_part_stores_nothing,
            Api::UploadPart,
            "connection dropped after half a part: no part listed; the server keeps serving"
        ),
        case!(
            oversized_complete_body_is_malformed_xml_and_the_upload_stays_open,
            Api::CompleteMultipartUpload,
            "a 4 MiB Complete document (padding): 400 MalformedXML; the upload still completes"
        ),
        case!(
            error_answers_leave_a_kept_alive_connection_usable,
            Api::UploadPart,
            "on one connection: InvalidDigest for a 300 KB part, then NoSuchBucket for a 300 KB put, each followed by a request that succeeds (or the error said Connection: close)"
        ),
        case!(
            every_answer_carries_a_request_id,
            Api::HeadObject,
            "200, 204, 206, 400, 403, 404 and a HEAD 404: each has x-oss-request-id; error bodies repeat it in <RequestId>"
        ),
    ]
}

/// What came back on a raw connection: the status line's code, or nothing if the server closed.
async fn raw_exchange(
    ctx: &Ctx,
    bytes: &[u8],
    then: RawEnd,
) -> Result<Option<(u16, String)>, CaseError> {
    let address = ctx.client().config().endpoint.socket_address();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .map_err(|e| CaseError::failed(format!("connect to {address}: {e}")))?;
    stream
        .write_all(bytes)
        .await
        .map_err(|e| CaseError::failed(format!("writing to {address}: {e}")))?;
    match then {
        RawEnd::HalfClose => {
            stream
                .shutdown()
                .await
                .map_err(|e| CaseError::failed(format!("half-closing {address}: {e}")))?;
        }
        RawEnd::Drop => {
            drop(stream);
            return Ok(None);
        }
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(RAW_TIMEOUT, stream.read_to_end(&mut answer)).await;
    match read {
        Err(_) => Err(CaseError::failed(format!(
            "the server neither answered nor closed within {RAW_TIMEOUT:?} after the client closed its side"
        ))),
        // A reset is a clean enough end for a request that can never complete.
        Ok(Err(_)) if answer.is_empty() => Ok(None),
        Ok(_) if answer.is_empty() => Ok(None),
        Ok(_) => {
            let text = String::from_utf8_lossy(&answer).into_owned();
            let code = text
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| {
                    CaseError::failed(format!(
                        "not an HTTP answer: {:?}",
                        text.chars().take(200).collect::<String>()
                    ))
                })?;
            Ok(Some((code, text)))
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum RawEnd {
    HalfClose,
    Drop,
}

async fn listed_parts(ctx: &Ctx, key: &str, upload_id: &str) -> Result<Vec<(u32, u64)>, CaseError> {
    let response = ctx
        .send(Request::get(Some(ctx.bucket()), Some(key)).query("uploadId", upload_id))
        .await?;
    response.expect_status(200)?;
    let page: ListPartsResult = response.xml("ListPartsResult")?;
    Ok(page.parts.iter().map(|p| (p.part_number, p.size)).collect())
}

/// The HTTP/1.1 bytes of an UploadPart of `len` bytes, cut after `sent` body bytes.
fn cut_upload_part(
    ctx: &Ctx,
    key: &str,
    upload_id: &str,
    len: usize,
    sent: usize,
) -> Result<Vec<u8>, CaseError> {
    let body = ctx.data(len);
    let prepared =
        ctx.client()
            .prepare(&upload_part_request(ctx.bucket(), key, upload_id, 1, body))?;
    let mut bytes = prepared.to_http1_bytes();
    bytes.truncate(bytes.len() - len + sent);
    Ok(bytes)
}

async fn truncated_part_body_stores_nothing_and_the_server_keeps_serving(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("truncated.bin");
    let upload_id = ctx.initiate(&key).await?;
    let bytes = cut_upload_part(ctx, &key, &upload_id, 200_000, 1000)?;
    if let Some((status, text)) = raw_exchange(ctx, &bytes, RawEnd::HalfClose).await? {
        ensure!(
            status == 400,
            "a truncated UploadPart was answered {status}, expected 400 (IncompleteBody) or a closed connection: {:?}",
            text.chars().take(300).collect::<String>()
        );
    }
    ensure_eq!(
        listed_parts(ctx, &key, &upload_id).await?,
        Vec::<(u32, u64)>::new(),
        "parts listed after a truncated UploadPart"
    );
    let body = ctx.data(2000);
    ctx.upload_part(&key, &upload_id, 1, &body).await?;
    ensure_eq!(
        listed_parts(ctx, &key, &upload_id).await?,
        vec![(1, 2000)],
        "parts listed after uploading the part in full"
    );
    Ok(())
}

async fn client_vanishing_mid_part_stores_nothing(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("vanished.bin");
    let upload_id = ctx.initiate(&key).await?;
    let bytes = cut_upload_part(ctx, &key, &upload_id, 300_000, 150_000)?;
    raw_exchange(ctx, &bytes, RawEnd::Drop).await?;
    // Let the server notice the closed connection before asking what it kept.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure_eq!(
        listed_parts(ctx, &key, &upload_id).await?,
        Vec::<(u32, u64)>::new(),
        "parts listed after the client vanished mid-part"
    );
    ctx.upload_part(&key, &upload_id, 2, &ctx.data(10)).await?;
    ensure_eq!(
        listed_parts(ctx, &key, &upload_id).await?,
        vec![(2, 10)],
        "parts listed after a later complete part"
    );
    Ok(())
}

async fn oversized_complete_body_is_malformed_xml_and_the_upload_stays_open(
    ctx: &Ctx,
) -> CaseResult {
    let key = ctx.key("oversized.bin");
    let upload_id = ctx.initiate(&key).await?;
    let part = ctx.upload_part(&key, &upload_id, 1, &ctx.data(10)).await?;
    let padding = " ".repeat(4 << 20);
    let body = format!(
        "<CompleteMultipartUpload>{padding}<Part><PartNumber>1</PartNumber><ETag>{}</ETag></Part></CompleteMultipartUpload>",
        part.etag
    );
    let response = ctx
        .send(
            Request::post(Some(ctx.bucket()), Some(&key))
                .query("uploadId", &upload_id)
                .body(body),
        )
        .await?;
    response.expect_error(400, "MalformedXML")?;
    ctx.complete(&key, &upload_id, &[(1, &part.etag)])
        .await?
        .expect_status(200)
        .context("Complete after the oversized one")?;
    Ok(())
}

async fn error_answers_leave_a_kept_alive_connection_usable(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("keep-alive.bin");
    let upload_id = ctx.initiate(&key).await?;
    let wrong_md5 = ossup_proto::checksum::content_md5(&ossup_proto::checksum::md5(b"no"));
    let missing_bucket = ctx.bucket_name("missing");
    let steps: [(&str, Request, u16, &str); 2] = [
        (
            "UploadPart with a wrong Content-MD5",
            upload_part_request(ctx.bucket(), &key, &upload_id, 1, ctx.data(300_000))
                .header("content-md5", &wrong_md5),
            400,
            "InvalidDigest",
        ),
        (
            "PutObject into a missing bucket",
            Request::put(Some(&missing_bucket), Some(&key)).body(ctx.data(300_000)),
            404,
            "NoSuchBucket",
        ),
    ];
    for (what, request, status, code) in steps {
        let mut connection = ctx.client().connect().await?;
        let response = connection.send(request).await?;
        response.expect_error(status, code).context(what)?;
        let closes = response
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if closes {
            continue;
        }
        let next = connection
            .send(Request::get(Some(ctx.bucket()), Some(&key)).query("uploadId", &upload_id))
            .await
            .map_err(|e| {
                CaseError::failed(format!(
                    "after {what} answered {status} without Connection: close, the next request on the connection failed: {e}"
                ))
            })?;
        next.expect_status(200)
            .context(format!("ListParts on the connection after {what}"))?;
    }
    Ok(())
}

async fn every_answer_carries_a_request_id(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("ids.bin");
    let missing = ctx.key("missing.bin");
    let bucket = ctx.bucket();
    let requests = [
        (
            200,
            Request::put(Some(bucket), Some(&key)).body(ctx.data(100)),
        ),
        (
            206,
            Request::get(Some(bucket), Some(&key)).header("range", "bytes=0-9"),
        ),
        (200, Request::head(Some(bucket), Some(&key))),
        (
            400,
            Request::put(Some(bucket), Some(&key))
                .header("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")
                .body("not empty"),
        ),
        (
            403,
            Request::get(Some(bucket), Some(&key)).auth(Auth::Unsigned),
        ),
        (404, Request::get(Some(bucket), Some(&missing))),
        (404, Request::head(Some(bucket), Some(&missing))),
        (
            404,
            Request::post(Some(bucket), Some(&key))
                .query("uploadId", "0004B9894A22E5B1888A1E29F823DEAD")
                .body(complete_body(&[(
                    1,
                    "\"00000000000000000000000000000000\"",
                )])),
        ),
        (204, Request::delete(Some(bucket), Some(&key))),
    ];
    ctx.track_object(bucket, &key);
    for (status, request) in requests {
        let response = ctx.send(request).await?;
        response.expect_status(status)?;
        let id = response.expect_header(ossup_proto::headers::REQUEST_ID)?;
        ensure!(
            !id.is_empty(),
            "empty x-oss-request-id on {}",
            response.describe()
        );
        if status >= 400 && !response.what.starts_with("HEAD ") {
            let error = response.error().ok_or_else(|| {
                CaseError::failed(format!("{}: no <Error> document", response.describe()))
            })?;
            ensure_eq!(
                error.request_id,
                id,
                "<RequestId> vs x-oss-request-id of {}",
                response.what
            );
        }
    }
    Ok(())
}
