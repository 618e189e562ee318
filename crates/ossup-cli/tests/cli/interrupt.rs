//! Disturbing an upload part way (kill -9, Ctrl-C, SIGTERM, an edit to the file), then running it
//! again.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};

use crate::harness::{Harness, Run};

/// What a test does to the upload part way.
#[derive(Debug, Clone)]
enum Stop {
    Kill,
    Signal(&'static str),
    /// Appends a byte to the file being uploaded, and lets the upload run on.
    AppendTo(PathBuf),
}

/// What a stopped run printed.
struct Stopped {
    status: ExitStatus,
    events: Vec<serde_json::Value>,
    stderr: String,
}

/// Runs `cmd` (which must use `--progress json`) until it has reported `parts` parts done, then
/// disturbs it as `stop` says, and waits for it to end.
fn run_until_parts_done(mut cmd: Command, parts: usize, stop: Stop) -> Stopped {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ossup");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut events = Vec::new();
    let mut done = 0;
    while done < parts {
        let Some(line) = lines.next() else { break };
        let event: serde_json::Value = serde_json::from_str(&line.expect("line")).expect("JSON");
        if event["event"] == "part_done" {
            done += 1;
        }
        events.push(event);
    }
    match stop {
        Stop::Kill => child.kill().expect("SIGKILL"),
        Stop::Signal(name) => {
            let sent = Command::new("kill")
                .arg(format!("-{name}"))
                .arg(child.id().to_string())
                .status()
                .expect("run kill");
            assert!(sent.success(), "kill -{name} failed");
        }
        Stop::AppendTo(path) => {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .expect("open");
            file.write_all(b"!").expect("append");
        }
    }
    for line in lines {
        let Ok(line) = line else { break };
        events.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}")));
    }
    let output = child.wait_with_output().expect("wait");
    let stopped = Stopped {
        status: output.status,
        events,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        !stopped.events.iter().any(|e| e["event"] == "completed"),
        "the upload finished before it could be stopped; the test needs a larger file"
    );
    stopped
}

#[test]
fn an_upload_killed_with_sigkill_resumes_and_reuses_its_parts() {
    let h = Harness::start();
    let file = h.file("big.bin", 8 << 20, 1);
    let first = run_until_parts_done(
        {
            let mut cmd = h.upload(&file, "big.bin", &["--progress", "json", "--sequential"]);
            cmd.stdin(Stdio::null());
            cmd
        },
        5,
        Stop::Kill,
    );
    assert_eq!(first.status.code(), None, "killed by a signal");
    let done_before: Vec<u64> = first
        .events
        .iter()
        .filter(|e| e["event"] == "part_done")
        .map(|e| e["part"].as_u64().expect("part number"))
        .collect();
    assert!(done_before.len() >= 5);
    assert_eq!(first.events[0]["event"], "started");
    // The same command again resumes.
    let second = Run::of(&mut h.upload(&file, "big.bin", &["--progress", "json", "--sequential"]))
        .expect_code(0);
    let started = second.event("started");
    let completed = second.event("completed");
    let reused = completed["parts_reused"].as_u64().unwrap();
    assert!(
        reused >= done_before.len() as u64,
        "{reused} parts reused, {} were acknowledged before the kill",
        done_before.len()
    );
    assert_eq!(started["parts_reused"], completed["parts_reused"]);
    assert_eq!(
        completed["bytes_reused"].as_u64().unwrap() + completed["bytes_sent"].as_u64().unwrap(),
        8 << 20
    );
    // Parts acknowledged before the kill are not sent again.
    for event in second.events().iter().filter(|e| e["event"] == "part_done") {
        assert!(
            !done_before.contains(&event["part"].as_u64().unwrap()),
            "part {} was sent twice",
            event["part"]
        );
    }
    h.assert_object_is("big.bin", &file);
    assert!(h.open_uploads().is_empty(), "no upload left open");
}

fn interrupted_upload_keeps_its_checkpoint_and_prints_how_to_resume(
    signal: &'static str,
    name: &str,
) {
    let h = Harness::start();
    let file = h.file("big.bin", 8 << 20, 2);
    let first = run_until_parts_done(
        h.upload(&file, "big.bin", &["--progress", "json", "--sequential"]),
        3,
        Stop::Signal(signal),
    );
    assert_eq!(first.status.code(), Some(130), "{}", first.stderr);
    assert!(
        first.stderr.contains(&format!("interrupted by {name}")),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("the checkpoint is kept"),
        "{}",
        first.stderr
    );
    assert_eq!(
        first.events.last().expect("events")["event"],
        "cancelled",
        "the last JSON event says the run was cancelled"
    );
    let command = first.events.last().unwrap()["resume_command"]
        .as_str()
        .expect("a resume command")
        .to_owned();
    assert!(
        first.stderr.contains(&format!("resume with: {command}")),
        "{}",
        first.stderr
    );
    assert!(
        std::fs::read_dir(h.default_checkpoint_dir())
            .unwrap()
            .count()
            > 0,
        "a checkpoint is in the default directory"
    );
    assert_eq!(h.open_uploads().len(), 1, "the multipart upload is kept");

    // The printed command, pasted into a shell, resumes.
    let mut sh = Command::new("sh");
    sh.arg("-c").arg(&command).current_dir(h.dir.path());
    for (key, value) in h.ossup().get_envs() {
        match value {
            Some(value) => sh.env(key, value),
            None => sh.env_remove(key),
        };
    }
    let second = Run::of(&mut sh).expect_code(0);
    let completed = second.event("completed");
    assert!(
        completed["parts_reused"].as_u64().unwrap() >= 3,
        "{}",
        second.stdout
    );
    h.assert_object_is("big.bin", &file);
    assert!(h.open_uploads().is_empty());
    assert_eq!(
        std::fs::read_dir(h.default_checkpoint_dir())
            .unwrap()
            .filter(|e| !e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".lock"))
            .count(),
        0,
        "the completed upload removed its checkpoint"
    );
}

