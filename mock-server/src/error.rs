//! The error every layer of the mock returns: an OSS error code with its message, extra fields and
//! headers, turned into the `<Error>` document OSS answers with.

use http::{HeaderName, HeaderValue, StatusCode};
use ossup_proto::{ErrorCode, ErrorResponse};

use crate::response::xml_safe;

/// An OSS error on its way to becoming a response.
#[derive(Debug, Clone)]
pub(crate) struct OssError {
    /// The OSS error code; it decides the HTTP status.
    pub code: ErrorCode,
    /// The message, when it says more than the code's default.
    pub message: Option<String>,
    /// Code-specific elements of the error document (`UploadId`, `ArgumentName`, …), in order.
    pub fields: Vec<(String, String)>,
    /// Extra response headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl OssError {
    /// An error with the default message of `code`.
    pub(crate) fn new(code: ErrorCode) -> Self {
        Self {
            code,
            message: None,
            fields: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// Replaces the message.
    pub(crate) fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Adds an element to the error document.
    pub(crate) fn field(mut self, name: &str, value: impl Into<String>) -> Self {
        self.fields.push((name.to_owned(), value.into()));
        self
    }

    /// 500 InternalError for a storage failure; the cause goes to the log and the message.
    pub(crate) fn internal(what: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!("{what}: {err}");
        Self::new(ErrorCode::InternalError).message(format!(
            "We encountered an internal error. Please try again. ({what}: {err})"
        ))
    }

    /// 400 InvalidArgument naming the argument and the value given.
    pub(crate) fn invalid_argument(name: &str, value: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument)
            .message(message)
            .field("ArgumentName", name)
            .field("ArgumentValue", value)
    }

    /// 400 MalformedXML in OSS's words, then `why` (a sentence without its full stop).
    pub(crate) fn malformed_xml(why: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::MalformedXML).message(format!(
            "The XML you provided was not well-formed or did not validate against our published schema: {why}."
        ))
    }

    /// 404 NoSuchUpload with the upload id asked for.
    pub(crate) fn no_such_upload(upload_id: &str) -> Self {
        Self::new(ErrorCode::NoSuchUpload).field("UploadId", upload_id)
    }

    /// 404 NoSuchBucket with the bucket asked for.
    pub(crate) fn no_such_bucket(bucket: &str) -> Self {
        Self::new(ErrorCode::NoSuchBucket).field("BucketName", bucket)
    }

    /// 404 NoSuchKey with the key asked for.
    pub(crate) fn no_such_key(key: &str) -> Self {
        Self::new(ErrorCode::NoSuchKey).field("Key", key)
    }

    /// The HTTP status of this error.
    pub(crate) fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The `<Error>` document, stamped with the request id and host id of the response.
    pub(crate) fn document(&self, request_id: &str, host_id: &str) -> ErrorResponse {
        let mut doc = ErrorResponse::new(self.code, request_id, xml_safe(host_id).as_ref());
        if let Some(message) = &self.message {
            doc.message = xml_safe(message).into_owned();
        }
        // Fields and messages echo client input (a key, a query value), which may hold characters
        // XML 1.0 cannot carry; escaped, the document stays well formed.
        doc.extra = self
            .fields
            .iter()
            .map(|(name, value)| (name.clone(), xml_safe(value).into_owned()))
            .collect();
        doc
    }
}

impl std::fmt::Display for OssError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            self.code,
            self.message
                .as_deref()
                .unwrap_or(self.code.default_message())
        )
    }
}
