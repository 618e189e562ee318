//! Pieces both signature versions share: header access as raw bytes, request times, and the clock-skew rule.
//!
//! Header values are handled as bytes, never as `str`, so a value that is not UTF-8 is signed exactly as it
//! travels instead of making the signer fail or panic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use ossup_proto::limits::MAX_CLOCK_SKEW_SECS;
use time::{OffsetDateTime, PrimitiveDateTime, macros::format_description};

use crate::SignError;

/// 9999-12-31T23:59:59Z, the last second an HTTP date can express.
const LAST_HTTP_DATE_SECS: u64 = 253_402_300_799;

/// All values of header `name`, each trimmed, joined by `,` (as the SDKs join repeated headers);
/// `None` when the header is absent.
pub(crate) fn header_bytes(headers: &HeaderMap, name: &str) -> Option<Vec<u8>> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let mut out = Vec::new();
    for (i, value) in values.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(value.as_bytes().trim_ascii());
    }
    Some(out)
}

/// Replaces header `name` with `value`, refusing values HTTP cannot carry.
pub(crate) fn set_header(
    headers: &mut HeaderMap,
    name: &'static str,
    value: &str,
) -> Result<(), SignError> {
    let value = HeaderValue::from_str(value).map_err(|_| SignError::InvalidHeader {
        name: name.to_owned(),
        reason: "the value contains a control character (a newline, say); \
                 check the credentials or the header for stray characters"
            .to_owned(),
    })?;
    headers.insert(HeaderName::from_static(name), value);
    Ok(())
}

/// `now` as a calendar time, or an error when no OSS date can express it.
pub(crate) fn signing_time(now: SystemTime) -> Result<OffsetDateTime, SignError> {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| SignError::InvalidTime(now))?
        .as_secs();
    if secs > LAST_HTTP_DATE_SECS {
        return Err(SignError::InvalidTime(now));
    }
    // Both bounds were checked above, so the conversion cannot fail.
    OffsetDateTime::from_unix_timestamp(secs as i64).map_err(|_| SignError::InvalidTime(now))
}

/// RFC 1123 in GMT, the `Date` header of V1: `Wed, 28 Dec 2022 10:27:41 GMT`.
pub(crate) fn http_date(t: OffsetDateTime) -> String {
    httpdate::fmt_http_date(SystemTime::from(t))
}

/// ISO 8601 basic, the `x-oss-date` of V4: `20231216T162057Z`.
pub(crate) fn iso8601_basic(t: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses an `x-oss-date` of V4 (`yyyyMMddTHHmmssZ`).
pub(crate) fn parse_iso8601_basic(s: &str) -> Option<SystemTime> {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(s, format)
        .ok()
        .map(|t| SystemTime::from(t.assume_utc()))
}

/// Parses the V1 date slot: an HTTP date, or the ISO 8601 basic form some clients put in `x-oss-date`.
pub(crate) fn parse_any_date(s: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(s)
        .ok()
        .or_else(|| parse_iso8601_basic(s))
}

/// Whether `request_time` is within the 15 minutes OSS tolerates either side of `now`.
pub(crate) fn within_skew(request_time: SystemTime, now: SystemTime) -> bool {
    let distance = match now.duration_since(request_time) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    distance <= Duration::from_secs(MAX_CLOCK_SKEW_SECS)
}

/// Builds the start of a canonical resource or URI, `/BUCKET/KEY`, `/BUCKET/` or `/`, unencoded.
pub(crate) fn resource_path(bucket: Option<&str>, key: Option<&str>) -> String {
    let mut path = String::from("/");
    if let Some(bucket) = bucket {
        path.push_str(bucket);
        path.push('/');
    }
    if let Some(key) = key {
        path.push_str(key);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_basic_round_trips() {
        let t = OffsetDateTime::from_unix_timestamp(1_702_743_657).unwrap();
        let text = iso8601_basic(t);
        assert_eq!(text, "20231216T162057Z");
        assert_eq!(parse_iso8601_basic(&text), Some(SystemTime::from(t)));
    }

    #[test]
    fn signing_time_refuses_dates_no_header_can_carry() {
        let before_epoch = UNIX_EPOCH - Duration::from_secs(1);
        assert!(matches!(
            signing_time(before_epoch),
            Err(SignError::InvalidTime(_))
        ));
        let year_10000 = UNIX_EPOCH + Duration::from_secs(LAST_HTTP_DATE_SECS + 1);
        assert!(matches!(
            signing_time(year_10000),
            Err(SignError::InvalidTime(_))
        ));
    }

    #[test]
    fn repeated_headers_join_trimmed_with_commas() {
        let mut headers = HeaderMap::new();
        headers.append("x-oss-meta-a", HeaderValue::from_static(" one "));
        headers.append("x-oss-meta-a", HeaderValue::from_static("two"));
        assert_eq!(header_bytes(&headers, "x-oss-meta-a").unwrap(), b"one,two");
        assert_eq!(header_bytes(&headers, "x-oss-meta-b"), None);
    }
}
