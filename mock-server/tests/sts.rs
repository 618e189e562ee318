//! Temporary (STS) credentials: the token must come with the key and match it, expired credentials
//! are refused, and only the actions of the credentials' policy are allowed; fresh credentials can be
//! issued while the server runs.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{BUCKET, Client, data};
use http::Method;
use oss_mock::{MockConfig, MockServer, StsCredential};

const STS_ID: &str = "STS.multipart";
const STS_SECRET: &str = "sts-secret";
const STS_TOKEN: &str = "token-1";

/// Credentials allowed the multipart upload actions only.
fn multipart_only(token: &str) -> StsCredential {
    StsCredential::new(STS_ID, STS_SECRET, token)
        .allowing(["oss:PutObject", "oss:ListParts", "oss:AbortMultipartUpload"])
        .unwrap()
}

async fn server_with(sts: StsCredential) -> MockServer {
    MockServer::start(MockConfig::default().with_bucket(BUCKET).with_sts(sts))
        .await
        .expect("mock server starts")
}

fn sts_client(server: &MockServer, token: &str) -> Client {
    Client::with_key(server, STS_ID, STS_SECRET).with_token(token)
}

/// Initiate, two parts, ListParts, Complete; returns the object's bytes.
async fn multipart_upload(client: &Client, key: &str) -> Vec<u8> {
    let first = data(1, 102_400);
    let second = data(2, 1000);
    let id = client.initiate(key).await;
    let mut parts = Vec::new();
    for (n, body) in [(1, &first), (2, &second)] {
        let r = client.upload_part(key, &id, n, body).await.ok();
        parts.push((n, r.header("etag").unwrap().to_owned()));
    }
    assert_eq!(client.list_parts(key, &id, &[]).await.parts.len(), 2);
    client.complete(key, &id, &parts).await.ok();
    [first, second].concat()
}

#[tokio::test]
async fn sts_credentials_with_a_multipart_policy_upload_and_abort_with_v1_and_v4() {
    let server = server_with(multipart_only(STS_TOKEN)).await;
    for (name, client) in [
        ("v1", sts_client(&server, STS_TOKEN)),
        ("v4", sts_client(&server, STS_TOKEN).v4("cn-hangzhou")),
    ] {
        let key = format!("{name}/object");
        let bytes = multipart_upload(&client, &key).await;
        let got = Client::new(&server).get(&key).await.ok();
        assert_eq!(&got.body[..], &bytes[..], "{name}");

        client
            .req(Method::PUT, &format!("{name}/small"))
            .body("small")
            .send()
            .await
            .ok();
        let id = client.initiate(&format!("{name}/aborted")).await;
        client
            .req(Method::DELETE, &format!("{name}/aborted"))
            .query("uploadId", &id)
            .send()
            .await
            .ok();
    }
}

#[tokio::test]
async fn an_action_outside_the_policy_is_access_denied_naming_the_action() {
    let server = server_with(multipart_only(STS_TOKEN)).await;
    Client::new(&server)
        .req(Method::PUT, "k")
        .body("x")
        .send()
        .await
        .ok();
    let client = sts_client(&server, STS_TOKEN);
    for (request, action) in [
        (client.req(Method::GET, "k"), "oss:GetObject"),
        (client.req(Method::DELETE, "k"), "oss:DeleteObject"),
        (
            client.req(Method::GET, "").query("uploads", ""),
            "oss:ListMultipartUploads",
        ),
        (client.req(Method::GET, ""), "oss:ListObjects"),
    ] {
        let err = request.send().await.expect_error(403, "AccessDenied");
        assert_eq!(err.field("AuthAction"), Some(action));
        assert!(err.message.contains(action), "{}", err.message);
    }
    // HEAD answers the status alone.
    let head = client.req(Method::HEAD, "k").send().await;
    assert_eq!(head.status.as_u16(), 403);
    // Nothing was deleted.
    Client::new(&server).get("k").await.ok();
}

#[tokio::test]
async fn an_expired_token_is_security_token_expired() {
    let expired = multipart_only(STS_TOKEN).expiring_at(UNIX_EPOCH + Duration::from_secs(1_000));
    let server = server_with(expired).await;
    for client in [
        sts_client(&server, STS_TOKEN),
        sts_client(&server, STS_TOKEN).v4("cn-hangzhou"),
    ] {
        let r = client
            .req(Method::POST, "k")
            .query("uploads", "")
            .send()
            .await;
        let err = r.expect_error(403, "SecurityTokenExpired");
        assert_eq!(err.field("Expiration"), Some("1970-01-01T00:16:40.000Z"));
    }
}

