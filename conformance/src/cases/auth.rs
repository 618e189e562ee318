//! Authentication: V1 and V4 signatures, wrong secrets, unknown keys, skewed dates, garbage and tampering.

use std::time::{Duration, SystemTime};

use ossup_proto::Api;
use ossup_proto::checksum::{self, content_md5, md5};
use ossup_proto::headers::OSS_DATE;
use ossup_sign::{Credentials, V1Signer, V4Signer};

use crate::case::{Case, Ctx, complete_body, expect_same_bytes, upload_part_request};
use crate::check::{CaseError, CaseResult, Context};
use crate::client::{Addressing, Auth, Request};
use crate::{case, ensure, ensure_eq};

/// A key id no server knows.
const UNKNOWN_KEY_ID: &str = "ossup-conformance-unknown-key";

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!(
            presigned_urls_work_until_they_expire_for_their_method_only,
            Api::GetObject,
            "a V1 presigned PUT and GET (and V4 with a region) as signed; an expired one 403 AccessDenied; a GET URL used to DELETE 403 SignatureDoesNotMatch"
        ),
        case!(
            v4_signed_requests_are_accepted_by_every_api,
            Api::UploadPart,
            "V4 (OSS4-HMAC-SHA256), both addressing styles: Initiate, UploadPart, ListParts, Complete, Get (Range), Head, ListMultipartUploads, Delete"
        ),
        case!(
            v1_wrong_secret_is_signature_does_not_match_with_the_string_to_sign,
            Api::UploadPart,
            "V1 with a wrong secret: 403 SignatureDoesNotMatch, <StringToSign> = the V1 string to sign computed here"
        ),
        case!(
            v4_wrong_secret_is_signature_does_not_match_with_the_string_to_sign,
            Api::PutObject,
            "V4 with a wrong secret: 403 SignatureDoesNotMatch, <StringToSign> = the V4 string to sign computed here"
        ),
        case!(
            unknown_access_key_id_is_invalid_access_key_id,
            Api::GetObject,
            "an unknown key id, signed V1 and V4: 403 InvalidAccessKeyId"
        ),
        case!(
            date_more_than_15_minutes_off_is_request_time_too_skewed,
            Api::PutObject,
            "signed 20 minutes in the past (V1, V4) and in the future (V1): 403 RequestTimeTooSkewed; nothing written"
        ),
        case!(
            date_10_minutes_off_is_accepted,
            Api::PutObject,
            "signed 10 minutes in the past (V1) and in the future (V4): 200, and the object is there"
        ),
        case!(
            v1_date_given_only_as_x_oss_date_is_accepted,
            Api::PutObject,
            "V1 with x-oss-date in the date slot and no Date header, as some clients send: 200"
        ),
        case!(
            garbage_authorization_is_invalid_argument,
            Api::GetObject,
            "Authorization: garbage, and OSS4-HMAC-SHA256 without Credential: 400 InvalidArgument"
        ),
        case!(
            unsigned_request_is_access_denied,
            Api::GetObject,
            "no Authorization on a private bucket: 403 AccessDenied"
        ),
        case!(
            header_changed_after_signing_is_signature_does_not_match,
            Api::PutObject,
            "x-oss-meta-*, Content-Type and Content-MD5 changed after V1 signing, x-oss-meta-* after V4: 403 SignatureDoesNotMatch; nothing written"
        ),
        case!(
            subresource_changed_after_signing_is_signature_does_not_match,
            Api::UploadPart,
            "partNumber=1 signed, partNumber=2 sent (V1 and V4): 403 SignatureDoesNotMatch; no part stored"
        ),
    ]
}

fn wrong_secret(ctx: &Ctx) -> Credentials {
    let real = ctx.client().config().credentials.clone();
    Credentials::new(
        real.access_key_id(),
        format!("{}-but-wrong", real.access_key_secret()),
    )
}

