//! `ossup upload --checkpoint-url postgres://… --cooperate`: several workers on one upload through
//! a real PostgreSQL server (a throwaway cluster), several workers on one tree through one SQLite
//! database, and what the flags refuse.

use std::collections::BTreeSet;
use std::process::Stdio;

use ossup_test_support::postgres::{PG_DATABASE, PgCluster};

use crate::harness::{BUCKET, Harness, Run};

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
fn two_workers_share_a_tree_through_sqlite_and_each_small_file_is_put_once() {
    let h = Harness::start();
    // Puts answered 40 ms late, so the two workers started together meet each other's files.
    h.set_faults(r#"[{"api": "PutObject", "action": {"kind": "delay", "ms": 40}}]"#);
    let root = h.dir.path().join("tree");
    let small = 30;
    let mut relatives: Vec<(String, usize)> = (0..small)
        .map(|i| (format!("docs/{}/note{i}.txt", i % 3), 400 + i * 17))
        .collect();
    relatives.push(("media/clip.bin".into(), 350 * 1024 + 5));
    for (i, (relative, size)) in relatives.iter().enumerate() {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, ossup_test_support::data(*size, 70 + i as u64)).unwrap();
    }
    let db = h.dir.path().join("shared.db");
    let reports: Vec<_> = (0..2)
        .map(|w| h.dir.path().join(format!("report-{w}.jsonl")))
        .collect();
    let workers: Vec<_> = reports
        .iter()
        .map(|report| {
            h.ossup()
                .arg("upload")
                .arg(&root)
                .arg(format!("oss://{BUCKET}/site/"))
                .args(["--recursive", "--part-size", "100KiB", "--parallel", "2"])
                .arg("--cooperate")
                .arg("--checkpoint-db")
                .arg(&db)
                .args(["--lease", "10s"])
                .arg("--report")
                .arg(report)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("ossup starts")
        })
        .collect();
    for worker in workers {
        let output = worker.wait_with_output().expect("ossup runs");
        assert!(
            output.status.success(),
            "a worker failed ({}): {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for (relative, _) in &relatives {
        h.assert_object_is(&format!("site/{relative}"), &root.join(relative));
    }
    assert_eq!(
        h.requests(ossup::Api::PutObject),
        small as u64,
        "each small file is put once by the two workers together"
    );
    let keys: BTreeSet<String> = relatives.iter().map(|(r, _)| format!("site/{r}")).collect();
    let mut by_another = 0;
    for report in &reports {
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(report)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let named: BTreeSet<String> = lines
            .iter()
            .map(|l| l["key"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(named, keys, "a worker's report names every file");
        assert_eq!(lines.len(), keys.len(), "and each once");
        for line in &lines {
            assert!(
                line["status"] == "uploaded" || line["status"] == "skipped",
                "{line}"
            );
            if line["status"] == "skipped" {
                assert!(
                    line["reason"].is_string(),
                    "a skipped file says why: {line}"
                );
            }
            by_another += usize::from(line["reason"] == "uploaded_by_another_worker");
        }
    }
    assert!(
        by_another > 0,
        "the reports say which files another worker uploaded"
    );
}

#[test]
fn a_lease_without_cooperate_is_a_usage_error() {
    let h = Harness::start();
    let file = h.file("f.bin", 1000, 3);
    let run = Run::of(&mut h.upload(&file, "f.bin", &["--lease", "10s"]));
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("--cooperate"), "{}", run.stderr);
}

#[test]
fn a_tree_through_postgres_keeps_its_digest_cache_on_the_host() {
    let h = Harness::start();
    let cluster = PgCluster::start_fast();
    let url = cluster.url(PG_DATABASE);
    let root = h.dir.path().join("tree");
    let files: Vec<std::path::PathBuf> = (0..5)
        .map(|i| {
            let path = root.join(format!("d{}/f{i}.txt", i % 2));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, ossup_test_support::data(700 + i * 31, 90 + i as u64)).unwrap();
            path
        })
        .collect();
    let report = h.dir.path().join("report.jsonl");
    let upload = || {
        let mut cmd = h.ossup();
        cmd.arg("upload")
            .arg(&root)
            .arg(format!("oss://{BUCKET}/t/"))
            .args([
                "--recursive",
                "--checkpoint-url",
                url.as_str(),
                "--cooperate",
            ])
            .arg("--report")
            .arg(&report);
        Run::of(&mut cmd).expect_code(0)
    };
    upload();
    let cache = h.default_checkpoint_dir().join("digests.jsonl");
    let remembered = std::fs::read_to_string(&cache)
        .unwrap_or_else(|e| panic!("no digest cache at {}: {e}", cache.display()));
    assert_eq!(remembered.lines().count(), files.len(), "{remembered}");

    // Bytes changed in place with the time put back are judged by the cache, not read again: the
    // quick check a lone run makes, now with the checkpoints in PostgreSQL too.
    let modified = std::fs::metadata(&files[0]).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&files[0]).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&files[0], &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&files[0])
        .unwrap()
        .set_modified(modified)
        .unwrap();
    let puts = h.requests(ossup::Api::PutObject);
    upload();
    assert_eq!(
        h.requests(ossup::Api::PutObject),
        puts,
        "nothing is put again"
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&report)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), files.len());
    assert!(lines.iter().all(|l| l["status"] == "skipped"), "{lines:?}");
}
