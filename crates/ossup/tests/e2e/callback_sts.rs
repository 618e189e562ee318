//! Upload callbacks and temporary (STS) credentials, end to end against the mock: the callback sent
//! with Complete and PutObject (and on a resumed upload), its reply in the outcome, a failed callback
//! as its own error; STS uploads within and outside their policy, an expired token, and a token
//! refreshed by the credentials provider mid-upload.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use oss_mock::{MockConfig, MockServer, StsCredential};
use ossup::Api;
use ossup::{
    BytesSource, Callback, CallbackBodyType, CallbackResult, CancellationToken, ErrorKind,
    ProgressEvent, Sequential, UploadMethod, UploadRequest,
};
use ossup::{Credentials, CredentialsProvider, V1Signer, V4Signer};
use ossup_proto::checksum::crc64;
use ossup_sign::CredentialsError;
use serde_json::{Value, json};

/// A callback server on 127.0.0.1 answering every POST with one status and body, recording bodies.
struct CallbackServer {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl CallbackServer {
    async fn start(status: u16, reply: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let recorded = bodies.clone();
        let reply = Bytes::from(reply.to_string());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (bodies, reply) = (recorded.clone(), reply.clone());
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let (bodies, reply) = (bodies.clone(), reply.clone());
                            async move {
                                let body = request.into_body().collect().await.unwrap().to_bytes();
                                bodies
                                    .lock()
                                    .unwrap()
                                    .push(String::from_utf8_lossy(&body).into_owned());
                                let mut response = http::Response::new(Full::new(reply));
                                *response.status_mut() =
                                    http::StatusCode::from_u16(status).unwrap();
                                response.headers_mut().insert(
                                    "content-type",
                                    http::HeaderValue::from_static("application/json"),
                                );
                                Ok::<_, Infallible>(response)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, bodies, task }
    }

    fn url(&self) -> String {
        format!("http://{}/uploaded", self.addr)
    }

    fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
}

impl Drop for CallbackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A JSON callback naming the object, its size and ETag, and a custom variable.
fn json_callback(url: &str) -> Callback {
    Callback::new(
        url,
        "{\"bucket\":${bucket},\"object\":${object},\"size\":${size},\"etag\":${etag},\"run\":${x:run}}",
    )
    .body_type(CallbackBodyType::Json)
    .var("run", "e2e")
}

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test]
async fn a_multipart_upload_with_a_callback_carries_the_reply_and_fills_in_the_variables() {
    let server = mock().await;
    let app = CallbackServer::start(200, json!({"accepted": true})).await;
    let uploader = builder(&server.endpoint()).build().unwrap();
    let bytes = data(350_000, 80);
    let outcome = uploader
        .upload(
            UploadRequest::new(
                BytesSource::new(bytes.clone(), "big"),
                BUCKET,
                "dir/big.bin",
            )
            .callback(json_callback(&app.url())),
        )
        .await
        .unwrap();
    assert_eq!(outcome.method, UploadMethod::Multipart);
    assert_eq!(
        outcome.callback,
        Some(CallbackResult::Replied {
            body: json!({"accepted": true}).to_string()
        })
    );
    let sent = app.bodies();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        parse(&sent[0]),
        json!({
            "bucket": BUCKET,
            "object": "dir/big.bin",
            "size": 350_000,
            "etag": outcome.etag.trim_matches('"'),
            "run": "e2e",
        })
    );
    assert_eq!(outcome.crc64, crc64(&bytes));
    assert_object_is(uploader.client(), "dir/big.bin", &bytes).await;
}

#[tokio::test]
async fn a_small_upload_sends_its_callback_with_put_object() {
    let server = mock().await;
    let app = CallbackServer::start(200, json!({"small": 1})).await;
    let uploader = builder(&server.endpoint()).build().unwrap();
    let bytes = data(5_000, 81);
    let outcome = uploader
        .upload(
            UploadRequest::new(
                BytesSource::new(bytes.clone(), "small"),
                BUCKET,
                "small.bin",
            )
            .callback(Callback::new(app.url(), "object=${object}&size=${size}")),
        )
        .await
        .unwrap();
    assert_eq!(outcome.method, UploadMethod::PutObject);
    assert_eq!(
        outcome.callback.as_ref().and_then(CallbackResult::reply),
        Some(json!({"small": 1}).to_string().as_str())
    );
    assert_eq!(app.bodies(), ["object=small.bin&size=5000"]);
    assert_object_is(uploader.client(), "small.bin", &bytes).await;
}

