//! The checks after a fleet iteration: the object is the file, no multipart upload is open, the
//! shared store holds no row, and no part was sent more often than retries and expired (or
//! released) leases explain.
//!
//! The sends are counted from two logs: the mock's (`RUST_LOG=oss_mock=debug`: one `request` line
//! per request it routes, with the upload id and the part number), appended across its kills; and
//! each worker's (`RUST_LOG=ossup=debug`: each request's answer or failure in a span naming the
//! part, and each batch of parts claimed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ossup_test_support::postgres::PgCluster;

use ossup::CheckpointStore;
use ossup::store::Cooperation;
use ossup_sqlite::SqliteStore;

use super::mock::BUCKET;
use super::plan::Rule;
use super::verify::{Digest, Net, check_object};

/// The object's bytes, and the multipart uploads left open for its key.
pub(super) fn object_and_uploads(
    net: &Net,
    endpoint: &str,
    key: &str,
    source: &Digest,
) -> Vec<String> {
    let mut failures = Vec::new();
    let client = match net.client(endpoint) {
        Ok(client) => client,
        Err(e) => return vec![e],
    };
    net.block_on(async {
        if let Err(e) = check_object(&client, key, source).await {
            failures.push(e);
        }
        match client.list_multipart_uploads(BUCKET, Some(key)).await {
            Ok(uploads) => {
                let open: Vec<String> = uploads
                    .into_iter()
                    .filter(|u| u.key == key)
                    .map(|u| u.upload_id)
                    .collect();
                if !open.is_empty() {
                    failures.push(format!("multipart uploads left open: {open:?}"));
                }
            }
            Err(e) => failures.push(format!("ListMultipartUploads failed: {e}")),
        }
    });
    failures
}

/// The PostgreSQL store's tables of the iteration's database hold no row: no checkpoint, part,
/// claim or completion left for the completed upload, and no file claim still held. Rows of
/// `file_claims` whose lease has expired stay by design (the record of a file put whole, or of a
/// claim released), so only live leases count.
pub(super) fn postgres_rows(cluster: &PgCluster, database: &str) -> Result<(), String> {
    let counts = cluster.psql(
        database,
        "SELECT (SELECT count(*) FROM ossup.uploads) || ' uploads, ' || \
                (SELECT count(*) FROM ossup.parts) || ' parts, ' || \
                (SELECT count(*) FROM ossup.claims) || ' claims, ' || \
                (SELECT count(*) FROM ossup.completions) || ' completions, ' || \
                (SELECT count(*) FROM ossup.file_claims WHERE expires_at > now()) \
                    || ' file claims held'",
    );
    if counts == "0 uploads, 0 parts, 0 claims, 0 completions, 0 file claims held" {
        Ok(())
    } else {
        Err(format!(
            "rows left in the PostgreSQL store ({database}): {counts}"
        ))
    }
}

/// What a shared store still holds once every worker is done.
#[derive(Debug, Default)]
pub(super) struct LeftInStore {
    /// The object keys of the uploads whose checkpoint is left.
    pub checkpoints: Vec<String>,
    /// Live claims on parts or completions (they belong to a checkpoint left).
    pub live_claims: u64,
    /// Live claims on whole files.
    pub live_file_claims: u64,
}

impl LeftInStore {
    fn is_empty(&self) -> bool {
        self.checkpoints.is_empty() && self.live_claims == 0 && self.live_file_claims == 0
    }
}

