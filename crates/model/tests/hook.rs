//! The activation hook reports the chosen layer's activations and changes nothing.
mod common;

use common::*;
use uma_model::{Batch, LayerDump, LogitsRequest};

#[test]
fn layer_dump_records_one_layer_without_changing_logits() {
    let model = tiny_model("gemma3");
    let c = model.config().clone();
    let tokens = [5u32, 17, 42];
    let plain = all_logits(&model, &tokens);
    let mut kv = model.new_kv_cache(1).expect("cache");
    let table = contiguous_table(&kv, 0, tokens.len());
    let mut dump = LayerDump::new(2);
    let logits = model
        .forward_with_hook(
            &Batch::single(&tokens, 0, &table, LogitsRequest::All),
            &mut kv,
            &mut dump,
        )
        .expect("forward");
    for (i, want) in plain.iter().enumerate() {
        assert_eq!(logits.row(i), want.as_slice());
    }
    let names: Vec<&str> = dump.activations.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(
        names,
        [
            "attn_norm",
            "q",
            "k",
            "v",
            "q_rope",
            "k_rope",
            "attn",
            "attn_out",
            "ffn_inp",
            "ffn_norm",
            "ffn_out",
            "layer_out"
        ]
    );
    for (name, shape, data) in &dump.activations {
        let width = match *name {
            "q" | "q_rope" | "attn" => c.q_dim(),
            "k" | "v" | "k_rope" => c.kv_dim(),
            _ => c.hidden_size,
        };
        assert_eq!(*shape, [tokens.len(), width], "{name}");
        assert_eq!(data.len(), tokens.len() * width, "{name}");
        assert!(data.iter().all(|v| v.is_finite()), "{name}");
    }
    assert!(dump.get("layer_out").is_some());
}
