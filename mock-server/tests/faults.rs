//! Fault rules on the wire: each action does what `docs/fault-injection.md` says to a real client
//! connection, rules fire on exactly the requests `nth`, `times` and a seed choose, and the `/_mock/`
//! control routes and `--faults FILE` set them.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::{BOUND, BUCKET, Client, MockProcess, data, eventually, server};
use http::Method;
use oss_mock::{FaultAction, FaultRule, MockConfig, MockServer};
use ossup_proto::Api;
use ossup_proto::checksum::{crc64, md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", hex_upper(&md5(bytes)))
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The head of a signed request, written by hand so a test sees exactly what comes back on the
/// connection.
fn raw_head(request: common::Request, path_and_query: &str, content_length: usize) -> String {
    let parts = request.signed_parts();
    let mut head = format!(
        "{} {path_and_query} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {content_length}\r\n",
        parts.method
    );
    for (name, value) in parts.headers.iter() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("\r\n");
    head
}

/// Sends `head` and `body` on a fresh connection and reads until the server closes it. Write
/// errors (the server may close before the body is all sent) and a reset while reading end the
/// exchange; the bytes received until then are returned.
async fn raw_exchange(server: &MockServer, head: &str, body: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let exchange = async {
        if stream.write_all(head.as_bytes()).await.is_ok() {
            let _ = stream.write_all(body).await;
        }
        let mut received = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return received,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(BOUND, exchange)
        .await
        .expect("the server closes the connection")
}

fn rule(action: FaultAction) -> FaultRule {
    FaultRule::new(action)
}

#[tokio::test]
async fn an_error_rule_answers_its_status_and_code_after_authentication() {
    let server = server().await;
    server
        .set_faults(vec![
            rule(FaultAction::error(503, "ServiceUnavailable")).times(1),
        ])
        .unwrap();
    let client = Client::new(&server);
    // Unsigned: refused by authentication, never seen by the rule.
    let unsigned = client.req(Method::GET, "k").unsigned().send().await;
    unsigned.expect_error(403, "AccessDenied");
    assert_eq!(server.fault_report()[0].matched, 0);
    let first = client.req(Method::GET, "k").send().await;
    let err = first.expect_error(503, "ServiceUnavailable");
    assert_eq!(err.message, "Please reduce your request rate.");
    let second = client.req(Method::GET, "k").send().await;
    second.expect_error(404, "NoSuchKey");
    assert_eq!(server.stats().faults_fired("error"), 1);
    assert_eq!(server.stats().error_responses(), 3);
}

#[tokio::test]
async fn an_error_rule_may_use_any_code_and_message() {
    let server = server().await;
    server
        .set_faults(vec![rule(FaultAction::Error {
            status: 599,
            code: "SomethingNew".into(),
            message: Some("made up".into()),
        })])
        .unwrap();
    let response = Client::new(&server).get("k").await;
    let err = response.expect_error(599, "SomethingNew");
    assert_eq!(err.message, "made up");
}

#[tokio::test]
async fn nth_and_times_choose_exactly_which_matching_requests_fail() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("big/k").await;
    server
        .set_faults(vec![
            rule(FaultAction::error(503, "ServiceUnavailable"))
                .api(Api::UploadPart)
                .key_prefix("big/")
                .nth(2)
                .times(2),
        ])
        .unwrap();
    let mut statuses = Vec::new();
    for n in 1..=5 {
        statuses.push(
            client
                .upload_part("big/k", &id, n, b"x")
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 503, 503, 200, 200]);
    // Requests the matchers leave out are not counted.
    client.list_parts("big/k", &id, &[]).await;
    let report = server.fault_report();
    assert_eq!((report[0].matched, report[0].fired), (5, 2));
}

#[tokio::test]
async fn part_number_matches_only_that_part() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    server
        .set_faults(vec![
            rule(FaultAction::error(500, "InternalError")).part_number(3),
        ])
        .unwrap();
    let statuses: Vec<u16> = upload_statuses(&client, &id, 1..=4).await;
    assert_eq!(statuses, [200, 200, 500, 200]);
}

async fn upload_statuses(
    client: &Client,
    id: &str,
    parts: std::ops::RangeInclusive<u32>,
) -> Vec<u16> {
    let mut out = Vec::new();
    for n in parts {
        out.push(client.upload_part("k", id, n, b"y").await.status.as_u16());
    }
    out
}

