//! A throwaway PostgreSQL cluster for tests: `initdb` into a temporary directory, the server on a
//! free loopback port (and a socket directory inside the temporary directory), stopped and removed
//! when the [`PgCluster`] drops. No mock of the database: the checkpoint store's tests run against
//! the real server the distribution ships.
//!
//! `initdb` refuses to run as root, so when the tests run as root (a CI container) the cluster
//! belongs to the `postgres` user the Debian package creates, and every server command runs as that
//! user through `runuser`.
//!
//! When PostgreSQL is not installed, [`PgCluster::start`] panics naming the package to install: a
//! test that needs the database fails rather than skipping silently.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The database role every cluster is created with.
pub const PG_USER: &str = "ossup";

/// The database every cluster starts with (besides `postgres` and the templates).
pub const PG_DATABASE: &str = "ossup";

/// How a [`PgCluster`] is set up.
#[derive(Debug, Clone, Default)]
pub struct PgSettings {
    /// Turns `fsync` off: several times faster, and fine for every test except those that restart
    /// the server and expect what it committed to be there.
    pub fast_unsafe: bool,
    /// A password for [`PG_USER`], required over TCP (`scram-sha-256`); without one, TCP
    /// connections from loopback are trusted.
    pub password: Option<String>,
}

/// A running PostgreSQL server in a temporary directory, removed on drop.
#[derive(Debug)]
pub struct PgCluster {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    port: u16,
    run_as_postgres: bool,
    settings: PgSettings,
}

impl PgCluster {
    /// A durable cluster (`fsync` on) that trusts loopback connections.
    pub fn start() -> Self {
        Self::start_with(PgSettings::default())
    }

    /// A cluster with `fsync` off, for tests that never restart the server.
    pub fn start_fast() -> Self {
        Self::start_with(PgSettings {
            fast_unsafe: true,
            ..PgSettings::default()
        })
    }

    /// A cluster set up as `settings` say. Panics, saying what to do, when PostgreSQL is missing or
    /// the server does not start.
    pub fn start_with(settings: PgSettings) -> Self {
        let bindir = bindir();
        let dir = tempfile::Builder::new()
            .prefix("ossup-pg-")
            .tempdir()
            .expect("a temporary directory for the PostgreSQL cluster");
        let run_as_postgres = rustix::process::geteuid().is_root();
        std::fs::create_dir(dir.path().join("socket")).expect("the cluster's socket directory");
        if run_as_postgres {
            chown_to_postgres(dir.path());
        }
        let mut initdb = vec![
            path_arg(&bindir.join("initdb")),
            "--pgdata".into(),
            path_arg(&dir.path().join("data")),
            "--username".into(),
            PG_USER.into(),
            "--encoding=UTF8".into(),
            "--locale=C".into(),
            "--auth-local=trust".into(),
        ];
        match &settings.password {
            Some(password) => {
                let file = dir.path().join("pwfile");
                std::fs::write(&file, password).expect("the initdb password file");
                if run_as_postgres {
                    chown_to_postgres(&file);
                }
                initdb.push(format!("--pwfile={}", file.display()));
                initdb.push("--auth-host=scram-sha-256".into());
            }
            None => initdb.push("--auth-host=trust".into()),
        }
        let cluster = Self {
            dir,
            bindir,
            port: 0,
            run_as_postgres,
            settings,
        };
        cluster.run(&initdb, "initdb");
        let mut cluster = cluster;
        // A port free a moment ago may be taken by the time the server binds it: try a few.
        for attempt in 1..=5 {
            cluster.port = free_port();
            if cluster.try_start() {
                cluster.create_database(PG_DATABASE);
                return cluster;
            }
            eprintln!(
                "PostgreSQL did not start on port {} (attempt {attempt})",
                cluster.port
            );
        }
        panic!(
            "PostgreSQL did not start; its log:\n{}",
            std::fs::read_to_string(cluster.log()).unwrap_or_default()
        );
    }

