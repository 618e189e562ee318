//! The write path end to end: bodies of several write batches stored and read back whole and by
//! range, a client gone in the middle of one, and a server that never fsyncs (`--no-fsync`,
//! `Durability::ProcessCrash`) keeping every acknowledged change across a restart and a `kill -9`.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

mod common;

use std::path::Path;
use std::process::Stdio;

use common::{BUCKET, Client, MockProcess, data, eventually};
use http::Method;
use oss_mock::{Durability, MockConfig, MockServer};
use ossup_proto::checksum::{crc64, md5};
use ossup_proto::etag::part_etag;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const MIB: usize = 1024 * 1024;

async fn start(dir: &Path, durability: Durability) -> MockServer {
    MockServer::start(
        MockConfig::default()
            .with_bucket(BUCKET)
            .with_data_dir(dir)
            .with_durability(durability),
    )
    .await
    .expect("mock server starts")
}

fn blob_count(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("blobs")).unwrap().count()
}

/// Uploads `parts` as one multipart object `key` and returns the `(number, etag)` list.
async fn upload_parts(
    client: &Client,
    key: &str,
    id: &str,
    parts: &[Vec<u8>],
) -> Vec<(u32, String)> {
    let mut etags = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let n = i as u32 + 1;
        let r = client.upload_part(key, id, n, part).await.ok();
        assert_eq!(r.header("etag"), Some(part_etag(&md5(part)).as_str()));
        assert_eq!(
            r.header("x-oss-hash-crc64ecma"),
            Some(crc64(part).to_string().as_str())
        );
        etags.push((n, r.header("etag").unwrap().to_owned()));
    }
    etags
}

#[tokio::test]
async fn parts_of_several_batches_are_stored_and_read_back_whole_and_by_range() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Durability::PowerLoss).await;
    let client = Client::new(&server);
    // Exactly two batches, one byte more than one, and a short last part.
    let parts = vec![data(1, 2 * MIB), data(2, MIB + 1), data(3, 300_001)];
    let whole: Vec<u8> = parts.concat();
    let id = client.initiate("big").await;
    let etags = upload_parts(&client, "big", &id, &parts).await;
    let done = client.complete("big", &id, &etags).await.ok();
    assert_eq!(
        done.header("x-oss-hash-crc64ecma"),
        Some(crc64(&whole).to_string().as_str())
    );

    let got = client.get("big").await.ok();
    assert!(got.body.as_ref() == whole.as_slice());
    for (start, end) in [
        (0, 0),
        (MIB - 3, 2 * MIB + 5),
        (2 * MIB, 3 * MIB + 1),
        (100, whole.len() - 1),
    ] {
        let r = client
            .req(Method::GET, "big")
            .header("range", &format!("bytes={start}-{end}"))
            .send()
            .await;
        assert_eq!(r.status.as_u16(), 206, "bytes={start}-{end}");
        assert!(
            r.body.as_ref() == &whole[start..=end],
            "bytes={start}-{end}"
        );
    }
}

#[tokio::test]
async fn a_client_gone_after_several_batches_leaves_no_blob() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Durability::PowerLoss).await;
    let client = Client::new(&server);
    let id = client.initiate("k").await;
    let parts = client
        .req(Method::PUT, "k")
        .query("partNumber", "1")
        .query("uploadId", &id)
        .signed_parts();
    let mut head = format!(
        "PUT /{BUCKET}/k?partNumber=1&uploadId={id} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {}\r\n",
        4 * MIB
    );
    for (name, value) in parts.headers.iter() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("\r\n");
    let sent = 2 * MIB + MIB / 2;
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&data(4, sent)).await.unwrap();
    eventually("the server has the bytes sent", || {
        server.stats().bytes_received() >= sent as u64
    })
    .await;
    drop(stream);
    eventually("no blob is left", || blob_count(dir.path()) == 0).await;
    assert!(client.list_parts("k", &id, &[]).await.parts.is_empty());
    assert_eq!(server.stats().bytes_stored(), 0);
}

#[tokio::test]
async fn without_fsync_every_acknowledged_change_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (plain, parts, open_part) = (
        data(5, MIB + 17),
        vec![data(6, MIB), data(7, 200_000)],
        data(8, 150_000),
    );
    let (open_id, open_etag);
    {
        let server = start(dir.path(), Durability::ProcessCrash).await;
        let client = Client::new(&server);
        client
            .req(Method::PUT, "plain")
            .body(plain.clone())
            .send()
            .await
            .ok();
        client.req(Method::PUT, "gone").body("x").send().await.ok();
        client.req(Method::DELETE, "gone").send().await.ok();
        let id = client.initiate("multi").await;
        let etags = upload_parts(&client, "multi", &id, &parts).await;
        client.complete("multi", &id, &etags).await.ok();
        open_id = client.initiate("open").await;
        open_etag = upload_parts(&client, "open", &open_id, &[open_part]).await;
        server.shutdown().await;
    }
    // Restarted without fsync, then with: the data does not depend on how it will be written next.
    for durability in [Durability::ProcessCrash, Durability::PowerLoss] {
        let server = start(dir.path(), durability).await;
        let client = Client::new(&server);
        assert!(client.get("plain").await.ok().body.as_ref() == plain.as_slice());
        assert!(client.get("multi").await.ok().body.as_ref() == parts.concat().as_slice());
        client.get("gone").await.expect_error(404, "NoSuchKey");
        let listed = client.list_parts("open", &open_id, &[]).await;
        let listed: Vec<(u32, String)> = listed
            .parts
            .iter()
            .map(|p| (p.part_number, p.etag.clone()))
            .collect();
        assert_eq!(listed, open_etag);
        // plain, the two parts of multi, the open part.
        assert_eq!(blob_count(dir.path()), 4);
        server.shutdown().await;
    }
}

#[tokio::test]
async fn the_binary_with_no_fsync_keeps_acknowledged_data_through_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let (object, part) = (data(9, MIB + MIB / 2), data(10, 120_000));
    let mut process = MockProcess::spawn(
        &["--data-dir", data_dir, "--bucket", BUCKET, "--no-fsync"],
        Stdio::null(),
    );
    let client = process.client();
    client
        .req(Method::PUT, "object")
        .body(object.clone())
        .send()
        .await
        .ok();
    let id = client.initiate("upload").await;
    let etags = upload_parts(&client, "upload", &id, &[part]).await;
    process.kill_9();

    let mut process = MockProcess::spawn(&["--data-dir", data_dir, "--no-fsync"], Stdio::null());
    let client = process.client();
    assert!(client.get("object").await.ok().body.as_ref() == object.as_slice());
    let listed = client.list_parts("upload", &id, &[]).await;
    assert_eq!(listed.parts.len(), 1);
    assert_eq!(listed.parts[0].etag, etags[0].1);
    process.kill_9();
}
