//! Bad batches and bad files are errors, never panics.
mod common;

use std::sync::Arc;

use common::*;
use uma_gguf::{GgmlType, GgufFile, MetadataValue};
use uma_model::{Batch, BlockId, LogitsRequest, Model, ModelError};

#[test]
fn bad_batches_are_errors() {
    let model = tiny_model("qwen2");
    let mut kv = model.new_kv_cache(4).expect("cache");
    let table = [BlockId(0), BlockId(1)];
    let max = model.config().max_position_embeddings;
    let cases: Vec<(Batch<'_>, &str)> = vec![
        (Batch::single(&[], 0, &table, LogitsRequest::Last), "no tokens"),
        (Batch::single(&[1_000_000], 0, &table, LogitsRequest::Last), "outside the vocabulary"),
        (Batch::single(&[1; 33], 0, &table, LogitsRequest::Last), "block table"),
        (Batch::single(&[1], max, &table, LogitsRequest::Last), "exceed"),
        (Batch::single(&[1], 0, &[BlockId(4)], LogitsRequest::Last), "outside the cache"),
    ];
    for (batch, message) in cases {
        match model.forward(&batch, &mut kv) {
            Err(e @ ModelError::InvalidBatch { .. }) => {
                assert!(e.to_string().contains(message), "{e} should mention {message:?}")
            }
            other => panic!("expected an invalid batch ({message}), got {other:?}"),
        }
    }
    let other = tiny_model("gemma3");
    let mut wrong_kv = other.new_kv_cache(4).expect("cache");
    assert!(matches!(
        model.forward(&Batch::single(&[1], 0, &table, LogitsRequest::Last), &mut wrong_kv),
        Err(ModelError::InvalidKvCache { .. })
    ));
}

/// A tensor edit: the tensor's new type, shape and bytes, or `None` to leave it out.
type TensorEdit<'a> =
    &'a dyn Fn(&str, GgmlType, &[u64], &[u8]) -> Option<(GgmlType, Vec<u64>, Vec<u8>)>;

/// Rewrites the tiny qwen2 model with `edit` applied to its tensor list.
fn edited(
    edit: impl Fn(&str, GgmlType, &[u64], &[u8]) -> Option<(GgmlType, Vec<u64>, Vec<u8>)>,
) -> Result<Model, ModelError> {
    edited_model("qwen2", &[], &edit)
}

/// Rewrites the tiny model of `arch` with the metadata values `changes` (`None`: removed) and
/// `edit` applied to its tensor list.
fn edited_model(
    arch: &str,
    changes: &[(&str, Option<MetadataValue>)],
    edit: TensorEdit<'_>,
) -> Result<Model, ModelError> {
    let bytes = uma_test_models::tiny::tiny_model_bytes(arch).expect("tiny");
    let file = GgufFile::from_bytes(bytes).expect("valid");
    let per_tensor = |(name, ty, shape, data): common::TensorParts| {
        let edited = edit(&name, ty, &shape, &data);
        edited.map(|(ty, shape, data)| (name, ty, shape, data)).into_iter().collect()
    };
    Model::load(Arc::new(common::rewritten(&file, changes, &per_tensor)))
}

#[test]
fn bad_files_are_errors() {
    let keep = |_: &str, ty: GgmlType, shape: &[u64], data: &[u8]| {
        Some((ty, shape.to_vec(), data.to_vec()))
    };
    assert!(edited(keep).is_ok());
    let missing = edited(|name, ty, shape, data| {
        (name != "blk.1.attn_k.bias").then(|| (ty, shape.to_vec(), data.to_vec()))
    });
    assert!(
        matches!(&missing, Err(ModelError::MissingTensor { name }) if name == "blk.1.attn_k.bias"),
        "{missing:?}"
    );
    let wrong_shape = edited(|name, ty, shape, data| {
        if name == "blk.0.ffn_up.weight" {
            Some((ty, vec![shape[1], shape[0]], data.to_vec()))
        } else {
            Some((ty, shape.to_vec(), data.to_vec()))
        }
    });
    assert!(matches!(wrong_shape, Err(ModelError::WrongShape { .. })), "{wrong_shape:?}");
    let wrong_type = edited(|name, ty, shape, data| {
        if name == "output_norm.weight" {
            // 64 F32 values re-labelled as Q8_0 bytes would not fit: use two Q8_0 blocks.
            Some((GgmlType::Q8_0, shape.to_vec(), vec![0u8; 68]))
        } else {
            Some((ty, shape.to_vec(), data.to_vec()))
        }
    });
    assert!(matches!(wrong_type, Err(ModelError::UnsupportedTensorType { .. })), "{wrong_type:?}");
}

#[test]
fn bad_mixture_of_experts_files_are_errors() {
    let keep = |_: &str, ty: GgmlType, shape: &[u64], data: &[u8]| {
        Some((ty, shape.to_vec(), data.to_vec()))
    };
    assert!(edited_model("qwen3moe", &[], &keep).is_ok());
    // A router asking for more experts than exist, and no expert width.
    let too_many = [("qwen3moe.expert_used_count", Some(MetadataValue::U32(9)))];
    let error = edited_model("qwen3moe", &too_many, &keep).expect_err("refused");
    assert!(error.to_string().contains("9 experts per token of 8"), "{error}");
    let no_width = [("qwen3moe.expert_feed_forward_length", None)];
    let error = edited_model("qwen3moe", &no_width, &keep).expect_err("refused");
    assert!(matches!(error, ModelError::InvalidConfig { name: "moe_intermediate_size", .. }));
    // A missing stack of experts, and a stack of four experts where the file declares eight.
    let missing = edited_model("qwen3moe", &[], &|name, ty, shape, data| {
        (name != "blk.1.ffn_down_exps.weight").then(|| (ty, shape.to_vec(), data.to_vec()))
    });
    assert!(
        matches!(&missing, Err(ModelError::MissingTensor { name }) if name == "blk.1.ffn_down_exps.weight"),
        "{missing:?}"
    );
    let four = edited_model("qwen3moe", &[], &|name, ty, shape, data| {
        if name == "blk.0.ffn_gate_exps.weight" {
            Some((ty, vec![shape[0], shape[1], 4], data[..data.len() / 2].to_vec()))
        } else {
            Some((ty, shape.to_vec(), data.to_vec()))
        }
    });
    assert!(matches!(four, Err(ModelError::WrongShape { .. })), "{four:?}");
    // Qwen2-MoE without its shared expert's gate.
    let no_gate = edited_model("qwen2moe", &[], &|name, ty, shape, data| {
        (name != "blk.0.ffn_gate_inp_shexp.weight").then(|| (ty, shape.to_vec(), data.to_vec()))
    });
    assert!(matches!(no_gate, Err(ModelError::MissingTensor { .. })), "{no_gate:?}");
}
