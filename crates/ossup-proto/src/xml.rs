//! The XML documents of the multipart APIs, as serde types over quick-xml.
//!
//! Parsing is lenient where real clients and servers differ (ETag quoting and entities, an XML
//! declaration or not, empty markers); writing is as OSS writes.

use serde::de::{self, DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};

/// The error of parsing an XML document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {document} XML: {reason}")]
pub struct XmlError {
    /// The document that was expected, e.g. `ListPartsResult`.
    pub document: &'static str,
    /// What the parser said.
    pub reason: String,
}

/// Parses a document of type `T`; `document` names it in the error.
pub fn from_xml<T: DeserializeOwned>(document: &'static str, xml: &str) -> Result<T, XmlError> {
    quick_xml::de::from_str(xml).map_err(|e| XmlError {
        document,
        reason: e.to_string(),
    })
}

/// Writes a document with the XML declaration OSS puts first.
pub fn to_xml<T: Serialize>(value: &T) -> String {
    let body = quick_xml::se::to_string(value).expect("wire documents always serialize");
    // A reader folds a literal carriage return, NEL (U+0085) and LINE SEPARATOR (U+2028) into a
    // line feed (the end-of-line rules of XML 1.0 and 1.1; quick-xml applies both), so a value
    // holding one would come back changed; a character reference keeps it. The serializer writes
    // none of them of its own, so every one here is inside a value.
    let body = escape_line_ends(&body);
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}")
}

/// `text` with every character an XML reader would fold into a line feed written as a character
/// reference.
fn escape_line_ends(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\r' => out.push_str("&#13;"),
            '\u{85}' => out.push_str("&#133;"),
            '\u{2028}' => out.push_str("&#8232;"),
            c => out.push(c),
        }
    }
    out
}

/// Accepts a number or an empty element (read as 0), as clients and servers send both for markers.
fn lenient_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let text = String::deserialize(d)?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(0);
    }
    text.parse().map_err(de::Error::custom)
}

fn lenient_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => t.parse().map(Some).map_err(de::Error::custom),
    }
}

/// The answer of InitiateMultipartUpload.
///
/// ```
/// use ossup_proto::xml::{from_xml, to_xml, InitiateMultipartUploadResult};
/// let doc = InitiateMultipartUploadResult { bucket: "b".into(), key: "k".into(), upload_id: "U1".into() };
/// let back: InitiateMultipartUploadResult = from_xml("InitiateMultipartUploadResult", &to_xml(&doc)).unwrap();
/// assert_eq!(back, doc);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename = "InitiateMultipartUploadResult", rename_all = "PascalCase")]
pub struct InitiateMultipartUploadResult {
    /// The bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
    /// The id that names this upload in every later request.
    pub upload_id: String,
}

/// One part in a ListParts answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListedPart {
    /// The part number, 1..=10000.
    pub part_number: u32,
    /// When the part was uploaded, ISO 8601 (`2012-02-23T07:01:34.000Z`).
    pub last_modified: String,
    /// The part's ETag, quoted uppercase hex MD5.
    #[serde(rename = "ETag")]
    pub etag: String,
    /// The part's CRC-64/XZ; absent on servers that do not compute it.
    #[serde(
        default,
        deserialize_with = "lenient_opt_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub hash_crc64ecma: Option<u64>,
    /// The part's size in bytes.
    pub size: u64,
}

