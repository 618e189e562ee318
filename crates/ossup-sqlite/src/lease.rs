//! Leases: how [`SqliteStore::lock`](crate::SqliteStore) keeps two processes off one upload.
//!
//! A lease is a row naming its holder (process id, the process's start time, host) with an expiry that
//! a background task keeps pushing forward while the lock is held. A new claim takes the lease over
//! when its holder is gone: on the same host, when that process no longer runs (checked in
//! `/proc`, start time included, so a reused process id is not mistaken for the holder); on another
//! host, when the lease expired. Within one process a registry answers first, so two handles on one
//! database in the same process exclude each other too.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use ossup::{StoreError, UploadIdentity};

use crate::store::{Db, Failure};

/// Leases held by this process, by database and fingerprint.
fn registry() -> &'static Mutex<HashSet<(PathBuf, String)>> {
    static HELD: OnceLock<Mutex<HashSet<(PathBuf, String)>>> = OnceLock::new();
    HELD.get_or_init(Default::default)
}

/// Who this process is, as a lease row records it.
struct Me {
    pid: u32,
    started: Option<u64>,
    host: String,
}

fn me() -> &'static Me {
    static ME: OnceLock<Me> = OnceLock::new();
    ME.get_or_init(|| {
        let pid = std::process::id();
        Me {
            pid,
            started: process_start(pid),
            host: host_name(),
        }
    })
}

/// Holds a lease until dropped: renews it meanwhile, releases it on drop.
#[derive(Debug)]
pub(crate) struct Lease {
    db: Arc<Db>,
    key: (PathBuf, String),
    token: String,
    renewal: tokio::task::JoinHandle<()>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewal.abort();
        registry()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
        let db = self.db.clone();
        let fingerprint = self.key.1.clone();
        let token = std::mem::take(&mut self.token);
        let release = move || {
            let released = db.with(|conn| {
                conn.execute(
                    "DELETE FROM leases WHERE fingerprint = ?1 AND token = ?2",
                    params![fingerprint, token],
                )?;
                Ok(())
            });
            if let Err(err) = released {
                // The row stays until a claim sees this process gone or the lease expired.
                tracing::warn!("releasing a checkpoint lease failed: {err}");
            }
        };
        // Within this process the registry already says "free"; other processes need the row gone
        // by the time the drop returns, so it is deleted right here, telling a multi-threaded runtime
        // that this thread blocks. A current-thread runtime cannot be told, so there the deletion is
        // queued on the blocking pool and lands a moment later.
        match tokio::runtime::Handle::try_current().map(|runtime| runtime.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(release),
            Ok(_) => drop(tokio::task::spawn_blocking(release)),
            Err(_) => release(),
        }
    }
}

/// Claims `identity` in `db`; a live holder elsewhere gives [`StoreError::InUse`].
pub(crate) async fn claim(db: Arc<Db>, identity: &UploadIdentity) -> Result<Lease, StoreError> {
    let fingerprint = identity.fingerprint();
    let key = (db.registry_path(), fingerprint.clone());
    let me = me();
    if !registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key.clone())
    {
        return Err(StoreError::InUse {
            identity: identity.to_string(),
            holder: format!(
                "pid {} on {}, this very process, through {}",
                me.pid,
                me.host,
                db.path().display()
            ),
        });
    }
    let token = new_token();
    let ttl = db.options().lease_ttl;
    let claimed = {
        let db = db.clone();
        let fingerprint = fingerprint.clone();
        let token = token.clone();
        let identity = identity.to_string();
        tokio::task::spawn_blocking(move || {
            db.with(|conn| take_over_or_refuse(conn, &fingerprint, &identity, &token, ttl))
        })
        .await
        .unwrap_or_else(|err| {
            Err(StoreError::Other(format!(
                "claiming a lease panicked: {err}"
            )))
        })
    };
    if let Err(err) = claimed {
        registry()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        return Err(err);
    }
    let renewal = tokio::spawn(renew(
        Arc::downgrade(&db),
        fingerprint,
        token.clone(),
        identity.to_string(),
        ttl,
    ));
    Ok(Lease {
        db,
        key,
        token,
        renewal,
    })
}

