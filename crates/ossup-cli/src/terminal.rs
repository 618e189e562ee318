//! Text from elsewhere made safe to print: a server's error message, a callback reply, an object
//! key or a file name may hold control characters, and an escape sequence printed raw can recolour,
//! retitle or rewrite the terminal (or hide a line of a log).
//!
//! Every line the command prints that carries such text goes through [`printable`]; JSON lines go
//! through [`json_line`], whose escapes keep the text exact for a program that reads them.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Serialize;

/// `text` with every control character (C0, DEL and C1, Unicode's `Cc`) written as an escape:
/// `\n`, `\r`, `\t`, `\\` for a backslash next to one, and `\x1b` or `\u{9b}` for the others.
/// Text without control characters comes back as it is.
pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // A backslash is doubled only in text that needed escaping, so `\x1b` in the output
            // always means the character, never a server's literal backslash-x-1-b.
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `value` as one line of JSON that is safe on a terminal: JSON already escapes C0 controls inside
/// strings; DEL and the C1 controls (U+0080 to U+009F, among them the one-character CSI U+009B)
/// are escaped here as `\u007f` … `\u009f`, which a JSON reader decodes to the same text.
pub(crate) fn json_line(value: &impl Serialize) -> Option<String> {
    let line = serde_json::to_string(value).ok()?;
    if !line.chars().any(|c| ('\u{7f}'..='\u{9f}').contains(&c)) {
        return Some(line);
    }
    let mut out = String::with_capacity(line.len() + 12);
    for c in line.chars() {
        // Outside strings JSON has no such character, so every one found is inside a string.
        if ('\u{7f}'..='\u{9f}').contains(&c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_without_controls_is_left_alone() {
        assert!(matches!(
            printable("oss://b/k ü 日本 \\ ok"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn escape_sequences_and_line_breaks_are_escaped() {
        assert_eq!(
            printable("AccessDenied\x1b]0;owned\x07\x1b[2J\nhint: fake"),
            "AccessDenied\\x1b]0;owned\\x07\\x1b[2J\\nhint: fake"
        );
        assert_eq!(printable("a\r\tb\x7f"), "a\\r\\tb\\x7f");
        assert_eq!(printable("csi\u{9b}31m"), "csi\\u{9b}31m");
        // A literal backslash beside a control is doubled, so the two cannot be confused.
        assert_eq!(printable("\\x1b\x1b"), "\\\\x1b\\x1b");
    }

    #[test]
    fn json_lines_escape_c1_controls_and_still_decode_to_the_text() {
        let text = "esc \x1b[31m csi \u{9b}31m del \x7f ok ü";
        let line = json_line(&serde_json::json!({ "message": text })).unwrap();
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.contains("\\u009b"), "{line}");
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["message"], text);
    }
}
