//! A bug that panics the engine loop (outside the model, where no step-level guard catches it)
//! must not leave a dead model behind a healthy-looking server: its requests fail, `/health`
//! answers 503 naming the failed model and why, and the next request loads it afresh.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use uma_engine::{
    EngineConfig, EngineHandle, KeepAlive, ModelEntry, ModelRegistry, RegistryConfig,
};
use uma_server::{router, ServerConfig};
use uma_test_models::TestModel;

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn chat() -> Value {
    json!({"model": "gemma", "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_engine_shows_in_health_and_the_next_request_reloads_it() {
    let path = uma_test_models::path(TestModel::Gemma3_270m);
    let config = RegistryConfig {
        budget_bytes: 4 << 30,
        default_keep_alive: KeepAlive::Forever,
        check_interval: Duration::from_secs(3600),
    };
    let loader = move |entry: &ModelEntry| {
        EngineHandle::open(&path, entry.name.clone(), EngineConfig::new(256, 2))
    };
    let registry = ModelRegistry::new(vec![ModelEntry::new("gemma", 1 << 30)], config, loader)
        .expect("registry");
    let app = router(registry.clone(), ServerConfig::default());

    let (status, body) = call(&app, "POST", "/v1/chat/completions", Some(chat())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(&app, "GET", "/health", None).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")), "{body}");

    let engine = registry.models()[0].engine.clone().expect("resident");
    engine.inject_panic_for_tests();
    let started = Instant::now();
    let body = loop {
        let (status, body) = call(&app, "GET", "/health", None).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "/health never reported it: {body}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["models"][0]["status"], "failed", "{body}");
    let error = body["models"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("injected fault"), "{body}");
    let (status, models) = call(&app, "GET", "/v1/models", None).await;
    assert_eq!((status, &models["data"][0]["status"]), (StatusCode::OK, &json!("failed")));
    let (_, running) = call(&app, "GET", "/api/ps", None).await;
    assert_eq!(running["models"], json!([]), "a failed model is not running");

    // The next request gets a fresh engine; the server is healthy again.
    let (status, body) = call(&app, "POST", "/v1/chat/completions", Some(chat())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(&app, "GET", "/health", None).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")), "{body}");
    assert!(body["models"][0].get("error").is_none(), "{body}");
    let (_, models) = call(&app, "GET", "/v1/models", None).await;
    assert_eq!(models["data"][0]["status"], "resident", "{models}");
    let (_, running) = call(&app, "GET", "/api/ps", None).await;
    assert_eq!(running["models"].as_array().map(Vec::len), Some(1), "{running}");
    registry.shutdown(Duration::ZERO);
}
