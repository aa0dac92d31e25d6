//! A model store (`$UMA_HOME`) for the tests of stored models: the tiny llama model installed
//! under a name.

use std::fs;
use std::path::PathBuf;

use uma_store::{Manifest, ModelName, ModelStore};

/// A fresh `$UMA_HOME` in `target/tmp/HOME` with the tiny llama model stored as `name`
/// (`tiny:q8`, say), from the repository `example/tiny`.
pub(crate) fn home_with_tiny_model(home: &str, name: &str) -> PathBuf {
    let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(home);
    let _ = fs::remove_dir_all(&home);
    let store = ModelStore::new(&home);
    let name = ModelName::parse(name).expect("name");
    let partial = store.partial_path(&name, "tiny.gguf").expect("partial");
    uma_test_models::tiny::write_tiny_model("llama", &partial).expect("tiny model");
    let size = fs::metadata(&partial).expect("size").len();
    let manifest = Manifest {
        name: name.to_string(),
        source_repo: Some("example/tiny".into()),
        file: "tiny.gguf".into(),
        revision: None,
        sha256: "ab".repeat(32),
        size,
        stored_at: 1_763_700_000,
    };
    store.install(&name, &partial, &manifest).expect("install");
    home
}
