//! A debug hook to dump named intermediate activations of chosen layers, to compare with a
//! reference when something diverges. Unused, it costs one `Option` check per layer.

/// One intermediate activation.
#[derive(Clone, Copy, Debug)]
pub struct Activation<'a> {
    /// Layer index.
    pub layer: usize,
    /// `attn_norm`, `q`, `k`, `v` (projections, with biases), `q_rope`, `k_rope` (after q/k norm
    /// and rope), `attn` (attention output before the output projection), `attn_out` (after it,
    /// and after the post-attention norm where there is one), `ffn_inp` (residual stream after
    /// attention), `ffn_norm`, `ffn_out` (MLP output, after the post-ffw norm where there is one),
    /// `layer_out` (residual stream after the layer).
    pub name: &'static str,
    /// `[num_tokens, width]`: every token of the batch, in batch order.
    pub shape: [usize; 2],
    pub data: &'a [f32],
}

/// Receives activations of the layers it wants.
pub trait ActivationHook {
    /// Whether to report layer `layer`'s activations.
    fn wants_layer(&self, layer: usize) -> bool;
    /// Called for each activation of a wanted layer, in computation order.
    fn on_activation(&mut self, activation: Activation<'_>);
}

/// A hook that keeps copies of every activation of one layer.
#[derive(Clone, Debug, Default)]
pub struct LayerDump {
    /// The layer to record.
    pub layer: usize,
    /// `(name, shape, values)` in computation order.
    pub activations: Vec<(&'static str, [usize; 2], Vec<f32>)>,
}

impl LayerDump {
    /// Records layer `layer`.
    pub fn new(layer: usize) -> Self {
        LayerDump { layer, activations: Vec::new() }
    }

    /// The values recorded under `name`.
    pub fn get(&self, name: &str) -> Option<&[f32]> {
        self.activations.iter().find(|(n, _, _)| *n == name).map(|(_, _, v)| v.as_slice())
    }
}

impl ActivationHook for LayerDump {
    fn wants_layer(&self, layer: usize) -> bool {
        layer == self.layer
    }

    fn on_activation(&mut self, activation: Activation<'_>) {
        self.activations.push((activation.name, activation.shape, activation.data.to_vec()));
    }
}
