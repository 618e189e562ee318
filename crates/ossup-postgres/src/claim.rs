//! [`Cooperation`] for [`PostgresStore`]: workers on any number of hosts sharing an upload.
//!
//! Claiming is the queue pattern: the candidate parts get a claim row each (once), and a worker
//! takes the free ones with `SELECT … FOR UPDATE SKIP LOCKED`, so workers claiming at the same moment
//! pass over each other's rows instead of waiting for them or taking them twice. Leases are
//! counted in the server's clock (`now()`), so the workers' clocks need not agree. File claims
//! (whole objects of a batch) follow the same pattern on `file_claims`, a row per object.

use std::time::Duration;

use tokio_postgres::error::SqlState;

use ossup::store::{Claim, Cooperation, FileClaim, FinishedFile, HeldFile};
use ossup::{StoreError, UploadIdentity};

use crate::PostgresStore;

/// A lease as an SQL interval parameter: milliseconds, multiplied by `interval '1 millisecond'`.
fn millis(lease: Duration) -> f64 {
    lease.as_secs_f64() * 1000.0
}

impl PostgresStore {
    fn not_found_or(&self, identity: &UploadIdentity, err: tokio_postgres::Error) -> StoreError {
        if err.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
            StoreError::NotFound(identity.to_string())
        } else {
            self.inner.error(err)
        }
    }
}

