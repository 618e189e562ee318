//! The mock's own control routes under `/_mock/`, which tests and tools use to steer a running
//! server: fault rules and counters. They take JSON, answer JSON, and need no OSS signature.
//!
//! They can fail every request the server answers and abort uploads, so they are guarded: without a
//! control token (`--control-token`, `MockConfig::control_token`) they answer loopback peers only;
//! with one, only requests carrying `Authorization: Bearer TOKEN`, from any peer. Everything else is
//! `403` with a JSON body saying why.
//!
//! | route | does |
//! |---|---|
//! | `GET /_mock/faults` | the rules in force, as a JSON array (each with the seed it runs with) |
//! | `PUT /_mock/faults` | replaces the rules with the JSON array in the body (`[]` clears) |
//! | `DELETE /_mock/faults` | removes every rule |
//! | `GET /_mock/stats` | requests per API, error answers, requests refused by the ceiling and in flight now, bytes received and stored, open uploads, faults fired per kind and per rule, requests stalled now |
//! | `GET /_mock/link` | the link's shape: bandwidths, latency, ceiling |
//! | `PUT /_mock/link` | replaces the shape with the JSON object in the body (`{}`: loopback) |
//! | `DELETE /_mock/link` | back to loopback: no cap, no latency, no ceiling |
//!
//! Bucket names cannot start with `_`, so a path-style `/_mock/…` can never name a bucket. A
//! virtual-hosted request (`Host: BUCKET.DOMAIN`) for the key `_mock/…` is an ordinary object request.

use std::net::SocketAddr;

use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use ossup_proto::Api;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;

use crate::auth::Secret;
use crate::callback::PeerAddr;
use crate::faults::parse_fault_rules;
use crate::link::LinkShape;
use crate::response::{self, HttpResponse};
use crate::route::{names_bucket_in_host, request_host};
use crate::service::App;

/// The path every control route starts with.
pub(crate) const PREFIX: &str = "/_mock/";

/// The largest rule list `PUT /_mock/faults` (or link shape, `PUT /_mock/link`) reads.
const MAX_RULES_BODY: usize = 1024 * 1024;

/// Whether the request is for a control route rather than for OSS.
pub(crate) fn is_control(parts: &Parts, domain: &str) -> bool {
    parts.uri.path().starts_with(PREFIX) && !names_bucket_in_host(&request_host(parts), domain)
}

/// Whether a control request may be answered: with a token configured, it must carry
/// `Authorization: Bearer TOKEN`; without one, it must come from a loopback address. `Err` says why
/// not, and what to do.
pub(crate) fn access(
    token: Option<&str>,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> Result<(), String> {
    match token {
        Some(token) => {
            let presented = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    let (scheme, rest) = v.trim().split_once(' ')?;
                    scheme
                        .eq_ignore_ascii_case("Bearer")
                        .then(|| rest.trim())
                });
            match presented {
                None => Err(
                    "the control routes need the header Authorization: Bearer TOKEN, with the token the server was started with (--control-token or OSS_MOCK_CONTROL_TOKEN)"
                        .to_owned(),
                ),
                // Constant time: how long the comparison takes must not tell how much of a guess
                // was right.
                Some(presented) if bool::from(presented.as_bytes().ct_eq(token.as_bytes())) => {
                    Ok(())
                }
                Some(_) => Err(
                    "the bearer token is not this server's control token (--control-token or OSS_MOCK_CONTROL_TOKEN)"
                        .to_owned(),
                ),
            }
        }
        None => match peer {
            Some(peer) if peer.ip().to_canonical().is_loopback() => Ok(()),
            Some(peer) => Err(format!(
                "the control routes answer loopback peers only, and {} is not one; start the server with --control-token TOKEN (or OSS_MOCK_CONTROL_TOKEN) and send Authorization: Bearer TOKEN to use them from elsewhere",
                peer.ip()
            )),
            None => Err("the peer's address is unknown, and without a control token only loopback peers are answered".to_owned()),
        },
    }
}

/// Answers a control request.
pub(crate) async fn handle(app: &App, parts: &Parts, body: Incoming) -> HttpResponse {
    let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0);
    if let Err(why) = access(
        app.control_token.as_ref().map(Secret::expose),
        peer,
        &parts.headers,
    ) {
        tracing::info!(?peer, "control request refused: {why}");
        return problem(StatusCode::FORBIDDEN, why);
    }
    let route = &parts.uri.path()[PREFIX.len()..];
    match (route, &parts.method) {
        ("faults", &Method::GET) => json_response(StatusCode::OK, &rules_json(app)),
        ("faults", &Method::PUT) => put_faults(app, body).await,
        ("faults", &Method::DELETE) => {
            app.faults.clear();
            response::status_only(StatusCode::NO_CONTENT)
        }
        ("stats", &Method::GET) => json_response(StatusCode::OK, &stats_json(app)),
        ("link", &Method::GET) => json_response(StatusCode::OK, &link_json(app)),
        ("link", &Method::PUT) => put_link(app, body).await,
        ("link", &Method::DELETE) => {
            // The default shape always passes its own check.
            let _ = app.link.set(LinkShape::default());
            response::status_only(StatusCode::NO_CONTENT)
        }
        ("faults" | "link", _) => method_not_allowed("GET, PUT, DELETE"),
        ("stats", _) => method_not_allowed("GET"),
        _ => problem(
            StatusCode::NOT_FOUND,
            format!(
                "no control route {}; the routes are GET/PUT/DELETE /_mock/faults, GET/PUT/DELETE /_mock/link and GET /_mock/stats",
                parts.uri.path()
            ),
        ),
    }
}

