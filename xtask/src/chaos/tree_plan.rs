//! What one tree iteration does, drawn from its seed alone: the tree (nested directories, names
//! with spaces, punctuation and non-ASCII letters, empty files, a few multipart ones, `*.log` files
//! to leave out, an empty directory), how it is uploaded, the server's faults, the kills, and the
//! files rewritten between runs.
//!
//! The same seed and `--max-size` always give the same plan, which is how a failure is reproduced.

use std::fmt::Write as _;
use std::path::Path;

use super::plan::{
    Gen, Interruption, MIN_PART, Moment, Rule, RuleSpace, Scheduler, Store, draw_rule, rule_names,
};
use super::report::{self, Planned};

/// The part size of every tree run: small enough that a file of a few hundred KiB goes multipart.
pub(super) const TREE_PART: u64 = MIN_PART;
/// What every run leaves out, as `--exclude` takes it.
pub(super) const EXCLUDE: &str = "*.log";

/// Words that names are made of: plain, with spaces, with characters a URL or a signature must
/// encode (`+ % # & = ? [ ]`), and in other scripts, composed and not.
const WORDS: &[&str] = &[
    "docs",
    "src",
    "catalog",
    "photos 2026",
    "données",
    "日本語",
    "Ünïcödé",
    "naïve café",
    "🎉 party",
    "a+b",
    "100% done",
    "#hash",
    "x=y&z",
    "(copy)",
    "[draft]",
    "what?",
    "Ω mega",
    "résumé",
    "-dash",
    "~tilde",
    "it's",
    "two  spaces",
    "e\u{301}cole",
];
/// Extensions of kept files; `.log.1` and `.log.txt` look like logs but `*.log` does not take them.
const EXTENSIONS: &[&str] = &[
    ".txt", ".bin", ".json", ".jpg", "", ".tar.gz", ".log.1", ".log.txt",
];
/// Stems of the files `*.log` leaves out.
const LOG_STEMS: &[&str] = &["app", "debug 2026", "ünïcode", "trace-", "what? "];

/// The APIs a tree upload calls, with the weights of a rule matching each.
const TREE_APIS: &[(u64, &str)] = &[
    (1, "*"),
    (5, "PutObject"),
    (2, "InitiateMultipartUpload"),
    (4, "UploadPart"),
    (1, "ListParts"),
    (2, "CompleteMultipartUpload"),
    (2, "HeadObject"),
    (1, "ListObjects"),
];

/// A file of the tree as it is first written.
#[derive(Debug, Clone)]
pub(super) struct FileSpec {
    /// Its path below the tree's root, `/`-separated.
    pub rel: String,
    /// Its size in bytes.
    pub size: u64,
    /// Whether `--exclude '*.log'` leaves it out (its name, or a directory above it, ends in `.log`).
    pub excluded: bool,
}

/// How a file is rewritten between two runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EditKind {
    /// New bytes, the same size, written in place (same inode).
    Rewrite,
    /// New bytes of this size, written in place.
    Resize(u64),
    /// A new file of this size renamed over the old one (a new inode), as editors save.
    Replace(u64),
}

/// One file rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Edit {
    /// The index of the file in [`TreePlan::files`].
    pub file: usize,
    /// How.
    pub kind: EditKind,
}

/// Files rewritten together, before one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EditRound {
    /// The run they come before (from 1); if an earlier run already uploaded the whole tree, they
    /// come before the next run instead.
    pub before_run: usize,
    /// The files.
    pub edits: Vec<Edit>,
}

/// A seeded tree as it is first written: what every tree iteration uploads, alone
/// (`--tree`) or shared by cooperating workers (`--tree --workers N`).
#[derive(Debug, Clone)]
pub(super) struct SeededTree {
    /// The seed the tree was drawn from; the files' bytes derive from it.
    pub seed: u64,
    /// Where the tree goes in the bucket, ending with `/`.
    pub prefix: String,
    /// Every file, kept or left out.
    pub files: Vec<FileSpec>,
    /// Directories with nothing in them, which make no key.
    pub empty_dirs: Vec<String>,
}

/// Everything one tree iteration does.
#[derive(Debug, Clone)]
pub(super) struct TreePlan {
    /// The seed the plan was drawn from.
    pub seed: u64,
    /// The tree, under its prefix.
    pub tree: SeededTree,
    /// The checkpoint store (which also keeps the files' digests).
    pub store: Store,
    /// The scheduler; `--parallel N` is the budget of parts in flight for the whole tree.
    pub scheduler: Scheduler,
    /// The server's fault rules (also re-applied at every restart).
    pub rules: Vec<Rule>,
    /// The interruption of each run, in order; runs past the list run undisturbed.
    pub interruptions: Vec<Interruption>,
    /// Files rewritten between runs, in order of `before_run`.
    pub edits: Vec<EditRound>,
}

