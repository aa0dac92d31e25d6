//! Test support only: where the real GGUF models live, and a clear failure when they are missing.
//!
//! The models are fetched by `scripts/fetch-models.sh` into `$UMA_TEST_MODELS` (default
//! `~/.cache/uma/models`). Tests that need one call [`path`]; a missing model is a test failure that
//! says how to fetch it, never a silent skip.
#![forbid(unsafe_code)]

pub mod tiny;

use std::path::PathBuf;

/// One of the three real models of the test suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestModel {
    QwenCoder05b,
    QwenCoder15b,
    Gemma3_270m,
}

impl TestModel {
    /// Every test model.
    pub const ALL: [TestModel; 3] =
        [TestModel::QwenCoder05b, TestModel::QwenCoder15b, TestModel::Gemma3_270m];

    /// The GGUF file name, as published.
    pub fn file_name(self) -> &'static str {
        match self {
            TestModel::QwenCoder05b => "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            TestModel::QwenCoder15b => "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            TestModel::Gemma3_270m => "gemma-3-270m-q4_k_m.gguf",
        }
    }

    /// The file name without `.gguf`, used to name golden files.
    pub fn stem(self) -> &'static str {
        self.file_name().trim_end_matches(".gguf")
    }
}

/// The folder holding the fetched models.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("UMA_TEST_MODELS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache/uma/models")
}

/// The path of `model`.
///
/// # Panics
/// When the file is missing, with the command that fetches it: a test that needs a real model must
/// fail loudly rather than pass without having run.
pub fn path(model: TestModel) -> PathBuf {
    let path = models_dir().join(model.file_name());
    assert!(
        path.is_file(),
        "test model {} not found at {}; fetch it with `scripts/fetch-models.sh` \
         (set UMA_TEST_MODELS to use another folder)",
        model.file_name(),
        path.display()
    );
    path
}
