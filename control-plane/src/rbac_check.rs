//! Test support: the RBAC rules of `deploy/base/rbac.yaml` and the Kubernetes API requests they
//! must allow. `rules_from_manifest` reads the Roles and ClusterRoles of a (multi-document)
//! manifest, `verb_of` turns a recorded HTTP request (method, path, query) into the verb, API
//! group and resource the API server authorizes, and `allowed` answers whether a rule grants
//! it. The kubernetes platform's and the KafkaCluster controller's mock API servers record
//! their requests, so their tests can prove the deployed RBAC covers every call they make:
//!
//! ```ignore
//! let recorded = testing::run_all_scenarios().await;
//! let denied = rbac_check::denied_requests(
//!     &rbac_check::deployed_rules(),
//!     recorded.iter().map(|r| (r.method.as_str(), r.path.as_str(), r.query.as_str())),
//! );
//! assert!(denied.is_empty(), "deploy/base/rbac.yaml does not allow: {denied:#?}");
//! ```
//!
//! `deployed_rules()` are the rules of the default install (broker objects in the control
//! plane's namespace); scenarios of `--namespace-per-cluster` are checked against
//! `deployed_rules_namespace_per_cluster()`, which adds the component that mode needs.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where a rule applies: a Role's rules only in the namespace it is bound in (the platform's),
/// a ClusterRole's everywhere, including cluster-scoped resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum RuleScope {
    Namespace,
    Cluster,
}

/// One entry of a Role's or ClusterRole's `rules`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    /// The Role or ClusterRole it belongs to.
    pub role: String,
    pub scope: RuleScope,
    pub api_groups: Vec<String>,
    /// `pods`, or `pods/status` for a subresource.
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
    pub resource_names: Vec<String>,
}

impl Rule {
    fn grants(&self, verb: &str, api_group: &str, resource: &str) -> bool {
        // A rule limited to named objects cannot be checked without the name; treat it as not
        // granting, which can only make the comparison stricter.
        self.resource_names.is_empty()
            && matches_any(&self.verbs, verb)
            && matches_any(&self.api_groups, api_group)
            && self.resources.iter().any(|r| resource_matches(r, resource))
    }
}

fn matches_any(granted: &[String], wanted: &str) -> bool {
    granted.iter().any(|g| g == "*" || g == wanted)
}

/// RBAC's resource matching: `*` is everything, `pods/*` is every subresource of pods, and
/// `*/scale` is the scale subresource of everything.
fn resource_matches(granted: &str, wanted: &str) -> bool {
    if granted == "*" || granted == wanted {
        return true;
    }
    match (granted.split_once('/'), wanted.split_once('/')) {
        (Some((resource, "*")), Some((wanted_resource, _))) => resource == wanted_resource,
        (Some(("*", sub)), Some((_, wanted_sub))) => sub == wanted_sub,
        _ => false,
    }
}

