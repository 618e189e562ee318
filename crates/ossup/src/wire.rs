//! What every layer needs to know about an OSS exchange on the wire: copying a request for another
//! attempt, reading at most so many bytes of an answer's body, and the one reading of OSS's error
//! document into a [`ServiceError`].
//!
//! The client, the retry layer and the signing layer all read error answers; keeping the parser here
//! means they agree on the code, the request id (the document's, else `x-oss-request-id`) and the EC.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::HeaderMap;
use ossup_proto::{ErrorResponse, headers};

use crate::error::ServiceError;
use crate::{Error, ResponseBody};

/// The most bytes of an error response kept for its error document.
pub(crate) const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// The most bytes of a success document (ListParts and the like) read into memory.
pub(crate) const DOCUMENT_LIMIT: usize = 16 << 20;
/// The most bytes of a callback server's reply read into memory (OSS passes on at most 3 MB).
pub(crate) const CALLBACK_REPLY_LIMIT: usize = 4 << 20;

/// A copy of a request for one attempt; the body is a cheap `Bytes` clone.
pub(crate) fn clone_request(request: &http::Request<Bytes>) -> http::Request<Bytes> {
    let mut copy = http::Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    copy
}

/// A header's value, when it is present and text.
pub(crate) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The server's `x-oss-request-id`, or `""` when it sent none.
pub(crate) fn request_id(headers: &HeaderMap) -> &str {
    header_str(headers, headers::REQUEST_ID).unwrap_or_default()
}

/// Judges a success answer's whole body: `Ok` to accept it, a retryable error to try the request
/// again (a document cut short), any other error to hand the body on for the caller to report.
pub(crate) type BodyCheck = Arc<dyn Fn(&[u8]) -> Result<(), Error> + Send + Sync>;

/// Put in a request's extensions, asks the retry layer to read a success answer's body (at most
/// `limit` bytes) within the attempt, and to judge it with `check`: a body cut short (the connection
/// closed before its length was reached, or a document without its end) is retried with the same
/// classification and backoff as a lost answer. The response then carries the whole body.
#[derive(Clone)]
pub(crate) struct ReadBody {
    /// The most bytes of the body read into memory.
    pub(crate) limit: usize,
    /// What a complete body must pass.
    pub(crate) check: Option<BodyCheck>,
}

impl fmt::Debug for ReadBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadBody")
            .field("limit", &self.limit)
            .field("check", &self.check.is_some())
            .finish()
    }
}

/// An error answer, read: the [`ServiceError`] to report, and the document it came from (when the
/// body was one) for the fields that depend on the code, such as `<ServerTime>`.
#[derive(Debug, Clone)]
pub(crate) struct ErrorAnswer {
    /// What OSS said, with the status and request id.
    pub(crate) service: ServiceError,
    /// The parsed `<Error>` document, or `None` for a body that was not one (a failed `HEAD`).
    pub(crate) document: Option<ErrorResponse>,
}

/// Reads an error answer from its head and (at most [`ERROR_BODY_LIMIT`] bytes of) its body.
///
/// The document is the body, else (for a HEAD) the base64 `x-oss-err` header. The request id is
/// the document's, else the `x-oss-request-id` header; the EC likewise the
/// document's, else `x-oss-ec`. A body that is no error document gives an empty code and the
/// status's reason as the message.
pub(crate) fn parse_error_answer(parts: &http::response::Parts, body: &[u8]) -> ErrorAnswer {
    // A HEAD answer has no body: OSS repeats its error document there, base64-encoded, in
    // `x-oss-err`.
    let from_header = || {
        let encoded = header_str(&parts.headers, headers::ERROR_DOCUMENT)?;
        String::from_utf8(BASE64.decode(encoded.trim()).ok()?).ok()
    };
    let document = std::str::from_utf8(body)
        .ok()
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
        .or_else(from_header)
        .and_then(|text| ErrorResponse::from_xml(&text).ok());
    let header = |name: &str| header_str(&parts.headers, name).map(str::to_owned);
    let status = parts.status.as_u16();
    let service = match &document {
        Some(doc) => {
            let request_id = if doc.request_id.is_empty() {
                header(headers::REQUEST_ID).unwrap_or_default()
            } else {
                doc.request_id.clone()
            };
            let ec = doc.ec.clone().or_else(|| header(headers::ERROR_EC));
            ServiceError::new(
                status,
                doc.code.clone(),
                doc.message.clone(),
                request_id,
                doc.host_id.clone(),
            )
            .with_ec(ec)
        }
        None => ServiceError::new(
            status,
            "",
            parts.status.canonical_reason().unwrap_or("error"),
            header(headers::REQUEST_ID).unwrap_or_default(),
            "",
        )
        .with_ec(header(headers::ERROR_EC)),
    };
    ErrorAnswer { service, document }
}

