//! What a fired rule does to its request, at the two points of the pipeline where faults act:
//! before the handler (answer instead, drop the connection, stall, slow the body down) and after
//! the handler (drop the answer, delay it, tamper with it, cut it short).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use ossup_proto::headers::HASH_CRC64ECMA;
use ossup_proto::limits::MAX_CLOCK_SKEW_SECS;
use ossup_proto::{Api, ErrorCode, ErrorResponse};
use tokio::time::Sleep;

use super::armed::Firing;
use super::rule::FaultAction;
use crate::body::RequestBody;
use crate::error::OssError;
use crate::handlers::blocking;
use crate::response::{self, Body, HttpResponse, http_date, iso8601};
use crate::route::RequestContext;
use crate::service::App;

/// How long a cut-short answer waits, after its last byte, before the connection is closed: long
/// enough for hyper to flush what was sent, so the client receives exactly the bytes the rule allows.
const FLUSH_BEFORE_CLOSE: Duration = Duration::from_millis(20);

/// The service's error when a fault rule drops the connection: hyper then closes it without writing
/// anything, so the client sees a reset or an early end of stream, never an HTTP answer.
#[derive(Debug)]
pub(crate) struct ConnectionDropped {
    index: usize,
    kind: &'static str,
}

impl fmt::Display for ConnectionDropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connection dropped on purpose by fault rule {} ({})",
            self.index, self.kind
        )
    }
}

impl std::error::Error for ConnectionDropped {}

/// What happens to a request after the rules had their say, after authentication, before the handler.
pub(crate) enum Before {
    /// Authenticate and handle it as usual.
    Proceed,
    /// Answer with this OSS error (the usual error answer).
    Fail(OssError),
    /// Answer with this response.
    Respond(HttpResponse),
    /// Close the connection without answering.
    Drop(ConnectionDropped),
}

impl Firing {
    fn dropped(&self) -> ConnectionDropped {
        ConnectionDropped {
            index: self.index,
            kind: self.action.kind(),
        }
    }

    /// Acts before the handler: the actions that replace the work, and `throttle`, which slows
    /// the body down for the handler.
    pub(crate) async fn before(
        &self,
        app: &App,
        ctx: &RequestContext,
        headers: &http::HeaderMap,
        body: &mut RequestBody,
    ) -> Before {
        match &self.action {
            FaultAction::Error {
                status,
                code,
                message,
            } => Before::Respond(self.error_response(ctx, *status, code, message.as_deref())),
            FaultAction::ResetBeforeBody => Before::Drop(self.dropped()),
            FaultAction::ResetMidBody { after_bytes } => {
                let _ = drain(body, *after_bytes, app).await;
                Before::Drop(self.dropped())
            }
            FaultAction::Throttle { bytes_per_sec } => {
                body.throttle(*bytes_per_sec);
                Before::Proceed
            }
            FaultAction::Straggle {
                percent,
                bytes_per_sec,
                connection,
            } => {
                let rate =
                    bytes_per_sec.or_else(|| app.link.share(f64::from(percent.unwrap_or(100))));
                match rate {
                    None => tracing::warn!(
                        "fault rule {}: straggle at a percentage of no bandwidth; start the mock with --conn-bandwidth or --link-bandwidth, or give bytes_per_sec; the request is not slowed",
                        self.index
                    ),
                    Some(rate) if *connection => {
                        if let Some(conn) = body.connection() {
                            conn.crawl(rate);
                        }
                    }
                    Some(rate) => body.throttle(rate),
                }
                Before::Proceed
            }
            FaultAction::Stall => {
                let _stalled = app.faults.stall_guard();
                // Reading the whole body first lets hyper notice a client that gives up and closes
                // the connection: it then drops this request, and the stall with it.
                if drain(body, u64::MAX, app).await.is_ok() {
                    app.faults.closed().await;
                }
                Before::Drop(self.dropped())
            }
            FaultAction::ExpireUpload => Before::Fail(expire_upload(app, ctx).await),
            FaultAction::SkewClock { seconds } => Before::Fail(skewed_clock(headers, *seconds)),
            FaultAction::Delay { .. }
            | FaultAction::ResetAfterCommit
            | FaultAction::TruncateResponse { .. }
            | FaultAction::CorruptEtag
            | FaultAction::CorruptCrc => Before::Proceed,
        }
    }

