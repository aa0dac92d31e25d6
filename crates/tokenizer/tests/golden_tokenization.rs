//! Token ids, decoded text and streaming decode of the real models' tokenizers, checked against
//! golden files written by Hugging Face `transformers` (scripts/golden/make-tokenizer-golden.sh).

mod common;

use common::{golden, ids, model_by_stem, tokenizer};
use uma_test_models::TestModel;
use uma_tokenizer::{TokenId, Tokenizer, TokenizerError, VocabularyKind};

const QWEN: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m";
const GEMMA: &str = "gemma-3-270m-q4_k_m";

struct Case {
    text: String,
    ids: Vec<TokenId>,
    ids_with_special: Vec<TokenId>,
    ids_split_special: Vec<TokenId>,
    decoded: String,
    decoded_skip_special: String,
}

fn cases(stem: &str) -> (serde_json::Value, Vec<Case>) {
    let json = golden(&format!("{stem}.json"));
    let cases: Vec<Case> = json["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| Case {
            text: c["text"].as_str().expect("text").to_owned(),
            ids: ids(&c["ids"]),
            ids_with_special: ids(&c["ids_with_special"]),
            ids_split_special: ids(&c["ids_split_special"]),
            decoded: c["decoded"].as_str().expect("decoded").to_owned(),
            decoded_skip_special: c["decoded_skip_special"].as_str().expect("decoded").to_owned(),
        })
        .collect();
    assert!(cases.len() >= 300, "{stem}: golden corpus has only {} strings", cases.len());
    (json, cases)
}

/// Compares every case; reports all mismatches at once.
fn check_encode(tokenizer: &Tokenizer, stem: &str, cases: &[Case]) {
    let mut failures = Vec::new();
    for case in cases {
        let checks = [
            ("ids (parse_special)", tokenizer.encode(&case.text, false, true), &case.ids),
            ("ids_with_special", tokenizer.encode(&case.text, true, true), &case.ids_with_special),
            (
                "ids_split_special",
                tokenizer.encode(&case.text, false, false),
                &case.ids_split_special,
            ),
        ];
        for (what, got, want) in checks {
            let got = got.unwrap_or_else(|e| panic!("{stem}: encode {:?}: {e}", case.text));
            if &got != want {
                failures
                    .push(format!("{what} of {:?}:\n   uma  {got:?}\n   hf   {want:?}", case.text));
            }
        }
    }
    assert!(failures.is_empty(), "{stem}: {} mismatches\n{}", failures.len(), failures.join("\n"));
}

fn check_decode(tokenizer: &Tokenizer, stem: &str, cases: &[Case]) {
    let mut failures = Vec::new();
    for case in cases {
        let decoded = tokenizer.decode(&case.ids, false).expect("decode");
        if decoded != case.decoded {
            failures.push(format!("decode {:?}: uma {decoded:?} hf {:?}", case.ids, case.decoded));
        }
        let skipped = tokenizer.decode(&case.ids, true).expect("decode");
        if skipped != case.decoded_skip_special {
            failures.push(format!(
                "decode(skip_special) {:?}: uma {skipped:?} hf {:?}",
                case.ids, case.decoded_skip_special
            ));
        }
    }
    assert!(failures.is_empty(), "{stem}: {} mismatches\n{}", failures.len(), failures.join("\n"));
}

/// Texts whose round trip the tokenizer cannot preserve: in SentencePiece vocabularies "▁" *is*
/// the space marker, so a literal "▁" in the input decodes as a space.
fn round_trips(tokenizer: &Tokenizer, text: &str) -> bool {
    !(tokenizer.kind() == VocabularyKind::SentencePiece && text.contains('\u{2581}'))
}

fn check_round_trip(tokenizer: &Tokenizer, stem: &str, cases: &[Case]) {
    let mut checked = 0;
    for case in cases.iter().filter(|c| round_trips(tokenizer, &c.text)) {
        for parse_special in [true, false] {
            let ids = tokenizer.encode(&case.text, false, parse_special).expect("encode");
            let text = tokenizer.decode(&ids, false).expect("decode");
            assert_eq!(text, case.text, "{stem}: round trip (parse_special={parse_special})");
        }
        checked += 1;
    }
    assert!(checked + 3 >= cases.len(), "{stem}: only {checked} round trips checked");
}