#[tokio::test]
async fn the_same_seed_fires_on_the_same_requests() {
    async fn run(seed: u64) -> Vec<u16> {
        let server = server().await;
        server
            .set_faults(vec![
                rule(FaultAction::error(503, "ServiceUnavailable"))
                    .api(Api::GetObject)
                    .probability(0.4)
                    .seed(seed),
            ])
            .unwrap();
        let client = Client::new(&server);
        let mut statuses = Vec::new();
        for _ in 0..40 {
            statuses.push(client.get("missing").await.status.as_u16());
        }
        statuses
    }
    let first = run(7).await;
    assert_eq!(first, run(7).await);
    assert_ne!(first, run(8).await);
    assert!(first.contains(&503) && first.contains(&404), "{first:?}");
}

#[tokio::test]
async fn reset_before_body_closes_the_connection_without_an_answer_and_stores_nothing() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    server
        .set_faults(vec![
            rule(FaultAction::ResetBeforeBody).api(Api::UploadPart),
        ])
        .unwrap();
    let body = data(1, 300 * 1024);
    let request = client
        .req(Method::PUT, "k")
        .query("partNumber", "1")
        .query("uploadId", &id);
    let head = raw_head(
        request,
        &format!("/{BUCKET}/k?partNumber=1&uploadId={id}"),
        body.len(),
    );
    let received = raw_exchange(&server, &head, &body).await;
    assert!(
        received.is_empty(),
        "no HTTP answer at all, got {:?}",
        String::from_utf8_lossy(&received)
    );
    server.clear_faults();
    assert!(client.list_parts("k", &id, &[]).await.parts.is_empty());
    assert_eq!(server.stats().faults_fired("reset_before_body"), 1);
}

#[tokio::test]
async fn reset_mid_body_reads_that_much_then_closes_and_stores_nothing() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    server
        .set_faults(vec![
            rule(FaultAction::ResetMidBody {
                after_bytes: 150 * 1024,
            })
            .api(Api::UploadPart),
        ])
        .unwrap();
    let received_before = server.stats().bytes_received();
    let body = data(2, 400 * 1024);
    let head = raw_head(
        client
            .req(Method::PUT, "k")
            .query("partNumber", "1")
            .query("uploadId", &id),
        &format!("/{BUCKET}/k?partNumber=1&uploadId={id}"),
        body.len(),
    );
    let received = raw_exchange(&server, &head, &body).await;
    assert!(
        received.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
    let read = server.stats().bytes_received() - received_before;
    assert!(
        (150 * 1024..400 * 1024).contains(&read),
        "read {read} bytes of the body"
    );
    server.clear_faults();
    assert!(client.list_parts("k", &id, &[]).await.parts.is_empty());
    assert_eq!(server.stats().bytes_stored(), 0);
}

#[tokio::test]
async fn reset_after_commit_stores_the_part_but_the_client_never_hears() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    server
        .set_faults(vec![
            rule(FaultAction::ResetAfterCommit).api(Api::UploadPart),
        ])
        .unwrap();
    let body = data(3, 200 * 1024);
    let head = raw_head(
        client
            .req(Method::PUT, "k")
            .query("partNumber", "1")
            .query("uploadId", &id),
        &format!("/{BUCKET}/k?partNumber=1&uploadId={id}"),
        body.len(),
    );
    let received = raw_exchange(&server, &head, &body).await;
    assert!(
        received.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
    server.clear_faults();
    let parts = client.list_parts("k", &id, &[]).await.parts;
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].etag, etag_of(&body));
    assert_eq!(parts[0].size, body.len() as u64);
}

#[tokio::test]
async fn reset_after_commit_of_complete_publishes_the_object() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    let body = data(4, 1000);
    client.upload_part("k", &id, 1, &body).await.ok();
    server
        .set_faults(vec![
            rule(FaultAction::ResetAfterCommit).api(Api::CompleteMultipartUpload),
        ])
        .unwrap();
    let lost = client
        .req(Method::POST, "k")
        .query("uploadId", &id)
        .body(common::complete_xml(&[(1, etag_of(&body))]))
        .try_send()
        .await;
    assert!(lost.is_err(), "the answer is lost: {lost:?}");
    server.clear_faults();
    assert_eq!(&client.get("k").await.ok().body[..], &body[..]);
    assert_eq!(server.open_uploads(), 0);
}

