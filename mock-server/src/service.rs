//! The request pipeline: route, then fault rules, then authentication, then the API's handler; and
//! the headers every response carries.
//!
//! ```text
//! request ─> /_mock/ control routes (unsigned; never faulted)
//!         ─> route (addressing -> RequestContext: API, bucket, key, part number, upload id)
//!         ─> fault rules (see the RequestContext before anything is checked; may answer, drop
//!            the connection, stall, or slow the body down)
//!         ─> auth (V1 / V4 verify, clock skew, key id)
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

use crate::auth::Authenticator;
use crate::body::RequestBody;
use crate::callback::CallbackPolicy;
use crate::control;
use crate::error::OssError;
use crate::faults::action::{Before, ConnectionDropped};
use crate::faults::armed::{Faults, Firing};
use crate::handlers;
use crate::ids::Ids;
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
}

/// Answers one request. Every failure is an OSS error response; the service fails only when a fault
/// rule drops the connection on purpose.
pub(crate) async fn handle(
    app: Arc<App>,
    request: Request<Incoming>,
) -> Result<HttpResponse, ConnectionDropped> {
    let (parts, body) = request.into_parts();
    if control::is_control(&parts, &app.domain) {
        return Ok(control::handle(&app, &parts, body).await);
    }
    let request_id = app.ids.request_id();
    let host_id = route::request_host(&parts);
    let mut body = RequestBody::new(body, &parts.headers);
    let (api, result, firing) =
        process(&app, &parts, &mut body, request_id.clone(), host_id.clone()).await?;
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
        "request"
    );
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
    let result = match app
        .auth
        .authenticate(&ctx, &parts.headers, SystemTime::now())
    {
        Ok(_) => handlers::dispatch(app, &ctx, parts, body).await,
        Err(err) => Err(err),
    };
    Ok((Some(ctx.api), result, firing))
}

fn error_response(err: &OssError, request_id: &str, host_id: &str, head: bool) -> HttpResponse {
    tracing::debug!(request_id, code = %err.code, "error response: {err}");
    let mut response = if head {
        response::status_only(err.status())
    } else {
        let mut r = response::xml(err.document(request_id, host_id).to_xml());
        *r.status_mut() = err.status();
        r
    };
    for (name, value) in &err.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    if head {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    response
}
