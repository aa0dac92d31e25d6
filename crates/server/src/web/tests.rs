//! The page's routes and the plan endpoint, through the whole router (authentication, the
//! origin guard, body limits).

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use uma_engine::{EngineHandle, KeepAlive, ModelEntry, ModelRegistry, RegistryConfig};
use uma_planner::{
    KvCacheType, MachineCatalogue, ModelDescription, PlanRequest, Quantization, SlidingWindowKv,
    SpeedModel,
};

use super::{ASSETS, CONTENT_SECURITY_POLICY};
use crate::state::ServerConfig;

fn app(config: ServerConfig) -> axum::Router {
    let registry_config = RegistryConfig {
        budget_bytes: 1 << 30,
        default_keep_alive: KeepAlive::Forever,
        check_interval: Duration::from_secs(3600),
    };
    let loader = |_: &ModelEntry| -> Result<EngineHandle, String> { Err("no models here".into()) };
    let registry = ModelRegistry::new(vec![ModelEntry::new("m", 1)], registry_config, loader)
        .expect("registry");
    crate::app::router(registry, config)
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers.get(&name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{}: not JSON ({e}): {}", self.status, String::from_utf8_lossy(&self.body))
        })
    }
}

async fn send_to(app: axum::Router, request: Request<Body>) -> Answer {
    let response = app.oneshot(request).await.expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.expect("body").to_bytes().to_vec();
    Answer { status, headers, body }
}

async fn send(request: Request<Body>) -> Answer {
    send_to(app(ServerConfig::default()), request).await
}

fn get(uri: &str) -> Request<Body> {
    Request::builder().uri(uri).body(Body::empty()).expect("request")
}

fn post_plan(body: &Value) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri("/v1/plan")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