/// The body of a `PUT`, at most [`MAX_RULES_BODY`] bytes; `Err` is the answer saying why not.
async fn read_body(body: Incoming, what: &str) -> Result<bytes::Bytes, HttpResponse> {
    match Limited::new(body, MAX_RULES_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(problem(
            StatusCode::BAD_REQUEST,
            format!("could not read the {what} (at most {MAX_RULES_BODY} bytes): {e}"),
        )),
    }
}

async fn put_link(app: &App, body: Incoming) -> HttpResponse {
    let bytes = match read_body(body, "link shape").await {
        Ok(bytes) => bytes,
        Err(answer) => return answer,
    };
    let applied = serde_json::from_slice::<LinkShape>(&bytes)
        .map_err(|e| {
            format!(
                "not a link shape ({e}); it looks like {{\"link_bandwidth\": 209715200, \"conn_bandwidth\": 16777216, \"latency_ms\": 40, \"max_inflight\": 24}}, every field optional"
            )
        })
        .and_then(|shape| app.link.set(shape));
    match applied {
        Ok(()) => json_response(StatusCode::OK, &link_json(app)),
        Err(e) => problem(StatusCode::BAD_REQUEST, e),
    }
}

fn link_json(app: &App) -> Value {
    serde_json::to_value(app.link.shape()).unwrap_or(Value::Null)
}

async fn put_faults(app: &App, body: Incoming) -> HttpResponse {
    let bytes = match read_body(body, "rule list").await {
        Ok(bytes) => bytes,
        Err(answer) => return answer,
    };
    let applied = parse_fault_rules(&bytes).and_then(|rules| app.faults.set(rules));
    match applied {
        Ok(()) => json_response(StatusCode::OK, &rules_json(app)),
        Err(e) => problem(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

fn rules_json(app: &App) -> Value {
    serde_json::to_value(app.faults.rules()).unwrap_or(Value::Array(Vec::new()))
}

fn stats_json(app: &App) -> Value {
    let snapshot = app.stats.snapshot();
    let requests: Map<String, Value> = snapshot
        .requests
        .iter()
        .map(|(api, n)| (Api::name(*api).to_owned(), json!(n)))
        .collect();
    let faults_fired: Map<String, Value> = snapshot
        .faults_fired
        .iter()
        .map(|(kind, n)| ((*kind).to_owned(), json!(n)))
        .collect();
    json!({
        "requests": requests,
        "unrouted_requests": snapshot.unrouted_requests,
        "error_responses": snapshot.error_responses,
        "refused_by_ceiling": snapshot.refused_by_ceiling,
        "in_flight_requests": app.link.in_flight(),
        "bytes_received": snapshot.bytes_received,
        "bytes_stored": snapshot.bytes_stored,
        "open_uploads": app.store.open_upload_count(),
        "stalled_requests": app.faults.stalled_now(),
        "faults_fired": faults_fired,
        "rules": app.faults.report(),
    })
}

fn json_response(status: StatusCode, value: &Value) -> HttpResponse {
    let mut body = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned());
    body.push('\n');
    let mut response = http::Response::new(response::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn problem(status: StatusCode, message: String) -> HttpResponse {
    json_response(status, &json!({ "error": message }))
}

fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let mut response = problem(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("this control route takes {allow}"),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn without_a_token_only_loopback_peers_are_answered() {
        let none = HeaderMap::new();
        for peer in [
            "127.0.0.1:5",
            "127.9.9.9:5",
            "[::1]:5",
            "[::ffff:127.0.0.1]:5",
        ] {
            assert!(
                access(None, Some(peer.parse().unwrap()), &none).is_ok(),
                "{peer}"
            );
        }
        for peer in [
            "10.1.2.3:5",
            "192.168.0.2:5",
            "[fe80::1]:5",
            "[::ffff:10.0.0.1]:5",
        ] {
            let why = access(None, Some(peer.parse().unwrap()), &none).unwrap_err();
            assert!(why.contains("--control-token"), "{why}");
        }
        assert!(access(None, None, &none).is_err());
    }

    #[test]
    fn with_a_token_every_peer_needs_it() {
        let remote = Some("10.1.2.3:5".parse().unwrap());
        let local = Some("127.0.0.1:5".parse().unwrap());
        assert!(access(Some("s3cret"), remote, &bearer("Bearer s3cret")).is_ok());
        assert!(access(Some("s3cret"), local, &bearer("bearer  s3cret ")).is_ok());
        let why = access(Some("s3cret"), local, &HeaderMap::new()).unwrap_err();
        assert!(why.contains("Authorization: Bearer"), "{why}");
        for wrong in ["Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "s3cret"] {
            assert!(
                access(Some("s3cret"), local, &bearer(wrong)).is_err(),
                "{wrong}"
            );
        }
    }
}
