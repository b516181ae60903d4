//! The Dockerfiles of deploy/docker/: a Rust build stage that builds workspace binaries with
//! `--release --locked` and installs them under /out, a slim non-root runtime stage that copies
//! them and runs one of them; the agent image's bin dir is where the agent and the platform look.
//! Parsed here because no image can be built on our machines (no Docker daemon, no registry).

use std::collections::{BTreeMap, BTreeSet};

use super::{deploy_dir, deployment, env_value, read, repository_root};

/// One instruction of a Dockerfile, continuation lines joined, comments dropped.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    arguments: String,
}

fn dockerfile_instructions(text: &str) -> Vec<Instruction> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(start) => {
                current.push_str(start);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, arguments) = current
                    .split_once(char::is_whitespace)
                    .unwrap_or((current.as_str(), ""));
                instructions.push(Instruction {
                    keyword: keyword.to_ascii_uppercase(),
                    arguments: arguments.trim().to_owned(),
                });
                current.clear();
            }
        }
    }
    assert!(
        current.is_empty(),
        "a continuation line ends the Dockerfile"
    );
    instructions
}

/// Package name -> its `[[bin]]` names, from the workspace members' Cargo.toml files.
fn workspace_binaries() -> BTreeMap<String, Vec<String>> {
    let root = repository_root();
    let workspace = read(&root.join("Cargo.toml"));
    let members_line = workspace
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("workspace members");
    let members = members_line
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert!(!members.is_empty());
    let mut binaries = BTreeMap::new();
    for member in members {
        let manifest = read(&root.join(&member).join("Cargo.toml"));
        let mut section = String::new();
        let mut package = None;
        let mut bins = Vec::new();
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_owned();
                continue;
            }
            let Some(value) = line
                .strip_prefix("name")
                .and_then(|rest| rest.trim_start().strip_prefix('='))
                .map(|v| v.trim().trim_matches('"').to_owned())
            else {
                continue;
            };
            match section.as_str() {
                "[package]" => package = Some(value),
                "[[bin]]" => bins.push(value),
                _ => {}
            }
        }
        binaries.insert(package.expect("a package name"), bins);
    }
    binaries
}

/// Checks one Dockerfile: a Rust build stage and a slim non-root runtime stage running what it
/// built.
fn check_dockerfile(file: &str, expected_binaries: &[&str]) -> Image {
    let path = deploy_dir().join("docker").join(file);
    let instructions = dockerfile_instructions(&read(&path));
    let workspace = workspace_binaries();
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, i)| i.keyword == "FROM")
        .map(|(index, _)| index)
        .collect();
    assert_eq!(stages.len(), 2, "{file}: a build stage and a runtime stage");
    let (build, runtime) = instructions.split_at(stages[1]);
    assert!(
        build[0].arguments.starts_with("rust:1-bookworm")
            && build[0].arguments.ends_with("AS build"),
        "{file}: {:?}",
        build[0]
    );
    assert_eq!(runtime[0].arguments, "debian:bookworm-slim", "{file}");

    // The build stage: cargo builds workspace binaries, `install` puts them under /out.
    let build_commands: String = build
        .iter()
        .filter(|i| i.keyword == "RUN")
        .map(|i| i.arguments.as_str())
        .collect::<Vec<_>>()
        .join(" && ");
    let words: Vec<&str> = build_commands.split_whitespace().collect();
    assert!(
        words.windows(2).any(|w| w == ["cargo", "build"]),
        "{file}: no cargo build"
    );
    for flag in ["--release", "--locked"] {
        assert!(words.contains(&flag), "{file}: cargo build without {flag}");
    }
    let value_of = |flag: &str| -> Vec<String> {
        words
            .windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].to_owned())
            .collect()
    };
    let packages = value_of("-p");
    let built = value_of("--bin");
    for package in &packages {
        assert!(
            workspace.contains_key(package),
            "{file}: -p {package} is not a member"
        );
    }
    for binary in &built {
        assert!(
            packages.iter().any(|p| workspace[p].contains(binary)),
            "{file}: --bin {binary} is not a [[bin]] of the packages built"
        );
    }
    let mut built_sorted = built.clone();
    built_sorted.sort();
    let mut expected: Vec<String> = expected_binaries.iter().map(|b| (*b).to_owned()).collect();
    expected.sort();
    assert_eq!(built_sorted, expected, "{file}");
    let mut outputs = Vec::new();
    for (index, word) in words.iter().enumerate() {
        if let Some(binary) = word.strip_prefix("target/release/") {
            if words[index.saturating_sub(4)..index].contains(&"install") {
                assert!(
                    built.iter().any(|b| b == binary),
                    "{file}: installs unbuilt {binary}"
                );
                let destination = words[index + 1].trim_matches('"');
                assert!(destination.starts_with("/out/"), "{file}: {destination}");
                outputs.push(destination.to_owned());
            }
        }
    }
    assert_eq!(
        outputs.len(),
        built.len(),
        "{file}: every binary built is installed"
    );

    // Sources copied from the build context exist; the runtime stage copies from /out only.
    let root = repository_root();
    for instruction in build.iter().filter(|i| i.keyword == "COPY") {
        let arguments: Vec<&str> = instruction.arguments.split_whitespace().collect();
        let (destination, sources) = arguments.split_last().expect("COPY arguments");
        assert!(!destination.is_empty());
        for source in sources {
            assert!(
                root.join(source).exists(),
                "{file}: COPY {source} does not exist"
            );
        }
    }
    // Where each installed build output lands in the image.
    let mut files = BTreeMap::new();
    for instruction in runtime.iter().filter(|i| i.keyword == "COPY") {
        let arguments: Vec<&str> = instruction.arguments.split_whitespace().collect();
        assert_eq!(arguments.len(), 3, "{file}: {instruction:?}");
        assert_eq!(arguments[0], "--from=build", "{file}: {instruction:?}");
        let (source, destination) = (arguments[1], arguments[2]);
        let before = files.len();
        for output in &outputs {
            let image_path = if output == source {
                match destination.strip_suffix('/') {
                    Some(dir) => format!("{dir}/{}", output.rsplit('/').next().unwrap_or_default()),
                    None => destination.to_owned(),
                }
            } else if let Some(relative) = source
                .ends_with('/')
                .then(|| output.strip_prefix(source))
                .flatten()
            {
                format!("{}/{relative}", destination.trim_end_matches('/'))
            } else {
                continue;
            };
            files.insert(image_path, output.clone());
        }
        assert!(
            files.len() > before,
            "{file}: COPY {source} is nothing the build stage installed"
        );
    }

    // The runtime stage: non-root, and its entrypoint is a copied binary.
    let user = runtime
        .iter()
        .rfind(|i| i.keyword == "USER")
        .map(|i| i.arguments.clone())
        .unwrap_or_default();
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        !uid.is_empty() && uid != "0" && uid != "root",
        "{file}: USER {user:?}"
    );
    let entrypoint = runtime
        .iter()
        .rfind(|i| i.keyword == "ENTRYPOINT")
        .expect("an ENTRYPOINT");
    let entrypoint: Vec<String> = serde_json::from_str(&entrypoint.arguments)
        .unwrap_or_else(|e| panic!("{file}: ENTRYPOINT is not in exec form: {e}"));
    assert!(
        files.contains_key(&entrypoint[0]),
        "{file}: the entrypoint {} is not copied in ({files:?})",
        entrypoint[0]
    );
    let installs_certificates = runtime
        .iter()
        .any(|i| i.keyword == "RUN" && i.arguments.contains("ca-certificates"));
    assert!(installs_certificates, "{file}: no ca-certificates");
    let environment = runtime
        .iter()
        .filter(|i| i.keyword == "ENV")
        .flat_map(|i| i.arguments.split_whitespace())
        .filter_map(|setting| setting.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    Image {
        files,
        entrypoint: entrypoint[0].clone(),
        environment,
    }
}

