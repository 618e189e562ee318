//! Upload callbacks: after PutObject or CompleteMultipartUpload with `x-oss-callback`, the object is
//! stored, then the mock POSTs the callback body to the callback URL as OSS does and hands the callback
//! server's answer back as the response body.
//!
//! The callback is read and checked before anything is stored ([`Callback::from_headers`]): malformed
//! base64 or JSON is `400 InvalidArgument`, as OSS answers; a URL naming a host the mock may not call
//! (anything but loopback and the `--callback-allow` hosts) is `400 InvalidArgument` too, and the
//! object is not stored. After the store, [`Callback::answer`] performs the callback: a reply that is
//! 2xx with a JSON body makes the response (`200`, the reply as body, the upload's `ETag` and CRC-64
//! headers); a refused connection, a timeout, another status or a body that is not JSON makes
//! `203 CallbackFailed`, the object kept.
//!
//! The body template's `${…}` variables are filled in from the stored object: `bucket`, `object`,
//! `etag` (unquoted), `size`, `mimeType`, `crc64`, `contentMd5` (PutObject only), `clientIp`,
//! `reqId`, `operation`, and the `x:` variables of `x-oss-callback-var`. `imageInfo.height`,
//! `imageInfo.width`, `imageInfo.format` and `vpcId` are always empty (the mock reads no images and
//! has no VPC). With `application/x-www-form-urlencoded` (the default) values are percent-encoded;
//! with `application/json` text values become JSON strings (quoted, escaped) and `size` a number, so
//! a template reads `{"object":${object},"size":${size}}`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use ossup_proto::headers::{CALLBACK, CALLBACK_VAR};
use ossup_proto::{Api, ErrorCode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::error::OssError;
use crate::response::{self, HttpResponse};

/// The most URLs one callback may list (tried in order until one succeeds), as OSS.
const MAX_URLS: usize = 5;
/// The largest callback reply the mock reads, as OSS: 3 MB.
const MAX_REPLY: usize = 3 * 1024 * 1024;
/// The body type of a callback that names none.
const FORM: &str = "application/x-www-form-urlencoded";
/// The JSON body type.
const JSON: &str = "application/json";

/// What form encoding leaves unescaped.
const FORM_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Base64 as the SDKs write it, padded or not.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The address of the client that sent a request, put in its extensions by the server: the
/// callback's `${clientIp}`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub SocketAddr);

/// Which hosts callbacks may go to, and how long a callback server may take.
///
/// A callback makes the mock a client of whatever host the uploader names, and hands the answer
/// back: a way to reach, and to read, services only the mock can reach. So:
///
/// - a mock listening on loopback only (the default) calls back to loopback freely: whoever can
///   reach the mock is on this machine already; its failures say what happened, as OSS's do.
/// - a mock listening beyond loopback calls back only to the `--callback-allow` hosts, loopback
///   included only when listed; and every failure says only `callback failed` (the reason goes to
///   the server's log), so a remote client cannot map which ports answer.
/// - a host name is allowed by its spelling (parse time), then resolved when the callback is made;
///   every address it resolves to must be allowed too, and the connection goes to one of those
///   checked addresses, never to a second lookup's answer.
#[derive(Debug, Clone)]
pub(crate) struct CallbackPolicy {
    allow: Vec<AllowRule>,
    timeout: Duration,
    /// Loopback is allowed without being listed: the mock listens on loopback only.
    loopback_implicit: bool,
    /// Failures are reported as `callback failed` only: the mock listens beyond loopback.
    terse: bool,
}

/// One `--callback-allow` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AllowRule {
    /// A host name, lowercase.
    Name(String),
    /// An address block: the address and the prefix length.
    Net(IpAddr, u8),
}

