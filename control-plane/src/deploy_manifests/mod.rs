//! Tests of what `deploy/` ships, read from the committed files: the kustomizations name files
//! that exist, the control-plane Deployment has probes on a real route, resource limits, a
//! non-root read-only container and only environment variables `millrace serve` reads, the
//! example KafkaClusters mirror the REST create request, and the Dockerfiles build and copy
//! binaries the workspace really has. The RBAC rules are checked in `rbac_check`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::config::Cli;
use crate::domain::{InstanceType, VersionCatalog};
use crate::http::CreateClusterRequest;
use crate::rbac_check::{deploy_dir, documents};

fn repository_root() -> PathBuf {
    deploy_dir()
        .parent()
        .expect("deploy/ has a parent")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn yaml_file(path: &Path) -> serde_yaml::Value {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The kustomizations of `deploy/`, relative to it.
const KUSTOMIZATIONS: [&str; 5] = [
    "kustomization.yaml",
    "base/kustomization.yaml",
    "overlays/dev/kustomization.yaml",
    "overlays/namespace-per-cluster/kustomization.yaml",
    "components/namespace-per-cluster/kustomization.yaml",
];

/// Written by `millrace crd` (the KafkaCluster CRD work), with its own freshness test.
const GENERATED: [&str; 1] = ["crd.yaml"];

/// Every file or directory a kustomization refers to: resources, patches and components.
fn kustomization_references(kustomization: &serde_yaml::Value) -> Vec<String> {
    let mut references = Vec::new();
    for key in ["resources", "components", "patchesStrategicMerge"] {
        if let Some(items) = kustomization[key].as_sequence() {
            references.extend(items.iter().filter_map(|i| i.as_str().map(str::to_owned)));
        }
    }
    if let Some(patches) = kustomization["patches"].as_sequence() {
        references.extend(
            patches
                .iter()
                .filter_map(|p| p["path"].as_str().map(str::to_owned)),
        );
    }
    references
}

#[test]
fn kustomizations_refer_to_files_that_exist() {
    let deploy = deploy_dir();
    for kustomization_path in KUSTOMIZATIONS {
        let path = deploy.join(kustomization_path);
        let kustomization = yaml_file(&path);
        let expected_kind = if kustomization_path.starts_with("components/") {
            "Component"
        } else {
            "Kustomization"
        };
        assert_eq!(
            kustomization["kind"].as_str(),
            Some(expected_kind),
            "{kustomization_path}"
        );
        let dir = path.parent().unwrap();
        let references = kustomization_references(&kustomization);
        assert!(!references.is_empty(), "{kustomization_path} lists nothing");
        for reference in references {
            let target = dir.join(&reference);
            let generated = dir == deploy && GENERATED.contains(&reference.as_str());
            if target.is_dir() {
                assert!(
                    target.join("kustomization.yaml").is_file(),
                    "{kustomization_path}: {reference} is a directory without a kustomization"
                );
            } else if !generated {
                assert!(
                    target.is_file(),
                    "{kustomization_path}: {reference} does not exist"
                );
            }
            // kustomize loads files only from inside the kustomization's directory.
            if target.is_file() || generated {
                assert!(
                    !reference.starts_with("..") && !reference.starts_with('/'),
                    "{kustomization_path}: {reference} is outside its directory"
                );
            }
        }
    }
}

#[test]
fn every_base_manifest_is_listed_and_every_document_is_a_named_object() {
    let base = deploy_dir().join("base");
    let listed: BTreeSet<String> =
        kustomization_references(&yaml_file(&base.join("kustomization.yaml")))
            .into_iter()
            .collect();
    let mut manifests = vec![
        deploy_dir().join("overlays/dev/postgres.yaml"),
        deploy_dir().join("components/namespace-per-cluster/clusterrolebinding.yaml"),
    ];
    for entry in std::fs::read_dir(&base).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".yaml") && name != "kustomization.yaml" {
            assert!(
                listed.contains(&name),
                "base/{name} is not in the kustomization"
            );
            manifests.push(path);
        }
    }
    for path in manifests {
        let documents =
            documents(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!documents.is_empty(), "{} is empty", path.display());
        for document in documents {
            for field in ["apiVersion", "kind"] {
                assert!(
                    document[field].as_str().is_some_and(|v| !v.is_empty()),
                    "{}: a document without {field}",
                    path.display()
                );
            }
            assert!(
                document["metadata"]["name"].as_str().is_some(),
                "{}: a {:?} without a name",
                path.display(),
                document["kind"]
            );
        }
    }
}

