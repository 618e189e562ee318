//! `ossup upload` end to end.

use ossup::{FileStore, UploadIdentity};

use crate::harness::{BUCKET, Harness, PART, Run};

#[test]
fn upload_writes_the_object_byte_for_byte_and_prints_a_summary() {
    let h = Harness::start();
    let file = h.file("data.bin", 3 << 20, 10);
    let run = Run::of(&mut h.upload(&file, "dir/data.bin", &[])).expect_code(0);
    h.assert_object_is("dir/data.bin", &file);
    assert!(
        run.stdout.contains("uploaded oss://bucket/dir/data.bin"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("3 MiB (3145728 bytes)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("ETag"), "{}", run.stdout);
    let crc = ossup_proto::checksum::crc64(&std::fs::read(&file).unwrap());
    assert!(
        run.stdout.contains(&format!("CRC-64  {crc}")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("31 sent, 0 reused"), "{}", run.stdout);
    assert!(h.open_uploads().is_empty());
}

#[test]
fn json_progress_is_one_complete_object_per_line_on_stdout() {
    let h = Harness::start();
    let file = h.file("data.bin", 1 << 20, 11);
    let run = Run::of(&mut h.upload(&file, "data.bin", &["--progress", "json"])).expect_code(0);
    let events = run.events();
    assert_eq!(events.first().unwrap()["event"], "started");
    assert_eq!(events.last().unwrap()["event"], "completed");
    let parts: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "part_done")
        .collect();
    assert_eq!(parts.len(), 11);
    let mut last = 0;
    for part in &parts {
        let transferred = part["transferred"].as_u64().unwrap();
        assert!(transferred > last, "transferred never goes backwards");
        last = transferred;
        assert!(part["part"].as_u64().is_some());
        assert!(part["bytes"].as_u64().is_some());
        assert_eq!(part["total"], 1 << 20);
        // `--parallel auto` by default: it starts at 4 and stays within --max-parallel (16); how far
        // it has climbed when a part's record is reported depends on timing.
        let concurrency = part["concurrency"].as_u64().unwrap();
        assert!((1..=16).contains(&concurrency), "{part}");
    }
    assert_eq!(last, 1 << 20);
    let completed = &events[events.len() - 1];
    assert_eq!(completed["size"], 1 << 20);
    assert_eq!(completed["parts_sent"], 11);
    assert_eq!(completed["parts_hedged"], 0);
    assert_eq!(
        completed["crc64"],
        ossup_proto::checksum::crc64(&std::fs::read(&file).unwrap()).to_string()
    );
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn a_key_ending_in_a_slash_takes_the_file_name() {
    let h = Harness::start();
    let file = h.file("named.bin", 300 << 10, 12);
    Run::of(&mut h.upload(&file, "folder/", &["--progress", "none"])).expect_code(0);
    h.assert_object_is("folder/named.bin", &file);
}

#[test]
fn options_reach_the_object() {
    let h = Harness::start();
    let file = h.file("page.html", 500 << 10, 13);
    Run::of(&mut h.upload(
        &file,
        "page.html",
        &[
            "--meta",
            "Owner=alice",
            "--meta",
            "x-oss-meta-team=storage",
            "--acl",
            "private",
            "--storage-class",
            "ia",
            "--checksum",
            "crc64",
            "--sequential",
            "--signature",
            "v1",
        ],
    ))
    .expect_code(0);
    h.assert_object_is("page.html", &file);
    let client = h.client();
    let head = h
        .block_on(client.head_object(BUCKET, "page.html"))
        .unwrap()
        .expect("object exists");
    assert_eq!(
        head.content_type.as_deref(),
        Some("text/html"),
        "guessed from the name"
    );
    assert_eq!(
        head.metadata.get("owner").map(String::as_str),
        Some("alice")
    );
    assert_eq!(
        head.metadata.get("team").map(String::as_str),
        Some("storage")
    );

    let other = h.file("other.bin", 200 << 10, 14);
    Run::of(&mut h.upload(
        &other,
        "other.bin",
        &["--content-type", "application/x-test"],
    ))
    .expect_code(0);
    let head = h
        .block_on(client.head_object(BUCKET, "other.bin"))
        .unwrap()
        .unwrap();
    assert_eq!(head.content_type.as_deref(), Some("application/x-test"));
}

#[test]
fn a_file_below_the_part_size_goes_in_one_request() {
    let h = Harness::start();
    let file = h.file("small.bin", 5000, 15);
    let run = Run::of(&mut h.upload(&file, "small.bin", &["--progress", "json"])).expect_code(0);
    assert!(run.event("started")["upload_id"].is_null());
    h.assert_object_is("small.bin", &file);
}

#[test]
fn a_corrupt_checkpoint_is_reported_with_its_place_and_the_upload_still_completes() {
    let h = Harness::start();
    let file = h.file("data.bin", 1 << 20, 16);
    let checkpoints = h.dir.path().join("ck");
    let store = FileStore::open(&checkpoints).unwrap();
    let identity = UploadIdentity::new(
        file.canonicalize().unwrap().to_string_lossy(),
        BUCKET,
        "data.bin",
        PART,
    );
    let journal = store.journal_path(&identity);
    drop(store);
    std::fs::write(&journal, b"this is not a checkpoint, it is a torn write\n").unwrap();

    let run = Run::of(&mut h.upload(
        &file,
        "data.bin",
        &[
            "--checkpoint-dir",
            checkpoints.to_str().unwrap(),
            "--progress",
            "plain",
        ],
    ))
    .expect_code(0);
    let journal_shown = journal.display().to_string();
    assert!(
        run.stderr.contains(&journal_shown),
        "names the checkpoint: {}",
        run.stderr
    );
    assert!(run.stderr.contains("set aside"), "{}", run.stderr);
    assert!(run.stderr.contains("corrupt"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("ossup uploads ls oss://bucket/data.bin"),
        "{}",
        run.stderr
    );
    h.assert_object_is("data.bin", &file);
    let aside: Vec<_> = std::fs::read_dir(&checkpoints)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("corrupt"))
        .collect();
    assert_eq!(
        aside.len(),
        1,
        "the damaged checkpoint is kept aside for inspection"
    );
}

#[test]
fn a_source_changed_between_runs_starts_over_and_says_so() {
    let h = Harness::start();
    let file = h.file("data.bin", 1 << 20, 17);
    // Leave a checkpointed multipart upload behind, as an interrupted run would: one whose
    // checkpoint is for the current file, then change the file.
    let checkpoints = h.dir.path().join("ck");
    let store = FileStore::open(&checkpoints).unwrap();
    let canonical = file.canonicalize().unwrap().to_string_lossy().into_owned();
    let identity = UploadIdentity::new(canonical, BUCKET, "data.bin", PART);
    let upload_id = h.initiate("data.bin");
    let stamp = ossup::SourceStamp {
        size: 1 << 20,
        modified_nanos: Some(1),
    };
    h.block_on(ossup::CheckpointStore::save(
        &store,
        &ossup::Checkpoint::new(identity, upload_id.clone(), stamp, 0, ""),
    ))
    .unwrap();
    drop(store);

    let run = Run::of(&mut h.upload(
        &file,
        "data.bin",
        &[
            "--checkpoint-dir",
            checkpoints.to_str().unwrap(),
            "--progress",
            "json",
        ],
    ))
    .expect_code(0);
    let notice = run.event("notice");
    assert_eq!(notice["notice"], "source_changed", "{notice}");
    assert!(notice["message"].as_str().unwrap().contains(&upload_id));
    h.assert_object_is("data.bin", &file);
    assert!(h.open_uploads().is_empty(), "the stale upload was aborted");
}

#[test]
fn without_a_checkpoint_nothing_is_written_to_the_state_directory() {
    let h = Harness::start();
    let file = h.file("data.bin", 1 << 20, 18);
    Run::of(&mut h.upload(&file, "data.bin", &["--no-checkpoint"])).expect_code(0);
    h.assert_object_is("data.bin", &file);
    assert!(!h.default_checkpoint_dir().exists());
}

#[test]
fn content_encryption_tag_and_header_flags_upload_the_object() {
    let h = Harness::start();
    let file = h.file("report.json", 300 << 10, 15);
    Run::of(&mut h.upload(
        &file,
        "report.json",
        &[
            "--cache-control",
            "no-cache",
            "--content-disposition",
            "attachment",
            "--expires",
            "Wed, 21 Oct 2026 07:28:00 GMT",
            "--sse",
            "KMS",
            "--sse-kms-key-id",
            "key-1",
            "--tagging",
            "team=data&tier=1",
            "--tag",
            "owner=alice",
            "--header",
            "x-oss-request-payer: requester",
        ],
    ))
    .expect_code(0);
    h.assert_object_is("report.json", &file);
}

#[test]
fn object_flags_oss_would_refuse_fail_as_usage_errors_before_any_upload() {
    let h = Harness::start();
    let file = h.file("f.bin", 200 << 10, 16);
    let run = Run::of(&mut h.upload(&file, "f.bin", &["--sse-kms-key-id", "key-1"])).expect_code(2);
    assert!(
        run.stderr.contains("needs server-side encryption KMS"),
        "{}",
        run.stderr
    );
    let run =
        Run::of(&mut h.upload(&file, "f.bin", &["--header", "Authorization: x"])).expect_code(2);
    assert!(run.stderr.contains("signer"), "{}", run.stderr);
    assert!(h.open_uploads().is_empty());
}

#[test]
fn adaptive_concurrency_and_a_rate_cap_still_make_the_same_object() {
    let h = Harness::start();
    let file = h.file("auto.bin", 3 << 20, 12);
    Run::of(&mut h.upload(
        &file,
        "auto.bin",
        &[
            "--parallel",
            "auto",
            "--max-parallel",
            "8",
            "--limit-rate",
            "64MiB/s",
        ],
    ))
    .expect_code(0);
    h.assert_object_is("auto.bin", &file);
    let run = Run::of(&mut h.upload(&file, "zero.bin", &["--parallel", "0"])).expect_code(2);
    assert!(run.stderr.contains("nor `auto`"), "{}", run.stderr);
    let run = Run::of(&mut h.upload(&file, "slow.bin", &["--limit-rate", "10/s"])).expect_code(2);
    assert!(run.stderr.contains("below 1KiB/s"), "{}", run.stderr);
}

#[test]
fn a_fixed_parallel_without_hedging_reports_its_concurrency() {
    let h = Harness::start();
    let file = h.file("fixed.bin", 600 << 10, 13);
    let run = Run::of(&mut h.upload(
        &file,
        "fixed.bin",
        &["--progress", "json", "--parallel", "3", "--no-hedge"],
    ))
    .expect_code(0);
    let events = run.events();
    let parts: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "part_done")
        .collect();
    assert_eq!(parts.len(), 6);
    assert!(parts.iter().all(|p| p["concurrency"] == 3), "{parts:?}");
    assert_eq!(events.last().unwrap()["parts_hedged"], 0);
}
