//! What ossup leaves on disk and prints: owner-only files whatever the umask, a checkpoint
//! directory open to others refused, no credential or signature anywhere, server text escaped
//! before it reaches a terminal, arguments that are not UTF-8, and `uploads abort` that checks the
//! prefix itself.

use std::path::{Path, PathBuf};

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::{BUCKET, Harness, Run, under_umask_000};

/// Every file and directory below `root` (itself excluded), with its mode.
#[cfg(unix)]
fn modes_below(root: &Path) -> Vec<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            found.push((path.clone(), meta.permissions().mode() & 0o7777));
            if meta.is_dir() {
                pending.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Every file below `root`, recursively.
fn files_below(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// A small tree to upload: two files of one part each and one of four.
fn write_tree(root: &Path) {
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::write(root.join("docs/a.txt"), ossup_test_support::data(900, 1)).unwrap();
    std::fs::write(root.join("docs/b.txt"), ossup_test_support::data(700, 2)).unwrap();
    std::fs::write(root.join("big.bin"), ossup_test_support::data(350 << 10, 3)).unwrap();
}

#[cfg(unix)]
#[test]
fn checkpoints_digests_reports_and_databases_are_owner_only_under_a_umask_of_000() {
    let h = Harness::start();
    // A tree run with a report: the default checkpoint directory (and its parents, created here),
    // the digest log and the report.
    let root = h.dir.path().join("tree");
    write_tree(&root);
    let report = h.dir.path().join("report.jsonl");
    let mut tree = h.ossup();
    tree.arg("upload")
        .arg(&root)
        .arg(format!("oss://{BUCKET}/site/"))
        .args(["--recursive", "--part-size", "100KiB", "--progress", "none"])
        .arg("--report")
        .arg(&report);
    Run::of(&mut under_umask_000(&tree)).expect_code(0);

    // A failed upload keeps its checkpoint (a journal) in the same directory.
    h.set_faults(
        r#"[{"api": "UploadPart", "part_number": 3, "action": {"kind": "error", "status": 403, "code": "AccessDenied"}}]"#,
    );
    let file = h.file("kept.bin", 350 << 10, 4);
    Run::of(&mut under_umask_000(&h.upload(
        &file,
        "kept.bin",
        &["--progress", "none", "--max-attempts", "1", "--sequential"],
    )))
    .expect_code(1);
    h.set_faults("[]");

    // The SQLite store, in a directory of its own that the run creates nothing in but the database.
    let db_dir = h.dir.path().join("db");
    std::fs::create_dir(&db_dir).unwrap();
    let db = db_dir.join("checkpoints.db");
    let db_arg = db.display().to_string();
    Run::of(&mut under_umask_000(&h.upload(
        &file,
        "in-db.bin",
        &["--progress", "none", "--checkpoint-db", &db_arg],
    )))
    .expect_code(0);

    let state = h.state_home();
    let found = modes_below(&state);
    let names: Vec<String> = found
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "digests.jsonl"), "{names:?}");
    assert!(
        names.iter().any(|n| n.len() > 30 && !n.contains('.')),
        "no journal: {names:?}"
    );
    for (path, mode) in found {
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, expected, "{} is {mode:04o}", path.display());
    }
    for (path, mode) in modes_below(&db_dir) {
        assert_eq!(mode, 0o600, "{} is {mode:04o}", path.display());
    }
    assert_eq!(
        modes_below(h.dir.path())
            .into_iter()
            .find(|(p, _)| *p == report)
            .map(|(_, mode)| mode),
        Some(0o600)
    );
}

#[cfg(unix)]
#[test]
fn a_checkpoint_directory_other_users_can_write_to_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let h = Harness::start();
    let open = h.dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let file = h.file("a.bin", 1000, 5);
    let dir_arg = open.display().to_string();
    let run = Run::of(&mut h.upload(
        &file,
        "a.bin",
        &["--checkpoint-dir", &dir_arg, "--progress", "none"],
    ))
    .expect_code(1);
    assert!(run.stderr.contains("not private"), "{}", run.stderr);
    assert!(
        run.stderr.contains("every user may write"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("chmod 700 {dir_arg}")),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0);
    assert!(
        h.block_on(h.client().head_object(BUCKET, "a.bin"))
            .unwrap()
            .is_none()
    );

    // Fixed as the message says, the same command works.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o700)).unwrap();
    Run::of(&mut h.upload(
        &file,
        "a.bin",
        &["--checkpoint-dir", &dir_arg, "--progress", "none"],
    ))
    .expect_code(0);
}

const STS_ID: &str = "STS.NUk7example";
const STS_SECRET: &str = "sts-secret-3f9a8b7c6d5e";
const STS_TOKEN: &str = "CAIS-security-token-0a1b2c3d4e5f6a7b8c9d";

