//! Turns engine errors into sentences a person can act on.
//!
//! The engine's errors say precisely what failed (API, object, part, OSS code, request id); a person
//! at a shell also needs to know what to do next. Each expected case gets its own sentence and hint;
//! anything else falls back to the engine's own message, never to a debug dump.

use std::error::Error as _;

use ossup::{Error, ErrorKind, StoreError};

use crate::failure::Failure;

/// What the command was doing, so an error can name it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Situation {
    /// The endpoint, as `scheme://host[:port]`.
    pub endpoint: String,
    /// The access key id in use.
    pub access_key_id: String,
    /// Whether V4 signing is in use (a wrong region also breaks V4 signatures).
    pub signing_v4: bool,
    /// The local file being uploaded, if any.
    pub file: Option<String>,
    /// The command that resumes this upload, if it can be resumed.
    pub resume_command: Option<String>,
}

/// Explains `error` for a person.
pub(crate) fn explain(error: &Error, situation: &Situation) -> Failure {
    let mut failure = match error.kind() {
        ErrorKind::Service => explain_service(error, situation),
        ErrorKind::Network => Failure::failed(format!(
            "cannot reach OSS at {}: {}",
            situation.endpoint,
            network_cause(error)
        ))
        .hint("check --endpoint (or OSS_ENDPOINT) and that the network reaches it"),
        ErrorKind::Integrity => Failure::failed(format!(
            "stopped before writing a wrong object: {}",
            error.message()
        ))
        .hint("the bytes OSS acknowledged do not match the file; run the same command again to \
               re-send the parts in doubt, and if it repeats, check for a proxy that alters uploads"),
        ErrorKind::Checkpoint => explain_checkpoint(error),
        ErrorKind::Source => explain_source(error, situation),
        ErrorKind::Cancelled => Failure::cancelled("interrupted"),
        ErrorKind::Config => Failure::usage(error.message()),
        ErrorKind::UnsupportedSource => Failure::usage(error.message()),
        ErrorKind::MalformedResponse => Failure::failed(format!(
            "the server at {} answered something that is not OSS's protocol: {}",
            situation.endpoint,
            error.message()
        ))
        .hint("check that --endpoint names an OSS endpoint and that no proxy rewrites its answers"),
        ErrorKind::Internal => Failure::failed(format!("internal error: {}", error.message()))
            .hint("this is a bug; the checkpoint and the parts on the server are kept, so running \
                   the same command again resumes; please report it with the message above"),
        ErrorKind::CallbackFailed => Failure::failed(format!(
            "{} was uploaded, but its upload callback failed: {}",
            match (error.bucket(), error.key()) {
                (Some(bucket), Some(key)) => format!("oss://{bucket}/{key}"),
                _ => "the object".to_owned(),
            },
            error.message()
        ))
        .hint("the object is stored and verified: do not upload it again; OSS does not retry \
               callbacks, so tell the application another way, and check that the callback server \
               is reachable from OSS and answers 200 with a JSON body within 5 s"),
        _ => Failure::failed(error.to_string()),
    };
    if failure.exit_code == crate::failure::EXIT_FAILURE
        && let Some(command) = &situation.resume_command
        && is_resumable(error)
    {
        failure = failure.hint(format!(
            "the checkpoint is kept; once fixed, resume with: {command}"
        ));
    }
    failure
}

/// Whether a later run of the same command can pick up where this one stopped.
fn is_resumable(error: &Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Network
            | ErrorKind::Service
            | ErrorKind::Integrity
            | ErrorKind::MalformedResponse
            | ErrorKind::Internal
    )
}

