//! Cluster operations and their persisted steps.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use uuid::Uuid;

use super::{
    get_json, get_opt_json, get_opt_text, get_opt_time, get_text, get_time, get_uuid, now,
    time_text, to_json, Store, StoreError,
};
use crate::domain::{ChangeParameters, ClusterSpec, OperationState, OperationStep, OperationType};

macro_rules! operation_columns {
    () => {
        "id, cluster_id, operation_type, state, steps, source_spec, target_spec, parameters, \
         error, created_at, started_at, ended_at"
    };
}

/// A stored cluster operation.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationRecord {
    pub id: Uuid,
    pub cluster_id: Uuid,
    pub operation_type: OperationType,
    pub state: OperationState,
    pub steps: Vec<OperationStep>,
    pub source_spec: Option<ClusterSpec>,
    pub target_spec: Option<ClusterSpec>,
    /// How the change is carried out (strategy, brokers); the default where none was stored.
    pub parameters: ChangeParameters,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl OperationRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let kind = get_text(row, "operation_type")?;
        let state = get_text(row, "state")?;
        Ok(Self {
            id: get_uuid(row, "id")?,
            cluster_id: get_uuid(row, "cluster_id")?,
            operation_type: OperationType::parse(&kind).map_err(StoreError::corrupt)?,
            state: OperationState::parse(&state).map_err(StoreError::corrupt)?,
            steps: get_json(row, "steps")?,
            source_spec: get_opt_json(row, "source_spec")?,
            target_spec: get_opt_json(row, "target_spec")?,
            parameters: get_opt_json(row, "parameters")?.unwrap_or_default(),
            error: get_opt_text(row, "error")?,
            created_at: get_time(row, "created_at")?,
            started_at: get_opt_time(row, "started_at")?,
            ended_at: get_opt_time(row, "ended_at")?,
        })
    }

    /// Inserts a PENDING operation with no steps yet (the reconciler plans them).
    pub(super) async fn insert(
        tx: &mut Transaction<'_, Any>,
        cluster_id: Uuid,
        operation_type: OperationType,
        source: Option<&ClusterSpec>,
        target: Option<&ClusterSpec>,
    ) -> Result<OperationRecord, StoreError> {
        Self::insert_with(
            tx,
            cluster_id,
            operation_type,
            source,
            target,
            ChangeParameters::default(),
        )
        .await
    }

    /// [`OperationRecord::insert`] with the parameters of a change.
    pub(super) async fn insert_with(
        tx: &mut Transaction<'_, Any>,
        cluster_id: Uuid,
        operation_type: OperationType,
        source: Option<&ClusterSpec>,
        target: Option<&ClusterSpec>,
        parameters: ChangeParameters,
    ) -> Result<OperationRecord, StoreError> {
        let record = OperationRecord {
            id: Uuid::new_v4(),
            cluster_id,
            operation_type,
            state: OperationState::Pending,
            steps: Vec::new(),
            source_spec: source.cloned(),
            target_spec: target.cloned(),
            parameters,
            error: None,
            created_at: now(),
            started_at: None,
            ended_at: None,
        };
        sqlx::query(
            "INSERT INTO operations (id, cluster_id, operation_type, state, steps, source_spec, \
             target_spec, parameters, error, created_at, started_at, ended_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, NULL, NULL)",
        )
        .bind(record.id.to_string())
        .bind(cluster_id.to_string())
        .bind(operation_type.as_str())
        .bind(record.state.as_str())
        .bind(to_json(&record.steps))
        .bind(source.map(to_json))
        .bind(target.map(to_json))
        .bind(to_json(&record.parameters))
        .bind(time_text(record.created_at))
        .execute(&mut **tx)
        .await?;
        Ok(record)
    }
}

impl Store {
    /// Records a new PENDING operation (e.g. a HEAL the reconciler starts on its own).
    pub async fn insert_operation(
        &self,
        cluster_id: Uuid,
        operation_type: OperationType,
        source: Option<&ClusterSpec>,
        target: Option<&ClusterSpec>,
    ) -> Result<OperationRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let record =
            OperationRecord::insert(&mut tx, cluster_id, operation_type, source, target).await?;
        tx.commit().await?;
        Ok(record)
    }

    pub async fn get_operation(&self, id: Uuid) -> Result<OperationRecord, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            operation_columns!(),
            " FROM operations WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        OperationRecord::from_row(&row)
    }

    /// A cluster's operations, newest first.
    pub async fn list_operations(
        &self,
        cluster_id: Uuid,
    ) -> Result<Vec<OperationRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            operation_columns!(),
            " FROM operations WHERE cluster_id = $1 ORDER BY created_at DESC, id DESC"
        ))
        .bind(cluster_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(OperationRecord::from_row).collect()
    }

    /// A cluster's PENDING and UPDATE_IN_PROGRESS operations, oldest first.
    pub async fn unfinished_operations(
        &self,
        cluster_id: Uuid,
    ) -> Result<Vec<OperationRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            operation_columns!(),
            " FROM operations WHERE cluster_id = $1 \
              AND state IN ('PENDING', 'UPDATE_IN_PROGRESS') ORDER BY created_at, id"
        ))
        .bind(cluster_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(OperationRecord::from_row).collect()
    }

    /// Replaces an operation's steps (the reconciler persists each step before and after it).
    pub async fn set_operation_steps(
        &self,
        id: Uuid,
        steps: &[OperationStep],
    ) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE operations SET steps = $1 WHERE id = $2")
            .bind(to_json(&steps))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Moves an operation to `state`, stamping its start (first time in progress) and end
    /// (finished) and recording `error`.
    pub async fn set_operation_state(
        &self,
        id: Uuid,
        state: OperationState,
        error: Option<&str>,
    ) -> Result<OperationRecord, StoreError> {
        let stamp = time_text(now());
        let started = (state != OperationState::Pending).then(|| stamp.clone());
        let ended = state.is_finished().then_some(stamp);
        let done = sqlx::query(
            "UPDATE operations SET state = $1, error = $2, \
             started_at = COALESCE(started_at, $3), ended_at = $4 WHERE id = $5",
        )
        .bind(state.as_str())
        .bind(error.map(str::to_owned))
        .bind(started)
        .bind(ended)
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.get_operation(id).await
    }
}