/// What the PostgreSQL store of the iteration's database still holds: the keys of its uploads
/// (`ossup.uploads`; parts, claims and completions go with them), and the live claims.
pub(super) fn postgres_left(cluster: &PgCluster, database: &str) -> Result<LeftInStore, String> {
    let keys = cluster.psql(
        database,
        "SELECT encode(object_key, 'hex') FROM ossup.uploads",
    );
    let checkpoints = keys
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|hex| {
            let bytes: Result<Vec<u8>, _> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
                .collect();
            bytes
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .map_err(|e| format!("an object key of {database} is not hex ({hex:?}): {e}"))
        })
        .collect::<Result<Vec<String>, String>>()?;
    let live = cluster.psql(
        database,
        "SELECT (SELECT count(*) FROM ossup.claims WHERE expires_at > now()) + \
                (SELECT count(*) FROM ossup.completions WHERE expires_at > now()) || ' ' || \
                (SELECT count(*) FROM ossup.file_claims WHERE expires_at > now())",
    );
    let mut counts = live.split_whitespace().map(str::parse::<u64>);
    match (counts.next(), counts.next()) {
        (Some(Ok(live_claims)), Some(Ok(live_file_claims))) => Ok(LeftInStore {
            checkpoints,
            live_claims,
            live_file_claims,
        }),
        _ => Err(format!(
            "cannot read the live claims of {database}: psql printed {live:?}"
        )),
    }
}

/// What the SQLite store still holds, through its own API: its checkpoints (`list`), live claims
/// on parts and completions (`claims`), and live claims on files of the bucket under `prefix`
/// (`file_claims`; expired and released ones stay by design, as with PostgreSQL).
pub(super) fn sqlite_left(net: &Net, path: &Path, prefix: &str) -> Result<LeftInStore, String> {
    net.block_on(async {
        let store = SqliteStore::open(path)
            .await
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let cannot =
            |e: ossup::StoreError| format!("cannot list what is left in {}: {e}", path.display());
        let checkpoints = store.list().await.map_err(cannot)?;
        let claims = store.claims().await.map_err(cannot)?;
        let files = store.file_claims(BUCKET, prefix).await.map_err(cannot)?;
        Ok(LeftInStore {
            checkpoints: checkpoints.into_iter().map(|c| c.key).collect(),
            live_claims: claims.len() as u64,
            live_file_claims: files.len() as u64,
        })
    })
}

/// The SQLite store holds no checkpoint, no live claim on a part or a completion, and no live claim
/// on a file under `prefix`.
pub(super) fn sqlite_rows(net: &Net, path: &Path, prefix: &str) -> Result<(), String> {
    let left = sqlite_left(net, path, prefix)?;
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "left in the SQLite store {}: checkpoints of {:?}, {} live claims, {} file claims held",
            path.display(),
            left.checkpoints,
            left.live_claims,
            left.live_file_claims
        ))
    }
}

/// Whether a rule that corrupts answers (`corrupt_etag`, `corrupt_crc`) matches `api`: a worker
/// may then reject a good answer and send again, which no bound on sends can tell from a bug.
pub(super) fn corrupts(rules: &[Rule], api: &str) -> bool {
    rules
        .iter()
        .any(|r| matches!(r.kind, "corrupt_etag" | "corrupt_crc") && (r.api == api || r.api == "*"))
}

/// How often the parts were sent, against the bound.
#[derive(Debug, Default)]
pub(super) struct Sends {
    /// UploadPart requests the server received.
    pub requests: u64,
    /// Requests beyond one per part of an upload that no failed attempt explains.
    pub resent: u64,
    /// What the bound allows for them: claims taken over after a lease expired or was released.
    pub allowed: u64,
    /// Parts over the bound that a corrupting fault rule excuses.
    pub excused: u64,
    /// Parts over the bound.
    pub failures: Vec<String>,
}

/// A part of one multipart upload: its upload id and part number.
type PartOf = (String, u64);

