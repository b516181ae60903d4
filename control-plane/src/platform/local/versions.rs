//! The broker versions installed in the bin dir.

use std::path::Path;

use tracing::warn;

const BROKER_EXECUTABLE: &str = "millrace-broker";

/// Versions in `bin_dir`: each `<version>/millrace-broker`, and the version the flat
/// `millrace-broker` reports (`millrace-broker 0.1.0` is `millrace-0.1.0`).
pub fn installed_broker_versions(bin_dir: &Path) -> Vec<String> {
    let mut versions = Vec::new();
    if let Ok(entries) = std::fs::read_dir(bin_dir) {
        for entry in entries.flatten() {
            if entry.path().join(BROKER_EXECUTABLE).is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    versions.push(name.to_string());
                }
            }
        }
    }
    let flat = bin_dir.join(BROKER_EXECUTABLE);
    if flat.is_file() {
        match std::process::Command::new(&flat)
            .arg("--version")
            .env_clear()
            .output()
        {
            Ok(output) if output.status.success() => {
                match version_from_output(&String::from_utf8_lossy(&output.stdout)) {
                    Some(version) => versions.push(version),
                    None => warn!(binary = %flat.display(), "the broker printed no version"),
                }
            }
            Ok(output) => {
                warn!(binary = %flat.display(), status = %output.status, "the broker's --version failed")
            }
            Err(error) => warn!(binary = %flat.display(), %error, "cannot run the broker"),
        }
    }
    versions.sort();
    versions.dedup();
    versions
}

/// `millrace-broker 0.1.0` -> `millrace-0.1.0`.
fn version_from_output(output: &str) -> Option<String> {
    let semver = output.split_whitespace().nth(1)?;
    semver
        .starts_with(|c: char| c.is_ascii_digit())
        .then(|| format!("millrace-{semver}"))
}
