//! The command tree, as clap reads it from the command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::duration::parse_duration;
use crate::meta::{MetaEntry, parse_meta};
use crate::object_args::{parse_header, parse_tag};
use crate::oss_url::OssUrl;
use crate::size::parse_size;

/// Resumable multipart upload to Alibaba Cloud OSS.
///
/// Interrupt an upload (Ctrl-C, a lost network, kill -9) and run the same command again: it resumes
/// from what the server holds and sends only what is missing.
#[derive(Debug, Parser)]
#[command(name = "ossup", version, about, long_about = None, propagate_version = true)]
#[command(
    after_help = "Credentials come from OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET and \
    OSS_SESSION_TOKEN (STS only). See docs/cli.md for every flag."
)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Upload a file to oss://BUCKET/KEY, resuming an interrupted upload of the same file.
    Upload(Box<UploadArgs>),
    /// List or abort the multipart uploads still open in a bucket.
    #[command(subcommand)]
    Uploads(UploadsCommand),
    /// Start a mock OSS server here, upload a file, crash at 40%, resume, and verify the object.
    Demo(DemoArgs),
}

/// Where OSS is and how to sign requests to it.
#[derive(Debug, Clone, Args)]
pub(crate) struct ConnectionArgs {
    /// The OSS endpoint: https://oss-cn-hangzhou.aliyuncs.com, or host[:port] (https is assumed,
    /// http for a loopback address). Without it, the region's public endpoint.
    #[arg(long, env = "OSS_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,

    /// The region, e.g. cn-hangzhou; needed by V4 signing. Read from the endpoint when it is an
    /// oss-REGION.aliyuncs.com name.
    #[arg(long, env = "OSS_REGION", value_name = "REGION")]
    pub region: Option<String>,

    /// The request signature version.
    #[arg(long, value_enum, default_value_t = SignatureVersionArg::V4, value_name = "VERSION")]
    pub signature: SignatureVersionArg,

    /// How many times to try each request before giving up (1 = no retry). Retries wait with
    /// exponential backoff, up to 20 s apart.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
}

/// `ossup upload`.
/// `--parallel`: a fixed number of parts in flight, or found by the adaptive scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParallelArg {
    /// Exactly this many (1 to 256).
    Fixed(u16),
    /// Found while uploading, up to `--max-parallel`.
    Auto,
}

/// Parses `--parallel`: `auto` or 1 to 256.
fn parse_parallel(text: &str) -> Result<ParallelArg, String> {
    if text.eq_ignore_ascii_case("auto") {
        return Ok(ParallelArg::Auto);
    }
    match text.parse::<u16>() {
        Ok(n @ 1..=256) => Ok(ParallelArg::Fixed(n)),
        _ => Err(format!(
            "{text:?} is neither a number of parts from 1 to 256 nor `auto`"
        )),
    }
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("checkpoint").args(["checkpoint_dir", "checkpoint_db", "checkpoint_url", "no_checkpoint"])))]
#[command(group(ArgGroup::new("concurrency").args(["parallel", "sequential"])))]
pub(crate) struct UploadArgs {
    /// The file to upload; with --recursive, the directory whose files to upload; `-` for standard
    /// input (a stream of unknown size: `pg_dump db | ossup upload - oss://bucket/db.sql`).
    #[arg(value_name = "FILE|DIR|-")]
    pub file: PathBuf,

    /// Where to put it: oss://BUCKET/KEY (a KEY ending in '/' gets the file's name appended); with
    /// --recursive, oss://BUCKET/PREFIX/ (each file goes to PREFIX + its path below DIR).
    #[arg(value_name = "oss://BUCKET/KEY", value_parser = OssUrl::parse)]
    pub destination: OssUrl,

    /// Upload every file below the directory DIR. Files the bucket already holds (same size and
    /// content) are skipped; one failed file does not stop the others.
    #[arg(long, short = 'r')]
    pub recursive: bool,

    /// With --recursive, upload only files matching GLOB (gitignore-style: '*.jpg' at any depth,
    /// 'docs/**' from DIR); repeat for more.
    #[arg(long = "include", value_name = "GLOB", requires = "recursive")]
    pub include: Vec<String>,

    /// With --recursive, leave out files matching GLOB, or everything below a matching directory
    /// ('node_modules', '*.tmp', 'build/'); repeat for more. Excludes win over includes.
    #[arg(long = "exclude", value_name = "GLOB", requires = "recursive")]
    pub exclude: Vec<String>,

