//! The KafkaCluster controller: reconcile a resource into the store through the clusters service
//! the REST API uses too, write the status back with server-side apply, announce changes as Events, and
//! hold a finalizer until the cluster and its volumes are gone.

use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event as FinalizerEvent};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn, Instrument};
use uuid::Uuid;

use super::changes::{immutable, invalid_spec, problem_or_error, spec_changes};
use super::crd::{KafkaCluster, KafkaClusterStatus};
use super::status::{desired_status, events_between, is_unfinished, Observation, SpecProblem};
use crate::domain::{ClusterName, ClusterSpec, ClusterState, Tags};
use crate::http::AppState;
use crate::service::ServiceError;
use crate::store::{ClusterRecord, CreateOutcome, NewCluster, OperationRecord, StoreError};

/// The finalizer that keeps a resource until its cluster is deleted.
pub const FINALIZER: &str = "millrace.dev/cleanup";
/// The field manager of the status Millrace applies.
pub const FIELD_MANAGER: &str = "millrace";

/// How often the controller looks again at a resource.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    /// While an operation runs (or a deletion is under way).
    pub busy_requeue: Duration,
    /// Otherwise: the periodic refresh that brings the reconciler's later work (a heal, a
    /// failure) into the status.
    pub idle_requeue: Duration,
    /// After an error talking to the API server or the store.
    pub error_requeue: Duration,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        Self {
            busy_requeue: Duration::from_secs(5),
            idle_requeue: Duration::from_secs(60),
            error_requeue: Duration::from_secs(15),
        }
    }
}

/// What every reconcile gets.
pub struct Context {
    pub client: Client,
    /// The state both doors share: the store, the version catalog and the reconciler's wake-up.
    pub state: AppState,
    pub recorder: Recorder,
    pub settings: ControllerSettings,
}

