//! The Transport contract suite of `ossup-transport` (feature `testkit`) against the hyper
//! transport, which keeps it all; and against a transport broken in one way at a time, which each
//! case must catch.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

use bytes::Bytes;
use ossup_hyper::HyperTransport;
use ossup_transport::testkit::{
    bodies_cut_short_are_errors, error_statuses_are_responses, large_bodies_stream_in_many_chunks,
    progress_counts_exactly_the_body, requests_arrive_exactly, run_transport_contract,
};
use ossup_transport::{Error, ResponseBody, TransferProgress, Transport};

#[tokio::test]
async fn the_hyper_transport_keeps_the_whole_transport_contract() {
    let report = run_transport_contract(&HyperTransport::new()).await;
    assert!(
        report.not_applicable.is_empty(),
        "the hyper transport reports progress, so every case applies: {report:?}"
    );
    assert_eq!(report.passed.len(), 7, "{report:?}");
}

/// One way of breaking the contract.
#[derive(Debug, Clone, Copy)]
enum Flaw {
    /// Leaves out the `Content-MD5` header of every request.
    DropsContentMd5,
    /// Turns an HTTP error status into an `Err`.
    ErrorStatusesAsErrors,
    /// Counts every body twice in its `TransferProgress`.
    CountsProgressTwice,
    /// Reads the body ahead and hands back what arrived before it broke off, as a whole body.
    HidesBodiesCutShort,
    /// Reads every body whole before answering.
    BuffersBodies,
}

/// The hyper transport with one flaw.
#[derive(Debug)]
struct Broken {
    inner: HyperTransport,
    flaw: Flaw,
}

impl Broken {
    fn new(flaw: Flaw) -> Self {
        Self {
            inner: HyperTransport::new(),
            flaw,
        }
    }
}

#[async_trait::async_trait]
impl Transport for Broken {
    async fn send(
        &self,
        mut request: http::Request<Bytes>,
    ) -> Result<http::Response<ResponseBody>, Error> {
        match self.flaw {
            Flaw::DropsContentMd5 => {
                request.headers_mut().remove("content-md5");
                self.inner.send(request).await
            }
            Flaw::ErrorStatusesAsErrors => {
                let response = self.inner.send(request).await?;
                if response.status().as_u16() >= 400 {
                    return Err(Error::network_permanent(format!(
                        "HTTP {}",
                        response.status()
                    )));
                }
                Ok(response)
            }
            Flaw::CountsProgressTwice => {
                let len = request.body().len() as u64;
                if let Some(progress) = request.extensions().get::<TransferProgress>() {
                    progress.add(len);
                }
                self.inner.send(request).await
            }
            Flaw::BuffersBodies => {
                let response = self.inner.send(request).await?;
                let (parts, body) = response.into_parts();
                let body = body.collect(usize::MAX).await?;
                Ok(http::Response::from_parts(
                    parts,
                    ResponseBody::from_bytes(body),
                ))
            }
            Flaw::HidesBodiesCutShort => {
                let response = self.inner.send(request).await?;
                let (parts, mut body) = response.into_parts();
                let mut read = Vec::new();
                while let Some(Ok(chunk)) = body.chunk().await {
                    read.extend_from_slice(&chunk);
                }
                Ok(http::Response::from_parts(
                    parts,
                    ResponseBody::from_bytes(read),
                ))
            }
        }
    }

    fn reports_progress(&self) -> bool {
        self.inner.reports_progress()
    }
}

#[tokio::test]
#[should_panic(expected = "requests_arrive_exactly: header content-md5")]
async fn the_contract_catches_a_request_header_left_out() {
    requests_arrive_exactly(&Broken::new(Flaw::DropsContentMd5)).await;
}

#[tokio::test]
#[should_panic(expected = "error_statuses_are_responses: an HTTP 404 answer came back as an error")]
async fn the_contract_catches_an_error_status_turned_into_an_error() {
    error_statuses_are_responses(&Broken::new(Flaw::ErrorStatusesAsErrors)).await;
}

#[tokio::test]
#[should_panic(
    expected = "progress_counts_exactly_the_body: TransferProgress counted 6291456 bytes"
)]
async fn the_contract_catches_progress_counted_wrong() {
    progress_counts_exactly_the_body(&Broken::new(Flaw::CountsProgressTwice)).await;
}

#[tokio::test]
#[should_panic(expected = "bodies_cut_short_are_errors: a content-length body cut short")]
async fn the_contract_catches_a_body_cut_short_read_as_complete() {
    bodies_cut_short_are_errors(&Broken::new(Flaw::HidesBodiesCutShort)).await;
}

#[tokio::test]
#[should_panic(
    expected = "large_bodies_stream_in_many_chunks: no response while the server held back"
)]
async fn the_contract_catches_a_transport_that_does_not_stream() {
    large_bodies_stream_in_many_chunks(&Broken::new(Flaw::BuffersBodies)).await;
}