impl AllowRule {
    fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        let bad = |why: &str| {
            format!(
                "--callback-allow {entry:?}: {why}; give a host name, an IP address or a CIDR block such as 10.0.0.0/8"
            )
        };
        if entry.is_empty() {
            return Err(bad("empty"));
        }
        if let Some((addr, prefix)) = entry.split_once('/') {
            let addr: IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| bad(&format!("the prefix length must be 0 to {max}")))?;
            return Ok(AllowRule::Net(addr, prefix));
        }
        let bare = entry.trim_start_matches('[').trim_end_matches(']');
        if let Ok(addr) = bare.parse::<IpAddr>() {
            let prefix = if addr.is_ipv4() { 32 } else { 128 };
            return Ok(AllowRule::Net(addr, prefix));
        }
        if entry
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            Ok(AllowRule::Name(entry.to_ascii_lowercase()))
        } else {
            Err(bad("not a host name"))
        }
    }

    fn matches(&self, host: &str) -> bool {
        match (self, host.parse::<IpAddr>()) {
            (AllowRule::Name(name), Err(_)) => name.eq_ignore_ascii_case(host),
            (AllowRule::Net(net, prefix), Ok(addr)) => in_block(addr, *net, *prefix),
            _ => false,
        }
    }
}

fn in_block(addr: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl CallbackPolicy {
    /// Callbacks to the `allow` entries (and to loopback unless the server is `exposed`, listening
    /// beyond loopback), answered within `timeout`. Fails with a message naming the entry that is not
    /// a host name, IP address or CIDR block.
    pub(crate) fn new(allow: &[String], timeout: Duration, exposed: bool) -> Result<Self, String> {
        Ok(Self {
            allow: allow
                .iter()
                .map(|entry| AllowRule::parse(entry))
                .collect::<Result<_, _>>()?,
            timeout,
            loopback_implicit: !exposed,
            terse: exposed,
        })
    }

    /// Whether a callback may connect to `addr`: loopback when implicit or when `localhost` is
    /// listed, or an address inside a listed address or block.
    fn allows_address(&self, addr: IpAddr) -> bool {
        // An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is the IPv4 address it maps.
        let addr = addr.to_canonical();
        let localhost_listed = self
            .allow
            .iter()
            .any(|rule| matches!(rule, AllowRule::Name(name) if name == "localhost"));
        (addr.is_loopback() && (self.loopback_implicit || localhost_listed))
            || self.allow.iter().any(|rule| match rule {
                AllowRule::Net(net, prefix) => in_block(addr, *net, *prefix),
                AllowRule::Name(_) => false,
            })
    }

    /// Whether `addr`, one of the addresses the allowed name `host` resolved to, may be connected to:
    /// an address allowed on its own, or, for a name listed with `--callback-allow`, any address but
    /// those that reach this machine or its link (loopback, unspecified, link-local such as the cloud
    /// metadata address 169.254.169.254, multicast, broadcast): a listed name must not be a way
    /// around the address rules.
    fn allows_resolved(&self, host: &str, addr: IpAddr) -> bool {
        if self.allows_address(addr) {
            return true;
        }
        let listed = self
            .allow
            .iter()
            .any(|rule| matches!(rule, AllowRule::Name(name) if name.eq_ignore_ascii_case(host)));
        let special = match addr.to_canonical() {
            IpAddr::V4(v4) => {
                v4.is_loopback()
                    || v4.is_unspecified()
                    || v4.is_link_local()
                    || v4.is_multicast()
                    || v4.is_broadcast()
                    || v4.octets()[0] == 0
            }
            IpAddr::V6(v6) => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || v6.is_unicast_link_local()
            }
        };
        listed && !special
    }

    /// Whether failures are reported as `callback failed` only.
    pub(crate) fn terse(&self) -> bool {
        self.terse
    }

    /// How long a callback server may take to answer.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether a callback may go to `host` (a name, or an address without brackets), judged by its
    /// spelling: an address must be allowed itself, a name must be listed (or be `localhost` on a
    /// loopback-only server). A name's addresses are checked again when it is resolved.
    fn allows(&self, host: &str) -> bool {
        match host.parse::<IpAddr>() {
            Ok(addr) => self.allows_address(addr),
            Err(_) => {
                (self.loopback_implicit && host.eq_ignore_ascii_case("localhost"))
                    || self.allow.iter().any(|rule| rule.matches(host))
            }
        }
    }

    /// The addresses to try for `target`: its address, or every address its name resolves to, each
    /// checked. `Err` when the name does not resolve or any address is not allowed.
    async fn addresses(&self, target: &Target) -> Result<Vec<SocketAddr>, String> {
        if let Ok(addr) = target.host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(addr, target.port)]);
        }
        let resolved: Vec<SocketAddr> =
            tokio::net::lookup_host((target.host.as_str(), target.port))
                .await
                .map_err(|e| format!("{} does not resolve: {e}", target.host))?
                .collect();
        if resolved.is_empty() {
            return Err(format!("{} resolves to no address", target.host));
        }
        if let Some(bad) = resolved
            .iter()
            .find(|addr| !self.allows_resolved(&target.host, addr.ip()))
        {
            return Err(format!(
                "{} resolves to {}, which callbacks may not reach (allow the address with --callback-allow)",
                target.host,
                bad.ip()
            ));
        }
        Ok(resolved)
    }
}

