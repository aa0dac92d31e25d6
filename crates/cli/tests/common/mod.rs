//! Helpers shared by the binary's integration tests.

use std::process::Output;

/// Process output as text.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// The binary failed with exactly one `uma: error: …` line mentioning `needle`, and printed
/// nothing on stdout (no partial result).
pub(crate) fn assert_one_line_error(output: &Output, needle: &str) {
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "must fail: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with("uma: error: ") && stderr.contains(needle),
        "{needle:?} in {stderr}"
    );
    assert!(output.stdout.is_empty(), "no partial output: {}", text(&output.stdout));
}
