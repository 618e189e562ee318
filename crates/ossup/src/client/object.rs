//! The single-object APIs: PutObject (with the same checks as UploadPart), HeadObject, GetObject,
//! DeleteObject, and what an answer to a request with an upload callback says.

use std::ops::Range;

use http::{HeaderMap, HeaderValue, Method};
use ossup_proto::{Api, checksum, etag, headers};

use super::document::crc_header;
use super::{Client, ObjectBody, ObjectHead, Op, PartBody, StoredBody};
use crate::callback::{Callback, CallbackResult};
use crate::wire::{self, CALLBACK_REPLY_LIMIT, header_str};
use crate::{Error, ObjectOptions, ResponseBody};

impl Client {
    /// PutObject: uploads `body` as the whole object, with the same checks as
    /// [`upload_part`](Self::upload_part).
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: PartBody,
        options: &ObjectOptions,
    ) -> Result<StoredBody, Error> {
        self.put_object_inner(bucket, key, body, options, None)
            .await
    }

    /// PutObject with an upload callback: as [`put_object`](Self::put_object), and the answer's
    /// [`callback`](StoredBody::callback) says what came of the callback. A `203 CallbackFailed`
    /// answer is not an error here: the object is stored (and checked like any other), only the
    /// callback failed.
    pub async fn put_object_with_callback(
        &self,
        bucket: &str,
        key: &str,
        body: PartBody,
        options: &ObjectOptions,
        callback: &Callback,
    ) -> Result<StoredBody, Error> {
        self.put_object_inner(bucket, key, body, options, Some(callback))
            .await
    }

    async fn put_object_inner(
        &self,
        bucket: &str,
        key: &str,
        body: PartBody,
        options: &ObjectOptions,
        callback: Option<&Callback>,
    ) -> Result<StoredBody, Error> {
        let mut op = Op::new(Api::PutObject, Method::PUT, bucket, Some(key));
        options.apply(&mut op.headers).map_err(|e| op.context(e))?;
        if let Some(callback) = callback {
            add_callback(&mut op, callback)?;
        }
        self.send_body(op, body, callback.is_some()).await
    }

    pub(super) async fn send_body(
        &self,
        mut op: Op<'_>,
        body: PartBody,
        with_callback: bool,
    ) -> Result<StoredBody, Error> {
        if let Some(md5) = &body.md5 {
            op.headers.insert(
                "content-md5",
                HeaderValue::from_str(&checksum::content_md5(md5))
                    .expect("base64 is a header value"),
            );
        }
        if let Some(bits) = body.traffic_limit {
            op.headers
                .insert("x-oss-traffic-limit", HeaderValue::from(bits));
        }
        op.body = body.data;
        let response = self.execute(&op).await?;
        let headers = response.headers();
        let mut etag = header_str(headers, "etag").unwrap_or_default().to_owned();
        let mut crc64 = crc_header(headers).map_err(|e| op.context(e))?;
        let request_id = header_str(headers, headers::REQUEST_ID)
            .unwrap_or_default()
            .to_owned();
        let callback = if with_callback {
            let result = callback_result(response).await.map_err(|e| op.context(e))?;
            if etag.is_empty() {
                // A failed callback's answer need not carry the object's headers: ask for them.
                if let Some(head) = self
                    .head_object(op.bucket, op.key.unwrap_or_default())
                    .await?
                {
                    etag = head.etag;
                    crc64 = crc64.or(head.crc64);
                }
            }
            Some(result)
        } else {
            drop(response);
            None
        };
        let verified_md5 = match &body.md5 {
            Some(md5) => {
                if !etag::same(&etag, &etag::part_etag(md5)) {
                    return Err(op.context(Error::integrity(format!(
                        "the server's ETag {etag} is not the MD5 {} of the bytes sent (request {request_id})",
                        hex::encode_upper(md5)
                    ))));
                }
                true
            }
            None => false,
        };
        match (body.crc64, crc64) {
            (Some(expected), Some(got)) if expected != got => {
                return Err(op.context(Error::integrity(format!(
                    "the server's CRC-64 {got} is not the CRC-64 {expected} of the bytes sent (request {request_id})"
                ))));
            }
            (Some(_), None) if !verified_md5 => {
                return Err(op.context(Error::integrity(format!(
                    "the server returned no {} and no MD5 was sent, so the bytes stored cannot be verified (request {request_id})",
                    headers::HASH_CRC64ECMA
                ))));
            }
            _ => {}
        }
        Ok(StoredBody {
            etag,
            crc64,
            request_id,
            callback,
        })
    }

    /// HeadObject: the object's size, ETag and CRC-64, or `None` when there is no such object.
    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectHead>, Error> {
        let op = Op::new(Api::HeadObject, Method::HEAD, bucket, Some(key));
        match self.execute(&op).await {
            Ok(response) => object_head(response.headers(), None)
                .map(Some)
                .map_err(|e| op.context(e)),
            Err(e) if e.service_error().is_some_and(|s| s.status == 404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GetObject of the whole object or of `range` (byte offsets, end exclusive).
    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<ObjectBody, Error> {
        let mut op = Op::new(Api::GetObject, Method::GET, bucket, Some(key));
        if let Some(range) = &range {
            if range.start >= range.end {
                return Err(op.context(Error::config(format!(
                    "range {range:?} is empty; give start < end"
                ))));
            }
            let value = format!("bytes={}-{}", range.start, range.end - 1);
            op.headers.insert(
                http::header::RANGE,
                HeaderValue::from_str(&value).expect("digits are a header value"),
            );
        }
        let response = self.execute(&op).await?;
        let (parts, body) = response.into_parts();
        let head = object_head(&parts.headers, range).map_err(|e| op.context(e))?;
        Ok(ObjectBody { head, body })
    }

    /// DeleteObject.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), Error> {
        let op = Op::new(Api::DeleteObject, Method::DELETE, bucket, Some(key));
        self.execute(&op).await?;
        Ok(())
    }
}

/// Adds `x-oss-callback` (and `x-oss-callback-var`) to a request.
pub(super) fn add_callback(op: &mut Op<'_>, callback: &Callback) -> Result<(), Error> {
    for (name, value) in callback.headers().map_err(|e| op.context(e))? {
        op.headers.insert(name, value);
    }
    Ok(())
}

/// What an answer to a request with a callback says of it: `203` is OSS's `CallbackFailed` (the
/// object stored, the callback not); any other success carries the callback server's reply.
pub(super) async fn callback_result(
    response: http::Response<ResponseBody>,
) -> Result<CallbackResult, Error> {
    if response.status() == http::StatusCode::NON_AUTHORITATIVE_INFORMATION {
        let (answer, _) = wire::read_error_answer(response).await;
        return Ok(CallbackResult::Failed {
            error: answer.service,
        });
    }
    let body = response.into_body().collect(CALLBACK_REPLY_LIMIT).await?;
    Ok(CallbackResult::Replied {
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn object_head(headers: &HeaderMap, range: Option<Range<u64>>) -> Result<ObjectHead, Error> {
    let size = match header_str(headers, "content-length") {
        Some(len) => len.trim().parse().map_err(|_| {
            Error::malformed_response(format!(
                "Content-Length {len:?} is not a number (request {})",
                wire::request_id(headers)
            ))
        })?,
        None => range.map(|r| r.end - r.start).unwrap_or(0),
    };
    let metadata = headers
        .iter()
        .filter_map(|(name, value)| {
            let meta = name.as_str().strip_prefix(headers::META_PREFIX)?;
            Some((meta.to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    Ok(ObjectHead {
        size,
        etag: header_str(headers, "etag").unwrap_or_default().to_owned(),
        crc64: crc_header(headers)?,
        content_type: header_str(headers, "content-type").map(str::to_owned),
        object_type: header_str(headers, headers::OBJECT_TYPE).map(str::to_owned),
        last_modified: header_str(headers, "last-modified").map(str::to_owned),
        metadata,
    })
}
