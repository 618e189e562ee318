//! The files of `ossup upload DIR --recursive`: a walk of the tree with gitignore-style include and
//! exclude globs, symbolic links followed or not, and each file's key (PREFIX + the path below DIR,
//! `/`-separated).

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::failure::Failure;

/// One regular file of the tree, or an entry the walk could not use.
#[derive(Debug)]
pub(crate) enum TreeEntry {
    /// A file to upload.
    File {
        path: PathBuf,
        key: String,
        size: u64,
    },
    /// Something that should have been a file and cannot be uploaded: a name that is not UTF-8, an
    /// unreadable directory, a symbolic link loop.
    Unusable {
        path: PathBuf,
        key: String,
        reason: String,
    },
}

/// What a walk found.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    /// Files and unusable entries, in path order.
    pub entries: Vec<TreeEntry>,
    /// Symbolic links not followed (without `--follow-symlinks`).
    pub links_skipped: u64,
    /// Files left out by `--include` / `--exclude`.
    pub filtered_out: u64,
}

impl Tree {
    /// The bytes of the usable files.
    pub(crate) fn total_bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match e {
                TreeEntry::File { size, .. } => *size,
                TreeEntry::Unusable { .. } => 0,
            })
            .sum()
    }
}

/// Which relative paths a walk keeps: those matching an include (when any is given) and no exclude.
#[derive(Debug)]
pub(crate) struct Filter {
    include: Option<GlobSet>,
    exclude: GlobSet,
}

impl Filter {
    /// Builds the filter from gitignore-style patterns: a pattern without `/` matches a name at any
    /// depth (`*.log`, `node_modules`), one with `/` matches from the tree's root (`docs/*.md`,
    /// `/build`), a trailing `/` matches only directories, and a matching directory takes
    /// everything below it.
    pub(crate) fn new(include: &[String], exclude: &[String]) -> Result<Self, Failure> {
        let include = if include.is_empty() {
            None
        } else {
            Some(glob_set("--include", include)?)
        };
        Ok(Self {
            include,
            exclude: glob_set("--exclude", exclude)?,
        })
    }

    /// Whether the file at `relative` (`/`-separated, below the tree's root) is kept.
    pub(crate) fn keeps(&self, relative: &str) -> bool {
        if self.exclude.is_match(relative) {
            return false;
        }
        self.include
            .as_ref()
            .is_none_or(|set| set.is_match(relative))
    }
}

fn glob_set(flag: &str, patterns: &[String]) -> Result<GlobSet, Failure> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        for glob in gitignore_globs(pattern) {
            let built = GlobBuilder::new(&glob)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| {
                    Failure::usage(format!("{flag} {pattern:?} is not a valid glob: {e}"))
                        .hint("globs take *, ?, [abc], {a,b} and ** (any depth), as in .gitignore")
                })?;
            set.add(built);
        }
    }
    set.build()
        .map_err(|e| Failure::usage(format!("{flag}: {e}")))
}

/// The globs a gitignore-style pattern stands for, matched against `/`-separated relative paths.
fn gitignore_globs(pattern: &str) -> Vec<String> {
    let (pattern, directory_only) = match pattern.strip_suffix('/') {
        Some(stripped) => (stripped, true),
        None => (pattern, false),
    };
    let anchored = pattern.contains('/');
    let pattern = pattern.trim_start_matches('/');
    let base = if anchored || pattern.starts_with("**") {
        pattern.to_owned()
    } else {
        format!("**/{pattern}")
    };
    let below = format!("{base}/**");
    if directory_only {
        vec![below]
    } else {
        vec![base, below]
    }
}

/// The key of the file at `relative` below the tree's root under `prefix`.
pub(crate) fn key_for(prefix: &str, relative: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        format!("{prefix}{relative}")
    } else {
        format!("{prefix}/{relative}")
    }
}

/// Walks `root` in path order.
pub(crate) fn walk(
    root: &Path,
    prefix: &str,
    filter: &Filter,
    follow_symlinks: bool,
) -> Result<Tree, Failure> {
    let meta = std::fs::metadata(root).map_err(|e| {
        Failure::failed(format!("cannot read the directory {}: {e}", root.display()))
    })?;
    if !meta.is_dir() {
        return Err(Failure::usage(format!(
            "{} is not a directory; --recursive uploads a directory tree (drop --recursive to upload one file)",
            root.display()
        )));
    }
    let mut tree = Tree::default();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(follow_symlinks)
        .sort_by_file_name()
        .min_depth(1);
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                let path = e
                    .path()
                    .map(Path::to_owned)
                    .unwrap_or_else(|| root.to_owned());
                let relative = relative_lossy(root, &path);
                let reason = match e.loop_ancestor() {
                    Some(ancestor) => format!(
                        "a symbolic link loop: it leads back to {}; exclude it or drop --follow-symlinks",
                        ancestor.display()
                    ),
                    None => format!("cannot read it: {e}"),
                };
                tree.entries.push(TreeEntry::Unusable {
                    key: key_for(prefix, &relative),
                    path,
                    reason,
                });
                continue;
            }
        };
        let file_type = entry.file_type();
        if file_type.is_symlink() {
            // Only seen when links are not followed (a followed link reports its target's type).
            tree.links_skipped += 1;
            continue;
        }
        if !file_type.is_file() {
            continue;
        }
        let path = entry.path().to_owned();
        let Some(relative) = relative_utf8(root, &path) else {
            let relative = relative_lossy(root, &path);
            tree.entries.push(TreeEntry::Unusable {
                key: key_for(prefix, &relative),
                path,
                reason:
                    "its path is not valid UTF-8, and an OSS key must be; rename it or exclude it"
                        .to_owned(),
            });
            continue;
        };
        if !filter.keeps(&relative) {
            tree.filtered_out += 1;
            continue;
        }
        let size = match entry.metadata() {
            Ok(meta) => meta.len(),
            Err(e) => {
                tree.entries.push(TreeEntry::Unusable {
                    key: key_for(prefix, &relative),
                    path,
                    reason: format!("cannot read its size: {e}"),
                });
                continue;
            }
        };
        tree.entries.push(TreeEntry::File {
            key: key_for(prefix, &relative),
            path,
            size,
        });
    }
    Ok(tree)
}

