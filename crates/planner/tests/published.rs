//! The built-in speed model (`data/speed_model.toml`) against a few published measurements
//! (`data/published_measurements.csv`), read from the file by their line: the full comparison is
//! `scripts/planner/validate-published.py`; this keeps the data, the catalogue and the formulas
//! in step in `cargo test`. The rows below were part of the fit (in sample): most must fall in the
//! range the plan prints, and a change that moves the predictions away from them fails here.

use uma_planner::{
    plan_for_machine, MachineCatalogue, ModelDescription, PlanRequest, Quantization, SpeedModel,
};

const MEASUREMENTS: &str = include_str!("../data/published_measurements.csv");

/// Column `column` of line `line` (1 = the header) of the published measurements.
fn published(line: usize, column: &str) -> String {
    let mut lines = MEASUREMENTS.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let index = header.iter().position(|c| *c == column).expect("a column");
    let row = lines.nth(line - 2).expect("the line exists");
    row.split(',').nth(index).expect("the field").to_owned()
}

/// The catalogue and the reference machines (`data/reference_machines.toml`).
fn catalogue() -> MachineCatalogue {
    let mut catalogue = MachineCatalogue::builtin().expect("parses");
    let reference = concat!(env!("CARGO_MANIFEST_DIR"), "/data/reference_machines.toml");
    catalogue
        .extend_from_file(std::path::Path::new(reference))
        .expect("the reference machines parse");
    catalogue
}

#[test]
fn every_reference_machine_has_a_kind_a_family_and_a_default_engine() {
    let model = SpeedModel::builtin().expect("parses");
    for machine in catalogue().machines() {
        assert!(machine.kind.is_some() && machine.family.is_some(), "{}", machine.name);
        let engine = model.engine(None, machine).expect("an engine");
        assert_ne!(engine.name, "roofline", "{}", machine.name);
    }
}

/// LLaMA 2 7B as llama.cpp's benchmarks run it.
fn llama2_7b(quantization: &str) -> ModelDescription {
    ModelDescription {
        name: "LLaMA 2 7B".into(),
        num_parameters: 6_740_000_000,
        num_hidden_layers: 32,
        hidden_size: 4096,
        num_attention_heads: 32,
        num_key_value_heads: 32,
        head_dim: None,
        vocab_size: 32_000,
        intermediate_size: Some(11_008),
        quantization: Quantization::from_name(quantization).expect("known"),
        num_experts: None,
        num_experts_per_token: None,
        tie_word_embeddings: false,
        max_position_embeddings: None,
        sliding_window: None,
        num_sliding_window_layers: 0,
    }
}

/// Predicted (decode at position 64, the middle of tg128; prefill of 512 tokens) and its range.
fn predict(machine: &str, quantization: &str, test: &str) -> (f64, [f64; 2], String) {
    let machine = catalogue().get(machine).expect("catalogued").clone();
    let machine = &machine;
    let engine = SpeedModel::builtin().expect("parses").engine(None, machine).expect("an engine");
    let model = llama2_7b(quantization).spec().expect("valid");
    let context = if test == "tg128" { 64 } else { 512 };
    let request = PlanRequest { context_length: context, ..PlanRequest::default() };
    let plan = plan_for_machine(&model, machine, &engine, &request).expect("plans");
    let rate = if test == "tg128" { plan.speed.decode_full_context } else { plan.speed.prefill };
    (rate.tokens_per_second, rate.range.expect("a calibrated engine"), engine.name)
}

#[test]
fn llama_2_7b_on_catalogued_machines_falls_in_the_printed_range() {
    // (line in the CSV, machine, quantization, test, engine): llama.cpp's Apple Silicon table
    // and its CUDA scoreboard (both second-hand transcriptions, see data/README.md).
    let rows = [
        (907, "mac-studio-m3-ultra-512gb", "F16", "tg128", "llama.cpp-metal"),
        (909, "mac-studio-m3-ultra-512gb", "Q8_0", "tg128", "llama.cpp-metal"),
        (911, "mac-studio-m3-ultra-512gb", "Q4_0", "tg128", "llama.cpp-metal"),
        (906, "mac-studio-m3-ultra-512gb", "F16", "pp512", "llama.cpp-metal"),
        (910, "mac-studio-m3-ultra-512gb", "Q4_0", "pp512", "llama.cpp-metal"),
        (937, "mac-studio-m4-max-128gb", "F16", "tg128", "llama.cpp-metal"),
        (939, "mac-studio-m4-max-128gb", "Q8_0", "tg128", "llama.cpp-metal"),
        (941, "mac-studio-m4-max-128gb", "Q4_0", "tg128", "llama.cpp-metal"),
        (940, "mac-studio-m4-max-128gb", "Q4_0", "pp512", "llama.cpp-metal"),
        (945, "rtx-5090", "Q4_0", "tg128", "llama.cpp-cuda"),
        (944, "rtx-5090", "Q4_0", "pp512", "llama.cpp-cuda"),
        (947, "rtx-4090", "Q4_0", "tg128", "llama.cpp-cuda"),
        (946, "rtx-4090", "Q4_0", "pp512", "llama.cpp-cuda"),
        (955, "rtx-3090", "Q4_0", "tg128", "llama.cpp-cuda"),
        (954, "rtx-3090", "Q4_0", "pp512", "llama.cpp-cuda"),
    ];
    let mut outside = Vec::new();
    for (line, machine, quantization, test, engine) in rows {
        let (published_machine, model) = (published(line, "machine"), published(line, "model"));
        assert_eq!(
            published(line, "quantization"),
            quantization,
            "line {line}: {published_machine}"
        );
        assert_eq!(published(line, "test"), test, "line {line}");
        assert!(model.contains("7B"), "line {line}: {model}");
        let measured: f64 = published(line, "tokens_per_s").parse().expect("a number");
        let (predicted, [low, high], name) = predict(machine, quantization, test);
        assert_eq!(name, engine, "{machine}");
        assert!(low < predicted && predicted < high);
        if !(low..=high).contains(&measured) {
            outside.push(format!(
                "line {line} ({published_machine} {quantization} {test}): measured {measured}, \
                 predicted {predicted:.1} ({low:.1}–{high:.1})"
            ));
        }
    }
    // The range holds 80% of held-out rows. Of these 15 (fitted on), 4 fall outside as committed:
    // pp512 on the M3 Ultra and the M4 Max (Q4_0, 0.81 and 0.80 of the prediction: measured on
    // builds of 2023, the plan predicts the current build), and tg128 on the RTX 4090 and 5090
    // (1.17 and 1.28 of it: the fixed time per layer fitted for CUDA, 62 µs, is still too long for
    // the fastest GPUs on dense models; docs/planner.md). More than 4 means the model moved away
    // from them.
    assert!(outside.len() <= 4, "{} of {} outside: {outside:#?}", outside.len(), rows.len());
}
