//! Signing then verifying: what is signed, what is not, and how bad requests are refused.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Method};
use ossup_sign::{
    Credentials, MAX_V4_EXPIRY, RequestParts, SignError, SignatureVersion, Signer, V1Signer,
    V4Signer, Verified, VerifyError, presign_v1, presign_v4, verify,
};
use proptest::prelude::*;

const AK: &str = "LTAI-test-key";
const SK: &str = "test secret";

fn secrets(id: &str) -> Option<String> {
    (id == AK).then(|| SK.to_owned())
}

fn signer(version: SignatureVersion) -> Box<dyn Signer> {
    match version {
        SignatureVersion::V1 => Box::new(V1Signer),
        SignatureVersion::V4 => Box::new(V4Signer::new("cn-hangzhou")),
    }
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

fn signed(version: SignatureVersion, mut request: RequestParts) -> RequestParts {
    signer(version)
        .sign(&mut request, &Credentials::new(AK, SK), now())
        .unwrap();
    request
}

fn upload_part() -> RequestParts {
    RequestParts::new(Method::PUT, Some("bucket"), Some("dir/key.bin"))
        .with_query("partNumber", "3")
        .with_query("uploadId", "0004B9")
        .with_header("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")
}

fn is_mismatch(result: &Result<Verified, VerifyError>) -> bool {
    matches!(result, Err(VerifyError::SignatureDoesNotMatch { .. }))
}

const VERSIONS: [SignatureVersion; 2] = [SignatureVersion::V1, SignatureVersion::V4];

#[test]
fn skew_of_fourteen_minutes_passes_and_sixteen_is_refused() {
    for version in VERSIONS {
        let request = signed(version, upload_part());
        for sign in [1i64, -1] {
            let shift = |minutes: u64| {
                let d = Duration::from_secs(minutes * 60);
                if sign > 0 { now() + d } else { now() - d }
            };
            verify(&request, secrets, shift(14)).unwrap();
            match verify(&request, secrets, shift(16)) {
                Err(VerifyError::RequestTimeTooSkewed {
                    request_time,
                    server_time,
                }) => {
                    assert_eq!(request_time, now());
                    assert_eq!(server_time, shift(16));
                }
                other => panic!("{version:?}: expected RequestTimeTooSkewed, got {other:?}"),
            }
        }
    }
}

#[test]
fn unknown_access_key_is_refused_by_name() {
    for version in VERSIONS {
        let request = signed(version, upload_part());
        assert_eq!(
            verify(&request, |_| None, now()),
            Err(VerifyError::UnknownAccessKeyId(AK.to_owned()))
        );
    }
}

#[test]
fn unsigned_request_is_reported_as_such() {
    assert_eq!(
        verify(&upload_part(), secrets, now()),
        Err(VerifyError::MissingAuthorization)
    );
}

#[test]
fn malformed_authorization_headers_are_refused_without_panic() {
    let headers: [&[u8]; 9] = [
        b"",
        b"OSS",
        b"OSS a",
        b"OSS4-HMAC-SHA256 garbage",
        b"OSS4-HMAC-SHA256 Credential=ak/20250615/cn-hangzhou/oss/aliyun_v4_request",
        b"OSS4-HMAC-SHA256 Credential=,Signature=",
        b"Bearer token",
        b"OSS \xff\xfe:sig",
        b"OSS4-HMAC-SHA256 Credential=/////,Signature=00",
    ];
    for version in VERSIONS {
        for header in headers {
            let mut request = signed(version, upload_part());
            request
                .headers
                .insert("authorization", HeaderValue::from_bytes(header).unwrap());
            match verify(&request, secrets, now()) {
                Err(VerifyError::MalformedAuthorization(reason)) => assert!(!reason.is_empty()),
                other => panic!(
                    "{:?}: expected MalformedAuthorization, got {other:?}",
                    String::from_utf8_lossy(header)
                ),
            }
        }
    }
}

#[test]
fn missing_or_garbled_dates_are_reported() {
    // V1 without any date header.
    let mut request = signed(SignatureVersion::V1, upload_part());
    request.headers.remove("date");
    assert!(matches!(
        verify(&request, secrets, now()),
        Err(VerifyError::MissingDate(_))
    ));
    // V1 with a date that is not one.
    request
        .headers
        .insert("date", HeaderValue::from_static("yesterday"));
    match verify(&request, secrets, now()) {
        Err(VerifyError::MissingDate(reason)) => assert!(reason.contains("yesterday")),
        other => panic!("expected MissingDate, got {other:?}"),
    }
    // V4 without x-oss-date, then with a V1-style date in it.
    let mut request = signed(SignatureVersion::V4, upload_part());
    request.headers.remove("x-oss-date");
    assert!(matches!(
        verify(&request, secrets, now()),
        Err(VerifyError::MissingDate(_))
    ));
    request.headers.insert(
        "x-oss-date",
        HeaderValue::from_static("Wed, 28 Dec 2022 10:27:41 GMT"),
    );
    assert!(matches!(
        verify(&request, secrets, now()),
        Err(VerifyError::MissingDate(_))
    ));
}

#[test]
fn mismatch_reports_what_the_server_signed() {
    let mut request = signed(SignatureVersion::V1, upload_part());
    request.key = Some("other".to_owned());
    match verify(&request, secrets, now()) {
        Err(VerifyError::SignatureDoesNotMatch {
            string_to_sign,
            canonical_request,
            access_key_id,
            signature_provided,
        }) => {
            assert_eq!(string_to_sign, V1Signer::string_to_sign(&request));
            assert_eq!(canonical_request, None);
            assert_eq!(access_key_id, AK);
            assert!(
                request.headers["authorization"]
                    .to_str()
                    .unwrap()
                    .ends_with(&signature_provided)
            );
        }
        other => panic!("expected SignatureDoesNotMatch, got {other:?}"),
    }

    let v4 = V4Signer::new("cn-hangzhou");
    let mut request = signed(SignatureVersion::V4, upload_part());
    request.key = Some("other".to_owned());
    match verify(&request, secrets, now()) {
        Err(VerifyError::SignatureDoesNotMatch {
            string_to_sign,
            canonical_request,
            ..
        }) => {
            assert_eq!(string_to_sign, v4.string_to_sign(&request));
            assert_eq!(canonical_request, Some(v4.canonical_request(&request)));
        }
        other => panic!("expected SignatureDoesNotMatch, got {other:?}"),
    }
}

#[test]
fn v1_accepts_a_signature_over_x_oss_date_when_date_differs() {
    // oss2 fills the date slot from x-oss-date even when it sends Date too.
    let oss_date = "Sun, 15 Jun 2025 15:06:40 GMT";
    let mut request = upload_part().with_header("x-oss-date", oss_date);
    let signature = V1Signer::signature(&request, SK);
    request.headers.insert(
        "date",
        HeaderValue::from_static("Sun, 15 Jun 2025 15:06:41 GMT"),
    );
    request.headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("OSS {AK}:{signature}")).unwrap(),
    );
    let verified = verify(&request, secrets, now()).unwrap();
    assert_eq!(
        verified.request_time,
        UNIX_EPOCH + Duration::from_secs(1_750_000_000)
    );
}

