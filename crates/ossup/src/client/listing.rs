//! ListObjects: the objects under a prefix, every page, as one answer or page by page.

use http::Method;
use ossup_proto::Api;
use ossup_proto::xml::{ListBucketResult, ListedObject};
use percent_encoding::percent_decode_str;

use super::{Client, Op};
use crate::Error;

/// The most keys OSS returns in one ListObjects page.
const PAGE_SIZE: u32 = 1000;

impl Client {
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
        let mut objects = Vec::new();
        let mut marker = String::new();
        loop {
            let page = self.list_objects_page(bucket, prefix, &marker).await?;
            let last_key = page.contents.last().map(|o| o.key.clone());
            objects.extend(page.contents);
            if !page.is_truncated {
                return Ok(objects);
            }
            // OSS names the next marker; an answer without one continues after its last key.
            let next = page.next_marker.filter(|m| !m.is_empty()).or(last_key);
            match next {
                Some(next) if next > marker => marker = next,
                _ => {
                    return Err(Error::malformed_response(format!(
                        "ListObjects of oss://{bucket}/{prefix} is truncated but its next marker does not advance past {marker:?}"
                    ))
                    .with_api(Api::ListObjects)
                    .with_bucket(bucket));
                }
            }
        }
    }
}
