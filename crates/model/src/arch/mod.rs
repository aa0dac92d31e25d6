//! The registry: every architecture uma runs, by its GGUF `general.architecture` name, one file
//! each ([`ArchitectureRecipe`]). Adding an architecture is a new file and one line in
//! [`visit`].

mod deepseek2;
mod gemma3;
mod gpt_oss;
mod llama;
mod olmoe;
mod qwen2;
mod qwen2moe;
mod qwen3;
mod qwen3moe;

use uma_gguf::{GgufFile, ModelParams};

use crate::backend::Backend;
use crate::config::{Architecture, FileParameters, ModelConfig};
use crate::error::{ModelError, Result};
use crate::recipe::{ArchitectureRecipe, ModelWeights};
use crate::weights::WeightLoader;

/// Something to do with an architecture's recipe.
trait Visitor {
    type Output;
    fn visit<A: ArchitectureRecipe>(self) -> Self::Output;
}

/// Calls `visitor` with the architecture named `name`.
fn visit<V: Visitor>(name: &str, visitor: V) -> Result<V::Output> {
    Ok(match name {
        llama::Llama::NAME => visitor.visit::<llama::Llama>(),
        qwen2::Qwen2::NAME => visitor.visit::<qwen2::Qwen2>(),
        qwen2moe::Qwen2Moe::NAME => visitor.visit::<qwen2moe::Qwen2Moe>(),
        qwen3::Qwen3::NAME => visitor.visit::<qwen3::Qwen3>(),
        qwen3moe::Qwen3Moe::NAME => visitor.visit::<qwen3moe::Qwen3Moe>(),
        gemma3::Gemma3::NAME => visitor.visit::<gemma3::Gemma3>(),
        deepseek2::Deepseek2::NAME => visitor.visit::<deepseek2::Deepseek2>(),
        gpt_oss::GptOss::NAME => visitor.visit::<gpt_oss::GptOss>(),
        olmoe::Olmoe::NAME => visitor.visit::<olmoe::Olmoe>(),
        other => {
            return Err(ModelError::UnsupportedArchitecture { architecture: other.to_owned() })
        }
    })
}

impl Architecture {
    /// The architecture named by `general.architecture`.
    pub fn from_name(name: &str) -> Result<Architecture> {
        struct Name;
        impl Visitor for Name {
            type Output = &'static str;
            fn visit<A: ArchitectureRecipe>(self) -> &'static str {
                A::NAME
            }
        }
        visit(name, Name).map(|name| Architecture { name })
    }
}

impl ModelConfig {
    /// Reads the declared parameters and applies the architecture's rules. The vocabulary size
    /// and tied head come from the tensors (`token_embd.weight`, `output.weight`).
    pub fn from_file(file: &GgufFile) -> Result<ModelConfig> {
        struct Configure<'a> {
            config: &'a mut ModelConfig,
            file: FileParameters<'a>,
        }
        impl Visitor for Configure<'_> {
            type Output = Result<()>;
            fn visit<A: ArchitectureRecipe>(self) -> Result<()> {
                self.config.rope_style = A::ROPE_STYLE;
                A::configure(self.config, &self.file)
            }
        }
        let params = ModelParams::from_metadata(file.metadata())?;
        let architecture = Architecture::from_name(&params.architecture)?;
        let (mut config, file) = ModelConfig::read_common(file, &params, architecture)?;
        visit(architecture.name(), Configure { config: &mut config, file })??;
        // Values as wide as keys, but where latent attention says otherwise.
        if config.mla.is_none() && params.value_head_dim != params.head_dim {
            return Err(ModelError::InvalidConfig {
                name: "value_head_dim",
                reason: format!(
                    "{} differs from head_dim {}",
                    params.value_head_dim, params.head_dim
                ),
            });
        }
        Ok(config)
    }
}

impl<B: Backend> ModelWeights<B> {
    /// The weights of the model `config` describes, found in `weights`' file.
    pub(crate) fn load_for(weights: &WeightLoader<'_, B>, config: &ModelConfig) -> Result<Self> {
        struct Load<'a, B: Backend> {
            weights: &'a WeightLoader<'a, B>,
            config: &'a ModelConfig,
        }
        impl<B: Backend> Visitor for Load<'_, B> {
            type Output = Result<ModelWeights<B>>;
            fn visit<A: ArchitectureRecipe>(self) -> Result<ModelWeights<B>> {
                ModelWeights::load::<A>(self.weights, self.config)
            }
        }
        visit(config.architecture.name(), Load { weights, config })?
    }
}
