//! The Kubernetes platform: each broker node is one Pod running the broker-agent image (not a
//! StatefulSet: the reconciler decides which broker restarts when), its volume a
//! PersistentVolumeClaim (EBS-style) or an emptyDir (instance store).
//!
//! Per cluster, in the configured namespace or in a namespace of its own:
//!
//! ```text
//! ConfigMap kafka-<cluster>              broker configuration; owner of everything below
//! Secret    kafka-<cluster>-<broker>-agent   the node's agent token (env via secretKeyRef)
//! Service   kafka-<cluster>-brokers      headless: <pod>.kafka-<cluster>-brokers.<ns>.svc
//! Service   kafka-<cluster>-bootstrap    ClusterIP on the Kafka port, ready brokers only
//! PVC       kafka-<cluster>-<broker>-data    persistent volumes only; outlives the pod
//! Pod       kafka-<cluster>-<broker>     the broker-agent, which runs the broker
//! ```
//!
//! Objects are written with server-side apply (field manager `millrace`, forced): applying
//! the same object twice changes nothing, an object left by a crashed control plane is taken
//! over rather than duplicated, and no read-modify-write races with other writers. Two
//! exceptions, both "create if absent": the anchor ConfigMap when only a volume needs it
//! (an apply without the broker configuration would remove it), and the Pod, whose spec is
//! immutable: a pod that exists is adopted as it is.

mod config;
mod manifests;
mod names;
mod observe;

#[cfg(test)]
mod manifest_tests;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Pod, Secret, Service,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Notify;
use tracing::{info, instrument, warn};
use uuid::Uuid;

pub use self::config::KubernetesPlatformConfig;
use self::manifests::BrokerPod;
pub use self::names::NamespaceMode;
use super::{
    broker_flags, install_tls_provider, NodeEndpoints, NodeSpec, ObservedNode, Platform,
    PlatformError, Result, VolumeId, VolumeSpec,
};
use crate::domain::InstanceType;

pub struct KubernetesPlatform {
    client: Client,
    config: KubernetesPlatformConfig,
    pods: Store<Pod>,
    pod_changes: Arc<Notify>,
    pod_watch: tokio::task::JoinHandle<()>,
    /// Pods created or deleted here that the watch has not shown yet.
    unwatched: observe::UnwatchedChanges,
}

impl Drop for KubernetesPlatform {
    fn drop(&mut self) {
        self.pod_watch.abort();
    }
}

fn kube_error(context: impl Into<String>) -> impl FnOnce(kube::Error) -> PlatformError {
    let context = context.into();
    move |source| PlatformError::Kubernetes {
        context,
        source: Box::new(source),
    }
}

fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

impl KubernetesPlatform {
    /// Connects with the in-cluster configuration or KUBECONFIG (`kube::Client::try_default`).
    /// The namespace defaults to the client's (the control plane's own, in a cluster).
    pub async fn connect(
        namespace: Option<String>,
        per_cluster: bool,
        configure: impl FnOnce(&mut KubernetesPlatformConfig),
    ) -> Result<KubernetesPlatform> {
        // kube builds its rustls configuration with the process default provider.
        install_tls_provider();
        let client = Client::try_default()
            .await
            .map_err(kube_error("connecting to the Kubernetes API server"))?;
        let mode = if per_cluster {
            NamespaceMode::PerCluster
        } else {
            NamespaceMode::Shared(namespace.unwrap_or_else(|| client.default_namespace().into()))
        };
        let mut config = KubernetesPlatformConfig::new(mode, String::new());
        configure(&mut config);
        KubernetesPlatform::new(client, config)
    }