impl TreePlan {
    /// The plan of seed `seed`, with files of at most `max_size` bytes; server kills only with
    /// `kill_server`.
    pub(super) fn generate(seed: u64, max_size: u64, kill_server: bool) -> TreePlan {
        let mut g = Gen::new(seed);
        let tree = SeededTree::draw(&mut g, seed, max_size);
        let store = g.weighted(&[(1, Store::Files), (1, Store::Sqlite)]);
        let scheduler = if g.chance(0.15) {
            Scheduler::Sequential
        } else {
            Scheduler::Parallel(g.range(2, 8) as u16)
        }
        .maybe_auto(seed);
        // A stalled InitiateMultipartUpload holds a tree run for ossup's 120 s answer timeout
        // unless the watchdog finds the run silent, which other files' results can put off.
        let rules = tree.draw_rules(&mut g, |api, kind| {
            !(kind == "stall" && matches!(api, "*" | "InitiateMultipartUpload"))
        });
        let kept = tree.kept().count() as u64;
        let mut interruptions = Vec::new();
        for _ in 0..g.weighted(&[(1, 0), (3, 1), (3, 2), (2, 3)]) {
            interruptions.push(Interruption::Client(Self::moment(&mut g, kept)));
        }
        if kill_server {
            for _ in 0..g.weighted(&[(1, 0), (2, 1), (1, 2)]) {
                let at = g.below(interruptions.len() as u64 + 1) as usize;
                let kill = Interruption::Server {
                    at: Self::moment(&mut g, kept),
                    client_too: g.chance(0.5),
                    down_ms: g.range(0, 400),
                };
                interruptions.insert(at, kill);
            }
        }
        let edits = Self::edits(&mut g, &tree.files, interruptions.len(), max_size);
        TreePlan {
            seed,
            tree,
            store,
            scheduler,
            rules,
            interruptions,
            edits,
        }
    }
}

impl SeededTree {
    /// Draws the tree of seed `seed` from `g`, with files of at most `max_size` bytes: 150 to 230
    /// small files in nested directories, two or three multipart ones, `*.log` files and a
    /// `*.log` directory to leave out, and an empty directory.
    pub(super) fn draw(g: &mut Gen, seed: u64, max_size: u64) -> SeededTree {
        let prefix = if g.chance(0.3) {
            format!("trees/ü {seed}/")
        } else {
            format!("trees/{seed}/")
        };
        let dirs = Self::directories(g);
        let mut files = Vec::new();
        let small = g.range(150, 230);
        for i in 0..small {
            let dir = &dirs[g.below(dirs.len() as u64) as usize];
            let word = WORDS[g.below(WORDS.len() as u64) as usize];
            let ext = EXTENSIONS[g.below(EXTENSIONS.len() as u64) as usize];
            let size = Self::small_size(g);
            files.push(FileSpec {
                rel: join(dir, &format!("{word} {i}{ext}")),
                size,
                excluded: false,
            });
        }
        // At least two files go multipart whatever the cap; the others may sit at the edge of
        // one part.
        for i in 0..g.range(2, 4) {
            let size = if i < 2 {
                Self::large_size(g, max_size)
            } else {
                g.weighted(&[(1, TREE_PART), (1, TREE_PART + 1), (3, u64::MAX)])
                    .min(Self::large_size(g, max_size))
            };
            let dir = &dirs[g.below(dirs.len() as u64) as usize];
            files.push(FileSpec {
                rel: join(dir, &format!("big {i}.bin")),
                size,
                excluded: false,
            });
        }
        for i in 0..g.range(5, 14) {
            let dir = &dirs[g.below(dirs.len() as u64) as usize];
            let stem = LOG_STEMS[g.below(LOG_STEMS.len() as u64) as usize];
            files.push(FileSpec {
                rel: join(dir, &format!("{stem}{i}.log")),
                size: Self::small_size(g),
                excluded: true,
            });
        }
        if g.chance(0.5) {
            files.push(FileSpec {
                rel: ".log".to_owned(),
                size: g.range(1, 300),
                excluded: true,
            });
        }
        if g.chance(0.5) {
            // A directory `*.log` matches: everything below it is left out, whatever its name.
            let dir = join(&dirs[g.below(dirs.len() as u64) as usize], "old.log");
            for i in 0..g.range(1, 3) {
                files.push(FileSpec {
                    rel: format!("{dir}/kept {i}.txt"),
                    size: Self::small_size(g),
                    excluded: true,
                });
            }
        }
        let empty_dirs = vec!["vide ∅".to_owned(), "vide ∅/encore".to_owned()];
        SeededTree {
            seed,
            prefix,
            files,
            empty_dirs,
        }
    }

