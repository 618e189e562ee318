//! `--meta NAME=VALUE`: user metadata, sent as `x-oss-meta-NAME: VALUE`.

use ossup_proto::headers::META_PREFIX;

/// One metadata entry, its name lowercased as OSS stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetaEntry {
    /// The name, without the `x-oss-meta-` prefix.
    pub name: String,
    /// The value.
    pub value: String,
}

/// Parses `NAME=VALUE`. The name may be given with or without its `x-oss-meta-` prefix.
pub(crate) fn parse_meta(text: &str) -> Result<MetaEntry, String> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(format!(
            "{text:?} has no '='; write NAME=VALUE, e.g. owner=alice"
        ));
    };
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix(META_PREFIX).unwrap_or(&name).to_owned();
    if name.is_empty() {
        return Err(format!(
            "{text:?} has an empty name; write NAME=VALUE, e.g. owner=alice"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.'))
    {
        return Err(format!(
            "metadata name {name:?} holds {c:?}; names are letters, digits, '-', '_' and '.'"
        ));
    }
    if let Some(c) = value.chars().find(|c| !(c.is_ascii_graphic() || *c == ' ')) {
        return Err(format!(
            "the value of metadata {name:?} holds {c:?}; HTTP headers carry printable ASCII only \
             (percent-encode or base64 anything else)"
        ));
    }
    Ok(MetaEntry {
        name,
        value: value.trim().to_owned(),
    })
}

/// Refuses two entries with the same name, which would be one header sent twice.
pub(crate) fn check_unique(entries: &[MetaEntry]) -> Result<(), String> {
    for (i, entry) in entries.iter().enumerate() {
        if entries[..i].iter().any(|e| e.name == entry.name) {
            return Err(format!(
                "--meta {} is given twice; give each name once",
                entry.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_and_value_split_at_the_first_equals() {
        let entry = parse_meta("Owner=alice=bob").unwrap();
        assert_eq!(entry.name, "owner");
        assert_eq!(entry.value, "alice=bob");
    }

    #[test]
    fn the_header_prefix_is_optional() {
        assert_eq!(
            parse_meta("x-oss-meta-project=ossup").unwrap().name,
            "project"
        );
    }

    /// `cargo xtask fuzz` (target `cli_args`) reads an entry back from its header form: a prefix
    /// given twice is stripped once, and the header keeps the rest of the name as written.
    #[test]
    fn a_prefix_given_twice_is_stripped_once() {
        let entry = parse_meta("x-oss-meta-x-oss-meta-Owner=alice").unwrap();
        assert_eq!(entry.name, "x-oss-meta-owner");
        assert_eq!(
            parse_meta(&format!("{META_PREFIX}{}=alice", entry.name)).unwrap(),
            entry
        );
    }

    #[test]
    fn empty_values_are_allowed() {
        assert_eq!(parse_meta("flag=").unwrap().value, "");
    }

    #[test]
    fn malformed_entries_are_refused() {
        assert!(parse_meta("novalue").unwrap_err().contains("no '='"));
        assert!(parse_meta("=v").unwrap_err().contains("empty name"));
        assert!(parse_meta("a b=v").unwrap_err().contains("names are"));
        assert!(
            parse_meta("k=caf\u{e9}")
                .unwrap_err()
                .contains("printable ASCII")
        );
        assert!(parse_meta("k=a\nb").is_err());
    }

    #[test]
    fn duplicate_names_are_refused() {
        let entries = vec![parse_meta("A=1").unwrap(), parse_meta("a=2").unwrap()];
        assert!(check_unique(&entries).unwrap_err().contains("twice"));
        assert!(check_unique(&entries[..1]).is_ok());
    }
}
