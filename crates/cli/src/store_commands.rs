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
        println!(
            "{:<name_width$}  {:>10}  {:<24}  {}",
            model.name.to_string(),
            format::bytes(model.manifest.size),
            model.manifest.file,
            stored_time(model.manifest.stored_at),
        );
    }
    Ok(())
}

/// A manifest's `stored_at` (seconds since 1970) as RFC 3339, or `-` for one no calendar date
/// can show (a hand-edited manifest: past year 9999, or past what the clock can hold).
fn stored_time(seconds: u64) -> String {
    const YEAR_10000: u64 = 253_402_300_800;
    match SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds)) {
        Some(time) if seconds < YEAR_10000 => humantime::format_rfc3339_seconds(time).to_string(),
        _ => "-".to_owned(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_future_store_times_print_a_dash_not_a_panic() {
        assert_eq!(stored_time(1_763_700_000), "2025-11-21T04:40:00Z");
        assert_eq!(stored_time(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(stored_time(253_402_300_800), "-");
        assert_eq!(stored_time(u64::MAX), "-");
    }
}
