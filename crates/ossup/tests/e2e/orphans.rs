//! No multipart upload is left open by an interrupted start (a lost or cut-short Initiate answer, a
//! run killed between Initiate and saving the checkpoint), and answers cut short are asked for again.
//! Against the in-process `oss-mock` with its fault rules; every object is checked byte for byte.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oss_mock::{FaultAction, FaultRule, MockServer};
use ossup::Api;
use ossup::{
    BytesSource, Checkpoint, CheckpointStore, Notice, ObjectOptions, ProgressEvent, Source,
    UploadIdentity, UploadOutcome, UploadRequest,
};

use crate::common::{
    BUCKET, Events, PART, assert_object_is, builder, client, data, mock, shared_store,
};

const SIZE: usize = 3 * PART as usize + 777;

/// Uploads `bytes` to `key` through `store`, with progress events collected in `events`.
async fn upload(
    server: &MockServer,
    store: Arc<ossup::MemoryStore>,
    key: &str,
    bytes: &[u8],
    events: &Events,
) -> Result<UploadOutcome, ossup::Error> {
    let uploader = builder(&server.endpoint()).store(store).build().unwrap();
    uploader
        .upload(UploadRequest::new(source(bytes), BUCKET, key).progress(events.sink()))
        .await
}

fn source(bytes: &[u8]) -> BytesSource {
    BytesSource::new(bytes.to_vec(), "orphans:v1")
}

/// The ids of the open uploads of exactly `key`.
async fn open_uploads(server: &MockServer, key: &str) -> Vec<String> {
    client(&server.endpoint())
        .list_multipart_uploads(BUCKET, Some(key))
        .await
        .expect("ListMultipartUploads")
        .into_iter()
        .filter(|u| u.key == key)
        .map(|u| u.upload_id)
        .collect()
}

fn orphans_aborted(outcome: &UploadOutcome) -> Vec<String> {
    outcome
        .notices
        .iter()
        .filter_map(|n| match n {
            Notice::OrphanAborted { upload_id } => Some(upload_id.clone()),
            _ => None,
        })
        .collect()
}

