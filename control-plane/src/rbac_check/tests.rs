//! The request mapping and the rule matching, on sample manifests.

use super::*;

fn request(method: &str, path: &str, query: &str) -> ApiRequest {
    verb_of(method, path, query).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn summary(r: &ApiRequest) -> (String, String, Option<String>, Option<String>) {
    (
        r.verb.to_owned(),
        format!("{}:{}", r.api_group, r.rbac_resource()),
        r.namespace.clone(),
        r.name.clone(),
    )
}

#[test]
fn core_pod_requests_map_to_their_verbs() {
    let cases = [
        ("GET", "/api/v1/namespaces/m/pods", "", "list", None),
        (
            "GET",
            "/api/v1/namespaces/m/pods",
            "watch=true&resourceVersion=7",
            "watch",
            None,
        ),
        (
            "GET",
            "/api/v1/namespaces/m/pods",
            "&watch=1",
            "watch",
            None,
        ),
        (
            "GET",
            "/api/v1/namespaces/m/pods/b-0",
            "",
            "get",
            Some("b-0"),
        ),
        ("POST", "/api/v1/namespaces/m/pods", "", "create", None),
        (
            "PATCH",
            "/api/v1/namespaces/m/pods/b-0",
            "fieldManager=millrace",
            "patch",
            Some("b-0"),
        ),
        (
            "PUT",
            "/api/v1/namespaces/m/pods/b-0",
            "",
            "update",
            Some("b-0"),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/m/pods/b-0",
            "",
            "delete",
            Some("b-0"),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/m/pods",
            "labelSelector=a%3Db",
            "deletecollection",
            None,
        ),
    ];
    for (method, path, query, verb, name) in cases {
        let r = request(method, path, query);
        assert_eq!(r.verb, verb, "{method} {path}?{query}");
        assert_eq!(r.api_group, "");
        assert_eq!(r.version, "v1");
        assert_eq!(r.namespace.as_deref(), Some("m"));
        assert_eq!(r.rbac_resource(), "pods");
        assert_eq!(r.name.as_deref(), name);
    }
}

#[test]
fn group_resources_subresources_and_cluster_scope() {
    assert_eq!(
        summary(&request(
            "PATCH",
            "/apis/millrace.dev/v1alpha1/namespaces/default/kafkaclusters/orders/status",
            "fieldManager=millrace&force=true",
        )),
        (
            "patch".into(),
            "millrace.dev:kafkaclusters/status".into(),
            Some("default".into()),
            Some("orders".into())
        )
    );
    assert_eq!(
        summary(&request(
            "GET",
            "/apis/storage.k8s.io/v1/storageclasses/standard",
            ""
        )),
        (
            "get".into(),
            "storage.k8s.io:storageclasses".into(),
            None,
            Some("standard".into())
        )
    );
    // Watching KafkaClusters in every namespace is a cluster-wide request.
    assert_eq!(
        summary(&request(
            "GET",
            "/apis/millrace.dev/v1alpha1/kafkaclusters?watch=true&timeoutSeconds=290",
            ""
        )),
        (
            "watch".into(),
            "millrace.dev:kafkaclusters".into(),
            None,
            None
        )
    );
    assert_eq!(
        summary(&request(
            "POST",
            "/apis/events.k8s.io/v1/namespaces/default/events",
            ""
        )),
        (
            "create".into(),
            "events.k8s.io:events".into(),
            Some("default".into()),
            None
        )
    );
    assert_eq!(
        summary(&request(
            "POST",
            "/api/v1/namespaces/m/pods/b-0/eviction",
            ""
        )),
        (
            "create".into(),
            ":pods/eviction".into(),
            Some("m".into()),
            Some("b-0".into())
        )
    );
}

#[test]
fn namespaces_are_cluster_scoped_objects() {
    assert_eq!(
        summary(&request("POST", "/api/v1/namespaces", "")),
        ("create".into(), ":namespaces".into(), None, None)
    );
    assert_eq!(
        summary(&request("DELETE", "/api/v1/namespaces/millrace-c1", "")),
        (
            "delete".into(),
            ":namespaces".into(),
            None,
            Some("millrace-c1".into())
        )
    );
    assert_eq!(
        summary(&request(
            "PUT",
            "/api/v1/namespaces/millrace-c1/finalize",
            ""
        )),
        (
            "update".into(),
            ":namespaces/finalize".into(),
            None,
            Some("millrace-c1".into())
        )
    );
    assert_eq!(
        summary(&request("GET", "/api/v1/watch/namespaces/m/pods", "")),
        ("watch".into(), ":pods".into(), Some("m".into()), None)
    );
}

#[test]
fn requests_that_are_not_resource_requests_are_errors() {
    for (method, path, query) in [
        ("GET", "/healthz", ""),
        ("GET", "/api", ""),
        ("GET", "/apis/apps", ""),
        ("GET", "/api/v1/namespaces/m/pods/b-0/log/extra", ""),
        ("TRACE", "/api/v1/namespaces/m/pods", ""),
    ] {
        assert!(
            verb_of(method, path, query).is_err(),
            "{method} {path}?{query} was accepted"
        );
    }
}

fn rules(yaml: &str) -> Vec<Rule> {
    rules_from_manifest(yaml)
}

const SAMPLE: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: sa}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: r}
rules:
  - apiGroups: [""]
    resources: ["pods", "pods/*"]
    verbs: ["get", "watch"]
  - apiGroups: [""]
    resources: ["configmaps"]
    resourceNames: ["one"]
    verbs: ["delete"]
