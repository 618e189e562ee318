//! HTTPS through the hyper transport: uploads through a TLS terminator in front of the in-process
//! mock (which serves plain HTTP), and the errors of certificates that cannot be trusted, of a
//! handshake cut short and of one that never finishes.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ossup::{
    BytesSource, Client, ErrorKind, Parallel, ProgressEvent, Transport as _, UploadMethod,
    UploadRequest, V4Signer,
};
use ossup_hyper::{Certificate, HyperTransport};
use ossup_test_support::{
    BUCKET, REGION, assert_object_is, builder, credentials, data, fast_retry, mock,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate authority made for one test, and a server certificate it issued.
struct Pki {
    ca_der: Vec<u8>,
    ca_pem: String,
    server: Arc<ServerConfig>,
}

/// A CA and a server certificate for `names` (DNS names or IP addresses).
fn pki(names: &[&str]) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ossup test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let certificate = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![certificate.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    Pki {
        ca_der: ca.der().to_vec(),
        ca_pem: ca.pem(),
        server: Arc::new(server),
    }
}

/// A TLS terminator on 127.0.0.1: accepts TLS and forwards the plain bytes to a backend, as a
/// load balancer in front of OSS does.
struct Terminator {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    handshakes: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Terminator {
    async fn start(config: Arc<ServerConfig>, backend: SocketAddr) -> Self {
        Self::resetting_first(0, config, backend).await
    }

    /// As [`start`](Self::start), but the first `resets` connections are reset as soon as the
    /// client's hello arrives.
    async fn resetting_first(
        resets: usize,
        config: Arc<ServerConfig>,
        backend: SocketAddr,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let handshakes = Arc::new(AtomicUsize::new(0));
        let acceptor = TlsAcceptor::from(config);
        let task = {
            let (connections, handshakes) = (connections.clone(), handshakes.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((mut tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let n = connections.fetch_add(1, Ordering::SeqCst);
                    let (acceptor, handshakes) = (acceptor.clone(), handshakes.clone());
                    tokio::spawn(async move {
                        if n < resets {
                            let mut hello = [0u8; 1];
                            let _ = tcp.read(&mut hello).await;
                            tcp.set_zero_linger().unwrap();
                            return;
                        }
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        handshakes.fetch_add(1, Ordering::SeqCst);
                        let mut plain = TcpStream::connect(backend).await.unwrap();
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    });
                }
            })
        };
        Self {
            addr,
            connections,
            handshakes,
            task,
        }
    }

    fn endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }
}

impl Drop for Terminator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client of the mock at `endpoint` sending through `transport`.
fn client_with(endpoint: &str, transport: HyperTransport) -> Client {
    Client::builder()
        .endpoint(endpoint)
        .unwrap()
        .credentials(credentials())
        .signer(V4Signer::new(REGION))
        .transport(transport)
        .retry(fast_retry())
        .build()
        .unwrap()
}

/// A transport trusting `pki`'s CA (and the built-in roots).
fn trusting(pki: &Pki) -> HyperTransport {
    HyperTransport::builder()
        .add_root_certificate(Certificate::from_der(&pki.ca_der).unwrap())
        .build()
}

#[tokio::test]
async fn a_multipart_upload_over_https_stores_the_exact_bytes_and_http_shares_the_transport() {
    let server = mock().await;
    let pki = pki(&["127.0.0.1", "localhost"]);
    let terminator = Terminator::start(pki.server.clone(), server.addr()).await;
    let transport = trusting(&pki);
    let uploader = builder(&terminator.endpoint())
        .transport(transport.clone())
        .scheduler(Parallel::new(3))
        .build()
        .unwrap();

    let bytes = data(450_000, 11);
    let outcome = uploader
        .upload(UploadRequest::new(
            BytesSource::new(bytes.clone(), "big"),
            BUCKET,
            "tls/big.bin",
        ))
        .await
        .unwrap();
    assert_eq!(outcome.method, UploadMethod::Multipart);
    assert_eq!(outcome.parts, 5);
    let small = data(5000, 12);
    let outcome = uploader
        .upload(UploadRequest::new(
            BytesSource::new(small.clone(), "small"),
            BUCKET,
            "tls/small.bin",
        ))
        .await
        .unwrap();
    assert_eq!(outcome.method, UploadMethod::PutObject);
    assert_object_is(uploader.client(), "tls/big.bin", &bytes).await;
    assert!(terminator.handshakes() >= 1);

    // The same transport, plain HTTP, straight to the mock: both objects are there.
    let plain = client_with(&server.endpoint(), transport);
    assert!(server.endpoint().starts_with("http://"));
    assert_object_is(&plain, "tls/big.bin", &bytes).await;
    assert_object_is(&plain, "tls/small.bin", &small).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_private_ca_from_a_pem_file_is_trusted_without_the_built_in_roots() {
    let server = mock().await;
    let pki = pki(&["localhost"]);
    let terminator = Terminator::start(pki.server.clone(), server.addr()).await;
    let transport = HyperTransport::builder()
        .built_in_roots(false)
        .add_root_certificates(Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .build();
    let endpoint = format!("https://localhost:{}", terminator.addr.port());
    let uploader = builder(&endpoint).transport(transport).build().unwrap();
    let bytes = data(250_000, 13);
    uploader
        .upload(UploadRequest::new(
            BytesSource::new(bytes.clone(), "pem"),
            BUCKET,
            "pem.bin",
        ))
        .await
        .unwrap();
    assert_object_is(uploader.client(), "pem.bin", &bytes).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_self_signed_server_certificate_can_be_trusted_by_itself() {
    let server = mock().await;
    let self_signed = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let config = ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![self_signed.cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            self_signed.signing_key.serialize_der(),
        )),
    )
    .unwrap();
    let terminator = Terminator::start(Arc::new(config), server.addr()).await;
    let transport = HyperTransport::builder()
        .built_in_roots(false)
        .add_root_certificate(Certificate::from_der(self_signed.cert.der()).unwrap())
        .build();
    let uploader = builder(&terminator.endpoint())
        .transport(transport)
        .build()
        .unwrap();
    let bytes = data(3000, 16);
    uploader
        .upload(UploadRequest::new(
            BytesSource::new(bytes.clone(), "self-signed"),
            BUCKET,
            "self-signed.bin",
        ))
        .await
        .unwrap();
    assert_object_is(uploader.client(), "self-signed.bin", &bytes).await;
    assert!(terminator.handshakes() >= 1);
    server.shutdown().await;
}

#[tokio::test]
async fn an_untrusted_certificate_stops_the_upload_at_once_with_a_clear_error() {
    let server = mock().await;
    let pki = pki(&["127.0.0.1"]);
    let terminator = Terminator::start(pki.server.clone(), server.addr()).await;
    // Only the built-in roots: the test CA is unknown.
    let uploader = builder(&terminator.endpoint())
        .transport(HyperTransport::new())
        .build()
        .unwrap();
    let err = uploader
        .upload(UploadRequest::new(
            BytesSource::new(data(5000, 14), "x"),
            BUCKET,
            "untrusted.bin",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Network);
    assert!(!err.is_retryable(), "{err}");
    let expected = format!(
        "TLS handshake with {} failed: the server's certificate is not trusted",
        terminator.addr
    );
    assert!(err.message().contains(&expected), "{err}");
    assert!(err.message().contains("add_root_certificate"), "{err}");
    assert_eq!(
        terminator.connections(),
        1,
        "a permanent error is not retried"
    );
    assert_eq!(terminator.handshakes(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_certificate_for_another_host_is_a_clear_permanent_error() {
    let pki = pki(&["oss-cn-hangzhou.aliyuncs.com"]);
    // The handshake fails before any byte reaches the backend, so none is needed.
    let unused = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let terminator = Terminator::start(pki.server.clone(), unused.local_addr().unwrap()).await;
    let err = trusting(&pki)
        .send(
            http::Request::put(format!("{}/bucket/key", terminator.endpoint()))
                .body(Bytes::from_static(b"data"))
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(
        err.message().contains(&format!(
            "TLS handshake with {} failed: the server's certificate is not valid for 127.0.0.1",
            terminator.addr
        )),
        "{err}"
    );
    assert!(
        err.message().contains("oss-cn-hangzhou.aliyuncs.com"),
        "{err}"
    );
}

#[tokio::test]
async fn a_connection_reset_during_the_handshake_is_a_retryable_error() {
    let pki = pki(&["127.0.0.1"]);
    let unused = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let terminator =
        Terminator::resetting_first(usize::MAX, pki.server.clone(), unused.local_addr().unwrap())
            .await;
    let err = trusting(&pki)
        .send(
            http::Request::get(format!("{}/", terminator.endpoint()))
                .body(Bytes::new())
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Network);
    assert!(err.is_retryable(), "{err}");
    assert!(
        err.message()
            .contains(&format!("cannot connect to {}", terminator.addr)),
        "{err}"
    );
}

#[tokio::test]
async fn handshakes_reset_by_the_server_are_retried_and_the_upload_completes() {
    let server = mock().await;
    let pki = pki(&["127.0.0.1"]);
    let terminator = Terminator::resetting_first(2, pki.server.clone(), server.addr()).await;
    let uploader = builder(&terminator.endpoint())
        .transport(trusting(&pki))
        .build()
        .unwrap();
    let retries = Arc::new(AtomicUsize::new(0));
    let counter = retries.clone();
    let bytes = data(5000, 15);
    uploader
        .upload(
            UploadRequest::new(
                BytesSource::new(bytes.clone(), "reset"),
                BUCKET,
                "reset.bin",
            )
            .progress(move |event: &ProgressEvent| {
                if matches!(event, ProgressEvent::Retrying { .. }) {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }),
        )
        .await
        .unwrap();
    assert_eq!(retries.load(Ordering::Relaxed), 2);
    assert!(terminator.connections() >= 3);
    assert_object_is(uploader.client(), "reset.bin", &bytes).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_handshake_that_never_finishes_times_out_as_a_retryable_error() {
    // Accepts connections and never answers the client's hello.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let transport = HyperTransport::builder()
        .connect_timeout(Duration::from_millis(300))
        .build();
    let sent = transport.send(
        http::Request::get(format!("https://{addr}/"))
            .body(Bytes::new())
            .unwrap(),
    );
    let err = tokio::time::timeout(Duration::from_secs(30), sent)
        .await
        .expect("the connect timeout ends the request")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Network);
    assert!(err.is_retryable(), "{err}");
    assert!(
        err.message().contains(&format!(
            "cannot connect to {addr}: TCP connect and TLS handshake did not finish within 300ms"
        )),
        "{err}"
    );
    silent.abort();
}

/// Set in the child process of
/// [`the_systems_trust_store_is_used_when_asked_for`]: the port of the TLS terminator to reach.
const CHILD_PORT: &str = "OSSUP_HYPER_TEST_NATIVE_ROOTS_PORT";

#[tokio::test]
async fn the_systems_trust_store_is_used_when_asked_for() {
    if let Ok(port) = std::env::var(CHILD_PORT) {
        // The child: SSL_CERT_FILE names the test CA, which is all it trusts.
        let roots = Certificate::load_native_roots().unwrap();
        let transport = HyperTransport::builder()
            .built_in_roots(false)
            .add_root_certificates(roots)
            .build();
        let response = transport
            .send(
                http::Request::get(format!("https://127.0.0.1:{port}/"))
                    .body(Bytes::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        // The handshake went through: the mock answered (an error, for an unsigned request).
        assert!(
            response.headers().contains_key("x-oss-request-id"),
            "{response:?}"
        );
        return;
    }

    let server = mock().await;
    let pki = pki(&["127.0.0.1"]);
    let terminator = Terminator::start(pki.server.clone(), server.addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, &pki.ca_pem).unwrap();
    let output = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "the_systems_trust_store_is_used_when_asked_for",
            "--test-threads=1",
        ])
        .env(CHILD_PORT, terminator.addr.port().to_string())
        .env("SSL_CERT_FILE", &bundle)
        .env_remove("SSL_CERT_DIR")
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("the child finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(terminator.handshakes(), 1);
    server.shutdown().await;
}