#[tokio::test]
async fn truncate_response_sends_the_headers_and_only_that_many_body_bytes() {
    let server = server().await;
    let client = Client::new(&server);
    let object = data(5, 10_000);
    client
        .req(Method::PUT, "k")
        .body(object.clone())
        .send()
        .await
        .ok();
    server
        .set_faults(vec![
            rule(FaultAction::TruncateResponse { bytes: 1234 }).api(Api::GetObject),
        ])
        .unwrap();
    let head = raw_head(client.req(Method::GET, "k"), &format!("/{BUCKET}/k"), 0);
    let received = raw_exchange(&server, &head, &[]).await;
    let split = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("the head arrives whole");
    let head = String::from_utf8_lossy(&received[..split]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-length: 10000"), "{head}");
    let body = &received[split + 4..];
    assert_eq!(body, &object[..1234]);
}

#[tokio::test]
async fn truncate_response_cuts_an_xml_answer_so_it_does_not_parse() {
    let server = server().await;
    let client = Client::new(&server);
    server
        .set_faults(vec![
            rule(FaultAction::TruncateResponse { bytes: 40 })
                .api(Api::InitiateMultipartUpload)
                .times(1),
        ])
        .unwrap();
    let head = raw_head(
        client.req(Method::POST, "k").query("uploads", ""),
        &format!("/{BUCKET}/k?uploads"),
        0,
    );
    let received = raw_exchange(&server, &head, &[]).await;
    let split = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let body = String::from_utf8_lossy(&received[split + 4..]).into_owned();
    assert_eq!(body.len(), 40, "{body}");
    assert!(
        ossup_proto::xml::from_xml::<ossup_proto::xml::InitiateMultipartUploadResult>(
            "InitiateMultipartUploadResult",
            &body
        )
        .is_err()
    );
    // The work was done: the upload exists.
    assert_eq!(server.open_uploads(), 1);
    // An answer no longer than the limit is sent whole.
    server
        .set_faults(vec![
            rule(FaultAction::TruncateResponse { bytes: 1 << 20 })
                .api(Api::InitiateMultipartUpload),
        ])
        .unwrap();
    let id = client.initiate("k2").await;
    assert!(!id.is_empty());
}

#[tokio::test]
async fn delay_does_the_work_first_and_answers_late() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    server
        .set_faults(vec![
            rule(FaultAction::Delay { ms: 600 }).api(Api::UploadPart),
        ])
        .unwrap();
    let started = Instant::now();
    let body = data(6, 5000);
    let pending = {
        let (client, id, body) = (client.clone(), id.clone(), body.clone());
        tokio::spawn(async move { client.upload_part("k", &id, 1, &body).await })
    };
    // The part is stored while its answer is still held back.
    eventually("the part is stored", || {
        server.stats().bytes_stored() == 5000
    })
    .await;
    let answer = tokio::time::timeout(BOUND, pending).await.unwrap().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert_eq!(answer.ok().header("etag"), Some(etag_of(&body).as_str()));
}

#[tokio::test]
async fn throttle_reads_the_body_slowly_and_stores_it_whole() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    server
        .set_faults(vec![
            rule(FaultAction::Throttle {
                bytes_per_sec: 200_000,
            })
            .api(Api::UploadPart),
        ])
        .unwrap();
    let body = data(7, 100 * 1024);
    let started = Instant::now();
    let answer = client.upload_part("k", &id, 1, &body).await.ok();
    // 102400 bytes at 200000 bytes/s cannot take less than about half a second.
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(answer.header("etag"), Some(etag_of(&body).as_str()));
}

#[tokio::test]
async fn stall_never_answers_and_ends_when_the_client_disconnects() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    server
        .set_faults(vec![rule(FaultAction::Stall).api(Api::UploadPart)])
        .unwrap();
    let body = data(8, 64 * 1024);
    let head = raw_head(
        client
            .req(Method::PUT, "k")
            .query("partNumber", "1")
            .query("uploadId", &id),
        &format!("/{BUCKET}/k?partNumber=1&uploadId={id}"),
        body.len(),
    );
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    eventually("the request is stalled", || server.stalled_requests() == 1).await;
    drop(stream);
    eventually("the stall ends with the connection", || {
        server.stalled_requests() == 0
    })
    .await;
    server.clear_faults();
    assert!(client.list_parts("k", &id, &[]).await.parts.is_empty());
}

