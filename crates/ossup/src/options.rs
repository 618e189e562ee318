//! The properties an uploaded object gets: content type, the other standard content headers,
//! user metadata, ACL, storage class, server-side encryption, tags, extra headers, and whether an
//! existing object may be overwritten.
//!
//! They travel as request headers on InitiateMultipartUpload and on PutObject alike: OSS takes
//! every one of them on both APIs and keeps them with the object.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use ossup_proto::{headers, tagging};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Error;

/// An object ACL (`x-oss-object-acl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum ObjectAcl {
    /// Inherit the bucket's ACL.
    Default,
    /// Only the owner may read or write.
    Private,
    /// Anyone may read.
    PublicRead,
    /// Anyone may read and write.
    PublicReadWrite,
}

impl ObjectAcl {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectAcl::Default => "default",
            ObjectAcl::Private => "private",
            ObjectAcl::PublicRead => "public-read",
            ObjectAcl::PublicReadWrite => "public-read-write",
        }
    }
}

impl FromStr for ObjectAcl {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        [
            ObjectAcl::Default,
            ObjectAcl::Private,
            ObjectAcl::PublicRead,
            ObjectAcl::PublicReadWrite,
        ]
        .into_iter()
        .find(|acl| acl.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| {
            Error::config(format!(
                "unknown object ACL {s:?}; use default, private, public-read or public-read-write"
            ))
        })
    }
}

impl fmt::Display for ObjectAcl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A storage class (`x-oss-storage-class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum StorageClass {
    /// Standard.
    Standard,
    /// Infrequent access.
    IA,
    /// Archive.
    Archive,
    /// Cold archive.
    ColdArchive,
    /// Deep cold archive.
    DeepColdArchive,
}

impl StorageClass {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageClass::Standard => "Standard",
            StorageClass::IA => "IA",
            StorageClass::Archive => "Archive",
            StorageClass::ColdArchive => "ColdArchive",
            StorageClass::DeepColdArchive => "DeepColdArchive",
        }
    }
}

impl FromStr for StorageClass {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        [
            StorageClass::Standard,
            StorageClass::IA,
            StorageClass::Archive,
            StorageClass::ColdArchive,
            StorageClass::DeepColdArchive,
        ]
        .into_iter()
        .find(|c| c.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| {
            Error::config(format!(
                "unknown storage class {s:?}; use Standard, IA, Archive, ColdArchive or DeepColdArchive"
            ))
        })
    }
}

impl fmt::Display for StorageClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Server-side encryption of the object (`x-oss-server-side-encryption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum ServerSideEncryption {
    /// AES-256 with keys OSS manages.
    Aes256,
    /// A key held in KMS: the account's default one, or the one given by
    /// [`ObjectOptions::sse_kms_key_id`].
    Kms,
    /// SM4 with keys OSS manages.
    Sm4,
}

impl ServerSideEncryption {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerSideEncryption::Aes256 => "AES256",
            ServerSideEncryption::Kms => "KMS",
            ServerSideEncryption::Sm4 => "SM4",
        }
    }
}

impl FromStr for ServerSideEncryption {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        [
            ServerSideEncryption::Aes256,
            ServerSideEncryption::Kms,
            ServerSideEncryption::Sm4,
        ]
        .into_iter()
        .find(|sse| sse.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| {
            Error::config(format!(
                "unknown server-side encryption {s:?}; use AES256, KMS or SM4"
            ))
        })
    }
}

impl fmt::Display for ServerSideEncryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The algorithm KMS encryption uses instead of AES-256
/// (`x-oss-server-side-data-encryption`); only with [`ServerSideEncryption::Kms`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum DataEncryption {
    /// SM4.
    Sm4,
}

impl DataEncryption {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            DataEncryption::Sm4 => "SM4",
        }
    }
}

impl FromStr for DataEncryption {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        if s.eq_ignore_ascii_case("SM4") {
            Ok(DataEncryption::Sm4)
        } else {
            Err(Error::config(format!(
                "unknown KMS data encryption {s:?}; use SM4"
            )))
        }
    }
}

