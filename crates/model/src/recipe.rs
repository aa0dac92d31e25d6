//! What an architecture's file provides ([`ArchitectureRecipe`]): its hyper-parameters, the
//! tensors it loads and its layer recipe ([`LayerRecipe`]), built from the shared
//! [`crate::blocks`]; and a model's weights loaded by such a recipe ([`ModelWeights`]), which run
//! embed → layers → head.

use std::marker::PhantomData;

use crate::backend::Backend;
use crate::blocks::{Embedding, OutputHead};
use crate::config::{FileParameters, ModelConfig, RopeStyle};
use crate::error::Result;
use crate::forward::{ForwardPass, LayerRecipe};
use crate::weights::{LayerLoader, WeightLoader};

/// What the architecture files use.
pub(crate) mod prelude {
    pub(crate) use super::ArchitectureRecipe;
    pub(crate) use crate::backend::Backend;
    pub(crate) use crate::blocks::{Attention, DecoderLayer, FeedForward};
    pub(crate) use crate::config::{
        ExpertConfig, ExpertGating, FileParameters, HiddenActivation, ModelConfig, RopeStyle,
    };
    pub(crate) use crate::error::Result;
    pub(crate) use crate::experts::MoeFeedForward;
    pub(crate) use crate::forward::{ForwardPass, LayerRecipe};
    pub(crate) use crate::weights::LayerLoader;
}

/// One architecture, as its file under `arch/` declares it.
pub(crate) trait ArchitectureRecipe: 'static {
    /// The `general.architecture` name.
    const NAME: &'static str;

    /// Which dimensions rope rotates together.
    const ROPE_STYLE: RopeStyle;

    /// One layer's weights on backend `B`, and how the layer computes.
    type Layer<B: Backend>: LayerRecipe<B>;

    /// Completes the hyper-parameters every architecture reads ([`ModelConfig`]) with what this
    /// one reads for itself from `file`: nothing unless it says so.
    fn configure(config: &mut ModelConfig, file: &FileParameters<'_>) -> Result<()> {
        let _ = (config, file);
        Ok(())
    }

    /// The token embeddings: the table as it is unless the architecture scales it.
    fn load_embedding<B: Backend>(
        weights: &WeightLoader<'_, B>,
        config: &ModelConfig,
    ) -> Result<Embedding<B>> {
        Embedding::load(weights, config)
    }

    /// The tensors of one layer.
    fn load_layer<B: Backend>(weights: &LayerLoader<'_, B>) -> Result<Self::Layer<B>>;
}

/// The layers of a model, whatever its architecture.
pub(crate) trait LayerStack<B: Backend>: Send + Sync {
    /// Runs every layer in order.
    fn forward(&self, f: &mut ForwardPass<'_, B>) -> Result<()>;
}

/// The layers of an `A` model.
struct Layers<A: ArchitectureRecipe, B: Backend> {
    layers: Vec<A::Layer<B>>,
    architecture: PhantomData<fn() -> A>,
}

impl<A: ArchitectureRecipe, B: Backend> LayerStack<B> for Layers<A, B> {
    fn forward(&self, f: &mut ForwardPass<'_, B>) -> Result<()> {
        for (il, layer) in self.layers.iter().enumerate() {
            f.begin_layer(il);
            layer.forward(f)?;
        }
        Ok(())
    }
}

/// A model's weights on backend `B`.
pub(crate) struct ModelWeights<B: Backend> {
    pub(crate) embedding: Embedding<B>,
    pub(crate) layers: Box<dyn LayerStack<B>>,
    pub(crate) head: OutputHead<B>,
}

impl<B: Backend> ModelWeights<B> {
    /// Finds and checks every tensor an `A` model of `config` has.
    pub(crate) fn load<A: ArchitectureRecipe>(
        weights: &WeightLoader<'_, B>,
        config: &ModelConfig,
    ) -> Result<Self> {
        let embedding = A::load_embedding(weights, config)?;
        // The head before the layers, as the planner's loading peak assumes (the head repacked
        // while the rest of the file is still mapped).
        let head = OutputHead::load(weights, config)?;
        let layers = (0..config.num_hidden_layers)
            .map(|layer| A::load_layer(&weights.layer(layer, config)))
            .collect::<Result<Vec<_>>>()?;
        let layers = Box::new(Layers::<A, B> { layers, architecture: PhantomData });
        Ok(ModelWeights { embedding, layers, head })
    }
}