#[tokio::test]
async fn a_failed_callback_is_its_own_error_with_the_object_stored_and_is_not_retried() {
    let server = mock().await;
    let app = CallbackServer::start(500, json!({"error": "down"})).await;
    let uploader = builder(&server.endpoint()).build().unwrap();
    let bytes = data(250_000, 82);
    let err = uploader
        .upload(
            UploadRequest::new(BytesSource::new(bytes.clone(), "f"), BUCKET, "failed.bin")
                .callback(json_callback(&app.url())),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CallbackFailed, "{err}");
    assert!(!err.is_retryable());
    let service = err.service_error().expect("OSS's answer");
    assert_eq!(
        (service.status, service.code.as_str()),
        (203, "CallbackFailed")
    );
    let message = err.to_string();
    assert!(message.contains("the object is stored"), "{message}");
    assert!(message.contains("Error status : 500."), "{message}");
    let outcome =
        ossup::UploadOutcome::of_failed_callback(&err).expect("the stored object's outcome");
    assert_eq!(outcome.size, 250_000);
    assert_eq!(outcome.crc64, crc64(&bytes));
    assert_eq!(app.bodies().len(), 1, "one callback, not retried");
    assert_eq!(server.stats().requests(Api::CompleteMultipartUpload), 1);
    assert_object_is(uploader.client(), "failed.bin", &bytes).await;
}

#[tokio::test]
async fn a_refused_callback_url_fails_the_upload_which_then_resumes_with_another() {
    let server = mock().await;
    let store = shared_store();
    let bytes = data(300_000, 83);
    let request = |callback: Callback| {
        UploadRequest::new(
            BytesSource::new(bytes.clone(), "refused"),
            BUCKET,
            "refused.bin",
        )
        .callback(callback)
    };
    let uploader = builder(&server.endpoint())
        .store(store.clone())
        .build()
        .unwrap();
    let err = uploader
        .upload(request(Callback::new(
            "http://10.255.255.1/cb",
            "o=${object}",
        )))
        .await
        .unwrap_err();
    assert!(
        err.is_service_code(ossup::ErrorCode::InvalidArgument),
        "{err}"
    );
    assert_eq!(err.api(), Some(Api::CompleteMultipartUpload));
    assert!(err.to_string().contains("callback"), "{err}");

    let app = CallbackServer::start(200, json!({"ok": true})).await;
    let outcome = uploader
        .upload(request(json_callback(&app.url())))
        .await
        .unwrap();
    assert!(outcome.resumed);
    assert_eq!(outcome.parts_sent, 0);
    assert_eq!(outcome.parts_reused, outcome.parts);
    assert_eq!(app.bodies().len(), 1);
    assert_object_is(uploader.client(), "refused.bin", &bytes).await;
}

