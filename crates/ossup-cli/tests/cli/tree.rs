//! `ossup upload DIR oss://BUCKET/PREFIX/ --recursive`: a tree uploaded, killed and run again, an
//! edited file, filters, a report that names every file's fate, and the exit status.

use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use crate::harness::{BUCKET, Harness, Run};

/// Writes a tree of `small` small files and `large` multipart ones (at 100 KiB parts), plus an
/// excluded log file; returns the relative paths of the files to upload.
fn write_tree(root: &Path, small: usize, large: usize) -> Vec<String> {
    let mut relatives = Vec::new();
    for i in 0..small {
        relatives.push((format!("docs/{}/note{i}.txt", i % 4), 500 + i * 13));
    }
    for i in 0..large {
        relatives.push((format!("media/clip{i}.bin"), 350 * 1024 + i * 999));
    }
    for (i, (relative, size)) in relatives.iter().enumerate() {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, ossup_test_support::data(*size, i as u64)).unwrap();
    }
    std::fs::write(root.join("docs/debug.log"), b"not for the bucket").unwrap();
    std::fs::create_dir_all(root.join("empty/deeper")).unwrap();
    relatives.into_iter().map(|(r, _)| r).collect()
}

fn tree_upload(h: &Harness, root: &Path, report: &Path) -> Command {
    let mut cmd = h.ossup();
    cmd.arg("upload")
        .arg(root)
        .arg(format!("oss://{BUCKET}/site/"))
        .args(["--recursive", "--exclude", "*.log", "--part-size", "100KiB"])
        .args(["--parallel", "3", "--progress", "json"])
        .arg("--report")
        .arg(report);
    cmd
}

/// Starts `cmd` (a tree upload with `--progress json`) and returns once it has reported `files`
/// file results (or ended sooner), with the rest of its standard output still to read.
fn start_until_files_done(
    cmd: &mut Command,
    files: usize,
) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut done = 0;
    while done < files {
        let Some(line) = lines.next() else { break };
        let event: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        if event["event"] == "file" {
            done += 1;
        }
    }
    (child, lines)
}

