//! TLS for `https://` endpoints: which certificate authorities are trusted, the rustls client
//! configuration (ring provider, TLS 1.2 and 1.3), and how a failed handshake is reported.
//!
//! A handshake that fails because of the certificate (untrusted issuer, wrong name, expired) or
//! because client and server share no protocol is a permanent error: sending again meets the same
//! certificate. Anything else that goes wrong while connecting (a reset, a closed socket, a
//! garbled record) stays a retryable connection error.

use std::fmt;
use std::sync::Arc;

use ossup_transport::Error;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, TrustAnchor};
use rustls::{AlertDescription, CertificateError, ClientConfig, RootCertStore};

/// A certificate authority to trust for `https://` endpoints, in addition to (or instead of) the
/// built-in Mozilla roots: the CA of a private endpoint, a proxy's CA, or a self-signed server
/// certificate.
///
/// Parsing happens here, so a malformed certificate is reported before any connection is made.
///
/// ```
/// use ossup_hyper::{Certificate, HyperTransport};
/// # fn ca_pem() -> Vec<u8> {
/// #     let key = rcgen::KeyPair::generate().unwrap();
/// #     let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
/// #     params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
/// #     params.self_signed(&key).unwrap().pem().into_bytes()
/// # }
/// let pem = ca_pem(); // e.g. std::fs::read("private-ca.pem")?
/// let transport = HyperTransport::builder()
///     .add_root_certificates(Certificate::from_pem(&pem)?)
///     .build();
/// # drop(transport);
/// # Ok::<(), ossup_transport::Error>(())
/// ```
#[derive(Clone)]
pub struct Certificate {
    anchor: TrustAnchor<'static>,
}

impl Certificate {
    /// A certificate from its DER encoding.
    ///
    /// Fails with a configuration error when the bytes are not an X.509 certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        let mut store = RootCertStore::empty();
        store.add(CertificateDer::from(der)).map_err(|e| {
            Error::config(format!("not a usable CA certificate: {}", why_unusable(&e)))
        })?;
        let anchor = store
            .roots
            .pop()
            .ok_or_else(|| Error::config("not a usable CA certificate"))?;
        Ok(Self { anchor })
    }

    /// Every certificate of a PEM file (`-----BEGIN CERTIFICATE-----` sections; other sections,
    /// such as keys, are skipped).
    ///
    /// Fails with a configuration error when the PEM is malformed, holds no certificate, or holds
    /// one that does not parse.
    pub fn from_pem(pem: &[u8]) -> Result<Vec<Self>, Error> {
        let mut certificates = Vec::new();
        for (index, der) in CertificateDer::pem_slice_iter(pem).enumerate() {
            let der = der.map_err(|e| {
                Error::config(format!(
                    "cannot read PEM certificate number {}: {e}",
                    index + 1
                ))
            })?;
            let certificate = Self::from_der(&der).map_err(|e| {
                Error::config(format!(
                    "PEM certificate number {}: {}",
                    index + 1,
                    e.message()
                ))
            })?;
            certificates.push(certificate);
        }
        if certificates.is_empty() {
            return Err(Error::config(
                "the PEM holds no certificate (no -----BEGIN CERTIFICATE----- section)",
            ));
        }
        Ok(certificates)
    }

    /// The certificate authorities the operating system trusts (on Linux the OpenSSL locations,
    /// `SSL_CERT_FILE` and `SSL_CERT_DIR`; the keychain on macOS; the system store on Windows).
    ///
    /// Certificates of the store that do not parse are skipped (system stores often hold a few).
    /// Fails with a configuration error when no usable certificate is found.
    pub fn load_native_roots() -> Result<Vec<Self>, Error> {
        native_roots_from(rustls_native_certs::load_native_certs())
    }
}

/// Why rustls would not take a certificate as a trust anchor, without its "peer certificate"
/// wording (the certificate here is the caller's, not the server's).
fn why_unusable(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::BadEncoding) => {
            "the bytes are not a DER-encoded X.509 certificate".to_owned()
        }
        rustls::Error::InvalidCertificate(problem) => problem.to_string(),
        other => other.to_string(),
    }
}

