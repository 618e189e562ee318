//! A mock OSS server in this process and the `ossup` binary run against it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use oss_mock::MockServer;
use ossup::{Client, ObjectOptions};
pub(crate) use ossup_test_support::{ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET, PART, REGION};
use tokio::runtime::Runtime;

/// A running mock server, a scratch directory, and a runtime to talk to the server directly.
pub(crate) struct Harness {
    // Declared first so the server stops before the runtime that drives it.
    server: Option<MockServer>,
    runtime: Runtime,
    pub dir: tempfile::TempDir,
}

impl Harness {
    /// Starts a mock server with [`BUCKET`] on a free loopback port.
    pub(crate) fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = runtime.block_on(ossup_test_support::mock());
        Self {
            server: Some(server),
            runtime,
            dir: tempfile::tempdir().expect("scratch dir"),
        }
    }

    pub(crate) fn endpoint(&self) -> String {
        self.server.as_ref().expect("server").endpoint()
    }

    /// Where checkpoints go unless a test says otherwise (the default per-user state directory,
    /// moved here through XDG_STATE_HOME).
    pub(crate) fn state_home(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub(crate) fn default_checkpoint_dir(&self) -> PathBuf {
        self.state_home().join("ossup").join("checkpoints")
    }

    /// `ossup` with the mock's endpoint, region and credentials in its environment, and nothing
    /// from the caller's environment that could point it elsewhere.
    pub(crate) fn ossup(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ossup"));
        for var in [
            "OSS_ENDPOINT",
            "OSS_REGION",
            "OSS_ACCESS_KEY_ID",
            "OSS_ACCESS_KEY_SECRET",
            "OSS_SESSION_TOKEN",
            "RUST_LOG",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("OSS_ENDPOINT", self.endpoint())
            .env("OSS_REGION", REGION)
            .env("OSS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("OSS_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
            .env("XDG_STATE_HOME", self.state_home())
            .current_dir(self.dir.path());
        cmd
    }

    /// `ossup upload FILE oss://BUCKET/KEY --part-size 100KiB` plus `extra`.
    pub(crate) fn upload(&self, file: &Path, key: &str, extra: &[&str]) -> Command {
        let mut cmd = self.ossup();
        cmd.arg("upload")
            .arg(file)
            .arg(format!("oss://{BUCKET}/{key}"))
            .args(["--part-size", "100KiB"])
            .args(extra);
        cmd
    }

    /// A file of `size` bytes, random from `seed`.
    pub(crate) fn file(&self, name: &str, size: usize, seed: u64) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, ossup_test_support::data(size, seed)).expect("write test file");
        path
    }

    /// A client of the mock, for checking what the server holds.
    pub(crate) fn client(&self) -> Client {
        ossup_test_support::client(&self.endpoint())
    }

    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Asserts the object is byte for byte the file: size, MD5 and CRC-64 as read back, and the
    /// CRC-64 the server holds.
    pub(crate) fn assert_object_is(&self, key: &str, file: &Path) {
        let expected = std::fs::read(file).expect("read source");
        self.block_on(ossup_test_support::assert_object_is(
            &self.client(),
            key,
            &expected,
        ));
    }

    /// Starts a multipart upload directly, as an interrupted upload would leave one.
    pub(crate) fn initiate(&self, key: &str) -> String {
        let client = self.client();
        self.block_on(client.initiate_multipart_upload(BUCKET, key, &ObjectOptions::default()))
            .expect("InitiateMultipartUpload")
    }

    /// The (key, upload id) pairs the server holds open.
    /// How many requests of `api` the mock has served.
    pub(crate) fn requests(&self, api: ossup::Api) -> u64 {
        self.server.as_ref().expect("server").stats().requests(api)
    }

    /// Arms the mock's fault rules, given as the JSON its `--faults` file takes.
    pub(crate) fn set_faults(&self, rules: &str) {
        let rules = oss_mock::parse_fault_rules(rules.as_bytes()).expect("fault rules parse");
        self.server
            .as_ref()
            .expect("server")
            .set_faults(rules)
            .expect("fault rules are accepted");
    }

    /// Has the mock accept temporary credentials: `id` and `secret` with the security `token`.
    pub(crate) fn allow_sts(&self, id: &str, secret: &str, token: &str) {
        self.server
            .as_ref()
            .expect("server")
            .set_sts_credential(oss_mock::StsCredential::new(id, secret, token));
    }

    pub(crate) fn open_uploads(&self) -> Vec<(String, String)> {
        let client = self.client();
        self.block_on(client.list_multipart_uploads(BUCKET, None))
            .expect("ListMultipartUploads")
            .into_iter()
            .map(|u| (u.key, u.upload_id))
            .collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.runtime.block_on(server.shutdown());
        }
    }
}

/// What a finished run printed and how it ended.
pub(crate) struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub(crate) fn of(cmd: &mut Command) -> Run {
        let Output {
            status,
            stdout,
            stderr,
        } = cmd.output().expect("run ossup");
        Run {
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Panics with everything the run printed unless it exited with `code`.
    pub(crate) fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// The JSON events of a `--progress json` run.
    pub(crate) fn events(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
            .collect()
    }

    /// The first event named `name`.
    pub(crate) fn event(&self, name: &str) -> serde_json::Value {
        self.events()
            .into_iter()
            .find(|e| e["event"] == name)
            .unwrap_or_else(|| panic!("no {name} event in\n{}", self.stdout))
    }

    /// Asserts nothing in the output looks like a panic or a debug dump.
    pub(crate) fn assert_no_dump(&self) {
        for text in [&self.stdout, &self.stderr] {
            assert!(!text.contains("panicked"), "{text}");
            assert!(!text.contains("RUST_BACKTRACE"), "{text}");
            assert!(!text.contains("Error {"), "{text}");
            assert!(!text.contains("kind:"), "{text}");
        }
    }
}

/// `cmd` run by `sh` under a umask of 000, so every file it creates gets exactly the mode it asks
/// for: the same program, arguments, environment and directory.
pub(crate) fn under_umask_000(cmd: &Command) -> Command {
    let mut wrapped = Command::new("sh");
    wrapped
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (name, value) in cmd.get_envs() {
        match value {
            Some(value) => wrapped.env(name, value),
            None => wrapped.env_remove(name),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}
