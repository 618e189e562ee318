//! The XML documents the client reads from a server: every multipart answer, ListObjects and the
//! `<Error>` document.

use std::fmt::Debug;

use ossup_proto::ErrorResponse;
use ossup_proto::xml::{
    CompleteMultipartUploadResult, InitiateMultipartUploadResult, ListBucketResult,
    ListMultipartUploadsResult, ListPartsResult, from_xml, to_xml,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Parses `data` as each document the client reads; what parses must parse back to the same value
/// after being written out as OSS writes it (the mock writes these documents with the same code).
pub fn client_xml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    round_trip::<InitiateMultipartUploadResult>("InitiateMultipartUploadResult", text);
    round_trip::<ListPartsResult>("ListPartsResult", text);
    round_trip::<ListMultipartUploadsResult>("ListMultipartUploadsResult", text);
    round_trip::<ListBucketResult>("ListBucketResult", text);
    round_trip::<CompleteMultipartUploadResult>("CompleteMultipartUploadResult", text);
    error_round_trip(text);
}

/// A parsed document, written and parsed again, is the same document.
pub(crate) fn round_trip<T>(name: &'static str, text: &str)
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let Ok(doc) = from_xml::<T>(name, text) else {
        return;
    };
    let written = to_xml(&doc);
    match from_xml::<T>(name, &written) {
        Ok(again) => assert_eq!(
            again, doc,
            "{name} changed when written and read again; written as {written:?}"
        ),
        Err(e) => panic!(
            "{name} parsed from {text:?} was written as {written:?}, which does not parse: {e}"
        ),
    }
}

fn error_round_trip(text: &str) {
    let Ok(doc) = ErrorResponse::from_xml(text) else {
        return;
    };
    let written = doc.to_xml();
    match ErrorResponse::from_xml(&written) {
        Ok(again) => assert_eq!(
            again, doc,
            "an <Error> document changed when written and read again; written as {written:?}"
        ),
        Err(e) => panic!(
            "an <Error> parsed from {text:?} was written as {written:?}, which does not parse: {e}"
        ),
    }
}
