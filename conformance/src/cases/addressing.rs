//! Addressing and keys: path-style and virtual-hosted requests, and keys that are hostile as paths.

use ossup_proto::Api;
use ossup_proto::xml::ListMultipartUploadsResult;

use crate::case::{Case, Ctx, complete_body, expect_same_bytes, upload_part_request};
use crate::check::{CaseResult, Context};
use crate::client::{Addressing, KeyEncoding, Request};
use crate::{case, ensure_eq};

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!(
            path_style_and_virtual_hosted_requests_name_the_same_objects,
            Api::PutObject,
            "PutObject one style, GetObject the other; a multipart upload switching style at every step; ListMultipartUploads and GetBucketInfo in both"
        ),
        case!(
            slash_sent_as_percent_2f_names_the_same_key,
            Api::GetObject,
            "a key with `/` sent as %2F (oss2) and read with `/` (Go, Java): same object; listed with `/`"
        ),
        case!(
            literal_percent_2f_in_a_key_is_not_a_slash,
            Api::GetObject,
            "key `a%2Fb` (sent as a%252Fb) is its own object; `a/b` is 404 NoSuchKey"
        ),
        case!(
            dot_segments_in_keys_are_kept_not_resolved,
            Api::PutObject,
            "keys `../../../…/etc/passwd`, `…/a/./b`, `…/a/../b` sent raw and read %2F-encoded round-trip; their resolved forms are 404 NoSuchKey"
        ),
        case!(
            unicode_and_reserved_characters_in_keys_round_trip,
            Api::PutObject,
            "keys with CJK, accents, emoji, spaces, ?, #, &, =, +, %, ; in both encodings; ListMultipartUploads shows them decoded"
        ),
        case!(
            key_starting_with_a_slash_or_backslash_is_invalid_object_name,
            Api::PutObject,
            "keys `/…` and `\\…`: 400 InvalidObjectName"
        ),
    ]
}

const STYLES: [Addressing; 2] = [Addressing::PathStyle, Addressing::VirtualHosted];

fn other(style: Addressing) -> Addressing {
    match style {
        Addressing::PathStyle => Addressing::VirtualHosted,
        Addressing::VirtualHosted => Addressing::PathStyle,
    }
}

async fn path_style_and_virtual_hosted_requests_name_the_same_objects(ctx: &Ctx) -> CaseResult {
    let bucket = ctx.bucket();
    for style in STYLES {
        let key = ctx.key(&format!("written-{style:?}.bin"));
        let body = ctx.data(500);
        ctx.track_object(bucket, &key);
        ctx.send(
            Request::put(Some(bucket), Some(&key))
                .addressing(style)
                .body(body.clone()),
        )
        .await?
        .expect_status(200)
        .context(format!("PutObject {style:?}"))?;
        let get = ctx
            .send(Request::get(Some(bucket), Some(&key)).addressing(other(style)))
            .await?;
        get.expect_status(200).context(format!(
            "GetObject {:?} of an object put {style:?}",
            other(style)
        ))?;
        expect_same_bytes(&get, &body)?;
    }

    let key = ctx.key("switching.bin");
    let response = ctx
        .send(
            Request::post(Some(bucket), Some(&key))
                .query("uploads", "")
                .addressing(Addressing::VirtualHosted),
        )
        .await?;
    response
        .expect_status(200)
        .context("Initiate virtual-hosted")?;
    let upload_id = response
        .xml::<ossup_proto::xml::InitiateMultipartUploadResult>("InitiateMultipartUploadResult")?
        .upload_id;
    ctx.track_upload(bucket, &key, &upload_id);
    let body = ctx.data(1000);
    let part = ctx
        .send(
            upload_part_request(bucket, &key, &upload_id, 1, body.clone())
                .addressing(Addressing::PathStyle),
        )
        .await?;
    part.expect_status(200).context("UploadPart path-style")?;
    let etag = part.expect_header("etag")?.to_owned();
    for style in STYLES {
        let response = ctx
            .send(
                Request::get(Some(bucket), None)
                    .query("uploads", "")
                    .query("prefix", ctx.prefix())
                    .addressing(style),
            )
            .await?;
        response
            .expect_status(200)
            .context(format!("ListMultipartUploads {style:?}"))?;
        let page: ListMultipartUploadsResult = response.xml("ListMultipartUploadsResult")?;
        let ids: Vec<&str> = page.uploads.iter().map(|u| u.upload_id.as_str()).collect();
        ensure_eq!(ids, vec![upload_id.as_str()], "uploads listed {style:?}");
        ctx.send(
            Request::get(Some(bucket), None)
                .query("bucketInfo", "")
                .addressing(style),
        )
        .await?
        .expect_status(200)
        .context(format!("GetBucketInfo {style:?}"))?;
    }
    ctx.track_object(bucket, &key);
    ctx.send(
        Request::post(Some(bucket), Some(&key))
            .query("uploadId", &upload_id)
            .addressing(Addressing::VirtualHosted)
            .body(complete_body(&[(1, &etag)])),
    )
    .await?
    .expect_status(200)
    .context("Complete virtual-hosted")?;
    let get = ctx
        .send(Request::get(Some(bucket), Some(&key)).addressing(Addressing::PathStyle))
        .await?;
    get.expect_status(200)?;
    expect_same_bytes(&get, &body)
}

