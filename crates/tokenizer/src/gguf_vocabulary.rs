//! Reading a vocabulary out of GGUF metadata and assembling the `tokenizers` pipeline for it,
//! the same way `transformers` (5.x, `integrations/gguf/gguf_tokenizer_mapping.py`) does, so that
//! ids agree with it exactly.

use std::collections::HashMap;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::BPE;
use tokenizers::models::ModelWrapper;
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{NormalizerWrapper, SplitDelimiterBehavior};
use uma_gguf::{keys, GgufFile, Metadata, MetadataArray};

use crate::error::{Result, TokenizerError};
use crate::tokenizer::VocabularyKind;
use crate::TokenId;

/// What `tokenizer.ggml.token_type` says a token is (llama.cpp's `llama_token_type` numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenType {
    Undefined,
    /// Produced by the model from text.
    Normal,
    /// The unknown-token placeholder.
    Unknown,
    /// Control tokens (`<|im_start|>`, `<start_of_turn>`, `<bos>`): special, never produced from
    /// plain text.
    Control,
    /// Added tokens matched whole in text but not special (`<tool_call>`, `<think>`).
    UserDefined,
    /// Padding slots the vocabulary reserves (`[PAD151665]`).
    Unused,
    /// SentencePiece byte-fallback tokens `<0x00>` ... `<0xFF>`.
    Byte,
}

impl TokenType {
    fn from_code(code: i64) -> TokenType {
        match code {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }
}

/// The pieces of a `tokenizers` pipeline, before it is assembled.
#[derive(Debug)]
pub(crate) struct BackendParts {
    pub(crate) model: ModelWrapper,
    pub(crate) normalizer: Option<NormalizerWrapper>,
    pub(crate) pre_tokenizer: Option<PreTokenizerWrapper>,
    pub(crate) decoder: Option<DecoderWrapper>,
    /// Added as special tokens: extracted whole from text only when special parsing is asked for.
    pub(crate) special_tokens: Vec<String>,
    /// Added as plain tokens: always matched whole in text.
    pub(crate) user_defined_tokens: Vec<String>,
}

/// Everything the tokenizer takes from a GGUF file.
#[derive(Debug)]
pub(crate) struct GgufVocabulary {
    pub(crate) parts: BackendParts,
    pub(crate) kind: VocabularyKind,
    pub(crate) token_texts: Vec<String>,
    pub(crate) token_types: Vec<TokenType>,
    pub(crate) bos_token_id: Option<TokenId>,
    pub(crate) eos_token_id: Option<TokenId>,
    pub(crate) eot_token_id: Option<TokenId>,
    pub(crate) eom_token_id: Option<TokenId>,
    pub(crate) add_bos: bool,
    pub(crate) add_eos: bool,
}

/// Qwen2's split rule (HF `Qwen2Tokenizer`, llama.cpp `LLAMA_VOCAB_PRE_TYPE_QWEN2`): single digits.
pub(crate) const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 3.5's variant: letters may carry combining marks.
pub(crate) const QWEN35_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's split rule (`llama-bpe`): numbers in groups of up to three digits.
pub(crate) const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const TEKKEN_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const GPT4O_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The split regex for a `tokenizer.ggml.pre` name; `Ok(None)` means GPT-2's own rule (built into
/// the `ByteLevel` pre-tokenizer).
pub(crate) fn pre_tokenizer_split(pre: Option<&str>) -> Result<Option<&'static str>> {
    Ok(match pre {
        None | Some("default" | "gpt-2" | "gpt2") => None,
        Some(
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
            | "lfm2" | "jina-v5-nano" | "dbrx" | "smaug-bpe",
        ) => Some(LLAMA3_SPLIT),
        Some("qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez") => Some(QWEN2_SPLIT),
        Some("qwen35") => Some(QWEN35_SPLIT),
        Some("tekken") => Some(TEKKEN_SPLIT),
        Some("gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2") => Some(GPT4O_SPLIT),
        Some(other) => {
            return Err(TokenizerError::UnsupportedPreTokenizer { pre: other.to_owned() })
        }
    })
}

/// GPT-2's reversible byte -> printable character table (`bytes_to_unicode`).
pub(crate) fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next_extra = 256u32;
    for byte in 0u32..256 {
        let printable = (u32::from(b'!')..=u32::from(b'~')).contains(&byte)
            || (0xA1..=0xAC).contains(&byte)
            || (0xAE..=0xFF).contains(&byte);
        let code = if printable {
            byte
        } else {
            next_extra += 1;
            next_extra - 1
        };
        table[byte as usize] = char::from_u32(code).expect("code points below 0x200 are valid");
    }
    table
}

