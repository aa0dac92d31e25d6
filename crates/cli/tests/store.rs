//! The model store from the command line: a model installed in `$UMA_HOME` is listed, runs,
//! shows and plans by its name, and is removed by it; names that could reach outside the store
//! are refused. (Installing goes through the store's own API here; `uma pull` comes later.)

mod common;
#[path = "common/model_home.rs"]
mod model_home;

use common::assert_one_line_error;
use model_home::home_with_tiny_model;

use std::path::PathBuf;
use std::process::{Command, Output};

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
    let home = home_with_tiny_model("uma-home-names", "tiny:q8");
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
    let home = home_with_tiny_model("uma-home-escape", "tiny:q8");
    for bad in ["../uma-home-escape", "tiny:../../x", "a/b"] {
        assert_one_line_error(&uma(&home, &["rm", bad]), "invalid model name");
    }
    assert!(stdout(&uma(&home, &["list"])).contains("tiny:q8"), "nothing was removed");
}