fn take_over_or_refuse(
    conn: &mut rusqlite::Connection,
    fingerprint: &str,
    identity: &str,
    token: &str,
    ttl: Duration,
) -> Result<(), Failure> {
    let me = me();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let holder: Option<(i64, Option<i64>, String, i64)> = tx
        .query_row(
            "SELECT holder_pid, holder_started, holder_host, expires_unix_ms
             FROM leases WHERE fingerprint = ?1",
            [fingerprint],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()?;
    let now = now_ms();
    if let Some((pid, started, host, expires)) = holder {
        let pid = u32::try_from(pid).unwrap_or(0);
        let started = started.map(|s| s as u64);
        let live = if host == me.host {
            // This process's own rows are stale once the registry says free (checked before).
            !(pid == me.pid && (started.is_none() || started == me.started))
                && process_alive(pid, started)
        } else {
            expires > now
        };
        if live {
            let remaining = Duration::from_millis(expires.saturating_sub(now).max(0) as u64);
            return Err(Failure::Store(StoreError::InUse {
                identity: identity.to_string(),
                holder: format!(
                    "pid {pid} on {host}, lease renewed to {}s from now",
                    remaining.as_secs()
                ),
            }));
        }
        tracing::info!(
            holder_pid = pid,
            holder_host = %host,
            "taking over the checkpoint lease of a holder that is gone"
        );
    }
    tx.execute(
        "INSERT OR REPLACE INTO leases
             (fingerprint, holder_pid, holder_started, holder_host, token, expires_unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            fingerprint,
            me.pid,
            me.started.map(|s| s as i64),
            me.host,
            token,
            now + ttl.as_millis() as i64
        ],
    )?;
    tx.commit()?;
    Ok(())
}

async fn renew(db: Weak<Db>, fingerprint: String, token: String, identity: String, ttl: Duration) {
    let period = (ttl / 3).max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(period).await;
        let Some(db) = db.upgrade() else { return };
        let (fingerprint, token) = (fingerprint.clone(), token.clone());
        let renewed = tokio::task::spawn_blocking(move || {
            db.with(|conn| {
                Ok(conn.execute(
                    "UPDATE leases SET expires_unix_ms = ?3 WHERE fingerprint = ?1 AND token = ?2",
                    params![fingerprint, token, now_ms() + ttl.as_millis() as i64],
                )?)
            })
        })
        .await;
        match renewed {
            Ok(Ok(1)) => {}
            Ok(Ok(_)) => {
                tracing::warn!(upload = %identity, "the checkpoint lease was taken over by another process; stop this upload");
                return;
            }
            Ok(Err(err)) => {
                tracing::warn!(upload = %identity, "renewing the checkpoint lease failed: {err}")
            }
            Err(_) => return,
        }
    }
}

fn new_token() -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Whether process `pid` (started at `started`, in clock ticks after boot, when known) still runs.
/// Without `/proc` nothing can be told and the answer is yes: the lease's expiry decides then.
fn process_alive(pid: u32, started: Option<u64>) -> bool {
    match read_stat(pid) {
        Some((state, start)) => {
            !matches!(state, 'Z' | 'X') && started.is_none_or(|expected| expected == start)
        }
        None => !std::path::Path::new("/proc/self/stat").exists(),
    }
}

fn process_start(pid: u32) -> Option<u64> {
    read_stat(pid).map(|(_, start)| start)
}

/// The state letter and start time of a process, from `/proc/PID/stat`.
fn read_stat(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; the fields after its closing one do not.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 22 of the file, starttime, is the 20th after the name.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "an unknown host".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not_its_holder() {
        let me = me();
        assert!(process_alive(me.pid, me.started));
        if let Some(started) = me.started {
            assert!(!process_alive(me.pid, Some(started + 1)));
        }
    }

    #[test]
    fn a_reaped_child_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(!process_alive(pid, None));
        }
    }
}