/// The path below `root`, `/`-separated, when every component is UTF-8.
fn relative_utf8(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = relative
        .components()
        .map(|c| c.as_os_str().to_str())
        .collect();
    Some(parts?.join("/"))
}

fn relative_lossy(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> Filter {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Filter::new(&own(include), &own(exclude)).unwrap()
    }

    #[test]
    fn patterns_behave_as_in_gitignore() {
        let f = filter(
            &[],
            &["*.log", "node_modules", "/build", "docs/*.tmp", "cache/"],
        );
        assert!(!f.keeps("a.log"));
        assert!(!f.keeps("deep/er/b.log"));
        assert!(!f.keeps("web/node_modules/x/y.js"));
        assert!(!f.keeps("build/out.bin"));
        assert!(
            f.keeps("src/build/out.bin"),
            "/build is anchored at the root"
        );
        assert!(!f.keeps("docs/a.tmp"));
        assert!(f.keeps("docs/sub/a.tmp"), "* does not cross /");
        assert!(!f.keeps("x/cache/entry"));
        assert!(f.keeps("x/cache"), "cache/ matches only a directory");
        assert!(f.keeps("src/main.rs"));
    }

    #[test]
    fn includes_select_and_excludes_win() {
        let f = filter(&["*.jpg", "raw/**"], &["private/"]);
        assert!(f.keeps("a.jpg"));
        assert!(f.keeps("raw/x.cr2"));
        assert!(!f.keeps("notes.txt"));
        assert!(!f.keeps("private/me.jpg"));
    }

    #[test]
    fn a_bad_glob_is_a_usage_error_naming_the_flag() {
        let err = Filter::new(&[], &["a[".to_owned()]).unwrap_err();
        assert_eq!(err.exit_code, crate::failure::EXIT_USAGE);
        assert!(err.message.contains("--exclude \"a[\""), "{err}");
    }

    #[test]
    fn keys_join_the_prefix_and_the_relative_path() {
        assert_eq!(key_for("", "a/b.txt"), "a/b.txt");
        assert_eq!(key_for("backup/", "a/b.txt"), "backup/a/b.txt");
        assert_eq!(key_for("backup", "a/b.txt"), "backup/a/b.txt");
    }

    #[cfg(unix)]
    #[test]
    fn a_walk_keeps_files_in_order_skips_links_and_reports_loops() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/c")).unwrap();
        std::fs::create_dir_all(root.join("empty")).unwrap();
        std::fs::write(root.join("b/c/z.txt"), b"zz").unwrap();
        std::fs::write(root.join("a.txt"), b"a").unwrap();
        std::fs::write(root.join("skip.log"), b"l").unwrap();
        std::os::unix::fs::symlink(root.join("a.txt"), root.join("link.txt")).unwrap();
        std::os::unix::fs::symlink(root, root.join("b/up")).unwrap();

        let keys = |tree: &Tree| -> Vec<String> {
            tree.entries
                .iter()
                .map(|e| match e {
                    TreeEntry::File { key, .. } => key.clone(),
                    TreeEntry::Unusable { key, .. } => format!("!{key}"),
                })
                .collect()
        };
        let tree = walk(root, "p/", &filter(&[], &["*.log"]), false).unwrap();
        assert_eq!(keys(&tree), ["p/a.txt", "p/b/c/z.txt"]);
        assert_eq!((tree.links_skipped, tree.filtered_out), (2, 1));
        assert_eq!(tree.total_bytes(), 3);

        let followed = walk(root, "p/", &filter(&[], &["*.log"]), true).unwrap();
        assert_eq!(
            keys(&followed),
            ["p/a.txt", "p/b/c/z.txt", "!p/b/up", "p/link.txt"]
        );
        let TreeEntry::Unusable { reason, .. } = &followed.entries[2] else {
            panic!("no loop reported")
        };
        assert!(reason.contains("symbolic link loop"), "{reason}");
    }

    #[test]
    fn a_file_given_as_the_tree_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let err = walk(&file, "", &filter(&[], &[]), false).unwrap_err();
        assert_eq!(err.exit_code, crate::failure::EXIT_USAGE);
    }
}
