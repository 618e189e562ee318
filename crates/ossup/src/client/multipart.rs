//! The multipart APIs: InitiateMultipartUpload, UploadPart, ListParts, CompleteMultipartUpload,
//! AbortMultipartUpload, ListMultipartUploads.

use bytes::Bytes;
use http::{HeaderValue, Method};
use ossup_proto::xml::{
    CompleteMultipartUpload, CompleteMultipartUploadResult, CompletePart,
    InitiateMultipartUploadResult, ListMultipartUploadsResult, ListPartsResult, ListedPart,
    ListedUpload, to_xml,
};
use ossup_proto::{Api, headers, limits};

use super::document::crc_header;
use super::object::{add_callback, callback_result};
use super::{Client, CompletedUpload, ListCaps, Op, PartBody, StoredBody};
use crate::callback::Callback;
use crate::wire::{CALLBACK_REPLY_LIMIT, ReadBody, header_str};
use crate::{Error, ObjectOptions};

impl Client {
    /// The most parts [`list_parts`](Self::list_parts) gathers: an upload has at most 10,000
    /// ([`limits::MAX_PART_NUMBER`]), so a listing that goes on past that is not OSS's protocol.
    pub const MAX_LISTED_PARTS: usize = limits::MAX_PART_NUMBER as usize;

    /// The most uploads [`list_multipart_uploads`](Self::list_multipart_uploads) gathers before it
    /// gives up with a [`MalformedResponse`](crate::ErrorKind::MalformedResponse) error: a million,
    /// so a server that never ends its listing cannot keep the client asking forever.
    pub const MAX_LISTED_UPLOADS: usize = 1_000_000;

    /// The most pages [`list_multipart_uploads`](Self::list_multipart_uploads) asks for: 2,000,
    /// twice what [`MAX_LISTED_UPLOADS`](Self::MAX_LISTED_UPLOADS) takes in full pages of 1,000.
    pub const MAX_UPLOAD_PAGES: usize = 2_000;

