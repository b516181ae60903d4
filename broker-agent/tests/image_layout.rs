//! The broker-agent image's layout, without Docker: the shell steps that follow `cargo build` in
//! deploy/docker/broker-agent.Dockerfile's build stage run here on binaries built by cargo, with
//! `/out/` moved into a temporary directory. The agent must then find the broker of this
//! workspace's version in the bin dir the image copies `/out/bin/` to, the way it does in a pod
//! (`--bin-dir <dir> --broker-version millrace-<version>`).

use std::path::{Path, PathBuf};
use std::process::Command;

use millrace_agent::config::{broker_version_of, find_broker_binary, BROKER_EXECUTABLE};

fn dockerfile() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/docker/broker-agent.Dockerfile");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The build stage's RUN instruction, continuation lines joined.
fn build_stage_run(dockerfile: &str) -> String {
    let build_stage = dockerfile
        .split("\nFROM ")
        .nth(1)
        .expect("a build stage after the header's FROM-less comments");
    let mut run = String::new();
    let mut in_run = false;
    for line in build_stage.lines() {
        let line = line.trim();
        if line.starts_with("RUN ") {
            in_run = true;
        }
        if !in_run {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => {
                run.push_str(start);
                run.push(' ');
            }
            None => {
                run.push_str(line);
                break;
            }
        }
    }
    run.strip_prefix("RUN ")
        .expect("a RUN instruction in the build stage")
        .to_owned()
}

/// `millrace-broker`, built with the profile of this test executable.
fn broker_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let mut build = Command::new(env!("CARGO"));
    build
        .args(["build", "-p", "millrace-broker", "--bin", "millrace-broker"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if exe.components().any(|c| c.as_os_str() == "release") {
        build.arg("--release");
    }
    let output = build.output().expect("running cargo build");
    assert!(
        output.status.success(),
        "cargo build -p millrace-broker failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The test executable is target/<profile>/deps/<name>-<hash>.
    let binary = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .join(BROKER_EXECUTABLE);
    assert!(binary.is_file(), "{} was not built", binary.display());
    binary
}

#[test]
fn the_image_build_steps_put_the_broker_where_the_agent_finds_it() {
    let run = build_stage_run(&dockerfile());
    let (cargo_build, steps) = run
        .split_once("&&")
        .expect("cargo build, then the install steps");
    assert!(cargo_build.trim_start().starts_with("cargo build"), "{run}");

    // The build context the steps expect: target/release/ with both binaries.
    let work = tempfile::tempdir().unwrap();
    let release = work.path().join("target/release");
    std::fs::create_dir_all(&release).unwrap();
    std::fs::copy(broker_binary(), release.join("millrace-broker")).unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_millrace-agent"),
        release.join("millrace-agent"),
    )
    .unwrap();
    let out = work.path().join("out");
    let steps = steps.replace("/out/", &format!("{}/", out.display()));
    let output = Command::new("sh")
        .args(["-c", &steps])
        .current_dir(work.path())
        .output()
        .expect("running sh");
    assert!(
        output.status.success(),
        "the image's build steps failed ({}):\n{steps}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );

    // The runtime stage copies /out/bin/ to the image's bin dir.
    let bin_dir = out.join("bin");
    assert!(bin_dir.join("millrace-agent").is_file());
    let version = format!("millrace-{}", env!("CARGO_PKG_VERSION"));
    let found = find_broker_binary(&bin_dir, Some(&version)).unwrap();
    assert_eq!(found, bin_dir.join(&version).join(BROKER_EXECUTABLE));
    assert_eq!(broker_version_of(&found).unwrap(), version);
}
