//! `ossup upload -`: standard input as a stream of unknown size, killed part way and resumed by
//! piping the same bytes again.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use crate::harness::{Harness, Run};

/// `ossup upload - oss://BUCKET/KEY --part-size 100KiB --progress json` plus `extra`.
fn upload_stdin(harness: &Harness, key: &str, extra: &[&str]) -> Command {
    let mut cmd = harness.upload("-".as_ref(), key, &["--progress", "json"]);
    cmd.args(extra);
    cmd
}

/// Runs `cmd` with `bytes` piped to its standard input.
fn run_with_stdin(mut cmd: Command, bytes: &[u8]) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ossup");
    let mut stdin = child.stdin.take().expect("stdin");
    let bytes = bytes.to_vec();
    let writer = std::thread::spawn(move || {
        // A run that fails early closes the pipe: not this writer's failure.
        let _ = stdin.write_all(&bytes);
    });
    let output = child.wait_with_output().expect("wait");
    writer.join().expect("writer");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn a_pipe_becomes_an_object_equal_to_its_bytes() {
    let harness = Harness::start();
    let file = harness.file("piped.bin", 2_000_000, 31);
    let bytes = std::fs::read(&file).unwrap();
    let run = run_with_stdin(upload_stdin(&harness, "piped.bin", &[]), &bytes).expect_code(0);
    let started = run.event("stream_started");
    assert_eq!(started["part_size"], 102_400, "{started}");
    assert_eq!(started["resumed"], false);
    assert!(
        run.events()
            .iter()
            .filter(|e| e["event"] == "part_done")
            .all(|e| e.get("total").is_none()),
        "a stream has no total:\n{}",
        run.stdout
    );
    let completed = run.event("completed");
    assert_eq!(completed["size"], 2_000_000);
    harness.assert_object_is("piped.bin", &file);
    assert!(harness.open_uploads().is_empty());
    run.assert_no_dump();
}

#[test]
fn a_short_pipe_goes_in_one_request_and_an_empty_one_makes_an_empty_object() {
    let harness = Harness::start();
    for (name, len) in [("short", 1000), ("empty", 0)] {
        let file = harness.file(name, len, 5);
        let bytes = std::fs::read(&file).unwrap();
        let run = run_with_stdin(upload_stdin(&harness, name, &[]), &bytes).expect_code(0);
        assert_eq!(run.event("started")["upload_id"], serde_json::Value::Null);
        harness.assert_object_is(name, &file);
    }
}

#[test]
fn a_stream_killed_part_way_resumes_from_the_same_bytes_piped_again() {
    let harness = Harness::start();
    let file = harness.file("dump.sql", 3_000_000, 8); // 30 parts of 100 KiB
    let bytes = std::fs::read(&file).unwrap();
    // The writer feeds the pipe slowly enough that the kill lands mid-stream.
    let mut child = upload_stdin(&harness, "dump.sql", &["--parallel", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ossup");
    let mut stdin = child.stdin.take().expect("stdin");
    let feed = bytes.clone();
    let writer = std::thread::spawn(move || {
        for chunk in feed.chunks(100 * 1024) {
            if stdin.write_all(chunk).is_err() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut done = 0;
    while done < 10 {
        let line = lines.next().expect("a line before the kill").expect("line");
        let event: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        if event["event"] == "part_done" {
            done += 1;
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    writer.join().expect("writer");
    assert_eq!(harness.open_uploads().len(), 1);

    let run = run_with_stdin(
        upload_stdin(&harness, "dump.sql", &["--parallel", "2"]),
        &bytes,
    )
    .expect_code(0);
    assert_eq!(run.event("stream_started")["resumed"], true);
    let completed = run.event("completed");
    let reused = completed["bytes_reused"].as_u64().unwrap();
    assert!(reused >= 10 * 102_400, "{completed}");
    assert_eq!(
        reused + completed["bytes_sent"].as_u64().unwrap(),
        bytes.len() as u64
    );
    harness.assert_object_is("dump.sql", &file);
    assert!(harness.open_uploads().is_empty());
}

#[test]
fn standard_input_needs_a_whole_key() {
    let harness = Harness::start();
    let run = run_with_stdin(upload_stdin(&harness, "folder/", &[]), b"x").expect_code(2);
    assert!(
        run.stderr.contains("standard input has no file name"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("whole key"), "{}", run.stderr);
}