/// Where one callback URL points.
#[derive(Debug, Clone)]
struct Target {
    /// The URL as the callback gave it, for messages.
    url: String,
    /// The host to connect to, without brackets.
    host: String,
    port: u16,
    /// `HOST[:PORT]` as written in the URL: the default `Host` header.
    authority: String,
    path_and_query: String,
}

/// How the callback body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyType {
    Form,
    Json,
}

impl BodyType {
    fn content_type(self) -> &'static str {
        match self {
            BodyType::Form => FORM,
            BodyType::Json => JSON,
        }
    }
}

/// A callback an upload asked for, checked and ready to perform.
#[derive(Debug, Clone)]
pub(crate) struct Callback {
    targets: Vec<Target>,
    host: Option<String>,
    body: String,
    body_type: BodyType,
    vars: Vec<(String, String)>,
}

/// What the callback body's variables are filled in from.
#[derive(Debug, Clone)]
pub(crate) struct UploadFacts {
    /// The API that stored the object.
    pub operation: Api,
    pub bucket: String,
    pub key: String,
    /// As sent in `ETag` (quoted).
    pub etag: String,
    pub size: u64,
    pub content_type: Option<String>,
    pub crc64: u64,
    /// Base64 MD5 of the body (PutObject).
    pub content_md5: Option<String>,
    pub client_ip: Option<IpAddr>,
    pub request_id: String,
}

fn invalid(argument: &str, value: &str, message: impl Into<String>) -> OssError {
    OssError::invalid_argument(argument, value, message)
}

/// A field of the callback's JSON, which must be a string when present.
fn string_field<'a>(
    config: &'a serde_json::Map<String, Value>,
    name: &str,
    decoded: &str,
) -> Result<Option<&'a str>, OssError> {
    match config.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(
            CALLBACK,
            decoded,
            format!("The {name} of the callback configuration must be a string."),
        )),
    }
}

fn decode_json(header: &str, raw: &str) -> Result<(String, Value), OssError> {
    let bytes = BASE64.decode(raw.trim()).map_err(|_| {
        invalid(
            header,
            raw,
            format!("The {header} configuration is not base64 encoded."),
        )
    })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        invalid(
            header,
            raw,
            format!("The {header} configuration is not json format: it is not UTF-8."),
        )
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        invalid(
            header,
            &text,
            format!("The {header} configuration is not json format ({e})."),
        )
    })?;
    if !value.is_object() {
        return Err(invalid(
            header,
            &text,
            format!("The {header} configuration is not json format: it must be a JSON object."),
        ));
    }
    Ok((text, value))
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .filter(|v| !v.trim().is_empty())
}

