//! `uma bench` as a user runs it: the JSON report's shape and numbers, the llama-bench table, the
//! bandwidth probe, and errors that are one clear line. No speed thresholds: speed goals live in
//! `docs/benchmarks.md`, not in tests.

mod common;

use common::{assert_one_line_error, text};

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use uma_test_models::TestModel;

fn uma(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_uma")).args(args).output().expect("run uma")
}

/// The tiny random llama model, written under a name of the test's own (tests run in parallel).
fn tiny_model(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-{name}.gguf"));
    uma_test_models::tiny::write_tiny_model("llama", &path).expect("write the tiny model");
    path.to_str().expect("UTF-8 path").to_owned()
}

fn json(output: &Output) -> Value {
    assert!(output.status.success(), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("one JSON document on stdout")
}

fn number(value: &Value, pointer: &str) -> f64 {
    value.pointer(pointer).and_then(Value::as_f64).unwrap_or_else(|| panic!("{pointer} in {value}"))
}

fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

#[test]
fn json_report_has_every_test_with_consistent_statistics() {
    let gemma = uma_test_models::path(TestModel::Gemma3_270m);
    let gemma = gemma.to_str().expect("UTF-8 path");
    let args = ["bench", gemma, "-p", "16", "-n", "4", "-r", "2", "--batch", "1,2", "--json"];
    let report = json(&uma(&[&args[..], &["--bandwidth", "50"]].concat()));

    assert_eq!(report["model"]["file_name"], "gemma-3-270m-q4_k_m.gguf");
    assert_eq!(report["model"]["architecture"], "gemma3");
    for key in ["size_bytes", "parameters", "weight_bytes_per_token"] {
        assert!(number(&report, &format!("/model/{key}")) > 0.0, "{key}");
    }
    assert!(number(&report, "/threads") >= 1.0);
    // The largest test: 4 generated tokens after the warm prompt, or the 16-token prompt.
    let warm = number(&report, "/warm_prompt_tokens");
    assert_eq!(number(&report, "/context_length"), (warm + 4.0).max(16.0));
    assert!(number(&report, "/kv_cache_bytes") > 0.0);
    assert_eq!(number(&report, "/repetitions"), 2.0);
    assert_eq!(report["bandwidth"]["source"], "given");
    assert_eq!(number(&report, "/bandwidth/gb_per_s"), 50.0);
    assert!(report["bandwidth"]["probe"].is_null());

    let results = report["results"].as_array().expect("results");
    let shapes: Vec<(String, u64, u64, u64)> = results
        .iter()
        .map(|r| {
            let field = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
            let name = r["test"].as_str().expect("test name").to_owned();
            (name, field("n_prompt"), field("n_gen"), field("batch"))
        })
        .collect();
    assert_eq!(
        shapes,
        [("pp16".into(), 16, 0, 1), ("tg4".into(), 0, 4, 1), ("tg4 x2".into(), 0, 4, 2)]
    );
    for r in results {
        let samples: Vec<f64> = r["samples"]
            .as_array()
            .expect("samples")
            .iter()
            .map(|s| s.as_f64().expect("sample"))
            .collect();
        assert_eq!(samples.len(), 2, "{r}");
        assert!(samples.iter().all(|&s| positive(s)), "{r}");
        let (mean, sd) = (number(r, "/mean"), number(r, "/sd"));
        let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
        let max = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert!(positive(mean) && (min..=max).contains(&mean), "{r}");
        assert!(sd.is_finite() && sd >= 0.0 && sd <= max - min, "{r}");
        if r["n_gen"] == 0 {
            assert!(r["weight_gb_per_s"].is_null() && r["bandwidth_percent"].is_null(), "{r}");
        } else {
            let achieved = number(r, "/weight_gb_per_s");
            let expected =
                number(&report, "/model/weight_bytes_per_token") * mean / number(r, "/batch") / 1e9;
            assert!(positive(achieved) && (achieved - expected).abs() <= 1e-9 * expected, "{r}");
            let percent = number(r, "/bandwidth_percent");
            assert!((percent - achieved / 50.0 * 100.0).abs() < 1e-9 * percent.max(1.0), "{r}");
        }
    }
}

#[test]
fn a_q8_0_kv_cache_takes_34_bytes_per_32_elements_instead_of_64() {
    let gemma = uma_test_models::path(TestModel::Gemma3_270m);
    let gemma = gemma.to_str().expect("UTF-8 path");
    let bench = |kv_type: &str| {
        let args = ["bench", gemma, "-p", "16", "-n", "2", "-r", "1", "--bandwidth", "50"];
        json(&uma(&[&args[..], &["--json", "--kv-cache-type", kv_type]].concat()))
    };
    let (f16, q8) = (bench("f16"), bench("q8_0"));
    assert_eq!(f16["kv_cache_type"], "f16");
    assert_eq!(q8["kv_cache_type"], "q8_0");
    assert_eq!(number(&q8, "/kv_cache_blocks"), number(&f16, "/kv_cache_blocks"));
    assert_eq!(number(&q8, "/kv_cache_bytes") * 64.0, number(&f16, "/kv_cache_bytes") * 34.0);
    assert!(q8["results"]
        .as_array()
        .expect("results")
        .iter()
        .all(|r| positive(number(r, "/mean"))));
}

#[test]
fn depth_fills_the_context_before_every_test() {
    let gemma = uma_test_models::path(TestModel::Gemma3_270m);
    let gemma = gemma.to_str().expect("UTF-8 path");
    let args = ["bench", gemma, "-p", "16", "-n", "4", "-d", "40", "-r", "1", "--batch", "1,2"];
    let report = json(&uma(&[&args[..], &["--json", "--bandwidth", "50"]].concat()));
    let names: Vec<&str> = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            assert_eq!(number(r, "/n_depth"), 40.0, "{r}");
            r["test"].as_str().expect("name")
        })
        .collect();
    assert_eq!(names, ["pp16 @ d40", "tg4 @ d40", "tg4 x2 @ d40"]);
    // Each sequence holds the depth, then the prompt (the longest test).
    assert_eq!(number(&report, "/context_length"), 56.0);
    assert_eq!(number(&report, "/warm_prompt_tokens"), 40.0);
    // Two sequences of 44 positions at most: 3 blocks each, or 4 for the one of 56.
    assert_eq!(number(&report, "/kv_cache_blocks"), 6.0);
}

