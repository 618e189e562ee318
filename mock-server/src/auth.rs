//! Authentication: every request's V1 or V4 signature is checked with `ossup_sign::verify`, and each
//! way it can fail becomes the error OSS answers with. Requests signed with temporary (STS) credentials
//! must also carry their security token, before it expires, and call only the actions the credentials
//! allow.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use ossup_proto::limits::MAX_CLOCK_SKEW_SECS;
use ossup_proto::{Api, ErrorCode};
use ossup_sign::{RequestParts, SignatureVersion, Verified, VerifyError, verify};
use subtle::ConstantTimeEq;

use crate::error::OssError;
use crate::response::iso8601;
use crate::route::RequestContext;

/// The RAM action that allows every API.
const ALL_ACTIONS: &str = "oss:*";

/// Temporary (STS) credentials the mock accepts: an access key that is only valid together with its
/// security token, until it expires, for the actions it allows.
///
/// A request signed with the key must carry `x-oss-security-token` equal to the token; it is refused
/// with `403 InvalidAccessKeyId` without one, `403 InvalidSecurityToken` with another one,
/// `403 SecurityTokenExpired` once the credentials have expired, and `403 AccessDenied` when its API's
/// RAM action ([`Api::ram_action`]) is not among the allowed ones.
///
/// ```
/// use oss_mock::StsCredential;
/// use ossup_proto::Api;
///
/// let sts: StsCredential = "STS.id:secret:token:1700000000:oss:PutObject,oss:ListParts".parse().unwrap();
/// assert_eq!(sts.security_token, "token");
/// assert!(sts.allows(Api::UploadPart));
/// assert!(!sts.allows(Api::GetObject));
///
/// let everything = StsCredential::new("STS.other", "secret", "token");
/// assert!(everything.allows(Api::DeleteBucket));
/// assert_eq!(everything.expires, None);
/// ```
///
/// Its `Debug` output names the key id, expiry and actions, never the secret or the token.
#[derive(Clone, PartialEq, Eq)]
pub struct StsCredential {
    /// The temporary access key id (OSS issues them as `STS.…`; any id works here).
    pub access_key_id: String,
    /// Its secret.
    pub access_key_secret: String,
    /// The security token requests must carry in `x-oss-security-token`.
    pub security_token: String,
    /// When the credentials expire; `None` never.
    pub expires: Option<SystemTime>,
    /// The RAM actions allowed (`oss:PutObject`, …), in canonical spelling; `None` allows every action.
    pub actions: Option<Vec<String>>,
}

impl StsCredential {
    /// Credentials that never expire and allow every action.
    pub fn new(
        access_key_id: impl Into<String>,
        access_key_secret: impl Into<String>,
        security_token: impl Into<String>,
    ) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            access_key_secret: access_key_secret.into(),
            security_token: security_token.into(),
            expires: None,
            actions: None,
        }
    }

    /// Expires at `time`.
    pub fn expiring_at(mut self, time: SystemTime) -> Self {
        self.expires = Some(time);
        self
    }

    /// Allows only these RAM actions (e.g. `oss:PutObject`; `oss:*` allows all). Names are matched
    /// case-insensitively against the actions of [`Api::ALL`]; an unknown name is an error naming the
    /// known ones.
    ///
    /// ```
    /// use oss_mock::StsCredential;
    /// let sts = StsCredential::new("id", "secret", "token")
    ///     .allowing(["oss:putobject", "oss:ListParts"])
    ///     .unwrap();
    /// assert_eq!(sts.actions.unwrap(), ["oss:PutObject", "oss:ListParts"]);
    /// assert!(StsCredential::new("id", "secret", "token").allowing(["oss:PutObjekt"]).is_err());
    /// ```
    pub fn allowing<I, S>(mut self, actions: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut allowed = Vec::new();
        for action in actions {
            let action = canonical_action(action.as_ref().trim())?;
            if !allowed.contains(&action) {
                allowed.push(action);
            }
        }
        self.actions = Some(allowed);
        Ok(self)
    }

    /// Whether these credentials allow `api`.
    pub fn allows(&self, api: Api) -> bool {
        match &self.actions {
            None => true,
            Some(actions) => actions
                .iter()
                .any(|a| a == ALL_ACTIONS || a == api.ram_action()),
        }
    }

    /// Whether the credentials have expired at `now`.
    pub fn expired_at(&self, now: SystemTime) -> bool {
        self.expires.is_some_and(|expires| now >= expires)
    }
}

