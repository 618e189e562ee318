//! The TLS connector the URL's `sslmode` asks for: rustls with the system's roots (feature `tls`),
//! or none.

use ossup::StoreError;

#[cfg(feature = "tls")]
pub(crate) fn connector(
    _config: &tokio_postgres::Config,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        // A certificate the store cannot parse is one root fewer, not a reason to fail.
        let _ignored = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|err| StoreError::Other(format!("setting up TLS failed: {err}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

#[cfg(not(feature = "tls"))]
pub(crate) fn connector(
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::NoTls, StoreError> {
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
        return Err(StoreError::Other(
            "the checkpoint URL asks for TLS (sslmode=require), but this ossup-postgres was built \
             without it: enable its `tls` feature"
                .into(),
        ));
    }
    Ok(tokio_postgres::NoTls)
}
