//! [`Tokenizer`]: text to token ids and back.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};

use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::ModelWrapper;
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, TokenizerImpl};
use uma_gguf::GgufFile;

use crate::error::{Result, TokenizerError};
use crate::gguf_vocabulary::{BackendParts, GgufVocabulary, TokenType};
use crate::shared_model::SharedModel;
use crate::stream_decoder::StreamDecoder;
use crate::TokenId;

type Backend = TokenizerImpl<
    SharedModel,
    NormalizerWrapper,
    PreTokenizerWrapper,
    PostProcessorWrapper,
    DecoderWrapper,
>;

/// Which family of vocabulary a tokenizer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VocabularyKind {
    /// GPT-2 style byte-level BPE (`tokenizer.ggml.model = "gpt2"`): Qwen, Llama 3, ...
    ByteLevelBpe,
    /// SentencePiece (`tokenizer.ggml.model = "llama"`): Llama 2, Gemma, ...
    SentencePiece,
    /// Whatever a `tokenizer.json` describes.
    TokenizerJson,
}

/// Token texts that end a turn when the vocabulary has them (llama.cpp's `llama_vocab_is_eog`
/// list, plus the FIM pad/repo/separator tokens it also treats as end of generation).
const END_OF_GENERATION_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<|fim_pad|>",
    "<fim-pad>",
    "<fim_pad>",
    "<|repo_name|>",
    "<fim-repo>",
    "<reponame>",
    "<|file_sep|>",
    "<fim-sep>",
    "<file_sep>",
];

/// OpenAI's harmony format (gpt-oss): a vocabulary with both of these ends generations with
/// them; `<|end|>` only ends a message, after which the model goes on with the next
/// (`<|start|>assistant<|channel|>final…`). llama.cpp takes `<|end|>` out of the
/// end-of-generation set the same way.
const HARMONY_STOPS: [&str; 2] = ["<|return|>", "<|call|>"];

/// Harmony's message structure: control tokens that decoding keeps in the text even when it
/// skips special tokens, so that reasoning, answer and tool calls can be read apart from it (the
/// tokens llama.cpp preserves for gpt-oss).
const HARMONY_STRUCTURE: [&str; 5] =
    ["<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|constrain|>"];

/// A vocabulary with its encode/decode pipelines and special-token facts.
///
/// Built from GGUF metadata with [`Tokenizer::from_gguf`] or from a Hugging Face `tokenizer.json`
/// with [`Tokenizer::from_tokenizer_json`]. Cheap to share: wrap it in an `Arc`.
pub struct Tokenizer {
    /// Extracts special tokens written in the text (`"<|im_start|>"` becomes one id).
    parsing: Backend,
    /// Treats special-token spellings as plain text.
    plain: Backend,
    kind: VocabularyKind,
    /// Each id's text as the vocabulary spells it.
    token_texts: Vec<String>,
    is_special: Vec<bool>,
    /// Finds the spellings of special tokens in text; `None` when the vocabulary has none.
    special_spellings: Option<AhoCorasick>,
    bos_token_id: Option<TokenId>,
    eos_token_id: Option<TokenId>,
    add_bos: bool,
    add_eos: bool,
    /// `tokenizer.json` tokenizers add BOS/EOS through their own post-processor.
    uses_post_processor: bool,
    end_of_generation: Vec<TokenId>,
    /// Special tokens that decoding keeps even when it skips special tokens (harmony's
    /// structure); empty for other vocabularies.
    kept_in_text: Vec<TokenId>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.kind)
            .field("vocab_size", &self.token_texts.len())
            .field("bos_token_id", &self.bos_token_id)
            .field("eos_token_id", &self.eos_token_id)
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .field("end_of_generation", &self.end_of_generation)
            .field("kept_in_text", &self.kept_in_text)
            .finish_non_exhaustive()
    }
}

fn assemble(
    model: Arc<ModelWrapper>,
    normalizer: Option<NormalizerWrapper>,
    pre_tokenizer: Option<PreTokenizerWrapper>,
    post_processor: Option<PostProcessorWrapper>,
    decoder: Option<DecoderWrapper>,
) -> Backend {
    let mut backend = TokenizerImpl::new(SharedModel(model));
    backend
        .with_normalizer(normalizer)
        .expect("setting a normalizer without truncation cannot fail");
    backend.with_pre_tokenizer(pre_tokenizer);
    backend.with_post_processor(post_processor);
    backend.with_decoder(decoder);
    backend
}

