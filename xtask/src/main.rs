//! Repository automation, run as `cargo xtask <command>` (an alias in `.cargo/config.toml`).
//!
//! Plain Rust with no dependencies, so it builds in seconds and needs nothing but cargo and, for the
//! oss2 check, `python3`.
//!
//! - `test`: the one test command: formatting, clippy, every workspace test, the conformance suite
//!   and the oss2 check, stopping at the first failure.
//! - `conformance [ARGS]`: the conformance suite against the mock (or `OSSUP_CONFORMANCE_*`), as a table.
//! - `oss2`: the official Python SDK, oss2, against the mock server binary.

mod cmd;
mod oss2;

use std::process::ExitCode;

use cmd::{Failure, Step};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test                 the one test command: cargo fmt --check, cargo clippy -D warnings,
                       cargo test --workspace, the conformance suite, the oss2 check;
                       stops at the first step that fails
  conformance [ARGS]   the OSS wire conformance suite as a table (ARGS go to ossup-conformance,
                       e.g. --filter complete, --list); against the mock unless
                       OSSUP_CONFORMANCE_ENDPOINT, OSSUP_CONFORMANCE_BUCKET, OSS_ACCESS_KEY_ID and
                       OSS_ACCESS_KEY_SECRET are set
  oss2                 the official Python SDK oss2 (in a venv under target/) against the
                       oss-mock binary: conformance/peers/oss2_peer.py";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((command, rest)) => (command.as_str(), rest),
        None => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        "test" => no_arguments(command, rest).and_then(|()| test()),
        "conformance" => conformance(rest).run(),
        "oss2" => no_arguments(command, rest).and_then(|()| oss2::run()),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("cargo xtask: unknown command {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("\ncargo xtask {command}: {failure}");
            ExitCode::FAILURE
        }
    }
}

fn no_arguments(command: &str, rest: &[String]) -> Result<(), Failure> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(format!(
            "`{command}` takes no arguments, got {rest:?}; see cargo xtask --help"
        )))
    }
}

/// The conformance suite's own binary, which prints the table and the closing line.
fn conformance(args: &[String]) -> Step {
    let mut step = Step::cargo(
        "conformance suite (table)",
        ["run", "--quiet", "--package", "ossup-conformance", "--"],
    );
    step.args(args);
    step
}

fn test() -> Result<(), Failure> {
    let steps: Vec<Box<dyn Fn() -> Result<(), Failure>>> = vec![
        Box::new(|| Step::cargo("formatting", ["fmt", "--all", "--", "--check"]).run()),
        Box::new(|| {
            Step::cargo(
                "clippy",
                [
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ],
            )
            .run()
        }),
        Box::new(|| Step::cargo("tests", ["test", "--workspace"]).run()),
        Box::new(|| conformance(&[]).run()),
        Box::new(oss2::run),
    ];
    let total = steps.len();
    for (i, step) in steps.iter().enumerate() {
        println!("\n==> cargo xtask test: step {} of {total}", i + 1);
        step().map_err(|failure| {
            Failure::new(format!(
                "step {} of {total} failed: {failure}. Fix it and run `cargo xtask test` again.",
                i + 1
            ))
        })?;
    }
    println!("\ncargo xtask test: all {total} steps passed");
    Ok(())
}
