//! [`CompletionRequest`]: the body of `POST /v1/completions` (OpenAI's legacy text completions),
//! with its prompts as text or token ids ([`PromptInput`]).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use uma_sampling::SamplingParams;

use super::request_fields::{generation_fields, GenerationFields, WithGenerationFields};
use crate::error::ApiError;

/// The most top-n logprobs `/v1/completions` returns (OpenAI's limit for this endpoint).
pub const MAX_COMPLETION_LOGPROBS: u32 = 5;
/// OpenAI's default `max_tokens` for text completions (chat has no such default).
pub const DEFAULT_COMPLETION_MAX_TOKENS: u32 = 16;

/// `POST /v1/completions`. Fields not listed are accepted and ignored.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    /// One or more prompts; each gets `n` choices.
    pub prompt: Prompts,
    /// `n`, `temperature`, `max_tokens`, ...
    #[serde(flatten, deserialize_with = "generation_fields")]
    pub generation: GenerationFields,
    /// Return the chosen tokens' logprobs and this many most likely tokens' (0 to 5).
    pub logprobs: Option<u32>,
    /// Not supported: refused when true rather than silently ignored.
    pub echo: Option<bool>,
    /// Not supported beyond `n`: refused when larger.
    pub best_of: Option<u32>,
    /// Not supported: refused when not empty.
    pub suffix: Option<String>,
    /// How long the model stays loaded after this request (an Ollama field uma accepts here too).
    pub keep_alive: Option<crate::keep_alive::KeepAliveField>,
    /// uma's extension: `true` turns special-token spellings in text prompts (`<|im_start|>`)
    /// into those tokens, for prompts that write a chat format by hand; otherwise they are text.
    pub parse_special: Option<bool>,
}

impl WithGenerationFields for CompletionRequest {
    fn generation(&self) -> &GenerationFields {
        &self.generation
    }
}

/// One prompt: text to tokenize, or token ids to use as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptInput {
    Text(String),
    TokenIds(Vec<u32>),
}

/// `prompt`: a string, an array of strings, an array of token ids, or an array of arrays of token
/// ids. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompts(pub Vec<PromptInput>);

impl CompletionRequest {
    /// The sampling parameters, with OpenAI's defaults (`max_tokens` 16). Checks every generation
    /// field (`n` included) and refuses unsupported options; an error is a 400 naming the field.
    pub fn sampling_params(&self) -> Result<SamplingParams, ApiError> {
        if self.echo == Some(true) {
            return Err(ApiError::invalid_request("`echo` is not supported.", Some("echo")));
        }
        if self.best_of.is_some_and(|best_of| best_of > self.n()) {
            return Err(ApiError::invalid_request(
                "`best_of` greater than `n` is not supported.",
                Some("best_of"),
            ));
        }
        if self.suffix.as_deref().is_some_and(|suffix| !suffix.is_empty()) {
            return Err(ApiError::invalid_request("`suffix` is not supported.", Some("suffix")));
        }
        if let Some(logprobs) = self.logprobs {
            if logprobs > MAX_COMPLETION_LOGPROBS {
                return Err(ApiError::invalid_request(
                    format!(
                        "`logprobs` must be between 0 and {MAX_COMPLETION_LOGPROBS}, got \
                         {logprobs}."
                    ),
                    Some("logprobs"),
                ));
            }
        }
        let max_tokens = self.generation.max_tokens.unwrap_or(DEFAULT_COMPLETION_MAX_TOKENS);
        self.generation.sampling_params(Some((max_tokens, "max_tokens")), self.logprobs)
    }

    /// The prompts. OpenAI numbers the choices prompt by prompt: prompt `p`'s choice `c` has
    /// index `p * n + c`.
    pub fn prompts(&self) -> &[PromptInput] {
        &self.prompt.0
    }

    /// Logprobs to return: `None` for none, `Some(0)` for the chosen token's only, `Some(n)` for
    /// the chosen token's and the `n` most likely tokens'.
    pub fn logprobs(&self) -> Option<u32> {
        self.logprobs
    }
}

/// One element of an array `prompt`.
enum PromptElement {
    Text(String),
    TokenId(u32),
    TokenIds(Vec<u32>),
}

