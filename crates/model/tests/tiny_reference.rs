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