/// The answer of ListParts: one page of the parts of an upload.
///
/// ```
/// use ossup_proto::xml::{from_xml, ListPartsResult};
/// let xml = r#"<ListPartsResult><Bucket>b</Bucket><Key>k</Key><UploadId>U</UploadId>
///   <PartNumberMarker></PartNumberMarker><NextPartNumberMarker>1</NextPartNumberMarker>
///   <MaxParts>1000</MaxParts><IsTruncated>false</IsTruncated>
///   <Part><PartNumber>1</PartNumber><LastModified>2012-02-23T07:01:34.000Z</LastModified>
///   <ETag>&quot;3858F62230AC3C915F300C664312C63F&quot;</ETag><HashCrc64ecma>108</HashCrc64ecma><Size>6</Size></Part>
///   </ListPartsResult>"#;
/// let page: ListPartsResult = from_xml("ListPartsResult", xml).unwrap();
/// assert_eq!(page.parts[0].etag, "\"3858F62230AC3C915F300C664312C63F\"");
/// assert_eq!(page.part_number_marker, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename = "ListPartsResult", rename_all = "PascalCase")]
pub struct ListPartsResult {
    /// The bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
    /// The upload listed.
    pub upload_id: String,
    /// The storage class the object will have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// The marker this page starts after (0 for the first page).
    #[serde(default, deserialize_with = "lenient_u32")]
    pub part_number_marker: u32,
    /// The marker of the next page, when [`is_truncated`](Self::is_truncated).
    #[serde(default, deserialize_with = "lenient_u32")]
    pub next_part_number_marker: u32,
    /// The page size asked for.
    #[serde(default, deserialize_with = "lenient_u32")]
    pub max_parts: u32,
    /// Whether more parts follow.
    pub is_truncated: bool,
    /// The parts of this page, ascending by number.
    #[serde(rename = "Part", default)]
    pub parts: Vec<ListedPart>,
}

/// One part named in a CompleteMultipartUpload request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompletePart {
    /// The part number.
    pub part_number: u32,
    /// The ETag UploadPart returned for it.
    #[serde(rename = "ETag")]
    pub etag: String,
}

/// The body of a CompleteMultipartUpload request.
///
/// ```
/// use ossup_proto::xml::{from_xml, CompleteMultipartUpload};
/// // As ali-oss writes it: a declaration, newlines, entity-quoted ETags.
/// let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUpload>\n<Part>\n<PartNumber>1</PartNumber>\n<ETag>&quot;AB&quot;</ETag>\n</Part>\n</CompleteMultipartUpload>";
/// let doc: CompleteMultipartUpload = from_xml("CompleteMultipartUpload", xml).unwrap();
/// assert_eq!(doc.parts[0].etag, "\"AB\"");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename = "CompleteMultipartUpload")]
pub struct CompleteMultipartUpload {
    /// The parts to join, ascending by number.
    #[serde(rename = "Part", default)]
    pub parts: Vec<CompletePart>,
}

/// The answer of CompleteMultipartUpload (without a callback).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename = "CompleteMultipartUploadResult", rename_all = "PascalCase")]
pub struct CompleteMultipartUploadResult {
    /// The object's URL.
    #[serde(default)]
    pub location: String,
    /// The bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
    /// The object's ETag (`"HEX-N"` for a multipart object).
    #[serde(rename = "ETag")]
    pub etag: String,
}

/// One open upload in a ListMultipartUploads answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListedUpload {
    /// The object key.
    pub key: String,
    /// The upload id.
    pub upload_id: String,
    /// When the upload was initiated, ISO 8601.
    pub initiated: String,
    /// The storage class the object will have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
}

/// The answer of ListMultipartUploads: one page of the open uploads of a bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename = "ListMultipartUploadsResult", rename_all = "PascalCase")]
pub struct ListMultipartUploadsResult {
    /// The bucket.
    pub bucket: String,
    /// The key marker this page starts after.
    #[serde(default)]
    pub key_marker: String,
    /// The upload id marker this page starts after.
    #[serde(default)]
    pub upload_id_marker: String,
    /// The key marker of the next page.
    #[serde(default)]
    pub next_key_marker: String,
    /// The upload id marker of the next page.
    #[serde(default)]
    pub next_upload_id_marker: String,
    /// The delimiter asked for.
    #[serde(default)]
    pub delimiter: String,
    /// The prefix asked for.
    #[serde(default)]
    pub prefix: String,
    /// The page size asked for.
    #[serde(default, deserialize_with = "lenient_u32")]
    pub max_uploads: u32,
    /// Whether more uploads follow.
    pub is_truncated: bool,
    /// The uploads of this page, by key then initiation.
    #[serde(rename = "Upload", default)]
    pub uploads: Vec<ListedUpload>,
}

