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
