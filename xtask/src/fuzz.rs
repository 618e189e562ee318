//! `cargo xtask fuzz`: coverage-guided fuzzing of every parser that reads hostile input, with
//! libFuzzer through cargo-fuzz, on the stable toolchain.
//!
//! The targets are `fuzz/fuzz_targets/*.rs`, each calling its body in the `ossup-fuzz-targets`
//! crate (`fuzz/targets/`). cargo-fuzz's instrumentation needs `-Z` flags, which stable rustc takes
//! with `RUSTC_BOOTSTRAP=1`; without a sanitizer (`--sanitizer none`), as the targets are safe Rust
//! and the ASan runtime is not needed to see a panic. Each target runs for its share of time from
//! its seed corpus (`fuzz/corpus/TARGET/`, read only) and the corpus earlier runs grew
//! (`target/fuzz/corpus/TARGET/`); a crashing, hanging or memory-hungry input is kept in
//! `target/fuzz/artifacts/TARGET/`, and the task fails naming it. `docs/security.md` ("Fuzzing")
//! has the figures and what to do with a crash.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::cmd::{Failure, Step, cargo, target_dir, workspace_root};

/// Minutes per target when `--minutes` is not given: what issue 18 asks for the published figures.
const DEFAULT_MINUTES: f64 = 10.0;
/// Seconds one input may take before libFuzzer calls it a hang.
const INPUT_TIMEOUT_SECS: u32 = 10;
/// Memory one run may use before libFuzzer calls it out of memory.
const RSS_LIMIT_MB: u32 = 2048;

/// What `cargo xtask fuzz` was asked to do.
#[derive(Debug, Clone, PartialEq)]
struct FuzzArgs {
    minutes: f64,
    /// Targets to run; every target when empty.
    targets: Vec<String>,
}

impl FuzzArgs {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut parsed = Self {
            minutes: DEFAULT_MINUTES,
            targets: Vec::new(),
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .ok_or_else(|| format!("{name} needs a value; see cargo xtask --help"))
            };
            match arg.as_str() {
                "--minutes" => {
                    let text = value("--minutes")?;
                    parsed.minutes = text
                        .trim()
                        .parse()
                        .ok()
                        .filter(|m: &f64| m.is_finite() && *m > 0.0)
                        .ok_or_else(|| {
                            format!("--minutes {text:?} is not a number of minutes above zero")
                        })?;
                }
                "--target" => parsed.targets.push(value("--target")?.clone()),
                other => {
                    return Err(format!(
                        "unknown argument {other:?}; fuzz takes --minutes N (per target) and --target NAME (repeatable)"
                    ));
                }
            }
        }
        Ok(parsed)
    }
}

/// Runs `cargo xtask fuzz ARGS`.
pub(crate) fn run(args: &[String]) -> Result<(), Failure> {
    let args = FuzzArgs::parse(args).map_err(Failure::new)?;
    let fuzz_dir = workspace_root().join("fuzz");
    let all = list_targets(&fuzz_dir)?;
    let targets = if args.targets.is_empty() {
        all
    } else {
        if let Some(unknown) = args.targets.iter().find(|t| !all.contains(t)) {
            return Err(Failure::new(format!(
                "there is no fuzz target {unknown:?}; the targets are {}",
                all.join(", ")
            )));
        }
        args.targets.clone()
    };
    ensure_cargo_fuzz()?;
    let work = target_dir().join("fuzz");
    build(&fuzz_dir, &work)?;
    let binaries = work.join(host_triple()?).join("release");
    println!(
        "==> fuzz: {} targets, {} min each, about {:.0} min in all",
        targets.len(),
        args.minutes,
        args.minutes * targets.len() as f64
    );
    let mut results = Vec::new();
    for target in &targets {
        let result = run_target(target, &binaries, &fuzz_dir, &work, args.minutes)?;
        println!(
            "    {target}: {} executions in {:.1} min, {} crashing inputs",
            result.executions,
            result.minutes,
            result.crashes.len()
        );
        results.push(result);
    }
    println!("\n{}", table(&results));
    let crashes: Vec<&Path> = results
        .iter()
        .flat_map(|r| r.crashes.iter().map(PathBuf::as_path))
        .collect();
    if crashes.is_empty() {
        println!("cargo xtask fuzz: no crash in {} targets", results.len());
        return Ok(());
    }
    Err(Failure::new(format!(
        "{} crashing inputs:\n{}\nRun one again with `target/fuzz/{}/release/TARGET FILE`; make \
         each a regression test in the crate that owns the parser, fix it, and run the fuzzer again",
        crashes.len(),
        crashes
            .iter()
            .map(|path| format!("  {}", path.display()))
            .collect::<Vec<_>>()
            .join("\n"),
        host_triple().unwrap_or_else(|_| "HOST".to_owned())
    )))
}