    /// Acts on the answer the handler gave (success or error): drops it, tampers with it, delays it
    /// or cuts it short.
    pub(crate) async fn after(
        &self,
        api: Api,
        mut response: HttpResponse,
    ) -> Result<HttpResponse, ConnectionDropped> {
        match &self.action {
            FaultAction::ResetAfterCommit => return Err(self.dropped()),
            FaultAction::Delay { ms } => tokio::time::sleep(Duration::from_millis(*ms)).await,
            FaultAction::CorruptEtag => {
                corrupt_header(&mut response, header::ETAG.as_str(), corrupt_hex);
                if response.status() == StatusCode::OK
                    && matches!(api, Api::ListParts | Api::CompleteMultipartUpload)
                {
                    response = rewrite_xml(response, "ETag", corrupt_hex).await;
                }
            }
            FaultAction::CorruptCrc => {
                corrupt_header(&mut response, HASH_CRC64ECMA, corrupt_decimal);
                if response.status() == StatusCode::OK && api == Api::ListParts {
                    response = rewrite_xml(response, "HashCrc64ecma", corrupt_decimal).await;
                }
            }
            FaultAction::TruncateResponse { bytes } => {
                let declared = response
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .or_else(|| response.body().size_hint().exact());
                if declared.is_none_or(|len| len > *bytes) {
                    let (parts, body) = response.into_parts();
                    response = http::Response::from_parts(parts, truncated(body, *bytes));
                }
            }
            _ => {}
        }
        Ok(response)
    }

    fn error_response(
        &self,
        ctx: &RequestContext,
        status: u16,
        code: &str,
        message: Option<&str>,
    ) -> HttpResponse {
        let mut document =
            ErrorResponse::new(ErrorCode::InternalError, &ctx.request_id, &ctx.host_id);
        document.code = response::xml_safe(code).into_owned();
        document.message = match (message, ErrorCode::from_code(code)) {
            (Some(message), _) => response::xml_safe(message).into_owned(),
            (None, Some(known)) => known.default_message().to_owned(),
            (None, None) => format!("Injected by oss-mock fault rule {}.", self.index),
        };
        response::error_document(
            document.to_xml(),
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            ctx.method == http::Method::HEAD,
        )
    }
}

/// Reads and discards up to `limit` body bytes (counting them as received). `Err` when the client
/// broke off.
async fn drain(body: &mut RequestBody, limit: u64, app: &App) -> Result<(), ()> {
    let mut read = 0u64;
    while read < limit {
        match body.frame().await {
            None => return Ok(()),
            Some(Err(_)) => return Err(()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    read += data.len() as u64;
                    app.stats.add_received(data.len() as u64);
                }
            }
        }
    }
    Ok(())
}

/// Aborts the upload the request names (when there is one, for this key), then NoSuchUpload.
async fn expire_upload(app: &App, ctx: &RequestContext) -> OssError {
    let upload_id = ctx.upload_id().unwrap_or_default().to_owned();
    if let Some(key) = ctx.key.clone()
        && !upload_id.is_empty()
    {
        let store = Arc::clone(&app.store);
        let (bucket, id) = (ctx.bucket.clone(), upload_id.clone());
        // An upload that is already gone is what the answer says anyway.
        let _ = blocking(move || store.abort(&bucket, &key, &id)).await;
    }
    OssError::no_such_upload(&upload_id)
}

/// RequestTimeTooSkewed from a server whose clock is `seconds` off: `<ServerTime>` and `Date` carry
/// the skewed time, so a client can correct its clock from either.
fn skewed_clock(headers: &http::HeaderMap, seconds: i64) -> OssError {
    let now = SystemTime::now();
    let offset = Duration::from_secs(seconds.unsigned_abs());
    let server_time = if seconds >= 0 {
        now.checked_add(offset)
    } else {
        now.checked_sub(offset)
    }
    .unwrap_or(now);
    let request_time = request_time(headers).unwrap_or(now);
    let mut err = OssError::new(ErrorCode::RequestTimeTooSkewed)
        .field("RequestTime", iso8601(request_time))
        .field("ServerTime", iso8601(server_time))
        .field(
            "MaxAllowedSkewMilliseconds",
            (MAX_CLOCK_SKEW_SECS * 1000).to_string(),
        );
    if let Ok(date) = HeaderValue::from_str(&http_date(server_time)) {
        err.headers.push((header::DATE, date));
    }
    err
}

/// The time a request says it was signed: `x-oss-date` (V4's `20240102T030405Z` or an HTTP date),
/// else `Date`.
fn request_time(headers: &http::HeaderMap) -> Option<SystemTime> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(value) = text("x-oss-date") {
        let compact =
            time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
        if let Ok(t) = time::PrimitiveDateTime::parse(value, compact) {
            return Some(t.assume_utc().into());
        }
        if let Ok(t) = httpdate::parse_http_date(value) {
            return Some(t);
        }
    }
    text("date").and_then(|v| httpdate::parse_http_date(v).ok())
}

