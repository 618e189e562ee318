//! The checks of a tree iteration: what each run's `"event":"file"` lines, summary and report say
//! against the tree as it is, and after the last run the bucket against the tree, object by object.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use super::mock::BUCKET;
use super::plan::Store;
use super::run::{End, Run};
use super::verify::{Digest, Net, check_object, checkpoint_files, list_checkpoints};

/// The one file a checkpoint directory keeps once every upload is done: the files' digests, which
/// spare the next run reading unchanged files.
const DIGEST_FILE: &str = "digests.jsonl";

/// What the bucket must end up holding: every file the upload takes, by key, as it is now.
#[derive(Debug, Default)]
pub(super) struct Expected {
    files: BTreeMap<String, ExpectedFile>,
    left_out: BTreeSet<String>,
}

/// One file the upload takes.
#[derive(Debug)]
struct ExpectedFile {
    /// The path `ossup` prints for it.
    path: String,
    /// Its bytes now.
    digest: Digest,
    /// Whether the bucket may hold it as it is now: not until a run has started since it was
    /// written or last edited.
    may_be_held: bool,
    /// Whether a run has said the bucket holds it as it is now (uploaded or skipped since the
    /// last edit).
    confirmed: bool,
}

impl Expected {
    /// A file the upload takes, as first written.
    pub(super) fn add(&mut self, key: String, path: String, digest: Digest) {
        let file = ExpectedFile {
            path,
            digest,
            may_be_held: false,
            confirmed: false,
        };
        self.files.insert(key, file);
    }

    /// A file `--exclude` leaves out, by the key it would have.
    pub(super) fn leave_out(&mut self, key: String) {
        self.left_out.insert(key);
    }

    /// The file of `key` was rewritten (with other bytes, or the same).
    pub(super) fn edited(&mut self, key: &str, digest: Digest) {
        if let Some(file) = self.files.get_mut(key)
            && file.digest != digest
        {
            file.digest = digest;
            file.may_be_held = false;
            file.confirmed = false;
        }
    }

    /// How many files the upload takes.
    pub(super) fn len(&self) -> usize {
        self.files.len()
    }

    /// Bytes of the files as they are now.
    pub(super) fn bytes(&self) -> u64 {
        self.files.values().map(|f| f.digest.size).sum()
    }

    /// A run starts: returns the keys the bucket may hold as they are now, then counts this run
    /// as one that may upload every file.
    pub(super) fn start_run(&mut self) -> BTreeSet<String> {
        let held = self
            .files
            .iter()
            .filter(|(_, f)| f.may_be_held)
            .map(|(k, _)| k.clone())
            .collect();
        for file in self.files.values_mut() {
            file.may_be_held = true;
        }
        held
    }

    /// Each file on disk still has the bytes the harness wrote: a check of the harness itself.
    pub(super) fn check_disk(&self, root: &Path, prefix: &str) -> Vec<String> {
        let mut failures = Vec::new();
        for (key, file) in &self.files {
            let rel = key.strip_prefix(prefix).unwrap_or(key);
            match std::fs::read(root.join(rel)) {
                Ok(bytes) if Digest::of(&bytes) == file.digest => {}
                Ok(_) => failures.push(format!("harness: {rel} on disk is not what was written")),
                Err(e) => failures.push(format!("harness: cannot read {rel}: {e}")),
            }
        }
        failures
    }
}

/// What one run's lines came to.
#[derive(Debug, Default)]
pub(super) struct RunFindings {
    /// Each failed check, in words.
    pub failures: Vec<String>,
    /// File results by status.
    pub uploaded: u64,
    /// See [`RunFindings::uploaded`].
    pub skipped: u64,
    /// See [`RunFindings::uploaded`].
    pub failed: u64,
    /// Files uploaded although an earlier run had said the bucket holds them as they are.
    pub uploaded_again: u64,
    /// Why files failed, one message per failed file.
    pub file_errors: Vec<String>,
    /// Bytes the file lines say were sent.
    pub bytes_sent: u64,
    /// Notices (a checkpoint whose file changed, an upload the server forgot, ...).
    pub notices: u64,
    /// The file lines by key.
    pub lines: BTreeMap<String, Value>,
}

