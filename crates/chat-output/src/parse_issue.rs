//! What the parser could not make sense of.

/// Something in the output that did not parse as its format says. The parser never fails and
/// never drops text: the text concerned is kept (as content, or as reasoning), and the issue is
/// reported so the server can decide what to do (retry, refuse, log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseIssue {
    /// A tool call that is not valid for its format (invalid JSON, no name, arguments that are not
    /// an object, a wrong closing tag). `offset` is the byte offset, in the whole text given to
    /// the parser, where the call's text starts; that text was returned as content, and any call
    /// already begun from it was withdrawn with [`OutputDelta::ToolCallInvalid`].
    ///
    /// [`OutputDelta::ToolCallInvalid`]: crate::OutputDelta::ToolCallInvalid
    #[error("malformed tool call at byte {offset}: {reason}; its text was returned as content")]
    MalformedToolCall { offset: usize, reason: String },

    /// The output ended inside a tool call (for example at `max_tokens`). Its text was returned
    /// as content, as for [`ParseIssue::MalformedToolCall`].
    #[error(
        "the output ended inside the tool call at byte {offset}; its text was returned as content"
    )]
    UnterminatedToolCall { offset: usize },

    /// The output ended inside a reasoning block: everything after the opening tag is reasoning.
    #[error("the output ended inside a reasoning block")]
    UnterminatedReasoning,
}