impl Tokenizer {
    /// Builds the tokenizer a GGUF file describes (`tokenizer.ggml.*`).
    pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer> {
        let vocabulary = GgufVocabulary::read(file)?;
        let BackendParts {
            model,
            normalizer,
            pre_tokenizer,
            decoder,
            special_tokens,
            user_defined_tokens,
        } = vocabulary.parts;
        let model = Arc::new(model);
        let mut parsing = assemble(
            model.clone(),
            normalizer.clone(),
            pre_tokenizer.clone(),
            None,
            decoder.clone(),
        );
        let special: Vec<AddedToken> = special_tokens
            .iter()
            .map(|t| AddedToken::from(t.clone(), true).normalized(false))
            .collect();
        let plain_added: Vec<AddedToken> = user_defined_tokens
            .iter()
            .map(|t| AddedToken::from(t.clone(), false).normalized(false))
            .collect();
        parsing
            .add_special_tokens(special)
            .map_err(|e| TokenizerError::backend("adding special tokens", e))?;
        parsing
            .add_tokens(plain_added)
            .map_err(|e| TokenizerError::backend("adding user-defined tokens", e))?;
        let mut plain = assemble(model, normalizer, pre_tokenizer, None, decoder);
        plain.with_added_vocabulary(parsing.get_added_vocabulary().clone());
        plain.set_encode_special_tokens(true);

        let vocab_size = vocabulary.token_texts.len();
        let mut is_special = vec![false; vocab_size];
        for (id, token_type) in vocabulary.token_types.iter().enumerate() {
            is_special[id] = *token_type == TokenType::Control;
        }
        for token in &special_tokens {
            if let Some(id) = parsing.token_to_id(token) {
                if let Some(flag) = is_special.get_mut(id as usize) {
                    *flag = true;
                }
            }
        }
        let kept_in_text = harmony_structure(&vocabulary.token_texts, &is_special);
        let end_of_generation = end_of_generation_set(
            [vocabulary.eos_token_id, vocabulary.eot_token_id, vocabulary.eom_token_id],
            &vocabulary.token_texts,
            |_| true,
            &kept_in_text,
        );

        let special_spellings = special_spelling_matcher(&vocabulary.token_texts, &is_special)?;
        Ok(Tokenizer {
            parsing,
            plain,
            kind: vocabulary.kind,
            token_texts: vocabulary.token_texts,
            is_special,
            special_spellings,
            bos_token_id: vocabulary.bos_token_id,
            eos_token_id: vocabulary.eos_token_id,
            add_bos: vocabulary.add_bos,
            add_eos: vocabulary.add_eos,
            uses_post_processor: false,
            end_of_generation,
            kept_in_text,
        })
    }

    /// Opens `path` as GGUF and builds its tokenizer.
    pub fn from_gguf_path(path: impl AsRef<Path>) -> Result<Tokenizer> {
        Tokenizer::from_gguf(&GgufFile::open(path)?)
    }

    /// Loads a Hugging Face `tokenizer.json`. BOS/EOS are added by its own post-processor; the EOS id
    /// comes from a `tokenizer_config.json` next to it when there is one.
    pub fn from_tokenizer_json(path: impl AsRef<Path>) -> Result<Tokenizer> {
        let path = path.as_ref();
        let loaded = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| TokenizerError::backend("loading tokenizer.json", e))?;
        let inner = loaded.into_inner();
        let model = Arc::new(inner.get_model().clone());
        let normalizer = inner.get_normalizer().cloned();
        let pre_tokenizer = inner.get_pre_tokenizer().cloned();
        let post_processor = inner.get_post_processor().cloned();
        let decoder = inner.get_decoder().cloned();
        let added = inner.get_added_vocabulary().clone();
        let mut parsing = assemble(
            model.clone(),
            normalizer.clone(),
            pre_tokenizer.clone(),
            post_processor.clone(),
            decoder.clone(),
        );
        parsing.with_added_vocabulary(added.clone());
        let mut plain = assemble(model, normalizer, pre_tokenizer, post_processor, decoder);
        plain.with_added_vocabulary(added);
        plain.set_encode_special_tokens(true);

