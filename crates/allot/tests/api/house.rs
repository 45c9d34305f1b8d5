//! The house: probes, API description, reflection, metrics.

use allot_server::pb::discount::GenerateRequest;
use serde_json::Value;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::helpers::{TestApp, http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_openapi_docs_and_metrics_are_served() {
    let app = TestApp::spawn().await;
    let client = http();
    let base = app.url();

    let health: Value = client
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(
        health["storage"]["backend"],
        crate::helpers::backend().as_str()
    );
    assert_eq!(health["storage"]["accepting_writes"], true);
    let ready = client.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["storage"], crate::helpers::backend().as_str());

    let spec: Value = client
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/discount-codes/batches",
        "/api/v1/discount-codes/{code}",
        "/api/v1/discount-codes/{code}/use",
        "/health",
        "/ready",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} is not documented");
    }
    let docs = client
        .get(format!("{base}/api/v1/docs/"))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));

    let _ = client.get(format!("{base}/health")).send().await.unwrap();

    // Unknown paths: the API's JSON 404, and one bounded metric label for all of them.
    for path in ["/no/such/path", "/api/v1/nothing-here"] {
        let r = client.post(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
    }
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("allot_request_duration_seconds_bucket"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_port_speaks_grpc_with_reflection_and_http1_and_http2_rest() {
    let app = TestApp::spawn().await;
    let mut reflection = ServerReflectionClient::new(app.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(futures::stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"discount.Discount".to_owned()), "{names:?}");
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );

    let mut discount = app.discount().await;
    assert!(
        discount
            .generate(GenerateRequest {
                count: 1,
                length: vec![8]
            })
            .await
            .unwrap()
            .into_inner()
            .result
    );

    // An unknown gRPC method is UNIMPLEMENTED (grpc-status 12), not a REST 404.
    let grpc = crate::helpers::client_builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = grpc
        .post(format!("{}/no.Such/Method", app.url()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["grpc-status"], "12");

    let h2 = crate::helpers::client_builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = h2
        .get(format!("{}/health", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let h1 = crate::helpers::client_builder()
        .http1_only()
        .build()
        .unwrap();
    let response = h1
        .get(format!("{}/health", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    app.stop().await;
}