    /// Zero to three fault rules for an upload of this tree, of the kinds `allowed` lets through.
    pub(super) fn draw_rules(&self, g: &mut Gen, allowed: fn(&str, &str) -> bool) -> Vec<Rule> {
        let kept = self.kept().count() as u64;
        let large_parts: u64 = self
            .kept()
            .filter(|(_, f)| f.size > TREE_PART)
            .map(|(_, f)| f.size.div_ceil(TREE_PART))
            .sum();
        let nth_limit = |api: &str| match api {
            "PutObject" | "*" => kept.min(60),
            "UploadPart" => large_parts.min(12),
            "HeadObject" => 4,
            _ => 3,
        };
        let space = RuleSpace {
            apis: TREE_APIS,
            allowed,
            body: TREE_PART,
            nth_limit: &nth_limit,
        };
        let rule_count = g.weighted(&[(2, 0), (4, 1), (3, 2), (2, 3)]);
        (0..rule_count).map(|_| draw_rule(g, &space)).collect()
    }

    /// The tree's directories (`""` is the root), up to four deep.
    fn directories(g: &mut Gen) -> Vec<String> {
        let mut dirs = vec![String::new()];
        for _ in 0..g.range(12, 30) {
            let parent = dirs[g.below(dirs.len() as u64) as usize].clone();
            let word = WORDS[g.below(WORDS.len() as u64) as usize];
            let dir = join(&parent, word);
            if parent.matches('/').count() < 3 && !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        dirs
    }

    /// 0 bytes, 1 byte, or up to 8 KiB.
    fn small_size(g: &mut Gen) -> u64 {
        match g.weighted(&[(2, 0), (1, 1), (10, 2), (3, 3)]) {
            2 => g.range(2, 4096),
            3 => g.range(4097, 8192),
            size => size,
        }
    }

    /// 300 KiB to 1.5 MiB, within `max_size`, and always more than two parts.
    fn large_size(g: &mut Gen, max_size: u64) -> u64 {
        let low = (300 * 1024).min(max_size).max(2 * TREE_PART + 1);
        let high = (1536 * 1024).min(max_size).max(low);
        g.range(low, high)
    }
}

impl TreePlan {
    /// Most often after a number of file results; else a few hundred milliseconds in, which can
    /// fall before the first result (while the tree is walked and the bucket listed) or after the
    /// run ended (a tree that is mostly skipped is done in tens of milliseconds).
    fn moment(g: &mut Gen, files: u64) -> Moment {
        if g.chance(0.25) {
            Moment::AfterMs(g.range(0, 600))
        } else {
            Moment::FileResults(g.range(1, files) as usize)
        }
    }

    /// No edits in most iterations; in the others one or two rounds of two to five files, often
    /// a multipart one (whose checkpoint then no longer matches it), now and then a left-out one.
    fn edits(g: &mut Gen, files: &[FileSpec], runs: usize, max_size: u64) -> Vec<EditRound> {
        if !g.chance(0.4) {
            return Vec::new();
        }
        let mut sizes: Vec<u64> = files.iter().map(|f| f.size).collect();
        let large: Vec<usize> = (0..files.len())
            .filter(|&i| !files[i].excluded && files[i].size > TREE_PART)
            .collect();
        let logs: Vec<usize> = (0..files.len()).filter(|&i| files[i].excluded).collect();
        let mut rounds: Vec<EditRound> = Vec::new();
        for _ in 0..g.weighted(&[(3, 1), (1, 2)]) {
            let before_run = g.range(1, runs as u64 + 1) as usize;
            let mut chosen: Vec<usize> = Vec::new();
            if g.chance(0.6) && !large.is_empty() {
                chosen.push(large[g.below(large.len() as u64) as usize]);
            }
            if g.chance(0.3) && !logs.is_empty() {
                chosen.push(logs[g.below(logs.len() as u64) as usize]);
            }
            for _ in 0..g.range(2, 5) {
                chosen.push(g.below(files.len() as u64) as usize);
            }
            chosen.sort_unstable();
            chosen.dedup();
            let edits = chosen
                .into_iter()
                .map(|file| {
                    let kind = Self::edit_kind(g, sizes[file], max_size);
                    sizes[file] = match kind {
                        EditKind::Rewrite => sizes[file],
                        EditKind::Resize(size) | EditKind::Replace(size) => size,
                    };
                    Edit { file, kind }
                })
                .collect();
            rounds.push(EditRound { before_run, edits });
        }
        rounds.sort_by_key(|r| r.before_run);
        rounds
    }