impl Callback {
    /// The callback of a request, checked: `None` without `x-oss-callback` (or with an empty
    /// `callbackUrl`, which OSS reads as no callback). Malformed headers and URLs the policy does not
    /// allow are `400 InvalidArgument`, before anything is stored.
    pub(crate) fn from_headers(
        headers: &HeaderMap,
        policy: &CallbackPolicy,
    ) -> Result<Option<Self>, OssError> {
        let Some(raw) = header_text(headers, CALLBACK) else {
            return Ok(None);
        };
        let (decoded, value) = decode_json("callback", &raw)?;
        let Value::Object(config) = value else {
            unreachable!("decode_json returns objects only")
        };
        let urls = string_field(&config, "callbackUrl", &decoded)?.unwrap_or("");
        if urls.trim().is_empty() {
            return Ok(None);
        }
        let urls: Vec<&str> = urls
            .split(';')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        if urls.len() > MAX_URLS {
            return Err(invalid(
                "callbackUrl",
                &urls.join(";"),
                format!(
                    "The callbackUrl lists {} URLs; at most {MAX_URLS} are allowed.",
                    urls.len()
                ),
            ));
        }
        let targets = urls
            .iter()
            .map(|url| parse_target(url, policy))
            .collect::<Result<Vec<_>, _>>()?;
        let host = string_field(&config, "callbackHost", &decoded)?
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_owned);
        if let Some(host) = &host
            && HeaderValue::from_str(host).is_err()
        {
            return Err(invalid(
                "callbackHost",
                host,
                "The callbackHost is not a valid Host header value.",
            ));
        }
        let body = match config.get("callbackBody") {
            Some(Value::String(body)) if !body.is_empty() => body.clone(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(invalid(
                    "callbackBody",
                    "",
                    "The callbackBody of the callback configuration is empty; give the body template, e.g. bucket=${bucket}&object=${object}.",
                ));
            }
            Some(_) => {
                return Err(invalid(
                    CALLBACK,
                    &decoded,
                    "The callbackBody of the callback configuration must be a string.",
                ));
            }
        };
        let body_type = match string_field(&config, "callbackBodyType", &decoded)?.map(str::trim) {
            None | Some("") => BodyType::Form,
            Some(t) if t.eq_ignore_ascii_case(FORM) => BodyType::Form,
            Some(t) if t.eq_ignore_ascii_case(JSON) => BodyType::Json,
            Some(t) => {
                return Err(invalid(
                    "callbackBodyType",
                    t,
                    format!("The callbackBodyType must be {FORM} or {JSON}."),
                ));
            }
        };
        match config.get("callbackSNI") {
            None | Some(Value::Null | Value::Bool(_)) => {}
            Some(other) => {
                return Err(invalid(
                    "callbackSNI",
                    &other.to_string(),
                    "The callbackSNI of the callback configuration must be true or false.",
                ));
            }
        }
        Ok(Some(Self {
            targets,
            host,
            body,
            body_type,
            vars: callback_vars(headers)?,
        }))
    }

    /// Performs the callback for a stored object and builds the response: `200` with the callback
    /// server's reply as body, or `Err` with `203 CallbackFailed` saying why. Both carry `headers`
    /// (the upload's `ETag`, CRC-64, …), since the object is stored either way.
    pub(crate) async fn answer(
        &self,
        facts: &UploadFacts,
        policy: &CallbackPolicy,
        headers: &[(&'static str, String)],
    ) -> Result<HttpResponse, OssError> {
        let body = self.render(facts);
        match self.perform(&body, policy).await {
            Ok(reply) => {
                let mut response = http::Response::new(response::full(reply.body));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    reply.content_type.unwrap_or(HeaderValue::from_static(JSON)),
                );
                for (name, value) in headers {
                    response::set_header(&mut response, name, value);
                }
                Ok(response)
            }
            Err(why) => {
                tracing::info!(
                    request_id = %facts.request_id,
                    "callback for {}/{} failed: {why}",
                    facts.bucket,
                    facts.key
                );
                // Beyond loopback the reason stays in the log: "refused", "timed out" or "answered
                // 404" would tell a remote client which ports of which hosts are open.
                let message = if policy.terse() {
                    "callback failed".to_owned()
                } else {
                    why
                };
                let mut err = OssError::new(ErrorCode::CallbackFailed).message(message);
                for (name, value) in headers {
                    if let Ok(value) = HeaderValue::from_str(value) {
                        err.headers
                            .push((http::HeaderName::from_static(name), value));
                    }
                }
                Err(err)
            }
        }
    }

    /// Tries each URL in order until one answers well; the error of the last one otherwise.
    async fn perform(&self, body: &str, policy: &CallbackPolicy) -> Result<Reply, String> {
        let timeout = policy.timeout();
        let mut last = String::new();
        for target in &self.targets {
            let host = self.host.as_deref().unwrap_or(&target.authority);
            let attempt = post(target, policy, host, self.body_type, body);
            match tokio::time::timeout(timeout, attempt).await {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(why)) => last = why,
                Err(_) => {
                    last = format!(
                        "Cost too long time. ({}: no answer within {timeout:?})",
                        target.url
                    )
                }
            }
        }
        Err(last)
    }

    /// The callback body: the template with its variables filled in.
    fn render(&self, facts: &UploadFacts) -> String {
        let mut out = String::with_capacity(self.body.len() + 64);
        let mut rest = self.body.as_str();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                return out;
            };
            let name = &after[..end];
            match self.variable(name, facts) {
                Some(value) => out.push_str(&value.encode(self.body_type)),
                None => out.push_str(&rest[start..start + 2 + end + 1]),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    fn variable(&self, name: &str, facts: &UploadFacts) -> Option<Var> {
        let text = |s: &str| Some(Var::Text(s.to_owned()));
        match name {
            "bucket" => text(&facts.bucket),
            "object" => text(&facts.key),
            "etag" => text(facts.etag.trim_matches('"')),
            "size" => Some(Var::Number(facts.size)),
            "mimeType" => text(
                facts
                    .content_type
                    .as_deref()
                    .unwrap_or("application/octet-stream"),
            ),
            "crc64" => text(&facts.crc64.to_string()),
            "contentMd5" => text(facts.content_md5.as_deref().unwrap_or("")),
            "clientIp" => text(&facts.client_ip.map(|ip| ip.to_string()).unwrap_or_default()),
            "reqId" => text(&facts.request_id),
            "operation" => text(facts.operation.name()),
            "vpcId" => text(""),
            "imageInfo.height" | "imageInfo.width" | "imageInfo.format" => {
                Some(Var::Raw(String::new()))
            }
            custom if custom.starts_with("x:") => Some(Var::Text(
                self.vars
                    .iter()
                    .find(|(k, _)| k == custom)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
            )),
            _ => None,
        }
    }
}