#[async_trait::async_trait]
impl Cooperation for PostgresStore {
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
        let schema = &self.inner.schema;
        let fingerprint = identity.fingerprint();
        let numbers: Vec<i32> = candidates.iter().map(|&n| n as i32).collect();
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let mut client = self.inner.client().await?;
        let claim = async {
            // Every candidate gets its row once, expired: free to take. On its own, before the
            // claiming transaction, so that workers do not wait on each other's new rows.
            client
                .execute(
                    &format!(
                        "INSERT INTO {schema}.claims (fingerprint, number, worker, expires_at)
                     SELECT $1, n, '', '-infinity' FROM unnest($2::integer[]) AS n
                     ON CONFLICT (fingerprint, number) DO NOTHING"
                    ),
                    &[&fingerprint, &numbers],
                )
                .await?;
            let tx = client.transaction().await?;
            let rows = tx
                .query(
                    &format!(
                        "WITH free AS (
                             SELECT c.number FROM {schema}.claims c
                             WHERE c.fingerprint = $1 AND c.number = ANY($2)
                               AND (c.worker = $3 OR c.expires_at < now())
                               AND NOT EXISTS (SELECT 1 FROM {schema}.parts p
                                               WHERE p.fingerprint = c.fingerprint AND p.number = c.number)
                             ORDER BY c.number
                             LIMIT $4
                             FOR UPDATE OF c SKIP LOCKED
                         )
                         UPDATE {schema}.claims c
                         SET worker = $3, expires_at = now() + $5::float8 * interval '1 millisecond'
                         FROM free WHERE c.fingerprint = $1 AND c.number = free.number
                         RETURNING c.number"
                    ),
                    &[&fingerprint, &numbers, &worker, &max, &millis(lease)],
                )
                .await?;
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(rows)
        };
        let rows = claim
            .await
            .map_err(|err| self.not_found_or(identity, err))?;
        if rows.is_empty() && !numbers.is_empty() {
            // Nothing free, or nothing saved: only the second is an error.
            let saved = client
                .query_opt(
                    &format!("SELECT 1 FROM {schema}.uploads WHERE fingerprint = $1"),
                    &[&fingerprint],
                )
                .await
                .map_err(|err| self.inner.error(err))?;
            if saved.is_none() {
                return Err(StoreError::NotFound(identity.to_string()));
            }
        }
        let mut claimed: Vec<u32> = rows.iter().map(|row| row.get::<_, i32>(0) as u32).collect();
        claimed.sort_unstable();
        Ok(claimed)
    }

    async fn renew_parts(
        &self,
        identity: &UploadIdentity,
        worker: &str,
        parts: &[u32],
        lease: Duration,
    ) -> Result<Vec<u32>, StoreError> {
        let numbers: Vec<i32> = parts.iter().map(|&n| n as i32).collect();
        let client = self.inner.client().await?;
        let renewed = client
            .query(
                &format!(
                    "UPDATE {}.claims SET expires_at = now() + $4::float8 * interval '1 millisecond'
                     WHERE fingerprint = $1 AND number = ANY($2) AND worker = $3
                     RETURNING number",
                    self.inner.schema
                ),
                &[&identity.fingerprint(), &numbers, &worker, &millis(lease)],
            )
            .await
            .map_err(|err| self.inner.error(err))?;
        let renewed: std::collections::HashSet<i32> =
            renewed.iter().map(|row| row.get(0)).collect();
        Ok(parts
            .iter()
            .copied()
            .filter(|&n| !renewed.contains(&(n as i32)))
            .collect())
    }

    async fn release_parts(
        &self,
        identity: &UploadIdentity,
        worker: &str,
        parts: &[u32],
    ) -> Result<(), StoreError> {
        let numbers: Vec<i32> = parts.iter().map(|&n| n as i32).collect();
        let client = self.inner.client().await?;
        client
            .execute(
                &format!(
                    "UPDATE {}.claims SET expires_at = '-infinity'
                     WHERE fingerprint = $1 AND number = ANY($2) AND worker = $3",
                    self.inner.schema
                ),
                &[&identity.fingerprint(), &numbers, &worker],
            )
            .await
            .map(|_| ())
            .map_err(|err| self.inner.error(err))
    }

    async fn claim_completion(
        &self,
        identity: &UploadIdentity,
        worker: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let client = self.inner.client().await?;
        let won = client
            .query_opt(
                &format!(
                    "INSERT INTO {s}.completions (fingerprint, worker, expires_at)
                     VALUES ($1, $2, now() + $3::float8 * interval '1 millisecond')
                     ON CONFLICT (fingerprint) DO UPDATE
                     SET worker = excluded.worker, expires_at = excluded.expires_at
                     WHERE {s}.completions.worker = excluded.worker
                        OR {s}.completions.expires_at < now()
                     RETURNING 1",
                    s = self.inner.schema
                ),
                &[&identity.fingerprint(), &worker, &millis(lease)],
            )
            .await
            .map_err(|err| self.not_found_or(identity, err))?;
        Ok(won.is_some())
    }

    async fn claims(&self) -> Result<Vec<Claim>, StoreError> {
        let client = self.inner.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT fingerprint, number, worker,
                            extract(epoch FROM expires_at - now())::float8 AS left
                     FROM {s}.claims WHERE expires_at > now()
                     UNION ALL
                     SELECT fingerprint, NULL, worker, extract(epoch FROM expires_at - now())::float8
                     FROM {s}.completions WHERE expires_at > now()
                     ORDER BY 1, 2",
                    s = self.inner.schema
                ),
                &[],
            )
            .await
            .map_err(|err| self.inner.error(err))?;
        Ok(rows
            .iter()
            .map(|row| {
                Claim::new(
                    row.get::<_, String>(0),
                    row.get::<_, Option<i32>>(1).map(|n| n as u32),
                    row.get::<_, String>(2),
                    Duration::from_secs_f64(row.get::<_, f64>(3).max(0.0)),
                )
            })
            .collect())
    }

    async fn file_claims(&self, bucket: &str, prefix: &str) -> Result<Vec<HeldFile>, StoreError> {
        let client = self.inner.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT object_key, worker, extract(epoch FROM expires_at - now())::float8
                     FROM {s}.file_claims
                     WHERE bucket = $1 AND expires_at > now()
                       AND substring(object_key FROM 1 FOR length($2::bytea)) = $2::bytea
                     ORDER BY object_key",
                    s = self.inner.schema
                ),
                &[&bucket.as_bytes(), &prefix.as_bytes()],
            )
            .await
            .map_err(|err| self.inner.error(err))?;
        Ok(rows
            .iter()
            .map(|row| {
                HeldFile::new(
                    String::from_utf8_lossy(row.get::<_, &[u8]>(0)),
                    row.get::<_, String>(1),
                    Duration::from_secs_f64(row.get::<_, f64>(2).max(0.0)),
                )
            })
            .collect())
    }

    async fn claim_file(
        &self,
        bucket: &str,
        key: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<FileClaim, StoreError> {
        let schema = &self.inner.schema;
        let (bucket, key) = (bucket.as_bytes(), key.as_bytes());
        let mut client = self.inner.client().await?;
        let claim = async {
            // The object's row, once, expired: free to take. On its own, before the claiming
            // transaction, so that workers do not wait on each other's new rows.
            client
                .execute(
                    &format!(
                        "INSERT INTO {schema}.file_claims (bucket, object_key, worker, expires_at)
                         VALUES ($1, $2, '', '-infinity')
                         ON CONFLICT (bucket, object_key) DO NOTHING"
                    ),
                    &[&bucket, &key],
                )
                .await?;
            let tx = client.transaction().await?;
            let row = tx
                .query_opt(
                    &format!(
                        "SELECT worker, expires_at > now(),
                                CASE WHEN expires_at > now()
                                     THEN extract(epoch FROM expires_at - now())::float8
                                     ELSE 0 END,
                                finished_size, finished_etag, finished_crc64, finished_by
                         FROM {schema}.file_claims
                         WHERE bucket = $1 AND object_key = $2
                         FOR UPDATE SKIP LOCKED"
                    ),
                    &[&bucket, &key],
                )
                .await?;
            let Some(row) = row else {
                // Another worker is claiming it at this very moment.
                return Ok(FileClaim::Held {
                    worker: String::new(),
                    expires_in: Duration::ZERO,
                });
            };
            let holder: String = row.get(0);
            let live: bool = row.get(1);
            if live && holder != worker {
                let left: f64 = row.get(2);
                return Ok(FileClaim::Held {
                    worker: holder,
                    expires_in: Duration::from_secs_f64(left.max(0.0)),
                });
            }
            let finished = match (
                row.get::<_, Option<i64>>(3),
                row.get::<_, Option<Vec<u8>>>(4),
                row.get::<_, Option<i64>>(5),
                row.get::<_, Option<String>>(6),
            ) {
                (Some(size), Some(etag), Some(crc64), Some(by)) => Some(FinishedFile::new(
                    size as u64,
                    String::from_utf8_lossy(&etag),
                    crc64 as u64,
                    by,
                )),
                _ => None,
            };
            tx.execute(
                &format!(
                    "UPDATE {schema}.file_claims
                     SET worker = $3, expires_at = now() + $4::float8 * interval '1 millisecond'
                     WHERE bucket = $1 AND object_key = $2"
                ),
                &[&bucket, &key, &worker, &millis(lease)],
            )
            .await?;
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(FileClaim::Claimed { finished })
        };
        claim.await.map_err(|err| self.inner.error(err))
    }

    async fn renew_file(
        &self,
        bucket: &str,
        key: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let client = self.inner.client().await?;
        let renewed = client
            .execute(
                &format!(
                    "UPDATE {}.file_claims
                     SET expires_at = now() + $4::float8 * interval '1 millisecond'
                     WHERE bucket = $1 AND object_key = $2 AND worker = $3",
                    self.inner.schema
                ),
                &[&bucket.as_bytes(), &key.as_bytes(), &worker, &millis(lease)],
            )
            .await
            .map_err(|err| self.inner.error(err))?;
        Ok(renewed > 0)
    }

    async fn release_file(&self, bucket: &str, key: &str, worker: &str) -> Result<(), StoreError> {
        let client = self.inner.client().await?;
        client
            .execute(
                &format!(
                    "UPDATE {}.file_claims SET expires_at = '-infinity'
                     WHERE bucket = $1 AND object_key = $2 AND worker = $3",
                    self.inner.schema
                ),
                &[&bucket.as_bytes(), &key.as_bytes(), &worker],
            )
            .await
            .map(|_| ())
            .map_err(|err| self.inner.error(err))
    }

    async fn finish_file(
        &self,
        bucket: &str,
        key: &str,
        worker: &str,
        finished: &FinishedFile,
    ) -> Result<(), StoreError> {
        let client = self.inner.client().await?;
        // A claim taken over meanwhile stays its new holder's; the record is written anyway.
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.file_claims (bucket, object_key, worker, expires_at,
                         finished_size, finished_etag, finished_crc64, finished_by)
                     VALUES ($1, $2, $3, '-infinity', $4, $5, $6, $7)
                     ON CONFLICT (bucket, object_key) DO UPDATE
                     SET finished_size = excluded.finished_size,
                         finished_etag = excluded.finished_etag,
                         finished_crc64 = excluded.finished_crc64,
                         finished_by = excluded.finished_by,
                         expires_at = CASE WHEN {s}.file_claims.worker = excluded.worker
                                           THEN '-infinity'::timestamptz
                                           ELSE {s}.file_claims.expires_at END",
                    s = self.inner.schema
                ),
                &[
                    &bucket.as_bytes(),
                    &key.as_bytes(),
                    &worker,
                    &(finished.size as i64),
                    &finished.etag.as_bytes(),
                    &(finished.crc64 as i64),
                    &finished.worker,
                ],
            )
            .await
            .map(|_| ())
            .map_err(|err| self.inner.error(err))
    }
}
