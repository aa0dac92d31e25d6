//! [`EmbeddingRequest`]: the body of `POST /v1/embeddings`.

use serde::Deserialize;

use crate::error::ApiError;

/// `input`: a string, strings, token ids, or lists of token ids.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    Text(String),
    Texts(Vec<String>),
    TokenIds(Vec<u32>),
    TokenIdLists(Vec<Vec<u32>>),
}

/// One input, as the handler tokenizes it.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbeddingItem {
    Text(String),
    TokenIds(Vec<u32>),
}

/// The most inputs one request may hold (OpenAI's limit).
pub const MAX_EMBEDDING_INPUTS: usize = 2048;

/// `POST /v1/embeddings`. Fields not listed (`user`) are accepted and ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EmbeddingRequest {
    pub model: String,
    pub input: EmbeddingInput,
    /// `"float"` (default) or `"base64"` (little-endian f32 bytes).
    pub encoding_format: Option<String>,
    /// Only the model's own size is possible (uma does not truncate embeddings).
    pub dimensions: Option<u32>,
    pub keep_alive: Option<crate::keep_alive::KeepAliveField>,
}

impl EmbeddingRequest {
    /// The inputs, each non-empty, at most [`MAX_EMBEDDING_INPUTS`].
    pub fn items(&self) -> Result<Vec<EmbeddingItem>, ApiError> {
        let items: Vec<EmbeddingItem> = match &self.input {
            EmbeddingInput::Text(text) => vec![EmbeddingItem::Text(text.clone())],
            EmbeddingInput::Texts(texts) => {
                texts.iter().cloned().map(EmbeddingItem::Text).collect()
            }
            EmbeddingInput::TokenIds(ids) => vec![EmbeddingItem::TokenIds(ids.clone())],
            EmbeddingInput::TokenIdLists(lists) => {
                lists.iter().cloned().map(EmbeddingItem::TokenIds).collect()
            }
        };
        if items.is_empty() || items.len() > MAX_EMBEDDING_INPUTS {
            return Err(ApiError::invalid_request(
                format!(
                    "`input` must hold 1 to {MAX_EMBEDDING_INPUTS} inputs, got {}.",
                    items.len()
                ),
                Some("input"),
            ));
        }
        let empty = |item: &EmbeddingItem| match item {
            EmbeddingItem::Text(text) => text.is_empty(),
            EmbeddingItem::TokenIds(ids) => ids.is_empty(),
        };
        if items.iter().any(empty) {
            return Err(ApiError::invalid_request("`input` holds an empty input.", Some("input")));
        }
        Ok(items)
    }

    /// Whether to send base64 instead of float arrays.
    pub fn base64(&self) -> Result<bool, ApiError> {
        match self.encoding_format.as_deref() {
            None | Some("float") => Ok(false),
            Some("base64") => Ok(true),
            Some(other) => Err(ApiError::invalid_request(
                format!("`encoding_format` must be \"float\" or \"base64\", got {other:?}."),
                Some("encoding_format"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(input: serde_json::Value) -> EmbeddingRequest {
        serde_json::from_value(serde_json::json!({"model": "m", "input": input})).expect("parses")
    }

    #[test]
    fn every_input_shape_parses() {
        assert_eq!(request("a".into()).items().expect("one"), [EmbeddingItem::Text("a".into())]);
        assert_eq!(request(serde_json::json!(["a", "b"])).items().expect("two").len(), 2);
        assert_eq!(
            request(serde_json::json!([1, 2])).items().expect("ids"),
            [EmbeddingItem::TokenIds(vec![1, 2])]
        );
        assert_eq!(request(serde_json::json!([[1], [2, 3]])).items().expect("lists").len(), 2);
        assert!(request(serde_json::json!([])).items().is_err());
        assert!(request(serde_json::json!([""])).items().is_err());
        let mut base64 = request("a".into());
        base64.encoding_format = Some("base64".into());
        assert!(base64.base64().expect("valid"));
        base64.encoding_format = Some("hex".into());
        assert!(base64.base64().is_err());
    }
}