impl fmt::Display for DataEncryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Headers the engine sets on every request itself, and what to use instead of giving them.
const ENGINE_HEADERS: &[(&str, &str)] = &[
    ("content-md5", "the engine computes it from the body"),
    ("content-length", "the engine sets it from the source"),
    ("transfer-encoding", "the engine sets the body's framing"),
    (
        "authorization",
        "the signer computes it; configure credentials and the signer",
    ),
    ("date", "the signer sets it"),
    (headers::OSS_DATE, "the signer sets it"),
    (headers::CONTENT_SHA256, "the signer sets it"),
    ("host", "the engine derives it from the endpoint"),
    (
        headers::SECURITY_TOKEN,
        "give an STS token with Credentials::with_security_token",
    ),
];

/// Headers that have an option of their own, and that option.
const OPTION_HEADERS: &[(&str, &str)] = &[
    (
        "content-type",
        "ObjectOptions::content_type (--content-type)",
    ),
    (
        "cache-control",
        "ObjectOptions::cache_control (--cache-control)",
    ),
    (
        "content-disposition",
        "ObjectOptions::content_disposition (--content-disposition)",
    ),
    (
        "content-encoding",
        "ObjectOptions::content_encoding (--content-encoding)",
    ),
    ("expires", "ObjectOptions::expires (--expires)"),
    (headers::OBJECT_ACL, "ObjectOptions::acl (--acl)"),
    (
        headers::STORAGE_CLASS,
        "ObjectOptions::storage_class (--storage-class)",
    ),
    (
        headers::FORBID_OVERWRITE,
        "ObjectOptions::forbid_overwrite (--forbid-overwrite)",
    ),
    (
        headers::SERVER_SIDE_ENCRYPTION,
        "ObjectOptions::server_side_encryption (--sse)",
    ),
    (
        headers::SSE_KMS_KEY_ID,
        "ObjectOptions::sse_kms_key_id (--sse-kms-key-id)",
    ),
    (
        headers::SERVER_SIDE_DATA_ENCRYPTION,
        "ObjectOptions::sse_data_encryption (--sse-data-encryption)",
    ),
    (headers::TAGGING, "ObjectOptions::tag (--tag or --tagging)"),
];

/// Why an extra header cannot be sent, or `None` when it can.
fn refused_extra_header(name: &str) -> Option<String> {
    if let Some((_, instead)) = ENGINE_HEADERS.iter().find(|(n, _)| *n == name) {
        return Some(format!("header {name:?} cannot be given: {instead}"));
    }
    if let Some((_, instead)) = OPTION_HEADERS.iter().find(|(n, _)| *n == name) {
        return Some(format!(
            "header {name:?} has an option of its own: use {instead}"
        ));
    }
    if name.starts_with(headers::CALLBACK) {
        return Some(format!(
            "header {name:?} cannot be given: set the upload callback with UploadRequest::callback (--callback-url)"
        ));
    }
    if name.starts_with(headers::META_PREFIX) {
        return Some(format!(
            "header {name:?} is user metadata: use ObjectOptions::meta (--meta)"
        ));
    }
    None
}

/// What the uploaded object is created with.
///
/// The content type is guessed from the source's name when not given. A resumed upload must be
/// initiated with the same options: the checkpoint keeps a [`digest`](Self::digest) of them, and
/// different options start a fresh upload.
///
/// ```
/// use ossup::{ObjectAcl, ObjectOptions};
/// let options = ObjectOptions::default()
///     .content_type("text/plain")
///     .meta("owner", "alice")
///     .acl(ObjectAcl::Private)
///     .forbid_overwrite(true);
/// assert_eq!(options.metadata["owner"], "alice");
/// ```
///
/// Options added since the first checkpoint format are left out of the digest while unset, so a
/// checkpoint written before they existed still matches options that do not use them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ObjectOptions {
    /// `Content-Type`; guessed from the source name when `None`.
    pub content_type: Option<String>,
    /// User metadata, sent as `x-oss-meta-NAME` (names are lowercased).
    pub metadata: BTreeMap<String, String>,
    /// The object ACL; the bucket's when `None`.
    pub acl: Option<ObjectAcl>,
    /// The storage class; the bucket's when `None`.
    pub storage_class: Option<StorageClass>,
    /// Fail with `FileAlreadyExists` instead of replacing an existing object.
    pub forbid_overwrite: bool,
    /// `Cache-Control`, returned when the object is read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// `Content-Disposition`, returned when the object is read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    /// `Content-Encoding` of the bytes as uploaded (OSS stores them as given, it does not decode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// `Expires`, returned when the object is read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Server-side encryption; the bucket's default when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_side_encryption: Option<ServerSideEncryption>,
    /// The KMS key id; only with [`ServerSideEncryption::Kms`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sse_kms_key_id: Option<String>,
    /// The algorithm of KMS encryption; only with [`ServerSideEncryption::Kms`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sse_data_encryption: Option<DataEncryption>,
    /// Object tags (`x-oss-tagging`), in the order given; each key once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    /// Further request headers, lowercase names, in the order given. Headers the engine sets
    /// itself or that have an option of their own are refused by [`validate`](Self::validate).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_headers: Vec<(String, String)>,
}