#[test]
fn v1_signer_keeps_a_date_the_request_already_has() {
    let request = signed(
        SignatureVersion::V1,
        upload_part().with_header("date", "Sun, 15 Jun 2025 15:00:00 GMT"),
    );
    assert_eq!(request.headers["date"], "Sun, 15 Jun 2025 15:00:00 GMT");
    verify(&request, secrets, now()).unwrap();
}

#[test]
fn v4_signer_keeps_a_payload_hash_the_request_already_has() {
    let hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let request = signed(
        SignatureVersion::V4,
        upload_part().with_header("x-oss-content-sha256", hash),
    );
    assert_eq!(request.headers["x-oss-content-sha256"], hash);
    let canonical = V4Signer::new("cn-hangzhou").canonical_request(&request);
    assert!(canonical.ends_with(&format!("\n{hash}")));
    verify(&request, secrets, now()).unwrap();
}

#[test]
fn v4_canonical_uri_of_bucket_and_service_requests() {
    let v4 = V4Signer::new("cn-hangzhou");
    let bucket = signed(
        SignatureVersion::V4,
        RequestParts::new(Method::GET, Some("bucket"), None::<&str>).with_query("uploads", ""),
    );
    assert!(
        v4.canonical_request(&bucket)
            .starts_with("GET\n/bucket/\nuploads\n")
    );
    let service = signed(
        SignatureVersion::V4,
        RequestParts::new(Method::GET, None::<&str>, None::<&str>),
    );
    assert!(v4.canonical_request(&service).starts_with("GET\n/\n\n"));
    verify(&bucket, secrets, now()).unwrap();
    verify(&service, secrets, now()).unwrap();
}