/// The targets: the harness files `fuzz/fuzz_targets/NAME.rs`, by name.
fn list_targets(fuzz_dir: &Path) -> Result<Vec<String>, Failure> {
    let dir = fuzz_dir.join("fuzz_targets");
    let entries = fs::read_dir(&dir).map_err(|e| {
        Failure::new(format!(
            "cannot list the fuzz targets in {}: {e}",
            dir.display()
        ))
    })?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .filter_map(|path| Some(path.file_stem()?.to_str()?.to_owned()))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(Failure::new(format!(
            "no fuzz targets in {}",
            dir.display()
        )));
    }
    Ok(names)
}

/// Installs cargo-fuzz from crates.io when `cargo fuzz` is not there.
fn ensure_cargo_fuzz() -> Result<(), Failure> {
    let installed = Command::new(cargo())
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if installed {
        return Ok(());
    }
    Step::cargo(
        "install cargo-fuzz (not found)",
        ["install", "cargo-fuzz", "--locked"],
    )
    .run()
}

/// The cargo-fuzz arguments both the build and a manual run need.
fn cargo_fuzz_options(fuzz_dir: &Path, work: &Path) -> Vec<OsString> {
    vec![
        "--sanitizer".into(),
        "none".into(),
        "--fuzz-dir".into(),
        fuzz_dir.into(),
        "--target-dir".into(),
        work.into(),
    ]
}

/// Builds every target, instrumented, in release mode with debug assertions.
fn build(fuzz_dir: &Path, work: &Path) -> Result<(), Failure> {
    let mut step = Step::cargo("build the fuzz targets", ["fuzz", "build"])
        // cargo-fuzz's instrumentation flags are `-Z` flags; stable rustc takes them this way.
        .env("RUSTC_BOOTSTRAP", "1");
    step.args(&cargo_fuzz_options(fuzz_dir, work));
    step.run()
}

/// The host's target triple, which cargo-fuzz builds for and names its output directory after.
fn host_triple() -> Result<String, Failure> {
    let output = Command::new("rustc")
        .arg("-vV")
        .output()
        .map_err(|e| Failure::new(format!("could not run `rustc -vV`: {e}")))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| Failure::new("`rustc -vV` names no host triple"))
}

/// What one target's run did.
#[derive(Debug)]
struct TargetResult {
    name: String,
    minutes: f64,
    executions: u64,
    corpus: usize,
    crashes: Vec<PathBuf>,
}

fn run_target(
    name: &str,
    binaries: &Path,
    fuzz_dir: &Path,
    work: &Path,
    minutes: f64,
) -> Result<TargetResult, Failure> {
    let failure = |what: String| Failure::new(format!("fuzz target {name}: {what}"));
    let corpus = work.join("corpus").join(name);
    let seeds = fuzz_dir.join("corpus").join(name);
    let artifacts = work.join("artifacts").join(name);
    let log_path = work.join("logs").join(format!("{name}.log"));
    // Inputs of an earlier run were reported then; a crash this run finds is this run's.
    if artifacts.exists() {
        fs::remove_dir_all(&artifacts)
            .map_err(|e| failure(format!("cannot empty {}: {e}", artifacts.display())))?;
    }
    for dir in [&corpus, &artifacts, &work.join("logs")] {
        fs::create_dir_all(dir)
            .map_err(|e| failure(format!("cannot create {}: {e}", dir.display())))?;
    }
    let log = fs::File::create(&log_path)
        .map_err(|e| failure(format!("cannot create {}: {e}", log_path.display())))?;
    let stderr = log
        .try_clone()
        .map_err(|e| failure(format!("cannot share {}: {e}", log_path.display())))?;
    let seconds = (minutes * 60.0).round().max(1.0) as u64;
    let mut command = Command::new(binaries.join(name));
    command
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg("-print_final_stats=1")
        // libFuzzer joins the prefix and the file name as strings.
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        // New inputs go to the first directory; the seeds in the repository are only read.
        .arg(&corpus)
        .arg(&seeds)
        .current_dir(workspace_root())
        .stdout(log)
        .stderr(stderr);
    println!(
        "==> fuzz {name} for {seconds} s (log: {})",
        log_path.display()
    );
    let started = Instant::now();
    let status = command.status().map_err(|e| {
        failure(format!(
            "could not start {}: {e}",
            binaries.join(name).display()
        ))
    })?;
    let elapsed = started.elapsed().as_secs_f64() / 60.0;
    let log_text = fs::read_to_string(&log_path).unwrap_or_default();
    let crashes = crashing_inputs(&artifacts)?;
    if !status.success() && crashes.is_empty() {
        return Err(failure(format!(
            "libFuzzer exited with {status} and kept no input; see {}",
            log_path.display()
        )));
    }
    Ok(TargetResult {
        name: name.to_owned(),
        minutes: elapsed,
        executions: executions(&log_text),
        corpus: fs::read_dir(&corpus).map_or(0, |entries| entries.count()),
        crashes,
    })
}