    /// Starts the pod watch (on a tokio runtime) and returns at once; `observe` waits for the
    /// watch's first list.
    pub fn new(client: Client, config: KubernetesPlatformConfig) -> Result<KubernetesPlatform> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            PlatformError::Process("the Kubernetes platform needs a tokio runtime".into())
        })?;
        let (pods, writer) = reflector::store();
        let pod_changes = Arc::new(Notify::new());
        let api: Api<Pod> = match &config.namespace {
            NamespaceMode::Shared(namespace) => Api::namespaced(client.clone(), namespace),
            NamespaceMode::PerCluster => Api::all(client.clone()),
        };
        let pod_watch = runtime.spawn(observe::pod_watch(api, writer, pod_changes.clone()));
        info!(namespace = ?config.namespace, image = %config.agent_image, "kubernetes platform");
        Ok(KubernetesPlatform {
            client,
            config,
            pods,
            pod_changes,
            pod_watch,
            unwatched: observe::UnwatchedChanges::default(),
        })
    }

    /// Notified whenever a managed pod changes: hook the reconciler's wake-up to it.
    pub fn pod_changes(&self) -> Arc<Notify> {
        self.pod_changes.clone()
    }

    /// `host:port` of the cluster's bootstrap Service (ready brokers behind one name), for
    /// clients inside the Kubernetes cluster.
    pub fn bootstrap_service_address(&self, cluster_id: Uuid) -> String {
        names::bootstrap_address(&self.namespace(cluster_id), cluster_id)
    }

    fn namespace(&self, cluster_id: Uuid) -> String {
        self.config.namespace.namespace(cluster_id)
    }

    fn api<K>(&self, namespace: &str) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Server-side apply, forced: the object becomes exactly what `object` says for the fields
    /// Millrace manages.
    async fn apply<K>(api: &Api<K>, name: &str, object: &K) -> Result<K>
    where
        K: Resource + Clone + Serialize + DeserializeOwned + Debug,
        <K as Resource>::DynamicType: Default,
    {
        let params = PatchParams::apply(names::MANAGER).force();
        api.patch(name, &params, &Patch::Apply(object))
            .await
            .map_err(kube_error(format!(
                "applying {} {name}",
                K::kind(&Default::default())
            )))
    }

    async fn ensure_namespace(&self, cluster_id: Uuid) -> Result<()> {
        if self.config.namespace != NamespaceMode::PerCluster {
            return Ok(());
        }
        let name = self.namespace(cluster_id);
        let api: Api<Namespace> = Api::all(self.client.clone());
        Self::apply(&api, &name, &manifests::namespace(cluster_id, &name)).await?;
        Ok(())
    }

    /// The anchor's owner reference, creating the anchor (without configuration) if absent.
    async fn ensure_anchor(&self, cluster_id: Uuid, namespace: &str) -> Result<OwnerReference> {
        let api: Api<ConfigMap> = self.api(namespace);
        let name = names::anchor_name(cluster_id);
        let context = format!("reading ConfigMap {name}");
        if let Some(existing) = api.get_opt(&name).await.map_err(kube_error(&context))? {
            return manifests::owner_reference(&existing);
        }
        let anchor = manifests::anchor(cluster_id, namespace, None);
        let params = PostParams {
            field_manager: Some(names::MANAGER.into()),
            ..PostParams::default()
        };
        match api.create(&params, &anchor).await {
            Ok(created) => manifests::owner_reference(&created),
            // Created by someone else in between: use theirs.
            Err(error) if is_status(&error, 409) => {
                manifests::owner_reference(&api.get(&name).await.map_err(kube_error(&context))?)
            }
            Err(error) => Err(kube_error(format!("creating ConfigMap {name}"))(error)),
        }
    }

    fn validate_node(
        &self,
        spec: &NodeSpec,
    ) -> Result<(&'static crate::domain::BrokerType, Vec<String>)> {
        let invalid = |field: &str, reason: String| PlatformError::InvalidSpec {
            field: field.into(),
            reason,
        };
        if !self
            .config
            .installed_versions
            .contains(&spec.broker_version)
        {
            return Err(PlatformError::VersionNotInstalled {
                version: spec.broker_version.clone(),
                installed: self.config.installed_versions.clone(),
            });
        }
        if spec.broker_id < 0 {
            return Err(invalid("brokerId", "must not be negative".into()));
        }
        if spec.zone.is_empty() || spec.zone.len() > 63 {
            return Err(invalid("zone", "must be 1 to 63 characters".into()));
        }
        if !spec.control_plane_url.is_empty() && spec.agent_token.is_empty() {
            return Err(invalid(
                "agentToken",
                "heartbeats to the control plane need the node's token".into(),
            ));
        }
        if let VolumeSpec::Persistent { size_gib: 0, .. }
        | VolumeSpec::InstanceStore { size_gib: Some(0) } = spec.volume
        {
            return Err(invalid("volume.sizeGib", "must be at least 1".into()));
        }
        let broker_type = InstanceType::parse(&spec.instance_type)
            .map_err(|reason| invalid("instanceType", reason))?
            .broker_type();
        let flags = broker_flags::broker_flags(&spec.broker_config)?;
        Ok((broker_type, flags))
    }

    fn claim_volume_id(namespace: &str, cluster_id: Uuid, broker_id: i32) -> VolumeId {
        VolumeId(format!(
            "pvc:{namespace}/{}",
            names::claim_name(cluster_id, broker_id)
        ))
    }

    /// Grows an existing claim to `size_gib` when its storage class allows expansion.
    async fn grow_claim(
        &self,
        namespace: &str,
        existing: &PersistentVolumeClaim,
        cluster_id: Uuid,
        broker_id: i32,
        size_gib: u32,
    ) -> Result<()> {
        let refuse = |reason: String| PlatformError::InvalidSpec {
            field: "volume.sizeGib".into(),
            reason,
        };
        let class_name = existing
            .spec
            .as_ref()
            .and_then(|spec| spec.storage_class_name.clone())
            .ok_or_else(|| {
                refuse("the claim has no storage class, so it cannot be expanded".into())
            })?;
        let classes: Api<StorageClass> = Api::all(self.client.clone());
        let class = classes
            .get_opt(&class_name)
            .await
            .map_err(kube_error(format!("reading StorageClass {class_name}")))?
            .ok_or_else(|| {
                PlatformError::NotFound(format!("storage class {class_name} does not exist"))
            })?;
        if class.allow_volume_expansion != Some(true) {
            return Err(refuse(format!(
                "storage class {class_name} does not allow volume expansion \
                 (allowVolumeExpansion is not true)"
            )));
        }
        let owner = self.ensure_anchor(cluster_id, namespace).await?;
        let claim = manifests::claim(
            cluster_id,
            broker_id,
            namespace,
            &owner,
            size_gib,
            Some(&class_name),
        );
        let api: Api<PersistentVolumeClaim> = self.api(namespace);
        Self::apply(&api, &names::claim_name(cluster_id, broker_id), &claim).await?;
        info!(size_gib, class = %class_name, "volume claim grown");
        Ok(())
    }

    /// Creates the node's objects and its pod (adopting a pod that exists), the pod annotated
    /// with `restart_id` when it replaces a predecessor in place.
    async fn create_pod(
        &self,
        spec: &NodeSpec,
        endpoints: &NodeEndpoints,
        restart_id: Option<&str>,
    ) -> Result<()> {
        let (broker_type, flags) = self.validate_node(spec)?;
        let (cluster_id, broker_id) = (spec.cluster_id, spec.broker_id);
        let namespace = self.namespace(cluster_id);
        self.ensure_namespace(cluster_id).await?;

        let configmaps: Api<ConfigMap> = self.api(&namespace);
        let anchor = manifests::anchor(cluster_id, &namespace, Some((&spec.broker_config, &flags)));
        let anchor = Self::apply(&configmaps, &names::anchor_name(cluster_id), &anchor).await?;
        let owner = manifests::owner_reference(&anchor)?;

        if !spec.agent_token.is_empty() {
            let secrets: Api<Secret> = self.api(&namespace);
            let secret = manifests::agent_secret(spec, &namespace, &owner);
            Self::apply(
                &secrets,
                &names::secret_name(cluster_id, broker_id),
                &secret,
            )
            .await?;
        }

        let services: Api<Service> = self.api(&namespace);
        let headless = manifests::headless_service(cluster_id, &namespace, &owner);
        Self::apply(
            &services,
            &names::headless_service_name(cluster_id),
            &headless,
        )
        .await?;
        let bootstrap = manifests::bootstrap_service(cluster_id, &namespace, &owner);
        Self::apply(
            &services,
            &names::bootstrap_service_name(cluster_id),
            &bootstrap,
        )
        .await?;

        if spec.volume.is_persistent() {
            let claims: Api<PersistentVolumeClaim> = self.api(&namespace);
            let claim = names::claim_name(cluster_id, broker_id);
            let exists = claims
                .get_opt(&claim)
                .await
                .map_err(kube_error(format!("reading PersistentVolumeClaim {claim}")))?
                .is_some();
            if !exists {
                return Err(PlatformError::NotFound(format!(
                    "the volume claim {claim} of broker {broker_id} does not exist: ensure_volume first"
                )));
            }
        }

        let pods: Api<Pod> = self.api(&namespace);
        let pod_name = names::pod_name(cluster_id, broker_id);
        if let Some(existing) = pods
            .get_opt(&pod_name)
            .await
            .map_err(kube_error(format!("reading Pod {pod_name}")))?
        {
            if existing.metadata.deletion_timestamp.is_some() {
                return Err(PlatformError::InUse(format!(
                    "pod {pod_name} is still terminating: its replacement waits"
                )));
            }
            let version = existing
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(names::BROKER_VERSION_ANNOTATION));
            if version != Some(&spec.broker_version) {
                warn!(pod = %pod_name, ?version, wanted = %spec.broker_version, "adopting a pod of another broker version");
            }
            info!(pod = %pod_name, "the node's pod already exists: adopted");
            return Ok(());
        }
        let pod = BrokerPod {
            spec,
            endpoints,
            namespace: &namespace,
            owner: &owner,
            broker_type,
            broker_flags: &flags,
            config: &self.config,
            restart_id,
        }
        .pod();
        let created = Self::apply(&pods, &pod_name, &pod).await?;
        self.unwatched.created(created);
        info!(pod = %pod_name, version = %spec.broker_version, kafka = %endpoints.kafka, "node pod created");
        Ok(())
    }

    async fn wait_for_pod_gone(&self, api: &Api<Pod>, name: &str) -> Result<()> {
        let deadline = Instant::now() + self.config.termination_grace() + Duration::from_secs(30);
        loop {
            let pod = api
                .get_opt(name)
                .await
                .map_err(kube_error(format!("reading Pod {name}")))?;
            if pod.is_none() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(PlatformError::Process(format!(
                    "pod {name} is still terminating after its grace period"
                )));
            }
            tokio::time::sleep(self.config.delete_poll_interval).await;
        }
    }
}

