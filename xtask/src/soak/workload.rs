//! What a soak uploads: each job, drawn from the seed and its number, is one `ossup upload` of one
//! file (small enough for PutObject, or a medium or large multipart upload) or of a tree
//! (`--recursive`), with a part size, a scheduler, sometimes `--limit-rate`, and the checkpoint store
//! of the worker that runs it.
//!
//! A worker keeps its files, keys and checkpoint store from job to job, as a user running ossup from
//! a script would: each single-file job rewrites its file and uploads it over the same key; each tree
//! job rewrites some of the tree's files, adds or removes a few, and uploads it again (unchanged files
//! are skipped by content).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::chaos::plan::{Gen, MIN_PART, Store};
use crate::chaos::verify::Digest;

/// The kinds of job, by what they exercise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// One file no larger than the part size: one PutObject.
    Small,
    /// One file of a few to two dozen parts, at most half the largest size.
    Medium,
    /// One file of the largest size, in a few large parts.
    Large,
    /// A directory of small files and a few multipart ones, `--recursive`.
    Tree,
}

impl Kind {
    /// Every kind, in the order summaries list them.
    pub(crate) const ALL: [Kind; 4] = [Kind::Small, Kind::Medium, Kind::Large, Kind::Tree];

    /// The kind's name in summaries.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Small => "small file (PutObject)",
            Kind::Medium => "medium file (multipart)",
            Kind::Large => "large file (multipart)",
            Kind::Tree => "tree (--recursive)",
        }
    }

    /// The file or directory name of the kind's source in a worker's directory.
    fn source_name(self) -> &'static str {
        match self {
            Kind::Small => "small.bin",
            Kind::Medium => "medium.bin",
            Kind::Large => "large.bin",
            Kind::Tree => "tree",
        }
    }
}

/// How parts are scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheduling {
    /// `--sequential`.
    Sequential,
    /// `--parallel N`.
    Parallel(u16),
    /// `--parallel auto`.
    Auto,
}

/// One file of a tree job: its name in the tree, and its new size when the job rewrites it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TreeFile {
    index: u64,
    rewrite: Option<u64>,
}

/// One `ossup upload` of the soak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Job {
    /// Its number, counted from 0 over the whole soak.
    pub number: u64,
    /// What it uploads.
    pub kind: Kind,
    /// The size of the file (single-file kinds).
    size: u64,
    /// The files the tree holds after this job (tree kind).
    tree: Vec<TreeFile>,
    /// `--part-size`, when not the default.
    part_size: Option<u64>,
    /// The scheduler.
    pub scheduling: Scheduling,
    /// `--limit-rate`, bytes per second.
    pub limit_rate: Option<u64>,
    /// The seed of its bytes.
    data_seed: u64,
}

/// What stays the same for every job of one worker: where its sources are, where its objects go,
/// where its checkpoints are kept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Worker<'a> {
    /// The directory of its sources (a file per single-file kind, `tree/`).
    pub source: &'a Path,
    /// The bucket.
    pub bucket: &'a str,
    /// Its key prefix, ending in `/`.
    pub prefix: &'a str,
    /// The mock's endpoint.
    pub endpoint: &'a str,
    /// The region requests are signed for.
    pub region: &'a str,
    /// Its checkpoint store.
    pub store: Store,
    /// Where the store keeps its checkpoints.
    pub checkpoints: &'a Path,
}

/// One object a job must leave in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expected {
    /// Its key.
    pub key: String,
    /// The bytes of its file.
    pub digest: Digest,
}