/// Feeds ids one at a time; returns the pieces.
fn stream(tokenizer: &Tokenizer, ids: &[TokenId], skip_special: bool) -> Vec<String> {
    let mut decoder = tokenizer.stream_decoder(skip_special);
    let mut pieces: Vec<String> =
        ids.iter().map(|&id| decoder.push(tokenizer, id).expect("push")).collect();
    pieces.push(decoder.finish(tokenizer).expect("finish"));
    pieces
}

fn check_streaming(tokenizer: &Tokenizer, stem: &str, cases: &[Case]) {
    for case in cases {
        for ids in [&case.ids, &case.ids_with_special, &case.ids_split_special] {
            for skip_special in [false, true] {
                let full = tokenizer.decode(ids, skip_special).expect("decode");
                let pieces = stream(tokenizer, ids, skip_special);
                assert_eq!(pieces.concat(), full, "{stem}: streamed pieces of {:?}", case.text);
                // A piece that split a character would carry U+FFFD that the full text lacks.
                let replacement_chars: usize =
                    pieces.iter().map(|p| p.matches('\u{FFFD}').count()).sum();
                assert_eq!(
                    replacement_chars,
                    full.matches('\u{FFFD}').count(),
                    "{stem}: a streamed piece split a character in {:?}: {pieces:?}",
                    case.text
                );
            }
        }
    }
}

fn check_no_special_without_parsing(tokenizer: &Tokenizer, stem: &str, cases: &[Case]) {
    for case in cases {
        let ids = tokenizer.encode(&case.text, false, false).expect("encode");
        let special: Vec<TokenId> =
            ids.iter().copied().filter(|&id| tokenizer.is_special(id)).collect();
        assert!(special.is_empty(), "{stem}: {:?} produced special tokens {special:?}", case.text);
    }
    // Every special token's own spelling, alone and inside text.
    let mut checked = 0;
    for id in 0..tokenizer.vocab_size() as TokenId {
        if !tokenizer.is_special(id) {
            continue;
        }
        let text = tokenizer.token_text(id).expect("in range").to_owned();
        for input in [text.clone(), format!("x{text} y")] {
            let ids = tokenizer.encode(&input, false, false).expect("encode");
            assert!(
                ids.iter().all(|&i| !tokenizer.is_special(i)),
                "{stem}: plain text {input:?} produced a special token: {ids:?}"
            );
            assert_eq!(tokenizer.decode(&ids, false).expect("decode"), input, "{stem}");
        }
        let parsed = tokenizer.encode(&text, false, true).expect("encode");
        assert_eq!(parsed, vec![id], "{stem}: {text:?} with special parsing");
        checked += 1;
    }
    assert!(checked > 0, "{stem}: vocabulary has no special tokens");
}

fn run_all(stem: &str, model: TestModel) {
    let (_, cases) = cases(stem);
    let tokenizer = tokenizer(model);
    check_encode(tokenizer, model.stem(), &cases);
    check_decode(tokenizer, model.stem(), &cases);
}

#[test]
fn qwen_ids_match_transformers() {
    run_all(QWEN, TestModel::QwenCoder05b);
}

#[test]
fn qwen_15b_shares_the_05b_tokenizer_and_matches_transformers() {
    let (json, _) = cases(QWEN);
    let same: Vec<&str> = json["same_tokenizer"]
        .as_array()
        .expect("same_tokenizer")
        .iter()
        .map(|v| v.as_str().expect("stem"))
        .collect();
    assert_eq!(same, [TestModel::QwenCoder15b.stem()], "the golden script checked this");
    for stem in same {
        run_all(QWEN, model_by_stem(stem));
    }
}

#[test]
fn gemma_ids_match_transformers() {
    run_all(GEMMA, TestModel::Gemma3_270m);
}

#[test]
fn golden_bos_and_eos_match() {
    for (stem, model) in [(QWEN, TestModel::QwenCoder05b), (GEMMA, TestModel::Gemma3_270m)] {
        let (json, _) = cases(stem);
        let tokenizer = tokenizer(model);
        let want = |key: &str| json[key].as_u64().map(|v| v as TokenId);
        assert_eq!(tokenizer.bos_token_id(), want("bos_token_id"), "{stem}");
        assert_eq!(tokenizer.eos_token_id(), want("eos_token_id"), "{stem}");
    }
}