/// A variable's value and how it goes into a body.
enum Var {
    /// Text: percent-encoded in a form, a JSON string in JSON.
    Text(String),
    /// A number: percent-encoded in a form (digits stay), bare in JSON.
    Number(u64),
    /// Inserted as is in both.
    Raw(String),
}

impl Var {
    fn encode(&self, body_type: BodyType) -> String {
        match (self, body_type) {
            (Var::Text(s), BodyType::Form) => utf8_percent_encode(s, FORM_VALUE).to_string(),
            (Var::Text(s), BodyType::Json) => Value::String(s.clone()).to_string(),
            (Var::Number(n), _) => n.to_string(),
            (Var::Raw(s), _) => s.clone(),
        }
    }
}

/// `x-oss-callback-var`: a base64 JSON object of `x:` names to string values.
fn callback_vars(headers: &HeaderMap) -> Result<Vec<(String, String)>, OssError> {
    let Some(raw) = header_text(headers, CALLBACK_VAR) else {
        return Ok(Vec::new());
    };
    let (decoded, value) = decode_json("callback-var", &raw)?;
    let Value::Object(map) = value else {
        unreachable!("decode_json returns objects only")
    };
    let mut vars = Vec::with_capacity(map.len());
    for (name, value) in map {
        if !name.starts_with("x:") {
            return Err(invalid(
                "callback-var",
                &decoded,
                format!(
                    "The callback-var key {name:?} does not start with x:; custom callback variables are named x:NAME."
                ),
            ));
        }
        let Value::String(value) = value else {
            return Err(invalid(
                "callback-var",
                &decoded,
                format!("The callback-var value of {name} must be a string."),
            ));
        };
        vars.push((name, value));
    }
    Ok(vars)
}

