//! Ollama's request bodies (`/api/generate`, `/api/chat`, `/api/show`) and their `options`
//! turned into [`SamplingParams`] with Ollama's defaults.

use serde::Deserialize;
use uma_sampling::SamplingParams;
use uma_tokenizer::ChatMessage;

use crate::error::ApiError;
use crate::keep_alive::KeepAliveField;

/// `options`: the sampling fields uma implements. Others Ollama knows (`num_ctx`, `num_gpu`,
/// `mirostat`, ...) are accepted and ignored: they configure Ollama's runner, not the answer,
/// or (mirostat, tfs_z, typical_p) are samplers uma does not have.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct Options {
    pub(crate) temperature: Option<f32>,
    pub(crate) top_k: Option<i32>,
    pub(crate) top_p: Option<f32>,
    pub(crate) min_p: Option<f32>,
    pub(crate) seed: Option<i64>,
    /// Tokens to generate; -1 (the default) and -2 mean until the model stops or the context
    /// is full.
    pub(crate) num_predict: Option<i64>,
    pub(crate) stop: Option<Vec<String>>,
    pub(crate) repeat_penalty: Option<f32>,
    pub(crate) repeat_last_n: Option<i32>,
    pub(crate) presence_penalty: Option<f32>,
    pub(crate) frequency_penalty: Option<f32>,
}

impl Options {
    /// The sampling parameters: Ollama's defaults, then these options. An out-of-range value is
    /// a 400 naming the option.
    pub(crate) fn sampling_params(options: Option<&Options>) -> Result<SamplingParams, ApiError> {
        let mut params = SamplingParams::ollama_defaults();
        let Some(options) = options else { return Ok(params) };
        let set = |value: Option<f32>, field: &mut f32| {
            if let Some(value) = value {
                *field = value;
            }
        };
        set(options.temperature, &mut params.temperature);
        set(options.top_p, &mut params.top_p);
        set(options.min_p, &mut params.min_p);
        set(options.repeat_penalty, &mut params.repetition_penalty);
        set(options.presence_penalty, &mut params.presence_penalty);
        set(options.frequency_penalty, &mut params.frequency_penalty);
        if let Some(top_k) = options.top_k {
            params.top_k = top_k;
        }
        if let Some(window) = options.repeat_last_n {
            params.repeat_last_n = window;
        }
        // Two's-complement reinterpretation, as on the OpenAI routes.
        params.seed = options.seed.map(|seed| seed as u64);
        params.max_tokens = match options.num_predict {
            None | Some(-2 | -1) => None,
            Some(n) if n > 0 => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            Some(n) => {
                return Err(ApiError::invalid_request(
                    format!("options.num_predict must be positive, -1 or -2, got {n}"),
                    Some("options.num_predict"),
                ))
            }
        };
        params.stop = options.stop.clone().unwrap_or_default().into();
        params.validate().map_err(|error| {
            ApiError::invalid_request(format!("invalid options: {error}"), Some("options"))
        })?;
        Ok(params)
    }
}

/// What both generation routes refuse rather than silently ignore: features uma does not have
/// yet, which a client relies on when it sends them.
fn refuse_unsupported(format: Option<&serde_json::Value>, images: bool) -> Result<(), ApiError> {
    if format.is_some_and(|format| !format.is_null() && format != "") {
        return Err(ApiError::invalid_request(
            "`format` (structured output) is not supported by uma yet",
            Some("format"),
        ));
    }
    if images {
        return Err(ApiError::invalid_request("images are not supported by uma", Some("images")));
    }
    Ok(())
}

/// `POST /api/generate`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct GenerateRequest {
    pub(crate) model: String,
    pub(crate) prompt: Option<String>,
    pub(crate) system: Option<String>,
    /// Send the prompt as it is, without the chat template.
    pub(crate) raw: Option<bool>,
    /// uma's extension, with `raw`: special-token spellings in the prompt become those tokens.
    pub(crate) parse_special: Option<bool>,
    /// Tokens of an earlier exchange (returned by it), continued by this prompt.
    pub(crate) context: Option<Vec<u32>>,
    pub(crate) stream: Option<bool>,
    pub(crate) options: Option<Options>,
    pub(crate) keep_alive: Option<KeepAliveField>,
    pub(crate) format: Option<serde_json::Value>,
    pub(crate) images: Option<Vec<serde_json::Value>>,
}

impl GenerateRequest {
    pub(crate) fn check_supported(&self) -> Result<(), ApiError> {
        refuse_unsupported(
            self.format.as_ref(),
            self.images.as_ref().is_some_and(|i| !i.is_empty()),
        )
    }

    /// No prompt and no context: the request only loads (or, with `keep_alive: 0`, unloads)
    /// the model.
    pub(crate) fn is_load_only(&self) -> bool {
        self.prompt.as_deref().unwrap_or("").is_empty()
            && self.context.as_ref().is_none_or(Vec::is_empty)
    }
}

/// One message of `POST /api/chat`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Message {
    pub(crate) role: String,
    #[serde(default)]
    pub(crate) content: String,
    pub(crate) images: Option<Vec<serde_json::Value>>,
}