#[test]
fn v1_resource_of_bucket_and_service_requests() {
    let bucket = RequestParts::new(Method::GET, Some("bucket"), None::<&str>)
        .with_query("uploads", "")
        .with_query("max-uploads", "10");
    assert!(V1Signer::string_to_sign(&bucket).ends_with("\n/bucket/?uploads"));
    let service = RequestParts::new(Method::GET, None::<&str>, None::<&str>);
    assert!(V1Signer::string_to_sign(&service).ends_with("\n\n/"));
}

#[test]
fn v1_leaves_list_paging_parameters_unsigned() {
    let request = RequestParts::new(Method::GET, Some("b"), Some("k"))
        .with_query("uploadId", "u")
        .with_query("max-parts", "1000")
        .with_query("part-number-marker", "")
        .with_query("encoding-type", "url");
    assert!(V1Signer::string_to_sign(&request).ends_with("\n/b/k?uploadId=u"));
}

#[test]
fn security_token_is_signed_and_reported() {
    for version in VERSIONS {
        let mut request = upload_part();
        let creds = Credentials::new(AK, SK).with_security_token("sts-token");
        signer(version).sign(&mut request, &creds, now()).unwrap();
        assert_eq!(request.headers["x-oss-security-token"], "sts-token");
        let verified = verify(&request, secrets, now()).unwrap();
        assert_eq!(verified.security_token.as_deref(), Some("sts-token"));

        let mut changed = request.clone();
        changed.headers.insert(
            "x-oss-security-token",
            HeaderValue::from_static("other-token"),
        );
        assert!(
            is_mismatch(&verify(&changed, secrets, now())),
            "{version:?}"
        );
        let mut dropped = request;
        dropped.headers.remove("x-oss-security-token");
        assert!(
            is_mismatch(&verify(&dropped, secrets, now())),
            "{version:?}"
        );
    }
}

/// The official Python SDK V2 signs V1 requests without the token and sends it in a plain
/// `security-token` header; a V4 request must carry it signed, in `x-oss-security-token`.
#[test]
fn a_v1_token_may_come_in_the_python_sdk_v2_header() {
    for (version, reported) in [
        (SignatureVersion::V1, Some("sts-token")),
        (SignatureVersion::V4, None),
    ] {
        let mut request = upload_part();
        signer(version)
            .sign(&mut request, &Credentials::new(AK, SK), now())
            .unwrap();
        request
            .headers
            .insert("security-token", HeaderValue::from_static("sts-token"));
        let verified = verify(&request, secrets, now()).unwrap();
        assert_eq!(verified.security_token.as_deref(), reported, "{version:?}");
    }
}

/// Found by `cargo xtask fuzz` (target `signature_roundtrip`): a token that is not ASCII was
/// signed and sent, but the verifier reported none, so a server took it for a missing token.
#[test]
fn a_token_that_is_not_ascii_is_reported_as_sent() {
    for version in VERSIONS {
        let mut request = upload_part();
        let creds = Credentials::new(AK, SK).with_security_token("nh6\u{2bf}");
        signer(version).sign(&mut request, &creds, now()).unwrap();
        let verified = verify(&request, secrets, now()).unwrap();
        assert_eq!(
            verified.security_token.as_deref(),
            Some("nh6\u{2bf}"),
            "{version:?}"
        );

        let mut spaced = upload_part();
        let creds = Credentials::new(AK, SK).with_security_token(" sts-token\t");
        signer(version).sign(&mut spaced, &creds, now()).unwrap();
        let verified = verify(&spaced, secrets, now()).unwrap();
        assert_eq!(
            verified.security_token.as_deref(),
            Some("sts-token"),
            "{version:?}: HTTP drops the spaces around a value"
        );
    }
}