#[test]
fn table_lists_one_row_per_test_then_the_bandwidth_lines() {
    let model = tiny_model("table");
    let output = uma(&[
        "bench",
        &model,
        "-p",
        "8",
        "-n",
        "3",
        "-r",
        "1",
        "--bandwidth",
        "50",
        "--threads",
        "1",
    ]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(stdout.contains("device: CPU, threads: 1\n"), "{stdout}");
    assert!(
        stdout.contains("memory read bandwidth: 50.0 GB/s (given with --bandwidth)"),
        "{stdout}"
    );
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with('|')).collect();
    assert_eq!(rows.len(), 4, "header, rule, pp8, tg3: {stdout}");
    let header: Vec<&str> = rows[0].split('|').map(str::trim).collect();
    assert_eq!(header, ["", "model", "size", "params", "threads", "test", "t/s", ""]);
    for (row, test) in rows[2..].iter().zip(["pp8", "tg3"]) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!((cells[1], cells[4], cells[5]), ("bench-table.gguf", "1", test), "{row}");
        let (mean, sd) = cells[6].split_once(" ± ").expect("mean ± sd");
        assert!(mean.parse::<f64>().expect("mean") > 0.0 && sd == "0.00", "{row}");
    }
    assert!(stdout.contains("weights read per decode step: "), "{stdout}");
    assert!(stdout.contains("\ntg3: ") && stdout.contains("% of 50.0 GB/s"), "{stdout}");
    assert!(text(&output.stderr).is_empty(), "nothing on stderr");
}

#[test]
fn without_bandwidth_the_probe_reads_at_least_a_gibibyte() {
    let model = tiny_model("probe");
    let report = json(&uma(&["bench", &model, "-p", "0", "-n", "2", "-r", "1", "--json"]));
    assert_eq!(report["bandwidth"]["source"], "probe");
    assert!(number(&report, "/bandwidth/probe/bytes") >= (1u64 << 30) as f64);
    assert!(number(&report, "/bandwidth/probe/threads") >= 1.0);
    assert!(positive(number(&report, "/bandwidth/probe/gb_per_s")));
    assert_eq!(
        number(&report, "/bandwidth/gb_per_s"),
        number(&report, "/bandwidth/probe/gb_per_s")
    );
    assert_eq!(report["results"].as_array().expect("results").len(), 1, "only tg2");
}

#[test]
fn bad_input_is_one_clear_line() {
    let model = tiny_model("errors");
    // Every one is refused before anything is measured (the probe included).
    let bench = |extra: &[&str]| uma(&[&["bench", model.as_str()][..], extra].concat());
    assert_one_line_error(&uma(&["bench", "/nonexistent.gguf"]), "No such file");
    assert_one_line_error(&bench(&["-p", "16", "-n", "4", "--ctx", "8"]), "too small for pp16");
    assert_one_line_error(&bench(&["-p", "4", "-n", "1", "--ctx", "1000"]), "context of 256");
    assert_one_line_error(&bench(&["-p", "300", "-n", "0"]), "pp300 needs 300 positions");
    assert_one_line_error(&bench(&["-r", "0"]), "-r must be at least 1");
    assert_one_line_error(&bench(&["--batch", "1,0"]), "--batch sizes must be at least 1");
    assert_one_line_error(&bench(&["-p", "0", "-n", "0"]), "nothing to measure");
    assert_one_line_error(&bench(&["-n", "0", "--batch", "4"]), "--batch needs generation");
    assert_one_line_error(&bench(&["--threads", "0"]), "--threads must be at least 1");
    assert_one_line_error(&bench(&["--bandwidth", "0"]), "--bandwidth must be a positive");
    // The tiny model's heads have 16 elements: not whole Q8_0 groups.
    assert_one_line_error(
        &bench(&["-p", "16", "-n", "4", "--kv-cache-type", "q8_0"]),
        "a q8_0 cache needs heads of",
    );
    assert_one_line_error(
        &bench(&["-p", "0", "-n", "64", "--batch", "16", "--memory", "4MB"]),
        "does not fit in the memory budget with a KV cache of 1280 positions",
    );
    // Values that are not numbers at all are refused by the argument parser, first line first.
    let not_a_number = bench(&["-p", "many"]);
    assert_eq!(not_a_number.status.code(), Some(2));
    let stderr = text(&not_a_number.stderr);
    assert!(stderr.starts_with("error: invalid value 'many' for '--n-prompt <N>'"), "{stderr}");
}

