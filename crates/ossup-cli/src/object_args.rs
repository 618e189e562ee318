//! `--tag KEY=VALUE`, `--tagging QUERY` and `--header 'Name: value'`: object tags and extra
//! request headers, parsed into what `ObjectOptions` takes.

/// Parses `--tag KEY=VALUE`; `KEY` alone is a tag with an empty value, as in `x-oss-tagging`.
/// Limits (count, lengths) are checked with the other object options.
pub(crate) fn parse_tag(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').unwrap_or((text, ""));
    if key.is_empty() {
        return Err(format!(
            "{text:?} has an empty key; write KEY=VALUE, e.g. team=data"
        ));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// Parses `--header 'Name: value'`, trimming the space around the value.
pub(crate) fn parse_header(text: &str) -> Result<(String, String), String> {
    let Some((name, value)) = text.split_once(':') else {
        return Err(format!(
            "{text:?} has no ':'; write 'Name: value', e.g. 'x-oss-request-payer: requester'"
        ));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(format!(
            "{text:?} has an empty name; write 'Name: value', e.g. 'x-oss-request-payer: requester'"
        ));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_splits_at_the_first_equals_sign_and_may_have_no_value() {
        assert_eq!(parse_tag("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_tag("flag"), Ok(("flag".into(), String::new())));
        assert!(parse_tag("=v").unwrap_err().contains("empty key"));
    }

    #[test]
    fn a_header_splits_at_the_first_colon_and_is_trimmed() {
        assert_eq!(
            parse_header("X-Oss-Request-Payer:  requester "),
            Ok(("X-Oss-Request-Payer".into(), "requester".into()))
        );
        assert_eq!(
            parse_header("x-a: http://b"),
            Ok(("x-a".into(), "http://b".into()))
        );
        assert!(parse_header("x-a=1").unwrap_err().contains("no ':'"));
        assert!(parse_header(": 1").unwrap_err().contains("empty name"));
    }
}
