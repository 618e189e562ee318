//! The upload callback: after OSS stores the object (PutObject, or CompleteMultipartUpload), it POSTs
//! a body built from a template to the application's server and hands the server's answer back.
//!
//! A [`Callback`] travels as `x-oss-callback` and `x-oss-callback-var` (base64 JSON), both signed.
//! What came of it is a [`CallbackResult`]: the callback server's reply, or OSS's `203
//! CallbackFailed` (the object is stored all the same).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderName, HeaderValue};
use ossup_proto::headers::{CALLBACK, CALLBACK_VAR};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{Error, ServiceError};

/// The most callback URLs OSS takes (tried in order until one answers).
pub const MAX_CALLBACK_URLS: usize = 5;

/// How the callback body is encoded (`callbackBodyType`), and so how OSS fills in its variables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum CallbackBodyType {
    /// `application/x-www-form-urlencoded` (OSS's default): variables are percent-encoded, e.g.
    /// `bucket=${bucket}&object=${object}&size=${size}`.
    #[default]
    FormUrlEncoded,
    /// `application/json`: variables become JSON values, so the template leaves them unquoted, e.g.
    /// `{"object":${object},"size":${size}}`.
    Json,
}

impl CallbackBodyType {
    /// The `Content-Type` OSS sends the callback with.
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackBodyType::FormUrlEncoded => "application/x-www-form-urlencoded",
            CallbackBodyType::Json => "application/json",
        }
    }
}

impl FromStr for CallbackBodyType {
    type Err = Error;

    /// `form` or `json`, or the content types themselves.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "form" | "application/x-www-form-urlencoded" => Ok(CallbackBodyType::FormUrlEncoded),
            "json" | "application/json" => Ok(CallbackBodyType::Json),
            _ => Err(Error::config(format!(
                "unknown callback body type {s:?}; use form (application/x-www-form-urlencoded) or json (application/json)"
            ))),
        }
    }
}

impl fmt::Display for CallbackBodyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An upload callback: where OSS POSTs once the object is stored, and what.
///
/// The body is a template whose `${…}` variables OSS fills in: `${bucket}`, `${object}`, `${etag}`,
/// `${size}`, `${mimeType}`, `${crc64}`, `${contentMd5}` (PutObject), `${imageInfo.*}`, and the
/// custom `${x:NAME}` variables given with [`var`](Self::var).
///
/// ```
/// use ossup::{Callback, CallbackBodyType};
/// let callback = Callback::new(
///     "http://app.example.com/uploaded",
///     "{\"object\":${object},\"size\":${size},\"user\":${x:user}}",
/// )
/// .body_type(CallbackBodyType::Json)
/// .var("user", "alice");
/// assert!(callback.validate().is_ok());
/// assert_eq!(callback.vars()["x:user"], "alice");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    urls: Vec<String>,
    host: Option<String>,
    body: String,
    body_type: CallbackBodyType,
    sni: Option<bool>,
    vars: BTreeMap<String, String>,
}