fn get_u32_id(
    metadata: &Metadata,
    key: &'static str,
    vocab_size: usize,
) -> Result<Option<TokenId>> {
    match metadata.get_u32(key)? {
        Some(id) if id as usize >= vocab_size => {
            Err(TokenizerError::TokenIdOutOfRange { id, vocab_size })
        }
        other => Ok(other),
    }
}

fn scores(metadata: &Metadata, vocab_size: usize) -> Result<Option<Vec<f64>>> {
    let key = keys::TOKENIZER_SCORES;
    let Some(array) = metadata.get_array(key)? else { return Ok(None) };
    let values: Vec<f64> = match array {
        MetadataArray::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        MetadataArray::F64(v) => v.clone(),
        _ => return Err(TokenizerError::WrongArrayType { key, expected: "f32" }),
    };
    if values.len() != vocab_size {
        return Err(TokenizerError::LengthMismatch {
            key,
            expected: vocab_size,
            found: values.len(),
        });
    }
    Ok(Some(values))
}

fn token_types(metadata: &Metadata, vocab_size: usize) -> Result<Vec<TokenType>> {
    let key = keys::TOKENIZER_TOKEN_TYPE;
    let Some(array) = metadata.get_array(key)? else {
        return Ok(vec![TokenType::Normal; vocab_size]);
    };
    let codes =
        array.to_i128_vec().ok_or(TokenizerError::WrongArrayType { key, expected: "integer" })?;
    if codes.len() != vocab_size {
        return Err(TokenizerError::LengthMismatch {
            key,
            expected: vocab_size,
            found: codes.len(),
        });
    }
    Ok(codes.into_iter().map(|c| TokenType::from_code(i64::try_from(c).unwrap_or(0))).collect())
}

/// `{token: id}` where a repeated spelling keeps its last id (as a Python dict comprehension does).
fn vocabulary_map(tokens: &[String]) -> HashMap<String, u32> {
    let mut map = HashMap::with_capacity(tokens.len());
    for (id, token) in tokens.iter().enumerate() {
        map.insert(token.clone(), id as u32);
    }
    map
}

/// Merges implied by a vocabulary without a merge list: every split of every token into two
/// tokens, best `rank_score` first (`transformers.tokenization_utils_base.generate_merges` with
/// `vocab_scores`, reproduced exactly, ties included).
fn generate_merges(
    tokens: &[String],
    vocab: &HashMap<String, u32>,
    rank_score: impl Fn(usize) -> f64,
) -> Vec<(String, String)> {
    // Unique spellings in first-seen order, each scored by its last occurrence (Python dict).
    let mut seen = HashMap::with_capacity(tokens.len());
    let mut order: Vec<&str> = Vec::with_capacity(tokens.len());
    for token in tokens {
        if seen.insert(token.as_str(), ()).is_none() {
            order.push(token);
        }
    }
    struct Candidate<'a> {
        left: &'a str,
        right: &'a str,
        score: f64,
        left_chars: usize,
        right_chars: usize,
    }
    let mut candidates: Vec<Candidate<'_>> = Vec::new();
    for token in order {
        let last_id = vocab[token] as usize;
        let score = rank_score(last_id);
        let start = candidates.len();
        let total_chars = token.chars().count();
        for (left_chars, (index, _)) in token.char_indices().enumerate().skip(1) {
            let (left, right) = token.split_at(index);
            if vocab.contains_key(left) && vocab.contains_key(right) {
                candidates.push(Candidate {
                    left,
                    right,
                    score,
                    left_chars,
                    right_chars: total_chars - left_chars,
                });
            }
        }
        candidates[start..].sort_by_key(|c| (vocab[c.left], vocab[c.right]));
    }
    // Python: sorted(key=(score, len(left), len(right)), reverse=True), which is stable.
    candidates.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.left_chars.cmp(&a.left_chars))
            .then(b.right_chars.cmp(&a.right_chars))
    });
    candidates.into_iter().map(|c| (c.left.to_owned(), c.right.to_owned())).collect()
}

fn file_merges(metadata: &Metadata) -> Result<Option<Vec<(String, String)>>> {
    let Some(merges) = metadata.get_str_array(keys::TOKENIZER_MERGES)? else { return Ok(None) };
    let mut pairs = Vec::with_capacity(merges.len());
    for merge in merges {
        // Python's `merge.split(" ")` keeps only the first two parts.
        let mut parts = merge.split(' ');
        let left = parts.next().unwrap_or_default();
        let right = parts.next().ok_or_else(|| TokenizerError::Backend {
            context: "tokenizer.ggml.merges",
            message: format!("merge {merge:?} is not two tokens separated by a space"),
        })?;
        pairs.push((left.to_owned(), right.to_owned()));
    }
    Ok(Some(pairs))
}

