//! The upgrade test kit on its own, without the control plane: the broker built from an
//! earlier commit forms a replicated cluster, and the workload's history checker finds no
//! loss while one of its brokers is restarted gracefully as the current version (a
//! mixed-version cluster, the middle of a rolling upgrade).

mod common;
mod common_cp;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{free_port, run_python, BrokerOptions, BrokerProcess};
use common_cp::bin_dir;
use common_cp::old_version::{old_broker_binary, OLD_BROKER_COMMIT};
use common_cp::workload::Workload;

const TOPIC: &str = "upgrade-kit";

/// Starts three brokers of `binary` that form one replicated cluster, and waits until all
/// are ready.
fn cluster_of(binary: &Path) -> Vec<BrokerProcess> {
    let voters = (1..=3)
        .map(|id| format!("{id}@127.0.0.1:{}", free_port()))
        .collect::<Vec<_>>()
        .join(",");
    let mut brokers: Vec<BrokerProcess> = (1..=3)
        .map(|id| {
            let mut options =
                BrokerOptions::with_args(&["--voters", &voters, "--rack", &format!("zone-{id}")]);
            options.node_id = Some(id);
            options.binary = Some(binary.to_path_buf());
            BrokerProcess::launch(options)
        })
        .collect();
    for broker in &mut brokers {
        broker.wait_ready();
    }
    brokers
}

fn executable_of(broker: &BrokerProcess) -> PathBuf {
    std::fs::read_link(format!("/proc/{}/exe", broker.pid())).expect("the broker's executable")
}

#[test]
fn an_old_version_cluster_with_one_broker_upgraded_in_place_loses_no_record() {
    // Both versions are built before any broker starts: a build in the middle would stall
    // the test for minutes (another cargo may hold the target dir's lock).
    let old = old_broker_binary();
    let current = bin_dir().join("millrace-broker");
    let started = Instant::now();
    let mut brokers = cluster_of(&old);
    let bootstrap = brokers
        .iter()
        .map(BrokerProcess::bootstrap)
        .collect::<Vec<_>>()
        .join(",");
    eprintln!(
        "cluster of millrace-broker at {OLD_BROKER_COMMIT} ready after {:?}",
        started.elapsed()
    );

    let workload = Workload::start(&bootstrap, TOPIC);
    std::thread::sleep(Duration::from_secs(2));

    // The upgrade of one broker: a graceful stop, then the current version over the same data.
    let upgraded = &mut brokers[1];
    let status = upgraded.sigterm_and_wait();
    assert!(
        status.success(),
        "the old broker's graceful shutdown: {status}"
    );
    upgraded.set_binary(Some(current.clone()));
    upgraded.restart();
    assert_eq!(executable_of(upgraded), current);
    assert_eq!(executable_of(&brokers[0]), old);
    // The current version catches up from old-version leaders.
    run_python(
        "wait_in_sync.py",
        &[&bootstrap, TOPIC, "3", "30"],
        Duration::from_secs(45),
    );
    std::thread::sleep(Duration::from_secs(2));

    let report = workload.stop();
    eprintln!("{report:#?}");
    report.assert_nothing_lost();
    report.assert_no_produce_errors();
    for broker in &mut brokers {
        broker.assert_running("the workload");
    }
    eprintln!("done after {:?}", started.elapsed());
}