impl Callback {
    /// A callback POSTing `body` (a template) to `url`.
    pub fn new(url: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            urls: vec![url.into()],
            host: None,
            body: body.into(),
            body_type: CallbackBodyType::default(),
            sni: None,
            vars: BTreeMap::new(),
        }
    }

    /// Adds a URL OSS tries when the earlier ones fail (at most [`MAX_CALLBACK_URLS`] in all).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.urls.push(url.into());
        self
    }

    /// The `Host` header of the callback request; by default the URL's host.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// How the body is encoded; form by default.
    pub fn body_type(mut self, body_type: CallbackBodyType) -> Self {
        self.body_type = body_type;
        self
    }

    /// Whether OSS sends SNI when calling an `https` URL.
    pub fn sni(mut self, sni: bool) -> Self {
        self.sni = Some(sni);
        self
    }

    /// A custom variable, `${x:NAME}` in the body; `name` may be given with or without `x:`.
    pub fn var(mut self, name: impl AsRef<str>, value: impl Into<String>) -> Self {
        let name = name.as_ref();
        let name = if name.starts_with("x:") {
            name.to_owned()
        } else {
            format!("x:{name}")
        };
        self.vars.insert(name, value.into());
        self
    }

    /// The URLs, in the order OSS tries them.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The body template.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The custom variables, names with their `x:` prefix.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// Checks the callback is one OSS takes: 1 to 5 URLs without `;`, a body, a `Host` that is a
    /// header value, and custom variable names of lowercase letters, digits, `_` and `-`.
    pub fn validate(&self) -> Result<(), Error> {
        if self.urls.is_empty() || self.urls.len() > MAX_CALLBACK_URLS {
            return Err(Error::config(format!(
                "a callback takes 1 to {MAX_CALLBACK_URLS} URLs, not {}",
                self.urls.len()
            )));
        }
        for url in &self.urls {
            if url.trim().is_empty() {
                return Err(Error::config("a callback URL is empty"));
            }
            if url.contains(';') {
                return Err(Error::config(format!(
                    "callback URL {url:?} contains ';', which separates URLs; percent-encode it as %3B"
                )));
            }
        }
        if self.body.is_empty() {
            return Err(Error::config(
                "the callback body is empty; give a template such as bucket=${bucket}&object=${object}",
            ));
        }
        if let Some(host) = &self.host
            && HeaderValue::from_str(host).is_err()
        {
            return Err(Error::config(format!(
                "callback host {host:?} cannot be a Host header"
            )));
        }
        for name in self.vars.keys() {
            let bare = &name[2..];
            if bare.is_empty()
                || !bare
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            {
                return Err(Error::config(format!(
                    "callback variable {name:?}: OSS takes names x:NAME with NAME of lowercase letters, digits, '_' and '-'"
                )));
            }
        }
        Ok(())
    }

    /// `x-oss-callback` and, with custom variables, `x-oss-callback-var`.
    pub(crate) fn headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>, Error> {
        self.validate()?;
        let mut config = Map::new();
        config.insert("callbackUrl".into(), Value::String(self.urls.join(";")));
        if let Some(host) = &self.host {
            config.insert("callbackHost".into(), Value::String(host.clone()));
        }
        config.insert("callbackBody".into(), Value::String(self.body.clone()));
        config.insert(
            "callbackBodyType".into(),
            Value::String(self.body_type.as_str().into()),
        );
        if let Some(sni) = self.sni {
            config.insert("callbackSNI".into(), Value::Bool(sni));
        }
        let encode = |value: Value| {
            HeaderValue::from_str(&BASE64.encode(value.to_string()))
                .expect("base64 is a header value")
        };
        let mut headers = vec![(
            HeaderName::from_static(CALLBACK),
            encode(Value::Object(config)),
        )];
        if !self.vars.is_empty() {
            let vars: Map<String, Value> = self
                .vars
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            headers.push((
                HeaderName::from_static(CALLBACK_VAR),
                encode(Value::Object(vars)),
            ));
        }
        Ok(headers)
    }
}

/// What became of an upload's callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "callback", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CallbackResult {
    /// The callback server answered; this is its body, as OSS handed it back.
    Replied {
        /// The reply (OSS requires JSON).
        body: String,
    },
    /// OSS stored the object but could not deliver the callback: HTTP 203 `CallbackFailed`. OSS
    /// does not retry callbacks.
    Failed {
        /// OSS's answer.
        error: ServiceError,
    },
}

impl CallbackResult {
    /// The callback server's reply, when it answered.
    pub fn reply(&self) -> Option<&str> {
        match self {
            CallbackResult::Replied { body } => Some(body),
            CallbackResult::Failed { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(value: &HeaderValue) -> Value {
        serde_json::from_slice(&BASE64.decode(value.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn headers_carry_the_callback_as_base64_json() {
        let headers = Callback::new("http://a/cb", "o=${object}&u=${x:user}")
            .url("http://b/cb")
            .host("app.example.com")
            .var("user", "alice")
            .var("x:team", "blue")
            .headers()
            .unwrap();
        assert_eq!(headers[0].0, CALLBACK);
        let config = decode(&headers[0].1);
        assert_eq!(config["callbackUrl"], "http://a/cb;http://b/cb");
        assert_eq!(config["callbackHost"], "app.example.com");
        assert_eq!(config["callbackBody"], "o=${object}&u=${x:user}");
        assert_eq!(
            config["callbackBodyType"],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(headers[1].0, CALLBACK_VAR);
        assert_eq!(
            decode(&headers[1].1),
            serde_json::json!({"x:user": "alice", "x:team": "blue"})
        );
        let plain = Callback::new("http://a", "b").headers().unwrap();
        assert_eq!(plain.len(), 1, "no x-oss-callback-var without variables");
    }

    #[test]
    fn callbacks_oss_would_refuse_are_config_errors() {
        let bad = [
            Callback::new("", "b"),
            Callback::new("http://a;b", "b"),
            Callback::new("http://a", ""),
            Callback::new("http://a", "b").var("User", "x"),
            Callback::new("http://a", "b").var("x:", "x"),
            Callback::new("http://a", "b").host("bad\nhost"),
            (0..6).fold(Callback::new("http://0", "b"), |c, i| {
                c.url(format!("http://{i}"))
            }),
        ];
        for callback in bad {
            let err = callback.validate().unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Config, "{callback:?}");
        }
        assert_eq!(
            "json".parse::<CallbackBodyType>().unwrap(),
            CallbackBodyType::Json
        );
        assert!("xml".parse::<CallbackBodyType>().is_err());
    }
}
