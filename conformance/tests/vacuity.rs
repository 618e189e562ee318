//! The cases are not vacuous: against a server that answers every request with an empty 200 (and a
//! request id), every case that runs must fail.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ossup_conformance::runner::Outcome;
use ossup_conformance::target::{Target, TemporaryCredentials};
use ossup_conformance::{cases, runner};
use ossup_sign::Credentials;

async fn start_agreeable_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = service_fn(|_request| async {
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .header("x-oss-request-id", "AGREEABLE")
                            .body(Full::new(Bytes::new()))
                            .unwrap(),
                    )
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_fails_against_a_server_that_says_yes_to_everything() {
    let addr = start_agreeable_server().await;
    let target = Target::remote(
        &format!("http://{addr}"),
        "conformance",
        Credentials::new("test-ak", "test-sk"),
        Some("cn-hangzhou".to_owned()),
    )
    .unwrap()
    .allow_bucket_creation()
    .with_temporary_credentials(TemporaryCredentials::mock());
    let reports = runner::run(&target, &cases::all()).await;
    let passed: Vec<&str> = reports
        .iter()
        .filter(|r| r.outcome == Outcome::Passed)
        .map(|r| r.name)
        .collect();
    assert!(
        passed.is_empty(),
        "cases that pass against a server answering an empty 200 to everything: {passed:?}"
    );
    let not_failed: Vec<&str> = reports
        .iter()
        .filter(|r| !matches!(r.outcome, Outcome::Failed(_)))
        .map(|r| r.name)
        .collect();
    assert!(
        not_failed.is_empty(),
        "cases that did not fail against a server answering an empty 200 to everything: {not_failed:?}"
    );
}