/// Reads an error answer's body (what of it arrives) and parses it, giving back a response that
/// carries the body read, for a layer further out to read again.
pub(crate) async fn read_error_answer(
    response: http::Response<ResponseBody>,
) -> (ErrorAnswer, http::Response<ResponseBody>) {
    let (parts, body) = response.into_parts();
    let body = body.collect(ERROR_BODY_LIMIT).await.unwrap_or_default();
    let answer = parse_error_answer(&parts, &body);
    (
        answer,
        http::Response::from_parts(parts, ResponseBody::from_bytes(body)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ossup_proto::ErrorCode;

    fn head(status: u16, headers: &[(&str, &str)]) -> http::response::Parts {
        let mut builder = http::Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn an_error_document_gives_its_code_message_ids_and_ec() {
        let xml = "<Error><Code>NoSuchUpload</Code><Message>gone</Message><RequestId>DOC-ID</RequestId><HostId>h.example</HostId><EC>0042-00000001</EC></Error>";
        let answer = parse_error_answer(
            &head(404, &[(headers::REQUEST_ID, "HDR-ID")]),
            xml.as_bytes(),
        );
        let service = answer.service;
        assert!(service.is(ErrorCode::NoSuchUpload));
        assert_eq!(service.status, 404);
        assert_eq!(service.message, "gone");
        assert_eq!(service.request_id, "DOC-ID");
        assert_eq!(service.host_id, "h.example");
        assert_eq!(service.ec.as_deref(), Some("0042-00000001"));
        assert!(answer.document.is_some());
    }

    #[test]
    fn headers_fill_in_what_the_document_lacks() {
        let xml = "<Error><Code>AccessDenied</Code><Message>no</Message></Error>";
        let parts = head(
            403,
            &[
                (headers::REQUEST_ID, "HDR-ID"),
                (headers::ERROR_EC, "0003-00000001"),
            ],
        );
        let service = parse_error_answer(&parts, xml.as_bytes()).service;
        assert_eq!(service.request_id, "HDR-ID");
        assert_eq!(service.ec.as_deref(), Some("0003-00000001"));
    }

    #[test]
    fn a_body_that_is_no_error_document_gives_the_status_and_header_request_id() {
        let parts = head(404, &[(headers::REQUEST_ID, "HDR-ID")]);
        let answer = parse_error_answer(&parts, b"");
        assert_eq!(answer.service.code, "");
        assert_eq!(answer.service.message, "Not Found");
        assert_eq!(answer.service.request_id, "HDR-ID");
        assert!(answer.document.is_none());
        let answer = parse_error_answer(&parts, b"<ListPartsResult/>");
        assert!(answer.document.is_none());
    }

    #[test]
    fn a_head_answer_gives_the_document_oss_repeats_in_x_oss_err() {
        let xml = "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><RequestId>DOC-ID</RequestId></Error>";
        let encoded = BASE64.encode(xml);
        let parts = head(404, &[(headers::ERROR_DOCUMENT, encoded.as_str())]);
        let answer = parse_error_answer(&parts, b"");
        assert!(answer.service.is(ErrorCode::NoSuchKey));
        assert_eq!(answer.service.request_id, "DOC-ID");
        assert!(answer.document.is_some());
        let garbled = head(404, &[(headers::ERROR_DOCUMENT, "%%% not base64")]);
        assert_eq!(parse_error_answer(&garbled, b"").service.code, "");
    }

    #[test]
    fn a_cloned_request_keeps_method_uri_headers_body_and_extensions() {
        let mut request = http::Request::builder()
            .method(http::Method::PUT)
            .uri("http://127.0.0.1/b/k")
            .header("content-md5", "x")
            .body(Bytes::from_static(b"body"))
            .unwrap();
        request.extensions_mut().insert(ossup_proto::Api::PutObject);
        let copy = clone_request(&request);
        assert_eq!(copy.method(), http::Method::PUT);
        assert_eq!(copy.uri(), request.uri());
        assert_eq!(copy.headers(), request.headers());
        assert_eq!(copy.body(), request.body());
        assert_eq!(
            copy.extensions().get::<ossup_proto::Api>(),
            Some(&ossup_proto::Api::PutObject)
        );
    }
}