#[test]
fn non_utf8_header_values_are_signed_as_bytes() {
    for version in VERSIONS {
        let mut request = upload_part();
        request.headers.insert(
            "x-oss-meta-raw",
            HeaderValue::from_bytes(b"caf\xe9 \xff").unwrap(),
        );
        let request = signed(version, request);
        verify(&request, secrets, now()).unwrap();
        if version == SignatureVersion::V1 {
            assert!(
                V1Signer::string_to_sign(&request)
                    .contains("x-oss-meta-raw:caf\u{fffd} \u{fffd}\n")
            );
        }

        // Another invalid byte in the same place shows the same, but signs differently.
        let mut changed = request.clone();
        changed.headers.insert(
            "x-oss-meta-raw",
            HeaderValue::from_bytes(b"caf\xe8 \xff").unwrap(),
        );
        assert!(
            is_mismatch(&verify(&changed, secrets, now())),
            "{version:?}"
        );
    }
}

#[test]
fn credentials_http_cannot_carry_are_refused() {
    for version in VERSIONS {
        let creds = Credentials::new(AK, SK).with_security_token("line\nbreak");
        let mut request = upload_part();
        match signer(version).sign(&mut request, &creds, now()) {
            Err(SignError::InvalidHeader { name, .. }) => assert_eq!(name, "x-oss-security-token"),
            other => panic!("expected InvalidHeader, got {other:?}"),
        }
    }
}

#[test]
fn signing_before_1970_is_refused() {
    for version in VERSIONS {
        let mut request = upload_part();
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert!(matches!(
            signer(version).sign(&mut request, &Credentials::new(AK, SK), before),
            Err(SignError::InvalidTime(_))
        ));
    }
}

/// One signed part of a request to change.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    Method,
    Bucket,
    Key,
    SignedQuery,
    SignedHeader,
    ContentType,
    Secret,
    Date,
}

const TAMPERS: [Tamper; 8] = [
    Tamper::Method,
    Tamper::Bucket,
    Tamper::Key,
    Tamper::SignedQuery,
    Tamper::SignedHeader,
    Tamper::ContentType,
    Tamper::Secret,
    Tamper::Date,
];

/// Changes `part` of a signed request; returns the secret the verifier should use.
fn tamper(
    request: &mut RequestParts,
    part: Tamper,
    version: SignatureVersion,
    secret: &str,
) -> String {
    match part {
        Tamper::Method => {
            request.method = if request.method == Method::PUT {
                Method::POST
            } else {
                Method::PUT
            };
        }
        Tamper::Bucket => request.bucket.as_mut().unwrap().push('x'),
        Tamper::Key => request.key.as_mut().unwrap().push('x'),
        Tamper::SignedQuery => request
            .query
            .push(("versionId".to_owned(), "v-tampered".to_owned())),
        Tamper::SignedHeader => {
            request
                .headers
                .insert("x-oss-meta-tampered-", HeaderValue::from_static("1"));
        }
        Tamper::ContentType => {
            request.headers.insert(
                "content-type",
                HeaderValue::from_static("application/x-tampered"),
            );
        }
        Tamper::Secret => return format!("{secret}x"),
        Tamper::Date => {
            // One second later: still within the skew window, so only the signature can object.
            let later = now() + Duration::from_secs(1);
            match version {
                SignatureVersion::V1 => {
                    let value = httpdate::fmt_http_date(later);
                    request
                        .headers
                        .insert("date", HeaderValue::from_str(&value).unwrap());
                }
                SignatureVersion::V4 => {
                    let value = "20250615T150641Z"; // now() + 1 s
                    assert_eq!(request.headers["x-oss-date"], "20250615T150640Z");
                    request
                        .headers
                        .insert("x-oss-date", HeaderValue::from_static(value));
                }
            }
        }
    }
    secret.to_owned()
}

