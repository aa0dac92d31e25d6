//! `uma pull REPO[:FILE|:QUANT]`: downloads a GGUF file from a Hugging Face-compatible hub into
//! the store, with a progress bar, resuming an interrupted download, verifying the hub's sha256,
//! and making the model visible only once it is complete.

use std::time::SystemTime;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use uma_hub::{choose_gguf, Hub};
use uma_store::{Manifest, ModelName, HUGGING_FACE_PREFIX};

use crate::format;
use crate::model_path::store;

#[derive(clap::Args, Debug)]
pub(crate) struct PullArgs {
    /// OWNER/REPO (or hf.co/OWNER/REPO), optionally :FILE.gguf or :QUANT (e.g. :Q4_K_M; default:
    /// the only GGUF file, else Q4_K_M). The hub is $HF_ENDPOINT (default huggingface.co);
    /// $HF_TOKEN authenticates.
    model: String,
    /// Branch, tag or commit of the repository.
    #[arg(long, default_value = "main")]
    revision: String,
}

pub(crate) fn run(args: &PullArgs) -> anyhow::Result<()> {
    let text = args.model.strip_prefix(HUGGING_FACE_PREFIX).unwrap_or(&args.model);
    let (repo, tag) = match text.split_once(':') {
        Some((repo, tag)) => (repo, Some(tag)),
        None => (text, None),
    };
    // Validates the repository's parts as a store name would (no `..`, no stray `/`).
    ModelName::parse(&format!("{HUGGING_FACE_PREFIX}{repo}:{}", tag.unwrap_or("latest")))?;
    let hub = Hub::from_env();
    let listing = hub
        .repository_files(repo, &args.revision)
        .with_context(|| format!("cannot list {repo} on {}", hub.endpoint()))?;
    let file = choose_gguf(repo, &listing.files, tag).map_err(|error| match &error {
        uma_hub::HubError::NoMatchingFile { available, .. } if !available.is_empty() => {
            anyhow::anyhow!("{error}; its GGUF files: {}", available.join(", "))
        }
        _ => error.into(),
    })?;
    let file_name = file.path.rsplit('/').next().unwrap_or(&file.path).to_owned();
    let stored_tag =
        tag.map_or_else(|| file_name.trim_end_matches(".gguf").to_owned(), str::to_owned);
    let name = ModelName::parse(&format!("{HUGGING_FACE_PREFIX}{repo}:{stored_tag}"))?;
    let store = store()?;
    if let Ok(existing) = store.get(&name) {
        if file.sha256.as_deref() == Some(existing.manifest.sha256.as_str()) {
            println!("{name} is up to date ({})", existing.path.display());
            return Ok(());
        }
    }
    let partial = store.partial_path(&name, &file_name)?;
    let bar = ProgressBar::new(file.size);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}, {eta} left",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    bar.set_message(file_name.clone());
    let sha256 = hub
        .download(repo, &listing.revision, file, &partial, &mut |progress| {
            if progress.resumed_from > 0 && bar.position() == 0 {
                bar.println(format!("resuming at {}", format::bytes(progress.resumed_from)));
                bar.reset_eta();
            }
            bar.set_position(progress.received);
        })
        .with_context(|| {
            format!("download of {file_name} failed; run the same command again to resume")
        });
    bar.finish_and_clear();
    let sha256 = sha256?;
    if file.sha256.is_none() {
        eprintln!("uma: warning: the hub gave no sha256 for {file_name}: not verified");
    }
    let stored_at =
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |age| age.as_secs());
    let manifest = Manifest {
        name: name.to_string(),
        source_repo: Some(repo.to_owned()),
        file: file_name,
        revision: Some(listing.revision.clone()),
        sha256,
        size: file.size,
        stored_at,
    };
    let stored = store.install(&name, &partial, &manifest)?;
    // The file as it lies in the store, not the manifest we just wrote.
    let on_disk = std::fs::metadata(&stored.path)
        .with_context(|| format!("cannot read {}", stored.path.display()))?
        .len();
    if on_disk != file.size {
        bail!("the stored file holds {on_disk} bytes, the hub listed {}", file.size);
    }
    println!("pulled {name} ({}) to {}", format::bytes(file.size), stored.path.display());
    Ok(())
}
