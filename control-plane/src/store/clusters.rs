//! Clusters: create (idempotent), read, list (keyset-paginated), delete, and the reconciler's
//! writes.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{
    get_json, get_opt_text, get_text, get_time, get_uuid, is_unique_violation, now, time_text,
    to_json, Conflict, OperationRecord, Store, StoreError,
};
use crate::domain::{
    cluster_arn, ChangeParameters, ClusterName, ClusterSpec, ClusterState, OperationState,
    OperationType, Tags,
};

macro_rules! cluster_columns {
    () => {
        "id, name, arn, spec, state, current_version, bootstrap_brokers, tags, created_at, \
         updated_at, kubernetes_uid"
    };
}

/// A stored cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterRecord {
    pub id: Uuid,
    pub name: ClusterName,
    pub arn: String,
    pub spec: ClusterSpec,
    pub state: ClusterState,
    /// Incremented by every change to the row; clients send it back as `currentVersion`.
    pub current_version: i64,
    pub bootstrap_brokers: Option<String>,
    pub tags: Tags,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The uid of the KafkaCluster custom resource that declared the cluster, if one did.
    pub kubernetes_uid: Option<String>,
}

impl ClusterRecord {
    /// `currentVersion` as the API shows it: an opaque string.
    pub fn version_text(&self) -> String {
        self.current_version.to_string()
    }

    /// Optimistic concurrency: `given` must be this record's `currentVersion`.
    pub fn check_version(&self, given: &str) -> Result<(), Conflict> {
        if given.parse::<i64>().ok() == Some(self.current_version) {
            Ok(())
        } else {
            Err(Conflict::VersionMismatch {
                given: given.to_owned(),
                current: self.version_text(),
            })
        }
    }

    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let name = get_text(row, "name")?;
        let state = get_text(row, "state")?;
        Ok(Self {
            id: get_uuid(row, "id")?,
            name: ClusterName::parse(&name).map_err(StoreError::corrupt)?,
            arn: get_text(row, "arn")?,
            spec: get_json(row, "spec")?,
            state: ClusterState::parse(&state).map_err(StoreError::corrupt)?,
            current_version: sqlx::Row::try_get(row, "current_version")?,
            bootstrap_brokers: get_opt_text(row, "bootstrap_brokers")?,
            tags: get_json(row, "tags")?,
            created_at: get_time(row, "created_at")?,
            updated_at: get_time(row, "updated_at")?,
            kubernetes_uid: get_opt_text(row, "kubernetes_uid")?,
        })
    }
}

/// An `Idempotency-Key` (or `clientRequestToken`) with a fingerprint of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone)]
pub struct NewCluster {
    pub name: ClusterName,
    pub spec: ClusterSpec,
    pub tags: Tags,
    pub idempotency: Option<Idempotency>,
    /// Set when a KafkaCluster custom resource declares the cluster: at most one cluster per
    /// resource uid, and creating it again returns the existing one.
    pub kubernetes_uid: Option<String>,
}

#[derive(Debug, Clone)]
pub enum CreateOutcome {
    Created {
        cluster: ClusterRecord,
        operation: OperationRecord,
    },
    /// The same request was made before with the same idempotency key.
    Replayed {
        cluster: ClusterRecord,
        operation: Option<OperationRecord>,
    },
}

#[derive(Debug, Clone, Default)]
pub struct ClusterFilter {
    /// Names starting with this.
    pub name_prefix: Option<String>,
    pub state: Option<ClusterState>,
}

/// Where a page of clusters ends: clusters are listed by creation time, then id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    created_at: String,
    id: String,
}

impl Cursor {
    /// The opaque `nextToken` form.
    pub fn encode(&self) -> String {
        hex::encode(format!("{}\n{}", self.created_at, self.id))
    }

