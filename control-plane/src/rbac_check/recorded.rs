//! The RBAC rules against the calls the control plane really makes: every request the kubernetes
//! platform's and the KafkaCluster controller's mock API servers answered in their scenarios
//! must be granted by `deploy/`, and every grant must be used by one of them (least privilege).

use std::collections::BTreeSet;

use super::*;

type Grant = (String, String, String);

/// (method, path, query) of every request both mock API servers answered.
async fn recorded_requests() -> Vec<(String, String, String)> {
    let platform = crate::platform::kubernetes::testing::run_all_scenarios().await;
    let controller = crate::operator::testing::run_all_scenarios().await;
    platform
        .into_iter()
        .map(|r| (r.method, r.path, r.query))
        .chain(controller.into_iter().map(|r| (r.method, r.path, r.query)))
        .collect()
}

/// What the requests need granted: their verb, plus `create` for a server-side apply of a
/// whole object (a PATCH with a field manager may create it, and is authorized as create then).
fn needed(requests: &[(String, String, String)]) -> BTreeSet<Grant> {
    let mut needed = BTreeSet::new();
    for (method, path, query) in requests {
        let request = verb_of(method, path, query).expect("a Kubernetes API request");
        let resource = request.rbac_resource();
        needed.insert((
            request.verb.to_owned(),
            request.api_group.clone(),
            resource.clone(),
        ));
        let applies = request.verb == "patch" && query.contains("fieldManager=");
        if applies && request.subresource.is_none() {
            needed.insert(("create".into(), request.api_group.clone(), resource));
        }
    }
    needed
}

fn granted(rules: &[Rule]) -> BTreeSet<Grant> {
    let mut granted = BTreeSet::new();
    for rule in rules {
        for verb in &rule.verbs {
            for group in &rule.api_groups {
                for resource in &rule.resources {
                    granted.insert((verb.clone(), group.clone(), resource.clone()));
                }
            }
        }
    }
    granted
}

fn as_refs<'a>(list: &[&'a (String, String, String)]) -> Vec<(&'a str, &'a str, &'a str)> {
    list.iter()
        .map(|(m, p, q)| (m.as_str(), p.as_str(), q.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_grants_exactly_the_calls_the_control_plane_makes() {
    let requests = recorded_requests().await;
    assert!(requests.len() > 20, "the scenarios recorded {requests:?}");
    // One namespace per cluster (namespaces, objects in `millrace-<id>` namespaces, the pod
    // watch across namespaces) needs the component's ClusterRole; everything else must pass
    // with the base install.
    const BROKER_OBJECTS: [&str; 5] = [
        "pods",
        "persistentvolumeclaims",
        "configmaps",
        "secrets",
        "services",
    ];
    let per_cluster = |(method, path, query): &(String, String, String)| {
        verb_of(method, path, query).is_ok_and(|r| match r.namespace.as_deref() {
            Some(namespace) => namespace.starts_with("millrace-"),
            None => r.resource == "namespaces" || BROKER_OBJECTS.contains(&r.resource.as_str()),
        })
    };
    let (component, base): (Vec<_>, Vec<_>) = requests.iter().partition(|r| per_cluster(r));
    let denied = denied_requests(&deployed_rules(), as_refs(&base));
    assert!(denied.is_empty(), "deploy/base refuses: {denied:#?}");
    let denied = denied_requests(&deployed_rules_namespace_per_cluster(), as_refs(&component));
    assert!(
        denied.is_empty(),
        "deploy/ with namespace-per-cluster refuses: {denied:#?}"
    );

    let mut needed = needed(&requests);
    // kube's event Recorder patches an Event series when the same Event repeats; no scenario
    // repeats one.
    needed.insert(("patch".into(), "events.k8s.io".into(), "events".into()));
    let granted = granted(&deployed_rules_namespace_per_cluster());
    let unused: Vec<_> = granted.difference(&needed).collect();
    assert!(
        unused.is_empty(),
        "granted but never used by the recorded calls: {unused:#?}"
    );
}