fn arb_request() -> impl Strategy<Value = RequestParts> {
    let method = prop::sample::select(vec![Method::PUT, Method::POST, Method::GET, Method::DELETE]);
    let bucket = "[a-z0-9][a-z0-9-]{2,20}";
    let key = "[a-zA-Z0-9 /%+?&=#._~\\-é中😀]{1,40}";
    let meta = prop::collection::vec(("[a-z0-9]{1,8}", "[!-~]([ -~]{0,14}[!-~])?"), 0..4);
    let signed_query = prop::collection::vec(
        (
            prop::sample::select(vec![
                "uploadId",
                "partNumber",
                "uploads",
                "acl",
                "sequential",
                "response-content-type",
                "x-oss-process",
            ]),
            "[ -~é/+%&=?]{0,12}",
        ),
        0..4,
    );
    let unsigned_query = prop::collection::vec(
        (
            prop::sample::select(vec![
                "max-parts",
                "part-number-marker",
                "encoding-type",
                "prefix",
            ]),
            "[0-9a-z]{0,6}",
        ),
        0..3,
    );
    (method, bucket, key, meta, signed_query, unsigned_query).prop_map(
        |(method, bucket, key, meta, signed_query, unsigned_query)| {
            let mut request = RequestParts::new(method, Some(bucket), Some(key));
            for (name, value) in meta {
                request = request.with_header(&format!("x-oss-meta-{name}"), &value);
            }
            for (name, value) in signed_query.into_iter().chain(unsigned_query) {
                request = request.with_query(name, value);
            }
            request
        },
    )
}