#[test]
fn decode_of_encode_round_trips() {
    for (stem, model) in [(QWEN, TestModel::QwenCoder05b), (GEMMA, TestModel::Gemma3_270m)] {
        let (_, cases) = cases(stem);
        check_round_trip(tokenizer(model), stem, &cases);
    }
}

#[test]
fn streamed_pieces_concatenate_to_decode_and_never_split_a_character() {
    for (stem, model) in [(QWEN, TestModel::QwenCoder05b), (GEMMA, TestModel::Gemma3_270m)] {
        let (_, cases) = cases(stem);
        check_streaming(tokenizer(model), stem, &cases);
    }
}

#[test]
fn special_tokens_never_come_from_plain_text() {
    for (stem, model) in [(QWEN, TestModel::QwenCoder05b), (GEMMA, TestModel::Gemma3_270m)] {
        let (_, cases) = cases(stem);
        check_no_special_without_parsing(tokenizer(model), stem, &cases);
    }
}

#[test]
fn qwen_control_tokens_in_text_are_parsed_only_when_asked() {
    let tokenizer = tokenizer(TestModel::QwenCoder05b);
    let text = "<|im_start|>user\nhi<|im_end|>";
    let parsed = tokenizer.encode(text, false, true).expect("encode");
    assert_eq!(parsed.first(), Some(&151644));
    assert_eq!(parsed.last(), Some(&151645));
    let plain = tokenizer.encode(text, false, false).expect("encode");
    assert!(!plain.contains(&151644) && !plain.contains(&151645), "{plain:?}");
    // FIM and repository tokens are control tokens too (transformers 5 marks them all special).
    assert_eq!(tokenizer.encode("<|fim_prefix|>", false, true).expect("encode"), [151659]);
}

#[test]
fn user_defined_tokens_are_matched_whole_even_without_special_parsing() {
    // `<tool_call>` is USER_DEFINED, not CONTROL: llama.cpp and transformers both match it in any
    // text, and it is not special (kept by decode(skip_special = true)).
    let tokenizer = tokenizer(TestModel::QwenCoder05b);
    for parse_special in [true, false] {
        assert_eq!(
            tokenizer.encode("<tool_call>", false, parse_special).expect("encode"),
            [151657]
        );
    }
    assert!(!tokenizer.is_special(151657));
    assert_eq!(tokenizer.decode(&[151657], true).expect("decode"), "<tool_call>");
}

#[test]
fn qwen_adds_no_bos_and_gemma_adds_bos() {
    let qwen = tokenizer(TestModel::QwenCoder05b);
    assert!(!qwen.adds_bos());
    assert_eq!(
        qwen.encode("Hello", true, true).expect("encode"),
        qwen.encode("Hello", false, true).expect("encode")
    );
    let gemma = tokenizer(TestModel::Gemma3_270m);
    assert!(gemma.adds_bos());
    let ids = gemma.encode("Hello", true, true).expect("encode");
    assert_eq!(ids[0], 2);
    assert_eq!(&ids[1..], gemma.encode("Hello", false, true).expect("encode"));
    assert_eq!(gemma.decode(&ids, true).expect("decode"), "Hello");
    assert_eq!(gemma.decode(&ids, false).expect("decode"), "<bos>Hello");
}

#[test]
fn qwen_splits_numbers_into_single_digits() {
    let tokenizer = tokenizer(TestModel::QwenCoder05b);
    let ids = tokenizer.encode("1234567", false, true).expect("encode");
    assert_eq!(ids.len(), 7, "qwen2 pre-tokenizer isolates every digit: {ids:?}");
}

#[test]
fn qwen_does_not_normalize_unicode() {
    // transformers 5 builds GGUF byte-level tokenizers without Qwen2's NFC normalizer (as
    // llama.cpp does), so decomposed text survives the round trip.
    let tokenizer = tokenizer(TestModel::QwenCoder05b);
    let decomposed = "e\u{301}";
    let ids = tokenizer.encode(decomposed, false, true).expect("encode");
    assert_eq!(tokenizer.decode(&ids, false).expect("decode"), decomposed);
    assert_ne!(ids, tokenizer.encode("\u{e9}", false, true).expect("encode"));
}