fn retried_apis(events: &Events) -> Vec<String> {
    events
        .all()
        .into_iter()
        .filter_map(|e| match e {
            ProgressEvent::Retrying { api, .. } => api,
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_lost_initiate_answer_leaves_no_upload_open() {
    let server = mock().await;
    server
        .set_faults(vec![
            FaultRule::new(FaultAction::ResetAfterCommit)
                .api(Api::InitiateMultipartUpload)
                .nth(1),
        ])
        .unwrap();
    let bytes = data(SIZE, 1);
    let store = shared_store();
    let events = Events::default();

    let outcome = upload(&server, store.clone(), "lost-initiate.bin", &bytes, &events)
        .await
        .expect("upload succeeds");

    assert_eq!(retried_apis(&events), ["InitiateMultipartUpload"]);
    let aborted = orphans_aborted(&outcome);
    assert_eq!(aborted.len(), 1, "{:?}", outcome.notices);
    assert_ne!(Some(&aborted[0]), outcome.upload_id.as_ref());
    assert_eq!(
        open_uploads(&server, "lost-initiate.bin").await,
        Vec::<String>::new()
    );
    assert!(store.list().await.unwrap().is_empty());
    assert_object_is(&client(&server.endpoint()), "lost-initiate.bin", &bytes).await;
}

#[tokio::test]
async fn a_run_killed_between_initiate_and_checkpoint_leaves_no_upload_open() {
    let server = mock().await;
    let bytes = data(SIZE, 2);
    let key = "killed-after-initiate.bin";
    let store = shared_store();

    // What the killed run left: its intent in the store, and the upload its Initiate created.
    let identity = UploadIdentity::new(source(&bytes).identity(), BUCKET, key, PART);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let intent = Checkpoint::new(
        identity,
        String::new(),
        source(&bytes).stamp().unwrap(),
        now,
        "digest of the killed run's options",
    );
    store.save(&intent).await.unwrap();
    let orphan = client(&server.endpoint())
        .initiate_multipart_upload(BUCKET, key, &ObjectOptions::default())
        .await
        .unwrap();

    let events = Events::default();
    let outcome = upload(&server, store.clone(), key, &bytes, &events)
        .await
        .expect("upload succeeds");

    assert!(!outcome.resumed);
    assert_eq!(orphans_aborted(&outcome), [orphan]);
    assert_eq!(open_uploads(&server, key).await, Vec::<String>::new());
    assert!(store.list().await.unwrap().is_empty());
    assert_object_is(&client(&server.endpoint()), key, &bytes).await;
}

#[tokio::test]
async fn uploads_of_other_keys_and_from_before_the_intent_are_left_alone() {
    let server = mock().await;
    let bytes = data(SIZE, 3);
    let key = "neighbours.bin";
    let other = client(&server.endpoint());
    let earlier = other
        .initiate_multipart_upload(BUCKET, key, &ObjectOptions::default())
        .await
        .unwrap();
    // `Initiated` has whole seconds: this puts the earlier upload well before the window (the time
    // since the intent plus 2 s).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let longer_key = other
        .initiate_multipart_upload(BUCKET, "neighbours.bin.bak", &ObjectOptions::default())
        .await
        .unwrap();
    server
        .set_faults(vec![
            FaultRule::new(FaultAction::ResetAfterCommit)
                .api(Api::InitiateMultipartUpload)
                .nth(1),
        ])
        .unwrap();

    let outcome = upload(&server, shared_store(), key, &bytes, &Events::default())
        .await
        .expect("upload succeeds");

    assert_eq!(orphans_aborted(&outcome).len(), 1, "{:?}", outcome.notices);
    assert_eq!(open_uploads(&server, key).await, [earlier]);
    assert_eq!(
        open_uploads(&server, "neighbours.bin.bak").await,
        [longer_key]
    );
    assert_object_is(&other, key, &bytes).await;
}

#[tokio::test]
async fn a_refused_listing_of_uploads_does_not_stop_the_upload_and_says_so() {
    let server = mock().await;
    server
        .set_faults(vec![
            FaultRule::new(FaultAction::error(403, "AccessDenied")).api(Api::ListMultipartUploads),
        ])
        .unwrap();
    let bytes = data(SIZE, 4);

    let outcome = upload(
        &server,
        shared_store(),
        "refused.bin",
        &bytes,
        &Events::default(),
    )
    .await
    .expect("upload succeeds");

    let failed: Vec<_> = outcome
        .notices
        .iter()
        .filter_map(|n| match n {
            Notice::OrphanSweepFailed { upload_id, error } => Some((upload_id, error)),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", outcome.notices);
    assert_eq!(Some(failed[0].0), outcome.upload_id.as_ref());
    assert!(failed[0].1.contains("AccessDenied"), "{}", failed[0].1);
    server.clear_faults();
    assert_object_is(&client(&server.endpoint()), "refused.bin", &bytes).await;
}

#[tokio::test]
async fn a_truncated_initiate_answer_is_retried() {
    let server = mock().await;
    server
        .set_faults(vec![
            FaultRule::new(FaultAction::TruncateResponse { bytes: 40 })
                .api(Api::InitiateMultipartUpload)
                .nth(1),
        ])
        .unwrap();
    let bytes = data(SIZE, 5);
    let key = "truncated-initiate.bin";
    let events = Events::default();

    let outcome = upload(&server, shared_store(), key, &bytes, &events)
        .await
        .expect("upload succeeds");

    assert_eq!(retried_apis(&events), ["InitiateMultipartUpload"]);
    // The first Initiate did create an upload: its answer was only cut short.
    assert_eq!(orphans_aborted(&outcome).len(), 1, "{:?}", outcome.notices);
    assert_eq!(open_uploads(&server, key).await, Vec::<String>::new());
    assert_object_is(&client(&server.endpoint()), key, &bytes).await;
}

#[tokio::test]
async fn a_truncated_complete_answer_is_retried_or_settled() {
    let server = mock().await;
    server
        .set_faults(vec![
            FaultRule::new(FaultAction::TruncateResponse { bytes: 30 })
                .api(Api::CompleteMultipartUpload)
                .nth(1),
        ])
        .unwrap();
    let bytes = data(SIZE, 6);
    let key = "truncated-complete.bin";
    let events = Events::default();

    let outcome = upload(&server, shared_store(), key, &bytes, &events)
        .await
        .expect("upload succeeds");

    assert_eq!(retried_apis(&events), ["CompleteMultipartUpload"]);
    // The retry found the upload completed (NoSuchUpload), and HeadObject showed the right object.
    assert!(
        outcome.notices.contains(&Notice::CompleteSettledByHead {
            upload_id: outcome.upload_id.clone().unwrap()
        }),
        "{:?}",
        outcome.notices
    );
    assert_eq!(open_uploads(&server, key).await, Vec::<String>::new());
    assert_object_is(&client(&server.endpoint()), key, &bytes).await;
}

#[tokio::test]
async fn truncated_listings_are_retried_on_resume_and_while_sweeping() {
    let server = mock().await;
    let bytes = data(SIZE, 7);
    let key = "truncated-listings.bin";
    let store = shared_store();
    // A first run that stops after its first part: a part that fails for good.
    server
        .set_faults(vec![
            FaultRule::new(FaultAction::error(403, "AccessDenied"))
                .api(Api::UploadPart)
                .part_number(2),
            FaultRule::new(FaultAction::TruncateResponse { bytes: 60 })
                .api(Api::ListMultipartUploads)
                .nth(1),
        ])
        .unwrap();
    let first_events = Events::default();
    let first = upload(&server, store.clone(), key, &bytes, &first_events).await;
    assert!(first.is_err(), "the first run fails on part 2");
    assert_eq!(retried_apis(&first_events), ["ListMultipartUploads"]);
    assert!(
        !first_events.all().iter().any(|e| matches!(
            e,
            ProgressEvent::Notice {
                notice: Notice::OrphanSweepFailed { .. },
                ..
            }
        )),
        "the sweep got its listing on the second try"
    );

    server
        .set_faults(vec![
            FaultRule::new(FaultAction::TruncateResponse { bytes: 60 })
                .api(Api::ListParts)
                .nth(1),
        ])
        .unwrap();
    let events = Events::default();
    let outcome = upload(&server, store.clone(), key, &bytes, &events)
        .await
        .expect("the resumed run succeeds");

    assert!(outcome.resumed);
    assert_eq!(retried_apis(&events), ["ListParts"]);
    assert_eq!(open_uploads(&server, key).await, Vec::<String>::new());
    assert_object_is(&client(&server.endpoint()), key, &bytes).await;
}
