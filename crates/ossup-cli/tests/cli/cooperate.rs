//! `ossup upload --checkpoint-url postgres://… --cooperate`: several workers on one upload through
//! a real PostgreSQL server (a throwaway cluster), and what the flags refuse.

use ossup_test_support::postgres::{PG_DATABASE, PgCluster};

use crate::harness::{Harness, Run};

#[test]
fn three_workers_share_one_upload_through_postgres_and_each_ends_with_the_object() {
    let h = Harness::start();
    let cluster = PgCluster::start_fast();
    let url = cluster.url(PG_DATABASE);
    // Each part answered 100 ms late, so the workers started together find parts left to share.
    h.set_faults(r#"[{"api": "UploadPart", "action": {"kind": "delay", "ms": 100}}]"#);
    let file = h.file("shared.bin", 30 * 102_400 + 77, 41);
    let workers: Vec<_> = (0..3)
        .map(|_| {
            h.upload(
                &file,
                "shared.bin",
                &[
                    "--checkpoint-url",
                    url.as_str(),
                    "--cooperate",
                    "--parallel",
                    "2",
                ],
            )
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("ossup starts")
        })
        .collect();
    for worker in workers {
        let output = worker.wait_with_output().expect("ossup runs");
        assert!(
            output.status.success(),
            "a worker failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    h.assert_object_is("shared.bin", &file);
    assert!(h.open_uploads().is_empty(), "no upload is left open");
    let listed = Run::of(h.ossup().args([
        "uploads",
        "ls",
        "oss://bucket",
        "--checkpoint-url",
        url.as_str(),
    ]))
    .expect_code(0);
    assert!(
        listed.stdout.contains("no open multipart uploads"),
        "{}",
        listed.stdout
    );
}

#[test]
fn a_checkpoint_url_holding_a_password_is_refused_without_showing_it() {
    let h = Harness::start();
    let file = h.file("f.bin", 1000, 1);
    let run = Run::of(&mut h.upload(
        &file,
        "f.bin",
        &[
            "--checkpoint-url",
            "postgres://ossup:hunter2@127.0.0.1:1/ossup",
        ],
    ));
    assert_ne!(run.code, Some(0));
    assert!(run.stderr.contains("PGPASSWORD"), "{}", run.stderr);
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
}

#[test]
fn cooperate_without_a_shared_store_says_which_to_use() {
    let h = Harness::start();
    let file = h.file("f.bin", 1000, 2);
    let run = Run::of(&mut h.upload(&file, "f.bin", &["--cooperate"]));
    assert_ne!(run.code, Some(0));
    assert!(
        run.stderr.contains("--checkpoint-url") && run.stderr.contains("--checkpoint-db"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_lease_needs_cooperate_and_at_least_a_second() {
    let h = Harness::start();
    let file = h.file("f.bin", 1000, 3);
    let alone = Run::of(&mut h.upload(&file, "f.bin", &["--lease", "5s"]));
    assert_eq!(alone.code, Some(2), "{}", alone.stderr);
    assert!(alone.stderr.contains("--cooperate"), "{}", alone.stderr);
    let db = file.with_file_name("shared.db");
    let db = db.to_str().expect("a UTF-8 path");
    let short = Run::of(&mut h.upload(
        &file,
        "f.bin",
        &["--checkpoint-db", db, "--cooperate", "--lease", "0s"],
    ));
    assert_eq!(short.code, Some(2), "{}", short.stderr);
    assert!(short.stderr.contains("at least 1s"), "{}", short.stderr);
}
