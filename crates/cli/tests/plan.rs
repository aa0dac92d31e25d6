//! `uma plan` as a user runs it: the JSON report on a real model checked against numbers worked
//! out by hand from its hyper-parameters (`/work/shared/MODELS.md`), the human tables, user
//! machine files, and errors that say what is wrong. `--bandwidth` is given everywhere so that no
//! test depends on this machine's speed.

mod common;

use common::{assert_one_line_error, text};

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use uma_test_models::TestModel;

fn uma(args: &[&str]) -> Output {
    uma_with_home(args, &PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plan-empty-home"))
}

/// Runs `uma` with `UMA_HOME` set to `home` (a folder without machines.toml unless a test writes
/// one), so that no user catalogue on this machine changes the results.
fn uma_with_home(args: &[&str], home: &PathBuf) -> Output {
    Command::new(env!("CARGO_BIN_EXE_uma"))
        .args(args)
        .env("UMA_HOME", home)
        .output()
        .expect("run uma")
}

fn model(model: TestModel) -> String {
    uma_test_models::path(model).to_str().expect("UTF-8 path").to_owned()
}

fn json(output: &Output) -> Value {
    assert!(output.status.success(), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("one JSON document on stdout")
}

/// The attention shape of Llama 3 8B and Mixtral 8x7B.
const SHAPE_32_4096: &str = "--layers 32 --hidden 4096 --heads 32 --kv-heads 8";

fn number(value: &Value, pointer: &str) -> f64 {
    value.pointer(pointer).and_then(Value::as_f64).unwrap_or_else(|| panic!("{pointer} in {value}"))
}

#[test]
fn json_plan_of_qwen_on_this_machine() {
    let qwen = model(TestModel::QwenCoder15b);
    let report = json(&uma(&["plan", &qwen, "--json", "--bandwidth", "35"]));
    assert!(report["bandwidth_probe"].is_null(), "the bandwidth was given");
    let plans = report["plans"].as_array().expect("plans");
    assert_eq!(plans.len(), 1);
    let plan = &plans[0];
    assert_eq!(plan["machine"]["name"], "this");
    assert_eq!(plan["machine"]["source"], "detected");
    assert_eq!(number(plan, "/machine/bandwidth_gb_per_s"), 35.0);
    // Qwen2.5-Coder-1.5B: 28 layers, 2 KV heads of 128.
    assert_eq!(number(plan, "/model/num_hidden_layers"), 28.0);
    assert_eq!(number(plan, "/model/weight_bytes_per_token"), 980_098_400.0);
    assert_eq!(number(plan, "/memory/request/context_length"), 4096.0);
    // 4,096 positions × 28 layers × 2 (K, V) × 2 heads × 128 × 2 bytes.
    assert_eq!(number(plan, "/memory/breakdown/kv_cache_bytes"), 117_440_512.0);
    // 512 tokens × 114,668 bytes of activations, one row of 151,936 f32 logits.
    assert_eq!(number(plan, "/memory/breakdown/compute_scratch_bytes"), 59_317_760.0);
    let parts =
        ["weights_bytes", "kv_cache_bytes", "compute_scratch_bytes", "runtime_overhead_bytes"];
    let total: f64 = parts.iter().map(|p| number(plan, &format!("/memory/breakdown/{p}"))).sum();
    let needed = number(plan, "/memory/needed_bytes");
    assert_eq!(needed, total.max(number(plan, "/memory/breakdown/load_peak_bytes")));
    // The 25% headroom rule: usable = budget − ⌈budget / 4⌉.
    let budget = number(plan, "/memory/budget_bytes");
    assert_eq!(number(plan, "/memory/usable_bytes"), budget - (budget / 4.0).ceil());
    assert_eq!(plan["memory"]["verdict"], "fits", "1.4 GB on a machine of 24 GiB");
    assert_eq!(number(plan, "/memory/max_context_length"), 32_768.0);
    // --device auto (the default) counts the memory the GPU's driver left when the plan opened
    // it, as `uma run` opens it to choose; --device cpu opens no GPU and counts none.
    let driver = number(plan, "/memory/request/gpu_driver_bytes");
    match report["this_gpu"].is_null() {
        true => assert_eq!(driver, 0.0, "no GPU, no driver"),
        false => assert_eq!(driver, number(&report, "/this_gpu/driver_bytes")),
    }
    let on_cpu = json(&uma(&["plan", &qwen, "--json", "--bandwidth", "35", "--device", "cpu"]));
    assert!(on_cpu.get("this_gpu").is_none(), "{on_cpu}");
    let overhead = "/plans/0/memory/breakdown/runtime_overhead_bytes";
    assert_eq!(number(&on_cpu, "/plans/0/memory/request/gpu_driver_bytes"), 0.0);
    assert_eq!(number(&on_cpu, overhead) + driver, number(&report, overhead));
    // Decode: 35 GB/s × 0.9 ÷ 980,098,400 bytes per token with an empty context, uma on the
    // CPU, within the range validate-planner.sh measured (0.88 to 1.06 of it).
    assert_eq!(plan["speed"]["engine"]["name"], "uma-cpu");
    let decode = number(plan, "/speed/decode_empty_context/tokens_per_second");
    assert!((decode - 35e9 * 0.9 / 980_098_400.0).abs() < 1e-9, "{decode}");
    assert!((number(plan, "/speed/decode_empty_context/range/0") / decode - 0.88).abs() < 1e-9);
    assert!((number(plan, "/speed/decode_empty_context/range/1") / decode - 1.06).abs() < 1e-9);
    assert!(plan["speed"]["prefill"]["range"].is_null(), "uma's prefill is not validated");
    assert_eq!(plan["speed"]["decode_empty_context"]["bound"], "bandwidth");
    assert_eq!(plan["speed"]["prefill"]["bound"], "compute");
    assert!(plan["cost"].is_null() && report["cost_inputs"].is_null());
}

#[test]
fn catalogue_machines_sequences_and_q8_kv() {
    let qwen = model(TestModel::QwenCoder15b);
    let args = ["plan", &qwen, "--hw", "mac-mini-m4-16gb,rtx-4090", "--seqs", "4"];
    let report = json(&uma(&[&args[..], &["--ctx", "8192", "--kv", "q8_0", "--json"]].concat()));
    let plans = report["plans"].as_array().expect("plans");
    let names: Vec<&str> =
        plans.iter().map(|p| p["machine"]["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["mac-mini-m4-16gb", "rtx-4090"]);
    for plan in plans {
        // 4 sequences × 8,192 positions × 28 layers × 2 × 272 bytes (128 elements in Q8_0).
        assert_eq!(number(plan, "/memory/breakdown/kv_cache_bytes"), 4.0 * 8192.0 * 15_232.0);
        assert_eq!(plan["machine"]["source"], "catalogue");
    }
    // 16 GiB less the 4 GiB reserve; 24 GiB less 1 GiB for the driver.
    assert_eq!(number(&plans[0], "/memory/budget_bytes"), (12u64 << 30) as f64);
    assert_eq!(number(&plans[1], "/memory/budget_bytes"), (23u64 << 30) as f64);
    // Four sequences read the weights once per step and each its own KV, with llama.cpp's CUDA
    // backend on the RTX 4090: 980,098,400 bytes of k-quants at its share of 1,008 GB/s, 4 ×
    // 8,192 × 15,232 bytes of KV at its share, and its fixed time for 28 layers; 4 tokens.
    let engine = &plans[1]["speed"]["engine"];
    assert_eq!(engine["name"], "llama.cpp-cuda");
    assert_eq!(plans[0]["speed"]["engine"]["name"], "llama.cpp-metal");
    let weights = 980_098_400.0 / (1008e9 * number(engine, "/weight_efficiency/k"));
    let kv = 8192.0 * 15_232.0 / (1008e9 * number(engine, "/kv_efficiency"));
    let fixed = 28.0 * number(engine, "/layer_seconds");
    let one = number(&plans[1], "/speed/decode_full_context/tokens_per_second");
    let four = number(&plans[1], "/speed/aggregate_decode/tokens_per_second");
    assert!((four - 4.0 / (weights + 4.0 * kv + fixed)).abs() < 1e-6, "{four}");
    assert!((one - 1.0 / (weights + kv + fixed)).abs() < 1e-6, "{one}");
    assert!(four > 2.9 * one, "{one} {four}");
    let [low, high] =
        [0, 1].map(|i| number(&plans[1], &format!("/speed/decode_full_context/range/{i}")));
    assert!(low < one && one < high, "{low} {one} {high}");
    assert!(plans[0]["gpu_working_set"]["limit_bytes"].as_f64().is_some());
    assert!(plans[1]["gpu_working_set"].is_null(), "a discrete GPU has no working-set limit");
}

#[test]
fn gemma_sliding_window_layers_when_windowed() {
    let gemma = model(TestModel::Gemma3_270m);
    let base = ["plan", gemma.as_str(), "--hw", "rtx-4090", "--json"];
    let full = json(&uma(&base));
    assert_eq!(number(&full, "/plans/0/memory/breakdown/kv_cache_bytes"), 18.0 * 4096.0 * 1024.0);
    let windowed = json(&uma(&[&base[..], &["--windowed-kv"]].concat()));
    // 3 global layers × 4,096 positions, 15 local ones × their 512-token window, 1,024 B each.
    let expected = (3.0 * 4096.0 + 15.0 * 512.0) * 1024.0;
    assert_eq!(number(&windowed, "/plans/0/memory/breakdown/kv_cache_bytes"), expected);
    assert_eq!(number(&windowed, "/plans/0/model/num_sliding_window_layers"), 15.0);
}

#[test]
fn human_report_and_comparison() {
    let qwen = model(TestModel::QwenCoder15b);
    let output = uma(&["plan", &qwen, "--bandwidth", "35"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report = text(&output.stdout);
    for needle in [
        "uma plan: qwen2.5-coder-1.5b-instruct-q4_k_m.gguf on this machine",
        "KV cache               117.44 MB   4,096 positions × 1 × 28,672 B per position",
        "compute scratch         59.32 MB",
        "headroom",
        "25% of the budget, kept free",
        "verdict             fits",
        "longest context     32,768 tokens per sequence (the trained context",
        "speed (predicted for uma-cpu: uma on the CPU",
        "decode, 1 sequence  32.1 tok/s (28.3–34.1) with an empty context",
        "bandwidth bound: 31.5 GB/s",
        "in brackets: the range of measurements on this machine",
    ] {
        assert!(report.contains(needle), "{needle:?} in\n{report}");
    }

    let args =
        ["plan", &qwen, "--compare", "--hw", "mac-studio-m4-max-36gb,h100-sxm-80gb", "--cost"];
    let output = uma(&args);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let table = text(&output.stdout);
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("{name} in\n{table}"))
    };
    // The decode rate at a full context and its range, as the JSON report gives them.
    let report = json(&uma(&["plan", &qwen, "--hw", "mac-studio-m4-max-36gb", "--json"]));
    let decode = number(&report, "/plans/0/speed/decode_full_context/tokens_per_second");
    let high = number(&report, "/plans/0/speed/decode_full_context/range/1");
    let m4 = row("mac-studio-m4-max-36gb");
    assert!(m4.contains("36 GiB") && m4.contains("fits") && m4.contains("32,768"), "{m4}");
    assert!(m4.contains("llama.cpp-metal") && m4.contains(&format!("{decode:.1}")), "{m4}");
    assert!(m4.contains(&format!("–{high:.0}")), "{high} in {m4}");
    // A 1.5B model on an H100: the engine's fixed time per layer outweighs reading 1 GB.
    let h100 = row("h100-sxm-80gb");
    assert!(h100.contains("llama.cpp-cuda") && h100.contains("fixed time"), "{h100}");
    assert!(row("cloud h100-sxm-80gb").contains("2.50"), "{table}");
    assert!(table.contains("$ per 1M tokens"));
}

#[test]
fn this_machines_plan_names_its_gpu_or_says_there_is_none() {
    let qwen = model(TestModel::QwenCoder05b);
    let gpu_line = |output: &Output| {
        assert!(output.status.success(), "{}", text(&output.stderr));
        let report = text(&output.stdout);
        let line = report.lines().find(|l| l.starts_with("  gpu ")).map(str::to_owned);
        line.unwrap_or_else(|| panic!("a gpu line in\n{report}"))
    };
    // Without a Vulkan driver: none.
    let without = Command::new(env!("CARGO_BIN_EXE_uma"))
        .args(["plan", &qwen, "--bandwidth", "35"])
        .env("VK_DRIVER_FILES", "/nonexistent")
        .output()
        .expect("run uma");
    assert!(gpu_line(&without).contains("none found: the model runs on the CPU"));
    // With whatever the machine has (CI: lavapipe, a software device auto never takes).
    let line = gpu_line(&uma(&["plan", &qwen, "--bandwidth", "35"]));
    if std::env::var_os("UMA_REQUIRE_GPU").is_some() {
        assert!(!line.contains("none found"), "{line}");
    }
    let software = line.contains("software");
    assert_eq!(software, line.contains("--device auto uses the CPU"), "{line}");
    // Catalogue machines have no detected GPU line.
    let catalogue = uma(&["plan", &qwen, "--hw", "h100-sxm-80gb"]);
    assert!(!text(&catalogue.stdout).contains("  gpu "), "{}", text(&catalogue.stdout));
}

#[test]
fn described_models_compare_quantizations() {
    // Llama 3 8B's shape; the feed-forward size follows from the parameter count.
    let llama = format!("plan --params 8.03B {SHAPE_32_4096} --vocab 128256 --trained-ctx 8192");
    let args: Vec<&str> = llama
        .split_whitespace()
        .chain(["--quant", "q4_k_m,q8_0,f16", "--hw", "mac-mini-m4-16gb"])
        .collect();
    let report = json(&uma(&[&args[..], &["--json"]].concat()));
    let plans = report["plans"].as_array().expect("plans");
    let verdicts: Vec<&str> =
        plans.iter().map(|p| p["memory"]["verdict"].as_str().expect("verdict")).collect();
    // 16.06 GB of f16 weights cannot fit in 12 GiB.
    assert_eq!(verdicts, ["fits", "fits", "does_not_fit"]);
    assert_eq!(number(&plans[0], "/model/intermediate_size"), 14_336.0);
    // 32 layers × 8 KV heads × 128 × 2 × 2 bytes per position.
    assert_eq!(number(&plans[1], "/memory/breakdown/kv_cache_bytes"), 4096.0 * 131_072.0);
    assert_eq!(number(&plans[2], "/memory/max_context_length"), 0.0);

    let output = uma(&[&args[..], &["--compare"]].concat());
    assert!(output.status.success(), "{}", text(&output.stderr));
    let table = text(&output.stdout);
    let rows: Vec<&str> = table.lines().skip(3).map(str::trim_start).collect();
    assert!(rows[0].starts_with("q4_k_m") && rows[1].starts_with("q8_0"), "{table}");
    assert!(rows[2].starts_with("f16") && rows[2].contains("does not fit"), "{table}");

    // A mixture of experts reads only its active experts per token.
    let moe = format!(
        "plan --params 46.7B {SHAPE_32_4096} --vocab 32000 --experts 8 --active-experts 2 \
         --hw mac-studio-m3-ultra-96gb --json"
    );
    let moe: Vec<&str> = moe.split_whitespace().collect();
    let plan = json(&uma(&moe));
    let active = number(&plan, "/plans/0/model/num_active_parameters");
    assert!((12.6e9..12.9e9).contains(&active), "{active}");
    let per_token = number(&plan, "/plans/0/model/weight_bytes_per_token");
    assert!((per_token / (active * 4.84 / 8.0) - 1.0).abs() < 1e-6, "{per_token}");
}

#[test]
fn engines_are_chosen_per_machine_or_asked_for() {
    // LLaMA 2 7B, as llama.cpp's Apple Silicon table runs it (Q4_0, tg128 and pp512).
    let llama =
        "plan --params 6.74B --layers 32 --hidden 4096 --heads 32 --vocab 32000 --ffn 11008 \
                 --quant q4_0 --ctx 512 --json";
    let args: Vec<&str> = llama
        .split_whitespace()
        .chain(["--hw", "rtx-4090", "--engine", "llama.cpp-vulkan,roofline,llama.cpp-cuda"])
        .collect();
    let report = json(&uma(&args));
    let plans = report["plans"].as_array().expect("plans");
    let engines: Vec<&str> =
        plans.iter().map(|p| p["speed"]["engine"]["name"].as_str().expect("a name")).collect();
    assert_eq!(engines, ["llama.cpp-vulkan", "roofline", "llama.cpp-cuda"]);
    for plan in &plans[..] {
        let decode = number(plan, "/speed/decode_empty_context/tokens_per_second");
        let range = &plan["speed"]["decode_empty_context"]["range"];
        if plan["speed"]["engine"]["name"] == "roofline" {
            // The catalogue's 1,008 GB/s × 0.75, nothing else, and nothing validates it.
            assert!((decode - 756e9 / number(plan, "/model/weight_bytes_per_token")).abs() < 1e-6);
            assert!(range.is_null());
        } else {
            // A calibrated engine is slower than the bare roofline of the same bandwidth and
            // says how sure it is.
            assert!(decode < 1008e9 / number(plan, "/model/weight_bytes_per_token"));
            let [low, high] = [0, 1].map(|i| range[i].as_f64().expect("a range"));
            assert!(low < decode && decode < high, "{low} {decode} {high}");
        }
    }
    // Several engines over several machines: each machine with the engines that run on it.
    let args = [
        "plan",
        "--params",
        "7B",
        "--layers",
        "32",
        "--hidden",
        "4096",
        "--heads",
        "32",
        "--vocab",
        "32000",
        "--hw",
        "rtx-4090,mac-mini-m4-16gb",
        "--engine",
        "mlx,llama.cpp-cuda",
        "--json",
    ];
    let report = json(&uma(&args));
    let pairs: Vec<(&str, &str)> = report["plans"]
        .as_array()
        .expect("plans")
        .iter()
        .map(|p| {
            let machine = p["machine"]["name"].as_str().expect("a machine");
            (machine, p["speed"]["engine"]["name"].as_str().expect("an engine"))
        })
        .collect();
    assert_eq!(pairs, [("rtx-4090", "llama.cpp-cuda"), ("mac-mini-m4-16gb", "mlx")]);
    // --compare without --hw: every machine an engine runs on (MLX: the Macs only).
    let output = uma(&[
        "plan",
        "--params",
        "8B",
        "--layers",
        "32",
        "--hidden",
        "4096",
        "--heads",
        "32",
        "--kv-heads",
        "8",
        "--vocab",
        "128256",
        "--engine",
        "mlx",
        "--compare",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let table = text(&output.stdout);
    assert!(table.contains("mac-studio-m3-ultra-512gb") && table.contains(" mlx "), "{table}");
    assert!(!table.contains("rtx-4090") && !table.contains("this"), "{table}");
}

#[test]
fn user_machine_files_extend_and_override_the_catalogue() {
    let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plan-user-home");
    std::fs::create_dir_all(&home).expect("create the home folder");
    std::fs::write(
        home.join("machines.toml"),
        "[[machine]]\nname = \"rtx-4090\"\nbandwidth_gb_per_s = 500\n",
    )
    .expect("write machines.toml");
    let extra = home.join("extra.toml");
    std::fs::write(
        &extra,
        "[[machine]]\nname = \"lab-box\"\ndescription = \"a lab machine\"\nmemory_gib = 8\n\
         bandwidth_gb_per_s = 50\nbandwidth_efficiency = 1.0\nint8_tops = 1\n\
         compute_efficiency = 1.0\nunified_memory = false\nos_reserve_gib = 2\n",
    )
    .expect("write extra.toml");
    let gemma = model(TestModel::Gemma3_270m);
    let args =
        ["plan", &gemma, "--hw", "rtx-4090,lab-box", "--hw-file", extra.to_str().expect("UTF-8")];
    let report = json(&uma_with_home(&[&args[..], &["--json"]].concat(), &home));
    assert_eq!(number(&report, "/plans/0/machine/bandwidth_gb_per_s"), 500.0);
    assert_eq!(number(&report, "/plans/0/machine/memory_gib"), 24.0, "other fields kept");
    assert_eq!(report["plans"][1]["machine"]["source"], extra.to_str().expect("UTF-8"));
    // 50 GB/s at full efficiency ÷ Gemma's 246,587,904 bytes per token (its head is tied).
    let decode = number(&report, "/plans/1/speed/decode_empty_context/tokens_per_second");
    assert!((decode - 50e9 / 246_587_904.0).abs() < 1e-9, "{decode}");
    // 6 GiB of budget: 4.5 GiB usable.
    assert_eq!(number(&report, "/plans/1/memory/usable_bytes"), (4.5 * (1u64 << 30) as f64));
}

#[test]
fn errors_are_one_clear_line() {
    let qwen = model(TestModel::QwenCoder05b);
    let bandwidth = ["--bandwidth", "35"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["plan", &qwen, "--hw", "mac-studio-m9"],
            "unknown machine \"mac-studio-m9\"; known machines: mac-studio-m4-max-36gb",
        ),
        (vec!["plan", "/no/such/model.gguf"], "cannot load /no/such/model.gguf"),
        (vec!["plan", "qwen2.5-coder"], "no model named qwen2.5-coder:latest in the store"),
        (vec!["plan", &qwen, "--seqs", "0"], "--seqs must be at least 1"),
        (
            vec!["plan", &qwen, "--ctx", "100000"],
            "--ctx 100000 exceeds the model's trained context of 32768",
        ),
        (vec!["plan", &qwen, "--bandwidth=-3"], "--bandwidth must be a positive number"),
        (vec!["plan", &qwen, "--params", "7B"], "not both"),
        (vec!["plan", "--params", "7B", "--layers", "32"], "needs --heads"),
        (
            vec![
                "plan", "--params", "7B", "--layers", "32", "--hidden", "4096", "--heads", "32",
                "--vocab", "32000", "--quant", "q4_z",
            ],
            "unknown quantization \"q4_z\"",
        ),
        (vec!["plan"], "no model"),
        (
            vec!["plan", &qwen, "--hw-file", "/no/such/machines.toml"],
            "cannot read /no/such/machines.toml",
        ),
        (vec!["plan", &qwen, "--cost", "--cloud-hw", "tpu"], "unknown machine \"tpu\""),
        (vec!["plan", &qwen, "--hours-per-day", "25"], "hours per day"),
        (vec!["plan", &qwen, "--engine", "warp"], "unknown engine \"warp\"; known engines: "),
        (
            vec!["plan", &qwen, "--hw", "rtx-4090", "--engine", "mlx"],
            "engine mlx does not run on rtx-4090 (nvidia); engines for it: llama.cpp-cuda, \
             llama.cpp-vulkan, roofline",
        ),
        (
            vec![
                "plan",
                "--params",
                "7B",
                "--layers",
                "32",
                "--hidden",
                "4096",
                "--heads",
                "32",
                "--vocab",
                "32000",
                "--sliding-layers",
                "16",
            ],
            "sliding_window",
        ),
    ];
    for (args, needle) in cases {
        let given = args.iter().any(|a| a.starts_with("--bandwidth"));
        let output = uma(&[&args[..], if given { &[][..] } else { &bandwidth[..] }].concat());
        assert_one_line_error(&output, needle);
    }
    // A value clap refuses: the usage, and the reason.
    let output = uma(&["plan", &qwen, "--kv", "q4_0"]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("neither f16 nor q8_0"), "{}", text(&output.stderr));
}

#[test]
fn nodes_split_a_model_over_a_cluster() {
    // Llama 3 70B at q8_0 (75 GB) is past the 71 GB one 96 GB M3 Ultra may use under the
    // headroom rule; half of it on each of two fits.
    let llama = "plan --params 70.55B --layers 80 --hidden 8192 --heads 64 --kv-heads 8 \
                 --vocab 128256 --ffn 28672 --quant q8_0 --hw mac-studio-m3-ultra-96gb";
    let args: Vec<&str> = llama.split_whitespace().collect();
    let cluster = ["--engine", "mlx", "--nodes", "2", "--link", "tb5-rdma"];
    let report = json(&uma(&[&args[..], &cluster, &["--json"]].concat()));
    let plan = &report["plans"][0];
    assert_eq!(plan["memory"]["verdict"], "fits_without_headroom", "one machine");
    let cluster_plan = &plan["cluster"];
    assert_eq!(number(cluster_plan, "/setup/nodes"), 2.0);
    assert_eq!(cluster_plan["setup"]["link"]["name"], "tb5-rdma");
    assert!(cluster_plan["setup"]["sync"]["source"]
        .as_str()
        .expect("source")
        .contains("calibrated"));
    let pipeline = &cluster_plan["pipeline"];
    let tensor = &cluster_plan["tensor_parallel"];
    assert_eq!(number(pipeline, "/nodes/0/layers"), 40.0);
    assert_eq!(number(pipeline, "/nodes/0/count"), 2.0);
    assert_eq!(number(tensor, "/nodes/0/weight_share"), 0.5);
    for split in [pipeline, tensor] {
        assert_eq!(split["verdict"], "fits", "{split}");
    }
    // Tensor parallel reads half the weights per token, then 160 all-reduces; the pipeline reads
    // them all, one stage after the other, with one hop.
    assert_eq!(number(tensor, "/decode_full_context/transfers"), 160.0);
    assert_eq!(number(pipeline, "/decode_full_context/transfers"), 1.0);
    let rate = |split: &Value| number(split, "/decode_full_context/tokens_per_second");
    let faster = if rate(tensor) > rate(pipeline) { "tensor_parallel" } else { "pipeline" };
    assert_eq!(cluster_plan["chosen"], faster);
    // The pipeline's stages add up to one machine's decode, plus its hop.
    let single = number(plan, "/speed/decode_full_context/tokens_per_second");
    assert!(rate(pipeline) < single && rate(pipeline) > 0.99 * single, "{}", rate(pipeline));

    // --split chooses; the text report has the cluster section.
    let output = uma(&[&args[..], &cluster, &["--split", "pipeline"]].concat());
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report = text(&output.stdout);
    assert!(report.contains("cluster   2 × mac-studio-m3-ultra-96gb over tb5-rdma"), "{report}");
    assert!(report.contains("pipeline (chosen)") && report.contains("40 of 80 layers"), "{report}");
    assert!(
        report.contains("1/2 of every matrix") && report.contains("160 all-reduces"),
        "{report}"
    );

    // Without --link, 10 Gigabit Ethernet.
    let default = json(&uma(&[&args[..], &["--nodes", "2", "--json"]].concat()));
    assert_eq!(default["plans"][0]["cluster"]["setup"]["link"]["name"], "10gbe");

    for (extra, needle) in [
        (&["--link", "tb5-rdma"][..], "--link and --split plan a cluster: give --nodes too"),
        (&["--nodes", "2", "--link", "wifi"][..], "unknown link \"wifi\"; known links: 10gbe"),
        (&["--nodes", "0"][..], "--nodes must be at least 1"),
        (&["--nodes", "81"][..], "81 is not between 1 and the model's 80 layers"),
        (&["--nodes", "2", "--compare"][..], "leave out --compare"),
    ] {
        assert_one_line_error(&uma(&[&args[..], extra].concat()), needle);
    }
    let output = uma(&[&args[..], &["--nodes", "2", "--split", "diagonal"]].concat());
    assert!(
        text(&output.stderr).contains("not a split: pipeline or tensor"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_draft_model_is_planned_beside_the_model() {
    let (qwen, draft) = (model(TestModel::QwenCoder15b), model(TestModel::QwenCoder05b));
    // On the CPU: with --device auto each run measures the GPU driver's memory afresh.
    let args = [
        "plan",
        &qwen,
        "--seqs",
        "2",
        "--kv",
        "q8_0",
        "--json",
        "--bandwidth",
        "35",
        "--device",
        "cpu",
    ];
    let alone = json(&uma(&args));
    let both = json(&uma(&[&args[..], &["--draft", &draft]].concat()));
    let (alone, plan) = (&alone["plans"][0], &both["plans"][0]);
    assert!(alone["draft_model"].is_null() && alone["memory"]["draft"].is_null(), "{alone}");
    assert_eq!(plan["draft_model"]["name"], "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    assert_eq!(plan["memory"]["breakdown"], alone["memory"]["breakdown"]);
    let memory = &plan["memory"]["draft"];
    assert_eq!(memory["model"], "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf");
    // The draft's cache holds the model's positions in f16, whatever --kv says: 2 × 4,096
    // positions × 24 layers × 2 (K, V) × 2 heads × 64 × 2 bytes.
    assert_eq!(memory["request"]["kv_cache_type"], "f16");
    assert_eq!(number(memory, "/request/num_sequences"), 2.0);
    assert_eq!(number(memory, "/breakdown/kv_cache_bytes"), 2.0 * 4096.0 * 12_288.0);
    let parts =
        ["weights_bytes", "kv_cache_bytes", "compute_scratch_bytes", "runtime_overhead_bytes"];
    let total: f64 = parts.iter().map(|p| number(memory, &format!("/breakdown/{p}"))).sum();
    let needed = number(memory, "/needed_bytes");
    assert_eq!(needed, total.max(number(memory, "/breakdown/load_peak_bytes")));
    // Both models must fit: the draft's need is added, and each position of context costs both
    // caches.
    assert_eq!(
        number(plan, "/memory/needed_bytes"),
        number(alone, "/memory/needed_bytes") + needed
    );
    let by_memory = "/memory/max_context_length_by_memory";
    assert!(number(plan, by_memory) < number(alone, by_memory), "{plan}");
    assert!(number(plan, "/memory/max_kv_tokens") < number(alone, "/memory/max_kv_tokens"));
    // The speeds are plain decoding's: nothing measured says what speculation gains.
    assert_eq!(plan["speed"], alone["speed"]);

    let output = uma(&["plan", &qwen, "--bandwidth", "35", "--draft", &draft, "--device", "cpu"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report = text(&output.stdout);
    for needle in [
        "  draft     qwen2.5-coder-0.5b-instruct-q4_k_m.gguf · qwen2 · ",
        "draft KV cache          50.33 MB   4,096 positions × 1 × 12,288 B per position, f16",
        "draft weights ",
        "draft scratch ",
        "draft runtime ",
        "total                    2.13 GB   model 1.42 GB + draft 716.91 MB",
        "verdict             fits — needs 2.13 GB",
        "speculation         not predicted",
    ] {
        assert!(report.contains(needle), "{needle:?} in\n{report}");
    }
    let compare = uma(&["plan", &qwen, "--compare", "--hw", "rtx-4090", "--draft", &draft]);
    assert!(
        text(&compare.stdout).contains("· draft qwen2.5-coder-0.5b"),
        "{}",
        text(&compare.stdout)
    );
}

#[test]
fn a_draft_of_another_vocabulary_is_refused() {
    let (gemma, qwen) = (model(TestModel::Gemma3_270m), model(TestModel::QwenCoder05b));
    let output = uma(&["plan", &gemma, "--draft", &qwen, "--bandwidth", "35"]);
    assert_one_line_error(&output, "the draft model does not fit this model: the draft model has");
    assert!(text(&output.stderr).contains(&format!("{qwen} cannot draft for {gemma}")));
    let mut described: Vec<&str> = vec!["plan", "--params", "7B", "--vocab", "32000"];
    described.extend(SHAPE_32_4096.split(' '));
    described.extend(["--draft", &qwen, "--bandwidth", "35"]);
    assert_one_line_error(&uma(&described), "give the model's .gguf file");
    assert_one_line_error(
        &uma(&["plan", &qwen, "--draft", &qwen, "--nodes", "2", "--bandwidth", "35"]),
        "--draft plans one machine",
    );
}
