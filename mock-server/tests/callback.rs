//! Upload callbacks against a callback server started here on 127.0.0.1: the body template filled in
//! and POSTed, the reply handed back; failures answered 203 CallbackFailed with the object kept;
//! callback URLs the mock may not call refused before anything is stored.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use common::{BUCKET, Client, complete_xml, data};
use http::{HeaderMap, Method};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use oss_mock::{MockConfig, MockServer};
use ossup_proto::checksum::{content_md5, crc64, md5};
use serde_json::{Value, json};

/// What the callback server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path_and_query: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How the callback server answers.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    body: String,
    delay: Duration,
}

impl Reply {
    fn json(body: Value) -> Self {
        Self {
            status: 200,
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
}

/// A callback server on 127.0.0.1 that records every request and answers each with its reply.
struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(reply: Reply) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (seen, reply) = (Arc::clone(&recorded), reply.clone());
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let (seen, reply) = (Arc::clone(&seen), reply.clone());
                            async move {
                                let (head, body) = request.into_parts();
                                let body = body.collect().await.unwrap().to_bytes();
                                seen.lock().unwrap().push(Seen {
                                    method: head.method,
                                    path_and_query: head
                                        .uri
                                        .path_and_query()
                                        .map(|p| p.to_string())
                                        .unwrap_or_default(),
                                    headers: head.headers,
                                    body,
                                });
                                tokio::time::sleep(reply.delay).await;
                                Ok::<_, Infallible>(
                                    http::Response::builder()
                                        .status(reply.status)
                                        .header("content-type", "application/json")
                                        .body(Full::new(Bytes::from(reply.body)))
                                        .unwrap(),
                                )
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, seen, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn encode(value: &Value) -> String {
    BASE64.encode(value.to_string())
}

async fn server_with(config: MockConfig) -> MockServer {
    MockServer::start(config.with_bucket(BUCKET))
        .await
        .expect("mock server starts")
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// Initiates `key` with `content_type` and uploads two parts; returns the upload id, the parts and
/// the object's bytes.
async fn two_parts(
    client: &Client,
    key: &str,
    content_type: &str,
) -> (String, Vec<(u32, String)>, Vec<u8>) {
    let r = client
        .req(Method::POST, key)
        .query("uploads", "")
        .header("content-type", content_type)
        .send()
        .await
        .ok();
    let id = ossup_proto::xml::from_xml::<ossup_proto::xml::InitiateMultipartUploadResult>(
        "InitiateMultipartUploadResult",
        &r.text(),
    )
    .unwrap()
    .upload_id;
    let first = data(11, 102_400);
    let second = data(12, 777);
    let mut parts = Vec::new();
    for (n, body) in [(1, &first), (2, &second)] {
        let r = client.upload_part(key, &id, n, body).await.ok();
        parts.push((n, r.header("etag").unwrap().to_owned()));
    }
    (id, parts, [first, second].concat())
}

#[tokio::test]
async fn complete_with_a_callback_posts_the_filled_in_form_body_and_answers_with_the_reply() {
    let receiver = Receiver::start(Reply::json(json!({"Status": "OK", "id": 7}))).await;
    let server = server_with(MockConfig::default()).await;
    let client = Client::new(&server);
    let key = "dir/report 1.csv";
    let (id, parts, bytes) = two_parts(&client, key, "text/csv").await;
    let callback = json!({
        "callbackUrl": receiver.url("/hook?source=oss"),
        "callbackHost": "app.example.com",
        "callbackBody": "bucket=${bucket}&object=${object}&etag=${etag}&size=${size}&mimeType=${mimeType}&crc64=${crc64}&op=${operation}&ip=${clientIp}&height=${imageInfo.height}&who=${x:user}&missing=${x:none}",
    });
    let r = client
        .req(Method::POST, key)
        .query("uploadId", &id)
        .header("x-oss-callback", &encode(&callback))
        .header(
            "x-oss-callback-var",
            &encode(&json!({"x:user": "ann & bob"})),
        )
        .body(complete_xml(&parts))
        .send()
        .await
        .ok();

    // The client gets the callback server's reply, with the object's headers.
    assert_eq!(r.status.as_u16(), 200);
    let reply: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(reply, json!({"Status": "OK", "id": 7}));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let etag = r.header("etag").unwrap().to_owned();
    let crc = crc64(&bytes);
    assert_eq!(
        r.header("x-oss-hash-crc64ecma"),
        Some(crc.to_string().as_str())
    );
    assert!(r.header("x-oss-request-id").is_some());

    // The callback server got one POST with the variables filled in.
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    let seen = &seen[0];
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.path_and_query, "/hook?source=oss");
    assert_eq!(seen.header("host"), Some("app.example.com"));
    assert_eq!(
        seen.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        seen.text(),
        format!(
            "bucket={BUCKET}&object=dir%2Freport%201.csv&etag={}&size={}&mimeType=text%2Fcsv&crc64={crc}&op=CompleteMultipartUpload&ip=127.0.0.1&height=&who=ann%20%26%20bob&missing=",
            etag.trim_matches('"'),
            bytes.len()
        )
    );

    // The object is stored.
    assert_eq!(&client.get(key).await.ok().body[..], &bytes[..]);
}

#[tokio::test]
async fn put_object_with_a_json_callback_quotes_text_and_writes_size_as_a_number() {
    let receiver = Receiver::start(Reply::json(json!({"ok": true}))).await;
    let server = server_with(MockConfig::default()).await;
    let client = Client::new(&server).v4("cn-hangzhou");
    let body = data(21, 5000);
    let callback = json!({
        "callbackUrl": receiver.url("/json"),
        "callbackBody": "{\"object\":${object},\"size\":${size},\"md5\":${contentMd5},\"op\":${operation},\"note\":${x:note},\"etag\":${etag}}",
        "callbackBodyType": "application/json",
    });
    let r = client
        .req(Method::PUT, "quote\"d.bin")
        .header("x-oss-callback", &encode(&callback))
        .header(
            "x-oss-callback-var",
            &encode(&json!({"x:note": "a \"quoted\" note"})),
        )
        .body(body.clone())
        .send()
        .await
        .ok();
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).unwrap(),
        json!({"ok": true})
    );
    assert_eq!(
        r.header("content-md5"),
        Some(content_md5(&md5(&body)).as_str())
    );

    let seen = &receiver.seen()[0];
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(
        seen.header("host"),
        Some(receiver.addr.to_string().as_str())
    );
    let sent: Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(
        sent,
        json!({
            "object": "quote\"d.bin",
            "size": 5000,
            "md5": content_md5(&md5(&body)),
            "op": "PutObject",
            "note": "a \"quoted\" note",
            "etag": r.header("etag").unwrap().trim_matches('"'),
        })
    );
    assert_eq!(&client.get("quote\"d.bin").await.ok().body[..], &body[..]);
}

#[tokio::test]
async fn a_callback_server_answering_500_gives_203_callback_failed_and_the_object_is_kept() {
    let receiver = Receiver::start(Reply {
        status: 500,
        body: "{}".into(),
        delay: Duration::ZERO,
    })
    .await;
    let server = server_with(MockConfig::default()).await;
    let client = Client::new(&server);
    let (id, parts, bytes) = two_parts(&client, "failed-callback", "text/plain").await;
    let callback = json!({"callbackUrl": receiver.url("/"), "callbackBody": "o=${object}"});
    let r = client
        .req(Method::POST, "failed-callback")
        .query("uploadId", &id)
        .header("x-oss-callback", &encode(&callback))
        .body(complete_xml(&parts))
        .send()
        .await;
    let err = r.expect_error(203, "CallbackFailed");
    assert_eq!(err.message, "Error status : 500.");
    assert!(r.header("etag").unwrap().ends_with("-2\""));
    assert_eq!(
        r.header("x-oss-hash-crc64ecma"),
        Some(crc64(&bytes).to_string().as_str())
    );
    assert_eq!(receiver.seen().len(), 1);
    assert_eq!(
        &client.get("failed-callback").await.ok().body[..],
        &bytes[..]
    );
    // The upload is completed: it is gone.
    client
        .req(Method::GET, "failed-callback")
        .query("uploadId", &id)
        .send()
        .await
        .expect_error(404, "NoSuchUpload");
}

#[tokio::test]
async fn a_reply_that_is_not_json_is_callback_failed() {
    let receiver = Receiver::start(Reply {
        status: 200,
        body: "thanks".into(),
        delay: Duration::ZERO,
    })
    .await;
    let server = server_with(MockConfig::default()).await;
    let client = Client::new(&server);
    let callback = json!({"callbackUrl": receiver.url("/"), "callbackBody": "o=${object}"});
    let r = client
        .req(Method::PUT, "k")
        .header("x-oss-callback", &encode(&callback))
        .body("x")
        .send()
        .await;
    let err = r.expect_error(203, "CallbackFailed");
    assert!(
        err.message
            .starts_with("Response body is not valid json format."),
        "{}",
        err.message
    );
    client.get("k").await.ok();
}

#[tokio::test]
async fn a_callback_server_slower_than_the_timeout_is_callback_failed() {
    let receiver = Receiver::start(Reply {
        status: 200,
        body: "{}".into(),
        delay: Duration::from_secs(5),
    })
    .await;
    let server =
        server_with(MockConfig::default().with_callback_timeout(Duration::from_millis(200))).await;
    let client = Client::new(&server);
    let callback = json!({"callbackUrl": receiver.url("/slow"), "callbackBody": "o=${object}"});
    let r = client
        .req(Method::PUT, "slow")
        .header("x-oss-callback", &encode(&callback))
        .body("x")
        .send()
        .await;
    let err = r.expect_error(203, "CallbackFailed");
    assert!(
        err.message.starts_with("Cost too long time."),
        "{}",
        err.message
    );
    assert_eq!(&client.get("slow").await.ok().body[..], b"x");
}

#[tokio::test]
async fn an_unreachable_callback_url_is_callback_failed() {
    let server = server_with(MockConfig::default()).await;
    let client = Client::new(&server);
    let port = closed_port().await;
    let callback = json!({"callbackUrl": format!("127.0.0.1:{port}/cb"), "callbackBody": "x"});
    let r = client
        .req(Method::PUT, "unreachable")
        .header("x-oss-callback", &encode(&callback))
        .body("x")
        .send()
        .await;
    let err = r.expect_error(203, "CallbackFailed");
    assert!(
        err.message.starts_with("Error status : -1."),
        "{}",
        err.message
    );
    client.get("unreachable").await.ok();
}

#[tokio::test]
async fn callback_urls_are_tried_in_order_until_one_answers() {
    let receiver = Receiver::start(Reply::json(json!({"second": true}))).await;
    let server = server_with(MockConfig::default()).await;
    let port = closed_port().await;
    let callback = json!({
        "callbackUrl": format!("http://127.0.0.1:{port}/first;{}", receiver.url("/second")),
        "callbackBody": "o=${object}",
    });
    let r = Client::new(&server)
        .req(Method::PUT, "k")
        .header("x-oss-callback", &encode(&callback))
        .body("x")
        .send()
        .await
        .ok();
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).unwrap(),
        json!({"second": true})
    );
    assert_eq!(receiver.seen()[0].path_and_query, "/second");
}

