//! The properties an uploaded object gets: content type, user metadata, ACL, storage class, and
//! whether an existing object may be overwritten.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use ossup_proto::headers;
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
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
        if let Some(ct) = &self.content_type
            && http::HeaderValue::from_str(ct).is_err()
        {
            return Err(Error::config(format!(
                "content type {ct:?} cannot be an HTTP header value"
            )));
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
