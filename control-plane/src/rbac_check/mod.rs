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

/// (verb, API group, resource with its subresource) of a request a mock API server recorded;
/// panics on a path that is not a Kubernetes resource (a test's mistake).
pub(crate) fn rbac_of(method: &str, path: &str, query: &str) -> (String, String, String) {
    let request = verb_of(method, path, query).unwrap_or_else(|e| panic!("{e}"));
    let resource = request.rbac_resource();
    (request.verb.to_owned(), request.api_group, resource)
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

mod deployed;
mod recorded;
mod tests;