impl ObjectOptions {
    /// Sets the content type.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Adds a user metadata entry.
    pub fn meta(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata
            .insert(name.into().to_ascii_lowercase(), value.into());
        self
    }

    /// Sets the ACL.
    pub fn acl(mut self, acl: ObjectAcl) -> Self {
        self.acl = Some(acl);
        self
    }

    /// Sets the storage class.
    pub fn storage_class(mut self, class: StorageClass) -> Self {
        self.storage_class = Some(class);
        self
    }

    /// Refuses to overwrite an existing object.
    pub fn forbid_overwrite(mut self, forbid: bool) -> Self {
        self.forbid_overwrite = forbid;
        self
    }

    /// Sets `Cache-Control`.
    pub fn cache_control(mut self, value: impl Into<String>) -> Self {
        self.cache_control = Some(value.into());
        self
    }

    /// Sets `Content-Disposition`.
    pub fn content_disposition(mut self, value: impl Into<String>) -> Self {
        self.content_disposition = Some(value.into());
        self
    }

    /// Sets `Content-Encoding`.
    pub fn content_encoding(mut self, value: impl Into<String>) -> Self {
        self.content_encoding = Some(value.into());
        self
    }

    /// Sets `Expires` (an HTTP date, such as `Wed, 21 Oct 2026 07:28:00 GMT`).
    pub fn expires(mut self, value: impl Into<String>) -> Self {
        self.expires = Some(value.into());
        self
    }

    /// Sets server-side encryption.
    pub fn server_side_encryption(mut self, sse: ServerSideEncryption) -> Self {
        self.server_side_encryption = Some(sse);
        self
    }

    /// Sets the KMS key that encrypts the object; needs [`ServerSideEncryption::Kms`].
    pub fn sse_kms_key_id(mut self, key_id: impl Into<String>) -> Self {
        self.sse_kms_key_id = Some(key_id.into());
        self
    }

    /// Sets the algorithm of KMS encryption; needs [`ServerSideEncryption::Kms`].
    pub fn sse_data_encryption(mut self, algorithm: DataEncryption) -> Self {
        self.sse_data_encryption = Some(algorithm);
        self
    }