/// The owner of a bucket or object, as listings and bucket info name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Owner {
    /// The owner's account id.
    #[serde(rename = "ID")]
    pub id: String,
    /// The owner's display name.
    pub display_name: String,
}

/// The ACL element of GetBucketInfo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct AccessControlList {
    /// `private`, `public-read` or `public-read-write`.
    pub grant: String,
}

/// The `<Bucket>` element of GetBucketInfo.
///
/// Every element oss2's `parse_get_bucket_info` requires is a plain field; the optional ones are
/// `Option`s left out when `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct BucketInfo {
    /// The bucket name.
    pub name: String,
    /// When the bucket was created, ISO 8601.
    pub creation_date: String,
    /// The endpoint to reach the bucket from the internet.
    pub extranet_endpoint: String,
    /// The endpoint to reach the bucket from inside the region.
    pub intranet_endpoint: String,
    /// The region, `oss-` prefixed (e.g. `oss-cn-hangzhou`).
    pub location: String,
    /// The bucket's default storage class.
    pub storage_class: String,
    /// `LRS` or `ZRS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_redundancy_type: Option<String>,
    /// `Enabled` or `Disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_monitor: Option<String>,
    /// `Enabled` or `Disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_acceleration: Option<String>,
    /// `Enabled` or `Disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_region_replication: Option<String>,
    /// The owner.
    pub owner: Owner,
    /// The bucket ACL.
    pub access_control_list: AccessControlList,
    /// The bucket's comment, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// The answer of GetBucketInfo (`GET /?bucketInfo`).
///
/// ```
/// use ossup_proto::xml::{from_xml, to_xml, BucketInfo, GetBucketInfoResult};
/// let doc = GetBucketInfoResult { bucket: BucketInfo { name: "b".into(), ..Default::default() } };
/// let xml = to_xml(&doc);
/// assert!(xml.contains("<BucketInfo><Bucket><Name>b</Name>"));
/// assert_eq!(from_xml::<GetBucketInfoResult>("BucketInfo", &xml).unwrap(), doc);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename = "BucketInfo", rename_all = "PascalCase")]
pub struct GetBucketInfoResult {
    /// The bucket described.
    pub bucket: BucketInfo,
}

/// The optional body of PutBucket.
///
/// ```
/// use ossup_proto::xml::{from_xml, CreateBucketConfiguration};
/// let doc: CreateBucketConfiguration = from_xml("CreateBucketConfiguration",
///     "<CreateBucketConfiguration><StorageClass>IA</StorageClass></CreateBucketConfiguration>").unwrap();
/// assert_eq!(doc.storage_class.as_deref(), Some("IA"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename = "CreateBucketConfiguration", rename_all = "PascalCase")]
pub struct CreateBucketConfiguration {
    /// The bucket's default storage class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// `LRS` or `ZRS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_redundancy_type: Option<String>,
}

/// One object in a ListObjects answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListedObject {
    /// The object key.
    pub key: String,
    /// When the object was last written, ISO 8601.
    pub last_modified: String,
    /// The object's ETag, quoted.
    #[serde(rename = "ETag")]
    pub etag: String,
    /// `Normal`, `Multipart` or `Appendable`.
    #[serde(rename = "Type")]
    pub object_type: String,
    /// Size in bytes.
    pub size: u64,
    /// The object's storage class.
    pub storage_class: String,
    /// The owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
}

/// A key prefix rolled up by a delimiter in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CommonPrefix {
    /// The prefix, delimiter included.
    pub prefix: String,
}

