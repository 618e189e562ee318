//! How a command ends badly: a sentence for a person, what to do about it, and the exit code.

use std::ffi::OsStr;
use std::fmt;
use std::fmt::Write as _;
use std::process::ExitCode;

use crate::terminal::printable;

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

/// The message and its hints, with the control characters of any server text they quote escaped
/// (see [`printable`]): this is what reaches the terminal.
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", printable(&self.message))?;
        for hint in &self.hints {
            write!(f, "\n  hint: {}", printable(hint))?;
        }
        Ok(())
    }
}

/// Quotes `args` for a POSIX shell, so a printed command can be pasted back as it was run. Takes
/// the arguments as the system gave them (`std::env::args_os()`): a file name need not be UTF-8.
pub(crate) fn shell_command(args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> String {
    args.into_iter()
        .map(|arg| shell_quote(arg.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(arg: &OsStr) -> String {
    match arg.to_str() {
        Some(text) if !text.chars().any(char::is_control) => {
            let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
            if !text.is_empty() && text.chars().all(safe) {
                text.to_owned()
            } else {
                format!("'{}'", text.replace('\'', r"'\''"))
            }
        }
        _ => ansi_c_quote(arg.as_encoded_bytes()),
    }
}

/// `$'…'` quoting (bash, zsh, ksh), the one form that pastes back bytes that are not UTF-8 and
/// control characters, each written as `\xHH`: the printed command then holds no raw control
/// character either.
fn ansi_c_quote(bytes: &[u8]) -> String {
    let mut out = String::from("$'");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\'' => out.push_str("\\'"),
                c if c.is_control() => {
                    for byte in c.encode_utf8(&mut [0; 4]).bytes() {
                        let _ = write!(out, "\\x{byte:02x}");
                    }
                }
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out.push('\'');
    out
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

    #[cfg(unix)]
    #[test]
    fn arguments_that_are_not_text_are_quoted_byte_for_byte() {
        use std::os::unix::ffi::OsStrExt;
        let name = OsStr::from_bytes(b"caf\xe9 it's\\.bin");
        assert_eq!(
            shell_command([OsStr::new("ossup"), name]),
            r"ossup $'caf\xe9 it\'s\\.bin'"
        );
        assert_eq!(shell_command(["a\nb\x1b[2J"]), r"$'a\x0ab\x1b[2J'");
    }

    #[test]
    fn server_text_in_a_failure_cannot_drive_the_terminal() {
        let f = Failure::failed("OSS said: \x1b[2Jgone\nerror: fake").hint("see \x1b]0;t\x07");
        let shown = f.to_string();
        assert!(!shown.contains('\x1b'), "{shown:?}");
        assert_eq!(
            shown,
            "OSS said: \\x1b[2Jgone\\nerror: fake\n  hint: see \\x1b]0;t\\x07"
        );
    }

    #[test]
    fn hints_print_under_the_message() {
        let f = Failure::failed("boom").hint("do this");
        assert_eq!(f.to_string(), "boom\n  hint: do this");
        assert_eq!(f.exit_code, EXIT_FAILURE);
    }
}
