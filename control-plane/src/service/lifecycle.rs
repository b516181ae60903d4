//! A cluster's beginning and end: create (CREATING with a PENDING CREATE operation) and delete
//! (DELETING with a DELETE operation). The reconciler carries both out.

use tracing::info;
use uuid::Uuid;

use super::{ClustersService, ServiceError};
use crate::store::{ClusterRecord, CreateOutcome, NewCluster, OperationRecord, StoreError};

impl ClustersService {
    /// Stores `cluster` with its CREATE operation once its configuration revision is checked,
    /// and wakes the reconciler. A repeated idempotency key with the same request replays the
    /// first outcome.
    pub async fn create(&self, cluster: NewCluster) -> Result<CreateOutcome, ServiceError> {
        if let Some(configuration) = &cluster.spec.configuration {
            self.check_configuration(configuration, cluster.spec.kafka_version.as_str())
                .await?;
        }
        let outcome = self.store.create_cluster(cluster).await?;
        if let CreateOutcome::Created { cluster, operation } = &outcome {
            info!(cluster_id = %cluster.id, operation_id = %operation.id, "cluster created");
            self.reconcile_wakeup.notify_one();
        }
        Ok(outcome)
    }

    /// Starts deleting cluster `id` (only if `expected_version` is its current version, when
    /// given): refused in a state that does not accept it, e.g. while a change runs.
    pub async fn delete(
        &self,
        id: Uuid,
        expected_version: Option<&str>,
    ) -> Result<(ClusterRecord, OperationRecord), ServiceError> {
        let (cluster, operation) = match self.store.begin_delete(id, expected_version).await {
            Err(StoreError::NotFound) => {
                return Err(ServiceError::NotFound(format!("no cluster with id {id}")))
            }
            other => other?,
        };
        info!(cluster_id = %cluster.id, operation_id = %operation.id, "cluster deletion requested");
        self.reconcile_wakeup.notify_one();
        Ok((cluster, operation))
    }
}
