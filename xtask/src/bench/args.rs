//! The command line of `cargo xtask bench`: what to measure, how often, and where the JSON goes.

use std::path::PathBuf;

use crate::cmd::{parse_size, target_dir};

/// The source file's size without `--size`: 1 GiB, the size the targets are stated for.
pub(super) const DEFAULT_SIZE: u64 = 1 << 30;
/// The source file's size with `--quick` and no `--size`: enough for a few parts of every setting.
pub(super) const QUICK_SIZE: u64 = 32 << 20;
/// The smallest source accepted: a multipart upload with a part to kill in the middle of.
pub(super) const MIN_SIZE: u64 = 1 << 20;
/// Runs per figure without `--runs`; the medians need at least three.
pub(super) const DEFAULT_RUNS: usize = 3;
/// Parts of the checkpoint-overhead upload (`--quick`: [`QUICK_CHECKPOINT_PARTS`]).
pub(super) const CHECKPOINT_PARTS: u64 = 10_000;
/// Parts of the checkpoint-overhead upload with `--quick`.
pub(super) const QUICK_CHECKPOINT_PARTS: u64 = 200;
/// Files of the tree of small files (`--quick`: [`QUICK_SMALL_TREE_FILES`]).
pub(super) const SMALL_TREE_FILES: u64 = 10_000;
/// Files of the tree of small files with `--quick`.
pub(super) const QUICK_SMALL_TREE_FILES: u64 = 200;
/// Files of the tree of large files (`--quick`: [`QUICK_LARGE_TREE_FILES`]).
pub(super) const LARGE_TREE_FILES: u64 = 100;
/// Files of the tree of large files with `--quick`.
pub(super) const QUICK_LARGE_TREE_FILES: u64 = 5;
/// The upload's size through link shapes a and c without `--shape-size` (b takes a quarter).
pub(super) const DEFAULT_SHAPE_SIZE: u64 = 256 << 20;
/// The smallest `--shape-size`: a quarter of it still makes parts of at least 1 MiB.
pub(super) const MIN_SHAPE_SIZE: u64 = 4 << 20;
/// The smallest part the shapes benchmark uploads in.
const MIN_PART_SIZE: u64 = 1 << 20;

/// What `cargo xtask bench` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BenchArgs {
    /// Bytes of the source file.
    pub size: u64,
    /// Where the JSON results go.
    pub json: PathBuf,
    /// Runs per figure.
    pub runs: usize,
    /// A smoke test of the harness: a small file, one run, a small checkpoint upload, small trees.
    pub quick: bool,
    /// The directory the mock keeps its data under, when not `target/bench/`.
    pub mock_dir: Option<PathBuf>,
    /// Whether the mock fsyncs what it stores (`--mock-fsync`). Off by default: the mock's flushes
    /// time the disk, not the uploader, and a mock killed mid-run loses nothing without them.
    pub mock_fsync: bool,
    /// Measure the link-shape table instead of everything else (`--shapes`).
    pub shapes: bool,
    /// Measure the fleet's figures instead of everything else (`--fleet`): cooperating processes
    /// on one file, and the checkpoint overhead of every store with PostgreSQL's among them.
    pub fleet: bool,
    /// Bytes uploaded through link shapes a and c, and by the rate-limit run; shape b takes a
    /// quarter (`--shape-size`).
    pub shape_size: u64,
    /// Bytes of shape a's longer upload (`--shape-a-size`), at `--parallel 16`, `32` and `auto`
    /// in the same parts as the table's (a 64th of `--shape-size`): `auto`'s climb from 8 over
    /// an upload of many more part times than the table's 64 parts. `None`: not measured.
    pub shape_a_size: Option<u64>,
    /// Bytes of shape b's longer upload (`--shape-b-size`), at `--parallel 8` and `auto` in the
    /// same 1 MiB parts as the table's: the refused share of an upload long enough that one
    /// refusal is not a share of 67 requests. `None`: not measured.
    pub shape_b_size: Option<u64>,
    /// Bytes of the straggler runs on shape a (`--straggler-size`; default `--shape-size`): the
    /// hedge waits at least 2 s, so the upload must be long for its time to stay within 1.2 ×.
    pub straggler_size: u64,
    /// Part size of the straggler runs (`--straggler-part-size`; default a 64th of their size).
    pub straggler_part_size: Option<u64>,
}

