//! Storage auto-expansion: the control plane watches how full each broker's volume is (the
//! agents report it with every heartbeat) and, for a cluster whose policy's target utilisation
//! a broker has passed, grows every broker's volume through the same change a user would ask
//! for (`UPDATE_BROKER_STORAGE`), recording why on the operation. It acts only on an ACTIVE
//! cluster with nothing else running, never past the policy's maximum, and not again until the
//! cool-down has passed since the last growth ended.

use std::time::Duration;

use chrono::Utc;
use tracing::{debug, info, warn};

use super::{ClustersService, ServiceError};
use crate::domain::{
    volume_size, ClusterChange, ClusterState, OperationType, StorageInfo, VolumeSize,
};

/// Disk use older than this is not acted on (agents report every few seconds).
const HEARTBEAT_FRESHNESS: Duration = Duration::from_secs(120);
use crate::store::{ClusterFilter, ClusterRecord, OperationRecord};

impl ClustersService {
    /// One look at every ACTIVE cluster with a policy; returns the operations started.
    /// `gib_bytes` is how many bytes a GiB of volume holds on this platform.
    pub async fn expand_storage_where_needed(
        &self,
        gib_bytes: u64,
    ) -> Result<Vec<OperationRecord>, ServiceError> {
        let filter = ClusterFilter {
            name_prefix: None,
            state: Some(ClusterState::Active),
        };
        let mut started = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .list_clusters(&filter, 100, after.as_ref())
                .await?;
            for cluster in &page.clusters {
                match self.expand_if_needed(cluster, gib_bytes).await {
                    Ok(Some(operation)) => started.push(operation),
                    Ok(None) => {}
                    Err(error) => {
                        warn!(cluster_id = %cluster.id, %error, "storage auto-expansion skipped")
                    }
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(started),
            }
        }
    }

    async fn expand_if_needed(
        &self,
        cluster: &ClusterRecord,
        gib_bytes: u64,
    ) -> Result<Option<OperationRecord>, ServiceError> {
        let Some(policy) = cluster.spec.storage_auto_expansion else {
            return Ok(None);
        };
        let Some(size) = volume_size(&cluster.spec.broker_node_group.storage) else {
            return Ok(None);
        };
        let nodes = self.store.list_nodes(cluster.id).await?;
        // Each broker against its own volume, as recently reported: the one that needs the
        // largest volume decides (volumes of a cluster have one size). A heartbeat older than
        // HEARTBEAT_FRESHNESS says nothing about now.
        let now = Utc::now();
        let wanted = nodes
            .iter()
            .filter(|n| {
                n.last_heartbeat_at
                    .is_some_and(|at| (now - at).to_std().unwrap_or_default() < HEARTBEAT_FRESHNESS)
            })
            .filter_map(|n| {
                let used = n.last_heartbeat.as_ref()?.disk_used_bytes;
                let volume = n
                    .volume
                    .size_gib
                    .and_then(|gib| VolumeSize::parse(i64::from(gib)).ok())
                    .unwrap_or(size);
                let grown = policy.grown_size(volume, used, gib_bytes)?;
                Some((grown, n.broker_id, used, volume))
            })
            .max_by_key(|(grown, ..)| *grown);
        let Some((target, broker_id, used, volume)) = wanted else {
            return Ok(None);
        };
        // A growth that failed half-way left the spec larger than some volumes: the next one
        // goes to the spec's size at least.
        let target = target.max(size);
        if target <= size && nodes.iter().all(|n| n.volume.size_gib >= Some(size.gib())) {
            debug!(cluster_id = %cluster.id, size_gib = size.gib(), "volumes past the target at their maximum size");
            return Ok(None);
        }
        let operations = self.store.list_operations(cluster.id).await?;
        let last_growth = operations
            .iter()
            .filter(|op| op.operation_type == OperationType::UpdateBrokerStorage)
            .filter(|op| {
                op.source_spec.as_ref().map(|s| s.broker_node_group.storage)
                    != op.target_spec.as_ref().map(|s| s.broker_node_group.storage)
            })
            .filter_map(|op| op.ended_at.or(Some(op.created_at)))
            .max();
        if let Some(last) = last_growth {
            let since = (Utc::now() - last).to_std().unwrap_or_default();
            if since < Duration::from_secs(u64::from(policy.cooldown_seconds)) {
                debug!(cluster_id = %cluster.id, ?since, "storage auto-expansion cooling down");
                return Ok(None);
            }
        }
        let percent = used as f64 * 100.0 / (f64::from(volume.gib()) * gib_bytes as f64);
        let trigger = format!(
            "storage auto-expansion: broker {broker_id}'s volume is {percent:.0}% full \
             ({used} bytes of {} GiB; target {}%), grown to {} GiB (maximum {} GiB)",
            volume.gib(),
            policy.target_utilization_percent,
            target.gib(),
            policy.max_volume_size.gib()
        );
        let mut storage = cluster.spec.broker_node_group.storage;
        if let StorageInfo::Ebs { volume_size, .. } = &mut storage {
            *volume_size = target;
        }
        let operation = self
            .change_because(
                cluster,
                &ClusterChange::BrokerStorage { target: storage },
                Some(trigger.clone()),
            )
            .await?;
        info!(cluster_id = %cluster.id, operation_id = %operation.id, %trigger, "storage auto-expansion");
        Ok(Some(operation))
    }
}

/// Looks every `interval`, for as long as the control plane runs.
pub async fn run(service: ClustersService, gib_bytes: u64, interval: Duration) {
    loop {
        if let Err(error) = service.expand_storage_where_needed(gib_bytes).await {
            warn!(%error, "storage auto-expansion pass failed");
        }
        tokio::time::sleep(interval).await;
    }
}
