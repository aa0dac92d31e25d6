//! `GET /metrics` of `uma serve` read by the Prometheus project's own OpenMetrics parser (the
//! `prometheus-client` Python package, strict about the format), after known traffic: every
//! count must match what was sent, and the gauges what `/health` says.

#[path = "common/server.rs"]
mod server;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use server::{request, venv_python, Server};
use uma_test_models::TestModel;

/// The families of `text`, parsed by `parse_metrics.py`.
fn parse(text: &str) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/parse_metrics.py");
    let mut child = Command::new(venv_python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the parser");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write the metrics");
    let output = child.wait_with_output().expect("parser output");
    assert!(
        output.status.success(),
        "the OpenMetrics parser refused the output:\n{}\n--- metrics ---\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Value>(&output.stdout).expect("JSON").as_array().expect("list").clone()
}

/// The value of the sample `name` whose labels include `labels`.
fn sample(families: &[Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    families
        .iter()
        .flat_map(|family| family["samples"].as_array().expect("samples"))
        .find(|s| {
            s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k].as_str() == Some(*v))
        })
        .and_then(|s| s["value"].as_f64())
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
}

fn family_type(families: &[Value], name: &str) -> String {
    let family = families.iter().find(|f| f["name"] == name);
    family.unwrap_or_else(|| panic!("no family {name}"))["type"].as_str().expect("type").to_owned()
}

#[test]
fn metrics_parse_and_count_what_happened() {
    let model = uma_test_models::path(TestModel::Gemma3_270m);
    let server = Server::start(&model, &["--port", "0", "--threads", "2", "--ctx", "512"]);
    let name = TestModel::Gemma3_270m.stem();
    let json_header = [("Content-Type", "application/json")];
    // Three completions of 5 tokens each (one with n = 2: two sequences), and one 404. The
    // first prompt fills whole KV blocks, so its repetition finds them in the prefix cache.
    let long = "Once upon a time, in a village by the sea, there lived an old fisherman who \
                knew every rock and every current of the bay, and every evening he told";
    let mut sequences = 0;
    for (prompt, n) in [(long, 1), ("The sea was", 2), (long, 1)] {
        let body = json!({"model": name, "prompt": prompt, "max_tokens": 5, "n": n,
                          "temperature": 0, "ignore_eos": true});
        let response = request(
            server.port,
            "POST",
            "/v1/completions",
            &json_header,
            body.to_string().as_bytes(),
        );
        assert_eq!(response.status, 200, "{}", response.text());
        sequences += n;
    }
    let missing = request(server.port, "GET", "/v1/models/nope", &[], b"");
    assert_eq!(missing.status, 404);

    // The engine publishes its load just after it sends a request's last event: wait for the
    // idle state, then the gauges must agree with it.
    let start = std::time::Instant::now();
    let health = loop {
        let health = request(server.port, "GET", "/health", &[], b"").json();
        if health["models"][0]["stats"]["num_running"] == 0 {
            break health;
        }
        assert!(start.elapsed().as_secs() < 10, "the engine never went idle: {health}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let response = request(server.port, "GET", "/metrics", &[], b"");
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        response.headers
    );
    let families = parse(&response.text());
    let model = [("model", name)];

    assert_eq!(family_type(&families, "uma_http_requests"), "counter");
    let completions = [("route", "/v1/completions"), ("status", "200")];
    assert_eq!(sample(&families, "uma_http_requests_total", &completions), 3.0);
    let not_found = [("route", "/v1/models/{model}"), ("status", "404")];
    assert_eq!(sample(&families, "uma_http_requests_total", &not_found), 1.0);

    assert_eq!(family_type(&families, "uma_time_to_first_token_seconds"), "histogram");
    let ttft_count = sample(&families, "uma_time_to_first_token_seconds_count", &model);
    assert_eq!(ttft_count, f64::from(sequences), "one first token per sequence");
    assert!(sample(&families, "uma_time_to_first_token_seconds_sum", &model) > 0.0);
    let gaps = sample(&families, "uma_inter_token_latency_seconds_count", &model);
    assert_eq!(gaps, f64::from(sequences * 4), "four gaps between five tokens");
    let inf_bucket = [("model", name), ("le", "+Inf")];
    assert_eq!(sample(&families, "uma_inter_token_latency_seconds_bucket", &inf_bucket), gaps);

    assert_eq!(sample(&families, "uma_generated_tokens_total", &model), f64::from(sequences * 5));
    let prompt_tokens = sample(&families, "uma_prompt_tokens_total", &model);
    assert!(prompt_tokens >= f64::from(sequences * 3), "{prompt_tokens}");
    // The third prompt repeats the first: at least some of it came from the prefix cache.
    assert!(sample(&families, "uma_prompt_cached_tokens_total", &model) > 0.0);
    assert!(sample(&families, "uma_prefix_cache_hit_ratio", &model) > 0.0);

    let stats = &health["models"][0]["stats"];
    assert_eq!(sample(&families, "uma_running_sequences", &model), 0.0);
    assert_eq!(sample(&families, "uma_queued_requests", &model), 0.0);
    let used = sample(&families, "uma_kv_blocks", &[("model", name), ("state", "used")]);
    assert_eq!(used, stats["kv_num_used_blocks"].as_f64().expect("used"));
    let cached = sample(&families, "uma_kv_blocks", &[("model", name), ("state", "cached")]);
    assert_eq!(cached, stats["kv_num_cached_free_blocks"].as_f64().expect("cached"));
    assert!(cached > 0.0, "finished prompts leave cached blocks");
    assert_eq!(sample(&families, "uma_model_resident", &model), 1.0);
    assert_eq!(sample(&families, "uma_resident_models", &[]), 1.0);
    assert_eq!(
        sample(&families, "uma_model_memory_bytes", &model),
        health["models"][0]["memory_bytes"].as_f64().expect("memory")
    );
    assert_eq!(
        sample(&families, "uma_memory_held_bytes", &[]),
        health["memory_held_bytes"].as_f64().expect("held")
    );
    assert!(server.stop().success());
}