    /// With --recursive, follow symbolic links (loops are reported, not followed); without it
    /// links are skipped.
    #[arg(long, requires = "recursive")]
    pub follow_symlinks: bool,

    /// With --recursive, upload every file, even those the bucket already holds.
    #[arg(long, requires = "recursive")]
    pub force: bool,

    /// With --recursive, stop at the first failed file (files in flight keep their checkpoints).
    #[arg(long, requires = "recursive")]
    pub fail_fast: bool,

    /// With --recursive, write a JSON Lines report to FILE: one object per file with path, key,
    /// status (uploaded, skipped, failed), bytes_sent, bytes_reused and, for a failure, error.
    #[arg(long, value_name = "FILE", requires = "recursive")]
    pub report: Option<PathBuf>,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// The part size: 8MiB, 100KB (KB = 1000 bytes, KiB = 1024), or plain bytes; from 100KiB to
    /// 5GiB. Default 8MiB, raised so the upload needs at most 10,000 parts.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub part_size: Option<u64>,

    /// How many parts to send at once (1 to 256), or `auto` (the default): start at 8 and keep
    /// raising it while parts take no longer than on an uncrowded link, halving it on 503
    /// SlowDown, 429 and timeouts, up to --max-parallel. With --recursive, one limit counts the
    /// parts and small files of the whole tree.
    #[arg(long, value_name = "N|auto", value_parser = parse_parallel)]
    pub parallel: Option<ParallelArg>,

    /// With --parallel auto, the most parts in flight (and so the memory: this many part buffers).
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub max_parallel: u16,

    /// Do not hedge: by default a part still in flight 3 times longer than the median part (and
    /// at least 2 s) is sent again on another connection, and the first answer wins.
    #[arg(long)]
    pub no_hedge: bool,

    /// Cap the bytes per second on the wire, e.g. 20MiB/s: for every part (and, with --recursive,
    /// every file) together, retries included.
    #[arg(long, value_name = "RATE", value_parser = crate::size::parse_rate)]
    pub limit_rate: Option<u64>,

    /// Ask OSS to take each request at most RATE fast (x-oss-traffic-limit), e.g. 10MiB/s: a cap
    /// per request, enforced by the server, from 100KiB/s to 100MiB/s.
    #[arg(long, value_name = "RATE", value_parser = crate::size::parse_rate)]
    pub traffic_limit: Option<u64>,

    /// Send one part at a time (the same as --parallel 1, through the sequential scheduler).
    #[arg(long)]
    pub sequential: bool,

    /// Keep checkpoints as files in DIR (default: $XDG_STATE_HOME/ossup/checkpoints, or
    /// ~/.local/state/ossup/checkpoints).
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,

    /// Keep checkpoints in the SQLite database FILE (created when missing).
    #[arg(long, value_name = "FILE")]
    pub checkpoint_db: Option<PathBuf>,

    /// Keep checkpoints in the PostgreSQL database at URL (postgres://USER@HOST[:PORT]/DATABASE),
    /// which several hosts can share. The password comes from PGPASSWORD or ~/.pgpass (mode 0600),
    /// as with psql; a URL holding one is refused.
    #[arg(long, value_name = "URL")]
    pub checkpoint_url: Option<String>,

    /// Share the upload with the other workers running the same command against the same
    /// --checkpoint-url (hosts) or --checkpoint-db (processes on one host): each part is sent by
    /// one of them, one completes the upload, and each ends with the object.
    #[arg(long)]
    pub cooperate: bool,

    /// With --cooperate: how long a worker's claims (parts, files of a tree) last unless renewed
    /// (default 30s). A worker renews its claims every third of it while it works; one that dies
    /// holds its work this long before another takes it over. E.g. 10s, 1m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "cooperate")]
    pub lease: Option<Duration>,

    /// Keep no checkpoint: an interrupted upload is aborted and cannot be resumed.
    #[arg(long)]
    pub no_checkpoint: bool,

    /// When there is no checkpoint of the upload (lost, wiped, or kept on another machine), carry
    /// on the newest open multipart upload of the key whose parts fit the part size instead of
    /// starting over: each of its parts is checked against the file (read once to hash it), and
    /// only missing or different parts are sent. Other open uploads of the key are left alone; the
    /// object gets the metadata and options the carried-on upload was started with. Needs
    /// oss:ListMultipartUploads and oss:ListParts. With --recursive, for each file.
    #[arg(long)]
    pub resume_from_server: bool,