---
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: c}
rules:
  - apiGroups: ["apps"]
    resources: ["*/scale"]
    verbs: ["patch"]
"#;

#[test]
fn rules_are_read_from_roles_and_cluster_roles_only() {
    let rules = rules(SAMPLE);
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0].role, "r");
    assert_eq!(rules[0].scope, RuleScope::Namespace);
    assert_eq!(rules[2].scope, RuleScope::Cluster);
    assert_eq!(rules[1].resource_names, ["one"]);
}

#[test]
fn allowed_matches_verbs_groups_resources_and_subresources() {
    let rules = rules(SAMPLE);
    assert!(allowed(&rules, "get", "", "pods"));
    assert!(allowed(&rules, "watch", "", "pods/log"));
    assert!(!allowed(&rules, "list", "", "pods"));
    assert!(!allowed(&rules, "get", "apps", "pods"));
    assert!(!allowed(&rules, "get", "", "services"));
    // Limited to one named config map: not a grant for config maps in general.
    assert!(!allowed(&rules, "delete", "", "configmaps"));
    assert!(allowed(&rules, "patch", "apps", "deployments/scale"));
    assert!(!allowed(&rules, "patch", "apps", "deployments"));
    // Role rules do not reach cluster-wide requests.
    assert!(!allowed_cluster_wide(&rules, "get", "", "pods"));
    assert!(allowed_cluster_wide(
        &rules,
        "patch",
        "apps",
        "statefulsets/scale"
    ));
}

#[test]
fn namespaced_requests_use_any_rule_others_only_cluster_roles() {
    let rules = rules(SAMPLE);
    assert!(request("GET", "/api/v1/namespaces/m/pods/b-0", "").allowed_by(&rules));
    assert!(!request("GET", "/api/v1/pods", "watch=true").allowed_by(&rules));
    let denied = denied_requests(
        &rules,
        [
            ("GET", "/api/v1/namespaces/m/pods/b-0", ""),
            ("GET", "/api/v1/namespaces/m/pods", ""),
            ("GET", "/api/v1/namespaces/m/pods", "limit=500"),
            ("POST", "/nonsense", ""),
        ],
    );
    assert_eq!(denied.len(), 2, "{denied:#?}");
    assert!(denied[0].starts_with("\"/nonsense\""), "{denied:#?}");
    assert!(
        denied[1].starts_with("list core/pods in namespace m"),
        "{denied:#?}"
    );
}

#[test]
fn malformed_manifests_are_errors_not_panics() {
    assert!(parse_rules("kind: Role\nmetadata: {name: r}\nrules: 7\n").is_err());
    assert!(parse_rules("kind: Role\nrules: []\n").is_err());
    assert!(parse_rules("kind: [unclosed\n").is_err());
    assert!(parse_bindings("kind: RoleBinding\nroleRef: {kind: User, name: x}\n").is_err());
    assert!(parse_bindings("kind: ClusterRoleBinding\nsubjects: []\n").is_err());
    assert!(parse_rules(
        "kind: ClusterRole\nmetadata: {name: c}\nrules:\n  - nonResourceURLs: [\"/metrics\"]\n    verbs: [get]\n"
    )
    .is_err());
}