async fn v4_signed_requests_are_accepted_by_every_api(ctx: &Ctx) -> CaseResult {
    ctx.require_region()?;
    for addressing in [Addressing::PathStyle, Addressing::VirtualHosted] {
        let key = ctx.key(&format!("v4-{addressing:?}.bin"));
        let v4 = |request: Request| request.auth(Auth::V4).addressing(addressing);
        let step = format!("V4 {addressing:?}");
        let response = ctx
            .send(v4(
                Request::post(Some(ctx.bucket()), Some(&key)).query("uploads", "")
            ))
            .await?;
        response.expect_status(200).context(&step)?;
        let upload_id = response
            .xml::<ossup_proto::xml::InitiateMultipartUploadResult>(
                "InitiateMultipartUploadResult",
            )?
            .upload_id;
        ctx.track_upload(ctx.bucket(), &key, &upload_id);
        let body = ctx.data(3000);
        let part = ctx
            .send(v4(upload_part_request(
                ctx.bucket(),
                &key,
                &upload_id,
                1,
                body.clone(),
            )))
            .await?;
        part.expect_status(200).context(&step)?;
        part.expect_crc64(checksum::crc64(&body))?;
        let etag = part.expect_header("etag")?.to_owned();
        ctx.send(v4(Request::get(Some(ctx.bucket()), Some(&key))
            .query("uploadId", &upload_id)
            .query("max-parts", "10")))
            .await?
            .expect_status(200)
            .context(format!("{step} ListParts"))?;
        ctx.send(v4(Request::get(Some(ctx.bucket()), None)
            .query("uploads", "")
            .query("prefix", ctx.prefix())))
            .await?
            .expect_status(200)
            .context(format!("{step} ListMultipartUploads"))?;
        ctx.track_object(ctx.bucket(), &key);
        ctx.send(v4(Request::post(Some(ctx.bucket()), Some(&key))
            .query("uploadId", &upload_id)
            .body(complete_body(&[(1, &etag)]))))
            .await?
            .expect_status(200)
            .context(format!("{step} Complete"))?;
        let ranged = ctx
            .send(v4(
                Request::get(Some(ctx.bucket()), Some(&key)).header("range", "bytes=100-199")
            ))
            .await?;
        ranged
            .expect_status(206)
            .context(format!("{step} ranged GetObject"))?;
        expect_same_bytes(&ranged, &body[100..200])?;
        ctx.send(v4(Request::head(Some(ctx.bucket()), Some(&key))))
            .await?
            .expect_status(200)
            .context(format!("{step} HeadObject"))?;
        ctx.send(v4(Request::delete(Some(ctx.bucket()), Some(&key))))
            .await?
            .expect_status(204)
            .context(format!("{step} DeleteObject"))?;
    }
    Ok(())
}

async fn v1_wrong_secret_is_signature_does_not_match_with_the_string_to_sign(
    ctx: &Ctx,
) -> CaseResult {
    let key = ctx.key("v1 signed/ü.bin");
    let upload_id = ctx.initiate(&key).await?;
    let body = ctx.data(100);
    let request = upload_part_request(ctx.bucket(), &key, &upload_id, 1, body.clone())
        .auth(Auth::V1)
        .credentials(wrong_secret(ctx))
        .header("content-type", "application/octet-stream")
        .header("content-md5", &content_md5(&md5(&body)))
        .header("x-oss-meta-Case", "  V1  ");
    let prepared = ctx.client().prepare(&request)?;
    let signed = prepared.signed.clone().expect("V1 requests are signed");
    let response = ctx.client().send_prepared(prepared).await?;
    let error = response.expect_error(403, "SignatureDoesNotMatch")?;
    let expected = V1Signer::string_to_sign(&signed);
    ensure_eq!(
        error.field("StringToSign").unwrap_or("<absent>"),
        expected.as_str(),
        "<StringToSign>"
    );
    Ok(())
}

async fn v4_wrong_secret_is_signature_does_not_match_with_the_string_to_sign(
    ctx: &Ctx,
) -> CaseResult {
    let region = ctx.require_region()?.to_owned();
    let key = ctx.key("v4 signed/ü.bin");
    ctx.track_object(ctx.bucket(), &key);
    let request = Request::put(Some(ctx.bucket()), Some(&key))
        .auth(Auth::V4)
        .credentials(wrong_secret(ctx))
        .header("content-type", "text/plain")
        .header("x-oss-meta-case", "v4")
        .body("hello");
    let prepared = ctx.client().prepare(&request)?;
    let signed = prepared.signed.clone().expect("V4 requests are signed");
    let response = ctx.client().send_prepared(prepared).await?;
    let error = response.expect_error(403, "SignatureDoesNotMatch")?;
    let signer = V4Signer::new(region);
    ensure_eq!(
        error.field("StringToSign").unwrap_or("<absent>"),
        signer.string_to_sign(&signed).as_str(),
        "<StringToSign>"
    );
    if let Some(canonical) = error.field("CanonicalRequest") {
        ensure_eq!(
            canonical,
            signer.canonical_request(&signed).as_str(),
            "<CanonicalRequest>"
        );
    }
    let head = ctx
        .send(Request::head(Some(ctx.bucket()), Some(&key)))
        .await?;
    head.expect_error(404, "NoSuchKey")
        .context("the refused PutObject")?;
    Ok(())
}

