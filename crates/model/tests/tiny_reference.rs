//! Tiny random models of every architecture against Hugging Face `transformers` logits
//! (`tests/golden/tiny/<arch>.json`, from `scripts/golden/make-reference.sh`), all positions.
//! The check lives in `common/reference.rs` (the GPU backend runs it too).
mod common;

#[test]
fn tiny_models_match_transformers() {
    for arch in uma_test_models::tiny::TINY_ARCHS {
        common::reference::check_tiny_model(&common::tiny_model(arch), arch);
    }
}

/// A `deepseek2` file as older converters wrote it (one `attn_kv_b` per layer, the heads
/// described uncompressed: `key_length` nope + rope, `value_length` v, as many KV heads as
/// heads, no `*_mla` lengths) gives the logits of the current form, bit for bit: uma cuts the
/// same per-head matrices from it at load and caches the same latent.
#[test]
fn an_older_deepseek2_file_gives_the_same_logits() {
    use std::sync::Arc;
    use uma_gguf::{GgmlType, GgufFile, MetadataValue};

    let bytes = uma_test_models::tiny::tiny_model_bytes("deepseek2").expect("tiny");
    let current = Arc::new(GgufFile::from_bytes(bytes).expect("valid"));
    let model = uma_model::Model::load(current.clone()).expect("loads");
    let (c, mla) = (model.config().clone(), model.config().mla.expect("latent attention"));
    let (heads, r, nope, v) =
        (c.num_attention_heads, mla.kv_lora_rank, mla.qk_nope_head_dim, mla.v_head_dim);
    let floats = |data: &[u8]| -> Vec<f32> {
        data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect()
    };
    let edit = |(name, ty, shape, data): common::TensorParts| -> Vec<common::TensorParts> {
        if name.ends_with("attn_v_b.weight") {
            return vec![];
        }
        let Some(layer) = name.strip_suffix("attn_k_b.weight") else {
            return vec![(name, ty, shape, data)];
        };
        assert_eq!(ty, GgmlType::F32);
        let k_b = floats(&data); // [heads][r][nope]
        let v_view = current.tensor(&format!("{layer}attn_v_b.weight")).expect("v_b");
        let v_b = floats(v_view.data()); // [heads][v][r]
        let mut kv_b = Vec::with_capacity(heads * (nope + v) * r);
        for h in 0..heads {
            for i in 0..nope {
                kv_b.extend((0..r).map(|j| k_b[(h * r + j) * nope + i]));
            }
            kv_b.extend_from_slice(&v_b[h * v * r..(h + 1) * v * r]);
        }
        let bytes = kv_b.iter().flat_map(|x| x.to_le_bytes()).collect();
        vec![(
            format!("{layer}attn_kv_b.weight"),
            ty,
            vec![r as u64, (heads * (nope + v)) as u64],
            bytes,
        )]
    };
    let u32 = |n: usize| Some(MetadataValue::U32(n as u32));
    let changes = [
        ("deepseek2.attention.key_length", u32(nope + c.rope_dimension_count)),
        ("deepseek2.attention.value_length", u32(v)),
        ("deepseek2.attention.head_count_kv", u32(heads)),
        ("deepseek2.attention.key_length_mla", None),
        ("deepseek2.attention.value_length_mla", None),
    ];
    let older = common::rewritten(&current, &changes, &edit);
    assert!(
        older.tensor("blk.1.attn_k_b.weight").is_err()
            && older.tensor("blk.1.attn_kv_b.weight").is_ok()
    );
    let older = uma_model::Model::load(Arc::new(older)).expect("an older file loads");
    assert_eq!(older.config(), model.config(), "the same shapes and cache");
    let tokens = [46, 275, 21, 202, 231, 80, 7];
    assert_eq!(common::all_logits(&older, &tokens), common::all_logits(&model, &tokens));
}
