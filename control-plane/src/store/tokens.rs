//! API tokens: admin tokens for the public API, agent tokens for one node's internal API.
//! Only SHA-256 digests are stored; the plaintext is returned once, at creation.

use uuid::Uuid;

use super::{get_opt_text, get_text, now, time_text, Store, StoreError};
use crate::auth::{
    digests_equal, generate_token, token_digest, ADMIN_TOKEN_PREFIX, AGENT_TOKEN_PREFIX,
};

/// Whom a presented token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenIdentity {
    Admin { token_id: Uuid },
    Agent { cluster_id: Uuid, broker_id: i32 },
}

impl Store {
    pub async fn has_admin_token(&self) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT id FROM api_tokens WHERE kind = 'admin' LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Mints an admin token and returns its plaintext, which is not stored.
    pub async fn create_admin_token(&self, name: &str) -> Result<String, StoreError> {
        let token = generate_token(ADMIN_TOKEN_PREFIX);
        self.insert_token(name, "admin", &token, None, None).await?;
        Ok(token)
    }

    /// Makes sure `token` (given by the operator, e.g. MILLRACE_ADMIN_TOKEN) is an admin token.
    /// Returns true if it was added now.
    pub async fn ensure_admin_token(&self, name: &str, token: &str) -> Result<bool, StoreError> {
        let existing = sqlx::query("SELECT kind FROM api_tokens WHERE token_sha256 = $1")
            .bind(token_digest(token))
            .fetch_optional(&self.pool)
            .await?;
        if existing.is_some() {
            return Ok(false);
        }
        self.insert_token(name, "admin", token, None, None).await?;
        Ok(true)
    }

    /// Mints the token node `broker_id` of `cluster_id` reports with and returns its plaintext
    /// (handed to the agent; not stored). Earlier tokens of the node stay valid until this one
    /// is first used: a node restart that turns out to have been done already (a retried step)
    /// leaves the running agent's token working.
    pub async fn create_agent_token(
        &self,
        cluster_id: Uuid,
        broker_id: i32,
    ) -> Result<String, StoreError> {
        let token = generate_token(AGENT_TOKEN_PREFIX);
        let name = format!("agent {cluster_id}/{broker_id}");
        self.insert_token(&name, "agent", &token, Some(cluster_id), Some(broker_id))
            .await?;
        Ok(token)
    }

    async fn insert_token(
        &self,
        name: &str,
        kind: &str,
        token: &str,
        cluster_id: Option<Uuid>,
        broker_id: Option<i32>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, kind, token_sha256, cluster_id, broker_id, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(name.to_owned())
        .bind(kind.to_owned())
        .bind(token_digest(token))
        .bind(cluster_id.map(|id| id.to_string()))
        .bind(broker_id.map(i64::from))
        .bind(time_text(now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whom `token` belongs to, or None if it is not a known token.
    pub async fn authenticate(&self, token: &str) -> Result<Option<TokenIdentity>, StoreError> {
        let digest = token_digest(token);
        let row = sqlx::query(
            "SELECT id, kind, token_sha256, cluster_id, broker_id, created_at FROM api_tokens \
             WHERE token_sha256 = $1",
        )
        .bind(digest.clone())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        if !digests_equal(&get_text(&row, "token_sha256")?, &digest) {
            return Ok(None);
        }
        let kind = get_text(&row, "kind")?;
        let identity = match kind.as_str() {
            "admin" => TokenIdentity::Admin {
                token_id: super::get_uuid(&row, "id")?,
            },
            "agent" => {
                let cluster = get_opt_text(&row, "cluster_id")?
                    .and_then(|c| Uuid::parse_str(&c).ok())
                    .ok_or_else(|| StoreError::corrupt("agent token without a cluster"))?;
                let broker: Option<i64> = sqlx::Row::try_get(&row, "broker_id")?;
                let broker = broker
                    .and_then(|b| i32::try_from(b).ok())
                    .ok_or_else(|| StoreError::corrupt("agent token without a broker"))?;
                // The node's agent uses this token: older ones of the node are retired.
                sqlx::query(
                    "DELETE FROM api_tokens WHERE kind = 'agent' AND cluster_id = $1 \
                     AND broker_id = $2 AND created_at < $3",
                )
                .bind(cluster.to_string())
                .bind(i64::from(broker))
                .bind(get_text(&row, "created_at")?)
                .execute(&self.pool)
                .await?;
                TokenIdentity::Agent {
                    cluster_id: cluster,
                    broker_id: broker,
                }
            }
            other => return Err(StoreError::corrupt(format!("token kind {other:?}"))),
        };
        Ok(Some(identity))
    }
}
