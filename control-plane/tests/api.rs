//! Black-box tests of the REST API: the real app on a random port, a fresh database per test,
//! SQLite and PostgreSQL alike.

mod common;

use std::time::Duration;

use common::{Backend, TestApp};
use millrace_control_plane::domain::{ClusterState, NodeVolume, OperationState};
use millrace_control_plane::store::NodeRecord;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

on_both_databases!(
    open_endpoints_need_no_token,
    everything_else_needs_an_admin_token,
    create_describe_list_delete,
    list_paginates_and_filters,
    bad_input_is_refused_precisely_and_stores_nothing,
    idempotency_key_replays,
    update_endpoints_check_then_start_an_operation,
    configurations_have_revisions,
    tags_on_clusters,
    agents_report_heartbeats,
    catalogs,
);

fn create_body(name: &str) -> Value {
    json!({
        "clusterName": name,
        "numberOfBrokerNodes": 3,
        "brokerNodeGroupInfo": {
            "instanceType": "kafka.m5.large",
            "storageInfo": { "ebsStorageInfo": { "volumeSize": 100 } }
        },
        "tags": { "team": "data" }
    })
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("a JSON body")
}

/// Asserts a problem+json answer with this status and (when given) field; returns it.
async fn problem(response: reqwest::Response, status: StatusCode, field: Option<&str>) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body = json_of(response).await;
    assert_eq!(body["status"], status.as_u16());
    assert!(body["type"]
        .as_str()
        .unwrap()
        .starts_with("urn:millrace:problem:"));
    assert!(!body["detail"].as_str().unwrap().is_empty());
    if let Some(field) = field {
        assert_eq!(body["field"], field, "problem: {body}");
    }
    body
}

async fn create(app: &TestApp, name: &str) -> Value {
    let response = app
        .post("/v1/clusters")
        .json(&create_body(name))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    json_of(response).await
}

async fn cluster_count(app: &TestApp) -> usize {
    let list = json_of(app.get("/v1/clusters?maxResults=100").send().await.unwrap()).await;
    list["clusterInfoList"].as_array().unwrap().len()
}

async fn open_endpoints_need_no_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(health.headers().contains_key("x-request-id"));
    assert_eq!(json_of(health).await["status"], "ok");
    let doc = json_of(app.http.get(app.url("/openapi.json")).send().await.unwrap()).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/clusters"]["post"]["operationId"] == "createCluster");
    let viewer = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(viewer.status(), StatusCode::OK);
    assert!(viewer.text().await.unwrap().contains("swagger"));
    // An unknown path is a problem too.
    problem(
        app.get("/v1/nothing-here").send().await.unwrap(),
        StatusCode::NOT_FOUND,
        None,
    )
    .await;
}

async fn everything_else_needs_an_admin_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bare = app.http.get(app.url("/v1/clusters")).send().await.unwrap();
    assert_eq!(bare.headers()["www-authenticate"], "Bearer");
    problem(bare, StatusCode::UNAUTHORIZED, None).await;
    let wrong = app
        .http
        .post(app.url("/v1/clusters"))
        .bearer_auth("mr_not-a-token")
        .json(&create_body("orders"))
        .send()
        .await
        .unwrap();
    let body = problem(wrong, StatusCode::UNAUTHORIZED, None).await;
    assert!(
        !body.to_string().contains("mr_not-a-token"),
        "no secret echoed"
    );
    // Agent tokens do not open the public API.
    let cluster = create(&app, "orders").await;
    let cluster_id: Uuid = cluster["clusterId"].as_str().unwrap().parse().unwrap();
    let agent = app.store.create_agent_token(cluster_id, 1).await.unwrap();
    let as_agent = app
        .http
        .get(app.url("/v1/clusters"))
        .bearer_auth(agent)
        .send()
        .await
        .unwrap();
    problem(as_agent, StatusCode::UNAUTHORIZED, None).await;
    assert_eq!(cluster_count(&app).await, 1);
}