/// DELETE that treats "already gone" as done.
async fn delete_if_present<K>(api: &Api<K>, name: &str, params: &DeleteParams) -> Result<bool>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    <K as Resource>::DynamicType: Default,
{
    match api.delete(name, params).await {
        Ok(_) => Ok(true),
        Err(error) if is_status(&error, 404) => Ok(false),
        Err(error) => Err(kube_error(format!(
            "deleting {} {name}",
            K::kind(&Default::default())
        ))(error)),
    }
}

#[async_trait]
impl Platform for KubernetesPlatform {
    async fn allocate_endpoints(
        &self,
        cluster_id: Uuid,
        broker_ids: &[i32],
    ) -> Result<Vec<NodeEndpoints>> {
        let namespace = self.namespace(cluster_id);
        broker_ids
            .iter()
            .map(|&broker_id| {
                if broker_id < 0 {
                    return Err(PlatformError::InvalidSpec {
                        field: "brokerId".into(),
                        reason: "must not be negative".into(),
                    });
                }
                let host = names::broker_host(&namespace, cluster_id, broker_id);
                Ok(NodeEndpoints {
                    kafka: format!("{host}:{}", names::KAFKA_PORT),
                    broker_admin: format!("{host}:{}", names::BROKER_ADMIN_PORT),
                    agent: format!("{host}:{}", names::AGENT_PORT),
                    controller: format!("{host}:{}", names::CONTROLLER_PORT),
                })
            })
            .collect()
    }

