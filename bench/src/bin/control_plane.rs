//! `millrace-bench-control-plane`: the control plane's figures. It prints them; it is not a test.
//!
//! 1. Time from `POST /v1/clusters` to ACTIVE for a 3-broker cluster on the local platform
//!    (real `millrace-agent` and `millrace-broker` processes), and from DELETE to gone.
//! 2. `GET /v1/clusters/{id}` (describe) latency p50/p99 and requests/s with `--clusters`
//!    clusters stored on PostgreSQL.
//!
//! The stored clusters are written through the store before `millrace serve` starts, and left
//! FAILED with their CREATE operation failed, so that the reconciler ignores them: they are rows
//! to read, not 3,000 broker processes to start. The reconciler still runs (one real cluster is
//! created and deleted first), as it would in production.
//!
//! Build first: `cargo build --release --workspace --bins`, then
//! `target/release/millrace-bench-control-plane [--postgres-url postgres://postgres@127.0.0.1:5432/postgres]`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use millrace_control_plane::domain::{
    BrokerCount, BrokerNodeGroup, ClusterName, ClusterSpec, InstanceType, OperationState,
    StorageInfo, Tags, VersionCatalog, VolumeSize, Zones,
};
use millrace_control_plane::store::{CreateOutcome, NewCluster, Store};

const TOKEN: &str = "mr_bench_admin_token_0123456789abcdef";

#[derive(Debug, Parser)]
#[command(about = "Control-plane benchmark: create-to-ACTIVE time and describe-cluster latency")]
struct Args {
    /// A PostgreSQL database to create the benchmark's database from (dropped afterwards).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
    /// Clusters stored for the read benchmark.
    #[arg(long, default_value_t = 1000)]
    clusters: usize,
    /// 3-broker clusters created (and deleted) one after the other, timed.
    #[arg(long, default_value_t = 3)]
    creates: usize,
    /// Describe requests in total.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Where `millrace`, `millrace-agent` and `millrace-broker` are (default: beside this
    /// executable).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // reqwest is built with the control plane's `rustls-no-provider` feature.
    millrace_control_plane::platform::install_tls_provider();
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the executable's directory")?
            .to_path_buf(),
    };
    let database = BenchDatabase::create(&args.postgres_url)?;
    println!("database: {} (PostgreSQL)", database.name);

    let started = Instant::now();
    let store = Store::connect(&database.url).await?;
    let ids = store_idle_clusters(&store, args.clusters).await?;
    store.close().await;
    println!(
        "stored {} clusters through the store in {:.1?}",
        ids.len(),
        started.elapsed()
    );

    let data_dir = tempfile::Builder::new()
        .prefix("millrace-bench-cp-")
        .tempdir()?;
    let server = Server::start(&bin_dir, &database.url, data_dir.path().to_path_buf())?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();

    println!("\n== create a 3-broker cluster (EBS-style volumes), POST to ACTIVE");
    let mut create_times = Vec::new();
    let mut delete_times = Vec::new();
    for round in 0..args.creates {
        let (to_active, to_gone) = create_and_delete(&http, &server, round).await?;
        println!(
            "  round {}: ACTIVE after {:.2} s, deleted after {:.2} s",
            round + 1,
            to_active.as_secs_f64(),
            to_gone.as_secs_f64()
        );
        create_times.push(to_active);
        delete_times.push(to_gone);
    }
    if !create_times.is_empty() {
        create_times.sort();
        delete_times.sort();
        println!(
            "  POST to ACTIVE: median {:.2} s, best {:.2} s, worst {:.2} s",
            create_times[create_times.len() / 2].as_secs_f64(),
            create_times[0].as_secs_f64(),
            create_times[create_times.len() - 1].as_secs_f64()
        );
        println!(
            "  DELETE to gone: median {:.2} s",
            delete_times[delete_times.len() / 2].as_secs_f64()
        );
    }

    println!(
        "\n== describe-cluster with {} clusters stored: {} requests, {} clients",
        ids.len(),
        args.requests,
        args.concurrency
    );
    describe_load(&http, &server, &ids, args.requests / 10, args.concurrency).await?;
    let (mut latencies, elapsed) =
        describe_load(&http, &server, &ids, args.requests, args.concurrency).await?;
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "  p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {:.0} requests/s",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3,
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
    drop(server);
    Ok(())
}

