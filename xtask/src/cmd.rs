//! Running the commands a task is made of, each announced before it runs, and where things are.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a task stopped: what failed and what to do about it.
#[derive(Debug)]
pub struct Failure(String);

impl Failure {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
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
pub struct Step {
    name: String,
    program: OsString,
    args: Vec<OsString>,
}

impl Step {
    /// A step running `program` with `args` in the workspace root.
    pub fn new(
        name: &str,
        program: impl Into<OsString>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// A step running cargo (the one that runs this xtask) with `args`.
    pub fn cargo(name: &str, args: impl IntoIterator<Item = impl Into<OsString>>) -> Self {
        Self::new(name, cargo(), args)
    }

    /// Appends arguments.
    pub fn args(&mut self, args: &[impl AsRef<std::ffi::OsStr>]) -> &mut Self {
        self.args
            .extend(args.iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// The command line, for messages.
    pub fn command_line(&self) -> String {
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
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args).current_dir(workspace_root());
        command
    }

    /// The step's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Prints what is about to run.
    pub fn announce(&self) {
        println!("==> {}: {}", self.name, self.command_line());
    }

    /// Announces and runs the step in the workspace root, with the terminal's stdout and stderr.
    pub fn run(&self) -> Result<(), Failure> {
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

/// The cargo that runs this xtask (`$CARGO`), or `cargo` from `PATH`.
pub fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The workspace root: the parent of this crate's directory.
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` or `target/` in the workspace root.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
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
    fn workspace_root_holds_the_workspace_manifest_and_the_peer_script() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
        assert!(
            workspace_root()
                .join("conformance/peers/oss2_peer.py")
                .is_file()
        );
    }
}
