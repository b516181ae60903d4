//! A mock Kubernetes API server for the controller's tests (the way kube-rs's controller-rs
//! tests its reconciler): the controller's client talks to a `tower_test` mock, and each
//! scenario states, in order, every request it expects (method, path, query, body) and answers
//! it as an API server would. Every request answered is recorded as (method, path, query), so
//! that a test can compare what the controller does with the RBAC rules granted to it
//! ([`run_all_scenarios`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use kube::Client;
use serde_json::Value;
use tower_test::mock::{Handle, SendResponse};

use super::controller::{Context, ControllerSettings};
use super::crd::{
    BrokerNodeGroupSpec, EbsStorageSpec, KafkaCluster, KafkaClusterSpec, StorageSpec,
    UpgradeStrategy,
};
use crate::domain::VersionCatalog;
use crate::http::{ApiConfig, AppState};
use crate::store::Store;

pub(crate) const NAMESPACE: &str = "kafka";
pub(crate) const RESOURCE_PATH: &str = "/apis/millrace.dev/v1alpha1/namespaces/kafka/kafkaclusters";
pub(crate) const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/kafka/events";

/// One request the mock API server answered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
}

impl RecordedRequest {
    /// The RBAC rule that allows this request: (verb, API group, resource), the resource with
    /// its subresource (`kafkaclusters/status`), the core group as "".
    pub(crate) fn rbac(&self) -> (String, String, String) {
        crate::rbac_check::rbac_of(&self.method, &self.path, &self.query)
    }
}

/// The mock API server's side of the controller's client.
pub(crate) struct ApiServer {
    handle: Handle<Request<Body>, Response<Body>>,
    pub recorded: Vec<RecordedRequest>,
}

