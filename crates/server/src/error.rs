//! The one place engine errors become HTTP errors: each [`EngineError`] gets its status code and
//! OpenAI error object here, for the OpenAI and the Ollama routes alike (Ollama's routes send the
//! same status with the message as `{"error": ...}`), whether the engine refused a request or
//! failed it mid-stream.

use uma_engine::EngineError;

use crate::openai::ApiError;

impl From<&EngineError> for ApiError {
    fn from(error: &EngineError) -> ApiError {
        match error {
            EngineError::EmptyPrompt => ApiError::invalid_request("The prompt is empty.", None),
            EngineError::PromptTooLong { num_prompt_tokens, context_length } => {
                ApiError::context_length_exceeded(*num_prompt_tokens, *context_length)
            }
            // One step frees a slot quickly; a second is a polite wait.
            EngineError::QueueFull { .. } => ApiError::queue_full(1),
            EngineError::InvalidParameters(error) => ApiError::from(error.clone()),
            EngineError::TokenOutOfRange { .. } => {
                ApiError::invalid_request(error.to_string(), Some("prompt"))
            }
            EngineError::ShuttingDown => ApiError::unavailable("The server is shutting down."),
            EngineError::UnknownModel { name } => ApiError::not_found_model(name),
            // Other models' requests will end and free their memory: worth a retry.
            EngineError::NoRoom { .. } => ApiError {
                retry_after_secs: Some(5),
                code: Some("model_memory_busy".to_owned()),
                ..ApiError::unavailable(format!("{error}."))
            },
            EngineError::ModelTooLarge { .. } => ApiError {
                code: Some("model_too_large".to_owned()),
                ..ApiError::invalid_request(format!("{error}."), Some("model"))
            },
            EngineError::NoEmbeddings { .. } => ApiError {
                code: Some("model_not_embedding".to_owned()),
                ..ApiError::invalid_request(format!("{error}."), Some("model"))
            },
            // Failures inside the engine (a step, an embedding, a load) and errors of the
            // model's files: the server's fault, not the client's.
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        ApiError::from(&error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn engine_errors_map_to_their_status() {
        let cases = [
            (EngineError::EmptyPrompt, StatusCode::BAD_REQUEST),
            (
                EngineError::PromptTooLong { num_prompt_tokens: 9, context_length: 8 },
                StatusCode::BAD_REQUEST,
            ),
            (EngineError::QueueFull { num_in_flight: 3 }, StatusCode::TOO_MANY_REQUESTS),
            (EngineError::ShuttingDown, StatusCode::SERVICE_UNAVAILABLE),
            (EngineError::UnknownModel { name: "m".into() }, StatusCode::NOT_FOUND),
            (
                EngineError::ModelPanicked { detail: "index out of bounds".into() },
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(ApiError::from(&error).status, status, "{error:?}");
        }
        let failed = ApiError::from(EngineError::ModelPanicked { detail: "boom".into() });
        assert_eq!(failed.message, "internal error in the model: boom");
    }
}
