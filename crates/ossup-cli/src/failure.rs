//! How a command ends badly: a sentence for a person, what to do about it, and the exit code.

use std::fmt;
use std::process::ExitCode;

/// Exit code: the command did what was asked.
pub(crate) const EXIT_OK: u8 = 0;
/// Exit code: the command failed (network, service, file, integrity, checkpoint).
pub(crate) const EXIT_FAILURE: u8 = 1;
/// Exit code: the command line or the environment is wrong; nothing was attempted.
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code: interrupted by Ctrl-C or SIGTERM.
pub(crate) const EXIT_CANCELLED: u8 = 130;

/// A failure to report: printed as `error: MESSAGE` then one line per hint, on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// What went wrong, as a sentence.
    pub message: String,
    /// What to do about it, one suggestion per entry.
    pub hints: Vec<String>,
    /// The process exit code.
    pub exit_code: u8,
}

impl Failure {
    /// A failure of the command line or the environment (exit 2).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hints: Vec::new(),
            exit_code: EXIT_USAGE,
        }
    }

    /// A failure while doing the work (exit 1).
    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hints: Vec::new(),
            exit_code: EXIT_FAILURE,
        }
    }

    /// An interruption by the user (exit 130).
    pub(crate) fn cancelled(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hints: Vec::new(),
            exit_code: EXIT_CANCELLED,
        }
    }

    /// Adds a suggestion.
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// The exit code as the process returns it.
    pub(crate) fn process_exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit_code)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        for hint in &self.hints {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Quotes `args` for a POSIX shell, so a printed command can be pasted back as it was run.
pub(crate) fn shell_command(args: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    args.into_iter()
        .map(|arg| shell_quote(arg.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(arg: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !arg.is_empty() && arg.chars().all(safe) {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_arguments_are_not_quoted() {
        assert_eq!(
            shell_command(["ossup", "upload", "a.bin", "oss://b/k", "--part-size=8MiB"]),
            "ossup upload a.bin oss://b/k --part-size=8MiB"
        );
    }

    #[test]
    fn arguments_with_spaces_or_quotes_are_quoted() {
        assert_eq!(
            shell_command(["my file", "it's", ""]),
            r"'my file' 'it'\''s' ''"
        );
    }

    #[test]
    fn hints_print_under_the_message() {
        let f = Failure::failed("boom").hint("do this");
        assert_eq!(f.to_string(), "boom\n  hint: do this");
        assert_eq!(f.exit_code, EXIT_FAILURE);
    }
}
