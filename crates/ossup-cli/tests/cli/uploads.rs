//! `ossup uploads ls` and `ossup uploads abort`.

use crate::harness::{Harness, Run};

#[test]
fn ls_lists_open_uploads_under_a_prefix() {
    let h = Harness::start();
    let a = h.initiate("logs/a.bin");
    let b = h.initiate("logs/b.bin");
    let c = h.initiate("other/c.bin");

    let all = Run::of(h.ossup().args(["uploads", "ls", "oss://bucket"])).expect_code(0);
    for id in [&a, &b, &c] {
        assert!(all.stdout.contains(id.as_str()), "{}", all.stdout);
    }
    assert!(all.stdout.contains("3 open uploads"), "{}", all.stdout);

    let logs = Run::of(
        h.ossup()
            .args(["uploads", "ls", "oss://bucket/logs/", "--json"]),
    )
    .expect_code(0);
    let lines: Vec<serde_json::Value> = logs
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", logs.stdout);
    assert_eq!(lines[0]["key"], "logs/a.bin");
    assert_eq!(lines[0]["upload_id"], a.as_str());
    assert!(lines[0]["age_secs"].as_u64().is_some());
    assert_eq!(lines[1]["key"], "logs/b.bin");

    let none = Run::of(
        h.ossup()
            .args(["uploads", "ls", "oss://bucket/nothing-here"]),
    )
    .expect_code(0);
    assert!(
        none.stdout.contains("no open multipart uploads"),
        "{}",
        none.stdout
    );
}

#[test]
fn abort_by_id_removes_exactly_that_upload() {
    let h = Harness::start();
    let keep = h.initiate("k.bin");
    let drop = h.initiate("k.bin");
    let run = Run::of(h.ossup().args([
        "uploads",
        "abort",
        "oss://bucket/k.bin",
        "--upload-id",
        &drop,
    ]))
    .expect_code(0);
    assert!(
        run.stdout.contains(&format!("aborted upload {drop}")),
        "{}",
        run.stdout
    );
    assert_eq!(h.open_uploads(), vec![("k.bin".to_owned(), keep)]);

    // Again: it is gone now, and the error says so.
    let again = Run::of(h.ossup().args([
        "uploads",
        "abort",
        "oss://bucket/k.bin",
        "--upload-id",
        &drop,
    ]))
    .expect_code(1);
    assert!(
        again.stderr.contains("no such multipart upload"),
        "{}",
        again.stderr
    );
    assert!(
        again.stderr.contains("ossup uploads ls oss://bucket"),
        "{}",
        again.stderr
    );
    again.assert_no_dump();
}

#[test]
fn abort_by_id_needs_the_object_key() {
    let h = Harness::start();
    let run = Run::of(
        h.ossup()
            .args(["uploads", "abort", "oss://bucket", "--upload-id", "X"]),
    )
    .expect_code(2);
    assert!(run.stderr.contains("oss://bucket/KEY"), "{}", run.stderr);
}

#[test]
fn abort_older_than_spares_young_uploads_and_removes_old_ones() {
    let h = Harness::start();
    h.initiate("tmp/a.bin");
    h.initiate("tmp/b.bin");
    let elsewhere = h.initiate("keep/c.bin");

    let young = Run::of(h.ossup().args([
        "uploads",
        "abort",
        "oss://bucket/tmp/",
        "--older-than",
        "1h",
    ]))
    .expect_code(0);
    assert!(young.stdout.contains("aborted 0 of 2"), "{}", young.stdout);
    assert_eq!(h.open_uploads().len(), 3);

    // Initiation times have one-second resolution: after a second, every upload is older than 0s.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let dry = Run::of(h.ossup().args([
        "uploads",
        "abort",
        "oss://bucket/tmp/",
        "--older-than",
        "0s",
        "--dry-run",
    ]))
    .expect_code(0);
    assert_eq!(
        dry.stdout.matches("would abort upload").count(),
        2,
        "{}",
        dry.stdout
    );
    assert_eq!(h.open_uploads().len(), 3, "a dry run aborts nothing");

    let old = Run::of(h.ossup().args([
        "uploads",
        "abort",
        "oss://bucket/tmp/",
        "--older-than",
        "0s",
    ]))
    .expect_code(0);
    assert!(old.stdout.contains("aborted 2 of 2"), "{}", old.stdout);
    assert_eq!(h.open_uploads(), vec![("keep/c.bin".to_owned(), elsewhere)]);
}