fn explain_service(error: &Error, situation: &Situation) -> Failure {
    let Some(service) = error.service_error() else {
        return Failure::failed(error.to_string());
    };
    let bucket = error.bucket().unwrap_or("(unknown)");
    let request_id = if service.request_id.is_empty() {
        String::new()
    } else {
        format!(" (request id {})", service.request_id)
    };
    let id = &situation.access_key_id;
    match service.code.as_str() {
        "SignatureDoesNotMatch" => {
            let mut f = Failure::failed(format!(
                "OSS refused the signature made with access key id {id}: the secret does not match{request_id}"
            ))
            .hint("check OSS_ACCESS_KEY_SECRET");
            if situation.signing_v4 {
                f = f.hint(
                    "with V4 signing the region is signed too: check --region (or OSS_REGION)",
                );
            }
            f
        }
        "InvalidAccessKeyId" => Failure::failed(format!(
            "OSS does not know the access key id {id:?}{request_id}"
        ))
        .hint("check OSS_ACCESS_KEY_ID, and that the key is enabled"),
        "NoSuchBucket" => Failure::failed(format!(
            "bucket {bucket:?} does not exist at {}{request_id}",
            situation.endpoint
        ))
        .hint("check the bucket name, and that the endpoint is the bucket's region"),
        "AccessDenied" => Failure::failed(format!(
            "access key {id} may not do this on bucket {bucket:?}: {}{request_id}",
            service.message
        ))
        .hint("check the key's RAM policy and the bucket policy"),
        "SecurityTokenExpired" => Failure::failed(format!(
            "the STS security token has expired{request_id}"
        ))
        .hint("get fresh temporary credentials and set OSS_SESSION_TOKEN (and the key pair)"),
        "InvalidSecurityToken" => {
            Failure::failed(format!("OSS refused the STS security token{request_id}"))
                .hint("check OSS_SESSION_TOKEN; unset it for a long-term access key")
        }
        "RequestTimeTooSkewed" => Failure::failed(format!(
            "this machine's clock is more than 15 minutes off the server's{request_id}"
        ))
        .hint("set the clock (e.g. enable NTP)"),
        "FileAlreadyExists" => Failure::failed(format!(
            "oss://{bucket}/{} already exists and --forbid-overwrite is set{request_id}",
            error.key().unwrap_or_default()
        ))
        .hint("choose another key, or drop --forbid-overwrite to replace the object"),
        "InvalidBucketName" | "InvalidObjectName" | "InvalidArgument" => {
            Failure::failed(format!("OSS refused the request: {service}"))
        }
        "NoSuchUpload" => Failure::failed(format!(
            "no such multipart upload{}: it was completed, aborted or never started{request_id}",
            error
                .upload_id()
                .map(|u| format!(" {u}"))
                .unwrap_or_default()
        ))
        .hint(format!(
            "list the open ones with: ossup uploads ls oss://{bucket}"
        )),
        _ if service.status >= 500 => {
            Failure::failed(format!("OSS kept failing after retries: {}", error))
                .hint("the service is unwell or overloaded; try again later")
        }
        _ => Failure::failed(error.to_string()),
    }
}

fn explain_checkpoint(error: &Error) -> Failure {
    let Some(store) = find_source::<StoreError>(error) else {
        return Failure::failed(error.to_string());
    };
    match store {
        StoreError::Corrupt {
            location,
            reason,
            set_aside_to,
        } => {
            let aside = set_aside_to
                .as_ref()
                .map(|p| format!("; it was set aside to {p}"))
                .unwrap_or_else(|| "; it was set aside".to_owned());
            Failure::failed(format!(
                "the checkpoint at {location} is corrupt ({reason}){aside}"
            ))
            .hint("run the same command again to start the upload afresh")
        }
        StoreError::UnsupportedVersion { .. } => Failure::failed(store.to_string()),
        StoreError::InUse { .. } => Failure::failed(store.to_string())
            .hint("another ossup process is uploading the same file to the same object"),
        StoreError::Io { location, source } => Failure::failed(format!(
            "cannot use the checkpoint store at {location}: {source}"
        ))
        .hint("check that the checkpoint location is writable, or pass --checkpoint-dir DIR"),
        other => Failure::failed(other.to_string()),
    }
}

fn explain_source(error: &Error, situation: &Situation) -> Failure {
    let file = situation.file.as_deref().unwrap_or("the source");
    if file == "-" {
        // The writer of the pipe died, or standard input failed: what was sent is kept.
        return Failure::failed(format!(
            "reading standard input failed: {}",
            error.message()
        ))
        .hint("the parts sent so far are kept with the checkpoint: run the same command again with the same bytes on standard input, from their start, to resume");
    }
    if let Some(io) = find_source::<std::io::Error>(error) {
        return match io.kind() {
            std::io::ErrorKind::NotFound => Failure::failed(format!("{file} does not exist")),
            std::io::ErrorKind::PermissionDenied => {
                Failure::failed(format!("cannot read {file}: permission denied"))
            }
            _ => Failure::failed(format!("cannot read {file}: {io}")),
        };
    }
    Failure::failed(format!(
        "{file} changed during the upload: {}",
        error.message()
    ))
    .hint("run the same command again once the file stops changing; the upload starts over for the new content")
}