/// Counts, per part p of each multipart upload u: S, the UploadPart requests the server received
/// for it; F, the attempts for it that a worker's log shows failed (no answer, or an answer other
/// than 2xx); C, the claims on it that workers took while sending u. Each claim after the first is
/// granted only once the claim before it expired or was released (its worker died, or ended with
/// an error, or renewed too late), so the bound is
///
/// S(u, p) - F(u, p) <= 1 + (C(u, p) - 1)
///
/// (a fresh upload, after the server forgot one, has an id and claims of its own).
pub(super) fn part_sends(
    mock_log: &Path,
    worker_logs: &[PathBuf],
    rules: &[Rule],
) -> Result<Sends, String> {
    let mock = std::fs::read_to_string(mock_log)
        .map_err(|e| format!("cannot read {}: {e}", mock_log.display()))?;
    let mut received: BTreeMap<PartOf, u64> = BTreeMap::new();
    for line in mock.lines() {
        if !line.contains(" request ") || !line.contains(" api=UploadPart ") {
            continue;
        }
        let part = field(line, "part=").and_then(|p| p.parse().ok());
        if let (Some(upload), Some(part)) = (field(line, "upload_id="), part) {
            *received.entry((upload.to_owned(), part)).or_default() += 1;
        }
    }
    let mut failed: BTreeMap<PartOf, u64> = BTreeMap::new();
    let mut claims: BTreeMap<PartOf, u64> = BTreeMap::new();
    for path in worker_logs {
        let log = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for line in log.lines() {
            if let Some(part) = failed_attempt(line) {
                *failed.entry(part).or_default() += 1;
            }
            for part in claimed(line) {
                *claims.entry(part).or_default() += 1;
            }
        }
    }
    let corrupting = corrupts(rules, "UploadPart");
    let mut sends = Sends::default();
    for (part, &requests) in &received {
        sends.requests += requests;
        let unexplained = requests.saturating_sub(failed.get(part).copied().unwrap_or(0));
        let resent = unexplained.saturating_sub(1);
        let claimed = claims.get(part).copied().unwrap_or(0);
        let allowed = claimed.saturating_sub(1);
        sends.resent += resent;
        sends.allowed += allowed;
        if resent > allowed {
            if corrupting {
                sends.excused += 1;
            } else {
                sends.failures.push(format!(
                    "PART SENT TOO OFTEN: part {} of upload {} reached the server {requests} times, {} of them attempts a worker saw fail, under {claimed} claims: at most {} sends that did not fail are explained",
                    part.1,
                    part.0,
                    requests - unexplained,
                    1 + allowed
                ));
            }
        }
    }
    Ok(sends)
}

/// How often the small files of a shared tree were put, against the bound.
#[derive(Debug, Default)]
pub(super) struct Puts {
    /// PutObject requests the server received for the tree's keys.
    pub requests: u64,
    /// Keys put at least once.
    pub keys: u64,
    /// Requests beyond one per key that no failed attempt explains.
    pub again: u64,
    /// What the bound allows for them in all.
    pub allowed: u64,
    /// Keys over the bound, or the total over it.
    pub failures: Vec<String>,
}

