//! The planner on the three real models: hyper-parameters as `/work/shared/MODELS.md` lists them
//! (read there with the `gguf` Python package), and memory terms computed by hand from them.

use uma_gguf::GgufFile;
use uma_planner::{
    plan_for_machine, plan_memory, Bound, KvCacheType, MachineCatalogue, MemoryBreakdown,
    ModelSpec, PlanRequest, QuantClass, SlidingWindowKv, SpeedModel, Verdict,
};
use uma_test_models::TestModel;

fn spec(model: TestModel) -> ModelSpec {
    let file = GgufFile::open(uma_test_models::path(model)).expect("the test model opens");
    ModelSpec::from_gguf(&file, model.file_name()).expect("a plannable model")
}

#[test]
fn hyper_parameters_are_those_of_models_md() {
    // (layers, hidden, ffn, heads, kv heads, head dim, vocab, tied, sliding-window layers)
    let expected = [
        (TestModel::QwenCoder05b, (24, 896, 4864, 14, 2, 64, 151_936, false, 0)),
        (TestModel::QwenCoder15b, (28, 1536, 8960, 12, 2, 128, 151_936, false, 0)),
        (TestModel::Gemma3_270m, (18, 640, 2048, 4, 1, 256, 262_144, true, 15)),
    ];
    for (model, values) in expected {
        let s = spec(model);
        let actual = (
            s.num_hidden_layers,
            s.hidden_size,
            s.intermediate_size,
            s.num_attention_heads,
            s.num_key_value_heads,
            s.head_dim,
            s.vocab_size,
            s.tie_word_embeddings,
            s.num_sliding_window_layers,
        );
        assert_eq!(actual, values, "{}", model.file_name());
        assert_eq!(s.num_experts, None);
        // Untied: the embedding table is gathered, one row per token; tied: it is the head.
        let gathered = if s.tie_word_embeddings { 0 } else { (s.vocab_size - 1) * s.hidden_size };
        assert_eq!(s.num_active_parameters, s.num_parameters - gathered);
    }
    assert_eq!(spec(TestModel::Gemma3_270m).sliding_window, Some(512));
    // The golden `uma show` facts (gguf Python package): Q4_K 756.8 MB, Q6_K 354.0 MB.
    assert_eq!(spec(TestModel::QwenCoder15b).quantization, "Q4_K 68%, Q6_K 32%");
}

#[test]
fn kv_bytes_per_token_are_layers_times_kv_heads_times_k_and_v() {
    // layers × kv heads × (K + V) × head dim × 2 bytes.
    let f16 = [
        (TestModel::QwenCoder05b, 24 * 2 * 2 * 64 * 2),
        (TestModel::QwenCoder15b, 28 * 2 * 2 * 128 * 2),
        (TestModel::Gemma3_270m, 18 * 2 * 256 * 2), // one KV head
    ];
    assert_eq!(f16.map(|(_, b)| b), [12_288, 28_672, 18_432]);
    for (model, bytes) in f16 {
        assert_eq!(spec(model).kv_bytes_per_token(KvCacheType::F16), bytes);
    }
    // Q8_0: a row of 128 elements is 4 blocks of 34 bytes.
    assert_eq!(spec(TestModel::QwenCoder05b).kv_bytes_per_token(KvCacheType::Q8_0), 24 * 2 * 136);
    assert_eq!(spec(TestModel::QwenCoder15b).kv_bytes_per_token(KvCacheType::Q8_0), 28 * 2 * 272);
    assert_eq!(spec(TestModel::Gemma3_270m).kv_bytes_per_token(KvCacheType::Q8_0), 18 * 2 * 272);
}

#[test]
fn kv_cache_for_a_context_hand_computed() {
    let qwen = spec(TestModel::QwenCoder15b);
    let full = SlidingWindowKv::Full;
    assert_eq!(qwen.kv_cache_bytes(4096, 1, KvCacheType::F16, full), 117_440_512);
    // 1,000 positions take 63 blocks of 16.
    assert_eq!(qwen.kv_cache_bytes(1000, 1, KvCacheType::F16, full), 28_672 * 1008);
    assert_eq!(qwen.kv_cache_bytes(4096, 8, KvCacheType::F16, full), 8 * 117_440_512);
    // Gemma 3: 3 global layers hold 4,096 positions and 15 local layers their 512-token window
    // when windowed; uma's cache holds every position on every layer.
    let gemma = spec(TestModel::Gemma3_270m);
    let per_layer = 1024;
    assert_eq!(gemma.kv_cache_bytes(4096, 1, KvCacheType::F16, full), 18 * 4096 * per_layer);
    assert_eq!(
        gemma.kv_cache_bytes(4096, 1, KvCacheType::F16, SlidingWindowKv::Windowed),
        (3 * 4096 + 15 * 512) * per_layer
    );
}

#[test]
fn weight_bytes_per_token_are_the_measured_ones() {
    // `docs/benchmarks.md`: 391.9 MB, 980.1 MB and 246.6 MB per decoded token.
    for (model, megabytes) in [
        (TestModel::QwenCoder05b, 391.9),
        (TestModel::QwenCoder15b, 980.1),
        (TestModel::Gemma3_270m, 246.6),
    ] {
        let bytes = spec(model).weight_bytes_per_token as f64;
        assert_eq!((bytes / 1e5).round() / 10.0, megabytes, "{}", model.file_name());
    }
}