        let vocab_size = parsing.get_vocab_size(true);
        let mut token_texts = Vec::with_capacity(vocab_size);
        let mut is_special = Vec::with_capacity(vocab_size);
        let added_vocabulary = parsing.get_added_vocabulary();
        for id in 0..vocab_size as TokenId {
            let text = parsing.id_to_token(id).unwrap_or_default();
            is_special.push(added_vocabulary.is_special_token(&text));
            token_texts.push(text);
        }
        // BOS: whatever the post-processor puts in front of a single sequence.
        let with_special = parsing
            .encode_fast("", true)
            .map_err(|e| TokenizerError::backend("probing the post-processor", e))?;
        let bos_token_id = with_special.get_ids().first().copied();
        let config = path.with_file_name("tokenizer_config.json");
        let eos_text = std::fs::read_to_string(&config).ok().and_then(|text| {
            let json: serde_json::Value = serde_json::from_str(&text).ok()?;
            match &json["eos_token"] {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Object(o) => o.get("content")?.as_str().map(str::to_owned),
                _ => None,
            }
        });
        let eos_token_id = eos_text.and_then(|t| parsing.token_to_id(&t));
        let kept_in_text = harmony_structure(&token_texts, &is_special);
        let end_of_generation =
            end_of_generation_set([eos_token_id], &token_texts, |id| is_special[id], &kept_in_text);
        let special_spellings = special_spelling_matcher(&token_texts, &is_special)?;
        Ok(Tokenizer {
            parsing,
            plain,
            kind: VocabularyKind::TokenizerJson,
            token_texts,
            is_special,
            special_spellings,
            bos_token_id,
            eos_token_id,
            add_bos: bos_token_id.is_some(),
            add_eos: false,
            uses_post_processor: true,
            end_of_generation,
            kept_in_text,
        })
    }

    /// Token ids for `text`.
    ///
    /// `add_special`: add BOS (and EOS) as the file's `add_bos_token`/`add_eos_token` flags say.
    /// `parse_special`: whether special-token spellings in the text (`"<|im_start|>"`, `"<bos>"`)
    /// become those tokens — what Hugging Face tokenizers do by default, and what a rendered chat
    /// template needs. With `false` no special token is ever produced from the text: user text
    /// that merely looks like a control token stays text.
    pub fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<TokenId>> {
        let backend = if parse_special { &self.parsing } else { &self.plain };
        let encoding = backend
            .encode_fast(text, add_special && self.uses_post_processor)
            .map_err(|e| TokenizerError::backend("encoding", e))?;
        let ids = encoding.get_ids();
        if self.uses_post_processor || !add_special {
            return Ok(ids.to_vec());
        }
        let mut out = Vec::with_capacity(ids.len() + 2);
        if self.add_bos {
            out.extend(self.bos_token_id);
        }
        out.extend_from_slice(ids);
        if self.add_eos {
            out.extend(self.eos_token_id);
        }
        Ok(out)
    }

    /// The byte range of the first place in `text` that spells a special token
    /// (`"<|im_end|>"`, `"<end_of_turn>"`), the longest there, as encoding with special tokens
    /// parsed would find it; `None` when no special token is spelled.
    pub fn first_special_spelling(&self, text: &str) -> Option<Range<usize>> {
        Some(self.special_spellings.as_ref()?.find(text)?.range())
    }

    /// Like [`encode`](Self::encode) with special tokens parsed, except inside the byte ranges
    /// `plain` (sorted, disjoint, on character boundaries), which are encoded as plain text: how
    /// a chat prompt keeps a message's text from becoming control tokens while the template's
    /// own markers do.
    pub fn encode_with_plain_spans(
        &self,
        text: &str,
        add_special: bool,
        plain: &[Range<usize>],
    ) -> Result<Vec<TokenId>> {
        if plain.is_empty() {
            return self.encode(text, add_special, true);
        }
        let mut out = Vec::new();
        if add_special && self.add_bos {
            out.extend(self.bos_token_id);
        }
        let mut position = 0;
        for span in plain {
            let (Some(before), Some(inside)) =
                (text.get(position..span.start), text.get(span.start..span.end))
            else {
                return Err(TokenizerError::Backend {
                    context: "encoding",
                    message: format!("plain span {span:?} is not a character range of the text"),
                });
            };
            out.extend(self.encode(before, false, true)?);
            out.extend(self.encode(inside, false, false)?);
            position = span.end;
        }
        out.extend(self.encode(&text[position..], false, true)?);
        if add_special && self.add_eos {
            out.extend(self.eos_token_id);
        }
        Ok(out)
    }

    /// The text of `ids`. `skip_special`: leave out special tokens (BOS, `<|im_end|>`, ...),
    /// except harmony's message structure in a gpt-oss vocabulary (`<|start|>`, `<|channel|>`,
    /// `<|message|>`, `<|end|>`, `<|constrain|>`), which a chat's output is read by.
    /// Invalid UTF-8 (a byte sequence cut short) becomes U+FFFD, as in Hugging Face's decode.
    pub fn decode(&self, ids: &[TokenId], skip_special: bool) -> Result<String> {
        let vocab_size = self.vocab_size();
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab_size) {
            return Err(TokenizerError::TokenIdOutOfRange { id, vocab_size });
        }
        let decode = |ids: &[TokenId], skip_special: bool| {
            self.parsing
                .decode(ids, skip_special)
                .map_err(|e| TokenizerError::backend("decoding", e))
        };
        let kept = |id: &TokenId| self.kept_in_text.contains(id);
        if !skip_special || !ids.iter().any(kept) {
            return decode(ids, skip_special);
        }
        // Harmony's structure stays: the runs between its tokens are decoded without special
        // tokens, each of its tokens as spelled.
        let mut text = String::new();
        for run in ids.split_inclusive(kept) {
            match run.split_last() {
                Some((last, before)) if kept(last) => {
                    text.push_str(&decode(before, true)?);
                    text.push_str(&decode(&[*last], false)?);
                }
                _ => text.push_str(&decode(run, true)?),
            }
        }
        Ok(text)
    }

    /// A decoder that turns ids fed one at a time into text pieces that never split a character.
    pub fn stream_decoder(&self, skip_special: bool) -> StreamDecoder {
        StreamDecoder::new(skip_special)
    }

    /// Number of token ids.
    pub fn vocab_size(&self) -> usize {
        self.token_texts.len()
    }

    /// Which family of vocabulary this is.
    pub fn kind(&self) -> VocabularyKind {
        self.kind
    }

    /// The beginning-of-sequence token, when the vocabulary names one.
    pub fn bos_token_id(&self) -> Option<TokenId> {
        self.bos_token_id
    }

    /// The end-of-sequence token, when the vocabulary names one.
    pub fn eos_token_id(&self) -> Option<TokenId> {
        self.eos_token_id
    }

    /// Whether `encode(_, add_special = true, _)` puts BOS in front.
    pub fn adds_bos(&self) -> bool {
        self.add_bos && self.bos_token_id.is_some()
    }

    /// Whether `encode(_, add_special = true, _)` puts EOS at the end.
    pub fn adds_eos(&self) -> bool {
        self.add_eos && self.eos_token_id.is_some()
    }

    /// Every token that ends generation: EOS, EOT/EOM, and the vocabulary's turn-ending tokens
    /// (`<|im_end|>`, `<|endoftext|>`, `<end_of_turn>`, `<|eot_id|>`, ...), sorted. In a harmony
    /// (gpt-oss) vocabulary `<|end|>` ends a message, not the generation: `<|return|>` and
    /// `<|call|>` do.
    pub fn end_of_generation_tokens(&self) -> &[TokenId] {
        &self.end_of_generation
    }

    /// Whether `id` ends generation.
    pub fn is_end_of_generation(&self, id: TokenId) -> bool {
        self.end_of_generation.binary_search(&id).is_ok()
    }

    /// The token's text as the vocabulary spells it (`"Ġhello"` in byte-level vocabularies,
    /// `"▁hello"` or `"<0x0A>"` in SentencePiece ones).
    pub fn token_text(&self, id: TokenId) -> Option<&str> {
        self.token_texts.get(id as usize).map(String::as_str)
    }

    /// The bytes token `id` stands for in generated text: what decoding it contributes, before
    /// the decoder joins pieces into characters (a byte-level token may hold part of a UTF-8
    /// character; `<0x0A>` is one byte). Added tokens (`<tool_call>`, `<|im_end|>`) are their
    /// spelling. Grammar-constrained decoding matches these bytes against the grammar.
    pub fn token_bytes(&self, id: TokenId) -> Option<Vec<u8>> {
        let text = self.token_texts.get(id as usize)?;
        if self.is_added(id) {
            return Some(text.as_bytes().to_vec());
        }
        Some(match self.parsing.get_decoder() {
            Some(DecoderWrapper::ByteLevel(_)) => byte_level_bytes(text),
            _ => sentencepiece_bytes(text),
        })
    }

    /// Whether `id` is one of the added tokens, matched whole in text rather than produced by
    /// the model's merges.
    fn is_added(&self, id: TokenId) -> bool {
        self.parsing.get_added_vocabulary().simple_id_to_token(id).is_some()
    }

    /// The id whose spelling is exactly `text`, looking at added tokens first.
    pub fn token_id(&self, text: &str) -> Option<TokenId> {
        self.parsing.token_to_id(text)
    }

    /// Whether `id` is a special (control) token: never produced from plain text, skipped by
    /// `decode(_, skip_special = true)`.
    pub fn is_special(&self, id: TokenId) -> bool {
        self.is_special.get(id as usize).copied().unwrap_or(false)
    }
}

