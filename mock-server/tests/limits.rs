//! Every bound on what the mock reads, passed on purpose over real loopback sockets: too many or too
//! large headers, a long URL or key, deep or oversized XML, too many parts, too many connections, a
//! slow head (slowloris), an idle connection, a stalled body. Each gets its documented answer or a
//! closed connection within a bounded time, and the server keeps serving.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

mod common;

use std::time::{Duration, Instant};

use common::{BOUND, BUCKET, Client, server};
use http::Method;
use oss_mock::{Limits, MockConfig, MockServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server_with(limits: Limits) -> MockServer {
    MockServer::start(
        MockConfig::default()
            .with_bucket(BUCKET)
            .with_limits(limits),
    )
    .await
    .unwrap()
}

/// Sends `bytes` and reads until the server closes the connection (bounded): what it answered.
async fn exchange(server: &MockServer, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    read_until_closed(&mut stream).await
}

async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server did not close within {BOUND:?}");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn too_many_header_fields_are_431_and_a_closed_connection() {
    let server = server().await;
    let mut head = String::from("GET /bucket/k HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for i in 0..150 {
        head.push_str(&format!("x-oss-meta-h{i}: v\r\n"));
    }
    head.push_str("\r\n");
    let answer = exchange(&server, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    Client::new(&server)
        .get("k")
        .await
        .expect_error(404, "NoSuchKey");
}

#[tokio::test]
async fn a_head_over_max_header_bytes_is_431_and_a_closed_connection() {
    let server = server_with(Limits {
        max_header_bytes: 8 * 1024,
        ..Limits::default()
    })
    .await;
    let head = format!(
        "GET /bucket/k HTTP/1.1\r\nHost: 127.0.0.1\r\nx-oss-meta-big: {}\r\n\r\n",
        "v".repeat(10 * 1024)
    );
    let answer = exchange(&server, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // A head within the bound is served.
    Client::new(&server)
        .req(Method::GET, "k")
        .header("x-oss-meta-big", &"v".repeat(4 * 1024))
        .send()
        .await
        .expect_error(404, "NoSuchKey");
}

#[tokio::test]
async fn a_url_over_max_url_bytes_is_400_invalid_argument() {
    let server = server_with(Limits {
        max_url_bytes: 2048,
        ..Limits::default()
    })
    .await;
    let client = Client::new(&server);
    let long = client
        .req(Method::GET, "")
        .query("prefix", &"p".repeat(3000))
        .send()
        .await;
    let err = long.expect_error(400, "InvalidArgument");
    assert!(err.message.contains("--max-url-bytes"), "{}", err.message);
    client
        .req(Method::GET, "")
        .query("prefix", &"p".repeat(1000))
        .send()
        .await
        .ok();
}

#[tokio::test]
async fn a_key_over_1023_bytes_is_400_invalid_object_name() {
    let server = server().await;
    let client = Client::new(&server);
    // 342 three-byte characters: 1026 bytes of UTF-8, though fewer than 1023 characters.
    let long = "中".repeat(342);
    let err = client
        .req(Method::PUT, &long)
        .body("x")
        .send()
        .await
        .expect_error(400, "InvalidObjectName");
    assert!(err.message.contains("1023"), "{}", err.message);
    client
        .req(Method::PUT, &"k".repeat(1023))
        .body("x")
        .send()
        .await
        .ok();
}

#[tokio::test]
async fn deeply_nested_xml_is_400_malformed_xml() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    let etag = client
        .upload_part("k", &id, 1, b"part")
        .await
        .ok()
        .header("etag")
        .unwrap()
        .to_owned();
    let nested = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part>{}{}</CompleteMultipartUpload>",
        "<x>".repeat(50),
        "</x>".repeat(50)
    );
    let err = client
        .req(Method::POST, "k")
        .query("uploadId", &id)
        .body(nested)
        .send()
        .await
        .expect_error(400, "MalformedXML");
    assert!(err.message.contains("nest"), "{}", err.message);
    let bucket_config = format!(
        "<CreateBucketConfiguration>{}{}</CreateBucketConfiguration>",
        "<x>".repeat(50),
        "</x>".repeat(50)
    );
    client
        .req_in(Method::PUT, "other-bucket", "")
        .body(bucket_config)
        .send()
        .await
        .expect_error(400, "MalformedXML");
    // The upload is untouched and completes.
    client.complete("k", &id, &[(1, etag)]).await.ok();
}

#[tokio::test]
async fn a_complete_over_2_mib_or_listing_over_10000_parts_is_400_malformed_xml() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    let parts: Vec<(u32, String)> = (1..=10_001).map(|n| (n, "\"E\"".to_owned())).collect();
    let err = client
        .complete("k", &id, &parts)
        .await
        .expect_error(400, "MalformedXML");
    assert!(err.message.contains("10001 parts"), "{}", err.message);
    let padding = " ".repeat(oss_mock::MAX_COMPLETE_BODY + 1);
    let err = client
        .req(Method::POST, "k")
        .query("uploadId", &id)
        .body(format!(
            "<CompleteMultipartUpload>{padding}</CompleteMultipartUpload>"
        ))
        .send()
        .await
        .expect_error(400, "MalformedXML");
    assert!(err.message.contains("limit"), "{}", err.message);
    assert_eq!(server.open_uploads(), 1);
}

