//! PutBucket, DeleteBucket, GetBucketInfo, GetBucketLocation and DeleteMultipleObjects, and what every
//! API answers for a bucket that does not exist.

use ossup_proto::Api;
use serde::Deserialize;

use crate::case::{Case, Ctx, complete_body, upload_part_request};
use crate::check::{CaseError, CaseResult, Context};
use crate::client::{Addressing, Request};
use crate::{case, ensure, ensure_eq};

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!(
            get_bucket_info_names_the_bucket,
            Api::GetBucketInfo,
            "200, <BucketInfo><Bucket><Name> is the bucket, <CreationDate> ISO 8601"
        ),
        case!(
            own_buckets put_bucket_creates_a_bucket_that_serves_objects,
            Api::PutBucket,
            "200; GetBucketInfo names it; PutObject virtual-hosted then GetObject path-style returns the bytes"
        ),
        case!(
            own_buckets delete_bucket_answers_204_then_the_bucket_is_no_such_bucket,
            Api::DeleteBucket,
            "204; then GetBucketInfo and PutObject answer 404 NoSuchBucket"
        ),
        case!(
            own_buckets delete_bucket_holding_an_object_or_an_upload_is_bucket_not_empty,
            Api::DeleteBucket,
            "409 BucketNotEmpty while an object or an open upload is in it; 204 once both are gone"
        ),
        case!(
            get_bucket_location_names_the_region,
            Api::GetBucketLocation,
            "200, <LocationConstraint>oss-REGION</LocationConstraint> (the region of OSS_REGION when set)"
        ),
        case!(
            delete_multiple_objects_deletes_the_keys_named,
            Api::DeleteMultipleObjects,
            "with Content-MD5: <Deleted> for two objects and a missing key, they are gone, a third is kept; <Quiet>true</Quiet> answers no <Deleted>"
        ),
        case!(
            requests_to_a_missing_bucket_are_no_such_bucket,
            Api::GetBucketInfo,
            "GetBucketInfo, PutObject, GetObject, Initiate, UploadPart, ListMultipartUploads, DeleteBucket: 404 NoSuchBucket"
        ),
    ]
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BucketInfo {
    bucket: BucketInfoBucket,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BucketInfoBucket {
    name: String,
    #[serde(default)]
    creation_date: String,
}

async fn expect_bucket_info(ctx: &Ctx, bucket: &str) -> CaseResult {
    let response = ctx
        .send(Request::get(Some(bucket), None).query("bucketInfo", ""))
        .await?;
    response.expect_status(200)?;
    let info: BucketInfo = response.xml("BucketInfo")?;
    ensure_eq!(info.bucket.name, bucket, "<BucketInfo><Bucket><Name>");
    let date = info.bucket.creation_date.as_bytes();
    ensure!(
        date.len() >= 20 && date[4] == b'-' && date[10] == b'T' && date.ends_with(b"Z"),
        "<CreationDate> {:?} is not ISO 8601 UTC",
        info.bucket.creation_date
    );
    Ok(())
}

async fn create_bucket(ctx: &Ctx, tag: &str) -> Result<String, CaseError> {
    let bucket = ctx.bucket_name(tag);
    ctx.track_bucket(&bucket);
    let response = ctx.send(Request::put(Some(&bucket), None)).await?;
    response
        .expect_status(200)
        .context(format!("PutBucket {bucket}"))?;
    Ok(bucket)
}

async fn get_bucket_info_names_the_bucket(ctx: &Ctx) -> CaseResult {
    expect_bucket_info(ctx, ctx.bucket()).await
}

async fn put_bucket_creates_a_bucket_that_serves_objects(ctx: &Ctx) -> CaseResult {
    let bucket = create_bucket(ctx, "new").await?;
    expect_bucket_info(ctx, &bucket).await?;
    let key = ctx.key("in-new-bucket.bin");
    let body = ctx.data(300);
    ctx.track_object(&bucket, &key);
    ctx.send(
        Request::put(Some(&bucket), Some(&key))
            .addressing(Addressing::VirtualHosted)
            .body(body.clone()),
    )
    .await?
    .expect_status(200)?;
    let get = ctx
        .send(Request::get(Some(&bucket), Some(&key)).addressing(Addressing::PathStyle))
        .await?;
    get.expect_status(200)?;
    crate::case::expect_same_bytes(&get, &body)
}

async fn delete_bucket_answers_204_then_the_bucket_is_no_such_bucket(ctx: &Ctx) -> CaseResult {
    let bucket = create_bucket(ctx, "gone").await?;
    let response = ctx.send(Request::delete(Some(&bucket), None)).await?;
    response.expect_status(204)?;
    ctx.send(Request::get(Some(&bucket), None).query("bucketInfo", ""))
        .await?
        .expect_error(404, "NoSuchBucket")
        .context("GetBucketInfo after DeleteBucket")?;
    let key = ctx.key("after-delete");
    ctx.send(Request::put(Some(&bucket), Some(&key)).body("x"))
        .await?
        .expect_error(404, "NoSuchBucket")
        .context("PutObject after DeleteBucket")?;
    Ok(())
}

async fn delete_bucket_holding_an_object_or_an_upload_is_bucket_not_empty(ctx: &Ctx) -> CaseResult {
    let bucket = create_bucket(ctx, "full").await?;
    let key = ctx.key("keeps-bucket.bin");
    ctx.track_object(&bucket, &key);
    ctx.send(Request::put(Some(&bucket), Some(&key)).body("x"))
        .await?
        .expect_status(200)?;
    ctx.send(Request::delete(Some(&bucket), None))
        .await?
        .expect_error(409, "BucketNotEmpty")
        .context("DeleteBucket holding an object")?;
    ctx.send(Request::delete(Some(&bucket), Some(&key)))
        .await?
        .expect_status(204)?;
    let upload_id = ctx.initiate_in(&bucket, &key).await?;
    ctx.send(Request::delete(Some(&bucket), None))
        .await?
        .expect_error(409, "BucketNotEmpty")
        .context("DeleteBucket holding an open upload")?;
    ctx.send(Request::delete(Some(&bucket), Some(&key)).query("uploadId", &upload_id))
        .await?
        .expect_status(204)?;
    ctx.send(Request::delete(Some(&bucket), None))
        .await?
        .expect_status(204)
        .context("DeleteBucket once empty")?;
    Ok(())
}

async fn requests_to_a_missing_bucket_are_no_such_bucket(ctx: &Ctx) -> CaseResult {
    let bucket = ctx.bucket_name("missing");
    let key = ctx.key("nothing");
    let requests = [
        (
            "GetBucketInfo",
            Request::get(Some(&bucket), None).query("bucketInfo", ""),
        ),
        (
            "PutObject",
            Request::put(Some(&bucket), Some(&key)).body("x"),
        ),
        ("GetObject", Request::get(Some(&bucket), Some(&key))),
        (
            "InitiateMultipartUpload",
            Request::post(Some(&bucket), Some(&key)).query("uploads", ""),
        ),
        (
            "UploadPart",
            upload_part_request(
                &bucket,
                &key,
                "0004B9894A22E5B1888A1E29F823DEAD",
                1,
                "x".into(),
            ),
        ),
        (
            "CompleteMultipartUpload",
            Request::post(Some(&bucket), Some(&key))
                .query("uploadId", "0004B9894A22E5B1888A1E29F823DEAD")
                .body(complete_body(&[(
                    1,
                    "\"00000000000000000000000000000000\"",
                )])),
        ),
        (
            "ListMultipartUploads",
            Request::get(Some(&bucket), None).query("uploads", ""),
        ),
        ("DeleteBucket", Request::delete(Some(&bucket), None)),
    ];
    for (api, request) in requests {
        ctx.send(request)
            .await?
            .expect_error(404, "NoSuchBucket")
            .context(format!("{api} on missing bucket {bucket}"))?;
    }
    Ok(())
}

async fn get_bucket_location_names_the_region(ctx: &Ctx) -> CaseResult {
    let response = ctx
        .send(Request::get(Some(ctx.bucket()), None).query("location", ""))
        .await?;
    response.expect_status(200)?;
    let text = response.text();
    let location = text
        .split_once("<LocationConstraint>")
        .and_then(|(_, rest)| rest.split_once("</LocationConstraint>"))
        .map(|(location, _)| location.to_owned())
        .ok_or_else(|| CaseError::Failed(format!("no <LocationConstraint> in {text:?}")))?;
    match ctx.require_region() {
        Ok(region) => ensure_eq!(location, format!("oss-{region}"), "<LocationConstraint>"),
        Err(_) => ensure!(
            location.starts_with("oss-"),
            "<LocationConstraint> {location:?} is not oss-REGION"
        ),
    }
    Ok(())
}

async fn delete_multiple_objects_deletes_the_keys_named(ctx: &Ctx) -> CaseResult {
    let keys = [
        ctx.key("multi/a"),
        ctx.key("multi/b c"),
        ctx.key("multi/kept"),
    ];
    let data = ctx.data(10);
    for key in &keys {
        ctx.put_object(key, &data).await?;
    }
    let missing = ctx.key("multi/never-written");
    let delete = |names: &[&String], quiet: bool| {
        let objects: String = names
            .iter()
            .map(|k| format!("<Object><Key>{k}</Key></Object>"))
            .collect();
        let body = format!("<Delete><Quiet>{quiet}</Quiet>{objects}</Delete>");
        let md5 = ossup_proto::checksum::content_md5(&ossup_proto::checksum::md5(body.as_bytes()));
        Request::post(Some(ctx.bucket()), None)
            .query("delete", "")
            .header("content-md5", &md5)
            .body(body)
    };
    let response = ctx
        .send(delete(&[&keys[0], &keys[1], &missing], false))
        .await?;
    response
        .expect_status(200)
        .context("DeleteMultipleObjects")?;
    let result: ossup_proto::xml::DeleteResult = response.xml("DeleteResult")?;
    let mut deleted: Vec<String> = result.deleted.into_iter().map(|d| d.key).collect();
    deleted.sort();
    let mut expected = vec![keys[0].clone(), keys[1].clone(), missing.clone()];
    expected.sort();
    ensure_eq!(deleted, expected, "the <Deleted> keys");
    for key in &keys[..2] {
        ctx.send(Request::get(Some(ctx.bucket()), Some(key)))
            .await?
            .expect_error(404, "NoSuchKey")
            .context(format!("GetObject of deleted {key}"))?;
    }
    ctx.expect_object(&keys[2], &data).await?;
    let quiet = ctx.send(delete(&[&keys[2]], true)).await?;
    quiet
        .expect_status(200)
        .context("a quiet DeleteMultipleObjects")?;
    let result: ossup_proto::xml::DeleteResult = quiet.xml("DeleteResult")?;
    ensure!(
        result.deleted.is_empty(),
        "a quiet answer listed {:?}",
        result.deleted
    );
    Ok(())
}
