//! The model store from the command line: a model installed in `$UMA_HOME` is listed, runs,
//! shows and plans by its name, and is removed by it; names that could reach outside the store
//! are refused. (Installing goes through the store's own API here; `uma pull` comes later.)

mod common;

use common::assert_one_line_error;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

use uma_store::{Manifest, ModelName, ModelStore};

/// A fresh `$UMA_HOME` for one test, with the tiny llama model stored as `tiny:q8`.
fn home_with_tiny_model(test: &str) -> PathBuf {
    let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("uma-home-{test}"));
    let _ = fs::remove_dir_all(&home);
    let store = ModelStore::new(&home);
    let name = ModelName::parse("tiny:q8").expect("name");
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

fn uma(home: &PathBuf, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_uma"))
        .args(args)
        .env("UMA_HOME", home)
        .output()
        .expect("run uma")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn stored_models_list_show_run_plan_and_remove_by_name() {
    let home = home_with_tiny_model("names");
    let listed = stdout(&uma(&home, &["list"]));
    assert!(listed.contains("tiny:q8") && listed.contains("tiny.gguf"), "{listed}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&uma(&home, &["list", "--json"]))).expect("JSON");
    assert_eq!(json[0]["name"], "tiny:q8");
    assert_eq!(json[0]["manifest"]["source_repo"], "example/tiny");

    let shown = stdout(&uma(&home, &["show", "tiny:q8", "--json"]));
    assert!(shown.contains("\"architecture\": \"llama\""), "{shown}");
    assert!(shown.contains("\"source_repo\": \"example/tiny\""), "the manifest too: {shown}");
    let table = stdout(&uma(&home, &["show", "tiny:q8"]));
    assert!(table.contains("stored as") && table.contains("example/tiny"), "{table}");
    let answer = uma(&home, &["run", "tiny:q8", "--raw", "hello", "-n", "3", "--temperature", "0"]);
    stdout(&answer);
    let plan = stdout(&uma(&home, &["plan", "tiny:q8", "--bandwidth", "10", "--json"]));
    assert!(plan.contains("\"verdict\""), "{plan}");

    let removed = stdout(&uma(&home, &["rm", "tiny:q8"]));
    assert!(removed.contains("removed tiny:q8"), "{removed}");
    assert!(stdout(&uma(&home, &["list"])).contains("no models in"));
    assert_one_line_error(&uma(&home, &["show", "tiny:q8"]), "no model named tiny:q8 in the store");
    assert_one_line_error(&uma(&home, &["rm", "tiny:q8"]), "no model named tiny:q8");
}

#[test]
fn names_cannot_reach_outside_the_store() {
    let home = home_with_tiny_model("escape");
    for bad in ["../uma-home-escape", "tiny:../../x", "a/b"] {
        assert_one_line_error(&uma(&home, &["rm", bad]), "invalid model name");
    }
    assert!(stdout(&uma(&home, &["list"])).contains("tiny:q8"), "nothing was removed");
}
