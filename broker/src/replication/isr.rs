//! The leader side of the ISR: followers that stopped keeping up are proposed out of the ISR,
//! followers that caught up are proposed back in, through the controller (Kafka's
//! AlterPartition). The ISR only changes once the controller accepted it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, info};

use crate::broker::Broker;
use crate::partition::now_ms;

const CHECK_INTERVAL: Duration = Duration::from_millis(500);

pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(CHECK_INTERVAL) => {}
        }
        for partition in broker.partitions.all() {
            let replicas = partition.replicas();
            if !replicas.is_leader() || replicas.replicas.len() < 2 {
                continue;
            }
            let high_watermark = partition.high_watermark();
            let log_end = partition.log_end_offset();
            let proposal = replicas
                .shrunk_isr(now_ms(), broker.config.replica_lag_time_max_ms)
                .or_else(|| replicas.expanded_isr(high_watermark, log_end));
            let Some(new_isr) = proposal else {
                continue;
            };
            match broker
                .quorum
                .alter_partition(
                    &partition.id.topic,
                    partition.id.partition,
                    replicas.leader_epoch,
                    replicas.partition_epoch,
                    new_isr.clone(),
                )
                .await
            {
                Ok(state) => {
                    info!(partition = %partition.id, from = ?replicas.isr, to = ?state.isr, "ISR changed");
                    partition.update_leadership(&state, broker.config.node_id);
                }
                Err(error) => {
                    debug!(partition = %partition.id, %error, ?new_isr, "ISR change refused")
                }
            }
        }
    }
}