#[tokio::test]
async fn a_token_that_is_not_the_keys_is_invalid_security_token() {
    let server = server_with(multipart_only(STS_TOKEN)).await;
    for client in [
        sts_client(&server, "another-token"),
        sts_client(&server, "another-token").v4("cn-hangzhou"),
    ] {
        client
            .req(Method::PUT, "k")
            .body("x")
            .send()
            .await
            .expect_error(403, "InvalidSecurityToken");
    }
    let head = Client::new(&server).req(Method::HEAD, "k").send().await;
    assert_eq!(head.status.as_u16(), 404, "nothing stored");
}

#[tokio::test]
async fn a_temporary_key_without_its_token_is_invalid_access_key_id() {
    let server = server_with(multipart_only(STS_TOKEN)).await;
    let client = Client::with_key(&server, STS_ID, STS_SECRET);
    let err = client
        .req(Method::PUT, "k")
        .body("x")
        .send()
        .await
        .expect_error(403, "InvalidAccessKeyId");
    assert_eq!(err.field("OSSAccessKeyId"), Some(STS_ID));
    assert!(
        err.message.contains("x-oss-security-token"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn a_wrong_secret_for_a_temporary_key_is_signature_does_not_match() {
    let server = server_with(multipart_only(STS_TOKEN)).await;
    Client::with_key(&server, STS_ID, "not-the-secret")
        .with_token(STS_TOKEN)
        .req(Method::PUT, "k")
        .body("x")
        .send()
        .await
        .expect_error(403, "SignatureDoesNotMatch");
}

#[tokio::test]
async fn credentials_replaced_mid_upload_refuse_the_old_token_and_accept_the_new() {
    let server = server_with(multipart_only(STS_TOKEN)).await;
    let old = sts_client(&server, STS_TOKEN);
    let key = "refreshed";
    let id = old.initiate(key).await;
    let first = data(3, 102_400);
    let etag1 = old
        .upload_part(key, &id, 1, &first)
        .await
        .ok()
        .header("etag")
        .unwrap()
        .to_owned();

    // The old credentials expire; the part is refused.
    server.set_sts_credential(multipart_only(STS_TOKEN).expiring_at(SystemTime::now()));
    old.upload_part(key, &id, 2, b"tail")
        .await
        .expect_error(403, "SecurityTokenExpired");

    // A fresh token for the same key: the old token is not it, the new one finishes the upload.
    server.set_sts_credential(multipart_only("token-2"));
    old.upload_part(key, &id, 2, b"tail")
        .await
        .expect_error(403, "InvalidSecurityToken");
    let new = sts_client(&server, "token-2");
    let etag2 = new
        .upload_part(key, &id, 2, b"tail")
        .await
        .ok()
        .header("etag")
        .unwrap()
        .to_owned();
    new.complete(key, &id, &[(1, etag1), (2, etag2)]).await.ok();
    let got = Client::new(&server).get(key).await.ok();
    assert_eq!(&got.body[..], &[&first[..], b"tail"].concat()[..]);

    assert!(server.remove_sts_credential(STS_ID));
    new.req(Method::PUT, "after")
        .body("x")
        .send()
        .await
        .expect_error(403, "InvalidAccessKeyId");
}

#[tokio::test]
async fn permanent_keys_still_work_beside_temporary_ones() {
    let server = server_with(multipart_only(STS_TOKEN)).await;
    let client = Client::new(&server);
    let bytes = multipart_upload(&client, "permanent").await;
    assert_eq!(&client.get("permanent").await.ok().body[..], &bytes[..]);
}

#[tokio::test]
async fn the_binary_takes_sts_credentials_and_refuses_a_bad_spec() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oss-mock"))
        .args(["--listen", "127.0.0.1:0", "--bucket", BUCKET])
        .args(["--sts", "STS.bin:bin-secret:bin-token::oss:PutObject"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("oss-mock starts");
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut first,
    )
    .unwrap();
    let authority = first
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("first line is {first:?}"))
        .to_owned();
    let client = Client::at(&authority, "STS.bin", "bin-secret").with_token("bin-token");
    client.req(Method::PUT, "k").body("x").send().await.ok();
    client
        .req(Method::GET, "k")
        .send()
        .await
        .expect_error(403, "AccessDenied");
    child.kill().unwrap();
    child.wait().unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_oss-mock"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--sts",
            "id:secret:token:oss:PutObjekt",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown RAM action"), "{stderr}");
}