    /// The object's Content-Type (default: guessed from the file name).
    #[arg(long, value_name = "TYPE")]
    pub content_type: Option<String>,

    /// User metadata, stored as x-oss-meta-NAME; repeat for more.
    #[arg(long = "meta", value_name = "NAME=VALUE", value_parser = parse_meta)]
    pub meta: Vec<MetaEntry>,

    /// The object's ACL.
    #[arg(long, value_enum, value_name = "ACL")]
    pub acl: Option<AclArg>,

    /// The object's storage class.
    #[arg(long, value_enum, value_name = "CLASS", ignore_case = true)]
    pub storage_class: Option<StorageClassArg>,

    /// Fail instead of replacing an object that already exists at the key.
    #[arg(long)]
    pub forbid_overwrite: bool,

    /// The object's Cache-Control, returned when it is read.
    #[arg(long, value_name = "VALUE")]
    pub cache_control: Option<String>,

    /// The object's Content-Disposition, e.g. 'attachment; filename="report.pdf"'.
    #[arg(long, value_name = "VALUE")]
    pub content_disposition: Option<String>,

    /// The object's Content-Encoding, e.g. gzip for a file that is already gzipped (OSS stores
    /// the bytes as they are).
    #[arg(long, value_name = "VALUE")]
    pub content_encoding: Option<String>,

    /// The object's Expires, an HTTP date such as 'Wed, 21 Oct 2026 07:28:00 GMT'.
    #[arg(long, value_name = "DATE")]
    pub expires: Option<String>,

    /// Server-side encryption of the object (default: the bucket's).
    #[arg(long, value_enum, value_name = "ALGORITHM", ignore_case = true)]
    pub sse: Option<SseArg>,

    /// The KMS key that encrypts the object; needs --sse KMS.
    #[arg(long, value_name = "KEY_ID")]
    pub sse_kms_key_id: Option<String>,

    /// Encrypt with SM4 through KMS; needs --sse KMS.
    #[arg(long, value_enum, value_name = "ALGORITHM", ignore_case = true)]
    pub sse_data_encryption: Option<SseDataArg>,

    /// Object tags as a URL-encoded query string, e.g. 'team=data&tier=1' (at most 10 tags).
    #[arg(long, value_name = "K=V&K2=V2")]
    pub tagging: Option<String>,

    /// One object tag; repeat for more (combined with --tagging).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tag: Vec<(String, String)>,

    /// An extra request header for the upload, e.g. 'x-oss-request-payer: requester'; repeat
    /// for more. Headers ossup sets itself or that have a flag of their own are refused.
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub header: Vec<(String, String)>,

    /// How each part is checked: md5 (Content-MD5 and the ETag, plus CRC-64) or crc64 (CRC-64
    /// only, faster on a slow CPU).
    #[arg(long, value_enum, default_value_t = ChecksumArg::Md5, value_name = "MODE")]
    pub checksum: ChecksumArg,

    /// How to show progress: auto (a bar on a terminal, plain lines otherwise), bar, plain, json
    /// (one JSON object per event per line on stdout) or none.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto, value_name = "STYLE")]
    pub progress: ProgressArg,

    /// Have OSS POST to URL once the object is stored (the upload callback), and print the reply;
    /// repeat for fallback URLs (at most 5, tried in order). Needs --callback-body.
    #[arg(long = "callback-url", value_name = "URL", requires = "callback_body")]
    pub callback_url: Vec<String>,

    /// The callback's body template, filled in by OSS: ${bucket}, ${object}, ${etag}, ${size},
    /// ${mimeType}, ${crc64}, ${x:NAME}, e.g. 'object=${object}&size=${size}'.
    #[arg(long, value_name = "TEMPLATE", requires = "callback_url")]
    pub callback_body: Option<String>,

    /// How the callback body is encoded: form (application/x-www-form-urlencoded) or json
    /// (application/json; leave ${…} unquoted, OSS writes JSON values).
    #[arg(long, value_enum, default_value_t = CallbackBodyTypeArg::Form, value_name = "TYPE", requires = "callback_url")]
    pub callback_body_type: CallbackBodyTypeArg,

