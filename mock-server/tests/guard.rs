//! The guards of a mock that may be reachable by others: the control routes' token, authentication
//! before fault rules, V4 scopes, keys an XML listing cannot carry, callbacks from a server listening
//! beyond loopback, secrets kept off the command line, and the public default key refused there.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

mod common;

use std::convert::Infallible;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use common::{BOUND, BUCKET, Client, eventually, server};
use hmac::{Hmac, Mac};
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use oss_mock::{FaultAction, FaultRule, MockConfig, MockServer};
use ossup_proto::Api;
use ossup_sign::{RequestParts, V4Signer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `GET path` on `addr` with an optional `Authorization` value: status and body.
async fn control_get(addr: SocketAddr, path: &str, authorization: Option<&str>) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(value) = authorization {
        head.push_str(&format!("Authorization: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(BOUND, stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn with_a_control_token_the_control_routes_need_it() {
    let server = MockServer::start(MockConfig::default().with_control_token("s3cret-token"))
        .await
        .unwrap();
    let (status, body) = control_get(server.addr(), "/_mock/stats", None).await;
    assert_eq!(status, 403);
    let why = body["error"].as_str().unwrap();
    assert!(why.contains("Authorization: Bearer"), "{why}");
    let (status, body) =
        control_get(server.addr(), "/_mock/faults", Some("Bearer s3cret-tokeN")).await;
    assert_eq!(status, 403);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not this server's control token")
    );
    let (status, body) =
        control_get(server.addr(), "/_mock/stats", Some("Bearer s3cret-token")).await;
    assert_eq!(status, 200);
    assert!(body["requests"].is_object(), "{body}");
}

#[tokio::test]
async fn without_a_control_token_a_loopback_peer_is_answered() {
    let server = server().await;
    let (status, body) = control_get(server.addr(), "/_mock/stats", None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn an_unsigned_request_never_meets_a_fault_rule() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    server
        .set_faults(vec![
            FaultRule::new(FaultAction::ExpireUpload).api(Api::ListParts),
        ])
        .unwrap();
    // Before: anyone who could reach the server could abort another client's upload this way.
    let unsigned = client
        .req(Method::GET, "k")
        .query("uploadId", &id)
        .unsigned()
        .send()
        .await;
    unsigned.expect_error(403, "AccessDenied");
    let wrong_key = Client::with_key(&server, "test-ak", "not-the-secret")
        .req(Method::GET, "k")
        .query("uploadId", &id)
        .send()
        .await;
    wrong_key.expect_error(403, "SignatureDoesNotMatch");
    assert_eq!(server.open_uploads(), 1, "the upload is still there");
    assert_eq!(
        server.fault_report()[0].matched,
        0,
        "refused requests are not counted"
    );
    // The owner's signed request meets the rule.
    let signed = client
        .req(Method::GET, "k")
        .query("uploadId", &id)
        .send()
        .await;
    signed.expect_error(404, "NoSuchUpload");
    assert_eq!(server.open_uploads(), 0);
    assert_eq!(server.fault_report()[0].fired, 1);
}

/// A V4 `Authorization` for `parts` (whose `x-oss-date` is set) with the scope `date/region`, signed
/// correctly for that scope.
fn v4_with_scope(parts: &RequestParts, secret: &str, date: &str, region: &str) -> String {
    let hmac = |key: &[u8], data: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    };
    let datetime = parts.headers["x-oss-date"].to_str().unwrap();
    let scope = format!("{date}/{region}/oss/aliyun_v4_request");
    let canonical = V4Signer::new(region).canonical_request(parts);
    let string_to_sign = format!(
        "OSS4-HMAC-SHA256\n{datetime}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("aliyun_v4{secret}").as_bytes(), date.as_bytes());
    for part in [region, "oss", "aliyun_v4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    format!("OSS4-HMAC-SHA256 Credential=test-ak/{scope},Signature={signature}")
}

#[tokio::test]
async fn a_v4_scope_of_another_day_or_region_is_refused() {
    let server = server().await;
    let client = Client::new(&server);
    client.req(Method::PUT, "k").body("x").send().await.ok();
    let datetime = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap();
    let today = &datetime[..8];
    let send = |date: String, region: &'static str| {
        let client = client.clone();
        let datetime = datetime.clone();
        async move {
            let mut parts = RequestParts {
                method: Method::GET,
                bucket: Some(BUCKET.to_owned()),
                key: Some("k".to_owned()),
                query: Vec::new(),
                headers: http::HeaderMap::new(),
            };
            parts
                .headers
                .insert("x-oss-date", datetime.parse().unwrap());
            parts
                .headers
                .insert("x-oss-content-sha256", "UNSIGNED-PAYLOAD".parse().unwrap());
            let authorization = v4_with_scope(&parts, "test-sk", &date, region);
            client
                .req(Method::GET, "k")
                .unsigned()
                .header("x-oss-date", &datetime)
                .header("x-oss-content-sha256", "UNSIGNED-PAYLOAD")
                .header("authorization", &authorization)
                .send()
                .await
        }
    };
    // The forged header is right in every other respect: today's scope in the mock's region passes.
    send(today.to_owned(), "cn-hangzhou").await.ok();
    let err = send("19991231".to_owned(), "cn-hangzhou")
        .await
        .expect_error(400, "InvalidArgument");
    assert!(err.message.contains("19991231"), "{}", err.message);
    let err = send("19991231".to_owned(), "mars-1")
        .await
        .expect_error(400, "InvalidArgument");
    assert!(
        err.message.contains("not the date of x-oss-date"),
        "{}",
        err.message
    );
    let err = send(today.to_owned(), "mars-1")
        .await
        .expect_error(400, "InvalidArgument");
    assert!(err.message.contains("mars-1"), "{}", err.message);
    // The shared signer, for another region, is refused the same way.
    let other = Client::new(&server).v4("cn-beijing").get("k").await;
    let err = other.expect_error(400, "InvalidArgument");
    assert!(err.message.contains("cn-hangzhou"), "{}", err.message);
}

#[tokio::test]
async fn keys_an_xml_listing_cannot_carry_are_refused_when_written() {
    let server = server().await;
    let client = Client::new(&server);
    for key in ["nul\0key", "esc\u{1b}key", "cr\rkey", "nonchar\u{FFFF}"] {
        let put = client.req(Method::PUT, key).body("x").send().await;
        let err = put.expect_error(400, "InvalidObjectName");
        assert!(err.message.contains("control character"), "{}", err.message);
        let initiate = client
            .req(Method::POST, key)
            .query("uploads", "")
            .send()
            .await;
        initiate.expect_error(400, "InvalidObjectName");
        // Reading one is a missing key, in a well-formed error document.
        client.get(key).await.expect_error(404, "NoSuchKey");
    }
    // Tab and line feed survive XML; they stay legal.
    client
        .req(Method::PUT, "tab\tand\nlf")
        .body("x")
        .send()
        .await
        .ok();
    let listing = client.req(Method::GET, "").send().await.ok();
    let parsed: ossup_proto::xml::ListBucketResult =
        ossup_proto::xml::from_xml("ListBucketResult", &listing.text()).unwrap();
    assert_eq!(parsed.contents[0].key, "tab\tand\nlf");
    // A listing parameter the answer would echo is refused unless the answer is URL-encoded.
    let prefix = client
        .req(Method::GET, "")
        .query("prefix", "\u{1}")
        .send()
        .await;
    prefix.expect_error(400, "InvalidArgument");
    client
        .req(Method::GET, "")
        .query("prefix", "\u{1}")
        .query("encoding-type", "url")
        .send()
        .await
        .ok();
    client
        .req(Method::GET, "")
        .query("uploads", "")
        .query("key-marker", "\u{2}")
        .send()
        .await
        .expect_error(400, "InvalidArgument");
}

/// A callback server on 127.0.0.1 answering every POST `200 {"ok":true}`.
async fn callback_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|request: http::Request<hyper::body::Incoming>| async {
                    let _ = request.into_body().collect().await;
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from_static(b"{\"ok\":true}")))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A port on 127.0.0.1 nothing listens on.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

fn with_callback(req: common::Request, url: &str) -> common::Request {
    let callback = json!({"callbackUrl": url, "callbackBody": "object=${object}"});
    req.header("x-oss-callback", &BASE64.encode(callback.to_string()))
}

/// A server listening on every address (reached here through 127.0.0.1 only), with its own key.
async fn exposed(config: MockConfig) -> (MockServer, Client) {
    let config = MockConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        ..config
            .with_bucket(BUCKET)
            .with_credentials("own-ak", "own-sk")
    };
    let server = MockServer::start(config).await.unwrap();
    let client = Client::at(
        &format!("127.0.0.1:{}", server.addr().port()),
        "own-ak",
        "own-sk",
    );
    (server, client)
}

#[tokio::test]
async fn beyond_loopback_callbacks_to_loopback_must_be_allowed_and_failures_say_little() {
    let receiver = callback_server().await;
    let (_server, client) = exposed(MockConfig::default()).await;
    let refused = with_callback(client.req(Method::PUT, "a"), &format!("http://{receiver}/"))
        .body("x")
        .send()
        .await;
    let err = refused.expect_error(400, "InvalidArgument");
    assert!(err.message.contains("--callback-allow"), "{}", err.message);
    client.get("a").await.expect_error(404, "NoSuchKey");

    let (_server, client) = exposed(MockConfig::default().allow_callbacks_to("127.0.0.1")).await;
    let called = with_callback(client.req(Method::PUT, "b"), &format!("http://{receiver}/"))
        .body("x")
        .send()
        .await
        .ok();
    assert_eq!(called.text(), "{\"ok\":true}");
    let port = closed_port().await;
    let failed = with_callback(
        client.req(Method::PUT, "c"),
        &format!("http://127.0.0.1:{port}/"),
    )
    .body("x")
    .send()
    .await;
    let err = failed.expect_error(203, "CallbackFailed");
    assert_eq!(err.message, "callback failed", "no port-scanning detail");
}

#[tokio::test]
async fn on_loopback_a_failed_callback_still_says_why() {
    let server = server().await;
    let port = closed_port().await;
    let failed = with_callback(
        Client::new(&server).req(Method::PUT, "k"),
        &format!("http://127.0.0.1:{port}/"),
    )
    .body("x")
    .send()
    .await;
    let err = failed.expect_error(203, "CallbackFailed");
    assert!(err.message.contains("can not connect"), "{}", err.message);
}

#[tokio::test]
async fn beyond_loopback_the_public_default_key_is_refused() {
    let config = MockConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        ..MockConfig::default()
    };
    let err = MockServer::start(config).await.unwrap_err();
    assert!(err.to_string().contains("--access-key-id"), "{err}");
    let config = MockConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        ..MockConfig::default().with_credentials("test-ak", "test-sk")
    };
    assert!(
        MockServer::start(config).await.is_err(),
        "spelled out, it is still public"
    );
}