    #[instrument(skip_all, fields(%cluster_id, broker_id))]
    async fn ensure_volume(
        &self,
        cluster_id: Uuid,
        broker_id: i32,
        volume: &VolumeSpec,
    ) -> Result<VolumeId> {
        let namespace = self.namespace(cluster_id);
        let (size_gib, storage_class) = match *volume {
            // An emptyDir is part of its pod: nothing to create before the node.
            VolumeSpec::InstanceStore { .. } => {
                return Ok(VolumeId(format!(
                    "emptyDir:{namespace}/{}",
                    names::pod_name(cluster_id, broker_id)
                )))
            }
            VolumeSpec::Persistent { size_gib: 0, .. } => {
                return Err(PlatformError::InvalidSpec {
                    field: "volume.sizeGib".into(),
                    reason: "must be at least 1".into(),
                })
            }
            VolumeSpec::Persistent {
                size_gib,
                ref storage_class,
            } => (size_gib, storage_class.clone()),
        };
        let id = Self::claim_volume_id(&namespace, cluster_id, broker_id);
        let name = names::claim_name(cluster_id, broker_id);
        self.ensure_namespace(cluster_id).await?;
        let api: Api<PersistentVolumeClaim> = self.api(&namespace);
        let existing = api
            .get_opt(&name)
            .await
            .map_err(kube_error(format!("reading PersistentVolumeClaim {name}")))?;
        let Some(existing) = existing else {
            let owner = self.ensure_anchor(cluster_id, &namespace).await?;
            let claim = manifests::claim(
                cluster_id,
                broker_id,
                &namespace,
                &owner,
                size_gib,
                storage_class
                    .as_deref()
                    .or(self.config.storage_class.as_deref()),
            );
            Self::apply(&api, &name, &claim).await?;
            info!(size_gib, claim = %name, "volume claim created");
            return Ok(id);
        };
        let current = manifests::claim_request_bytes(&existing).ok_or_else(|| {
            PlatformError::Process(format!("claim {name} has no readable storage request"))
        })?;
        let wanted = manifests::gib_bytes(size_gib);
        if wanted < current {
            return Err(PlatformError::InvalidSpec {
                field: "volume.sizeGib".into(),
                reason: format!(
                    "a volume cannot shrink ({} bytes to {size_gib} GiB)",
                    current
                ),
            });
        }
        if wanted > current {
            self.grow_claim(&namespace, &existing, cluster_id, broker_id, size_gib)
                .await?;
        }
        Ok(id)
    }

