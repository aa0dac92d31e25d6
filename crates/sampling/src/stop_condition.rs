//! When a sequence stops: max tokens, end-of-generation and stop tokens, stop strings.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::sampling_params::SamplingParams;
use crate::stop_matcher::StopMatcher;
use crate::TokenId;

/// Why a sequence finished, as the APIs report it (OpenAI `finish_reason`, Ollama
/// `done_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// An end-of-generation token, a stop token id or a stop string.
    Stop,
    /// `max_tokens` reached or the context is full.
    Length,
    /// The client went away or the request was aborted.
    Cancelled,
}

impl FinishReason {
    /// The API string: `"stop"`, `"length"` or `"cancelled"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for FinishReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Exactly what stopped a sequence (vLLM reports the stop string or token as `stop_reason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced one of its end-of-generation tokens (EOS, end-of-turn).
    EndOfGeneration { token: TokenId },
    /// The model produced one of the request's `stop_token_ids`.
    StopToken { token: TokenId },
    /// Stop string `index` of the request matched.
    StopString { index: usize, stop: String },
    /// `max_tokens` tokens were generated.
    MaxTokens,
    /// The sequence filled the model's context (decided by the engine).
    ContextFull,
    /// The request's grammar is complete: nothing more may follow (decided by the engine).
    GrammarComplete,
    /// The request was cancelled (decided by the engine).
    Cancelled,
}

impl StopReason {
    /// The API-level finish reason.
    pub fn finish_reason(&self) -> FinishReason {
        match self {
            StopReason::EndOfGeneration { .. }
            | StopReason::StopToken { .. }
            | StopReason::StopString { .. }
            | StopReason::GrammarComplete => FinishReason::Stop,
            StopReason::MaxTokens | StopReason::ContextFull => FinishReason::Length,
            StopReason::Cancelled => FinishReason::Cancelled,
        }
    }
}

/// What one generated token contributes to the output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StopUpdate {
    /// Text to send now (may be empty: held back, or nothing to send).
    pub text: String,
    /// `Some` when the sequence is finished; `text` then includes any held text that is output.
    pub finished: Option<StopReason>,
}

/// Decides, token by token, what text to emit and when a sequence stops.
///
/// For each generated token, in this order:
/// 1. an end-of-generation token (unless `ignore_eos`) or a stop token id stops; its text is not
///    output, text held back by the stop matcher is;
/// 2. the token's text goes through the [`StopMatcher`]; a stop string stops (stop string and any
///    text after it dropped);
/// 3. reaching `max_tokens` stops with the held text flushed.
///
/// A stop string that completes on the last allowed token is reported as a stop string. Context
/// length and cancellation are the engine's to detect: it calls [`StopCondition::finish`].
#[derive(Debug, Clone)]
pub struct StopCondition {
    max_tokens: Option<u32>,
    end_of_generation_token_ids: Vec<TokenId>,
    stop_token_ids: Arc<[TokenId]>,
    ignore_eos: bool,
    stop_matcher: StopMatcher,
    num_generated_tokens: u32,
    finished: Option<StopReason>,
}

impl StopCondition {
    /// A stop condition for `params` (validated here). `end_of_generation_token_ids` come from the
    /// model or tokenizer (EOS, end-of-turn tokens).
    pub fn new(params: &SamplingParams, end_of_generation_token_ids: &[TokenId]) -> Result<Self> {
        params.validate()?;
        Ok(Self {
            max_tokens: params.max_tokens,
            end_of_generation_token_ids: end_of_generation_token_ids.to_vec(),
            stop_token_ids: params.stop_token_ids.clone(),
            ignore_eos: params.ignore_eos,
            stop_matcher: StopMatcher::new(params.stop.clone())?,
            num_generated_tokens: 0,
            finished: None,
        })
    }

    /// Records one generated token and its text piece (from the streaming detokenizer).
    /// After the sequence finished, returns no text and the same reason.
    pub fn push(&mut self, token: TokenId, text: &str) -> StopUpdate {
        if let Some(reason) = &self.finished {
            return StopUpdate { text: String::new(), finished: Some(reason.clone()) };
        }
        self.num_generated_tokens += 1;

        let token_reason = if !self.ignore_eos && self.end_of_generation_token_ids.contains(&token)
        {
            Some(StopReason::EndOfGeneration { token })
        } else if self.stop_token_ids.contains(&token) {
            Some(StopReason::StopToken { token })
        } else {
            None
        };
        if let Some(reason) = token_reason {
            return self.finish_with(String::new(), reason);
        }

        let step = self.stop_matcher.push(text);
        if let Some(index) = step.matched {
            let stop = self.stop_matcher.stop_strings()[index].clone();
            let reason = StopReason::StopString { index, stop };
            self.finished = Some(reason.clone());
            return StopUpdate { text: step.text, finished: Some(reason) };
        }
        if self.max_tokens.is_some_and(|max_tokens| self.num_generated_tokens >= max_tokens) {
            return self.finish_with(step.text, StopReason::MaxTokens);
        }
        StopUpdate { text: step.text, finished: None }
    }

