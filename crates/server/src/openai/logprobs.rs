//! Token logprobs ([`TokenLogprob`]) and their two OpenAI shapes: chat's `{"content": [...]}`
//! and text completions' legacy `{tokens, token_logprobs, top_logprobs, text_offset}`.

use serde_json::{json, Map, Value};

use crate::generation::TokenLogprob;

/// The floor OpenAI and vLLM report for a token the model rules out (`-inf` is not JSON).
const MIN_LOGPROB: f32 = -9999.0;

/// A logprob as a JSON number: clamped so `-inf` and NaN stay numbers, and written with the
/// f32's shortest decimal form (`-0.1`, not the `-0.10000000149011612` of a plain widening).
pub(crate) fn logprob_json(logprob: f32) -> Value {
    let clamped = if logprob.is_nan() { MIN_LOGPROB } else { logprob.max(MIN_LOGPROB) };
    let shortest = clamped.to_string().parse::<f64>().unwrap_or(f64::from(clamped));
    json!(shortest)
}

/// Chat's `logprobs` object: `{"content": [{token, logprob, bytes, top_logprobs}]}`.
pub(crate) fn chat_logprobs(tokens: &[TokenLogprob]) -> Value {
    let content: Vec<Value> = tokens
        .iter()
        .map(|token| {
            let top_logprobs: Vec<Value> = token
                .top_logprobs
                .iter()
                .map(|top| {
                    json!({
                        "token": top.token,
                        "logprob": logprob_json(top.logprob),
                        "bytes": top.bytes,
                    })
                })
                .collect();
            json!({
                "token": token.token,
                "logprob": logprob_json(token.logprob),
                "bytes": token.bytes,
                "top_logprobs": top_logprobs,
            })
        })
        .collect();
    json!({ "content": content })
}

/// Text completions' `logprobs` object. `text_offset` counts characters (Unicode scalar values,
/// as Python's `len`) from the start of the choice's text; `initial_text_offset` is what earlier
/// chunks of a stream already sent. Each `top_logprobs` entry maps token text to logprob and, as
/// OpenAI documents, always includes the chosen token (so up to n + 1 entries).
pub(crate) fn legacy_logprobs(tokens: &[TokenLogprob], initial_text_offset: usize) -> Value {
    let mut text_offset = initial_text_offset;
    let mut text_offsets = Vec::with_capacity(tokens.len());
    let mut top_logprobs = Vec::with_capacity(tokens.len());
    for token in tokens {
        text_offsets.push(text_offset);
        text_offset += token.token.chars().count();
        let mut top = Map::new();
        // First occurrence wins: distinct tokens can have the same text.
        for entry in &token.top_logprobs {
            top.entry(entry.token.clone()).or_insert_with(|| logprob_json(entry.logprob));
        }
        top.entry(token.token.clone()).or_insert_with(|| logprob_json(token.logprob));
        top_logprobs.push(Value::Object(top));
    }
    json!({
        "tokens": tokens.iter().map(|token| token.token.as_str()).collect::<Vec<_>>(),
        "token_logprobs":
            tokens.iter().map(|token| logprob_json(token.logprob)).collect::<Vec<_>>(),
        "top_logprobs": top_logprobs,
        "text_offset": text_offsets,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::generation::TopLogprob;

    pub(crate) fn top(token: &str, logprob: f32) -> TopLogprob {
        TopLogprob { token: token.into(), logprob, bytes: token.as_bytes().to_vec() }
    }

    pub(crate) fn token(token: &str, logprob: f32, top_logprobs: Vec<TopLogprob>) -> TokenLogprob {
        TokenLogprob {
            token: token.into(),
            logprob,
            bytes: token.as_bytes().to_vec(),
            top_logprobs,
        }
    }

    #[test]
    fn logprobs_are_finite_shortest_numbers() {
        assert_eq!(logprob_json(-0.1).to_string(), "-0.1");
        assert_eq!(logprob_json(0.0), json!(0.0));
        assert_eq!(logprob_json(f32::NEG_INFINITY), json!(-9999.0));
        assert_eq!(logprob_json(f32::NAN), json!(-9999.0));
    }

    #[test]
    fn chat_shape() {
        let tokens = [token("Hi", -0.25, vec![top("Hi", -0.25), top("Hello", -1.5)])];
        assert_eq!(
            chat_logprobs(&tokens),
            json!({"content": [{
                "token": "Hi",
                "logprob": -0.25,
                "bytes": [72, 105],
                "top_logprobs": [
                    {"token": "Hi", "logprob": -0.25, "bytes": [72, 105]},
                    {"token": "Hello", "logprob": -1.5, "bytes": [72, 101, 108, 108, 111]},
                ],
            }]})
        );
    }

    #[test]
    fn legacy_shape_with_offsets_and_the_chosen_token() {
        let tokens = [
            token("é", -0.5, vec![top("a", -0.25)]),
            token(" b", -2.0, vec![top(" b", -2.0), top(" c", -3.0)]),
        ];
        assert_eq!(
            legacy_logprobs(&tokens, 10),
            json!({
                "tokens": ["é", " b"],
                "token_logprobs": [-0.5, -2.0],
                "top_logprobs": [{"a": -0.25, "é": -0.5}, {" b": -2.0, " c": -3.0}],
                "text_offset": [10, 11],
            })
        );
    }
}