fn deployment() -> Deployment {
    let path = deploy_dir().join("base/deployment.yaml");
    serde_yaml::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_deployment_runs_non_root_with_limits_and_probes_on_a_real_route() {
    let deployment = deployment();
    let spec = deployment.spec.expect("spec");
    let pod = spec.template.spec.expect("pod spec");
    let template_labels = spec.template.metadata.and_then(|m| m.labels).unwrap();
    for (key, value) in spec.selector.match_labels.unwrap() {
        assert_eq!(template_labels.get(&key), Some(&value), "selector {key}");
    }

    let account: ServiceAccount =
        serde_yaml::from_str(&read(&deploy_dir().join("base/serviceaccount.yaml"))).unwrap();
    assert_eq!(pod.service_account_name, account.metadata.name);

    let pod_security = pod.security_context.expect("pod securityContext");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert!(pod_security.run_as_user.is_some_and(|uid| uid != 0));
    assert_eq!(
        pod_security.seccomp_profile.map(|p| p.type_),
        Some("RuntimeDefault".to_owned())
    );

    assert_eq!(pod.containers.len(), 1);
    let container = &pod.containers[0];
    let security = container.security_context.clone().expect("securityContext");
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(
        security.capabilities.and_then(|c| c.drop),
        Some(vec!["ALL".to_owned()])
    );

    let resources = container.resources.clone().expect("resources");
    for (what, quantities) in [
        ("requests", resources.requests),
        ("limits", resources.limits),
    ] {
        let quantities = quantities.unwrap_or_else(|| panic!("no {what}"));
        for resource in ["cpu", "memory"] {
            assert!(quantities.contains_key(resource), "no {resource} {what}");
        }
    }

    let port_names: BTreeSet<String> = container
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.name.clone())
        .collect();
    let routes = crate::http::openapi().paths.paths;
    let probes = [
        ("startupProbe", container.startup_probe.clone()),
        ("livenessProbe", container.liveness_probe.clone()),
        ("readinessProbe", container.readiness_probe.clone()),
    ];
    for (name, probe) in probes {
        let get = probe
            .and_then(|p| p.http_get)
            .unwrap_or_else(|| panic!("no HTTP {name}"));
        let path = get.path.unwrap_or_default();
        assert!(
            routes.contains_key(&path),
            "{name} asks {path}, which the API does not serve"
        );
        match get.port {
            IntOrString::String(port) => assert!(port_names.contains(&port), "{name} port {port}"),
            IntOrString::Int(port) => panic!("{name} uses port number {port}, not the named port"),
        }
    }

    // Writable places are volumes: the root file system is read-only.
    let mounts: BTreeSet<String> = container
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.clone())
        .collect();
    let data_dir = env_value(container.env.as_deref().unwrap(), "MILLRACE_DATA_DIR");
    assert!(mounts.contains(&data_dir), "{data_dir} is not a volume");
}

fn env_value(env: &[k8s_openapi::api::core::v1::EnvVar], name: &str) -> String {
    env.iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
        .unwrap_or_else(|| panic!("{name} has no literal value"))
}

#[test]
fn the_database_url_comes_from_a_secret() {
    let pod = deployment().spec.unwrap().template.spec.unwrap();
    let env = pod.containers[0].env.clone().unwrap();
    let database = env
        .iter()
        .find(|e| e.name == "MILLRACE_DATABASE_URL")
        .expect("MILLRACE_DATABASE_URL is set");
    assert!(
        database.value.is_none(),
        "the database URL is written inline"
    );
    let secret = database
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("MILLRACE_DATABASE_URL from a secretKeyRef");
    assert_eq!(secret.name, "millrace-database");
    assert_eq!(secret.key, "url");
    assert_ne!(secret.optional, Some(true), "the database URL is required");
}

/// Read with std::env rather than as flags: the log filter and the admin token.
const READ_DIRECTLY: [&str; 2] = ["MILLRACE_LOG", "MILLRACE_ADMIN_TOKEN"];