    /// The Host header of the callback request (default: the callback URL's host).
    #[arg(long, value_name = "HOST", requires = "callback_url")]
    pub callback_host: Option<String>,

    /// A custom callback variable, ${x:NAME} in the body (NAME: lowercase letters, digits, '_'
    /// and '-'); repeat for more.
    #[arg(long = "callback-var", value_name = "NAME=VALUE", value_parser = parse_callback_var, requires = "callback_url")]
    pub callback_var: Vec<(String, String)>,
}

/// Parses `--callback-var NAME=VALUE`; `NAME` may carry its `x:` prefix.
fn parse_callback_var(text: &str) -> Result<(String, String), String> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(format!(
            "{text:?} has no '='; write NAME=VALUE, e.g. user=alice"
        ));
    };
    let name = name.trim();
    let bare = name.strip_prefix("x:").unwrap_or(name);
    if bare.is_empty()
        || !bare
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "callback variable name {name:?}: use lowercase letters, digits, '_' and '-' (OSS refuses others)"
        ));
    }
    Ok((bare.to_owned(), value.to_owned()))
}

/// `--callback-body-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CallbackBodyTypeArg {
    /// application/x-www-form-urlencoded: values percent-encoded.
    Form,
    /// application/json: values written as JSON.
    Json,
}

/// `ossup uploads ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum UploadsCommand {
    /// List the multipart uploads still open under oss://BUCKET[/PREFIX].
    Ls(UploadsLsArgs),
    /// Abort one multipart upload (--upload-id) or every one older than an age (--older-than).
    Abort(UploadsAbortArgs),
}

/// `ossup uploads ls`.
#[derive(Debug, Args)]
pub(crate) struct UploadsLsArgs {
    /// The bucket, and optionally a key prefix: oss://BUCKET[/PREFIX].
    #[arg(value_name = "oss://BUCKET[/PREFIX]", value_parser = OssUrl::parse)]
    pub location: OssUrl,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Print one JSON object per upload per line instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Look for local checkpoints in DIR (default: the default checkpoint directory of `ossup
    /// upload`, when it exists), to tell uploads that can be resumed here from orphans.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["checkpoint_db", "checkpoint_url"])]
    pub checkpoint_dir: Option<PathBuf>,

    /// Look for local checkpoints in the SQLite database FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "checkpoint_url")]
    pub checkpoint_db: Option<PathBuf>,

    /// Look for checkpoints in the PostgreSQL database at URL (as `upload --checkpoint-url`), and
    /// show the workers sharing each upload with their leases.
    #[arg(long, value_name = "URL")]
    pub checkpoint_url: Option<String>,
}

/// `ossup uploads abort`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").args(["upload_id", "older_than"]).required(true)))]
pub(crate) struct UploadsAbortArgs {
    /// oss://BUCKET/KEY with --upload-id; oss://BUCKET[/PREFIX] with --older-than.
    #[arg(value_name = "oss://BUCKET[/KEY]", value_parser = OssUrl::parse)]
    pub location: OssUrl,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// The upload to abort (as `ossup uploads ls` shows it).
    #[arg(long, value_name = "ID")]
    pub upload_id: Option<String>,

    /// Abort every upload under the prefix initiated longer ago than this: 24h, 30m, 7d, 1h30m.
    #[arg(long, value_name = "AGE", value_parser = parse_duration)]
    pub older_than: Option<Duration>,

    /// Show what would be aborted without aborting it.
    #[arg(long)]
    pub dry_run: bool,
}

/// `ossup demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// The size of the file to upload.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "256MiB")]
    pub size: u64,
}

/// `--signature`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SignatureVersionArg {
    /// HMAC-SHA1 (the older scheme).
    V1,
    /// OSS4-HMAC-SHA256 (needs a region).
    V4,
}

/// `--acl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum AclArg {
    /// Only the owner may read.
    Private,
    /// Anyone may read.
    PublicRead,
    /// Anyone may read and write.
    PublicReadWrite,
    /// Inherit the bucket's ACL.
    Default,
}

/// `--sse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SseArg {
    /// AES-256 with keys OSS manages.
    #[value(name = "AES256")]
    Aes256,
    /// A KMS key: the account's default, or --sse-kms-key-id.
    #[value(name = "KMS")]
    Kms,
    /// SM4 with keys OSS manages.
    #[value(name = "SM4")]
    Sm4,
}

/// `--sse-data-encryption`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SseDataArg {
    /// SM4.
    #[value(name = "SM4")]
    Sm4,
}