/// The checks on one run: its stdout is JSON objects; each `"event":"file"` line names a file the
/// upload takes, once, by its key and path, with its byte counts adding up to the file's size; a
/// file is `skipped` only if the bucket can hold it as it is now (not in the first run after it
/// was written or edited). A run that ended by itself also has a summary that agrees with its lines
/// and names every file, a report with the same lines, and exit status 0 exactly when no file
/// failed. `held` is what [`Expected::start_run`] returned for this run; `report` the report's
/// text when the run ended by itself.
pub(super) fn check_run(
    expected: &mut Expected,
    held: &BTreeSet<String>,
    run: &Run,
    report: Option<&str>,
    index: usize,
) -> RunFindings {
    let mut found = RunFindings::default();
    for line in &run.stray_lines {
        found.failures.push(format!(
            "run {index} printed a line that is not a JSON object on stdout: {line:?}"
        ));
    }
    let mut file_lines = Vec::new();
    let mut summary = None;
    for event in &run.events {
        match event["event"].as_str() {
            Some("file") => {
                check_file_line(expected, held, event, index, &mut found);
                file_lines.push(event);
            }
            Some("summary") => summary = Some(event),
            Some("notice") => found.notices += 1,
            Some(_) => {}
            None => found.failures.push(format!(
                "run {index} printed a line without an event: {event}"
            )),
        }
    }
    let Some(report) = report else {
        return found;
    };
    let missing: Vec<&String> = expected
        .files
        .keys()
        .filter(|k| !found.lines.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        found.failures.push(format!(
            "run {index} ended by itself ({:?}) without a result for {} files, among them {:?}",
            run.end,
            missing.len(),
            &missing[..missing.len().min(3)]
        ));
    }
    match summary {
        Some(summary) => check_summary(summary, &found, expected.len(), index),
        None => vec![format!(
            "run {index} ended by itself without a summary line"
        )],
    }
    .into_iter()
    .for_each(|f| found.failures.push(f));
    match (&run.end, found.failed) {
        (End::Exited(0), 0) => {}
        (End::Exited(1), failed) if failed > 0 => {}
        (end, failed) => found.failures.push(format!(
            "run {index} ended {end:?} with {failed} failed files; the exit status is 0 exactly when no file failed"
        )),
    }
    let reported: Vec<Result<Value, String>> = report
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{e}: {l:?}")))
        .collect();
    let printed: Vec<Value> = file_lines
        .iter()
        .map(|event| {
            let mut line = (*event).clone();
            if let Some(object) = line.as_object_mut() {
                object.remove("event");
            }
            line
        })
        .collect();
    if let Some(Err(e)) = reported.iter().find(|r| r.is_err()) {
        found.failures.push(format!(
            "run {index}'s report has a line that is not JSON: {e}"
        ));
    } else if reported.into_iter().flatten().collect::<Vec<_>>() != printed {
        found.failures.push(format!(
            "run {index}'s report ({} lines) is not its {} file lines without `event`",
            report.lines().count(),
            printed.len()
        ));
    }
    found
}

fn check_file_line(
    expected: &mut Expected,
    held: &BTreeSet<String>,
    event: &Value,
    index: usize,
    found: &mut RunFindings,
) {
    let key = event["key"].as_str().unwrap_or_default().to_owned();
    let status = event["status"].as_str().unwrap_or_default();
    let (sent, reused) = (
        event["bytes_sent"].as_u64().unwrap_or(u64::MAX),
        event["bytes_reused"].as_u64().unwrap_or(u64::MAX),
    );
    let mut fail = |what: String| found.failures.push(format!("run {index}: {what}: {event}"));
    if found.lines.insert(key.clone(), event.clone()).is_some() {
        fail(format!("a second result for {key:?}"));
    }
    let Some(file) = expected.files.get_mut(&key) else {
        if expected.left_out.contains(&key) {
            fail(format!(
                "{key:?} has a result, but `--exclude '*.log'` leaves it out"
            ));
        } else {
            fail(format!("{key:?} is no file of the tree"));
        }
        return;
    };
    if event["path"].as_str() != Some(file.path.as_str()) {
        fail(format!("the path of {key:?} is not {:?}", file.path));
    }
    let size = file.digest.size;
    match status {
        "uploaded" => {
            found.uploaded += 1;
            found.bytes_sent += sent;
            if sent.checked_add(reused) != Some(size) {
                fail(format!(
                    "{key:?} was uploaded with {sent} bytes sent and {reused} reused; the file has {size}"
                ));
            }
            if file.confirmed {
                found.uploaded_again += 1;
            }
            file.confirmed = true;
        }
        "skipped" => {
            found.skipped += 1;
            found.bytes_sent += sent;
            if sent != 0 || reused != size {
                fail(format!(
                    "{key:?} was skipped with {sent} bytes sent and {reused} reused; the file has {size}"
                ));
            }
            if !held.contains(&key) {
                fail(format!(
                    "STALE OBJECT KEPT: {key:?} was skipped, but the bucket cannot hold it as it is: it was written or edited after the last run started"
                ));
            }
            file.confirmed = true;
        }
        "failed" => {
            found.failed += 1;
            match event["error"]["message"].as_str() {
                Some(message) => found.file_errors.push(message.to_owned()),
                None => fail(format!("{key:?} failed without an error message")),
            }
        }
        other => fail(format!("{key:?} has the status {other:?}")),
    }
}

