//! The one error type of the engine: what failed, where (API, bucket, key, part), and whether trying
//! again can help.
//!
//! The retry decision is made where an error is created (as OpenDAL does): a transport marks a
//! refused connection retryable and an unsupported URL scheme permanent; a service error is classified
//! by [`is_retryable_service_error`] from its status and code. A retry policy may still decide
//! otherwise; this is the default it starts from.

use std::any::Any;
use std::fmt;

use ossup_proto::{Api, ErrorCode};
use serde::Serialize;

/// Whether an error answer of OSS is worth sending again: server errors (5xx), 408 and 429, and the
/// codes that say the request was too slow or its clock off (the retry layer corrects the clock
/// before it tries again).
///
/// ```
/// use ossup_transport::is_retryable_service_error;
/// assert!(is_retryable_service_error(503, "ServiceUnavailable"));
/// assert!(is_retryable_service_error(403, "RequestTimeTooSkewed"));
/// assert!(!is_retryable_service_error(404, "NoSuchUpload"));
/// ```
pub fn is_retryable_service_error(status: u16, code: &str) -> bool {
    status >= 500
        || status == 408
        || status == 429
        || matches!(
            ErrorCode::from_code(code),
            Some(ErrorCode::RequestTimeout | ErrorCode::RequestTimeTooSkewed)
        )
}

/// What kind of thing went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request did not get an answer: connection refused, reset or closed, a timeout, a stalled
    /// transfer.
    Network,
    /// OSS answered with an error document (see [`Error::service`]).
    Service,
    /// Bytes or checksums disagree: an ETag, a CRC-64 or a size the server reported is not the one
    /// the source gives. The upload stopped rather than produce a wrong object.
    Integrity,
    /// The checkpoint store failed, or holds a checkpoint this build cannot use.
    Checkpoint,
    /// Reading the source failed, or the source changed while it was being uploaded.
    Source,
    /// The caller cancelled the upload.
    Cancelled,
    /// The configuration or the request is not valid (endpoint, part size, options).
    Config,
    /// A success answer that does not parse (malformed XML, a missing or bad header): the server
    /// (or something between it and us) spoke something other than the OSS protocol.
    MalformedResponse,
    /// The source cannot be uploaded as it is (a directory, a device, a FIFO where a regular file
    /// is needed).
    UnsupportedSource,
    /// A task of the engine panicked or was lost: a bug in ossup or in a plugged-in piece (a
    /// source, a store); the checkpoint and the parts on the server are kept.
    Internal,
    /// The object IS stored and verified, but OSS could not deliver its upload callback (HTTP 203
    /// `CallbackFailed`). OSS does not retry callbacks, and uploading again would only store the
    /// object again: the engine attaches what was stored (`ossup::UploadOutcome::of_failed_callback`).
    CallbackFailed,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Network => "network error",
            ErrorKind::Service => "service error",
            ErrorKind::Integrity => "integrity error",
            ErrorKind::Checkpoint => "checkpoint error",
            ErrorKind::Source => "source error",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Config => "configuration error",
            ErrorKind::MalformedResponse => "malformed response",
            ErrorKind::UnsupportedSource => "unsupported source",
            ErrorKind::Internal => "internal error",
            ErrorKind::CallbackFailed => "callback failed",
        })
    }
}

/// The error document OSS answered with, and the HTTP status it came with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ServiceError {
    /// The HTTP status, e.g. 404.
    pub status: u16,
    /// The OSS error code, e.g. `NoSuchUpload`; empty when the response had no error document (a
    /// failed `HEAD`, say).
    pub code: String,
    /// OSS's message.
    pub message: String,
    /// The `x-oss-request-id` to quote to support.
    pub request_id: String,
    /// The host that answered.
    pub host_id: String,
    /// The detailed error code (`EC`) of newer servers.
    pub ec: Option<String>,
}