fn build_bpe(
    vocab: HashMap<String, u32>,
    merges: Vec<(String, String)>,
    configure: impl FnOnce(tokenizers::models::bpe::BpeBuilder) -> tokenizers::models::bpe::BpeBuilder,
) -> Result<ModelWrapper> {
    let vocab: tokenizers::models::bpe::Vocab = vocab.into_iter().collect();
    let builder = configure(BPE::builder().vocab_and_merges(vocab, merges));
    let bpe = builder.build().map_err(|e| TokenizerError::backend("building the BPE model", e))?;
    Ok(ModelWrapper::BPE(bpe))
}

fn sentencepiece_decoder(strip_leading_space: bool) -> Result<DecoderWrapper> {
    let replace = Replace::new("\u{2581}", " ")
        .map_err(|e| TokenizerError::backend("building the decoder", e))?;
    let mut steps = vec![
        DecoderWrapper::Replace(replace),
        DecoderWrapper::ByteFallback(ByteFallback::new()),
        DecoderWrapper::Fuse(Fuse::new()),
    ];
    if strip_leading_space {
        steps.push(DecoderWrapper::Strip(Strip::new(' ', 1, 0)));
    }
    Ok(DecoderWrapper::Sequence(DecoderSequence::new(steps)))
}

fn replace_space_normalizer() -> Result<NormalizerWrapper> {
    Replace::new(" ", "\u{2581}")
        .map(NormalizerWrapper::Replace)
        .map_err(|e| TokenizerError::backend("building the normalizer", e))
}

impl GgufVocabulary {
    pub(crate) fn read(file: &GgufFile) -> Result<GgufVocabulary> {
        let metadata = file.metadata();
        let model = metadata
            .get_str(keys::TOKENIZER_MODEL)?
            .ok_or(TokenizerError::MissingKey { key: keys::TOKENIZER_MODEL })?;
        let architecture = metadata.get_str(keys::GENERAL_ARCHITECTURE)?.unwrap_or_default();
        let tokens = metadata
            .get_str_array(keys::TOKENIZER_TOKENS)?
            .ok_or(TokenizerError::MissingKey { key: keys::TOKENIZER_TOKENS })?
            .to_vec();
        let vocab_size = tokens.len();
        let token_types = token_types(metadata, vocab_size)?;
        let bos_token_id = get_u32_id(metadata, keys::TOKENIZER_BOS_ID, vocab_size)?;
        let eos_token_id = get_u32_id(metadata, keys::TOKENIZER_EOS_ID, vocab_size)?;
        let eot_token_id = get_u32_id(metadata, keys::TOKENIZER_EOT_ID, vocab_size)?;
        let eom_token_id = get_u32_id(metadata, keys::TOKENIZER_EOM_ID, vocab_size)?;
        let unknown_token_id = get_u32_id(metadata, keys::TOKENIZER_UNKNOWN_ID, vocab_size)?;
        let padding_token_id = get_u32_id(metadata, keys::TOKENIZER_PADDING_ID, vocab_size)?;
        let add_eos = metadata.get_bool(keys::TOKENIZER_ADD_EOS)?.unwrap_or(false);
        let add_bos_flag = metadata.get_bool(keys::TOKENIZER_ADD_BOS)?;

        let (parts, kind, add_bos) = match model {
            "gpt2" => {
                let pre = metadata.get_str(keys::TOKENIZER_PRE)?;
                let parts = byte_level_parts(metadata, &tokens, &token_types, pre)?;
                (parts, VocabularyKind::ByteLevelBpe, add_bos_flag.unwrap_or(false))
            }
            "llama" => {
                let parts = sentencepiece_parts(metadata, architecture, &tokens, &token_types)?;
                // SentencePiece files without the flag get BOS (llama.cpp and transformers agree).
                (parts, VocabularyKind::SentencePiece, add_bos_flag.unwrap_or(true))
            }
            other => return Err(TokenizerError::UnsupportedModel { model: other.to_owned() }),
        };
        let mut parts = parts;
        // transformers also registers the file's bos/eos/unk/pad (and GemmaTokenizer's `<mask>`)
        // as special tokens; all of them are normally control tokens already.
        let mut named: Vec<String> =
            [bos_token_id, eos_token_id, unknown_token_id, padding_token_id]
                .into_iter()
                .flatten()
                .map(|id| tokens[id as usize].clone())
                .collect();
        if matches!(architecture, "gemma" | "gemma2" | "gemma3") && model == "llama" {
            named.push("<mask>".to_owned());
        }
        for name in named {
            if parts.model_has(&name) && !parts.special_tokens.contains(&name) {
                parts.special_tokens.push(name);
            }
        }

        Ok(GgufVocabulary {
            parts,
            kind,
            token_texts: tokens,
            token_types,
            bos_token_id,
            eos_token_id,
            eot_token_id,
            eom_token_id,
            add_bos,
            add_eos,
        })
    }
}

