//! The Kubernetes door into the store: the `KafkaCluster` custom resource ([`crd`]) and its
//! controller ([`controller`]). A resource is one cluster; the controller creates, changes and
//! deletes it through the same functions as the REST API, so both doors lead to the same desired
//! state, checked by the same rules. [`status`] decides the status and Events without I/O.
//!
//! `millrace serve --watch-kafkaclusters` runs the controller next to the API and the
//! reconciler; `millrace crd` prints the CustomResourceDefinition (`deploy/crd.yaml`).

mod changes;
pub mod controller;
pub mod crd;
pub mod status;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
pub(crate) mod tests;

use std::sync::Arc;

use anyhow::Context as _;
use futures::StreamExt;
use kube::api::{Api, ListParams};
use kube::runtime::{watcher, Controller};
use kube::Client;

pub use controller::{Context, ControllerSettings, FIELD_MANAGER, FINALIZER};
pub use crd::{crd_yaml, KafkaCluster, KafkaClusterSpec, KafkaClusterStatus};

use crate::http::AppState;

/// Where the controller watches: one namespace, or all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchScope {
    Namespace(String),
    AllNamespaces,
}

/// A Kubernetes client from the in-cluster service account or `KUBECONFIG`.
pub async fn kube_client() -> anyhow::Result<Client> {
    // kube builds its rustls configuration with the process's default crypto provider.
    crate::platform::install_tls_provider();
    Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster service account or KUBECONFIG)")
}

/// Runs the KafkaCluster controller until the process is asked to stop.
pub async fn run(
    client: Client,
    state: AppState,
    scope: WatchScope,
    settings: ControllerSettings,
) -> anyhow::Result<()> {
    let api: Api<KafkaCluster> = match &scope {
        WatchScope::Namespace(namespace) => Api::namespaced(client.clone(), namespace),
        WatchScope::AllNamespaces => Api::all(client.clone()),
    };
    // Fail loudly at start when the CRD is missing or RBAC forbids listing.
    api.list(&ListParams::default().limit(1))
        .await
        .context("listing KafkaClusters (is deploy/crd.yaml applied, and may we list them?)")?;
    tracing::info!(?scope, "watching KafkaClusters");
    let context = Arc::new(Context::new(client, state, settings));
    Controller::new(api, watcher::Config::default().any_semantic())
        .shutdown_on_signal()
        .run(controller::reconcile, controller::error_policy, context)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(name = %object.name, "KafkaCluster reconciled"),
                Err(error) => tracing::debug!(%error, "KafkaCluster reconcile did not finish"),
            }
        })
        .await;
    tracing::info!("KafkaCluster controller stopped");
    Ok(())
}
