//! Signatures: the verifier (V1, V4, and presigned URLs' query signatures) on
//! hostile requests, and requests signed by ossup's signers verified, then tampered with.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::Unstructured;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use oss_mock::StsCredential;
use oss_mock::fuzzing;
use ossup_sign::{Credentials, RequestParts, SignatureVersion, Signer, V1Signer, V4Signer, verify};

use crate::mock::check_refusal;

/// The permanent key the mock accepts in [`signature_verify`].
const ACCESS_KEY: (&str, &str) = ("test-ak", "test-sk");
/// The temporary credentials it accepts too.
const STS: (&str, &str, &str) = ("STS.fuzz", "sts-secret", "sts-token");
/// The server's region.
const REGION: &str = "cn-hangzhou";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(crate::NOW_UNIX)
}

/// Authenticates `data`, a request head, as the mock does at [`NOW_UNIX`](crate::NOW_UNIX) with
/// `test-ak`/`test-sk`, temporary credentials `STS.fuzz` and region `cn-hangzhou`. A refusal is an
/// error document the client reads; an accepted request is refused once a digit of its signature
/// changes.
pub fn signature_verify(data: &[u8]) {
    let Some(parts) = crate::request_head(data) else {
        return;
    };
    let authenticate = |parts: &http::request::Parts| {
        fuzzing::authenticate(
            parts,
            "localhost",
            &[(ACCESS_KEY.0.to_owned(), ACCESS_KEY.1.to_owned())],
            &[StsCredential::new(STS.0, STS.1, STS.2)],
            REGION,
            now(),
        )
    };
    match authenticate(&parts) {
        Ok(verified) => {
            let Some(tampered) = tamper(&parts.headers, data.len()) else {
                panic!("a request was accepted without a signature to check: {verified:?}");
            };
            let mut forged = parts.clone();
            forged.headers = tampered;
            assert!(
                authenticate(&forged).is_err(),
                "a tampered signature was accepted: {:?}",
                forged.headers.get(AUTHORIZATION)
            );
        }
        Err(refusal) => check_refusal(&refusal),
    }
}

/// Signs a request carved from `data` (method, bucket, key, query, headers, credentials, V1 or V4,
/// a time within the allowed skew) with ossup's signer; the verifier must accept it with the key
/// id, version, region and token it was signed with, and refuse it with a digit of the signature
/// changed, with another secret, and for another key.
pub fn signature_roundtrip(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(case) = Case::draw(&mut u) else {
        return;
    };
    let mut request = case.request.clone();
    let credentials = match &case.token {
        Some(token) => {
            Credentials::new(&case.access_key_id, &case.secret).with_security_token(token)
        }
        None => Credentials::new(&case.access_key_id, &case.secret),
    };
    let signed_at = now() + Duration::from_secs(case.skew_secs) - Duration::from_secs(899);
    let signer: Box<dyn Signer> = match &case.region {
        Some(region) => Box::new(V4Signer::new(region)),
        None => Box::new(V1Signer),
    };
    if signer.sign(&mut request, &credentials, signed_at).is_err() {
        // A header the signature must cover cannot be sent; the signer said so.
        return;
    }
    let secret_for = |id: &str| (id == case.access_key_id).then(|| case.secret.clone());
    let verified = verify(&request, secret_for, now()).unwrap_or_else(|e| {
        panic!("a request signed by {signer:?} was refused ({e}): {request:?}")
    });
    assert_eq!(verified.access_key_id, case.access_key_id);
    assert_eq!(verified.region, case.region);
    assert_eq!(
        verified.version,
        if case.region.is_some() {
            SignatureVersion::V4
        } else {
            SignatureVersion::V1
        }
    );
    // HTTP drops the spaces around a header value; the token is what is left.
    assert_eq!(
        verified.security_token.as_deref(),
        case.token.as_deref().map(str::trim_ascii)
    );

    let mut forged = request.clone();
    forged.headers =
        tamper(&request.headers, case.digit).expect("a signed request has a signature");
    assert!(
        verify(&forged, secret_for, now()).is_err(),
        "a tampered signature was accepted: {:?}",
        forged.headers.get(AUTHORIZATION)
    );
    let other_secret = |id: &str| (id == case.access_key_id).then(|| format!("{}x", case.secret));
    assert!(
        verify(&request, other_secret, now()).is_err(),
        "a signature was accepted with another secret: {request:?}"
    );
    let mut other_key = request.clone();
    other_key.key = Some(format!("{}x", request.key.as_deref().unwrap_or_default()));
    assert!(
        verify(&other_key, secret_for, now()).is_err(),
        "a signature was accepted for another key: {other_key:?}"
    );
}