impl BackendParts {
    fn model_has(&self, token: &str) -> bool {
        use tokenizers::Model;
        self.model.token_to_id(token).is_some()
    }
}

/// Control tokens become special added tokens; user-defined ones plain added tokens, if the model
/// spells them the same way.
fn added_tokens(
    model: &ModelWrapper,
    tokens: &[String],
    token_types: &[TokenType],
    spelled: impl Fn(&str) -> bool,
) -> (Vec<String>, Vec<String>) {
    use tokenizers::Model;
    let mut special = Vec::new();
    let mut user_defined = Vec::new();
    for (token, token_type) in tokens.iter().zip(token_types) {
        match token_type {
            TokenType::Control if spelled(token) => special.push(token.clone()),
            TokenType::UserDefined if model.token_to_id(token).is_some() => {
                user_defined.push(token.clone())
            }
            _ => {}
        }
    }
    (special, user_defined)
}

fn byte_level_parts(
    metadata: &Metadata,
    tokens: &[String],
    token_types: &[TokenType],
    pre: Option<&str>,
) -> Result<BackendParts> {
    let split = pre_tokenizer_split(pre)?;
    let table = byte_to_char_table();
    let alphabet: std::collections::HashSet<char> = table.iter().copied().collect();
    let in_alphabet = |token: &str| token.chars().all(|c| alphabet.contains(&c));
    // A token written outside the byte alphabet (a llama.cpp conversion quirk) is respelled from
    // its UTF-8 bytes, as transformers does.
    let spelled: Vec<String> = tokens
        .iter()
        .map(|token| {
            if in_alphabet(token) {
                token.clone()
            } else {
                token.bytes().map(|b| table[b as usize]).collect()
            }
        })
        .collect();
    let vocab = vocabulary_map(&spelled);
    let merges = match file_merges(metadata)? {
        Some(merges) => merges,
        None => {
            let scores = scores(metadata, tokens.len())?;
            generate_merges(&spelled, &vocab, |id| scores.as_ref().map_or(id as f64, |s| s[id]))
        }
    };
    let model = build_bpe(vocab, merges, |b| {
        b.continuing_subword_prefix(String::new()).end_of_word_suffix(String::new()).fuse_unk(false)
    })?;
    let pre_tokenizer = match split {
        None => PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
        Some(regex) => {
            let split = Split::new(
                SplitPattern::Regex(regex.to_owned()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| TokenizerError::backend("compiling the pre-tokenizer regex", e))?;
            PreTokenizerWrapper::Sequence(PreTokenizerSequence::new(vec![
                PreTokenizerWrapper::Split(split),
                PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false)),
            ]))
        }
    };
    let (special_tokens, user_defined_tokens) =
        added_tokens(&model, tokens, token_types, in_alphabet);
    Ok(BackendParts {
        model,
        normalizer: None,
        pre_tokenizer: Some(pre_tokenizer),
        decoder: Some(DecoderWrapper::ByteLevel(ByteLevel::default())),
        special_tokens,
        user_defined_tokens,
    })
}

