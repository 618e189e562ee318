//! Access keys, STS temporary credentials, and where they come from.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// The environment variable holding the access key id, as the official SDKs name it.
pub const ENV_ACCESS_KEY_ID: &str = "OSS_ACCESS_KEY_ID";
/// The environment variable holding the access key secret.
pub const ENV_ACCESS_KEY_SECRET: &str = "OSS_ACCESS_KEY_SECRET";
/// The environment variable holding the STS security token of temporary credentials.
pub const ENV_SESSION_TOKEN: &str = "OSS_SESSION_TOKEN";

/// An access key, with the security token and expiry of temporary (STS) credentials.
///
/// `Debug` never prints the secret or the token.
///
/// ```
/// let creds = ossup_sign::Credentials::new("id", "hunter2").with_security_token("sts-token");
/// assert_eq!(creds.security_token(), Some("sts-token"));
/// let shown = format!("{creds:?}");
/// assert!(!shown.contains("hunter2") && !shown.contains("sts-token"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    access_key_id: String,
    access_key_secret: String,
    security_token: Option<String>,
    expires_at: Option<SystemTime>,
}

impl Credentials {
    /// Long-term credentials: an access key id and its secret.
    pub fn new(access_key_id: impl Into<String>, access_key_secret: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            access_key_secret: access_key_secret.into(),
            security_token: None,
            expires_at: None,
        }
    }

    /// Adds the security token of temporary credentials; it is sent and signed as
    /// `x-oss-security-token` on every request.
    pub fn with_security_token(mut self, token: impl Into<String>) -> Self {
        self.security_token = Some(token.into());
        self
    }

    /// Sets when temporary credentials stop working, so a provider can refresh them before.
    pub fn with_expiry(mut self, expires_at: SystemTime) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// The access key id.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The access key secret.
    pub fn access_key_secret(&self) -> &str {
        &self.access_key_secret
    }

    /// The STS security token, for temporary credentials.
    pub fn security_token(&self) -> Option<&str> {
        self.security_token.as_deref()
    }

    /// When these credentials expire, if they do.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// Reads `OSS_ACCESS_KEY_ID`, `OSS_ACCESS_KEY_SECRET` and, when set, `OSS_SESSION_TOKEN`.
    ///
    /// The error names the variable that is missing or empty.
    pub fn from_env() -> Result<Self, CredentialsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`from_env`](Self::from_env), with the variables read through `lookup` (for tests).
    ///
    /// ```
    /// use ossup_sign::Credentials;
    /// let env = |name: &str| match name {
    ///     "OSS_ACCESS_KEY_ID" => Some("id".to_owned()),
    ///     _ => None,
    /// };
    /// let err = Credentials::from_lookup(env).unwrap_err();
    /// assert!(err.to_string().contains("OSS_ACCESS_KEY_SECRET"));
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, CredentialsError> {
        let get = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(CredentialsError::MissingVariable(name))
        };
        let mut creds = Credentials::new(get(ENV_ACCESS_KEY_ID)?, get(ENV_ACCESS_KEY_SECRET)?);
        if let Ok(token) = get(ENV_SESSION_TOKEN) {
            creds = creds.with_security_token(token);
        }
        Ok(creds)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"<redacted>")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn from_lookup_names_the_missing_key_id() {
        let err = Credentials::from_lookup(lookup(&[(ENV_ACCESS_KEY_SECRET, "sk")])).unwrap_err();
        assert!(matches!(
            err,
            CredentialsError::MissingVariable(ENV_ACCESS_KEY_ID)
        ));
        assert!(err.to_string().contains(ENV_ACCESS_KEY_ID));
    }

    #[test]
    fn from_lookup_names_a_blank_secret() {
        let vars = [(ENV_ACCESS_KEY_ID, "ak"), (ENV_ACCESS_KEY_SECRET, "  ")];
        let err = Credentials::from_lookup(lookup(&vars)).unwrap_err();
        assert!(err.to_string().contains(ENV_ACCESS_KEY_SECRET));
    }

    #[test]
    fn from_lookup_reads_the_session_token_when_set() {
        let vars = [(ENV_ACCESS_KEY_ID, "ak"), (ENV_ACCESS_KEY_SECRET, "sk")];
        let creds = Credentials::from_lookup(lookup(&vars)).unwrap();
        assert_eq!(
            (creds.access_key_id(), creds.access_key_secret()),
            ("ak", "sk")
        );
        assert_eq!(creds.security_token(), None);

        let vars = [
            (ENV_ACCESS_KEY_ID, "ak"),
            (ENV_ACCESS_KEY_SECRET, "sk"),
            (ENV_SESSION_TOKEN, "tok"),
        ];
        let creds = Credentials::from_lookup(lookup(&vars)).unwrap();
        assert_eq!(creds.security_token(), Some("tok"));
    }
}

