//! The signatures the official Go SDK V2 tests expect (oss/signer/signer_test.go), reproduced exactly,
//! and accepted by `verify`.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Method;
use ossup_sign::{
    Credentials, RequestParts, SignatureVersion, Signer, V1Signer, V4Signer, VerifyError, verify,
};

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn secrets(id: &str) -> Option<String> {
    (id == "ak").then(|| "sk".to_owned())
}

fn authorization(request: &RequestParts) -> &str {
    request.headers["authorization"].to_str().unwrap()
}

/// Wed, 28 Dec 2022 10:27:41 GMT.
const V1_TIME: u64 = 1_672_223_261;
const V1_DATE: &str = "Wed, 28 Dec 2022 10:27:41 GMT";

fn v1_put_request() -> RequestParts {
    RequestParts::new(Method::PUT, Some("examplebucket"), Some("nelson"))
        .with_header("Content-MD5", "eB5eJF1ptWaXm4bijSPyxw==")
        .with_header("Content-Type", "text/html")
        .with_header("x-oss-meta-author", "alice")
        .with_header("x-oss-meta-magic", "abracadabra")
        .with_header("x-oss-date", V1_DATE)
}

#[test]
fn v1_vector_object_put() {
    let mut request = v1_put_request();
    V1Signer
        .sign(&mut request, &Credentials::new("ak", "sk"), at(V1_TIME))
        .unwrap();
    assert_eq!(
        V1Signer::string_to_sign(&request),
        "PUT\neB5eJF1ptWaXm4bijSPyxw==\ntext/html\nWed, 28 Dec 2022 10:27:41 GMT\n\
         x-oss-date:Wed, 28 Dec 2022 10:27:41 GMT\nx-oss-meta-author:alice\nx-oss-meta-magic:abracadabra\n\
         /examplebucket/nelson"
    );
    assert_eq!(
        authorization(&request),
        "OSS ak:kSHKmLxlyEAKtZPkJhG9bZb5k7M="
    );
    assert!(
        !request.headers.contains_key("date"),
        "x-oss-date already dates the request"
    );
    let verified = verify(&request, secrets, at(V1_TIME)).unwrap();
    assert_eq!(verified.version, SignatureVersion::V1);
    assert_eq!(verified.request_time, at(V1_TIME));
}

#[test]
fn v1_vector_object_put_with_acl() {
    let mut request = v1_put_request().with_query("acl", "");
    V1Signer
        .sign(&mut request, &Credentials::new("ak", "sk"), at(V1_TIME))
        .unwrap();
    assert!(V1Signer::string_to_sign(&request).ends_with("\n/examplebucket/nelson?acl"));
    assert_eq!(
        authorization(&request),
        "OSS ak:/afkugFbmWDQ967j1vr6zygBLQk="
    );
    verify(&request, secrets, at(V1_TIME)).unwrap();
}

#[test]
fn v1_vector_as_the_go_sdk_sends_it_with_both_date_headers() {
    // The Go SDK also sends `Date` with the same value; the date slot then comes from `Date`.
    let request = v1_put_request()
        .with_header("Date", V1_DATE)
        .with_header("Authorization", "OSS ak:kSHKmLxlyEAKtZPkJhG9bZb5k7M=");
    verify(&request, secrets, at(V1_TIME)).unwrap();
}

#[test]
fn v1_vector_bucket_request_signs_only_listed_subresources() {
    let mut request = RequestParts::new(Method::GET, Some("examplebucket"), None::<&str>)
        .with_query("resourceGroup", "")
        .with_query("non-resousce", "null")
        .with_header("x-oss-date", V1_DATE);
    V1Signer
        .sign(&mut request, &Credentials::new("ak", "sk"), at(V1_TIME))
        .unwrap();
    assert_eq!(
        V1Signer::string_to_sign(&request),
        "GET\n\n\nWed, 28 Dec 2022 10:27:41 GMT\nx-oss-date:Wed, 28 Dec 2022 10:27:41 GMT\n/examplebucket/?resourceGroup"
    );
    assert_eq!(
        authorization(&request),
        "OSS ak:vkQmfuUDyi1uDi3bKt67oemssIs="
    );

    let mut request = RequestParts::new(Method::GET, Some("examplebucket"), None::<&str>)
        .with_query("resourceGroup", "")
        .with_query("acl", "")
        .with_header("x-oss-date", V1_DATE);
    V1Signer
        .sign(&mut request, &Credentials::new("ak", "sk"), at(V1_TIME))
        .unwrap();
    assert!(V1Signer::string_to_sign(&request).ends_with("/examplebucket/?acl&resourceGroup"));
    assert_eq!(
        authorization(&request),
        "OSS ak:x3E5TgOvl/i7PN618s5mEvpJDYk="
    );
    verify(&request, secrets, at(V1_TIME)).unwrap();
}

