//! `uma show MODEL`: everything a user needs to know about a GGUF file before loading it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use uma_gguf::{GgufFile, ModelParams, TokenizerParams};

use crate::format;

#[derive(clap::Args, Debug)]
pub(crate) struct ShowArgs {
    /// A .gguf file, or the name of a model in the store (`uma list`).
    pub(crate) model: PathBuf,
    /// Print machine-readable JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Tensors of one ggml type.
#[derive(Serialize, Debug, Default, PartialEq)]
struct QuantizationShare {
    tensors: u64,
    bytes: u64,
}

/// The report, in the shape `--json` prints. Hyper-parameters use Hugging Face names.
#[derive(Serialize, Debug)]
struct ShowReport {
    path: String,
    file_size: u64,
    gguf_version: u32,
    alignment: u64,
    metadata_count: usize,
    tensor_count: usize,
    parameter_count: u64,
    /// ggml type name → tensors and bytes, largest first in the table, sorted by name in JSON.
    quantization: BTreeMap<String, QuantizationShare>,
    architecture: Option<String>,
    name: Option<String>,
    /// The store's manifest, when the file is a stored model (source, revision, sha256, date).
    #[serde(skip_serializing_if = "Option::is_none")]
    store: Option<uma_store::Manifest>,
    /// Hyper-parameters; `None` when the file does not describe a language model.
    model: Option<ModelReport>,
    tokenizer: Option<TokenizerReport>,
}

#[derive(Serialize, Debug)]
struct ModelReport {
    num_hidden_layers: u64,
    hidden_size: u64,
    intermediate_size: Option<u64>,
    num_attention_heads: u64,
    num_key_value_heads: u64,
    head_dim: u64,
    value_head_dim: u64,
    max_position_embeddings: u64,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_dimension_count: Option<u64>,
    rope_scaling_type: Option<String>,
    rope_scaling_factor: Option<f64>,
    sliding_window: Option<u64>,
    num_experts: Option<u64>,
    num_experts_per_token: Option<u64>,
    /// Parameters one token runs through (every parameter for a dense model; the shared
    /// tensors and `num_experts_per_token` experts for a mixture of experts).
    active_parameters: u64,
    /// f16 K and V for every layer.
    kv_cache_bytes_per_token: u64,
    /// Weight bytes one decode step reads (see `uma_planner::weight_bytes_per_token`).
    weight_bytes_per_token: u64,
}

#[derive(Serialize, Debug)]
struct TokenizerReport {
    model: String,
    pre: Option<String>,
    vocab_size: usize,
    bos_token_id: Option<u32>,
    eos_token_id: Option<u32>,
    add_bos_token: Option<bool>,
    chat_template_present: bool,
}

pub(crate) fn run(args: &ShowArgs) -> anyhow::Result<()> {
    let file = GgufFile::open(&args.model)
        .with_context(|| format!("cannot load {}", args.model.display()))?;
    let report = build_report(&file, &args.model)?;
    let text =
        if args.json { serde_json::to_string_pretty(&report)? + "\n" } else { render(&report) };
    crate::output::print(&text)
}

fn build_report(file: &GgufFile, path: &std::path::Path) -> anyhow::Result<ShowReport> {
    let metadata = file.metadata();
    let mut quantization: BTreeMap<String, QuantizationShare> = BTreeMap::new();
    for tensor in file.tensor_infos() {
        let share = quantization.entry(tensor.ggml_type.name().to_owned()).or_default();
        share.tensors += 1;
        share.bytes += tensor.size_in_bytes;
    }
    let architecture = metadata.get_str(uma_gguf::keys::GENERAL_ARCHITECTURE)?.map(str::to_owned);
    // A file without an architecture (a bare tensor container) still gets its file-level facts;
    // one that names an architecture but lacks its keys is broken, and we say which key.
    let model = match &architecture {
        None => None,
        Some(_) => Some(model_report(file, &ModelParams::from_metadata(metadata)?)),
    };
    let tokenizer = TokenizerParams::from_metadata(metadata)?.map(|t| TokenizerReport {
        chat_template_present: t.chat_template.is_some(),
        model: t.model,
        pre: t.pre,
        vocab_size: t.vocab_size,
        bos_token_id: t.bos_token_id,
        eos_token_id: t.eos_token_id,
        add_bos_token: t.add_bos_token,
    });
    Ok(ShowReport {
        path: path.display().to_string(),
        file_size: file.file_size(),
        gguf_version: file.version(),
        alignment: file.header().alignment,
        metadata_count: metadata.len(),
        tensor_count: file.tensor_infos().len(),
        parameter_count: file.tensor_infos().iter().map(|t| t.num_elements).sum(),
        quantization,
        name: metadata.get_str(uma_gguf::keys::GENERAL_NAME)?.map(str::to_owned),
        store: stored_manifest(path),
        architecture,
        model,
        tokenizer,
    })
}

fn model_report(file: &GgufFile, p: &ModelParams) -> ModelReport {
    ModelReport {
        num_hidden_layers: p.num_hidden_layers,
        hidden_size: p.hidden_size,
        intermediate_size: p.intermediate_size,
        num_attention_heads: p.num_attention_heads,
        num_key_value_heads: p.num_key_value_heads,
        head_dim: p.head_dim,
        value_head_dim: p.value_head_dim,
        max_position_embeddings: p.max_position_embeddings,
        rms_norm_eps: p.rms_norm_eps,
        rope_theta: p.rope_theta,
        rope_dimension_count: p.rope_dimension_count,
        rope_scaling_type: p.rope_scaling.as_ref().map(|r| r.scaling_type.clone()),
        rope_scaling_factor: p.rope_scaling.as_ref().and_then(|r| r.factor),
        sliding_window: p.sliding_window,
        num_experts: p.num_experts,
        num_experts_per_token: p.num_experts_per_token,
        active_parameters: uma_planner::active_parameters_per_token(file),
        kv_cache_bytes_per_token: uma_planner::kv_cache_bytes_per_token(p),
        weight_bytes_per_token: uma_planner::weight_bytes_per_token(file),
    }
}

/// The manifest of the stored model whose file `path` is, if it is one.
fn stored_manifest(path: &std::path::Path) -> Option<uma_store::Manifest> {
    let models = crate::model_path::store().ok()?.list().ok()?;
    models.into_iter().find(|model| model.path == path).map(|model| model.manifest)
}

fn render(r: &ShowReport) -> String {
    let mut out = String::new();
    let mut row = |label: &str, value: String| {
        writeln!(out, "  {label:<34}{value}").expect("writing to a String cannot fail");
    };
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    row("file", r.path.clone());
    row("architecture", or_dash(r.architecture.clone()));
    row("name", or_dash(r.name.clone()));
    if let Some(manifest) = &r.store {
        row("stored as", manifest.name.clone());
        row("pulled from", or_dash(manifest.source_repo.clone()));
        row("revision", or_dash(manifest.revision.clone()));
        row("sha256", manifest.sha256.clone());
    }
    row("parameters", format::count(r.parameter_count));
    row("file size", format::bytes(r.file_size));
    row(
        "gguf",
        format!(
            "v{}, {} metadata keys, {} tensors, alignment {}",
            r.gguf_version, r.metadata_count, r.tensor_count, r.alignment
        ),
    );
    if let Some(m) = &r.model {
        row("layers", m.num_hidden_layers.to_string());
        row("hidden size", m.hidden_size.to_string());
        row("feed-forward size", or_dash(m.intermediate_size.map(|n| n.to_string())));
        row(
            "attention heads",
            format!(
                "{} (kv heads {}, head dim {})",
                m.num_attention_heads, m.num_key_value_heads, m.head_dim
            ),
        );
        row("context length", m.max_position_embeddings.to_string());
        let rope_scaling = match (&m.rope_scaling_type, m.rope_scaling_factor) {
            (Some(kind), Some(factor)) => format!("{kind} ×{factor}"),
            (Some(kind), None) => kind.clone(),
            (None, _) => "none".into(),
        };
        row(
            "rope",
            format!(
                "base {}, dims {}, scaling {rope_scaling}",
                or_dash(m.rope_theta.map(|v| v.to_string())),
                m.rope_dimension_count.unwrap_or(m.head_dim)
            ),
        );
        if let Some(window) = m.sliding_window {
            row("sliding window", format!("{window} tokens"));
        }
        if let (Some(total), Some(active)) = (m.num_experts, m.num_experts_per_token) {
            row("experts", format!("{active} of {total} per token"));
            row("active parameters", format!("{} per token", format::count(m.active_parameters)));
        }
    }
    if let Some(t) = &r.tokenizer {
        let kind = match t.model.as_str() {
            "gpt2" => "byte-level BPE",
            "llama" => "SentencePiece",
            _ => "other",
        };
        let pre = t.pre.as_deref().map(|p| format!(", pre-tokenizer {p}")).unwrap_or_default();
        row("tokenizer", format!("{} ({kind}{pre}), {} tokens", t.model, t.vocab_size));
        row(
            "bos / eos",
            format!(
                "{} / {}",
                or_dash(t.bos_token_id.map(|n| n.to_string())),
                or_dash(t.eos_token_id.map(|n| n.to_string()))
            ),
        );
        row(
            "chat template",
            if t.chat_template_present { "in file" } else { "none in file" }.into(),
        );
    }
    if let Some(m) = &r.model {
        row("weight bytes read per token", format::bytes(m.weight_bytes_per_token));
        let window_note = match m.sliding_window {
            Some(w) => format!(" (sliding-window layers stop growing after {w} tokens)"),
            None => String::new(),
        };
        row(
            "KV cache per token (f16)",
            format!(
                "{} B, {} at full context{window_note}",
                format::grouped(m.kv_cache_bytes_per_token),
                format::bytes(m.kv_cache_bytes_per_token * m.max_position_embeddings)
            ),
        );
    }
    writeln!(out, "\n  {:<8}{:>8}{:>14}{:>8}", "type", "tensors", "bytes", "share")
        .expect("writing to a String cannot fail");
    let total: u64 = r.quantization.values().map(|q| q.bytes).sum::<u64>().max(1);
    let mut shares: Vec<_> = r.quantization.iter().collect();
    shares.sort_by_key(|(_, share)| std::cmp::Reverse(share.bytes));
    for (name, share) in shares {
        writeln!(
            out,
            "  {name:<8}{:>8}{:>14}{:>7.1}%",
            share.tensors,
            format::bytes(share.bytes),
            100.0 * share.bytes as f64 / total as f64
        )
        .expect("writing to a String cannot fail");
    }
    out
}
