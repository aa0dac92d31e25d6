//! MODEL arguments: a path to a GGUF file, or the name of a model in the store
//! (`qwen2.5-coder:1.5b-q4_k_m`, `hf.co/OWNER/REPO:Q4_K_M`).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use uma_store::{ModelName, ModelStore, StoreError};

/// The store under uma's data folder (`$UMA_HOME`, else the user data directory).
pub(crate) fn store() -> anyhow::Result<ModelStore> {
    uma_planner::uma_home()
        .map(ModelStore::new)
        .ok_or_else(|| anyhow!("cannot find a home folder for the model store: set UMA_HOME"))
}

/// `model` as a file: an existing path as it is; else, if it is a model name, the file the store
/// holds under it. Anything else is returned unchanged, for opening it to report the missing
/// file.
pub(crate) fn resolve(model: &Path) -> anyhow::Result<PathBuf> {
    if model.exists() {
        return Ok(model.to_owned());
    }
    let Some(name) = model.to_str().and_then(|text| ModelName::parse(text).ok()) else {
        return Ok(model.to_owned());
    };
    match store()?.resolve(&name) {
        Ok(path) => Ok(path),
        Err(StoreError::NotFound { .. }) => {
            bail!(
                "{}: no such file, and no model named {name} in the store (`uma list`)",
                model.display()
            )
        }
        Err(other) => Err(other.into()),
    }
}

/// Replaces `model` by [`resolve`]'s file.
pub(crate) fn resolve_in(model: &mut PathBuf) -> anyhow::Result<()> {
    *model = resolve(model)?;
    Ok(())
}