#[test]
fn gemma_has_no_dummy_prefix() {
    // Gemma's SentencePiece model has add_dummy_prefix off: "Hello" is not "▁Hello".
    let tokenizer = tokenizer(TestModel::Gemma3_270m);
    let hello = tokenizer.encode("Hello", false, true).expect("encode");
    let space_hello = tokenizer.encode(" Hello", false, true).expect("encode");
    assert_ne!(hello, space_hello);
    assert_eq!(tokenizer.token_text(space_hello[0]), Some("\u{2581}Hello"));
    assert_eq!(tokenizer.decode(&space_hello, false).expect("decode"), " Hello");
}

#[test]
fn gemma_whitespace_run_tokens_are_looked_up_as_metaspace_runs() {
    // The GGUF stores Gemma's whitespace-run tokens with real spaces ("  "); the model must find
    // them as "▁▁", or runs of spaces would be spelled one space at a time.
    let tokenizer = tokenizer(TestModel::Gemma3_270m);
    assert_eq!(tokenizer.token_text(138), Some("  "));
    assert_eq!(tokenizer.encode("a  b", false, true).expect("encode"), {
        let a = tokenizer.encode("a", false, true).expect("encode");
        let b = tokenizer.encode("b", false, true).expect("encode");
        [a, vec![138], b].concat()
    });
}

#[test]
fn gemma_byte_fallback_assembles_characters_while_streaming() {
    let tokenizer = tokenizer(TestModel::Gemma3_270m);
    let text = "\u{10000}"; // LINEAR B SYLLABLE B008 A: not in the vocabulary, so 4 byte tokens.
    let ids = tokenizer.encode(text, false, true).expect("encode");
    let spelled: Vec<&str> = ids.iter().map(|&id| tokenizer.token_text(id).expect("id")).collect();
    assert_eq!(spelled, ["<0xF0>", "<0x90>", "<0x80>", "<0x80>"]);
    let pieces = stream(tokenizer, &ids, false);
    assert_eq!(pieces, ["", "", "", text, ""]);
    // Cut short, a full decode shows the broken bytes as U+FFFD; the stream holds them back.
    let mut decoder = tokenizer.stream_decoder(false);
    for &id in &ids[..2] {
        assert_eq!(decoder.push(tokenizer, id).expect("push"), "");
    }
    assert!(decoder.has_pending());
    assert_eq!(
        decoder.finish(tokenizer).expect("finish"),
        tokenizer.decode(&ids[..2], false).expect("decode")
    );
}

#[test]
fn qwen_streaming_holds_back_partial_utf8_of_byte_level_tokens() {
    let tokenizer = tokenizer(TestModel::QwenCoder05b);
    let text = "🫠🫨🪿 ok";
    let ids = tokenizer.encode(text, false, true).expect("encode");
    let pieces = stream(tokenizer, &ids, false);
    assert_eq!(pieces.concat(), text);
    assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
    assert!(pieces.iter().any(String::is_empty), "some emoji span several tokens: {pieces:?}");
}

#[test]
fn end_of_generation_tokens() {
    let qwen = tokenizer(TestModel::QwenCoder05b);
    // <|endoftext|>, <|im_end|>, <|fim_pad|>, <|repo_name|>, <|file_sep|> (llama.cpp's set).
    assert_eq!(qwen.end_of_generation_tokens(), [151643, 151645, 151662, 151663, 151664]);
    let gemma = tokenizer(TestModel::Gemma3_270m);
    assert_eq!(gemma.end_of_generation_tokens(), [1, 106]);
    assert_eq!(gemma.token_text(106), Some("<end_of_turn>"));
    assert!(gemma.is_end_of_generation(106) && !gemma.is_end_of_generation(105));
}

#[test]
fn decode_rejects_out_of_range_ids() {
    let tokenizer = tokenizer(TestModel::Gemma3_270m);
    let error = tokenizer.decode(&[1, 262_144], false).expect_err("out of range");
    assert!(matches!(error, TokenizerError::TokenIdOutOfRange { id: 262_144, .. }), "{error}");
}

#[test]
fn vocab_sizes() {
    assert_eq!(tokenizer(TestModel::QwenCoder05b).vocab_size(), 151_936);
    assert_eq!(tokenizer(TestModel::Gemma3_270m).vocab_size(), 262_144);
}