/// Panics when `text` (from `whence`) holds a credential or a signature.
fn assert_no_secret(whence: &str, text: &str) {
    for secret in [
        STS_SECRET,
        STS_TOKEN,
        "Signature=",
        "Signature:",
        "OSS4-HMAC-SHA256 Credential",
    ] {
        assert!(
            !text.contains(secret),
            "{whence} holds {secret:?}:\n{}",
            text.lines()
                .filter(|l| l.contains(secret))
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Everything a run left: every file below the state directory, the extra files, and its output.
fn assert_nothing_holds_a_secret(h: &Harness, run: &Run, extra: &[&Path]) {
    assert_no_secret("stdout", &run.stdout);
    assert_no_secret("stderr", &run.stderr);
    let mut files = files_below(&h.state_home());
    files.extend(extra.iter().map(|p| p.to_path_buf()));
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        assert_no_secret(
            &file.display().to_string(),
            &String::from_utf8_lossy(&bytes),
        );
    }
}

#[test]
fn no_credential_or_signature_reaches_a_checkpoint_a_report_a_log_or_the_output() {
    let h = Harness::start();
    h.allow_sts(STS_ID, STS_SECRET, STS_TOKEN);
    let app = h.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/uploaded"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
            .mount(&server)
            .await;
        server
    });
    let callback = format!("{}/uploaded", app.uri());
    let sts = |mut cmd: std::process::Command| {
        cmd.env("OSS_ACCESS_KEY_ID", STS_ID)
            .env("OSS_ACCESS_KEY_SECRET", STS_SECRET)
            .env("OSS_SESSION_TOKEN", STS_TOKEN)
            .env("RUST_LOG", "trace");
        cmd
    };
    let flags = [
        "--progress",
        "json",
        "--callback-url",
        &callback,
        "--callback-body",
        "object=${object}&etag=${etag}",
    ];

    // One file: a first run stopped by a refused part (its checkpoint kept), then resumed.
    let file = h.file("data.bin", 450 << 10, 6);
    h.set_faults(
        r#"[{"api": "UploadPart", "part_number": 3, "action": {"kind": "error", "status": 403, "code": "AccessDenied"}}]"#,
    );
    let mut extra = flags.to_vec();
    extra.extend(["--max-attempts", "1", "--sequential"]);
    let run = Run::of(&mut sts(h.upload(&file, "data.bin", &extra))).expect_code(1);
    assert!(
        run.stderr.contains("TRACE") || run.stderr.contains("DEBUG"),
        "no log: {}",
        run.stderr
    );
    assert!(
        !files_below(&h.state_home()).is_empty(),
        "no checkpoint was kept"
    );
    assert_nothing_holds_a_secret(&h, &run, &[]);
    h.set_faults("[]");
    let run = Run::of(&mut sts(h.upload(&file, "data.bin", &flags))).expect_code(0);
    assert_eq!(
        run.event("completed")["callback_reply"],
        json!({"ok": true}).to_string()
    );
    assert_nothing_holds_a_secret(&h, &run, &[]);
    h.assert_object_is("data.bin", &file);

    // A tree with a report, one file of it refused.
    let root = h.dir.path().join("tree");
    write_tree(&root);
    let report = h.dir.path().join("report.jsonl");
    h.set_faults(
        r#"[{"api": "PutObject", "key_prefix": "site/docs/b.txt", "action": {"kind": "error", "status": 403, "code": "AccessDenied"}}]"#,
    );
    let mut tree = h.ossup();
    tree.arg("upload")
        .arg(&root)
        .arg(format!("oss://{BUCKET}/site/"))
        .args([
            "--recursive",
            "--part-size",
            "100KiB",
            "--max-attempts",
            "1",
        ])
        .args(flags)
        .arg("--report")
        .arg(&report);
    let run = Run::of(&mut sts(tree)).expect_code(1);
    let report_text = std::fs::read_to_string(&report).unwrap();
    assert!(report_text.contains("AccessDenied"), "{report_text}");
    assert_nothing_holds_a_secret(&h, &run, &[&report]);
}