impl fmt::Debug for StsCredential {
    /// Redacts the secret and the token: a config or a credential printed in a log or a panic
    /// message must not hand them out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StsCredential")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &REDACTED)
            .field("security_token", &REDACTED)
            .field("expires", &self.expires)
            .field("actions", &self.actions)
            .finish()
    }
}

/// What `Debug` output shows in place of a secret.
pub(crate) const REDACTED: &str = "<redacted>";

/// A secret held by the server (the control token): `Debug` shows it redacted.
#[derive(Clone)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for a comparison.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// The canonical spelling of a RAM action name the mock knows.
fn canonical_action(name: &str) -> Result<String, String> {
    if name == ALL_ACTIONS {
        return Ok(ALL_ACTIONS.to_owned());
    }
    let mut known: Vec<&'static str> = Api::ALL.iter().map(|api| api.ram_action()).collect();
    known.sort_unstable();
    known.dedup();
    known
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .map(|k| (*k).to_owned())
        .ok_or_else(|| {
            format!(
                "unknown RAM action {name:?}: use {ALL_ACTIONS} or one of {}",
                known.join(", ")
            )
        })
}

/// Parses `ID:SECRET:TOKEN[:EXPIRES_UNIX][:ACTIONS]`, as `oss-mock --sts` takes it: the id, secret and
/// token contain no `:`; `EXPIRES_UNIX` is Unix seconds (empty or absent: never); `ACTIONS` is a
/// comma-separated list of RAM actions (absent: every action).
impl FromStr for StsCredential {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        // Errors never repeat the spec: it holds a secret and a token.
        let usage = "expected ID:SECRET:TOKEN[:EXPIRES_UNIX][:ACTIONS], e.g. STS.abc:s3cr3t:t0k3n:1700000000:oss:PutObject,oss:ListParts";
        let mut pieces = spec.splitn(4, ':');
        let (Some(id), Some(secret), Some(token)) = (pieces.next(), pieces.next(), pieces.next())
        else {
            return Err(format!(
                "a temporary credential spec with {} ':'-separated fields: {usage}",
                spec.split(':').count()
            ));
        };
        let shown = format!("{id}:<secret>:<token>");
        if id.is_empty() || secret.is_empty() || token.is_empty() {
            return Err(format!(
                "{shown}: the id, secret and token must not be empty; {usage}"
            ));
        }
        let mut credential = StsCredential::new(id, secret, token);
        let rest = pieces.next().unwrap_or("");
        // The expiry is the rest up to the next `:` when that is a number (or empty); otherwise the
        // whole rest is the action list (whose names contain `:` themselves).
        let (expires, actions) = match rest.split_once(':') {
            Some((first, after))
                if first.is_empty() || first.bytes().all(|b| b.is_ascii_digit()) =>
            {
                (first, after)
            }
            None if rest.bytes().all(|b| b.is_ascii_digit()) => (rest, ""),
            _ => ("", rest),
        };
        if !expires.is_empty() {
            let secs: u64 = expires.parse().map_err(|_| {
                format!("{shown}: EXPIRES_UNIX {expires:?} is not a number of seconds")
            })?;
            // `UNIX_EPOCH + secs` panics past the platform's last representable time.
            let at = UNIX_EPOCH
                .checked_add(Duration::from_secs(secs))
                .ok_or_else(|| {
                    format!(
                        "{shown}: EXPIRES_UNIX {secs} is past the last time this system can represent; leave it empty for credentials that never expire"
                    )
                })?;
            credential = credential.expiring_at(at);
        }
        if !actions.is_empty() {
            credential = credential
                .allowing(actions.split(',').filter(|a| !a.trim().is_empty()))
                .map_err(|e| format!("{shown}: {e}"))?;
        }
        Ok(credential)
    }
}

impl fmt::Display for StsCredential {
    /// The `--sts` form, with the secret and token hidden.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:<secret>:<token>", self.access_key_id)?;
        if let Some(expires) = self.expires {
            let secs = expires
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            write!(f, ":{secs}")?;
        }
        if let Some(actions) = &self.actions {
            write!(f, ":{}", actions.join(","))?;
        }
        Ok(())
    }
}

/// The temporary credentials a running server accepts; replaced while it runs (a test issues a fresh
/// token mid-upload). Readers take a snapshot, so one request sees one consistent set.
#[derive(Debug, Default)]
pub(crate) struct StsRegistry {
    by_id: RwLock<Arc<HashMap<String, StsCredential>>>,
}

