//! `cargo xtask oss2`: the official SDKs, unmodified, against the `oss-mock` binary: oss2 and
//! alibabacloud-oss-v2 (Python), and ali-oss (Node.js).
//!
//! Creates a virtual environment under `target/oss2-venv` and installs the pinned Python SDKs there,
//! and ali-oss under `target/ali-oss-peer` from `conformance/peers/ali_oss/package-lock.json`
//! (`npm ci`), when missing; builds and starts `oss-mock` on a free loopback port (with temporary
//! credentials for the V2 and ali-oss peers), runs the peers of `conformance/peers/` against it one
//! after the other, and stops the mock whatever happened.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::cmd::{Failure, Step, target_dir, workspace_root};
use crate::mock_process;

/// The oss2 release the peer check runs (verified against the mock).
pub(crate) const OSS2_VERSION: &str = "2.19.1";
/// The alibabacloud-oss-v2 release the second peer runs (verified against the mock).
const OSS_V2_VERSION: &str = "1.4.1";
/// The temporary credentials the mock accepts for the V2 peer: id, secret, token.
const STS: (&str, &str, &str) = ("STS.peer", "sts-peer-secret", "sts-peer-token");
/// The bucket the mock is started with for the peer.
const BUCKET: &str = "oss2-peer";
/// The peer script, relative to the workspace root.
const PEER_SCRIPT: &str = "conformance/peers/oss2_peer.py";
/// The alibabacloud-oss-v2 peer script, relative to the workspace root.
const V2_PEER_SCRIPT: &str = "conformance/peers/oss_v2_peer.py";
/// The ali-oss peer's directory (package.json, package-lock.json, peer.js), relative to the
/// workspace root.
const ALI_OSS_PEER_DIR: &str = "conformance/peers/ali_oss";
/// The mock's credentials and region when started without flags.
const ACCESS_KEY_ID: &str = "test-ak";
const ACCESS_KEY_SECRET: &str = "test-sk";
const REGION: &str = "cn-hangzhou";
/// How long the peer script may run.
const PEER_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs the official SDKs' peers against one mock, stopping at the first that fails.
pub(crate) fn run() -> Result<(), Failure> {
    let python = ensure_venv()?;
    let node_modules = ensure_ali_oss()?;
    Step::cargo(
        "build the mock server",
        ["build", "--quiet", "--package", "oss-mock"],
    )
    .run()?;
    let mock = MockProcess::start()?;
    // Every peer takes the same arguments: where the mock is, and its keys.
    let peer_args = |script: PathBuf, endpoint: &str, extra: &[&str]| {
        let mut args: Vec<std::ffi::OsString> = vec![
            script.into_os_string(),
            "--endpoint".into(),
            endpoint.into(),
            "--bucket".into(),
            BUCKET.into(),
            "--access-key-id".into(),
            ACCESS_KEY_ID.into(),
            "--access-key-secret".into(),
            ACCESS_KEY_SECRET.into(),
            "--region".into(),
            REGION.into(),
        ];
        args.extend(extra.iter().map(Into::into));
        args
    };
    let python_peer = |name: &str, script: &str, extra: &[&str]| {
        let args = peer_args(workspace_root().join(script), &mock.endpoint, extra);
        Step::new(name, &python, args)
    };
    let temporary = [
        "--sts-access-key-id",
        STS.0,
        "--sts-access-key-secret",
        STS.1,
        "--sts-token",
        STS.2,
    ];
    let result = run_with_timeout(&python_peer("oss2 peer", PEER_SCRIPT, &[]), PEER_TIMEOUT)
        .and_then(|()| {
            run_with_timeout(
                &python_peer("alibabacloud-oss-v2 peer", V2_PEER_SCRIPT, &temporary),
                PEER_TIMEOUT,
            )
        })
        .and_then(|()| {
            // ali-oss's presigned URLs need a host name, not an IP address.
            let endpoint = mock.endpoint.replace("127.0.0.1", "localhost");
            let script = workspace_root().join(ALI_OSS_PEER_DIR).join("peer.js");
            // The mock listens on 127.0.0.1: `localhost` must not resolve to ::1 first.
            let mut args: Vec<std::ffi::OsString> = vec!["--dns-result-order=ipv4first".into()];
            args.extend(peer_args(script, &endpoint, &temporary));
            let peer = Step::new("ali-oss peer", "node", args)
                .env("NODE_PATH", node_modules.join("node_modules"));
            run_with_timeout(&peer, PEER_TIMEOUT)
        });
    if result.is_err() {
        mock.show_log();
    }
    result
}