    pub fn decode(token: &str) -> Option<Self> {
        let bytes = hex::decode(token).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (created_at, id) = text.split_once('\n')?;
        DateTime::parse_from_rfc3339(created_at).ok()?;
        Uuid::parse_str(id).ok()?;
        Some(Self {
            created_at: created_at.to_owned(),
            id: id.to_owned(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct ClusterPage {
    pub clusters: Vec<ClusterRecord>,
    pub next: Option<Cursor>,
}

impl Store {
    /// Stores a new cluster in CREATING with a PENDING CREATE operation, or returns the cluster
    /// an earlier identical request with the same idempotency key created.
    pub async fn create_cluster(&self, new: NewCluster) -> Result<CreateOutcome, StoreError> {
        if let Some(replayed) = self.replay_resource(new.kubernetes_uid.as_deref()).await? {
            return Ok(replayed);
        }
        if let Some(idempotency) = &new.idempotency {
            if let Some(replayed) = self.replay(idempotency).await? {
                return Ok(replayed);
            }
        }
        match self.insert_cluster(&new).await {
            Err(e) if is_unique_violation_or_name_taken(&e) && new.kubernetes_uid.is_some() => {
                // A concurrent create for the same resource may have won; otherwise the name
                // belongs to another cluster.
                match self.replay_resource(new.kubernetes_uid.as_deref()).await? {
                    Some(replayed) => Ok(replayed),
                    None => Err(Conflict::NameTaken(new.name.to_string()).into()),
                }
            }
            Err(StoreError::Database(e)) if is_unique_violation(&e) => {
                // Lost a race, either for the name or for the idempotency key.
                if let Some(idempotency) = &new.idempotency {
                    if let Some(replayed) = self.replay(idempotency).await? {
                        return Ok(replayed);
                    }
                }
                let message = e.to_string();
                if message.contains("idempotency") {
                    Err(Conflict::IdempotencyKeyReused.into())
                } else {
                    Err(Conflict::NameTaken(new.name.to_string()).into())
                }
            }
            other => other,
        }
    }

    /// The cluster a custom resource with this uid created earlier, as a replayed create.
    async fn replay_resource(
        &self,
        kubernetes_uid: Option<&str>,
    ) -> Result<Option<CreateOutcome>, StoreError> {
        let Some(uid) = kubernetes_uid else {
            return Ok(None);
        };
        let cluster = match self.get_cluster_by_kubernetes_uid(uid).await {
            Ok(cluster) => cluster,
            Err(StoreError::NotFound) => return Ok(None),
            Err(error) => return Err(error),
        };
        let operation = self
            .list_operations(cluster.id)
            .await?
            .into_iter()
            .find(|op| op.operation_type == OperationType::Create);
        Ok(Some(CreateOutcome::Replayed { cluster, operation }))
    }

    async fn replay(&self, idempotency: &Idempotency) -> Result<Option<CreateOutcome>, StoreError> {
        let row = sqlx::query(
            "SELECT id, idempotency_fingerprint FROM clusters WHERE idempotency_key = $1",
        )
        .bind(idempotency.key.clone())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        if get_opt_text(&row, "idempotency_fingerprint")?.as_deref()
            != Some(idempotency.fingerprint.as_str())
        {
            return Err(Conflict::IdempotencyKeyReused.into());
        }
        let id = get_uuid(&row, "id")?;
        let cluster = self.get_cluster(id).await?;
        let operation = self
            .list_operations(id)
            .await?
            .into_iter()
            .find(|op| op.operation_type == OperationType::Create);
        Ok(Some(CreateOutcome::Replayed { cluster, operation }))
    }

    async fn insert_cluster(&self, new: &NewCluster) -> Result<CreateOutcome, StoreError> {
        let id = Uuid::new_v4();
        let arn = cluster_arn(&new.name, id);
        let created = time_text(now());
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT 1 FROM clusters WHERE name = $1")
            .bind(new.name.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .map_or(Ok(()), |_| Err(Conflict::NameTaken(new.name.to_string())))?;
        sqlx::query(
            "INSERT INTO clusters (id, name, arn, spec, state, current_version, bootstrap_brokers, \
             configuration_arn, tags, idempotency_key, idempotency_fingerprint, created_at, \
             updated_at, kubernetes_uid) \
             VALUES ($1, $2, $3, $4, $5, 1, NULL, $6, $7, $8, $9, $10, $10, $11)",
        )
        .bind(id.to_string())
        .bind(new.name.to_string())
        .bind(arn)
        .bind(to_json(&new.spec))
        .bind(ClusterState::Creating.as_str())
        .bind(new.spec.configuration.as_ref().map(|c| c.arn.clone()))
        .bind(to_json(&new.tags))
        .bind(new.idempotency.as_ref().map(|i| i.key.clone()))
        .bind(new.idempotency.as_ref().map(|i| i.fingerprint.clone()))
        .bind(created)
        .bind(new.kubernetes_uid.clone())
        .execute(&mut *tx)
        .await?;
        let operation =
            OperationRecord::insert(&mut tx, id, OperationType::Create, None, Some(&new.spec))
                .await?;
        let cluster = read_cluster(&mut tx, id).await?;
        tx.commit().await?;
        Ok(CreateOutcome::Created { cluster, operation })
    }

    pub async fn get_cluster(&self, id: Uuid) -> Result<ClusterRecord, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            cluster_columns!(),
            " FROM clusters WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        ClusterRecord::from_row(&row)
    }

    pub async fn get_cluster_by_arn(&self, arn: &str) -> Result<ClusterRecord, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            cluster_columns!(),
            " FROM clusters WHERE arn = $1"
        ))
        .bind(arn.to_owned())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        ClusterRecord::from_row(&row)
    }

    /// The cluster a KafkaCluster custom resource with this uid declared.
    pub async fn get_cluster_by_kubernetes_uid(
        &self,
        uid: &str,
    ) -> Result<ClusterRecord, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            cluster_columns!(),
            " FROM clusters WHERE kubernetes_uid = $1"
        ))
        .bind(uid.to_owned())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        ClusterRecord::from_row(&row)
    }

    /// One page of clusters in creation order, at most `limit` of them, after `after`.
    pub async fn list_clusters(
        &self,
        filter: &ClusterFilter,
        limit: u32,
        after: Option<&Cursor>,
    ) -> Result<ClusterPage, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            cluster_columns!(),
            " FROM clusters \
             WHERE ($1 IS NULL OR substr(name, 1, length($1)) = $1) \
               AND ($2 IS NULL OR state = $2) \
               AND ($3 IS NULL OR created_at > $3 OR (created_at = $3 AND id > $4)) \
             ORDER BY created_at, id LIMIT $5"
        ))
        .bind(filter.name_prefix.clone())
        .bind(filter.state.map(|s| s.as_str().to_owned()))
        .bind(after.map(|c| c.created_at.clone()))
        .bind(after.map(|c| c.id.clone()))
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut clusters = rows
            .iter()
            .map(ClusterRecord::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if clusters.len() > limit as usize {
            clusters.truncate(limit as usize);
            clusters.last().map(|last| Cursor {
                created_at: time_text(last.created_at),
                id: last.id.to_string(),
            })
        } else {
            None
        };
        Ok(ClusterPage { clusters, next })
    }

    /// Moves a cluster to DELETING with a PENDING DELETE operation; an unfinished operation (a
    /// create being abandoned) is marked failed, superseded by the delete.
    pub async fn begin_delete(
        &self,
        id: Uuid,
        expected_version: Option<&str>,
    ) -> Result<(ClusterRecord, OperationRecord), StoreError> {
        let mut tx = self.pool.begin().await?;
        let cluster = read_cluster(&mut tx, id).await?;
        if let Some(given) = expected_version {
            cluster.check_version(given)?;
        }
        if !cluster.state.accepts_delete() {
            return Err(Conflict::WrongState {
                state: cluster.state,
                action: "be deleted",
            }
            .into());
        }
        let stamp = time_text(now());
        let updated = sqlx::query(
            "UPDATE clusters SET state = $1, current_version = current_version + 1, \
             updated_at = $2 WHERE id = $3 AND current_version = $4",
        )
        .bind(ClusterState::Deleting.as_str())
        .bind(stamp.clone())
        .bind(id.to_string())
        .bind(cluster.current_version)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(Conflict::VersionMismatch {
                given: cluster.version_text(),
                current: "(changed concurrently)".into(),
            }
            .into());
        }
        sqlx::query(
            "UPDATE operations SET state = $1, error = $2, ended_at = $3 \
             WHERE cluster_id = $4 AND state IN ('PENDING', 'UPDATE_IN_PROGRESS')",
        )
        .bind(OperationState::UpdateFailed.as_str())
        .bind("superseded by DELETE")
        .bind(stamp)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        let operation = OperationRecord::insert(
            &mut tx,
            id,
            OperationType::Delete,
            Some(&cluster.spec),
            None,
        )
        .await?;
        let cluster = read_cluster(&mut tx, id).await?;
        tx.commit().await?;
        Ok((cluster, operation))
    }

    /// Starts a change: checks `expected_version` and that the cluster is ACTIVE with no
    /// unfinished operation, then in one transaction stores the target spec as the desired
    /// state, moves the cluster to `state` (UPDATING or REBOOTING_BROKER) and records the
    /// PENDING operation (source = the spec before, target = the spec after) for the reconciler.
    pub async fn begin_change(
        &self,
        id: Uuid,
        expected_version: i64,
        operation_type: OperationType,
        target: &ClusterSpec,
        state: ClusterState,
        parameters: ChangeParameters,
    ) -> Result<(ClusterRecord, OperationRecord), StoreError> {
        let mut tx = self.pool.begin().await?;
        let cluster = read_cluster(&mut tx, id).await?;
        cluster.check_version(&expected_version.to_string())?;
        if !cluster.state.accepts_updates() {
            return Err(Conflict::WrongState {
                state: cluster.state,
                action: "be changed until it is ACTIVE",
            }
            .into());
        }
        let running = sqlx::query(
            "SELECT id, operation_type FROM operations WHERE cluster_id = $1 \
             AND state IN ('PENDING', 'UPDATE_IN_PROGRESS')",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(running) = running {
            return Err(Conflict::InUse(format!(
                "operation {} ({}) is still running on this cluster: one change at a time",
                get_text(&running, "id")?,
                get_text(&running, "operation_type")?
            ))
            .into());
        }
        let updated = sqlx::query(
            "UPDATE clusters SET spec = $1, state = $2, current_version = current_version + 1, \
             updated_at = $3 WHERE id = $4 AND current_version = $5 AND state = 'ACTIVE'",
        )
        .bind(to_json(target))
        .bind(state.as_str())
        .bind(time_text(now()))
        .bind(id.to_string())
        .bind(cluster.current_version)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(Conflict::VersionMismatch {
                given: cluster.version_text(),
                current: "(changed concurrently)".into(),
            }
            .into());
        }
        let operation = OperationRecord::insert_with(
            &mut tx,
            id,
            operation_type,
            Some(&cluster.spec),
            Some(target),
            parameters,
        )
        .await?;
        let cluster = read_cluster(&mut tx, id).await?;
        tx.commit().await?;
        Ok((cluster, operation))
    }

    /// Puts back the desired spec a failed change started from (a scale-in refused before any
    /// broker left). Bumps `currentVersion`.
    pub async fn restore_spec(&self, id: Uuid, spec: &ClusterSpec) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE clusters SET spec = $1, current_version = current_version + 1, \
             updated_at = $2 WHERE id = $3",
        )
        .bind(to_json(spec))
        .bind(time_text(now()))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Replaces a cluster's tags. Tags are metadata: `currentVersion` does not change.
    pub async fn set_cluster_tags(&self, id: Uuid, tags: &Tags) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE clusters SET tags = $1, updated_at = $2 WHERE id = $3")
            .bind(to_json(tags))
            .bind(time_text(now()))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    // The reconciler's side.

    /// Clusters with something to do: not ACTIVE or FAILED, or with an unfinished operation.
    pub async fn clusters_needing_work(&self) -> Result<Vec<ClusterRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            cluster_columns!(),
            " FROM clusters c WHERE c.state NOT IN ('ACTIVE', 'FAILED') OR EXISTS (\
               SELECT 1 FROM operations o WHERE o.cluster_id = c.id \
               AND o.state IN ('PENDING', 'UPDATE_IN_PROGRESS')) \
             ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ClusterRecord::from_row).collect()
    }

    /// Every stored cluster's id (the reconciler also watches ACTIVE clusters' health).
    pub async fn list_cluster_ids(&self) -> Result<Vec<Uuid>, StoreError> {
        let rows = sqlx::query("SELECT id FROM clusters ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| get_uuid(row, "id")).collect()
    }

    /// Sets a cluster's state, and its bootstrap broker string when `bootstrap_brokers` is
    /// given (`Some(None)` clears it). Bumps `currentVersion`.
    pub async fn set_cluster_state(
        &self,
        id: Uuid,
        state: ClusterState,
        bootstrap_brokers: Option<Option<&str>>,
    ) -> Result<ClusterRecord, StoreError> {
        let stamp = time_text(now());
        let done = match bootstrap_brokers {
            None => {
                sqlx::query(
                    "UPDATE clusters SET state = $1, current_version = current_version + 1, \
                     updated_at = $2 WHERE id = $3",
                )
                .bind(state.as_str())
                .bind(stamp)
                .bind(id.to_string())
                .execute(&self.pool)
                .await?
            }
            Some(brokers) => {
                sqlx::query(
                    "UPDATE clusters SET state = $1, bootstrap_brokers = $2, \
                     current_version = current_version + 1, updated_at = $3 WHERE id = $4",
                )
                .bind(state.as_str())
                .bind(brokers.map(str::to_owned))
                .bind(stamp)
                .bind(id.to_string())
                .execute(&self.pool)
                .await?
            }
        };
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.get_cluster(id).await
    }

    /// Moves a cluster from `from` to `to` (setting its bootstrap broker string when given),
    /// unless its state changed meanwhile (e.g. a delete was requested): false then. Bumps
    /// `currentVersion`.
    pub async fn transition_cluster_state(
        &self,
        id: Uuid,
        from: ClusterState,
        to: ClusterState,
        bootstrap_brokers: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE clusters SET state = $1, bootstrap_brokers = COALESCE($2, bootstrap_brokers), \
             current_version = current_version + 1, updated_at = $3 WHERE id = $4 AND state = $5",
        )
        .bind(to.as_str())
        .bind(bootstrap_brokers.map(str::to_owned))
        .bind(time_text(now()))
        .bind(id.to_string())
        .bind(from.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets a cluster: its row, nodes, agent tokens and lease. Its operations stay as history.
    pub async fn delete_cluster_rows(&self, id: Uuid) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for statement in [
            "DELETE FROM nodes WHERE cluster_id = $1",
            "DELETE FROM api_tokens WHERE cluster_id = $1",
            "DELETE FROM leases WHERE cluster_id = $1",
            "DELETE FROM clusters WHERE id = $1",
        ] {
            sqlx::query(statement)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// A unique index refused the insert, or the name check inside the transaction did.
fn is_unique_violation_or_name_taken(error: &StoreError) -> bool {
    match error {
        StoreError::Database(e) => is_unique_violation(e),
        StoreError::Conflict(Conflict::NameTaken(_)) => true,
        _ => false,
    }
}

/// The cluster's row, read inside `tx`.
async fn read_cluster(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: Uuid,
) -> Result<ClusterRecord, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        cluster_columns!(),
        " FROM clusters WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    ClusterRecord::from_row(&row)
}