fn arb_version() -> impl Strategy<Value = SignatureVersion> {
    prop::sample::select(VERSIONS.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        rng_algorithm: prop::test_runner::RngAlgorithm::ChaCha,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn signed_requests_verify_and_any_signed_change_breaks_them(
        request in arb_request(),
        version in arb_version(),
        access_key_id in "[A-Za-z0-9]{1,24}",
        secret in "[ -~]{1,30}",
        token in prop::option::of("[A-Za-z0-9+/=]{1,40}"),
    ) {
        let mut creds = Credentials::new(access_key_id.clone(), secret.clone());
        if let Some(token) = &token {
            creds = creds.with_security_token(token.clone());
        }
        let mut request = request;
        signer(version).sign(&mut request, &creds, now()).unwrap();
        let lookup = |secret: String| {
            let access_key_id = access_key_id.clone();
            move |id: &str| (id == access_key_id).then(|| secret.clone())
        };

        let verified = verify(&request, lookup(secret.clone()), now()).unwrap();
        prop_assert_eq!(verified.access_key_id, creds.access_key_id());
        prop_assert_eq!(verified.version, version);
        prop_assert_eq!(verified.request_time, now());
        prop_assert_eq!(verified.security_token, token);
        prop_assert_eq!(
            verified.region.as_deref(),
            (version == SignatureVersion::V4).then_some("cn-hangzhou")
        );

        for part in TAMPERS {
            let mut changed = request.clone();
            let secret = tamper(&mut changed, part, version, &secret);
            let result = verify(&changed, lookup(secret), now());
            prop_assert!(is_mismatch(&result), "{:?} {:?}: {:?}", version, part, result);
        }

        // Headers neither version signs, and (for V1) list paging parameters, can change freely.
        let mut unsigned = request.clone();
        unsigned.headers.insert("user-agent", HeaderValue::from_static("changed/1.0"));
        if version == SignatureVersion::V1 {
            unsigned.query.push(("max-parts".to_owned(), "7".to_owned()));
            unsigned.query.push(("encoding-type".to_owned(), "url".to_owned()));
        }
        prop_assert!(verify(&unsigned, lookup(secret.clone()), now()).is_ok());

        // V4 signs every query parameter, V1 only the sub-resources.
        let mut paging = request.clone();
        paging.query.push(("max-parts".to_owned(), "7".to_owned()));
        let result = verify(&paging, lookup(secret), now());
        prop_assert_eq!(result.is_ok(), version == SignatureVersion::V1);
    }

    #[test]
    fn verify_never_panics_on_arbitrary_authorization(
        header in prop::collection::vec(prop_oneof![Just(b' '), Just(b','), Just(b'='), Just(b'/'), Just(b':'), 0x20u8..0x7f, 0x80u8..=0xff], 0..120),
        v4 in any::<bool>(),
    ) {
        let mut value = if v4 { b"OSS4-HMAC-SHA256 ".to_vec() } else { b"OSS ".to_vec() };
        value.extend(header);
        let mut request = signed(if v4 { SignatureVersion::V4 } else { SignatureVersion::V1 }, upload_part());
        request.headers.insert("authorization", HeaderValue::from_bytes(&value).unwrap());
        let result = verify(&request, secrets, now());
        prop_assert!(result.is_err());
    }
}

#[test]
fn a_presigned_url_is_valid_until_it_expires_for_its_method_and_resource_only() {
    let creds = Credentials::new(AK, SK);
    for version in VERSIONS {
        let mut request = RequestParts::new(Method::GET, Some("bucket"), Some("dir/key.bin"));
        match version {
            SignatureVersion::V1 => {
                presign_v1(&mut request, &creds, now() + Duration::from_secs(600)).unwrap();
            }
            SignatureVersion::V4 => {
                presign_v4(
                    &mut request,
                    &creds,
                    "cn-hangzhou",
                    now(),
                    Duration::from_secs(600),
                )
                .unwrap();
            }
        }
        assert!(request.headers.get("authorization").is_none());
        let verified = verify(&request, secrets, now() + Duration::from_secs(599)).unwrap();
        assert_eq!(verified.version, version);
        assert_eq!(verified.security_token, None);
        // No clock-skew check: a URL is used whenever its holder likes, until it expires.
        assert!(verify(&request, secrets, now() + Duration::from_secs(599)).is_ok());
        assert!(
            matches!(
                verify(&request, secrets, now() + Duration::from_secs(601)),
                Err(VerifyError::Expired { .. })
            ),
            "{version:?}"
        );

        let mut put = request.clone();
        put.method = Method::PUT;
        assert!(is_mismatch(&verify(&put, secrets, now())), "{version:?}");
        let mut other = request.clone();
        other.key = Some("dir/other.bin".to_owned());
        assert!(is_mismatch(&verify(&other, secrets, now())), "{version:?}");
        let mut longer = request.clone();
        for (name, value) in &mut longer.query {
            if name == "Expires" || name == "x-oss-expires" {
                value.push('0');
            }
        }
        assert!(
            is_mismatch(&verify(&longer, secrets, now())),
            "{version:?}: a URL whose expiry was pushed back must not verify"
        );
    }
}

#[test]
fn a_presigned_url_of_temporary_credentials_carries_its_token_signed() {
    let creds = Credentials::new(AK, SK).with_security_token("sts-token");
    let mut v1 = RequestParts::new(Method::PUT, Some("bucket"), Some("k"));
    presign_v1(&mut v1, &creds, now() + Duration::from_secs(60)).unwrap();
    let mut v4 = RequestParts::new(Method::PUT, Some("bucket"), Some("k"));
    presign_v4(
        &mut v4,
        &creds,
        "cn-hangzhou",
        now(),
        Duration::from_secs(60),
    )
    .unwrap();
    for (request, param) in [(v1, "security-token"), (v4, "x-oss-security-token")] {
        assert_eq!(request.query_value(param), Some("sts-token"));
        let verified = verify(&request, secrets, now()).unwrap();
        assert_eq!(verified.security_token.as_deref(), Some("sts-token"));
        let mut swapped = request.clone();
        for (name, value) in &mut swapped.query {
            if name == param {
                *value = "other-token".to_owned();
            }
        }
        assert!(is_mismatch(&verify(&swapped, secrets, now())), "{param}");
    }
}

#[test]
fn a_v4_presigned_url_is_valid_for_at_most_seven_days() {
    let creds = Credentials::new(AK, SK);
    let mut request = RequestParts::new(Method::GET, Some("bucket"), Some("k"));
    assert!(
        presign_v4(
            &mut request,
            &creds,
            "cn-hangzhou",
            now(),
            MAX_V4_EXPIRY + Duration::from_secs(1)
        )
        .is_err()
    );
    presign_v4(&mut request, &creds, "cn-hangzhou", now(), MAX_V4_EXPIRY).unwrap();
    assert!(verify(&request, secrets, now() + MAX_V4_EXPIRY).is_ok());
    for (name, value) in &mut request.query {
        if name == "x-oss-expires" {
            *value = (MAX_V4_EXPIRY.as_secs() + 1).to_string();
        }
    }
    assert!(matches!(
        verify(&request, secrets, now()),
        Err(VerifyError::MalformedAuthorization(_))
    ));
}