impl Job {
    /// Job `number` of the soak of `seed`, with files up to `max_size`.
    pub(crate) fn generate(seed: u64, number: u64, max_size: u64) -> Self {
        let mut g = Gen::new(
            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(number),
        );
        let kind = g.weighted(&[
            (3, Kind::Small),
            (3, Kind::Medium),
            (1, Kind::Large),
            (2, Kind::Tree),
        ]);
        let (medium_part, large_part) = part_sizes(max_size);
        let (size, part_size, tree) = match kind {
            Kind::Small => (g.range(0, 128 << 10), None, Vec::new()),
            Kind::Medium => (
                g.range(2 * medium_part + 1, (24 * medium_part).min(max_size / 2)),
                Some(medium_part),
                Vec::new(),
            ),
            Kind::Large => (
                g.range(max_size / 2, max_size),
                Some(large_part),
                Vec::new(),
            ),
            Kind::Tree => {
                let files = g.range(10, 40);
                let tree = (0..files)
                    .map(|index| TreeFile {
                        index,
                        // A fifth of the files are multipart; about half are rewritten each time
                        // (a file the worker has not written yet is written whatever this says).
                        rewrite: g.chance(0.5).then(|| {
                            if g.chance(0.2) {
                                g.range(medium_part + 1, 4 * medium_part)
                            } else {
                                g.range(0, 64 << 10)
                            }
                        }),
                    })
                    .collect();
                (0, Some(medium_part), tree)
            }
        };
        let scheduling = g.weighted(&[
            (1, Scheduling::Sequential),
            (2, Scheduling::Parallel(2)),
            (3, Scheduling::Parallel(4)),
            (2, Scheduling::Auto),
        ]);
        let limit_rate = g.chance(0.25).then(|| (max_size / 4).max(256 << 10));
        Self {
            number,
            kind,
            size,
            tree,
            part_size,
            scheduling,
            limit_rate,
            data_seed: g.next_u64(),
        }
    }

    /// Writes the job's sources under `dir` (the worker's `src/`) and returns every object the bucket
    /// must hold afterwards under `prefix` (the worker's key prefix, ending in `/`).
    pub(crate) fn prepare(&self, dir: &Path, prefix: &str) -> Result<Vec<Expected>, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut g = Gen::new(self.data_seed);
        let source = dir.join(self.kind.source_name());
        if self.kind != Kind::Tree {
            let digest = write_file(&source, self.size, &mut g)?;
            return Ok(vec![Expected {
                key: format!("{prefix}{}", self.kind.source_name()),
                digest,
            }]);
        }
        std::fs::create_dir_all(&source)
            .map_err(|e| format!("cannot create {}: {e}", source.display()))?;
        let mut expected = Vec::with_capacity(self.tree.len());
        for file in &self.tree {
            let name = tree_file_name(file.index);
            let path = source.join(&name);
            let digest = match (file.rewrite, std::fs::read(&path)) {
                (None, Ok(bytes)) => Digest::of(&bytes),
                (Some(size), _) => write_file(&path, size, &mut g)?,
                (None, Err(_)) => write_file(&path, 1 << 10, &mut g)?,
            };
            expected.push(Expected {
                key: format!("{prefix}tree/{name}"),
                digest,
            });
        }
        // Files past this job's count go: the bucket keeps their objects, which no check reads.
        let keep = self.tree.len() as u64;
        let entries = std::fs::read_dir(&source)
            .map_err(|e| format!("cannot list {}: {e}", source.display()))?;
        for entry in entries.filter_map(Result::ok) {
            let index = entry.file_name().to_str().and_then(|n| {
                n.strip_prefix('f')?
                    .strip_suffix(".bin")?
                    .parse::<u64>()
                    .ok()
            });
            if index.is_some_and(|i| i >= keep) {
                std::fs::remove_file(entry.path())
                    .map_err(|e| format!("cannot remove {}: {e}", entry.path().display()))?;
            }
        }
        Ok(expected)
    }

    /// The arguments of `ossup` for this job, run by `worker`.
    pub(crate) fn args(&self, worker: &Worker<'_>) -> Vec<OsString> {
        let Worker {
            source: dir,
            bucket,
            prefix,
            endpoint,
            region,
            store,
            checkpoints,
        } = *worker;
        let mut args: Vec<OsString> = vec!["upload".into()];
        let source = dir.join(self.kind.source_name());
        if self.kind == Kind::Tree {
            args.push(source.into());
            args.push(format!("oss://{bucket}/{prefix}tree/").into());
            args.push("--recursive".into());
        } else {
            args.push(source.into());
            args.push(format!("oss://{bucket}/{prefix}{}", self.kind.source_name()).into());
        }
        for (flag, value) in [("--endpoint", endpoint), ("--region", region)] {
            args.push(flag.into());
            args.push(value.into());
        }
        args.push("--progress".into());
        args.push("none".into());
        if let Some(part) = self.part_size {
            args.push("--part-size".into());
            args.push(part.to_string().into());
        }
        match self.scheduling {
            Scheduling::Sequential => args.push("--sequential".into()),
            Scheduling::Parallel(n) => {
                args.push("--parallel".into());
                args.push(n.to_string().into());
            }
            Scheduling::Auto => {
                args.push("--parallel".into());
                args.push("auto".into());
            }
        }
        if let Some(rate) = self.limit_rate {
            args.push("--limit-rate".into());
            args.push(format!("{}KiB/s", rate >> 10).into());
        }
        args.push(
            match store {
                Store::Files => "--checkpoint-dir",
                Store::Sqlite => "--checkpoint-db",
            }
            .into(),
        );
        args.push(checkpoints.into());
        args
    }

    /// The job in a few words, for a failure message.
    pub(crate) fn describe(&self) -> String {
        let what = match self.kind {
            Kind::Tree => format!("a tree of {} files", self.tree.len()),
            _ => format!("{} bytes", self.size),
        };
        format!(
            "job {} ({}: {what}, {:?}{})",
            self.number,
            self.kind.name(),
            self.scheduling,
            self.limit_rate
                .map(|r| format!(", --limit-rate {}KiB/s", r >> 10))
                .unwrap_or_default()
        )
    }
}

