//! Store-level behaviour that the HTTP tests reach only indirectly.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;

use super::*;
use crate::stats::Stats;

async fn blob(store: &Store, data: &'static [u8]) -> ReceivedBlob {
    let mut body = Full::new(Bytes::from_static(data));
    store
        .receive(&mut body, 1 << 20, &Stats::default())
        .await
        .unwrap()
}

fn open_store(dir: &Path) -> Store {
    let store = Store::open(dir, Arc::new(Ids::new()), Durability::PowerLoss).unwrap();
    store.ensure_bucket("bucket").unwrap();
    store
}

fn blob_count(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("blobs")).unwrap().count()
}

#[tokio::test]
async fn a_deleted_object_keeps_its_blob_until_its_reader_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let b = blob(&store, b"data").await;
    store
        .put_object("bucket", "k", b, ObjectAttrs::default(), false)
        .unwrap();
    let reader = store.open_object("bucket", "k").unwrap();
    store.delete_object("bucket", "k").unwrap();
    assert_eq!(blob_count(dir.path()), 1);
    drop(reader);
    assert_eq!(blob_count(dir.path()), 0);
}

#[tokio::test]
async fn overwriting_and_aborting_release_the_old_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    for data in [&b"one"[..], b"two"] {
        let b = blob(&store, data).await;
        store
            .put_object("bucket", "k", b, ObjectAttrs::default(), false)
            .unwrap();
    }
    assert_eq!(blob_count(dir.path()), 1);
    let upload = store
        .initiate("bucket", "u", ObjectAttrs::default(), false)
        .unwrap();
    for n in 1..=3 {
        let b = blob(&store, b"part").await;
        store
            .commit_part("bucket", "u", &upload.upload_id, n, b)
            .unwrap();
    }
    assert_eq!(blob_count(dir.path()), 4);
    store.abort("bucket", "u", &upload.upload_id).unwrap();
    assert_eq!(blob_count(dir.path()), 1);
    assert!(
        store
            .abort("bucket", "u", &upload.upload_id)
            .is_err_and(|e| e.code == ErrorCode::NoSuchUpload)
    );
}

#[tokio::test]
async fn listing_with_a_delimiter_resumes_after_a_rolled_up_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    for key in ["a/1", "a/2", "a/3", "b"] {
        let b = blob(&store, b"x").await;
        store
            .put_object("bucket", key, b, ObjectAttrs::default(), false)
            .unwrap();
    }
    let page = store.list_objects("bucket", "", "", "/", 1).unwrap();
    assert_eq!(page.common_prefixes, ["a/"]);
    assert!(page.truncated);
    assert_eq!(page.next_marker, "a/");
    let page = store.list_objects("bucket", "", "a/", "/", 1).unwrap();
    assert!(page.common_prefixes.is_empty());
    assert_eq!(page.objects[0].key, "b");
    assert!(!page.truncated);
}

#[tokio::test]
async fn uploads_list_by_key_then_initiation_and_resume_after_both_markers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let mut ids = Vec::new();
    for key in ["k", "j", "k"] {
        ids.push(
            store
                .initiate("bucket", key, ObjectAttrs::default(), false)
                .unwrap(),
        );
    }
    let page = store.list_uploads("bucket", "", "", "", 10).unwrap();
    let order: Vec<_> = page.uploads.iter().map(|u| u.upload_id.clone()).collect();
    assert_eq!(
        order,
        [
            ids[1].upload_id.clone(),
            ids[0].upload_id.clone(),
            ids[2].upload_id.clone()
        ]
    );
    let page = store
        .list_uploads("bucket", "", "k", &ids[0].upload_id, 10)
        .unwrap();
    assert_eq!(page.uploads.len(), 1);
    assert_eq!(page.uploads[0].upload_id, ids[2].upload_id);
    let page = store.list_uploads("bucket", "", "j", "", 10).unwrap();
    assert_eq!(page.uploads.len(), 2);
}