#[tokio::test]
async fn a_callback_url_that_is_not_allowed_is_refused_and_nothing_is_stored() {
    let receiver = Receiver::start(Reply::json(json!({}))).await;
    let server = server_with(MockConfig::default()).await;
    let client = Client::new(&server);
    // A loopback receiver is listed after the refused URL: nothing at all is requested.
    let callback = json!({
        "callbackUrl": format!("http://10.255.255.1:8080/cb;{}", receiver.url("/")),
        "callbackBody": "o=${object}",
    });
    let err = client
        .req(Method::PUT, "refused")
        .header("x-oss-callback", &encode(&callback))
        .body("x")
        .send()
        .await
        .expect_error(400, "InvalidArgument");
    assert_eq!(err.field("ArgumentName"), Some("callbackUrl"));
    assert!(err.message.contains("10.255.255.1"), "{}", err.message);
    assert!(err.message.contains("--callback-allow"), "{}", err.message);
    assert_eq!(
        client
            .req(Method::HEAD, "refused")
            .send()
            .await
            .status
            .as_u16(),
        404
    );

    let (id, parts, _) = two_parts(&client, "refused-multipart", "text/plain").await;
    client
        .req(Method::POST, "refused-multipart")
        .query("uploadId", &id)
        .header("x-oss-callback", &encode(&callback))
        .body(complete_xml(&parts))
        .send()
        .await
        .expect_error(400, "InvalidArgument");
    // The upload is still open and whole; no object.
    assert_eq!(
        client
            .list_parts("refused-multipart", &id, &[])
            .await
            .parts
            .len(),
        2
    );
    client
        .get("refused-multipart")
        .await
        .expect_error(404, "NoSuchKey");
    assert!(receiver.seen().is_empty());
}