    /// InitiateMultipartUpload: starts an upload of `key` with `options`; returns its upload id.
    pub async fn initiate_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        options: &ObjectOptions,
    ) -> Result<String, Error> {
        let mut op = Op::new(
            Api::InitiateMultipartUpload,
            Method::POST,
            bucket,
            Some(key),
        )
        .query("uploads", "");
        options.apply(&mut op.headers).map_err(|e| op.context(e))?;
        let (_, doc) = self
            .execute_document::<InitiateMultipartUploadResult>(
                &mut op,
                "InitiateMultipartUploadResult",
            )
            .await?;
        if doc.upload_id.is_empty() {
            return Err(op.context(Error::malformed_response(
                "InitiateMultipartUploadResult has an empty UploadId",
            )));
        }
        Ok(doc.upload_id)
    }

    /// UploadPart: sends part `number`, then checks the answer against `body`'s checksums: the ETag
    /// against the MD5 (sent as `Content-MD5`), `x-oss-hash-crc64ecma` against the CRC-64.
    ///
    /// Without an MD5 the CRC-64 must be returned and match; a mismatch of either is an
    /// [`ErrorKind::Integrity`](crate::ErrorKind::Integrity) error.
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: PartBody,
    ) -> Result<StoredBody, Error> {
        let mut op = Op::new(Api::UploadPart, Method::PUT, bucket, Some(key))
            .query("partNumber", number.to_string())
            .query("uploadId", upload_id);
        op.part = Some(number);
        op.upload_id = Some(upload_id);
        if !(limits::MIN_PART_NUMBER..=limits::MAX_PART_NUMBER).contains(&number) {
            return Err(op.context(Error::config(format!(
                "part number {number} is outside 1..=10000"
            ))));
        }
        self.send_body(op, body, false).await
    }

    /// One page of ListParts, starting after part `marker` (0 for the first page).
    pub async fn list_parts_page(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        marker: u32,
        max_parts: Option<u32>,
    ) -> Result<ListPartsResult, Error> {
        let mut op =
            Op::new(Api::ListParts, Method::GET, bucket, Some(key)).query("uploadId", upload_id);
        if let Some(max) = max_parts {
            op = op.query("max-parts", max.min(limits::MAX_LIST_PARTS).to_string());
        }
        if marker > 0 {
            op = op.query("part-number-marker", marker.to_string());
        }
        op.upload_id = Some(upload_id);
        let (_, doc) = self.execute_document(&mut op, "ListPartsResult").await?;
        Ok(doc)
    }

    /// ListParts, every page: all the parts the server holds for the upload, ascending.
    ///
    /// Each page's next part-number marker must be greater than the previous one and below the
    /// last part number, and the listing must hold at most
    /// [`MAX_LISTED_PARTS`](Self::MAX_LISTED_PARTS) parts; otherwise the listing stops with a
    /// [`MalformedResponse`](crate::ErrorKind::MalformedResponse) error naming ListParts.
    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<ListedPart>, Error> {
        let mut parts: Vec<ListedPart> = Vec::new();
        let mut marker = 0;
        let malformed = |what: String| {
            Error::malformed_response(what)
                .with_api(Api::ListParts)
                .with_object(bucket, key)
                .with_upload_id(upload_id)
        };
        loop {
            let page = self
                .list_parts_page(bucket, key, upload_id, marker, None)
                .await?;
            parts.extend(page.parts);
            if parts.len() > Self::MAX_LISTED_PARTS {
                return Err(malformed(format!(
                    "ListParts listed more than {} parts, more than an upload can have",
                    Self::MAX_LISTED_PARTS
                )));
            }
            if !page.is_truncated {
                break;
            }
            // Markers strictly increase and stay below the last part number, so this loop asks for
            // at most 10,000 pages whatever the server says.
            let next = page.next_part_number_marker;
            if next <= marker {
                return Err(malformed(format!(
                    "ListParts is truncated but its next marker {next} does not advance past {marker}"
                )));
            }
            if next >= limits::MAX_PART_NUMBER {
                return Err(malformed(format!(
                    "ListParts is truncated after part {next}, but no part comes after {}",
                    limits::MAX_PART_NUMBER
                )));
            }
            marker = next;
        }
        parts.sort_by_key(|p| p.part_number);
        parts.dedup_by_key(|p| p.part_number);
        Ok(parts)
    }

    /// CompleteMultipartUpload with the given parts (ascending by number).
    ///
    /// `forbid_overwrite` sends `x-oss-forbid-overwrite: true`.
    pub async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletePart],
        forbid_overwrite: bool,
    ) -> Result<CompletedUpload, Error> {
        self.complete_inner(bucket, key, upload_id, parts, forbid_overwrite, None)
            .await
    }

    /// CompleteMultipartUpload with an upload callback: the answer carries the callback server's
    /// reply instead of the result document, and [`callback`](CompletedUpload::callback) says what
    /// came of it. A `203 CallbackFailed` answer is not an error here: the upload is completed, only
    /// the callback failed.
    pub async fn complete_multipart_upload_with_callback(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletePart],
        forbid_overwrite: bool,
        callback: &Callback,
    ) -> Result<CompletedUpload, Error> {
        self.complete_inner(
            bucket,
            key,
            upload_id,
            parts,
            forbid_overwrite,
            Some(callback),
        )
        .await
    }

    async fn complete_inner(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletePart],
        forbid_overwrite: bool,
        callback: Option<&Callback>,
    ) -> Result<CompletedUpload, Error> {
        let mut op = Op::new(
            Api::CompleteMultipartUpload,
            Method::POST,
            bucket,
            Some(key),
        )
        .query("uploadId", upload_id);
        op.upload_id = Some(upload_id);
        op.body = Bytes::from(to_xml(&CompleteMultipartUpload {
            parts: parts.to_vec(),
        }));
        op.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        if forbid_overwrite {
            op.headers
                .insert(headers::FORBID_OVERWRITE, HeaderValue::from_static("true"));
        }
        if let Some(callback) = callback {
            add_callback(&mut op, callback)?;
            // The callback server's reply, read within the attempt: one cut short is asked for again
            // (the retry then finds the upload completed, which the engine settles by HeadObject).
            op.read_body = Some(ReadBody {
                limit: CALLBACK_REPLY_LIMIT,
                check: None,
            });
            let response = self.execute(&op).await?;
            let headers = response.headers().clone();
            let result = callback_result(response).await.map_err(|e| op.context(e))?;
            let mut crc64 = crc_header(&headers).map_err(|e| op.context(e))?;
            let etag = match header_str(&headers, "etag") {
                Some(etag) => etag.to_owned(),
                None => {
                    // The answer is the callback's, not the result document: ask for the ETag.
                    let head = self.head_object(bucket, key).await?.ok_or_else(|| {
                        op.context(Error::malformed_response(
                            "Complete with a callback answered without an ETag, and the object is not there",
                        ))
                    })?;
                    crc64 = crc64.or(head.crc64);
                    head.etag
                }
            };
            return Ok(CompletedUpload {
                etag,
                crc64,
                request_id: header_str(&headers, headers::REQUEST_ID)
                    .unwrap_or_default()
                    .to_owned(),
                callback: Some(result),
            });
        }
        let (headers, doc) = self
            .execute_document::<CompleteMultipartUploadResult>(
                &mut op,
                "CompleteMultipartUploadResult",
            )
            .await?;
        let crc64 = crc_header(&headers).map_err(|e| op.context(e))?;
        let etag = header_str(&headers, "etag")
            .map(str::to_owned)
            .unwrap_or(doc.etag);
        Ok(CompletedUpload {
            etag,
            crc64,
            request_id: header_str(&headers, headers::REQUEST_ID)
                .unwrap_or_default()
                .to_owned(),
            callback: None,
        })
    }

    /// AbortMultipartUpload: drops the upload and its parts.
    pub async fn abort_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), Error> {
        let mut op = Op::new(Api::AbortMultipartUpload, Method::DELETE, bucket, Some(key))
            .query("uploadId", upload_id);
        op.upload_id = Some(upload_id);
        self.execute(&op).await?;
        Ok(())
    }

    /// ListMultipartUploads, every page: the open uploads of `bucket` (under `prefix`).
    ///
    /// The server is trusted with the prefix only as a filter of what it sends: a caller that acts
    /// on the uploads (aborting them, say) should check each key itself.
    ///
    /// Each page's next markers must come after the previous ones (in key order, then upload id
    /// order within a key, as OSS pages), and the listing must end within
    /// [`MAX_UPLOAD_PAGES`](Self::MAX_UPLOAD_PAGES) pages and
    /// [`MAX_LISTED_UPLOADS`](Self::MAX_LISTED_UPLOADS) uploads; otherwise the listing stops with
    /// a [`MalformedResponse`](crate::ErrorKind::MalformedResponse) error naming
    /// ListMultipartUploads.
    pub async fn list_multipart_uploads(
        &self,
        bucket: &str,
        prefix: Option<&str>,
    ) -> Result<Vec<ListedUpload>, Error> {
        let caps = ListCaps {
            entries: Self::MAX_LISTED_UPLOADS,
            pages: Self::MAX_UPLOAD_PAGES,
        };
        self.list_multipart_uploads_within(bucket, prefix, caps)
            .await
    }

    /// [`list_multipart_uploads`](Self::list_multipart_uploads) within `caps`.
    pub(super) async fn list_multipart_uploads_within(
        &self,
        bucket: &str,
        prefix: Option<&str>,
        caps: ListCaps,
    ) -> Result<Vec<ListedUpload>, Error> {
        let mut uploads = Vec::new();
        let mut key_marker = String::new();
        let mut id_marker = String::new();
        let mut pages = 0usize;
        loop {
            pages += 1;
            let mut op =
                Op::new(Api::ListMultipartUploads, Method::GET, bucket, None).query("uploads", "");
            if let Some(prefix) = prefix {
                op = op.query("prefix", prefix);
            }
            if !key_marker.is_empty() {
                op = op.query("key-marker", key_marker.clone());
            }
            if !id_marker.is_empty() {
                op = op.query("upload-id-marker", id_marker.clone());
            }
            let (_, page) = self
                .execute_document::<ListMultipartUploadsResult>(
                    &mut op,
                    "ListMultipartUploadsResult",
                )
                .await?;
            uploads.extend(page.uploads);
            if uploads.len() > caps.entries {
                return Err(op.context(Error::malformed_response(format!(
                    "ListMultipartUploads listed more than {} uploads without ending; stopped there \
                     (abort old uploads by a narrower prefix if the bucket really holds that many)",
                    caps.entries
                ))));
            }
            if !page.is_truncated {
                break;
            }
            if pages >= caps.pages {
                return Err(op.context(Error::malformed_response(format!(
                    "ListMultipartUploads is still truncated after {pages} pages; stopped there"
                ))));
            }
            // A marker that repeats or goes back (or alternates between two values) would keep
            // this loop asking forever.
            if !markers_advance(
                (&key_marker, &id_marker),
                (&page.next_key_marker, &page.next_upload_id_marker),
            ) {
                return Err(op.context(Error::malformed_response(format!(
                    "ListMultipartUploads is truncated but its next markers (key {:?}, upload id {:?}) \
                     do not come after the previous ones (key {key_marker:?}, upload id {id_marker:?})",
                    page.next_key_marker, page.next_upload_id_marker
                ))));
            }
            key_marker = page.next_key_marker;
            id_marker = page.next_upload_id_marker;
        }
        Ok(uploads)
    }
}

