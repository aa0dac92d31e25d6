//! Loading a Hugging Face `tokenizer.json` (a tiny hand-written one: no model needed).

use uma_tokenizer::{Tokenizer, VocabularyKind};

const TOKENIZER_JSON: &str = r#"{
  "version": "1.0",
  "added_tokens": [
    {"id": 5, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 6, "content": "<|end|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
  ],
  "normalizer": null,
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
  "post_processor": {
    "type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [5], "tokens": ["<s>"]}}
  },
  "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
  "model": {
    "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
    "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
    "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3, "Ġab": 4},
    "merges": [["a", "b"], ["Ġ", "ab"]]
  }
}"#;

#[test]
fn tokenizer_json_encodes_decodes_and_finds_special_tokens() {
    let dir = std::env::temp_dir().join(format!("uma-tokenizer-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, TOKENIZER_JSON).expect("write");
    std::fs::write(dir.join("tokenizer_config.json"), r#"{"eos_token": "<|end|>"}"#)
        .expect("write");
    let tokenizer = Tokenizer::from_tokenizer_json(&path).expect("load");
    std::fs::remove_dir_all(&dir).expect("cleanup");

    assert_eq!(tokenizer.kind(), VocabularyKind::TokenizerJson);
    assert_eq!(tokenizer.vocab_size(), 7);
    assert_eq!(tokenizer.bos_token_id(), Some(5));
    assert_eq!(tokenizer.eos_token_id(), Some(6));
    assert_eq!(tokenizer.end_of_generation_tokens(), [6]);
    assert!(tokenizer.is_special(6) && !tokenizer.is_special(2));
    assert_eq!(tokenizer.encode("ab ab", false, true).expect("encode"), [2, 4]);
    assert_eq!(tokenizer.encode("ab ab", true, true).expect("encode"), [5, 2, 4]);
    assert_eq!(tokenizer.encode("ab<|end|>", false, true).expect("encode"), [2, 6]);
    let plain = tokenizer.encode("ab<|end|>", false, false).expect("encode");
    assert!(!plain.contains(&6), "{plain:?}");
    assert_eq!(tokenizer.decode(&[5, 2, 4, 6], false).expect("decode"), "<s>ab ab<|end|>");
    assert_eq!(tokenizer.decode(&[5, 2, 4, 6], true).expect("decode"), "ab ab");
}

/// A harmony (gpt-oss) vocabulary: `<|return|>` and `<|call|>` end a generation, `<|end|>` only a
/// message; decoding without special tokens keeps the message structure the output is read by.
const HARMONY_TOKENIZER_JSON: &str = r#"{
  "version": "1.0",
  "added_tokens": [
    {"id": 5, "content": "<|return|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 6, "content": "<|call|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 7, "content": "<|start|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 8, "content": "<|channel|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 9, "content": "<|message|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 10, "content": "<|end|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 11, "content": "<|constrain|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 12, "content": "<|endoftext|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
  ],
  "normalizer": null,
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
  "post_processor": null,
  "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
  "model": {
    "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
    "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
    "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3, "Ġab": 4},
    "merges": [["a", "b"], ["Ġ", "ab"]]
  }
}"#;

#[test]
fn harmony_vocabularies_keep_their_message_structure() {
    let dir = std::env::temp_dir().join(format!("uma-tokenizer-harmony-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, HARMONY_TOKENIZER_JSON).expect("write");
    std::fs::write(dir.join("tokenizer_config.json"), r#"{"eos_token": "<|return|>"}"#)
        .expect("write");
    let tokenizer = Tokenizer::from_tokenizer_json(&path).expect("load");
    std::fs::remove_dir_all(&dir).expect("cleanup");

    // `<|end|>` (10) ends a message only.
    assert_eq!(tokenizer.end_of_generation_tokens(), [5, 6, 12]);
    let output = [8, 2, 9, 4, 10, 7, 2, 8, 2, 11, 2, 9, 4, 6];
    let kept =
        "<|channel|>ab<|message|> ab<|end|><|start|>ab<|channel|>ab<|constrain|>ab<|message|> ab";
    assert_eq!(tokenizer.decode(&output, true).expect("decode"), kept);
    assert_eq!(tokenizer.decode(&output, false).expect("decode"), format!("{kept}<|call|>"));
    assert_eq!(tokenizer.decode(&[2, 12, 4, 5], true).expect("decode"), "ab ab");
    // Streamed one id at a time, the same text.
    let mut decoder = tokenizer.stream_decoder(true);
    let mut streamed = String::new();
    for id in output {
        streamed.push_str(&decoder.push(&tokenizer, id).expect("push"));
    }
    streamed.push_str(&decoder.finish(&tokenizer).expect("finish"));
    assert_eq!(streamed, kept);
    // Still special: never made from plain text.
    assert!(tokenizer.is_special(8));
    assert!(!tokenizer.encode("<|channel|>", false, false).expect("encode").contains(&8));
}