#[tokio::test]
async fn malformed_callback_headers_are_invalid_argument_and_store_nothing() {
    let server = server_with(MockConfig::default()).await;
    let client = Client::new(&server);
    let good = encode(&json!({"callbackUrl": "127.0.0.1:1/", "callbackBody": "x"}));
    for (callback, vars, says) in [
        ("x123-*&".to_owned(), None, "not base64 encoded"),
        (BASE64.encode("{not json"), None, "not json format"),
        (
            encode(&json!({"callbackUrl": "127.0.0.1:1/", "callbackBody": ""})),
            None,
            "callbackBody",
        ),
        (good.clone(), Some("%%%".to_owned()), "not base64 encoded"),
        (
            good.clone(),
            Some(encode(&json!({"user": "x"}))),
            "does not start with x:",
        ),
    ] {
        let mut request = client
            .req(Method::PUT, "malformed")
            .header("x-oss-callback", &callback);
        if let Some(vars) = &vars {
            request = request.header("x-oss-callback-var", vars);
        }
        let err = request
            .body("x")
            .send()
            .await
            .expect_error(400, "InvalidArgument");
        assert!(err.message.contains(says), "{says}: {}", err.message);
    }
    client.get("malformed").await.expect_error(404, "NoSuchKey");
}

#[tokio::test]
async fn an_upload_without_a_callback_url_is_a_plain_upload() {
    let server = server_with(MockConfig::default()).await;
    let client = Client::new(&server);
    let r = client
        .req(Method::PUT, "plain")
        .header(
            "x-oss-callback",
            &encode(&json!({"callbackUrl": "", "callbackBody": "x"})),
        )
        .body("x")
        .send()
        .await
        .ok();
    assert!(r.body.is_empty());
    assert_eq!(r.status.as_u16(), 200);
}