impl BenchArgs {
    /// Reads the arguments after `bench`.
    pub(super) fn parse(args: &[String]) -> Result<Self, String> {
        let mut size = None;
        let mut json = None;
        let mut runs = None;
        let mut quick = false;
        let mut mock_dir = None;
        let mut mock_fsync = false;
        let mut shapes = false;
        let mut fleet = false;
        let mut shape_size = None;
        let mut straggler_size = None;
        let mut straggler_part_size = None;
        let mut shape_a_size = None;
        let mut shape_b_size = None;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
                _ => (arg.as_str(), None),
            };
            let mut value = |what: &str| {
                inline
                    .clone()
                    .or_else(|| args.next().cloned())
                    .ok_or_else(|| format!("{flag} needs a value: {what}"))
            };
            match flag {
                "--size" => {
                    size = Some(parse_size(flag, &value("a size such as 1GiB or 256MiB")?)?)
                }
                "--json" => json = Some(PathBuf::from(value("a file name")?)),
                "--mock-dir" => mock_dir = Some(PathBuf::from(value("a directory")?)),
                "--shape-size" => {
                    shape_size = Some(parse_size(flag, &value("a size such as 256MiB")?)?);
                }
                "--shape-a-size" => {
                    shape_a_size = Some(parse_size(flag, &value("a size such as 1GiB")?)?);
                }
                "--shape-b-size" => {
                    shape_b_size = Some(parse_size(flag, &value("a size such as 1GiB")?)?);
                }
                "--straggler-size" => {
                    straggler_size = Some(parse_size(flag, &value("a size such as 2GiB")?)?);
                }
                "--straggler-part-size" => {
                    straggler_part_size = Some(parse_size(flag, &value("a size such as 4MiB")?)?);
                }
                "--runs" => {
                    let text = value("a number of runs, at least 1")?;
                    let n: usize = text
                        .parse()
                        .map_err(|_| format!("--runs {text:?} is not a whole number"))?;
                    if n == 0 {
                        return Err("--runs must be at least 1".to_owned());
                    }
                    runs = Some(n);
                }
                "--quick" if inline.is_none() => quick = true,
                "--mock-fsync" if inline.is_none() => mock_fsync = true,
                "--shapes" if inline.is_none() => shapes = true,
                "--fleet" if inline.is_none() => fleet = true,
                _ => {
                    return Err(format!(
                        "unknown argument {arg:?}; bench takes --size SIZE, --json FILE, --runs N, --mock-dir DIR, --mock-fsync, --quick, --shapes, --fleet, --shape-size SIZE, --shape-a-size SIZE, --shape-b-size SIZE, --straggler-size SIZE and --straggler-part-size SIZE"
                    ));
                }
            }
        }
        let size = size.unwrap_or(if quick { QUICK_SIZE } else { DEFAULT_SIZE });
        if size < MIN_SIZE {
            return Err(format!(
                "--size {size} is too small: the resume measurement needs a multipart upload, give at least 1MiB"
            ));
        }
        let shape_size = shape_size.unwrap_or(DEFAULT_SHAPE_SIZE);
        if shape_size < MIN_SHAPE_SIZE {
            return Err(format!(
                "--shape-size {shape_size} is too small: shape b uploads a quarter of it in parts of at least 1 MiB; give at least 4MiB"
            ));
        }
        if let Some(a) = shape_a_size
            && a < shape_size
        {
            return Err(format!(
                "--shape-a-size {a} is too small: it is uploaded in the table's parts (a 64th of --shape-size) and should be longer than --shape-size; give e.g. 1GiB"
            ));
        }
        if let Some(b) = shape_b_size
            && b < MIN_SHAPE_SIZE
        {
            return Err(format!(
                "--shape-b-size {b} is too small: it is uploaded in parts of 1 MiB and should be longer than the table's quarter of --shape-size; give e.g. 1GiB"
            ));
        }
        let straggler_size = straggler_size.unwrap_or(shape_size);
        if straggler_size < MIN_SHAPE_SIZE {
            return Err(format!(
                "--straggler-size {straggler_size} is too small: the straggler crawls on the 4th part from the end; give at least 4MiB"
            ));
        }
        if let Some(part) = straggler_part_size
            && !(MIN_PART_SIZE..=straggler_size / 8).contains(&part)
        {
            return Err(format!(
                "--straggler-part-size {part} is out of range: parts of at least 1 MiB, and at least 8 of them in --straggler-size {straggler_size}"
            ));
        }
        Ok(Self {
            size,
            json: json.unwrap_or_else(|| target_dir().join("bench.json")),
            // The shapes table is long (its slowest settings take tens of seconds): one run unless
            // asked for more.
            runs: runs.unwrap_or(if quick || shapes || fleet {
                1
            } else {
                DEFAULT_RUNS
            }),
            quick,
            mock_dir,
            mock_fsync,
            shapes,
            fleet,
            shape_size,
            shape_a_size,
            shape_b_size,
            straggler_size,
            straggler_part_size,
        })
    }

    /// Parts of the checkpoint-overhead upload.
    pub(super) fn checkpoint_parts(&self) -> u64 {
        if self.quick {
            QUICK_CHECKPOINT_PARTS
        } else {
            CHECKPOINT_PARTS
        }
    }

    /// Files of the tree of small files.
    pub(super) fn small_tree_files(&self) -> u64 {
        if self.quick {
            QUICK_SMALL_TREE_FILES
        } else {
            SMALL_TREE_FILES
        }
    }

    /// Files of the tree of large files.
    pub(super) fn large_tree_files(&self) -> u64 {
        if self.quick {
            QUICK_LARGE_TREE_FILES
        } else {
            LARGE_TREE_FILES
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<BenchArgs, String> {
        BenchArgs::parse(&args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn defaults_are_a_gibibyte_and_three_runs() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.size, DEFAULT_SIZE);
        assert_eq!(args.runs, DEFAULT_RUNS);
        assert!(!args.quick);
        assert_eq!(args.checkpoint_parts(), CHECKPOINT_PARTS);
        assert_eq!(
            (args.small_tree_files(), args.large_tree_files()),
            (SMALL_TREE_FILES, LARGE_TREE_FILES)
        );
        assert!(args.json.ends_with("bench.json"));
        assert_eq!(args.mock_dir, None);
        assert!(!args.mock_fsync);
        assert!(parse(&["--mock-fsync"]).unwrap().mock_fsync);
        assert!(!args.shapes);
        let shapes = parse(&["--shapes"]).unwrap();
        assert_eq!((shapes.shape_size, shapes.runs), (DEFAULT_SHAPE_SIZE, 1));
        let shapes = parse(&["--shapes", "--shape-size=128MiB", "--runs", "3"]).unwrap();
        assert_eq!((shapes.shape_size, shapes.runs), (128 << 20, 3));
        assert_eq!(
            (shapes.straggler_size, shapes.straggler_part_size),
            (128 << 20, None)
        );
        assert_eq!((shapes.shape_a_size, shapes.shape_b_size), (None, None));
        let long_a = parse(&["--shapes", "--shape-a-size", "1GiB"]).unwrap();
        assert_eq!(long_a.shape_a_size, Some(1 << 30));
        assert!(parse(&["--shapes", "--shape-a-size=64MiB"]).is_err());
        let long_b = parse(&["--shapes", "--shape-b-size", "1GiB"]).unwrap();
        assert_eq!(long_b.shape_b_size, Some(1 << 30));
        assert!(parse(&["--shapes", "--shape-b-size=1MiB"]).is_err());
        let straggler = parse(&[
            "--shapes",
            "--straggler-size=2GiB",
            "--straggler-part-size",
            "4MiB",
        ])
        .unwrap();
        assert_eq!(
            (straggler.straggler_size, straggler.straggler_part_size),
            (2 << 30, Some(4 << 20))
        );
        assert!(!shapes.fleet);
        let fleet = parse(&["--fleet"]).unwrap();
        assert_eq!(
            (fleet.fleet, fleet.size, fleet.runs),
            (true, DEFAULT_SIZE, 1)
        );
        assert!(parse(&["--mock-fsync=yes"]).is_err());
    }

    #[test]
    fn quick_shrinks_everything_but_explicit_flags_win() {
        let quick = parse(&["--quick"]).unwrap();
        assert_eq!((quick.size, quick.runs), (QUICK_SIZE, 1));
        assert_eq!(quick.checkpoint_parts(), QUICK_CHECKPOINT_PARTS);
        assert_eq!(
            (quick.small_tree_files(), quick.large_tree_files()),
            (QUICK_SMALL_TREE_FILES, QUICK_LARGE_TREE_FILES)
        );
        let explicit = parse(&[
            "--quick",
            "--size=8MiB",
            "--runs",
            "2",
            "--json",
            "out.json",
        ])
        .unwrap();
        assert_eq!((explicit.size, explicit.runs), (8 << 20, 2));
        assert_eq!(explicit.json, PathBuf::from("out.json"));
    }

    #[test]
    fn bad_arguments_say_what_was_wrong() {
        assert!(parse(&["--runs", "0"]).unwrap_err().contains("at least 1"));
        assert!(parse(&["--size"]).unwrap_err().contains("needs a value"));
        assert!(
            parse(&["--size", "1KiB"])
                .unwrap_err()
                .contains("too small")
        );
        assert!(parse(&["--fast"]).unwrap_err().contains("unknown argument"));
        assert!(
            parse(&["--shapes", "--shape-size", "1MiB"])
                .unwrap_err()
                .contains("too small")
        );
        assert!(
            parse(&[
                "--shapes",
                "--straggler-size=64MiB",
                "--straggler-part-size=16MiB"
            ])
            .unwrap_err()
            .contains("out of range")
        );
        assert!(
            parse(&["--quick=yes"])
                .unwrap_err()
                .contains("unknown argument")
        );
    }
}
