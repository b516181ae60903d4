//! A mock Kubernetes API server for the platform's tests, in the manner of kube-rs's
//! controller-rs fixtures: `tower_test::mock` stands in for the HTTP connection, and each
//! scenario asserts every request (method, path, query, typed body) and answers it as an API
//! server would. Every answered request is recorded, so that a test can collect the verbs and
//! resources the platform uses ([`run_all_scenarios`]) and compare them with deploy/'s RBAC.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::names;
pub(crate) const NAMESPACE: &str = "kafka";
pub(crate) const TOKEN: &str = "mr_agent_s3cret-token";
pub(crate) const ANCHOR_UID: &str = "0b7e5c1a-anchor-uid";
const WAIT: Duration = Duration::from_secs(10);
mod fixtures;
mod node_scenarios;
mod volume_scenarios;
mod watch_scenario;

pub(crate) use fixtures::*;
pub(crate) use node_scenarios::*;
pub(crate) use volume_scenarios::*;
pub(crate) use watch_scenario::*;

/// One request the mock API server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
}

impl RecordedRequest {
    /// The RBAC view of the request: (verb, apiGroup, resource), e.g. ("patch", "", "pods").
    pub(crate) fn rbac_rule(&self) -> (String, String, String) {
        crate::rbac_check::rbac_of(&self.method, &self.path, &self.query)
    }
}

/// A request waiting for its answer.
pub(crate) struct Incoming {
    pub method: Method,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub body: Vec<u8>,
    respond: tower_test::mock::SendResponse<Response<Body>>,
}

impl Incoming {
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} {}: body is not the expected object: {e}\n{}",
                self.method,
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn respond(self, status: u16, body: &Value) {
        let response = Response::builder()
            .status(StatusCode::from_u16(status).expect("status code"))
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).expect("json")))
            .expect("response");
        self.respond.send_response(response);
    }

    /// The object as the API server would store it: the request's object with a uid and a
    /// resourceVersion.
    pub fn respond_with_stored(self, status: u16) {
        let mut object: Value = self.json();
        object["metadata"]["uid"] = json!(Uuid::new_v4().to_string());
        object["metadata"]["resourceVersion"] = json!("1001");
        self.respond(status, &object);
    }

    pub fn respond_not_found(self, resource: &str, name: &str) {
        self.respond(
            404,
            &status_object(404, "NotFound", &format!("{resource} \"{name}\" not found")),
        );
    }

    pub fn respond_raw(self, status: u16, body: Vec<u8>) {
        let response = Response::builder()
            .status(StatusCode::from_u16(status).expect("status code"))
            .body(Body::from(body))
            .expect("response");
        self.respond.send_response(response);
    }
}

/// A `metav1.Status` as the API server sends with errors.
pub(crate) fn status_object(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": if code < 300 { "Success" } else { "Failure" },
        "message": message,
        "reason": reason,
        "code": code,
    })
}

/// The API server side of a mock client. Requests of the platform's pod watch (list and
/// watch of pods selected by `app.kubernetes.io/managed-by`) arrive on [`Self::next_watch`],
/// all others on [`Self::next`], in the order the platform sent them.
pub(crate) struct ApiServer {
    requests: mpsc::UnboundedReceiver<Incoming>,
    watch_requests: mpsc::UnboundedReceiver<Incoming>,
    recorded: Arc<Mutex<Vec<RecordedRequest>>>,
}

fn is_pod_watch(method: &Method, path: &str, query: &BTreeMap<String, String>) -> bool {
    method == Method::GET
        && path.ends_with("/pods")
        && query.get("labelSelector").map(String::as_str) == Some(names::MANAGED_PODS_SELECTOR)
}

impl ApiServer {
    /// A client whose requests this server answers.
    pub fn start() -> (Client, ApiServer) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let (requests_tx, requests) = mpsc::unbounded_channel();
        let (watch_tx, watch_requests) = mpsc::unbounded_channel();
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let record = recorded.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let body = body.collect_bytes().await.expect("request body").to_vec();
                let path = parts.uri.path().to_string();
                let raw_query = parts.uri.query().unwrap_or("").to_string();
                let query: BTreeMap<String, String> = form_pairs(&raw_query);
                record.lock().expect("recorded").push(RecordedRequest {
                    method: parts.method.to_string(),
                    path: path.clone(),
                    query: raw_query,
                });
                let watch = is_pod_watch(&parts.method, &path, &query);
                let incoming = Incoming {
                    method: parts.method,
                    path,
                    query,
                    body,
                    respond,
                };
                let sent = if watch {
                    watch_tx.send(incoming)
                } else {
                    requests_tx.send(incoming)
                };
                if sent.is_err() {
                    break;
                }
            }
        });
        (
            client,
            ApiServer {
                requests,
                watch_requests,
                recorded,
            },
        )
    }

    pub async fn next(&mut self) -> Incoming {
        tokio::time::timeout(WAIT, self.requests.recv())
            .await
            .expect("the platform sent no further request")
            .expect("the client is gone")
    }

    pub async fn next_watch(&mut self) -> Incoming {
        tokio::time::timeout(WAIT, self.watch_requests.recv())
            .await
            .expect("the pod watch sent no further request")
            .expect("the client is gone")
    }

    /// The next request, asserted to be `method` on `path`.
    pub async fn expect(&mut self, method: Method, path: &str) -> Incoming {
        let request = self.next().await;
        assert_eq!(
            (&request.method, request.path.as_str()),
            (&method, path),
            "unexpected request (query {:?})",
            request.query
        );
        request
    }

    /// Asserts that the platform sent nothing more (the watch aside).
    pub fn expect_no_more(&mut self) {
        if let Ok(request) = self.requests.try_recv() {
            panic!("unexpected request {} {}", request.method, request.path);
        }
    }

    pub fn recorded(&self) -> Vec<RecordedRequest> {
        self.recorded.lock().expect("recorded").clone()
    }
}

fn form_pairs(query: &str) -> BTreeMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .expect("query string")
        .into_iter()
        .collect()
}

/// Every scenario, one after the other; the requests all of them made.
pub(crate) async fn run_all_scenarios() -> Vec<RecordedRequest> {
    let mut all = Vec::new();
    all.extend(scenario_create_persistent_node().await);
    all.extend(scenario_replaced_pod_gets_its_claim_back().await);
    all.extend(scenario_instance_store_node().await);
    all.extend(scenario_create_adopts_a_running_pod().await);
    all.extend(scenario_claim_growth().await);
    all.extend(scenario_deletes().await);
    all.extend(scenario_namespace_per_cluster().await);
    all.extend(scenario_watch_events_drive_observe().await);
    all.extend(scenario_in_place_restart_recreates_the_pod().await);
    all
}
