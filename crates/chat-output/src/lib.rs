//! Chat output parsing: a model's generated text split into reasoning, answer content and tool
//! calls, for a finished text or incrementally while it streams.
//!
//! Owns:
//! - [`ToolCallFormat`]: the tool-call syntaxes models are trained on (Hermes/Qwen, Llama 3 JSON,
//!   Mistral, OpenAI's harmony for gpt-oss, and a generic JSON shape for templates with none),
//!   detected from the chat template's source, with the literals a grammar builder needs to
//!   force calls ([`CallSyntax`]) and the canonical text of calls ([`ToolCallFormat::render`]).
//! - [`ReasoningFormat`]: `<think>…</think>` reasoning, or harmony's `analysis` channel,
//!   detected from the template, and whether a rendered prompt leaves the model inside an open
//!   reasoning block.
//! - [`OutputParser`]: the streaming parser. Text that may begin a tag is held back until it is
//!   decided; tool-call arguments stream as compact JSON fragments; malformed calls come back as
//!   content with a [`ParseIssue`]. [`ParsedOutput`] is the one-shot result.
//!
//! Does not own: rendering prompts or applying chat templates (`uma-tokenizer`), detokenizing (this
//! crate takes text; the caller must keep marker tokens such as `<tool_call>`, `[TOOL_CALLS]`,
//! `<|python_tag|>` and harmony's `<|channel|>` in it), stop strings (`uma-sampling`), grammars
//! that constrain generation (built elsewhere from [`CallSyntax`]), checking calls against the
//! request's tools, call ids, or the API shapes of OpenAI, Ollama, Responses and Anthropic
//! (`uma-server`). Pure text processing: no other uma crate.
#![forbid(unsafe_code)]

mod call_object;
mod json_scanner;
mod output_parser;
mod parse_issue;
mod parsed_output;
mod reasoning_format;
mod tool_call_format;

pub use output_parser::OutputParser;
pub use parse_issue::ParseIssue;
pub use parsed_output::{OutputDelta, ParsedOutput, ParsedToolCall};
pub use reasoning_format::ReasoningFormat;
pub use tool_call_format::{
    CallBody, CallSyntax, CallTrigger, CallWrapping, ToolCallFormat, TriggerPosition,
};