impl ServiceError {
    /// A service error from its parts.
    pub fn new(
        status: u16,
        code: impl Into<String>,
        message: impl Into<String>,
        request_id: impl Into<String>,
        host_id: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            request_id: request_id.into(),
            host_id: host_id.into(),
            ec: None,
        }
    }

    /// Sets the detailed error code (`EC`), builder style.
    pub fn with_ec(mut self, ec: Option<String>) -> Self {
        self.ec = ec;
        self
    }

    /// The code as a known [`ErrorCode`], or `None` for a code this crate does not know (or none).
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(&self.code)
    }

    /// Whether the code is `code`.
    ///
    /// ```
    /// use ossup_proto::ErrorCode;
    /// use ossup_transport::ServiceError;
    /// let err = ServiceError::new(404, "NoSuchUpload", "", "REQ", "");
    /// assert!(err.is(ErrorCode::NoSuchUpload));
    /// ```
    pub fn is(&self, code: ErrorCode) -> bool {
        self.code == code.as_str()
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = if self.code.is_empty() {
            "(no error code)"
        } else {
            &self.code
        };
        write!(f, "HTTP {} {code}", self.status)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if !self.request_id.is_empty() {
            write!(f, " (RequestId {}", self.request_id)?;
            if !self.host_id.is_empty() {
                write!(f, ", HostId {}", self.host_id)?;
            }
            if let Some(ec) = &self.ec {
                write!(f, ", EC {ec}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Where an error happened: the API, the object, the part, the upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Context {
    api: Option<Api>,
    bucket: Option<String>,
    key: Option<String>,
    part: Option<u32>,
    upload_id: Option<String>,
}

/// The error of every fallible operation of this crate.
///
/// It says what kind of thing failed ([`kind`](Self::kind)), whether retrying can help
/// ([`is_retryable`](Self::is_retryable)), where it happened (API, bucket, key, part number, upload
/// id) and, for errors OSS answered, the whole [`ServiceError`]. The underlying error is kept as
/// [`source`](std::error::Error::source).
///
/// ```
/// use ossup_transport::{Error, ErrorKind};
/// let err = Error::timeout("no response within 30s");
/// assert_eq!(err.kind(), ErrorKind::Network);
/// assert!(err.is_retryable());
/// ```
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    retryable: bool,
    message: String,
    context: Context,
    service: Option<ServiceError>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    attachment: Option<Box<dyn Any + Send + Sync>>,
}

impl Error {
    fn make(kind: ErrorKind, retryable: bool, message: impl Into<String>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                retryable,
                message: message.into(),
                context: Context::default(),
                service: None,
                source: None,
                attachment: None,
            }),
        }
    }

    /// A connection-level failure (refused, reset, closed before the answer): retryable.
    pub fn connection(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self::make(ErrorKind::Network, true, message).with_source(source)
    }

    /// A timeout or a stalled transfer: retryable.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::make(ErrorKind::Network, true, message)
    }

    /// A network failure that trying again will not fix (an unsupported URL scheme, say).
    pub fn network_permanent(message: impl Into<String>) -> Self {
        Self::make(ErrorKind::Network, false, message)
    }

    /// An error OSS answered with; retryable as [`is_retryable_service_error`] says.
    pub fn service(error: ServiceError) -> Self {
        let retryable = is_retryable_service_error(error.status, &error.code);
        let mut err = Self::make(ErrorKind::Service, retryable, "");
        err.inner.service = Some(error);
        err
    }

    /// A success answer that does not parse (malformed XML, a bad header): not retryable.
    pub fn malformed_response(message: impl Into<String>) -> Self {
        Self::make(ErrorKind::MalformedResponse, false, message)
    }

    /// The source cannot be uploaded as it is (not a regular file, say).
    pub fn unsupported_source(message: impl Into<String>) -> Self {
        Self::make(ErrorKind::UnsupportedSource, false, message)
    }

    /// A task of the engine panicked or was lost (a bug); not retryable.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::make(ErrorKind::Internal, false, message)
    }

    /// Checksums, ETags or sizes disagree.
    pub fn integrity(message: impl Into<String>) -> Self {
        Self::make(ErrorKind::Integrity, false, message)
    }

    /// The checkpoint store failed with `error`.
    pub fn checkpoint(
        error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self::make(ErrorKind::Checkpoint, false, "checkpoint store failed").with_source(error)
    }

    /// Reading the source failed.
    pub fn source_io(message: impl Into<String>, error: std::io::Error) -> Self {
        Self::make(ErrorKind::Source, false, message).with_source(error)
    }

    /// The source is not usable (it changed, it is not what it was).
    pub fn source_changed(message: impl Into<String>) -> Self {
        Self::make(ErrorKind::Source, false, message)
    }

    /// The caller cancelled.
    pub fn cancelled(message: impl Into<String>) -> Self {
        Self::make(ErrorKind::Cancelled, false, message)
    }

    /// The configuration or request is not valid.
    pub fn config(message: impl Into<String>) -> Self {
        Self::make(ErrorKind::Config, false, message)
    }

    /// The object is stored, but OSS answered `203 CallbackFailed` (`error`): the callback was not
    /// delivered. Not retryable: uploading again would only store the object again. The engine
    /// attaches what was stored ([`attach`](Self::attach)).
    pub fn callback_failed(message: impl Into<String>, error: ServiceError) -> Self {
        let mut err = Self::make(ErrorKind::CallbackFailed, false, message);
        err.inner.service = Some(error);
        err
    }

    /// Attaches a value for callers to find with [`attachment`](Self::attachment), builder style:
    /// the engine attaches the `UploadOutcome` of an object that is stored although the error says
    /// its callback failed. One attachment per error; a second replaces the first.
    pub fn attach<T: Any + Send + Sync>(mut self, value: T) -> Self {
        self.inner.attachment = Some(Box::new(value));
        self
    }

    /// The value [`attach`](Self::attach)ed to this error, if it is a `T`.
    ///
    /// ```
    /// use ossup_transport::Error;
    /// let err = Error::config("bad part size").attach(42_u32);
    /// assert_eq!(err.attachment::<u32>(), Some(&42));
    /// assert_eq!(err.attachment::<String>(), None);
    /// ```
    pub fn attachment<T: Any>(&self) -> Option<&T> {
        self.inner.attachment.as_deref()?.downcast_ref()
    }

    /// Keeps `source` as the underlying cause, builder style.
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// Names the API that failed, unless one is named already.
    pub fn with_api(mut self, api: Api) -> Self {
        self.inner.context.api.get_or_insert(api);
        self
    }

    /// Names the object, unless one is named already.
    pub fn with_object(mut self, bucket: &str, key: &str) -> Self {
        let ctx = &mut self.inner.context;
        if ctx.bucket.is_none() {
            ctx.bucket = Some(bucket.to_owned());
            ctx.key = Some(key.to_owned());
        }
        self
    }

    /// Names the bucket, unless one is named already.
    pub fn with_bucket(mut self, bucket: &str) -> Self {
        self.inner
            .context
            .bucket
            .get_or_insert_with(|| bucket.to_owned());
        self
    }

    /// Names the part number, unless one is named already.
    pub fn with_part(mut self, number: u32) -> Self {
        self.inner.context.part.get_or_insert(number);
        self
    }

    /// Names the multipart upload id, unless one is named already.
    pub fn with_upload_id(mut self, upload_id: &str) -> Self {
        self.inner
            .context
            .upload_id
            .get_or_insert_with(|| upload_id.to_owned());
        self
    }

    /// Marks the error as retryable or not, overriding the classification made at creation.
    pub fn set_retryable(mut self, retryable: bool) -> Self {
        self.inner.retryable = retryable;
        self
    }

    /// What kind of thing failed.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// Whether sending the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        self.inner.retryable
    }

    /// The error document OSS answered with, for [`ErrorKind::Service`].
    pub fn service_error(&self) -> Option<&ServiceError> {
        self.inner.service.as_ref()
    }

    /// Whether OSS answered with the error code `code`.
    ///
    /// ```
    /// use ossup_proto::ErrorCode;
    /// use ossup_transport::{Error, ServiceError};
    /// let err = Error::service(ServiceError::new(404, "NoSuchUpload", "", "REQ", ""));
    /// assert!(err.is_service_code(ErrorCode::NoSuchUpload));
    /// assert!(!err.is_service_code(ErrorCode::NoSuchKey));
    /// ```
    pub fn is_service_code(&self, code: ErrorCode) -> bool {
        self.service_error().is_some_and(|s| s.is(code))
    }

    /// The API that failed.
    pub fn api(&self) -> Option<Api> {
        self.inner.context.api
    }

    /// The bucket involved.
    pub fn bucket(&self) -> Option<&str> {
        self.inner.context.bucket.as_deref()
    }

    /// The object key involved.
    pub fn key(&self) -> Option<&str> {
        self.inner.context.key.as_deref()
    }

    /// The part number involved.
    pub fn part(&self) -> Option<u32> {
        self.inner.context.part
    }

    /// The multipart upload id involved.
    pub fn upload_id(&self) -> Option<&str> {
        self.inner.context.upload_id.as_deref()
    }

    /// The message without the context (for progress events).
    pub fn message(&self) -> String {
        match &self.inner.service {
            Some(service) if self.inner.message.is_empty() => service.to_string(),
            Some(service) => format!("{}: {service}", self.inner.message),
            None => self.inner.message.clone(),
        }
    }

    fn describe(&self) -> String {
        let ctx = &self.inner.context;
        let mut out = String::new();
        if self.inner.kind == ErrorKind::Cancelled && ctx.api.is_none() {
            // The caller stopped it: nothing "failed", and the message says what became of it.
            out.push_str(&self.message());
            self.push_source(&mut out);
            return out;
        }
        if let Some(api) = ctx.api {
            out.push_str(api.name());
        } else {
            out.push_str(&self.inner.kind.to_string());
        }
        match (&ctx.bucket, &ctx.key) {
            (Some(b), Some(k)) => out.push_str(&format!(" of oss://{b}/{k}")),
            (Some(b), None) => out.push_str(&format!(" on bucket {b}")),
            _ => {}
        }
        if let Some(part) = ctx.part {
            out.push_str(&format!(" part {part}"));
        }
        if let Some(id) = &ctx.upload_id {
            out.push_str(&format!(" (upload {id})"));
        }
        out.push_str(" failed: ");
        out.push_str(&self.message());
        self.push_source(&mut out);
        out
    }

    fn push_source(&self, out: &mut String) {
        if let Some(source) = &self.inner.source {
            if !self.inner.message.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&source.to_string());
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("retryable", &self.inner.retryable)
            .field("message", &self.inner.message)
            .field("context", &self.inner.context);
        if let Some(service) = &self.inner.service {
            d.field("service", service);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_api_object_part_and_service_details() {
        let err = Error::service(ServiceError::new(
            503,
            "ServiceUnavailable",
            "Please reduce your request rate.",
            "REQ1",
            "b.oss",
        ))
        .with_api(Api::UploadPart)
        .with_object("b", "dir/k")
        .with_part(7);
        let text = err.to_string();
        assert_eq!(
            text,
            "UploadPart of oss://b/dir/k part 7 failed: HTTP 503 ServiceUnavailable: Please reduce your request rate. (RequestId REQ1, HostId b.oss)"
        );
        assert!(err.is_retryable());
        assert_eq!(err.kind(), ErrorKind::Service);
        assert_eq!(err.part(), Some(7));
    }

    #[test]
    fn source_chain_is_kept() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let err = Error::connection("connection lost", io);
        let source = std::error::Error::source(&err).expect("source kept");
        assert!(source.to_string().contains("reset by peer"));
        assert!(err.to_string().contains("connection lost: reset by peer"));
    }

    #[test]
    fn a_cancellation_reads_as_its_message_and_keeps_its_object() {
        let err = Error::cancelled("the upload of oss://b/k was cancelled; its checkpoint is kept")
            .with_object("b", "k");
        assert_eq!(
            err.to_string(),
            "the upload of oss://b/k was cancelled; its checkpoint is kept"
        );
        assert_eq!(err.key(), Some("k"));
    }

    #[test]
    fn first_context_wins() {
        let err = Error::timeout("t").with_part(1).with_part(2);
        assert_eq!(err.part(), Some(1));
    }
}