/// What a Dockerfile's runtime stage holds.
struct Image {
    /// Path in the image -> the build stage's output copied there.
    files: BTreeMap<String, String>,
    entrypoint: String,
    environment: BTreeMap<String, String>,
}

#[test]
fn the_control_plane_dockerfile_builds_and_runs_millrace() {
    let image = check_dockerfile("control-plane.Dockerfile", &["millrace"]);
    assert_eq!(image.entrypoint, "/usr/local/bin/millrace");
    // The Deployment's settings win, but the image alone listens beyond loopback.
    assert_eq!(image.environment["MILLRACE_LISTEN"], "0.0.0.0:8080");
}

/// The kubernetes platform runs `<agent bin dir>/millrace-agent --bin-dir <agent bin dir>
/// --broker-version <version>`, and the agent finds `<bin dir>/<version>/millrace-broker`,
/// <version> being `millrace-` and the second word of `millrace-broker --version`.
#[test]
fn the_agent_dockerfile_carries_the_broker_where_the_agent_looks() {
    let image = check_dockerfile(
        "broker-agent.Dockerfile",
        &["millrace-agent", "millrace-broker"],
    );
    let bin_dir = image.environment["MILLRACE_BIN_DIR"].clone();
    assert_eq!(image.entrypoint, format!("{bin_dir}/millrace-agent"));
    let broker = format!("{bin_dir}/$version/millrace-broker");
    assert_eq!(
        image.files.get(&broker).map(String::as_str),
        Some("/out/bin/$version/millrace-broker"),
        "the broker is not at {broker}: {:?}",
        image.files
    );
    let text = read(&deploy_dir().join("docker/broker-agent.Dockerfile"));
    assert!(
        text.contains(
            r#"version="millrace-$(target/release/millrace-broker --version | awk '{print $2}')""#
        ),
        "the version directory is named as the agent's parse_version_output names versions"
    );
    let pod = deployment().spec.unwrap().template.spec.unwrap();
    let env = pod.containers[0].env.clone().unwrap();
    assert_eq!(
        env_value(&env, "MILLRACE_AGENT_BIN_DIR"),
        bin_dir,
        "the Deployment tells the platform another bin dir than the image has"
    );
}

#[test]
fn the_docker_build_context_leaves_out_build_outputs_and_history() {
    let ignored = read(&repository_root().join(".dockerignore"));
    let patterns: BTreeSet<&str> = ignored
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for required in ["target/", ".git/"] {
        assert!(
            patterns.contains(required),
            ".dockerignore lacks {required}"
        );
    }
}