impl Context {
    pub fn new(client: Client, state: AppState, settings: ControllerSettings) -> Self {
        let reporter = Reporter {
            controller: "millrace".to_owned(),
            instance: std::env::var("POD_NAME").ok().filter(|n| !n.is_empty()),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            state,
            settings,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the Kubernetes API refused a request: {0}")]
    Kube(#[from] kube::Error),
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
    #[error("the control plane failed: {0}")]
    Internal(String),
    #[error("the resource has no metadata.{0}")]
    MissingMetadata(&'static str),
    #[error("cluster {cluster_id} is being deleted; the finalizer stays until it is gone")]
    DeletionInProgress { cluster_id: Uuid },
    #[error("cluster {cluster_id} cannot be deleted yet: {reason}")]
    DeletionWaiting { cluster_id: Uuid, reason: String },
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// The innermost error, through the finalizer's wrapping.
    fn root(&self) -> &Error {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::Finalizer(inner) => match inner.as_ref() {
                F::ApplyFailed(e) | F::CleanupFailed(e) => e.root(),
                _ => self,
            },
            other => other,
        }
    }

    /// Waiting on the store rather than failing: the controller looks again at the busy pace.
    pub fn is_waiting(&self) -> bool {
        matches!(
            self.root(),
            Error::DeletionInProgress { .. } | Error::DeletionWaiting { .. }
        )
    }
}

/// Reconciles one KafkaCluster: adds the finalizer, then applies or cleans up.
pub async fn reconcile(resource: Arc<KafkaCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = resource
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let span = tracing::info_span!(
        "kafkacluster",
        namespace = %namespace,
        name = %resource.name_any(),
        uid = resource.meta().uid.as_deref().unwrap_or(""),
        cluster_id = tracing::field::Empty,
        operation_id = tracing::field::Empty,
    );
    let api: Api<KafkaCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let (api_ref, ctx_ref) = (&api, ctx.as_ref());
    finalizer(&api, FINALIZER, resource, |event| async move {
        match event {
            FinalizerEvent::Apply(resource) => apply(api_ref, &resource, ctx_ref).await,
            FinalizerEvent::Cleanup(resource) => cleanup(api_ref, &resource, ctx_ref).await,
        }
    })
    .instrument(span)
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// What the controller does after a failed reconcile.
pub fn error_policy(_resource: Arc<KafkaCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    if error.is_waiting() {
        info!(%error, "waiting");
        Action::requeue(ctx.settings.busy_requeue)
    } else {
        warn!(%error, "reconciling a KafkaCluster failed; retrying");
        Action::requeue(ctx.settings.error_requeue)
    }
}

fn uid(resource: &KafkaCluster) -> Result<&str, Error> {
    resource
        .meta()
        .uid
        .as_deref()
        .ok_or(Error::MissingMetadata("uid"))
}

async fn find_cluster(ctx: &Context, uid: &str) -> Result<Option<ClusterRecord>, Error> {
    match ctx.state.store.get_cluster_by_kubernetes_uid(uid).await {
        Ok(cluster) => Ok(Some(cluster)),
        Err(StoreError::NotFound) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Validate, upsert into the store, report.
async fn apply(
    api: &Api<KafkaCluster>,
    resource: &KafkaCluster,
    ctx: &Context,
) -> Result<Action, Error> {
    let uid = uid(resource)?;
    let existing = find_cluster(ctx, uid).await?;
    let problem = match &existing {
        None => create(resource, uid, ctx).await?,
        Some(cluster) => update(resource, cluster, ctx).await?,
    };
    if let Some(problem) = &problem {
        warn!(reason = problem.reason, message = %problem.message, "the spec was not applied");
    }
    let observation_data = observe(ctx, uid).await?;
    let observation = observation_data.observation(resource, problem.as_ref());
    publish_status(api, resource, ctx, &observation).await?;
    Ok(if observation.busy() {
        Action::requeue(ctx.settings.busy_requeue)
    } else {
        Action::requeue(ctx.settings.idle_requeue)
    })
}

/// Creates the cluster through the clusters service, keyed by the resource's uid.
async fn create(
    resource: &KafkaCluster,
    uid: &str,
    ctx: &Context,
) -> Result<Option<SpecProblem>, Error> {
    let resource_name = resource.name_any();
    let (name, spec, tags) = match parse_spec(resource, &resource_name, ctx) {
        Ok(parsed) => parsed,
        Err(problem) => return Ok(Some(problem)),
    };
    let new = NewCluster {
        name,
        spec,
        tags,
        idempotency: None,
        kubernetes_uid: Some(uid.to_owned()),
    };
    match ctx.state.clusters().create(new).await {
        Ok(CreateOutcome::Created { cluster, operation }) => {
            info!(cluster_id = %cluster.id, operation_id = %operation.id, "cluster created from a KafkaCluster");
            Ok(None)
        }
        Ok(CreateOutcome::Replayed { .. }) => Ok(None),
        Err(error) => problem_or_error(error, None),
    }
}

/// The cluster the resource's spec describes, or the problem with the spec.
fn parse_spec(
    resource: &KafkaCluster,
    resource_name: &str,
    ctx: &Context,
) -> Result<(ClusterName, ClusterSpec, Tags), SpecProblem> {
    let draft = resource
        .spec
        .draft(resource_name)
        .map_err(|unsupported| SpecProblem {
            reason: "UnsupportedField",
            message: format!("{}: {}", unsupported.field, unsupported.message),
            retry: false,
        })?;
    draft.parse(&ctx.state.versions).map_err(|invalid| {
        if invalid.field == "clusterName" && resource.spec.cluster_name.is_none() {
            SpecProblem {
                reason: "InvalidSpec",
                message: format!(
                    "metadata.name {resource_name:?} cannot be the cluster's name ({}); set \
                     spec.clusterName",
                    invalid.message
                ),
                retry: false,
            }
        } else {
            invalid_spec(&invalid, None)
        }
    })
}

/// Brings a spec change to the store through the clusters service.
async fn update(
    resource: &KafkaCluster,
    cluster: &ClusterRecord,
    ctx: &Context,
) -> Result<Option<SpecProblem>, Error> {
    tracing::Span::current().record("cluster_id", tracing::field::display(cluster.id));
    if cluster.state == ClusterState::Deleting {
        // Deleted through the REST API meanwhile: nothing to change; the status says DELETING.
        return Ok(None);
    }
    let (name, mut desired, tags) = match parse_spec(resource, &resource.name_any(), ctx) {
        Ok(parsed) => parsed,
        Err(problem) => return Ok(Some(problem)),
    };
    if resource.spec.kafka_version.is_none() {
        // "The newest installed" was resolved once, at create; a later install is no change.
        desired.kafka_version = cluster.spec.kafka_version.clone();
    }
    if name != cluster.name {
        return Ok(Some(immutable(
            "spec.clusterName",
            format!("the cluster is named {}", cluster.name),
        )));
    }
    let current = &cluster.spec;
    if desired.broker_node_group.zones != current.broker_node_group.zones {
        return Ok(Some(immutable(
            "spec.brokerNodeGroupInfo.zones",
            format!(
                "the cluster's zones are {}",
                current.broker_node_group.zones.labels().join(", ")
            ),
        )));
    }
    if desired.broker_node_group.storage.is_persistent()
        != current.broker_node_group.storage.is_persistent()
    {
        return Ok(Some(immutable(
            "spec.brokerNodeGroupInfo.storageInfo",
            "a cluster cannot switch between EBS-style and instance storage".to_owned(),
        )));
    }
    if desired.broker_node_group.storage_class != current.broker_node_group.storage_class {
        return Ok(Some(immutable(
            "spec.brokerNodeGroupInfo.storageInfo.ebsStorageInfo.storageClass",
            format!(
                "the volumes' storage class is {}",
                current
                    .broker_node_group
                    .storage_class
                    .as_deref()
                    .unwrap_or("the platform's default")
            ),
        )));
    }
    if desired.configuration.is_none() && current.configuration.is_some() {
        return Ok(Some(immutable(
            "spec.configurationInfo",
            "a configuration cannot be removed, only replaced by another revision".to_owned(),
        )));
    }
    let changes = spec_changes(current, &desired, resource.spec.upgrade_strategy.domain());
    match changes.as_slice() {
        [] => {
            if tags != cluster.tags {
                ctx.state.store.set_cluster_tags(cluster.id, &tags).await?;
                info!("tags changed");
            }
            Ok(None)
        }
        [(field, change)] => match ctx.state.clusters().change(cluster, change).await {
            Ok(operation) => {
                info!(field, operation_id = %operation.id, "spec change accepted");
                Ok(None)
            }
            Err(error) => problem_or_error(error, Some(field)),
        },
        several => {
            let fields: Vec<&str> = several.iter().map(|(field, _)| *field).collect();
            Ok(Some(SpecProblem {
                reason: "OneChangeAtATime",
                message: format!(
                    "{} changed together; change one of them at a time (each change is one \
                     operation)",
                    fields.join(", ")
                ),
                retry: false,
            }))
        }
    }
}

/// What the store says about the resource's cluster.
struct Observed {
    cluster: Option<ClusterRecord>,
    operation: Option<OperationRecord>,
    failure: Option<String>,
}

impl Observed {
    fn observation<'a>(
        &'a self,
        resource: &KafkaCluster,
        problem: Option<&'a SpecProblem>,
    ) -> Observation<'a> {
        Observation {
            generation: resource.meta().generation,
            cluster: self.cluster.as_ref(),
            operation: self.operation.as_ref(),
            failure: self.failure.as_deref(),
            problem,
        }
    }
}

async fn observe(ctx: &Context, uid: &str) -> Result<Observed, Error> {
    let Some(cluster) = find_cluster(ctx, uid).await? else {
        return Ok(Observed {
            cluster: None,
            operation: None,
            failure: None,
        });
    };
    tracing::Span::current().record("cluster_id", tracing::field::display(cluster.id));
    let operations = ctx.state.store.list_operations(cluster.id).await?;
    // Newest first; the reconciler works on the oldest unfinished one.
    let operation = operations
        .iter()
        .rev()
        .find(|op| is_unfinished(op))
        .cloned();
    if let Some(op) = &operation {
        tracing::Span::current().record("operation_id", tracing::field::display(op.id));
    }
    let failure = (cluster.state == ClusterState::Failed)
        .then(|| operations.iter().find_map(|op| op.error.clone()))
        .flatten();
    Ok(Observed {
        cluster: Some(cluster),
        operation,
        failure,
    })
}

/// Applies the status (server-side apply on the status subresource) and posts the Events the
/// change from the previous status calls for.
async fn publish_status(
    api: &Api<KafkaCluster>,
    resource: &KafkaCluster,
    ctx: &Context,
    observation: &Observation<'_>,
) -> Result<(), Error> {
    let previous = resource.status.as_ref();
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let status = desired_status(previous, observation, &now);
    for event in events_between(previous, &status) {
        publish_event(resource, ctx, &event).await;
    }
    if previous != Some(&status) {
        patch_status(api, resource, &status).await?;
    }
    Ok(())
}

async fn patch_status(
    api: &Api<KafkaCluster>,
    resource: &KafkaCluster,
    status: &KafkaClusterStatus,
) -> Result<(), Error> {
    let patch = json!({
        "apiVersion": "millrace.dev/v1alpha1",
        "kind": "KafkaCluster",
        "status": status,
    });
    api.patch_status(
        &resource.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Events are for people: one that cannot be posted is logged, never fails the reconcile.
async fn publish_event(resource: &KafkaCluster, ctx: &Context, event: &Event) {
    let reference = resource.object_ref(&());
    if let Err(error) = ctx.recorder.publish(event, &reference).await {
        warn!(%error, reason = %event.reason, "posting an Event failed");
    }
}

/// Deletes the cluster through the clusters service; succeeds (letting the finalizer go)
/// only once the store has forgotten the cluster, which the reconciler does after its nodes and
/// volumes are gone.
async fn cleanup(
    api: &Api<KafkaCluster>,
    resource: &KafkaCluster,
    ctx: &Context,
) -> Result<Action, Error> {
    let uid = uid(resource)?;
    let Some(cluster) = find_cluster(ctx, uid).await? else {
        info!("the cluster is gone; releasing the resource");
        let event = Event {
            type_: EventType::Normal,
            reason: "Deleted".to_owned(),
            note: Some(
                match resource
                    .status
                    .as_ref()
                    .and_then(|s| s.cluster_id.as_deref())
                {
                    Some(id) => format!("cluster {id} and its volumes are deleted"),
                    None => "no cluster was created for this resource".to_owned(),
                },
            ),
            action: "Delete".to_owned(),
            secondary: None,
        };
        publish_event(resource, ctx, &event).await;
        return Ok(Action::await_change());
    };
    tracing::Span::current().record("cluster_id", tracing::field::display(cluster.id));
    let waiting = if cluster.state == ClusterState::Deleting {
        None
    } else {
        match ctx.state.clusters().delete(cluster.id, None).await {
            Ok((_, operation)) => {
                info!(operation_id = %operation.id, "cluster deletion started");
                None
            }
            // E.g. UPDATING: the delete waits for the change to finish.
            Err(ServiceError::Conflict(conflict)) => Some(conflict.to_string()),
            Err(ServiceError::NotFound(_)) => {
                return Err(Error::DeletionInProgress {
                    cluster_id: cluster.id,
                })
            }
            Err(other) => return Err(Error::Internal(other.to_string())),
        }
    };
    let observed = observe(ctx, uid).await?;
    let observation = observed.observation(resource, None);
    publish_status(api, resource, ctx, &observation).await?;
    Err(match waiting {
        Some(reason) => Error::DeletionWaiting {
            cluster_id: cluster.id,
            reason,
        },
        None => Error::DeletionInProgress {
            cluster_id: cluster.id,
        },
    })
}
