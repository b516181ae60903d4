//! The committed `deploy/base/rbac.yaml` and the namespace-per-cluster component's binding:
//! no wildcards, each role bound once to the control plane's service account, and exactly the
//! grants the platform and the controller use, in both namespace modes.

use std::collections::BTreeSet;

use super::*;

#[test]
fn deployed_rbac_has_no_wildcards() {
    let rules = rules_from_manifest(&read_deploy_file(RBAC_MANIFEST));
    assert!(!rules.is_empty());
    for rule in &rules {
        for list in [&rule.api_groups, &rule.resources, &rule.verbs] {
            assert!(!list.is_empty(), "{rule:?} has an empty list");
            assert!(
                list.iter().all(|item| !item.contains('*')),
                "{rule:?} has a wildcard"
            );
        }
    }
}

/// Every (scope, verb, group, resource) the rules grant; finite, as there are no wildcards.
fn grants(rules: &[Rule]) -> BTreeSet<(RuleScope, String, String, String)> {
    let mut grants = BTreeSet::new();
    for rule in rules {
        for verb in &rule.verbs {
            for group in &rule.api_groups {
                for resource in &rule.resources {
                    grants.insert((rule.scope, verb.clone(), group.clone(), resource.clone()));
                }
            }
        }
    }
    grants
}

fn expected(
    scope: RuleScope,
    entries: &[(&str, &str, &[&str])],
) -> BTreeSet<(RuleScope, String, String, String)> {
    let mut set = BTreeSet::new();
    for (group, resource, verbs) in entries {
        for verb in *verbs {
            set.insert((
                scope,
                (*verb).to_owned(),
                (*group).to_owned(),
                (*resource).to_owned(),
            ));
        }
    }
    set
}

/// The calls the kubernetes platform's and the KafkaCluster controller's mock API servers
/// record (their tests `all_scenarios_use_a_known_set_of_verbs_and_resources` and
/// `recorded_requests_name_the_controllers_api_calls`), plus `create` wherever an object is
/// made with server-side apply: the API server authorizes a PATCH that creates as create.
const BROKER_OBJECTS: [(&str, &str, &[&str]); 5] = [
    (
        "",
        "pods",
        &["get", "list", "watch", "create", "patch", "delete"],
    ),
    (
        "",
        "persistentvolumeclaims",
        &["get", "create", "patch", "delete"],
    ),
    ("", "configmaps", &["get", "create", "patch", "delete"]),
    ("", "secrets", &["create", "patch", "delete"]),
    ("", "services", &["create", "patch"]),
];

const CLUSTER_WIDE: [(&str, &str, &[&str]); 4] = [
    ("storage.k8s.io", "storageclasses", &["get"]),
    ("millrace.dev", "kafkaclusters", &["list", "watch", "patch"]),
    ("millrace.dev", "kafkaclusters/status", &["patch"]),
    // Event series are patched when an Event repeats.
    ("events.k8s.io", "events", &["create", "patch"]),
];

#[test]
fn deployed_rbac_grants_exactly_what_the_control_plane_uses() {
    let mut wanted = expected(RuleScope::Namespace, &BROKER_OBJECTS);
    wanted.extend(expected(RuleScope::Cluster, &CLUSTER_WIDE));
    let granted = grants(&deployed_rules());
    let missing: Vec<_> = wanted.difference(&granted).collect();
    let extra: Vec<_> = granted.difference(&wanted).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing: {missing:#?}\nnot used: {extra:#?}"
    );
}

#[test]
fn namespace_per_cluster_grants_exactly_the_broker_objects_everywhere_and_namespaces() {
    let mut wanted = expected(RuleScope::Namespace, &BROKER_OBJECTS);
    wanted.extend(expected(RuleScope::Cluster, &CLUSTER_WIDE));
    wanted.extend(expected(RuleScope::Cluster, &BROKER_OBJECTS));
    // Applied with the cluster's first object, deleted with the cluster.
    wanted.extend(expected(
        RuleScope::Cluster,
        &[("", "namespaces", &["create", "patch", "delete"])],
    ));
    let granted = grants(&deployed_rules_namespace_per_cluster());
    let missing: Vec<_> = wanted.difference(&granted).collect();
    let extra: Vec<_> = granted.difference(&wanted).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing: {missing:#?}\nnot used: {extra:#?}"
    );
}

