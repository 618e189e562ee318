//! Authentication: V1 and V4 accepted, and each way a signature fails answered as OSS does.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

mod common;

use std::time::{Duration, SystemTime};

use common::{BUCKET, Client, data, server};
use http::Method;
use oss_mock::{MockConfig, MockServer, StsCredential};
use ossup_sign::{Credentials, RequestParts, V1Signer, V4Signer, presign_v1, presign_v4};

#[tokio::test]
async fn v1_and_v4_signatures_are_accepted_with_and_without_a_security_token() {
    let server = server().await;
    for client in [
        Client::new(&server),
        Client::new(&server).v4("cn-hangzhou"),
        Client::new(&server).with_token("sts-token"),
        Client::new(&server)
            .v4("cn-hangzhou")
            .with_token("sts-token"),
    ] {
        let id = client.initiate("dir/k ey").await;
        client.upload_part("dir/k ey", &id, 1, b"abc").await.ok();
        let page = client
            .list_parts("dir/k ey", &id, &[("max-parts", "5")])
            .await;
        assert_eq!(page.parts.len(), 1);
        client
            .req(Method::DELETE, "dir/k ey")
            .query("uploadId", &id)
            .send()
            .await
            .ok();
    }
}

#[tokio::test]
async fn a_wrong_secret_is_signature_does_not_match_with_the_string_to_sign() {
    let server = server().await;
    let client = Client::with_key(&server, "test-ak", "wrong-secret");
    let req = client.req(Method::PUT, "k").body("x");
    let expected_sts = V1Signer::string_to_sign(&req.signed_parts());
    let r = req.send().await;
    let err = r.expect_error(403, "SignatureDoesNotMatch");
    assert_eq!(err.field("OSSAccessKeyId"), Some("test-ak"));
    assert!(err.field("SignatureProvided").is_some());
    // Dates differ by at most the second the request took; compare without the Date line.
    let got = err.field("StringToSign").unwrap();
    assert_eq!(got.lines().next(), expected_sts.lines().next());
    assert!(got.ends_with("/bucket/k"), "{got}");

    let client = Client::with_key(&server, "test-ak", "wrong-secret").v4("cn-hangzhou");
    let req = client.req(Method::GET, "k").query("uploadId", "U");
    let expected_canonical = V4Signer::new("cn-hangzhou").canonical_request(&req.signed_parts());
    let err = req.send().await.expect_error(403, "SignatureDoesNotMatch");
    assert!(
        err.field("StringToSign")
            .unwrap()
            .starts_with("OSS4-HMAC-SHA256\n")
    );
    let canonical = err.field("CanonicalRequest").unwrap();
    assert_eq!(
        canonical.lines().take(3).collect::<Vec<_>>(),
        expected_canonical.lines().take(3).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn an_unknown_key_id_is_invalid_access_key_id() {
    let server = server().await;
    let err = Client::with_key(&server, "nobody", "x")
        .get("k")
        .await
        .expect_error(403, "InvalidAccessKeyId");
    assert_eq!(err.field("OSSAccessKeyId"), Some("nobody"));
}

#[tokio::test]
async fn configured_credentials_replace_the_default_ones() {
    let server = MockServer::start(
        MockConfig::default()
            .with_bucket("bucket")
            .with_credentials("id-1", "secret-1"),
    )
    .await
    .unwrap();
    Client::with_key(&server, "id-1", "secret-1")
        .req(Method::PUT, "k")
        .body("x")
        .send()
        .await
        .ok();
    Client::new(&server)
        .get("k")
        .await
        .expect_error(403, "InvalidAccessKeyId");
}

#[tokio::test]
async fn a_skewed_clock_is_request_time_too_skewed_with_both_times() {
    let server = server().await;
    for client in [
        Client::new(&server).with_clock_offset(16 * 60),
        Client::new(&server).with_clock_offset(-16 * 60),
        Client::new(&server)
            .v4("cn-hangzhou")
            .with_clock_offset(3600),
    ] {
        let err = client
            .get("k")
            .await
            .expect_error(403, "RequestTimeTooSkewed");
        assert!(err.field("RequestTime").unwrap().ends_with(".000Z"));
        assert!(err.field("ServerTime").is_some());
    }
    // Within 15 minutes is fine.
    Client::new(&server)
        .with_clock_offset(10 * 60)
        .get("k")
        .await
        .expect_error(404, "NoSuchKey");
}

#[tokio::test]
async fn unsigned_and_garbled_requests_are_refused() {
    let server = server().await;
    let client = Client::new(&server);
    client
        .req(Method::GET, "k")
        .unsigned()
        .send()
        .await
        .expect_error(403, "AccessDenied");
    for garbage in [
        "garbage",
        "OSS ",
        "OSS no-colon",
        "OSS4-HMAC-SHA256 Credential=x",
        "Bearer abc",
    ] {
        let r = client
            .req(Method::GET, "k")
            .unsigned()
            .header(
                "date",
                &httpdate::fmt_http_date(std::time::SystemTime::now()),
            )
            .header("authorization", garbage)
            .send()
            .await;
        let code = r.error().code;
        assert!(
            (r.status == 400 && code == "InvalidArgument")
                || (r.status == 403 && code == "AccessDenied"),
            "{garbage}: {} {}",
            r.status,
            r.text()
        );
    }
    let r = client
        .req(Method::GET, "k")
        .unsigned()
        .header("authorization", "OSS test-ak:c2lnbmF0dXJl")
        .send()
        .await;
    r.expect_error(403, "AccessDenied");
}

/// A presigned URL (V1 or V4, of a permanent key or of temporary credentials) lets a request
/// without `Authorization` through until it expires, for its method and object only.
#[tokio::test]
async fn presigned_urls_work_until_they_expire() {
    let server = MockServer::start(MockConfig {
        buckets: vec![BUCKET.to_owned()],
        sts: vec![StsCredential::new("STS.presign", "sts-secret", "sts-token")],
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let client = Client::new(&server);
    let now = SystemTime::now();
    let permanent = Credentials::new("test-ak", "test-sk");
    let temporary = Credentials::new("STS.presign", "sts-secret").with_security_token("sts-token");
    for (credentials, v4) in [
        (&permanent, false),
        (&permanent, true),
        (&temporary, false),
        (&temporary, true),
    ] {
        // The query of a URL presigned for `method` on `key`, sent as `sent_method` to `sent_key`.
        let send = |method: Method, key: &str, valid: Duration, sent: (Method, &str)| {
            let mut parts = RequestParts::new(method, Some(BUCKET), Some(key));
            if v4 {
                presign_v4(&mut parts, credentials, "cn-hangzhou", now, valid).unwrap();
            } else {
                presign_v1(&mut parts, credentials, now + valid).unwrap();
            }
            let mut request = client.req(sent.0, sent.1).unsigned();
            for (name, value) in &parts.query {
                request = request.query(name, value);
            }
            request
        };
        let presigned = |method: Method, key: &str, valid: Duration| {
            send(method.clone(), key, valid, (method, key))
        };
        let what = format!("{} v4={v4}", credentials.access_key_id());
        presigned(Method::PUT, "shared", Duration::from_secs(300))
            .body("given away")
            .send()
            .await
            .ok();
        let got = presigned(Method::GET, "shared", Duration::from_secs(300))
            .send()
            .await
            .ok();
        assert_eq!(got.body, "given away".as_bytes(), "{what}");
        // Signed for GET of "shared": no other method, no other object.
        let five_minutes = Duration::from_secs(300);
        send(
            Method::GET,
            "shared",
            five_minutes,
            (Method::DELETE, "shared"),
        )
        .send()
        .await
        .expect_error(403, "SignatureDoesNotMatch");
        send(Method::GET, "other", five_minutes, (Method::GET, "shared"))
            .send()
            .await
            .expect_error(403, "SignatureDoesNotMatch");
        let expired = presigned(Method::GET, "shared", Duration::from_secs(1));
        tokio::time::sleep(
            Duration::from_millis(1100).saturating_sub(now.elapsed().unwrap_or_default()),
        )
        .await;
        let refused = expired.send().await;
        let error = refused.expect_error(403, "AccessDenied");
        assert_eq!(error.message, "Request has expired.", "{what}");
    }
}

#[tokio::test]
async fn every_response_carries_request_id_date_and_server() {
    let server = server().await;
    let client = Client::new(&server);
    let responses = [
        client.req(Method::PUT, "k").body("x").send().await,
        client.get("k").await,
        client.req(Method::HEAD, "k").send().await,
        client.req(Method::HEAD, "missing").send().await,
        client.get("missing").await,
        client.req(Method::GET, "k").unsigned().send().await,
        client.req_in(Method::GET, "BAD", "k").send().await,
    ];
    let mut ids = std::collections::HashSet::new();
    for r in responses {
        let id = r.header("x-oss-request-id").expect("request id").to_owned();
        assert_eq!(id.len(), 24);
        assert!(ids.insert(id));
        assert!(r.header("date").is_some());
        assert_eq!(r.header("server"), Some("AliyunOSS"));
    }
}

#[tokio::test]
async fn an_error_on_a_large_unread_body_still_reaches_the_client() {
    let server = server().await;
    let client = Client::with_key(&server, "test-ak", "wrong");
    let id = "whatever";
    for _ in 0..3 {
        let r = client
            .req(Method::PUT, "k")
            .query("partNumber", "1")
            .query("uploadId", id)
            .body(data(5, 2 * 1024 * 1024))
            .send()
            .await;
        r.expect_error(403, "SignatureDoesNotMatch");
    }
}
