//! Upload callbacks and temporary (STS) credentials on the wire.
//!
//! Callback cases that need the server to reach a callback server start one on 127.0.0.1 of this
//! machine; they run when the endpoint is on loopback too (the mock) and are skipped otherwise. The
//! checks of malformed and tampered callback headers need no callback server and run everywhere.
//!
//! STS cases sign with the target's temporary credentials: a key whose policy allows only the multipart
//! upload actions, and an expired one (the mock has both; a remote endpoint takes them from
//! `OSSUP_CONFORMANCE_STS` and `OSSUP_CONFORMANCE_STS_EXPIRED`).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use ossup_proto::Api;
use ossup_proto::etag::part_etag;
use ossup_proto::headers::{CALLBACK, CALLBACK_VAR};
use ossup_sign::Credentials;
use serde_json::{Value, json};

use crate::case::{Case, Ctx, complete_body, upload_part_request};
use crate::check::{CaseError, CaseResult, Context};
use crate::client::{Auth, Request};
use crate::{case, ensure, ensure_eq};

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!(
            complete_with_a_callback_answers_with_the_callback_servers_reply,
            Api::CompleteMultipartUpload,
            "Complete with x-oss-callback and x-oss-callback-var: one form POST to the callback URL with ${bucket}, ${object}, ${size}, ${etag}, ${x:…} filled in; 200 with the callback server's JSON as body and the ETag header"
        ),
        case!(
            put_object_with_a_json_callback_sends_json_values,
            Api::PutObject,
            "PutObject with callbackBodyType application/json: the callback body is JSON with the object name as a string and the size as a number"
        ),
        case!(
            a_callback_server_error_is_203_callback_failed_with_the_object_stored,
            Api::PutObject,
            "the callback server answers 500: 203 CallbackFailed, and the object is there"
        ),
        case!(
            a_malformed_callback_is_invalid_argument_and_stores_nothing,
            Api::PutObject,
            "x-oss-callback not base64, or base64 of something that is not JSON: 400 InvalidArgument; no object"
        ),
        case!(
            callback_headers_are_covered_by_the_signature,
            Api::PutObject,
            "x-oss-callback changed after V1 and V4 signing: 403 SignatureDoesNotMatch; no object"
        ),
        case!(
            sts_credentials_upload_within_a_multipart_only_policy,
            Api::UploadPart,
            "temporary credentials allowed oss:PutObject, oss:ListParts, oss:AbortMultipartUpload: Initiate, UploadPart, ListParts, Complete, Abort and PutObject all succeed"
        ),
        case!(
            sts_action_outside_the_policy_is_access_denied,
            Api::GetObject,
            "the same credentials on GetObject and DeleteObject: 403 AccessDenied; the object is still there"
        ),
        case!(
            sts_token_of_another_key_is_invalid_security_token,
            Api::PutObject,
            "a temporary key with a security token that is not its own: 403 InvalidSecurityToken; no object"
        ),
        case!(
            sts_key_without_its_token_is_invalid_access_key_id,
            Api::PutObject,
            "a temporary key without x-oss-security-token: 403 InvalidAccessKeyId; no object"
        ),
        case!(
            sts_expired_token_is_security_token_expired,
            Api::InitiateMultipartUpload,
            "expired temporary credentials: 403 SecurityTokenExpired"
        ),
    ]
}

