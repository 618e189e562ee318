//! Durability and concurrency: restart on the same data directory, recovery from interrupted
//! operations, and parallel uploads of one upload's parts.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

mod common;

use std::path::{Path, PathBuf};

use common::{BUCKET, Client, data};
use http::Method;
use oss_mock::{MockConfig, MockServer};
use ossup_proto::checksum::md5;
use ossup_proto::etag::part_etag;
use ossup_proto::xml::{ListMultipartUploadsResult, from_xml};

async fn start(dir: &Path) -> MockServer {
    MockServer::start(MockConfig::default().with_bucket(BUCKET).with_data_dir(dir))
        .await
        .expect("mock server starts")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|it| it.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test]
async fn restart_on_the_same_data_dir_keeps_objects_and_open_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let (object, part1, part2) = (data(1, 5000), data(2, 102_400), data(3, 777));
    let (upload_id, etag1);
    {
        let server = start(dir.path()).await;
        let client = Client::new(&server);
        client
            .req(Method::PUT, "plain")
            .body(object.clone())
            .send()
            .await
            .ok();
        upload_id = client.initiate("open/upload").await;
        etag1 = client
            .upload_part("open/upload", &upload_id, 1, &part1)
            .await
            .ok()
            .header("etag")
            .unwrap()
            .to_owned();
        client
            .upload_part("open/upload", &upload_id, 2, &part2)
            .await
            .ok();
        server.shutdown().await;
    }
    let server = start(dir.path()).await;
    let client = Client::new(&server);
    assert_eq!(
        client.get("plain").await.ok().body.as_ref(),
        object.as_slice()
    );
    let page = client.list_parts("open/upload", &upload_id, &[]).await;
    assert_eq!(page.parts.len(), 2);
    assert_eq!(page.parts[0].etag, etag1);
    assert_eq!(page.parts[1].etag, part_etag(&md5(&part2)));
    let r = client
        .req(Method::GET, "")
        .query("uploads", "")
        .send()
        .await
        .ok();
    let uploads: ListMultipartUploadsResult =
        from_xml("ListMultipartUploadsResult", &r.text()).unwrap();
    assert_eq!(uploads.uploads.len(), 1);
    assert_eq!(uploads.uploads[0].upload_id, upload_id);
    let parts: Vec<(u32, String)> = page
        .parts
        .iter()
        .map(|p| (p.part_number, p.etag.clone()))
        .collect();
    client
        .complete("open/upload", &upload_id, &parts)
        .await
        .ok();
    assert_eq!(
        client.get("open/upload").await.ok().body.as_ref(),
        [part1, part2].concat()
    );
    // After a second restart the completed object is still there and the upload is gone.
    server.shutdown().await;
    let server = start(dir.path()).await;
    let client = Client::new(&server);
    assert_eq!(
        client.get("open/upload").await.ok().body.len(),
        102_400 + 777
    );
    client
        .req(Method::GET, "open/upload")
        .query("uploadId", &upload_id)
        .send()
        .await
        .expect_error(404, "NoSuchUpload");
}

