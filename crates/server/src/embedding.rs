//! Embeddings through a model's engine, shared by `POST /v1/embeddings` and Ollama's
//! `POST /api/embed`.

use uma_engine::{EngineError, EngineHandle, TokenId};

/// Refuses a model that serves no embeddings before any input is tokenized.
pub(crate) fn check_serves_embeddings(engine: &EngineHandle) -> Result<(), EngineError> {
    match engine.config().pooling {
        Some(_) => Ok(()),
        None => Err(EngineError::NoEmbeddings { model: engine.model_name().to_owned() }),
    }
}

/// One embedding per input, in order.
pub(crate) async fn embed_all(
    engine: &EngineHandle,
    inputs: Vec<Vec<TokenId>>,
) -> Result<Vec<Vec<f32>>, EngineError> {
    let mut embeddings = Vec::with_capacity(inputs.len());
    for tokens in inputs {
        embeddings.push(engine.embed(tokens).await?);
    }
    Ok(embeddings)
}

/// OpenAI's `encoding_format: "base64"`: the little-endian f32 bytes, base64-encoded.
pub(crate) fn base64_floats(values: &[f32]) -> String {
    use base64::Engine as _;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_little_endian_f32() {
        // 1.0f32 = 00 00 80 3f; -2.0f32 = 00 00 00 c0.
        assert_eq!(base64_floats(&[1.0, -2.0]), "AACAPwAAAMA=");
    }
}