async fn create_describe_list_delete(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = create(&app, "orders").await;
    let id = created["clusterId"].as_str().unwrap().to_owned();
    assert_eq!(created["state"], "CREATING");
    assert_eq!(created["currentVersion"], "1");
    assert_eq!(
        created["clusterArn"],
        format!("arn:millrace:kafka:local:cluster/orders/{id}")
    );
    let operation_id = created["operationId"].as_str().unwrap().to_owned();
    // The reconciler was woken.
    tokio::time::timeout(
        Duration::from_secs(1),
        app.state.reconcile_wakeup.notified(),
    )
    .await
    .expect("create wakes the reconciler");

    let described = json_of(app.get(&format!("/v1/clusters/{id}")).send().await.unwrap()).await;
    assert_eq!(described["clusterName"], "orders");
    assert_eq!(described["kafkaVersion"], "millrace-0.1.0");
    assert_eq!(described["numberOfBrokerNodes"], 3);
    assert_eq!(
        described["brokerNodeGroupInfo"]["zones"],
        json!(["zone-a", "zone-b", "zone-c"])
    );
    assert_eq!(
        described["brokerNodeGroupInfo"]["storageInfo"]["ebsStorageInfo"]["volumeSize"],
        100
    );
    assert_eq!(described["tags"]["team"], "data");
    assert!(described["creationTime"].is_string());

    let bootstrap = json_of(
        app.get(&format!("/v1/clusters/{id}/bootstrap-brokers"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        bootstrap.get("bootstrapBrokerString").is_none(),
        "not ACTIVE yet"
    );
    app.store
        .set_cluster_state(
            id.parse().unwrap(),
            ClusterState::Active,
            Some(Some("127.0.0.1:19092,127.0.0.1:19093")),
        )
        .await
        .unwrap();
    let bootstrap = json_of(
        app.get(&format!("/v1/clusters/{id}/bootstrap-brokers"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        bootstrap["bootstrapBrokerString"],
        "127.0.0.1:19092,127.0.0.1:19093"
    );

    let nodes = json_of(
        app.get(&format!("/v1/clusters/{id}/nodes"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(nodes["nodeInfoList"], json!([]));
    let operation = json_of(
        app.get(&format!("/v1/operations/{operation_id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(operation["operationType"], "CREATE");
    assert_eq!(operation["operationState"], "PENDING");
    assert_eq!(operation["targetClusterInfo"]["numberOfBrokerNodes"], 3);

    let list = json_of(app.get("/v1/clusters").send().await.unwrap()).await;
    assert_eq!(list["clusterInfoList"][0]["clusterId"], id.as_str());
    assert!(list.get("nextToken").is_none());

    // Delete with a stale version is refused; with the current one it starts.
    let stale = app
        .delete(&format!("/v1/clusters/{id}?currentVersion=1"))
        .send()
        .await
        .unwrap();
    problem(stale, StatusCode::CONFLICT, Some("currentVersion")).await;
    let deleted = app
        .delete(&format!("/v1/clusters/{id}?currentVersion=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    let deleted = json_of(deleted).await;
    assert_eq!(deleted["state"], "DELETING");
    let operations = json_of(
        app.get(&format!("/v1/clusters/{id}/operations"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let types: Vec<_> = operations["clusterOperationInfoList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["operationType"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["DELETE", "CREATE"]);
    problem(
        app.delete(&format!("/v1/clusters/{id}"))
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
        Some("state"),
    )
    .await;

    for path in [
        format!("/v1/clusters/{}", Uuid::new_v4()),
        "/v1/clusters/not-a-uuid".to_owned(),
        format!("/v1/operations/{}", Uuid::new_v4()),
        format!("/v1/clusters/{}/nodes", Uuid::new_v4()),
    ] {
        problem(
            app.get(&path).send().await.unwrap(),
            StatusCode::NOT_FOUND,
            None,
        )
        .await;
    }
}

async fn list_paginates_and_filters(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut ids = Vec::new();
    for name in ["alpha-1", "beta-1", "alpha-2", "alpha-3", "beta-2"] {
        ids.push(
            create(&app, name).await["clusterId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut request = app.get("/v1/clusters").query(&[("maxResults", "2")]);
        if let Some(token) = &next {
            request = request.query(&[("nextToken", token)]);
        }
        let page = json_of(request.send().await.unwrap()).await;
        let list = page["clusterInfoList"].as_array().unwrap();
        assert!(list.len() <= 2);
        seen.extend(
            list.iter()
                .map(|c| c["clusterId"].as_str().unwrap().to_owned()),
        );
        match page["nextToken"].as_str() {
            Some(token) => next = Some(token.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let alpha = json_of(
        app.get("/v1/clusters?clusterNameFilter=alpha")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(alpha["clusterInfoList"].as_array().unwrap().len(), 3);
    app.store
        .set_cluster_state(ids[1].parse().unwrap(), ClusterState::Active, None)
        .await
        .unwrap();
    let active = json_of(app.get("/v1/clusters?state=ACTIVE").send().await.unwrap()).await;
    assert_eq!(active["clusterInfoList"][0]["clusterName"], "beta-1");
    assert_eq!(active["clusterInfoList"].as_array().unwrap().len(), 1);

    for (query, field) in [
        ("maxResults=0", "maxResults"),
        ("maxResults=101", "maxResults"),
        ("maxResults=ten", "maxResults"),
        ("state=RUNNING", "state"),
        ("nextToken=zzz", "nextToken"),
    ] {
        let response = app
            .get(&format!("/v1/clusters?{query}"))
            .send()
            .await
            .unwrap();
        problem(response, StatusCode::UNPROCESSABLE_ENTITY, Some(field)).await;
    }
}

async fn bad_input_is_refused_precisely_and_stores_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut body = create_body("orders");
        edit(&mut body);
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (with(&|b| b["surprise"] = json!(1)), "surprise"),
        (
            with(&|b| {
                b["brokerNodeGroupInfo"]["storageInfo"]["ebsStorageInfo"]["iops"] = json!(3000)
            }),
            "brokerNodeGroupInfo.storageInfo.ebsStorageInfo.iops",
        ),
        (
            with(&|b| b["clusterName"] = json!("1-starts-with-a-digit")),
            "clusterName",
        ),
        (
            with(&|b| b["clusterName"] = json!("has_underscore")),
            "clusterName",
        ),
        (
            with(&|b| b["clusterName"] = json!("x".repeat(65))),
            "clusterName",
        ),
        (
            with(&|b| b["numberOfBrokerNodes"] = json!(4)),
            "numberOfBrokerNodes",
        ),
        (
            with(&|b| b["numberOfBrokerNodes"] = json!(33)),
            "numberOfBrokerNodes",
        ),
        (
            with(&|b| b["numberOfBrokerNodes"] = json!(1)),
            "numberOfBrokerNodes",
        ),
        (
            with(&|b| {
                b["brokerNodeGroupInfo"]["storageInfo"]["ebsStorageInfo"]["volumeSize"] = json!(0)
            }),
            "brokerNodeGroupInfo.storageInfo.ebsStorageInfo.volumeSize",
        ),
        (
            with(&|b| {
                b["brokerNodeGroupInfo"]["storageInfo"]["ebsStorageInfo"]["volumeSize"] =
                    json!(16385)
            }),
            "brokerNodeGroupInfo.storageInfo.ebsStorageInfo.volumeSize",
        ),
        (
            with(&|b| b["brokerNodeGroupInfo"]["storageInfo"]["instanceStorageInfo"] = json!({})),
            "brokerNodeGroupInfo.storageInfo",
        ),
        (
            with(&|b| b["brokerNodeGroupInfo"]["instanceType"] = json!("kafka.x99.huge")),
            "brokerNodeGroupInfo.instanceType",
        ),
        (
            with(&|b| b["kafkaVersion"] = json!("2.8.1")),
            "kafkaVersion",
        ),
        (
            with(&|b| b["brokerNodeGroupInfo"]["zones"] = json!(["zone-a", "zone-a"])),
            "brokerNodeGroupInfo.zones",
        ),
        (
            with(&|b| b["numberOfBrokerNodes"] = json!("three")),
            "numberOfBrokerNodes",
        ),
        (
            with(&|b| {
                b.as_object_mut().unwrap().remove("clusterName");
            }),
            "clusterName",
        ),
        (
            with(&|b| b["configurationInfo"] = json!({"arn": "arn:nope", "revision": 1})),
            "configurationInfo.arn",
        ),
    ];
    for (body, field) in cases {
        let response = app.post("/v1/clusters").json(&body).send().await.unwrap();
        problem(response, StatusCode::UNPROCESSABLE_ENTITY, Some(field)).await;
    }
    // One zone and one broker is a valid single-node cluster (not created here: the name is
    // the same as the bad requests', to show none of them was stored).
    let malformed = app
        .post("/v1/clusters")
        .header("content-type", "application/json")
        .body("{\"clusterName\": ")
        .send()
        .await
        .unwrap();
    problem(malformed, StatusCode::BAD_REQUEST, None).await;
    let not_json = app
        .post("/v1/clusters")
        .header("content-type", "text/plain")
        .body(create_body("orders").to_string())
        .send()
        .await
        .unwrap();
    problem(not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE, None).await;
    let mut huge = create_body("orders");
    huge["tags"] = json!({ "padding": "x".repeat(70 * 1024) });
    let too_big = app.post("/v1/clusters").json(&huge).send().await.unwrap();
    problem(too_big, StatusCode::PAYLOAD_TOO_LARGE, None).await;
    assert_eq!(cluster_count(&app).await, 0, "nothing was stored");

    let single = with(&|b| {
        b["numberOfBrokerNodes"] = json!(1);
        b["brokerNodeGroupInfo"]["zones"] = json!(["zone-a"]);
    });
    let response = app.post("/v1/clusters").json(&single).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let duplicate = app
        .post("/v1/clusters")
        .json(&create_body("orders"))
        .send()
        .await
        .unwrap();
    problem(duplicate, StatusCode::CONFLICT, Some("clusterName")).await;
    assert_eq!(cluster_count(&app).await, 1);
}

async fn idempotency_key_replays(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app
        .post("/v1/clusters")
        .header("Idempotency-Key", "create-orders-1")
        .json(&create_body("orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first = json_of(first).await;
    let again = app
        .post("/v1/clusters")
        .header("Idempotency-Key", "create-orders-1")
        .json(&create_body("orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let again = json_of(again).await;
    assert_eq!(again["clusterId"], first["clusterId"]);
    assert_eq!(again["operationId"], first["operationId"]);
    let mut changed = create_body("orders");
    changed["numberOfBrokerNodes"] = json!(6);
    let reused = app
        .post("/v1/clusters")
        .header("Idempotency-Key", "create-orders-1")
        .json(&changed)
        .send()
        .await
        .unwrap();
    problem(
        reused,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("Idempotency-Key"),
    )
    .await;

    // clientRequestToken in the body does the same.
    let mut body = create_body("payments");
    body["clientRequestToken"] = json!("token-7");
    let a = json_of(app.post("/v1/clusters").json(&body).send().await.unwrap()).await;
    let b = app.post("/v1/clusters").json(&body).send().await.unwrap();
    assert_eq!(b.status(), StatusCode::OK);
    assert_eq!(json_of(b).await["clusterId"], a["clusterId"]);
    assert_eq!(cluster_count(&app).await, 2);
}

async fn update_endpoints_check_then_start_an_operation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = create(&app, "orders").await;
    let id = created["clusterId"].as_str().unwrap().to_owned();
    let count_path = format!("/v1/clusters/{id}/nodes/count");

    // CREATING: no updates.
    let creating = app
        .put(&count_path)
        .json(&json!({"currentVersion": "1", "targetNumberOfBrokerNodes": 6}))
        .send()
        .await
        .unwrap();
    problem(creating, StatusCode::CONFLICT, Some("state")).await;

    let active = app
        .store
        .set_cluster_state(id.parse().unwrap(), ClusterState::Active, Some(Some("h:1")))
        .await
        .unwrap();
    let version = active.version_text();
    let before = json_of(app.get(&format!("/v1/clusters/{id}")).send().await.unwrap()).await;

    let stale = app
        .put(&count_path)
        .json(&json!({"currentVersion": "1", "targetNumberOfBrokerNodes": 6}))
        .send()
        .await
        .unwrap();
    problem(stale, StatusCode::CONFLICT, Some("currentVersion")).await;
    let if_match = app
        .put(&count_path)
        .header("If-Match", "\"1\"")
        .json(&json!({"currentVersion": version, "targetNumberOfBrokerNodes": 6}))
        .send()
        .await
        .unwrap();
    problem(if_match, StatusCode::PRECONDITION_FAILED, None).await;
    let uneven = app
        .put(&count_path)
        .json(&json!({"currentVersion": version, "targetNumberOfBrokerNodes": 4}))
        .send()
        .await
        .unwrap();
    problem(
        uneven,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("targetNumberOfBrokerNodes"),
    )
    .await;
    let slow = app
        .put(&count_path)
        .json(
            &json!({"currentVersion": version, "targetNumberOfBrokerNodes": 6,
                      "replicationThrottleBytesPerSecond": 1000}),
        )
        .send()
        .await
        .unwrap();
    problem(
        slow,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("replicationThrottleBytesPerSecond"),
    )
    .await;
    let unknown = app
        .put(&count_path)
        .json(&json!({"currentVersion": version, "targetNumberOfBrokerNodes": 6, "force": true}))
        .send()
        .await
        .unwrap();
    problem(unknown, StatusCode::UNPROCESSABLE_ENTITY, Some("force")).await;

    let shrink = app
        .put(&format!("/v1/clusters/{id}/nodes/storage"))
        .json(&json!({"currentVersion": version, "targetEbsStorageInfo": {"volumeSize": 50}}))
        .send()
        .await
        .unwrap();
    problem(
        shrink,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("targetEbsStorageInfo.volumeSize"),
    )
    .await;
    let reboot_unknown = app
        .post(&format!("/v1/clusters/{id}/reboot-broker"))
        .json(&json!({"currentVersion": version, "brokerIds": [7]}))
        .send()
        .await
        .unwrap();
    problem(
        reboot_unknown,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("brokerIds"),
    )
    .await;
    app.store
        .upsert_node(&NodeRecord::new(
            id.parse().unwrap(),
            1,
            "zone-a",
            "millrace-0.1.0",
            NodeVolume {
                persistent: true,
                size_gib: Some(100),
                location: None,
            },
            "RUNNING",
        ))
        .await
        .unwrap();

    let same_type = app
        .put(&format!("/v1/clusters/{id}/nodes/type"))
        .json(&json!({"currentVersion": version, "targetInstanceType": "kafka.m5.large"}))
        .send()
        .await
        .unwrap();
    problem(
        same_type,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("targetInstanceType"),
    )
    .await;
    // Same version on every broker: nothing to do.
    let same_version = app
        .put(&format!("/v1/clusters/{id}/version"))
        .json(&json!({"currentVersion": version, "targetKafkaVersion": "millrace-0.1.0"}))
        .send()
        .await
        .unwrap();
    problem(
        same_version,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("targetKafkaVersion"),
    )
    .await;
    let unknown_version = app
        .put(&format!("/v1/clusters/{id}/version"))
        .json(&json!({"currentVersion": version, "targetKafkaVersion": "3.9.0"}))
        .send()
        .await
        .unwrap();
    problem(
        unknown_version,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("targetKafkaVersion"),
    )
    .await;
    let bad_strategy = app
        .put(&format!("/v1/clusters/{id}/version"))
        .json(&json!({"currentVersion": version, "targetKafkaVersion": "millrace-0.0.9", "upgradeStrategy": "blueGreen"}))
        .send()
        .await
        .unwrap();
    problem(
        bad_strategy,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("upgradeStrategy"),
    )
    .await;
    let missing_config = app
        .put(&format!("/v1/clusters/{id}/configuration"))
        .json(&json!({"currentVersion": version, "configurationInfo": {"arn": "arn:none", "revision": 1}}))
        .send()
        .await
        .unwrap();
    problem(
        missing_config,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("configurationInfo.arn"),
    )
    .await;

    let after = json_of(app.get(&format!("/v1/clusters/{id}")).send().await.unwrap()).await;
    assert_eq!(after, before, "a refused change changes nothing");
    assert_eq!(
        operation_count(&app, &id).await,
        1,
        "no operation was recorded"
    );

    // A valid change is stored with its operation, and the cluster leaves ACTIVE (once the
    // create's operation is over: one operation at a time).
    for unfinished in app
        .store
        .unfinished_operations(id.parse().unwrap())
        .await
        .unwrap()
    {
        app.store
            .set_operation_state(unfinished.id, OperationState::UpdateComplete, None)
            .await
            .unwrap();
    }
    let reboot = app
        .post(&format!("/v1/clusters/{id}/reboot-broker"))
        .json(&json!({"currentVersion": version, "brokerIds": [1]}))
        .send()
        .await
        .unwrap();
    assert_eq!(reboot.status(), StatusCode::OK);
    let reboot = json_of(reboot).await;
    assert_eq!(reboot["operationType"], "REBOOT_NODE");
    let operation_id = reboot["operationId"].as_str().unwrap().to_owned();
    let cluster = json_of(app.get(&format!("/v1/clusters/{id}")).send().await.unwrap()).await;
    assert_eq!(cluster["state"], "REBOOTING_BROKER");
    let described = json_of(
        app.get(&format!("/v1/operations/{operation_id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(described["operationState"], "PENDING");
    assert_eq!(operation_count(&app, &id).await, 2);
    let version = cluster["currentVersion"].as_str().unwrap().to_owned();

    // One change at a time: refused while the cluster is busy...
    let busy = app
        .put(&format!("/v1/clusters/{id}/nodes/storage"))
        .json(&json!({"currentVersion": version, "targetEbsStorageInfo": {"volumeSize": 200}}))
        .send()
        .await
        .unwrap();
    problem(busy, StatusCode::CONFLICT, Some("state")).await;
    // ...and while its operation has not finished, even if the cluster looks ACTIVE.
    let active = app
        .store
        .set_cluster_state(id.parse().unwrap(), ClusterState::Active, None)
        .await
        .unwrap();
    let version = active.version_text();
    let still_running = app
        .put(&format!("/v1/clusters/{id}/nodes/storage"))
        .json(&json!({"currentVersion": version, "targetEbsStorageInfo": {"volumeSize": 200}}))
        .send()
        .await
        .unwrap();
    let body = problem(still_running, StatusCode::CONFLICT, None).await;
    assert!(
        body["detail"].as_str().unwrap().contains(&operation_id),
        "{body}"
    );
    app.store
        .set_operation_state(
            operation_id.parse().unwrap(),
            OperationState::UpdateComplete,
            None,
        )
        .await
        .unwrap();
    let grow = app
        .put(&format!("/v1/clusters/{id}/nodes/storage"))
        .json(&json!({"currentVersion": version, "targetEbsStorageInfo": {"volumeSize": 200}}))
        .send()
        .await
        .unwrap();
    assert_eq!(grow.status(), StatusCode::OK);
    assert_eq!(
        json_of(grow).await["operationType"],
        "UPDATE_BROKER_STORAGE"
    );
    let cluster = json_of(app.get(&format!("/v1/clusters/{id}")).send().await.unwrap()).await;
    assert_eq!(cluster["state"], "UPDATING");
    let operations = json_of(
        app.get(&format!("/v1/clusters/{id}/operations"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let newest = &operations["clusterOperationInfoList"][0];
    assert_eq!(newest["operationType"], "UPDATE_BROKER_STORAGE");
    assert_eq!(
        newest["sourceClusterInfo"]["brokerNodeGroupInfo"]["storageInfo"]["ebsStorageInfo"]
            ["volumeSize"],
        100
    );
    assert_eq!(
        newest["targetClusterInfo"]["brokerNodeGroupInfo"]["storageInfo"]["ebsStorageInfo"]
            ["volumeSize"],
        200
    );
}

async fn operation_count(app: &TestApp, id: &str) -> usize {
    let operations = json_of(
        app.get(&format!("/v1/clusters/{id}/operations"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    operations["clusterOperationInfoList"]
        .as_array()
        .unwrap()
        .len()
}

async fn configurations_have_revisions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = app
        .post("/v1/configurations")
        .json(&json!({
            "name": "low-retention",
            "description": "one hour",
            "serverProperties": "log.retention.hours=1\n# comment\n"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created = json_of(created).await;
    let arn = created["arn"].as_str().unwrap().to_owned();
    assert_eq!(created["latestRevision"]["revision"], 1);
    let duplicate = app
        .post("/v1/configurations")
        .json(&json!({"name": "low-retention", "serverProperties": ""}))
        .send()
        .await
        .unwrap();
    problem(duplicate, StatusCode::CONFLICT, Some("name")).await;
    let bad = app
        .post("/v1/configurations")
        .json(&json!({"name": "bad", "serverProperties": "a=1\nthis is not a property"}))
        .send()
        .await
        .unwrap();
    let bad = problem(
        bad,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("serverProperties"),
    )
    .await;
    assert!(bad["detail"].as_str().unwrap().contains("line 2"));

    let revised = app
        .put("/v1/configurations/low-retention")
        .json(
            &json!({"description": "five minutes", "serverProperties": "log.retention.minutes=5"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(revised.status(), StatusCode::OK);
    assert_eq!(json_of(revised).await["revision"], 2);
    let encoded_arn = arn.replace(':', "%3A").replace('/', "%2F");
    let described = json_of(
        app.get(&format!("/v1/configurations/{encoded_arn}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(described["latestRevision"]["revision"], 2);
    assert_eq!(described["latestRevision"]["description"], "five minutes");
    let first = json_of(
        app.get("/v1/configurations/low-retention/revisions/1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        first["serverProperties"],
        "log.retention.hours=1\n# comment\n"
    );
    problem(
        app.get("/v1/configurations/low-retention/revisions/3")
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        None,
    )
    .await;
    let list = json_of(app.get("/v1/configurations").send().await.unwrap()).await;
    assert_eq!(list["configurations"].as_array().unwrap().len(), 1);

    // A cluster using revision 2; revision 3 does not exist.
    let mut body = create_body("configured");
    body["configurationInfo"] = json!({"arn": arn, "revision": 3});
    let response = app.post("/v1/clusters").json(&body).send().await.unwrap();
    problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("configurationInfo.revision"),
    )
    .await;
    body["configurationInfo"]["revision"] = json!(2);
    let response = app.post("/v1/clusters").json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(json_of(response).await["state"], "CREATING");
    problem(
        app.delete("/v1/configurations/low-retention")
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
        None,
    )
    .await;
    let spare = app
        .post("/v1/configurations")
        .json(
            &json!({"name": "spare", "serverProperties": "", "kafkaVersions": ["millrace-0.1.0"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(spare.status(), StatusCode::CREATED);
    let deleted = app.delete("/v1/configurations/spare").send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    problem(
        app.get("/v1/configurations/spare").send().await.unwrap(),
        StatusCode::NOT_FOUND,
        None,
    )
    .await;
}

async fn tags_on_clusters(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = create(&app, "orders").await;
    let id = created["clusterId"].as_str().unwrap().to_owned();
    let arn = created["clusterArn"]
        .as_str()
        .unwrap()
        .replace(':', "%3A")
        .replace('/', "%2F");
    let tagged = app
        .post(&format!("/v1/tags/{arn}"))
        .json(&json!({"tags": {"env": "prod", "team": "payments"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.status(), StatusCode::NO_CONTENT);
    let tags = json_of(app.get(&format!("/v1/tags/{id}")).send().await.unwrap()).await;
    assert_eq!(tags["tags"], json!({"env": "prod", "team": "payments"}));
    let untagged = app
        .delete(&format!("/v1/tags/{id}?tagKeys=env&tagKeys=absent"))
        .send()
        .await
        .unwrap();
    assert_eq!(untagged.status(), StatusCode::NO_CONTENT);
    let tags = json_of(app.get(&format!("/v1/tags/{arn}")).send().await.unwrap()).await;
    assert_eq!(tags["tags"], json!({"team": "payments"}));
    let reserved = app
        .post(&format!("/v1/tags/{id}"))
        .json(&json!({"tags": {"aws:owner": "x"}}))
        .send()
        .await
        .unwrap();
    problem(reserved, StatusCode::UNPROCESSABLE_ENTITY, Some("tags")).await;
    problem(
        app.get(&format!("/v1/tags/{}", Uuid::new_v4()))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        None,
    )
    .await;
    let described = json_of(app.get(&format!("/v1/clusters/{id}")).send().await.unwrap()).await;
    assert_eq!(
        described["currentVersion"], "1",
        "tags do not change the version"
    );
}

async fn agents_report_heartbeats(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let created = create(&app, "orders").await;
    let id: Uuid = created["clusterId"].as_str().unwrap().parse().unwrap();
    for broker in [1, 2] {
        app.store
            .upsert_node(&NodeRecord::new(
                id,
                broker,
                "zone-a",
                "millrace-0.1.0",
                NodeVolume {
                    persistent: true,
                    size_gib: Some(100),
                    location: None,
                },
                "RUNNING",
            ))
            .await
            .unwrap();
    }
    let token = app.store.create_agent_token(id, 1).await.unwrap();
    let beat = json!({
        "version": "millrace-0.1.0",
        "state": "running",
        "diskUsedBytes": 12345,
        "underReplicatedPartitions": 0,
        "brokerPid": 999
    });
    let path = format!("/internal/v1/clusters/{id}/nodes/1/heartbeat");
    let response = app
        .http
        .post(app.url(&path))
        .bearer_auth(&token)
        .json(&beat)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let nodes = json_of(
        app.get(&format!("/v1/clusters/{id}/nodes"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let heartbeat = &nodes["nodeInfoList"][0]["lastHeartbeat"];
    assert_eq!(heartbeat["state"], "running");
    assert_eq!(heartbeat["diskUsedBytes"], 12345);
    assert!(heartbeat["receivedAt"].is_string());

    // The admin token is not an agent token; an agent cannot speak for another node.
    let as_admin = app.post(&path).json(&beat).send().await.unwrap();
    problem(as_admin, StatusCode::UNAUTHORIZED, None).await;
    let other = app
        .http
        .post(app.url(&format!("/internal/v1/clusters/{id}/nodes/2/heartbeat")))
        .bearer_auth(&token)
        .json(&beat)
        .send()
        .await
        .unwrap();
    problem(other, StatusCode::FORBIDDEN, None).await;
    let mut bad = beat.clone();
    bad["state"] = json!("sleeping");
    let response = app
        .http
        .post(app.url(&path))
        .bearer_auth(&token)
        .json(&bad)
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::UNPROCESSABLE_ENTITY, Some("state")).await;
}

async fn catalogs(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let versions = json_of(app.get("/v1/versions").send().await.unwrap()).await;
    assert_eq!(versions["kafkaVersions"][0]["version"], "millrace-0.1.0");
    let types = json_of(app.get("/v1/broker-types").send().await.unwrap()).await;
    let large = types["brokerTypes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["instanceType"] == "kafka.m5.large")
        .unwrap()
        .clone();
    assert_eq!(
        large,
        json!({"instanceType": "kafka.m5.large", "vcpus": 2, "memoryGib": 8, "instanceStoreGib": 100})
    );
}
