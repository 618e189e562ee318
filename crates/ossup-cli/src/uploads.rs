//! `ossup uploads ls` and `ossup uploads abort`: the multipart uploads a bucket still holds open,
//! and for each whether a local checkpoint can resume it or it is an orphan.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ossup::store::{Claim, Cooperation, HeldFile};
use ossup::{CheckpointStore, Client, FileStore, ListedUpload};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cli::{UploadsAbortArgs, UploadsLsArgs};
use crate::config::{Connection, default_checkpoint_dir};
use crate::duration::age;
use crate::explain::explain;
use crate::failure::Failure;
use crate::terminal::{json_line, printable};

/// Runs `ossup uploads ls`.
pub(crate) async fn ls(args: UploadsLsArgs) -> Result<(), Failure> {
    let connection = Connection::resolve(&args.connection)?;
    let client = connection.client()?;
    let local = LocalCheckpoints::open(&args).await?;
    let uploads = list(&client, &args.location.bucket, &args.location.key)
        .await
        .map_err(|e| explain(&e, &connection.situation()))?;
    let known = local.known(&args.location.bucket).await?;
    let held = local
        .held_files(&args.location.bucket, &args.location.key)
        .await?;
    let now = SystemTime::now();
    let mut out = std::io::stdout().lock();
    if args.json {
        for upload in &uploads {
            let line = UploadLine::new(upload, now, known.get(&upload.upload_id));
            if let Some(line) = json_line(&line) {
                let _ = writeln!(out, "{line}");
            }
        }
        for file in &held {
            if let Some(line) = json_line(&HeldFileLine::new(file)) {
                let _ = writeln!(out, "{line}");
            }
        }
        return Ok(());
    }
    if uploads.is_empty() {
        let _ = writeln!(
            out,
            "no open multipart uploads under oss://{}/{}",
            args.location.bucket,
            printable(&args.location.key)
        );
        print_held_files(&mut out, &held, &local.location);
        return Ok(());
    }
    // Keys, ids and dates are the server's text: escaped before they are measured and printed.
    let shown: Vec<(String, String, String)> = uploads
        .iter()
        .map(|u| {
            (
                printable(&u.key).into_owned(),
                printable(&u.upload_id).into_owned(),
                printable(&u.initiated).into_owned(),
            )
        })
        .collect();
    let key_width = shown
        .iter()
        .map(|(key, _, _)| key.chars().count())
        .max()
        .unwrap_or(0)
        .max(3);
    let id_width = shown
        .iter()
        .map(|(_, id, _)| id.chars().count())
        .max()
        .unwrap_or(0)
        .max(9);
    let _ = writeln!(
        out,
        "{:key_width$}  {:id_width$}  {:24}  {:8}  LOCAL CHECKPOINT",
        "KEY", "UPLOAD ID", "INITIATED", "AGE"
    );
    let mut orphans = 0;
    for (upload, (key, upload_id, initiated)) in uploads.iter().zip(&shown) {
        let age = initiated_age(upload, now)
            .map(age)
            .unwrap_or_else(|| "?".to_owned());
        let local_text = match known.get(&upload.upload_id) {
            Some(found) if found.workers.is_empty() => format!(
                "resumable here: {} ({} parts recorded)",
                printable(&found.source),
                found.parts
            ),
            Some(found) => format!(
                "resumable here: {} ({} parts recorded); workers: {}",
                printable(&found.source),
                found.parts,
                found
                    .workers
                    .iter()
                    .map(WorkerLease::describe)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => {
                orphans += 1;
                "none (an orphan here)".to_owned()
            }
        };
        let _ = writeln!(
            out,
            "{key:key_width$}  {upload_id:id_width$}  {initiated:24}  {age:8}  {local_text}"
        );
    }
    let _ = writeln!(
        out,
        "{} open upload{}, {} with a checkpoint in {}, {orphans} without",
        uploads.len(),
        if uploads.len() == 1 { "" } else { "s" },
        uploads.len() - orphans,
        local.location
    );
    print_held_files(&mut out, &held, &local.location);
    Ok(())
}

/// The files of a shared tree that cooperating workers are putting whole (one PutObject each, so
/// no multipart upload shows them), with their holders and leases; nothing when there are none.
fn print_held_files(out: &mut impl Write, held: &[HeldFile], location: &str) {
    if held.is_empty() {
        return;
    }
    let keys: Vec<String> = held
        .iter()
        .map(|f| printable(&f.key).into_owned())
        .collect();
    let key_width = keys
        .iter()
        .map(|key| key.chars().count())
        .max()
        .unwrap_or(0)
        .max(3);
    let _ = writeln!(out);
    let _ = writeln!(out, "{:key_width$}  WORKER (LEASE LEFT)", "KEY");
    for (file, key) in held.iter().zip(&keys) {
        let _ = writeln!(
            out,
            "{key:key_width$}  {} ({}s)",
            printable(&file.worker),
            file.expires_in.as_secs()
        );
    }
    let _ = writeln!(
        out,
        "{} file{} being put whole by cooperating workers (file claims in {location})",
        held.len(),
        if held.len() == 1 { "" } else { "s" },
    );
}

/// A local checkpoint that names an open upload.
#[derive(Debug, Clone, Serialize)]
struct KnownUpload {
    /// The source the checkpoint uploads (a file's canonical path).
    source: String,
    /// Parts recorded as acknowledged.
    parts: usize,
    /// The workers sharing the upload (`--cooperate`) with live leases, when the store keeps them.
    workers: Vec<WorkerLease>,
}

/// One worker's live claims on one upload.
#[derive(Debug, Clone, Serialize)]
struct WorkerLease {
    /// The worker's name: host, process id, a suffix of its run.
    worker: String,
    /// Parts it holds claims on (being sent).
    parts: usize,
    /// Whether it holds the claim to complete the upload.
    completing: bool,
    /// Seconds until its latest lease expires, unless renewed.
    lease_secs: u64,
}

impl WorkerLease {
    fn describe(&self) -> String {
        format!(
            "{} ({} parts{}, lease {}s)",
            printable(&self.worker),
            self.parts,
            if self.completing { ", completing" } else { "" },
            self.lease_secs
        )
    }

    /// The workers among `claims` on the upload `fingerprint`, by name.
    fn of(claims: &[Claim], fingerprint: &str) -> Vec<WorkerLease> {
        let mut workers: std::collections::BTreeMap<&str, WorkerLease> = Default::default();
        for claim in claims.iter().filter(|c| c.fingerprint == fingerprint) {
            let entry = workers
                .entry(claim.worker.as_str())
                .or_insert_with(|| WorkerLease {
                    worker: claim.worker.clone(),
                    parts: 0,
                    completing: false,
                    lease_secs: 0,
                });
            match claim.part {
                Some(_) => entry.parts += 1,
                None => entry.completing = true,
            }
            entry.lease_secs = entry.lease_secs.max(claim.expires_in.as_secs());
        }
        workers.into_values().collect()
    }
}

/// The checkpoint store `uploads ls` compares the server's uploads with.
struct LocalCheckpoints {
    store: Option<Arc<dyn CheckpointStore>>,
    /// The same store, when it keeps the claims of cooperating workers.
    cooperation: Option<Arc<dyn Cooperation>>,
    location: String,
}

impl LocalCheckpoints {
    /// The store the flags name, or the default checkpoint directory when it exists (it is not
    /// created: listing must not leave a directory behind).
    async fn open(args: &UploadsLsArgs) -> Result<Self, Failure> {
        if let Some(url) = &args.checkpoint_url {
            let store = crate::upload::open_postgres(url).await?;
            return Ok(Self {
                location: store.location().to_owned(),
                store: Some(Arc::new(store.clone())),
                cooperation: Some(Arc::new(store)),
            });
        }
        if let Some(db) = &args.checkpoint_db {
            let store = ossup_sqlite::SqliteStore::open(db).await.map_err(|e| {
                Failure::failed(format!(
                    "cannot open the checkpoint database {}: {e}",
                    db.display()
                ))
            })?;
            return Ok(Self {
                store: Some(Arc::new(store.clone())),
                cooperation: Some(Arc::new(store)),
                location: db.display().to_string(),
            });
        }
        let (dir, given) = match &args.checkpoint_dir {
            Some(dir) => (dir.clone(), true),
            None => (default_checkpoint_dir()?, false),
        };
        if !given && !dir.is_dir() {
            return Ok(Self {
                store: None,
                cooperation: None,
                location: dir.display().to_string(),
            });
        }
        let store = FileStore::open(&dir).map_err(|e| {
            Failure::failed(format!(
                "cannot read the checkpoint directory {}: {e}",
                dir.display()
            ))
        })?;
        Ok(Self {
            store: Some(Arc::new(store)),
            cooperation: None,
            location: dir.display().to_string(),
        })
    }

    /// The live file claims of `bucket` under `prefix`, when the store keeps them.
    async fn held_files(&self, bucket: &str, prefix: &str) -> Result<Vec<HeldFile>, Failure> {
        let Some(cooperation) = &self.cooperation else {
            return Ok(Vec::new());
        };
        cooperation.file_claims(bucket, prefix).await.map_err(|e| {
            Failure::failed(format!(
                "cannot read the file claims in {}: {e}",
                self.location
            ))
        })
    }

    /// The uploads of `bucket` the store's checkpoints name, by upload id.
    async fn known(&self, bucket: &str) -> Result<HashMap<String, KnownUpload>, Failure> {
        let mut known = HashMap::new();
        let Some(store) = &self.store else {
            return Ok(known);
        };
        let read_failed = |e: ossup::StoreError| {
            Failure::failed(format!(
                "cannot read the checkpoints in {}: {e}",
                self.location
            ))
        };
        let claims = match &self.cooperation {
            Some(cooperation) => cooperation.claims().await.map_err(read_failed)?,
            None => Vec::new(),
        };
        for identity in store.list().await.map_err(read_failed)? {
            if identity.bucket != bucket {
                continue;
            }
            // A checkpoint damaged since it was listed is set aside by `load`; it resumes nothing.
            if let Ok(Some(checkpoint)) = store.load(&identity).await
                && !checkpoint.upload_id.is_empty()
            {
                known.insert(
                    checkpoint.upload_id.clone(),
                    KnownUpload {
                        source: identity.source.clone(),
                        parts: checkpoint.parts.len(),
                        workers: WorkerLease::of(&claims, &identity.fingerprint()),
                    },
                );
            }
        }
        Ok(known)
    }
}

/// Runs `ossup uploads abort`.
pub(crate) async fn abort(args: UploadsAbortArgs) -> Result<(), Failure> {
    let location = &args.location;
    if args.upload_id.is_some() && location.key.is_empty() {
        return Err(Failure::usage(format!(
            "--upload-id needs the upload's object: write oss://{}/KEY",
            location.bucket
        )));
    }
    let connection = Connection::resolve(&args.connection)?;
    let client = connection.client()?;
    let situation = connection.situation();
    let mut out = std::io::stdout().lock();

    if let Some(upload_id) = &args.upload_id {
        if args.dry_run {
            let _ = writeln!(
                out,
                "would abort upload {upload_id} of oss://{}/{}",
                location.bucket, location.key
            );
            return Ok(());
        }
        client
            .abort_multipart_upload(&location.bucket, &location.key, upload_id)
            .await
            .map_err(|e| explain(&e, &situation))?;
        let _ = writeln!(
            out,
            "aborted upload {upload_id} of oss://{}/{}",
            location.bucket, location.key
        );
        return Ok(());
    }

    let older_than = args
        .older_than
        .expect("clap requires --upload-id or --older-than");
    let now = SystemTime::now();
    let uploads = list(&client, &location.bucket, &location.key)
        .await
        .map_err(|e| explain(&e, &situation))?;
    let (stale, undated): (Vec<_>, Vec<_>) = uploads
        .iter()
        .map(|u| (u, initiated_age(u, now)))
        .filter(|(_, age)| age.is_none_or(|a| a > older_than))
        .partition(|(_, age)| age.is_some());
    for (upload, _) in &undated {
        eprintln!(
            "warning: skipped upload {} of {}: its initiation time {:?} is not a date",
            printable(&upload.upload_id),
            printable(&upload.key),
            upload.initiated
        );
    }
    let mut failed = 0usize;
    for (upload, age_of) in &stale {
        let age_text = age_of.map(age).unwrap_or_default();
        let what = printable(&format!(
            "upload {} of oss://{}/{} (initiated {}, {age_text} ago)",
            upload.upload_id, location.bucket, upload.key, upload.initiated
        ))
        .into_owned();
        if args.dry_run {
            let _ = writeln!(out, "would abort {what}");
            continue;
        }
        match client
            .abort_multipart_upload(&location.bucket, &upload.key, &upload.upload_id)
            .await
        {
            Ok(()) => {
                let _ = writeln!(out, "aborted {what}");
            }
            // Completed or aborted by someone else since the listing: the goal is met.
            Err(e) if e.is_service_code(ossup::ErrorCode::NoSuchUpload) => {
                let _ = writeln!(out, "already gone: {what}");
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: could not abort {what}: {}", explain(&e, &situation));
            }
        }
    }
    let verb = if args.dry_run {
        "would abort"
    } else {
        "aborted"
    };
    let _ = writeln!(
        out,
        "{verb} {} of {} open upload{} under oss://{}/{} older than {}",
        stale.len() - failed,
        uploads.len(),
        if uploads.len() == 1 { "" } else { "s" },
        location.bucket,
        location.key,
        age(older_than)
    );
    if failed > 0 {
        return Err(Failure::failed(format!(
            "{failed} upload{} could not be aborted",
            if failed == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

/// The open uploads of `bucket` under `prefix`: what the server lists, less any upload whose key
/// is not under the prefix. The server filters by the prefix too, but `abort --older-than` acts
/// on what it lists, and a server that ignored the prefix (a proxy, a lookalike, a bug) must not
/// get other uploads aborted; as the orphan sweep checks the exact key, this checks the prefix.
async fn list(
    client: &Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<ListedUpload>, ossup::Error> {
    let asked = (!prefix.is_empty()).then_some(prefix);
    let listed = client.list_multipart_uploads(bucket, asked).await?;
    let (under, outside): (Vec<_>, Vec<_>) = listed
        .into_iter()
        .partition(|upload| upload.key.starts_with(prefix));
    if !outside.is_empty() {
        eprintln!(
            "warning: the server listed {} upload{} outside oss://{bucket}/{}, e.g. of {}; they are left out",
            outside.len(),
            if outside.len() == 1 { "" } else { "s" },
            printable(prefix),
            printable(&outside[0].key)
        );
    }
    Ok(under)
}

/// How long ago `upload` was initiated; `None` when its date does not parse.
fn initiated_age(upload: &ListedUpload, now: SystemTime) -> Option<Duration> {
    let initiated = OffsetDateTime::parse(upload.initiated.trim(), &Rfc3339).ok()?;
    let initiated = SystemTime::from(initiated);
    Some(now.duration_since(initiated).unwrap_or(Duration::ZERO))
}

/// One line of `ossup uploads ls --json`.
#[derive(Debug, Serialize)]
struct UploadLine<'a> {
    key: &'a str,
    upload_id: &'a str,
    initiated: &'a str,
    age_secs: Option<u64>,
    storage_class: Option<&'a str>,
    /// The local checkpoint that can resume it; `null` for an orphan.
    local_checkpoint: Option<&'a KnownUpload>,
}

impl<'a> UploadLine<'a> {
    fn new(upload: &'a ListedUpload, now: SystemTime, local: Option<&'a KnownUpload>) -> Self {
        Self {
            key: &upload.key,
            upload_id: &upload.upload_id,
            initiated: &upload.initiated,
            age_secs: initiated_age(upload, now).map(|a| a.as_secs()),
            storage_class: upload.storage_class.as_deref(),
            local_checkpoint: local,
        }
    }
}

/// One line of `ossup uploads ls --json` for a file a cooperating worker is putting whole:
/// `{"file_claim":{"key":…,"worker":…,"lease_secs":…}}`, told from an upload's line by its one key.
#[derive(Debug, Serialize)]
struct HeldFileLine<'a> {
    file_claim: HeldFileFields<'a>,
}

#[derive(Debug, Serialize)]
struct HeldFileFields<'a> {
    key: &'a str,
    worker: &'a str,
    /// Seconds until the lease expires, unless renewed.
    lease_secs: u64,
}

impl<'a> HeldFileLine<'a> {
    fn new(file: &'a HeldFile) -> Self {
        Self {
            file_claim: HeldFileFields {
                key: &file.key,
                worker: &file.worker,
                lease_secs: file.expires_in.as_secs(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_are_grouped_by_name_with_their_parts_completion_and_latest_lease() {
        let claims = [
            Claim::new("f1", Some(1), "host-a/1/x", Duration::from_secs(5)),
            Claim::new("f1", Some(2), "host-a/1/x", Duration::from_secs(25)),
            Claim::new("f1", None, "host-b/2/y", Duration::from_secs(9)),
            Claim::new("f2", Some(1), "host-c/3/z", Duration::from_secs(9)),
        ];
        let described: Vec<String> = WorkerLease::of(&claims, "f1")
            .iter()
            .map(WorkerLease::describe)
            .collect();
        assert_eq!(
            described,
            [
                "host-a/1/x (2 parts, lease 25s)",
                "host-b/2/y (0 parts, completing, lease 9s)"
            ]
        );
    }

    #[test]
    fn held_files_are_listed_by_key_with_worker_and_lease() {
        let held = [
            HeldFile::new("site/a.js", "web-1/7/aa", Duration::from_secs(28)),
            HeldFile::new("site/b\ncss", "web-2/9/bb", Duration::from_millis(1_500)),
        ];
        let mut out = Vec::new();
        print_held_files(&mut out, &held, "postgres://pg/ossup");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\nKEY          WORKER (LEASE LEFT)\n\
             site/a.js    web-1/7/aa (28s)\n\
             site/b\\ncss  web-2/9/bb (1s)\n\
             2 files being put whole by cooperating workers (file claims in postgres://pg/ossup)\n"
        );
        let mut none = Vec::new();
        print_held_files(&mut none, &[], "db");
        assert!(none.is_empty(), "nothing is printed without file claims");
        assert_eq!(
            serde_json::to_string(&HeldFileLine::new(&held[0])).unwrap(),
            r#"{"file_claim":{"key":"site/a.js","worker":"web-1/7/aa","lease_secs":28}}"#
        );
    }

    fn listed(initiated: &str) -> ListedUpload {
        ListedUpload {
            key: "k".to_owned(),
            upload_id: "U".to_owned(),
            initiated: initiated.to_owned(),
            storage_class: None,
        }
    }

    #[test]
    fn ages_are_measured_from_the_iso_initiation_time() {
        let now =
            SystemTime::from(OffsetDateTime::parse("2024-05-02T10:00:00Z", &Rfc3339).unwrap());
        assert_eq!(
            initiated_age(&listed("2024-05-01T10:00:00.000Z"), now),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(initiated_age(&listed("yesterday"), now), None);
        // An initiation in the future (clock skew) counts as brand new.
        assert_eq!(
            initiated_age(&listed("2024-05-03T10:00:00Z"), now),
            Some(Duration::ZERO)
        );
    }
}