/// A matcher of the non-empty spellings of the special tokens, if there are any.
fn special_spelling_matcher(
    token_texts: &[String],
    is_special: &[bool],
) -> Result<Option<AhoCorasick>> {
    let spellings: Vec<&str> = token_texts
        .iter()
        .zip(is_special)
        .filter(|(text, &special)| special && !text.is_empty())
        .map(|(text, _)| text.as_str())
        .collect();
    if spellings.is_empty() {
        return Ok(None);
    }
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build(spellings)
        .map(Some)
        .map_err(|e| TokenizerError::backend("indexing special-token spellings", e))
}

/// The special tokens of harmony's message structure ([`HARMONY_STRUCTURE`]) when the
/// vocabulary is harmony's (it has both [`HARMONY_STOPS`]); sorted. Empty for any other.
fn harmony_structure(token_texts: &[String], is_special: &[bool]) -> Vec<TokenId> {
    let mut stops = 0;
    let mut structure = Vec::new();
    for (id, text) in token_texts.iter().enumerate() {
        if !is_special.get(id).copied().unwrap_or(false) {
            continue;
        }
        if HARMONY_STOPS.contains(&text.as_str()) {
            stops += 1;
        } else if HARMONY_STRUCTURE.contains(&text.as_str()) {
            structure.push(id as TokenId);
        }
    }
    if stops < HARMONY_STOPS.len() {
        structure.clear();
    }
    structure
}

