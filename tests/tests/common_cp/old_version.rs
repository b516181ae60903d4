//! An older broker version, built from an earlier commit of this repository, for the tests of
//! in-place version upgrades and mixed-version clusters.
//!
//! The commit's tree is exported with `git archive` (no worktree, no git state left behind)
//! into a cache outside the checkout and built there with its own target directory, so that
//! it never waits on the workspace's build lock and survives `cargo clean`. The binary is then
//! installed where the control plane's local platform looks for broker versions:
//! `<bin_dir()>/<version>/millrace-broker`. The cost: a cold build of a second broker (13 to 15
//! minutes on a 2-core machine busy with other builds), paid once per machine and cache;
//! afterwards it takes milliseconds.
//!
//! Concurrent callers (test binaries run in parallel) need no lock file of their own: the
//! export is unpacked under a unique name and renamed into place (the loser of the race throws
//! its copy away), cargo's lock on the target directory serialises the builds, and the binary
//! is installed by a rename, so nobody sees a half-copied one and a killed test leaves no
//! stale lock behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use super::bin_dir;

/// The previous landed head: it speaks the same broker flags as the one the agent passes
/// today, so the control plane can run it unchanged. Named in this one place only.
pub const OLD_BROKER_COMMIT: &str = "8e3e1a67f80309cde4ea7848f492ed00cf5f8abf";

/// Written into the exported source tree last: a tree without it is incomplete.
const EXPORT_COMPLETE: &str = ".millrace-export-complete";

/// The old broker's version name: it sorts before `millrace-0.1.0`, because the control
/// plane's default version for new clusters is the last one in sorted order and every other
/// test must keep getting the current broker.
pub fn old_broker_version() -> String {
    format!("millrace-0.0.0-git.{}", &OLD_BROKER_COMMIT[..7])
}

/// Builds the broker at [`OLD_BROKER_COMMIT`] (once per machine) and installs it as
/// `<bin_dir()>/<version>/millrace-broker`; returns the version name.
pub fn install_old_broker_version() -> String {
    static INSTALLED: OnceLock<String> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let version = old_broker_version();
            let installed = bin_dir().join(&version).join("millrace-broker");
            if !installed.is_file() {
                let built = build_old_broker();
                install(&built, &installed);
            }
            version
        })
        .clone()
}

/// The old broker's executable as installed in the bin dir.
pub fn old_broker_binary() -> PathBuf {
    bin_dir()
        .join(install_old_broker_version())
        .join("millrace-broker")
}

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the repository")
        .to_path_buf()
}

fn cache_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    home.unwrap_or_else(std::env::temp_dir)
        .join(".cache/millrace-old-broker")
}

/// A name no other process or thread uses at the same time, for files renamed into place.
fn unique_suffix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn build_old_broker() -> PathBuf {
    let source = export_source();
    let release = std::env::current_exe()
        .expect("the test executable's path")
        .components()
        .any(|c| c.as_os_str() == "release");
    let target = cache_dir().join("target");
    let built = target
        .join(if release { "release" } else { "debug" })
        .join("millrace-broker");
    // Several commits could share the target dir; the cached binary is this commit's only if
    // it is newer than this commit's export.
    if is_newer(&built, &source.join(EXPORT_COMPLETE)) {
        return built;
    }
    let started = Instant::now();
    eprintln!(
        "building millrace-broker at {OLD_BROKER_COMMIT} in {} (the first time takes minutes)",
        source.display()
    );
    let mut build = Command::new(env!("CARGO"));
    build
        .args(["build", "--locked", "-p", "millrace-broker"])
        .args(["--bin", "millrace-broker"])
        .current_dir(&source)
        .env("CARGO_TARGET_DIR", &target);
    if release {
        build.arg("--release");
    }
    let output = build.output().expect("running cargo build");
    assert!(
        output.status.success(),
        "building millrace-broker at {OLD_BROKER_COMMIT} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "built millrace-broker at {OLD_BROKER_COMMIT} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(built.is_file(), "{} was not built", built.display());
    built
}

fn is_newer(path: &Path, than: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((modified(path), modified(than)), (Some(a), Some(b)) if a >= b)
}

/// The commit's tree under the cache (exported once).
fn export_source() -> PathBuf {
    let commit_dir = cache_dir().join(OLD_BROKER_COMMIT);
    let source = commit_dir.join("src");
    if source.join(EXPORT_COMPLETE).is_file() {
        return source;
    }
    let root = repository_root();
    assert_commit_available(&root);
    std::fs::create_dir_all(&commit_dir)
        .unwrap_or_else(|e| panic!("creating {}: {e}", commit_dir.display()));
    if source.exists() {
        // Left by something other than this function (which renames only complete trees in):
        // moved aside, not deleted in place, so a concurrent caller never sees half of it.
        let aside = commit_dir.join(format!("src.incomplete-{}", unique_suffix()));
        if std::fs::rename(&source, &aside).is_ok() {
            let _ = std::fs::remove_dir_all(&aside);
        }
    }
    let unpacking = commit_dir.join(format!("src.unpacking-{}", unique_suffix()));
    std::fs::create_dir_all(&unpacking).unwrap();
    let mut archive = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["archive", "--format=tar", OLD_BROKER_COMMIT])
        .stdout(Stdio::piped())
        .spawn()
        .expect("running git archive");
    let untar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&unpacking)
        .stdin(archive.stdout.take().expect("git archive's stdout"))
        .status()
        .expect("running tar");
    let archived = archive.wait().expect("waiting for git archive");
    if !(archived.success() && untar.success()) {
        let _ = std::fs::remove_dir_all(&unpacking);
        panic!("exporting {OLD_BROKER_COMMIT} failed: git archive {archived}, tar {untar}");
    }
    std::fs::write(unpacking.join(EXPORT_COMPLETE), OLD_BROKER_COMMIT).unwrap();
    if std::fs::rename(&unpacking, &source).is_err() {
        // Another caller renamed its complete copy in first.
        let _ = std::fs::remove_dir_all(&unpacking);
    }
    assert!(
        source.join(EXPORT_COMPLETE).is_file(),
        "{} is not a complete export",
        source.display()
    );
    source
}

fn assert_commit_available(root: &Path) {
    let found = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["cat-file", "-e", &format!("{OLD_BROKER_COMMIT}^{{commit}}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "this test builds the broker at commit {OLD_BROKER_COMMIT} from the repository's git \
         history, and {} has no such commit (not a git clone, a shallow clone, or no git \
         installed): run it in a full clone (`git fetch --unshallow` mends a shallow one)",
        root.display()
    );
}

/// Copies `built` to `installed` under a temporary name, then renames it into place.
fn install(built: &Path, installed: &Path) {
    let dir = installed.parent().expect("an installed path has a parent");
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let copying = dir.join(format!(".millrace-broker.copying-{}", unique_suffix()));
    std::fs::copy(built, &copying)
        .unwrap_or_else(|e| panic!("copying {} to {}: {e}", built.display(), copying.display()));
    std::fs::rename(&copying, installed).unwrap_or_else(|e| {
        panic!(
            "renaming {} to {}: {e}",
            copying.display(),
            installed.display()
        )
    });
}