    fn edit_kind(g: &mut Gen, size: u64, max_size: u64) -> EditKind {
        let new_size = |g: &mut Gen| {
            if size > TREE_PART {
                g.weighted(&[(3, u64::MAX), (1, 1), (1, 0)])
                    .min(SeededTree::large_size(g, max_size))
            } else if g.chance(0.2) {
                SeededTree::large_size(g, max_size)
            } else {
                SeededTree::small_size(g)
            }
        };
        let kind = match g.weighted(&[(3, 0), (2, 1), (2, 2)]) {
            0 if size > 0 => EditKind::Rewrite,
            2 => EditKind::Replace(if g.chance(0.5) { size } else { new_size(g) }),
            _ => EditKind::Resize(new_size(g)),
        };
        match kind {
            // An empty file written empty again is no edit.
            EditKind::Resize(0) | EditKind::Replace(0) if size == 0 => {
                EditKind::Resize(g.range(1, 4096))
            }
            kind => kind,
        }
    }
}

impl SeededTree {
    /// The files the upload takes.
    pub(super) fn kept(&self) -> impl Iterator<Item = (usize, &FileSpec)> {
        self.files.iter().enumerate().filter(|(_, f)| !f.excluded)
    }

    /// The bytes of the files the upload takes.
    pub(super) fn kept_bytes(&self) -> u64 {
        self.kept().map(|(_, f)| f.size).sum()
    }

    /// The parts the files the upload takes are sent in (a file put whole is one).
    pub(super) fn kept_parts(&self) -> u64 {
        self.kept()
            .map(|(_, f)| f.size.div_ceil(TREE_PART).max(1))
            .sum()
    }

    /// The key of a file.
    pub(super) fn key(&self, file: &FileSpec) -> String {
        format!("{}{}", self.prefix, file.rel)
    }