/// The declared end tokens plus every token spelled like a known end-of-turn marker (as llama.cpp's
/// `llama_vocab_is_eog` collects them), restricted by `eligible`, less the tokens `structure`
/// keeps in the text (harmony's `<|end|>`); sorted, without duplicates.
fn end_of_generation_set<const N: usize>(
    declared: [Option<TokenId>; N],
    token_texts: &[String],
    eligible: impl Fn(usize) -> bool,
    structure: &[TokenId],
) -> Vec<TokenId> {
    let mut ids: Vec<TokenId> = declared.into_iter().flatten().collect();
    for (id, text) in token_texts.iter().enumerate() {
        if END_OF_GENERATION_TEXTS.contains(&text.as_str()) && eligible(id) {
            ids.push(id as TokenId);
        }
    }
    ids.retain(|id| !structure.contains(id));
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// GPT-2's byte-level alphabet read back: each character of a byte-level token is one byte
/// (printable bytes stand for themselves, the others were shifted to U+0100 and up). A character
/// outside the alphabet (never in a merged token) keeps its UTF-8 bytes.
fn byte_level_bytes(text: &str) -> Vec<u8> {
    let mut shifted = 0u32;
    let mut unshift = [0u8; 256];
    for byte in 0..=255u8 {
        let printable = matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        if !printable {
            unshift[shifted as usize] = byte;
            shifted += 1;
        }
    }
    let mut bytes = Vec::with_capacity(text.len());
    for c in text.chars() {
        let code = c as u32;
        match code {
            0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => bytes.push(code as u8),
            0x100..=0x143 if code - 0x100 < shifted => bytes.push(unshift[(code - 0x100) as usize]),
            _ => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    bytes
}

/// A SentencePiece piece's bytes: `▁` is a space, `<0xNN>` the byte it names.
fn sentencepiece_bytes(text: &str) -> Vec<u8> {
    if let Some(hex) = text.strip_prefix("<0x").and_then(|t| t.strip_suffix('>')) {
        if let (2, Ok(byte)) = (hex.len(), u8::from_str_radix(hex, 16)) {
            return vec![byte];
        }
    }
    text.replace('\u{2581}', " ").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_of_generation_texts_are_unique() {
        let mut texts = END_OF_GENERATION_TEXTS.to_vec();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), END_OF_GENERATION_TEXTS.len());
    }
}