/// The venv's Python with oss2 at [`OSS2_VERSION`], creating and installing what is missing.
pub(crate) fn ensure_venv() -> Result<PathBuf, Failure> {
    let venv = target_dir().join("oss2-venv");
    let python = venv.join("bin").join("python");
    if python.exists() && !has_pip(&python) {
        println!(
            "==> {} has no working pip (made when python3-venv was missing?); making it again",
            venv.display()
        );
        std::fs::remove_dir_all(&venv).map_err(|e| {
            Failure::new(format!(
                "could not remove the broken venv {}: {e}",
                venv.display()
            ))
        })?;
    }
    if !python.exists() {
        Step::new(
            "create the Python virtual environment",
            "python3",
            ["-m".into(), "venv".into(), venv.clone().into_os_string()],
        )
        .run()
        .map_err(|e| {
            Failure::new(format!(
                "{e}. `python3 -m venv` needs the venv module: on Debian, `apt-get install python3-venv` (.ci/run does this)"
            ))
        })?;
    }
    for (package, module, version) in [
        ("oss2", "oss2", OSS2_VERSION),
        ("alibabacloud-oss-v2", "alibabacloud_oss_v2", OSS_V2_VERSION),
    ] {
        if installed_version(&python, module).as_deref() == Some(version) {
            continue;
        }
        Step::new(
            &format!("install {package}"),
            &python,
            [
                "-m".to_owned(),
                "pip".to_owned(),
                "install".to_owned(),
                "--quiet".to_owned(),
                "--disable-pip-version-check".to_owned(),
                format!("{package}=={version}"),
            ],
        )
        .run()?;
        let installed = installed_version(&python, module);
        if installed.as_deref() != Some(version) {
            return Err(Failure::new(format!(
                "after pip install, {} imports {module} {installed:?}, not {version}; remove {} and try again",
                python.display(),
                venv.display()
            )));
        }
    }
    println!(
        "==> oss2 {OSS2_VERSION} and alibabacloud-oss-v2 {OSS_V2_VERSION} ready in {}",
        venv.display()
    );
    Ok(python)
}

/// `target/ali-oss-peer` with ali-oss installed as `conformance/peers/ali_oss/package-lock.json`
/// pins it, installing (`npm ci`) when the lock file there differs from the repository's.
fn ensure_ali_oss() -> Result<PathBuf, Failure> {
    let source = workspace_root().join(ALI_OSS_PEER_DIR);
    let dir = target_dir().join("ali-oss-peer");
    let read = |path: &Path| std::fs::read(path).ok();
    let lock = "package-lock.json";
    let installed = dir.join("node_modules").join("ali-oss").is_dir()
        && read(&dir.join(lock)).is_some()
        && read(&dir.join(lock)) == read(&source.join(lock));
    if !installed {
        std::fs::create_dir_all(&dir)
            .map_err(|e| Failure::new(format!("could not create {}: {e}", dir.display())))?;
        for file in ["package.json", lock] {
            std::fs::copy(source.join(file), dir.join(file)).map_err(|e| {
                Failure::new(format!("could not copy {file} to {}: {e}", dir.display()))
            })?;
        }
        let mut install = Step::new(
            "install ali-oss",
            "npm",
            [
                "ci",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ],
        );
        install.args(&[&dir]);
        install.run().map_err(|e| {
            Failure::new(format!(
                "{e}. The ali-oss peer needs Node.js 18 or later and npm: on Debian, `apt-get install nodejs npm` (.ci/run does this)"
            ))
        })?;
    }
    println!("==> ali-oss ready in {}", dir.display());
    Ok(dir)
}

fn has_pip(python: &Path) -> bool {
    std::process::Command::new(python)
        .args(["-m", "pip", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The version of `module` the venv's Python imports, if it imports it.
fn installed_version(python: &Path, module: &str) -> Option<String> {
    let output = std::process::Command::new(python)
        .args([
            "-c",
            &format!("import {module}; print({module}.__version__)"),
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Runs `step`, killing it when it outlives `timeout`.
fn run_with_timeout(step: &Step, timeout: Duration) -> Result<(), Failure> {
    step.announce();
    let mut child = step
        .command()
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| Failure::new(format!("{}: could not start: {e}", step.name())))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(Failure::new(format!(
                    "{}: `{}` exited with {status}",
                    step.name(),
                    step.command_line()
                )));
            }
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Failure::new(format!(
                    "{}: still running after {timeout:?}; stopped it",
                    step.name()
                )));
            }
            Ok(None) => thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(Failure::new(format!("{}: {e}", step.name()))),
        }
    }
}

/// The `oss-mock` binary, running until dropped.
struct MockProcess {
    child: Child,
    endpoint: String,
    log: PathBuf,
}

impl MockProcess {
    fn start() -> Result<Self, Failure> {
        let binary = target_dir()
            .join("debug")
            .join(format!("oss-mock{}", std::env::consts::EXE_SUFFIX));
        let log = target_dir().join("oss2-mock.log");
        let stderr = File::create(&log)
            .map_err(|e| Failure::new(format!("could not create {}: {e}", log.display())))?;
        let sts = format!("{}:{}:{}", STS.0, STS.1, STS.2);
        let args = ["--listen", "127.0.0.1:0", "--bucket", BUCKET, "--sts", &sts];
        println!(
            "==> start the mock server: {} {}",
            binary.display(),
            args.join(" ")
        );
        match mock_process::start(&binary, args, stderr) {
            Ok(started) => {
                println!("==> mock server listening on {}", started.endpoint);
                Ok(Self {
                    child: started.child,
                    endpoint: started.endpoint,
                    log,
                })
            }
            Err(what) => {
                eprintln!("{}", mock_process::log_tail(&log, 40));
                Err(Failure::new(format!(
                    "the mock server did not start: {what}"
                )))
            }
        }
    }

    fn show_log(&self) {
        eprintln!("{}", mock_process::log_tail(&self.log, 40));
    }
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
