//! The request pipeline: route, then authentication, then fault rules, then the API's handler; and
//! the headers every response carries.
//!
//! ```text
//! request ─> /_mock/ control routes (loopback peers or the control token; never faulted)
//!         ─> link: the added latency, then the ceiling on requests in flight (past it:
//!            503 SlowDown, not routed); the body is paced by the link's bandwidths
//!         ─> route (addressing -> RequestContext: API, bucket, key, part number, upload id)
//!         ─> auth (V1 / V4 verify, scope, clock skew, key id, STS token): a refused request is
//!            answered here and meets no fault rule
//!         ─> fault rules (may answer, drop the connection, stall, or slow the body down)
//!         ─> handler (one per API) ─> storage
//!         ─> fault rules again, on the answer (drop it, delay it, tamper with it, cut it short)
//! ```
//!
//! Every response, errors and HEAD included, carries `x-oss-request-id`, `Date` and `Server`. An error
//! becomes the OSS `<Error>` document (no body for HEAD). A fault rule that drops the connection makes
//! the service fail, which hyper answers by closing the connection without a response.

use std::sync::Arc;
use std::time::SystemTime;

use http::request::Parts;
use http::{HeaderValue, Method, Request, header};
use hyper::body::Incoming;
use ossup_proto::headers::REQUEST_ID;

use crate::auth::{Authenticator, Secret};
use crate::body::RequestBody;
use crate::callback::CallbackPolicy;
use crate::conn::Activity;
use crate::control;
use crate::error::OssError;
use crate::faults::action::{Before, ConnectionDropped};
use crate::faults::armed::{Faults, Firing};
use crate::handlers;
use crate::ids::Ids;
use crate::link::{self, Link};
use crate::response::{self, HttpResponse, http_date};
use crate::route::{self, RequestContext};
use crate::stats::Stats;
use crate::storage::Store;

/// What `Server` says, as OSS does.
const SERVER_NAME: &str = "AliyunOSS";

/// Everything a request needs, shared by all connections of a server.
#[derive(Debug)]
pub(crate) struct App {
    pub store: Arc<Store>,
    pub stats: Arc<Stats>,
    /// The fault rules in force.
    pub faults: Arc<Faults>,
    pub auth: Authenticator,
    pub ids: Arc<Ids>,
    /// Base domain of virtual-hosted addressing.
    pub domain: String,
    /// Region reported by GetBucketInfo.
    pub region: String,
    /// `HOST:PORT` the server listens on, reported as the bucket's endpoints.
    pub endpoint_host: String,
    /// Where upload callbacks may go and how long they may take.
    pub callback: CallbackPolicy,
    /// The bearer token the control routes require; `None`: loopback peers only.
    pub control_token: Option<Secret>,
    /// The longest path and query a request may have, in bytes.
    pub max_url_bytes: usize,
    /// The link the server pretends to sit behind.
    pub link: Arc<Link>,
}

/// Answers one request. Every failure is an OSS error response; the service fails only when a fault
/// rule drops the connection on purpose.
pub(crate) async fn handle(
    app: Arc<App>,
    request: Request<Incoming>,
) -> Result<HttpResponse, ConnectionDropped> {
    let (parts, body) = request.into_parts();
    let url_too_long = url_too_long(&parts, app.max_url_bytes);
    if url_too_long.is_none() && control::is_control(&parts, &app.domain) {
        return Ok(control::handle(&app, &parts, body).await);
    }
    let request_id = app.ids.request_id();
    let host_id = route::request_host(&parts);
    let activity = parts.extensions.get::<Arc<Activity>>().cloned();
    let connection = parts.extensions.get::<Arc<link::Connection>>().cloned();
    let mut body =
        RequestBody::new(body, &parts.headers, activity).over(Arc::clone(&app.link), connection);
    app.link.delay().await;
    // Held until the answer is ready: the request counts against the ceiling until then.
    let admitted = app.link.admit();
    let (api, result, firing) = match (url_too_long, &admitted) {
        (Some(err), _) => {
            app.stats.record_request(None);
            (None, Err(err), None)
        }
        (None, Err(ceiling)) => {
            app.stats.record_refused();
            tracing::debug!(
                %request_id,
                ceiling,
                "refused: requests in flight at the ceiling"
            );
            let answer = link::slow_down(&request_id, &host_id, *ceiling);
            (None, Ok(answer), None)
        }
        (None, Ok(_)) => {
            process(&app, &parts, &mut body, request_id.clone(), host_id.clone()).await?
        }
    };
    let mut response = match result {
        Ok(response) => response,
        Err(err) => error_response(&err, &request_id, &host_id, parts.method == Method::HEAD),
    };
    if let (Some(firing), Some(api)) = (&firing, api) {
        response = firing.after(api, response).await?;
    }
    if response.status().as_u16() >= 300 {
        app.stats.record_error_response();
    }
    if !body.discard_rest(&app.stats).await {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        headers.insert(REQUEST_ID, id);
    }
    // A skew_clock fault answers with its own (skewed) Date.
    if !headers.contains_key(header::DATE)
        && let Ok(date) = HeaderValue::from_str(&http_date(SystemTime::now()))
    {
        headers.insert(header::DATE, date);
    }
    headers.insert(header::SERVER, HeaderValue::from_static(SERVER_NAME));
    if parts.method == Method::HEAD {
        *response.body_mut() = response::empty();
    }
    Ok(response)
}