#[test]
fn repacked_heads_hand_computed() {
    // Qwen 1.5B's head: Q6_K, 151,936 rows of 1,536 = 18,992 groups of 8 rows × 6 blocks ×
    // 1,680 bytes, the same as the file; allocated in whole 2 MiB pages: 92 of them.
    let qwen = spec(TestModel::QwenCoder15b);
    assert_eq!(qwen.output_head_file_bytes, 18_992 * 6 * 1680);
    assert_eq!(qwen.output_head_resident_bytes, 92 * (2 << 20));
    // Gemma's tied head is its Q8_0 embedding table: 32,768 groups × 20 blocks × 272 bytes,
    // exactly 85 huge pages; the token embedding table is then not counted a second time.
    let gemma = spec(TestModel::Gemma3_270m);
    assert_eq!(gemma.output_head_resident_bytes, 32_768 * 20 * 272);
    assert_eq!(gemma.output_head_resident_bytes, 85 * (2 << 20));
    // Resident weights exceed the file's bytes less the mapped table by the Q4_K growth and the
    // huge-page rounding, by at most a few percent and 2 MiB per matrix.
    let mapped = qwen.file_weight_bytes - qwen.embedding_table_bytes;
    let num_matrices = 28 * 7 + 1;
    assert!(qwen.resident_weight_bytes > mapped);
    assert!(qwen.resident_weight_bytes < mapped + mapped / 30 + num_matrices * (2 << 20));
}

#[test]
fn compute_scratch_hand_computed() {
    // Qwen 1.5B, one token: f32 × (3 × 1,536 + 2 × 1,536 + 2 × 256 + 2 × 8,960) = 104,448 bytes,
    // plus the widest input (8,960) quantized to Q8_K: 8,960 × 292 / 256 = 10,220 bytes.
    let qwen = spec(TestModel::QwenCoder15b);
    assert_eq!(qwen.activation_bytes_per_token(), 104_448 + 10_220);
    let request = PlanRequest::default();
    let breakdown = MemoryBreakdown::new(&qwen, &request);
    // 512 tokens per step and one row of 151,936 logits.
    assert_eq!(breakdown.compute_scratch_bytes, 512 * 114_668 + 151_936 * 4);
}

#[test]
fn the_plan_for_this_size_of_machine() {
    let catalogue = MachineCatalogue::builtin().expect("parses");
    let mini = catalogue.get("mac-mini-m4-16gb").expect("listed");
    let qwen = spec(TestModel::QwenCoder15b);
    let speed_model = SpeedModel::builtin().expect("parses");
    let metal = speed_model.engine(None, mini).expect("the Mac's default engine");
    assert_eq!(metal.name, "llama.cpp-metal");
    let plan = plan_for_machine(&qwen, mini, &metal, &PlanRequest::default()).expect("plans");
    assert_eq!(plan.memory.verdict, Verdict::Fits);
    // The budget is 16 − 4 GiB; 75% usable. The trained context (32,768) fits.
    assert_eq!(plan.memory.budget_bytes, 12 << 30);
    assert_eq!(plan.memory.max_context_length, 32_768);
    assert!(plan.memory.max_context_length_by_memory > 200_000);
    // Decode reads 980 MB of k-quant weights at the engine's share of 120 GB/s, and pays the
    // fixed time of its 28 layers.
    assert_eq!(QuantClass::of(&qwen), QuantClass::K);
    let decode = plan.speed.decode_empty_context;
    assert_eq!(decode.bound, Bound::Bandwidth);
    let seconds = qwen.weight_bytes_per_token as f64 / (120e9 * metal.weight_efficiency.k)
        + 28.0 * metal.layer_seconds;
    assert!((decode.tokens_per_second - 1.0 / seconds).abs() < 1e-9);
    let [low, high] = decode.range.expect("a calibrated engine has a range");
    assert!(low < decode.tokens_per_second && decode.tokens_per_second < high);
    // The roofline engine: the catalogue's 120 × 0.65 GB/s ÷ 0.98 GB, nothing else.
    let roofline = speed_model.engine(Some("roofline"), mini).expect("runs anywhere");
    let plain = plan_for_machine(&qwen, mini, &roofline, &PlanRequest::default()).expect("plans");
    let tokens_per_second = plain.speed.decode_empty_context.tokens_per_second;
    assert!((tokens_per_second - 78e9 / qwen.weight_bytes_per_token as f64).abs() < 1e-9);
    assert!(plan.speed.decode_full_context.tokens_per_second < decode.tokens_per_second);
    assert_eq!(plan.speed.prefill.bound, Bound::Compute);
    let gpu = plan.gpu_working_set.expect("unified memory");
    assert!(gpu.fits);
    assert_eq!(gpu.limit_bytes, (16.0 * 0.6667 * uma_planner::GIB) as u64);

    // 64 sequences of 32K: far over 16 GB.
    let many = PlanRequest { context_length: 32_768, num_sequences: 64, ..PlanRequest::default() };
    let plan = plan_memory(&qwen, &many, mini.budget_bytes()).expect("plans");
    assert_eq!(plan.verdict, Verdict::DoesNotFit);
    // About (0.75 × 12 GiB − 1.2 GB) ÷ (64 × 28,672 B) ≈ 4,600 positions each.
    assert!((4_400..4_800).contains(&plan.max_context_length), "{}", plan.max_context_length);
    assert_eq!(plan.max_kv_tokens / 64 / 16, plan.max_context_length / 16);
}
