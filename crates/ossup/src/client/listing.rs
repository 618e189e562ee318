//! ListObjects: the objects under a prefix, every page, as one answer or page by page.

use http::Method;
use ossup_proto::Api;
use ossup_proto::xml::{ListBucketResult, ListedObject};
use percent_encoding::percent_decode_str;

use super::{Client, ListCaps, Op};
use crate::Error;

/// The most keys OSS returns in one ListObjects page.
const PAGE_SIZE: u32 = 1000;

impl Client {
    /// The most objects [`list_objects`](Self::list_objects) gathers before it gives up with a
    /// [`MalformedResponse`](crate::ErrorKind::MalformedResponse) error: ten million, so a server
    /// that never ends its listing cannot keep the client asking (and growing its memory) forever.
    pub const MAX_LISTED_OBJECTS: usize = 10_000_000;

    /// The most pages [`list_objects`](Self::list_objects) asks for: 20,000, twice what
    /// [`MAX_LISTED_OBJECTS`](Self::MAX_LISTED_OBJECTS) takes in full pages of 1,000, so a server
    /// answering with tiny pages is stopped too.
    pub const MAX_OBJECT_PAGES: usize = 20_000;

    /// ListObjects, one page: up to 1,000 objects of `bucket` under `prefix` whose keys sort after
    /// `marker`, in key order; the page's `next_marker` continues the listing while `is_truncated`.
    ///
    /// Keys are asked for percent-encoded (`encoding-type=url`, so that any key survives XML) and
    /// come back decoded.
    pub async fn list_objects_page(
        &self,
        bucket: &str,
        prefix: &str,
        marker: &str,
    ) -> Result<ListBucketResult, Error> {
        let mut op = Op::new(Api::ListObjects, Method::GET, bucket, None)
            .query("encoding-type", "url")
            .query("max-keys", PAGE_SIZE.to_string());
        if !prefix.is_empty() {
            op = op.query("prefix", prefix);
        }
        if !marker.is_empty() {
            op = op.query("marker", marker);
        }
        let (_, mut page) = self
            .execute_document::<ListBucketResult>(&mut op, "ListBucketResult")
            .await?;
        if page.encoding_type.as_deref() == Some("url") {
            let decode = |s: &mut String| -> Result<(), Error> {
                *s = percent_decode_str(s)
                    .decode_utf8()
                    .map(|d| d.into_owned())
                    .map_err(|_| {
                        op.context(Error::malformed_response(format!(
                            "ListObjects returned the key {s:?}, which does not decode to UTF-8"
                        )))
                    })?;
                Ok(())
            };
            for object in &mut page.contents {
                decode(&mut object.key)?;
            }
            if let Some(next) = &mut page.next_marker {
                decode(next)?;
            }
        }
        Ok(page)
    }

    /// ListObjects, every page: all objects of `bucket` under `prefix` (empty for all), in key
    /// order, one request per 1,000 keys.
    ///
    /// Each page's next marker must come after the previous one, and the listing must end within
    /// [`MAX_OBJECT_PAGES`](Self::MAX_OBJECT_PAGES) pages and
    /// [`MAX_LISTED_OBJECTS`](Self::MAX_LISTED_OBJECTS) objects; otherwise the listing stops with a
    /// [`MalformedResponse`](crate::ErrorKind::MalformedResponse) error naming ListObjects.
    ///
    /// ```no_run
    /// # async fn run(client: ossup::Client) -> Result<(), ossup::Error> {
    /// for object in client.list_objects("bucket", "photos/").await? {
    ///     println!("{} {} bytes, ETag {}", object.key, object.size, object.etag);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<ListedObject>, Error> {
        let caps = ListCaps {
            entries: Self::MAX_LISTED_OBJECTS,
            pages: Self::MAX_OBJECT_PAGES,
        };
        self.list_objects_within(bucket, prefix, caps).await
    }

    /// [`list_objects`](Self::list_objects) within `caps`.
    pub(super) async fn list_objects_within(
        &self,
        bucket: &str,
        prefix: &str,
        caps: ListCaps,
    ) -> Result<Vec<ListedObject>, Error> {
        let mut objects = Vec::new();
        let mut marker = String::new();
        let malformed = |what: String| {
            Error::malformed_response(what)
                .with_api(Api::ListObjects)
                .with_bucket(bucket)
        };
        let mut pages = 0usize;
        loop {
            pages += 1;
            let page = self.list_objects_page(bucket, prefix, &marker).await?;
            let last_key = page.contents.last().map(|o| o.key.clone());
            objects.extend(page.contents);
            if objects.len() > caps.entries {
                return Err(malformed(format!(
                    "ListObjects of oss://{bucket}/{prefix} listed more than {} objects without ending; \
                     stopped there (list a narrower prefix if the bucket really holds that many)",
                    caps.entries
                )));
            }
            if !page.is_truncated {
                return Ok(objects);
            }
            if pages >= caps.pages {
                return Err(malformed(format!(
                    "ListObjects of oss://{bucket}/{prefix} is still truncated after {pages} pages; \
                     stopped there (list a narrower prefix if the bucket really holds that many)"
                )));
            }
            // OSS names the next marker; an answer without one continues after its last key.
            let next = page.next_marker.filter(|m| !m.is_empty()).or(last_key);
            match next {
                Some(next) if next > marker => marker = next,
                _ => {
                    return Err(malformed(format!(
                        "ListObjects of oss://{bucket}/{prefix} is truncated but its next marker does not advance past {marker:?}"
                    )));
                }
            }
        }
    }
}