#[tokio::test]
async fn every_file_has_its_type_the_policy_and_a_validator() {
    for asset in ASSETS {
        let answer = send(get(asset.path)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", asset.path);
        assert_eq!(answer.header(header::CONTENT_TYPE), asset.content_type, "{}", asset.path);
        assert_eq!(answer.body, asset.body, "{}", asset.path);
        assert_eq!(answer.header(header::CONTENT_SECURITY_POLICY), CONTENT_SECURITY_POLICY);
        assert_eq!(answer.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert_eq!(answer.header(header::CACHE_CONTROL), "no-cache");
        let etag = answer.header(header::ETAG).to_owned();
        assert!(etag.starts_with('"') && etag.len() > 10, "{}: ETag {etag:?}", asset.path);

        // The browser's copy is current: 304 without a body, same validator.
        let again = Request::builder()
            .uri(asset.path)
            .header(header::IF_NONE_MATCH, &etag)
            .body(Body::empty())
            .expect("request");
        let cached = send(again).await;
        assert_eq!(cached.status, StatusCode::NOT_MODIFIED, "{}", asset.path);
        assert!(cached.body.is_empty());
        assert_eq!(cached.header(header::ETAG), etag);
        // A stale copy gets the file.
        let stale = Request::builder()
            .uri(asset.path)
            .header(header::IF_NONE_MATCH, "\"0000\"")
            .body(Body::empty())
            .expect("request");
        assert_eq!(send(stale).await.status, StatusCode::OK);
    }
    let policy = CONTENT_SECURITY_POLICY;
    for directive in ["default-src 'none'", "script-src 'self'", "connect-src 'self'"] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"));
    let page = send(get("/")).await;
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.contains(r#"<script type="module" src="/assets/app.js"></script>"#), "{html}");
}

#[tokio::test]
async fn the_page_needs_no_key_but_the_api_it_calls_does() {
    let config = ServerConfig { api_key: Some("secret".into()), ..ServerConfig::default() };
    let page = send_to(app(config.clone()), get("/")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!String::from_utf8_lossy(&page.body).contains("secret"));
    for uri in ["/v1/plan", "/v1/models"] {
        let denied = send_to(app(config.clone()), get(uri)).await;
        assert_eq!(denied.status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let with_key = Request::builder()
        .uri("/v1/plan")
        .header(header::AUTHORIZATION, "Bearer secret")
        .body(Body::empty())
        .expect("request");
    assert_eq!(send_to(app(config), with_key).await.status, StatusCode::OK);
}

#[tokio::test]
async fn other_sites_pages_are_refused_the_page_too() {
    let foreign = Request::builder()
        .uri("/")
        .header(header::ORIGIN, "https://evil.example")
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(foreign).await.status, StatusCode::FORBIDDEN);
    let plan = Request::builder()
        .method("POST")
        .uri("/v1/plan")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .expect("request");
    assert_eq!(send(plan).await.status, StatusCode::FORBIDDEN);
    let local = Request::builder()
        .uri("/")
        .header(header::ORIGIN, "http://127.0.0.1:8080")
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(local).await.status, StatusCode::OK);
}

#[tokio::test]
async fn no_web_serves_no_page() {
    let config = ServerConfig { web: false, ..ServerConfig::default() };
    for asset in ASSETS {
        let answer = send_to(app(config.clone()), get(asset.path)).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", asset.path);
        assert!(answer.json()["error"]["message"].is_string());
    }
    assert_eq!(send_to(app(config), get("/health")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn options_list_the_catalogue_and_quantizations() {
    let answer = send(get("/v1/plan")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    let catalogue = MachineCatalogue::load(None).expect("catalogue");
    let names: Vec<&str> = body["machines"]
        .as_array()
        .expect("machines")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(names, catalogue.names());
    assert!(body["quantizations"].as_array().expect("list").contains(&json!("q4_k_m")));
    assert_eq!(body["defaults"]["context_length"], 4096);
}

fn eight_b() -> Value {
    json!({
        "num_parameters": 8_030_000_000_u64,
        "num_hidden_layers": 32,
        "hidden_size": 4096,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128_256,
        "max_position_embeddings": 131_072,
        "quantization": "q8_0",
    })
}

#[tokio::test]
async fn plans_equal_the_planners_for_the_same_input() {
    let machines = ["this", "mac-mini-m4-16gb", "h100-sxm-80gb"];
    let body = json!({
        "description": eight_b(),
        "context_length": 8192,
        "num_sequences": 4,
        "kv_cache_type": "q8_0",
        "machines": machines,
        "bandwidth_gb_per_s": 20.5,
    });
    let answer = send(post_plan(&body)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", String::from_utf8_lossy(&answer.body));
    let report = answer.json();
    assert!(report["bandwidth_probe"].is_null(), "the bandwidth was given: no probe");
    let plans = report["plans"].as_array().expect("plans");
    assert_eq!(plans.len(), machines.len());

    // The same input, straight to the planner.
    let spec = ModelDescription {
        name: "8.03 B model".into(),
        num_parameters: 8_030_000_000,
        num_hidden_layers: 32,
        hidden_size: 4096,
        num_attention_heads: 32,
        num_key_value_heads: 8,
        head_dim: None,
        vocab_size: 128_256,
        intermediate_size: None,
        quantization: Quantization::from_name("q8_0").expect("q8_0"),
        num_experts: None,
        num_experts_per_token: None,
        tie_word_embeddings: false,
        max_position_embeddings: Some(131_072),
        sliding_window: None,
        num_sliding_window_layers: 0,
    }
    .spec()
    .expect("spec");
    let request = PlanRequest {
        context_length: 8192,
        num_sequences: 4,
        kv_cache_type: KvCacheType::Q8_0,
        sliding_window_kv: SlidingWindowKv::Full,
        ..PlanRequest::default()
    };
    let catalogue = MachineCatalogue::load(None).expect("catalogue");
    let speed_model = SpeedModel::builtin().expect("speed model");
    for (plan, name) in plans.iter().zip(machines) {
        let machine = if name == "this" {
            uma_planner::this_machine(20.5).expect("this machine")
        } else {
            catalogue.get(name).expect("catalogued").clone()
        };
        let engine = speed_model.engine(None, &machine).expect("engine");
        let expected =
            uma_planner::plan_for_machine(&spec, &machine, &engine, &request).expect("plan");
        let mut expected = serde_json::to_value(&expected).expect("JSON");
        expected["model"] = serde_json::to_value(&spec).expect("JSON");
        expected["cost"] = Value::Null;
        // Parsed from text as the answer was (serde_json's float parsing may differ from the
        // value in its last bit).
        let expected: Value = serde_json::from_str(&expected.to_string()).expect("JSON");
        assert_eq!(plan, &expected, "{name}");
    }
    // Spot checks of the shape the page reads.
    let h100 = &plans[2];
    assert_eq!(h100["machine"]["name"], "h100-sxm-80gb");
    assert_eq!(h100["memory"]["verdict"], "fits");
    assert!(h100["speed"]["decode_full_context"]["tokens_per_second"].as_f64().unwrap() > 1.0);
    assert_eq!(plans[0]["machine"]["bandwidth_gb_per_s"], 20.5);
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field() {
    let description = eight_b();
    let with = |patch: Value| {
        let mut body = json!({"description": description.clone(), "machines": ["h100-sxm-80gb"]});
        for (key, value) in patch.as_object().expect("object") {
            body[key] = value.clone();
        }
        body
    };
    let described = |field: &str, value: Value| {
        let mut d = description.clone();
        d[field] = value;
        json!({"description": d, "machines": ["h100-sxm-80gb"]})
    };
    let many: Vec<String> = (0..65).map(|_| "h100-sxm-80gb".to_owned()).collect();
    let cases = [
        (json!({"machines": ["h100-sxm-80gb"]}), "model"),
        (json!({"model": "x", "description": description.clone()}), "model"),
        (json!({"model": "../escape", "machines": ["h100-sxm-80gb"]}), "model"),
        (with(json!({"machines": ["h100-sxm-80gb", "no-such-machine"]})), "machines[1]"),
        (with(json!({"machines": []})), "machines"),
        (with(json!({"machines": many})), "machines"),
        (with(json!({"machines": [""]})), "machines[0]"),
        (with(json!({"context_length": 0})), "context_length"),
        (with(json!({"context_length": 200_000})), "context_length"),
        (with(json!({"context_length": "long"})), "context_length"),
        (with(json!({"num_sequences": 5000})), "num_sequences"),
        (with(json!({"num_sequences": -1})), "num_sequences"),
        (with(json!({"kv_cache_type": "q4_0"})), "kv_cache_type"),
        (with(json!({"bandwidth_gb_per_s": -3.0})), "bandwidth_gb_per_s"),
        (with(json!({"max_num_batched_tokens": 0})), "max_num_batched_tokens"),
        (with(json!({"colour": "blue"})), "."),
        (with(json!({"engine": "warp-drive"})), "engine"),
        (described("num_hidden_layers", json!(0)), "description.num_hidden_layers"),
        (described("num_hidden_layers", json!(1_000_000)), "description.num_hidden_layers"),
        (described("hidden_size", json!(1u64 << 40)), "description.hidden_size"),
        (described("num_key_value_heads", json!(64)), "description.num_key_value_heads"),
        (described("quantization", json!("q3_x")), "description.quantization"),
        (described("num_parameters", json!(1000)), "description.num_parameters"),
        (described("num_parameters", json!("8B")), "description.num_parameters"),
    ];
    for (body, param) in cases {
        let answer = send(post_plan(&body)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}: {}", answer.json());
        let error = &answer.json()["error"];
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        if param != "." {
            assert_eq!(error["param"], param, "{body}: {error}");
        }
    }
    // Far past any machine's memory: refused before the planner multiplies.
    let huge = json!({
        "description": {
            "num_parameters": 1_000_000_000_000_u64, "num_hidden_layers": 1024,
            "hidden_size": 1_048_576, "num_attention_heads": 4096, "vocab_size": 16_777_216,
        },
        "context_length": 16_777_216, "num_sequences": 1024, "machines": ["h100-sxm-80gb"],
    });
    let answer = send(post_plan(&huge)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.json());
    // Not JSON: 400 as on every route.
    let text = Request::builder()
        .method("POST")
        .uri("/v1/plan")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{nope"))
        .expect("request");
    assert_eq!(send(text).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn this_machines_bandwidth_is_measured_once_when_not_given() {
    let body = json!({"description": eight_b(), "machines": ["this"]});
    let first = send(post_plan(&body)).await;
    assert_eq!(first.status, StatusCode::OK, "{}", String::from_utf8_lossy(&first.body));
    let first = first.json();
    let measured = first["bandwidth_probe"]["gb_per_s"].as_f64().expect("a probe");
    assert!(measured > 0.0);
    assert_eq!(first["plans"][0]["machine"]["bandwidth_gb_per_s"].as_f64(), Some(measured));
    // The next plan reuses the measurement (the probe is not run again).
    let second = send(post_plan(&body)).await.json();
    assert_eq!(second["bandwidth_probe"], first["bandwidth_probe"]);
}
