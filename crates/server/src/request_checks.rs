//! Checks of request fields that the Anthropic and Responses APIs share: the 400 that names a
//! field, `temperature`, and the name of the tool a result answers. (Their
//! tests share [`tests_support`]: a request made of some fields, and the field its 400 names.)

use uma_tokenizer::ChatMessage;

use crate::error::ApiError;

/// A 400 `invalid_request_error` whose `param` is `field`.
pub(crate) fn invalid(message: impl Into<String>, field: &str) -> ApiError {
    ApiError::invalid_request(message, Some(field))
}

/// The `temperature` field: 1 when absent, else within 0 and `max` (the API's bound).
pub(crate) fn temperature(value: Option<f32>, max: f32) -> Result<f32, ApiError> {
    let temperature = value.unwrap_or(1.0);
    if !(0.0..=max).contains(&temperature) {
        return Err(invalid(
            format!("`temperature` must be between 0 and {max}, got {temperature}."),
            "temperature",
        ));
    }
    Ok(temperature)
}

/// The function name of the call with id `id` among `messages` (the latest such call), for a
/// template that wants it with the result.
pub(crate) fn tool_name_of(messages: &[ChatMessage], id: &str) -> Option<String> {
    messages
        .iter()
        .rev()
        .flat_map(|message| message.tool_calls.iter().flatten())
        .find_map(|call| (call.id.as_deref() == Some(id)).then(|| call.function.name.clone()))
}

#[cfg(test)]
pub(crate) mod tests_support {
    use axum::http::StatusCode;
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    use crate::error::ApiError;

    /// The request `base` with the fields `fields` set (or replaced).
    pub(crate) fn request_with<T: DeserializeOwned>(mut base: Value, fields: &Value) -> T {
        for (key, value) in fields.as_object().expect("fields as an object") {
            base[key] = value.clone();
        }
        serde_json::from_value(base).expect("a request")
    }

    /// For each case `(fields, field)`: `check` refuses the request `make(fields)` with a 400
    /// that names `field`.
    pub(crate) fn assert_refused<T, const N: usize>(
        make: fn(Value) -> T,
        check: fn(&T) -> Result<(), ApiError>,
        cases: [(Value, &str); N],
    ) {
        for (fields, field) in cases {
            let error = check(&make(fields.clone())).expect_err(&fields.to_string());
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{fields}");
            let named = error.param.unwrap_or_else(|| panic!("no field named for {fields}"));
            assert_eq!(named, field, "{fields}");
        }
    }
}
