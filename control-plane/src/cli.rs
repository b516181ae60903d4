//! The small CLI over the REST API: `millrace cluster …` and `millrace bootstrap`.

use anyhow::{anyhow, bail, Context};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::config::{ClientArgs, ClusterCommand};

struct Client {
    http: reqwest::Client,
    endpoint: String,
    token: String,
}

impl Client {
    fn new(args: &ClientArgs) -> anyhow::Result<Self> {
        // reqwest is built without a default TLS backend choice; use ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let token = args
            .token
            .clone()
            .ok_or_else(|| anyhow!("give an admin token with --token or MILLRACE_TOKEN"))?;
        Ok(Self {
            http: reqwest::Client::builder()
                .user_agent(concat!("millrace-cli/", env!("CARGO_PKG_VERSION")))
                .build()?,
            endpoint: args.endpoint.trim_end_matches('/').to_owned(),
            token,
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.endpoint))
            .bearer_auth(&self.token)
            .query(query);
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("calling {}", self.endpoint))?;
        let status = response.status();
        let text = response.text().await?;
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            Ok((status, value))
        } else {
            Err(anyhow!(describe_problem(status, &value)))
        }
    }
}

fn describe_problem(status: StatusCode, problem: &Value) -> String {
    let detail = problem
        .get("detail")
        .and_then(Value::as_str)
        .unwrap_or("(no detail)");
    match problem.get("field").and_then(Value::as_str) {
        Some(field) => format!("{status}: {field}: {detail}"),
        None => format!("{status}: {detail}"),
    }
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub async fn cluster(client: &ClientArgs, command: ClusterCommand) -> anyhow::Result<()> {
    let client = Client::new(client)?;
    match command {
        ClusterCommand::Create {
            name,
            brokers,
            volume_size,
            instance_store,
            instance_type,
            kafka_version,
            zones,
            idempotency_key,
        } => {
            let storage = match (instance_store, volume_size) {
                (true, _) => json!({ "instanceStorageInfo": {} }),
                (false, Some(size)) => json!({ "ebsStorageInfo": { "volumeSize": size } }),
                (false, None) => bail!("give --volume-size GIB or --instance-store"),
            };
            let mut group = json!({ "instanceType": instance_type, "storageInfo": storage });
            if !zones.is_empty() {
                group["zones"] = json!(zones);
            }
            let mut body = json!({
                "clusterName": name,
                "numberOfBrokerNodes": brokers,
                "brokerNodeGroupInfo": group,
            });
            if let Some(version) = kafka_version {
                body["kafkaVersion"] = json!(version);
            }
            let (_, created) = client
                .call(
                    Method::POST,
                    "/v1/clusters",
                    &[],
                    Some(body),
                    idempotency_key.as_deref(),
                )
                .await?;
            print_json(&created)
        }
        ClusterCommand::List { name_prefix, state } => {
            let mut rows = Vec::new();
            let mut next: Option<String> = None;
            loop {
                let mut query = vec![("maxResults", "100".to_owned())];
                if let Some(prefix) = &name_prefix {
                    query.push(("clusterNameFilter", prefix.clone()));
                }
                if let Some(state) = &state {
                    query.push(("state", state.clone()));
                }
                if let Some(token) = &next {
                    query.push(("nextToken", token.clone()));
                }
                let (_, page) = client
                    .call(Method::GET, "/v1/clusters", &query, None, None)
                    .await?;
                if let Some(list) = page["clusterInfoList"].as_array() {
                    rows.extend(list.iter().cloned());
                }
                next = page["nextToken"].as_str().map(str::to_owned);
                if next.is_none() {
                    break;
                }
            }
            println!(
                "{:<36}  {:<24}  {:<16}  {:>7}  VERSION",
                "CLUSTER ID", "NAME", "STATE", "BROKERS"
            );
            for row in rows {
                println!(
                    "{:<36}  {:<24}  {:<16}  {:>7}  {}",
                    row["clusterId"].as_str().unwrap_or(""),
                    row["clusterName"].as_str().unwrap_or(""),
                    row["state"].as_str().unwrap_or(""),
                    row["numberOfBrokerNodes"],
                    row["kafkaVersion"].as_str().unwrap_or(""),
                );
            }
            Ok(())
        }
        ClusterCommand::Describe { cluster_id } => {
            let path = format!("/v1/clusters/{cluster_id}");
            let (_, cluster) = client.call(Method::GET, &path, &[], None, None).await?;
            print_json(&cluster)
        }
        ClusterCommand::Delete { cluster_id } => {
            let path = format!("/v1/clusters/{cluster_id}");
            let (_, deleted) = client.call(Method::DELETE, &path, &[], None, None).await?;
            print_json(&deleted)
        }
    }
}

pub async fn bootstrap(client: &ClientArgs, cluster_id: &str) -> anyhow::Result<()> {
    let client = Client::new(client)?;
    let path = format!("/v1/clusters/{cluster_id}/bootstrap-brokers");
    let (_, answer) = client.call(Method::GET, &path, &[], None, None).await?;
    match answer["bootstrapBrokerString"].as_str() {
        Some(brokers) => {
            println!("{brokers}");
            Ok(())
        }
        None => bail!("the cluster has no bootstrap brokers yet (is it ACTIVE?)"),
    }
}