#[tokio::test]
async fn a_resumed_upload_sends_the_same_callback() {
    let server = mock().await;
    let app = CallbackServer::start(200, json!({"resumed": true})).await;
    let store = shared_store();
    let bytes = data(500_000, 84);
    let uploader = builder(&server.endpoint())
        .store(store.clone())
        .scheduler(Sequential)
        .build()
        .unwrap();
    let request = || {
        UploadRequest::new(
            BytesSource::new(bytes.clone(), "resume"),
            BUCKET,
            "resume.bin",
        )
        .callback(json_callback(&app.url()))
    };

    let crash = CancellationToken::new();
    let trigger = crash.clone();
    let err = uploader
        .upload(
            request()
                .cancel(crash)
                .progress(move |event: &ProgressEvent| {
                    if matches!(event, ProgressEvent::PartDone { number: 2, .. }) {
                        trigger.cancel();
                    }
                }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    assert!(app.bodies().is_empty(), "no Complete, no callback yet");

    let outcome = uploader.upload(request()).await.unwrap();
    assert!(outcome.resumed);
    assert!(outcome.parts_reused >= 2, "{outcome:?}");
    assert_eq!(
        outcome.callback.as_ref().and_then(CallbackResult::reply),
        Some(json!({"resumed": true}).to_string().as_str())
    );
    let sent = app.bodies();
    assert_eq!(sent.len(), 1);
    let sent = parse(&sent[0]);
    assert_eq!(sent["size"], 500_000);
    assert_eq!(sent["etag"], outcome.etag.trim_matches('"'));
    assert_eq!(sent["run"], "e2e");
    assert_object_is(uploader.client(), "resume.bin", &bytes).await;
}

// ----- temporary credentials -----

const STS_ID: &str = "STS.e2e";
const STS_SECRET: &str = "sts-e2e-secret";

fn multipart_policy(id: &str, token: &str) -> StsCredential {
    StsCredential::new(id, STS_SECRET, token)
        .allowing(["oss:PutObject", "oss:ListParts", "oss:AbortMultipartUpload"])
        .unwrap()
}

async fn mock_with_sts(sts: StsCredential) -> MockServer {
    ossup_test_support::mock_with(MockConfig::default().with_sts(sts)).await
}

fn temporary(id: &str, token: &str) -> Credentials {
    Credentials::new(id, STS_SECRET).with_security_token(token)
}

#[tokio::test]
async fn sts_credentials_with_a_multipart_policy_upload_with_v4_and_v1() {
    let server = mock_with_sts(multipart_policy(STS_ID, "token")).await;
    let bytes = data(250_000, 85);
    for (name, uploader) in [
        (
            "v4",
            builder(&server.endpoint())
                .credentials(temporary(STS_ID, "token"))
                .signer(V4Signer::new("cn-hangzhou"))
                .build()
                .unwrap(),
        ),
        (
            "v1",
            builder(&server.endpoint())
                .credentials(temporary(STS_ID, "token"))
                .signer(V1Signer)
                .build()
                .unwrap(),
        ),
    ] {
        let key = format!("{name}.bin");
        let outcome = uploader
            .upload(UploadRequest::new(
                BytesSource::new(bytes.clone(), name),
                BUCKET,
                &key,
            ))
            .await
            .unwrap();
        assert_eq!(outcome.method, UploadMethod::Multipart);
        // The policy does not allow GetObject: read it back with the permanent key.
        assert_object_is(&client(&server.endpoint()), &key, &bytes).await;
    }
}

#[tokio::test]
async fn an_action_the_sts_policy_denies_is_access_denied_and_not_retried() {
    let listing_only = StsCredential::new(STS_ID, STS_SECRET, "token")
        .allowing(["oss:ListParts"])
        .unwrap();
    let server = mock_with_sts(listing_only).await;
    let uploader = builder(&server.endpoint())
        .credentials(temporary(STS_ID, "token"))
        .build()
        .unwrap();
    let err = uploader
        .upload(UploadRequest::new(
            BytesSource::new(data(250_000, 86), "denied"),
            BUCKET,
            "denied.bin",
        ))
        .await
        .unwrap_err();
    assert!(err.is_service_code(ossup::ErrorCode::AccessDenied), "{err}");
    assert!(err.to_string().contains("oss:PutObject"), "{err}");
    assert_eq!(server.stats().requests(Api::InitiateMultipartUpload), 1);
}

#[tokio::test]
async fn an_expired_token_fails_with_security_token_expired() {
    let expired =
        multipart_policy(STS_ID, "token").expiring_at(UNIX_EPOCH + Duration::from_secs(1));
    let server = mock_with_sts(expired).await;
    let uploader = builder(&server.endpoint())
        .credentials(temporary(STS_ID, "token"))
        .build()
        .unwrap();
    let err = uploader
        .upload(UploadRequest::new(
            BytesSource::new(data(5_000, 87), "expired"),
            BUCKET,
            "expired.bin",
        ))
        .await
        .unwrap_err();
    assert!(
        err.is_service_code(ossup::ErrorCode::SecurityTokenExpired),
        "{err}"
    );
    // The static credentials have nothing fresher: one request, no loop.
    assert_eq!(server.stats().requests(Api::PutObject), 1);
}

/// A provider of temporary credentials that hands out the next ones when asked to refresh.
#[derive(Debug)]
struct Rotating {
    current: Mutex<Credentials>,
    next: Mutex<Option<Credentials>>,
    refreshes: AtomicU32,
}

#[async_trait::async_trait]
impl CredentialsProvider for Rotating {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        Ok(self.current.lock().unwrap().clone())
    }

    async fn refresh(&self) -> Result<Credentials, CredentialsError> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        let mut current = self.current.lock().unwrap();
        if let Some(next) = self.next.lock().unwrap().take() {
            *current = next;
        }
        Ok(current.clone())
    }
}

#[tokio::test]
async fn a_token_expiring_mid_upload_is_refreshed_by_the_provider_and_the_upload_finishes() {
    let server = Arc::new(mock_with_sts(multipart_policy("STS.first", "token-1")).await);
    let provider = Arc::new(Rotating {
        current: Mutex::new(temporary("STS.first", "token-1")),
        next: Mutex::new(Some(temporary("STS.second", "token-2"))),
        refreshes: AtomicU32::new(0),
    });
    let uploader = builder(&server.endpoint())
        .credentials(provider.clone())
        .scheduler(Sequential)
        .build()
        .unwrap();
    let bytes = data(520_000, 88);
    let expired = Arc::new(AtomicBool::new(false));
    let sink = {
        let (server, expired) = (server.clone(), expired.clone());
        move |event: &ProgressEvent| {
            if matches!(event, ProgressEvent::PartDone { number: 2, .. })
                && !expired.swap(true, Ordering::SeqCst)
            {
                // STS issues new credentials; the ones in use expire.
                server.set_sts_credential(
                    multipart_policy("STS.first", "token-1").expiring_at(SystemTime::now()),
                );
                server.set_sts_credential(multipart_policy("STS.second", "token-2"));
            }
        }
    };
    let outcome = uploader
        .upload(
            UploadRequest::new(BytesSource::new(bytes.clone(), "long"), BUCKET, "long.bin")
                .progress(sink),
        )
        .await
        .unwrap();
    assert!(expired.load(Ordering::SeqCst));
    assert_eq!(provider.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(outcome.parts, 6);
    assert_eq!(outcome.parts_sent, 6);
    assert!(
        server.stats().error_responses() >= 1,
        "a request was refused"
    );
    assert_object_is(&client(&server.endpoint()), "long.bin", &bytes).await;
}
