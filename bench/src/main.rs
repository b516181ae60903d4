//! `millrace-bench`: produce/consume throughput and latency of a single-node broker, measured
//! with librdkafka (the rdkafka crate), next to the machine's own sequential write bandwidth.
//! It prints figures; it is not a test.
//!
//! `cargo run --release -p millrace-bench -- --help`

mod broker_process;
mod cluster;
mod cpu;
mod disk;
mod load;
mod stalls;

use std::time::Duration;

use clap::Parser;

use broker_process::BrokerProcess;

#[derive(Debug, Parser)]
#[command(about = "Produce/consume benchmark of millrace-broker (and a peer broker if on PATH)")]
struct Args {
    /// Records per run.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Idle partitions created for the memory measurement.
    #[arg(long, default_value_t = 1000)]
    idle_partitions: i32,
    /// MiB of the sequential write (fdatasync) reference, measured once a write cache in
    /// front of the disk is full (see `src/disk.rs`).
    #[arg(long, default_value_t = 1024)]
    disk_mib: usize,
    /// Also run the replicated benchmark: 3 brokers, RF 3, acks=all, and leader failover.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    replicated: bool,
    /// Only measure leader failover: this many runs, each on a fresh 3-broker cluster,
    /// alternating a leader that is not the controller and the active controller.
    #[arg(long)]
    failover_runs: Option<usize>,
    /// MB/s of the rate-limited ("half rate") runs, instead of half of each full-speed run's
    /// rate (or of the disk's, when lower): the same load for every broker and build compared.
    #[arg(long, value_parser = positive_mb_s)]
    rate_mb_s: Option<f64>,
    /// Consume every record after the produce runs (off for runs whose brokers delete records,
    /// e.g. with `MILLRACE_LOG_RETENTION_BYTES` set).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    consume: bool,
    /// Command line of a peer broker to run the same load against, with {port} and {dir}
    /// placeholders; defaults to `tansu` when it is on PATH.
    #[arg(long)]
    peer: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = broker_process::build_broker()?;
    if let Some(runs) = args.failover_runs {
        return cluster::failover_runs(&binary, runs);
    }
    println!(
        "# millrace-bench: {} records of {} bytes, {} partitions",
        args.records, args.size, args.partitions
    );

    // The reference is measured before and after the single-node runs: on a virtual machine it
    // moves with the host's load, and the ratio is taken against the higher of the two. The
    // rate-limited runs take the one before as what the disk sustains.
    let scratch = tempfile::tempdir_in(".")?;
    let disk_before = measure_disk(scratch.path(), args.disk_mib, "before the runs")?;

    let broker = BrokerProcess::start(&binary, &[])?;
    let results = load::run_suite(&broker.bootstrap(), &args.load(disk_before), broker.pid())?;
    let peak_rss = broker.peak_rss_mib()?;
    println!("millrace-broker peak RSS during the runs: {peak_rss:.1} MiB");
    let disk_after = measure_disk(scratch.path(), args.disk_mib, "after the runs")?;
    let disk_mb_s = disk_before.max(disk_after);
    let find = |name: &str| results.iter().find(|r| r.name == name);
    for name in ["produce acks=1", "produce acks=all"] {
        let mb_s = find(name).map_or(0.0, |r| r.mb_s);
        println!(
            "{name} / disk bandwidth ({disk_mb_s:.0} MB/s): {:.0}%  (target >= 50% and >= 100 MB/s)",
            100.0 * mb_s / disk_mb_s
        );
    }
    // The load of the latency runs, against both disk readings.
    let disk_low = disk_before.min(disk_after);
    for name in ["produce acks=1 @ half rate", "produce acks=all @ half rate"] {
        if let Some(run) = find(name) {
            println!(
                "{name}: {:.0} MB/s, {:.0}% to {:.0}% of the disk bandwidth; p99 {:.2} ms  (target < 10 ms)",
                run.mb_s,
                100.0 * run.mb_s / disk_mb_s,
                100.0 * run.mb_s / disk_low,
                run.p99_ms
            );
        }
    }
    drop(broker);

    let idle = BrokerProcess::start(&binary, &[])?;
    load::create_idle_partitions(&idle.bootstrap(), args.idle_partitions)?;
    std::thread::sleep(Duration::from_secs(3));
    println!(
        "millrace-broker RSS with {} idle partitions: {:.1} MiB (target < 256 MiB)",
        args.idle_partitions,
        idle.rss_mib()?
    );
    drop(idle);

    if args.replicated {
        cluster::run(&binary, &args.load(disk_before))?;
    }

    let peer = args.peer.clone().or_else(broker_process::tansu_command);
    match peer {
        Some(command) => {
            let peer = BrokerProcess::start_command(&command)?;
            let peer_results =
                load::run_suite(&peer.bootstrap(), &args.load(disk_before), peer.pid())?;
            for (ours, theirs) in results.iter().zip(&peer_results) {
                println!(
                    "ratio millrace/peer {}: {:.2}x throughput, p99 {:.2} ms vs {:.2} ms",
                    ours.name,
                    ours.records_s / theirs.records_s.max(1.0),
                    ours.p99_ms,
                    theirs.p99_ms
                );
            }
            println!("peer peak RSS: {:.1} MiB", peer.peak_rss_mib()?);
        }
        None => println!("no peer broker: put `tansu` on PATH or pass --peer to compare"),
    }
    Ok(())
}

/// `--rate-mb-s`: a finite rate above zero (the send schedule divides by it).
fn positive_mb_s(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(mb_s) if mb_s.is_finite() && mb_s > 0.0 => Ok(mb_s),
        Ok(_) => Err(format!("{text} is not a rate above 0 MB/s")),
        Err(error) => Err(format!("{text:?} is not a number: {error}")),
    }
}

fn measure_disk(dir: &std::path::Path, mib: usize, when: &str) -> anyhow::Result<f64> {
    let reading = disk::sequential_write(dir, mib)?;
    println!(
        "disk: sequential write with fdatasync, {when}: {:.0} MB/s ({mib} MiB, after {} MiB; fastest 256 MiB at {:.0} MB/s)",
        reading.sustained_mb_s, reading.warm_up_mib, reading.fastest_mb_s
    );
    Ok(reading.sustained_mb_s)
}

impl Args {
    fn load(&self, disk_mb_s: f64) -> load::LoadSpec {
        load::LoadSpec {
            records: self.records,
            size: self.size,
            partitions: self.partitions,
            limited_mb_s: self.rate_mb_s,
            sustainable_mb_s: Some(disk_mb_s),
            consume: self.consume,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_rate_must_be_a_finite_rate_above_zero() {
        assert_eq!(positive_mb_s("180"), Ok(180.0));
        for bad in ["0", "-5", "inf", "NaN", "fast"] {
            assert!(positive_mb_s(bad).is_err(), "{bad}");
        }
    }
}
