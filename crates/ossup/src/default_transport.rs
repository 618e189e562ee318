//! The transport a builder uses when given none: `HyperTransport` with the `hyper` feature (on by
//! default); without it, a clear error, so the engine never pulls in an HTTP stack the user did not
//! ask for.

use std::sync::Arc;

use crate::{Error, Transport};

/// The stock transport with its default settings.
#[cfg(feature = "hyper")]
pub(crate) fn default_transport() -> Result<Arc<dyn Transport>, Error> {
    Ok(Arc::new(crate::HyperTransport::new()))
}

/// This build has no stock transport: says so, and what to do.
#[cfg(not(feature = "hyper"))]
pub(crate) fn default_transport() -> Result<Arc<dyn Transport>, Error> {
    Err(Error::config(
        "no transport set, and this build of ossup has no default one (its `hyper` feature is off); \
         call .transport(..) with a Transport, or enable the `hyper` feature",
    ))
}

#[cfg(test)]
mod tests {
    use crate::{Client, Credentials, ErrorKind};

    fn builder() -> crate::ClientBuilder {
        Client::builder()
            .endpoint("http://127.0.0.1:9000")
            .expect("a valid endpoint")
            .credentials(Credentials::new("ak", "sk"))
    }

    #[cfg(not(feature = "hyper"))]
    #[test]
    fn without_the_hyper_feature_a_client_needs_a_transport_and_says_so() {
        let err = builder()
            .region("cn-hangzhou")
            .build()
            .expect_err("no transport and no default one");
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("call .transport("), "{err}");
    }

    #[cfg(feature = "hyper")]
    #[test]
    fn with_the_hyper_feature_a_client_builds_without_a_transport() {
        builder()
            .region("cn-hangzhou")
            .build()
            .expect("the default transport is used");
    }

    #[cfg(feature = "hyper")]
    #[test]
    fn an_ip_endpoint_needs_a_region_and_region_gives_it() {
        let err = builder()
            .build()
            .expect_err("an IP endpoint names no region");
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("region"), "{err}");
        builder()
            .region("cn-hangzhou")
            .build()
            .expect("V4 signing for the region given");
    }
}