#[test]
fn server_text_is_escaped_before_it_reaches_the_terminal() {
    let h = Harness::start();
    // A server whose error message carries escape sequences: a title change, a screen clear, an
    // 8-bit CSI and a line that pretends to be ossup's.
    let fake = h.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(403).set_body_string(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\
                 <Message>denied\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m\nerror: all good</Message>\
                 <RequestId>R1</RequestId><HostId>h</HostId></Error>",
            ))
            .mount(&server)
            .await;
        server
    });
    let run = Run::of(
        h.ossup()
            .args([
                "uploads",
                "ls",
                &format!("oss://{BUCKET}/"),
                "--endpoint",
                &fake.uri(),
            ])
            .args([
                "--checkpoint-dir",
                &h.dir.path().join("cp").display().to_string(),
            ]),
    )
    .expect_code(1);
    assert!(run.stderr.contains("denied"), "{}", run.stderr);
    assert!(
        !run.stderr.chars().any(|c| c.is_control() && c != '\n'),
        "{:?}",
        run.stderr
    );
    assert!(run.stderr.contains("\\x1b[2J"), "{}", run.stderr);
    assert!(!run.stderr.contains("\nerror: all good"), "{}", run.stderr);

    // A callback reply with an 8-bit CSI (valid JSON, so OSS passes it on) is escaped in the
    // summary, and kept exact (as a JSON escape) in JSON progress.
    let app = h.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-type", "application/json")
                    .set_body_string("{\"note\":\"\u{9b}2J\u{7f}\"}"),
            )
            .mount(&server)
            .await;
        server
    });
    let url = format!("{}/done", app.uri());
    let file = h.file("c.bin", 1000, 7);
    let callback = ["--callback-url", &url, "--callback-body", "o=${object}"];
    let mut flags = callback.to_vec();
    flags.extend(["--progress", "none"]);
    let run = Run::of(&mut h.upload(&file, "c.bin", &flags)).expect_code(0);
    assert!(run.stdout.contains("callback replied"), "{}", run.stdout);
    assert!(
        !run.stdout.chars().any(|c| c.is_control() && c != '\n'),
        "{:?}",
        run.stdout
    );
    assert!(run.stdout.contains("\\u{9b}2J"), "{}", run.stdout);
    let mut flags = callback.to_vec();
    flags.extend(["--progress", "json"]);
    let run = Run::of(&mut h.upload(&file, "c2.bin", &flags)).expect_code(0);
    assert!(
        !run.stdout.chars().any(|c| c.is_control() && c != '\n'),
        "{:?}",
        run.stdout
    );
    assert_eq!(
        run.event("completed")["callback_reply"],
        "{\"note\":\"\u{9b}2J\u{7f}\"}"
    );
}

#[cfg(unix)]
#[test]
fn a_file_name_that_is_not_utf8_is_uploaded_or_refused_never_a_panic() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let h = Harness::start();
    let name = OsStr::from_bytes(b"caf\xe9.bin");
    let file = h.dir.path().join(name);
    std::fs::write(&file, ossup_test_support::data(1000, 8)).unwrap();

    // To a key of its own: uploaded.
    Run::of(&mut h.upload(&file, "cafe.bin", &["--progress", "none"])).expect_code(0);
    h.assert_object_is("cafe.bin", &file);

    // Into a folder, where its name would have to become part of the key: a usage error.
    let run = Run::of(&mut h.upload(&file, "dir/", &["--progress", "none"])).expect_code(2);
    assert!(run.stderr.contains("not valid UTF-8"), "{}", run.stderr);
    run.assert_no_dump();

    // A failure's resume hint quotes the name byte for byte.
    h.set_faults(
        r#"[{"api": "CompleteMultipartUpload", "action": {"kind": "error", "status": 403, "code": "AccessDenied"}}]"#,
    );
    let big = h.dir.path().join(OsStr::from_bytes(b"big\xff.bin"));
    std::fs::write(&big, ossup_test_support::data(250 << 10, 9)).unwrap();
    let run = Run::of(&mut h.upload(
        &big,
        "big.bin",
        &["--progress", "none", "--max-attempts", "1"],
    ))
    .expect_code(1);
    assert!(run.stderr.contains("big\\xff.bin'"), "{}", run.stderr);
    run.assert_no_dump();
    h.set_faults("[]");

    // Where clap needs text (the destination): a usage error, not a panic.
    let mut cmd = h.ossup();
    cmd.arg("upload")
        .arg(&file)
        .arg(OsStr::from_bytes(b"oss://bucket/k\xe9"));
    let run = Run::of(&mut cmd).expect_code(2);
    assert!(run.stderr.contains("UTF-8"), "{}", run.stderr);
    run.assert_no_dump();
}

#[test]
fn abort_older_than_leaves_keys_outside_the_prefix_alone_whatever_the_server_lists() {
    let h = Harness::start();
    // A server that ignores the prefix and lists every open upload of the bucket.
    let fake = h.block_on(async {
        let server = MockServer::start().await;
        let upload = |key: &str| {
            format!(
                "<Upload><Key>{key}</Key><UploadId>U-{key}</UploadId><Initiated>2020-01-01T00:00:00.000Z</Initiated></Upload>"
            )
        };
        Mock::given(method("GET"))
            .and(path(format!("/{BUCKET}/")))
            .respond_with(ResponseTemplate::new(200).set_body_string(format!(
                "<ListMultipartUploadsResult><Bucket>{BUCKET}</Bucket><IsTruncated>false</IsTruncated>{}{}{}</ListMultipartUploadsResult>",
                upload("logs/old.bin"),
                upload("data/precious.bin"),
                upload("logsX/also-not.bin")
            )))
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&server)
            .await;
        server
    });
    let run = Run::of(h.ossup().args([
        "uploads",
        "abort",
        &format!("oss://{BUCKET}/logs/"),
        "--older-than",
        "1h",
        "--endpoint",
        &fake.uri(),
    ]))
    .expect_code(0);
    assert!(
        run.stdout.contains("aborted upload U-logs/old.bin"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("outside oss://bucket/logs/"),
        "{}",
        run.stderr
    );
    let deleted: Vec<String> = h
        .block_on(fake.received_requests())
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "DELETE")
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(deleted, [format!("/{BUCKET}/logs/old.bin")]);
}
