//! The reconciler: makes each cluster what its stored spec asks for.
//!
//! [`plan`] decides the next step from the desired state, the store's node records and the
//! platform's observation (pure, tested without I/O); [`execute`] performs it through the
//! [`Platform`] and records it on the cluster's operation. [`Reconciler::run`] loops: woken by
//! the API when a cluster changes, and at least every [`ReconcilerConfig::interval`]. Each
//! cluster is worked on under a store lease, so several control-plane replicas sharing one
//! PostgreSQL never reconcile the same cluster at once; a replica that dies loses its leases when
//! they expire.

mod change;
mod execute;
pub mod plan;
mod scale;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::{debug, warn, Instrument};
use uuid::Uuid;

use crate::brokers::Brokers;
use crate::domain::ClusterState;
use crate::platform::Platform;
use crate::store::{ClusterFilter, Cursor, Store, StoreError};
pub use plan::{plan, Step};

/// Settings of the reconciler.
#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// Base URL agents send heartbeats to (the control plane's own API).
    pub control_plane_url: String,
    /// This replica's name on the leases it takes.
    pub holder: String,
    /// How long a lease lasts unless renewed; a dead replica's clusters wait this long.
    pub lease_ttl: Duration,
    /// The longest pause between two passes over the clusters with work to do.
    pub interval: Duration,
    /// How often ACTIVE clusters are checked for failed nodes.
    pub health_interval: Duration,
    /// How long brokers get to become ready before the operation fails.
    pub ready_timeout: Duration,
    /// How long one step of a roll may wait (for the broker's can-stop check to pass, for every
    /// partition to be back in sync) before the operation fails with the reason it waited for.
    pub roll_step_timeout: Duration,
    /// Most steps one pass takes on one cluster before yielding (waits end a pass earlier).
    pub max_steps_per_pass: usize,
}

impl ReconcilerConfig {
    pub fn new(control_plane_url: impl Into<String>) -> Self {
        Self {
            control_plane_url: control_plane_url.into(),
            holder: format!(
                "replica-{}-{}",
                std::process::id(),
                &Uuid::new_v4().simple().to_string()[..8]
            ),
            lease_ttl: Duration::from_secs(10),
            interval: Duration::from_secs(1),
            health_interval: Duration::from_secs(3),
            ready_timeout: Duration::from_secs(120),
            roll_step_timeout: Duration::from_secs(300),
            max_steps_per_pass: 64,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Platform(#[from] crate::platform::PlatformError),
}

pub struct Reconciler {
    store: Store,
    platform: Arc<dyn Platform>,
    brokers: Brokers,
    config: ReconcilerConfig,
    /// Clusters this replica is working on right now.
    in_flight: Mutex<HashSet<Uuid>>,
}

impl Reconciler {
    pub fn new(store: Store, platform: Arc<dyn Platform>, config: ReconcilerConfig) -> Arc<Self> {
        Arc::new(Self {
            store,
            platform,
            brokers: Brokers::new().expect("an HTTP client for the brokers' admin endpoints"),
            config,
            in_flight: Mutex::new(HashSet::new()),
        })
    }

    /// Reconciles forever: after every wake-up and at least every `interval`.
    pub async fn run(self: Arc<Self>, wakeup: Arc<Notify>) {
        tracing::info!(holder = %self.config.holder, "reconciler started");
        let mut last_health_check: Option<Instant> = None;
        loop {
            let check_health =
                last_health_check.is_none_or(|t| t.elapsed() >= self.config.health_interval);
            if check_health {
                last_health_check = Some(Instant::now());
            }
            if let Err(error) = self.pass(check_health).await {
                warn!(%error, "reconciler pass failed; retrying");
            }
            tokio::select! {
                _ = wakeup.notified() => {}
                _ = tokio::time::sleep(self.config.interval) => {}
            }
        }
    }

    /// Starts work on every cluster that needs it (and, when `check_health`, looks at every
    /// ACTIVE cluster's nodes).
    async fn pass(self: &Arc<Self>, check_health: bool) -> Result<(), ReconcileError> {
        for cluster in self.store.clusters_needing_work().await? {
            self.spawn_cluster(cluster.id, false);
        }
        if check_health {
            let filter = ClusterFilter {
                name_prefix: None,
                state: Some(ClusterState::Active),
            };
            let mut after: Option<Cursor> = None;
            loop {
                let page = self
                    .store
                    .list_clusters(&filter, 100, after.as_ref())
                    .await?;
                for cluster in &page.clusters {
                    self.spawn_cluster(cluster.id, true);
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        Ok(())
    }

    fn spawn_cluster(self: &Arc<Self>, cluster_id: Uuid, health_check_only: bool) {
        if !self
            .in_flight
            .lock()
            .expect("in-flight set")
            .insert(cluster_id)
        {
            return;
        }
        let this = self.clone();
        let span = tracing::info_span!(
            "reconcile",
            %cluster_id,
            operation_id = tracing::field::Empty
        );
        tokio::spawn(
            async move {
                if let Err(error) = this.reconcile_cluster(cluster_id, health_check_only).await {
                    warn!(%error, "reconciling the cluster failed; retrying at the next pass");
                }
                this.in_flight
                    .lock()
                    .expect("in-flight set")
                    .remove(&cluster_id);
            }
            .instrument(span),
        );
    }

    /// One pass on one cluster. A health check looks without the lease first and takes it only
    /// when a step is due, so that idle ACTIVE clusters cost no writes.
    pub async fn reconcile_cluster(
        &self,
        cluster_id: Uuid,
        health_check_only: bool,
    ) -> Result<(), ReconcileError> {
        if health_check_only {
            let cluster = match self.store.get_cluster(cluster_id).await {
                Ok(cluster) => cluster,
                Err(StoreError::NotFound) => return Ok(()),
                Err(error) => return Err(error.into()),
            };
            let nodes = self.store.list_nodes(cluster_id).await?;
            let observed = self.platform.observe(cluster_id).await?;
            if plan(&cluster, None, &observed, &nodes, None) == Step::Nothing {
                return Ok(());
            }
        }
        let holder = self.config.holder.clone();
        let ttl = self.config.lease_ttl;
        if !self
            .store
            .try_acquire_lease(cluster_id, &holder, ttl)
            .await?
        {
            debug!("another replica holds the cluster's lease");
            return Ok(());
        }
        // Keep the lease while steps run (a node's graceful stop can outlast the TTL).
        let lease_lost = Arc::new(AtomicBool::new(false));
        let renewer = {
            let store = self.store.clone();
            let holder = holder.clone();
            let lease_lost = lease_lost.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    match store.renew_lease(cluster_id, &holder, ttl).await {
                        Ok(true) => {}
                        Ok(false) => {
                            warn!(%cluster_id, "lost the cluster's lease");
                            lease_lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(error) => warn!(%cluster_id, %error, "renewing the lease failed"),
                    }
                }
            })
        };
        let result = self.steps(cluster_id, &lease_lost).await;
        renewer.abort();
        // Releasing lets another replica (or this one, restarted) continue at once.
        if let Err(error) = self.store.release_lease(cluster_id, &holder).await {
            warn!(%error, "releasing the lease failed; it expires on its own");
        }
        result
    }
}
