//! The typed k8s-openapi objects of a cluster. Pure functions of the node spec and the
//! platform's settings, so that tests can check every field that matters without an API server.
//!
//! Ownership: the per-cluster ConfigMap (the "anchor", see [`anchor`]) is the owner of every
//! other object of the cluster (Secrets, Services, claims, Pods), so deleting it lets Kubernetes'
//! garbage collector remove the rest. A ConfigMap and not a Pod or a Service: it is the one
//! object that exists for the whole life of a cluster and is never replaced.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ConfigMap, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, Namespace, NodeAffinity, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec, Probe,
    ResourceRequirements, Secret, SecretKeySelector, Service, ServicePort, ServiceSpec,
    TopologySpreadConstraint, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use uuid::Uuid;

use super::names::{self, *};
use super::KubernetesPlatformConfig;
use crate::domain::BrokerType;
use crate::platform::{NodeEndpoints, NodeSpec, PlatformError, Result};

/// The key of the agent token in a node's Secret.
pub const TOKEN_KEY: &str = "token";
/// Where the node's volume is mounted in the agent container.
pub const DATA_DIR: &str = "/var/lib/millrace";
const AGENT_CONTAINER: &str = "agent";
const DATA_VOLUME: &str = "data";
const GIB: u64 = 1 << 30;

fn meta(
    name: String,
    namespace: &str,
    labels: BTreeMap<String, String>,
    owner: Option<&OwnerReference>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_string()),
        labels: Some(labels),
        owner_references: owner.map(|owner| vec![owner.clone()]),
        ..ObjectMeta::default()
    }
}

/// The namespace of a cluster when the platform runs one namespace per cluster.
pub fn namespace(cluster_id: Uuid, name: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(names::cluster_labels(cluster_id)),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// The cluster's ConfigMap: the broker configuration the nodes were started with
/// (`server.properties` as the user wrote it, `broker-flags` as the brokers receive it) and
/// the owner of the cluster's other objects. `settings` is None when only the anchor is needed
/// (a volume created before the first node).
pub fn anchor(
    cluster_id: Uuid,
    namespace: &str,
    settings: Option<(&BTreeMap<String, String>, &[String])>,
) -> ConfigMap {
    let data = settings.map(|(config, flags)| {
        let properties: String = config.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        let flags: String = flags.iter().map(|flag| format!("{flag}\n")).collect();
        BTreeMap::from([
            ("server.properties".to_string(), properties),
            ("broker-flags".to_string(), flags),
        ])
    });
    ConfigMap {
        metadata: meta(
            names::anchor_name(cluster_id),
            namespace,
            names::cluster_labels(cluster_id),
            None,
        ),
        data,
        ..ConfigMap::default()
    }
}

/// An owner reference to the anchor, which must have been read back from the API server (the
/// reference needs its uid).
pub fn owner_reference(anchor: &ConfigMap) -> Result<OwnerReference> {
    let (Some(name), Some(uid)) = (&anchor.metadata.name, &anchor.metadata.uid) else {
        return Err(PlatformError::Process(
            "the API server returned the cluster's ConfigMap without a name or uid".into(),
        ));
    };
    Ok(OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: name.clone(),
        uid: uid.clone(),
        controller: Some(true),
        // Foreground deletion of the anchor waits for its dependents without this being set,
        // and setting it would need update rights on configmaps/finalizers.
        block_owner_deletion: None,
    })
}

