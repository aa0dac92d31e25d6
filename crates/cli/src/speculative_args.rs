//! `--speculative`, `--draft` and `--draft-tokens`: speculative decoding for `uma run` and `uma
//! serve` (and the speculative test of `uma bench`). The draft model's weights and KV pool come
//! out of the same memory budget as the model's; `uma plan --draft` counts them the same way.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use uma_engine::{PromptEncoder, SpeculativeConfig, SpeculativeMode};
use uma_gguf::GgufFile;

use crate::memory_budget::{plan_model, KvRequest};

/// The speculative-decoding options.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct SpeculativeArgs {
    /// Speculative decoding: off, lookup (drafts copied from earlier in the prompt or reply:
    /// free, and fast when the answer repeats its input, as code edits do), draft (a draft
    /// model's guesses, prompt lookup first), or auto (draft with --draft, else lookup; only
    /// while few sequences decode). The output is the same as without it.
    #[arg(long, value_name = "MODE", default_value = "auto", value_parser = parse_mode)]
    speculative: SpeculativeMode,
    /// A small model with the same vocabulary that guesses the next tokens (e.g. the 0.5B of
    /// the model's family), as a file or a store name.
    #[arg(long, value_name = "MODEL")]
    draft: Option<PathBuf>,
    /// Most draft tokens per sequence and step (fewer when longer drafts do not pay: the engine
    /// weighs how often they hold against what a draft row costs on this machine).
    #[arg(long, value_name = "N", default_value_t = SpeculativeConfig::default().max_draft_tokens as u64,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    draft_tokens: u64,
}

fn parse_mode(text: &str) -> std::result::Result<SpeculativeMode, String> {
    SpeculativeMode::parse(text)
        .ok_or_else(|| format!("{text:?} is not one of off, lookup, draft, auto"))
}

impl SpeculativeArgs {
    /// The engine's configuration; the draft's path resolved (a store name becomes its file).
    pub(crate) fn config(&self) -> Result<SpeculativeConfig> {
        if self.speculative == SpeculativeMode::Draft && self.draft.is_none() {
            anyhow::bail!("--speculative draft needs a draft model: --draft MODEL");
        }
        let draft_model = match &self.draft {
            Some(model) if self.speculative != SpeculativeMode::Off => {
                Some(crate::model_path::resolve(model)?)
            }
            _ => None,
        };
        Ok(SpeculativeConfig {
            mode: self.speculative,
            max_draft_tokens: self.draft_tokens as usize,
            draft_model,
            ..SpeculativeConfig::default()
        })
    }
}

/// The tokenizer and chat template of the model at `path`.
pub(crate) fn prompt_encoder(path: &Path) -> Result<PromptEncoder> {
    GgufFile::open(path)
        .map_err(anyhow::Error::from)
        .and_then(|file| Ok(PromptEncoder::from_gguf(&file)?))
        .with_context(|| format!("cannot load {}", path.display()))
}

/// Refuses the draft model at `draft` for the model at `model` (whose tokenizer `prompts` has)
/// unless its vocabulary is the model's token for token: the check `uma run` and `uma serve` make
/// when they load it, for commands that must know before they load anything.
pub(crate) fn check_draft(draft: &Path, model: &Path, prompts: &PromptEncoder) -> Result<()> {
    uma_engine::check_same_vocabulary(&prompt_encoder(draft)?, prompts)
        .with_context(|| format!("{} cannot draft for {}", draft.display(), model.display()))
}

/// Bytes the draft model of `config` takes for the KV pool of `request` (its cache is
/// [`uma_planner::DRAFT_KV_CACHE_TYPE`] whatever the model's is, as `uma plan --draft` counts
/// it): what the model's own plan must leave in the budget.
pub(crate) fn draft_memory_bytes(
    config: &SpeculativeConfig,
    request: &KvRequest,
    budget_bytes: u64,
) -> Result<u64> {
    let Some(path) = &config.draft_model else { return Ok(0) };
    let file = GgufFile::open(path)
        .with_context(|| format!("cannot load the draft model {}", path.display()))?;
    let request = KvRequest { kv_cache_type: uma_planner::DRAFT_KV_CACHE_TYPE, ..*request };
    Ok(plan_model(path, &file, &request, budget_bytes)?.memory_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uma_planner::{KvCacheType, ModelSpec, PlanRequest};
    use uma_test_models::TestModel;

    /// `uma plan --draft` (the planner's draft request) and `uma run`/`uma serve` (the draft's
    /// own plan for the model's pool) count the same bytes for the same contexts.
    #[test]
    fn plan_counts_the_draft_as_run_and_serve_do() {
        let spec = |model: TestModel| {
            let path = uma_test_models::path(model);
            let file = GgufFile::open(&path).expect("test model");
            ModelSpec::from_gguf(&file, model.file_name()).expect("spec")
        };
        let (target, draft) = (spec(TestModel::QwenCoder15b), spec(TestModel::QwenCoder05b));
        let config = SpeculativeConfig {
            draft_model: Some(uma_test_models::path(TestModel::QwenCoder05b)),
            ..SpeculativeConfig::default()
        };
        for (num_sequences, kv_cache_type) in [(1, KvCacheType::F16), (3, KvCacheType::Q8_0)] {
            let request = PlanRequest { num_sequences, kv_cache_type, ..PlanRequest::default() };
            let plan =
                uma_planner::plan_memory_with_draft(&target, Some(&draft), &request, 1 << 40)
                    .expect("plans");
            let positions = (request.context_length * num_sequences) as usize;
            let kv_request = KvRequest {
                context_length: request.context_length as usize,
                num_sequences: num_sequences as usize,
                kv_cache_tokens: positions,
                min_kv_cache_tokens: positions,
                max_num_batched_tokens: request.max_num_batched_tokens as usize,
                kv_cache_type,
            };
            let run_bytes = draft_memory_bytes(&config, &kv_request, 1 << 40).expect("draft");
            assert_eq!(plan.draft.expect("draft planned").needed_bytes, run_bytes);
        }
    }
}