#[tokio::test]
async fn stall_ends_when_the_server_shuts_down() {
    let server = server().await;
    let client = Client::new(&server);
    server
        .set_faults(vec![rule(FaultAction::Stall).api(Api::GetObject)])
        .unwrap();
    let head = raw_head(client.req(Method::GET, "k"), &format!("/{BUCKET}/k"), 0);
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    eventually("the request is stalled", || server.stalled_requests() == 1).await;
    tokio::time::timeout(BOUND, server.shutdown())
        .await
        .expect("shutdown does not wait for the stall");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(BOUND, stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection is closed");
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
}

#[tokio::test]
async fn corrupt_etag_stores_the_part_but_answers_and_lists_a_wrong_etag() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    let body = data(9, 2000);
    server
        .set_faults(vec![
            rule(FaultAction::CorruptEtag).api(Api::UploadPart),
            rule(FaultAction::CorruptEtag).api(Api::ListParts).times(1),
        ])
        .unwrap();
    let answer = client.upload_part("k", &id, 1, &body).await.ok();
    let told = answer.header("etag").unwrap().to_owned();
    assert_ne!(told, etag_of(&body));
    assert_eq!(told.len(), etag_of(&body).len(), "still a well-formed ETag");
    let listed = client.list_parts("k", &id, &[]).await.parts;
    assert_ne!(listed[0].etag, etag_of(&body));
    // What is stored is right, as the next (untouched) listing shows.
    let listed = client.list_parts("k", &id, &[]).await.parts;
    assert_eq!(listed[0].etag, etag_of(&body));
}

#[tokio::test]
async fn corrupt_crc_answers_and_lists_a_wrong_crc64() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    let body = data(10, 2000);
    server
        .set_faults(vec![
            rule(FaultAction::CorruptCrc).api(Api::UploadPart),
            rule(FaultAction::CorruptCrc).api(Api::ListParts).times(1),
        ])
        .unwrap();
    let answer = client.upload_part("k", &id, 1, &body).await.ok();
    let told: u64 = answer
        .header("x-oss-hash-crc64ecma")
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(told, crc64(&body));
    assert_eq!(answer.header("etag"), Some(etag_of(&body).as_str()));
    let listed = client.list_parts("k", &id, &[]).await.parts;
    assert_ne!(listed[0].hash_crc64ecma, Some(crc64(&body)));
    let listed = client.list_parts("k", &id, &[]).await.parts;
    assert_eq!(listed[0].hash_crc64ecma, Some(crc64(&body)));
}

#[tokio::test]
async fn expire_upload_forgets_the_upload_and_answers_no_such_upload() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    client.upload_part("k", &id, 1, b"kept?").await.ok();
    server
        .set_faults(vec![
            rule(FaultAction::ExpireUpload)
                .api(Api::UploadPart)
                .times(1),
        ])
        .unwrap();
    let err = client
        .upload_part("k", &id, 2, b"z")
        .await
        .expect_error(404, "NoSuchUpload");
    assert_eq!(err.field("UploadId"), Some(id.as_str()));
    assert_eq!(server.open_uploads(), 0);
    client
        .req(Method::GET, "k")
        .query("uploadId", &id)
        .send()
        .await
        .expect_error(404, "NoSuchUpload");
}

#[tokio::test]
async fn skew_clock_answers_request_time_too_skewed_with_the_skewed_date() {
    let server = server().await;
    let client = Client::new(&server).v4("cn-hangzhou");
    server
        .set_faults(vec![
            rule(FaultAction::SkewClock { seconds: 3600 }).times(1),
        ])
        .unwrap();
    let response = client.get("k").await;
    let err = response.expect_error(403, "RequestTimeTooSkewed");
    let date = httpdate::parse_http_date(response.header("date").unwrap()).unwrap();
    let ahead = date
        .duration_since(SystemTime::now())
        .expect("the Date is in the future");
    assert!(
        (3500..=3700).contains(&ahead.as_secs()),
        "Date is {ahead:?} ahead"
    );
    assert!(err.field("ServerTime").is_some());
    assert!(err.field("RequestTime").is_some());
    assert_eq!(err.field("MaxAllowedSkewMilliseconds"), Some("900000"));
    // The rule is spent: the real clock answers again.
    client.get("k").await.expect_error(404, "NoSuchKey");
}

