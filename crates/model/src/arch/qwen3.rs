//! Qwen 3 (dense): no biases, per-head RMS norms of q and k before rope, NeoX rope.

use crate::config::{ModelConfig, RopeStyle};

pub(crate) fn configure(config: &mut ModelConfig) {
    config.rope_style = RopeStyle::Neox;
    config.qk_norm = true;
}