/// The summary line agrees with the file lines and counts every file of the tree.
fn check_summary(summary: &Value, found: &RunFindings, files: usize, index: usize) -> Vec<String> {
    let reused: u64 = found
        .lines
        .values()
        .filter_map(|l| l["bytes_reused"].as_u64())
        .sum();
    let want = [
        ("files", files as u64),
        ("uploaded", found.uploaded),
        ("skipped", found.skipped),
        ("failed", found.failed),
        ("bytes_sent", found.bytes_sent),
        ("bytes_reused", reused),
    ];
    want.iter()
        .filter(|(field, n)| summary[*field].as_u64() != Some(*n))
        .map(|(field, n)| {
            format!(
                "run {index}'s summary says {field} {}, its file lines {n}: {summary}",
                summary[*field]
            )
        })
        .collect()
}

/// What the final checks found.
#[derive(Debug, Default)]
pub(super) struct BucketFindings {
    /// Each failed check, in words.
    pub failures: Vec<String>,
    /// Checkpoints left of files the last run skipped, whose multipart upload is not open: see
    /// [`check_checkpoints`].
    pub stale_checkpoints: u64,
}

/// The final checks, with the fault rules cleared: the objects ([`check_objects`]), the last
/// run's results (`lines`) agree with them ([`check_results`]), and the checkpoints
/// ([`check_checkpoints`]).
pub(super) fn check_bucket(
    net: &Net,
    endpoint: &str,
    expected: &Expected,
    prefix: &str,
    lines: &BTreeMap<String, Value>,
    checkpoints: (Store, &Path),
) -> BucketFindings {
    let (mut failures, open) = check_objects(net, endpoint, expected, prefix);
    failures.extend(check_results(expected, lines, "the last run"));
    let mut stale_checkpoints = 0;
    let (store, location) = checkpoints;
    match net.block_on(check_checkpoints(store, location, lines, &open)) {
        Ok(stale) => stale_checkpoints = stale,
        Err(e) => failures.extend(e),
    }
    BucketFindings {
        failures,
        stale_checkpoints,
    }
}

/// Under the prefix the bucket holds exactly one object per file the upload takes (every page
/// listed), with the file's bytes (GetObject: size, MD5, CRC-64); nothing outside the prefix; no
/// multipart upload open in the bucket. Returns the failures and the keys of open uploads.
pub(super) fn check_objects(
    net: &Net,
    endpoint: &str,
    expected: &Expected,
    prefix: &str,
) -> (Vec<String>, BTreeSet<String>) {
    let mut failures = Vec::new();
    let mut open = BTreeSet::new();
    let client = match net.client(endpoint) {
        Ok(client) => client,
        Err(e) => return (vec![e], open),
    };
    net.block_on(async {
        let listed = match client.list_objects(BUCKET, "").await {
            Ok(listed) => listed,
            Err(e) => {
                failures.push(format!("ListObjects failed: {e}"));
                Vec::new()
            }
        };
        let mut objects = BTreeMap::new();
        for object in listed {
            if !object.key.starts_with(prefix) {
                failures.push(format!("an object outside the prefix: {:?}", object.key));
            } else if expected.left_out.contains(&object.key) {
                failures.push(format!(
                    "{:?} is in the bucket, but `--exclude '*.log'` leaves it out",
                    object.key
                ));
            } else if !expected.files.contains_key(&object.key) {
                failures.push(format!("an object no file has: {:?}", object.key));
            }
            objects.insert(object.key, object.size);
        }
        for (key, file) in &expected.files {
            let Some(&size) = objects.get(key) else {
                failures.push(format!("LOST FILE: no object {key:?} for {}", file.path));
                continue;
            };
            if size != file.digest.size {
                failures.push(format!(
                    "the listing says {key:?} has {size} bytes; the file has {}",
                    file.digest.size
                ));
            }
            if let Err(e) = check_object(&client, key, &file.digest).await {
                failures.push(format!("{key:?}: {e}"));
            }
        }
        match client.list_multipart_uploads(BUCKET, None).await {
            Ok(uploads) => {
                for upload in uploads {
                    failures.push(format!(
                        "multipart upload {} of {:?} was left open",
                        upload.upload_id, upload.key
                    ));
                    open.insert(upload.key);
                }
            }
            Err(e) => failures.push(format!("ListMultipartUploads failed: {e}")),
        }
    });
    (failures, open)
}