fn serve_environment_variables() -> BTreeSet<String> {
    let command = Cli::command();
    let serve = command
        .find_subcommand("serve")
        .expect("millrace serve exists");
    serve
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn the_deployment_sets_only_variables_millrace_serve_reads() {
    let known = serve_environment_variables();
    let paths = [
        "base/deployment.yaml",
        "overlays/dev/control-plane-dev.yaml",
        "components/namespace-per-cluster/deployment.yaml",
    ];
    for path in paths.map(|p| deploy_dir().join(p)) {
        let deployment: Deployment = serde_yaml::from_str(&read(&path)).unwrap();
        let pod = deployment.spec.unwrap().template.spec.unwrap();
        for variable in pod.containers[0].env.iter().flatten() {
            // MILLRACE_* is the flags' namespace; others (POD_NAMESPACE) only feed $(VAR).
            let name = variable.name.as_str();
            if !name.starts_with("MILLRACE_") {
                continue;
            }
            assert!(
                known.contains(name) || READ_DIRECTLY.contains(&name),
                "{}: `millrace serve` does not read {name}",
                path.display()
            );
        }
    }
}

/// Kubernetes expands `$(NAME)` in a value only when NAME is defined earlier in the list;
/// otherwise the text stays as it is.
#[test]
fn variable_references_in_the_deployment_are_defined_before_use() {
    let pod = deployment().spec.unwrap().template.spec.unwrap();
    let mut defined = BTreeSet::new();
    for variable in pod.containers[0].env.iter().flatten() {
        let mut rest = variable.value.as_deref().unwrap_or_default();
        while let Some(start) = rest.find("$(") {
            let after = &rest[start + 2..];
            let end = after
                .find(')')
                .unwrap_or_else(|| panic!("{}: an unclosed $(", variable.name));
            let name = &after[..end];
            assert!(
                defined.contains(name),
                "{} uses $({name}) before it is defined",
                variable.name
            );
            rest = &after[end..];
        }
        defined.insert(variable.name.clone());
    }
    assert!(defined.contains("POD_NAMESPACE"));
}

#[test]
fn the_service_selects_the_control_plane_pods_on_a_named_port() {
    let service: Service =
        serde_yaml::from_str(&read(&deploy_dir().join("base/service.yaml"))).expect("service.yaml");
    let spec = service.spec.unwrap();
    let pod_template = deployment().spec.unwrap().template;
    let labels = pod_template.metadata.unwrap().labels.unwrap();
    let selector = spec.selector.expect("a selector");
    for (key, value) in &selector {
        assert_eq!(labels.get(key), Some(value), "selector {key}");
    }
    let container = &pod_template.spec.unwrap().containers[0];
    let port_names: BTreeSet<String> = container
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.name.clone())
        .collect();
    for port in spec.ports.unwrap() {
        match port.target_port {
            Some(IntOrString::String(name)) => assert!(port_names.contains(&name), "{name}"),
            other => panic!("target port {other:?} is not a named container port"),
        }
    }
}

#[test]
fn example_clusters_mirror_the_rest_create_request() {
    let examples = [
        ("kafkacluster-ebs.yaml", true),
        ("kafkacluster-instance-store.yaml", false),
    ];
    for (file, persistent) in examples {
        let path = deploy_dir().join("examples").join(file);
        let manifest = yaml_file(&path);
        assert_eq!(
            manifest["apiVersion"].as_str(),
            Some("millrace.dev/v1alpha1")
        );
        assert_eq!(manifest["kind"].as_str(), Some("KafkaCluster"));
        let name = manifest["metadata"]["name"].as_str().expect("a name");
        let mut body = serde_json::to_value(&manifest["spec"]).unwrap();
        body["clusterName"] = name.into();
        // deny_unknown_fields: a field the REST request does not have fails here.
        let request: CreateClusterRequest = serde_json::from_value(body)
            .unwrap_or_else(|e| panic!("{file}: the spec is no REST create request: {e}"));
        InstanceType::parse(&request.broker_node_group_info.instance_type)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            request.kafka_version.as_deref(),
            Some(VersionCatalog::BUILTIN_VERSION),
            "{file}"
        );
        let storage = &request.broker_node_group_info.storage_info;
        assert_eq!(storage.ebs_storage_info.is_some(), persistent, "{file}");
        assert_eq!(
            storage.instance_storage_info.is_some(),
            !persistent,
            "{file}"
        );
        let zones = request
            .broker_node_group_info
            .zones
            .clone()
            .unwrap_or_default();
        assert!(
            zones.is_empty() || request.number_of_broker_nodes % zones.len() as i64 == 0,
            "{file}: the broker count is not a multiple of the zones"
        );
    }
}

/// The version the agent image names its broker directory after: `millrace-` and the broker's
/// crate version (the agent's `parse_version_output`), which is the workspace's version.
#[test]
fn the_built_broker_version_is_the_catalogs() {
    assert_eq!(
        format!("millrace-{}", env!("CARGO_PKG_VERSION")),
        VersionCatalog::BUILTIN_VERSION
    );
}

mod dockerfiles;
