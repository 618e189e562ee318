//! Reading a success answer: its document (which must parse, and whose cut short form the retry
//! layer asks for again) and its CRC-64 header.

use http::HeaderMap;
use ossup_proto::headers;
use ossup_proto::xml::from_xml;

use crate::Error;
use crate::wire::{BodyCheck, header_str, request_id};

/// The server's CRC-64 of what it stored (`x-oss-hash-crc64ecma`), when it sent one.
pub(super) fn crc_header(headers: &HeaderMap) -> Result<Option<u64>, Error> {
    match header_str(headers, headers::HASH_CRC64ECMA) {
        None => Ok(None),
        Some(text) => text.trim().parse().map(Some).map_err(|_| {
            Error::malformed_response(format!(
                "{} header {text:?} is not a decimal u64 (request {})",
                headers::HASH_CRC64ECMA,
                request_id(headers)
            ))
        }),
    }
}

/// Parses a success answer as the document `document`; a failure is a
/// [`MalformedResponse`](crate::ErrorKind::MalformedResponse) naming the server's `request_id`
/// (when known), for its operators to look up.
pub(super) fn parse_doc<T: serde::de::DeserializeOwned>(
    document: &'static str,
    body: &[u8],
    request_id: &str,
) -> Result<T, Error> {
    let request = if request_id.is_empty() {
        String::new()
    } else {
        format!(" (request {request_id})")
    };
    let text = std::str::from_utf8(body).map_err(|_| {
        Error::malformed_response(format!("the {document} answer{request} is not UTF-8"))
    })?;
    from_xml(document, text).map_err(|e| {
        Error::malformed_response(format!(
            "the {document} answer{request} is not the document OSS sends: {e}"
        ))
    })
}

/// The retry layer's check of a `document` answer: it must parse; one that does not and lacks its
/// end (cut short on the way, though the connection closed cleanly) is worth asking for again.
pub(super) fn document_check<T: serde::de::DeserializeOwned + 'static>(
    document: &'static str,
) -> BodyCheck {
    std::sync::Arc::new(move |body: &[u8]| {
        let err = match parse_doc::<T>(document, body, "") {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        if is_cut_short(body) {
            Err(Error::malformed_response(format!(
                "the {document} answer was cut short after {} bytes ({})",
                body.len(),
                err.message()
            ))
            .set_retryable(true))
        } else {
            Err(err)
        }
    })
}

/// Whether an XML document lacks its end: its root element is neither closed (`</Root>` last) nor
/// empty (`<Root/>`). Every complete OSS document ends so; a body cut short almost never does.
fn is_cut_short(body: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(body) else {
        // Cut inside a multi-byte character, or not text at all; only the former ends mid-way.
        return std::str::from_utf8(&body[..body.len().saturating_sub(3)]).is_ok();
    };
    let text = text.trim_end();
    let mut rest = text;
    // The root element: the first tag that is not a declaration, comment or processing instruction.
    let root = loop {
        let Some(start) = rest.find('<') else {
            return true;
        };
        rest = &rest[start + 1..];
        if !(rest.starts_with('?') || rest.starts_with('!')) {
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
                .unwrap_or(rest.len());
            break &rest[..end];
        }
    };
    if root.is_empty() {
        return true;
    }
    let closed = text
        .strip_suffix('>')
        .and_then(|t| t.strip_suffix(root))
        .and_then(|t| t.trim_end().strip_suffix("</"))
        .is_some();
    let empty_root = {
        let after_name = &rest[root.len()..];
        after_name.find('>').is_some_and(|i| {
            after_name[..i].ends_with('/') && after_name[i + 1..].trim().is_empty()
        })
    };
    !(closed || empty_root)
}

#[cfg(test)]
mod tests {
    use super::*;

    use ossup_proto::xml::InitiateMultipartUploadResult;

    const INITIATED: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>U1</UploadId></InitiateMultipartUploadResult>\n";

    #[test]
    fn a_document_is_cut_short_when_its_root_is_not_closed() {
        assert!(!is_cut_short(INITIATED.as_bytes()));
        assert!(!is_cut_short(b"<Empty/>"));
        assert!(!is_cut_short(b"<Other><A>1</A></Other>"));
        for len in 0..INITIATED.trim_end().len() {
            assert!(is_cut_short(&INITIATED.as_bytes()[..len]), "{len} bytes");
        }
    }

    #[test]
    fn the_document_check_retries_a_cut_document_but_not_an_unexpected_one() {
        let check =
            document_check::<InitiateMultipartUploadResult>("InitiateMultipartUploadResult");
        assert!(check(INITIATED.as_bytes()).is_ok());
        let cut = check(&INITIATED.as_bytes()[..INITIATED.len() - 20]).unwrap_err();
        assert!(cut.is_retryable(), "{cut}");
        assert!(cut.to_string().contains("cut short"), "{cut}");
        let other = check(b"<Other><A>1</A></Other>").unwrap_err();
        assert!(!other.is_retryable(), "{other}");
    }
}
