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
    app_with(ServerConfig::default())
}

fn app_with(server_config: ServerConfig) -> axum::Router {
    let config = RegistryConfig {
        budget_bytes: 1 << 30,
        default_keep_alive: KeepAlive::Forever,
        check_interval: Duration::from_secs(3600),
    };
    let loader = |_: &ModelEntry| -> Result<EngineHandle, String> { Err("no models here".into()) };
    let registry =
        ModelRegistry::new(vec![ModelEntry::new("m", 1)], config, loader).expect("registry");
    router(registry, server_config)
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

/// CORS headers go to the pages that may call uma (local ones, and those `--allow-origin`
/// names), with their own origin; their preflight requests are answered; other pages get 403
/// and no CORS header, and clients that send no `Origin` get none either.
#[tokio::test]
async fn cors_only_for_pages_that_may_call_uma() {
    let mut config = ServerConfig::default();
    config.origins.allowed_origins = vec!["https://app.example".into()];
    let call = |method: &str, origin: Option<&str>| {
        let mut request = Request::builder().method(method).uri("/v1/chat/completions");
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if method == "OPTIONS" {
            request = request
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type, authorization");
        }
        let app = app_with(config.clone());
        let request = request.body(Body::empty()).expect("request");
        async move { app.oneshot(request).await.expect("response") }
    };
    for origin in ["http://localhost:5173", "https://app.example"] {
        let preflight = call("OPTIONS", Some(origin)).await;
        assert_eq!(preflight.status(), StatusCode::NO_CONTENT, "{origin}");
        let headers = preflight.headers();
        assert_eq!(headers["access-control-allow-origin"], origin);
        assert!(headers["access-control-allow-methods"].to_str().unwrap().contains("POST"));
        assert_eq!(headers["access-control-allow-headers"], "content-type, authorization");
        // The request itself (refused here for its empty body) carries the header too.
        let answer = call("POST", Some(origin)).await;
        assert_eq!(answer.headers()["access-control-allow-origin"], origin);
    }
    for origin in ["https://evil.example", "null"] {
        for method in ["OPTIONS", "POST"] {
            let refused = call(method, Some(origin)).await;
            assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{method} {origin}");
            assert!(refused.headers().get("access-control-allow-origin").is_none());
        }
    }
    let plain = call("POST", None).await;
    assert!(plain.headers().get("access-control-allow-origin").is_none());
}