    /// Ends the sequence for a reason decided outside (context full, cancelled) and returns the
    /// held text, which is output for every reason but cancellation, where the caller may drop it.
    /// Returns an empty string if the sequence had already finished.
    pub fn finish(&mut self, reason: StopReason) -> String {
        if self.finished.is_some() {
            return String::new();
        }
        self.finish_with(String::new(), reason).text
    }

    /// The reason the sequence finished, if it has.
    pub fn finished(&self) -> Option<&StopReason> {
        self.finished.as_ref()
    }

    /// Number of tokens pushed so far.
    pub fn num_generated_tokens(&self) -> u32 {
        self.num_generated_tokens
    }

    /// Tokens that may still be generated before `max_tokens` stops the sequence; `None`
    /// without a limit.
    pub fn num_tokens_left(&self) -> Option<u32> {
        self.max_tokens.map(|max_tokens| max_tokens.saturating_sub(self.num_generated_tokens))
    }

    fn finish_with(&mut self, mut text: String, reason: StopReason) -> StopUpdate {
        text.push_str(&self.stop_matcher.flush());
        self.finished = Some(reason.clone());
        StopUpdate { text, finished: Some(reason) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EOS: TokenId = 2;

    fn condition(params: SamplingParams) -> StopCondition {
        StopCondition::new(&params, &[EOS, 3]).unwrap()
    }

    fn update(text: &str, finished: Option<StopReason>) -> StopUpdate {
        StopUpdate { text: text.to_owned(), finished }
    }

    #[test]
    fn finish_reasons_serialize_as_the_api_strings() {
        assert_eq!(serde_json::to_string(&FinishReason::Length).unwrap(), r#""length""#);
        assert_eq!(FinishReason::Stop.to_string(), "stop");
        assert_eq!(StopReason::ContextFull.finish_reason(), FinishReason::Length);
        assert_eq!(StopReason::StopToken { token: 1 }.finish_reason(), FinishReason::Stop);
        assert_eq!(StopReason::Cancelled.finish_reason(), FinishReason::Cancelled);
    }

    #[test]
    fn max_tokens_stops_with_length_and_flushes() {
        let mut stop = condition(SamplingParams {
            max_tokens: Some(2),
            stop: vec!["xyz".into()].into(),
            ..Default::default()
        });
        assert_eq!(stop.push(10, "a"), update("a", None));
        assert_eq!(stop.push(11, "bx"), update("bx", Some(StopReason::MaxTokens)));
        assert_eq!(stop.num_generated_tokens(), 2);
        assert_eq!(stop.push(12, "c"), update("", Some(StopReason::MaxTokens)));
        assert_eq!(stop.num_generated_tokens(), 2);
    }

    #[test]
    fn end_of_generation_tokens_stop_without_their_text() {
        let mut stop =
            condition(SamplingParams { stop: vec!["\n\n".into()].into(), ..Default::default() });
        assert_eq!(stop.push(10, "hi\n"), update("hi", None));
        assert_eq!(
            stop.push(3, "<end_of_turn>"),
            update("\n", Some(StopReason::EndOfGeneration { token: 3 }))
        );
        assert_eq!(stop.finished().map(StopReason::finish_reason), Some(FinishReason::Stop));
    }

    #[test]
    fn ignore_eos_keeps_going_but_stop_token_ids_still_stop() {
        let mut stop = condition(SamplingParams {
            ignore_eos: true,
            stop_token_ids: vec![EOS, 7].into(),
            ..Default::default()
        });
        assert_eq!(stop.push(3, ""), update("", None));
        assert_eq!(stop.push(EOS, "</s>"), update("", Some(StopReason::StopToken { token: EOS })));

        let mut stop = condition(SamplingParams { ignore_eos: true, ..Default::default() });
        assert_eq!(stop.push(EOS, ""), update("", None));
    }

    #[test]
    fn stop_strings_stop_across_tokens() {
        let mut stop = condition(SamplingParams {
            stop: vec!["User:".into(), "\n\nUser:".into()].into(),
            max_tokens: Some(4),
            ..Default::default()
        });
        assert_eq!(stop.push(10, "Hello"), update("Hello", None));
        assert_eq!(stop.push(11, "\n"), update("", None));
        assert_eq!(stop.push(12, "\nUs"), update("", None));
        // Completes on the last allowed token: reported as the stop string, not as length.
        assert_eq!(
            stop.push(13, "er: more"),
            update("", Some(StopReason::StopString { index: 1, stop: "\n\nUser:".into() }))
        );
    }

    #[test]
    fn external_finish_flushes_held_text_once() {
        let mut stop =
            condition(SamplingParams { stop: vec!["END".into()].into(), ..Default::default() });
        assert_eq!(stop.push(10, "ok E"), update("ok ", None));
        assert_eq!(stop.finish(StopReason::ContextFull), "E");
        assert_eq!(stop.finished(), Some(&StopReason::ContextFull));
        assert_eq!(stop.finish(StopReason::Cancelled), "");
        assert_eq!(stop.finished(), Some(&StopReason::ContextFull));
    }

    #[test]
    fn new_validates() {
        let params = SamplingParams { stop: vec![String::new()].into(), ..Default::default() };
        assert!(StopCondition::new(&params, &[EOS]).is_err());
    }
}
