//! Which OSS API a request is, decided from its method, its addressing and its query parameters.
//!
//! The mock server routes with this, its fault rules and STS policies match on it, and the client names
//! its requests with it in logs and errors, so the three always agree on what "UploadPart" means.

use std::fmt;
use std::str::FromStr;

/// One OSS API that ossup speaks or the mock server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Api {
    /// `POST /KEY?uploads`
    InitiateMultipartUpload,
    /// `PUT /KEY?partNumber=N&uploadId=ID`
    UploadPart,
    /// `GET /KEY?uploadId=ID`
    ListParts,
    /// `POST /KEY?uploadId=ID`
    CompleteMultipartUpload,
    /// `DELETE /KEY?uploadId=ID`
    AbortMultipartUpload,
    /// `GET /?uploads` on a bucket
    ListMultipartUploads,
    /// `PUT /KEY`
    PutObject,
    /// `PUT /KEY` with `x-oss-copy-source: /BUCKET/KEY` and no body (told from PutObject by that
    /// header, so [`Api::classify`] never returns it)
    CopyObject,
    /// `GET /KEY`
    GetObject,
    /// `HEAD /KEY`
    HeadObject,
    /// `DELETE /KEY`
    DeleteObject,
    /// `PUT /` on a bucket
    PutBucket,
    /// `DELETE /` on a bucket
    DeleteBucket,
    /// `GET /?bucketInfo` on a bucket
    GetBucketInfo,
    /// `GET /` on a bucket (ListObjects; ListObjectsV2 with `list-type=2`)
    ListObjects,
    /// `GET /?location` on a bucket
    GetBucketLocation,
    /// `POST /?delete` on a bucket: up to 1,000 objects named in the body
    DeleteMultipleObjects,
}

impl Api {
    /// Every API, in declaration order.
    pub const ALL: [Api; 17] = [
        Api::InitiateMultipartUpload,
        Api::UploadPart,
        Api::ListParts,
        Api::CompleteMultipartUpload,
        Api::AbortMultipartUpload,
        Api::ListMultipartUploads,
        Api::PutObject,
        Api::CopyObject,
        Api::GetObject,
        Api::HeadObject,
        Api::DeleteObject,
        Api::PutBucket,
        Api::DeleteBucket,
        Api::GetBucketInfo,
        Api::ListObjects,
        Api::GetBucketLocation,
        Api::DeleteMultipleObjects,
    ];

