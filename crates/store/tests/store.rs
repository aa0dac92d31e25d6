//! The store on a real folder: installs appear whole, list and resolve find them, removal
//! cleans up, and nothing a name, a manifest or a symbolic link says can reach outside.

use std::fs;
use std::path::PathBuf;

use uma_store::{Manifest, ModelName, ModelStore, StoreError};

/// A fresh, empty store folder for one test.
fn fresh_store(test: &str) -> ModelStore {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("store-{test}"));
    let _ = fs::remove_dir_all(&root);
    ModelStore::new(root)
}

fn manifest(name: &ModelName, file: &str, size: u64) -> Manifest {
    Manifest {
        name: name.to_string(),
        source_repo: name.hugging_face_repository().map(str::to_owned),
        file: file.to_owned(),
        revision: Some("0123abcd".to_owned()),
        sha256: "00".repeat(32),
        size,
        stored_at: 1_763_700_000,
    }
}

/// Installs a model whose file holds `bytes`.
fn install(store: &ModelStore, name: &str, file: &str, bytes: &[u8]) -> PathBuf {
    let name = ModelName::parse(name).expect("valid name");
    let partial = store.partial_path(&name, file).expect("partial path");
    fs::write(&partial, bytes).expect("write the partial file");
    let stored = store.install(&name, &partial, &manifest(&name, file, bytes.len() as u64));
    let stored = stored.expect("installed");
    assert!(!partial.exists(), "the partial file was moved, not copied");
    stored.path
}

#[test]
fn installed_models_resolve_list_and_remove() {
    let store = fresh_store("roundtrip");
    assert!(store.list().expect("empty list").is_empty());
    let path = install(&store, "qwen2.5-coder:1.5b-q4_k_m", "qwen.gguf", b"GGUF one");
    install(&store, "hf.co/Owner/Repo-GGUF:Q4_K_M", "repo-q4_k_m.gguf", b"GGUF two");
    let name = ModelName::parse("qwen2.5-coder:1.5b-q4_k_m").expect("name");
    assert_eq!(store.resolve(&name).expect("resolves"), path);
    assert_eq!(fs::read(&path).expect("read"), b"GGUF one");

    let listed: Vec<String> =
        store.list().expect("list").iter().map(|m| m.name.to_string()).collect();
    assert_eq!(listed, ["hf.co/Owner/Repo-GGUF:Q4_K_M", "qwen2.5-coder:1.5b-q4_k_m"]);
    let hf = ModelName::parse("hf.co/Owner/Repo-GGUF:Q4_K_M").expect("name");
    assert_eq!(
        store.get(&hf).expect("get").manifest.source_repo.as_deref(),
        Some("Owner/Repo-GGUF")
    );

    store.remove(&hf).expect("removed");
    assert!(matches!(store.resolve(&hf), Err(StoreError::NotFound { .. })));
    assert!(!store.root().join("models/hf.co").exists(), "empty folders above it went too");
    assert_eq!(store.list().expect("list").len(), 1);
}

#[test]
fn a_download_in_progress_is_invisible() {
    let store = fresh_store("partial");
    let name = ModelName::parse("half:done").expect("name");
    let partial = store.partial_path(&name, "half.gguf").expect("partial path");
    fs::write(&partial, b"GGUF, the first half").expect("write");
    assert!(store.list().expect("list").is_empty());
    assert!(matches!(store.resolve(&name), Err(StoreError::NotFound { .. })));
    // Garbage folders are skipped too.
    fs::create_dir_all(store.root().join("models/not a model/x")).expect("mkdir");
    assert!(store.list().expect("list").is_empty());
}

#[cfg(unix)]
#[test]
fn links_and_manifests_cannot_point_outside() {
    let store = fresh_store("escape");
    let outside = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("store-escape-secret.txt");
    fs::write(&outside, b"secret").expect("write the outside file");

    // A model whose file was replaced by a symbolic link.
    let path = install(&store, "linked", "linked.gguf", b"GGUF");
    fs::remove_file(&path).expect("remove");
    std::os::unix::fs::symlink(&outside, &path).expect("symlink");
    let name = ModelName::parse("linked").expect("name");
    assert!(matches!(store.resolve(&name), Err(StoreError::NotARegularFile { .. })));
    assert!(store.list().expect("list").is_empty(), "a linked model is not listed");
    assert!(store.remove(&name).is_err(), "nor removed through the name");
    assert!(outside.exists());

    // A manifest naming a file elsewhere.
    let path = install(&store, "sneaky", "sneaky.gguf", b"GGUF");
    let manifest_path = path.with_file_name("manifest.json");
    let text = fs::read_to_string(&manifest_path).expect("manifest");
    for evil in ["../../../store-escape-secret.txt", "/etc/passwd", ".."] {
        let forged = text.replace("\"sneaky.gguf\"", &format!("{evil:?}"));
        fs::write(&manifest_path, forged).expect("forge");
        let name = ModelName::parse("sneaky").expect("name");
        assert!(matches!(store.resolve(&name), Err(StoreError::BadManifest { .. })), "{evil}");
    }
    // A model folder that is a symbolic link to a folder outside, holding a valid model.
    let elsewhere = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("store-escape-elsewhere");
    let _ = fs::remove_dir_all(&elsewhere);
    let decoy = fresh_store("escape-decoy");
    let decoy_file = install(&decoy, "decoy", "decoy.gguf", b"GGUF");
    fs::rename(decoy_file.parent().expect("folder"), &elsewhere).expect("move it outside");
    fs::create_dir_all(store.root().join("models/decoy")).expect("mkdir");
    std::os::unix::fs::symlink(&elsewhere, store.root().join("models/decoy/latest")).expect("link");
    let decoy_name = ModelName::parse("decoy").expect("name");
    assert!(matches!(store.resolve(&decoy_name), Err(StoreError::OutsideStore { .. })));
    assert!(store.remove(&decoy_name).is_err());
    assert!(elsewhere.join("decoy.gguf").exists(), "nothing outside was touched");

    // Names never get that far.
    for bad in ["../store-escape-secret.txt", "/etc/passwd", "a/../../b"] {
        assert!(matches!(ModelName::parse(bad), Err(StoreError::InvalidName { .. })), "{bad}");
    }
    assert_eq!(fs::read(&outside).expect("still there"), b"secret");
}
