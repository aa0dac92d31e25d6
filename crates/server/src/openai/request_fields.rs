//! What chat and text completion requests share: their generation fields ([`GenerationFields`],
//! flattened into each request, declared once), `stop`, `stream_options`, and the one place those
//! fields become [`SamplingParams`].

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

/// The generation fields that chat and text completion requests share, as sent, before defaults
/// and validation. Each request holds them with `#[serde(flatten, deserialize_with =
/// "generation_fields")]`: the JSON is flat, and a value of the wrong type is still a 400 that
/// names its field. The fields whose meaning differs by endpoint (`logprobs`,
/// `max_completion_tokens`) stay in the requests.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
pub struct GenerationFields {
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub n: Option<u32>,
    pub stop: Option<StopSequences>,
    /// Chat requests may send `max_completion_tokens` instead, which wins.
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub seed: Option<i64>,
    pub frequency_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    /// Extensions (vLLM, llama.cpp): keep generating past end-of-generation tokens, ...
    pub ignore_eos: Option<bool>,
    pub top_k: Option<i32>,
    pub min_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub stop_token_ids: Option<Vec<u32>>,
    /// Not supported: refused when it biases anything, rather than silently ignored.
    pub logit_bias: Option<serde_json::Value>,
}

/// Whether a request field asks for something (neither absent, `null`, an empty object nor an
/// empty array).
pub(super) fn is_set(value: Option<&serde_json::Value>) -> bool {
    match value {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Object(map)) => !map.is_empty(),
        Some(serde_json::Value::Array(items)) => !items.is_empty(),
        Some(_) => true,
    }
}

/// Deserializes flattened [`GenerationFields`]. serde hands a flattened struct the request's
/// leftover fields without their path, so a type error would name no field; tracking the path
/// here puts it back in front of the message (`temperature: invalid type: ...`), where
/// [`ApiError::from_json_rejection`] finds it.
pub(super) fn generation_fields<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<GenerationFields, D::Error> {
    serde_path_to_error::deserialize(deserializer).map_err(de::Error::custom)
}

/// Chat and text completion requests: what they read from their [`GenerationFields`].
pub trait WithGenerationFields {
    /// The request's generation fields.
    fn generation(&self) -> &GenerationFields;

    /// How many choices to generate (`n`, default 1; checked by the request's
    /// `sampling_params`).
    fn n(&self) -> u32 {
        self.generation().n()
    }

    /// Whether to stream server-sent events.
    fn stream(&self) -> bool {
        self.generation().stream()
    }

    /// Whether a streamed response ends with a usage chunk (never without streaming).
    fn include_usage(&self) -> bool {
        self.generation().include_usage()
    }
}

impl GenerationFields {
    /// How many choices to generate (`n`, default 1; checked by [`Self::sampling_params`]).
    pub fn n(&self) -> u32 {
        self.n.unwrap_or(1)
    }