/// What the callback server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    path_and_query: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A callback server on 127.0.0.1 that answers every request with one status and body and records
/// what it got.
struct CallbackServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl CallbackServer {
    async fn start(status: u16, body: Value) -> Result<Self, CaseError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| CaseError::failed(format!("cannot start a callback server: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| CaseError::failed(format!("callback server address: {e}")))?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&seen);
        let body = Bytes::from(body.to_string());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (seen, body) = (Arc::clone(&recorded), body.clone());
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let (seen, body) = (Arc::clone(&seen), body.clone());
                            async move {
                                let (head, incoming) = request.into_parts();
                                let got = incoming
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                seen.lock().expect("never poisoned").push(Seen {
                                    path_and_query: head
                                        .uri
                                        .path_and_query()
                                        .map(|p| p.to_string())
                                        .unwrap_or_default(),
                                    headers: head.headers,
                                    body: got,
                                });
                                let mut response = http::Response::new(Full::new(body));
                                *response.status_mut() = http::StatusCode::from_u16(status)
                                    .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
                                response.headers_mut().insert(
                                    http::header::CONTENT_TYPE,
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
        Ok(Self { addr, seen, task })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("never poisoned").clone()
    }
}

impl Drop for CallbackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Skips the case unless the endpoint can reach a callback server on this machine's loopback.
fn require_loopback_endpoint(ctx: &Ctx) -> CaseResult {
    let endpoint = &ctx.client().config().endpoint;
    let host = endpoint
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(CaseError::skipped(format!(
            "the callback server of this case listens on 127.0.0.1 of this machine, which {endpoint} cannot call"
        )))
    }
}

fn base64_json(value: &Value) -> String {
    BASE64.encode(value.to_string())
}

/// What form encoding leaves unescaped (as OSS fills in form callback bodies).
const FORM_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn form_value(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, FORM_VALUE).to_string()
}

/// The only request the callback server got.
fn only_callback(server: &CallbackServer) -> Result<Seen, CaseError> {
    let seen = server.seen();
    ensure!(
        seen.len() == 1,
        "the callback server got {} requests, expected 1",
        seen.len()
    );
    Ok(seen.into_iter().next().expect("one"))
}

fn expect_json_body(response: &crate::client::Response, expected: &Value) -> CaseResult {
    let got: Value = serde_json::from_slice(&response.body).map_err(|e| {
        CaseError::failed(format!(
            "the body of {} is not the callback server's JSON ({e}): {:?}",
            response.what,
            response.text().chars().take(300).collect::<String>()
        ))
    })?;
    ensure_eq!(got, *expected, "body of {}", response.what);
    Ok(())
}

async fn complete_with_a_callback_answers_with_the_callback_servers_reply(ctx: &Ctx) -> CaseResult {
    require_loopback_endpoint(ctx)?;
    let reply = json!({"conformance": "callback", "n": 1});
    let server = CallbackServer::start(200, reply.clone()).await?;
    let key = ctx.key("with callback.bin");
    let upload_id = ctx.initiate(&key).await?;
    let first = ctx
        .upload_part(&key, &upload_id, 1, &ctx.data(102_400))
        .await?;
    let second = ctx.upload_part(&key, &upload_id, 2, &ctx.data(100)).await?;
    let size = first.size + second.size;
    let callback = json!({
        "callbackUrl": server.url("/notify?from=oss"),
        "callbackBody": "bucket=${bucket}&object=${object}&size=${size}&etag=${etag}&who=${x:who}",
    });
    ctx.track_object(ctx.bucket(), &key);
    let response = ctx
        .send(
            Request::post(Some(ctx.bucket()), Some(&key))
                .query("uploadId", &upload_id)
                .header(CALLBACK, &base64_json(&callback))
                .header(
                    CALLBACK_VAR,
                    &base64_json(&json!({"x:who": "conformance run"})),
                )
                .body(complete_body(&[(1, &first.etag), (2, &second.etag)])),
        )
        .await?;
    response.expect_status(200)?;
    expect_json_body(&response, &reply)?;
    let etag = response.expect_header("etag")?.trim_matches('"').to_owned();

    let seen = only_callback(&server)?;
    ensure_eq!(
        seen.path_and_query.as_str(),
        "/notify?from=oss",
        "callback path"
    );
    ensure_eq!(
        seen.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("<absent>"),
        "application/x-www-form-urlencoded",
        "callback Content-Type"
    );
    let expected = format!(
        "bucket={}&object={}&size={size}&etag={etag}&who=conformance%20run",
        form_value(ctx.bucket()),
        form_value(&key)
    );
    ensure_eq!(
        String::from_utf8_lossy(&seen.body),
        expected,
        "callback body"
    );
    Ok(())
}

async fn put_object_with_a_json_callback_sends_json_values(ctx: &Ctx) -> CaseResult {
    require_loopback_endpoint(ctx)?;
    let reply = json!({"json": true});
    let server = CallbackServer::start(200, reply.clone()).await?;
    let key = ctx.key("json \"callback\".bin");
    let body = ctx.data(3000);
    let callback = json!({
        "callbackUrl": server.url("/json"),
        "callbackBody": "{\"bucket\":${bucket},\"object\":${object},\"size\":${size}}",
        "callbackBodyType": "application/json",
    });
    ctx.track_object(ctx.bucket(), &key);
    let response = ctx
        .send(
            Request::put(Some(ctx.bucket()), Some(&key))
                .header(CALLBACK, &base64_json(&callback))
                .body(body.clone()),
        )
        .await?;
    response.expect_status(200)?;
    expect_json_body(&response, &reply)?;
    response.expect_header_eq("etag", &part_etag(&ossup_proto::checksum::md5(&body)))?;

    let seen = only_callback(&server)?;
    let sent: Value = serde_json::from_slice(&seen.body).map_err(|e| {
        CaseError::failed(format!(
            "the JSON callback body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&seen.body)
        ))
    })?;
    ensure_eq!(
        sent,
        json!({"bucket": ctx.bucket(), "object": key, "size": body.len()}),
        "JSON callback body"
    );
    ctx.expect_object(&key, &body).await?;
    Ok(())
}

async fn a_callback_server_error_is_203_callback_failed_with_the_object_stored(
    ctx: &Ctx,
) -> CaseResult {
    require_loopback_endpoint(ctx)?;
    let server = CallbackServer::start(500, json!({"error": "refused"})).await?;
    let key = ctx.key("failed callback.bin");
    let body = ctx.data(500);
    let callback = json!({"callbackUrl": server.url("/"), "callbackBody": "object=${object}"});
    ctx.track_object(ctx.bucket(), &key);
    let response = ctx
        .send(
            Request::put(Some(ctx.bucket()), Some(&key))
                .header(CALLBACK, &base64_json(&callback))
                .body(body.clone()),
        )
        .await?;
    response.expect_error(203, "CallbackFailed")?;
    only_callback(&server)?;
    ctx.expect_object(&key, &body)
        .await
        .context("the object after the failed callback")?;
    Ok(())
}

async fn a_malformed_callback_is_invalid_argument_and_stores_nothing(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("malformed callback.bin");
    ctx.track_object(ctx.bucket(), &key);
    for (what, header) in [
        ("not base64", "x123-*&".to_owned()),
        ("not JSON", BASE64.encode("{\"callbackUrl\":")),
    ] {
        let response = ctx
            .send(
                Request::put(Some(ctx.bucket()), Some(&key))
                    .header(CALLBACK, &header)
                    .body("data"),
            )
            .await?;
        response
            .expect_error(400, "InvalidArgument")
            .context(what)?;
    }
    ctx.send(Request::head(Some(ctx.bucket()), Some(&key)))
        .await?
        .expect_error(404, "NoSuchKey")
        .context("the object after the refused PutObjects")?;
    Ok(())
}

async fn callback_headers_are_covered_by_the_signature(ctx: &Ctx) -> CaseResult {
    let key = ctx.key("tampered callback.bin");
    ctx.track_object(ctx.bucket(), &key);
    let signed = base64_json(&json!({"callbackUrl": "127.0.0.1:1/a", "callbackBody": "a"}));
    let sent = base64_json(&json!({"callbackUrl": "127.0.0.1:1/b", "callbackBody": "b"}));
    let mut auths = vec![Auth::V1];
    if ctx.require_region().is_ok() {
        auths.push(Auth::V4);
    }
    for auth in auths {
        let response = ctx
            .send(
                Request::put(Some(ctx.bucket()), Some(&key))
                    .auth(auth.clone())
                    .header(CALLBACK, &signed)
                    .override_header(CALLBACK, &sent)
                    .body("data"),
            )
            .await?;
        response
            .expect_error(403, "SignatureDoesNotMatch")
            .context(format!("{auth:?}"))?;
    }
    ctx.send(Request::head(Some(ctx.bucket()), Some(&key)))
        .await?
        .expect_error(404, "NoSuchKey")
        .context("the object after the refused PutObjects")?;
    Ok(())
}

/// `credentials` with another security token.
fn with_token(credentials: &Credentials, token: Option<&str>) -> Credentials {
    let bare = Credentials::new(credentials.access_key_id(), credentials.access_key_secret());
    match token {
        Some(token) => bare.with_security_token(token),
        None => bare,
    }
}

async fn sts_credentials_upload_within_a_multipart_only_policy(ctx: &Ctx) -> CaseResult {
    let sts = ctx.require_sts()?.multipart_only.clone();
    let signed = |request: Request| request.credentials(sts.clone());
    let key = ctx.key("sts multipart.bin");
    let initiated = ctx
        .send(signed(
            Request::post(Some(ctx.bucket()), Some(&key)).query("uploads", ""),
        ))
        .await?;
    initiated.expect_status(200).context("Initiate")?;
    let upload_id = initiated
        .xml::<ossup_proto::xml::InitiateMultipartUploadResult>("InitiateMultipartUploadResult")?
        .upload_id;
    ctx.track_upload(ctx.bucket(), &key, &upload_id);
    let body = ctx.data(1000);
    let part = ctx
        .send(signed(upload_part_request(
            ctx.bucket(),
            &key,
            &upload_id,
            1,
            body.clone(),
        )))
        .await?;
    part.expect_status(200).context("UploadPart")?;
    let etag = part.expect_header("etag")?.to_owned();
    ctx.send(signed(
        Request::get(Some(ctx.bucket()), Some(&key)).query("uploadId", &upload_id),
    ))
    .await?
    .expect_status(200)
    .context("ListParts")?;
    ctx.track_object(ctx.bucket(), &key);
    ctx.send(signed(
        Request::post(Some(ctx.bucket()), Some(&key))
            .query("uploadId", &upload_id)
            .body(complete_body(&[(1, &etag)])),
    ))
    .await?
    .expect_status(200)
    .context("Complete")?;
    ctx.expect_object(&key, &body).await?;

    let aborted = ctx.key("sts aborted.bin");
    let response = ctx
        .send(signed(
            Request::post(Some(ctx.bucket()), Some(&aborted)).query("uploads", ""),
        ))
        .await?;
    response.expect_status(200).context("second Initiate")?;
    let abort_id = response
        .xml::<ossup_proto::xml::InitiateMultipartUploadResult>("InitiateMultipartUploadResult")?
        .upload_id;
    ctx.track_upload(ctx.bucket(), &aborted, &abort_id);
    ctx.send(signed(
        Request::delete(Some(ctx.bucket()), Some(&aborted)).query("uploadId", &abort_id),
    ))
    .await?
    .expect_status(204)
    .context("Abort")?;

    let small = ctx.key("sts small.bin");
    ctx.track_object(ctx.bucket(), &small);
    ctx.send(signed(
        Request::put(Some(ctx.bucket()), Some(&small)).body("small"),
    ))
    .await?
    .expect_status(200)
    .context("PutObject")?;
    ctx.expect_object(&small, b"small").await?;
    Ok(())
}

async fn sts_action_outside_the_policy_is_access_denied(ctx: &Ctx) -> CaseResult {
    let sts = ctx.require_sts()?.multipart_only.clone();
    let key = ctx.key("not for sts.bin");
    let body = ctx.data(10);
    ctx.put_object(&key, &body).await?;
    for request in [
        Request::get(Some(ctx.bucket()), Some(&key)),
        Request::delete(Some(ctx.bucket()), Some(&key)),
    ] {
        let what = request.describe();
        ctx.send(request.credentials(sts.clone()))
            .await?
            .expect_error(403, "AccessDenied")
            .context(what)?;
    }
    ctx.expect_object(&key, &body)
        .await
        .context("the object after the refused DeleteObject")?;
    Ok(())
}

async fn sts_token_of_another_key_is_invalid_security_token(ctx: &Ctx) -> CaseResult {
    let sts = ctx.require_sts()?.multipart_only.clone();
    let token = sts.security_token().unwrap_or_default();
    let wrong = with_token(&sts, Some(&format!("{token}-not-this-one")));
    let key = ctx.key("wrong token.bin");
    ctx.track_object(ctx.bucket(), &key);
    ctx.send(
        Request::put(Some(ctx.bucket()), Some(&key))
            .credentials(wrong)
            .body("data"),
    )
    .await?
    .expect_error(403, "InvalidSecurityToken")?;
    ctx.send(Request::head(Some(ctx.bucket()), Some(&key)))
        .await?
        .expect_error(404, "NoSuchKey")
        .context("the object after the refused PutObject")?;
    Ok(())
}

async fn sts_key_without_its_token_is_invalid_access_key_id(ctx: &Ctx) -> CaseResult {
    let sts = ctx.require_sts()?.multipart_only.clone();
    let key = ctx.key("no token.bin");
    ctx.track_object(ctx.bucket(), &key);
    ctx.send(
        Request::put(Some(ctx.bucket()), Some(&key))
            .credentials(with_token(&sts, None))
            .body("data"),
    )
    .await?
    .expect_error(403, "InvalidAccessKeyId")?;
    ctx.send(Request::head(Some(ctx.bucket()), Some(&key)))
        .await?
        .expect_error(404, "NoSuchKey")
        .context("the object after the refused PutObject")?;
    Ok(())
}

async fn sts_expired_token_is_security_token_expired(ctx: &Ctx) -> CaseResult {
    let expired = ctx.require_sts()?.expired.clone().ok_or_else(|| {
        CaseError::skipped(format!(
            "no expired temporary credentials; set {}",
            crate::target::ENV_STS_EXPIRED
        ))
    })?;
    let key = ctx.key("expired.bin");
    let response = ctx
        .send(
            Request::post(Some(ctx.bucket()), Some(&key))
                .query("uploads", "")
                .credentials(expired),
        )
        .await?;
    if response.status.is_success()
        && let Ok(result) = response
            .xml::<ossup_proto::xml::InitiateMultipartUploadResult>("InitiateMultipartUploadResult")
    {
        ctx.track_upload(ctx.bucket(), &key, &result.upload_id);
    }
    response.expect_error(403, "SecurityTokenExpired")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_escape_what_oss_escapes() {
        assert_eq!(form_value("a b/c&d~e.f_g-h"), "a%20b%2Fc%26d~e.f_g-h");
    }

    #[test]
    fn replacing_a_token_keeps_the_key() {
        let creds = Credentials::new("id", "secret").with_security_token("t1");
        let other = with_token(&creds, Some("t2"));
        assert_eq!(other.access_key_id(), "id");
        assert_eq!(other.security_token(), Some("t2"));
        assert_eq!(with_token(&creds, None).security_token(), None);
    }
}