fn report_lines(report: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(report)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn statuses(lines: &[serde_json::Value], status: &str) -> Vec<String> {
    let mut keys: Vec<String> = lines
        .iter()
        .filter(|l| l["status"] == status)
        .map(|l| l["key"].as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    keys
}

#[test]
fn a_tree_killed_run_again_and_edited_ends_with_exactly_the_right_objects() {
    let h = Harness::start();
    let root = h.dir.path().join("tree");
    let relatives = write_tree(&root, 40, 3);
    let report = h.dir.path().join("report.jsonl");
    let all_keys = {
        let mut keys: Vec<String> = relatives.iter().map(|r| format!("site/{r}")).collect();
        keys.sort();
        keys
    };

    // First run, killed with -9 once ten files are done.
    let (mut child, _lines) =
        start_until_files_done(tree_upload(&h, &root, &report).stderr(Stdio::null()), 10);
    child.kill().unwrap();
    child.wait().unwrap();

    // Second run: everything ends in the bucket; what the first run finished is skipped.
    Run::of(&mut tree_upload(&h, &root, &report)).expect_code(0);
    let lines = report_lines(&report);
    assert_eq!(lines.len(), relatives.len(), "one report line per file");
    let skipped = statuses(&lines, "skipped");
    assert!(skipped.len() >= 10, "{} skipped", skipped.len());
    let mut fates = skipped.clone();
    fates.extend(statuses(&lines, "uploaded"));
    fates.sort();
    assert_eq!(fates, all_keys);
    for line in &lines {
        assert!(
            line["path"]
                .as_str()
                .unwrap()
                .starts_with(root.to_str().unwrap())
        );
        if line["status"] == "skipped" {
            assert_eq!(line["bytes_sent"], 0);
        }
    }
    for relative in &relatives {
        h.assert_object_is(&format!("site/{relative}"), &root.join(relative));
    }
    let client = h.client();
    let listed = h.block_on(client.list_objects(BUCKET, "")).unwrap();
    assert!(
        listed.iter().all(|o| !o.key.ends_with(".log")),
        "an excluded file was uploaded"
    );
    assert_eq!(listed.len(), relatives.len());
    assert!(h.open_uploads().is_empty());

    // Third run after one edit: exactly that file is sent.
    let edited = root.join(&relatives[5]);
    std::fs::write(&edited, b"a new version of this note").unwrap();
    let out = Run::of(&mut tree_upload(&h, &root, &report)).expect_code(0);
    let lines = report_lines(&report);
    assert_eq!(
        statuses(&lines, "uploaded"),
        [format!("site/{}", relatives[5])]
    );
    assert_eq!(statuses(&lines, "skipped").len(), relatives.len() - 1);
    h.assert_object_is(&format!("site/{}", relatives[5]), &edited);
    let stdout = &out.stdout;
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["uploaded"], 1);
}

#[cfg(unix)]
#[test]
fn a_file_that_cannot_be_a_key_fails_alone_with_exit_status_1() {
    use std::os::unix::ffi::OsStrExt as _;
    let h = Harness::start();
    let root = h.dir.path().join("tree");
    let relatives = write_tree(&root, 5, 0);
    let bad: PathBuf = root.join(std::ffi::OsStr::from_bytes(b"bad\xffname.txt"));
    std::fs::write(&bad, b"x").unwrap();
    let report = h.dir.path().join("report.jsonl");

    let out = tree_upload(&h, &root, &report).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 of 6 files failed"), "{stderr}");
    let lines = report_lines(&report);
    let failed: Vec<_> = lines.iter().filter(|l| l["status"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    let message = failed[0]["error"]["message"].as_str().unwrap();
    assert!(message.contains("not valid UTF-8"), "{message}");
    assert_eq!(statuses(&lines, "uploaded").len(), relatives.len());
}

#[test]
fn tree_flags_without_recursive_and_a_file_as_the_tree_are_usage_errors() {
    let h = Harness::start();
    let file = h.file("one.txt", 10, 1);
    let out = h
        .ossup()
        .args([
            "upload",
            "one.txt",
            &format!("oss://{BUCKET}/k"),
            "--exclude",
            "*.log",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = h
        .ossup()
        .arg("upload")
        .arg(&file)
        .arg(format!("oss://{BUCKET}/p/"))
        .arg("--recursive")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a directory"));

    let dir = h.dir.path().join("d");
    std::fs::create_dir_all(&dir).unwrap();
    let out = h
        .ossup()
        .arg("upload")
        .arg(&dir)
        .arg(format!("oss://{BUCKET}/k"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--recursive"));
}

#[test]
fn ctrl_c_stops_a_tree_with_exit_status_130_and_the_same_command_finishes_it() {
    let h = Harness::start();
    let root = h.dir.path().join("tree");
    let relatives = write_tree(&root, 30, 4);
    let report = h.dir.path().join("report.jsonl");
    // One file's start answers half a minute late, so the tree cannot end before the interrupt however
    // fast the machine; the rest goes on around it (one Initiate holds one file, not the budget).
    h.set_faults(
        r#"[{"api": "InitiateMultipartUpload", "key_prefix": "site/media/clip0.bin",
             "action": {"kind": "delay", "ms": 30000}}]"#,
    );

    let (child, mut lines) =
        start_until_files_done(tree_upload(&h, &root, &report).stderr(Stdio::piped()), 5);
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    for _ in lines.by_ref() {}
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interrupted by"), "{stderr}");
    assert!(stderr.contains("resume with: "), "{stderr}");

    h.set_faults("[]");
    Run::of(&mut tree_upload(&h, &root, &report)).expect_code(0);
    for relative in &relatives {
        h.assert_object_is(&format!("site/{relative}"), &root.join(relative));
    }
    assert!(h.open_uploads().is_empty());
}