/// The answer of ListObjects (`GET /` on a bucket): one page of its objects.
///
/// ```
/// use ossup_proto::xml::{from_xml, to_xml, ListBucketResult};
/// let page = ListBucketResult { name: "b".into(), max_keys: 100, ..Default::default() };
/// let back: ListBucketResult = from_xml("ListBucketResult", &to_xml(&page)).unwrap();
/// assert_eq!(back, page);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename = "ListBucketResult", rename_all = "PascalCase")]
pub struct ListBucketResult {
    /// The bucket.
    pub name: String,
    /// The prefix asked for.
    #[serde(default)]
    pub prefix: String,
    /// The marker this page starts after.
    #[serde(default)]
    pub marker: String,
    /// The page size asked for.
    #[serde(default, deserialize_with = "lenient_u32")]
    pub max_keys: u32,
    /// The delimiter asked for.
    #[serde(default)]
    pub delimiter: String,
    /// `url` when keys and prefixes in this page are percent-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_type: Option<String>,
    /// Whether more objects follow.
    pub is_truncated: bool,
    /// The marker of the next page, when truncated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    /// The objects of this page, in key order.
    #[serde(rename = "Contents", default)]
    pub contents: Vec<ListedObject>,
    /// The prefixes rolled up by the delimiter.
    #[serde(rename = "CommonPrefixes", default)]
    pub common_prefixes: Vec<CommonPrefix>,
}

/// The answer of ListObjectsV2 (`GET /?list-type=2` on a bucket): one page of its objects, paged
/// by an opaque continuation token rather than by key.
///
/// ```
/// use ossup_proto::xml::{from_xml, to_xml, ListBucketV2Result};
/// let page = ListBucketV2Result { name: "b".into(), max_keys: 100, key_count: 0, ..Default::default() };
/// let xml = to_xml(&page);
/// assert!(xml.contains("<ListBucketResult>") && xml.contains("<KeyCount>0</KeyCount>"));
/// let back: ListBucketV2Result = from_xml("ListBucketResult", &xml).unwrap();
/// assert_eq!(back, page);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename = "ListBucketResult", rename_all = "PascalCase")]
pub struct ListBucketV2Result {
    /// The bucket.
    pub name: String,
    /// The prefix asked for.
    #[serde(default)]
    pub prefix: String,
    /// The token this page continues from, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<String>,
    /// The key this listing starts after, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_after: Option<String>,
    /// The page size asked for.
    #[serde(default, deserialize_with = "lenient_u32")]
    pub max_keys: u32,
    /// The delimiter asked for.
    #[serde(default)]
    pub delimiter: String,
    /// `url` when keys and prefixes in this page are percent-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_type: Option<String>,
    /// Whether more objects follow.
    pub is_truncated: bool,
    /// The token of the next page, when truncated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_continuation_token: Option<String>,
    /// The objects and common prefixes in this page.
    #[serde(default, deserialize_with = "lenient_u32")]
    pub key_count: u32,
    /// The objects of this page, in key order (with their owner only when asked with `fetch-owner`).
    #[serde(rename = "Contents", default)]
    pub contents: Vec<ListedObject>,
    /// The prefixes rolled up by the delimiter.
    #[serde(rename = "CommonPrefixes", default)]
    pub common_prefixes: Vec<CommonPrefix>,
}

/// The answer of CopyObject: the new object's ETag and time.
///
/// ```
/// use ossup_proto::xml::{from_xml, to_xml, CopyObjectResult};
/// let result = CopyObjectResult { etag: "\"ABC\"".into(), last_modified: "2024-01-01T00:00:00.000Z".into() };
/// assert_eq!(from_xml::<CopyObjectResult>("CopyObjectResult", &to_xml(&result)).unwrap(), result);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename = "CopyObjectResult", rename_all = "PascalCase")]
pub struct CopyObjectResult {
    /// The new object's ETag, quoted.
    #[serde(rename = "ETag")]
    pub etag: String,
    /// When it was written, ISO 8601.
    pub last_modified: String,
}