fn sentencepiece_parts(
    metadata: &Metadata,
    architecture: &str,
    tokens: &[String],
    token_types: &[TokenType],
) -> Result<BackendParts> {
    let unknown_token = metadata
        .get_u32(keys::TOKENIZER_UNKNOWN_ID)?
        .and_then(|id| tokens.get(id as usize))
        .cloned()
        .unwrap_or_else(|| "<unk>".to_owned());
    let parts = if matches!(architecture, "gemma" | "gemma2" | "gemma3") {
        // Gemma files store whitespace-run tokens with real spaces; the model looks them up as
        // "▁▁...". Merges are rebuilt from the vocabulary ordered by position in the file (Gemma's
        // scores do not follow its merge order).
        let respelled: Vec<String> = tokens
            .iter()
            .map(|t| {
                if t.contains(' ') && t.trim().is_empty() {
                    "\u{2581}".repeat(t.chars().count())
                } else {
                    t.clone()
                }
            })
            .collect();
        let vocab = vocabulary_map(&respelled);
        let merges = match file_merges(metadata)? {
            Some(merges) => merges,
            None => generate_merges(&respelled, &vocab, |id| -(id as f64)),
        };
        let model = build_bpe(vocab, merges, |b| {
            b.fuse_unk(true).unk_token(unknown_token).byte_fallback(true)
        })?;
        let split = Split::new(
            SplitPattern::String(" ".to_owned()),
            SplitDelimiterBehavior::MergedWithPrevious,
            false,
        )
        .map_err(|e| TokenizerError::backend("building the pre-tokenizer", e))?;
        let (special_tokens, user_defined_tokens) =
            added_tokens(&model, tokens, token_types, |_| true);
        BackendParts {
            model,
            normalizer: Some(replace_space_normalizer()?),
            pre_tokenizer: Some(PreTokenizerWrapper::Split(split)),
            decoder: Some(sentencepiece_decoder(false)?),
            special_tokens,
            user_defined_tokens,
        }
    } else {
        let vocab = vocabulary_map(tokens);
        let merges = match file_merges(metadata)? {
            Some(merges) => merges,
            None => {
                let scores = scores(metadata, tokens.len())?
                    .ok_or(TokenizerError::MissingKey { key: keys::TOKENIZER_SCORES })?;
                generate_merges(tokens, &vocab, |id| scores[id])
            }
        };
        let model = build_bpe(vocab, merges, |b| b.fuse_unk(true).byte_fallback(true))?;
        let add_prefix_space = metadata.get_bool(keys::TOKENIZER_ADD_SPACE_PREFIX)?.unwrap_or(true);
        let (normalizer, pre_tokenizer) = if architecture == "phi3" {
            // Phi-3 prepends the space in a normalizer (it shows on text that starts with a space).
            let normalizer = NormalizerWrapper::Sequence(NormalizerSequence::new(vec![
                NormalizerWrapper::Prepend(Prepend::new("\u{2581}".to_owned())),
                replace_space_normalizer()?,
            ]));
            (Some(normalizer), None)
        } else {
            let scheme = if add_prefix_space { PrependScheme::First } else { PrependScheme::Never };
            (None, Some(PreTokenizerWrapper::Metaspace(Metaspace::new('\u{2581}', scheme, false))))
        };
        let (special_tokens, user_defined_tokens) =
            added_tokens(&model, tokens, token_types, |_| true);
        BackendParts {
            model,
            normalizer,
            pre_tokenizer,
            decoder: Some(sentencepiece_decoder(add_prefix_space || architecture == "phi3")?),
            special_tokens,
            user_defined_tokens,
        }
    };
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_matches_gpt2() {
        let table = byte_to_char_table();
        assert_eq!(table[b'A' as usize], 'A');
        assert_eq!(table[b' ' as usize], '\u{120}'); // "Ġ"
        assert_eq!(table[b'\n' as usize], '\u{10A}'); // "Ċ"
        assert_eq!(table[0], '\u{100}');
        let unique: std::collections::HashSet<char> = table.iter().copied().collect();
        assert_eq!(unique.len(), 256);
    }

    #[test]
    fn unknown_pre_tokenizer_is_an_error() {
        assert!(matches!(
            pre_tokenizer_split(Some("no-such-pre")),
            Err(TokenizerError::UnsupportedPreTokenizer { .. })
        ));
        assert_eq!(pre_tokenizer_split(Some("qwen2")).ok().flatten(), Some(QWEN2_SPLIT));
        assert_eq!(pre_tokenizer_split(Some("llama-bpe")).ok().flatten(), Some(LLAMA3_SPLIT));
        assert_eq!(pre_tokenizer_split(Some("default")).ok().flatten(), None);
    }

    #[test]
    fn generated_merges_prefer_better_scores_then_longer_left_pieces() {
        let tokens: Vec<String> = ["a", "b", "c", "ab", "bc", "abc"].map(String::from).to_vec();
        let vocab = vocabulary_map(&tokens);
        let merges = generate_merges(&tokens, &vocab, |id| -(id as f64));
        let expected = [("a", "b"), ("b", "c"), ("ab", "c"), ("a", "bc")];
        let expected: Vec<(String, String)> =
            expected.iter().map(|(l, r)| (l.to_string(), r.to_string())).collect();
        assert_eq!(merges, expected);
    }
}
