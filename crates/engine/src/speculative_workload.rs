//! Workloads that show what speculative decoding gains, and their measurement: greedy requests
//! decoded by an engine, timed from the first token, with the drafts counted. Shared by `uma bench
//! --speculative` and `examples/speculative_speed.rs`.
//!
//! - **Edit**: a Python file of small functions and the request to rename them, whose answer
//!   copies the file (prompt lookup's case, as code edits are).
//! - **Chat**: ordinary questions, whose answers repeat little (a draft model's case).

use std::sync::Arc;
use std::time::{Duration, Instant};

use uma_sampling::SamplingParams;

use crate::error::{EngineError, Result};
use crate::{EngineHandle, GenerationRequest, PromptEncoder, StreamEvent, TokenId};

/// The chat workload: questions whose answers repeat little of them.
pub const CHAT_PROMPTS: [&str; 3] = [
    "Explain how a hash map handles collisions, in two short paragraphs.",
    "Write a Python function that merges two sorted lists, with a docstring and an example.",
    "What are three differences between TCP and UDP?",
];

/// The file of the edit workload: `num_functions` small Python functions (about 60 tokens
/// each).
pub fn edit_file(num_functions: usize) -> String {
    let mut file = String::new();
    for i in 0..num_functions {
        file.push_str(&format!(
            "def compute_total_{i}(values):\n    total = 0\n    for value in values:\n        \
             if value > {i}:\n            total += value * {m}\n        else:\n            \
             total -= {i}\n    return total\n\n\n",
            m = i % 7 + 1
        ));
    }
    file
}

/// The edit workload's request: [`edit_file`] and the instruction to change two small things in
/// it and reply with the whole file.
pub fn edit_prompt(num_functions: usize) -> String {
    format!(
        "Here is a Python file:\n\n```python\n{}```\n\nRename every function `compute_total_N` \
         to `sum_above_N` (same N) and change nothing else. Reply with the whole updated file \
         in one code block.",
        edit_file(num_functions)
    )
}

/// The fewest functions (at least one) whose [`edit_file`] is `answer_tokens` tokens long in
/// the tokenizer of `prompts`: an edit whose answer runs at least that long.
pub fn edit_functions_for(prompts: &PromptEncoder, answer_tokens: usize) -> Result<usize> {
    let mut num_functions = 1;
    while prompts.tokenizer().encode(&edit_file(num_functions), false, false)?.len() < answer_tokens
    {
        num_functions += 1;
    }
    Ok(num_functions)
}

/// `text` as the user's message of a chat, through the template of `prompts`.
pub fn chat_tokens(prompts: &PromptEncoder, text: &str) -> Result<Vec<TokenId>> {
    prompts.chat(&[uma_tokenizer::ChatMessage::user(text)])
}

/// What one greedy decode of some requests produced, and what it took.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decoded {
    /// Each request's tokens.
    pub outputs: Vec<Vec<TokenId>>,
    /// Tokens generated after each request's first (the first comes from the prompt's step).
    pub num_decoded_tokens: usize,
    /// From the first request's first token to the last request's end.
    pub seconds: f64,
    /// Draft tokens proposed for the requests, and those accepted (their usage).
    pub num_drafted_tokens: usize,
    pub num_accepted_draft_tokens: usize,
    /// Verifications the engine ran meanwhile: chunks that checked drafts (the engine's
    /// counter, so the engine must serve nothing else meanwhile).
    pub num_draft_verifications: u64,
}

impl Decoded {
    /// Decode tokens per second.
    pub fn tokens_per_second(&self) -> f64 {
        self.num_decoded_tokens as f64 / self.seconds.max(1e-9)
    }

    /// `other` after this one: its outputs appended, its counts and time added.
    pub fn append(&mut self, other: Decoded) {
        self.outputs.extend(other.outputs);
        self.num_decoded_tokens += other.num_decoded_tokens;
        self.seconds += other.seconds;
        self.num_drafted_tokens += other.num_drafted_tokens;
        self.num_accepted_draft_tokens += other.num_accepted_draft_tokens;
        self.num_draft_verifications += other.num_draft_verifications;
    }
}

/// Longest wait for the engine to publish the counters of the step that finished the last
/// request (it publishes right after that step).
const STATS_WAIT: Duration = Duration::from_secs(5);

/// Submits `prompts` at once to `engine`, greedy, at most `max_tokens` each, and waits for all
/// of them.
pub fn decode_greedy(
    engine: &EngineHandle,
    prompts: &[Vec<TokenId>],
    max_tokens: u32,
) -> std::result::Result<Decoded, Arc<EngineError>> {
    let before = engine.stats();
    let params = SamplingParams { max_tokens: Some(max_tokens), ..SamplingParams::greedy() };
    let mut streams = Vec::new();
    for prompt in prompts {
        let request = GenerationRequest {
            prompt: prompt.clone(),
            params: params.clone(),
            sampler_stream: 0,
            grammar: None,
        };
        streams.push(engine.submit(request)?);
    }
    let mut decoded = Decoded::default();
    let mut first: Option<Instant> = None;
    for mut stream in streams {
        let mut output = Vec::new();
        while let Some(event) = stream.blocking_next() {
            match event {
                StreamEvent::Token(token) => {
                    first.get_or_insert_with(Instant::now);
                    output.push(token.token);
                }
                StreamEvent::Finished(done) => {
                    decoded.num_drafted_tokens += done.usage.num_drafted_tokens;
                    decoded.num_accepted_draft_tokens += done.usage.num_accepted_draft_tokens;
                    break;
                }
                StreamEvent::Failed(error) => return Err(error),
            }
        }
        decoded.num_decoded_tokens += output.len().saturating_sub(1);
        decoded.outputs.push(output);
    }
    decoded.seconds = first.map_or(Duration::ZERO, |first| first.elapsed()).as_secs_f64();
    let finished = before.num_finished_requests + prompts.len() as u64;
    let waited = Instant::now();
    let mut after = engine.stats();
    while after.num_finished_requests < finished && waited.elapsed() < STATS_WAIT {
        std::thread::sleep(Duration::from_millis(1));
        after = engine.stats();
    }
    decoded.num_draft_verifications =
        after.num_draft_verifications.saturating_sub(before.num_draft_verifications);
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edit_file_grows_by_whole_functions() {
        assert_eq!(edit_file(0), "");
        let one = edit_file(1);
        assert!(one.starts_with("def compute_total_0(values):\n") && one.ends_with("\n\n\n"));
        let three = edit_file(3);
        assert!(three.starts_with(&one) && three.contains("def compute_total_2(values):"));
        assert!(edit_prompt(3).contains(&three));
    }
}
