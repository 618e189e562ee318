//! Running the commands a task is made of, each announced before it runs, and where things are.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a task stopped: what failed and what to do about it.
#[derive(Debug)]
pub(crate) struct Failure(String);

impl Failure {
    /// A failure with this message.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One command of a task, with a name for people.
#[derive(Debug)]
pub(crate) struct Step {
    name: String,
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
}

impl Step {
    /// A step running `program` with `args` in the workspace root.
    pub(crate) fn new(
        name: &str,
        program: impl Into<OsString>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            envs: Vec::new(),
        }
    }

    /// Sets an environment variable for the command, builder style.
    pub(crate) fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// A step running cargo (the one that runs this xtask) with `args`.
    pub(crate) fn cargo(name: &str, args: impl IntoIterator<Item = impl Into<OsString>>) -> Self {
        Self::new(name, cargo(), args)
    }

    /// Appends arguments.
    pub(crate) fn args(&mut self, args: &[impl AsRef<std::ffi::OsStr>]) -> &mut Self {
        self.args
            .extend(args.iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// The command line, for messages.
    pub(crate) fn command_line(&self) -> String {
        // `$CARGO` is a full toolchain path; `cargo` says the same to a reader.
        let program = if self.program == cargo() {
            OsString::from("cargo")
        } else {
            self.program.clone()
        };
        std::iter::once(&program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The command, to run it some other way than [`run`](Self::run).
    ///
    /// A cargo step runs without the variables `cargo run` set for this xtask (`CARGO_PKG_NAME=xtask`,
    /// `CARGO_MANIFEST_DIR`, ...): build scripts that watch them (ring's does) would otherwise see
    /// them change between `cargo build` and `cargo xtask`, and rebuild ring and all that depends on
    /// it each time one follows the other.
    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        if self.program == cargo() {
            for (key, _) in std::env::vars_os() {
                if is_cargo_run_variable(&key) {
                    command.env_remove(key);
                }
            }
        }
        command
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .current_dir(workspace_root());
        command
    }

    /// The step's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Prints what is about to run.
    pub(crate) fn announce(&self) {
        println!("==> {}: {}", self.name, self.command_line());
    }

    /// Announces and runs the step in the workspace root, with the terminal's stdout and stderr.
    pub(crate) fn run(&self) -> Result<(), Failure> {
        self.announce();
        let status = self.command().status().map_err(|e| {
            Failure::new(format!(
                "{}: could not start `{}`: {e}",
                self.name,
                self.command_line()
            ))
        })?;
        if status.success() {
            Ok(())
        } else {
            Err(Failure::new(format!(
                "{}: `{}` exited with {status}",
                self.name,
                self.command_line()
            )))
        }
    }
}

/// Whether `key` is one of the variables cargo sets for the package it runs (`CARGO_PKG_*`,
/// `CARGO_MANIFEST_*`, `CARGO_CRATE_NAME`, `CARGO_BIN_NAME`, `CARGO_PRIMARY_PACKAGE`), as opposed to
/// those that configure cargo itself (`CARGO_HOME`, `CARGO_TARGET_DIR`, `CARGO`, ...).
fn is_cargo_run_variable(key: &std::ffi::OsStr) -> bool {
    let Some(key) = key.to_str() else {
        return false;
    };
    key.starts_with("CARGO_PKG_")
        || key.starts_with("CARGO_MANIFEST_")
        || matches!(
            key,
            "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
        )
}

/// The cargo that runs this xtask (`$CARGO`), or `cargo` from `PATH`.
pub(crate) fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The workspace root: the parent of this crate's directory.
pub(crate) fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` or `target/` in the workspace root.
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// A byte count as typed: `1GiB`, `256MiB`, `100KiB`, `500MB`, or plain bytes. `K`, `M`, `G` alone
/// are binary, as `dd` reads them; `KB`, `MB`, `GB` are decimal.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    let number: u64 = number.parse().map_err(|_| {
        format!("size {text:?} does not start with a whole number; write e.g. 1GiB, 256MiB or 4096")
    })?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "size {text:?} has an unknown unit {other:?}; use B, KiB, MiB, GiB (or K, M, G), KB, MB, GB"
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_name_cargo_plainly_and_keep_arguments_in_order() {
        let mut step = Step::cargo("tests", ["test", "--workspace"]);
        step.args(&["--", "--nocapture"]);
        assert_eq!(step.command_line(), "cargo test --workspace -- --nocapture");
        let python = Step::new("peer", "python3", ["-m", "venv"]);
        assert_eq!(python.command_line(), "python3 -m venv");
    }

    #[test]
    fn cargo_steps_drop_the_variables_cargo_set_for_this_package_and_keep_their_own() {
        // `cargo test` sets CARGO_PKG_NAME and CARGO_MANIFEST_DIR for this test binary, as `cargo
        // run` does for xtask.
        assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
        let command = Step::cargo("build", ["build"])
            .env("CARGO_TERM_COLOR", "never")
            .command();
        let envs: Vec<(String, Option<String>)> = command
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        assert!(
            envs.contains(&("CARGO_PKG_NAME".to_owned(), None)),
            "{envs:?}"
        );
        assert!(
            envs.contains(&("CARGO_MANIFEST_DIR".to_owned(), None)),
            "{envs:?}"
        );
        assert!(envs.contains(&("CARGO_TERM_COLOR".to_owned(), Some("never".to_owned()))));
        assert!(!envs.iter().any(|(k, _)| k == "CARGO_HOME" || k == "CARGO"));
        // Other programs get the environment as it is.
        let python = Step::new("peer", "python3", ["-V"]).command();
        assert_eq!(python.get_envs().count(), 0);
        assert!(is_cargo_run_variable("CARGO_PKG_VERSION_MAJOR".as_ref()));
        assert!(!is_cargo_run_variable("CARGO_TARGET_DIR".as_ref()));
    }

    #[test]
    fn workspace_root_holds_the_workspace_manifest_and_the_peer_script() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
        assert!(
            workspace_root()
                .join("conformance/peers/oss2_peer.py")
                .is_file()
        );
    }

    #[test]
    fn sizes_read_binary_and_decimal_units() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("100KB"), Ok(100_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert!(parse_size("1.5GiB").unwrap_err().contains("unknown unit"));
        assert!(parse_size("GiB").unwrap_err().contains("whole number"));
        assert!(
            parse_size("99999999999999GiB")
                .unwrap_err()
                .contains("too large")
        );
    }
}