#[test]
fn ctrl_c_exits_130_keeps_the_checkpoint_and_the_printed_command_resumes() {
    interrupted_upload_keeps_its_checkpoint_and_prints_how_to_resume("INT", "Ctrl-C");
}

#[test]
fn sigterm_exits_130_keeps_the_checkpoint_and_the_printed_command_resumes() {
    interrupted_upload_keeps_its_checkpoint_and_prints_how_to_resume("TERM", "SIGTERM");
}

#[test]
fn an_interrupt_without_a_checkpoint_aborts_the_multipart_upload() {
    let h = Harness::start();
    let file = h.file("big.bin", 8 << 20, 3);
    let first = run_until_parts_done(
        h.upload(
            &file,
            "big.bin",
            &["--progress", "json", "--sequential", "--no-checkpoint"],
        ),
        2,
        Stop::Signal("INT"),
    );
    assert_eq!(first.status.code(), Some(130), "{}", first.stderr);
    assert!(first.stderr.contains("--no-checkpoint"), "{}", first.stderr);
    assert!(
        h.open_uploads().is_empty(),
        "the multipart upload was aborted"
    );
}

#[test]
fn an_upload_killed_with_a_sqlite_checkpoint_resumes_from_the_database() {
    let h = Harness::start();
    let file = h.file("big.bin", 8 << 20, 4);
    let db = h.dir.path().join("checkpoints.db");
    let db = db.to_str().unwrap();
    let args = ["--progress", "json", "--sequential", "--checkpoint-db", db];
    let first = run_until_parts_done(h.upload(&file, "big.bin", &args), 4, Stop::Kill);
    assert_eq!(first.status.code(), None, "killed by a signal");
    let second = Run::of(&mut h.upload(&file, "big.bin", &args)).expect_code(0);
    let completed = second.event("completed");
    assert!(
        completed["parts_reused"].as_u64().unwrap() >= 4,
        "{}",
        second.stdout
    );
    h.assert_object_is("big.bin", &file);
    assert!(
        !h.default_checkpoint_dir().exists(),
        "the database, not the default directory, held the checkpoint"
    );
}

#[test]
fn an_upload_killed_whose_checkpoint_was_lost_resumes_from_the_server() {
    let h = Harness::start();
    let file = h.file("big.bin", 8 << 20, 5);
    let checkpoints = h.dir.path().join("checkpoints");
    let dir = checkpoints.to_str().unwrap();
    let args = [
        "--progress",
        "json",
        "--sequential",
        "--checkpoint-dir",
        dir,
    ];
    let first = run_until_parts_done(h.upload(&file, "big.bin", &args), 5, Stop::Kill);
    assert_eq!(first.status.code(), None, "killed by a signal");
    let done_before = first
        .events
        .iter()
        .filter(|e| e["event"] == "part_done")
        .count() as u64;
    let open = h.open_uploads();
    assert_eq!(open.len(), 1, "the killed run's upload is open");

    // The checkpoint is lost: the directory is gone, and comes back empty.
    std::fs::remove_dir_all(&checkpoints).unwrap();
    std::fs::create_dir(&checkpoints).unwrap();

    let mut again = args.to_vec();
    again.push("--resume-from-server");
    let second = Run::of(&mut h.upload(&file, "big.bin", &again)).expect_code(0);
    let adopted = second.event("notice");
    assert_eq!(adopted["notice"], "upload_adopted", "{}", second.stdout);
    assert!(
        adopted["message"].as_str().unwrap().contains(&open[0].1),
        "{adopted}"
    );
    let started = second.event("started");
    assert_eq!(started["upload_id"], open[0].1.as_str());
    let completed = second.event("completed");
    let bytes_reused = completed["bytes_reused"].as_u64().unwrap();
    assert!(
        bytes_reused >= done_before * 100 * 1024,
        "{bytes_reused} bytes reused, {done_before} parts were acknowledged before the kill"
    );
    assert_eq!(started["bytes_reused"], completed["bytes_reused"]);
    assert_eq!(
        bytes_reused + completed["bytes_sent"].as_u64().unwrap(),
        8 << 20
    );
    h.assert_object_is("big.bin", &file);
    assert!(h.open_uploads().is_empty(), "no upload left open");
}

#[test]
fn a_file_changed_during_the_upload_fails_it_instead_of_completing_a_wrong_object() {
    let h = Harness::start();
    let file = h.file("big.bin", 8 << 20, 5);
    let first = run_until_parts_done(
        h.upload(&file, "big.bin", &["--progress", "json", "--sequential"]),
        3,
        Stop::AppendTo(file.clone()),
    );
    assert_eq!(first.status.code(), Some(1), "{}", first.stderr);
    assert!(
        first.stderr.contains("big.bin changed during the upload"),
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("run the same command again"),
        "{}",
        first.stderr
    );
    assert_eq!(first.events.last().unwrap()["event"], "error");
    let client = h.client();
    assert!(
        h.block_on(client.head_object(crate::harness::BUCKET, "big.bin"))
            .unwrap()
            .is_none(),
        "no object was completed from a file that changed under it"
    );

    // Run again: the changed file is noticed, the old upload aborted, and the new content uploaded.
    let second = Run::of(&mut h.upload(&file, "big.bin", &["--progress", "json"])).expect_code(0);
    assert_eq!(second.event("notice")["notice"], "source_changed");
    h.assert_object_is("big.bin", &file);
    assert!(h.open_uploads().is_empty());
}
