//! Names, labels and addresses of a cluster's Kubernetes objects. All pure: the same
//! (cluster, broker id) always yields the same names, which is what makes every platform call
//! idempotent and a replacement pod find its claim.
//!
//! Every name is a DNS-1123 label starting with a letter (Services need DNS-1035) and stays
//! within 63 characters: `kafka-` (6) + a UUID (36) + `-<broker id>` (at most 11 for an i32)
//! + a suffix of at most 6 (`-agent`) is 59.

use std::collections::BTreeMap;

use uuid::Uuid;

/// Labels every object of a cluster carries.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const CLUSTER_ID_LABEL: &str = "millrace.dev/cluster-id";
pub const BROKER_ID_LABEL: &str = "millrace.dev/broker-id";

/// What the pod records of its spec, for `observe` (labels hold ids; annotations the rest).
pub const BROKER_VERSION_ANNOTATION: &str = "millrace.dev/broker-version";
/// The in-place restart a pod was created for (`Platform::restart_node`'s id).
pub const RESTART_ID_ANNOTATION: &str = "millrace.dev/restart-id";
pub const ZONE_ANNOTATION: &str = "millrace.dev/zone";
pub const INSTANCE_TYPE_ANNOTATION: &str = "millrace.dev/instance-type";

pub const MANAGER: &str = "millrace";
/// The label selector of the pod watch: every pod this platform made, in every cluster.
pub const MANAGED_PODS_SELECTOR: &str = "app.kubernetes.io/managed-by=millrace";

/// The well-known node label of a node's zone.
pub const ZONE_TOPOLOGY_KEY: &str = "topology.kubernetes.io/zone";
pub const HOSTNAME_TOPOLOGY_KEY: &str = "kubernetes.io/hostname";

/// Fixed container ports: each broker has a pod (and an IP) of its own, so ports never collide.
pub const KAFKA_PORT: u16 = 9092;
pub const CONTROLLER_PORT: u16 = 9093;
pub const BROKER_ADMIN_PORT: u16 = 9644;
pub const AGENT_PORT: u16 = 9700;

/// The namespace a cluster's objects live in, for one platform configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceMode {
    /// Every cluster in this namespace.
    Shared(String),
    /// `millrace-<cluster id>` per cluster, created with the cluster's first object.
    PerCluster,
}

impl NamespaceMode {
    pub fn namespace(&self, cluster_id: Uuid) -> String {
        match self {
            NamespaceMode::Shared(namespace) => namespace.clone(),
            NamespaceMode::PerCluster => format!("millrace-{cluster_id}"),
        }
    }
}

/// The `kafka-<cluster id>` prefix of every name of the cluster.
pub fn cluster_base(cluster_id: Uuid) -> String {
    format!("kafka-{cluster_id}")
}

/// The per-cluster ConfigMap: broker configuration, and the owner of everything else.
pub fn anchor_name(cluster_id: Uuid) -> String {
    cluster_base(cluster_id)
}

pub fn headless_service_name(cluster_id: Uuid) -> String {
    format!("{}-brokers", cluster_base(cluster_id))
}

pub fn bootstrap_service_name(cluster_id: Uuid) -> String {
    format!("{}-bootstrap", cluster_base(cluster_id))
}

pub fn pod_name(cluster_id: Uuid, broker_id: i32) -> String {
    format!("{}-{broker_id}", cluster_base(cluster_id))
}

pub fn claim_name(cluster_id: Uuid, broker_id: i32) -> String {
    format!("{}-{broker_id}-data", cluster_base(cluster_id))
}

pub fn secret_name(cluster_id: Uuid, broker_id: i32) -> String {
    format!("{}-{broker_id}-agent", cluster_base(cluster_id))
}

/// The labels of the cluster's shared objects (ConfigMap, Services).
pub fn cluster_labels(cluster_id: Uuid) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_string(), "kafka".to_string()),
        (INSTANCE_LABEL.to_string(), cluster_id.to_string()),
        (COMPONENT_LABEL.to_string(), "broker".to_string()),
        (MANAGED_BY_LABEL.to_string(), MANAGER.to_string()),
        (CLUSTER_ID_LABEL.to_string(), cluster_id.to_string()),
    ])
}

/// The labels of one broker's objects (Pod, claim, Secret).
pub fn broker_labels(cluster_id: Uuid, broker_id: i32) -> BTreeMap<String, String> {
    let mut labels = cluster_labels(cluster_id);
    labels.insert(BROKER_ID_LABEL.to_string(), broker_id.to_string());
    labels
}

/// Selects the cluster's broker pods (Services, spread constraints).
pub fn broker_pod_selector(cluster_id: Uuid) -> BTreeMap<String, String> {
    BTreeMap::from([
        (COMPONENT_LABEL.to_string(), "broker".to_string()),
        (MANAGED_BY_LABEL.to_string(), MANAGER.to_string()),
        (CLUSTER_ID_LABEL.to_string(), cluster_id.to_string()),
    ])
}

/// The broker's stable DNS name: `<pod>.<headless service>.<namespace>.svc`. It needs the pod's
/// `hostname` and `subdomain`, and the headless Service publishing not-ready addresses (the
/// quorum's voters must find each other before any of them is ready).
pub fn broker_host(namespace: &str, cluster_id: Uuid, broker_id: i32) -> String {
    format!(
        "{}.{}.{namespace}.svc",
        pod_name(cluster_id, broker_id),
        headless_service_name(cluster_id)
    )
}

/// The Service clients bootstrap from, `host:port`.
pub fn bootstrap_address(namespace: &str, cluster_id: Uuid) -> String {
    format!(
        "{}.{namespace}.svc:{KAFKA_PORT}",
        bootstrap_service_name(cluster_id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns_1035_label(name: &str) -> bool {
        name.len() <= 63
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && !name.ends_with('-')
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }

    #[test]
    fn names_are_dns_labels_within_63_characters_even_for_the_largest_broker_id() {
        let cluster = Uuid::new_v4();
        for broker_id in [0, 1, i32::MAX] {
            for name in [
                anchor_name(cluster),
                headless_service_name(cluster),
                bootstrap_service_name(cluster),
                pod_name(cluster, broker_id),
                claim_name(cluster, broker_id),
                secret_name(cluster, broker_id),
                NamespaceMode::PerCluster.namespace(cluster),
            ] {
                assert!(is_dns_1035_label(&name), "{name} ({} chars)", name.len());
            }
        }
    }

    #[test]
    fn addresses_are_stable_per_cluster_and_broker() {
        let cluster = Uuid::parse_str("6f1c2b9e-0d7a-4f39-9a53-2f1e8d0c4b11").unwrap();
        assert_eq!(
            broker_host("kafka", cluster, 2),
            "kafka-6f1c2b9e-0d7a-4f39-9a53-2f1e8d0c4b11-2.\
             kafka-6f1c2b9e-0d7a-4f39-9a53-2f1e8d0c4b11-brokers.kafka.svc"
        );
        assert_eq!(
            bootstrap_address("kafka", cluster),
            "kafka-6f1c2b9e-0d7a-4f39-9a53-2f1e8d0c4b11-bootstrap.kafka.svc:9092"
        );
        assert_eq!(
            NamespaceMode::Shared("team-a".into()).namespace(cluster),
            "team-a"
        );
    }
}
