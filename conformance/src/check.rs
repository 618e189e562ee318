//! How a case says what it expected: failures with precise messages, and expectations on responses.
//!
//! Every expectation names the request, what was expected and what came, with the OSS error code and
//! request id when there is one, so a failed case reads as a bug report.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ossup_proto::ErrorResponse;
use ossup_proto::headers::{ERROR_DOCUMENT, HASH_CRC64ECMA, REQUEST_ID};
use serde::de::DeserializeOwned;

use crate::client::{ClientError, Response};

/// Why a case did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseError {
    /// The server did something other than what the case expects.
    Failed(String),
    /// The case cannot run against this target; the reason says why.
    Skipped(String),
}

impl CaseError {
    /// A failure with this message.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }

    /// A skip with this reason.
    pub fn skipped(reason: impl Into<String>) -> Self {
        Self::Skipped(reason.into())
    }
}

impl From<ClientError> for CaseError {
    fn from(error: ClientError) -> Self {
        Self::Failed(error.to_string())
    }
}

/// What a case returns.
pub type CaseResult = Result<(), CaseError>;

/// Says which step of a case failed: prefixes the message of a failure (skips pass unchanged).
///
/// ```
/// use ossup_conformance::check::{CaseError, Context};
/// let step: Result<(), CaseError> = Err(CaseError::failed("expected 204, got 500"));
/// assert_eq!(step.context("second DeleteObject"),
///     Err(CaseError::failed("second DeleteObject: expected 204, got 500")));
/// ```
pub trait Context<T> {
    /// Prefixes a failure's message with `what` and `: `.
    fn context(self, what: impl std::fmt::Display) -> Result<T, CaseError>;
}

impl<T> Context<T> for Result<T, CaseError> {
    fn context(self, what: impl std::fmt::Display) -> Result<T, CaseError> {
        self.map_err(|error| match error {
            CaseError::Failed(message) => CaseError::Failed(format!("{what}: {message}")),
            skipped => skipped,
        })
    }
}

/// Fails the case with a formatted message unless the condition holds.
///
/// ```
/// use ossup_conformance::{ensure, check::CaseResult};
/// fn case(parts: usize) -> CaseResult {
///     ensure!(parts == 3, "expected 3 parts, listed {parts}");
///     Ok(())
/// }
/// assert!(case(3).is_ok());
/// assert!(case(2).is_err());
/// ```
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::check::CaseError::Failed(format!($($fmt)+)));
        }
    };
}

/// Fails the case unless two values are equal; the message names what was compared and both values.
///
/// ```
/// use ossup_conformance::{ensure_eq, check::CaseResult};
/// fn case(etag: &str) -> CaseResult {
///     ensure_eq!(etag, "\"ABC\"", "ETag of part 1");
///     Ok(())
/// }
/// assert!(case("\"ABC\"").is_ok());
/// let err = case("abc").unwrap_err();
/// assert_eq!(err, ossup_conformance::check::CaseError::Failed(
///     "ETag of part 1: expected \"\\\"ABC\\\"\", got \"abc\"".into()));
/// ```
#[macro_export]
macro_rules! ensure_eq {
    ($actual:expr, $expected:expr, $($what:tt)+) => {
        match (&$actual, &$expected) {
            (actual, expected) => {
                if actual != expected {
                    return Err($crate::check::CaseError::Failed(format!(
                        "{}: expected {:?}, got {:?}",
                        format!($($what)+),
                        expected,
                        actual
                    )));
                }
            }
        }
    };
}

impl Response {
    /// Passes when the status is `status`.
    pub fn expect_status(&self, status: u16) -> Result<&Self, CaseError> {
        if self.status.as_u16() == status {
            Ok(self)
        } else {
            Err(CaseError::Failed(format!(
                "expected status {status}, got {}",
                self.describe()
            )))
        }
    }