/// `--storage-class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StorageClassArg {
    /// Standard.
    #[value(name = "Standard")]
    Standard,
    /// Infrequent access.
    #[value(name = "IA")]
    Ia,
    /// Archive.
    #[value(name = "Archive")]
    Archive,
    /// Cold archive.
    #[value(name = "ColdArchive")]
    ColdArchive,
    /// Deep cold archive.
    #[value(name = "DeepColdArchive")]
    DeepColdArchive,
}

/// `--checksum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ChecksumArg {
    /// Content-MD5 on every part, the ETag checked, and CRC-64.
    Md5,
    /// CRC-64 only.
    Crc64,
}

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProgressArg {
    /// A bar on a terminal, plain lines otherwise.
    Auto,
    /// An interactive bar on stderr.
    Bar,
    /// One line per event on stderr.
    Plain,
    /// One JSON object per event per line on stdout.
    Json,
    /// Nothing but the result.
    None,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("ossup").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn upload_takes_every_flag_the_docs_list() {
        let cli = parse(&[
            "upload",
            "f.bin",
            "oss://bucket/k",
            "--endpoint",
            "127.0.0.1:9000",
            "--part-size",
            "8MiB",
            "--parallel",
            "8",
            "--checkpoint-dir",
            "/tmp/c",
            "--content-type",
            "text/plain",
            "--meta",
            "a=1",
            "--meta",
            "b=2",
            "--acl",
            "public-read",
            "--storage-class",
            "ia",
            "--checksum",
            "crc64",
            "--progress",
            "json",
            "--region",
            "cn-hangzhou",
            "--signature",
            "v1",
        ])
        .unwrap();
        let Command::Upload(args) = cli.command else {
            panic!("not an upload")
        };
        assert_eq!(args.part_size, Some(8 << 20));
        assert_eq!(args.parallel, Some(ParallelArg::Fixed(8)));
        assert_eq!(args.meta.len(), 2);
        assert_eq!(args.acl, Some(AclArg::PublicRead));
        assert_eq!(args.storage_class, Some(StorageClassArg::Ia));
        assert_eq!(args.checksum, ChecksumArg::Crc64);
        assert_eq!(args.progress, ProgressArg::Json);
        assert_eq!(args.connection.signature, SignatureVersionArg::V1);
        assert_eq!(args.destination.key, "k");
    }

    #[test]
    fn upload_takes_the_content_encryption_tag_and_header_flags() {
        let cli = parse(&[
            "upload",
            "f.bin",
            "oss://bucket/k",
            "--cache-control",
            "no-cache",
            "--content-disposition",
            "attachment",
            "--content-encoding",
            "gzip",
            "--expires",
            "Wed, 21 Oct 2026 07:28:00 GMT",
            "--sse",
            "kms",
            "--sse-kms-key-id",
            "key-1",
            "--sse-data-encryption",
            "SM4",
            "--tagging",
            "a=1&b=2",
            "--tag",
            "c=3",
            "--tag",
            "d",
            "--header",
            "x-oss-request-payer: requester",
        ])
        .unwrap();
        let Command::Upload(args) = cli.command else {
            panic!("not an upload")
        };
        assert_eq!(args.cache_control.as_deref(), Some("no-cache"));
        assert_eq!(args.content_disposition.as_deref(), Some("attachment"));
        assert_eq!(args.content_encoding.as_deref(), Some("gzip"));
        assert_eq!(
            args.expires.as_deref(),
            Some("Wed, 21 Oct 2026 07:28:00 GMT")
        );
        assert_eq!(args.sse, Some(SseArg::Kms));
        assert_eq!(args.sse_kms_key_id.as_deref(), Some("key-1"));
        assert_eq!(args.sse_data_encryption, Some(SseDataArg::Sm4));
        assert_eq!(args.tagging.as_deref(), Some("a=1&b=2"));
        assert_eq!(
            args.tag,
            [
                ("c".to_owned(), "3".to_owned()),
                ("d".to_owned(), String::new())
            ]
        );
        assert_eq!(
            args.header,
            [("x-oss-request-payer".to_owned(), "requester".to_owned())]
        );
        let err = parse(&["upload", "f", "oss://bucket/k", "--sse", "DES"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue);
        let err = parse(&["upload", "f", "oss://bucket/k", "--header", "x-a=1"]).unwrap_err();
        assert!(err.to_string().contains("no ':'"), "{err}");
    }

    #[test]
    fn callback_flags_go_together() {
        let cli = parse(&[
            "upload",
            "f",
            "oss://bucket/k",
            "--callback-url",
            "http://app/a",
            "--callback-url",
            "http://app/b",
            "--callback-body",
            "o=${object}",
            "--callback-body-type",
            "json",
            "--callback-var",
            "x:user=alice",
            "--callback-var",
            "team=a=b",
        ])
        .unwrap();
        let Command::Upload(args) = cli.command else {
            panic!("not an upload")
        };
        assert_eq!(args.callback_url, ["http://app/a", "http://app/b"]);
        assert_eq!(args.callback_body_type, CallbackBodyTypeArg::Json);
        assert_eq!(
            args.callback_var,
            [
                ("user".to_owned(), "alice".to_owned()),
                ("team".to_owned(), "a=b".to_owned())
            ]
        );
        let missing_body = parse(&[
            "upload",
            "f",
            "oss://bucket/k",
            "--callback-url",
            "http://a",
        ]);
        assert_eq!(
            missing_body.unwrap_err().kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        let missing_url = parse(&["upload", "f", "oss://bucket/k", "--callback-body", "x"]);
        assert!(missing_url.is_err());
        let err = parse(&[
            "upload",
            "f",
            "oss://bucket/k",
            "--callback-url",
            "http://a",
            "--callback-body",
            "x",
            "--callback-var",
            "User=x",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("lowercase"), "{err}");
    }

    #[test]
    fn checkpoint_choices_exclude_each_other() {
        let err = parse(&[
            "upload",
            "f",
            "oss://bucket/k",
            "--no-checkpoint",
            "--checkpoint-db",
            "x",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn parallel_and_sequential_exclude_each_other() {
        let err = parse(&[
            "upload",
            "f",
            "oss://bucket/k",
            "--parallel",
            "2",
            "--sequential",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        assert!(parse(&["upload", "f", "oss://bucket/k", "--parallel", "0"]).is_err());
    }

    #[test]
    fn a_bad_size_names_the_flag() {
        let err = parse(&["upload", "f", "oss://bucket/k", "--part-size", "8 parsecs"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--part-size"), "{err}");
        assert!(err.contains("unknown unit"), "{err}");
    }

    #[test]
    fn resume_from_server_is_off_unless_asked_for_a_file_or_a_tree() {
        for (args, asked) in [
            (&["upload", "f", "oss://bucket/k"][..], false),
            (
                &["upload", "f", "oss://bucket/k", "--resume-from-server"][..],
                true,
            ),
            (
                &[
                    "upload",
                    "d",
                    "oss://bucket/p/",
                    "-r",
                    "--resume-from-server",
                ][..],
                true,
            ),
        ] {
            let Command::Upload(parsed) = parse(args).unwrap().command else {
                panic!("not an upload")
            };
            assert_eq!(parsed.resume_from_server, asked, "{args:?}");
        }
    }

    #[test]
    fn a_bucket_without_a_key_parses_as_the_destination_of_a_tree() {
        // A single file needs a key; that is checked when the command runs (see `upload::run`).
        let cli = parse(&["upload", "dir", "oss://bucket", "--recursive"]).unwrap();
        let Command::Upload(args) = cli.command else {
            panic!("not an upload")
        };
        assert!(args.recursive);
        assert_eq!(args.destination.key, "");
    }

    #[test]
    fn abort_needs_an_id_or_an_age() {
        assert!(parse(&["uploads", "abort", "oss://bucket/k"]).is_err());
        assert!(
            parse(&[
                "uploads",
                "abort",
                "oss://bucket/k",
                "--upload-id",
                "x",
                "--older-than",
                "1h"
            ])
            .is_err()
        );
        let cli = parse(&["uploads", "abort", "oss://bucket", "--older-than", "24h"]).unwrap();
        let Command::Uploads(UploadsCommand::Abort(args)) = cli.command else {
            panic!("not an abort")
        };
        assert_eq!(args.older_than, Some(Duration::from_secs(86_400)));
    }

    #[test]
    fn demo_defaults_to_256_mib() {
        let Command::Demo(args) = parse(&["demo"]).unwrap().command else {
            panic!("not a demo")
        };
        assert_eq!(args.size, 256 << 20);
    }
}
