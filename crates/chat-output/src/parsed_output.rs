//! What the parser produces: streamed deltas and the final parsed output.

use crate::ParseIssue;

/// One piece of parsed output, in order. Adjacent deltas of the same kind (and call index) may be
/// concatenated by the receiver: how text is split into deltas depends only on how it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputDelta {
    /// Reasoning text (OpenAI `reasoning_content`, Ollama `thinking`).
    Reasoning(String),
    /// Answer text.
    Content(String),
    /// A tool call starts. `index` counts calls in the order they begin and is never reused,
    /// not even after [`OutputDelta::ToolCallInvalid`].
    ToolCallBegin { index: usize, name: String },
    /// The next piece of the call's arguments, JSON text: the fragments of one call concatenated
    /// are exactly its [`ParsedToolCall::arguments`] (as OpenAI streams `function.arguments`).
    ToolCallArguments { index: usize, fragment: String },
    /// The call begun under `index` turned out malformed: it is not a call after all. Its text
    /// follows as [`OutputDelta::Content`] and a [`ParseIssue`] says why.
    ToolCallInvalid { index: usize },
}

/// A tool call the model made.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParsedToolCall {
    pub name: String,
    /// The arguments: one JSON object, as the model wrote it less insignificant whitespace
    /// (escapes and numbers are kept as written). Always parses with `serde_json`.
    pub arguments: String,
}

/// A whole output, parsed. Folding the streamed deltas gives the same: concatenated reasoning and
/// content, and the calls begun and not withdrawn, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedOutput {
    /// `None` when the output had no (non-empty) reasoning.
    pub reasoning: Option<String>,
    pub content: String,
    pub tool_calls: Vec<ParsedToolCall>,
    pub issues: Vec<ParseIssue>,
}
