//! Finding an open multipart upload of the key to carry on when no checkpoint names one
//! ([`UploadRequest::resume_from_server`](super::UploadRequest::resume_from_server)).
//!
//! A checkpoint lost with a machine, wiped, or never saved by a run killed early leaves the run's
//! multipart upload open on the server with the parts it sent. [`find`] lists the open uploads of
//! exactly the key and picks the newest whose parts the caller's predicate accepts (for a file:
//! every listed part has a number and size of the plan). Picking is all it does: the caller
//! verifies each listed part against its source before trusting it, and leaves the uploads it
//! does not pick alone.

use ossup_proto::ErrorCode;
use ossup_proto::xml::ListedPart;

use super::context::UploadContext;
use super::orphans::parse_initiated;
use crate::Error;

/// An open multipart upload of the key found on the server, with every part it lists.
#[derive(Debug)]
pub(super) struct Adoptable {
    pub(super) upload_id: String,
    pub(super) initiated: String,
    pub(super) listed: Vec<ossup_proto::xml::ListedPart>,
}

/// Lists the open uploads of exactly ctx's key (every page), newest first by Initiated, and returns
/// the newest whose listed parts (ListParts, every page) satisfy `fits`.
///
/// Uploads listing no part are skipped (nothing in them saves a byte), and so are uploads that
/// vanish between the two listings (`NoSuchUpload`: completed or aborted meanwhile). An upload
/// whose `Initiated` time does not parse is tried after all the others. Any other failure of
/// either listing is returned: the caller asked to carry on from the server, and starting over
/// instead would send every part again without saying why.
pub(super) async fn find(
    ctx: &UploadContext,
    fits: &(dyn Fn(&[ListedPart]) -> bool + Send + Sync),
) -> Result<Option<Adoptable>, Error> {
    let (client, bucket, key) = (&ctx.client, ctx.bucket(), ctx.key());
    // The listing is by prefix: keys that merely start with this one are someone else's.
    let mut open: Vec<_> = client
        .list_multipart_uploads(bucket, Some(key))
        .await?
        .into_iter()
        .filter(|u| u.key == key)
        .collect();
    // `None` (no parse) sorts below every time, so reversed it comes last; the sort is stable, so
    // equal times keep the server's order.
    open.sort_by_key(|u| std::cmp::Reverse(parse_initiated(&u.initiated)));
    tracing::debug!(open = open.len(), "open uploads of the key");
    for upload in open {
        let listed = match client.list_parts(bucket, key, &upload.upload_id).await {
            Ok(listed) => listed,
            Err(e) if e.is_service_code(ErrorCode::NoSuchUpload) => {
                tracing::debug!(upload_id = %upload.upload_id, "open upload vanished before its parts were listed");
                continue;
            }
            Err(e) => return Err(e),
        };
        if listed.is_empty() {
            tracing::debug!(upload_id = %upload.upload_id, "open upload lists no part; not adopted");
            continue;
        }
        if !fits(&listed) {
            tracing::debug!(upload_id = %upload.upload_id, parts = listed.len(),
                "open upload has parts that do not fit this upload; not adopted");
            continue;
        }
        return Ok(Some(Adoptable {
            upload_id: upload.upload_id,
            initiated: upload.initiated,
            listed,
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;
    use crate::upload::scripted::{
        PART, Reply, Scripted, data, part_of, planned, request, uploader,
    };
    use std::sync::Arc;

    /// Accepts any parts.
    fn anything(_: &[ListedPart]) -> bool {
        true
    }

    #[tokio::test]
    async fn the_newest_open_upload_with_parts_is_found_first() {
        let data = data(2 * PART as usize, 3);
        let server = Scripted::new(vec![
            Reply::uploads(&[
                ("OLD", "2024-01-01T00:00:00.000Z"),
                ("NEW", "2024-01-01T00:00:05.000Z"),
                ("BAD", "yesterday"),
            ]),
            Reply::parts("NEW", &[(1, part_of(&data, 1))]),
        ]);
        let store = Arc::new(MemoryStore::new());
        let ctx = planned(&uploader(&server, &store), request(&data)).await;

        let found = find(&ctx, &anything).await.unwrap().unwrap();

        assert_eq!(
            server.lines(),
            [
                "GET /bucket/?uploads&prefix=key",
                "GET /bucket/key?uploadId=NEW"
            ]
        );
        assert_eq!(found.upload_id, "NEW");
        assert_eq!(found.initiated, "2024-01-01T00:00:05.000Z");
        assert_eq!(found.listed.len(), 1);
    }

    #[tokio::test]
    async fn empty_vanished_unfitting_and_other_keys_uploads_are_passed_over() {
        let data = data(2 * PART as usize, 4);
        let listing = "<ListMultipartUploadsResult><Bucket>bucket</Bucket><IsTruncated>false</IsTruncated>\
            <Upload><Key>key.bak</Key><UploadId>LONGER</UploadId><Initiated>2024-01-01T00:00:09.000Z</Initiated></Upload>\
            <Upload><Key>key</Key><UploadId>EMPTY</UploadId><Initiated>2024-01-01T00:00:08.000Z</Initiated></Upload>\
            <Upload><Key>key</Key><UploadId>GONE</UploadId><Initiated>2024-01-01T00:00:07.000Z</Initiated></Upload>\
            <Upload><Key>key</Key><UploadId>UNFIT</UploadId><Initiated>2024-01-01T00:00:06.000Z</Initiated></Upload>\
            <Upload><Key>key</Key><UploadId>LAST</UploadId><Initiated>2024-01-01T00:00:05.000Z</Initiated></Upload>\
            </ListMultipartUploadsResult>";
        let server = Scripted::new(vec![
            Reply::xml(listing),
            Reply::parts("EMPTY", &[]),
            Reply::no_such_upload(),
            Reply::parts("UNFIT", &[(7, part_of(&data, 1))]),
            Reply::parts("LAST", &[(2, part_of(&data, 2))]),
        ]);
        let store = Arc::new(MemoryStore::new());
        let ctx = planned(&uploader(&server, &store), request(&data)).await;
        let fits = |listed: &[ListedPart]| listed.iter().all(|p| p.part_number <= 2);

        let found = find(&ctx, &fits).await.unwrap().unwrap();

        assert_eq!(found.upload_id, "LAST");
        assert_eq!(
            server.lines()[1..],
            [
                "GET /bucket/key?uploadId=EMPTY",
                "GET /bucket/key?uploadId=GONE",
                "GET /bucket/key?uploadId=UNFIT",
                "GET /bucket/key?uploadId=LAST"
            ]
        );
    }

    #[tokio::test]
    async fn no_open_upload_finds_nothing_and_a_refused_listing_is_an_error() {
        let data = data(2 * PART as usize, 5);
        let server = Scripted::new(vec![
            Reply::uploads(&[]),
            Reply::error(403, ErrorCode::AccessDenied),
        ]);
        let store = Arc::new(MemoryStore::new());
        let ctx = planned(&uploader(&server, &store), request(&data)).await;

        assert!(find(&ctx, &anything).await.unwrap().is_none());
        let err = find(&ctx, &anything).await.unwrap_err();
        assert!(err.is_service_code(ErrorCode::AccessDenied), "{err}");
    }
}