impl ApiServer {
    /// A client for the controller and the server that answers it.
    pub(crate) fn new() -> (Client, ApiServer) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, NAMESPACE);
        (
            client,
            ApiServer {
                handle,
                recorded: Vec::new(),
            },
        )
    }

    /// Receives the next request, asserts its method, path and query (the query as a set of
    /// `key=value` pairs, order aside), records it and returns its JSON body (Null when empty)
    /// with the means to answer it.
    pub(crate) async fn expect(
        &mut self,
        method: &str,
        path: &str,
        query: &[&str],
    ) -> (Value, Answer) {
        let next = tokio::time::timeout(Duration::from_secs(10), self.handle.next_request())
            .await
            .unwrap_or_else(|_| panic!("expected {method} {path}, but no request came"));
        let (request, send) = next.expect("the client was dropped");
        let actual_query = request.uri().query().unwrap_or("").to_owned();
        let recorded = RecordedRequest {
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            query: actual_query.clone(),
        };
        assert_eq!(
            (recorded.method.as_str(), recorded.path.as_str()),
            (method, path),
            "unexpected request {recorded:?}"
        );
        let pairs = |q: &str| -> Vec<String> {
            let mut pairs: Vec<String> = q
                .split('&')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect();
            pairs.sort();
            pairs
        };
        let mut wanted: Vec<String> = query.iter().map(|p| p.to_string()).collect();
        wanted.sort();
        assert_eq!(pairs(&actual_query), wanted, "query of {method} {path}");
        self.recorded.push(recorded);
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .expect("request body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("request body is JSON")
        };
        (body, Answer(send))
    }

    /// Receives the next request whatever it is, records it and returns its method, path and
    /// query with the means to answer it (for the watcher's requests, whose details are
    /// kube-runtime's).
    pub(crate) async fn next_request(&mut self) -> (RecordedRequest, Answer) {
        let next = tokio::time::timeout(Duration::from_secs(10), self.handle.next_request())
            .await
            .expect("expected a request, but none came");
        let (request, send) = next.expect("the client was dropped");
        let recorded = RecordedRequest {
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            query: request.uri().query().unwrap_or("").to_owned(),
        };
        self.recorded.push(recorded.clone());
        (recorded, Answer(send))
    }

    /// Expects an Event about the resource (a new one is POSTed; one the recorder has seen is
    /// PATCHed as a series) and answers it; returns the Event's reason and note.
    pub(crate) async fn expect_event(&mut self) -> (String, String, String) {
        let next = tokio::time::timeout(Duration::from_secs(10), self.handle.next_request())
            .await
            .expect("expected an Event, but no request came");
        let (request, send) = next.expect("the client was dropped");
        let method = request.method().to_string();
        let path = request.uri().path().to_owned();
        let series = path.starts_with(&format!("{EVENTS_PATH}/"));
        assert!(
            (method == "POST" && path == EVENTS_PATH) || (method == "PATCH" && series),
            "expected an Event, got {method} {path}"
        );
        self.recorded.push(RecordedRequest {
            method,
            path,
            query: request.uri().query().unwrap_or("").to_owned(),
        });
        let bytes = request.into_body().collect_bytes().await.expect("body");
        let event: Value = serde_json::from_slice(&bytes).expect("event JSON");
        assert_eq!(event["regarding"]["kind"], "KafkaCluster");
        assert_eq!(event["regarding"]["namespace"], NAMESPACE);
        assert_eq!(event["reportingController"], "millrace");
        let answer = (
            event["type"].as_str().unwrap_or("").to_owned(),
            event["reason"].as_str().unwrap_or("").to_owned(),
            event["note"].as_str().unwrap_or("").to_owned(),
        );
        Answer(send).json(if series { 200 } else { 201 }, &event);
        answer
    }

    /// Expects the server-side apply of the status; returns the applied status.
    pub(crate) async fn expect_status_apply(&mut self, resource: &KafkaCluster) -> Value {
        let path = format!(
            "{RESOURCE_PATH}/{}/status",
            resource.metadata.name.as_deref().unwrap_or("")
        );
        let (body, answer) = self
            .expect("PATCH", &path, &["fieldManager=millrace", "force=true"])
            .await;
        assert_eq!(body["apiVersion"], "millrace.dev/v1alpha1");
        assert_eq!(body["kind"], "KafkaCluster");
        assert!(
            body.get("spec").is_none(),
            "only the status is applied: {body}"
        );
        let mut updated = serde_json::to_value(resource).expect("resource JSON");
        updated["status"] = body["status"].clone();
        answer.json(200, &updated);
        body["status"].clone()
    }

    /// Asserts that no request comes before `done` is notified (the reconcile returned): an
    /// unexpected request fails the test at once, naming it, instead of blocking the reconcile.
    pub(crate) async fn expect_nothing_until(&mut self, done: &tokio::sync::Notify) {
        tokio::select! {
            _ = done.notified() => {}
            next = self.handle.next_request() => {
                if let Some((request, _)) = next {
                    panic!("unexpected request {} {}", request.method(), request.uri());
                }
            }
        }
    }

    /// Asserts that the controller sent nothing more.
    pub(crate) async fn expect_nothing_more(&mut self) {
        if let Ok(Some((request, _))) =
            tokio::time::timeout(Duration::from_millis(100), self.handle.next_request()).await
        {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
    }
}

/// The means to answer one request.
pub(crate) struct Answer(SendResponse<Response<Body>>);

impl Answer {
    pub(crate) fn json(self, status: u16, body: &Value) {
        let response = Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).expect("JSON")))
            .expect("response");
        self.0.send_response(response);
    }
}

/// A store for one test: SQLite in a temporary directory, or a fresh PostgreSQL database
/// (`MILLRACE_TEST_POSTGRES_URL`, default the local server) dropped afterwards.
pub(crate) struct TestStore {
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestStore {
    pub(crate) async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        let store = Store::connect(&url).await.expect("open the store");
        TestStore {
            store,
            _dir: Some(dir),
            postgres: None,
        }
    }

