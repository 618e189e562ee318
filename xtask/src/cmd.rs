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

/// The bytes given to `flag`, read as every tool of the workspace reads a size
/// ([`ossup_proto::units::parse_size`]: `1GiB`, `256MiB`, `500MB`, `4096`).
pub(crate) fn parse_size(flag: &str, text: &str) -> Result<u64, String> {
    ossup_proto::units::parse_size(text).map_err(|error| format!("{flag}: {error}"))
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
    fn a_size_that_cannot_be_read_names_its_flag() {
        assert_eq!(parse_size("--size", "1.5GiB"), Ok(3 << 29));
        let error = parse_size("--size", "1 parsec").unwrap_err();
        assert!(error.starts_with("--size: "), "{error}");
        assert!(error.contains("unknown unit"), "{error}");
    }
}
