//! From messages (or raw text) to prompt tokens: the chat template rendered, then encoded the way a
//! chat server does it.

use uma_gguf::GgufFile;
use uma_tokenizer::{ChatMessage, ChatTemplate, Tokenizer};

use crate::error::{EngineError, Result};
use crate::TokenId;

/// The tokenizer and chat template of one model.
#[derive(Debug)]
pub struct PromptEncoder {
    tokenizer: Tokenizer,
    template: ChatTemplate,
}

impl PromptEncoder {
    /// The tokenizer and chat template stored in `file` (or the architecture's built-in template).
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let architecture = file
            .metadata()
            .get_str(uma_gguf::keys::GENERAL_ARCHITECTURE)?
            .ok_or(EngineError::NoArchitecture)?;
        Ok(PromptEncoder {
            tokenizer: Tokenizer::from_gguf(file)?,
            template: ChatTemplate::from_gguf(file, architecture)?,
        })
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The rendered template, encoded with special tokens parsed (the template's own markers),
    /// adding BOS only when the file asks for it and the template did not already write it.
    pub fn chat(&self, messages: &[ChatMessage]) -> Result<Vec<TokenId>> {
        let text = self.template.render(messages, None, true)?;
        let add_bos = !self.template.starts_with_bos(&text);
        Ok(self.tokenizer.encode(&text, add_bos, true)?)
    }

    /// Raw text without a template: BOS per the file's flags, special-token spellings kept as text.
    pub fn raw(&self, text: &str) -> Result<Vec<TokenId>> {
        Ok(self.tokenizer.encode(text, true, false)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uma_test_models::TestModel;

    /// The prompts golden (`scripts/golden/make-reference.sh`): chats rendered and tokenized by
    /// Hugging Face transformers from the same GGUF file.
    fn golden(model: TestModel) -> serde_json::Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../model/tests/golden/prompts")
            .join(format!("{}.json", model.stem()));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e}; generate it with scripts/golden/make-reference.sh", path.display())
        });
        serde_json::from_str(&text).expect("golden JSON")
    }

    #[test]
    fn chat_and_raw_prompts_match_transformers_token_for_token() {
        for model in TestModel::ALL {
            let file = GgufFile::open(uma_test_models::path(model)).expect("model");
            let encoder = PromptEncoder::from_gguf(&file).expect("encoder");
            let golden = golden(model);
            let prompts = golden["prompts"].as_array().expect("prompts");
            assert!(prompts.len() >= 6, "{}: too few prompts", model.stem());
            for prompt in prompts {
                let name = prompt["name"].as_str().expect("name");
                let expected: Vec<u32> =
                    serde_json::from_value(prompt["token_ids"].clone()).expect("token ids");
                let messages: Vec<ChatMessage> =
                    serde_json::from_value(prompt["messages"].clone()).unwrap_or_default();
                let actual = if messages.is_empty() {
                    encoder.raw(prompt["text"].as_str().expect("text")).expect("encode")
                } else {
                    encoder.chat(&messages).expect("render and encode")
                };
                assert_eq!(actual, expected, "{} / {name}", model.stem());
            }
        }
    }
}