#[tokio::test]
async fn control_routes_replace_list_and_clear_rules_and_report_stats() {
    let server = server().await;
    let authority = server.addr().to_string();
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let call = |method: Method, path: &str, body: &str| {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("http://{authority}{path}"))
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_owned(),
            )))
            .unwrap();
        let http = http.clone();
        async move {
            use http_body_util::BodyExt;
            let response = http.request(request).await.unwrap();
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let rules = r#"[{"api": "GetObject", "nth": 1, "times": 1, "action": {"kind": "error", "status": 503, "code": "ServiceUnavailable"}},
                    {"api": "*", "key_prefix": "slow/", "probability": 0.5, "action": {"kind": "delay", "ms": 1}}]"#;
    let (status, body) = call(Method::PUT, "/_mock/faults", rules).await;
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(
        listed[1]["seed"].is_u64(),
        "the picked seed is reported: {body}"
    );
    let (_, body) = call(Method::GET, "/_mock/faults", "").await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        listed
    );
    assert_eq!(server.faults().len(), 2);

    let client = Client::new(&server);
    client
        .get("k")
        .await
        .expect_error(503, "ServiceUnavailable");
    client.initiate("k").await;
    let (status, body) = call(Method::GET, "/_mock/stats", "").await;
    assert_eq!(status, 200);
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stats["requests"]["GetObject"], 1);
    assert_eq!(stats["requests"]["InitiateMultipartUpload"], 1);
    assert_eq!(stats["faults_fired"]["error"], 1);
    assert_eq!(stats["open_uploads"], 1);
    assert_eq!(stats["rules"][0]["fired"], 1);
    assert_eq!(stats["rules"][0]["kind"], "error");
    assert_eq!(stats["rules"][1]["matched"], 0);
    assert_eq!(stats["error_responses"], 1);
    assert!(stats["bytes_received"].is_u64() && stats["bytes_stored"].is_u64());

    let (status, body) = call(
        Method::PUT,
        "/_mock/faults",
        r#"[{"action": {"kind": "nap"}}]"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("nap"), "{body}");
    assert_eq!(server.faults().len(), 2, "a refused list changes nothing");
    let (status, _) = call(Method::DELETE, "/_mock/faults", "").await;
    assert_eq!(status, 204);
    assert!(server.faults().is_empty());
    let (status, body) = call(Method::GET, "/_mock/nothing", "").await;
    assert_eq!(status, 404);
    assert!(body.contains("/_mock/faults"), "{body}");
    let (status, _) = call(Method::POST, "/_mock/stats", "").await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn a_virtual_hosted_key_under_mock_is_an_ordinary_object() {
    let server = server().await;
    let client = Client::new(&server);
    client
        .req(Method::PUT, "_mock/faults")
        .virtual_hosted("localhost")
        .body("an object")
        .send()
        .await
        .ok();
    assert_eq!(client.get("_mock/faults").await.ok().text(), "an object");
    assert!(server.faults().is_empty());
}

#[tokio::test]
async fn rules_given_at_start_are_in_force_from_the_first_request() {
    let server = MockServer::start(
        MockConfig::default()
            .with_bucket(BUCKET)
            .with_faults(vec![rule(FaultAction::error(500, "InternalError")).nth(1)]),
    )
    .await
    .unwrap();
    Client::new(&server)
        .get("k")
        .await
        .expect_error(500, "InternalError");
    let invalid = MockServer::start(
        MockConfig::default().with_faults(vec![rule(FaultAction::Stall).probability(7.0)]),
    )
    .await
    .unwrap_err();
    assert!(invalid.to_string().contains("fault rule 0"), "{invalid}");
}

#[test]
fn the_binary_reads_rules_from_faults_file_and_names_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("faults.json");
    std::fs::write(
        &good,
        r#"[{"api": "GetObject", "action": {"kind": "error", "status": 503, "code": "ServiceUnavailable"}}]"#,
    )
    .unwrap();
    let process = MockProcess::spawn(
        &[
            "--bucket",
            BUCKET,
            "--faults",
            good.to_str().expect("a UTF-8 path"),
        ],
        Stdio::null(),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer = runtime.block_on(process.client().get("k"));
    drop(process);
    answer.expect_error(503, "ServiceUnavailable");

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"[{"action": {"kind": "delay"}}]"#).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_oss-mock"))
        .args(["--listen", "127.0.0.1:0", "--faults"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.json"), "{stderr}");
    assert!(stderr.contains("ms"), "{stderr}");
}