fn corrupt_header(response: &mut HttpResponse, name: &str, corrupt: fn(&str) -> String) {
    let corrupted = response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(corrupt)
        .and_then(|v| HeaderValue::from_str(&v).ok());
    if let Some(value) = corrupted
        && let Ok(name) = http::HeaderName::from_bytes(name.as_bytes())
    {
        response.headers_mut().insert(name, value);
    }
}

/// Changes the first hex digit (outside `&…;` entities) to the next one: still a well-formed ETag,
/// but not the right one.
pub(crate) fn corrupt_hex(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut in_entity = false;
    let mut done = false;
    for c in value.chars() {
        match c {
            '&' => in_entity = true,
            ';' if in_entity => in_entity = false,
            _ if !done && !in_entity && c.is_ascii_hexdigit() => {
                let digit = c.to_digit(16).unwrap_or(0);
                let next = std::char::from_digit((digit + 1) % 16, 16).unwrap_or('0');
                out.push(if c.is_ascii_uppercase() {
                    next.to_ascii_uppercase()
                } else {
                    next
                });
                done = true;
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Adds one to a decimal CRC-64 (wrapping): still a number, but not the right one.
pub(crate) fn corrupt_decimal(value: &str) -> String {
    value
        .trim()
        .parse::<u64>()
        .map(|n| n.wrapping_add(1).to_string())
        .unwrap_or_else(|_| format!("{value}0"))
}

/// Applies `corrupt` to the text of every `<name>` element of an XML answer.
async fn rewrite_xml(
    response: HttpResponse,
    name: &str,
    corrupt: fn(&str) -> String,
) -> HttpResponse {
    let (mut parts, body) = response.into_parts();
    let Ok(collected) = body.collect().await else {
        return http::Response::from_parts(parts, response::empty());
    };
    let xml = String::from_utf8_lossy(&collected.to_bytes()).into_owned();
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml.as_str();
    while let Some(start) = rest.find(&open) {
        let text_start = start + open.len();
        let Some(len) = rest[text_start..].find(&close) else {
            break;
        };
        out.push_str(&rest[..text_start]);
        out.push_str(&corrupt(&rest[text_start..text_start + len]));
        rest = &rest[text_start + len..];
    }
    out.push_str(rest);
    parts.headers.remove(header::CONTENT_LENGTH);
    http::Response::from_parts(parts, response::full(out))
}

/// A body that yields its first `limit` bytes, then fails, which makes hyper close the connection
/// mid-answer. Its size hint is the whole body's, so `Content-Length` promises more than arrives.
fn truncated(inner: Body, limit: u64) -> Body {
    Truncated {
        inner,
        remaining: limit,
        closing: None,
    }
    .boxed_unsync()
}

struct Truncated {
    inner: Body,
    remaining: u64,
    closing: Option<Pin<Box<Sleep>>>,
}

impl http_body::Body for Truncated {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            // Pausing here lets hyper flush the bytes sent so far before the error closes the
            // connection.
            let closing = this
                .closing
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(FLUSH_BEFORE_CLOSE)));
            ready!(closing.as_mut().poll(cx));
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "answer cut short by a truncate_response fault rule",
            ))));
        }
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(mut data) => {
                    if data.len() as u64 > this.remaining {
                        data.truncate(this.remaining as usize);
                    }
                    this.remaining -= data.len() as u64;
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            other => Poll::Ready(other),
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupted_etag_is_well_formed_but_different() {
        assert_eq!(corrupt_hex("\"0A1B\""), "\"1A1B\"");
        assert_eq!(corrupt_hex("\"FFEE-3\""), "\"0FEE-3\"");
        assert_eq!(corrupt_hex("&quot;abc&quot;"), "&quot;bbc&quot;");
        assert_eq!(corrupt_hex("&#34;9&#34;"), "&#34;a&#34;");
    }

    #[test]
    fn a_corrupted_crc_is_another_number() {
        assert_eq!(corrupt_decimal("41"), "42");
        assert_eq!(corrupt_decimal(&u64::MAX.to_string()), "0");
    }

    #[test]
    fn the_request_time_is_read_from_either_date_format() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-oss-date", "20120223T070134Z".parse().unwrap());
        let t = request_time(&headers).unwrap();
        assert_eq!(http_date(t), "Thu, 23 Feb 2012 07:01:34 GMT");
        let mut headers = http::HeaderMap::new();
        headers.insert("date", "Thu, 23 Feb 2012 07:01:34 GMT".parse().unwrap());
        assert_eq!(request_time(&headers), Some(t));
    }

    #[tokio::test]
    async fn a_truncated_body_yields_exactly_the_allowed_bytes_then_fails() {
        let mut body = truncated(response::full(&b"0123456789"[..]), 4);
        assert_eq!(body.size_hint().exact(), Some(10));
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"0123");
        assert!(body.frame().await.unwrap().is_err());
    }
}