    #[instrument(skip_all, fields(cluster_id = %spec.cluster_id, broker_id = spec.broker_id))]
    async fn create_node(&self, spec: &NodeSpec, endpoints: &NodeEndpoints) -> Result<()> {
        self.create_pod(spec, endpoints, None).await
    }

    /// The pod is re-created with the new spec (its version's binary from the agent image, the
    /// new broker flags); the claim is mounted again. An emptyDir goes with the old pod, so an
    /// instance-store broker starts empty and re-replicates before the roll moves on.
    #[instrument(skip_all, fields(cluster_id = %spec.cluster_id, broker_id = spec.broker_id))]
    async fn restart_node(
        &self,
        spec: &NodeSpec,
        endpoints: &NodeEndpoints,
        restart_id: &str,
    ) -> Result<()> {
        self.validate_node(spec)?;
        let namespace = self.namespace(spec.cluster_id);
        let pods: Api<Pod> = self.api(&namespace);
        let name = names::pod_name(spec.cluster_id, spec.broker_id);
        if let Some(existing) = pods
            .get_opt(&name)
            .await
            .map_err(kube_error(format!("reading Pod {name}")))?
        {
            let restarted_for = existing
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(names::RESTART_ID_ANNOTATION));
            if existing.metadata.deletion_timestamp.is_none()
                && restarted_for.map(String::as_str) == Some(restart_id)
            {
                info!(pod = %name, restart_id, "restart already carried out");
                return Ok(());
            }
            let grace =
                u32::try_from(self.config.termination_grace().as_secs()).unwrap_or(u32::MAX);
            if delete_if_present(&pods, &name, &DeleteParams::default().grace_period(grace)).await?
            {
                info!(pod = %name, restart_id, "node pod deleted for an in-place restart");
                self.wait_for_pod_gone(&pods, &name).await?;
            }
            self.unwatched
                .deleted(&namespace, &name, &self.pods.state());
        }
        self.create_pod(spec, endpoints, Some(restart_id)).await
    }

    #[instrument(skip_all, fields(%cluster_id, broker_id))]
    async fn delete_node(&self, cluster_id: Uuid, broker_id: i32) -> Result<()> {
        let namespace = self.namespace(cluster_id);
        let pods: Api<Pod> = self.api(&namespace);
        let name = names::pod_name(cluster_id, broker_id);
        let grace = u32::try_from(self.config.termination_grace().as_secs()).unwrap_or(u32::MAX);
        if delete_if_present(&pods, &name, &DeleteParams::default().grace_period(grace)).await? {
            info!(pod = %name, grace_seconds = grace, "node pod deleted; waiting for it to stop");
            self.wait_for_pod_gone(&pods, &name).await?;
        }
        self.unwatched
            .deleted(&namespace, &name, &self.pods.state());
        // The token died with the node (a new node gets a new one).
        let secrets: Api<Secret> = self.api(&namespace);
        delete_if_present(
            &secrets,
            &names::secret_name(cluster_id, broker_id),
            &DeleteParams::default(),
        )
        .await?;
        Ok(())
    }

    #[instrument(skip_all, fields(%cluster_id, broker_id))]
    async fn delete_volume(&self, cluster_id: Uuid, broker_id: i32) -> Result<()> {
        let namespace = self.namespace(cluster_id);
        let pods: Api<Pod> = self.api(&namespace);
        let pod = names::pod_name(cluster_id, broker_id);
        if pods
            .get_opt(&pod)
            .await
            .map_err(kube_error(format!("reading Pod {pod}")))?
            .is_some()
        {
            return Err(PlatformError::InUse(format!(
                "the volume of broker {broker_id} is in use by pod {pod}: delete the node first"
            )));
        }
        let claims: Api<PersistentVolumeClaim> = self.api(&namespace);
        let name = names::claim_name(cluster_id, broker_id);
        if delete_if_present(&claims, &name, &DeleteParams::default()).await? {
            info!(claim = %name, "volume claim deleted");
        }
        Ok(())
    }

    async fn observe(&self, cluster_id: Uuid) -> Result<Vec<ObservedNode>> {
        tokio::time::timeout(self.config.watch_sync_timeout, self.pods.wait_until_ready())
            .await
            .map_err(|_| {
                PlatformError::Process(
                    "the pod watch has not listed the pods yet (is the API server reachable, \
                     may the control plane list and watch pods?)"
                        .into(),
                )
            })?
            .map_err(|e| PlatformError::Process(format!("the pod watch stopped: {e}")))?;
        let namespace = self.namespace(cluster_id);
        let pods = self.unwatched.overlay(self.pods.state());
        let mut nodes: Vec<ObservedNode> = pods
            .iter()
            .filter(|pod| pod.metadata.namespace.as_deref() == Some(namespace.as_str()))
            .filter_map(|pod| {
                observe::broker_of(pod, cluster_id)
                    .map(|broker_id| observe::observed_node(pod, cluster_id, broker_id))
            })
            .collect();
        nodes.sort_by_key(|node| node.broker_id);
        Ok(nodes)
    }

    #[instrument(skip_all, fields(%cluster_id))]
    async fn delete_cluster_resources(&self, cluster_id: Uuid) -> Result<()> {
        let namespace = self.namespace(cluster_id);
        if self.config.namespace == NamespaceMode::PerCluster {
            let api: Api<Namespace> = Api::all(self.client.clone());
            delete_if_present(&api, &namespace, &DeleteParams::foreground()).await?;
            info!(%namespace, "cluster namespace deleted");
            return Ok(());
        }
        // Everything of the cluster is owned by the anchor: foreground deletion removes the
        // dependents first, then the anchor.
        let api: Api<ConfigMap> = self.api(&namespace);
        delete_if_present(
            &api,
            &names::anchor_name(cluster_id),
            &DeleteParams::foreground(),
        )
        .await?;
        info!("cluster objects deleted (with their owner, the cluster's ConfigMap)");
        Ok(())
    }

    fn installed_versions(&self) -> Vec<String> {
        self.config.installed_versions.clone()
    }
}