/// Clusters written straight to the store, then settled (FAILED, CREATE failed) so that the
/// reconciler leaves them alone.
async fn store_idle_clusters(store: &Store, count: usize) -> anyhow::Result<Vec<String>> {
    let zones = Zones::default_zones();
    let spec = ClusterSpec {
        kafka_version: VersionCatalog::builtin().latest().context("a version")?,
        number_of_broker_nodes: BrokerCount::parse(3, &zones).map_err(anyhow::Error::msg)?,
        broker_node_group: BrokerNodeGroup {
            instance_type: InstanceType::parse("kafka.m5.large").map_err(anyhow::Error::msg)?,
            zones,
            storage: StorageInfo::Ebs {
                volume_size: VolumeSize::parse(100).map_err(anyhow::Error::msg)?,
                provisioned_throughput: None,
            },
            storage_class: None,
        },
        configuration: None,
        storage_auto_expansion: None,
    };
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let outcome = store
            .create_cluster(NewCluster {
                name: ClusterName::parse(&format!("stored-{i:05}")).map_err(anyhow::Error::msg)?,
                spec: spec.clone(),
                tags: Tags::default(),
                idempotency: None,
                kubernetes_uid: None,
            })
            .await?;
        let CreateOutcome::Created { cluster, operation } = outcome else {
            bail!("cluster {i} already existed");
        };
        store
            .set_operation_state(
                operation.id,
                OperationState::UpdateFailed,
                Some("benchmark fixture: never started"),
            )
            .await?;
        store
            .set_cluster_state(
                cluster.id,
                millrace_control_plane::domain::ClusterState::Failed,
                None,
            )
            .await?;
        ids.push(cluster.id.to_string());
    }
    Ok(ids)
}

async fn create_and_delete(
    http: &reqwest::Client,
    server: &Server,
    round: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let body = json!({
        "clusterName": format!("bench-{round}"),
        "numberOfBrokerNodes": 3,
        "brokerNodeGroupInfo": {
            "instanceType": "kafka.m5.large",
            "storageInfo": { "ebsStorageInfo": { "volumeSize": 10 } },
        },
    });
    let started = Instant::now();
    let created: Value = http
        .post(server.url("/v1/clusters"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = created["clusterId"]
        .as_str()
        .context("clusterId")?
        .to_owned();
    loop {
        let cluster: Value = http
            .get(server.url(&format!("/v1/clusters/{id}")))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .json()
            .await?;
        match cluster["state"].as_str() {
            Some("ACTIVE") => break,
            Some("FAILED") => bail!("the cluster FAILED: {cluster}"),
            _ if started.elapsed() > Duration::from_secs(180) => bail!("not ACTIVE: {cluster}"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let to_active = started.elapsed();
    let deleting = Instant::now();
    http.delete(server.url(&format!("/v1/clusters/{id}")))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .error_for_status()?;
    loop {
        let status = http
            .get(server.url(&format!("/v1/clusters/{id}")))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .status();
        if status == reqwest::StatusCode::NOT_FOUND {
            break;
        }
        if deleting.elapsed() > Duration::from_secs(180) {
            bail!("the cluster was not deleted");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((to_active, deleting.elapsed()))
}

/// `requests` describes spread over the stored clusters by `concurrency` clients: each
/// request's latency, and the wall time.
async fn describe_load(
    http: &reqwest::Client,
    server: &Server,
    ids: &[String],
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let next = Arc::new(Mutex::new(0usize));
    let ids = Arc::new(ids.to_vec());
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (http, next, ids) = (http.clone(), next.clone(), ids.clone());
        let base = server.url("");
        clients.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = {
                    let mut next = next.lock().await;
                    if *next >= requests {
                        break;
                    }
                    *next += 1;
                    *next
                };
                // A spread over the ids (multiplicative hashing), not one hot row.
                let id = &ids[(n.wrapping_mul(2_654_435_761)) % ids.len()];
                let sent = Instant::now();
                let response = http
                    .get(format!("{base}/v1/clusters/{id}"))
                    .bearer_auth(TOKEN)
                    .send()
                    .await?;
                if !response.status().is_success() {
                    bail!("describe answered {}", response.status());
                }
                response.bytes().await?;
                latencies.push(sent.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    let mut all = Vec::with_capacity(requests);
    while let Some(result) = clients.join_next().await {
        all.extend(result??);
    }
    Ok((all, started.elapsed()))
}

/// `millrace serve` on a free port.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(
        bin_dir: &std::path::Path,
        database_url: &str,
        data_dir: PathBuf,
    ) -> anyhow::Result<Server> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = std::fs::File::create(data_dir.join("serve.log"))?;
        let child = Command::new(bin_dir.join("millrace"))
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data_dir.join("data"))
            .args(["--database-url", database_url])
            .env("MILLRACE_ADMIN_TOKEN", TOKEN)
            .env("MILLRACE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}/millrace", bin_dir.display()))?;
        let server = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "millrace serve did not start; see {}",
                    data_dir.join("serve.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM: a graceful stop (the nodes of deleted clusters are gone already).
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// A fresh PostgreSQL database for the run, dropped afterwards.
struct BenchDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl BenchDatabase {
    fn create(admin_url: &str) -> anyhow::Result<BenchDatabase> {
        let name = format!("millrace_bench_{}", std::process::id());
        psql(admin_url, &format!("CREATE DATABASE {name}"))?;
        let base = admin_url
            .rsplit_once('/')
            .context("the PostgreSQL URL names a database")?
            .0;
        Ok(BenchDatabase {
            admin_url: admin_url.to_owned(),
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let output = Command::new("psql")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .context("running psql")?;
    if !output.status.success() {
        bail!("psql {sql:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}