    /// Writes the tree under `root` (which must not exist yet).
    pub(super) fn write(&self, root: &Path) -> Result<(), String> {
        for dir in &self.empty_dirs {
            let path = root.join(dir);
            std::fs::create_dir_all(&path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        }
        for (index, file) in self.files.iter().enumerate() {
            let path = root.join(&file.rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            std::fs::write(&path, self.content(index, 0, file.size))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// The bytes of version `version` (0 as first written) of file `index`.
    pub(super) fn content(&self, index: usize, version: u32, size: u64) -> Vec<u8> {
        let mut bytes = vec![0u8; size as usize];
        let stream = ((index as u64) << 16) | u64::from(version);
        Gen::new(self.seed ^ 0x7ee_f11e ^ stream.rotate_left(24)).fill(&mut bytes);
        bytes
    }
}

impl Planned for TreePlan {
    fn seed(&self) -> u64 {
        self.seed
    }

    fn bytes(&self) -> u64 {
        self.tree.kept_bytes()
    }

    fn parts(&self) -> u64 {
        self.tree.kept_parts()
    }

    fn rules(&self) -> &[Rule] {
        &self.rules
    }

    fn describe(&self) -> String {
        let kept = self.tree.kept().count();
        let multipart = self.tree.kept().filter(|(_, f)| f.size > TREE_PART).count();
        let empty = self.tree.kept().filter(|(_, f)| f.size == 0).count();
        let scheduler = self.scheduler.describe();
        let store = match self.store {
            Store::Files => "files",
            Store::Sqlite => "sqlite",
        };
        let rules = rule_names(&self.rules);
        let mut edits = String::new();
        for round in &self.edits {
            let _ = write!(
                edits,
                "{}{} before run {}",
                if edits.is_empty() { "" } else { ", " },
                round.edits.len(),
                round.before_run
            );
        }
        format!(
            "{kept} files of {} ({multipart} multipart, {empty} empty; {} left out) under {:?}, {store}, {scheduler}, faults [{}], {} interruptions, edits [{edits}]",
            report::size(self.bytes()),
            self.tree.files.len() - kept,
            self.tree.prefix,
            rules.join(" "),
            self.interruptions.len()
        )
    }
}

/// `parent/name`, or `name` at the root.
fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_tree() {
        for seed in 0..30 {
            let (a, b) = (
                TreePlan::generate(seed, 4 << 20, true),
                TreePlan::generate(seed, 4 << 20, true),
            );
            assert_eq!(a.describe(), b.describe());
            assert_eq!(a.edits, b.edits);
            assert_eq!(a.interruptions, b.interruptions);
            let rels = |p: &TreePlan| {
                p.tree
                    .files
                    .iter()
                    .map(|f| f.rel.clone())
                    .collect::<Vec<_>>()
            };
            assert_eq!(rels(&a), rels(&b));
            assert_eq!(a.tree.content(3, 1, 100), b.tree.content(3, 1, 100));
            assert_ne!(a.tree.content(3, 1, 100), a.tree.content(3, 2, 100));
            assert_ne!(a.tree.content(3, 1, 100), a.tree.content(4, 1, 100));
        }
    }

    #[test]
    fn a_tree_has_what_the_harness_promises() {
        for seed in 0..200 {
            let plan = TreePlan::generate(seed, 1 << 20, true);
            let kept: Vec<&FileSpec> = plan.tree.kept().map(|(_, f)| f).collect();
            assert!((150..=240).contains(&kept.len()), "{}", plan.describe());
            assert!(kept.iter().any(|f| f.size == 0));
            let multipart = kept.iter().filter(|f| f.size > TREE_PART).count();
            assert!((2..=4).contains(&multipart), "{}", plan.describe());
            assert!(kept.iter().all(|f| f.size <= 1 << 20));
            assert!(kept.iter().any(|f| !f.rel.is_ascii()));
            assert!(kept.iter().any(|f| f.rel.contains(' ')));
            assert!(kept.iter().any(|f| f.rel.contains('/')));
            assert!(plan.tree.files.iter().any(|f| f.excluded));
            let rels: BTreeSet<&str> = plan.tree.files.iter().map(|f| f.rel.as_str()).collect();
            assert_eq!(rels.len(), plan.tree.files.len(), "two files share a path");
            for file in &plan.tree.files {
                let in_log = file.rel.split('/').any(|part| part.ends_with(".log"));
                assert_eq!(file.excluded, in_log, "{}", file.rel);
            }
            for dir in &plan.tree.empty_dirs {
                assert!(
                    !plan
                        .tree
                        .files
                        .iter()
                        .any(|f| f.rel.starts_with(dir.as_str()))
                );
            }
            for rule in &plan.rules {
                assert!(
                    !(rule.kind == "stall" && matches!(rule.api, "*" | "InitiateMultipartUpload")),
                    "{}",
                    rule.json
                );
            }
            for round in &plan.edits {
                assert!((1..=plan.interruptions.len() + 1).contains(&round.before_run));
                assert!((1..=7).contains(&round.edits.len()));
            }
        }
    }

    #[test]
    fn edits_and_kills_of_both_kinds_appear() {
        let plans: Vec<TreePlan> = (0..300)
            .map(|s| TreePlan::generate(s, 4 << 20, true))
            .collect();
        let edits = || {
            plans
                .iter()
                .flat_map(|p| p.edits.iter().flat_map(|r| &r.edits))
        };
        assert!(edits().any(|e| e.kind == EditKind::Rewrite));
        assert!(edits().any(|e| matches!(e.kind, EditKind::Resize(0))));
        assert!(edits().any(|e| matches!(e.kind, EditKind::Resize(s) if s > TREE_PART)));
        assert!(edits().any(|e| matches!(e.kind, EditKind::Replace(_))));
        assert!(plans.iter().any(|p| p.edits.len() == 2));
        assert!(plans.iter().any(|p| p.store == Store::Sqlite));
        assert!(plans.iter().any(|p| p.scheduler == Scheduler::Sequential));
        let moments = || {
            plans.iter().flat_map(|p| {
                p.interruptions.iter().map(|i| match i {
                    Interruption::Client(at) | Interruption::Server { at, .. } => *at,
                })
            })
        };
        assert!(moments().any(|m| matches!(m, Moment::FileResults(_))));
        assert!(moments().any(|m| matches!(m, Moment::AfterMs(_))));
        assert!(plans.iter().any(|p| {
            p.interruptions
                .iter()
                .any(|i| matches!(i, Interruption::Server { .. }))
        }));
    }
}
