//! Object tags as the `x-oss-tagging` header carries them: a URL-encoded query string
//! `k1=v1&k2=v2`, checked against the limits OSS enforces (at most 10 tags, keys of 1 to 128
//! characters, values of at most 256, each key once).
//!
//! The client encodes with [`encode`] and checks with [`check`]; the mock server decodes a
//! request's header with [`parse`], which applies the same checks.
//!
//! ```
//! use ossup_proto::tagging::{encode, parse};
//! let tags = vec![("team".to_owned(), "data eng".to_owned()), ("tier".to_owned(), "1".to_owned())];
//! let header = encode(&tags);
//! assert_eq!(header, "team=data%20eng&tier=1");
//! assert_eq!(parse(&header).unwrap(), tags);
//! ```

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::limits::{MAX_OBJECT_TAGS, MAX_TAG_KEY_CHARS, MAX_TAG_VALUE_CHARS};

/// What is left unescaped in a tag key or value: the RFC 3986 unreserved characters.
const TAG_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why a set of tags cannot be sent or stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaggingError {
    /// More tags than an object can have.
    #[error("{count} tags given; an object can have at most {MAX_OBJECT_TAGS}")]
    TooMany {
        /// How many were given.
        count: usize,
    },
    /// A tag with an empty key.
    #[error("a tag has an empty key; every tag needs a key")]
    EmptyKey,
    /// A key longer than OSS allows.
    #[error("tag key {key:?} has {chars} characters; at most {MAX_TAG_KEY_CHARS} are allowed")]
    KeyTooLong {
        /// The key.
        key: String,
        /// Its length in characters.
        chars: usize,
    },
    /// A value longer than OSS allows.
    #[error(
        "the value of tag {key:?} has {chars} characters; at most {MAX_TAG_VALUE_CHARS} are allowed"
    )]
    ValueTooLong {
        /// The tag's key.
        key: String,
        /// The value's length in characters.
        chars: usize,
    },
    /// The same key twice.
    #[error("tag key {key:?} is given twice; give each key once")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// A `key=value` entry with more than one `=`, or one that is not UTF-8 once decoded.
    #[error(
        "tag {entry:?} is not of the form key or key=value (URL-encode '=' and '&' inside a key or value)"
    )]
    Malformed {
        /// The entry as given.
        entry: String,
    },
}

/// Checks `tags` against the OSS limits.
pub fn check(tags: &[(String, String)]) -> Result<(), TaggingError> {
    if tags.len() > MAX_OBJECT_TAGS {
        return Err(TaggingError::TooMany { count: tags.len() });
    }
    for (i, (key, value)) in tags.iter().enumerate() {
        if key.is_empty() {
            return Err(TaggingError::EmptyKey);
        }
        let chars = key.chars().count();
        if chars > MAX_TAG_KEY_CHARS {
            return Err(TaggingError::KeyTooLong {
                key: key.clone(),
                chars,
            });
        }
        let chars = value.chars().count();
        if chars > MAX_TAG_VALUE_CHARS {
            return Err(TaggingError::ValueTooLong {
                key: key.clone(),
                chars,
            });
        }
        if tags[..i].iter().any(|(earlier, _)| earlier == key) {
            return Err(TaggingError::DuplicateKey { key: key.clone() });
        }
    }
    Ok(())
}

/// The header value for `tags`: each key and value percent-encoded, joined as a query string.
pub fn encode(tags: &[(String, String)]) -> String {
    tags.iter()
        .map(|(key, value)| {
            format!(
                "{}={}",
                utf8_percent_encode(key, TAG_ESCAPE),
                utf8_percent_encode(value, TAG_ESCAPE)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes an `x-oss-tagging` value and checks it; `+` stands for a space, as in a form.
///
/// An entry without `=` is a key with an empty value; an empty string is no tags.
pub fn parse(header: &str) -> Result<Vec<(String, String)>, TaggingError> {
    let mut tags = Vec::new();
    for entry in header.split('&').filter(|e| !e.is_empty()) {
        let malformed = || TaggingError::Malformed {
            entry: entry.to_owned(),
        };
        let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
        if value.contains('=') {
            return Err(malformed());
        }
        let decode = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .map(|d| d.into_owned())
                .map_err(|_| malformed())
        };
        tags.push((decode(key)?, decode(value)?));
    }
    check(&tags)?;
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str, value: &str) -> (String, String) {
        (key.to_owned(), value.to_owned())
    }

    #[test]
    fn encoding_round_trips_reserved_and_non_ascii_characters() {
        let tags = vec![tag("a&b=c", "x y+z/é"), tag("k", "")];
        let header = encode(&tags);
        assert!(!header.contains(' '), "{header}");
        assert_eq!(header.matches('&').count(), 1, "{header}");
        assert_eq!(parse(&header).unwrap(), tags);
    }

    #[test]
    fn a_plus_decodes_as_a_space_and_a_bare_key_has_an_empty_value() {
        assert_eq!(
            parse("team=data+eng&flag").unwrap(),
            vec![tag("team", "data eng"), tag("flag", "")]
        );
        assert_eq!(parse("").unwrap(), vec![]);
    }

    #[test]
    fn limits_are_those_of_oss() {
        let ten: Vec<_> = (0..10).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert_eq!(check(&ten), Ok(()));
        let mut eleven = ten.clone();
        eleven.push(tag("k10", "v"));
        assert_eq!(check(&eleven), Err(TaggingError::TooMany { count: 11 }));
        assert_eq!(check(&[tag(&"k".repeat(128), &"v".repeat(256))]), Ok(()));
        assert!(matches!(
            check(&[tag(&"k".repeat(129), "v")]),
            Err(TaggingError::KeyTooLong { chars: 129, .. })
        ));
        assert!(matches!(
            check(&[tag("k", &"é".repeat(257))]),
            Err(TaggingError::ValueTooLong { chars: 257, .. })
        ));
        assert_eq!(check(&[tag("", "v")]), Err(TaggingError::EmptyKey));
        assert_eq!(
            check(&[tag("k", "1"), tag("k", "2")]),
            Err(TaggingError::DuplicateKey { key: "k".into() })
        );
    }

    #[test]
    fn an_entry_with_two_equals_signs_is_malformed() {
        let err = parse("aa=bb=cc").unwrap_err();
        assert!(err.to_string().contains("\"aa=bb=cc\""), "{err}");
    }
}