async fn unknown_access_key_id_is_invalid_access_key_id(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("anything");
    let mut auths = vec![Auth::V1];
    if ctx.require_region().is_ok() {
        auths.push(Auth::V4);
    }
    for auth in auths {
        let response = ctx
            .send(
                Request::get(Some(ctx.bucket()), Some(&key))
                    .auth(auth.clone())
                    .credentials(Credentials::new(UNKNOWN_KEY_ID, "whatever")),
            )
            .await?;
        response
            .expect_error(403, "InvalidAccessKeyId")
            .context(format!("{auth:?}"))?;
    }
    Ok(())
}

async fn put_signed_at(
    ctx: &Ctx,
    key: &str,
    auth: Auth,
    at: SystemTime,
) -> Result<crate::client::Response, CaseError> {
    ctx.track_object(ctx.bucket(), key);
    ctx.send(
        Request::put(Some(ctx.bucket()), Some(key))
            .auth(auth)
            .signed_at(at)
            .body("skewed"),
    )
    .await
}

async fn date_more_than_15_minutes_off_is_request_time_too_skewed(ctx: &Ctx) -> CaseResult {
    let now = SystemTime::now();
    let twenty = Duration::from_secs(20 * 60);
    let mut tries = vec![
        ("V1, 20 minutes ago", Auth::V1, now - twenty),
        ("V1, 20 minutes ahead", Auth::V1, now + twenty),
    ];
    if ctx.require_region().is_ok() {
        tries.push(("V4, 20 minutes ago", Auth::V4, now - twenty));
    }
    for (what, auth, at) in tries {
        let key = ctx.key(what);
        let response = put_signed_at(ctx, &key, auth, at).await?;
        response
            .expect_error(403, "RequestTimeTooSkewed")
            .context(what)?;
        ctx.send(Request::head(Some(ctx.bucket()), Some(&key)))
            .await?
            .expect_error(404, "NoSuchKey")
            .context(format!("object after the refused PutObject ({what})"))?;
    }
    Ok(())
}

async fn date_10_minutes_off_is_accepted(ctx: &Ctx) -> CaseResult {
    let now = SystemTime::now();
    let ten = Duration::from_secs(10 * 60);
    let mut tries = vec![("V1, 10 minutes ago", Auth::V1, now - ten)];
    if ctx.require_region().is_ok() {
        tries.push(("V4, 10 minutes ahead", Auth::V4, now + ten));
    }
    for (what, auth, at) in tries {
        let key = ctx.key(what);
        put_signed_at(ctx, &key, auth, at)
            .await?
            .expect_status(200)
            .context(what)?;
        ctx.expect_object(&key, b"skewed").await.context(what)?;
    }
    Ok(())
}

async fn v1_date_given_only_as_x_oss_date_is_accepted(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("x-oss-date.bin");
    ctx.track_object(ctx.bucket(), &key);
    let date = httpdate::fmt_http_date(SystemTime::now());
    let request = Request::put(Some(ctx.bucket()), Some(&key))
        .auth(Auth::V1)
        .header(OSS_DATE, &date)
        .body("dated");
    let prepared = ctx.client().prepare(&request)?;
    ensure!(
        !prepared.headers.contains_key("date"),
        "the signer added a Date header although x-oss-date was set"
    );
    ctx.client()
        .send_prepared(prepared)
        .await?
        .expect_status(200)?;
    ctx.expect_object(&key, b"dated").await?;
    Ok(())
}

async fn garbage_authorization_is_invalid_argument(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("anything");
    for garbage in [
        "garbage",
        "OSS4-HMAC-SHA256 Signature=0123456789abcdef",
        "OSS no-colon-here",
    ] {
        let response = ctx
            .send(
                Request::get(Some(ctx.bucket()), Some(&key))
                    .auth(Auth::V1)
                    .override_header("authorization", garbage),
            )
            .await?;
        response
            .expect_error(400, "InvalidArgument")
            .context(format!("Authorization: {garbage}"))?;
    }
    Ok(())
}

async fn unsigned_request_is_access_denied(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("private.bin");
    ctx.put_object(&key, &ctx.data(10)).await?;
    let response = ctx
        .send(Request::get(Some(ctx.bucket()), Some(&key)).auth(Auth::Unsigned))
        .await?;
    response.expect_error(403, "AccessDenied")?;
    Ok(())
}