/// The usable certificates of a native store, or an error naming why there are none.
fn native_roots_from(
    found: rustls_native_certs::CertificateResult,
) -> Result<Vec<Certificate>, Error> {
    let certificates: Vec<Certificate> = found
        .certs
        .iter()
        .filter_map(|der| Certificate::from_der(der).ok())
        .collect();
    if certificates.is_empty() {
        let mut message = String::from("no usable CA certificate in the system's trust store");
        if !found.errors.is_empty() {
            let errors: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
            message.push_str(&format!(" ({})", errors.join("; ")));
        }
        message.push_str("; install the system's CA certificates or set SSL_CERT_FILE");
        return Err(Error::config(message));
    }
    Ok(certificates)
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("subject_der_len", &self.anchor.subject.len())
            .finish()
    }
}

/// The rustls configuration of a transport: the ring provider, TLS 1.2 and 1.3, the given roots.
pub(crate) fn client_config(built_in_roots: bool, extra: &[Certificate]) -> ClientConfig {
    // The provider is named rather than taken from the process default, so that another crate
    // of the program enabling a second provider cannot make configuration fail.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_root_certificates(root_store(built_in_roots, extra))
        .with_no_client_auth()
}

/// The trusted authorities: Mozilla's (from `webpki-roots`, so no system store is needed) when
/// `built_in` is set, and `extra`.
fn root_store(built_in: bool, extra: &[Certificate]) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    if built_in {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    roots.extend(extra.iter().map(|c| c.anchor.clone()));
    roots
}

/// The error of a handshake with `authority` (`host:port` as in the URL) that rustls rejected.
pub(crate) fn handshake_error(error: &rustls::Error, authority: &str, host: &str) -> Error {
    let what = format!("TLS handshake with {authority} failed");
    match permanent_reason(error, host) {
        Some(reason) => Error::network_permanent(format!("{what}: {reason}")),
        None => Error::connection(what, error.clone()),
    }
}

/// Why a handshake failure will repeat on every attempt, or `None` when it may not.
fn permanent_reason(error: &rustls::Error, host: &str) -> Option<String> {
    use rustls::Error as E;
    Some(match error {
        E::InvalidCertificate(problem) => certificate_reason(problem, host),
        E::NoCertificatesPresented => "the server presented no certificate".to_owned(),
        E::UnsupportedNameType => {
            format!("{host} cannot be checked against a certificate (not a DNS name or IP address)")
        }
        E::PeerIncompatible(why) => format!(
            "the server and this client have no TLS version or cipher suite in common ({why:?})"
        ),
        E::AlertReceived(alert) if is_refusal(*alert) => {
            format!("the server refused the handshake (TLS alert {alert:?})")
        }
        _ => return None,
    })
}

/// Alerts a server sends when it will not talk to this client whatever it retries.
fn is_refusal(alert: AlertDescription) -> bool {
    use AlertDescription as A;
    matches!(
        alert,
        A::HandshakeFailure
            | A::ProtocolVersion
            | A::InsufficientSecurity
            | A::IllegalParameter
            | A::UnrecognisedName
            | A::AccessDenied
            | A::CertificateRequired
            | A::NoApplicationProtocol
    )
}

fn certificate_reason(problem: &CertificateError, host: &str) -> String {
    use CertificateError as C;
    match problem {
        C::UnknownIssuer => "the server's certificate is not trusted: no trusted certificate \
             authority issued it (for a private endpoint, trust its CA with \
             HyperTransportBuilder::add_root_certificate)"
            .to_owned(),
        C::NotValidForName => format!("the server's certificate is not valid for {host}"),
        C::NotValidForNameContext { presented, .. } if presented.is_empty() => {
            format!("the server's certificate is not valid for {host}: it names no host")
        }
        C::NotValidForNameContext { presented, .. } => {
            let names: Vec<&str> = presented.iter().map(|n| readable_name(n)).collect();
            format!(
                "the server's certificate is not valid for {host}: it is for {}",
                names.join(", ")
            )
        }
        C::Expired | C::ExpiredContext { .. } => {
            format!(
                "the server's certificate has expired, or this machine's clock is wrong ({problem})"
            )
        }
        C::NotValidYet | C::NotValidYetContext { .. } => format!(
            "the server's certificate is not valid yet, or this machine's clock is wrong ({problem})"
        ),
        C::Revoked => "the server's certificate has been revoked".to_owned(),
        other => format!("the server's certificate is not acceptable: {other}"),
    }
}

