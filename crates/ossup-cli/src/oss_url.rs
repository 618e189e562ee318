//! `oss://BUCKET/KEY` and `oss://BUCKET[/PREFIX]` addresses, checked against OSS's naming rules.

use std::fmt;

use ossup_proto::limits::MAX_KEY_LEN;

/// A bucket and an optional key (or prefix) parsed from `oss://BUCKET[/KEY]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OssUrl {
    /// The bucket name.
    pub bucket: String,
    /// Everything after `BUCKET/`; empty when the URL names only the bucket.
    pub key: String,
}

impl OssUrl {
    /// Parses `oss://BUCKET[/KEY]`; the key may be empty (a bucket, or a prefix to list).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let Some(rest) = text.strip_prefix("oss://") else {
            let hint = if text.contains("://") {
                "only oss:// addresses are understood"
            } else {
                "an OSS address starts with oss://"
            };
            return Err(format!(
                "{text:?} is not an OSS address: {hint}; write oss://BUCKET/KEY"
            ));
        };
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket(bucket)?;
        if key.starts_with('/') || key.starts_with('\\') {
            return Err(format!(
                "the key in {text:?} starts with {:?}, which OSS refuses; write oss://{bucket}/{}",
                &key[..1],
                key.trim_start_matches(['/', '\\'])
            ));
        }
        if key.len() > MAX_KEY_LEN {
            return Err(format!(
                "the key in {text:?} is {} bytes long; OSS allows at most {MAX_KEY_LEN}",
                key.len()
            ));
        }
        if let Some(c) = key.chars().find(|c| c.is_control()) {
            return Err(format!(
                "the key in {text:?} holds the control character {c:?}; keys must be printable"
            ));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }

    /// Fails when the URL names a bucket but no object.
    pub(crate) fn require_key(&self) -> Result<(), String> {
        if self.key.is_empty() {
            return Err(format!(
                "\"{self}\" names a bucket but no object; write oss://{}/KEY",
                self.bucket
            ));
        }
        Ok(())
    }

    /// This URL with `file_name` appended when the key names a folder (ends with `/`), as `cp` does
    /// with a destination directory.
    pub(crate) fn with_file_name_if_folder(mut self, file_name: &str) -> Self {
        if self.key.ends_with('/') {
            self.key.push_str(file_name);
        }
        self
    }
}

impl fmt::Display for OssUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oss://{}/{}", self.bucket, self.key)
    }
}

/// OSS bucket names: 3 to 63 characters of lowercase letters, digits and hyphens, starting and ending
/// with a letter or digit.
fn check_bucket(bucket: &str) -> Result<(), String> {
    let rules = "bucket names are 3 to 63 lowercase letters, digits and hyphens, \
                 starting and ending with a letter or digit";
    if bucket.is_empty() {
        return Err("the address has no bucket; write oss://BUCKET/KEY".to_owned());
    }
    if !(3..=63).contains(&bucket.len()) {
        return Err(format!(
            "bucket {bucket:?} is {} characters long; {rules}",
            bucket.chars().count()
        ));
    }
    if let Some(c) = bucket
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        let hint = if c.is_ascii_uppercase() {
            format!(" (try {:?})", bucket.to_ascii_lowercase())
        } else {
            String::new()
        };
        return Err(format!("bucket {bucket:?} holds {c:?}; {rules}{hint}"));
    }
    if bucket.starts_with('-') || bucket.ends_with('-') {
        return Err(format!(
            "bucket {bucket:?} starts or ends with a hyphen; {rules}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_and_key_are_split_at_the_first_slash() {
        let url = OssUrl::parse("oss://my-bucket/dir/sub/file.bin").unwrap();
        assert_eq!(url.bucket, "my-bucket");
        assert_eq!(url.key, "dir/sub/file.bin");
        assert_eq!(url.to_string(), "oss://my-bucket/dir/sub/file.bin");
    }

    #[test]
    fn a_bucket_alone_has_an_empty_key() {
        assert_eq!(OssUrl::parse("oss://abc").unwrap().key, "");
        assert_eq!(OssUrl::parse("oss://abc/").unwrap().key, "");
        assert_eq!(OssUrl::parse("oss://abc/logs/").unwrap().key, "logs/");
    }

    #[test]
    fn an_object_address_needs_a_key() {
        let object = |text: &str| OssUrl::parse(text).and_then(|url| url.require_key());
        let err = object("oss://bucket").unwrap_err();
        assert!(err.contains("no object"), "{err}");
        assert!(object("oss://bucket/").is_err());
        assert!(object("oss://bucket/k").is_ok());
    }

    #[test]
    fn the_scheme_is_required() {
        assert!(
            OssUrl::parse("bucket/key")
                .unwrap_err()
                .contains("starts with oss://")
        );
        assert!(
            OssUrl::parse("s3://bucket/key")
                .unwrap_err()
                .contains("only oss://")
        );
    }

    #[test]
    fn bucket_naming_rules_are_enforced() {
        assert!(
            OssUrl::parse("oss:///key")
                .unwrap_err()
                .contains("no bucket")
        );
        assert!(
            OssUrl::parse("oss://ab/key")
                .unwrap_err()
                .contains("3 to 63")
        );
        assert!(OssUrl::parse(&format!("oss://{}/k", "a".repeat(64))).is_err());
        assert!(OssUrl::parse(&format!("oss://{}/k", "a".repeat(63))).is_ok());
        assert!(
            OssUrl::parse("oss://My-Bucket/k")
                .unwrap_err()
                .contains("try \"my-bucket\"")
        );
        assert!(OssUrl::parse("oss://my_bucket/k").is_err());
        assert!(OssUrl::parse("oss://my.bucket/k").is_err());
        assert!(
            OssUrl::parse("oss://-bucket/k")
                .unwrap_err()
                .contains("hyphen")
        );
        assert!(
            OssUrl::parse("oss://bucket-/k")
                .unwrap_err()
                .contains("hyphen")
        );
        assert!(OssUrl::parse("oss://123/k").is_ok());
    }

    #[test]
    fn keys_starting_with_a_slash_are_refused() {
        let err = OssUrl::parse("oss://bucket//abs/path").unwrap_err();
        assert!(err.contains("oss://bucket/abs/path"), "{err}");
        assert!(OssUrl::parse("oss://bucket/\\win").is_err());
    }

    #[test]
    fn keys_longer_than_oss_allows_are_refused() {
        let long = format!("oss://bucket/{}", "k".repeat(MAX_KEY_LEN + 1));
        assert!(OssUrl::parse(&long).unwrap_err().contains("at most 1023"));
        let longest = format!("oss://bucket/{}", "k".repeat(MAX_KEY_LEN));
        assert!(OssUrl::parse(&longest).is_ok());
    }

    #[test]
    fn keys_with_control_characters_are_refused() {
        assert!(
            OssUrl::parse("oss://bucket/a\nb")
                .unwrap_err()
                .contains("control")
        );
    }

    #[test]
    fn unicode_and_dots_in_keys_are_kept() {
        let url = OssUrl::parse("oss://bucket/数据/../a b+c.txt").unwrap();
        assert_eq!(url.key, "数据/../a b+c.txt");
    }

    #[test]
    fn a_folder_key_takes_the_file_name() {
        let url = OssUrl::parse("oss://bucket/dir/").unwrap();
        assert_eq!(url.with_file_name_if_folder("x.iso").key, "dir/x.iso");
        let url = OssUrl::parse("oss://bucket/dir/y").unwrap();
        assert_eq!(url.with_file_name_if_folder("x.iso").key, "dir/y");
    }
}
