//! Qwen 2 / 2.5: Llama with q/k/v biases and NeoX rope. The trained sliding window is unused by
//! the released models (`use_sliding_window: false`), and llama.cpp ignores it: so does uma.

use crate::config::{ModelConfig, RopeStyle};

pub(crate) fn configure(config: &mut ModelConfig) {
    config.rope_style = RopeStyle::Neox;
    config.attention_bias = true;
}