/// A certificate name as rustls reports it (`DnsName("a.example")`, `IpAddress(10.0.0.1)`) as a
/// person writes it.
fn readable_name(presented: &str) -> &str {
    presented
        .strip_prefix("DnsName(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
        .or_else(|| {
            presented
                .strip_prefix("IpAddress(")
                .and_then(|rest| rest.strip_suffix(')'))
        })
        .unwrap_or(presented)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> rcgen::Certificate {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap()
    }

    #[test]
    fn from_pem_reads_every_certificate_and_skips_keys() {
        let key = rcgen::KeyPair::generate().unwrap();
        let bundle = format!("{}{}{}", ca().pem(), key.serialize_pem(), ca().pem());
        let certificates = Certificate::from_pem(bundle.as_bytes()).unwrap();
        assert_eq!(certificates.len(), 2);
    }

    #[test]
    fn from_pem_without_a_certificate_is_a_config_error() {
        let key = rcgen::KeyPair::generate().unwrap();
        let err = Certificate::from_pem(key.serialize_pem().as_bytes()).unwrap_err();
        assert_eq!(err.kind(), ossup_transport::ErrorKind::Config);
        assert!(err.message().contains("no certificate"), "{err}");
    }

    #[test]
    fn a_certificate_that_does_not_parse_is_a_config_error_naming_it() {
        let bad = "-----BEGIN CERTIFICATE-----\nAAECAwQ=\n-----END CERTIFICATE-----\n";
        let bundle = format!("{}{bad}", ca().pem());
        let err = Certificate::from_pem(bundle.as_bytes()).unwrap_err();
        assert_eq!(err.kind(), ossup_transport::ErrorKind::Config);
        assert!(err.message().contains("number 2: not a usable CA certificate: the bytes are not a DER-encoded X.509 certificate"), "{err}");
        assert!(Certificate::from_der(b"not a certificate").is_err());
    }

    #[test]
    fn native_roots_keep_the_usable_certificates() {
        let mut found = rustls_native_certs::CertificateResult::default();
        found.certs.push(ca().der().clone());
        found.certs.push(CertificateDer::from(b"garbage".to_vec()));
        assert_eq!(native_roots_from(found).unwrap().len(), 1);
        let err = native_roots_from(rustls_native_certs::CertificateResult::default()).unwrap_err();
        assert_eq!(err.kind(), ossup_transport::ErrorKind::Config);
        assert!(err.message().contains("SSL_CERT_FILE"), "{err}");
    }

    #[test]
    fn certificate_and_incompatibility_failures_are_permanent_others_retryable() {
        let untrusted = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let err = handshake_error(&untrusted, "oss.example.com:443", "oss.example.com");
        assert!(!err.is_retryable());
        assert!(
            err.message()
                .starts_with("TLS handshake with oss.example.com:443 failed: the server's certificate is not trusted"),
            "{err}"
        );
        let refused = rustls::Error::AlertReceived(AlertDescription::HandshakeFailure);
        assert!(!handshake_error(&refused, "h:443", "h").is_retryable());
        let garbled = rustls::Error::DecryptError;
        let err = handshake_error(&garbled, "h:443", "h");
        assert!(err.is_retryable());
        assert!(
            err.to_string().contains("TLS handshake with h:443 failed"),
            "{err}"
        );
    }

    #[test]
    fn certificate_names_read_as_written() {
        assert_eq!(readable_name("DnsName(\"*.example.com\")"), "*.example.com");
        assert_eq!(readable_name("IpAddress(10.0.0.1)"), "10.0.0.1");
        assert_eq!(readable_name("DirectoryName"), "DirectoryName");
    }

    #[test]
    fn the_built_in_roots_can_be_left_out() {
        let extra = [Certificate::from_der(ca().der()).unwrap()];
        let built_in = webpki_roots::TLS_SERVER_ROOTS.len();
        assert!(built_in > 100);
        assert_eq!(root_store(true, &extra).len(), built_in + 1);
        assert_eq!(root_store(false, &extra).len(), 1);
        assert!(root_store(false, &[]).is_empty());
    }
}
