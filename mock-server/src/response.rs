//! Building responses: the body type, XML answers, and the time and URL formats OSS uses.

use std::io;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use http::{HeaderValue, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use ossup_proto::headers;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use time::OffsetDateTime;
use time::macros::format_description;

/// The body of every response.
pub(crate) type Body = UnsyncBoxBody<Bytes, io::Error>;

/// A response handlers return.
pub(crate) type HttpResponse = Response<Body>;

/// An empty body.
pub(crate) fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A body of known bytes.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body streamed from `stream`.
pub(crate) fn streamed(stream: impl Stream<Item = io::Result<Bytes>> + Send + 'static) -> Body {
    StreamBody::new(stream.map_ok(Frame::data)).boxed_unsync()
}

/// A response with `status` and no body.
pub(crate) fn status_only(status: StatusCode) -> HttpResponse {
    let mut response = Response::new(empty());
    *response.status_mut() = status;
    response
}

/// An error answer of `status` carrying the OSS `<Error>` document `xml`. A HEAD answer has no
/// body: as OSS does, it carries the document base64-encoded in `x-oss-err` instead, where the SDKs
/// read the error code from (Python V2, Go V2), and says `Content-Length: 0`.
pub(crate) fn error_document(xml: String, status: StatusCode, head: bool) -> HttpResponse {
    let mut response = if head {
        let mut response = status_only(status);
        let encoded = BASE64.encode(&xml);
        let value = HeaderValue::from_str(&encoded).expect("base64 is a valid header value");
        response
            .headers_mut()
            .insert(headers::ERROR_DOCUMENT, value);
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        response
    } else {
        self::xml(xml)
    };
    *response.status_mut() = status;
    response
}

/// A 200 response carrying an XML document.
pub(crate) fn xml(document: String) -> HttpResponse {
    let mut response = Response::new(full(document));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    response
}

/// Sets a header; a value that is not a legal header value (which only stored user input could
/// produce: a control character, say) is left out rather than sent malformed. Bytes outside ASCII
/// pass through, as OSS returns UTF-8 metadata.
pub(crate) fn set_header(response: &mut HttpResponse, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
        response
            .headers_mut()
            .insert(http::HeaderName::from_static(name), value);
    }
}

/// ISO 8601 with milliseconds, as OSS writes times in XML: `2012-02-23T07:01:34.000Z`.
pub(crate) fn iso8601(time: SystemTime) -> String {
    OffsetDateTime::from(time)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default()
}

/// An RFC 1123 date, as in `Date` and `Last-Modified`.
pub(crate) fn http_date(time: SystemTime) -> String {
    httpdate::fmt_http_date(time)
}

/// What OSS leaves unescaped with `encoding-type=url`.
const URL_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a key for an `encoding-type=url` answer.
pub(crate) fn url_encode(s: &str) -> String {
    utf8_percent_encode(s, URL_ENCODE_SET).to_string()
}

/// Adds `<EncodingType>url</EncodingType>` as the first child of the root element, which tells
/// clients that names in the document are percent-encoded.
pub(crate) fn with_url_encoding_type(document: String, root: &str) -> String {
    let open = format!("<{root}>");
    match document.find(&open) {
        Some(at) => {
            let mut out = document;
            out.insert_str(at + open.len(), "<EncodingType>url</EncodingType>");
            out
        }
        None => document,
    }
}

/// Whether XML 1.0 text can carry `c` so that a parser reads back the same character: XML 1.0 has
/// no way to write U+0000 to U+0008, U+000B, U+000C, U+000E to U+001F, U+FFFE or U+FFFF (not even
/// as a character reference), and a parser reads a literal carriage return as a line feed.
pub(crate) fn xml_round_trips(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// The first character of `s` that XML 1.0 text cannot carry unchanged (see [`xml_round_trips`]).
pub(crate) fn first_non_xml_char(s: &str) -> Option<char> {
    s.chars().find(|c| !xml_round_trips(*c))
}

/// `s` with every character XML 1.0 cannot carry written as `%XX` (its UTF-8 bytes), for text that
/// echoes client input in an error document: the document stays well formed and the reader still
/// sees which character it was.
pub(crate) fn xml_safe(s: &str) -> std::borrow::Cow<'_, str> {
    if first_non_xml_char(s).is_none() {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if xml_round_trips(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn text_xml_cannot_carry_is_written_as_percent_escapes() {
        assert_eq!(xml_safe("plain/ü\tkey\n"), "plain/ü\tkey\n");
        assert_eq!(xml_safe("a\0b\u{1}c\rd\u{FFFF}"), "a%00b%01c%0Dd%EF%BF%BF");
        assert_eq!(first_non_xml_char("ok\u{7F}"), None);
        assert_eq!(first_non_xml_char("bad\u{1B}"), Some('\u{1B}'));
    }

    #[test]
    fn times_are_formatted_as_oss_does() {
        let t = UNIX_EPOCH + Duration::from_secs(1_329_980_494);
        assert_eq!(iso8601(t), "2012-02-23T07:01:34.000Z");
        assert_eq!(http_date(t), "Thu, 23 Feb 2012 07:01:34 GMT");
    }

    #[test]
    fn url_encoding_escapes_slashes_and_spaces() {
        assert_eq!(url_encode("a/b c~d.e"), "a%2Fb%20c~d.e");
        assert_eq!(
            with_url_encoding_type("<?xml?>\n<R><K>x</K></R>".into(), "R"),
            "<?xml?>\n<R><EncodingType>url</EncodingType><K>x</K></R>"
        );
    }
}