/// The part sizes of medium files (and the multipart files of trees) and of large files, for files
/// up to `max_size`: at least OSS's smallest part; a large file in 4 to 8 parts.
fn part_sizes(max_size: u64) -> (u64, u64) {
    ((max_size / 128).max(MIN_PART), (max_size / 8).max(MIN_PART))
}

/// The name of file `index` of a tree.
fn tree_file_name(index: u64) -> String {
    format!("f{index:03}.bin")
}

/// Writes `size` seeded bytes to `path` (replacing it) and returns their digest.
fn write_file(path: &Path, size: u64, g: &mut Gen) -> Result<Digest, String> {
    let mut bytes = vec![0u8; usize::try_from(size).map_err(|_| format!("size {size} too large"))?];
    g.fill(&mut bytes);
    std::fs::write(path, &bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(Digest::of(&bytes))
}

/// The mock's fault rules for a soak from `seed`: a steady low rate of what a busy service and a
/// lossy network do, each rule a fraction of its requests. Every job still succeeds through
/// `ossup`'s retries (10 tries per request); the checks find out if one does not.
pub(crate) fn fault_rules(seed: u64) -> Value {
    // Not the jobs' stream (see `Job::generate`): the rules do not change with the jobs' draws.
    let mut g = Gen::new(!seed);
    let mut rule = |api: &str, probability: f64, action: Value| json!({"api": api, "probability": probability, "seed": g.next_u64(), "action": action});
    json!([
        rule(
            "*",
            0.01,
            json!({"kind": "error", "status": 503, "code": "ServiceUnavailable"})
        ),
        rule("*", 0.02, json!({"kind": "delay", "ms": 400})),
        rule("UploadPart", 0.005, json!({"kind": "reset_before_body"})),
        rule(
            "UploadPart",
            0.01,
            json!({"kind": "throttle", "bytes_per_sec": 1 << 20})
        ),
        rule(
            "PutObject",
            0.005,
            json!({"kind": "reset_mid_body", "after_bytes": 4096})
        ),
        rule(
            "CompleteMultipartUpload",
            0.01,
            json!({"kind": "reset_after_commit"})
        ),
    ])
}

/// Where worker `slot` keeps its sources, log and checkpoints, under the soak's `work` directory.
pub(crate) fn worker_dir(work: &Path, slot: usize) -> PathBuf {
    work.join(format!("w{slot}"))
}

/// The key prefix of worker `slot`.
pub(crate) fn worker_prefix(slot: usize) -> String {
    format!("soak/w{slot}/")
}

/// The checkpoint store of worker `slot`: files for even workers, SQLite for odd ones.
pub(crate) fn worker_store(slot: usize) -> Store {
    if slot.is_multiple_of(2) {
        Store::Files
    } else {
        Store::Sqlite
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_and_number_give_the_same_job_and_the_mix_has_every_kind() {
        assert_eq!(Job::generate(7, 3, 32 << 20), Job::generate(7, 3, 32 << 20));
        assert_ne!(Job::generate(7, 3, 32 << 20), Job::generate(8, 3, 32 << 20));
        let jobs: Vec<Job> = (0..200).map(|n| Job::generate(1, n, 32 << 20)).collect();
        for kind in Kind::ALL {
            assert!(jobs.iter().any(|j| j.kind == kind), "no {kind:?}");
        }
        assert!(jobs.iter().any(|j| j.limit_rate.is_some()));
        assert!(jobs.iter().any(|j| j.limit_rate.is_none()));
        assert!(jobs.iter().any(|j| j.scheduling == Scheduling::Auto));
    }

    #[test]
    fn sizes_put_small_files_in_one_request_and_the_others_in_parts() {
        let (medium_part, large_part) = part_sizes(32 << 20);
        assert_eq!((medium_part, large_part), (256 << 10, 4 << 20));
        assert_eq!(part_sizes(1 << 20), (MIN_PART, 128 << 10));
        for job in (0..300).map(|n| Job::generate(5, n, 32 << 20)) {
            match job.kind {
                // The default part size is 8 MiB.
                Kind::Small => assert!(job.size <= 128 << 10 && job.part_size.is_none()),
                Kind::Medium => assert!(job.size > 2 * medium_part && job.size <= 24 * medium_part),
                Kind::Large => assert!(job.size >= 16 << 20 && job.size <= 32 << 20),
                Kind::Tree => assert!((10..=40).contains(&job.tree.len())),
            }
        }
    }

    #[test]
    fn a_tree_job_keeps_unchanged_files_and_removes_those_past_its_count() {
        let dir = std::env::temp_dir().join(format!("xtask-soak-workload-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let trees: Vec<Job> = (0..400)
            .map(|n| Job::generate(3, n, 1 << 20))
            .filter(|j| j.kind == Kind::Tree)
            .take(2)
            .collect();
        let first = trees[0].prepare(&dir, "soak/w0/").unwrap();
        assert_eq!(first.len(), trees[0].tree.len());
        let second = trees[1].prepare(&dir, "soak/w0/").unwrap();
        assert_eq!(second.len(), trees[1].tree.len());
        let on_disk = std::fs::read_dir(dir.join("tree")).unwrap().count();
        assert_eq!(on_disk, trees[1].tree.len());
        for (file, expected) in trees[1].tree.iter().zip(&second) {
            let bytes = std::fs::read(dir.join("tree").join(tree_file_name(file.index))).unwrap();
            assert_eq!(Digest::of(&bytes), expected.digest);
            assert_eq!(
                expected.key,
                format!("soak/w0/tree/{}", tree_file_name(file.index))
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn arguments_name_the_source_the_key_and_every_chosen_option() {
        let job = Job {
            number: 0,
            kind: Kind::Medium,
            size: 1 << 20,
            tree: Vec::new(),
            part_size: Some(256 << 10),
            scheduling: Scheduling::Auto,
            limit_rate: Some(8 << 20),
            data_seed: 1,
        };
        let worker = Worker {
            source: Path::new("/w/src"),
            bucket: "chaos",
            prefix: "soak/w1/",
            endpoint: "http://127.0.0.1:1",
            region: "cn-hangzhou",
            store: Store::Sqlite,
            checkpoints: Path::new("/w/ckpt.db"),
        };
        let args: Vec<String> = job
            .args(&worker)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let line = args.join(" ");
        assert!(
            line.starts_with("upload /w/src/medium.bin oss://chaos/soak/w1/medium.bin "),
            "{line}"
        );
        for part in [
            "--part-size 262144",
            "--parallel auto",
            "--limit-rate 8192KiB/s",
            "--checkpoint-db /w/ckpt.db",
            "--progress none",
        ] {
            assert!(line.contains(part), "{line} lacks {part}");
        }
    }

    #[test]
    fn fault_rules_are_seeded_and_each_fires_on_a_small_fraction() {
        assert_eq!(fault_rules(4), fault_rules(4));
        let rules = fault_rules(4);
        let rules = rules.as_array().unwrap();
        assert!(rules.len() >= 5);
        assert!(
            rules
                .iter()
                .all(|r| r["probability"].as_f64().unwrap() <= 0.02)
        );
    }
}