/// A run that ended by itself (`whose`, such as "the last run") agrees with the bucket: it has a
/// result for every file the upload takes, and each is `uploaded` or `skipped`.
pub(super) fn check_results(
    expected: &Expected,
    lines: &BTreeMap<String, Value>,
    whose: &str,
) -> Vec<String> {
    let mut failures = Vec::new();
    for key in expected.files.keys() {
        match lines.get(key) {
            None => failures.push(format!("{whose} has no result for {key:?}")),
            Some(line) if !matches!(line["status"].as_str(), Some("uploaded" | "skipped")) => {
                failures.push(format!("{whose}'s result for {key:?} is {line}"));
            }
            Some(_) => {}
        }
    }
    failures
}

/// No checkpoint is left, and a checkpoint directory holds nothing but the digests, with one
/// exception, counted (the count is returned) rather than failed: a file whose multipart upload
/// completed in a run killed before it removed the checkpoint is skipped by content in the next
/// runs, and `ossup` never looks at (nor removes) its checkpoint again. The checkpoint names no
/// open upload and misleads nothing, but it stays: the summary shows how often. Any other
/// checkpoint, or a file that none explains, is a failure.
async fn check_checkpoints(
    store: Store,
    location: &Path,
    lines: &BTreeMap<String, Value>,
    open: &BTreeSet<String>,
) -> Result<u64, Vec<String>> {
    let mut failures = Vec::new();
    let mut explained = vec![DIGEST_FILE.to_owned()];
    let mut stale = 0;
    for identity in list_checkpoints(store, location)
        .await
        .map_err(|e| vec![e])?
    {
        let skipped = lines
            .get(&identity.key)
            .is_some_and(|line| line["status"] == "skipped");
        if skipped && !open.contains(&identity.key) {
            stale += 1;
            explained.push(identity.fingerprint());
            explained.push(format!("{}.lock", identity.fingerprint()));
        } else {
            failures.push(format!(
                "a checkpoint was left behind in {} for {:?} (the last run's result: {})",
                location.display(),
                identity.key,
                lines
                    .get(&identity.key)
                    .map_or("none".to_owned(), Value::to_string)
            ));
        }
    }
    let unexplained: Vec<String> = checkpoint_files(store, location)
        .into_iter()
        .filter(|name| !explained.contains(name))
        .collect();
    if !unexplained.is_empty() {
        failures.push(format!(
            "checkpoint files left in {}: {}",
            location.display(),
            unexplained.join(", ")
        ));
    }
    if failures.is_empty() {
        Ok(stale)
    } else {
        Err(failures)
    }
}

/// The run after the last, with nothing changed and no faults: every file `skipped`, nothing sent
/// (by its lines, and by the server, whose counters `before` and `after` are from either side of
/// it).
pub(super) fn check_quiet_run(
    run: &Run,
    found: &RunFindings,
    files: usize,
    before: &Value,
    after: &Value,
) -> Vec<String> {
    let mut failures = Vec::new();
    if run.end != End::Exited(0) {
        failures.push(format!(
            "the run with nothing changed ended {:?}: {}",
            run.end, run.stderr_tail
        ));
    }
    if found.skipped != files as u64 || found.uploaded != 0 || found.failed != 0 {
        failures.push(format!(
            "the run with nothing changed skipped {} of {files} files, uploaded {} and failed {}",
            found.skipped, found.uploaded, found.failed
        ));
    }
    if found.bytes_sent != 0 {
        failures.push(format!(
            "the run with nothing changed says it sent {} bytes",
            found.bytes_sent
        ));
    }
    let received_by = |stats: &Value| stats["bytes_received"].as_u64().unwrap_or(0);
    let received = received_by(after).saturating_sub(received_by(before));
    if received != 0 {
        failures.push(format!(
            "the server read {received} body bytes during the run with nothing changed"
        ));
    }
    for api in [
        "PutObject",
        "InitiateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
    ] {
        let count = |stats: &Value| stats["requests"][api].as_u64().unwrap_or(0);
        if count(after) != count(before) {
            failures.push(format!(
                "the run with nothing changed made {} {api} requests",
                count(after).saturating_sub(count(before))
            ));
        }
    }
    failures
}