    pub(crate) async fn postgres() -> Self {
        use sqlx::{AnyConnection, Connection, Executor};
        sqlx::any::install_default_drivers();
        let admin = std::env::var("MILLRACE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("millrace_operator_{}", uuid::Uuid::new_v4().simple());
        let mut conn = AnyConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL tests need a server at {admin} (set MILLRACE_TEST_POSTGRES_URL): {e}"
            )
        });
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create the test database");
        conn.close().await.ok();
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b)
            .expect("admin URL names a database");
        let store = Store::connect(&format!("{base}/{name}"))
            .await
            .expect("open the store");
        TestStore {
            store,
            _dir: None,
            postgres: Some((admin, name)),
        }
    }

    /// Closes the store and drops a PostgreSQL database.
    pub(crate) async fn finish(self) {
        use sqlx::{AnyConnection, Connection, Executor};
        self.store.close().await;
        if let Some((admin, name)) = &self.postgres {
            let mut conn = AnyConnection::connect(admin).await.expect("connect");
            conn.execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await
            .expect("drop the test database");
            conn.close().await.ok();
        }
    }
}

/// The controller's context over a mock API server and `store`; requeue intervals are short.
pub(crate) fn context(client: Client, store: &Store) -> Arc<Context> {
    // An older version besides the built-in one, so that a spec can ask for an upgrade.
    let versions = VersionCatalog::new(vec![
        "millrace-0.0.9".to_owned(),
        VersionCatalog::BUILTIN_VERSION.to_owned(),
    ]);
    let state = AppState::new(store.clone(), versions, ApiConfig::default());
    Arc::new(Context::new(
        client,
        state,
        ControllerSettings {
            busy_requeue: Duration::from_secs(1),
            idle_requeue: Duration::from_secs(30),
            error_requeue: Duration::from_secs(2),
        },
    ))
}

/// A valid spec: three brokers over three zones, 100 GiB EBS-style volumes.
pub(crate) fn spec() -> KafkaClusterSpec {
    KafkaClusterSpec {
        cluster_name: None,
        kafka_version: None,
        number_of_broker_nodes: 3,
        broker_node_group_info: BrokerNodeGroupSpec {
            instance_type: "kafka.m5.large".into(),
            zones: None,
            storage_info: StorageSpec {
                ebs_storage_info: Some(EbsStorageSpec {
                    volume_size: 100,
                    storage_class: None,
                    provisioned_throughput: None,
                }),
                instance_storage_info: None,
            },
        },
        configuration_info: None,
        storage_auto_expansion: None,
        upgrade_strategy: UpgradeStrategy::InPlace,
        tags: BTreeMap::from([("team".to_owned(), "data".to_owned())]),
    }
}

/// A resource as the API server would hand it to the controller.
pub(crate) fn resource(name: &str, uid: &str, spec: KafkaClusterSpec) -> KafkaCluster {
    let mut resource = KafkaCluster::new(name, spec);
    resource.metadata.namespace = Some(NAMESPACE.into());
    resource.metadata.uid = Some(uid.into());
    resource.metadata.generation = Some(1);
    resource.metadata.resource_version = Some("100".into());
    resource.metadata.finalizers = Some(vec![super::FINALIZER.into()]);
    resource
}

/// Every scenario of the controller's tests, in turn, on a SQLite store; the requests the mock
/// API server answered.
pub(crate) async fn run_all_scenarios() -> Vec<RecordedRequest> {
    let store = TestStore::sqlite().await;
    let mut recorded = Vec::new();
    for scenario in super::tests::SCENARIOS {
        recorded.extend((scenario.run)(store.store.clone()).await);
    }
    store.finish().await;
    recorded
}

/// An empty KafkaCluster list, as the API server answers a list request.
pub(crate) fn empty_list() -> Value {
    serde_json::json!({
        "apiVersion": "millrace.dev/v1alpha1",
        "kind": "KafkaClusterList",
        "metadata": {"resourceVersion": "1"},
        "items": [],
    })
}

/// The JSON value of `status` under `key`, as a string (for short assertions).
pub(crate) fn text(status: &Value, key: &str) -> String {
    status[key].as_str().unwrap_or("").to_owned()
}

/// The condition of this type in an applied status.
pub(crate) fn condition(status: &Value, type_: &str) -> Value {
    status["conditions"]
        .as_array()
        .and_then(|conditions| conditions.iter().find(|c| c["type"] == type_))
        .cloned()
        .unwrap_or(Value::Null)
}