/// Puts `key` with one encoding and reads it back with the other.
async fn round_trip(ctx: &Ctx, key: &str, put: KeyEncoding, get: KeyEncoding) -> CaseResult {
    let body = ctx.data(64);
    ctx.track_object(ctx.bucket(), key);
    ctx.send(
        Request::put(Some(ctx.bucket()), Some(key))
            .key_encoding(put)
            .body(body.clone()),
    )
    .await?
    .expect_status(200)
    .context(format!("PutObject of {key:?} ({put:?})"))?;
    let response = ctx
        .send(Request::get(Some(ctx.bucket()), Some(key)).key_encoding(get))
        .await?;
    response
        .expect_status(200)
        .context(format!("GetObject of {key:?} ({get:?})"))?;
    expect_same_bytes(&response, &body).context(format!("key {key:?}"))
}

async fn expect_no_object(ctx: &Ctx, key: &str, why: &str) -> CaseResult {
    ctx.send(Request::get(Some(ctx.bucket()), Some(key)).key_encoding(KeyEncoding::EncodeSlash))
        .await?
        .expect_error(404, "NoSuchKey")
        .context(format!("{key:?} ({why})"))?;
    Ok(())
}

async fn slash_sent_as_percent_2f_names_the_same_key(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("dir/sub/file.txt");
    round_trip(ctx, &key, KeyEncoding::EncodeSlash, KeyEncoding::KeepSlash).await?;
    let upload_key = ctx.key("dir/upload.bin");
    let response = ctx
        .send(
            Request::post(Some(ctx.bucket()), Some(&upload_key))
                .query("uploads", "")
                .key_encoding(KeyEncoding::EncodeSlash),
        )
        .await?;
    response.expect_status(200)?;
    let upload_id = response
        .xml::<ossup_proto::xml::InitiateMultipartUploadResult>("InitiateMultipartUploadResult")?
        .upload_id;
    ctx.track_upload(ctx.bucket(), &upload_key, &upload_id);
    let listing = ctx
        .send(
            Request::get(Some(ctx.bucket()), None)
                .query("uploads", "")
                .query("prefix", ctx.prefix()),
        )
        .await?;
    listing.expect_status(200)?;
    let page: ListMultipartUploadsResult = listing.xml("ListMultipartUploadsResult")?;
    let keys: Vec<&str> = page.uploads.iter().map(|u| u.key.as_str()).collect();
    ensure_eq!(keys, vec![upload_key.as_str()], "keys listed");
    Ok(())
}

async fn literal_percent_2f_in_a_key_is_not_a_slash(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("a%2Fb");
    round_trip(ctx, &key, KeyEncoding::KeepSlash, KeyEncoding::EncodeSlash).await?;
    expect_no_object(
        ctx,
        &ctx.key("a/b"),
        "the key with a decoded slash was never written",
    )
    .await
}

async fn dot_segments_in_keys_are_kept_not_resolved(ctx: &Ctx) -> CaseResult {
    let prefix = ctx.prefix();
    let escaping = format!("../../../{prefix}etc/passwd");
    let dot = ctx.key("a/./b");
    let dot_dot = ctx.key("a/../b");
    for key in [&escaping, &dot, &dot_dot] {
        round_trip(ctx, key, KeyEncoding::KeepSlash, KeyEncoding::EncodeSlash).await?;
    }
    expect_no_object(
        ctx,
        &format!("{prefix}etc/passwd"),
        "resolved form of the ../ key",
    )
    .await?;
    expect_no_object(ctx, &ctx.key("a/b"), "resolved form of a/./b").await?;
    expect_no_object(ctx, &ctx.key("b"), "resolved form of a/../b").await
}

async fn unicode_and_reserved_characters_in_keys_round_trip(ctx: &Ctx) -> CaseResult {
    let keys = [
        ctx.key("文件/ünïcødé 名.txt"),
        ctx.key("emoji-😀/ok.bin"),
        ctx.key("q?x=1&y=2#frag+plus space;,@$!'()*%25.txt"),
        ctx.key("ends-with-slash/"),
    ];
    for (i, key) in keys.iter().enumerate() {
        let (put, get) = if i % 2 == 0 {
            (KeyEncoding::KeepSlash, KeyEncoding::EncodeSlash)
        } else {
            (KeyEncoding::EncodeSlash, KeyEncoding::KeepSlash)
        };
        round_trip(ctx, key, put, get).await?;
    }
    let mut expected = Vec::new();
    for key in &keys[..3] {
        let id = ctx.initiate(key).await?;
        expected.push((key.clone(), id));
    }
    expected.sort();
    let listing = ctx
        .send(
            Request::get(Some(ctx.bucket()), None)
                .query("uploads", "")
                .query("prefix", ctx.prefix()),
        )
        .await?;
    listing.expect_status(200)?;
    let page: ListMultipartUploadsResult = listing.xml("ListMultipartUploadsResult")?;
    let listed: Vec<(String, String)> = page
        .uploads
        .iter()
        .map(|u| (u.key.clone(), u.upload_id.clone()))
        .collect();
    ensure_eq!(listed, expected, "uploads listed (key, id), sorted by key");
    Ok(())
}

async fn key_starting_with_a_slash_or_backslash_is_invalid_object_name(ctx: &Ctx) -> CaseResult {
    for key in [format!("/{}", ctx.key("x")), format!("\\{}", ctx.key("x"))] {
        let response = ctx
            .send(Request::put(Some(ctx.bucket()), Some(&key)).body("x"))
            .await?;
        if response.status.is_success() {
            ctx.track_object(ctx.bucket(), &key);
        }
        response
            .expect_error(400, "InvalidObjectName")
            .context(format!("PutObject of {key:?}"))?;
    }
    Ok(())
}
