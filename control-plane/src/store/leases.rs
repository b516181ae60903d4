//! Leases: which control-plane replica reconciles a cluster. Each call is one statement, so
//! PostgreSQL's row locking makes it safe between replicas: `INSERT … ON CONFLICT DO UPDATE
//! … WHERE` takes the lease only if it is free, expired or already ours.

use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use super::{Store, StoreError};

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// Takes (or extends) the lease on `cluster_id` for `holder` for `ttl`; false while another
    /// holder's lease has not expired.
    pub async fn try_acquire_lease(
        &self,
        cluster_id: Uuid,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let taken = sqlx::query(
            "INSERT INTO leases (cluster_id, holder, expires_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (cluster_id) DO UPDATE SET holder = excluded.holder, \
             expires_at_ms = excluded.expires_at_ms \
             WHERE leases.expires_at_ms <= $4 OR leases.holder = excluded.holder \
             RETURNING holder",
        )
        .bind(cluster_id.to_string())
        .bind(holder.to_owned())
        .bind(now.saturating_add(ttl_ms(ttl)))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(taken.is_some())
    }

    /// Extends a lease `holder` still holds; false if it was lost (released, or taken over after
    /// it expired).
    pub async fn renew_lease(
        &self,
        cluster_id: Uuid,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE leases SET expires_at_ms = $1 WHERE cluster_id = $2 AND holder = $3",
        )
        .bind(now_ms().saturating_add(ttl_ms(ttl)))
        .bind(cluster_id.to_string())
        .bind(holder.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a lease up (no-op unless `holder` holds it).
    pub async fn release_lease(&self, cluster_id: Uuid, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE cluster_id = $1 AND holder = $2")
            .bind(cluster_id.to_string())
            .bind(holder.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