/// The node's agent token. The pod reads it through `secretKeyRef`; it never appears in a Pod.
pub fn agent_secret(spec: &NodeSpec, namespace: &str, owner: &OwnerReference) -> Secret {
    Secret {
        metadata: meta(
            names::secret_name(spec.cluster_id, spec.broker_id),
            namespace,
            names::broker_labels(spec.cluster_id, spec.broker_id),
            Some(owner),
        ),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            TOKEN_KEY.to_string(),
            ByteString(spec.agent_token.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

fn service_port(name: &str, port: u16) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port: port.into(),
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

/// The headless Service that gives each broker pod its DNS name. It publishes pods before they
/// are ready: brokers find their quorum peers while none of them is ready yet.
pub fn headless_service(cluster_id: Uuid, namespace: &str, owner: &OwnerReference) -> Service {
    Service {
        metadata: meta(
            names::headless_service_name(cluster_id),
            namespace,
            names::cluster_labels(cluster_id),
            Some(owner),
        ),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(names::broker_pod_selector(cluster_id)),
            ports: Some(vec![
                service_port("kafka", KAFKA_PORT),
                service_port("controller", CONTROLLER_PORT),
                service_port("broker-admin", BROKER_ADMIN_PORT),
                service_port("agent", AGENT_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The Service clients bootstrap from: ready brokers only, Kafka port only.
pub fn bootstrap_service(cluster_id: Uuid, namespace: &str, owner: &OwnerReference) -> Service {
    Service {
        metadata: meta(
            names::bootstrap_service_name(cluster_id),
            namespace,
            names::cluster_labels(cluster_id),
            Some(owner),
        ),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(names::broker_pod_selector(cluster_id)),
            ports: Some(vec![service_port("kafka", KAFKA_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn gib(size_gib: u32) -> Quantity {
    Quantity(format!("{size_gib}Gi"))
}

/// The broker's persistent volume claim. `storage_class` None leaves the cluster's default.
pub fn claim(
    cluster_id: Uuid,
    broker_id: i32,
    namespace: &str,
    owner: &OwnerReference,
    size_gib: u32,
    storage_class: Option<&str>,
) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: meta(
            names::claim_name(cluster_id, broker_id),
            namespace,
            names::broker_labels(cluster_id, broker_id),
            Some(owner),
        ),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage_class.map(str::to_string),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), gib(size_gib))])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// The size a claim asks for, in bytes (`spec.resources.requests.storage`).
pub fn claim_request_bytes(claim: &PersistentVolumeClaim) -> Option<u128> {
    let quantity = claim
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")?;
    quantity_bytes(&quantity.0)
}

/// A storage quantity in bytes: plain integers and the binary (Ki..Ei) and decimal (k..E)
/// suffixes Kubernetes writes for sizes. Fractions and exponents are refused (None).
pub fn quantity_bytes(text: &str) -> Option<u128> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let number: u128 = digits.parse().ok()?;
    let multiplier: u128 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

/// GiB as bytes, for comparing with [`claim_request_bytes`].
pub fn gib_bytes(size_gib: u32) -> u128 {
    u128::from(size_gib) * u128::from(GIB)
}

/// Everything a broker pod is built from.
pub struct BrokerPod<'a> {
    pub spec: &'a NodeSpec,
    pub endpoints: &'a NodeEndpoints,
    pub namespace: &'a str,
    pub owner: &'a OwnerReference,
    pub broker_type: &'a BrokerType,
    pub broker_flags: &'a [String],
    pub config: &'a KubernetesPlatformConfig,
    /// The in-place restart this pod replaces its predecessor for, if any.
    pub restart_id: Option<&'a str>,
}

impl BrokerPod<'_> {
    /// The agent's command line (see broker-agent's `AgentConfig`): listeners on every
    /// interface at the fixed ports, the stable DNS names advertised.
    pub fn agent_args(&self) -> Vec<String> {
        let spec = self.spec;
        let any = |port: u16| format!("0.0.0.0:{port}");
        let mut args = vec![
            "--node-id".to_string(),
            spec.broker_id.to_string(),
            "--cluster-id".into(),
            spec.cluster_id.to_string(),
            "--data-dir".into(),
            DATA_DIR.into(),
            "--bin-dir".into(),
            self.config.agent_bin_dir.clone(),
            "--broker-version".into(),
            spec.broker_version.clone(),
            "--broker-listen".into(),
            any(KAFKA_PORT),
            "--broker-admin-listen".into(),
            any(BROKER_ADMIN_PORT),
            "--advertised-listener".into(),
            self.endpoints.kafka.clone(),
            "--agent-listen".into(),
            any(AGENT_PORT),
            "--rack".into(),
            spec.zone.clone(),
            "--stop-timeout-ms".into(),
            self.config.broker_stop_timeout.as_millis().to_string(),
            "--heartbeat-interval-ms".into(),
            self.config.heartbeat_interval.as_millis().to_string(),
            "--log-format".into(),
            "json".into(),
        ];
        if !spec.voters.is_empty() {
            let voters: Vec<String> = spec.voters.iter().map(ToString::to_string).collect();
            args.extend([
                "--voters".into(),
                voters.join(","),
                "--controller-listen".into(),
                any(CONTROLLER_PORT),
                "--controller-advertised".into(),
                self.endpoints.controller.clone(),
            ]);
        }
        if !spec.control_plane_url.is_empty() {
            args.extend(["--control-plane-url".into(), spec.control_plane_url.clone()]);
        }
        args.extend(
            self.broker_flags
                .iter()
                .map(|flag| format!("--broker-arg={flag}")),
        );
        args
    }

    fn data_volume(&self) -> Volume {
        let (cluster_id, broker_id) = (self.spec.cluster_id, self.spec.broker_id);
        match self.spec.volume {
            crate::platform::VolumeSpec::Persistent { .. } => Volume {
                name: DATA_VOLUME.into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: names::claim_name(cluster_id, broker_id),
                    read_only: None,
                }),
                ..Volume::default()
            },
            crate::platform::VolumeSpec::InstanceStore { size_gib } => Volume {
                name: DATA_VOLUME.into(),
                empty_dir: Some(EmptyDirVolumeSource {
                    medium: None,
                    size_limit: size_gib.map(gib),
                }),
                ..Volume::default()
            },
        }
    }

    fn resources(&self) -> ResourceRequirements {
        let amounts = BTreeMap::from([
            (
                "cpu".to_string(),
                Quantity(self.broker_type.vcpus.to_string()),
            ),
            (
                "memory".to_string(),
                Quantity(format!("{}Gi", self.broker_type.memory_gib)),
            ),
        ]);
        ResourceRequirements {
            requests: Some(amounts.clone()),
            limits: Some(amounts),
            ..ResourceRequirements::default()
        }
    }

    /// Pinned to the node's zone (the broker's rack is that zone) and spread over the zone's
    /// nodes: two brokers of a cluster on one machine would fail together.
    fn placement(&self) -> (Affinity, Vec<TopologySpreadConstraint>) {
        let affinity = Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: ZONE_TOPOLOGY_KEY.into(),
                            operator: "In".into(),
                            values: Some(vec![self.spec.zone.clone()]),
                        }]),
                        match_fields: None,
                    }],
                }),
                preferred_during_scheduling_ignored_during_execution: None,
            }),
            ..Affinity::default()
        };
        let selector = LabelSelector {
            match_labels: Some(names::broker_pod_selector(self.spec.cluster_id)),
            match_expressions: None,
        };
        let spread = vec![
            TopologySpreadConstraint {
                topology_key: ZONE_TOPOLOGY_KEY.into(),
                max_skew: 1,
                when_unsatisfiable: "DoNotSchedule".into(),
                label_selector: Some(selector.clone()),
                ..TopologySpreadConstraint::default()
            },
            TopologySpreadConstraint {
                topology_key: HOSTNAME_TOPOLOGY_KEY.into(),
                max_skew: 1,
                when_unsatisfiable: "ScheduleAnyway".into(),
                label_selector: Some(selector),
                ..TopologySpreadConstraint::default()
            },
        ];
        (affinity, spread)
    }

    fn container(&self) -> Container {
        let port = |name: &str, port: u16| ContainerPort {
            name: Some(name.into()),
            container_port: port.into(),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        };
        let mut env = Vec::new();
        if !self.spec.agent_token.is_empty() {
            env.push(EnvVar {
                name: "MILLRACE_AGENT_TOKEN".into(),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: names::secret_name(self.spec.cluster_id, self.spec.broker_id),
                        key: TOKEN_KEY.into(),
                        optional: Some(false),
                    }),
                    ..EnvVarSource::default()
                }),
            });
        }
        let http_probe = |path: &str, port_name: &str| HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(port_name.into()),
            scheme: Some("HTTP".into()),
            ..HTTPGetAction::default()
        };
        Container {
            name: AGENT_CONTAINER.into(),
            image: Some(self.config.agent_image.clone()),
            image_pull_policy: self.config.image_pull_policy.clone(),
            command: Some(vec![format!(
                "{}/millrace-agent",
                self.config.agent_bin_dir
            )]),
            args: Some(self.agent_args()),
            env: (!env.is_empty()).then_some(env),
            ports: Some(vec![
                port("kafka", KAFKA_PORT),
                port("controller", CONTROLLER_PORT),
                port("broker-admin", BROKER_ADMIN_PORT),
                port("agent", AGENT_PORT),
            ]),
            resources: Some(self.resources()),
            volume_mounts: Some(vec![VolumeMount {
                name: DATA_VOLUME.into(),
                mount_path: DATA_DIR.into(),
                ..VolumeMount::default()
            }]),
            // The agent restarts a crashed broker itself; the kubelet restarts the agent
            // only when the agent stops answering.
            liveness_probe: Some(Probe {
                http_get: Some(http_probe("/health", "agent")),
                initial_delay_seconds: Some(10),
                period_seconds: Some(10),
                timeout_seconds: Some(3),
                failure_threshold: Some(6),
                ..Probe::default()
            }),
            // Ready means the broker serves (its own /ready): only then is the pod behind the
            // bootstrap Service and counted as Running by the reconciler.
            readiness_probe: Some(Probe {
                http_get: Some(http_probe("/ready", "broker-admin")),
                period_seconds: Some(5),
                timeout_seconds: Some(3),
                failure_threshold: Some(3),
                ..Probe::default()
            }),
            ..Container::default()
        }
    }

    pub fn pod(&self) -> Pod {
        let (cluster_id, broker_id) = (self.spec.cluster_id, self.spec.broker_id);
        let mut metadata = meta(
            names::pod_name(cluster_id, broker_id),
            self.namespace,
            names::broker_labels(cluster_id, broker_id),
            Some(self.owner),
        );
        metadata.annotations = Some(BTreeMap::from([
            (
                BROKER_VERSION_ANNOTATION.to_string(),
                self.spec.broker_version.clone(),
            ),
            (ZONE_ANNOTATION.to_string(), self.spec.zone.clone()),
            (
                INSTANCE_TYPE_ANNOTATION.to_string(),
                self.spec.instance_type.clone(),
            ),
        ]));
        if let (Some(annotations), Some(restart_id)) =
            (metadata.annotations.as_mut(), self.restart_id)
        {
            annotations.insert(RESTART_ID_ANNOTATION.to_string(), restart_id.to_owned());
        }
        let (affinity, spread) = self.placement();
        let grace = self.config.termination_grace().as_secs();
        Pod {
            metadata,
            spec: Some(PodSpec {
                hostname: Some(names::pod_name(cluster_id, broker_id)),
                subdomain: Some(names::headless_service_name(cluster_id)),
                containers: vec![self.container()],
                volumes: Some(vec![self.data_volume()]),
                affinity: Some(affinity),
                topology_spread_constraints: Some(spread),
                termination_grace_period_seconds: Some(i64::try_from(grace).unwrap_or(i64::MAX)),
                restart_policy: Some("Always".into()),
                enable_service_links: Some(false),
                automount_service_account_token: Some(false),
                security_context: self.config.fs_group.map(|group| PodSecurityContext {
                    fs_group: Some(group),
                    fs_group_change_policy: Some("OnRootMismatch".into()),
                    ..PodSecurityContext::default()
                }),
                ..PodSpec::default()
            }),
            status: None,
        }
    }
}
