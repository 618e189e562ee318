//! [`Cooperation`] for [`SqliteStore`]: processes on one host sharing an upload through one
//! database. Each claim is decided inside an IMMEDIATE transaction, which SQLite gives one writer at
//! a time, so two processes claiming at once never get the same part. Leases are counted in unix
//! milliseconds of the host's clock, which every process sharing the database file reads. File
//! claims (whole objects of a batch) live in `file_claims`, one row per object.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use ossup::store::{Claim, Cooperation, FileClaim, FinishedFile, HeldFile};
use ossup::{StoreError, UploadIdentity};

use crate::SqliteStore;
use crate::store::Failure;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn until(lease: Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
}

/// `NotFound` unless `fingerprint` has a saved checkpoint.
fn require_upload(
    tx: &rusqlite::Transaction<'_>,
    fingerprint: &str,
    identity: &str,
) -> Result<(), Failure> {
    let saved = tx
        .prepare_cached("SELECT 1 FROM uploads WHERE fingerprint = ?1")?
        .query_row([fingerprint], |_| Ok(()))
        .optional()?;
    match saved {
        Some(()) => Ok(()),
        None => Err(Failure::Store(StoreError::NotFound(identity.to_string()))),
    }
}

#[async_trait::async_trait]
impl Cooperation for SqliteStore {
    async fn claim_parts(
        &self,
        identity: &UploadIdentity,
        worker: &str,
        candidates: &[u32],
        max: usize,
        lease: Duration,
    ) -> Result<Vec<u32>, StoreError> {
        if candidates.is_empty() || max == 0 {
            return Ok(Vec::new());
        }
        let (fingerprint, name) = (identity.fingerprint(), identity.to_string());
        let (worker, candidates) = (worker.to_string(), candidates.to_vec());
        self.run(move |db| {
            db.with(|conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                require_upload(&tx, &fingerprint, &name)?;
                let (now, expires) = (now_ms(), until(lease));
                let mut claimed = Vec::new();
                {
                    let mut recorded = tx.prepare_cached(
                        "SELECT 1 FROM parts WHERE fingerprint = ?1 AND number = ?2",
                    )?;
                    let mut holder = tx.prepare_cached(
                        "SELECT worker, expires_unix_ms FROM claims
                         WHERE fingerprint = ?1 AND number = ?2",
                    )?;
                    let mut take = tx.prepare_cached(
                        "INSERT OR REPLACE INTO claims (fingerprint, number, worker, expires_unix_ms)
                         VALUES (?1, ?2, ?3, ?4)",
                    )?;
                    let mut sorted = candidates;
                    sorted.sort_unstable();
                    sorted.dedup();
                    for number in sorted {
                        if claimed.len() >= max {
                            break;
                        }
                        if recorded
                            .query_row(params![fingerprint, number], |_| Ok(()))
                            .optional()?
                            .is_some()
                        {
                            continue;
                        }
                        let held: Option<(String, i64)> = holder
                            .query_row(params![fingerprint, number], |row| {
                                Ok((row.get(0)?, row.get(1)?))
                            })
                            .optional()?;
                        if let Some((other, expiry)) = held
                            && other != worker
                            && expiry > now
                        {
                            continue;
                        }
                        take.execute(params![fingerprint, number, worker, expires])?;
                        claimed.push(number);
                    }
                }
                tx.commit()?;
                Ok(claimed)
            })
        })
        .await
    }

    async fn renew_parts(
        &self,
        identity: &UploadIdentity,
        worker: &str,
        parts: &[u32],
        lease: Duration,
    ) -> Result<Vec<u32>, StoreError> {
        let fingerprint = identity.fingerprint();
        let (worker, parts) = (worker.to_string(), parts.to_vec());
        self.run(move |db| {
            db.with(|conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let expires = until(lease);
                let mut lost = Vec::new();
                {
                    let mut renew = tx.prepare_cached(
                        "UPDATE claims SET expires_unix_ms = ?4
                         WHERE fingerprint = ?1 AND number = ?2 AND worker = ?3",
                    )?;
                    for number in parts {
                        if renew.execute(params![fingerprint, number, worker, expires])? == 0 {
                            lost.push(number);
                        }
                    }
                }
                tx.commit()?;
                Ok(lost)
            })
        })
        .await
    }

    async fn release_parts(
        &self,
        identity: &UploadIdentity,
        worker: &str,
        parts: &[u32],
    ) -> Result<(), StoreError> {
        let fingerprint = identity.fingerprint();
        let (worker, parts) = (worker.to_string(), parts.to_vec());
        self.run(move |db| {
            db.with(|conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                {
                    let mut release = tx.prepare_cached(
                        "UPDATE claims SET expires_unix_ms = 0
                         WHERE fingerprint = ?1 AND number = ?2 AND worker = ?3",
                    )?;
                    for number in parts {
                        release.execute(params![fingerprint, number, worker])?;
                    }
                }
                tx.commit()?;
                Ok(())
            })
        })
        .await
    }

    async fn claim_completion(
        &self,
        identity: &UploadIdentity,
        worker: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let (fingerprint, name) = (identity.fingerprint(), identity.to_string());
        let worker = worker.to_string();
        self.run(move |db| {
            db.with(|conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                require_upload(&tx, &fingerprint, &name)?;
                let held: Option<(String, i64)> = tx
                    .query_row(
                        "SELECT worker, expires_unix_ms FROM completions WHERE fingerprint = ?1",
                        [&fingerprint],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()?;
                let mine = match held {
                    Some((other, expiry)) => other == worker || expiry <= now_ms(),
                    None => true,
                };
                if mine {
                    tx.execute(
                        "INSERT OR REPLACE INTO completions (fingerprint, worker, expires_unix_ms)
                         VALUES (?1, ?2, ?3)",
                        params![fingerprint, worker, until(lease)],
                    )?;
                }
                tx.commit()?;
                Ok(mine)
            })
        })
        .await
    }

    async fn claims(&self) -> Result<Vec<Claim>, StoreError> {
        self.run(|db| {
            db.with(|conn| {
                let now = now_ms();
                let mut statement = conn.prepare(
                    "SELECT fingerprint, number, worker, expires_unix_ms FROM claims
                     WHERE expires_unix_ms > ?1
                     UNION ALL
                     SELECT fingerprint, NULL, worker, expires_unix_ms FROM completions
                     WHERE expires_unix_ms > ?1
                     ORDER BY 1, 2",
                )?;
                let claims = statement
                    .query_map([now], |row| {
                        let expires: i64 = row.get(3)?;
                        Ok(Claim::new(
                            row.get::<_, String>(0)?,
                            row.get::<_, Option<u32>>(1)?,
                            row.get::<_, String>(2)?,
                            Duration::from_millis(expires.saturating_sub(now).max(0) as u64),
                        ))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(claims)
            })
        })
        .await
    }

    async fn file_claims(&self, bucket: &str, prefix: &str) -> Result<Vec<HeldFile>, StoreError> {
        let (bucket, prefix) = (bucket.to_string(), prefix.to_string());
        self.run(move |db| {
            db.with(|conn| {
                let now = now_ms();
                // substr and length count characters of TEXT alike, so this is a prefix by
                // characters, which for UTF-8 keys is a prefix by bytes too.
                let mut statement = conn.prepare_cached(
                    "SELECT object_key, worker, expires_unix_ms FROM file_claims
                     WHERE bucket = ?1 AND expires_unix_ms > ?2
                       AND substr(object_key, 1, length(?3)) = ?3
                     ORDER BY object_key",
                )?;
                let held = statement
                    .query_map(params![bucket, now, prefix], |row| {
                        let expires: i64 = row.get(2)?;
                        Ok(HeldFile::new(
                            row.get::<_, String>(0)?,
                            row.get::<_, String>(1)?,
                            Duration::from_millis(expires.saturating_sub(now).max(0) as u64),
                        ))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(held)
            })
        })
        .await
    }

    async fn claim_file(
        &self,
        bucket: &str,
        key: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<FileClaim, StoreError> {
        let (bucket, key, worker) = (bucket.to_string(), key.to_string(), worker.to_string());
        self.run(move |db| {
            db.with(|conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let now = now_ms();
                let row: Option<(String, i64, Option<FinishedFile>)> = tx
                    .prepare_cached(
                        "SELECT worker, expires_unix_ms, finished_size, finished_etag,
                                finished_crc64, finished_by
                         FROM file_claims WHERE bucket = ?1 AND object_key = ?2",
                    )?
                    .query_row(params![bucket, key], |row| {
                        let finished = match (
                            row.get::<_, Option<i64>>(2)?,
                            row.get::<_, Option<String>>(3)?,
                            row.get::<_, Option<i64>>(4)?,
                            row.get::<_, Option<String>>(5)?,
                        ) {
                            (Some(size), Some(etag), Some(crc64), Some(by)) => {
                                Some(FinishedFile::new(size as u64, etag, crc64 as u64, by))
                            }
                            _ => None,
                        };
                        Ok((row.get(0)?, row.get(1)?, finished))
                    })
                    .optional()?;
                let claim = match row {
                    Some((other, expiry, _)) if other != worker && expiry > now => {
                        FileClaim::Held {
                            worker: other,
                            expires_in: Duration::from_millis((expiry - now) as u64),
                        }
                    }
                    row => {
                        tx.prepare_cached(
                            "INSERT INTO file_claims (bucket, object_key, worker, expires_unix_ms)
                             VALUES (?1, ?2, ?3, ?4)
                             ON CONFLICT (bucket, object_key) DO UPDATE
                             SET worker = excluded.worker, expires_unix_ms = excluded.expires_unix_ms",
                        )?
                        .execute(params![bucket, key, worker, until(lease)])?;
                        FileClaim::Claimed {
                            finished: row.and_then(|(_, _, finished)| finished),
                        }
                    }
                };
                tx.commit()?;
                Ok(claim)
            })
        })
        .await
    }

    async fn renew_file(
        &self,
        bucket: &str,
        key: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let (bucket, key, worker) = (bucket.to_string(), key.to_string(), worker.to_string());
        self.run(move |db| {
            db.with(|conn| {
                let renewed = conn
                    .prepare_cached(
                        "UPDATE file_claims SET expires_unix_ms = ?4
                         WHERE bucket = ?1 AND object_key = ?2 AND worker = ?3",
                    )?
                    .execute(params![bucket, key, worker, until(lease)])?;
                Ok(renewed > 0)
            })
        })
        .await
    }

    async fn release_file(&self, bucket: &str, key: &str, worker: &str) -> Result<(), StoreError> {
        let (bucket, key, worker) = (bucket.to_string(), key.to_string(), worker.to_string());
        self.run(move |db| {
            db.with(|conn| {
                conn.prepare_cached(
                    "UPDATE file_claims SET expires_unix_ms = 0
                     WHERE bucket = ?1 AND object_key = ?2 AND worker = ?3",
                )?
                .execute(params![bucket, key, worker])?;
                Ok(())
            })
        })
        .await
    }

    async fn finish_file(
        &self,
        bucket: &str,
        key: &str,
        worker: &str,
        finished: &FinishedFile,
    ) -> Result<(), StoreError> {
        let (bucket, key, worker) = (bucket.to_string(), key.to_string(), worker.to_string());
        let finished = finished.clone();
        self.run(move |db| {
            db.with(|conn| {
                // A claim taken over meanwhile stays its new holder's; the record is written anyway.
                conn.prepare_cached(
                    "INSERT INTO file_claims (bucket, object_key, worker, expires_unix_ms,
                         finished_size, finished_etag, finished_crc64, finished_by)
                     VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?7)
                     ON CONFLICT (bucket, object_key) DO UPDATE
                     SET finished_size = excluded.finished_size,
                         finished_etag = excluded.finished_etag,
                         finished_crc64 = excluded.finished_crc64,
                         finished_by = excluded.finished_by,
                         expires_unix_ms = CASE WHEN file_claims.worker = excluded.worker
                                                THEN 0 ELSE file_claims.expires_unix_ms END",
                )?
                .execute(params![
                    bucket,
                    key,
                    worker,
                    finished.size as i64,
                    finished.etag,
                    finished.crc64 as i64,
                    finished.worker
                ])?;
                Ok(())
            })
        })
        .await
    }
}
