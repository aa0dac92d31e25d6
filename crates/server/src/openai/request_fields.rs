//! What chat and text completion requests share: `stop`, `stream_options`, and the one place
//! their generation fields become [`SamplingParams`].

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use uma_sampling::SamplingParams;

use crate::error::ApiError;

/// The most choices (`n`) one request may ask for.
pub const MAX_CHOICES: u32 = 16;
/// The most stop sequences one request may give (OpenAI's limit).
pub const MAX_STOP_SEQUENCES: usize = 4;
/// OpenAI's upper bound for `temperature`.
pub const MAX_TEMPERATURE: f32 = 2.0;

/// `stop`: one string or an array of strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopSequences(pub Vec<String>);

impl<'de> Deserialize<'de> for StopSequences {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StopVisitor;

        impl<'de> Visitor<'de> for StopVisitor {
            type Value = StopSequences;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a string or an array of strings")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<StopSequences, E> {
                Ok(StopSequences(vec![value.to_owned()]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StopSequences, A::Error> {
                let mut stops = Vec::new();
                while let Some(stop) = seq.next_element::<String>()? {
                    stops.push(stop);
                }
                Ok(StopSequences(stops))
            }
        }

        deserializer.deserialize_any(StopVisitor)
    }
}

/// `stream_options`. Other options some clients send (`continuous_usage_stats`) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct StreamOptions {
    /// Send one last chunk with `usage` (and empty `choices`) before `[DONE]`.
    pub include_usage: Option<bool>,
}

/// The generation fields of a request, as sent, before defaults and validation.
#[derive(Debug, Default)]
pub(super) struct GenerationFields<'a> {
    pub(super) n: Option<u32>,
    pub(super) temperature: Option<f32>,
    pub(super) top_p: Option<f32>,
    pub(super) top_k: Option<i32>,
    pub(super) min_p: Option<f32>,
    pub(super) repetition_penalty: Option<f32>,
    pub(super) presence_penalty: Option<f32>,
    pub(super) frequency_penalty: Option<f32>,
    pub(super) seed: Option<i64>,
    pub(super) stop: Option<&'a StopSequences>,
    pub(super) stop_token_ids: Option<&'a [u32]>,
    pub(super) ignore_eos: Option<bool>,
    /// The token limit and the request field it came from, so that an error names that field.
    pub(super) max_tokens: Option<(u32, &'static str)>,
    /// Top-n logprobs, already checked against the endpoint's own limit.
    pub(super) logprobs: Option<u32>,
}

/// Whether a streamed response ends with a usage chunk: only when streaming (a full response
/// always carries usage), so clients that send `stream_options` regardless work.
pub(super) fn include_usage(stream: bool, options: Option<&StreamOptions>) -> bool {
    stream && options.and_then(|options| options.include_usage) == Some(true)
}

/// Applies OpenAI's defaults and checks every range; errors are 400s naming the request field.
pub(super) fn sampling_params(fields: GenerationFields<'_>) -> Result<SamplingParams, ApiError> {
    let num_choices = fields.n.unwrap_or(1);
    if !(1..=MAX_CHOICES).contains(&num_choices) {
        return Err(ApiError::invalid_request(
            format!("`n` must be between 1 and {MAX_CHOICES}, got {num_choices}."),
            Some("n"),
        ));
    }
    let stop = fields.stop.map(|stop| stop.0.clone()).unwrap_or_default();
    if stop.len() > MAX_STOP_SEQUENCES {
        return Err(ApiError::invalid_request(
            format!("`stop` may hold at most {MAX_STOP_SEQUENCES} sequences, got {}.", stop.len()),
            Some("stop"),
        ));
    }
    let temperature = fields.temperature.unwrap_or(1.0);
    // SamplingParams accepts any temperature >= 0; OpenAI caps it at 2. NaN fails here too.
    if !(0.0..=MAX_TEMPERATURE).contains(&temperature) {
        return Err(ApiError::invalid_request(
            format!("`temperature` must be between 0 and {MAX_TEMPERATURE}, got {temperature}."),
            Some("temperature"),
        ));
    }
    if let Some((0, param)) = fields.max_tokens {
        return Err(ApiError::invalid_request(
            format!("`{param}` must be at least 1."),
            Some(param),
        ));
    }
    let top_p = match fields.top_p {
        // OpenAI accepts `top_p: 0` (clients send it for determinism); the smallest positive
        // value keeps only the most likely token, which is what it means.
        Some(0.0) => f32::MIN_POSITIVE,
        Some(top_p) => top_p,
        None => 1.0,
    };
    let top_k = match fields.top_k {
        // vLLM's convention for "disabled"; SamplingParams uses 0.
        Some(-1) | None => 0,
        Some(top_k) => top_k,
    };
    let params = SamplingParams {
        temperature,
        top_k,
        top_p,
        min_p: fields.min_p.unwrap_or(0.0),
        repetition_penalty: fields.repetition_penalty.unwrap_or(1.0),
        presence_penalty: fields.presence_penalty.unwrap_or(0.0),
        frequency_penalty: fields.frequency_penalty.unwrap_or(0.0),
        // Two's-complement reinterpretation: negative seeds stay distinct and reproducible.
        seed: fields.seed.map(|seed| seed as u64),
        max_tokens: fields.max_tokens.map(|(max_tokens, _)| max_tokens),
        stop,
        stop_token_ids: fields.stop_token_ids.map(<[u32]>::to_vec).unwrap_or_default(),
        ignore_eos: fields.ignore_eos.unwrap_or(false),
        logprobs: fields.logprobs,
        ..SamplingParams::default()
    };
    params.validate()?;
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_accepts_a_string_or_an_array() {
        let one: StopSequences = serde_json::from_str(r#""\n""#).unwrap();
        assert_eq!(one, StopSequences(vec!["\n".into()]));
        let many: StopSequences = serde_json::from_str(r#"["a", "b"]"#).unwrap();
        assert_eq!(many, StopSequences(vec!["a".into(), "b".into()]));
        let error = serde_json::from_str::<StopSequences>("7").unwrap_err();
        assert!(error.to_string().contains("a string or an array of strings"), "{error}");
        assert!(serde_json::from_str::<StopSequences>("[1]").is_err());
    }

    #[test]
    fn defaults_are_openai_defaults() {
        let params = sampling_params(GenerationFields::default()).unwrap();
        assert_eq!(params, SamplingParams::default());
        assert_eq!(params.temperature, 1.0);
        assert_eq!(params.top_p, 1.0);
    }

    #[test]
    fn maps_extensions_and_special_values() {
        let stop = StopSequences(vec!["END".into()]);
        let params = sampling_params(GenerationFields {
            top_p: Some(0.0),
            top_k: Some(-1),
            min_p: Some(0.05),
            repetition_penalty: Some(1.1),
            seed: Some(-1),
            stop: Some(&stop),
            stop_token_ids: Some(&[7, 8]),
            ignore_eos: Some(true),
            max_tokens: Some((32, "max_tokens")),
            logprobs: Some(3),
            ..GenerationFields::default()
        })
        .unwrap();
        assert_eq!(params.top_p, f32::MIN_POSITIVE);
        assert_eq!(params.top_k, 0);
        assert_eq!(params.min_p, 0.05);
        assert_eq!(params.repetition_penalty, 1.1);
        assert_eq!(params.seed, Some(u64::MAX));
        assert_eq!(params.stop, vec!["END".to_string()]);
        assert_eq!(params.stop_token_ids, vec![7, 8]);
        assert!(params.ignore_eos);
        assert_eq!(params.max_tokens, Some(32));
        assert_eq!(params.logprobs, Some(3));
    }
}