/// Counts, per key k of `keys` put whole: S(k), the PutObject requests the server received for it
/// (from the mock's log), and F(k), the attempts a worker's log shows failed (the retry layer's
/// `attempt failed`). A file claim is lost only when its worker dies or is cut off from the
/// store (a worker killed or stopped, the mock killed under its request, PostgreSQL crashed),
/// `events` times in this iteration, and a worker holds at most `in_hand` files at once (twice its
/// `--parallel`, summed over the workers). So, unless a rule corrupting PutObject's answers is in
/// `rules`:
///
/// - per key: S(k) − F(k) ≤ 1 + events;
/// - in all: Σ max(0, S(k) − F(k) − 1) ≤ events × in_hand.
///
/// Workers that did not share (each putting every file) break the second with hundreds of files.
pub(super) fn object_puts(
    mock_log: &Path,
    worker_logs: &[PathBuf],
    keys: &BTreeSet<String>,
    rules: &[Rule],
    events: u64,
    in_hand: u64,
) -> Result<Puts, String> {
    let by_repr: BTreeMap<String, &String> = keys.iter().map(|k| (format!("{k:?}"), k)).collect();
    let mock = std::fs::read_to_string(mock_log)
        .map_err(|e| format!("cannot read {}: {e}", mock_log.display()))?;
    let mut received: BTreeMap<&String, u64> = BTreeMap::new();
    for line in mock.lines() {
        if !line.contains(" request ") || !line.contains(" api=PutObject ") {
            continue;
        }
        if let Some(key) = debug_string_after(line, " key=Some(").and_then(|r| by_repr.get(r)) {
            *received.entry(key).or_default() += 1;
        }
    }
    let mut failed: BTreeMap<&String, u64> = BTreeMap::new();
    for path in worker_logs {
        let log = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for line in log.lines() {
            let Some(start) = line.find("oss_request{api=PutObject ") else {
                continue;
            };
            let span = &line[start..];
            let Some(repr) = debug_string_after(span, " key=") else {
                continue;
            };
            let after = &span[span.find(repr).map_or(0, |i| i + repr.len())..];
            if after
                .find("}: ")
                .is_some_and(|end| after[end..].starts_with("}: ossup::retry: attempt failed"))
                && let Some(key) = by_repr.get(repr)
            {
                *failed.entry(key).or_default() += 1;
            }
        }
    }
    let excused = corrupts(rules, "PutObject");
    let mut puts = Puts {
        allowed: events * in_hand,
        ..Puts::default()
    };
    for (key, &requests) in &received {
        puts.requests += requests;
        puts.keys += 1;
        let unexplained = requests.saturating_sub(failed.get(key).copied().unwrap_or(0));
        let again = unexplained.saturating_sub(1);
        puts.again += again;
        if again > events && !excused {
            puts.failures.push(format!(
                "FILE PUT TOO OFTEN: {key:?} reached the server in {requests} PutObjects, {} of them attempts a worker saw fail: at most {} that did not fail are explained by the {events} kills and crashes of this iteration",
                requests - unexplained,
                1 + events
            ));
        }
    }
    if puts.again > puts.allowed && !excused {
        puts.failures.push(format!(
            "FILES PUT TOO OFTEN: {} PutObjects for {} keys beyond one per key that no failed attempt explains; {events} kills and crashes with at most {in_hand} files in the workers' hands explain {}",
            puts.again, puts.keys, puts.allowed
        ));
    }
    Ok(puts)
}

/// The Rust debug form of a string (quotes included) that follows `marker` in `line`: what
/// `tracing` writes for a `?key` field, escapes and all, up to its closing quote.
fn debug_string_after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let start = line.find(marker)? + marker.len();
    let rest = &line[start..];
    if !rest.starts_with('"') {
        return None;
    }
    let mut escaped = false;
    for (i, c) in rest.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(&rest[..=i]),
            _ => {}
        }
    }
    None
}

/// The value of `name` (such as `part=`) in a log line's fields, up to the next space, brace or
/// comma.
pub(super) fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line
        .find(&format!(" {name}"))
        .map(|i| i + 1)
        .or_else(|| line.find(&format!("{{{name}")).map(|i| i + 1))?
        + name.len();
    let rest = &line[start..];
    let end = rest.find([' ', '}', ',']).unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"'))
}

/// The part of an UploadPart attempt that a worker's log shows failed: the retry layer's
/// `attempt failed` line, one per attempt that got no answer or an answer other than 2xx (the
/// client's own `answered` line comes once per request, after its retries).
fn failed_attempt(line: &str) -> Option<PartOf> {
    let span_start = line.find("oss_request{api=UploadPart")?;
    let span = &line[span_start..];
    let span_end = span.find("}:")?;
    let fields = &span[..=span_end];
    let part = field(fields, "part=")?.parse().ok()?;
    let upload = field(fields, "upload_id=")?.to_owned();
    span[span_end..]
        .starts_with("}: ossup::retry: attempt failed")
        .then_some((upload, part))
}