/// A manifest that is not the YAML Kubernetes would accept.
#[derive(Debug)]
pub(crate) struct ManifestError(String);

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Deserialize)]
struct Header {
    kind: Option<String>,
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Metadata {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRule {
    #[serde(default)]
    api_groups: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    resource_names: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    non_resource_urls: Vec<String>,
}

#[derive(Deserialize)]
struct RawRole {
    #[serde(default)]
    rules: Vec<RawRule>,
}

/// Every document of a multi-document YAML file, as generic values (empty documents skipped).
pub(crate) fn documents(yaml: &str) -> Result<Vec<serde_yaml::Value>, ManifestError> {
    let mut documents = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let value = serde_yaml::Value::deserialize(document)
            .map_err(|e| ManifestError(format!("document {}: {e}", index + 1)))?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// The rules of every Role and ClusterRole in `yaml`; other kinds are skipped.
pub(crate) fn parse_rules(yaml: &str) -> Result<Vec<Rule>, ManifestError> {
    let mut rules = Vec::new();
    for (index, document) in documents(yaml)?.into_iter().enumerate() {
        let header: Header = serde_yaml::from_value(document.clone())
            .map_err(|e| ManifestError(format!("document {}: {e}", index + 1)))?;
        let scope = match header.kind.as_deref() {
            Some("Role") => RuleScope::Namespace,
            Some("ClusterRole") => RuleScope::Cluster,
            _ => continue,
        };
        let role = header.metadata.and_then(|m| m.name).ok_or_else(|| {
            ManifestError(format!("document {}: a role without a name", index + 1))
        })?;
        let raw: RawRole =
            serde_yaml::from_value(document).map_err(|e| ManifestError(format!("{role}: {e}")))?;
        for rule in raw.rules {
            if !rule.non_resource_urls.is_empty() {
                return Err(ManifestError(format!(
                    "{role}: nonResourceURLs are not used by Millrace"
                )));
            }
            rules.push(Rule {
                role: role.clone(),
                scope,
                api_groups: rule.api_groups,
                resources: rule.resources,
                verbs: rule.verbs,
                resource_names: rule.resource_names,
            });
        }
    }
    Ok(rules)
}

/// The rules of every Role and ClusterRole in `yaml`. Test support: a manifest that does not
/// parse fails the test with the parser's message.
pub(crate) fn rules_from_manifest(yaml: &str) -> Vec<Rule> {
    parse_rules(yaml).unwrap_or_else(|e| panic!("the RBAC manifest does not parse: {e}"))
}

/// Whether any rule grants `verb` on `resource` (`pods`, or `pods/status`) of `api_group`
/// (`""` for the core group), in the namespace a Role is bound in.
pub(crate) fn allowed(rules: &[Rule], verb: &str, api_group: &str, resource: &str) -> bool {
    rules.iter().any(|r| r.grants(verb, api_group, resource))
}

/// Whether a ClusterRole grants it: what a request on a cluster-scoped resource, or across all
/// namespaces, needs.
pub(crate) fn allowed_cluster_wide(
    rules: &[Rule],
    verb: &str,
    api_group: &str,
    resource: &str,
) -> bool {
    rules
        .iter()
        .any(|r| r.scope == RuleScope::Cluster && r.grants(verb, api_group, resource))
}

/// What the API server authorizes for one HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiRequest {
    pub verb: &'static str,
    /// `""` for the core group (`/api/v1`).
    pub api_group: String,
    pub version: String,
    /// None for cluster-scoped resources and for requests across all namespaces.
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl ApiRequest {
    /// The resource as RBAC names it: `pods` or `pods/status`.
    pub(crate) fn rbac_resource(&self) -> String {
        match &self.subresource {
            Some(sub) => format!("{}/{sub}", self.resource),
            None => self.resource.clone(),
        }
    }

    /// Whether `rules` allow this request: a namespaced request by any rule (a Role is bound in
    /// the namespace the platform works in), anything else only by a ClusterRole.
    pub(crate) fn allowed_by(&self, rules: &[Rule]) -> bool {
        let resource = self.rbac_resource();
        if self.namespace.is_some() {
            allowed(rules, self.verb, &self.api_group, &resource)
        } else {
            allowed_cluster_wide(rules, self.verb, &self.api_group, &resource)
        }
    }
}

impl fmt::Display for ApiRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.api_group.is_empty() {
            "core"
        } else {
            &self.api_group
        };
        write!(f, "{} {group}/{}", self.verb, self.rbac_resource())?;
        match &self.namespace {
            Some(ns) => write!(f, " in namespace {ns}"),
            None => write!(f, " cluster-wide"),
        }
    }
}

/// Maps an HTTP request to the Kubernetes verb, group and resource it is authorized as (the
/// API server's request-info rules): GET of a collection is `list` (or `watch` with
/// `watch=true`), GET of an object `get`, POST `create`, PUT `update`, PATCH `patch`, DELETE of
/// an object `delete` and of a collection `deletecollection`. `path` may carry the query too.
pub(crate) fn verb_of(method: &str, path: &str, query: &str) -> Result<ApiRequest, String> {
    let (path, inline_query) = path.split_once('?').unwrap_or((path, ""));
    let query = [inline_query, query]
        .iter()
        .filter(|q| !q.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("&");
    let parameters: Vec<(String, String)> = serde_urlencoded::from_str(&query)
        .map_err(|e| format!("query {query:?} does not parse: {e}"))?;
    let watch_parameter = parameters
        .iter()
        .any(|(k, v)| k == "watch" && (v == "true" || v == "1"));

    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (api_group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => (String::new(), (*version).to_owned(), rest),
        ["apis", group, version, rest @ ..] => ((*group).to_owned(), (*version).to_owned(), rest),
        _ => return Err(format!("{path:?} is not a Kubernetes API resource path")),
    };
    // The deprecated /watch/ prefix: GET /api/v1/watch/namespaces/ns/pods.
    let (watch_prefix, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    let (namespace, resource, name, subresource) = match rest {
        [] => return Err(format!("{path:?} names no resource")),
        // Namespaces themselves are cluster-scoped, with status and finalize subresources.
        ["namespaces"] => (None, "namespaces", None, None),
        ["namespaces", name] => (None, "namespaces", Some(*name), None),
        ["namespaces", name, sub @ ("status" | "finalize")] => {
            (None, "namespaces", Some(*name), Some(*sub))
        }
        ["namespaces", ns, resource] => (Some(*ns), *resource, None, None),
        ["namespaces", ns, resource, name] => (Some(*ns), *resource, Some(*name), None),
        ["namespaces", ns, resource, name, sub] => (Some(*ns), *resource, Some(*name), Some(*sub)),
        [resource] => (None, *resource, None, None),
        [resource, name] => (None, *resource, Some(*name), None),
        [resource, name, sub] => (None, *resource, Some(*name), Some(*sub)),
        _ => {
            return Err(format!(
                "{path:?} has too many segments for a resource path"
            ))
        }
    };
    let verb = match (method.to_ascii_uppercase().as_str(), name.is_some()) {
        ("GET" | "HEAD", _) if watch_prefix || watch_parameter => "watch",
        ("GET" | "HEAD", true) => "get",
        ("GET" | "HEAD", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        (other, _) => return Err(format!("{other} is not a Kubernetes API method")),
    };
    Ok(ApiRequest {
        verb,
        api_group,
        version,
        namespace: namespace.map(str::to_owned),
        resource: resource.to_owned(),
        name: name.map(str::to_owned),
        subresource: subresource.map(str::to_owned),
    })
}

/// The requests (method, path, query) that `rules` do not allow, each with the reason, for a
/// test to print. A request that does not parse counts as not allowed.
pub(crate) fn denied_requests<'a>(
    rules: &[Rule],
    requests: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
) -> Vec<String> {
    let mut denied = BTreeMap::new();
    for (method, path, query) in requests {
        match verb_of(method, path, query) {
            Ok(request) if request.allowed_by(rules) => {}
            Ok(request) => {
                denied.insert(request.to_string(), format!("{method} {path}?{query}"));
            }
            Err(e) => {
                denied.insert(e, format!("{method} {path}?{query}"));
            }
        }
    }
    denied
        .into_iter()
        .map(|(why, example)| format!("{why} (e.g. {example})"))
        .collect()
}

/// The repository's `deploy/` directory.
pub(crate) fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("control-plane/ has a parent")
        .join("deploy")
}

/// A RoleBinding or ClusterRoleBinding: which role it gives to whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Binding {
    pub kind: String,
    pub role: (RuleScope, String),
    /// (kind, name) of each subject.
    pub subjects: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBinding {
    role_ref: RawRoleRef,
    #[serde(default)]
    subjects: Vec<RawSubject>,
}

#[derive(Deserialize)]
struct RawRoleRef {
    kind: String,
    name: String,
}

#[derive(Deserialize)]
struct RawSubject {
    kind: String,
    name: String,
}

/// The RoleBindings and ClusterRoleBindings in `yaml`.
pub(crate) fn parse_bindings(yaml: &str) -> Result<Vec<Binding>, ManifestError> {
    let mut bindings = Vec::new();
    for (index, document) in documents(yaml)?.into_iter().enumerate() {
        let kind = document["kind"].as_str().unwrap_or_default().to_owned();
        if kind != "RoleBinding" && kind != "ClusterRoleBinding" {
            continue;
        }
        let raw: RawBinding = serde_yaml::from_value(document)
            .map_err(|e| ManifestError(format!("document {}: {e}", index + 1)))?;
        let scope = match raw.role_ref.kind.as_str() {
            "Role" => RuleScope::Namespace,
            "ClusterRole" => RuleScope::Cluster,
            other => {
                return Err(ManifestError(format!(
                    "document {}: roleRef kind {other}",
                    index + 1
                )))
            }
        };
        bindings.push(Binding {
            kind,
            role: (scope, raw.role_ref.name),
            subjects: raw.subjects.into_iter().map(|s| (s.kind, s.name)).collect(),
        });
    }
    Ok(bindings)
}

fn read_deploy_file(relative: &str) -> String {
    let path = deploy_dir().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The base RBAC manifest and the extra binding of the namespace-per-cluster component.
pub(crate) const RBAC_MANIFEST: &str = "base/rbac.yaml";
pub(crate) const NAMESPACE_PER_CLUSTER_BINDING: &str =
    "components/namespace-per-cluster/clusterrolebinding.yaml";

/// The rules `rbac.yaml` defines for roles that `binding_files` bind.
fn rules_bound_by(binding_files: &[&str]) -> Vec<Rule> {
    let mut bound = Vec::new();
    for file in binding_files {
        let bindings = parse_bindings(&read_deploy_file(file))
            .unwrap_or_else(|e| panic!("{file} does not parse: {e}"));
        bound.extend(bindings.into_iter().map(|b| b.role));
    }
    rules_from_manifest(&read_deploy_file(RBAC_MANIFEST))
        .into_iter()
        .filter(|rule| bound.contains(&(rule.scope, rule.role.clone())))
        .collect()
}

/// What the control plane may do as `deploy/base` installs it: broker objects in its own
/// namespace.
pub(crate) fn deployed_rules() -> Vec<Rule> {
    rules_bound_by(&[RBAC_MANIFEST])
}

/// What it may do with `deploy/components/namespace-per-cluster` added.
pub(crate) fn deployed_rules_namespace_per_cluster() -> Vec<Rule> {
    rules_bound_by(&[RBAC_MANIFEST, NAMESPACE_PER_CLUSTER_BINDING])
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

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

    // The committed deploy/base/rbac.yaml.

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
}