fn parse_target(url: &str, policy: &CallbackPolicy) -> Result<Target, OssError> {
    let bad = |why: &str| {
        invalid(
            "callbackUrl",
            url,
            format!("The callbackUrl {url} is not valid: {why}."),
        )
    };
    let full = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    let uri: Uri = full.parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(invalid(
                "callbackUrl",
                url,
                format!(
                    "oss-mock does not make https callbacks ({url}); give an http:// callback URL. Nothing was stored."
                ),
            ));
        }
        _ => return Err(bad("the scheme must be http or https")),
    }
    let authority = uri
        .authority()
        .ok_or_else(|| bad("it names no host"))?
        .to_string();
    if authority.contains('@') {
        return Err(bad("user information is not allowed"));
    }
    let host = uri
        .host()
        .ok_or_else(|| bad("it names no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if host.is_empty() {
        return Err(bad("it names no host"));
    }
    let port = match authority.rsplit_once(':') {
        Some((_, port)) if !authority.ends_with(']') => match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(bad("the port must be a number from 1 to 65535")),
        },
        _ => 80,
    };
    if !policy.allows(&host) {
        return Err(invalid(
            "callbackUrl",
            url,
            format!(
                "oss-mock calls back only to loopback hosts and to hosts allowed with --callback-allow (MockConfig::callback_allow); {host} is not one of them, so nothing was requested and nothing was stored."
            ),
        ));
    }
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| !p.is_empty())
        .unwrap_or("/")
        .to_owned();
    Ok(Target {
        url: url.to_owned(),
        host,
        port,
        authority,
        path_and_query,
    })
}

/// A callback server's good answer.
struct Reply {
    body: Bytes,
    content_type: Option<HeaderValue>,
}

