//! `Arc` and `Box` of a signer or a credentials provider are one too, and forward every method:
//! what lets a caller share one signer or provider between clients and keep a handle on it.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Method;
use ossup_sign::{
    Credentials, CredentialsError, CredentialsProvider, RequestParts, SignatureVersion, Signer,
    V1Signer, V4Signer,
};

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

fn signed_by(signer: &impl Signer) -> RequestParts {
    let mut request = RequestParts::new(Method::PUT, Some("bucket"), Some("dir/key.bin"))
        .with_query("partNumber", "1")
        .with_query("uploadId", "0004B9");
    signer
        .sign(
            &mut request,
            &Credentials::new("ak", "sk").with_security_token("token"),
            now(),
        )
        .unwrap();
    request
}

#[test]
fn a_shared_or_boxed_signer_signs_exactly_as_the_signer_itself() {
    let v4 = V4Signer::new("cn-hangzhou");
    let expected = signed_by(&v4);
    assert_eq!(signed_by(&Arc::new(v4.clone())), expected);
    let boxed: Box<dyn Signer> = Box::new(v4.clone());
    assert_eq!(signed_by(&boxed), expected);
    let shared: Arc<dyn Signer> = Arc::new(v4);
    assert_eq!(signed_by(&shared), expected);
    assert_eq!(shared.version(), SignatureVersion::V4);

    assert_eq!(signed_by(&Arc::new(V1Signer)), signed_by(&V1Signer));
    assert_eq!(Box::new(V1Signer).version(), SignatureVersion::V1);
}

/// Answers `credentials` with one key and `refresh` with another, so a wrapper that forgot to
/// forward `refresh` (and fell back to `credentials`) shows.
#[derive(Debug)]
struct Rotates;

#[async_trait::async_trait]
impl CredentialsProvider for Rotates {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        Ok(Credentials::new("cached", "sk"))
    }

    async fn refresh(&self) -> Result<Credentials, CredentialsError> {
        Ok(Credentials::new("refreshed", "sk"))
    }
}

async fn key_ids(provider: &impl CredentialsProvider) -> (String, String) {
    let current = provider.credentials().await.unwrap();
    let fresh = provider.refresh().await.unwrap();
    (
        current.access_key_id().to_owned(),
        fresh.access_key_id().to_owned(),
    )
}

#[tokio::test]
async fn a_shared_or_boxed_provider_forwards_credentials_and_refresh() {
    let expected = ("cached".to_owned(), "refreshed".to_owned());
    assert_eq!(key_ids(&Arc::new(Rotates)).await, expected);
    let boxed: Box<dyn CredentialsProvider> = Box::new(Rotates);
    assert_eq!(key_ids(&boxed).await, expected);
    let shared: Arc<dyn CredentialsProvider> = Arc::new(Rotates);
    assert_eq!(key_ids(&shared).await, expected);
}