/// The body of DeleteMultipleObjects (`POST /?delete`): the keys to delete.
///
/// ```
/// use ossup_proto::xml::{from_xml, DeleteRequest};
/// let body = "<Delete><Quiet>true</Quiet><Object><Key>a</Key></Object><Object><Key>b/c</Key></Object></Delete>";
/// let request: DeleteRequest = from_xml("Delete", body).unwrap();
/// assert_eq!(request.quiet, Some(true));
/// assert_eq!(request.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["a", "b/c"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename = "Delete", rename_all = "PascalCase")]
pub struct DeleteRequest {
    /// Whether the answer lists only the objects that could not be deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet: Option<bool>,
    /// The objects to delete.
    #[serde(rename = "Object", default)]
    pub objects: Vec<DeleteEntry>,
}

/// One object of a [`DeleteRequest`] or a [`DeleteResult`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteEntry {
    /// The object key.
    pub key: String,
}

/// The answer of DeleteMultipleObjects: the objects deleted (none when quiet).
///
/// ```
/// use ossup_proto::xml::{to_xml, DeleteEntry, DeleteResult};
/// let result = DeleteResult { deleted: vec![DeleteEntry { key: "a".into() }], encoding_type: None };
/// assert!(to_xml(&result).contains("<Deleted><Key>a</Key></Deleted>"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename = "DeleteResult", rename_all = "PascalCase")]
pub struct DeleteResult {
    /// The objects deleted.
    #[serde(rename = "Deleted", default)]
    pub deleted: Vec<DeleteEntry>,
    /// `url` when the keys are percent-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_type: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `cargo xtask fuzz` (target `client_xml`): a carriage return, then a NEL (U+0085),
    /// in a value was written as is, and read back as a line feed.
    #[test]
    fn line_end_characters_in_a_value_survive_writing_and_reading() {
        let doc = InitiateMultipartUploadResult {
            bucket: "bucket".into(),
            key: "a\rb\r\nc\n\r d\u{85}e\r\u{85}f\u{2028}g".into(),
            upload_id: "U\r".into(),
        };
        let written = to_xml(&doc);
        for folded in ['\r', '\u{85}', '\u{2028}'] {
            assert!(!written.contains(folded), "{written:?}");
        }
        let back: InitiateMultipartUploadResult =
            from_xml("InitiateMultipartUploadResult", &written).unwrap();
        assert_eq!(back, doc);
    }

    #[test]
    fn list_parts_round_trips() {
        let page = ListPartsResult {
            bucket: "b".into(),
            key: "a/../k & <x>".into(),
            upload_id: "U".into(),
            storage_class: Some("Standard".into()),
            part_number_marker: 0,
            next_part_number_marker: 2,
            max_parts: 1000,
            is_truncated: true,
            parts: vec![ListedPart {
                part_number: 2,
                last_modified: "2012-02-23T07:01:34.000Z".into(),
                etag: "\"ABC\"".into(),
                hash_crc64ecma: Some(u64::MAX),
                size: 102400,
            }],
        };
        let back: ListPartsResult = from_xml("ListPartsResult", &to_xml(&page)).unwrap();
        assert_eq!(back, page);
    }

    #[test]
    fn complete_request_accepts_literal_quotes_and_rejects_garbage() {
        let doc: CompleteMultipartUpload = from_xml(
            "CompleteMultipartUpload",
            "<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>\"X\"</ETag></Part></CompleteMultipartUpload>",
        )
        .unwrap();
        assert_eq!(
            doc.parts,
            vec![CompletePart {
                part_number: 2,
                etag: "\"X\"".into()
            }]
        );
        assert!(
            from_xml::<CompleteMultipartUpload>("CompleteMultipartUpload", "<Complete").is_err()
        );
        assert!(
            from_xml::<CompleteMultipartUpload>(
                "CompleteMultipartUpload",
                "<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>"
            )
            .is_err()
        );
    }
}
