//! How [`PostgresStore::lock`](crate::PostgresStore) keeps two runs, on any hosts, off one upload:
//! a session-level advisory lock, held on a connection of its own for as long as the lock is.
//!
//! The lock belongs to the session, so a holder that is killed loses it as soon as the server sees
//! its connection close, and a holder whose host is cut off loses it once the server's TCP
//! keepalives give up on the connection (set on the lock's session to about a minute). The key is
//! the first 64 bits of the MD5 of the schema and the upload's fingerprint, computed by the server,
//! so every build of ossup agrees on it. A refused claim names the holder as the holder's session
//! shows in `pg_stat_activity` (`ossup pid N on HOST`, and its address).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use deadpool_postgres::{ClientWrapper, Object};

use ossup::{StoreError, UploadIdentity};

use crate::store::Inner;

/// How this process names itself to the server (`application_name`).
pub(crate) fn holder_name() -> String {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| format!("ossup pid {} on {}", std::process::id(), host_name()))
        .clone()
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "an unknown host".into())
}

/// A held advisory lock; unlocked, and its connection closed, on drop.
#[derive(Debug)]
pub(crate) struct Held {
    client: Option<Arc<ClientWrapper>>,
    key: i64,
    watch: tokio::task::JoinHandle<()>,
}

/// Claims `identity`; a holder elsewhere gives [`StoreError::InUse`] at once.
pub(crate) async fn claim(inner: &Inner, identity: &UploadIdentity) -> Result<Held, StoreError> {
    // A connection of the lock's own, out of the pool: the lock lives as long as its session.
    let client = Object::take(inner.client().await?);
    let claimed = async {
        // A cut-off holder's session ends, and its lock with it, after about a minute.
        client
            .batch_execute(
                "SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; \
                 SET tcp_keepalives_count = 3",
            )
            .await?;
        let row = client
            .query_one(
                "SELECT key, pg_try_advisory_lock(key)
                 FROM (SELECT ('x' || substr(md5($1), 1, 16))::bit(64)::bigint AS key) AS k",
                &[&format!(
                    "{}:{}",
                    inner.schema_name(),
                    identity.fingerprint()
                )],
            )
            .await?;
        Ok::<_, tokio_postgres::Error>((row.get::<_, i64>(0), row.get::<_, bool>(1)))
    };
    let (key, held) = claimed.await.map_err(|err| inner.error(err))?;
    if !held {
        return Err(StoreError::InUse {
            identity: identity.to_string(),
            holder: holder_of(&client, key)
                .await
                .unwrap_or_else(|| format!("another session of {}", inner.location())),
        });
    }
    let client = Arc::new(client);
    let watch = tokio::spawn(watch(
        Arc::downgrade(&client),
        identity.to_string(),
        inner.location().to_string(),
    ));
    Ok(Held {
        client: Some(client),
        key,
        watch,
    })
}

/// Who holds advisory lock `key` in this database, as the server knows the session.
async fn holder_of(client: &ClientWrapper, key: i64) -> Option<String> {
    let row = client
        .query_opt(
            "SELECT a.application_name, coalesce(host(a.client_addr), 'a local socket'),
                    a.backend_start::text
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND ((l.classid::bigint << 32) | l.objid::bigint) = $1",
            &[&key],
        )
        .await
        .ok()??;
    let name: Option<String> = row.get(0);
    let from: String = row.get(1);
    let since: Option<String> = row.get(2);
    Some(format!(
        "{} from {from}, connected since {}",
        name.filter(|n| !n.is_empty())
            .unwrap_or_else(|| "a session without a name".into()),
        since.unwrap_or_else(|| "?".into())
    ))
}

/// Tells the holder when the lock's session is gone (a server restart): the upload then goes on
/// without exclusion, which the log must say.
async fn watch(client: std::sync::Weak<ClientWrapper>, identity: String, location: String) {
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let Some(client) = client.upgrade() else {
            return;
        };
        if client.simple_query("").await.is_err() {
            tracing::warn!(upload = %identity, database = %location, "the session holding the checkpoint lock was lost; another run may take the upload over");
            return;
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.watch.abort();
        let Some(client) = self.client.take() else {
            return;
        };
        let key = self.key;
        let unlock = async move {
            // Closing the session would release the lock too, but only once the server has seen
            // the connection close: unlocking first frees it by the time this returns.
            if let Err(err) = client
                .execute("SELECT pg_advisory_unlock($1)", &[&key])
                .await
            {
                tracing::debug!(
                    "unlocking a checkpoint lock failed ({err}); closing its session releases it"
                );
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime)
                if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread =>
            {
                tokio::task::block_in_place(|| runtime.block_on(unlock))
            }
            Ok(runtime) => drop(runtime.spawn(unlock)),
            // No runtime to run the unlock on: dropping the connection closes the session.
            Err(_) => {}
        }
    }
}