/// Runs `oss-mock ARGS` with `envs` and no OSS_MOCK_* from the caller; waits (bounded) for it to
/// exit and returns its status and stderr.
fn run_to_exit(args: &[&str], envs: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_oss-mock"));
    for var in [
        "OSS_MOCK_ACCESS_KEY_ID",
        "OSS_MOCK_ACCESS_KEY_SECRET",
        "OSS_MOCK_CONTROL_TOKEN",
        "OSS_MOCK_STS",
    ] {
        command.env_remove(var);
    }
    let mut child = command
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > BOUND {
            let _ = child.kill();
            panic!("oss-mock {args:?} did not exit within {BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

#[test]
fn bad_startup_values_are_clear_errors_not_panics() {
    let overflow = [("OSS_MOCK_STS", "id:secret:token:18446744073709551615")];
    for (args, envs, says) in [
        (
            &["--sts", "id:secret:token:18446744073709551615"][..],
            &[][..],
            "last time this system can represent",
        ),
        (
            &[][..],
            &overflow[..],
            "last time this system can represent",
        ),
        (
            &["--listen", "0.0.0.0:0"][..],
            &[][..],
            "--access-key-id and --access-key-secret",
        ),
        (
            &["--max-connections", "0"][..],
            &[][..],
            "--max-connections",
        ),
        (&["--header-timeout", "0"][..], &[][..], "--header-timeout"),
    ] {
        let (status, stderr) = run_to_exit(args, envs);
        assert!(!status.success(), "{args:?}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        if args.is_empty() {
            // From the environment: the secret was never on display, and stays so.
            assert!(!stderr.contains("secret:token"), "{envs:?}: {stderr}");
        }
    }
}

#[test]
fn help_never_shows_secrets_from_the_environment() {
    let output = Command::new(env!("CARGO_BIN_EXE_oss-mock"))
        .arg("--help")
        .env("OSS_MOCK_ACCESS_KEY_SECRET", "env-secret-value")
        .env("OSS_MOCK_CONTROL_TOKEN", "env-token-value")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("OSS_MOCK_ACCESS_KEY_SECRET"), "{help}");
    assert!(!help.contains("env-secret-value") && !help.contains("env-token-value"));
}

/// The binary started with `args` and `envs` (no other OSS_MOCK_* variable): the port its first
/// line names, and its stderr as it arrives. Killed when dropped.
struct Running {
    child: std::process::Child,
    port: u16,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_oss-mock"));
        for var in [
            "OSS_MOCK_ACCESS_KEY_ID",
            "OSS_MOCK_ACCESS_KEY_SECRET",
            "OSS_MOCK_CONTROL_TOKEN",
            "OSS_MOCK_STS",
        ] {
            command.env_remove(var);
        }
        let mut child = command
            .args(args)
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut first)
            .unwrap();
        let port = first
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("first line {first:?}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (pipe, seen) = (child.stderr.take().unwrap(), Arc::clone(&stderr));
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut seen = seen.lock().unwrap();
                seen.push_str(&line);
                seen.push('\n');
            }
        });
        Self {
            child,
            port,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn beyond_loopback_the_binary_says_what_is_exposed_and_takes_secrets_from_the_environment() {
    let running = Running::spawn(
        &["--listen", "0.0.0.0:0", "--bucket", BUCKET],
        &[
            ("OSS_MOCK_ACCESS_KEY_ID", "env-ak"),
            ("OSS_MOCK_ACCESS_KEY_SECRET", "env-secret-value"),
            ("OSS_MOCK_CONTROL_TOKEN", "ctl-7f3a"),
        ],
    );
    eventually("the exposure warning", || {
        running.stderr().contains("beyond loopback")
    })
    .await;
    let stderr = running.stderr();
    assert!(stderr.contains("the OSS API is reachable"), "{stderr}");
    assert!(stderr.contains("control token"), "{stderr}");
    assert!(stderr.contains("upload callbacks are refused"), "{stderr}");
    assert!(
        !stderr.contains("env-secret-value") && !stderr.contains("ctl-7f3a"),
        "{stderr}"
    );
    let authority = format!("127.0.0.1:{}", running.port);
    let client = Client::at(&authority, "env-ak", "env-secret-value");
    client.req(Method::PUT, "k").body("x").send().await.ok();
    let addr: SocketAddr = authority.parse().unwrap();
    assert_eq!(control_get(addr, "/_mock/stats", None).await.0, 403);
    assert_eq!(
        control_get(addr, "/_mock/stats", Some("Bearer ctl-7f3a"))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn temporary_credentials_come_from_a_file_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sts");
    std::fs::write(
        &file,
        "# temporary keys, one per line\nSTS.file:file-secret:file-token\n",
    )
    .unwrap();
    let running = Running::spawn(
        &[
            "--listen",
            "127.0.0.1:0",
            "--bucket",
            BUCKET,
            "--sts-file",
            file.to_str().unwrap(),
        ],
        &[],
    );
    let authority = format!("127.0.0.1:{}", running.port);
    Client::at(&authority, "STS.file", "file-secret")
        .with_token("file-token")
        .req(Method::PUT, "k")
        .body("x")
        .send()
        .await
        .ok();
    drop(running);
    let running = Running::spawn(
        &["--listen", "127.0.0.1:0", "--bucket", BUCKET],
        &[("OSS_MOCK_STS", "STS.env:env-secret:env-token STS.two:s:t")],
    );
    let authority = format!("127.0.0.1:{}", running.port);
    Client::at(&authority, "STS.env", "env-secret")
        .with_token("env-token")
        .req(Method::PUT, "k")
        .body("x")
        .send()
        .await
        .ok();
    assert!(!running.stderr().contains("env-secret"));
}