    /// Adds a tag, replacing the value of a tag with the same key.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        match self.tags.iter_mut().find(|(k, _)| *k == key) {
            Some(existing) => existing.1 = value,
            None => self.tags.push((key, value)),
        }
        self
    }

    /// Adds the tags of a URL-encoded query string (`k1=v1&k2=v2`, the form of `x-oss-tagging`).
    pub fn tagging(mut self, query: &str) -> Result<Self, Error> {
        let tags =
            tagging::parse(query).map_err(|e| Error::config(format!("tagging {query:?}: {e}")))?;
        for (key, value) in tags {
            self = self.tag(key, value);
        }
        Ok(self)
    }

    /// Adds a request header; the name is lowercased. [`validate`](Self::validate) refuses
    /// headers the engine sets itself and those that have an option of their own.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_headers
            .push((name.into().to_ascii_lowercase(), value.into()));
        self
    }

    /// These options with the content type filled in from `name` when it is not set.
    pub fn with_guessed_content_type(mut self, name: Option<&str>) -> Self {
        if self.content_type.is_none() {
            let guess = name
                .and_then(|n| mime_guess::from_path(n).first_raw())
                .unwrap_or("application/octet-stream");
            self.content_type = Some(guess.to_owned());
        }
        self
    }

    /// A stable hex digest of the options, kept in the checkpoint.
    pub fn digest(&self) -> String {
        let json = serde_json::to_vec(self).expect("options serialize");
        hex::encode(Sha256::digest(json))
    }

    /// Checks the options can be sent as headers.
    pub fn validate(&self) -> Result<(), Error> {
        for (name, value) in &self.metadata {
            let header = format!("{}{}", headers::META_PREFIX, name);
            if http::HeaderName::from_bytes(header.as_bytes()).is_err() || name.is_empty() {
                return Err(Error::config(format!(
                    "metadata name {name:?} cannot be an HTTP header name; use letters, digits and '-'"
                )));
            }
            if http::HeaderValue::from_str(value).is_err() {
                return Err(Error::config(format!(
                    "metadata value of {name:?} cannot be an HTTP header value (no control characters or non-ASCII)"
                )));
            }
        }
        for (what, value) in [
            ("content type", &self.content_type),
            ("Cache-Control", &self.cache_control),
            ("Content-Disposition", &self.content_disposition),
            ("Content-Encoding", &self.content_encoding),
            ("Expires", &self.expires),
            ("KMS key id", &self.sse_kms_key_id),
        ] {
            if let Some(value) = value
                && http::HeaderValue::from_str(value).is_err()
            {
                return Err(Error::config(format!(
                    "{what} {value:?} cannot be an HTTP header value (no control characters or non-ASCII)"
                )));
            }
        }
        if self.server_side_encryption != Some(ServerSideEncryption::Kms) {
            if let Some(key_id) = &self.sse_kms_key_id {
                return Err(Error::config(format!(
                    "KMS key id {key_id:?} needs server-side encryption KMS; set it, or drop the key id"
                )));
            }
            if let Some(algorithm) = self.sse_data_encryption {
                return Err(Error::config(format!(
                    "KMS data encryption {algorithm} needs server-side encryption KMS; for SM4 without KMS, use server-side encryption SM4"
                )));
            }
        }
        tagging::check(&self.tags).map_err(|e| Error::config(format!("object tags: {e}")))?;
        for (i, (name, value)) in self.extra_headers.iter().enumerate() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(Error::config(format!(
                    "header name {name:?} is not a valid HTTP header name; use letters, digits and '-'"
                )));
            }
            if let Some(why) = refused_extra_header(name) {
                return Err(Error::config(why));
            }
            if self.extra_headers[..i]
                .iter()
                .any(|(earlier, _)| earlier == name)
            {
                return Err(Error::config(format!(
                    "header {name:?} is given twice; give each header once"
                )));
            }
            if http::HeaderValue::from_str(value).is_err() {
                return Err(Error::config(format!(
                    "value of header {name:?} cannot be an HTTP header value (no control characters or non-ASCII)"
                )));
            }
        }
        Ok(())
    }

    /// The headers these options add to InitiateMultipartUpload or PutObject.
    pub(crate) fn apply(&self, headers_out: &mut http::HeaderMap) -> Result<(), Error> {
        self.validate()?;
        let mut put = |name: &str, value: &str| {
            headers_out.insert(
                http::HeaderName::from_bytes(name.as_bytes()).expect("validated"),
                http::HeaderValue::from_str(value).expect("validated"),
            );
        };
        if let Some(ct) = &self.content_type {
            put("content-type", ct);
        }
        for (name, value) in &self.metadata {
            put(&format!("{}{}", headers::META_PREFIX, name), value);
        }
        if let Some(acl) = self.acl {
            put(headers::OBJECT_ACL, acl.as_str());
        }
        if let Some(class) = self.storage_class {
            put(headers::STORAGE_CLASS, class.as_str());
        }
        if self.forbid_overwrite {
            put(headers::FORBID_OVERWRITE, "true");
        }
        for (name, value) in [
            ("cache-control", &self.cache_control),
            ("content-disposition", &self.content_disposition),
            ("content-encoding", &self.content_encoding),
            ("expires", &self.expires),
        ] {
            if let Some(value) = value {
                put(name, value);
            }
        }
        if let Some(sse) = self.server_side_encryption {
            put(headers::SERVER_SIDE_ENCRYPTION, sse.as_str());
        }
        if let Some(key_id) = &self.sse_kms_key_id {
            put(headers::SSE_KMS_KEY_ID, key_id);
        }
        if let Some(algorithm) = self.sse_data_encryption {
            put(headers::SERVER_SIDE_DATA_ENCRYPTION, algorithm.as_str());
        }
        if !self.tags.is_empty() {
            put(headers::TAGGING, &tagging::encode(&self.tags));
        }
        for (name, value) in &self.extra_headers {
            put(name, value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_is_guessed_from_the_name_only_when_absent() {
        let o = ObjectOptions::default().with_guessed_content_type(Some("/tmp/x.json"));
        assert_eq!(o.content_type.as_deref(), Some("application/json"));
        let o = ObjectOptions::default().with_guessed_content_type(None);
        assert_eq!(o.content_type.as_deref(), Some("application/octet-stream"));
        let o = ObjectOptions::default()
            .content_type("text/x")
            .with_guessed_content_type(Some("a.json"));
        assert_eq!(o.content_type.as_deref(), Some("text/x"));
    }

    #[test]
    fn options_become_headers() {
        let mut h = http::HeaderMap::new();
        ObjectOptions::default()
            .content_type("text/plain")
            .meta("Owner", "alice")
            .acl(ObjectAcl::PublicRead)
            .storage_class(StorageClass::IA)
            .forbid_overwrite(true)
            .apply(&mut h)
            .unwrap();
        assert_eq!(h["content-type"], "text/plain");
        assert_eq!(h["x-oss-meta-owner"], "alice");
        assert_eq!(h["x-oss-object-acl"], "public-read");
        assert_eq!(h["x-oss-storage-class"], "IA");
        assert_eq!(h["x-oss-forbid-overwrite"], "true");
    }

    #[test]
    fn digest_changes_with_any_option() {
        let a = ObjectOptions::default();
        let b = ObjectOptions::default().meta("k", "v");
        assert_ne!(a.digest(), b.digest());
        assert_eq!(a.digest(), ObjectOptions::default().digest());
    }

    /// The digests the checkpoint format had before the newer options existed: a checkpoint
    /// written then must still match the same options now.
    #[test]
    fn digest_of_options_without_newer_fields_is_unchanged() {
        assert_eq!(
            ObjectOptions::default().digest(),
            "ebbb6d3079d2eb7e24154d66b857a6bf14db247573304d412103ed1754325b48"
        );
        let old_style = ObjectOptions::default()
            .content_type("text/plain")
            .meta("Owner", "alice")
            .acl(ObjectAcl::Private)
            .storage_class(StorageClass::IA)
            .forbid_overwrite(true);
        assert_eq!(
            old_style.digest(),
            "0035f0cf2e59783bf9cd0a55692f0a6ca7f126508fd85198b66a669ef7731b3b"
        );
    }

    #[test]
    fn digest_changes_with_each_newer_option() {
        let base = ObjectOptions::default();
        let variants = [
            base.clone().cache_control("no-cache"),
            base.clone().content_disposition("attachment"),
            base.clone().content_encoding("gzip"),
            base.clone().expires("Wed, 21 Oct 2026 07:28:00 GMT"),
            base.clone()
                .server_side_encryption(ServerSideEncryption::Aes256),
            base.clone()
                .server_side_encryption(ServerSideEncryption::Kms)
                .sse_kms_key_id("key-1"),
            base.clone()
                .server_side_encryption(ServerSideEncryption::Kms)
                .sse_data_encryption(DataEncryption::Sm4),
            base.clone().tag("k", "v"),
            base.clone().header("x-oss-request-payer", "requester"),
        ];
        let mut digests: Vec<String> = variants.iter().map(ObjectOptions::digest).collect();
        digests.push(base.digest());
        let count = digests.len();
        digests.sort();
        digests.dedup();
        assert_eq!(digests.len(), count, "two option sets share a digest");
    }

    #[test]
    fn newer_options_become_headers() {
        let mut h = http::HeaderMap::new();
        ObjectOptions::default()
            .cache_control("max-age=60")
            .content_disposition("attachment; filename=\"r.json\"")
            .content_encoding("gzip")
            .expires("Wed, 21 Oct 2026 07:28:00 GMT")
            .server_side_encryption(ServerSideEncryption::Kms)
            .sse_kms_key_id("key-1")
            .sse_data_encryption(DataEncryption::Sm4)
            .tag("team", "data eng")
            .tag("tier", "1")
            .header("X-Oss-Request-Payer", "requester")
            .apply(&mut h)
            .unwrap();
        assert_eq!(h["cache-control"], "max-age=60");
        assert_eq!(h["content-disposition"], "attachment; filename=\"r.json\"");
        assert_eq!(h["content-encoding"], "gzip");
        assert_eq!(h["expires"], "Wed, 21 Oct 2026 07:28:00 GMT");
        assert_eq!(h["x-oss-server-side-encryption"], "KMS");
        assert_eq!(h["x-oss-server-side-encryption-key-id"], "key-1");
        assert_eq!(h["x-oss-server-side-data-encryption"], "SM4");
        assert_eq!(h["x-oss-tagging"], "team=data%20eng&tier=1");
        assert_eq!(h["x-oss-request-payer"], "requester");
    }

    #[test]
    fn unset_options_add_no_headers() {
        let mut h = http::HeaderMap::new();
        ObjectOptions::default().apply(&mut h).unwrap();
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn tagging_query_is_parsed_and_a_repeated_tag_replaces_the_value() {
        let o = ObjectOptions::default()
            .tagging("a=1&b=two+words")
            .unwrap()
            .tag("a", "3");
        assert_eq!(
            o.tags,
            vec![("a".into(), "3".into()), ("b".into(), "two words".into())]
        );
        let err = ObjectOptions::default().tagging("a=b=c").unwrap_err();
        assert!(
            err.to_string().contains("not of the form key or key=value"),
            "{err}"
        );
    }

    #[test]
    fn tags_beyond_the_oss_limits_are_refused_with_the_limit() {
        let mut eleven = ObjectOptions::default();
        for i in 0..11 {
            eleven = eleven.tag(format!("k{i}"), "v");
        }
        let err = eleven.validate().unwrap_err();
        assert!(err.to_string().contains("at most 10"), "{err}");
        let err = ObjectOptions::default()
            .tag("k".repeat(129), "v")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("at most 128"), "{err}");
        let err = ObjectOptions::default()
            .tag("k", "v".repeat(257))
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("at most 256"), "{err}");
    }

    #[test]
    fn kms_settings_without_kms_encryption_are_refused() {
        let err = ObjectOptions::default()
            .server_side_encryption(ServerSideEncryption::Aes256)
            .sse_kms_key_id("key-1")
            .validate()
            .unwrap_err();
        assert!(
            err.to_string().contains("needs server-side encryption KMS"),
            "{err}"
        );
        let err = ObjectOptions::default()
            .sse_data_encryption(DataEncryption::Sm4)
            .validate()
            .unwrap_err();
        assert!(
            err.to_string().contains("use server-side encryption SM4"),
            "{err}"
        );
        assert_eq!(
            "aes256".parse::<ServerSideEncryption>().unwrap(),
            ServerSideEncryption::Aes256
        );
        let err = "DES".parse::<ServerSideEncryption>().unwrap_err();
        assert!(err.to_string().contains("use AES256, KMS or SM4"), "{err}");
    }

    #[test]
    fn extra_headers_the_engine_sets_are_refused_with_what_to_use_instead() {
        for (name, hint) in [
            ("Content-MD5", "computes it from the body"),
            ("content-length", "sets it from the source"),
            ("Authorization", "signer"),
            ("Date", "signer"),
            ("Host", "endpoint"),
            ("x-oss-date", "signer"),
            ("x-oss-content-sha256", "signer"),
            ("x-oss-security-token", "Credentials::with_security_token"),
            ("x-oss-callback", "UploadRequest::callback"),
            ("x-oss-callback-var", "UploadRequest::callback"),
            ("Content-Type", "ObjectOptions::content_type"),
            ("x-oss-meta-owner", "ObjectOptions::meta"),
            ("x-oss-tagging", "--tag"),
            ("x-oss-server-side-encryption", "--sse"),
        ] {
            let err = ObjectOptions::default()
                .header(name, "x")
                .validate()
                .unwrap_err();
            assert!(err.to_string().contains(hint), "{name}: {err}");
        }
        let err = ObjectOptions::default()
            .header("bad name", "x")
            .validate()
            .unwrap_err();
        assert!(
            err.to_string().contains("not a valid HTTP header name"),
            "{err}"
        );
        let err = ObjectOptions::default()
            .header("x-a", "1")
            .header("X-A", "2")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("given twice"), "{err}");
        let err = ObjectOptions::default()
            .header("x-a", "line\nbreak")
            .validate()
            .unwrap_err();
        assert!(
            err.to_string().contains("cannot be an HTTP header value"),
            "{err}"
        );
    }

    #[test]
    fn bad_metadata_is_refused_with_a_reason() {
        let err = ObjectOptions::default()
            .meta("a b", "v")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("metadata name"));
        assert!("public".parse::<ObjectAcl>().is_err());
        assert_eq!("ia".parse::<StorageClass>().unwrap(), StorageClass::IA);
    }
}