/// Why credentials could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// An environment variable the credentials need is not set or empty.
    #[error(
        "the environment variable {0} is not set; set it to your OSS access key (the official SDKs read the same variable)"
    )]
    MissingVariable(&'static str),
    /// A provider failed to fetch or refresh credentials, and asking again will not help (a
    /// missing role, a refused identity).
    #[error("could not get OSS credentials: {0}")]
    Provider(String),
    /// A provider could not fetch credentials this time, and asking again may help (its credentials
    /// service timed out, refused a connection or answered 5xx): the request is retried like one
    /// that lost its connection.
    #[error("could not get OSS credentials this time (worth trying again): {0}")]
    Transient(String),
}

impl CredentialsError {
    /// Whether asking the provider again may succeed.
    ///
    /// ```
    /// use ossup_sign::CredentialsError;
    /// assert!(CredentialsError::Transient("STS timed out".into()).is_transient());
    /// assert!(!CredentialsError::Provider("no such role".into()).is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

/// Supplies credentials for each request, so temporary credentials can be refreshed during a long upload.
///
/// The engine asks before signing every request; a provider caches as it sees fit. When OSS refuses
/// temporary credentials (`SecurityTokenExpired`, say) the engine calls
/// [`refresh`](Self::refresh) and, given different credentials, signs the request again with them.
/// A wrapper around another provider forwards `refresh` too, or its provider's refresh is never
/// reached. `Arc<P>` and `Box<P>` are providers when `P` is, and forward both.
///
/// ```
/// # tokio_test_block_on(async {
/// use ossup_sign::{Credentials, CredentialsProvider};
/// let provider = Credentials::new("id", "secret");
/// assert_eq!(provider.credentials().await.unwrap().access_key_id(), "id");
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[async_trait::async_trait]
pub trait CredentialsProvider: Send + Sync + fmt::Debug {
    /// Credentials valid now.
    async fn credentials(&self) -> Result<Credentials, CredentialsError>;

    /// Fresh credentials, after OSS refused the current ones as expired or invalid: a provider of
    /// temporary credentials fetches new ones here even when its cached ones have not reached their
    /// own expiry (clocks differ, tokens are revoked). The default asks
    /// [`credentials`](Self::credentials) again, which suits providers that read their source on
    /// every call.
    async fn refresh(&self) -> Result<Credentials, CredentialsError> {
        self.credentials().await
    }
}

/// Asks the shared provider, `refresh` included (a provider of temporary credentials fetches new
/// ones there), so `Arc::new(provider)` can be handed to a client and kept elsewhere.
#[async_trait::async_trait]
impl<P: CredentialsProvider + ?Sized> CredentialsProvider for Arc<P> {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        (**self).credentials().await
    }

    async fn refresh(&self) -> Result<Credentials, CredentialsError> {
        (**self).refresh().await
    }
}

/// Asks the boxed provider, `refresh` included, so a `Box<dyn CredentialsProvider>` is a provider
/// too.
#[async_trait::async_trait]
impl<P: CredentialsProvider + ?Sized> CredentialsProvider for Box<P> {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        (**self).credentials().await
    }

    async fn refresh(&self) -> Result<Credentials, CredentialsError> {
        (**self).refresh().await
    }
}

#[async_trait::async_trait]
impl CredentialsProvider for Credentials {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        Ok(self.clone())
    }
}

/// Reads credentials from `OSS_ACCESS_KEY_ID`, `OSS_ACCESS_KEY_SECRET` and `OSS_SESSION_TOKEN` on every call,
/// so a token rotated in the environment is picked up.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvCredentialsProvider;

#[async_trait::async_trait]
impl CredentialsProvider for EnvCredentialsProvider {
    async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        Credentials::from_env()
    }
}