#[test]
fn deployed_rbac_refuses_what_a_broken_control_plane_could_misuse() {
    let rules = deployed_rules();
    let refused = [
        ("update", "", "pods"),
        ("deletecollection", "", "pods"),
        ("create", "", "pods/exec"),
        ("get", "", "secrets"),
        ("list", "", "secrets"),
        ("get", "", "nodes"),
        ("create", "", "namespaces"),
        ("create", "", "events"),
        ("create", "millrace.dev", "kafkaclusters"),
        ("delete", "millrace.dev", "kafkaclusters"),
        ("update", "millrace.dev", "kafkaclusters"),
        ("list", "storage.k8s.io", "storageclasses"),
        ("create", "apps", "statefulsets"),
        ("get", "coordination.k8s.io", "leases"),
        ("escalate", "rbac.authorization.k8s.io", "roles"),
    ];
    for (verb, group, resource) in refused {
        assert!(
            !allowed(&rules, verb, group, resource),
            "{verb} {group}/{resource} should not be granted"
        );
    }
    // Broker objects are reachable in the platform's namespace only.
    for resource in [
        "pods",
        "persistentvolumeclaims",
        "services",
        "configmaps",
        "secrets",
    ] {
        assert!(
            !allowed_cluster_wide(&rules, "patch", "", resource),
            "{resource} granted cluster-wide"
        );
    }
}

#[test]
fn deployed_bindings_give_each_role_once_to_the_control_planes_service_account() {
    let account: serde_yaml::Value =
        serde_yaml::from_str(&read_deploy_file("base/serviceaccount.yaml")).unwrap();
    let account_name = account["metadata"]["name"].as_str().unwrap().to_owned();
    let mut defined: Vec<(RuleScope, String)> =
        rules_from_manifest(&read_deploy_file(RBAC_MANIFEST))
            .into_iter()
            .map(|r| (r.scope, r.role))
            .collect();
    defined.sort();
    defined.dedup();
    let mut bound = Vec::new();
    for file in [RBAC_MANIFEST, NAMESPACE_PER_CLUSTER_BINDING] {
        for binding in parse_bindings(&read_deploy_file(file)).unwrap() {
            assert!(
                defined.contains(&binding.role),
                "{file}: {} binds {:?}, which {RBAC_MANIFEST} does not define",
                binding.kind,
                binding.role
            );
            assert_eq!(
                binding.subjects,
                [("ServiceAccount".to_owned(), account_name.clone())],
                "{file}"
            );
            bound.push(binding.role);
        }
    }
    bound.sort();
    assert_eq!(bound, defined, "every role is bound exactly once");
}

#[test]
fn namespace_per_cluster_adds_namespaces_and_every_namespace_only() {
    let shared = deployed_rules();
    let per_cluster = deployed_rules_namespace_per_cluster();
    assert!(per_cluster.len() > shared.len());
    for verb in ["create", "patch", "delete"] {
        assert!(!allowed_cluster_wide(&shared, verb, "", "namespaces"));
        assert!(
            allowed_cluster_wide(&per_cluster, verb, "", "namespaces"),
            "{verb} namespaces"
        );
    }
    // The pod watch spans all namespaces: GET /api/v1/pods?watch=true.
    let watch = verb_of("GET", "/api/v1/pods", "watch=true&labelSelector=x").unwrap();
    assert!(!watch.allowed_by(&shared));
    assert!(watch.allowed_by(&per_cluster));
    for resource in [
        "pods",
        "persistentvolumeclaims",
        "services",
        "configmaps",
        "secrets",
    ] {
        for verb in ["create", "patch"] {
            assert!(
                allowed_cluster_wide(&per_cluster, verb, "", resource),
                "{verb} {resource} in every namespace"
            );
        }
    }
    for (verb, group, resource) in [
        ("update", "", "namespaces"),
        ("get", "", "namespaces"),
        ("update", "", "pods"),
        ("watch", "", "secrets"),
        ("get", "", "nodes"),
    ] {
        assert!(
            !allowed(&per_cluster, verb, group, resource),
            "{verb} {group}/{resource} should not be granted"
        );
    }
}