/// The inputs libFuzzer kept because they crashed, hung, or ran out of memory.
fn crashing_inputs(artifacts: &Path) -> Result<Vec<PathBuf>, Failure> {
    let entries = fs::read_dir(artifacts)
        .map_err(|e| Failure::new(format!("cannot list {}: {e}", artifacts.display())))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                ["crash-", "timeout-", "oom-", "leak-"]
                    .iter()
                    .any(|p| n.starts_with(p))
            })
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Inputs run, from libFuzzer's final statistics, or else from its last status line (`#N ...`).
fn executions(log: &str) -> u64 {
    let from_stats = log.lines().find_map(|line| {
        line.strip_prefix("stat::number_of_executed_units:")
            .and_then(|n| n.trim().parse().ok())
    });
    from_stats.unwrap_or_else(|| {
        log.lines()
            .filter_map(|line| line.strip_prefix('#'))
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .max()
            .unwrap_or(0)
    })
}

/// The results as a markdown table, as `docs/security.md` shows them.
fn table(results: &[TargetResult]) -> String {
    let mut out = String::from(
        "| target | minutes | executions | executions/s | corpus grown to | crashing inputs |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for r in results {
        out.push_str(&format!(
            "| `{}` | {:.1} | {} | {:.0} | {} | {} |\n",
            r.name,
            r.minutes,
            r.executions,
            r.executions as f64 / (r.minutes * 60.0).max(1.0),
            r.corpus,
            r.crashes.len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<FuzzArgs, String> {
        FuzzArgs::parse(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn arguments_take_minutes_and_targets_and_refuse_the_rest() {
        assert_eq!(args(&[]).unwrap().minutes, DEFAULT_MINUTES);
        let parsed = args(&["--minutes", "2.5", "--target", "a", "--target", "b"]).unwrap();
        assert_eq!(parsed.minutes, 2.5);
        assert_eq!(parsed.targets, ["a", "b"]);
        assert!(
            args(&["--minutes", "0"])
                .unwrap_err()
                .contains("above zero")
        );
        assert!(args(&["--minutes"]).unwrap_err().contains("needs a value"));
        assert!(
            args(&["--seed", "1"])
                .unwrap_err()
                .contains("unknown argument")
        );
    }

    #[test]
    fn executions_come_from_the_final_stats_or_the_last_status_line() {
        let finished = "#2\tINITED cov: 10\n#4096\tpulse  cov: 20\nDone 5000 runs in 1 second(s)\nstat::number_of_executed_units: 5000\n";
        assert_eq!(executions(finished), 5000);
        let crashed = "#2\tINITED cov: 10\n#812\tNEW    cov: 30 ft: 40\n==1== ERROR: libFuzzer: deadly signal\n";
        assert_eq!(executions(crashed), 812);
        assert_eq!(executions(""), 0);
    }

    #[test]
    fn every_target_in_the_repository_is_listed() {
        let targets = list_targets(&workspace_root().join("fuzz")).unwrap();
        assert!(targets.contains(&"client_xml".to_owned()), "{targets:?}");
        assert!(targets.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
