//! The mock's own control routes under `/_mock/`, which tests and tools use to steer a running
//! server: fault rules and counters. They take JSON, answer JSON, and need no signature.
//!
//! | route | does |
//! |---|---|
//! | `GET /_mock/faults` | the rules in force, as a JSON array (each with the seed it runs with) |
//! | `PUT /_mock/faults` | replaces the rules with the JSON array in the body (`[]` clears) |
//! | `DELETE /_mock/faults` | removes every rule |
//! | `GET /_mock/stats` | requests per API, error answers, bytes received and stored, open uploads, faults fired per kind and per rule, requests stalled now |
//!
//! Bucket names cannot start with `_`, so a path-style `/_mock/…` can never name a bucket. A
//! virtual-hosted request (`Host: BUCKET.DOMAIN`) for the key `_mock/…` is an ordinary object request.

use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use ossup_proto::Api;
use serde_json::{Map, Value, json};

use crate::faults::parse_fault_rules;
use crate::response::{self, HttpResponse};
use crate::route::{names_bucket_in_host, request_host};
use crate::service::App;

/// The path every control route starts with.
pub(crate) const PREFIX: &str = "/_mock/";

/// The largest rule list `PUT /_mock/faults` reads.
const MAX_RULES_BODY: usize = 1024 * 1024;

/// Whether the request is for a control route rather than for OSS.
pub(crate) fn is_control(parts: &Parts, domain: &str) -> bool {
    parts.uri.path().starts_with(PREFIX) && !names_bucket_in_host(&request_host(parts), domain)
}

/// Answers a control request.
pub(crate) async fn handle(app: &App, parts: &Parts, body: Incoming) -> HttpResponse {
    let route = &parts.uri.path()[PREFIX.len()..];
    match (route, &parts.method) {
        ("faults", &Method::GET) => json_response(StatusCode::OK, &rules_json(app)),
        ("faults", &Method::PUT) => put_faults(app, body).await,
        ("faults", &Method::DELETE) => {
            app.faults.clear();
            response::status_only(StatusCode::NO_CONTENT)
        }
        ("stats", &Method::GET) => json_response(StatusCode::OK, &stats_json(app)),
        ("faults", _) => method_not_allowed("GET, PUT, DELETE"),
        ("stats", _) => method_not_allowed("GET"),
        _ => problem(
            StatusCode::NOT_FOUND,
            format!(
                "no control route {}; the routes are GET/PUT/DELETE /_mock/faults and GET /_mock/stats",
                parts.uri.path()
            ),
        ),
    }
}

async fn put_faults(app: &App, body: Incoming) -> HttpResponse {
    let bytes = match Limited::new(body, MAX_RULES_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!("could not read the rule list (at most {MAX_RULES_BODY} bytes): {e}"),
            );
        }
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
