//! `uma list` and `uma rm`: the models in the local store.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use uma_store::ModelName;

use crate::format;
use crate::model_path::store;

#[derive(clap::Args, Debug)]
pub(crate) struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub(crate) struct RemoveArgs {
    /// Names of stored models (`uma list` shows them).
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
}

/// `uma list`: name, size, quantization (from the name's tag or file), modified.
pub(crate) fn list(args: &ListArgs) -> anyhow::Result<()> {
    let store = store()?;
    let models = store.list()?;
    if args.json {
        let models: Vec<serde_json::Value> = models
            .iter()
            .map(|model| {
                serde_json::json!({
                    "name": model.name.to_string(),
                    "path": model.path,
                    "manifest": model.manifest,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&models)?);
        return Ok(());
    }
    if models.is_empty() {
        println!("no models in {} (pull one with `uma pull`)", store.root().display());
        return Ok(());
    }
    let name_width = models.iter().map(|m| m.name.to_string().len()).max().unwrap_or(4).max(4);
    println!("{:<name_width$}  {:>10}  {:<24}  MODIFIED", "NAME", "SIZE", "FILE");
    for model in &models {
        let stored = SystemTime::UNIX_EPOCH + Duration::from_secs(model.manifest.stored_at);
        println!(
            "{:<name_width$}  {:>10}  {:<24}  {}",
            model.name.to_string(),
            format::bytes(model.manifest.size),
            model.manifest.file,
            humantime::format_rfc3339_seconds(stored),
        );
    }
    Ok(())
}

/// `uma rm NAME...`: removes each, or fails on the first that is not there (removing nothing
/// after it).
pub(crate) fn remove(args: &RemoveArgs) -> anyhow::Result<()> {
    let store = store()?;
    for text in &args.names {
        let name = ModelName::parse(text)?;
        let removed = store.remove(&name).with_context(|| format!("cannot remove {name}"))?;
        println!("removed {} ({})", removed.name, format::bytes(removed.manifest.size));
    }
    Ok(())
}
