//! ListMultipartUploads: prefix, key-marker, upload-id-marker, max-uploads and pagination.
//!
//! Every listing is confined to the case's own prefix, so uploads of other cases or other runs in a
//! shared bucket never show up.

use ossup_proto::Api;
use ossup_proto::xml::ListMultipartUploadsResult;

use crate::case::{Case, Ctx, complete_body};
use crate::check::{CaseError, CaseResult, Context};
use crate::client::{Auth, Request};
use crate::{case, ensure, ensure_eq};

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!(
            list_uploads_with_a_prefix_lists_only_uploads_under_it,
            Api::ListMultipartUploads,
            "prefix: exactly the uploads whose key starts with it, by key, with their ids; Bucket and Prefix echoed"
        ),
        case!(
            list_uploads_with_max_uploads_1_pages_through_every_upload,
            Api::ListMultipartUploads,
            "max-uploads=1: one upload a page, NextKeyMarker/NextUploadIdMarker lead through all 4, each once"
        ),
        case!(
            list_uploads_with_a_key_marker_starts_after_that_key,
            Api::ListMultipartUploads,
            "key-marker=k1: uploads of keys after k1 only, none of k1; KeyMarker echoed"
        ),
        case!(
            list_uploads_with_an_upload_id_marker_continues_within_the_key,
            Api::ListMultipartUploads,
            "key-marker=k + upload-id-marker=first id of k: the later upload of k, then later keys"
        ),
        case!(
            list_uploads_reads_plus_in_the_prefix_as_a_space,
            Api::ListMultipartUploads,
            "prefix with `+` for a space, as oss2 (Python requests) writes queries, signed V1 and V4: the key with the space; `%2B` is a literal plus"
        ),
        case!(
            list_uploads_with_encoding_type_url_percent_encodes_keys,
            Api::ListMultipartUploads,
            "encoding-type=url (oss2 always sends it): <EncodingType>url, Key and Prefix percent-encoded (space %20, + %2B, UTF-8), decoding to the keys"
        ),
        case!(
            list_uploads_omits_completed_and_aborted_uploads,
            Api::ListMultipartUploads,
            "after Complete of one and Abort of another, only the open upload is listed"
        ),
    ]
}

async fn list(ctx: &Ctx, params: &[(&str, &str)]) -> Result<ListMultipartUploadsResult, CaseError> {
    let mut request = Request::get(Some(ctx.bucket()), None)
        .query("uploads", "")
        .query("prefix", ctx.prefix());
    for (name, value) in params {
        request = request.query(name, value);
    }
    let response = ctx.send(request).await?;
    response.expect_status(200)?;
    let page: ListMultipartUploadsResult = response.xml("ListMultipartUploadsResult")?;
    ensure_eq!(page.bucket, ctx.bucket(), "<Bucket> of {}", response.what);
    ensure_eq!(page.prefix, ctx.prefix(), "<Prefix> of {}", response.what);
    Ok(page)
}

fn listed(page: &ListMultipartUploadsResult) -> Vec<(String, String)> {
    page.uploads
        .iter()
        .map(|u| (u.key.clone(), u.upload_id.clone()))
        .collect()
}

/// Initiates uploads of the given key names; returns `(key, upload id)` in the order given.
async fn initiate_all(ctx: &Ctx, names: &[&str]) -> Result<Vec<(String, String)>, CaseError> {
    let mut out = Vec::new();
    for name in names {
        let key = ctx.key(name);
        let id = ctx.initiate(&key).await?;
        out.push((key, id));
    }
    Ok(out)
}

/// Uploads sorted as a listing orders them: by key, then (for one key) in the server's own order, which
/// the case learns from a listing of that key alone.
async fn list_everything(ctx: &Ctx) -> Result<Vec<(String, String)>, CaseError> {
    let page = list(ctx, &[]).await?;
    ensure!(
        !page.is_truncated,
        "a listing of under 1000 uploads is truncated"
    );
    Ok(listed(&page))
}

