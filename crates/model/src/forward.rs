//! The state of one forward pass, which the blocks read and write: the residual stream, the
//! scratch activations every layer reuses (allocated once per pass), the KV cache and the
//! activation hook; and what a layer does to it ([`LayerRecipe`]).

use crate::backend::Backend;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::hook::{Activation, ActivationHook};

/// One layer's computation: reads and updates the residual stream `f.x`.
pub(crate) trait LayerRecipe<B: Backend>: Send + Sync {
    fn forward(&self, f: &mut ForwardPass<'_, B>) -> Result<()>;
}

/// Activations every layer reuses.
pub(crate) struct Scratch<B: Backend> {
    pub(crate) normed: B::Activations, // [num_tokens, hidden_size]: a sublayer's input
    pub(crate) q: B::Activations,      // [num_tokens, q_dim]
    pub(crate) k: B::Activations,      // [num_tokens, kv_dim]
    pub(crate) v: B::Activations,      // [num_tokens, kv_dim]
    pub(crate) attn: B::Activations,   // [num_tokens, q_dim]
    pub(crate) out: B::Activations,    // [num_tokens, hidden_size]: a sublayer's output
    pub(crate) gate: B::Activations,   // [num_tokens, intermediate_size]
    pub(crate) up: B::Activations,     // [num_tokens, intermediate_size]
}

/// Hands the activations of the layers the hook wants to it, as host f32.
pub(crate) struct Reporter<'a> {
    hook: Option<&'a mut dyn ActivationHook>,
    layer: usize,
    num_tokens: usize,
}

impl Reporter<'_> {
    /// Whether the hook wants the current layer's activations.
    pub(crate) fn is_reporting(&self) -> bool {
        self.hook.as_deref().is_some_and(|hook| hook.wants_layer(self.layer))
    }

    /// Reports `data` (`[num_tokens, width]`) as `name` of the current layer.
    pub(crate) fn report<B: Backend>(
        &mut self,
        ops: &mut B::Pass<'_>,
        name: &'static str,
        width: usize,
        data: &B::Activations,
    ) -> Result<()> {
        if let Some(hook) = self.hook.as_deref_mut() {
            if hook.wants_layer(self.layer) {
                let data = &B::host(ops, data)?;
                let shape = [self.num_tokens, width];
                hook.on_activation(Activation { layer: self.layer, name, shape, data });
            }
        }
        Ok(())
    }
}

/// One forward pass over a batch.
pub(crate) struct ForwardPass<'a, B: Backend> {
    /// The backend's state of the pass, which every operation takes.
    pub(crate) ops: B::Pass<'a>,
    pub(crate) config: &'a ModelConfig,
    pub(crate) kv: &'a mut B::KvCache,
    pub(crate) reporter: Reporter<'a>,
    /// Tokens of the step.
    pub(crate) num_tokens: usize,
    /// Rows the head computes (tokens that want logits or hidden states).
    pub(crate) num_output_rows: usize,
    pub(crate) x: B::Activations, // [num_tokens, hidden_size]: the residual stream
    pub(crate) scratch: Scratch<B>,
}

impl<'a, B: Backend> ForwardPass<'a, B> {
    /// A pass of `num_tokens` tokens, `num_output_rows` of which the head computes.
    pub(crate) fn new(
        mut ops: B::Pass<'a>,
        config: &'a ModelConfig,
        kv: &'a mut B::KvCache,
        hook: Option<&'a mut dyn ActivationHook>,
        num_tokens: usize,
        num_output_rows: usize,
    ) -> Self {
        let n = num_tokens;
        let (h, q_dim, kv_dim, ffn) =
            (config.hidden_size, config.q_dim(), config.kv_dim(), config.intermediate_size);
        let mut activations = |width| B::activations(&mut ops, n, width);
        let x = activations(h);
        let scratch = Scratch {
            normed: activations(h),
            q: activations(q_dim),
            k: activations(kv_dim),
            v: activations(kv_dim),
            attn: activations(q_dim),
            out: activations(h),
            gate: activations(ffn),
            up: activations(ffn),
        };
        ForwardPass {
            ops,
            config,
            kv,
            reporter: Reporter { hook, layer: 0, num_tokens },
            num_tokens,
            num_output_rows,
            x,
            scratch,
        }
    }

    /// The layer being computed.
    pub(crate) fn layer(&self) -> usize {
        self.reporter.layer
    }

    /// Starts layer `layer`.
    pub(crate) fn begin_layer(&mut self, layer: usize) {
        self.reporter.layer = layer;
    }
}
