//! `--speculative`, `--draft` and `--draft-tokens`: speculative decoding for `uma run` and `uma
//! serve`. The draft model's weights and KV pool come out of the same memory budget as the
//! model's.

use std::path::PathBuf;

use anyhow::{Context, Result};
use uma_engine::{SpeculativeConfig, SpeculativeMode};
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

/// Bytes the draft model of `config` takes for the KV pool of `request` (its cache is f16
/// whatever the model's is): what the model's own plan must leave in the budget.
pub(crate) fn draft_memory_bytes(
    config: &SpeculativeConfig,
    request: &KvRequest,
    budget_bytes: u64,
) -> Result<u64> {
    let Some(path) = &config.draft_model else { return Ok(0) };
    let file = GgufFile::open(path)
        .with_context(|| format!("cannot load the draft model {}", path.display()))?;
    let request = KvRequest { kv_cache_type: uma_planner::KvCacheType::F16, ..*request };
    Ok(plan_model(path, &file, &request, budget_bytes)?.memory_bytes)
}