/// `headers` with one digit of the `Authorization` signature (the `which`-th, wrapping) changed
/// to another value; `None` when there is no signature to change.
fn tamper(headers: &HeaderMap, which: usize) -> Option<HeaderMap> {
    const HEX: &[u8] = b"0123456789abcdef";
    const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let text = headers.get(AUTHORIZATION)?.to_str().ok()?;
    // V4 signatures are hex, which a verifier may read without case; V1 signatures are base64.
    let (start, alphabet, fold): (usize, &[u8], fn(u8) -> u8) = match text.find("Signature=") {
        Some(at) if text.trim_start().starts_with("OSS4-") => {
            (at + "Signature=".len(), HEX, |b| b.to_ascii_lowercase())
        }
        _ => (text.rfind(':')? + 1, BASE64, |b| b),
    };
    let bytes = text.as_bytes();
    let digits: Vec<usize> = (start..bytes.len())
        .take_while(|&i| bytes[i] != b',')
        .filter(|&i| alphabet.contains(&fold(bytes[i])))
        .collect();
    let at = *digits.get(which % digits.len().max(1))?;
    let index = alphabet.iter().position(|&d| d == fold(bytes[at]))?;
    let mut forged = bytes.to_vec();
    forged[at] = alphabet[(index + 1) % alphabet.len()];
    let mut headers = headers.clone();
    headers.insert(AUTHORIZATION, HeaderValue::from_bytes(&forged).ok()?);
    Some(headers)
}

/// A request to sign, with its credentials, carved from fuzzer bytes.
#[derive(Debug)]
struct Case {
    request: RequestParts,
    access_key_id: String,
    secret: String,
    token: Option<String>,
    /// `Some(region)` for V4, `None` for V1.
    region: Option<String>,
    /// Seconds from 899 s before the server's clock to 899 s after it.
    skew_secs: u64,
    /// Which signature digit to change.
    digit: usize,
}

/// Header names a request may carry, signed or not, by either version. Not `Date` or
/// `x-oss-date`: a signer keeps a date the caller set (it signs what is sent), and whether that
/// date is one is the verifier's to judge, which `signature_verify` fuzzes.
const HEADER_NAMES: &[&str] = &[
    "content-type",
    "content-md5",
    "content-length",
    "x-oss-meta-owner",
    "x-oss-storage-class",
    "x-oss-forbid-overwrite",
    "x-oss-callback",
    "x-oss-content-sha256",
    "host",
    "range",
];

impl Case {
    fn draw(u: &mut Unstructured<'_>) -> arbitrary::Result<Self> {
        let method = u
            .choose(&[
                Method::GET,
                Method::PUT,
                Method::POST,
                Method::DELETE,
                Method::HEAD,
            ])?
            .clone();
        let bucket: String = u.arbitrary()?;
        let key: Option<String> = u.arbitrary()?;
        let mut request = RequestParts::new(method, Some(bucket), key);
        request.query = u.arbitrary()?;
        let headers: Vec<(u8, String)> = u.arbitrary()?;
        request.headers = HeaderMap::new();
        for (name, value) in headers {
            let name =
                HeaderName::from_static(HEADER_NAMES[usize::from(name) % HEADER_NAMES.len()]);
            if let Ok(value) = HeaderValue::from_str(&value) {
                request.headers.append(name, value);
            }
        }
        let access_key_id = word(
            u,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.",
        )?;
        let secret: String = u.arbitrary()?;
        let token: Option<String> = u.arbitrary()?;
        let region = if u.arbitrary()? {
            Some(word(u, b"abcdefghijklmnopqrstuvwxyz0123456789-")?)
        } else {
            None
        };
        Ok(Self {
            request,
            access_key_id,
            secret,
            token,
            region,
            skew_secs: u.int_in_range(0..=1798)?,
            digit: u.arbitrary()?,
        })
    }
}

/// 1 to 24 characters of `alphabet`: key ids and regions are plain words.
fn word(u: &mut Unstructured<'_>, alphabet: &[u8]) -> arbitrary::Result<String> {
    let len = u.int_in_range(1..=24)?;
    (0..len)
        .map(|_| u.choose(alphabet).map(|&b| char::from(b)))
        .collect()
}