async fn list_uploads_with_a_prefix_lists_only_uploads_under_it(ctx: &Ctx) -> CaseResult {
    let uploads = initiate_all(ctx, &["b/1", "a/2", "a/1", "c"]).await?;
    let a_prefix = ctx.key("a/");
    let response = ctx
        .send(
            Request::get(Some(ctx.bucket()), None)
                .query("uploads", "")
                .query("prefix", &a_prefix),
        )
        .await?;
    response.expect_status(200)?;
    let page: ListMultipartUploadsResult = response.xml("ListMultipartUploadsResult")?;
    ensure_eq!(page.prefix, a_prefix, "<Prefix>");
    ensure_eq!(page.bucket, ctx.bucket(), "<Bucket>");
    ensure!(!page.is_truncated, "<IsTruncated> true for 2 uploads");
    let expected = vec![uploads[2].clone(), uploads[1].clone()];
    ensure_eq!(
        listed(&page),
        expected,
        "uploads under {a_prefix} (key, upload id), by key"
    );
    for upload in &page.uploads {
        ensure!(
            !upload.initiated.is_empty(),
            "<Initiated> of {} is empty",
            upload.key
        );
    }
    let everything = list_everything(ctx).await?;
    ensure_eq!(everything.len(), 4, "uploads under the case prefix");
    let keys: Vec<&str> = everything.iter().map(|(k, _)| k.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    ensure_eq!(keys, sorted, "keys in listing order");
    Ok(())
}

async fn list_uploads_with_max_uploads_1_pages_through_every_upload(ctx: &Ctx) -> CaseResult {
    initiate_all(ctx, &["k1", "k2", "k2", "k3"]).await?;
    let everything = list_everything(ctx).await?;
    ensure_eq!(everything.len(), 4, "uploads under the case prefix");

    let mut gathered = Vec::new();
    let mut markers: Option<(String, String)> = None;
    for page_number in 1..=4 {
        let mut params = vec![("max-uploads", "1")];
        if let Some((key, id)) = &markers {
            params.push(("key-marker", key));
            params.push(("upload-id-marker", id));
        }
        let page = list(ctx, &params).await?;
        ensure_eq!(page.max_uploads, 1, "<MaxUploads> of page {page_number}");
        ensure_eq!(page.uploads.len(), 1, "uploads on page {page_number}");
        gathered.extend(listed(&page));
        let last = page_number == 4;
        ensure_eq!(
            page.is_truncated,
            !last,
            "<IsTruncated> of page {page_number} of 4"
        );
        if !last {
            ensure_eq!(
                (
                    page.next_key_marker.clone(),
                    page.next_upload_id_marker.clone()
                ),
                gathered.last().cloned().expect("one upload per page"),
                "(NextKeyMarker, NextUploadIdMarker) of page {page_number}"
            );
        }
        markers = Some((page.next_key_marker, page.next_upload_id_marker));
    }
    ensure_eq!(
        gathered,
        everything,
        "uploads gathered page by page vs one listing"
    );
    Ok(())
}

async fn list_uploads_with_a_key_marker_starts_after_that_key(ctx: &Ctx) -> CaseResult {
    let uploads = initiate_all(ctx, &["k1", "k1", "k2", "k3"]).await?;
    let marker = uploads[0].0.clone();
    let page = list(ctx, &[("key-marker", &marker)]).await?;
    ensure_eq!(page.key_marker, marker, "<KeyMarker>");
    let keys: Vec<String> = page.uploads.iter().map(|u| u.key.clone()).collect();
    ensure_eq!(
        keys,
        vec![uploads[2].0.clone(), uploads[3].0.clone()],
        "keys listed after key-marker {marker}"
    );
    Ok(())
}

async fn list_uploads_with_an_upload_id_marker_continues_within_the_key(ctx: &Ctx) -> CaseResult {
    let uploads = initiate_all(ctx, &["k", "k", "z"]).await?;
    let everything = list_everything(ctx).await?;
    ensure_eq!(everything.len(), 3, "uploads under the case prefix");
    let key = &uploads[0].0;
    let (first_of_k, second_of_k) = (&everything[0], &everything[1]);
    ensure!(
        &first_of_k.0 == key && &second_of_k.0 == key,
        "the two uploads of {key} are not listed first: {everything:?}"
    );
    let page = list(
        ctx,
        &[("key-marker", key), ("upload-id-marker", &first_of_k.1)],
    )
    .await?;
    ensure_eq!(page.upload_id_marker, first_of_k.1, "<UploadIdMarker>");
    ensure_eq!(
        listed(&page),
        vec![second_of_k.clone(), uploads[2].clone()],
        "uploads after ({key}, {})",
        first_of_k.1
    );
    Ok(())
}

async fn list_uploads_omits_completed_and_aborted_uploads(ctx: &Ctx) -> CaseResult {
    let uploads = initiate_all(ctx, &["done", "dropped", "open"]).await?;
    let (done_key, done_id) = &uploads[0];
    let part = ctx.upload_part(done_key, done_id, 1, &ctx.data(10)).await?;
    ctx.track_object(ctx.bucket(), done_key);
    ctx.send(
        Request::post(Some(ctx.bucket()), Some(done_key))
            .query("uploadId", done_id)
            .body(complete_body(&[(1, &part.etag)])),
    )
    .await?
    .expect_status(200)?;
    let (dropped_key, dropped_id) = &uploads[1];
    ctx.send(Request::delete(Some(ctx.bucket()), Some(dropped_key)).query("uploadId", dropped_id))
        .await?
        .expect_status(204)?;
    ensure_eq!(
        list_everything(ctx).await?,
        vec![uploads[2].clone()],
        "uploads listed after Complete and Abort"
    );
    Ok(())
}

async fn list_uploads_reads_plus_in_the_prefix_as_a_space(ctx: &Ctx) -> CaseResult {
    let uploads = initiate_all(ctx, &["with space/a.bin", "with+plus/b.bin"]).await?;
    let mut auths = vec![Auth::V1];
    if ctx.require_region().is_ok() {
        auths.push(Auth::V4);
    }
    for auth in auths {
        for (name, expected) in [("with space/", &uploads[0]), ("with+plus/", &uploads[1])] {
            let prefix = ctx.key(name);
            let request = Request::get(Some(ctx.bucket()), None)
                .query("uploads", "")
                .query("prefix", &prefix)
                .auth(auth.clone());
            let mut prepared = ctx.client().prepare(&request)?;
            // Form encoding, as Python's urlencode writes a query: a space is `+`, a plus is `%2B`.
            prepared.target.path_and_query = prepared.target.path_and_query.replace("%20", "+");
            let sent = prepared.target.path_and_query.clone();
            let response = ctx.client().send_prepared(prepared).await?;
            let what = format!("{auth:?} ListMultipartUploads {sent}");
            response.expect_status(200).context(&what)?;
            let page: ListMultipartUploadsResult = response.xml("ListMultipartUploadsResult")?;
            ensure_eq!(page.prefix, prefix, "<Prefix> of {what}");
            ensure_eq!(
                listed(&page),
                vec![expected.clone()],
                "uploads listed by {what}"
            );
        }
    }
    Ok(())
}

fn percent_decoded(value: &str) -> Result<String, CaseError> {
    percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .map(|v| v.into_owned())
        .map_err(|_| CaseError::failed(format!("{value:?} is not UTF-8 once percent-decoded")))
}

async fn list_uploads_with_encoding_type_url_percent_encodes_keys(ctx: &Ctx) -> CaseResult {
    let uploads = initiate_all(ctx, &["文件 名/ü+x.bin"]).await?;
    let response = ctx
        .send(
            Request::get(Some(ctx.bucket()), None)
                .query("uploads", "")
                .query("prefix", ctx.prefix())
                .query("encoding-type", "url"),
        )
        .await?;
    response.expect_status(200)?;
    let text = response.text();
    ensure!(
        text.contains("<EncodingType>url</EncodingType>"),
        "no <EncodingType>url</EncodingType> in {text:?}"
    );
    let page: ListMultipartUploadsResult = response.xml("ListMultipartUploadsResult")?;
    ensure_eq!(page.uploads.len(), 1, "uploads listed");
    let raw_key = &page.uploads[0].key;
    ensure!(
        raw_key.is_ascii() && !raw_key.contains(' ') && !raw_key.contains('+'),
        "<Key> {raw_key:?} is not percent-encoded (expected %20 for a space, %2B for +, %XX for UTF-8)"
    );
    ensure_eq!(
        percent_decoded(raw_key)?,
        uploads[0].0,
        "<Key> percent-decoded"
    );
    ensure_eq!(
        percent_decoded(&page.prefix)?,
        ctx.prefix(),
        "<Prefix> percent-decoded"
    );
    Ok(())
}