#[test]
fn speculative_lookup_decodes_the_edit_with_and_without_drafts() {
    let qwen = uma_test_models::path(TestModel::QwenCoder05b);
    let qwen = qwen.to_str().expect("UTF-8 path");
    let args = ["bench", qwen, "-p", "0", "-n", "16", "-r", "2", "--bandwidth", "50", "--json"];
    let report =
        json(&uma(&[&args[..], &["--speculative", "lookup", "--draft-tokens", "4"]].concat()));
    // The forward-pass tests run as before.
    assert_eq!(report["results"].as_array().expect("results").len(), 1, "tg16");

    let test = &report["speculative"];
    assert_eq!(
        (&test["mode"], &test["workload"], &test["device"]),
        (&"lookup".into(), &"edit".into(), &"cpu".into())
    );
    assert!(test["draft_model"].is_null(), "{test}");
    assert_eq!(number(test, "/max_draft_tokens"), 4.0);
    assert_eq!((number(test, "/n_gen"), number(test, "/repetitions")), (16.0, 2.0));
    // One request whose prompt holds a file at least as long as the answer.
    let prompts = test["prompt_tokens"].as_array().expect("prompt tokens");
    assert_eq!(prompts.len(), 1, "{test}");
    let prompt = prompts[0].as_f64().expect("prompt tokens");
    assert!(prompt > 16.0 && number(test, "/context_length") >= prompt + 16.0, "{test}");
    let decoded = number(test, "/decoded_tokens");
    assert!((1.0..=15.0).contains(&decoded), "{test}");
    for rates in ["plain", "speculative"] {
        let rates = &test[rates];
        let samples: Vec<f64> = rates["samples"]
            .as_array()
            .expect("samples")
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        assert_eq!(samples.len(), 2, "{rates}");
        assert!(samples.iter().all(|&s| positive(s)), "{rates}");
        let mean = number(rates, "/mean");
        assert!((mean - (samples[0] + samples[1]) / 2.0).abs() <= 1e-9 * mean, "{rates}");
    }
    let ratio = number(test, "/speculative/mean") / number(test, "/plain/mean");
    assert!((number(test, "/ratio") - ratio).abs() <= 1e-9 * ratio, "{test}");

    // Every verification checks 1 to --draft-tokens drafts and accepts at most those.
    let drafted = number(test, "/drafted_tokens");
    let accepted = number(test, "/accepted_tokens");
    let verifications = number(test, "/verifications");
    assert!(accepted <= drafted, "{test}");
    assert!(verifications <= drafted && drafted <= 4.0 * verifications, "{test}");
    if verifications == 0.0 {
        assert!(test["mean_acceptance_length"].is_null() && test["acceptance_rate"].is_null());
    } else {
        let length = number(test, "/mean_acceptance_length");
        assert!((length - accepted / verifications).abs() < 1e-9 && length <= 4.0, "{test}");
        assert!((number(test, "/acceptance_rate") - accepted / drafted).abs() < 1e-9, "{test}");
    }
    // Greedy speculative decoding gives plain decoding's tokens.
    assert_eq!(test["identical_output"], true, "{test}");
}

#[test]
fn speculative_test_errors_are_one_clear_line() {
    let model = tiny_model("speculative-errors");
    let bench = |extra: &[&str]| {
        uma(&[&["bench", model.as_str(), "-p", "8", "-n", "4", "--bandwidth", "50"][..], extra]
            .concat())
    };
    assert_one_line_error(&bench(&["--speculative", "draft"]), "needs a draft model");
    assert_one_line_error(&bench(&["--speculative", "off"]), "--speculative off measures nothing");
    assert_one_line_error(
        &uma(&["bench", &model, "-p", "8", "-n", "0", "--speculative", "lookup"]),
        "--speculative needs generated tokens",
    );
    // Checked before anything is measured, as `uma run` checks it when it loads the draft.
    let gemma = uma_test_models::path(TestModel::Gemma3_270m);
    let qwen = uma_test_models::path(TestModel::QwenCoder05b);
    let args = ["bench", gemma.to_str().expect("UTF-8"), "--draft", qwen.to_str().expect("UTF-8")];
    assert_one_line_error(&uma(&args), "the draft model does not fit this model");
}
