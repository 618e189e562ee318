//! Bad input never takes the server down: disconnects mid-body, truncated bodies, garbage bytes,
//! oversized headers. Each gets an OSS error or a cleanly closed connection, and the server keeps
//! serving.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

mod common;

use std::time::Duration;

use common::{BUCKET, Client, data, eventually, server};
use http::Method;
use oss_mock::MockServer;
use ossup_proto::Api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The head of a signed UploadPart request declaring `content_length` bytes.
fn upload_part_head(client: &Client, upload_id: &str, content_length: usize) -> String {
    let parts = client
        .req(Method::PUT, "k")
        .query("partNumber", "1")
        .query("uploadId", upload_id)
        .signed_parts();
    let mut head = format!(
        "PUT /{BUCKET}/k?partNumber=1&uploadId={upload_id} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {content_length}\r\n"
    );
    for (name, value) in parts.headers.iter() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("\r\n");
    head
}

fn blob_count(server: &MockServer) -> usize {
    std::fs::read_dir(server.data_dir().join("blobs"))
        .unwrap()
        .count()
}

#[tokio::test]
async fn a_client_disconnecting_mid_body_leaves_nothing_and_the_server_keeps_serving() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream
        .write_all(upload_part_head(&client, &id, 1024 * 1024).as_bytes())
        .await
        .unwrap();
    stream.write_all(&data(1, 200 * 1024)).await.unwrap();
    eventually("the server has 200 KiB", || {
        server.stats().bytes_received() >= 200 * 1024
    })
    .await;
    drop(stream);
    eventually("no blob is left", || blob_count(&server) == 0).await;
    assert!(client.list_parts("k", &id, &[]).await.parts.is_empty());
    assert_eq!(server.stats().bytes_stored(), 0);
    client.upload_part("k", &id, 1, b"still serving").await.ok();
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_stores_nothing() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream
        .write_all(upload_part_head(&client, &id, 5000).as_bytes())
        .await
        .unwrap();
    stream.write_all(&data(2, 4000)).await.unwrap();
    // Half-close: the client says it has sent everything, 1000 bytes short.
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.contains("IncompleteBody"),
        "{answer}"
    );
    eventually("no blob is left", || blob_count(&server) == 0).await;
    assert!(client.list_parts("k", &id, &[]).await.parts.is_empty());
}

#[tokio::test]
async fn garbage_bytes_and_oversized_heads_get_a_clean_answer() {
    let server = server().await;
    let client = Client::new(&server);
    for junk in [
        b"GARBAGE\r\n\r\n".to_vec(),
        b"\x00\x01\x02\xff\xfe\r\n\r\n".to_vec(),
        b"GET /bucket/k HTTP/1.1\r\nhost: x\r\ncontent-length: nope\r\n\r\n".to_vec(),
        format!(
            "GET /bucket/k HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
            "a".repeat(200_000)
        )
        .into_bytes(),
    ] {
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        let _ = stream.write_all(&junk).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
            "{answer}"
        );
    }
    client.req(Method::PUT, "k").body("alive").send().await.ok();
}

#[tokio::test]
async fn unsupported_apis_are_refused_with_oss_errors() {
    let server = server().await;
    let client = Client::new(&server);
    client
        .req(Method::GET, "k")
        .query("acl", "")
        .send()
        .await
        .expect_error(501, "NotImplemented");
    client
        .req(Method::PATCH, "k")
        .send()
        .await
        .expect_error(405, "MethodNotAllowed");
    client
        .req(Method::GET, "")
        .query("uploads", "")
        .query("delimiter", "/")
        .send()
        .await
        .expect_error(501, "NotImplemented");
}

/// A copy is a PUT of an object or a part that names its source in `x-oss-copy-source` and has no
/// body: never taken for PutObject or UploadPart, which would store nothing where the client asked
/// for the source's bytes. CopyObject copies them with the source's metadata or the request's;
/// UploadPartCopy is refused.
#[tokio::test]
async fn a_copy_copies_the_source_and_is_never_an_empty_put() {
    let server = server().await;
    let client = Client::new(&server);
    let source = data(7, 3000);
    client
        .req(Method::PUT, "dir/source file")
        .header("x-oss-meta-origin", "first")
        .header("content-type", "text/plain")
        .body(source.clone())
        .send()
        .await
        .ok();
    client
        .req(Method::PUT, "copy")
        .body("before")
        .send()
        .await
        .ok();
    let copy_source = format!("/{BUCKET}/dir/source%20file");
    let copied = client
        .req(Method::PUT, "copy")
        .header("x-oss-copy-source", &copy_source)
        .send()
        .await
        .ok();
    let result: ossup_proto::xml::CopyObjectResult =
        ossup_proto::xml::from_xml("CopyObjectResult", &copied.text()).unwrap();
    let got = client.get("copy").await.ok();
    assert_eq!(got.body, source);
    assert_eq!(got.header("etag"), Some(result.etag.as_str()));
    assert_eq!(got.header("x-oss-meta-origin"), Some("first"));
    assert_eq!(got.header("content-type"), Some("text/plain"));

    client
        .req(Method::PUT, "replaced")
        .header("x-oss-copy-source", &copy_source)
        .header("x-oss-metadata-directive", "REPLACE")
        .header("x-oss-meta-origin", "second")
        .send()
        .await
        .ok();
    let got = client.get("replaced").await.ok();
    assert_eq!(got.body, source);
    assert_eq!(got.header("x-oss-meta-origin"), Some("second"));

    client
        .req(Method::PUT, "copy")
        .header("x-oss-copy-source", &format!("/{BUCKET}/missing"))
        .send()
        .await
        .expect_error(404, "NoSuchKey");
    assert_eq!(client.get("copy").await.ok().body, source);

    let id = client.initiate("parts").await;
    client
        .req(Method::PUT, "parts")
        .query("partNumber", "1")
        .query("uploadId", &id)
        .header("x-oss-copy-source", &copy_source)
        .send()
        .await
        .expect_error(501, "NotImplemented");
    assert!(client.list_parts("parts", &id, &[]).await.parts.is_empty());
}

/// A HEAD answer has no body: the error document comes base64-encoded in `x-oss-err`, as OSS sends
/// it, also when a fault rule answers.
#[tokio::test]
async fn a_head_error_carries_its_document_in_x_oss_err() {
    use base64::Engine as _;
    let server = server().await;
    let client = Client::new(&server);
    let answer = client.req(Method::HEAD, "missing").send().await;
    assert_eq!(answer.status, 404);
    assert!(answer.body.is_empty());
    let encoded = answer.header("x-oss-err").expect("x-oss-err");
    let xml = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    let document =
        ossup_proto::ErrorResponse::from_xml(std::str::from_utf8(&xml).unwrap()).unwrap();
    assert_eq!(document.code, "NoSuchKey");
    assert_eq!(
        Some(document.request_id.as_str()),
        answer.header("x-oss-request-id")
    );
}

#[tokio::test]
async fn bodies_over_the_size_limit_are_entity_too_large_before_anything_is_read() {
    let server = server().await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let six_gib = 6usize * 1024 * 1024 * 1024;
    stream
        .write_all(upload_part_head(&client, &id, six_gib).as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("<Code>EntityTooLarge</Code>"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_eq!(blob_count(&server), 0);
    assert_eq!(server.stats().requests(Api::UploadPart), 1);
}