/// One POST to one callback URL; `Err` says why it did not count as an answer, in OSS's words.
async fn post(
    target: &Target,
    policy: &CallbackPolicy,
    host: &str,
    body_type: BodyType,
    body: &str,
) -> Result<Reply, String> {
    let unreachable = |detail: String| {
        format!(
            "Error status : -1.OSS can not connect to your callbackUrl, please check it. ({}: {detail})",
            target.url
        )
    };
    // Connect to an address that was checked, never to a fresh lookup's answer.
    let addresses = policy.addresses(target).await.map_err(unreachable)?;
    let stream = tokio::net::TcpStream::connect(&addresses[..])
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = Request::builder()
        .method(Method::POST)
        .uri(target.path_and_query.as_str())
        .header(header::HOST, host)
        .header(header::CONTENT_TYPE, body_type.content_type())
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::USER_AGENT, "oss-mock-callback")
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .map_err(|e| unreachable(e.to_string()))?;
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let (head, body) = response.into_parts();
        if head
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|len| len > MAX_REPLY as u64)
        {
            return Err(
                "Error status : 400.User server return too long content-length value.".to_owned(),
            );
        }
        let body = Limited::new(body, MAX_REPLY)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    "Error status : 400.User server return too long content-length value."
                        .to_owned()
                } else {
                    unreachable(format!("the reply was cut short: {e}"))
                }
            })?
            .to_bytes();
        if !head.status.is_success() {
            return Err(format!("Error status : {}.", head.status.as_u16()));
        }
        if serde_json::from_slice::<Value>(&body).is_err() {
            return Err(format!(
                "Response body is not valid json format. ({} answered {} with {} bytes that are not JSON)",
                target.url,
                head.status.as_u16(),
                body.len()
            ));
        }
        Ok(Reply {
            body,
            content_type: head.headers.get(header::CONTENT_TYPE).cloned(),
        })
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str]) -> CallbackPolicy {
        policy_of(allow, false)
    }

    fn policy_of(allow: &[&str], exposed: bool) -> CallbackPolicy {
        CallbackPolicy::new(
            &allow.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
            Duration::from_secs(5),
            exposed,
        )
        .unwrap()
    }

    fn headers(callback: &str, vars: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            CALLBACK,
            HeaderValue::from_str(&BASE64.encode(callback)).unwrap(),
        );
        if let Some(vars) = vars {
            h.insert(
                CALLBACK_VAR,
                HeaderValue::from_str(&BASE64.encode(vars)).unwrap(),
            );
        }
        h
    }

    fn facts() -> UploadFacts {
        UploadFacts {
            operation: Api::CompleteMultipartUpload,
            bucket: "bucket".into(),
            key: "dir/a b&c.txt".into(),
            etag: "\"ABC-2\"".into(),
            size: 1234,
            content_type: Some("text/plain".into()),
            crc64: 42,
            content_md5: None,
            client_ip: Some("127.0.0.1".parse().unwrap()),
            request_id: "RID".into(),
        }
    }

    #[test]
    fn loopback_is_always_allowed_and_other_hosts_only_when_listed() {
        let p = policy(&[]);
        for host in ["127.0.0.1", "127.8.9.10", "::1", "localhost", "LOCALHOST"] {
            assert!(p.allows(host), "{host}");
        }
        for host in ["10.0.0.1", "example.com", "::2", "localhost.example.com"] {
            assert!(!p.allows(host), "{host}");
        }
        let p = policy(&["example.com", "10.0.0.0/8", "fd00::/8", "192.168.1.7"]);
        for host in [
            "example.com",
            "EXAMPLE.com",
            "10.200.3.4",
            "fd12::1",
            "192.168.1.7",
        ] {
            assert!(p.allows(host), "{host}");
        }
        for host in ["www.example.com", "11.0.0.1", "192.168.1.8", "fe80::1"] {
            assert!(!p.allows(host), "{host}");
        }
        for bad in ["", "10.0.0.0/33", "exa mple.com", "x/8"] {
            assert!(
                CallbackPolicy::new(&[bad.to_owned()], Duration::ZERO, false).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn beyond_loopback_loopback_callbacks_must_be_listed() {
        let p = policy_of(&[], true);
        for host in ["127.0.0.1", "::1", "localhost", "::ffff:127.0.0.1"] {
            assert!(!p.allows(host), "{host}");
        }
        let p = policy_of(&["127.0.0.1"], true);
        assert!(p.allows("127.0.0.1"));
        assert!(!p.allows("127.0.0.2") && !p.allows("localhost"));
        let p = policy_of(&["localhost"], true);
        assert!(p.allows("localhost") && p.allows("127.0.0.1") && p.allows("::1"));
        assert!(p.terse() && !policy(&[]).terse());
    }

    #[test]
    fn a_listed_name_may_not_resolve_to_this_machine_or_its_link() {
        let p = policy_of(&["callback.example", "10.9.0.0/16"], true);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(p.allows_resolved("callback.example", ip("203.0.113.7")));
        assert!(p.allows_resolved("Callback.Example", ip("10.1.2.3")));
        for forbidden in [
            "127.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "fe80::1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(
                !p.allows_resolved("callback.example", ip(forbidden)),
                "{forbidden}"
            );
        }
        // An address rule allows an address whatever name led to it; an unlisted name gets nothing
        // else.
        assert!(p.allows_resolved("other.example", ip("10.9.1.1")));
        assert!(!p.allows_resolved("other.example", ip("203.0.113.7")));
        // On a loopback-only server, localhost resolves to loopback, which is allowed.
        let local = policy(&[]);
        assert!(local.allows_resolved("localhost", ip("127.0.0.1")));
        assert!(!local.allows_resolved("localhost", ip("10.0.0.1")));
    }

    #[tokio::test]
    async fn a_name_is_resolved_and_every_address_checked_before_connecting() {
        let p = policy(&[]);
        let target = |host: &str| Target {
            url: format!("http://{host}:9/"),
            host: host.to_owned(),
            port: 9,
            authority: format!("{host}:9"),
            path_and_query: "/".to_owned(),
        };
        let addrs = p.addresses(&target("localhost")).await.unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 9));
        let exposed = policy_of(&["localhost"], true);
        assert!(exposed.addresses(&target("localhost")).await.is_ok());
    }

    #[test]
    fn form_bodies_percent_encode_values_and_keep_unknown_names() {
        let cb = Callback::from_headers(
            &headers(
                r#"{"callbackUrl":"127.0.0.1:9/cb","callbackBody":"b=${bucket}&o=${object}&e=${etag}&s=${size}&m=${mimeType}&c=${crc64}&v=${x:v}&none=${x:none}&h=${imageInfo.height}&op=${operation}&ip=${clientIp}&r=${reqId}&u=${unknown}&cut=${"}"#,
                Some(r#"{"x:v":"a b/ü"}"#),
            ),
            &policy(&[]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(cb.targets[0].authority, "127.0.0.1:9");
        assert_eq!(cb.targets[0].path_and_query, "/cb");
        assert_eq!(
            cb.render(&facts()),
            "b=bucket&o=dir%2Fa%20b%26c.txt&e=ABC-2&s=1234&m=text%2Fplain&c=42&v=a%20b%2F%C3%BC&none=&h=&op=CompleteMultipartUpload&ip=127.0.0.1&r=RID&u=${unknown}&cut=${"
        );
    }

    #[test]
    fn json_bodies_quote_text_and_leave_size_a_number() {
        let cb = Callback::from_headers(
            &headers(
                r#"{"callbackUrl":"http://localhost:1/","callbackBody":"{\"object\":${object},\"size\":${size},\"v\":${x:v}}","callbackBodyType":"application/json"}"#,
                Some(r#"{"x:v":"say \"hi\""}"#),
            ),
            &policy(&[]),
        )
        .unwrap()
        .unwrap();
        let body = cb.render(&facts());
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["object"], "dir/a b&c.txt");
        assert_eq!(parsed["size"], 1234);
        assert_eq!(parsed["v"], "say \"hi\"");
    }

    #[test]
    fn malformed_callbacks_are_invalid_argument_naming_what_is_wrong() {
        let p = policy(&[]);
        let code_and_message = |h: HeaderMap| {
            let err = Callback::from_headers(&h, &p).unwrap_err();
            (err.code, err.message.unwrap_or_default())
        };
        let mut raw = HeaderMap::new();
        raw.insert(CALLBACK, HeaderValue::from_static("x123-*&"));
        let cases = [
            (raw, "not base64 encoded"),
            (headers("not json", None), "not json format"),
            (headers("[1,2]", None), "JSON object"),
            (
                headers(r#"{"callbackUrl":"127.0.0.1:1","callbackBody":""}"#, None),
                "callbackBody",
            ),
            (
                headers(r#"{"callbackUrl":"127.0.0.1:1","callbackBody":[1]}"#, None),
                "must be a string",
            ),
            (
                headers(
                    r#"{"callbackUrl":"127.0.0.1:1","callbackBody":"x","callbackBodyType":"text/xml"}"#,
                    None,
                ),
                "callbackBodyType",
            ),
            (
                headers(
                    r#"{"callbackUrl":"127.0.0.1:1","callbackBody":"x","callbackSNI":"yes"}"#,
                    None,
                ),
                "callbackSNI",
            ),
            (
                headers(r#"{"callbackUrl":"127.0.0.1:x","callbackBody":"x"}"#, None),
                "not valid",
            ),
            (
                headers(
                    r#"{"callbackUrl":"https://127.0.0.1/","callbackBody":"x"}"#,
                    None,
                ),
                "https",
            ),
            (
                headers(
                    r#"{"callbackUrl":"http://10.1.2.3/cb","callbackBody":"x"}"#,
                    None,
                ),
                "10.1.2.3 is not one of them",
            ),
            (
                headers(r#"{"callbackUrl":"a;b;c;d;e;f","callbackBody":"x"}"#, None),
                "at most 5",
            ),
            (
                headers(
                    r#"{"callbackUrl":"127.0.0.1:1","callbackBody":"x"}"#,
                    Some(r#"{"var":"v"}"#),
                ),
                "does not start with x:",
            ),
            (
                headers(
                    r#"{"callbackUrl":"127.0.0.1:1","callbackBody":"x"}"#,
                    Some(r#"{"x:n":5}"#),
                ),
                "must be a string",
            ),
        ];
        for (h, says) in cases {
            let (code, message) = code_and_message(h);
            assert_eq!(code, ErrorCode::InvalidArgument, "{says}");
            assert!(message.contains(says), "{says}: {message}");
        }
    }

    #[test]
    fn an_empty_callback_url_means_no_callback() {
        let h = headers(r#"{"callbackUrl":"","callbackBody":"x"}"#, None);
        assert!(Callback::from_headers(&h, &policy(&[])).unwrap().is_none());
        assert!(
            Callback::from_headers(&HeaderMap::new(), &policy(&[]))
                .unwrap()
                .is_none()
        );
    }
}