    /// The API's name as OSS documents it, e.g. `"UploadPart"`.
    pub fn name(self) -> &'static str {
        match self {
            Api::InitiateMultipartUpload => "InitiateMultipartUpload",
            Api::UploadPart => "UploadPart",
            Api::ListParts => "ListParts",
            Api::CompleteMultipartUpload => "CompleteMultipartUpload",
            Api::AbortMultipartUpload => "AbortMultipartUpload",
            Api::ListMultipartUploads => "ListMultipartUploads",
            Api::PutObject => "PutObject",
            Api::CopyObject => "CopyObject",
            Api::GetObject => "GetObject",
            Api::HeadObject => "HeadObject",
            Api::DeleteObject => "DeleteObject",
            Api::PutBucket => "PutBucket",
            Api::DeleteBucket => "DeleteBucket",
            Api::GetBucketInfo => "GetBucketInfo",
            Api::ListObjects => "ListObjects",
            Api::GetBucketLocation => "GetBucketLocation",
            Api::DeleteMultipleObjects => "DeleteMultipleObjects",
        }
    }

    /// The RAM action an access policy must allow for this API, e.g. `"oss:PutObject"`.
    ///
    /// As in OSS, the multipart write APIs (Initiate, UploadPart, Complete) are all authorised by
    /// `oss:PutObject`.
    ///
    /// ```
    /// use ossup_proto::Api;
    /// assert_eq!(Api::UploadPart.ram_action(), "oss:PutObject");
    /// assert_eq!(Api::ListParts.ram_action(), "oss:ListParts");
    /// ```
    pub fn ram_action(self) -> &'static str {
        match self {
            Api::InitiateMultipartUpload
            | Api::UploadPart
            | Api::CompleteMultipartUpload
            | Api::PutObject
            // It reads the source too; the mock's policies check the action of the write.
            | Api::CopyObject => "oss:PutObject",
            Api::ListParts => "oss:ListParts",
            Api::AbortMultipartUpload => "oss:AbortMultipartUpload",
            Api::ListMultipartUploads => "oss:ListMultipartUploads",
            Api::GetObject | Api::HeadObject => "oss:GetObject",
            Api::DeleteObject => "oss:DeleteObject",
            Api::PutBucket => "oss:PutBucket",
            Api::DeleteBucket => "oss:DeleteBucket",
            Api::GetBucketInfo => "oss:GetBucketInfo",
            Api::ListObjects => "oss:ListObjects",
            Api::GetBucketLocation => "oss:GetBucketLocation",
            // Each object it deletes is a DeleteObject to RAM.
            Api::DeleteMultipleObjects => "oss:DeleteObject",
        }
    }

    /// Classifies a request. `has_key` says whether the path names an object; `has_query` answers
    /// whether a query parameter is present (with any value, empty included).
    ///
    /// Returns `None` for a method and addressing that name no API ossup knows.
    ///
    /// ```
    /// use ossup_proto::Api;
    /// let query = |q: &str| ["partNumber", "uploadId"].contains(&q);
    /// assert_eq!(Api::classify("PUT", true, query), Some(Api::UploadPart));
    /// assert_eq!(Api::classify("GET", false, |q| q == "uploads"), Some(Api::ListMultipartUploads));
    /// ```
    pub fn classify(method: &str, has_key: bool, has_query: impl Fn(&str) -> bool) -> Option<Api> {
        let api = if has_key {
            match method {
                "POST" if has_query("uploads") => Api::InitiateMultipartUpload,
                "POST" if has_query("uploadId") => Api::CompleteMultipartUpload,
                "PUT" if has_query("uploadId") || has_query("partNumber") => Api::UploadPart,
                "PUT" => Api::PutObject,
                "GET" if has_query("uploadId") => Api::ListParts,
                "GET" => Api::GetObject,
                "HEAD" => Api::HeadObject,
                "DELETE" if has_query("uploadId") => Api::AbortMultipartUpload,
                "DELETE" => Api::DeleteObject,
                _ => return None,
            }
        } else {
            match method {
                "GET" if has_query("uploads") => Api::ListMultipartUploads,
                "GET" if has_query("bucketInfo") => Api::GetBucketInfo,
                "GET" if has_query("location") => Api::GetBucketLocation,
                "POST" if has_query("delete") => Api::DeleteMultipleObjects,
                "GET" => Api::ListObjects,
                "PUT" => Api::PutBucket,
                "DELETE" => Api::DeleteBucket,
                _ => return None,
            }
        };
        Some(api)
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing an unknown API name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown OSS API name {0:?}; expected one of InitiateMultipartUpload, UploadPart, ListParts, CompleteMultipartUpload, AbortMultipartUpload, ListMultipartUploads, PutObject, CopyObject, GetObject, HeadObject, DeleteObject, PutBucket, DeleteBucket, GetBucketInfo, ListObjects, GetBucketLocation, DeleteMultipleObjects"
)]
pub struct UnknownApi(pub String);

impl FromStr for Api {
    type Err = UnknownApi;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Api::ALL
            .into_iter()
            .find(|api| api.name() == s)
            .ok_or_else(|| UnknownApi(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for api in Api::ALL {
            assert_eq!(api.name().parse::<Api>(), Ok(api));
        }
        assert!("Nope".parse::<Api>().is_err());
    }

    #[test]
    fn classifies_the_multipart_apis() {
        let q = |names: &'static [&'static str]| move |n: &str| names.contains(&n);
        assert_eq!(
            Api::classify("POST", true, q(&["uploads"])),
            Some(Api::InitiateMultipartUpload)
        );
        assert_eq!(
            Api::classify("POST", true, q(&["uploadId"])),
            Some(Api::CompleteMultipartUpload)
        );
        assert_eq!(
            Api::classify("GET", true, q(&["uploadId", "max-parts"])),
            Some(Api::ListParts)
        );
        assert_eq!(
            Api::classify("DELETE", true, q(&["uploadId"])),
            Some(Api::AbortMultipartUpload)
        );
        assert_eq!(Api::classify("HEAD", true, q(&[])), Some(Api::HeadObject));
        assert_eq!(Api::classify("PATCH", true, q(&[])), None);
        assert_eq!(
            Api::classify("GET", false, q(&["bucketInfo"])),
            Some(Api::GetBucketInfo)
        );
    }
}