impl<'de> Deserialize<'de> for PromptElement {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ElementVisitor;

        impl<'de> Visitor<'de> for ElementVisitor {
            type Value = PromptElement;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a string, a token id or an array of token ids")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<PromptElement, E> {
                Ok(PromptElement::Text(value.to_owned()))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<PromptElement, E> {
                u32::try_from(value)
                    .map(PromptElement::TokenId)
                    .map_err(|_| E::custom(format!("token id {value} is too large")))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PromptElement, A::Error> {
                let mut token_ids = Vec::new();
                while let Some(token_id) = seq.next_element::<u32>()? {
                    token_ids.push(token_id);
                }
                Ok(PromptElement::TokenIds(token_ids))
            }
        }

        deserializer.deserialize_any(ElementVisitor)
    }
}

impl<'de> Deserialize<'de> for Prompts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PromptsVisitor;

        impl<'de> Visitor<'de> for PromptsVisitor {
            type Value = Prompts;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(
                    "a string, an array of strings, an array of token ids or an array of arrays \
                     of token ids",
                )
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Prompts, E> {
                Ok(Prompts(vec![PromptInput::Text(value.to_owned())]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Prompts, A::Error> {
                let mut elements = Vec::new();
                while let Some(element) = seq.next_element::<PromptElement>()? {
                    elements.push(element);
                }
                prompts_from_elements(elements).map_err(de::Error::custom)
            }
        }

        deserializer.deserialize_any(PromptsVisitor)
    }
}

/// An array of token ids is one prompt; an array of strings or of arrays is one prompt each.
fn prompts_from_elements(elements: Vec<PromptElement>) -> Result<Prompts, &'static str> {
    const MIXED: &str = "the prompt array must hold only strings, only token ids, or only arrays \
                         of token ids";
    const EMPTY_TOKEN_IDS: &str = "a prompt of token ids must not be empty";
    let Some(first) = elements.first() else {
        return Err("the prompt array must not be empty");
    };
    if matches!(first, PromptElement::TokenId(_)) {
        let token_ids = elements
            .into_iter()
            .map(|element| match element {
                PromptElement::TokenId(token_id) => Ok(token_id),
                _ => Err(MIXED),
            })
            .collect::<Result<Vec<u32>, _>>()?;
        return Ok(Prompts(vec![PromptInput::TokenIds(token_ids)]));
    }
    let is_text = matches!(first, PromptElement::Text(_));
    let prompts = elements
        .into_iter()
        .map(|element| match element {
            PromptElement::Text(text) if is_text => Ok(PromptInput::Text(text)),
            PromptElement::TokenIds(token_ids) if !is_text => {
                if token_ids.is_empty() {
                    Err(EMPTY_TOKEN_IDS)
                } else {
                    Ok(PromptInput::TokenIds(token_ids))
                }
            }
            _ => Err(MIXED),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Prompts(prompts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use serde_json::json;

    fn parse(body: serde_json::Value) -> Result<CompletionRequest, serde_json::Error> {
        serde_json::from_value(body)
    }

    fn with(fields: serde_json::Value) -> CompletionRequest {
        let mut body = json!({"model": "m", "prompt": "Once upon a time"});
        for (key, value) in fields.as_object().unwrap() {
            body[key] = value.clone();
        }
        parse(body).unwrap()
    }

    fn prompts_of(prompt: serde_json::Value) -> Result<Vec<PromptInput>, String> {
        parse(json!({"model": "m", "prompt": prompt}))
            .map(|request| request.prompts().to_vec())
            .map_err(|error| error.to_string())
    }

    fn sampling_error_param(fields: serde_json::Value) -> String {
        let error = with(fields.clone()).sampling_params().unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST, "{fields}");
        error.param.unwrap_or_else(|| panic!("no param for {fields}"))
    }

    #[test]
    fn parses_what_the_openai_python_client_sends() {
        // `client.completions.create(model=..., prompt=[...], max_tokens=32, logprobs=2, n=2,
        // stop=["\n"], stream=True, stream_options={"include_usage": True})` plus fields that
        // ask for nothing.
        let request = parse(json!({
            "model": "qwen3-0.6b",
            "prompt": ["Say this is a test", "And this"],
            "max_tokens": 32,
            "logprobs": 2,
            "n": 2,
            "stop": ["\n"],
            "stream": true,
            "stream_options": {"include_usage": true},
            "temperature": 0,
            "user": "u",
            "logit_bias": {},
            "echo": false,
            "best_of": 2,
            "suffix": null,
        }))
        .unwrap();
        assert_eq!(
            request.prompts(),
            [PromptInput::Text("Say this is a test".into()), PromptInput::Text("And this".into())]
        );
        assert_eq!(request.n(), 2);
        assert!(request.stream());
        assert!(request.include_usage());
        assert_eq!(request.logprobs(), Some(2));
        let params = request.sampling_params().unwrap();
        assert_eq!(params.max_tokens, Some(32));
        assert_eq!(params.logprobs, Some(2));
        assert_eq!(params.temperature, 0.0);
        assert_eq!(*params.stop, vec!["\n".to_string()]);
        // A logit bias that biases something is refused, not ignored.
        let biased = parse(json!({"model": "m", "prompt": "x", "logit_bias": {"50256": -100}}));
        let error = biased.unwrap().sampling_params().expect_err("refused");
        assert_eq!(error.param.as_deref(), Some("logit_bias"));
    }

    #[test]
    fn defaults() {
        let request = with(json!({}));
        assert!(!request.stream());
        assert!(!request.include_usage());
        assert_eq!(request.n(), 1);
        assert_eq!(request.logprobs(), None);
        let params = request.sampling_params().unwrap();
        assert_eq!(
            params,
            SamplingParams {
                max_tokens: Some(DEFAULT_COMPLETION_MAX_TOKENS),
                ..SamplingParams::default()
            }
        );
    }

    #[test]
    fn prompt_forms() {
        assert_eq!(prompts_of(json!("a")).unwrap(), [PromptInput::Text("a".into())]);
        assert_eq!(prompts_of(json!([1, 2, 3])).unwrap(), [PromptInput::TokenIds(vec![1, 2, 3])]);
        assert_eq!(
            prompts_of(json!([[1, 2], [3]])).unwrap(),
            [PromptInput::TokenIds(vec![1, 2]), PromptInput::TokenIds(vec![3])]
        );
        for (prompt, message) in [
            (json!([]), "must not be empty"),
            (json!(["a", 1]), "only strings"),
            (json!([1, "a"]), "only strings"),
            (json!([[1], "a"]), "only strings"),
            (json!([[]]), "must not be empty"),
            (json!([4294967296_u64]), "too large"),
            (json!(5), "a string, an array of strings"),
            (json!([-1]), "expected a string, a token id"),
        ] {
            let error = prompts_of(prompt.clone()).unwrap_err();
            assert!(error.contains(message), "{prompt}: {error}");
        }
        assert!(parse(json!({"model": "m"})).is_err(), "prompt is required");
    }

    #[test]
    fn logprobs_are_limited_to_five() {
        assert_eq!(with(json!({"logprobs": 0})).sampling_params().unwrap().logprobs, Some(0));
        assert_eq!(with(json!({"logprobs": 5})).sampling_params().unwrap().logprobs, Some(5));
        assert_eq!(sampling_error_param(json!({"logprobs": 6})), "logprobs");
        assert!(parse(json!({"model": "m", "prompt": "p", "logprobs": true})).is_err());
    }

    #[test]
    fn validation_errors_name_their_param() {
        let cases = [
            (json!({"n": 0}), "n"),
            (json!({"n": 17}), "n"),
            (json!({"max_tokens": 0}), "max_tokens"),
            (json!({"temperature": 2.01}), "temperature"),
            (json!({"top_p": 2}), "top_p"),
            (json!({"presence_penalty": 2.1}), "presence_penalty"),
            (json!({"stop": ["1", "2", "3", "4", "5"]}), "stop"),
            (json!({"echo": true}), "echo"),
            (json!({"best_of": 3, "n": 2}), "best_of"),
            (json!({"suffix": "end"}), "suffix"),
        ];
        for (fields, param) in cases {
            assert_eq!(sampling_error_param(fields.clone()), param, "{fields}");
        }
    }
}