    /// Whether to stream server-sent events.
    pub fn stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether a streamed response ends with a usage chunk: only when streaming (a full
    /// response always carries usage), so clients that send `stream_options` regardless work.
    pub fn include_usage(&self) -> bool {
        self.stream() && self.stream_options.as_ref().and_then(|o| o.include_usage) == Some(true)
    }

    /// Applies OpenAI's defaults and checks every range; errors are 400s naming the request
    /// field. `max_tokens` is the token limit with the request field it came from, so that an
    /// error names that field; `logprobs` the top-n logprobs, already checked against the
    /// endpoint's own limit.
    pub(super) fn sampling_params(
        &self,
        max_tokens: Option<(u32, &'static str)>,
        logprobs: Option<u32>,
    ) -> Result<SamplingParams, ApiError> {
        if is_set(self.logit_bias.as_ref()) {
            return Err(ApiError::invalid_request(
                "`logit_bias` is not supported.",
                Some("logit_bias"),
            ));
        }
        let num_choices = self.n();
        if !(1..=MAX_CHOICES).contains(&num_choices) {
            return Err(ApiError::invalid_request(
                format!("`n` must be between 1 and {MAX_CHOICES}, got {num_choices}."),
                Some("n"),
            ));
        }
        let stop = self.stop.as_ref().map(|stop| stop.0.clone()).unwrap_or_default();
        if stop.len() > MAX_STOP_SEQUENCES {
            return Err(ApiError::invalid_request(
                format!(
                    "`stop` may hold at most {MAX_STOP_SEQUENCES} sequences, got {}.",
                    stop.len()
                ),
                Some("stop"),
            ));
        }
        let temperature = self.temperature.unwrap_or(1.0);
        // SamplingParams accepts any temperature >= 0; OpenAI caps it at 2. NaN fails here too.
        if !(0.0..=MAX_TEMPERATURE).contains(&temperature) {
            return Err(ApiError::invalid_request(
                format!(
                    "`temperature` must be between 0 and {MAX_TEMPERATURE}, got {temperature}."
                ),
                Some("temperature"),
            ));
        }
        if let Some((0, param)) = max_tokens {
            return Err(ApiError::invalid_request(
                format!("`{param}` must be at least 1."),
                Some(param),
            ));
        }
        let top_p = match self.top_p {
            // OpenAI accepts `top_p: 0` (clients send it for determinism); the smallest positive
            // value keeps only the most likely token, which is what it means.
            Some(0.0) => f32::MIN_POSITIVE,
            Some(top_p) => top_p,
            None => 1.0,
        };
        let top_k = match self.top_k {
            // vLLM's convention for "disabled"; SamplingParams uses 0.
            Some(-1) | None => 0,
            Some(top_k) => top_k,
        };
        let params = SamplingParams {
            temperature,
            top_k,
            top_p,
            min_p: self.min_p.unwrap_or(0.0),
            repetition_penalty: self.repetition_penalty.unwrap_or(1.0),
            presence_penalty: self.presence_penalty.unwrap_or(0.0),
            frequency_penalty: self.frequency_penalty.unwrap_or(0.0),
            // Two's-complement reinterpretation: negative seeds stay distinct and reproducible.
            seed: self.seed.map(|seed| seed as u64),
            max_tokens: max_tokens.map(|(max_tokens, _)| max_tokens),
            stop: stop.into(),
            stop_token_ids: self.stop_token_ids.clone().unwrap_or_default().into(),
            ignore_eos: self.ignore_eos.unwrap_or(false),
            logprobs,
            ..SamplingParams::default()
        };
        params.validate()?;
        Ok(params)
    }
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
        let params = GenerationFields::default().sampling_params(None, None).unwrap();
        assert_eq!(params, SamplingParams::default());
        assert_eq!(params.temperature, 1.0);
        assert_eq!(params.top_p, 1.0);
    }

    #[test]
    fn maps_extensions_and_special_values() {
        let stop = StopSequences(vec!["END".into()]);
        let params = GenerationFields {
            top_p: Some(0.0),
            top_k: Some(-1),
            min_p: Some(0.05),
            repetition_penalty: Some(1.1),
            seed: Some(-1),
            stop: Some(stop),
            stop_token_ids: Some(vec![7, 8]),
            ignore_eos: Some(true),
            ..GenerationFields::default()
        }
        .sampling_params(Some((32, "max_tokens")), Some(3))
        .unwrap();
        assert_eq!(params.top_p, f32::MIN_POSITIVE);
        assert_eq!(params.top_k, 0);
        assert_eq!(params.min_p, 0.05);
        assert_eq!(params.repetition_penalty, 1.1);
        assert_eq!(params.seed, Some(u64::MAX));
        assert_eq!(*params.stop, vec!["END".to_string()]);
        assert_eq!(*params.stop_token_ids, vec![7, 8]);
        assert!(params.ignore_eos);
        assert_eq!(params.max_tokens, Some(32));
        assert_eq!(params.logprobs, Some(3));
    }
}