/// The request of Go SDK V2 `TestV4AuthHeader*`: odd query names, unsigned headers, a key with `+`.
fn v4_request() -> RequestParts {
    RequestParts::new(Method::PUT, Some("bucket"), Some("1234+-/123/1.txt"))
        .with_header("x-oss-head1", "value")
        .with_header("abc", "value")
        .with_header("ZAbc", "value")
        .with_header("XYZ", "value")
        .with_header("content-type", "text/plain")
        .with_header("x-oss-content-sha256", "UNSIGNED-PAYLOAD")
        .with_query("param1", "value1")
        .with_query("+param1", "value3")
        .with_query("|param1", "value4")
        .with_query("+param2", "")
        .with_query("|param2", "")
        .with_query("param2", "")
}

#[test]
fn v4_vector_header_auth() {
    let signer = V4Signer::new("cn-hangzhou");
    let mut request = v4_request();
    signer
        .sign(
            &mut request,
            &Credentials::new("ak", "sk"),
            at(1_702_743_657),
        )
        .unwrap();
    assert_eq!(
        authorization(&request),
        "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,\
         Signature=e21d18daa82167720f9b1047ae7e7f1ce7cb77a31e8203a7d5f4624fa0284afe"
    );
    assert_eq!(
        signer.canonical_request(&request),
        "PUT\n/bucket/1234%2B-/123/1.txt\n\
         %2Bparam1=value3&%2Bparam2&%7Cparam1=value4&%7Cparam2&param1=value1&param2\n\
         content-type:text/plain\nx-oss-content-sha256:UNSIGNED-PAYLOAD\nx-oss-date:20231216T162057Z\nx-oss-head1:value\n\
         \n\nUNSIGNED-PAYLOAD"
    );
    let verified = verify(&request, secrets, at(1_702_743_657)).unwrap();
    assert_eq!(verified.version, SignatureVersion::V4);
    assert_eq!(verified.region.as_deref(), Some("cn-hangzhou"));
    assert_eq!(verified.request_time, at(1_702_743_657));
}

#[test]
fn v4_vector_header_auth_with_security_token() {
    let mut request = v4_request();
    let creds = Credentials::new("ak", "sk").with_security_token("token");
    V4Signer::new("cn-hangzhou")
        .sign(&mut request, &creds, at(1_702_784_856))
        .unwrap();
    assert_eq!(
        authorization(&request),
        "OSS4-HMAC-SHA256 Credential=ak/20231217/cn-hangzhou/oss/aliyun_v4_request,\
         Signature=b94a3f999cf85bcdc00d332fbd3734ba03e48382c36fa4d5af5df817395bd9ea"
    );
    let verified = verify(&request, secrets, at(1_702_784_856)).unwrap();
    assert_eq!(verified.security_token.as_deref(), Some("token"));
}

#[test]
fn v4_vector_additional_headers() {
    const EXPECTED: &str = "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request,\
        AdditionalHeaders=abc;zabc,\
        Signature=4a4183c187c07c8947db7620deb0a6b38d9fbdd34187b6dbaccb316fa251212f";
    let lists: [&[&str]; 2] = [
        &["ZAbc", "abc"],
        // Default-signed and absent headers drop out of the list.
        &["x-oss-no-exist", "ZAbc", "x-oss-head1", "abc"],
    ];
    for list in lists {
        let mut request = v4_request();
        V4Signer::new("cn-hangzhou")
            .with_additional_headers(list.iter().copied())
            .sign(
                &mut request,
                &Credentials::new("ak", "sk"),
                at(1_702_747_512),
            )
            .unwrap();
        assert_eq!(authorization(&request), EXPECTED, "list {list:?}");
        verify(&request, secrets, at(1_702_747_512)).unwrap();

        // An additional header is signed: changing it breaks the signature.
        request
            .headers
            .insert("abc", http::HeaderValue::from_static("other"));
        assert!(matches!(
            verify(&request, secrets, at(1_702_747_512)),
            Err(VerifyError::SignatureDoesNotMatch { .. })
        ));
    }
}

#[test]
fn v4_authorization_in_oss2_layout_verifies() {
    // oss2 writes ", " between fields and puts AdditionalHeaders last.
    let mut request = v4_request();
    V4Signer::new("cn-hangzhou")
        .with_additional_headers(["abc", "zabc"])
        .sign(
            &mut request,
            &Credentials::new("ak", "sk"),
            at(1_702_747_512),
        )
        .unwrap();
    let oss2_layout = "OSS4-HMAC-SHA256 Credential=ak/20231216/cn-hangzhou/oss/aliyun_v4_request, \
         Signature=4a4183c187c07c8947db7620deb0a6b38d9fbdd34187b6dbaccb316fa251212f, \
         AdditionalHeaders=abc;zabc";
    request
        .headers
        .insert("authorization", http::HeaderValue::from_static(oss2_layout));
    verify(&request, secrets, at(1_702_747_512)).unwrap();
}