/// The parts a `claimed parts` line of a worker's log names, of the upload its transfer span
/// names.
fn claimed(line: &str) -> Vec<PartOf> {
    if !line.contains(": ossup::upload::cooperate: claimed parts") {
        return Vec::new();
    }
    let Some(upload) = line
        .find("transfer{upload_id=")
        .and_then(|i| field(&line[i..], "upload_id="))
    else {
        return Vec::new();
    };
    let Some(start) = line.find("parts=[") else {
        return Vec::new();
    };
    let rest = &line[start + "parts=[".len()..];
    let end = rest.find(']').unwrap_or(rest.len());
    rest[..end]
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .map(|n| (upload.to_owned(), n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_are_read_for_parts_attempts_and_claims() {
        let mock = r#"2026-12-04T11:00:00.1Z DEBUG oss_mock::service: request request_id=FBE8 api=UploadPart addressing=PathStyle bucket=chaos key=Some("fleet/1.bin") upload_id="ABC" part="12""#;
        assert_eq!(field(mock, "part="), Some("12"));
        assert_eq!(field(mock, "upload_id="), Some("ABC"));
        let abc = |part: u64| ("ABC".to_owned(), part);
        let answered = r#"2026-12-04T11:00:00.1Z DEBUG upload{bucket=chaos key=fleet/1.bin parts=39 method="multipart" upload_id="OLD"}:transfer{upload_id=ABC}:part{number=7 offset=614400 size=102400}:oss_request{api=UploadPart bucket="chaos" key="fleet/1.bin" upload_id="ABC" part=7}: ossup::retry: attempt answered api=Some(UploadPart) attempt=2 status=200 request_id="x" elapsed_ms=17"#;
        assert_eq!(failed_attempt(answered), None);
        let refused = answered
            .replace("attempt answered", "attempt failed")
            .replace("status=200", "status=503");
        assert_eq!(failed_attempt(&refused), Some(abc(7)));
        let client = answered.replace(
            "ossup::retry: attempt answered",
            "ossup::client: failed elapsed_ms=3 error=connection reset",
        );
        assert_eq!(
            failed_attempt(&client),
            None,
            "the retry layer counts each attempt once"
        );
        let listing = refused.replace("api=UploadPart", "api=ListParts");
        assert_eq!(failed_attempt(&listing), None);
        let claim = r#"2026-12-04T11:00:00.1Z DEBUG upload{bucket=chaos key=fleet/1.bin upload_id="OLD"}:transfer{upload_id=ABC}: ossup::upload::cooperate: claimed parts worker="vm/12635/d3f21697" parts=[3, 4, 5]"#;
        assert_eq!(claimed(claim), vec![abc(3), abc(4), abc(5)]);
        assert!(claimed(answered).is_empty());
    }

    #[test]
    fn put_object_lines_are_matched_to_keys_by_their_debug_form() {
        let key = "trees/ü 1/it's \"e\u{301}cole\" 3.txt".to_owned();
        let repr = format!("{key:?}");
        let mock = format!(
            "2026-12-04T11:00:00.1Z DEBUG oss_mock::service: request request_id=A api=PutObject addressing=PathStyle bucket=chaos key=Some({repr}) upload_id=\"\" part=\"\""
        );
        assert_eq!(debug_string_after(&mock, " key=Some("), Some(repr.as_str()));
        let failed = format!(
            "2026-12-04T11:00:00.1Z DEBUG batch:oss_request{{api=PutObject bucket=\"chaos\" key={repr}}}: ossup::retry: attempt failed status=503"
        );
        let dir = std::env::temp_dir().join(format!("ossup-puts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (mock_log, worker_log) = (dir.join("mock.log"), dir.join("worker-0.stderr"));
        let keys: BTreeSet<String> = [key.clone(), "trees/1/other".to_owned()].into();
        // Three workers each putting the file: two more than one, with no kill to explain them.
        std::fs::write(&mock_log, [mock.as_str(); 4].join("\n")).unwrap();
        std::fs::write(&worker_log, &failed).unwrap();
        let puts = object_puts(
            &mock_log,
            std::slice::from_ref(&worker_log),
            &keys,
            &[],
            0,
            6,
        )
        .unwrap();
        assert_eq!((puts.requests, puts.keys, puts.again), (4, 1, 2));
        assert!(
            puts.failures[0].contains("FILE PUT TOO OFTEN"),
            "{:?}",
            puts.failures
        );
        assert!(puts.failures[1].contains("FILES PUT TOO OFTEN"));
        // Two kills with two files in hand explain them.
        let puts = object_puts(&mock_log, &[worker_log], &keys, &[], 2, 2).unwrap();
        assert!(puts.failures.is_empty(), "{:?}", puts.failures);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