    /// The URL of `database` on this cluster as [`PG_USER`], over TCP on loopback.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("socket")
    }

    /// Creates `database`, owned by [`PG_USER`].
    pub fn create_database(&self, database: &str) {
        self.psql("postgres", &format!("CREATE DATABASE \"{database}\""));
    }

    /// Runs `sql` in `database` through `psql` over the socket, panicking with its output when it
    /// fails; returns what it printed (unaligned, tuples only).
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let psql = self.bindir.join("psql");
        let psql = if psql.exists() {
            psql
        } else {
            PathBuf::from("psql")
        };
        self.run(
            &[
                path_arg(&psql),
                "--no-psqlrc".into(),
                "--set=ON_ERROR_STOP=1".into(),
                "--tuples-only".into(),
                "--no-align".into(),
                "--host".into(),
                path_arg(&self.socket_dir()),
                "--port".into(),
                self.port.to_string(),
                "--username".into(),
                PG_USER.into(),
                "--dbname".into(),
                database.into(),
                "--command".into(),
                sql.into(),
            ],
            "psql",
        )
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`: no checkpoint, recovery from
    /// the write-ahead log at the next start).
    pub fn crash(&self) {
        self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
    }

    /// Starts the server again after [`crash`](Self::crash), on the same port.
    pub fn restart(&self) {
        assert!(
            self.try_start(),
            "PostgreSQL did not start again; its log:\n{}",
            std::fs::read_to_string(self.log()).unwrap_or_default()
        );
    }

    fn try_start(&self) -> bool {
        let fsync = if self.settings.fast_unsafe {
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        } else {
            ""
        };
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200{fsync}",
            self.port,
            self.socket_dir().display()
        );
        let args = vec![
            path_arg(&self.bindir.join("pg_ctl")),
            "start".to_string(),
            "-w".into(),
            "-t".into(),
            "60".into(),
            "-D".into(),
            path_arg(&self.dir.path().join("data")),
            "-l".into(),
            path_arg(&self.log()),
            "-o".into(),
            options,
        ];
        let output = self.command(&args).output().expect("pg_ctl runs");
        output.status.success()
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn pg_ctl(&self, args: &[&str]) {
        let mut all = vec![
            path_arg(&self.bindir.join("pg_ctl")),
            "-D".into(),
            path_arg(&self.dir.path().join("data")),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        self.run(&all, "pg_ctl");
    }

    fn command(&self, args: &[String]) -> Command {
        let mut command = if self.run_as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]);
            c.args(args.iter());
            c
        } else {
            let mut c = Command::new(&args[0]);
            c.args(&args[1..]);
            c
        };
        // Not the caller's settings: the cluster is addressed explicitly.
        command.env_remove("PGDATA").env_remove("PGHOST");
        // A process group of its own: the signals of a server stopped as a crash would
        // (`stop -m immediate`) were seen to reach the caller's other children (a mock server,
        // clients) when `runuser` and `pg_ctl` shared their group.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command.current_dir(self.dir.path());
        command
    }

    fn run(&self, args: &[String], what: &str) -> String {
        let output = self
            .command(args)
            .output()
            .unwrap_or_else(|err| panic!("{what} could not be started: {err}"));
        assert!(
            output.status.success(),
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Immediate: nothing of a throwaway cluster needs a checkpoint, and it is quickest.
        let args = vec![
            path_arg(&self.bindir.join("pg_ctl")),
            "stop".into(),
            "-m".into(),
            "immediate".into(),
            "-w".into(),
            "-D".into(),
            path_arg(&self.dir.path().join("data")),
        ];
        let _stopped = self.command(&args).output();
    }
}

/// The directory of PostgreSQL's server programs: `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin` holding `initdb`.
fn bindir() -> PathBuf {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        .filter(|dir| dir.join("initdb").exists());
    if let Some(dir) = from_pg_config {
        return dir;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "PostgreSQL's server programs (initdb, pg_ctl) were not found by `pg_config --bindir` \
             or in /usr/lib/postgresql/*/bin: install them (`apt-get install postgresql` on Debian \
             and Ubuntu); these tests start a throwaway cluster of their own"
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

fn chown_to_postgres(path: &Path) {
    let status = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .status()
        .expect("chown runs");
    assert!(
        status.success(),
        "chown to the `postgres` user failed: running as root, the cluster must belong to the \
         `postgres` user that the postgresql package creates (`apt-get install postgresql`)"
    );
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}
