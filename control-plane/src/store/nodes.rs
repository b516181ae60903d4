//! Broker nodes: written by the reconciler, heartbeats written by the agents.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use super::{
    get_json, get_opt_json, get_opt_text, get_opt_time, get_text, get_time, get_uuid, now,
    time_text, to_json, Store, StoreError,
};
use crate::domain::{Heartbeat, NodeVolume};

macro_rules! node_columns {
    () => {
        "cluster_id, broker_id, endpoint, zone, version, volume, state, quorum_role, \
         last_heartbeat, last_heartbeat_at, created_at, updated_at"
    };
}

/// `nodes.quorum_role`.
const VOTER: &str = "voter";
const OBSERVER: &str = "observer";

/// A broker node as the reconciler recorded it, with its agent's last heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRecord {
    pub cluster_id: Uuid,
    pub broker_id: i32,
    /// `host:port` clients reach the broker at, once known.
    pub endpoint: Option<String>,
    pub zone: String,
    pub version: String,
    pub volume: NodeVolume,
    /// The reconciler's own word for the node (e.g. PROVISIONING, RUNNING, REPLACING).
    pub state: String,
    /// A voter of the metadata quorum (a node created with its cluster), or an observer (a
    /// node added by a scale-out).
    pub voter: bool,
    pub last_heartbeat: Option<Heartbeat>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl NodeRecord {
    /// A node about to be written by [`Store::upsert_node`]; times are set by the store.
    pub fn new(
        cluster_id: Uuid,
        broker_id: i32,
        zone: impl Into<String>,
        version: impl Into<String>,
        volume: NodeVolume,
        state: impl Into<String>,
    ) -> Self {
        let stamp = now();
        Self {
            cluster_id,
            broker_id,
            endpoint: None,
            zone: zone.into(),
            version: version.into(),
            volume,
            state: state.into(),
            voter: true,
            last_heartbeat: None,
            last_heartbeat_at: None,
            created_at: stamp,
            updated_at: stamp,
        }
    }

    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let broker_id: i64 = row.try_get("broker_id")?;
        Ok(Self {
            cluster_id: get_uuid(row, "cluster_id")?,
            broker_id: i32::try_from(broker_id).map_err(StoreError::corrupt)?,
            endpoint: get_opt_text(row, "endpoint")?,
            zone: get_text(row, "zone")?,
            version: get_text(row, "version")?,
            volume: get_json(row, "volume")?,
            state: get_text(row, "state")?,
            voter: match get_text(row, "quorum_role")?.as_str() {
                VOTER => true,
                OBSERVER => false,
                other => return Err(StoreError::corrupt(format!("quorum role {other:?}"))),
            },
            last_heartbeat: get_opt_json(row, "last_heartbeat")?,
            last_heartbeat_at: get_opt_time(row, "last_heartbeat_at")?,
            created_at: get_time(row, "created_at")?,
            updated_at: get_time(row, "updated_at")?,
        })
    }
}

impl Store {
    /// Inserts or updates a node's endpoint, zone, version, volume and state (not its heartbeat).
    pub async fn upsert_node(&self, node: &NodeRecord) -> Result<NodeRecord, StoreError> {
        let stamp = time_text(now());
        sqlx::query(
            "INSERT INTO nodes (cluster_id, broker_id, endpoint, zone, version, volume, state, \
             quorum_role, last_heartbeat, last_heartbeat_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, $9, $9) \
             ON CONFLICT (cluster_id, broker_id) DO UPDATE SET endpoint = excluded.endpoint, \
             zone = excluded.zone, version = excluded.version, volume = excluded.volume, \
             state = excluded.state, quorum_role = excluded.quorum_role, \
             updated_at = excluded.updated_at",
        )
        .bind(node.cluster_id.to_string())
        .bind(i64::from(node.broker_id))
        .bind(node.endpoint.clone())
        .bind(node.zone.clone())
        .bind(node.version.clone())
        .bind(to_json(&node.volume))
        .bind(node.state.clone())
        .bind(if node.voter { VOTER } else { OBSERVER })
        .bind(stamp)
        .execute(&self.pool)
        .await?;
        self.get_node(node.cluster_id, node.broker_id).await
    }

    pub async fn get_node(
        &self,
        cluster_id: Uuid,
        broker_id: i32,
    ) -> Result<NodeRecord, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            node_columns!(),
            " FROM nodes WHERE cluster_id = $1 AND broker_id = $2"
        ))
        .bind(cluster_id.to_string())
        .bind(i64::from(broker_id))
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        NodeRecord::from_row(&row)
    }

    /// A cluster's nodes by broker id.
    pub async fn list_nodes(&self, cluster_id: Uuid) -> Result<Vec<NodeRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            node_columns!(),
            " FROM nodes WHERE cluster_id = $1 ORDER BY broker_id"
        ))
        .bind(cluster_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(NodeRecord::from_row).collect()
    }

    pub async fn delete_node(&self, cluster_id: Uuid, broker_id: i32) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM api_tokens WHERE cluster_id = $1 AND broker_id = $2")
            .bind(cluster_id.to_string())
            .bind(i64::from(broker_id))
            .execute(&self.pool)
            .await?;
        let done = sqlx::query("DELETE FROM nodes WHERE cluster_id = $1 AND broker_id = $2")
            .bind(cluster_id.to_string())
            .bind(i64::from(broker_id))
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Stores an agent's heartbeat on its node row; NotFound if the node is not (or no longer)
    /// recorded.
    pub async fn record_heartbeat(
        &self,
        cluster_id: Uuid,
        broker_id: i32,
        heartbeat: &Heartbeat,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE nodes SET last_heartbeat = $1, last_heartbeat_at = $2 \
             WHERE cluster_id = $3 AND broker_id = $4",
        )
        .bind(to_json(heartbeat))
        .bind(time_text(now()))
        .bind(cluster_id.to_string())
        .bind(i64::from(broker_id))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
