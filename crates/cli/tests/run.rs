//! `uma run` as a user runs it: one-shot answers, a piped chat with history and /reset, and
//! errors that are one clear line.

mod common;

use common::{assert_one_line_error, text};

use std::io::Write;
use std::process::{Command, Output, Stdio};

use uma_test_models::TestModel;

fn uma(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_uma"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run uma");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("wait for uma")
}

fn model(model: TestModel) -> String {
    uma_test_models::path(model).to_str().expect("UTF-8 path").to_owned()
}

#[test]
fn one_shot_answer_streams_to_stdout_and_summarises_on_stderr() {
    let qwen = model(TestModel::QwenCoder05b);
    let output = uma(
        &["run", &qwen, "What is the capital of France? Answer in one word.", "--temperature", "0"],
        "",
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("Paris"), "answer: {stdout:?}");
    assert!(stderr.starts_with("[prompt: ") && stderr.contains("tok/s | generated: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "only the summary on stderr: {stderr}");
}

#[test]
fn max_tokens_and_stop_strings_end_the_answer() {
    let qwen = model(TestModel::QwenCoder05b);
    let args = ["run", &qwen, "Count from 1 to 20, separated by commas.", "--temperature", "0"];
    let limited = uma(&[&args[..], &["-n", "5"]].concat(), "");
    assert!(text(&limited.stderr).contains("generated: 5 tokens"), "{}", text(&limited.stderr));
    assert!(text(&limited.stderr).contains("stopped: length"));

    let stopped = uma(&[&args[..], &["--stop", "4"]].concat(), "");
    let stdout = text(&stopped.stdout);
    assert!(stdout.contains('3') && !stdout.contains('4'), "stop string is cut: {stdout:?}");
}

#[test]
fn piped_chat_keeps_history_reuses_the_cache_and_resets() {
    let qwen = model(TestModel::QwenCoder05b);
    let output = uma(
        &["run", &qwen, "--temperature", "0", "-n", "24", "--system", "Answer briefly."],
        "My favourite colour is teal. Just say OK.\nWhat is my favourite colour?\n/reset\n/exit\nignored\n",
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.to_lowercase().contains("teal"), "history is kept: {stdout:?}");
    assert!(stderr.contains("reused from cache"), "second turn reuses the prefix: {stderr}");
    assert!(stderr.contains("(conversation reset)"), "{stderr}");
    assert_eq!(stderr.matches("[prompt: ").count(), 2, "two answers, nothing after /exit");
}

#[test]
fn bad_input_is_one_clear_line() {
    let gemma = model(TestModel::Gemma3_270m);
    assert_one_line_error(&uma(&["run", "/nonexistent.gguf", "hi"], ""), "No such file");
    assert_one_line_error(&uma(&["run", &gemma, "hi", "--ctx", "100000000"], ""), "--ctx");
    let long_prompt = "word ".repeat(200);
    assert_one_line_error(
        &uma(&["run", &gemma, &long_prompt, "--ctx", "64"], ""),
        "but the context holds 64",
    );
    assert_one_line_error(&uma(&["run", &gemma, "hi", "--top-p", "1.5"], ""), "top_p");
    assert_one_line_error(
        &uma(&["run", &gemma, "hi", "--speculative", "draft"], ""),
        "needs a draft model",
    );
    let qwen = model(TestModel::QwenCoder05b);
    assert_one_line_error(
        &uma(&["run", &gemma, "hi", "--draft", &qwen], ""),
        "the draft model does not fit",
    );
}

#[test]
fn speculation_does_not_change_the_answer() {
    let qwen = model(TestModel::QwenCoder05b);
    let prompt = "Repeat this sentence twice: the cat sat on the mat.";
    let args = ["run", &qwen, prompt, "--temperature", "0", "-n", "32"];
    let plain = uma(&[&args[..], &["--speculative", "off"]].concat(), "");
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    for speculation in [&["--speculative", "lookup"][..], &["--draft", &qwen][..]] {
        let output = uma(&[&args[..], speculation].concat(), "");
        assert!(output.status.success(), "{speculation:?}: {}", text(&output.stderr));
        assert_eq!(text(&output.stdout), text(&plain.stdout), "{speculation:?}");
        assert!(text(&output.stderr).contains("drafts accepted"), "{}", text(&output.stderr));
    }
    assert!(!text(&plain.stderr).contains("drafts"), "{}", text(&plain.stderr));
}