impl StsRegistry {
    /// A registry holding `credentials` (a later one replaces an earlier one with the same id).
    pub(crate) fn new(credentials: &[StsCredential]) -> Self {
        let registry = Self::default();
        for credential in credentials {
            registry.set(credential.clone());
        }
        registry
    }

    /// Adds `credential`, replacing any with the same access key id.
    pub(crate) fn set(&self, credential: StsCredential) {
        let mut guard = self.by_id.write().unwrap_or_else(|e| e.into_inner());
        let mut map = HashMap::clone(&guard);
        map.insert(credential.access_key_id.clone(), credential);
        *guard = Arc::new(map);
    }

    /// Removes the credentials with this access key id; whether there were any.
    pub(crate) fn remove(&self, access_key_id: &str) -> bool {
        let mut guard = self.by_id.write().unwrap_or_else(|e| e.into_inner());
        if !guard.contains_key(access_key_id) {
            return false;
        }
        let mut map = HashMap::clone(&guard);
        map.remove(access_key_id);
        *guard = Arc::new(map);
        true
    }

    fn snapshot(&self) -> Arc<HashMap<String, StsCredential>> {
        Arc::clone(&self.by_id.read().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Checks signatures against the permanent access keys and the temporary credentials, and temporary
/// credentials' tokens, expiry and allowed actions.
#[derive(Clone)]
pub(crate) struct Authenticator {
    secrets: HashMap<String, String>,
    sts: Arc<StsRegistry>,
    /// The region a V4 signature's scope must name.
    region: String,
}

impl fmt::Debug for Authenticator {
    /// Names the access key ids only: the secrets stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&String> = self.secrets.keys().collect();
        ids.sort();
        f.debug_struct("Authenticator")
            .field("access_key_ids", &ids)
            .field("sts", &self.sts)
            .field("region", &self.region)
            .finish()
    }
}

impl Authenticator {
    /// An authenticator accepting these `(access key id, secret)` pairs and the temporary credentials
    /// in `sts` (which win over a permanent key with the same id), whose V4 scopes must name `region`.
    pub(crate) fn new(
        credentials: &[(String, String)],
        sts: Arc<StsRegistry>,
        region: impl Into<String>,
    ) -> Self {
        Self {
            secrets: credentials.iter().cloned().collect(),
            sts,
            region: region.into(),
        }
    }

    /// Verifies the request's signature as of `now`, and for temporary credentials their token,
    /// expiry and policy.
    pub(crate) fn authenticate(
        &self,
        ctx: &RequestContext,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Result<Verified, OssError> {
        let request = RequestParts {
            method: ctx.method.clone(),
            bucket: Some(ctx.bucket.clone()),
            key: ctx.key.clone(),
            query: ctx.query.clone(),
            headers: headers.clone(),
        };
        let sts = self.sts.snapshot();
        let secret_for = |id: &str| {
            sts.get(id)
                .map(|c| c.access_key_secret.clone())
                .or_else(|| self.secrets.get(id).cloned())
        };
        let verified = verify(&request, secret_for, now).map_err(|e| self.to_oss_error(e))?;
        if verified.version == SignatureVersion::V4 {
            self.check_v4_scope(ctx, headers)?;
        }
        if let Some(credential) = sts.get(&verified.access_key_id) {
            check_temporary(credential, &verified, ctx.api, now)?;
        }
        Ok(verified)
    }

    /// A V4 signature is only as good as its scope: a correct signature over a scope dated another
    /// day, or for another region, was computed with another signing key than OSS would derive, and
    /// OSS refuses it. `ossup_sign::verify` checks the signature with the scope the request names, so
    /// the scope itself is checked here: its date must be the date of `x-oss-date`, its region the
    /// server's.
    fn check_v4_scope(&self, ctx: &RequestContext, headers: &HeaderMap) -> Result<(), OssError> {
        let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
        // In the Authorization header, or in the query of a presigned URL.
        let credential = text(http::header::AUTHORIZATION.as_str())
            .and_then(|auth| {
                auth.split(',')
                    .map(str::trim)
                    .map(|field| field.rsplit(char::is_whitespace).next().unwrap_or(field))
                    .find_map(|field| field.strip_prefix("Credential="))
            })
            .or_else(|| ctx.query("x-oss-credential"))
            .unwrap_or_default();
        // AK/yyyyMMdd/REGION/oss/aliyun_v4_request, the key id possibly holding '/'.
        let mut pieces = credential.rsplitn(5, '/').skip(2);
        let (region, date) = (
            pieces.next().unwrap_or_default(),
            pieces.next().unwrap_or_default(),
        );
        let request_date = text("x-oss-date")
            .or_else(|| ctx.query("x-oss-date"))
            .and_then(|d| d.get(..8))
            .unwrap_or_default();
        let scope = credential.split_once('/').map_or("", |(_, scope)| scope);
        if date != request_date {
            return Err(OssError::invalid_argument(
                "Authorization",
                scope,
                format!(
                    "The date of the V4 credential scope ({date}) is not the date of x-oss-date ({request_date}): sign with the scope of the request's own day."
                ),
            ));
        }
        if region != self.region {
            return Err(OssError::invalid_argument(
                "Authorization",
                scope,
                format!(
                    "The region of the V4 credential scope ({region}) is not this server's region ({}): sign for region {}.",
                    self.region, self.region
                ),
            ));
        }
        Ok(())
    }

    fn to_oss_error(&self, err: VerifyError) -> OssError {
        match err {
            VerifyError::MissingAuthorization => OssError::new(ErrorCode::AccessDenied).message(
                "You have no right to access this object because of bucket acl: the request carries no Authorization header and no presigned-URL signature.",
            ),
            VerifyError::Expired {
                expires,
                server_time,
            } => OssError::new(ErrorCode::AccessDenied)
                .message("Request has expired.")
                .field("Expires", iso8601(expires))
                .field("ServerTime", iso8601(server_time)),
            VerifyError::MalformedAuthorization(why) => OssError::invalid_argument(
                "Authorization",
                "",
                format!("Authorization header is invalid: {why}."),
            ),
            VerifyError::MissingDate(why) => OssError::new(ErrorCode::AccessDenied).message(
                format!("The request has no valid Date or x-oss-date header: {why}."),
            ),
            VerifyError::UnknownAccessKeyId(id) => {
                OssError::new(ErrorCode::InvalidAccessKeyId).field("OSSAccessKeyId", id)
            }
            VerifyError::RequestTimeTooSkewed {
                request_time,
                server_time,
            } => OssError::new(ErrorCode::RequestTimeTooSkewed)
                .field("RequestTime", iso8601(request_time))
                .field("ServerTime", iso8601(server_time))
                .field(
                    "MaxAllowedSkewMilliseconds",
                    (MAX_CLOCK_SKEW_SECS * 1000).to_string(),
                ),
            VerifyError::SignatureDoesNotMatch {
                string_to_sign,
                canonical_request,
                signature_provided,
                access_key_id,
            } => {
                let mut e = OssError::new(ErrorCode::SignatureDoesNotMatch)
                    .field("StringToSign", string_to_sign);
                if let Some(canonical) = canonical_request {
                    e = e.field("CanonicalRequest", canonical);
                }
                e.field("SignatureProvided", signature_provided)
                    .field("OSSAccessKeyId", access_key_id)
            }
            other => OssError::new(ErrorCode::AccessDenied)
                .message(format!("The request could not be authenticated: {other}.")),
        }
    }
}

/// The checks OSS makes of a request signed with temporary credentials, in its order: the token is
/// there, it is this key's token, it has not expired, and the policy allows the API.
fn check_temporary(
    credential: &StsCredential,
    verified: &Verified,
    api: Api,
    now: SystemTime,
) -> Result<(), OssError> {
    let id = &credential.access_key_id;
    match verified.security_token.as_deref() {
        None => {
            return Err(OssError::new(ErrorCode::InvalidAccessKeyId)
                .message(format!(
                    "The OSS Access Key Id you provided does not exist in our records: {id} is a temporary (STS) access key, valid only with its security token in x-oss-security-token."
                ))
                .field("OSSAccessKeyId", id.as_str()));
        }
        // Constant time: how long the comparison takes must not tell how much of a guess was right.
        Some(token)
            if !bool::from(token.as_bytes().ct_eq(credential.security_token.as_bytes())) =>
        {
            return Err(OssError::new(ErrorCode::InvalidSecurityToken));
        }
        Some(_) => {}
    }
    if credential.expired_at(now) {
        let mut err = OssError::new(ErrorCode::SecurityTokenExpired);
        if let Some(expires) = credential.expires {
            err = err.field("Expiration", iso8601(expires));
        }
        return Err(err);
    }
    if !credential.allows(api) {
        let action = api.ram_action();
        let allowed = credential
            .actions
            .as_deref()
            .map(|a| a.join(", "))
            .unwrap_or_default();
        return Err(OssError::new(ErrorCode::AccessDenied)
            .message(format!(
                "Access denied by authorizer's policy: {api} needs {action}, which the temporary credentials {id} do not allow (they allow: {allowed})."
            ))
            .field("AuthAction", action));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sts_specs_parse_with_and_without_expiry_and_actions() {
        let plain: StsCredential = "id:secret:token".parse().unwrap();
        assert_eq!(plain, StsCredential::new("id", "secret", "token"));

        let expiring: StsCredential = "id:secret:token:1700000000".parse().unwrap();
        assert_eq!(
            expiring.expires,
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_eq!(expiring.actions, None);

        let limited: StsCredential = "id:secret:token:oss:PutObject,oss:listparts"
            .parse()
            .unwrap();
        assert_eq!(limited.expires, None);
        assert_eq!(
            limited.actions.as_deref(),
            Some(&["oss:PutObject".to_owned(), "oss:ListParts".to_owned()][..])
        );

        let both: StsCredential = "id:secret:token::oss:*".parse().unwrap();
        assert_eq!(both.expires, None);
        assert!(both.allows(Api::DeleteBucket));

        let full: StsCredential = "id:secret:token:5:oss:AbortMultipartUpload"
            .parse()
            .unwrap();
        assert_eq!(full.expires, Some(UNIX_EPOCH + Duration::from_secs(5)));
        assert!(full.allows(Api::AbortMultipartUpload));
        assert!(!full.allows(Api::UploadPart));
    }

    #[test]
    fn bad_sts_specs_say_what_is_wrong() {
        for (spec, says) in [
            ("id:secret", "expected ID:SECRET:TOKEN"),
            ("id::token", "must not be empty"),
            ("id:secret:token:oss:PutObjekt", "unknown RAM action"),
            ("id:secret:token:99999999999999999999999", "not a number"),
            (
                "id:secret:token:18446744073709551615",
                "last time this system can represent",
            ),
        ] {
            let err = spec.parse::<StsCredential>().unwrap_err();
            assert!(err.contains(says), "{spec}: {err}");
            assert!(
                !err.contains("secret:token"),
                "{spec}: {err} repeats the secret"
            );
        }
    }

    #[test]
    fn the_multipart_actions_cover_the_multipart_apis() {
        let sts = StsCredential::new("id", "s", "t")
            .allowing(["oss:PutObject", "oss:ListParts", "oss:AbortMultipartUpload"])
            .unwrap();
        for api in [
            Api::InitiateMultipartUpload,
            Api::UploadPart,
            Api::ListParts,
            Api::CompleteMultipartUpload,
            Api::AbortMultipartUpload,
            Api::PutObject,
        ] {
            assert!(sts.allows(api), "{api}");
        }
        for api in [
            Api::GetObject,
            Api::HeadObject,
            Api::ListMultipartUploads,
            Api::DeleteObject,
        ] {
            assert!(!sts.allows(api), "{api}");
        }
    }

    #[test]
    fn debug_output_never_shows_a_secret_or_a_token() {
        let sts = StsCredential::new("STS.id", "very-secret", "the-token");
        let shown = format!("{sts:?}");
        assert!(shown.contains("STS.id"), "{shown}");
        assert!(
            !shown.contains("very-secret") && !shown.contains("the-token"),
            "{shown}"
        );
        let auth = Authenticator::new(
            &[("ak".to_owned(), "permanent-secret".to_owned())],
            Arc::new(StsRegistry::new(&[sts])),
            "cn-hangzhou",
        );
        let shown = format!("{auth:?}");
        assert!(shown.contains("\"ak\""), "{shown}");
        for secret in ["permanent-secret", "very-secret", "the-token"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn a_registry_replaces_credentials_by_id() {
        let registry = StsRegistry::new(&[StsCredential::new("id", "s", "old")]);
        registry.set(StsCredential::new("id", "s", "new"));
        assert_eq!(registry.snapshot()["id"].security_token, "new");
        assert!(registry.remove("id"));
        assert!(!registry.remove("id"));
        assert!(registry.snapshot().is_empty());
    }
}