async fn header_changed_after_signing_is_signature_does_not_match(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("tampered.bin");
    ctx.track_object(ctx.bucket(), &key);
    let body = bytes::Bytes::from_static(b"signed body");
    let base = || {
        Request::put(Some(ctx.bucket()), Some(&key))
            .header("x-oss-meta-who", "signer")
            .header("content-type", "text/plain")
            .header("content-md5", &content_md5(&md5(&body)))
            .body(body.clone())
    };
    // Signed with the MD5 of other bytes, sent with the body's own: the digest holds, the signature
    // does not, whichever a server checks first.
    let md5_swapped = Request::put(Some(ctx.bucket()), Some(&key))
        .auth(Auth::V1)
        .header("content-md5", &content_md5(&md5(b"other")))
        .override_header("content-md5", &content_md5(&md5(&body)))
        .body(body.clone());
    let mut tampered = vec![
        (
            "x-oss-meta-who",
            base()
                .auth(Auth::V1)
                .override_header("x-oss-meta-who", "someone else"),
        ),
        (
            "content-type",
            base()
                .auth(Auth::V1)
                .override_header("content-type", "text/html"),
        ),
        ("content-md5", md5_swapped),
    ];
    if ctx.require_region().is_ok() {
        tampered.push((
            "x-oss-meta-who (V4)",
            base()
                .auth(Auth::V4)
                .override_header("x-oss-meta-who", "someone else"),
        ));
    }
    for (what, request) in tampered {
        let response = ctx.send(request).await?;
        response
            .expect_error(403, "SignatureDoesNotMatch")
            .context(format!("{what} changed after signing"))?;
    }
    ctx.send(Request::head(Some(ctx.bucket()), Some(&key)))
        .await?
        .expect_error(404, "NoSuchKey")
        .context("object after the refused PutObjects")?;
    Ok(())
}

async fn subresource_changed_after_signing_is_signature_does_not_match(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("tampered-query.bin");
    let upload_id = ctx.initiate(&key).await?;
    let mut auths = vec![Auth::V1];
    if ctx.require_region().is_ok() {
        auths.push(Auth::V4);
    }
    for auth in auths {
        let request =
            upload_part_request(ctx.bucket(), &key, &upload_id, 1, ctx.data(10)).auth(auth.clone());
        let mut prepared = ctx.client().prepare(&request)?;
        let sent = prepared
            .target
            .path_and_query
            .replace("partNumber=1", "partNumber=2");
        ensure!(
            sent != prepared.target.path_and_query,
            "could not rewrite {}",
            prepared.target.path_and_query
        );
        prepared.target.path_and_query = sent;
        let response = ctx.client().send_prepared(prepared).await?;
        response
            .expect_error(403, "SignatureDoesNotMatch")
            .context(format!("{auth:?} partNumber changed after signing"))?;
    }
    let response = ctx
        .send(Request::get(Some(ctx.bucket()), Some(&key)).query("uploadId", &upload_id))
        .await?;
    response.expect_status(200)?;
    let page: ossup_proto::xml::ListPartsResult = response.xml("ListPartsResult")?;
    ensure!(
        page.parts.is_empty(),
        "parts stored by refused requests: {:?}",
        page.parts.iter().map(|p| p.part_number).collect::<Vec<_>>()
    );
    Ok(())
}

async fn presigned_urls_work_until_they_expire_for_their_method_only(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("presigned.bin");
    let body = ctx.data(1000);
    let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
    let put = Request::put(Some(ctx.bucket()), Some(&key))
        .body(body.clone())
        .auth(Auth::PresignedV1(in_an_hour));
    ctx.send(put)
        .await?
        .expect_status(200)
        .context("V1 presigned PutObject")?;
    ctx.track_object(ctx.bucket(), &key);
    let mut readers = vec![("V1", Auth::PresignedV1(in_an_hour))];
    if ctx.require_region().is_ok() {
        readers.push(("V4", Auth::PresignedV4(Duration::from_secs(3600))));
    }
    for (version, auth) in readers {
        let get = Request::get(Some(ctx.bucket()), Some(&key)).auth(auth);
        let response = ctx.send(get).await?;
        expect_same_bytes(&response, &body).context(format!("{version} presigned GetObject"))?;
    }
    let expired = Request::get(Some(ctx.bucket()), Some(&key)).auth(Auth::PresignedV1(
        SystemTime::now() - Duration::from_secs(60),
    ));
    ctx.send(expired)
        .await?
        .expect_error(403, "AccessDenied")
        .context("a V1 presigned URL that expired a minute ago")?;
    // The method is signed: a URL to read the object cannot delete it.
    let get_url = Request::get(Some(ctx.bucket()), Some(&key)).auth(Auth::PresignedV1(in_an_hour));
    let target = ctx.client().prepare(&get_url)?.target.path_and_query;
    let parts_of_get = Request::delete(Some(ctx.bucket()), Some(&key))
        .auth(Auth::Unsigned)
        .raw_path_and_query(&target);
    ctx.send(parts_of_get)
        .await?
        .expect_error(403, "SignatureDoesNotMatch")
        .context("a GET's presigned URL used to DELETE")?;
    ctx.expect_object(&key, &body).await?;
    Ok(())
}
