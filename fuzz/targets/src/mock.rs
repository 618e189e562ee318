//! What the mock server reads from a client: request bodies (CompleteMultipartUpload, PutBucket's
//! configuration, fault rules, the tagging header) and the request head it routes.

use oss_mock::fuzzing::{self, Refusal};
use oss_mock::parse_fault_rules;
use ossup_proto::ErrorResponse;
use ossup_proto::limits::MAX_PART_NUMBER;
use ossup_proto::tagging;
use ossup_proto::xml::{CompleteMultipartUpload, CompletePart, to_xml};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

/// Runs `data` through every body parser of the mock. A Complete it accepts lists 1 to 10,000
/// ascending parts, and the same parts written by the client's writer read back the same; what
/// it refuses is an error document the client parses, with the same code. Fault rules and tags
/// that parse are written and parsed again to the same value.
pub fn mock_bodies(data: &[u8]) {
    match fuzzing::complete_body(data) {
        Ok(parts) => {
            assert!(
                (1..=MAX_PART_NUMBER as usize).contains(&parts.len()),
                "a Complete of {} parts was accepted",
                parts.len()
            );
            assert!(
                parts.windows(2).all(|pair| pair[0].0 < pair[1].0),
                "a Complete with parts out of order was accepted: {parts:?}"
            );
            let written = to_xml(&CompleteMultipartUpload {
                parts: parts
                    .iter()
                    .map(|(part_number, etag)| CompletePart {
                        part_number: *part_number,
                        etag: etag.clone(),
                    })
                    .collect(),
            });
            let again = fuzzing::complete_body(written.as_bytes()).unwrap_or_else(|refusal| {
                panic!("the client's Complete {written:?} was refused: {refusal:?}")
            });
            assert_eq!(
                again, parts,
                "the Complete written as {written:?} reads back otherwise"
            );
        }
        Err(refusal) => check_refusal(&refusal),
    }
    if let Err(refusal) = fuzzing::bucket_configuration(data) {
        check_refusal(&refusal);
    }
    if let Ok(rules) = parse_fault_rules(data) {
        let written = serde_json::to_vec(&rules).expect("fault rules serialize");
        let again = parse_fault_rules(&written).unwrap_or_else(|e| {
            panic!(
                "fault rules written as {:?} do not parse: {e}",
                String::from_utf8_lossy(&written)
            )
        });
        assert_eq!(
            again, rules,
            "fault rules changed when written and read again"
        );
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(tags) = tagging::parse(text)
    {
        let written = tagging::encode(&tags);
        assert_eq!(
            tagging::parse(&written).as_ref(),
            Ok(&tags),
            "tags written as {written:?} read back otherwise"
        );
    }
}

/// Routes `data`, a request head, as the mock does (base domain `localhost`). A routed request has
/// a valid bucket and a key OSS would take, and the same request written path-style, everything
/// percent-encoded, routes to the same API, bucket, key and query; a refused one is an error
/// document the client parses.
pub fn mock_route(data: &[u8]) {
    let Some(parts) = crate::request_head(data) else {
        return;
    };
    match fuzzing::route(&parts, "localhost") {
        Ok(routed) => {
            let bucket = &routed.bucket;
            assert!(
                (3..=63).contains(&bucket.len())
                    && bucket
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "routed to an invalid bucket {bucket:?}"
            );
            if let Some(key) = &routed.key {
                assert!(
                    !key.is_empty() && key.len() <= 1023 && !key.starts_with(['/', '\\']),
                    "routed to a key OSS refuses: {key:?}"
                );
            }
            let again = path_style(&parts.method, &routed);
            let rerouted = fuzzing::route(&again, "localhost").unwrap_or_else(|refusal| {
                panic!("{} {} was refused: {refusal:?}", again.method, again.uri)
            });
            assert_eq!(
                (
                    rerouted.api,
                    &rerouted.bucket,
                    &rerouted.key,
                    &rerouted.query
                ),
                (routed.api, &routed.bucket, &routed.key, &routed.query),
                "{} {} routes otherwise than the request it was written from",
                again.method,
                again.uri
            );
        }
        Err(refusal) => check_refusal(&refusal),
    }
}

/// `routed` written as a path-style request to `127.0.0.1`, every byte but letters and digits
/// percent-encoded.
fn path_style(method: &http::Method, routed: &fuzzing::Routed) -> http::request::Parts {
    let encode = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    let mut target = format!("/{}/", routed.bucket);
    if let Some(key) = &routed.key {
        target.push_str(&encode(key));
    }
    let query: Vec<String> = routed
        .query
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect();
    if !query.is_empty() {
        target.push('?');
        target.push_str(&query.join("&"));
    }
    http::Request::builder()
        .method(method.clone())
        .uri(target)
        .header(http::header::HOST, "127.0.0.1")
        .body(())
        .expect("a percent-encoded path is a valid URI")
        .into_parts()
        .0
}

/// A refusal is a document the client reads as an OSS error with the refusal's code.
pub(crate) fn check_refusal(refusal: &Refusal) {
    let doc = ErrorResponse::from_xml(&refusal.document).unwrap_or_else(|e| {
        panic!(
            "the mock answered {} {} with an error document the client cannot read ({e}): {:?}",
            refusal.status, refusal.code, refusal.document
        )
    });
    assert_eq!(
        doc.code,
        refusal.code.as_str(),
        "the error document reads as another code: {:?}",
        refusal.document
    );
    assert_eq!(doc.request_id, oss_mock::fuzzing::REQUEST_ID);
}