/// The first error of type `T` in `error`'s source chain.
fn find_source<T: std::error::Error + 'static>(error: &Error) -> Option<&T> {
    let mut next = error.source();
    while let Some(cause) = next {
        if let Some(found) = cause.downcast_ref::<T>() {
            return Some(found);
        }
        next = cause.source();
    }
    None
}

/// The innermost cause of a network error, which is what a person recognises ("Connection refused").
fn network_cause(error: &Error) -> String {
    let mut text = error.message();
    let mut next = error.source();
    while let Some(cause) = next {
        text = cause.to_string();
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use ossup::ServiceError;
    use ossup_proto::Api;

    fn situation() -> Situation {
        Situation {
            endpoint: "http://127.0.0.1:9".to_owned(),
            access_key_id: "test-ak".to_owned(),
            signing_v4: true,
            file: Some("big.iso".to_owned()),
            resume_command: Some("ossup upload big.iso oss://b/k".to_owned()),
        }
    }

    fn service(status: u16, code: &str) -> Error {
        Error::service(ServiceError::new(status, code, "msg", "REQ9", "host"))
            .with_api(Api::InitiateMultipartUpload)
            .with_object("bucket", "k")
    }

    #[test]
    fn a_wrong_secret_points_at_the_secret_variable() {
        let f = explain(&service(403, "SignatureDoesNotMatch"), &situation());
        assert!(
            f.hints
                .iter()
                .any(|h| h.contains("check OSS_ACCESS_KEY_SECRET")),
            "{f}"
        );
        assert!(f.message.contains("test-ak"), "{f}");
        assert!(f.message.contains("REQ9"), "{f}");
        assert_eq!(f.exit_code, 1);
    }

    #[test]
    fn an_unknown_key_id_points_at_the_id_variable() {
        let f = explain(&service(403, "InvalidAccessKeyId"), &situation());
        assert!(
            f.hints.iter().any(|h| h.contains("OSS_ACCESS_KEY_ID")),
            "{f}"
        );
    }

    #[test]
    fn a_missing_bucket_is_named() {
        let f = explain(&service(404, "NoSuchBucket"), &situation());
        assert!(
            f.message.contains("bucket \"bucket\" does not exist"),
            "{f}"
        );
    }

    #[test]
    fn an_unreachable_endpoint_names_the_endpoint_and_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let f = explain(&Error::connection("connect failed", io), &situation());
        assert_eq!(
            f.message,
            "cannot reach OSS at http://127.0.0.1:9: Connection refused"
        );
        assert!(
            f.hints
                .iter()
                .any(|h| h.contains("resume with: ossup upload")),
            "{f}"
        );
    }

    #[test]
    fn a_corrupt_checkpoint_says_where_and_that_it_was_set_aside() {
        let store = StoreError::Corrupt {
            location: "/s/abc.ckpt".to_owned(),
            reason: "bad checksum".to_owned(),
            set_aside_to: Some("/s/abc.ckpt.corrupt".to_owned()),
        };
        let f = explain(&Error::checkpoint(store), &situation());
        assert!(f.message.contains("/s/abc.ckpt is corrupt"), "{f}");
        assert!(
            f.message.contains("set aside to /s/abc.ckpt.corrupt"),
            "{f}"
        );
    }

    #[test]
    fn a_missing_file_is_named() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let f = explain(&Error::source_io("open failed", io), &situation());
        assert_eq!(f.message, "big.iso does not exist");
    }

    #[test]
    fn a_changed_file_says_to_run_again() {
        let f = explain(
            &Error::source_changed("size went from 10 to 12"),
            &situation(),
        );
        assert!(f.message.contains("changed during the upload"), "{f}");
        assert!(f.message.contains("size went from 10 to 12"), "{f}");
    }

    #[test]
    fn cancellation_exits_130() {
        assert_eq!(
            explain(&Error::cancelled("stop"), &situation()).exit_code,
            130
        );
    }

    #[test]
    fn no_explanation_is_a_debug_dump() {
        for err in [
            service(400, "SomethingNew"),
            service(503, "ServiceUnavailable"),
            Error::integrity("part 3 ETag \"AA\" is not the MD5 \"BB\""),
            Error::config("part size 1 is below 100 KiB"),
        ] {
            let text = explain(&err, &situation()).to_string();
            assert!(!text.contains("Error {"), "{text}");
            assert!(!text.contains("inner"), "{text}");
        }
    }
}