/// Whether the markers `next` of a ListMultipartUploads page come after `previous`, each a (key
/// marker, upload id marker) pair. OSS lists uploads by key, then by upload id; an empty upload id
/// marker means "after every upload of the key", so it comes after any id of the same key.
fn markers_advance(previous: (&str, &str), next: (&str, &str)) -> bool {
    let ((previous_key, previous_id), (next_key, next_id)) = (previous, next);
    if next_key != previous_key {
        return next_key > previous_key;
    }
    if previous_id.is_empty() {
        // `previous` already pointed past every upload of this key: only a later key advances.
        return false;
    }
    next_id.is_empty() || next_id > previous_id
}

#[cfg(test)]
mod tests {
    use super::markers_advance;

    #[test]
    fn upload_markers_advance_by_key_then_by_upload_id() {
        assert!(markers_advance(("", ""), ("a", "")));
        assert!(markers_advance(("", ""), ("a", "U1")));
        assert!(markers_advance(("a", "U1"), ("a", "U2")));
        assert!(markers_advance(("a", "U2"), ("b", "U1")));
        assert!(markers_advance(("a", "U1"), ("a", "")));
        assert!(markers_advance(("a", ""), ("b", "")));
        // Repeats, steps back, and alternation between two markers.
        assert!(!markers_advance(("a", "U1"), ("a", "U1")));
        assert!(!markers_advance(("a", "U2"), ("a", "U1")));
        assert!(!markers_advance(("b", ""), ("a", "U9")));
        assert!(!markers_advance(("a", ""), ("a", "U1")));
        assert!(!markers_advance(("a", ""), ("a", "")));
        assert!(!markers_advance(("", ""), ("", "")));
    }
}