#[tokio::test]
async fn recovery_finishes_a_cut_short_complete_and_removes_uncommitted_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let upload_id;
    let saved_upload = root.join("saved-upload");
    {
        let server = start(root).await;
        let client = Client::new(&server);
        upload_id = client.initiate("k").await;
        let e = client
            .upload_part("k", &upload_id, 1, b"only part")
            .await
            .ok();
        let e2 = client
            .upload_part("k", &upload_id, 2, b"dropped")
            .await
            .ok();
        let _ = e2;
        let upload_dir = root
            .join("buckets")
            .join(BUCKET)
            .join("uploads")
            .join(&upload_id);
        copy_dir(&upload_dir, &saved_upload);
        client
            .complete(
                "k",
                &upload_id,
                &[(1, e.header("etag").unwrap().to_owned())],
            )
            .await
            .ok();
        server.shutdown().await;
    }
    // As if the process died after publishing the object but before removing the upload, with a
    // record half-written in tmp/, a body never committed, a bucket and an upload half-created.
    let upload_dir = root
        .join("buckets")
        .join(BUCKET)
        .join("uploads")
        .join(&upload_id);
    copy_dir(&saved_upload, &upload_dir);
    std::fs::remove_dir_all(&saved_upload).unwrap();
    std::fs::write(root.join("tmp").join("half.tmp"), b"{\"key\":").unwrap();
    std::fs::write(root.join("blobs").join("orphan"), b"uncommitted").unwrap();
    std::fs::create_dir_all(root.join("buckets").join("half-bucket").join("objects")).unwrap();
    std::fs::create_dir_all(
        root.join("buckets")
            .join(BUCKET)
            .join("uploads")
            .join("HALF")
            .join("parts"),
    )
    .unwrap();

    let server = start(root).await;
    let client = Client::new(&server);
    assert_eq!(client.get("k").await.ok().body.as_ref(), b"only part");
    let r = client
        .req(Method::GET, "")
        .query("uploads", "")
        .send()
        .await
        .ok();
    let uploads: ListMultipartUploadsResult =
        from_xml("ListMultipartUploadsResult", &r.text()).unwrap();
    assert!(uploads.uploads.is_empty(), "{}", r.text());
    assert!(!upload_dir.exists());
    assert!(files_in(&root.join("tmp")).is_empty());
    assert!(!root.join("buckets").join("half-bucket").exists());
    assert!(
        !root
            .join("buckets")
            .join(BUCKET)
            .join("uploads")
            .join("HALF")
            .exists()
    );
    // Only the blob of the object's one part is left: the dropped part and the orphan are gone.
    assert_eq!(files_in(&root.join("blobs")).len(), 1);
    client
        .req_in(Method::GET, "half-bucket", "")
        .query("bucketInfo", "")
        .send()
        .await
        .expect_error(404, "NoSuchBucket");
}

#[tokio::test]
async fn a_damaged_record_stops_the_start_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    {
        let server = start(dir.path()).await;
        Client::new(&server)
            .req(Method::PUT, "k")
            .body("x")
            .send()
            .await
            .ok();
        server.shutdown().await;
    }
    let objects = dir.path().join("buckets").join(BUCKET).join("objects");
    let record = files_in(&objects).pop().unwrap();
    std::fs::write(&record, b"{broken").unwrap();
    let err = MockServer::start(MockConfig::default().with_data_dir(dir.path()))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(record.file_name().unwrap().to_str().unwrap()),
        "{err}"
    );
}

#[tokio::test]
async fn concurrent_reuploads_of_one_part_leave_one_whole_part() {
    let server = common::server().await;
    let client = Client::new(&server);
    let id = client.initiate("race").await;
    let bodies: Vec<Vec<u8>> = (0..8)
        .map(|i| data(100 + i, 200_000 + i as usize))
        .collect();
    let mut tasks = Vec::new();
    for body in bodies.clone() {
        let (client, id) = (client.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            client.upload_part("race", &id, 1, &body).await.ok();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let page = client.list_parts("race", &id, &[]).await;
    assert_eq!(page.parts.len(), 1);
    let winner = bodies
        .iter()
        .find(|b| part_etag(&md5(b)) == page.parts[0].etag)
        .expect("the listed part is one of the uploads, whole");
    assert_eq!(page.parts[0].size, winner.len() as u64);
    // Only the winner's blob remains on disk.
    assert_eq!(files_in(&server.data_dir().join("blobs")).len(), 1);
    client
        .complete("race", &id, &[(1, page.parts[0].etag.clone())])
        .await
        .ok();
    assert_eq!(
        client.get("race").await.ok().body.as_ref(),
        winner.as_slice()
    );
}

#[tokio::test]
async fn parallel_parts_of_one_upload_all_land() {
    let server = common::server().await;
    let client = Client::new(&server);
    let id = client.initiate("parallel").await;
    let bodies: Vec<Vec<u8>> = (0..16)
        .map(|i| data(200 + i, 102_400 + i as usize))
        .collect();
    let mut tasks = Vec::new();
    for (i, body) in bodies.iter().cloned().enumerate() {
        let (client, id) = (client.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let r = client
                .upload_part("parallel", &id, i as u32 + 1, &body)
                .await
                .ok();
            (i as u32 + 1, r.header("etag").unwrap().to_owned())
        }));
    }
    let mut parts = Vec::new();
    for task in tasks {
        parts.push(task.await.unwrap());
    }
    parts.sort();
    client.complete("parallel", &id, &parts).await.ok();
    assert_eq!(
        client.get("parallel").await.ok().body.as_ref(),
        bodies.concat()
    );
    assert_eq!(
        server.stats().bytes_stored(),
        bodies.iter().map(|b| b.len() as u64).sum::<u64>()
    );
}
