//! The link the mock pretends to sit behind, on the wire: the ceiling on requests in flight answers
//! the one past it `503 SlowDown` and counts it, the bandwidths pace uploads per connection and for
//! all connections together, the latency delays every request, a `straggle` rule makes one request
//! or one connection crawl, and the shape is set by flags, in-process and over `/_mock/link`.
//!
//! Rates are checked by lower bounds (a pacer cannot be beaten, whatever the machine's load) and by
//! upper bounds only where the point is that something is not slowed, with a margin of many times
//! what the work takes.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{BUCKET, Client, MockProcess, data, eventually};
use http::Method;
use oss_mock::{FaultAction, FaultRule, LinkShape, MockConfig, MockServer};
use ossup_proto::Api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn shaped(link: LinkShape) -> MockServer {
    MockServer::start(MockConfig::default().with_bucket(BUCKET).with_link(link))
        .await
        .expect("mock server starts")
}

/// A control request without a signature: status and body.
async fn control(server: &MockServer, method: Method, path: &str, body: &str) -> (u16, String) {
    use http_body_util::BodyExt;
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", server.addr()))
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_owned(),
        )))
        .unwrap();
    let response = http.request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Opens a connection and sends a signed PutObject of `key` whose body is 2 bytes long, only the
/// first of them: the server holds the request in flight, waiting for the second.
async fn hold_one(server: &MockServer, client: &Client, key: &str) -> TcpStream {
    let parts = client.req(Method::PUT, key).signed_parts();
    let mut head =
        format!("PUT /{BUCKET}/{key} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 2\r\n");
    for (name, value) in parts.headers.iter() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("\r\nx");
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Sends the missing byte of a held request and reads its answer's status line.
async fn release(mut stream: TcpStream) -> String {
    stream.write_all(b"y").await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn the_request_past_the_ceiling_gets_503_slow_down_and_is_counted() {
    let server = shaped(LinkShape {
        max_inflight: Some(24),
        ..LinkShape::default()
    })
    .await;
    let client = Client::new(&server);
    let mut held = Vec::new();
    for i in 0..24 {
        held.push(hold_one(&server, &client, &format!("held/{i}")).await);
    }
    eventually("24 requests in flight", || {
        server.in_flight_requests() == 24
    })
    .await;

    let refused = client.get("any").await;
    let document = refused.expect_error(503, "SlowDown");
    assert!(
        document.message.contains("--max-inflight"),
        "{}",
        document.message
    );
    assert_eq!(server.stats().refused_by_ceiling(), 1);
    assert_eq!(server.stats().requests(Api::GetObject), 0, "never routed");
    let (_, stats) = control(&server, Method::GET, "/_mock/stats", "").await;
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["refused_by_ceiling"], 1);
    assert_eq!(stats["in_flight_requests"], 24);

    // One held request finishes: its answer is a success, and the next request is let in.
    let status = release(held.pop().unwrap()).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    eventually("23 requests in flight", || {
        server.in_flight_requests() == 23
    })
    .await;
    client
        .req(Method::PUT, "after")
        .body("fits")
        .send()
        .await
        .ok();
    assert_eq!(server.stats().refused_by_ceiling(), 1);
}

#[tokio::test]
async fn conn_bandwidth_paces_each_connection_on_its_own() {
    let server = shaped(LinkShape {
        conn_bandwidth: Some(1 << 20),
        ..LinkShape::default()
    })
    .await;
    let body = data(1, 512 << 10);
    let (a, b) = (Client::new(&server), Client::new(&server));
    let started = Instant::now();
    let (first, second) = tokio::join!(
        a.req(Method::PUT, "a").body(body.clone()).send(),
        b.req(Method::PUT, "b").body(body.clone()).send(),
    );
    let elapsed = started.elapsed();
    first.ok();
    second.ok();
    // Half a MiB at 1 MiB/s: at least the last chunk's worth under half a second (64 KiB chunks).
    assert!(elapsed >= Duration::from_millis(430), "{elapsed:?}");
    // Shared, the two would take a second; each on its own pipe, about half of that.
    assert!(elapsed < Duration::from_millis(900), "{elapsed:?}");
}

#[tokio::test]
async fn link_bandwidth_is_shared_by_every_connection() {
    let server = shaped(LinkShape {
        link_bandwidth: Some(1 << 20),
        ..LinkShape::default()
    })
    .await;
    let body = data(2, 512 << 10);
    let (a, b) = (Client::new(&server), Client::new(&server));
    let started = Instant::now();
    let (first, second) = tokio::join!(
        a.req(Method::PUT, "a").body(body.clone()).send(),
        b.req(Method::PUT, "b").body(body.clone()).send(),
    );
    first.ok();
    second.ok();
    // A whole MiB through one 1 MiB/s link.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(930), "{elapsed:?}");
    assert_eq!(server.stats().bytes_received(), 1 << 20);
}

#[tokio::test]
async fn latency_delays_every_request() {
    let server = shaped(LinkShape {
        latency: Duration::from_millis(300),
        ..LinkShape::default()
    })
    .await;
    let client = Client::new(&server);
    for key in ["one", "two"] {
        let started = Instant::now();
        client.req(Method::PUT, key).body("x").send().await.ok();
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{key}: {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn a_straggling_connection_crawls_for_every_request_it_carries_and_no_other_does() {
    let server = shaped(LinkShape {
        conn_bandwidth: Some(10 << 20),
        ..LinkShape::default()
    })
    .await;
    server
        .set_faults(vec![
            FaultRule::new(FaultAction::Straggle {
                percent: Some(1),
                bytes_per_sec: None,
                connection: true,
            })
            .api(Api::PutObject)
            .times(1),
        ])
        .unwrap();
    // 1 % of 10 MiB/s is ~105 KB/s: 64 KiB take 0.62 s, where the others take 6 ms.
    let body = data(3, 64 << 10);
    let (slow, fast) = (Client::new(&server), Client::new(&server));
    for key in ["first", "second"] {
        let started = Instant::now();
        slow.req(Method::PUT, key)
            .body(body.clone())
            .send()
            .await
            .ok();
        assert!(
            started.elapsed() >= Duration::from_millis(550),
            "{key} on the straggling connection: {:?}",
            started.elapsed()
        );
    }
    let started = Instant::now();
    fast.req(Method::PUT, "other")
        .body(body.clone())
        .send()
        .await
        .ok();
    assert!(
        started.elapsed() < Duration::from_millis(550),
        "another connection: {:?}",
        started.elapsed()
    );
    assert_eq!(server.fault_report()[0].fired, 1);
    assert_eq!(server.stats().faults_fired("straggle"), 1);
}

#[tokio::test]
async fn a_straggling_request_crawls_alone() {
    let server = shaped(LinkShape::default()).await;
    server
        .set_faults(vec![
            FaultRule::new(FaultAction::Straggle {
                percent: None,
                bytes_per_sec: Some(100_000),
                connection: false,
            })
            .api(Api::PutObject)
            .times(1),
        ])
        .unwrap();
    let body = data(4, 64 << 10);
    let client = Client::new(&server);
    let started = Instant::now();
    client
        .req(Method::PUT, "slow")
        .body(body.clone())
        .send()
        .await
        .ok();
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    client.req(Method::PUT, "fast").body(body).send().await.ok();
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_link_is_set_read_and_reset_over_the_control_routes() {
    let server = shaped(LinkShape::default()).await;
    let (status, body) = control(&server, Method::GET, "/_mock/link", "").await;
    assert_eq!(status, 200, "{body}");
    let shape: LinkShape = serde_json::from_str(&body).unwrap();
    assert_eq!(shape, LinkShape::default());

    let json = r#"{"link_bandwidth": 41943040, "conn_bandwidth": 4194304, "max_inflight": 12}"#;
    let (status, body) = control(&server, Method::PUT, "/_mock/link", json).await;
    assert_eq!(status, 200, "{body}");
    let expected = LinkShape {
        link_bandwidth: Some(40 << 20),
        conn_bandwidth: Some(4 << 20),
        latency: Duration::ZERO,
        max_inflight: Some(12),
    };
    assert_eq!(server.link(), expected);

    for (bad, says) in [
        (r#"{"max_inflight": 0}"#, "max_inflight"),
        (r#"{"conn_bandwidth": 10}"#, "conn_bandwidth"),
        (r#"{"latency": 40}"#, "unknown field"),
    ] {
        let (status, body) = control(&server, Method::PUT, "/_mock/link", bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains(says), "{bad}: {body}");
    }
    assert_eq!(server.link(), expected, "a refused shape changes nothing");

    let (status, _) = control(&server, Method::DELETE, "/_mock/link", "").await;
    assert_eq!(status, 204);
    assert_eq!(server.link(), LinkShape::default());
}

#[tokio::test]
async fn the_binary_takes_the_link_as_flags() {
    let mock = MockProcess::spawn(
        &[
            "--link-bandwidth",
            "200MiB/s",
            "--conn-bandwidth",
            "16MiB/s",
            "--latency",
            "40ms",
            "--max-inflight",
            "24",
        ],
        Stdio::null(),
    );
    let url = format!("{}/_mock/link", mock.endpoint);
    let authority = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let mut stream = TcpStream::connect(&authority).await.unwrap();
    stream
        .write_all(b"GET /_mock/link HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    let shape: LinkShape = serde_json::from_str(body).unwrap();
    assert_eq!(
        shape,
        LinkShape {
            link_bandwidth: Some(200 << 20),
            conn_bandwidth: Some(16 << 20),
            latency: Duration::from_millis(40),
            max_inflight: Some(24),
        }
    );
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_oss-mock"))
        .args(["--conn-bandwidth", "fast"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--conn-bandwidth"), "{stderr}");
}