#[tokio::test]
async fn a_connection_over_the_cap_gets_an_immediate_503_and_a_close() {
    let server = server_with(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
    let held_1 = TcpStream::connect(server.addr()).await.unwrap();
    let held_2 = TcpStream::connect(server.addr()).await.unwrap();
    // Let the server accept both before the third arrives.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let answer = exchange(
        &server,
        b"GET /bucket/k HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(3), "not a hang");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("<Code>ServiceUnavailable</Code>"),
        "{answer}"
    );
    assert!(answer.contains("--max-connections"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    drop(held_1);
    // A slot is free again once the server has seen the close.
    let start = Instant::now();
    loop {
        let response = Client::new(&server).get("k").await;
        if response.status.as_u16() == 404 {
            break;
        }
        assert!(
            start.elapsed() < BOUND,
            "no slot freed: {}",
            response.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(held_2);
}

#[tokio::test]
async fn a_slowloris_head_is_closed_after_the_header_timeout_and_frees_its_slot() {
    let server = server_with(Limits {
        max_connections: 1,
        header_timeout: Duration::from_millis(600),
        ..Limits::default()
    })
    .await;
    let mut slow = TcpStream::connect(server.addr()).await.unwrap();
    let started = Instant::now();
    slow.write_all(b"GET /bucket/k HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    // One header line every 100 ms: always sending, never finishing.
    let trickle = async {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow
                .write_all(format!("x-oss-meta-{i}: v\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), trickle).await;
    let closed_after = started.elapsed();
    assert!(
        closed_after >= Duration::from_millis(500) && closed_after < Duration::from_secs(4),
        "closed after {closed_after:?}"
    );
    // The one slot is free: an ordinary request is served.
    let start = Instant::now();
    loop {
        if Client::new(&server).get("k").await.status.as_u16() == 404 {
            break;
        }
        assert!(start.elapsed() < BOUND, "the slot was not freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let server = server_with(Limits {
        header_timeout: Duration::from_millis(500),
        ..Limits::default()
    })
    .await;
    let mut silent = TcpStream::connect(server.addr()).await.unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut silent).await;
    assert!(answer.is_empty(), "{answer}");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(3),
        "closed after {elapsed:?}"
    );
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let server = server_with(Limits {
        idle_timeout: Duration::from_millis(700),
        ..Limits::default()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream
        .write_all(b"GET /_mock/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(600) && elapsed < Duration::from_secs(4),
        "closed after {elapsed:?}"
    );
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_closed_after_the_idle_timeout_and_stores_nothing() {
    let server = server_with(Limits {
        idle_timeout: Duration::from_millis(700),
        ..Limits::default()
    })
    .await;
    let client = Client::new(&server);
    let parts = client.req(Method::PUT, "stalled").signed_parts();
    let mut head =
        format!("PUT /{BUCKET}/stalled HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 1000\r\n");
    for (name, value) in parts.headers.iter() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("\r\n");
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[b'x'; 100]).await.unwrap();
    let started = Instant::now();
    let _ = read_until_closed(&mut stream).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(600) && elapsed < Duration::from_secs(4),
        "closed after {elapsed:?}"
    );
    client.get("stalled").await.expect_error(404, "NoSuchKey");
}

#[tokio::test]
async fn a_slow_but_steady_body_and_a_long_handler_are_not_cut_off() {
    let server = server_with(Limits {
        idle_timeout: Duration::from_millis(500),
        header_timeout: Duration::from_millis(500),
        ..Limits::default()
    })
    .await;
    let client = Client::new(&server);
    let parts = client.req(Method::PUT, "steady").signed_parts();
    let mut head =
        format!("PUT /{BUCKET}/steady HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 10\r\n");
    for (name, value) in parts.headers.iter() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("\r\n");
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    // Ten bytes over 2 s: longer than every timeout in total, never idle for one.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stream.write_all(b"y").await.unwrap();
    }
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(BOUND, stream.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(client.get("steady").await.ok().body.as_ref(), b"yyyyyyyyyy");
    // A request a delay rule holds for longer than the timeouts is answered too.
    server
        .set_faults(vec![oss_mock::FaultRule::new(
            oss_mock::FaultAction::Delay { ms: 1500 },
        )])
        .unwrap();
    client.get("steady").await.ok();
}

#[test]
fn the_default_limits_fit_every_legal_request() {
    let limits = Limits::default();
    // A 1023-byte key percent-encoded three times over (key, prefix and marker of a listing) and
    // the rest of the URL fit the URL bound.
    assert!(limits.max_url_bytes > 3 * 3 * 1023 + 256);
    // The URL fits in a head, with room for the signed headers.
    assert!(limits.max_header_bytes > limits.max_url_bytes + 8 * 1024);
}
