//! Per-request sampling parameters and their validation.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SamplingError};
use crate::TokenId;

/// The most top-n logprobs a request may ask for (OpenAI's `top_logprobs` limit).
pub const MAX_TOP_LOGPROBS: u32 = 20;

/// Most stop strings a request may give (OpenAI's routes allow 4; Ollama's options more).
pub const MAX_STOP_STRINGS: usize = 16;

/// Longest stop string, in bytes.
pub const MAX_STOP_BYTES: usize = 1024;

/// Most stop token ids a request may give.
pub const MAX_STOP_TOKEN_IDS: usize = 256;

/// Which tokens the presence and frequency penalties count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PenaltyScope {
    /// Only generated tokens, the whole generation (OpenAI semantics).
    #[default]
    GeneratedTokens,
    /// The same window as the repetition penalty: the last `repeat_last_n` tokens of prompt +
    /// generation (llama.cpp / Ollama semantics).
    RepeatWindow,
}

/// How one sequence is sampled and when it stops.
///
/// `Default` is the model's own distribution (temperature 1, no truncation, no penalties), which is
/// OpenAI's default; [`SamplingParams::ollama_defaults`] gives Ollama's. Deserializing fills missing
/// fields from `Default`. Call [`SamplingParams::validate`] before use ([`crate::Sampler::new`] and
/// [`crate::StopCondition::new`] do).
///
/// Processing order (llama.cpp's default chain): penalties → top-k → top-p → min-p → temperature →
/// draw. Top-p and min-p therefore see the distribution at temperature 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// Divides the logits before the draw. `0` means greedy (argmax, lowest id on ties).
    /// Must be finite and `>= 0`.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; `0` disables. Must be `>= 0`; `1` is greedy.
    pub top_k: i32,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p`;
    /// `1` disables. Must be in `(0, 1]`.
    pub top_p: f32,
    /// Drop tokens whose probability is below `min_p` times the most likely token's; `0` disables.
    /// Must be in `[0, 1]`.
    pub min_p: f32,
    /// Ollama's `repeat_penalty` (llama.cpp semantics): for every distinct token in the last
    /// `repeat_last_n` tokens of prompt + generation, a positive logit is divided by it and a
    /// negative one multiplied by it. `1` disables. Must be finite and `> 0`.
    pub repetition_penalty: f32,
    /// The window of the repetition penalty (and of presence/frequency with
    /// [`PenaltyScope::RepeatWindow`]): `-1` = the whole history, `0` = no tokens, `n` = the last
    /// `n` tokens. Must be `>= -1`.
    pub repeat_last_n: i32,
    /// OpenAI `presence_penalty`: subtracted once from the logit of every token that occurs in
    /// the tokens selected by `presence_frequency_scope`. Must be in `[-2, 2]`.
    pub presence_penalty: f32,
    /// OpenAI `frequency_penalty`: subtracted from a token's logit once per occurrence in the tokens
    /// selected by `presence_frequency_scope`. Must be in `[-2, 2]`.
    pub frequency_penalty: f32,
    /// Which tokens the presence and frequency penalties count.
    pub presence_frequency_scope: PenaltyScope,
    /// Makes sampling reproducible: the same seed, parameters and logits give the same tokens on
    /// every platform and version. `None` seeds from operating-system entropy.
    pub seed: Option<u64>,
    /// Stop after this many generated tokens (finish reason `length`). `None` = until EOS or the
    /// context is full. Must be `>= 1`.
    pub max_tokens: Option<u32>,
    /// Stop strings, matched across token boundaries; the stop string is not part of the output.
    /// Shared, not copied, by the `n` choices of a request and their stop conditions.
    pub stop: Arc<[String]>,
    /// Stop when one of these tokens is sampled (the token's text is not part of the output).
    pub stop_token_ids: Arc<[TokenId]>,
    /// Keep generating past end-of-generation tokens (stop token ids still stop).
    pub ignore_eos: bool,
    /// Return the chosen token's logprob and the `n` most likely tokens' logprobs. `None` computes
    /// no logprobs. Must be `<= MAX_TOP_LOGPROBS`.
    pub logprobs: Option<u32>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            repeat_last_n: 64,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            presence_frequency_scope: PenaltyScope::GeneratedTokens,
            seed: None,
            max_tokens: None,
            stop: Arc::new([]),
            stop_token_ids: Arc::new([]),
            ignore_eos: false,
            logprobs: None,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding (temperature 0), otherwise defaults.
    pub fn greedy() -> Self {
        Self { temperature: 0.0, ..Self::default() }
    }

    /// Ollama's documented defaults: temperature 0.8, top-k 40, top-p 0.9, min-p 0,
    /// repeat penalty 1.1 over the last 64 tokens, presence/frequency over the same window.
    pub fn ollama_defaults() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.9,
            min_p: 0.0,
            repetition_penalty: 1.1,
            repeat_last_n: 64,
            presence_frequency_scope: PenaltyScope::RepeatWindow,
            ..Self::default()
        }
    }

    /// Whether sampling is a plain argmax (temperature 0 or top-k 1).
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0 || self.top_k == 1
    }

    /// Checks every field against its documented range.
    pub fn validate(&self) -> Result<()> {
        fn invalid(name: &'static str, value: impl ToString, expected: &'static str) -> Result<()> {
            Err(SamplingError::InvalidParameter { name, value: value.to_string(), expected })
        }
        // Written as `!(in range)` so that NaN is rejected too.
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return invalid("temperature", self.temperature, "a finite number >= 0");
        }
        if self.top_k < 0 {
            return invalid("top_k", self.top_k, "an integer >= 0 (0 disables)");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return invalid("top_p", self.top_p, "a number in (0, 1]");
        }
        if !(self.min_p >= 0.0 && self.min_p <= 1.0) {
            return invalid("min_p", self.min_p, "a number in [0, 1]");
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return invalid("repetition_penalty", self.repetition_penalty, "a finite number > 0");
        }
        if self.repeat_last_n < -1 {
            return invalid("repeat_last_n", self.repeat_last_n, "-1 (all), 0 (none) or a count");
        }
        if !(self.presence_penalty >= -2.0 && self.presence_penalty <= 2.0) {
            return invalid("presence_penalty", self.presence_penalty, "a number in [-2, 2]");
        }
        if !(self.frequency_penalty >= -2.0 && self.frequency_penalty <= 2.0) {
            return invalid("frequency_penalty", self.frequency_penalty, "a number in [-2, 2]");
        }
        if self.max_tokens == Some(0) {
            return invalid("max_tokens", 0, "at least 1");
        }
        if let Some(num_logprobs) = self.logprobs {
            if num_logprobs > MAX_TOP_LOGPROBS {
                return invalid("logprobs", num_logprobs, "at most 20");
            }
        }
        if let Some(index) = self.stop.iter().position(String::is_empty) {
            return Err(SamplingError::EmptyStopString { index });
        }
        // Every request copies these into each of its sequences and the stop matcher scans them
        // every token: bounded, so that no request can slow or bloat the others.
        if self.stop.len() > MAX_STOP_STRINGS {
            return invalid("stop", self.stop.len(), "at most 16 stop strings");
        }
        if let Some(long) = self.stop.iter().find(|stop| stop.len() > MAX_STOP_BYTES) {
            return invalid(
                "stop",
                format!("a string of {} bytes", long.len()),
                "at most 1024 bytes each",
            );
        }
        if self.stop_token_ids.len() > MAX_STOP_TOKEN_IDS {
            return invalid("stop_token_ids", self.stop_token_ids.len(), "at most 256 token ids");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_lists_and_strings_are_bounded() {
        let with = |stop: Vec<String>, ids: Vec<TokenId>| SamplingParams {
            stop: stop.into(),
            stop_token_ids: ids.into(),
            ..SamplingParams::default()
        };
        let short = |n: usize| vec!["x".to_owned(); n];
        assert_eq!(with(short(16), vec![1; 256]).validate(), Ok(()));
        let name = |params: SamplingParams| match params.validate() {
            Err(SamplingError::InvalidParameter { name, .. }) => name,
            other => panic!("{other:?}"),
        };
        assert_eq!(name(with(short(17), vec![])), "stop");
        assert_eq!(name(with(vec!["y".repeat(1025)], vec![])), "stop");
        assert_eq!(with(vec!["y".repeat(1024)], vec![]).validate(), Ok(()));
        assert_eq!(name(with(vec![], vec![1; 257])), "stop_token_ids");
    }

    fn invalid_name(params: &SamplingParams) -> &'static str {
        match params.validate() {
            Err(SamplingError::InvalidParameter { name, .. }) => name,
            other => panic!("expected InvalidParameter, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid_and_neutral() {
        let params = SamplingParams::default();
        params.validate().unwrap();
        assert_eq!(params.temperature, 1.0);
        assert_eq!(params.top_p, 1.0);
        assert_eq!(params.top_k, 0);
        assert!(!params.is_greedy());
        SamplingParams::greedy().validate().unwrap();
        assert!(SamplingParams::greedy().is_greedy());
        SamplingParams::ollama_defaults().validate().unwrap();
    }

    #[test]
    fn rejects_out_of_range_values() {
        let base = SamplingParams::default();
        let cases: Vec<(SamplingParams, &str)> = vec![
            (SamplingParams { temperature: -0.1, ..base.clone() }, "temperature"),
            (SamplingParams { temperature: f32::NAN, ..base.clone() }, "temperature"),
            (SamplingParams { temperature: f32::INFINITY, ..base.clone() }, "temperature"),
            (SamplingParams { top_k: -1, ..base.clone() }, "top_k"),
            (SamplingParams { top_p: 0.0, ..base.clone() }, "top_p"),
            (SamplingParams { top_p: 1.01, ..base.clone() }, "top_p"),
            (SamplingParams { top_p: f32::NAN, ..base.clone() }, "top_p"),
            (SamplingParams { min_p: -0.01, ..base.clone() }, "min_p"),
            (SamplingParams { min_p: 1.5, ..base.clone() }, "min_p"),
            (SamplingParams { repetition_penalty: 0.0, ..base.clone() }, "repetition_penalty"),
            (SamplingParams { repeat_last_n: -2, ..base.clone() }, "repeat_last_n"),
            (SamplingParams { presence_penalty: 2.5, ..base.clone() }, "presence_penalty"),
            (SamplingParams { frequency_penalty: -2.5, ..base.clone() }, "frequency_penalty"),
            (SamplingParams { max_tokens: Some(0), ..base.clone() }, "max_tokens"),
            (SamplingParams { logprobs: Some(21), ..base.clone() }, "logprobs"),
        ];
        for (params, name) in cases {
            assert_eq!(invalid_name(&params), name, "{params:?}");
        }
    }

    #[test]
    fn accepts_range_boundaries() {
        let base = SamplingParams::default();
        for params in [
            SamplingParams { temperature: 0.0, ..base.clone() },
            SamplingParams { top_p: 1.0, ..base.clone() },
            SamplingParams { top_p: 1e-6, ..base.clone() },
            SamplingParams { min_p: 0.0, ..base.clone() },
            SamplingParams { min_p: 1.0, ..base.clone() },
            SamplingParams { repeat_last_n: -1, ..base.clone() },
            SamplingParams { presence_penalty: -2.0, frequency_penalty: 2.0, ..base.clone() },
            SamplingParams { logprobs: Some(20), ..base.clone() },
            SamplingParams { max_tokens: Some(1), ..base.clone() },
        ] {
            params.validate().unwrap();
        }
    }

    #[test]
    fn rejects_empty_stop_string() {
        let params =
            SamplingParams { stop: vec!["a".into(), String::new()].into(), ..Default::default() };
        assert_eq!(params.validate(), Err(SamplingError::EmptyStopString { index: 1 }));
    }

    #[test]
    fn serde_fills_missing_fields_from_defaults() {
        let params: SamplingParams =
            serde_json::from_str(r#"{"temperature": 0.5, "seed": 7, "stop": ["\n"]}"#).unwrap();
        assert_eq!(params.temperature, 0.5);
        assert_eq!(params.seed, Some(7));
        assert_eq!(*params.stop, vec!["\n".to_string()]);
        assert_eq!(params.top_p, 1.0);
        let round_trip: SamplingParams =
            serde_json::from_str(&serde_json::to_string(&params).unwrap()).unwrap();
        assert_eq!(round_trip, params);
        let scope: PenaltyScope = serde_json::from_str(r#""repeat_window""#).unwrap();
        assert_eq!(scope, PenaltyScope::RepeatWindow);
    }
}