/// What one cooperating worker's last run said of the tree.
#[derive(Debug, Default)]
pub(super) struct WorkerFindings {
    /// Each failed check, in words.
    pub failures: Vec<String>,
    /// Files it uploaded (or completed).
    pub uploaded: u64,
    /// Files it skipped, for whatever reason.
    pub skipped: u64,
    /// Of those, files another worker had put (`uploaded_by_another_worker`).
    pub by_another: u64,
    /// The keys it skipped.
    pub skipped_keys: BTreeSet<String>,
}

/// The skip reasons a run may give (`same_etag`, `same_crc64`, and in a cooperating tree
/// `uploaded_by_another_worker`).
const SKIP_REASONS: &[&str] = &["same_etag", "same_crc64", "uploaded_by_another_worker"];

/// The checks on the last run of one cooperating worker (`whose`), which exited 0: its `events`
/// (the JSON lines it printed) hold one `file` result per file the upload takes and none for a
/// file left out, each `uploaded` or `skipped` with a known reason, and a summary that counts
/// every file and no failure; its report (`report`, the text of its `--report` file) is its
/// `file` lines without `event`.
pub(super) fn check_worker_run(
    expected: &Expected,
    events: &[Value],
    report: &str,
    whose: &str,
) -> WorkerFindings {
    let mut found = WorkerFindings::default();
    let mut lines = BTreeMap::new();
    let mut printed = Vec::new();
    let mut summary = None;
    for event in events {
        match event["event"].as_str() {
            Some("file") => {
                let key = event["key"].as_str().unwrap_or_default().to_owned();
                if expected.left_out.contains(&key) {
                    found.failures.push(format!(
                        "{whose} has a result for {key:?}, but `--exclude '*.log'` leaves it out"
                    ));
                } else if !expected.files.contains_key(&key) {
                    found.failures.push(format!(
                        "{whose} has a result for {key:?}, no file of the tree"
                    ));
                }
                match (event["status"].as_str(), event["reason"].as_str()) {
                    (Some("uploaded"), _) => found.uploaded += 1,
                    (Some("skipped"), Some(reason)) if SKIP_REASONS.contains(&reason) => {
                        found.skipped += 1;
                        found.skipped_keys.insert(key.clone());
                        found.by_another += u64::from(reason == "uploaded_by_another_worker");
                    }
                    _ => found
                        .failures
                        .push(format!("{whose}'s result for {key:?} is {event}")),
                }
                let mut line = event.clone();
                if let Some(object) = line.as_object_mut() {
                    object.remove("event");
                }
                printed.push(line);
                if lines.insert(key.clone(), event.clone()).is_some() {
                    found
                        .failures
                        .push(format!("{whose} has a second result for {key:?}"));
                }
            }
            Some("summary") => summary = Some(event),
            Some(_) => {}
            None => found
                .failures
                .push(format!("{whose} printed a line without an event: {event}")),
        }
    }
    found
        .failures
        .extend(check_results(expected, &lines, whose));
    match summary {
        Some(summary)
            if summary["files"].as_u64() == Some(expected.len() as u64)
                && summary["failed"].as_u64() == Some(0)
                && summary["uploaded"].as_u64() == Some(found.uploaded)
                && summary["skipped"].as_u64() == Some(found.skipped) => {}
        Some(summary) => found.failures.push(format!(
            "{whose}'s summary does not count {} files, {} uploaded, {} skipped and none failed: {summary}",
            expected.len(),
            found.uploaded,
            found.skipped
        )),
        None => found
            .failures
            .push(format!("{whose} exited 0 without a summary line")),
    }
    let reported: Result<Vec<Value>, String> = report
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{e}: {l:?}")))
        .collect();
    match reported {
        Err(e) => found
            .failures
            .push(format!("{whose}'s report has a line that is not JSON: {e}")),
        Ok(reported) if reported != printed => found.failures.push(format!(
            "{whose}'s report ({} lines) is not its {} file lines without `event`",
            reported.len(),
            printed.len()
        )),
        Ok(_) => {}
    }
    found
}