/// `POST /api/chat`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ChatRequest {
    pub(crate) model: String,
    #[serde(default)]
    pub(crate) messages: Vec<Message>,
    pub(crate) stream: Option<bool>,
    pub(crate) options: Option<Options>,
    pub(crate) keep_alive: Option<KeepAliveField>,
    pub(crate) format: Option<serde_json::Value>,
    pub(crate) tools: Option<Vec<serde_json::Value>>,
}

impl ChatRequest {
    pub(crate) fn check_supported(&self) -> Result<(), ApiError> {
        let images = self.messages.iter().any(|m| m.images.as_ref().is_some_and(|i| !i.is_empty()));
        refuse_unsupported(self.format.as_ref(), images)?;
        if self.tools.as_ref().is_some_and(|tools| !tools.is_empty()) {
            return Err(ApiError::invalid_request(
                "`tools` (tool calls) are not supported by uma's Ollama API yet",
                Some("tools"),
            ));
        }
        Ok(())
    }

    /// The messages for the chat template.
    pub(crate) fn chat_messages(&self) -> Result<Vec<ChatMessage>, ApiError> {
        self.messages
            .iter()
            .map(|message| match message.role.as_str() {
                "system" | "user" | "assistant" | "tool" => {
                    Ok(ChatMessage::new(message.role.clone(), message.content.clone()))
                }
                other => Err(ApiError::invalid_request(
                    format!("unknown message role {other:?} (system, user, assistant or tool)"),
                    Some("messages"),
                )),
            })
            .collect()
    }
}

/// `input` of `POST /api/embed`: one text or several.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub(crate) enum EmbedInput {
    One(String),
    Many(Vec<String>),
}

/// `POST /api/embed`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct EmbedRequest {
    pub(crate) model: String,
    pub(crate) input: EmbedInput,
    /// Cut inputs longer than the context to fit (Ollama's default) instead of failing.
    pub(crate) truncate: Option<bool>,
    pub(crate) keep_alive: Option<KeepAliveField>,
}

impl EmbedRequest {
    pub(crate) fn texts(&self) -> Result<Vec<String>, ApiError> {
        let texts = match &self.input {
            EmbedInput::One(text) => vec![text.clone()],
            EmbedInput::Many(texts) => texts.clone(),
        };
        if texts.is_empty() || texts.iter().any(String::is_empty) {
            return Err(ApiError::invalid_request("`input` needs non-empty texts", Some("input")));
        }
        Ok(texts)
    }
}

/// `POST /api/embeddings`, Ollama's older embedding route: one `prompt`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct LegacyEmbeddingsRequest {
    pub(crate) model: String,
    pub(crate) prompt: String,
    pub(crate) keep_alive: Option<KeepAliveField>,
}

/// `POST /api/show`: `model`, or `name` as older clients send it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ShowRequest {
    pub(crate) model: Option<String>,
    pub(crate) name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_start_from_ollama_defaults() {
        let params = Options::sampling_params(None).expect("defaults");
        assert_eq!(params, SamplingParams::ollama_defaults());
        let options = Options {
            temperature: Some(0.0),
            top_k: Some(1),
            num_predict: Some(7),
            stop: Some(vec!["\n".into()]),
            seed: Some(-1),
            repeat_last_n: Some(0),
            ..Options::default()
        };
        let params = Options::sampling_params(Some(&options)).expect("valid");
        assert_eq!((params.temperature, params.top_k, params.max_tokens), (0.0, 1, Some(7)));
        assert_eq!(*params.stop, ["\n"]);
        assert_eq!(params.seed, Some(u64::MAX));
        assert_eq!(params.repeat_last_n, 0);
        assert_eq!(params.top_p, 0.9, "untouched options keep Ollama's defaults");
    }

    #[test]
    fn num_predict_minus_one_and_two_mean_no_limit_and_bad_values_are_refused() {
        for n in [-1, -2] {
            let options = Options { num_predict: Some(n), ..Options::default() };
            assert_eq!(Options::sampling_params(Some(&options)).expect("valid").max_tokens, None);
        }
        let zero = Options { num_predict: Some(0), ..Options::default() };
        let error = Options::sampling_params(Some(&zero)).expect_err("zero");
        assert!(error.message.contains("num_predict"), "{}", error.message);
        let hot = Options { temperature: Some(-1.0), ..Options::default() };
        assert!(Options::sampling_params(Some(&hot)).is_err());
    }

    #[test]
    fn unsupported_features_are_refused_by_name() {
        let request: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "m", "messages": [{"role": "user", "content": "hi"}], "format": "json"
        }))
        .expect("parses");
        assert!(request.check_supported().expect_err("format").message.contains("format"));
        let request: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "m", "messages": [], "tools": [{"type": "function"}], "format": ""
        }))
        .expect("parses");
        assert!(request.check_supported().expect_err("tools").message.contains("tools"));
        let request: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "m", "messages": [{"role": "narrator", "content": "x"}]
        }))
        .expect("parses");
        assert!(request.chat_messages().is_err());
    }
}