#[test]
fn ls_tells_uploads_a_local_checkpoint_can_resume_from_orphans() {
    use ossup::{Checkpoint, CheckpointStore, FileStore, SourceStamp, UploadIdentity};
    let h = Harness::start();
    let resumable = h.initiate("data/kept.bin");
    let orphan = h.initiate("data/lost.bin");
    let store = FileStore::open(h.default_checkpoint_dir()).unwrap();
    let identity = UploadIdentity::new("/src/kept.bin", "bucket", "data/kept.bin", 100 * 1024);
    let stamp = SourceStamp {
        size: 300 * 1024,
        modified_nanos: None,
    };
    h.block_on(store.save(&Checkpoint::new(identity, resumable.clone(), stamp, 0, "")))
        .unwrap();

    let table = Run::of(h.ossup().args(["uploads", "ls", "oss://bucket/data/"])).expect_code(0);
    let line_of = |id: &str| {
        table
            .stdout
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id} missing: {}", table.stdout))
            .to_owned()
    };
    assert!(line_of(&resumable).contains("resumable here: /src/kept.bin"));
    assert!(line_of(&orphan).contains("orphan"));
    assert!(
        table.stdout.contains("1 with a checkpoint"),
        "{}",
        table.stdout
    );

    let json = Run::of(
        h.ossup()
            .args(["uploads", "ls", "oss://bucket/data/", "--json"]),
    )
    .expect_code(0);
    let lines: Vec<serde_json::Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["local_checkpoint"]["source"], "/src/kept.bin");
    assert!(lines[1]["local_checkpoint"].is_null());

    // Another store knows nothing of either.
    let elsewhere = h.dir.path().join("elsewhere");
    let other = Run::of(
        h.ossup()
            .args(["uploads", "ls", "oss://bucket/data/", "--checkpoint-dir"])
            .arg(&elsewhere),
    )
    .expect_code(0);
    assert!(
        other.stdout.contains("0 with a checkpoint"),
        "{}",
        other.stdout
    );
}

#[test]
fn ls_shows_files_cooperating_workers_are_putting_whole() {
    use ossup::store::{Cooperation, FileClaim};
    use std::time::Duration;
    let h = Harness::start();
    let open = h.initiate("site/big.iso");
    let db = h.dir.path().join("shared.db");
    let store = h.block_on(ossup_sqlite::SqliteStore::open(&db)).unwrap();
    let lease = Duration::from_secs(600);
    for (key, worker) in [
        ("site/app.js", "web-1/7/aa"),
        ("site/style.css", "web-2/9/bb"),
        ("other/x.png", "web-1/7/aa"),
    ] {
        let claimed = h.block_on(store.claim_file("bucket", key, worker, lease));
        assert!(
            matches!(claimed, Ok(FileClaim::Claimed { .. })),
            "{claimed:?}"
        );
    }

    let table = Run::of(
        h.ossup()
            .args(["uploads", "ls", "oss://bucket/site/", "--checkpoint-db"])
            .arg(&db),
    )
    .expect_code(0);
    assert!(table.stdout.contains(open.as_str()), "{}", table.stdout);
    let line_of = |key: &str| {
        table
            .stdout
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("{key} missing: {}", table.stdout))
            .to_owned()
    };
    assert!(
        line_of("site/app.js").contains("web-1/7/aa ("),
        "{}",
        table.stdout
    );
    assert!(
        line_of("site/style.css").contains("web-2/9/bb ("),
        "{}",
        table.stdout
    );
    assert!(!table.stdout.contains("other/x.png"), "{}", table.stdout);
    assert!(
        table
            .stdout
            .contains("2 files being put whole by cooperating workers"),
        "{}",
        table.stdout
    );

    let json = Run::of(
        h.ossup()
            .args([
                "uploads",
                "ls",
                "oss://bucket/site/",
                "--json",
                "--checkpoint-db",
            ])
            .arg(&db),
    )
    .expect_code(0);
    let lines: Vec<serde_json::Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{}", json.stdout);
    assert_eq!(lines[0]["upload_id"], open.as_str());
    assert_eq!(lines[1]["file_claim"]["key"], "site/app.js");
    assert_eq!(lines[1]["file_claim"]["worker"], "web-1/7/aa");
    assert!(lines[1]["file_claim"]["lease_secs"].as_u64().unwrap() <= 600);
    assert_eq!(lines[2]["file_claim"]["key"], "site/style.css");

    // Once released, a file is no longer listed; with no upload open under the prefix the claims
    // still show.
    h.block_on(store.release_file("bucket", "site/app.js", "web-1/7/aa"))
        .unwrap();
    let only_claims = Run::of(
        h.ossup()
            .args([
                "uploads",
                "ls",
                "oss://bucket/site/style",
                "--checkpoint-db",
            ])
            .arg(&db),
    )
    .expect_code(0);
    assert!(
        only_claims.stdout.contains("no open multipart uploads")
            && only_claims.stdout.contains("1 file being put whole"),
        "{}",
        only_claims.stdout
    );
    assert!(
        !only_claims.stdout.contains("site/app.js"),
        "{}",
        only_claims.stdout
    );
}
