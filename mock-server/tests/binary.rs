//! The `oss-mock` binary as scripts use it: the first stdout line, signals, and `kill -9` followed by
//! a restart on the same data directory.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{BUCKET, MockProcess, data};
use http::Method;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn sigterm_stops_cleanly_and_removes_the_temporary_data_dir() {
    let mut process = MockProcess::spawn(&["--bucket", BUCKET], Stdio::piped());
    let client = process.client();
    client.req(Method::PUT, "k").body("x").send().await.ok();
    let status = Command::new("kill")
        .args(["-TERM", &process.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(process.wait_exit().success());
    let mut stderr = String::new();
    process
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("test-ak"), "{stderr}");
    let temp = stderr
        .lines()
        .find_map(|l| l.split("temporary directory ").nth(1))
        .and_then(|rest| rest.split(" (").next())
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        !std::path::Path::new(temp).exists(),
        "{temp} was left behind"
    );
}

#[tokio::test]
async fn kill_9_mid_upload_keeps_every_acknowledged_part_and_nothing_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let mut process =
        MockProcess::spawn(&["--data-dir", data_dir, "--bucket", BUCKET], Stdio::null());
    let client = process.client();
    client
        .req(Method::PUT, "done")
        .body("kept")
        .send()
        .await
        .ok();
    let id = client.initiate("big").await;
    let mut etags = Vec::new();
    for n in 1..=3u32 {
        let r = client
            .upload_part("big", &id, n, &data(n as u64, 150_000))
            .await
            .ok();
        etags.push((n, r.header("etag").unwrap().to_owned()));
    }
    // Part 4 is half sent when the process dies.
    let parts = client
        .req(Method::PUT, "big")
        .query("partNumber", "4")
        .query("uploadId", &id)
        .signed_parts();
    let mut head = format!(
        "PUT /{BUCKET}/big?partNumber=4&uploadId={id} HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n"
    );
    for (name, value) in parts.headers.iter() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(process.authority())
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&data(4, 300_000)).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    process.kill_9();
    drop(stream);

    let mut process = MockProcess::spawn(&["--data-dir", data_dir], Stdio::null());
    let client = process.client();
    assert_eq!(client.get("done").await.ok().body.as_ref(), b"kept");
    let page = client.list_parts("big", &id, &[]).await;
    let listed: Vec<(u32, String)> = page
        .parts
        .iter()
        .map(|p| (p.part_number, p.etag.clone()))
        .collect();
    assert_eq!(listed, etags);
    // The half-sent part left no blob: one for "done", three parts.
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs")).unwrap().count(),
        4
    );
    client.complete("big", &id, &etags).await.ok();
    let expected: Vec<u8> = (1..=3).flat_map(|n| data(n, 150_000)).collect();
    assert_eq!(
        client.get("big").await.ok().body.as_ref(),
        expected.as_slice()
    );
    process.kill_9();
}
