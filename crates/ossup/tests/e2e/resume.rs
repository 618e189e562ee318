//! Resume: the server is the truth, a changed source starts over, a corrupt checkpoint is set aside.

use crate::common::faults::{Action, Faulty, Rule};
use crate::common::*;
use ossup::Api;
use ossup::{
    CancellationToken, CheckpointStore, ErrorKind, FileSource, FileStore, MemoryStore, Notice,
    Parallel, ProgressEvent, UploadIdentity, UploadRequest,
};
use rand::{Rng, SeedableRng};

/// Runs an upload of `path` that "crashes" (is cancelled, parts in flight left hanging) once
/// `after` parts were acknowledged; `forward` says whether the parts in flight reach the server.
async fn crashed_run(
    endpoint: &str,
    store: &MemoryStore,
    path: &std::path::Path,
    key: &str,
    after: usize,
    forward: bool,
) -> (Faulty, Events) {
    let faulty = Faulty::new();
    let crash = CancellationToken::new();
    let action = if forward {
        Action::ForwardThenCrash(crash.clone())
    } else {
        Action::DropThenCrash(crash.clone())
    };
    faulty.rule(Rule::new(Api::UploadPart, action).skip(after));
    let uploader = builder_with(endpoint, faulty.clone())
        .store(store.clone())
        .scheduler(Parallel::new(4))
        .build()
        .unwrap();
    let events = Events::default();
    let err = uploader
        .upload(
            UploadRequest::new(FileSource::open(path).unwrap(), BUCKET, key)
                .progress(events.sink())
                .cancel(crash),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    (faulty, events)
}

#[tokio::test]
async fn an_upload_dropped_at_a_random_part_resends_at_most_the_parts_in_flight() {
    let server = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(2_000_000, 10); // 20 parts
    let path = dir.path().join("big.bin");
    std::fs::write(&path, &bytes).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed);
    let client = client(&server.endpoint());

    for round in 0..4 {
        let key = format!("dropped-{round}");
        let store = MemoryStore::new();
        let after = rng.gen_range(1..18);
        let forward = round % 2 == 0;
        let (first, first_events) =
            crashed_run(&server.endpoint(), &store, &path, &key, after, forward).await;

        // What the first run started but did not see acknowledged: the parts in flight.
        let acknowledged: Vec<u32> = first_events
            .all()
            .iter()
            .filter_map(|e| match e {
                ProgressEvent::PartDone { number, .. } => Some(*number),
                _ => None,
            })
            .collect();
        let in_flight: Vec<u32> = first
            .parts_sent()
            .into_iter()
            .filter(|n| !acknowledged.contains(n))
            .collect();
        assert!(in_flight.len() <= 4, "round {round}: {in_flight:?}");
        let upload = client
            .list_multipart_uploads(BUCKET, Some(&key))
            .await
            .unwrap()
            .remove(0);
        let on_server: Vec<u32> = client
            .list_parts(BUCKET, &key, &upload.upload_id)
            .await
            .unwrap()
            .iter()
            .map(|p| p.part_number)
            .collect();

        let second = Faulty::new();
        let uploader = builder_with(&server.endpoint(), second.clone())
            .store(store.clone())
            .scheduler(Parallel::new(4))
            .build()
            .unwrap();
        let outcome = uploader
            .upload(UploadRequest::new(
                FileSource::open(&path).unwrap(),
                BUCKET,
                &key,
            ))
            .await
            .unwrap();
        assert!(outcome.resumed);
        let first_sent = first.parts_sent();
        let resent: Vec<u32> = second
            .parts_sent()
            .into_iter()
            .filter(|n| first_sent.contains(n))
            .collect();
        assert!(
            resent.iter().all(|n| in_flight.contains(n)),
            "round {round}: re-sent {resent:?}, in flight were {in_flight:?}"
        );
        // Parts in flight that reached the server cost nothing: their acknowledgements were lost,
        // not their bytes.
        assert!(
            second.parts_sent().iter().all(|n| !on_server.contains(n)),
            "round {round}: re-sent {:?}, the server held {on_server:?}",
            second.parts_sent()
        );
        assert_eq!(outcome.parts_sent as usize, second.parts_sent().len());
        assert_object_is(&client, &key, &bytes).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_part_whose_acknowledgement_was_lost_is_not_resent() {
    let server = mock().await;
    let bytes = data(1_000_000, 11);
    let store = MemoryStore::new();
    let faulty = Faulty::new();
    // Part 3 reaches the server, but every answer to it is lost: the run fails without recording it.
    faulty.rule(Rule::new(Api::UploadPart, Action::LoseAnswer).part(3));
    let uploader = builder_with(&server.endpoint(), faulty.clone())
        .store(store.clone())
        .scheduler(Parallel::new(2))
        .build()
        .unwrap();
    let source = || ossup::BytesSource::new(bytes.clone(), "lost-ack");
    let err = uploader
        .upload(UploadRequest::new(source(), BUCKET, "lost-ack"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Network);
    assert_eq!(err.part(), Some(3));
    let identity = UploadIdentity::new("lost-ack", BUCKET, "lost-ack", PART);
    let checkpoint = store
        .load(&identity)
        .await
        .unwrap()
        .expect("checkpoint kept");
    assert!(!checkpoint.parts.contains_key(&3));

    faulty.clear();
    faulty.take_seen();
    let outcome = uploader
        .upload(UploadRequest::new(source(), BUCKET, "lost-ack"))
        .await
        .unwrap();
    assert!(!faulty.parts_sent().contains(&3), "part 3 was sent again");
    assert!(outcome.parts_reused >= 3);
    assert_eq!(faulty.count(Api::ListParts), 1);
    assert_object_is(uploader.client(), "lost-ack", &bytes).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_listed_part_with_other_bytes_is_sent_again() {
    let server = mock().await;
    let bytes = data(500_000, 12);
    let store = MemoryStore::new();
    let crash = CancellationToken::new();
    let faulty = Faulty::new();
    faulty.rule(Rule::new(Api::UploadPart, Action::DropThenCrash(crash.clone())).skip(3));
    let uploader = builder_with(&server.endpoint(), faulty.clone())
        .store(store.clone())
        .scheduler(ossup::Sequential)
        .build()
        .unwrap();
    let source = || ossup::BytesSource::new(bytes.clone(), "tampered");
    uploader
        .upload(UploadRequest::new(source(), BUCKET, "tampered").cancel(crash))
        .await
        .unwrap_err();

    // Someone overwrites part 2 of the upload with other bytes of the same size.
    let identity = UploadIdentity::new("tampered", BUCKET, "tampered", PART);
    let checkpoint = store.load(&identity).await.unwrap().unwrap();
    assert!(checkpoint.parts.contains_key(&2));
    let client = client(&server.endpoint());
    client
        .upload_part(
            BUCKET,
            "tampered",
            &checkpoint.upload_id,
            2,
            ossup::PartBody::new(data(PART as usize, 99)),
        )
        .await
        .unwrap();

    faulty.clear();
    faulty.take_seen();
    let outcome = uploader
        .upload(UploadRequest::new(source(), BUCKET, "tampered"))
        .await
        .unwrap();
    let sent = faulty.parts_sent();
    assert!(
        sent.contains(&2),
        "the overwritten part 2 was trusted: sent {sent:?}"
    );
    assert!(!sent.contains(&1));
    assert_eq!(outcome.parts_reused, 2);
    assert_object_is(&client, "tampered", &bytes).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_changed_source_aborts_the_old_upload_and_starts_fresh() {
    let server = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("changing.bin");
    std::fs::write(&path, data(800_000, 13)).unwrap();
    let store = MemoryStore::new();
    let (_faulty, _) = crashed_run(&server.endpoint(), &store, &path, "changing", 3, true).await;
    let client = client(&server.endpoint());
    let old = client
        .list_multipart_uploads(BUCKET, Some("changing"))
        .await
        .unwrap();
    assert_eq!(old.len(), 1);

    // Same size, new content and modification time.
    let new_bytes = data(800_000, 14);
    std::fs::write(&path, &new_bytes).unwrap();
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();

    let uploader = builder(&server.endpoint())
        .store(store.clone())
        .build()
        .unwrap();
    let outcome = uploader
        .upload(UploadRequest::new(
            FileSource::open(&path).unwrap(),
            BUCKET,
            "changing",
        ))
        .await
        .unwrap();
    assert!(!outcome.resumed);
    assert_eq!(outcome.parts_reused, 0);
    assert_eq!(
        outcome.notices,
        vec![Notice::SourceChanged {
            upload_id: old[0].upload_id.clone(),
            aborted: true
        }]
    );
    assert!(
        client
            .list_multipart_uploads(BUCKET, Some("changing"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_object_is(&client, "changing", &new_bytes).await;
    server.shutdown().await;
}

#[tokio::test]
async fn changed_object_options_start_a_fresh_upload() {
    let server = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opts.bin");
    let bytes = data(600_000, 15);
    std::fs::write(&path, &bytes).unwrap();
    let store = MemoryStore::new();
    crashed_run(&server.endpoint(), &store, &path, "opts", 2, true).await;

    let uploader = builder(&server.endpoint())
        .store(store.clone())
        .build()
        .unwrap();
    let outcome = uploader
        .upload(
            UploadRequest::new(FileSource::open(&path).unwrap(), BUCKET, "opts")
                .options(ossup::ObjectOptions::default().meta("k", "v")),
        )
        .await
        .unwrap();
    assert!(matches!(
        outcome.notices[..],
        [Notice::OptionsChanged { aborted: true, .. }]
    ));
    let head = uploader
        .client()
        .head_object(BUCKET, "opts")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.metadata.get("k").map(String::as_str), Some("v"));
    assert_object_is(uploader.client(), "opts", &bytes).await;
    server.shutdown().await;
}

#[tokio::test]
async fn no_such_upload_on_resume_starts_a_fresh_upload() {
    let server = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone.bin");
    let bytes = data(600_000, 16);
    std::fs::write(&path, &bytes).unwrap();
    let store = MemoryStore::new();
    crashed_run(&server.endpoint(), &store, &path, "gone", 2, true).await;
    let client = client(&server.endpoint());
    let upload = client
        .list_multipart_uploads(BUCKET, Some("gone"))
        .await
        .unwrap()
        .remove(0);
    client
        .abort_multipart_upload(BUCKET, "gone", &upload.upload_id)
        .await
        .unwrap();

    let uploader = builder(&server.endpoint())
        .store(store.clone())
        .build()
        .unwrap();
    let outcome = uploader
        .upload(UploadRequest::new(
            FileSource::open(&path).unwrap(),
            BUCKET,
            "gone",
        ))
        .await
        .unwrap();
    assert_eq!(
        outcome.notices,
        vec![Notice::UploadGone {
            upload_id: upload.upload_id
        }]
    );
    assert_eq!(outcome.parts_reused, 0);
    assert_object_is(&client, "gone", &bytes).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_corrupt_checkpoint_is_reported_and_the_upload_still_completes() {
    let server = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.bin");
    let bytes = data(700_000, 17);
    std::fs::write(&path, &bytes).unwrap();
    let store = FileStore::open(dir.path().join("checkpoints")).unwrap();

    let crash = CancellationToken::new();
    let faulty = Faulty::new();
    faulty.rule(Rule::new(Api::UploadPart, Action::DropThenCrash(crash.clone())).skip(3));
    builder_with(&server.endpoint(), faulty)
        .store(store.clone())
        .scheduler(ossup::Sequential)
        .build()
        .unwrap()
        .upload(
            UploadRequest::new(FileSource::open(&path).unwrap(), BUCKET, "corrupt").cancel(crash),
        )
        .await
        .unwrap_err();

    // Flip a byte of the header record (past the 8-byte magic and the version): damage, where a
    // flipped byte in the last record would read as an append cut short by a crash and be dropped.
    let identity = UploadIdentity::new(
        path.canonicalize().unwrap().to_string_lossy(),
        BUCKET,
        "corrupt",
        PART,
    );
    let journal = store.journal_path(&identity);
    let mut raw = std::fs::read(&journal).expect("journal written");
    raw[24] ^= 0xff;
    std::fs::write(&journal, raw).unwrap();

    let events = Events::default();
    let fresh_store = FileStore::open(dir.path().join("checkpoints")).unwrap();
    let uploader = builder(&server.endpoint())
        .store(fresh_store)
        .build()
        .unwrap();
    let outcome = uploader
        .upload(
            UploadRequest::new(FileSource::open(&path).unwrap(), BUCKET, "corrupt")
                .progress(events.sink()),
        )
        .await
        .unwrap();
    // The first run's upload, whose checkpoint was set aside, was initiated moments before this
    // run's intent: the sweep for uploads left open by an interrupted start may abort it too.
    assert!(
        matches!(
            &outcome.notices[..],
            [Notice::CheckpointCorrupt { .. }, rest @ ..]
                if rest.iter().all(|n| matches!(n, Notice::OrphanAborted { .. }))
        ),
        "{:?}",
        outcome.notices
    );
    assert!(events.all().iter().any(|e| matches!(
        e,
        ProgressEvent::Notice {
            notice: Notice::CheckpointCorrupt { .. },
            ..
        }
    )));
    assert_object_is(uploader.client(), "corrupt", &bytes).await;
    server.shutdown().await;
}

#[tokio::test]
async fn transferred_never_goes_backwards_across_retries_and_resumes() {
    let server = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("progress.bin");
    let bytes = data(1_500_000, 18);
    std::fs::write(&path, &bytes).unwrap();
    let store = MemoryStore::new();
    let crash = CancellationToken::new();
    let faulty = Faulty::new();
    faulty.rule(
        Rule::new(
            Api::UploadPart,
            Action::Answer(ossup::ErrorCode::ServiceUnavailable),
        )
        .times(6),
    );
    faulty.rule(Rule::new(Api::UploadPart, Action::ForwardThenCrash(crash.clone())).skip(6));
    let events = Events::default();
    builder_with(&server.endpoint(), faulty.clone())
        .store(store.clone())
        .build()
        .unwrap()
        .upload(
            UploadRequest::new(FileSource::open(&path).unwrap(), BUCKET, "progress")
                .progress(events.sink())
                .cancel(crash),
        )
        .await
        .unwrap_err();
    let first = events.transferred();
    assert!(first.windows(2).all(|w| w[0] < w[1]), "{first:?}");
    assert!(
        events
            .all()
            .iter()
            .any(|e| matches!(e, ProgressEvent::Retrying { .. }))
    );

    let second_events = Events::default();
    builder(&server.endpoint())
        .store(store.clone())
        .build()
        .unwrap()
        .upload(
            UploadRequest::new(FileSource::open(&path).unwrap(), BUCKET, "progress")
                .progress(second_events.sink()),
        )
        .await
        .unwrap();
    let already = second_events
        .all()
        .iter()
        .find_map(|e| match e {
            ProgressEvent::Started {
                already_on_server, ..
            } => Some(*already_on_server),
            _ => None,
        })
        .unwrap();
    assert!(already >= *first.last().unwrap_or(&0));
    let second = second_events.transferred();
    assert!(second.iter().all(|t| *t > already));
    assert!(second.windows(2).all(|w| w[0] < w[1]), "{second:?}");
    assert_eq!(second.last(), Some(&(bytes.len() as u64)));
    assert_object_is(&client(&server.endpoint()), "progress", &bytes).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_file_that_shrank_to_one_put_aborts_the_upload_it_had_begun_in_parts() {
    let server = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shrinks.bin");
    std::fs::write(&path, data(1_000_000, 14)).unwrap();
    let store = MemoryStore::new();
    crashed_run(&server.endpoint(), &store, &path, "shrinks", 3, true).await;
    let client = client(&server.endpoint());
    let open = |client: ossup::Client| async move {
        client
            .list_multipart_uploads(BUCKET, Some("shrinks"))
            .await
            .unwrap()
            .len()
    };
    assert_eq!(open(client.clone()).await, 1);

    std::fs::write(&path, b"ten bytes!").unwrap();
    let outcome = builder(&server.endpoint())
        .store(store.clone())
        .build()
        .unwrap()
        .upload(UploadRequest::new(
            FileSource::open(&path).unwrap(),
            BUCKET,
            "shrinks",
        ))
        .await
        .unwrap();
    assert!(
        outcome
            .notices
            .iter()
            .any(|n| matches!(n, Notice::SourceChanged { aborted: true, .. })),
        "{:?}",
        outcome.notices
    );
    assert_eq!(open(client.clone()).await, 0);
    assert!(store.list().await.unwrap().is_empty());
    assert_object_is(&client, "shrinks", b"ten bytes!").await;
}