    /// Passes when the answer is the OSS error `code` with `status`: an `<Error>` document whose
    /// `RequestId` equals the `x-oss-request-id` header and whose `HostId` is set. A `HEAD` answer has no
    /// body, so for it only the status and the request id header are checked.
    pub fn expect_error(&self, status: u16, code: &str) -> Result<ErrorResponse, CaseError> {
        let fail = |what: String| {
            CaseError::Failed(format!(
                "expected {status} {code}, got {}: {what}",
                self.describe()
            ))
        };
        if self.status.as_u16() != status {
            return Err(fail("wrong status".to_owned()));
        }
        let header_id = self
            .request_id()
            .ok_or_else(|| fail(format!("no {REQUEST_ID} header")))?;
        if self.what.starts_with("HEAD ") {
            if !self.body.is_empty() {
                return Err(fail(format!(
                    "a HEAD answer with a {}-byte body",
                    self.body.len()
                )));
            }
            // No body: OSS repeats the document, base64-encoded, in `x-oss-err` (the SDKs read
            // the code there).
            let encoded = self
                .header(ERROR_DOCUMENT)
                .ok_or_else(|| fail(format!("a HEAD error answer without {ERROR_DOCUMENT}")))?;
            let error = BASE64
                .decode(encoded.trim())
                .ok()
                .and_then(|xml| String::from_utf8(xml).ok())
                .and_then(|xml| ErrorResponse::from_xml(&xml).ok())
                .ok_or_else(|| {
                    fail(format!(
                        "{ERROR_DOCUMENT} {encoded:?} is not a base64 <Error> document"
                    ))
                })?;
            if error.code != code {
                return Err(fail(format!(
                    "{ERROR_DOCUMENT}'s <Code> is {:?}",
                    error.code
                )));
            }
            return Ok(ErrorResponse {
                request_id: header_id.to_owned(),
                ..error
            });
        }
        let error = self.error().ok_or_else(|| {
            fail(format!(
                "the body is not an OSS <Error> document: {:?}",
                self.text().chars().take(300).collect::<String>()
            ))
        })?;
        if error.code != code {
            return Err(fail(format!("<Code> is {:?}", error.code)));
        }
        if error.request_id != header_id {
            return Err(fail(format!(
                "<RequestId> {:?} differs from the {REQUEST_ID} header {header_id:?}",
                error.request_id
            )));
        }
        if error.host_id.is_empty() {
            return Err(fail("<HostId> is empty".to_owned()));
        }
        if error.message.is_empty() {
            return Err(fail("<Message> is empty".to_owned()));
        }
        Ok(error)
    }

    /// The value of a header that must be present.
    pub fn expect_header(&self, name: &str) -> Result<&str, CaseError> {
        self.header(name)
            .ok_or_else(|| CaseError::Failed(format!("no {name} header in {}", self.describe())))
    }

    /// Passes when a header is present with exactly `expected`.
    pub fn expect_header_eq(&self, name: &str, expected: &str) -> Result<&Self, CaseError> {
        let actual = self.expect_header(name)?;
        if actual == expected {
            Ok(self)
        } else {
            Err(CaseError::Failed(format!(
                "{name} of {}: expected {expected:?}, got {actual:?}",
                self.what
            )))
        }
    }

    /// The `x-oss-hash-crc64ecma` header as a number.
    pub fn crc64(&self) -> Result<u64, CaseError> {
        let value = self.expect_header(HASH_CRC64ECMA)?;
        value.parse().map_err(|_| {
            CaseError::Failed(format!(
                "{HASH_CRC64ECMA} of {} is {value:?}, not a decimal u64",
                self.what
            ))
        })
    }

    /// Passes when `x-oss-hash-crc64ecma` is `expected` (the CRC-64/XZ computed here).
    pub fn expect_crc64(&self, expected: u64) -> Result<&Self, CaseError> {
        let actual = self.crc64()?;
        if actual == expected {
            Ok(self)
        } else {
            Err(CaseError::Failed(format!(
                "{HASH_CRC64ECMA} of {}: expected {expected} (computed locally), got {actual}",
                self.what
            )))
        }
    }

    /// Parses the body as the XML document `document`.
    pub fn xml<T: DeserializeOwned>(&self, document: &'static str) -> Result<T, CaseError> {
        let text = std::str::from_utf8(&self.body)
            .map_err(|_| CaseError::Failed(format!("the body of {} is not UTF-8", self.what)))?;
        ossup_proto::xml::from_xml(document, text).map_err(|e| {
            CaseError::Failed(format!(
                "{}: {e}; body: {:?}",
                self.what,
                text.chars().take(500).collect::<String>()
            ))
        })
    }
}