/// The routed API (when routing succeeded), the answer, and the fault rule that fired, if one did.
type Processed = (
    Option<ossup_proto::Api>,
    Result<HttpResponse, OssError>,
    Option<Firing>,
);

async fn process(
    app: &App,
    parts: &Parts,
    body: &mut RequestBody,
    request_id: String,
    host_id: String,
) -> Result<Processed, ConnectionDropped> {
    let ctx: RequestContext = match route::route(parts, &app.domain, request_id, host_id) {
        Ok(ctx) => ctx,
        Err(err) => {
            app.stats.record_request(None);
            return Ok((None, Err(err), None));
        }
    };
    app.stats.record_request(Some(ctx.api));
    tracing::debug!(
        request_id = %ctx.request_id,
        api = %ctx.api,
        addressing = ?ctx.addressing,
        bucket = %ctx.bucket,
        key = ?ctx.key,
        // Which part a request sends: what the fleet chaos counts per part.
        upload_id = ctx.query("uploadId").unwrap_or(""),
        part = ctx.query("partNumber").unwrap_or(""),
        "request"
    );
    // Authentication comes first: a fault rule may change state (expire_upload aborts an upload),
    // so only a request the server would have served may meet the rules. A refused request is
    // answered with its authentication error and is not counted by any rule.
    if let Err(err) = app
        .auth
        .authenticate(&ctx, &parts.headers, SystemTime::now())
    {
        return Ok((Some(ctx.api), Err(err), None));
    }
    let firing = app.faults.decide(&ctx);
    if let Some(firing) = &firing {
        app.stats.record_fault(firing.action.kind_index());
        tracing::debug!(
            request_id = %ctx.request_id,
            rule = firing.index,
            kind = firing.action.kind(),
            "fault rule fired"
        );
        match firing.before(app, &ctx, &parts.headers, body).await {
            Before::Proceed => {}
            Before::Fail(err) => return Ok((Some(ctx.api), Err(err), None)),
            Before::Respond(response) => return Ok((Some(ctx.api), Ok(response), None)),
            Before::Drop(dropped) => return Err(dropped),
        }
    }
    match crate::traffic::requested(ctx.api, &parts.headers) {
        Ok(Some(bytes_per_sec)) => body.throttle(bytes_per_sec),
        Ok(None) => {}
        Err(err) => return Ok((Some(ctx.api), Err(err), firing)),
    }
    let result = handlers::dispatch(app, &ctx, parts, body).await;
    Ok((Some(ctx.api), result, firing))
}

/// `400 InvalidArgument` when the request's path and query are longer than `max` bytes, before
/// anything is decoded: the mock's own bound on what it reads (OSS documents none beyond the key's
/// 1023 bytes).
fn url_too_long(parts: &Parts, max: usize) -> Option<OssError> {
    let url = parts.uri.path_and_query().map_or("", |pq| pq.as_str());
    (url.len() > max).then(|| {
        let mut start = 64.min(url.len());
        while !url.is_char_boundary(start) {
            start -= 1;
        }
        OssError::invalid_argument(
            "URL",
            &format!("{}...", &url[..start]),
            format!(
                "The request's path and query are {} bytes long; oss-mock reads at most {max} (--max-url-bytes).",
                url.len()
            ),
        )
    })
}

fn error_response(err: &OssError, request_id: &str, host_id: &str, head: bool) -> HttpResponse {
    tracing::debug!(request_id, code = %err.code, "error response: {err}");
    let mut response = response::error_document(
        err.document(request_id, host_id).to_xml(),
        err.status(),
        head,
    );
    for (name, value) in &err.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}
