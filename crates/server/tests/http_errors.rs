//! Refusals at the HTTP level answer with the same JSON error object as every API error (an
//! `error` with `message` and `type`), not with an empty or plain-text body: an unknown route, a
//! wrong method, a request target or header section too large, a path that does not decode.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use uma_engine::{EngineHandle, KeepAlive, ModelEntry, ModelRegistry, RegistryConfig};
use uma_server::{router, ServerConfig};

fn app() -> axum::Router {
    let config = RegistryConfig {
        budget_bytes: 1 << 30,
        default_keep_alive: KeepAlive::Forever,
        check_interval: Duration::from_secs(3600),
    };
    let loader = |_: &ModelEntry| -> Result<EngineHandle, String> { Err("no models here".into()) };
    let registry =
        ModelRegistry::new(vec![ModelEntry::new("m", 1)], config, loader).expect("registry");
    router(registry, ServerConfig::default())
}

async fn send(request: Request<Body>) -> (StatusCode, String, Value) {
    let response = app().oneshot(request).await.expect("response");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, content_type, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn assert_json_error(
    what: &str,
    (status, content_type, body): (StatusCode, String, Value),
    expected: StatusCode,
) {
    assert_eq!(status, expected, "{what}: {body}");
    assert!(content_type.starts_with("application/json"), "{what}: content type {content_type:?}");
    let error = &body["error"];
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
    assert!(error["type"].as_str().is_some(), "{what}: {body}");
}

fn get(uri: &str) -> Request<Body> {
    Request::builder().uri(uri).body(Body::empty()).expect("request")
}

#[tokio::test]
async fn http_level_refusals_are_json_errors() {
    assert_json_error("unknown route", send(get("/v2/nothing")).await, StatusCode::NOT_FOUND);
    let delete = Request::builder().method("DELETE").uri("/v1/models").body(Body::empty());
    assert_json_error(
        "wrong method",
        send(delete.expect("request")).await,
        StatusCode::METHOD_NOT_ALLOWED,
    );
    let long = format!("/v1/models/{}", "a".repeat(9 << 10));
    assert_json_error("long target", send(get(&long)).await, StatusCode::URI_TOO_LONG);
    let mut many = Request::builder().uri("/health");
    for i in 0..101 {
        many = many.header(format!("x-filler-{i}"), "1");
    }
    let many = many.body(Body::empty()).expect("request");
    assert_json_error(
        "many headers",
        send(many).await,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    );
    let big = Request::builder().uri("/health").header("x-big", "b".repeat(33 << 10));
    let big = big.body(Body::empty()).expect("request");
    assert_json_error("big headers", send(big).await, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // Percent-encoding that is not UTF-8.
    assert_json_error("bad path", send(get("/v1/models/%FF%FE")).await, StatusCode::BAD_REQUEST);
    // Just inside the limits, the request is served.
    let (status, _, body) = send(get(&format!("/v1/models/{}", "a".repeat(8000)))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("aaaa")), "{body}");
}
